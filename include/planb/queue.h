/* queue.h -- the Redis side of a job's life: claim, finish (ack + result), heartbeat.
 *
 * Claims move raw jobs from planb:q:<queue> to the worker's in-flight list
 * (batched by a Lua script when the queue is deep, BLMOVE when it is empty);
 * a finish is one Lua script, so a result is stored, counted and published
 * exactly once or not at all. */
#ifndef PLANB_QUEUE_H
#define PLANB_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "planb/config.h"
#include "planb/redis.h"

typedef struct pb_queue_keys {
    const char *prefix;
    char *inflight;           /* <p>:inflight:<worker> */
    char **queues;            /* <p>:q:<name>, one per configured queue */
    char **delayed;           /* <p>:delayed:<name>, one per configured queue */
    char *const *queue_names; /* their names (the config's, borrowed) */
    size_t n_queues;
    char *paused;        /* <p>:paused (queue name -> who paused it) */
    char *stats;         /* <p>:stats */
    char *dead;          /* <p>:dead */
    char *workers;       /* <p>:workers */
    char *results_chan;  /* <p>:results */
    char *deliveries;    /* <p>:deliveries */
    char *suspect;       /* <p>:suspect:<worker> */
    char *events;        /* <p>:events */
    char *result_prefix; /* <p>:result: (claim.lua appends the id) */
    char *events_maxlen; /* cfg->events_maxlen as text */
    char *cancels;       /* <p>:cancels (recent cancels, cancel.lua) */
} pb_queue_keys;

/* Builds the key names for one worker; pb_queue_keys_free releases them. */
void pb_queue_keys_init(pb_queue_keys *k, const pb_config *cfg, const char *worker_id);
void pb_queue_keys_free(pb_queue_keys *k);

/* Moves up to max jobs from the queues that are not paused into the in-flight list in one
 * script call and stamps the worker's lease; the reply is an array of the jobs to run (a nil
 * element: a re-delivered job was left for later; an array: the paused queues, see claim.lua
 * and pb_queue_read_paused). vet (may be NULL) is a job BLMOVE already claimed from queue
 * vet_qi: it is in the reply, first, unless claim.lua acked it (its result exists), left it
 * for later or put it back (its queue is paused). */
void pb_queue_claim_batch(pb_redis *r, const pb_queue_keys *k, const char *worker_id, int max,
                          const char *vet, size_t vet_len, size_t vet_qi, pb_redis_fn fn,
                          void *arg);
/* Pure: reads the paused queues from a claim reply's elements into paused[0..n) (true =
 * paused; all false when the reply names none); returns how many are paused. */
size_t pb_queue_read_paused(const redisReply *reply, bool *paused, size_t n);
/* Pure: the first queue at or after from (round robin) that is not paused; n when all are. */
size_t pb_queue_next_open(const bool *paused, size_t n, size_t from);
/* BLMOVE from queue qi with a timeout in seconds on the dedicated claim connection. */
void pb_queue_claim_wait(pb_redis *r, const pb_queue_keys *k, size_t qi, double timeout_s,
                         pb_redis_fn fn, void *arg);

#define PB_QUEUE_MAX_COUNTERS 64 /* distinct stats fields one finish may bump */

typedef struct pb_finish {
    const char *raw; /* the job bytes as claimed */
    size_t raw_len;
    const char *id;          /* NULL: invalid job without a readable id (no result) */
    const char *result_json; /* NULL when id is NULL */
    size_t result_len;
    int reply_ttl_s;             /* 0: no reply list */
    const char *dead_entry;      /* NULL: not dead-lettered */
    const char *stream_key;      /* the job's planb:stream:<id> for its `end` entry, or NULL */
    const char *stream_run;      /* the run's token (pb_stream_run) when stream_key is set */
    const char *const *counters; /* stats fields to increment ... */
    const long *counts;          /* ... by these amounts */
    size_t n_counters;           /* at most PB_QUEUE_MAX_COUNTERS */
} pb_finish;

/* Runs finish.lua; the reply is 1 (stored) or 0 (a result already existed), NULL on outage (or,
 * with redis.wait_replicas, when too few replicas acknowledged it). */
void pb_queue_finish(pb_redis *r, const pb_config *cfg, const pb_queue_keys *k, const pb_finish *f,
                     pb_redis_fn fn, void *arg);
/* redis.wait_replicas > 0: WAIT for that many replicas to have the writes sent so far on r
 * (after a claim); a shorter count is logged (wait_short), nothing waits on it. A finish under
 * wait_replicas reports NULL (hold and re-send) until WAIT says enough replicas have it. */
void pb_queue_wait(pb_redis *r, const pb_config *cfg);
/* Stamps the worker's lease (heartbeat.lua). */
void pb_queue_heartbeat(pb_redis *r, const pb_queue_keys *k, const char *worker_id);
/* Returns every in-flight job to the first queue and leaves planb:workers (handback.lua);
 * the reply is the number of jobs handed back. */
void pb_queue_handback(pb_redis *r, const pb_queue_keys *k, const char *worker_id, pb_redis_fn fn,
                       void *arg);

#endif
