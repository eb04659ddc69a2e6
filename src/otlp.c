/* otlp.c -- spans written straight into OTLP/HTTP's JSON or protobuf encoding.
 *
 * JSON follows the OTLP/HTTP JSON rules (https://opentelemetry.io/docs/specs/otlp/):
 * lowerCamelCase names, trace and span ids as lower-case hex (not base64), enums as numbers,
 * 64-bit integers as decimal strings. Protobuf is opentelemetry-proto's trace/v1 and common/v1
 * messages, field numbers written out below; a message's fields may come in any order and
 * its repeated fields apart, which is what lets a span be written piece by piece (the
 * attributes and events are kept apart and put together by pb_span_finish). Only what planb
 * sets is encoded: ids, trace state, name, kind, times, attributes of string, bool, int,
 * double and string-array values, events with one attribute, status. */
#include "planb/otlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/trace.h"
#include "planb/utf8.h"

/* Protobuf wire types. */
enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2 };

struct pb_span {
    bool protobuf;
    pb_buf head;         /* ids, name, kind, times (and trace state) */
    pb_otlp_attrs attrs; /* the span's attributes */
    pb_buf events;       /* its events, encoded */
    size_t n_events;
    pb_buf status; /* the status field, encoded (empty: none) */
};

/* ------------------------------------------------------------ writers */

static void
pbw_varint(pb_buf *b, uint64_t v)
{
    unsigned char out[10];
    size_t n = 0;
    do {
        out[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            out[n] |= 0x80;
        n++;
    } while (v != 0);
    pb_buf_append(b, out, n);
}

static void
pbw_tag(pb_buf *b, int field, int wire)
{
    pbw_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

static void
pbw_bytes(pb_buf *b, int field, const void *p, size_t n)
{
    pbw_tag(b, field, WIRE_LEN);
    pbw_varint(b, n);
    pb_buf_append(b, p, n);
}

static void
pbw_str(pb_buf *b, int field, const char *s)
{
    pbw_bytes(b, field, s, strlen(s));
}

static void
pbw_fixed64(pb_buf *b, int field, uint64_t v)
{
    unsigned char out[8];
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (8 * i));
    pbw_tag(b, field, WIRE_I64);
    pb_buf_append(b, out, 8);
}

static void
pbw_sub(pb_buf *b, int field, const pb_buf *sub)
{
    pbw_bytes(b, field, sub->data != NULL ? sub->data : "", sub->len);
}

static void
jw_lit(pb_buf *b, const char *s)
{
    pb_buf_append(b, s, strlen(s));
}

/* A JSON string of the n bytes at s: quotes, backslashes and control characters escaped, a
 * byte that does not start valid UTF-8 replaced by U+FFFD (a span must parse). */
static void
jw_strn(pb_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    pb_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        pb_buf_append(b, s + i, run - i);
        if ((i = run) == n)
            break;
        if (p[i] >= 0x80) {
            size_t k = pb_utf8_seq_len(p + i, n - i);
            pb_buf_append(b, k ? s + i : "\xEF\xBF\xBD", k ? k : 3);
            i += k ? k : 1;
            continue;
        }
        char esc[6] = {'\\', (char)p[i], 0, 0, 0, 0};
        size_t len = 2;
        if (p[i] < 0x20) {
            esc[1] = 'u';
            esc[2] = esc[3] = '0';
            esc[4] = hex[p[i] >> 4];
            esc[5] = hex[p[i] & 15];
            len = 6;
        }
        pb_buf_append(b, esc, len);
        i++;
    }
    pb_buf_append(b, "\"", 1);
}

static void
jw_str(pb_buf *b, const char *s)
{
    jw_strn(b, s, strlen(s));
}

static void
jw_i64(pb_buf *b, int64_t v, bool quoted)
{
    char s[24];
    int n = snprintf(s, sizeof(s), quoted ? "\"%lld\"" : "%lld", (long long)v);
    pb_buf_append(b, s, (size_t)n);
}

static void
jw_hex(pb_buf *b, const uint8_t *id, size_t n)
{
    char s[40];
    s[0] = '"';
    pb_trace_hex(id, n, s + 1);
    s[2 * n + 1] = '"';
    pb_buf_append(b, s, 2 * n + 2);
}

/* ------------------------------------------------------------ attributes */

void
pb_otlp_attrs_init(pb_otlp_attrs *a, bool protobuf)
{
    pb_buf_init(&a->buf, SIZE_MAX);
    a->protobuf = protobuf;
    a->n = 0;
}

void
pb_otlp_attrs_free(pb_otlp_attrs *a)
{
    pb_buf_free(&a->buf);
}

/* One AnyValue of a kind (protobuf field 1 string, 2 bool, 3 int, 4 double; JSON the
 * stringValue, boolValue, intValue, doubleValue member) into b. */
typedef struct otlp_value {
    int kind;      /* 1..4 as the protobuf fields */
    const char *s; /* kind 1 */
    size_t n;      /* kind 1 */
    int64_t i;     /* kinds 2, 3 */
    double d;      /* kind 4 */
} otlp_value;

static void
otlp_any(pb_buf *b, bool protobuf, const otlp_value *v)
{
    if (protobuf) {
        switch (v->kind) {
        case 1:
            pbw_bytes(b, 1, v->s, v->n);
            break;
        case 2:
        case 3:
            pbw_tag(b, v->kind, WIRE_VARINT);
            pbw_varint(b, (uint64_t)v->i);
            break;
        default: {
            uint64_t bits;
            memcpy(&bits, &v->d, sizeof(bits));
            pbw_fixed64(b, 4, bits);
        }
        }
        return;
    }
    switch (v->kind) {
    case 1:
        jw_lit(b, "{\"stringValue\":");
        jw_strn(b, v->s, v->n);
        break;
    case 2:
        jw_lit(b, v->i ? "{\"boolValue\":true" : "{\"boolValue\":false");
        break;
    case 3:
        jw_lit(b, "{\"intValue\":");
        jw_i64(b, v->i, true);
        break;
    default: {
        char s[40];
        int n = snprintf(s, sizeof(s), "{\"doubleValue\":%.17g", v->d);
        pb_buf_append(b, s, (size_t)n);
    }
    }
    pb_buf_append(b, "}", 1);
}

/* A KeyValue: JSON {"key", "value"} after a comma when not the first; protobuf the message
 * length-prefixed, without a tag (its container's field number is put on at the end). */
static void
otlp_kv(pb_otlp_attrs *a, const char *key, const otlp_value *vals, size_t n_vals, bool array)
{
    pb_buf *b = &a->buf;
    if (a->protobuf) {
        pb_buf kv, any, arr;
        pb_buf_init(&kv, SIZE_MAX);
        pb_buf_init(&any, SIZE_MAX);
        pb_buf_init(&arr, SIZE_MAX);
        pbw_str(&kv, 1, key);
        for (size_t i = 0; i < n_vals; i++) {
            otlp_any(&any, true, &vals[i]);
            if (array) { /* ArrayValue.values: field 1 */
                pbw_sub(&arr, 1, &any);
                any.len = 0;
            }
        }
        if (array)
            pbw_bytes(&any, 5, arr.data ? arr.data : "", arr.len); /* AnyValue.array_value */
        pbw_sub(&kv, 2, &any);
        pbw_varint(b, kv.len);
        pb_buf_append(b, kv.data, kv.len);
        pb_buf_free(&kv);
        pb_buf_free(&any);
        pb_buf_free(&arr);
    } else {
        if (a->n > 0)
            pb_buf_append(b, ",", 1);
        jw_lit(b, "{\"key\":");
        jw_str(b, key);
        jw_lit(b, ",\"value\":");
        if (array)
            jw_lit(b, "{\"arrayValue\":{\"values\":[");
        for (size_t i = 0; i < n_vals; i++) {
            if (i > 0)
                pb_buf_append(b, ",", 1);
            otlp_any(b, false, &vals[i]);
        }
        if (array)
            jw_lit(b, "]}}");
        pb_buf_append(b, "}", 1);
    }
    a->n++;
}

void
pb_otlp_strn(pb_otlp_attrs *a, const char *key, const char *v, size_t n)
{
    if (v != NULL)
        otlp_kv(a, key, &(otlp_value){.kind = 1, .s = v, .n = n}, 1, false);
}

void
pb_otlp_str(pb_otlp_attrs *a, const char *key, const char *v)
{
    if (v != NULL)
        pb_otlp_strn(a, key, v, strlen(v));
}

void
pb_otlp_int(pb_otlp_attrs *a, const char *key, int64_t v)
{
    otlp_kv(a, key, &(otlp_value){.kind = 3, .i = v}, 1, false);
}

void
pb_otlp_double(pb_otlp_attrs *a, const char *key, double v)
{
    otlp_kv(a, key, &(otlp_value){.kind = 4, .d = v}, 1, false);
}

void
pb_otlp_bool(pb_otlp_attrs *a, const char *key, bool v)
{
    otlp_kv(a, key, &(otlp_value){.kind = 2, .i = v}, 1, false);
}

void
pb_otlp_strs(pb_otlp_attrs *a, const char *key, const char *const *v, size_t n)
{
    otlp_value vals[16];
    size_t k = n < 16 ? n : 16;
    for (size_t i = 0; i < k; i++)
        vals[i] = (otlp_value){.kind = 1, .s = v[i], .n = strlen(v[i])};
    otlp_kv(a, key, vals, k, true);
}

/* The attributes as their container's field: protobuf field `field` once per KeyValue, JSON
 * `"attributes":[...]`. */
static void
otlp_put_attrs(pb_buf *b, const pb_otlp_attrs *a, int field)
{
    if (!a->protobuf) {
        jw_lit(b, "\"attributes\":[");
        pb_buf_append(b, a->buf.data ? a->buf.data : "", a->buf.len);
        pb_buf_append(b, "]", 1);
        return;
    }
    const unsigned char *p = (const unsigned char *)a->buf.data, *end = p + a->buf.len;
    while (p < end) { /* each record: varint length, KeyValue bytes */
        const unsigned char *start = p;
        uint64_t len = 0;
        for (int shift = 0; p < end; shift += 7) {
            len |= (uint64_t)(*p & 0x7f) << shift;
            if (!(*p++ & 0x80))
                break;
        }
        pbw_tag(b, field, WIRE_LEN);
        pb_buf_append(b, start, (size_t)(p - start) + (size_t)len);
        p += len;
    }
}

/* ------------------------------------------------------------ spans */

pb_span *
pb_span_new(bool protobuf, const uint8_t trace_id[16], const uint8_t span_id[8],
            const uint8_t *parent, const char *name, int kind, int64_t start_ns, int64_t end_ns)
{
    pb_span *s = pb_xcalloc(1, sizeof(*s));
    s->protobuf = protobuf;
    pb_buf_init(&s->head, SIZE_MAX);
    pb_buf_init(&s->events, SIZE_MAX);
    pb_buf_init(&s->status, SIZE_MAX);
    pb_otlp_attrs_init(&s->attrs, protobuf);
    if (start_ns < 0)
        start_ns = 0;
    if (end_ns < start_ns)
        end_ns = start_ns;
    pb_buf *b = &s->head;
    if (protobuf) { /* Span: trace_id 1, span_id 2, parent 4, name 5, kind 6, start 7, end 8 */
        pbw_bytes(b, 1, trace_id, 16);
        pbw_bytes(b, 2, span_id, 8);
        if (parent != NULL)
            pbw_bytes(b, 4, parent, 8);
        pbw_str(b, 5, name);
        pbw_tag(b, 6, WIRE_VARINT);
        pbw_varint(b, (uint64_t)kind);
        pbw_fixed64(b, 7, (uint64_t)start_ns);
        pbw_fixed64(b, 8, (uint64_t)end_ns);
        return s;
    }
    jw_lit(b, "{\"traceId\":");
    jw_hex(b, trace_id, 16);
    jw_lit(b, ",\"spanId\":");
    jw_hex(b, span_id, 8);
    if (parent != NULL) {
        jw_lit(b, ",\"parentSpanId\":");
        jw_hex(b, parent, 8);
    }
    jw_lit(b, ",\"name\":");
    jw_str(b, name);
    jw_lit(b, ",\"kind\":");
    jw_i64(b, kind, false);
    jw_lit(b, ",\"startTimeUnixNano\":");
    jw_i64(b, start_ns, true);
    jw_lit(b, ",\"endTimeUnixNano\":");
    jw_i64(b, end_ns, true);
    return s;
}

void
pb_span_free(pb_span *s)
{
    if (s == NULL)
        return;
    pb_buf_free(&s->head);
    pb_buf_free(&s->events);
    pb_buf_free(&s->status);
    pb_otlp_attrs_free(&s->attrs);
    free(s);
}

pb_otlp_attrs *
pb_span_attrs(pb_span *s)
{
    return &s->attrs;
}

/* Event: time_unix_nano 1, name 2, attributes 3. */
void
pb_span_event(pb_span *s, const char *name, int64_t t_ns, const char *key, const char *text,
              int64_t value)
{
    pb_otlp_attrs a;
    pb_otlp_attrs_init(&a, s->protobuf);
    if (key != NULL && text != NULL)
        pb_otlp_str(&a, key, text);
    else if (key != NULL)
        pb_otlp_int(&a, key, value);
    if (s->protobuf) {
        pb_buf e;
        pb_buf_init(&e, SIZE_MAX);
        pbw_fixed64(&e, 1, (uint64_t)(t_ns > 0 ? t_ns : 0));
        pbw_str(&e, 2, name);
        otlp_put_attrs(&e, &a, 3);
        pbw_sub(&s->events, 11, &e);
        pb_buf_free(&e);
    } else {
        pb_buf *b = &s->events;
        if (s->n_events > 0)
            pb_buf_append(b, ",", 1);
        jw_lit(b, "{\"timeUnixNano\":");
        jw_i64(b, t_ns > 0 ? t_ns : 0, true);
        jw_lit(b, ",\"name\":");
        jw_str(b, name);
        pb_buf_append(b, ",", 1);
        otlp_put_attrs(b, &a, 3);
        pb_buf_append(b, "}", 1);
    }
    s->n_events++;
    pb_otlp_attrs_free(&a);
}

/* Status (field 15): message 2, code 3 (1 OK, 2 ERROR). */
void
pb_span_status(pb_span *s, bool error, const char *message)
{
    pb_buf *b = &s->status;
    b->len = 0;
    if (s->protobuf) {
        pb_buf st;
        pb_buf_init(&st, SIZE_MAX);
        if (error && message != NULL)
            pbw_str(&st, 2, message);
        pbw_tag(&st, 3, WIRE_VARINT);
        pbw_varint(&st, error ? 2 : 1);
        pbw_sub(b, 15, &st);
        pb_buf_free(&st);
        return;
    }
    jw_lit(b, error ? ",\"status\":{\"code\":2" : ",\"status\":{\"code\":1");
    if (error && message != NULL) {
        jw_lit(b, ",\"message\":");
        jw_str(b, message);
    }
    pb_buf_append(b, "}", 1);
}

/* trace_state: field 3. */
void
pb_span_tracestate(pb_span *s, const char *tracestate)
{
    if (tracestate == NULL)
        return;
    if (s->protobuf) {
        pbw_str(&s->head, 3, tracestate);
        return;
    }
    jw_lit(&s->head, ",\"traceState\":");
    jw_str(&s->head, tracestate);
}

/* Span attributes: field 9; events: field 11 (already tagged). */
char *
pb_span_finish(pb_span *s, size_t *len)
{
    pb_buf out = s->head;
    s->head.data = NULL;
    if (!s->protobuf)
        pb_buf_append(&out, ",", 1);
    otlp_put_attrs(&out, &s->attrs, 9);
    if (!s->protobuf && s->n_events > 0)
        jw_lit(&out, ",\"events\":[");
    pb_buf_append(&out, s->events.data ? s->events.data : "", s->events.len);
    if (!s->protobuf && s->n_events > 0)
        pb_buf_append(&out, "]", 1);
    pb_buf_append(&out, s->status.data ? s->status.data : "", s->status.len);
    if (!s->protobuf)
        pb_buf_append(&out, "}", 1);
    pb_span_free(s);
    *len = out.len;
    return out.data != NULL ? out.data : pb_xstrdup("");
}

/* ExportTraceServiceRequest: resource_spans 1. ResourceSpans: resource 1 (Resource:
 * attributes 1), scope_spans 2. ScopeSpans: scope 1 (InstrumentationScope: name 1,
 * version 2), spans 2. */
char *
pb_otlp_request(bool protobuf, const pb_otlp_attrs *resource, const char *scope_name,
                const char *scope_version, const pb_otlp_piece *spans, size_t n, size_t *len)
{
    pb_buf out;
    pb_buf_init(&out, SIZE_MAX);
    if (protobuf) {
        pb_buf rs, sub, ss;
        pb_buf_init(&rs, SIZE_MAX);
        pb_buf_init(&sub, SIZE_MAX);
        pb_buf_init(&ss, SIZE_MAX);
        otlp_put_attrs(&sub, resource, 1);
        pbw_sub(&rs, 1, &sub);
        sub.len = 0;
        pbw_str(&sub, 1, scope_name);
        pbw_str(&sub, 2, scope_version);
        pbw_sub(&ss, 1, &sub);
        for (size_t i = 0; i < n; i++)
            pbw_bytes(&ss, 2, spans[i].data, spans[i].len);
        pbw_sub(&rs, 2, &ss);
        pbw_sub(&out, 1, &rs);
        pb_buf_free(&rs);
        pb_buf_free(&sub);
        pb_buf_free(&ss);
    } else {
        jw_lit(&out, "{\"resourceSpans\":[{\"resource\":{");
        otlp_put_attrs(&out, resource, 1);
        jw_lit(&out, "},\"scopeSpans\":[{\"scope\":{\"name\":");
        jw_str(&out, scope_name);
        jw_lit(&out, ",\"version\":");
        jw_str(&out, scope_version);
        jw_lit(&out, "},\"spans\":[");
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                pb_buf_append(&out, ",", 1);
            pb_buf_append(&out, spans[i].data, spans[i].len);
        }
        jw_lit(&out, "]}]}]}");
    }
    *len = out.len;
    return out.data != NULL ? out.data : pb_xstrdup("");
}
