/* semcache.h -- the semantic cache: answers to questions asked earlier in other words.
 *
 * A shared index in Redis (LSH buckets + int8 vectors), scoped by route,
 * tenant, params, embedder and the conversation around the question. A
 * pb_semcache_query is one job's view of it: the chain looks up, inserts and (in
 * shadow mode) records agreement through it. */
#ifndef PLANB_SEMCACHE_H
#define PLANB_SEMCACHE_H

#include <event2/event.h>
#include <stdint.h>

#include "planb/config.h"
#include "planb/http.h"
#include "planb/job.h"
#include "planb/redis.h"

typedef struct pb_semcache pb_semcache;
typedef struct pb_semcache_query pb_semcache_query;

typedef struct pb_semcache_hit {
    const char *content;  /* the cached answer */
    const char *question; /* the question it answered */
    double similarity;    /* cosine, >= the threshold */
    int64_t age_s;        /* since it was stored */
} pb_semcache_hit;

/* hit is borrowed for the call; NULL on a miss, a guard rejection or any failure. */
typedef void (*pb_semcache_fn)(const pb_semcache_hit *hit, void *arg);

/* One per worker; everything borrowed must outlive it. NULL when cache.semantic is off. */
pb_semcache *pb_semcache_new(const pb_config *cfg, struct event_base *base, pb_redis *cmd,
                             pb_http *http);
void pb_semcache_free(pb_semcache *sc);

/* req's query, or NULL when the semantic cache does not apply to it (off, cache "skip", a
 * critical job on a route without semantic_critical, no usable user question). */
pb_semcache_query *pb_semcache_query_new(pb_semcache *sc, const pb_request *req);
/* Drops the chain's hold: a pending lookup never reports; a pending insert still lands. */
void pb_semcache_query_free(pb_semcache_query *q);
/* Looks the question up; fn runs once, from the loop, within timeout_ms. Entries older than
 * max_age_s do not count. */
void pb_semcache_lookup(pb_semcache_query *q, int timeout_ms, int64_t max_age_s, pb_semcache_fn fn,
                        void *arg);
/* Stores content as the answer to q's question (fire and forget). */
void pb_semcache_insert(pb_semcache_query *q, const char *content);
/* Shadow mode: when the last lookup found a would-be hit, counts whether answer agrees with
 * it and samples the pair into <p>:sem:shadow. */
void pb_semcache_shadow_record(pb_semcache_query *q, const char *answer);

/* Pure helpers, exported for tests and the benchmark. */
/* LSH codes of a unit vector: codes[t] for each of PB_SEMCACHE_TABLES tables, and the code
 * with its least certain bit flipped in probes[t]. */
#define PB_SEMCACHE_TABLES 16
#define PB_SEMCACHE_BITS   14
void pb_semcache_codes(const float *v, size_t dim, unsigned *codes, unsigned *probes);

#endif
