/* trace.h -- W3C Trace Context (traceparent, tracestate) and trace/span ids.
 *
 * Pure but for the random ids (seeded from getrandom). A job carries its caller's context as the
 * traceparent and tracestate job fields (or the front door's headers); planb continues that
 * trace, or starts one. https://www.w3.org/TR/trace-context/ */
#ifndef PLANB_TRACE_H
#define PLANB_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PB_TRACEPARENT_LEN    55  /* "00-<32 hex>-<16 hex>-<2 hex>" */
#define PB_TRACESTATE_MAX_LEN 512 /* the spec's bound: 32 list members of 512 bytes in all */

typedef struct pb_trace_ctx {
    uint8_t trace_id[16]; /* never all zero */
    uint8_t span_id[8];   /* the parent's span (the caller's), never all zero */
    bool sampled;         /* trace-flags bit 0: the caller records this trace */
} pb_trace_ctx;

/* Parses a traceparent header value (version 00, or a later version read as 00 when its
 * first 55 characters are 00-shaped, as the spec says); false when malformed (bad length,
 * upper-case or non-hex digits, version ff, an all-zero id). */
bool pb_traceparent_parse(const char *s, size_t len, pb_trace_ctx *out);
/* True when s (len bytes) is a tracestate value planb passes on: at most
 * PB_TRACESTATE_MAX_LEN printable ASCII bytes. */
bool pb_tracestate_ok(const char *s, size_t len);
/* Formats ctx as "00-<trace>-<span>-<flags>" into out. */
void pb_traceparent_format(const pb_trace_ctx *ctx, char out[PB_TRACEPARENT_LEN + 1]);
/* Fills id with n random bytes, never all zero (unique per process, not secret). */
void pb_trace_random_id(uint8_t *id, size_t n);
/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void pb_trace_hex(const uint8_t *id, size_t n, char *out);
/* The TraceIdRatioBased decision: true when the trace id's last 8 bytes, as a number, fall
 * below ratio * 2^64 (so every service sampling at the same ratio keeps the same traces). */
bool pb_trace_ratio_keeps(const uint8_t trace_id[16], double ratio);

#endif
