/* retry.h -- pure retry arithmetic: full-jitter backoff, Retry-After, what to do next.
 *
 * No clock or RNG of its own: callers pass the time and a random draw, so
 * tests are exact. */
#ifndef PLANB_RETRY_H
#define PLANB_RETRY_H

#include <stdint.h>

/* What an attempt's outcome means for the job (DESIGN.md error classes); provider adapters
 * classify replies into these, and the decisions below act on them. */
typedef enum {
    PB_CLASS_OK,       /* a usable completion */
    PB_CLASS_RETRY,    /* transient: retry the same model, then fall back */
    PB_CLASS_FALLBACK, /* this model cannot serve it: next model, no retry */
    PB_CLASS_INVALID   /* the job itself is malformed: stop, result "invalid" */
} pb_class;

typedef enum { PB_NEXT_RETRY, PB_NEXT_FALLBACK, PB_NEXT_INVALID, PB_NEXT_DONE } pb_next;

/* Full jitter (AWS): a delay in [0, min(cap_ms, base_ms * 2^retry_no)], retry_no 0-based,
 * taken from rnd (any uniformly random 64-bit value). */
int64_t pb_retry_backoff_ms(int base_ms, int cap_ms, int retry_no, uint64_t rnd);

/* Parses a Retry-After header value (delta-seconds or an HTTP-date) into a delay
 * from now_wall_ms; -1 when absent or unparsable. Past dates give 0; at most a day. */
int64_t pb_retry_after_ms(const char *value, int64_t now_wall_ms);

typedef struct pb_retry_plan {
    pb_next next;     /* what the chain does */
    int64_t delay_ms; /* wait before the retry (PB_NEXT_RETRY only) */
} pb_retry_plan;

/* Decides after an attempt of class cls: tries_done of this model so far (>= 1),
 * retries allowed, the backoff drawn for this retry, retry_after_ms (-1 if none)
 * and the time left before the job's deadline. A retry whose wait would not
 * leave room for an attempt (min_attempt_ms) before the deadline falls back instead. */
pb_retry_plan pb_retry_decide(pb_class cls, int tries_done, int retries, int64_t backoff_ms,
                              int64_t retry_after_ms, int64_t remaining_ms, int64_t min_attempt_ms);

#endif
