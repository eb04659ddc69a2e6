/* test_trace.c -- W3C traceparent parsing (the spec's valid and invalid forms), tracestate
 * bounds, formatting, random ids and the trace-id ratio sampler; and the OTLP span encodings
 * (otlp.c): the JSON form's names and types, the protobuf form's field tags. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <string.h>

#include "fixture.h"
#include "planb/otlp.h"
#include "planb/trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static bool
parse(const char *s, pb_trace_ctx *c)
{
    return pb_traceparent_parse(s, strlen(s), c);
}

Test(trace, valid_traceparents)
{
    pb_trace_ctx c;
    cr_assert(parse(TP, &c));
    cr_expect_eq(c.trace_id[0], 0x4b);
    cr_expect_eq(c.trace_id[15], 0x36);
    cr_expect_eq(c.span_id[7], 0xb7);
    cr_expect(c.sampled);
    cr_assert(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &c));
    cr_expect(!c.sampled);
    /* A later version is read as 00 when its first 55 characters are shaped so. */
    cr_expect(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", &c));
    cr_expect(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", &c) && c.sampled);
    char out[PB_TRACEPARENT_LEN + 1];
    cr_assert(parse(TP, &c));
    pb_traceparent_format(&c, out);
    cr_expect_str_eq(out, TP);
}

Test(trace, malformed_traceparents_are_refused)
{
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 with more */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",   /* flags */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  /* later version, no '-' */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        pb_trace_ctx c;
        cr_expect(!parse(bad[i], &c), "%s", bad[i]);
    }
    pb_trace_ctx c;
    cr_expect(!pb_traceparent_parse(NULL, 0, &c));
}

Test(trace, tracestate_bounds)
{
    cr_expect(pb_tracestate_ok("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", 39));
    cr_expect(!pb_tracestate_ok("", 0));
    cr_expect(!pb_tracestate_ok("a=b\nc=d", 7));
    char big[PB_TRACESTATE_MAX_LEN + 2];
    memset(big, 'a', sizeof(big));
    cr_expect(pb_tracestate_ok(big, PB_TRACESTATE_MAX_LEN));
    cr_expect(!pb_tracestate_ok(big, PB_TRACESTATE_MAX_LEN + 1));
}

Test(trace, random_ids_and_the_ratio_sampler)
{
    uint8_t a[16], b[16];
    pb_trace_random_id(a, 16);
    pb_trace_random_id(b, 16);
    cr_expect_neq(memcmp(a, b, 16), 0);
    uint8_t low[16] = {1}, high[16];
    memset(high, 0xff, sizeof(high));
    cr_expect(pb_trace_ratio_keeps(low, 0.01), "the lowest ids are kept at any ratio above 0");
    cr_expect(!pb_trace_ratio_keeps(high, 0.99));
    cr_expect(pb_trace_ratio_keeps(high, 1.0));
    cr_expect(!pb_trace_ratio_keeps(low, 0.0));
    int kept = 0;
    for (int i = 0; i < 10000; i++) {
        uint8_t id[16];
        pb_trace_random_id(id, 16);
        kept += pb_trace_ratio_keeps(id, 0.25);
    }
    cr_expect(kept > 2200 && kept < 2800, "kept %d of 10000 at 0.25", kept);
}

static pb_span *
sample_span(bool protobuf)
{
    pb_trace_ctx c;
    cr_assert(parse(TP, &c));
    uint8_t id[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    pb_span *s = pb_span_new(protobuf, c.trace_id, id, c.span_id, "chat gpt", PB_SPAN_CLIENT,
                             1765152000000000000LL, 1765152000250000000LL);
    pb_otlp_attrs *a = pb_span_attrs(s);
    pb_otlp_str(a, "gen_ai.request.model", "gpt \"quoted\"\n");
    pb_otlp_int(a, "gen_ai.usage.input_tokens", 12);
    pb_otlp_double(a, "planb.cost_usd", 0.5);
    pb_otlp_bool(a, "planb.hedge", false);
    const char *reasons[] = {"stop"};
    pb_otlp_strs(a, "gen_ai.response.finish_reasons", reasons, 1);
    pb_span_event(s, "planb.backoff", 1765152000100000000LL, "planb.backoff_ms", NULL, 40);
    pb_span_event(s, "planb.degraded", 1765152000200000000LL, NULL, NULL, 0);
    pb_span_status(s, true, "http_503");
    return s;
}

Test(otlp, json_span_has_the_otlp_json_names_and_types)
{
    size_t len;
    char *js = pb_span_finish(sample_span(false), &len);
    json_object *o = json_tokener_parse(js);
    cr_assert_not_null(o, "%s", js);
    cr_expect_eq(strlen(js), len);
    cr_expect_str_eq(th_at_str(o, "traceId"), "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_expect_str_eq(th_at_str(o, "spanId"), "0102030405060708");
    cr_expect_str_eq(th_at_str(o, "parentSpanId"), "00f067aa0ba902b7");
    cr_expect_eq(json_object_get_int(th_at(o, "kind")), 3);
    cr_expect_str_eq(th_at_str(o, "startTimeUnixNano"), "1765152000000000000");
    cr_expect_str_eq(th_at_str(o, "attributes[0].value.stringValue"), "gpt \"quoted\"\n");
    cr_expect_str_eq(th_at_str(o, "attributes[1].value.intValue"), "12", "int64 as a string");
    cr_expect(json_object_get_double(th_at(o, "attributes[2].value.doubleValue")) == 0.5);
    cr_expect(!json_object_get_boolean(th_at(o, "attributes[3].value.boolValue")));
    cr_expect_str_eq(th_at_str(o, "attributes[4].value.arrayValue.values[0].stringValue"), "stop");
    cr_expect_str_eq(th_at_str(o, "events[0].attributes[0].value.intValue"), "40");
    cr_expect_eq(json_object_array_length(th_at(o, "events[1].attributes")), 0);
    cr_expect_eq(json_object_get_int(th_at(o, "status.code")), 2);
    cr_expect_str_eq(th_at_str(o, "status.message"), "http_503");
    json_object_put(o);
    pb_otlp_piece p = {js, len};
    pb_otlp_attrs res;
    pb_otlp_attrs_init(&res, false);
    pb_otlp_str(&res, "service.name", "planb");
    char *req = pb_otlp_request(false, &res, "planb", "0.1.0", &p, 1, &len);
    o = json_tokener_parse(req);
    cr_assert_not_null(o, "%s", req);
    cr_expect_str_eq(th_at_str(o, "resourceSpans[0].scopeSpans[0].spans[0].name"), "chat gpt");
    cr_expect_str_eq(th_at_str(o, "resourceSpans[0].resource.attributes[0].key"), "service.name");
    cr_expect_str_eq(th_at_str(o, "resourceSpans[0].scopeSpans[0].scope.version"), "0.1.0");
    json_object_put(o);
    pb_otlp_attrs_free(&res);
    free(req);
    free(js);
}

Test(otlp, protobuf_span_starts_with_its_ids_and_wraps_in_the_request)
{
    size_t len;
    unsigned char *pb = (unsigned char *)pb_span_finish(sample_span(true), &len);
    /* field 1 (trace_id) LEN 16, then field 2 (span_id) LEN 8, field 4 (parent) LEN 8 */
    cr_assert_gt(len, 40);
    cr_expect_eq(pb[0], 0x0a);
    cr_expect_eq(pb[1], 16);
    cr_expect_eq(pb[2], 0x4b);
    cr_expect_eq(pb[18], 0x12);
    cr_expect_eq(pb[19], 8);
    cr_expect_eq(pb[20], 1);
    cr_expect_eq(pb[28], 0x22);
    cr_expect_eq(pb[29], 8);
    cr_expect_eq(pb[30], 0x00);
    cr_expect_eq(pb[31], 0xf0);
    cr_expect_eq(pb[38], 0x2a, "field 5 (name) follows");
    cr_expect_neq(memmem(pb, len, "\x4a", 1), NULL, "field 9 (attributes)");
    pb_otlp_piece p = {(const char *)pb, len};
    pb_otlp_attrs res;
    pb_otlp_attrs_init(&res, true);
    pb_otlp_str(&res, "service.name", "planb");
    size_t rl;
    unsigned char *req = (unsigned char *)pb_otlp_request(true, &res, "planb", "0.1.0", &p, 1, &rl);
    cr_expect_eq(req[0], 0x0a, "ExportTraceServiceRequest.resource_spans");
    cr_expect_gt(rl, len);
    cr_expect_neq(memmem(req, rl, pb, len), NULL, "the span's bytes are inside, unchanged");
    cr_expect_neq(memmem(req, rl, "service.name", 12), NULL);
    pb_otlp_attrs_free(&res);
    free(req);
    free(pb);
}
