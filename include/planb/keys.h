/* keys.h -- every Redis key and channel name planb uses, in one place (the README contract).
 *
 * All names start with the configured prefix. Returned strings are new; caller frees. */
#ifndef PLANB_KEYS_H
#define PLANB_KEYS_H

char *pb_key_queue(const char *prefix, const char *queue);      /* <p>:q:<queue> (list) */
char *pb_key_inflight(const char *prefix, const char *worker);  /* <p>:inflight:<worker> (list) */
char *pb_key_workers(const char *prefix);                       /* <p>:workers (zset) */
char *pb_key_result(const char *prefix, const char *id);        /* <p>:result:<id> (string) */
char *pb_key_reply(const char *prefix, const char *id);         /* <p>:reply:<id> (list) */
char *pb_key_cache(const char *prefix, const char *sha256_hex); /* <p>:cache:<sha> (string) */
char *pb_key_cache_lock(const char *prefix, const char *sha);   /* <p>:cache:<sha>:lock (string) */
char *pb_key_dead(const char *prefix);                          /* <p>:dead (list) */
char *pb_key_stats(const char *prefix);                         /* <p>:stats (hash) */
char *pb_key_breaker(const char *prefix, const char *model);    /* <p>:breaker:<model> (hash) */
char *pb_key_deliveries(const char *prefix);                    /* <p>:deliveries (hash) */
char *pb_key_events(const char *prefix);                        /* <p>:events (stream) */
char *pb_key_reaper_lock(const char *prefix);                   /* <p>:reaper (string) */
char *pb_key_suspect(const char *prefix, const char *worker);   /* <p>:suspect:<worker> (string) */
char *pb_chan_results(const char *prefix);                      /* <p>:results (channel) */
char *pb_chan_stats(const char *prefix);                        /* <p>:stats (channel) */
char *pb_chan_alerts(const char *prefix);                       /* <p>:alerts (channel) */
/* Semantic cache (semcache.c): entries, LSH buckets, the age index and shadow samples. */
char *pb_key_sem_entry_prefix(const char *prefix);  /* <p>:sem:e: (+ id: string) */
char *pb_key_sem_bucket_prefix(const char *prefix); /* <p>:sem:b: (+ scope:table:code: set) */
char *pb_key_sem_index(const char *prefix);         /* <p>:sem:index (zset) */
char *pb_key_sem_shadow(const char *prefix);        /* <p>:sem:shadow (list) */

#endif
