/* breaker.h -- shared per-model circuit breakers, Retry-After holds and rate limits.
 *
 * The state lives in Redis (breaker.lua, ratelimit.lua) so every worker on
 * every host agrees; each worker keeps a short-lived local view so the
 * all-ok path costs no extra round trip: calls are counted locally and added
 * to the shared window by the report each worker sends every 200 ms. Only a
 * half-open probe and a model with rpm/tpm limits ask Redis before an attempt. */
#ifndef PLANB_BREAKER_H
#define PLANB_BREAKER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "planb/config.h"
#include "planb/redis.h"
#include "planb/retry.h"

typedef enum { PB_BREAKER_CLOSED, PB_BREAKER_OPEN, PB_BREAKER_HALF_OPEN } pb_breaker_state;

/* One model's state as last heard from Redis, in this process's monotonic clock. */
typedef struct pb_breaker_view {
    pb_breaker_state state;
    int64_t open_until_mono_ms;    /* open: a probe may start from here; half_open: lease end */
    int64_t not_before_mono_ms;    /* Retry-After hold: no call before this */
    int64_t refused_until_mono_ms; /* refused key: skip the model until this */
    bool refreshing;               /* a "report" is outstanding */
} pb_breaker_view;

typedef enum {
    PB_GATE_PASS,   /* call the model */
    PB_GATE_OPEN,   /* breaker open (or its probes are all taken): skip the model */
    PB_GATE_HOLD,   /* a shared Retry-After holds it: wait or skip */
    PB_GATE_PROBE,  /* open long enough: ask Redis for a probe (pb_breaker_probe) */
    PB_GATE_LIMIT,  /* the model has rpm/tpm: ask Redis for a slot (pb_breaker_acquire) */
    PB_GATE_REFUSED /* its provider refused the key lately: skip the model */
} pb_gate;

/* What an attempt says about the model's health. */
typedef enum {
    PB_VERDICT_OK,   /* a usable answer: a success */
    PB_VERDICT_FAIL, /* the model is failing: transport errors, timeouts, 5xx, 404, bad replies */
    PB_VERDICT_NEUTRAL, /* says nothing about health: 429 (holds handle it), 400, other 4xx */
    PB_VERDICT_REFUSED  /* 401/403: the key is refused; neither success nor failure */
} pb_breaker_verdict;

/* Pure: the verdict on an attempt of class cls with HTTP status (0: no response). */
pb_breaker_verdict pb_breaker_verdict_of(pb_class cls, long status);
/* Pure: what the view allows at now_ms; *wait_ms is set for PB_GATE_HOLD. */
pb_gate pb_breaker_decide(const pb_breaker_view *v, int64_t now_ms, int64_t *wait_ms);
/* Pure: updates v from a breaker.lua reply {state, open_left, not_before_left, granted,
 * refused_left}; returns granted, or -1 when the reply has the wrong shape (v untouched). */
int pb_breaker_apply(pb_breaker_view *v, const redisReply *reply, int64_t now_ms);

typedef struct pb_breaker pb_breaker;
/* Result of a probe or acquire: wait_ms 0 = go; > 0 = refused, the model frees up then;
 * -1 = refused (breaker open, or Redis unreachable). Runs in a Redis reply callback. */
typedef void (*pb_breaker_fn)(int64_t wait_ms, void *arg);

/* Starts the background report/refresh on base; cmd and base are borrowed and outlive it. */
pb_breaker *pb_breaker_new(struct event_base *base, const pb_config *cfg, pb_redis *cmd,
                           const char *worker_id);
void pb_breaker_free(pb_breaker *b);
/* Gate for an attempt on model m, from the local view (no I/O). */
pb_gate pb_breaker_check(pb_breaker *b, int m, int64_t *wait_ms);
/* Half-open probe (fn gets 0 when this caller won one) and rate-limit slot requests. */
void pb_breaker_probe(pb_breaker *b, int m, pb_breaker_fn fn, void *arg);
void pb_breaker_acquire(pb_breaker *b, int m, pb_breaker_fn fn, void *arg);

/* One finished attempt on a model. */
typedef struct pb_breaker_outcome {
    pb_breaker_verdict verdict; /* pb_breaker_verdict_of the attempt */
    long status;                /* HTTP status, 0 when none (for the refused alert) */
    int64_t elapsed_ms;         /* how long it took (slow-call rule) */
    int64_t hold_ms;            /* Retry-After of a 429/503 to share, -1 none */
    long tokens;                /* tokens used (tpm), 0 when unknown */
    bool probe;                 /* it was a half-open probe */
} pb_breaker_outcome;

/* Counts the attempt locally (sent with the next 200 ms report, no round trip of its own);
 * a probe's result, a Retry-After hold and a refused key go to Redis at once. */
void pb_breaker_report(pb_breaker *b, int m, const pb_breaker_outcome *o);

#endif
