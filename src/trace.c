/* trace.c -- W3C Trace Context parsing and formatting, random trace and span ids.
 *
 * A traceparent is version-traceid-parentid-flags in lower-case hex; planb only reads it
 * (a malformed one is ignored, never a refused job) and writes its own children's. */
#include "planb/trace.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "planb/core.h"
#include "planb/hash.h"

static int
trace_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is invalid too: the spec says lower-case hex */
}

/* n bytes from 2n hex characters at s; false on a bad digit. */
static bool
trace_unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = trace_nibble(s[2 * i]), lo = trace_nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool
trace_is_zero(const uint8_t *id, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (id[i] != 0)
            return false;
    return true;
}

bool
pb_traceparent_parse(const char *s, size_t len, pb_trace_ctx *out)
{
    uint8_t version, flags;
    memset(out, 0, sizeof(*out));
    if (s == NULL || len < PB_TRACEPARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-' ||
        !trace_unhex(s, &version, 1) || version == 0xff)
        return false;
    /* Version 00 is exactly 55 characters; a later one may add fields after a '-'. */
    if ((version == 0 && len != PB_TRACEPARENT_LEN) ||
        (version != 0 && len > PB_TRACEPARENT_LEN && s[PB_TRACEPARENT_LEN] != '-'))
        return false;
    if (!trace_unhex(s + 3, out->trace_id, 16) || !trace_unhex(s + 36, out->span_id, 8) ||
        !trace_unhex(s + 53, &flags, 1) || trace_is_zero(out->trace_id, 16) ||
        trace_is_zero(out->span_id, 8)) {
        memset(out, 0, sizeof(*out));
        return false;
    }
    out->sampled = (flags & 1) != 0;
    return true;
}

bool
pb_tracestate_ok(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > PB_TRACESTATE_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

void
pb_trace_hex(const uint8_t *id, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[2 * n] = '\0';
}

void
pb_traceparent_format(const pb_trace_ctx *ctx, char out[PB_TRACEPARENT_LEN + 1])
{
    char t[33], p[17];
    pb_trace_hex(ctx->trace_id, 16, t);
    pb_trace_hex(ctx->span_id, 8, p);
    snprintf(out, PB_TRACEPARENT_LEN + 1, "00-%s-%s-%02x", t, p, ctx->sampled ? 1 : 0);
}

/* Ids need to be unique, not secret: a splitmix64 stream seeded from getrandom once per
 * process (a system call per span cost a fifth of building it). A new pid (a fork) seeds
 * again, so two workers never share the stream. */
void
pb_trace_random_id(uint8_t *id, size_t n)
{
    static uint64_t state;
    static pid_t owner;
    if (owner != getpid()) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
            seed = (uint64_t)pb_wall_us() ^ ((uint64_t)getpid() << 32);
        state = seed;
        owner = getpid();
    }
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = pb_hash_splitmix64(&state);
            memcpy(id + i, &r, n - i < 8 ? n - i : 8);
        }
    } while (trace_is_zero(id, n));
}

bool
pb_trace_ratio_keeps(const uint8_t trace_id[16], double ratio)
{
    if (ratio >= 1.0)
        return true;
    if (ratio <= 0.0)
        return false;
    uint64_t v = 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | trace_id[i];
    return (double)v < ratio * 18446744073709551616.0;
}
