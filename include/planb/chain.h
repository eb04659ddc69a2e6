/* chain.h -- one job's run: parse, models in order with retries, degrade, finish.
 *
 * The only module that knows the order of the fallback chain. Each job is a
 * small state machine on the worker's loop with one deadline; the worker
 * hands it raw bytes and hears back when the job is gone. */
#ifndef PLANB_CHAIN_H
#define PLANB_CHAIN_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/breaker.h"
#include "planb/cache.h"
#include "planb/config.h"
#include "planb/http.h"
#include "planb/provider.h"
#include "planb/queue.h"
#include "planb/redis.h"
#include "planb/semcache.h"
#include "planb/telemetry.h"

/* What every job of one worker shares (owned by the worker). */
typedef struct pb_chain_ctx {
    struct event_base *base;
    const pb_config *cfg;
    pb_http *http;
    pb_redis *cmd;       /* commands and scripts */
    pb_breaker *breaker; /* shared breakers and rate limits (NULL: none) */
    pb_cache *cache;     /* answer cache; NULL: none */
    const pb_queue_keys *keys;
    const char *worker_id;            /* "host:pid", shown in results */
    uint64_t rng;                     /* xorshift state for backoff jitter */
    pb_semcache *semcache;            /* NULL when cache.semantic is off */
    pb_telemetry *telemetry;          /* trace exporter; NULL when tracing is off */
    int active;                       /* jobs started and not yet released */
    struct chain_job *jobs;           /* every live job (for pb_chain_abandon_all) */
    struct chain_latency *latency;    /* per model, recent answer times (adaptive hedging) */
    struct chain_cancels *cancels;    /* ids cancelled lately that no live job had (NULL: none) */
    void (*on_released)(void *owner); /* a job finished (or was abandoned) */
    void *owner;
} pb_chain_ctx;

/* Runs one claimed job; takes ownership of raw (malloc'd, len bytes). */
void pb_chain_start(pb_chain_ctx *ctx, char *raw, size_t len);
/* The same for a job claim.lua found cancelled (planb:cancels): it finishes `cancelled` at
 * once, no model called (an unreadable one still finishes invalid). */
void pb_chain_start_cancelled(pb_chain_ctx *ctx, char *raw, size_t len);
/* Frees every live job without finishing it (the worker is exiting and has handed
 * them back), and the latency samples; on_released is not called. */
void pb_chain_abandon_all(pb_chain_ctx *ctx);
/* cancel.lua announced id (planb:cancel): its running calls (and hedge) are aborted at once,
 * timers stopped, no retry or fallback, and it finishes `cancelled` through finish.lua; a job
 * waiting on a Redis answer finishes so at its next step. Returns how many jobs matched. */
size_t pb_chain_cancel(pb_chain_ctx *ctx, const char *id);
/* How many live jobs were claimed as exactly these bytes (reconciling the in-flight list). */
size_t pb_chain_count_raw(const pb_chain_ctx *ctx, const char *raw, size_t len);

/* Pure decisions the state machine is built from (no I/O; unit-tested). */
/* Whether model m may answer req: a critical job refuses tiers above its route's floor. */
bool pb_chain_model_allowed(const pb_config *cfg, const pb_request *req, int m);
/* What a finished HTTP call means: its class, and its attempt outcome ("ok", "http_503",
 * "timeout", "connect_error", "no_response", "tls_error" (a certificate check, a handshake or
 * the server's TLS alert), "transport_error", "too_large", "bad_reply") written to outcome. On
 * PB_CLASS_OK *comp holds the answer (caller frees it either way). */
pb_class pb_chain_classify_reply(const pb_provider_ops *ops, const pb_http_reply *r,
                                 const pb_request *req, pb_completion *comp, char *outcome,
                                 size_t outcome_size);
/* An attempt's total and connect timeouts: the model's, capped by what is left of the job. */
void pb_chain_attempt_timeouts(const pb_model_conf *m, int64_t remaining_ms, int *connect_ms,
                               int *timeout_ms);

#endif
