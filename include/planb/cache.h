/* cache.h -- the exact-match answer cache shared by every worker and host, with herd control.
 *
 * The key is pure (SHA-256 of a canonical request). A lookup is one script
 * call that reads the entry and, on a miss, takes the key's lock; a job that
 * finds the lock held polls until the holder stores its answer, gives up the
 * lock, or the job's deadline comes. The chain hears the outcome once. */
#ifndef PLANB_CACHE_H
#define PLANB_CACHE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "planb/config.h"
#include "planb/job.h"
#include "planb/redis.h"

#define PB_CACHE_KEY_LEN 64 /* hex SHA-256 */

/* Hex SHA-256 (NUL-terminated) of req's canonical form (pb_request_canon: every message field
 * and every param), its tenant and provider_types: the set of provider types (bit 1 << type,
 * config.h's pb_provider_type) of the models the job may use, since each type translates the
 * request its own way (what it drops, what it refuses). Pure. */
void pb_cache_key(const pb_request *req, unsigned provider_types, char out[PB_CACHE_KEY_LEN + 1]);

typedef struct pb_cache pb_cache;
typedef struct pb_cache_op pb_cache_op;

typedef struct pb_cache_entry {
    char *content; /* NULL: no entry */
    char *model;   /* model name that answered */
    int tier;
    long prompt_tokens, completion_tokens; /* -1 when unknown */
    int64_t age_s;                         /* seconds since it was stored (Redis clock) */
    char *tool_calls;                      /* JSON array of the answer's tool calls, or NULL */
    char *refusal;                         /* the answer's refusal, or NULL */
    const char *finish_reason;             /* static: "stop", "tool_calls", "content_filter" */
} pb_cache_entry;

typedef enum {
    PB_CACHE_HIT,    /* answer with hit */
    PB_CACHE_LEAD,   /* run the chain (holding the key's lock when one was free) */
    PB_CACHE_FAILED, /* the lock holder just spent a chain covering ours: stale or degrade */
} pb_cache_verdict;

typedef struct pb_cache_outcome {
    pb_cache_verdict verdict;
    bool coalesced;       /* the hit came from another job we waited on */
    pb_cache_entry hit;   /* PB_CACHE_HIT */
    pb_cache_entry stale; /* any other verdict: an entry usable past its TTL, or empty */
} pb_cache_outcome;

/* Called once per op, from the loop; takes the strings in *o (free with pb_cache_entry_free). */
typedef void (*pb_cache_fn)(pb_cache_outcome *o, void *arg);

/* The worker's cache: on cfg->cache_redis when set (own connection), else on queue_conn. */
pb_cache *pb_cache_new(struct event_base *base, const pb_config *cfg, pb_redis *queue_conn,
                       const char *worker_id);
/* Stops talking to Redis (replies still pending end without calling back); before the
 * queue connection is freed. pb_cache_free then releases it (accepts NULL). */
void pb_cache_close(pb_cache *c);
/* The connection the cache (and the semantic index) lives on; borrowed. */
pb_redis *pb_cache_conn(pb_cache *c);
void pb_cache_free(pb_cache *c);

/* Starts a lookup for req (mode use or refresh). chain lists the model names the job may use
 * (borrowed for the call) and provider_types their provider types (see pb_cache_key);
 * max_tier is its quality floor (0: none). */
pb_cache_op *pb_cache_begin(pb_cache *c, const pb_request *req, const char *const *chain,
                            size_t n_chain, unsigned provider_types, int max_tier,
                            int64_t deadline_mono_ms, pb_cache_fn fn, void *arg);
/* Ends the op: stores answer (NULL: none) and gives the lock up; failed marks the chain spent
 * for the jobs waiting on it. Frees op (accepts NULL); no callback follows. */
void pb_cache_end(pb_cache_op *op, const pb_cache_entry *answer, bool failed);
void pb_cache_entry_free(pb_cache_entry *e);

#endif
