/* otlp.c -- spans in OTLP's JSON form, and the two OTLP/HTTP encodings of them.
 *
 * The JSON form follows the OTLP/HTTP JSON rules (https://opentelemetry.io/docs/specs/otlp/):
 * lowerCamelCase names, trace and span ids as lower-case hex (not base64), enums as numbers,
 * 64-bit integers as decimal strings. The protobuf encoding walks that same form and writes
 * the opentelemetry-proto trace/v1 messages with their field numbers (written out below);
 * only what planb sets is encoded: ids, trace state, name, kind, times, attributes of string,
 * bool, int, double and string-array values, events and status. */
#include "planb/otlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/core.h"
#include "planb/trace.h"

#define OTLP_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Protobuf wire types. */
enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2 };

struct pb_span {
    json_object *o;      /* the span object */
    json_object *attrs;  /* its "attributes" (borrowed from o) */
    json_object *events; /* its "events", created with the first event (borrowed) */
};

static json_object *
otlp_ns(int64_t ns)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)(ns > 0 ? ns : 0));
    return json_object_new_string(s);
}

static json_object *
otlp_hex(const uint8_t *id, size_t n)
{
    char s[33];
    pb_trace_hex(id, n, s);
    return json_object_new_string(s);
}

pb_span *
pb_span_new(const uint8_t trace_id[16], const uint8_t span_id[8], const uint8_t *parent,
            const char *name, int kind, int64_t start_ns, int64_t end_ns)
{
    pb_span *s = pb_xcalloc(1, sizeof(*s));
    s->o = json_object_new_object();
    json_object_object_add(s->o, "traceId", otlp_hex(trace_id, 16));
    json_object_object_add(s->o, "spanId", otlp_hex(span_id, 8));
    if (parent != NULL)
        json_object_object_add(s->o, "parentSpanId", otlp_hex(parent, 8));
    json_object_object_add(s->o, "name", json_object_new_string(name));
    json_object_object_add(s->o, "kind", json_object_new_int(kind));
    json_object_object_add(s->o, "startTimeUnixNano", otlp_ns(start_ns));
    json_object_object_add(s->o, "endTimeUnixNano", otlp_ns(end_ns < start_ns ? start_ns : end_ns));
    s->attrs = json_object_new_array();
    json_object_object_add(s->o, "attributes", s->attrs);
    return s;
}

void
pb_span_free(pb_span *s)
{
    if (s == NULL)
        return;
    json_object_put(s->o);
    free(s);
}

json_object *
pb_span_attrs(pb_span *s)
{
    return s->attrs;
}

json_object *
pb_span_event(pb_span *s, const char *name, int64_t t_ns)
{
    if (s->events == NULL) {
        s->events = json_object_new_array();
        json_object_object_add(s->o, "events", s->events);
    }
    json_object *e = json_object_new_object(), *attrs = json_object_new_array();
    json_object_object_add(e, "timeUnixNano", otlp_ns(t_ns));
    json_object_object_add(e, "name", json_object_new_string(name));
    json_object_object_add(e, "attributes", attrs);
    json_object_array_add(s->events, e);
    return attrs;
}

void
pb_span_status(pb_span *s, bool error, const char *message)
{
    json_object *st = json_object_new_object();
    json_object_object_add(st, "code", json_object_new_int(error ? 2 : 1));
    if (error && message != NULL)
        json_object_object_add(st, "message", json_object_new_string(message));
    json_object_object_add(s->o, "status", st);
}

void
pb_span_tracestate(pb_span *s, const char *tracestate)
{
    if (tracestate != NULL)
        json_object_object_add(s->o, "traceState", json_object_new_string(tracestate));
}

/* Appends {"key": key, "value": {kind: v}} to attrs; takes v. */
static void
otlp_attr(json_object *attrs, const char *key, const char *kind, json_object *v)
{
    json_object *kv = json_object_new_object(), *val = json_object_new_object();
    json_object_object_add(val, kind, v);
    json_object_object_add(kv, "key", json_object_new_string(key));
    json_object_object_add(kv, "value", val);
    json_object_array_add(attrs, kv);
}

void
pb_otlp_str(json_object *attrs, const char *key, const char *v)
{
    if (v != NULL)
        otlp_attr(attrs, key, "stringValue", json_object_new_string(v));
}

void
pb_otlp_strn(json_object *attrs, const char *key, const char *v, size_t n)
{
    if (v != NULL)
        otlp_attr(attrs, key, "stringValue", json_object_new_string_len(v, (int)n));
}

/* intValue is an int64: a decimal string in OTLP JSON (the proto3 JSON mapping). */
void
pb_otlp_int(json_object *attrs, const char *key, int64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)v);
    otlp_attr(attrs, key, "intValue", json_object_new_string(s));
}

void
pb_otlp_double(json_object *attrs, const char *key, double v)
{
    otlp_attr(attrs, key, "doubleValue", json_object_new_double(v));
}

void
pb_otlp_bool(json_object *attrs, const char *key, bool v)
{
    otlp_attr(attrs, key, "boolValue", json_object_new_boolean(v));
}

void
pb_otlp_strs(json_object *attrs, const char *key, const char *const *v, size_t n)
{
    json_object *arr = json_object_new_object(), *values = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *one = json_object_new_object();
        json_object_object_add(one, "stringValue", json_object_new_string(v[i]));
        json_object_array_add(values, one);
    }
    json_object_object_add(arr, "values", values);
    otlp_attr(attrs, key, "arrayValue", arr);
}

/* ------------------------------------------------------------ protobuf */

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
pbw_fixed64(pb_buf *b, int field, uint64_t v)
{
    unsigned char out[8];
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (8 * i));
    pbw_tag(b, field, WIRE_I64);
    pb_buf_append(b, out, 8);
}

/* Writes sub as the length-delimited field and empties it for reuse. */
static void
pbw_sub(pb_buf *b, int field, pb_buf *sub)
{
    pbw_bytes(b, field, sub->data != NULL ? sub->data : "", sub->len);
    sub->len = 0;
}

static const char *
otlp_get_str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* A hex id field of o as bytes (ids are ours: well-formed). */
static void
pbw_id(pb_buf *b, int field, json_object *o, const char *key)
{
    const char *hex = otlp_get_str(o, key);
    if (hex == NULL)
        return;
    uint8_t id[16];
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n && i < sizeof(id); i++) {
        unsigned hi = (unsigned)(hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10);
        unsigned lo =
            (unsigned)(hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0' : hex[2 * i + 1] - 'a' + 10);
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    pbw_bytes(b, field, id, n);
}

static void
pbw_str(pb_buf *b, int field, json_object *o, const char *key)
{
    json_object *v;
    if (json_object_object_get_ex(o, key, &v))
        pbw_bytes(b, field, json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

static void
pbw_ns(pb_buf *b, int field, json_object *o, const char *key)
{
    const char *s = otlp_get_str(o, key);
    if (s != NULL)
        pbw_fixed64(b, field, strtoull(s, NULL, 10));
}

/* AnyValue: string_value 1, bool_value 2, int_value 3, double_value 4, array_value 5. */
static void
pbw_any(pb_buf *b, json_object *val)
{
    json_object *v;
    if (json_object_object_get_ex(val, "stringValue", &v)) {
        pbw_bytes(b, 1, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    } else if (json_object_object_get_ex(val, "boolValue", &v)) {
        pbw_tag(b, 2, WIRE_VARINT);
        pbw_varint(b, json_object_get_boolean(v) ? 1 : 0);
    } else if (json_object_object_get_ex(val, "intValue", &v)) {
        pbw_tag(b, 3, WIRE_VARINT);
        pbw_varint(b, (uint64_t)strtoll(json_object_get_string(v), NULL, 10));
    } else if (json_object_object_get_ex(val, "doubleValue", &v)) {
        double d = json_object_get_double(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        pbw_fixed64(b, 4, bits);
    } else if (json_object_object_get_ex(val, "arrayValue", &v)) {
        json_object *values;
        pb_buf arr, one;
        pb_buf_init(&arr, SIZE_MAX);
        pb_buf_init(&one, SIZE_MAX);
        json_object_object_get_ex(v, "values", &values);
        for (size_t i = 0; i < json_object_array_length(values); i++) { /* ArrayValue.values 1 */
            pbw_any(&one, json_object_array_get_idx(values, i));
            pbw_sub(&arr, 1, &one);
        }
        pbw_sub(b, 5, &arr);
        pb_buf_free(&arr);
        pb_buf_free(&one);
    }
}

/* Each KeyValue {key 1, value 2} of attrs as repeated field. */
static void
pbw_attrs(pb_buf *b, int field, json_object *attrs)
{
    pb_buf kv, any;
    pb_buf_init(&kv, SIZE_MAX);
    pb_buf_init(&any, SIZE_MAX);
    for (size_t i = 0; attrs != NULL && i < json_object_array_length(attrs); i++) {
        json_object *a = json_object_array_get_idx(attrs, i), *val;
        pbw_str(&kv, 1, a, "key");
        json_object_object_get_ex(a, "value", &val);
        pbw_any(&any, val);
        pbw_sub(&kv, 2, &any);
        pbw_sub(b, field, &kv);
    }
    pb_buf_free(&kv);
    pb_buf_free(&any);
}

/* Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6, start 7,
 * end 8, attributes 9, events 11 (Event: time 1, name 2, attributes 3), status 15 (Status:
 * message 2, code 3). */
static void
pbw_span(pb_buf *b, json_object *o)
{
    json_object *v, *events;
    pbw_id(b, 1, o, "traceId");
    pbw_id(b, 2, o, "spanId");
    pbw_str(b, 3, o, "traceState");
    pbw_id(b, 4, o, "parentSpanId");
    pbw_str(b, 5, o, "name");
    if (json_object_object_get_ex(o, "kind", &v)) {
        pbw_tag(b, 6, WIRE_VARINT);
        pbw_varint(b, (uint64_t)json_object_get_int(v));
    }
    pbw_ns(b, 7, o, "startTimeUnixNano");
    pbw_ns(b, 8, o, "endTimeUnixNano");
    json_object_object_get_ex(o, "attributes", &v);
    pbw_attrs(b, 9, v);
    pb_buf sub;
    pb_buf_init(&sub, SIZE_MAX);
    if (json_object_object_get_ex(o, "events", &events)) {
        for (size_t i = 0; i < json_object_array_length(events); i++) {
            json_object *e = json_object_array_get_idx(events, i), *attrs;
            pbw_ns(&sub, 1, e, "timeUnixNano");
            pbw_str(&sub, 2, e, "name");
            json_object_object_get_ex(e, "attributes", &attrs);
            pbw_attrs(&sub, 3, attrs);
            pbw_sub(b, 11, &sub);
        }
    }
    if (json_object_object_get_ex(o, "status", &v)) {
        json_object *code;
        pbw_str(&sub, 2, v, "message");
        json_object_object_get_ex(v, "code", &code);
        pbw_tag(&sub, 3, WIRE_VARINT);
        pbw_varint(&sub, (uint64_t)json_object_get_int(code));
        pbw_sub(b, 15, &sub);
    }
    pb_buf_free(&sub);
}

char *
pb_span_encode(const pb_span *s, bool protobuf, size_t *len)
{
    if (!protobuf) {
        const char *js = json_object_to_json_string_length(s->o, OTLP_JSON_FLAGS, len);
        return pb_xstrndup(js, *len);
    }
    pb_buf b;
    pb_buf_init(&b, SIZE_MAX);
    pbw_span(&b, s->o);
    *len = b.len;
    return b.data != NULL ? b.data : pb_xstrdup("");
}

/* ExportTraceServiceRequest: resource_spans 1. ResourceSpans: resource 1 (Resource:
 * attributes 1), scope_spans 2. ScopeSpans: scope 1 (InstrumentationScope: name 1,
 * version 2), spans 2. */
static char *
otlp_request_protobuf(json_object *resource_attrs, const char *scope_name,
                      const char *scope_version, const pb_otlp_piece *spans, size_t n, size_t *len)
{
    pb_buf out, rs, sub, ss;
    pb_buf_init(&out, SIZE_MAX);
    pb_buf_init(&rs, SIZE_MAX);
    pb_buf_init(&sub, SIZE_MAX);
    pb_buf_init(&ss, SIZE_MAX);
    pbw_attrs(&sub, 1, resource_attrs);
    pbw_sub(&rs, 1, &sub);
    pbw_bytes(&sub, 1, scope_name, strlen(scope_name));
    pbw_bytes(&sub, 2, scope_version, strlen(scope_version));
    pbw_sub(&ss, 1, &sub);
    for (size_t i = 0; i < n; i++)
        pbw_bytes(&ss, 2, spans[i].data, spans[i].len);
    pbw_sub(&rs, 2, &ss);
    pbw_sub(&out, 1, &rs);
    pb_buf_free(&rs);
    pb_buf_free(&sub);
    pb_buf_free(&ss);
    *len = out.len;
    return out.data;
}

char *
pb_otlp_request(bool protobuf, json_object *resource_attrs, const char *scope_name,
                const char *scope_version, const pb_otlp_piece *spans, size_t n, size_t *len)
{
    if (protobuf)
        return otlp_request_protobuf(resource_attrs, scope_name, scope_version, spans, n, len);
    json_object *resource = json_object_new_object(), *scope = json_object_new_object();
    json_object_object_add(resource, "attributes", json_object_get(resource_attrs));
    json_object_object_add(scope, "name", json_object_new_string(scope_name));
    json_object_object_add(scope, "version", json_object_new_string(scope_version));
    size_t rl, sl;
    const char *r = json_object_to_json_string_length(resource, OTLP_JSON_FLAGS, &rl);
    const char *sc = json_object_to_json_string_length(scope, OTLP_JSON_FLAGS, &sl);
    pb_buf b;
    pb_buf_init(&b, SIZE_MAX);
    pb_buf_append(&b, "{\"resourceSpans\":[{\"resource\":", 30);
    pb_buf_append(&b, r, rl);
    pb_buf_append(&b, ",\"scopeSpans\":[{\"scope\":", 24);
    pb_buf_append(&b, sc, sl);
    pb_buf_append(&b, ",\"spans\":[", 10);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            pb_buf_append(&b, ",", 1);
        pb_buf_append(&b, spans[i].data, spans[i].len);
    }
    pb_buf_append(&b, "]}]}]}", 6);
    json_object_put(resource);
    json_object_put(scope);
    *len = b.len;
    return b.data;
}
