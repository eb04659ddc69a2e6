/* keys.h -- every Redis key and channel name planb uses, in one place (the docs/redis.md contract).
 *
 * All names start with the configured prefix. Returned strings are new; caller frees. */
#ifndef PLANB_KEYS_H
#define PLANB_KEYS_H

#include <stddef.h>
#include <sys/types.h>

#define PB_KEY_WORKER_ID_MAX 128 /* a worker id is host (< 64) + ':' + pid, with room to spare */

/* The id of worker process pid on this host, "host:pid": its member in <p>:workers, the
 * suffix of its in-flight list, the "worker" of its results. */
void pb_key_worker_id(char *buf, size_t size, pid_t pid);

char *pb_key_queue(const char *prefix, const char *queue);      /* <p>:q:<queue> (list) */
char *pb_key_delayed(const char *prefix, const char *queue);    /* <p>:delayed:<queue> (zset) */
char *pb_key_inflight(const char *prefix, const char *worker);  /* <p>:inflight:<worker> (list) */
char *pb_key_workers(const char *prefix);                       /* <p>:workers (zset) */
char *pb_key_result(const char *prefix, const char *id);        /* <p>:result:<id> (string) */
char *pb_key_reply(const char *prefix, const char *id);         /* <p>:reply:<id> (list) */
char *pb_key_stream(const char *prefix, const char *id);        /* <p>:stream:<id> (stream) */
char *pb_key_stream_run(const char *prefix, const char *id);    /* <p>:streamrun:<id> (hash) */
char *pb_key_cache(const char *prefix, const char *sha256_hex); /* <p>:cache:<sha> (string) */
char *pb_key_cache_lock(const char *prefix, const char *sha);   /* <p>:cache:<sha>:lock (string) */
char *pb_key_dead(const char *prefix);                          /* <p>:dead (list) */
char *pb_key_stats(const char *prefix);                         /* <p>:stats (hash) */
char *pb_key_breaker(const char *prefix, const char *model);    /* <p>:breaker:<model> (hash) */
char *pb_key_deliveries(const char *prefix);                    /* <p>:deliveries (hash) */
char *pb_key_paused(const char *prefix);                        /* <p>:paused (hash) */
char *pb_key_events(const char *prefix);                        /* <p>:events (stream) */
char *pb_key_reaper_lock(const char *prefix);                   /* <p>:reaper (string) */
char *pb_key_reaper_clock(const char *prefix);                  /* <p>:reaper:clock (hash) */
char *pb_key_suspect(const char *prefix, const char *worker);   /* <p>:suspect:<worker> (string) */
char *pb_key_ratelimit(const char *prefix, const char *model);  /* <p>:ratelimit:<model> (zset) */
char *pb_key_tokens(const char *prefix, const char *model);     /* <p>:tokens:<model> (hash) */
char *pb_key_stats_minute(const char *prefix, long long min);   /* <p>:stats:m:<unix min> (hash) */
char *pb_key_stats_lock(const char *prefix);                    /* <p>:lock:stats (string, PX) */
char *pb_key_alert_state(const char *prefix);                   /* <p>:alert:fallback (string) */
char *pb_key_channel_results(const char *prefix);               /* <p>:results (channel) */
char *pb_key_cancelled(const char *prefix, const char *id);     /* <p>:cancelled:<id> (string) */
char *pb_key_cancels(const char *prefix);                       /* <p>:cancels (zset) */
char *pb_key_channel_cancel(const char *prefix);                /* <p>:cancel (channel) */
char *pb_key_channel_stats(const char *prefix);                 /* <p>:stats (channel) */
char *pb_key_channel_alerts(const char *prefix);                /* <p>:alerts (channel) */
/* The front door (front.c): a key's per-minute request count, the front's own heartbeat. */
char *pb_key_front_rpm(const char *prefix, const char *key_name, long long min); /* string */
char *pb_key_channel_front_beat(const char *prefix, const char *front);          /* channel */
/* Semantic cache (semcache.c): entries, LSH buckets, the age index and shadow samples. */
char *pb_key_sem_entry_prefix(const char *prefix);  /* <p>:sem:e: (+ id: string) */
char *pb_key_sem_bucket_prefix(const char *prefix); /* <p>:sem:b: (+ scope:table:code: set) */
char *pb_key_sem_index(const char *prefix);         /* <p>:sem:index (zset) */
char *pb_key_sem_shadow(const char *prefix);        /* <p>:sem:shadow (list) */

#endif
