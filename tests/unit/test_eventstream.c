/* test_eventstream.c -- the AWS event-stream decoder and encoder.
 *
 * Known frames: the "positive" and "negative" vectors of AWS's own event-stream test suite as
 * aws-sdk-js-v3 ships them (packages/eventstream-marshaller TestVectors.fixture), decoded
 * whole, at every split into two chunks and byte by byte, and re-encoded byte for byte; then
 * Bedrock-shaped streams made with the encoder, split at every byte boundary; bad CRCs, lengths
 * over the bounds, truncated and malformed headers, and a handler that stops the stream. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "planb/eventstream.h"

/* aws-sdk-js-v3 TestVectors.fixture.ts */
static const unsigned char v_empty[] = {0, 0,   0,  16,  0,   0,   0,   0,
                                        5, 194, 72, 235, 125, 152, 200, 255};
static const unsigned char v_int32[] = {0,   0,  0,   43,  0,   0,   0,   14,  52,  139, 236,
                                        123, 8,  101, 118, 101, 110, 116, 45,  105, 100, 4,
                                        0,   0,  160, 12,  123, 39,  102, 111, 111, 39,  58,
                                        39,  98, 97,  114, 39,  125, 211, 137, 2,   133};
static const unsigned char v_no_headers[] = {0,   0,  0,   29, 0,   0,   0,   0,  253, 82,
                                             140, 90, 123, 39, 102, 111, 111, 39, 58,  39,
                                             98,  97, 114, 39, 125, 195, 101, 57, 54};
static const unsigned char v_one_str[] = {
    0,   0,   0,   61,  0,   0,   0,   32,  7,   253, 131, 150, 12,  99,  111, 110,
    116, 101, 110, 116, 45,  116, 121, 112, 101, 7,   0,   16,  97,  112, 112, 108,
    105, 99,  97,  116, 105, 111, 110, 47,  106, 115, 111, 110, 123, 39,  102, 111,
    111, 39,  58,  39,  98,  97,  114, 39,  125, 141, 156, 8,   177};
static const char foo_bar[] = "{'foo':'bar'}";

/* What the handler saw, copied out (the message is borrowed for the call only). */
typedef struct seen {
    int count;
    char names[16][64];
    char event_type[16][64];
    char message_type[16][64];
    char exception_type[16][64];
    char content_type[16][64];
    char payload[16][256];
    size_t payload_len[16];
    size_t n_headers[16];
    int64_t first_int[16];
    int stop_at; /* return PB_ERR on this message (1-based), 0 = never */
} seen;

static void
copy(char *dst, const char *s)
{
    snprintf(dst, 64, "%s", s ? s : "(null)");
}

static int
on_msg(void *ud, const pb_eventstream_message *m)
{
    seen *s = ud;
    int i = s->count++;
    cr_assert_lt(i, 16);
    copy(s->names[i], m->n_headers ? m->headers[0].name : NULL);
    copy(s->event_type[i], m->event_type);
    copy(s->message_type[i], m->message_type);
    copy(s->exception_type[i], m->exception_type);
    copy(s->content_type[i], m->content_type);
    cr_assert_lt(m->payload_len, sizeof(s->payload[i]));
    memcpy(s->payload[i], m->payload, m->payload_len);
    s->payload[i][m->payload_len] = '\0';
    s->payload_len[i] = m->payload_len;
    s->n_headers[i] = m->n_headers;
    s->first_int[i] = m->n_headers ? m->headers[0].int_value : 0;
    return s->stop_at == s->count ? PB_ERR : PB_OK;
}

/* Decodes p in the chunks that split (a sorted list of cut offsets) makes. */
static int
decode_split(const unsigned char *p, size_t n, const size_t *cuts, size_t n_cuts, seen *s,
             pb_error *err)
{
    pb_eventstream_decoder *d = pb_eventstream_decoder_new(0, on_msg, s);
    size_t at = 0;
    int rc = PB_OK;
    for (size_t i = 0; i <= n_cuts && rc == PB_OK; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        rc = pb_eventstream_feed(d, p + at, end - at, err);
        at = end;
    }
    if (rc == PB_OK)
        cr_expect_eq(pb_eventstream_pending(d), 0);
    pb_eventstream_decoder_free(d);
    return rc;
}

static void
expect_vector(const unsigned char *p, size_t n, size_t n_headers, const char *payload,
              const char *content_type, void (*more)(const seen *))
{
    /* Whole, every two-chunk split, byte by byte. */
    for (size_t cut = 0; cut <= n + 1; cut++) {
        seen s = {0};
        pb_error err = {0};
        size_t cuts[256], nc = 0;
        if (cut <= n) {
            cuts[nc++] = cut;
        } else {
            for (size_t i = 1; i < n; i++)
                cuts[nc++] = i;
        }
        cr_assert_eq(decode_split(p, n, cuts, nc, &s, &err), PB_OK, "cut %zu: %s", cut, err.msg);
        cr_assert_eq(s.count, 1, "cut %zu", cut);
        cr_expect_eq(s.n_headers[0], n_headers);
        cr_expect_eq(s.payload_len[0], strlen(payload));
        cr_expect_str_eq(s.payload[0], payload);
        cr_expect_str_eq(s.content_type[0], content_type);
        if (more)
            more(&s);
    }
}

static void
more_int32(const seen *s)
{
    cr_expect_str_eq(s->names[0], "event-id");
    cr_expect_eq(s->first_int[0], 0xa00c);
}

Test(eventstream, aws_positive_vectors_decode_at_every_split)
{
    expect_vector(v_empty, sizeof(v_empty), 0, "", "(null)", NULL);
    expect_vector(v_int32, sizeof(v_int32), 1, foo_bar, "(null)", more_int32);
    expect_vector(v_no_headers, sizeof(v_no_headers), 0, foo_bar, "(null)", NULL);
    /* content-type without the ':' is not the :content-type header */
    expect_vector(v_one_str, sizeof(v_one_str), 1, foo_bar, "(null)", NULL);
}

Test(eventstream, encoder_reproduces_the_aws_vectors)
{
    pb_buf b;
    pb_buf_init(&b, 1 << 20);
    cr_assert_eq(pb_eventstream_encode(&b, NULL, 0, NULL, 0), PB_OK);
    cr_assert_eq(b.len, sizeof(v_empty));
    cr_expect_eq(memcmp(b.data, v_empty, b.len), 0);
    pb_buf_reset(&b);
    cr_assert_eq(pb_eventstream_encode(&b, NULL, 0, foo_bar, 13), PB_OK);
    cr_assert_eq(b.len, sizeof(v_no_headers));
    cr_expect_eq(memcmp(b.data, v_no_headers, b.len), 0);
    pb_buf_reset(&b);
    pb_eventstream_header i32 = {.name = "event-id", .type = PB_ES_INT, .int_value = 0xa00c};
    cr_assert_eq(pb_eventstream_encode(&b, &i32, 1, foo_bar, 13), PB_OK);
    cr_assert_eq(b.len, sizeof(v_int32));
    cr_expect_eq(memcmp(b.data, v_int32, b.len), 0);
    pb_buf_reset(&b);
    pb_eventstream_header str = {
        .name = "content-type", .type = PB_ES_STRING, .value = "application/json", .value_len = 16};
    cr_assert_eq(pb_eventstream_encode(&b, &str, 1, foo_bar, 13), PB_OK);
    cr_assert_eq(b.len, sizeof(v_one_str));
    cr_expect_eq(memcmp(b.data, v_one_str, b.len), 0);
    pb_buf_free(&b);
}

static void
expect_refused(const unsigned char *p, size_t n, const char *what)
{
    seen s = {0};
    pb_error err = {0};
    cr_expect_eq(decode_split(p, n, NULL, 0, &s, &err), PB_ERR, "%s", what);
    cr_expect_eq(s.count, 0, "%s", what);
    cr_expect_not_null(strstr(err.msg, what), "%s: %s", what, err.msg);
}

Test(eventstream, aws_negative_vectors_are_refused)
{
    unsigned char b[sizeof(v_one_str)];
    memcpy(b, v_one_str, sizeof(b));
    b[20] = 43; /* corrupted_headers: "content+type" */
    expect_refused(b, sizeof(b), "message CRC");
    memcpy(b, v_one_str, sizeof(b));
    b[6] = 1; /* corrupted_header_len */
    expect_refused(b, sizeof(b), "prelude CRC");
    unsigned char c[sizeof(v_no_headers)];
    memcpy(c, v_no_headers, sizeof(c));
    c[0] = 1; /* corrupted_length */
    expect_refused(c, sizeof(c), "prelude CRC");
    memcpy(c, v_no_headers, sizeof(c));
    c[24] = 141; /* corrupted_payload */
    expect_refused(c, sizeof(c), "message CRC");
    memcpy(c, v_no_headers, sizeof(c));
    c[28] ^= 1; /* the message CRC itself */
    expect_refused(c, sizeof(c), "message CRC");
}

/* A Bedrock ConverseStream-shaped event (event type, JSON payload). */
static void
put_event(pb_buf *b, const char *event_type, const char *json)
{
    pb_eventstream_header h[] = {
        {.name = ":event-type",
         .type = PB_ES_STRING,
         .value = event_type,
         .value_len = strlen(event_type)},
        {.name = ":content-type",
         .type = PB_ES_STRING,
         .value = "application/json",
         .value_len = 16},
        {.name = ":message-type", .type = PB_ES_STRING, .value = "event", .value_len = 5},
    };
    cr_assert_eq(pb_eventstream_encode(b, h, 3, json, strlen(json)), PB_OK);
}

Test(eventstream, bedrock_stream_splits_at_every_byte_boundary)
{
    pb_buf b;
    pb_buf_init(&b, 1 << 20);
    put_event(&b, "messageStart", "{\"role\":\"assistant\"}");
    put_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hel\"}}");
    put_event(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"lo\"}}");
    put_event(&b, "messageStop", "{\"stopReason\":\"end_turn\"}");
    pb_eventstream_header ex[] = {
        {.name = ":exception-type",
         .type = PB_ES_STRING,
         .value = "throttlingException",
         .value_len = 19},
        {.name = ":message-type", .type = PB_ES_STRING, .value = "exception", .value_len = 9},
    };
    const char *exj = "{\"message\":\"slow down\"}";
    cr_assert_eq(pb_eventstream_encode(&b, ex, 2, exj, strlen(exj)), PB_OK);
    for (size_t cut = 0; cut <= b.len; cut++) {
        for (size_t cut2 = cut; cut2 <= b.len; cut2 += 37) {
            size_t cuts[] = {cut, cut2};
            seen s = {0};
            pb_error err = {0};
            cr_assert_eq(decode_split((const unsigned char *)b.data, b.len, cuts, 2, &s, &err),
                         PB_OK, "%zu/%zu: %s", cut, cut2, err.msg);
            cr_assert_eq(s.count, 5);
            cr_expect_str_eq(s.event_type[0], "messageStart");
            cr_expect_str_eq(s.event_type[1], "contentBlockDelta");
            cr_expect_str_eq(s.payload[2], "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"lo\"}}");
            cr_expect_str_eq(s.event_type[3], "messageStop");
            cr_expect_str_eq(s.message_type[3], "event");
            cr_expect_str_eq(s.content_type[3], "application/json");
            cr_expect_str_eq(s.message_type[4], "exception");
            cr_expect_str_eq(s.exception_type[4], "throttlingException");
            cr_expect_str_eq(s.event_type[4], "(null)");
            cr_expect_str_eq(s.payload[4], exj);
        }
    }
    pb_buf_free(&b);
}

static const pb_eventstream_header *all_hdrs;
static size_t all_n;

static int
on_all(void *ud, const pb_eventstream_message *m)
{
    (void)ud;
    cr_assert_eq(m->n_headers, all_n);
    for (size_t i = 0; i < all_n; i++) {
        cr_expect_str_eq(m->headers[i].name, all_hdrs[i].name);
        cr_expect_eq(m->headers[i].type, all_hdrs[i].type);
        cr_expect_eq(m->headers[i].int_value, all_hdrs[i].int_value, "%s", all_hdrs[i].name);
        cr_expect_eq(m->headers[i].value_len, all_hdrs[i].value_len, "%s", all_hdrs[i].name);
        if (all_hdrs[i].value_len)
            cr_expect_eq(memcmp(m->headers[i].value, all_hdrs[i].value, all_hdrs[i].value_len), 0);
    }
    return PB_OK;
}

Test(eventstream, every_header_type_round_trips)
{
    static const pb_eventstream_header h[] = {
        {.name = "t", .type = PB_ES_TRUE, .int_value = 1},
        {.name = "f", .type = PB_ES_FALSE},
        {.name = "byte", .type = PB_ES_BYTE, .int_value = -2},
        {.name = "short", .type = PB_ES_SHORT, .int_value = -300},
        {.name = "int", .type = PB_ES_INT, .int_value = -70000},
        {.name = "long", .type = PB_ES_LONG, .int_value = -5000000000LL},
        {.name = "bytes", .type = PB_ES_BYTES, .value = "a\0b", .value_len = 3},
        {.name = "empty", .type = PB_ES_STRING, .value = "", .value_len = 0},
        {.name = "time", .type = PB_ES_TIMESTAMP, .int_value = 1718884800000LL},
        {.name = "uuid", .type = PB_ES_UUID, .value = "0123456789abcdef", .value_len = 16},
    };
    all_hdrs = h;
    all_n = sizeof(h) / sizeof(h[0]);
    pb_buf b;
    pb_buf_init(&b, 4096);
    cr_assert_eq(pb_eventstream_encode(&b, h, all_n, "x", 1), PB_OK);
    pb_eventstream_decoder *d = pb_eventstream_decoder_new(0, on_all, NULL);
    pb_error err = {0};
    cr_expect_eq(pb_eventstream_feed(d, b.data, b.len, &err), PB_OK, "%s", err.msg);
    pb_eventstream_decoder_free(d);
    pb_buf_free(&b);
}

/* A frame with any prelude lengths and header bytes, both CRCs right. */
static size_t
raw_frame(unsigned char *out, uint32_t total, uint32_t hlen, const void *body, size_t body_len)
{
    unsigned char *p = out;
    uint32_t v[2] = {total, hlen};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++)
            *p++ = (unsigned char)(v[i] >> (24 - 8 * k));
    uint32_t c = (uint32_t)crc32(0, out, 8);
    for (int k = 0; k < 4; k++)
        *p++ = (unsigned char)(c >> (24 - 8 * k));
    memcpy(p, body, body_len);
    p += body_len;
    c = (uint32_t)crc32(0, out, (uInt)(p - out));
    for (int k = 0; k < 4; k++)
        *p++ = (unsigned char)(c >> (24 - 8 * k));
    return (size_t)(p - out);
}

Test(eventstream, lengths_over_the_bounds_are_refused_from_the_prelude)
{
    unsigned char f[64];
    /* 17 MiB total: refused after the 12 prelude bytes, nothing more buffered. */
    raw_frame(f, 17u << 20, 0, "", 0);
    seen s = {0};
    pb_error err = {0};
    pb_eventstream_decoder *d = pb_eventstream_decoder_new(0, on_msg, &s);
    cr_expect_eq(pb_eventstream_feed(d, f, 12, &err), PB_ERR);
    cr_expect_not_null(strstr(err.msg, "message length"), "%s", err.msg);
    cr_expect_eq(pb_eventstream_feed(d, f, 1, &err), PB_ERR, "a failed decoder stays failed");
    pb_eventstream_decoder_free(d);
    raw_frame(f, 16u << 20, (128u << 10) + 1, "", 0);
    expect_refused(f, 12, "headers length");
    raw_frame(f, 20, 5, "abcd", 4); /* headers longer than the room for them */
    expect_refused(f, 20, "headers length");
    raw_frame(f, 15, 0, "", 0);
    expect_refused(f, 12, "message length");
    /* A smaller bound of the caller's own. */
    size_t n = raw_frame(f, 16 + 40, 0, "0123456789012345678901234567890123456789", 40);
    d = pb_eventstream_decoder_new(32, on_msg, &s);
    cr_expect_eq(pb_eventstream_feed(d, f, n, &err), PB_ERR);
    pb_eventstream_decoder_free(d);
    d = pb_eventstream_decoder_new(56, on_msg, &s);
    cr_expect_eq(pb_eventstream_feed(d, f, n, &err), PB_OK, "%s", err.msg);
    cr_expect_eq(s.count, 1);
    pb_eventstream_decoder_free(d);
}

Test(eventstream, malformed_headers_are_refused)
{
    unsigned char f[64];
    struct {
        const char *hdr;
        size_t len;
        const char *why;
    } bad[] = {
        {"\x00\x07", 2, "empty or truncated name"},
        {"\x05"
         "ab",
         3, "empty or truncated name"},
        {"\x01"
         "a\x07\x00",
         4, "truncated length"},
        {"\x01"
         "a\x07\x00\x09xy",
         7, "truncated value"},
        {"\x01"
         "a\x04\x00\x00",
         5, "truncated value"},
        {"\x01"
         "a\x0a",
         3, "unknown type"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n =
            raw_frame(f, (uint32_t)(16 + bad[i].len), (uint32_t)bad[i].len, bad[i].hdr, bad[i].len);
        expect_refused(f, n, bad[i].why);
    }
}

Test(eventstream, truncated_stream_leaves_bytes_pending)
{
    seen s = {0};
    pb_error err = {0};
    pb_eventstream_decoder *d = pb_eventstream_decoder_new(0, on_msg, &s);
    cr_expect_eq(pb_eventstream_feed(d, v_one_str, sizeof(v_one_str) - 1, &err), PB_OK);
    cr_expect_eq(s.count, 0);
    cr_expect_eq(pb_eventstream_pending(d), sizeof(v_one_str) - 1);
    cr_expect_eq(pb_eventstream_feed(d, v_one_str + sizeof(v_one_str) - 1, 1, &err), PB_OK);
    cr_expect_eq(s.count, 1);
    cr_expect_eq(pb_eventstream_pending(d), 0);
    pb_eventstream_decoder_free(d);
    pb_eventstream_decoder_free(NULL);
}

Test(eventstream, handler_can_stop_the_stream)
{
    unsigned char two[sizeof(v_empty) * 2];
    memcpy(two, v_empty, sizeof(v_empty));
    memcpy(two + sizeof(v_empty), v_empty, sizeof(v_empty));
    seen s = {.stop_at = 1};
    pb_error err = {0};
    cr_expect_eq(decode_split(two, sizeof(two), NULL, 0, &s, &err), PB_ERR);
    cr_expect_eq(s.count, 1);
    cr_expect_not_null(strstr(err.msg, "stopped"));
}

Test(eventstream, encoder_refuses_what_the_wire_cannot_carry)
{
    pb_buf b;
    pb_buf_init(&b, 1 << 20);
    char name[257];
    memset(name, 'n', 256);
    name[256] = '\0';
    char *big = calloc(1, 65536);
    pb_eventstream_header h[] = {
        {.name = "", .type = PB_ES_TRUE},
        {.name = name, .type = PB_ES_TRUE},
        {.name = "v", .type = PB_ES_STRING, .value = big, .value_len = 65536},
        {.name = "t", .type = 10},
        {.name = "u", .type = PB_ES_UUID, .value = "short", .value_len = 5},
    };
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        cr_expect_eq(pb_eventstream_encode(&b, &h[i], 1, NULL, 0), PB_ERR, "%zu", i);
        cr_expect_eq(b.len, 0);
    }
    name[255] = '\0';
    pb_eventstream_header ok = {
        .name = name, .type = PB_ES_STRING, .value = big, .value_len = 65535};
    cr_expect_eq(pb_eventstream_encode(&b, &ok, 1, NULL, 0), PB_OK);
    pb_buf small;
    pb_buf_init(&small, 20);
    cr_expect_eq(pb_eventstream_encode(&small, NULL, 0, "12345", 5), PB_ERR);
    cr_expect_eq(small.len, 0);
    cr_expect_eq(pb_eventstream_encode(&small, NULL, 0, "1234", 4), PB_OK);
    cr_expect_eq(small.len, 20);
    free(big);
    pb_buf_free(&b);
    pb_buf_free(&small);
}
