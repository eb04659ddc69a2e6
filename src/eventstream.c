/* eventstream.c -- AWS event-stream framing (see eventstream.h).
 *
 * The decoder keeps the bytes of one message at a time: first the 12-byte prelude, whose CRC
 * and lengths are checked before anything more is buffered (so a corrupt or hostile length
 * costs no memory), then exactly the rest of that message; only when the message CRC matches
 * are its headers parsed and the callback called. Header names and string values are copied,
 * NUL-terminated, into a scratch area the decoder reuses, so callers get C strings and a
 * stream of messages allocates nothing once warm. CRC32 is zlib's (the IEEE polynomial AWS
 * uses); it detects damage, it is not a signature. */
#include "planb/eventstream.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ES_PRELUDE_BYTES 12 /* total length, headers length, prelude CRC */
#define ES_MIN_BYTES     16 /* prelude and message CRC: an empty message */

enum { ES_ERR = 1 };

struct pb_eventstream_decoder {
    size_t max_bytes;                 /* largest message accepted */
    pb_eventstream_on_message on_msg; /* where complete messages go */
    void *ud;                         /* its argument */
    pb_buf frame;                     /* the current message's bytes so far */
    uint32_t total;                   /* its total length, 0 until the prelude is in */
    uint32_t headers_len;             /* its headers length */
    pb_eventstream_header *hdrs;      /* parsed headers of the message being delivered */
    size_t hdrs_cap;                  /* slots in hdrs */
    char *scratch;                    /* NUL-terminated copies of names and values */
    size_t scratch_cap;               /* bytes in scratch */
    bool failed;                      /* an error happened: input is refused */
};

static uint32_t
es_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
es_get_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void
es_put_be(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = n; i-- > 0; v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint32_t
es_crc(uint32_t crc, const void *p, size_t n)
{
    return (uint32_t)crc32(crc, p, (uInt)n);
}

/* The fixed width of a header value of type t (after the type byte), or 0 for the
 * length-prefixed ones, or -1 for an unknown type. */
static int
es_value_width(uint8_t t)
{
    switch (t) {
    case PB_ES_TRUE:
    case PB_ES_FALSE:
        return 0;
    case PB_ES_BYTE:
        return 1;
    case PB_ES_SHORT:
        return 2;
    case PB_ES_INT:
        return 4;
    case PB_ES_LONG:
    case PB_ES_TIMESTAMP:
        return 8;
    case PB_ES_UUID:
        return 16;
    case PB_ES_BYTES:
    case PB_ES_STRING:
        return 0;
    default:
        return -1;
    }
}

pb_eventstream_decoder *
pb_eventstream_decoder_new(size_t max_message_bytes, pb_eventstream_on_message on_message, void *ud)
{
    pb_eventstream_decoder *d = pb_xcalloc(1, sizeof(*d));
    if (max_message_bytes == 0 || max_message_bytes > PB_EVENTSTREAM_MAX_MESSAGE_BYTES)
        max_message_bytes = PB_EVENTSTREAM_MAX_MESSAGE_BYTES;
    if (max_message_bytes < ES_MIN_BYTES)
        max_message_bytes = ES_MIN_BYTES;
    d->max_bytes = max_message_bytes;
    d->on_msg = on_message;
    d->ud = ud;
    pb_buf_init(&d->frame, max_message_bytes);
    return d;
}

void
pb_eventstream_decoder_free(pb_eventstream_decoder *d)
{
    if (!d)
        return;
    pb_buf_free(&d->frame);
    free(d->hdrs);
    free(d->scratch);
    free(d);
}

size_t
pb_eventstream_pending(const pb_eventstream_decoder *d)
{
    return d->frame.len;
}

/* Copies n bytes into the scratch area at *used, NUL-terminated; returns the copy. The area
 * was sized for the whole header block beforehand, so earlier copies never move. */
static const char *
es_scratch_copy(pb_eventstream_decoder *d, size_t *used, const unsigned char *p, size_t n)
{
    char *s = d->scratch + *used;
    memcpy(s, p, n);
    s[n] = '\0';
    *used += n + 1;
    return s;
}

/* Parses the header block [p, p + len) into d->hdrs; PB_ERR on a header that is empty-named,
 * of an unknown type or runs past the block. */
static int
es_parse_headers(pb_eventstream_decoder *d, const unsigned char *p, size_t len, size_t *count,
                 pb_error *err)
{
    /* Each header takes at least 2 bytes of the block beyond its name and value, and every
     * copy adds one NUL per name and value: twice the block bounds the scratch area. */
    if (d->scratch_cap < 2 * len + 1) {
        free(d->scratch);
        d->scratch_cap = 2 * len + 1;
        d->scratch = pb_xmalloc(d->scratch_cap);
    }
    size_t used = 0, n = 0, off = 0;
    while (off < len) {
        size_t name_len = p[off++];
        if (name_len == 0 || off + name_len + 1 > len) {
            pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM header %zu: empty or truncated name", n);
            return PB_ERR;
        }
        if (n == d->hdrs_cap) {
            d->hdrs_cap = d->hdrs_cap ? d->hdrs_cap * 2 : 8;
            d->hdrs = pb_xrealloc(d->hdrs, d->hdrs_cap * sizeof(*d->hdrs));
        }
        pb_eventstream_header *h = &d->hdrs[n];
        memset(h, 0, sizeof(*h));
        h->name = es_scratch_copy(d, &used, p + off, name_len);
        off += name_len;
        h->type = p[off++];
        int w = es_value_width(h->type);
        if (w < 0) {
            pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM header %s: unknown type %u", h->name,
                         (unsigned)h->type);
            return PB_ERR;
        }
        size_t vlen = (size_t)w;
        if (h->type == PB_ES_BYTES || h->type == PB_ES_STRING) {
            if (off + 2 > len) {
                pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM header %s: truncated length", h->name);
                return PB_ERR;
            }
            vlen = (size_t)es_get_be(p + off, 2);
            off += 2;
        }
        if (off + vlen > len) {
            pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM header %s: truncated value", h->name);
            return PB_ERR;
        }
        switch (h->type) {
        case PB_ES_TRUE:
            h->int_value = 1;
            break;
        case PB_ES_FALSE:
            break;
        case PB_ES_BYTES:
        case PB_ES_STRING:
        case PB_ES_UUID:
            h->value = es_scratch_copy(d, &used, p + off, vlen);
            h->value_len = vlen;
            break;
        default: {
            /* Signed big-endian integers of 1, 2, 4 or 8 bytes. */
            uint64_t v = es_get_be(p + off, vlen);
            if (vlen < 8 && (v >> (vlen * 8 - 1)) & 1)
                v |= ~(uint64_t)0 << (vlen * 8);
            h->int_value = (int64_t)v;
        }
        }
        off += vlen;
        n++;
    }
    *count = n;
    return PB_OK;
}

static const char *
es_string_header(const pb_eventstream_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].type == PB_ES_STRING && !strcmp(h[i].name, name))
            return h[i].value;
    return NULL;
}

/* Checks the prelude once its 12 bytes are in: its CRC, then the lengths against the bounds. */
static int
es_check_prelude(pb_eventstream_decoder *d, pb_error *err)
{
    const unsigned char *p = (const unsigned char *)d->frame.data;
    uint32_t total = es_get32(p), hlen = es_get32(p + 4);
    if (es_crc(0, p, 8) != es_get32(p + 8)) {
        pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM prelude CRC mismatch");
        return PB_ERR;
    }
    if (total < ES_MIN_BYTES || total > d->max_bytes) {
        pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM message length %u outside %d..%zu",
                     (unsigned)total, ES_MIN_BYTES, d->max_bytes);
        return PB_ERR;
    }
    if (hlen > PB_EVENTSTREAM_MAX_HEADERS_BYTES || hlen > total - ES_MIN_BYTES) {
        pb_error_set(err, ES_ERR,
                     "BAD_EVENTSTREAM headers length %u too large for a %u-byte "
                     "message (limit %u)",
                     (unsigned)hlen, (unsigned)total, PB_EVENTSTREAM_MAX_HEADERS_BYTES);
        return PB_ERR;
    }
    d->total = total;
    d->headers_len = hlen;
    return PB_OK;
}

static int
es_deliver(pb_eventstream_decoder *d, pb_error *err)
{
    const unsigned char *p = (const unsigned char *)d->frame.data;
    if (es_crc(0, p, d->total - 4) != es_get32(p + d->total - 4)) {
        pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM message CRC mismatch");
        return PB_ERR;
    }
    size_t n = 0;
    if (es_parse_headers(d, p + ES_PRELUDE_BYTES, d->headers_len, &n, err) != PB_OK)
        return PB_ERR;
    pb_eventstream_message m = {
        .headers = d->hdrs,
        .n_headers = n,
        .message_type = es_string_header(d->hdrs, n, ":message-type"),
        .event_type = es_string_header(d->hdrs, n, ":event-type"),
        .exception_type = es_string_header(d->hdrs, n, ":exception-type"),
        .content_type = es_string_header(d->hdrs, n, ":content-type"),
        .payload = p + ES_PRELUDE_BYTES + d->headers_len,
        .payload_len = d->total - d->headers_len - ES_MIN_BYTES,
    };
    if (d->on_msg && d->on_msg(d->ud, &m) != PB_OK) {
        pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM stopped by the message handler");
        return PB_ERR;
    }
    pb_buf_reset(&d->frame);
    d->total = 0;
    return PB_OK;
}

int
pb_eventstream_feed(pb_eventstream_decoder *d, const void *p, size_t n, pb_error *err)
{
    const unsigned char *in = p;
    if (d->failed) {
        pb_error_set(err, ES_ERR, "BAD_EVENTSTREAM decoder already failed");
        return PB_ERR;
    }
    while (n > 0) {
        size_t need = (d->total ? d->total : ES_PRELUDE_BYTES) - d->frame.len;
        size_t take = n < need ? n : need;
        pb_assert(pb_buf_append(&d->frame, in, take) == PB_OK);
        in += take;
        n -= take;
        if (d->frame.len < (d->total ? d->total : ES_PRELUDE_BYTES))
            break;
        int rc = d->total ? es_deliver(d, err) : es_check_prelude(d, err);
        if (rc != PB_OK) {
            d->failed = true;
            return PB_ERR;
        }
    }
    return PB_OK;
}

int
pb_eventstream_encode(pb_buf *out, const pb_eventstream_header *headers, size_t n_headers,
                      const void *payload, size_t payload_len)
{
    size_t hlen = 0;
    for (size_t i = 0; i < n_headers; i++) {
        const pb_eventstream_header *h = &headers[i];
        size_t name_len = h->name ? strlen(h->name) : 0;
        int w = es_value_width(h->type);
        if (name_len == 0 || name_len > 255 || w < 0)
            return PB_ERR;
        if (h->type == PB_ES_BYTES || h->type == PB_ES_STRING) {
            if (h->value_len > 65535 || (h->value_len && !h->value))
                return PB_ERR;
            w = 2 + (int)h->value_len;
        } else if (h->type == PB_ES_UUID && (h->value_len != 16 || !h->value)) {
            return PB_ERR;
        }
        hlen += 2 + name_len + (size_t)w;
    }
    if (hlen > PB_EVENTSTREAM_MAX_HEADERS_BYTES ||
        payload_len > PB_EVENTSTREAM_MAX_MESSAGE_BYTES - ES_MIN_BYTES - hlen)
        return PB_ERR;
    size_t total = ES_MIN_BYTES + hlen + payload_len;
    if (total > out->limit || out->len > out->limit - total)
        return PB_ERR;
    size_t start = out->len;
    unsigned char pre[ES_PRELUDE_BYTES];
    es_put_be(pre, total, 4);
    es_put_be(pre + 4, hlen, 4);
    es_put_be(pre + 8, es_crc(0, pre, 8), 4);
    pb_buf_append(out, pre, sizeof(pre));
    for (size_t i = 0; i < n_headers; i++) {
        const pb_eventstream_header *h = &headers[i];
        unsigned char b[2 + 255 + 8];
        size_t name_len = strlen(h->name), k = 0;
        b[k++] = (unsigned char)name_len;
        memcpy(b + k, h->name, name_len);
        k += name_len;
        b[k++] = h->type;
        int w = es_value_width(h->type);
        if (h->type == PB_ES_BYTES || h->type == PB_ES_STRING) {
            es_put_be(b + k, h->value_len, 2);
            k += 2;
        } else if (h->type != PB_ES_UUID && w > 0) {
            es_put_be(b + k, (uint64_t)h->int_value, (size_t)w);
            k += (size_t)w;
        }
        pb_buf_append(out, b, k);
        if (h->value_len &&
            (h->type == PB_ES_BYTES || h->type == PB_ES_STRING || h->type == PB_ES_UUID))
            pb_buf_append(out, h->value, h->value_len);
    }
    if (payload_len)
        pb_buf_append(out, payload, payload_len);
    unsigned char crc[4];
    es_put_be(crc, es_crc(0, out->data + start, total - 4), 4);
    pb_buf_append(out, crc, 4);
    pb_assert(!out->overflow && out->len == start + total);
    return PB_OK;
}
