/* chain.h -- one job's run: parse, models in order with retries, degrade, finish.
 *
 * The only module that knows the order of the fallback chain. Each job is a
 * small state machine on the worker's loop with one deadline; the worker
 * hands it raw bytes and hears back when the job is gone. */
#ifndef PLANB_CHAIN_H
#define PLANB_CHAIN_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/cache.h"
#include "planb/config.h"
#include "planb/http.h"
#include "planb/queue.h"
#include "planb/redis.h"
#include "planb/semcache.h"

/* What every job of one worker shares (owned by the worker). */
typedef struct pb_chain_ctx {
    struct event_base *base;
    const pb_config *cfg;
    pb_http *http;
    pb_redis *cmd;   /* commands and scripts */
    pb_cache *cache; /* answer cache; NULL: none */
    const pb_queue_keys *keys;
    const char *worker_id;            /* "host:pid", shown in results */
    uint64_t rng;                     /* xorshift state for backoff jitter */
    pb_semcache *semcache;            /* NULL when cache.semantic is off */
    int active;                       /* jobs started and not yet released */
    struct chain_job *jobs;           /* every live job (for pb_chain_abandon_all) */
    void (*on_released)(void *owner); /* a job finished (or was abandoned) */
    void *owner;
} pb_chain_ctx;

#define PB_CHAIN_MAX_MODELS 16 /* a chain's length bound (config and job "models") */

/* Runs one claimed job; takes ownership of raw (malloc'd, len bytes). */
void pb_chain_start(pb_chain_ctx *ctx, char *raw, size_t len);
/* Frees every live job without finishing it (the worker is exiting and has handed
 * them back); on_released is not called. */
void pb_chain_abandon_all(pb_chain_ctx *ctx);

#endif
