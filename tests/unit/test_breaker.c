/* test_breaker.c -- the pure breaker decisions, reply parsing, the stats snapshot parser and
 * the /metrics text (checked by a strict exposition-format parser). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "planb/breaker.h"
#include "planb/metrics.h"
#include "planb/stats.h"
#include "th_promtext.h"

Test(decide, closed_passes_and_a_hold_waits)
{
    pb_breaker_view v = {PB_BREAKER_CLOSED, 0, 0, false};
    int64_t wait = -1;
    cr_assert_eq(pb_breaker_decide(&v, 1000, &wait), PB_GATE_PASS);
    cr_assert_eq(wait, 0);
    v.not_before_mono_ms = 1500;
    cr_assert_eq(pb_breaker_decide(&v, 1000, &wait), PB_GATE_HOLD);
    cr_assert_eq(wait, 500);
    cr_assert_eq(pb_breaker_decide(&v, 1500, &wait), PB_GATE_PASS);
}

Test(decide, open_skips_until_its_time_then_probes)
{
    pb_breaker_view v = {PB_BREAKER_OPEN, 2000, 0, false};
    int64_t wait;
    cr_assert_eq(pb_breaker_decide(&v, 1999, &wait), PB_GATE_OPEN);
    cr_assert_eq(pb_breaker_decide(&v, 2000, &wait), PB_GATE_PROBE);
    /* Half open: someone else probes until the lease ends. */
    v.state = PB_BREAKER_HALF_OPEN;
    cr_assert_eq(pb_breaker_decide(&v, 1999, &wait), PB_GATE_OPEN);
    cr_assert_eq(pb_breaker_decide(&v, 2001, &wait), PB_GATE_PROBE);
    /* Open wins over a hold. */
    v.not_before_mono_ms = 10000;
    cr_assert_eq(pb_breaker_decide(&v, 1000, &wait), PB_GATE_OPEN);
}

/* A fake integer-array reply. */
static redisReply *
int_array(const long long *vals, size_t n)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof(redisReply *));
    for (size_t i = 0; i < n; i++) {
        r->element[i] = calloc(1, sizeof(redisReply));
        r->element[i]->type = REDIS_REPLY_INTEGER;
        r->element[i]->integer = vals[i];
    }
    return r;
}

Test(apply, updates_the_view_from_a_reply)
{
    pb_breaker_view v = {0};
    long long ok[] = {1, 300, 50, 1};
    redisReply *r = int_array(ok, 4);
    cr_assert_eq(pb_breaker_apply(&v, r, 1000), 1);
    cr_assert_eq(v.state, PB_BREAKER_OPEN);
    cr_assert_eq(v.open_until_mono_ms, 1300);
    cr_assert_eq(v.not_before_mono_ms, 1050);
    freeReplyObject(r);
}

Test(apply, rejects_malformed_replies)
{
    pb_breaker_view v = {PB_BREAKER_CLOSED, 7, 7, false};
    long long bad_state[] = {3, 0, 0, 0}, negative[] = {0, -1, 0, 0};
    redisReply *r1 = int_array(bad_state, 4), *r2 = int_array(negative, 4),
               *r3 = int_array(bad_state, 3);
    cr_assert_eq(pb_breaker_apply(&v, r1, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, r2, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, r3, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, NULL, 0), -1);
    cr_assert_eq(v.open_until_mono_ms, 7, "untouched");
    freeReplyObject(r1);
    freeReplyObject(r2);
    freeReplyObject(r3);
}

Test(latency, buckets)
{
    cr_assert_str_eq(pb_stats_latency_field(0), "latency_le:50");
    cr_assert_str_eq(pb_stats_latency_field(50), "latency_le:50");
    cr_assert_str_eq(pb_stats_latency_field(51), "latency_le:100");
    cr_assert_str_eq(pb_stats_latency_field(30000), "latency_le:30000");
    cr_assert_str_eq(pb_stats_latency_field(30001), "latency_le:inf");
}

static const char *test_cfg =
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\"}},"
    " \"models\": {\"m:1\": {\"provider\": \"p\"}, \"b\": {\"provider\": \"p\"}},"
    " \"routes\": {\"default\": {\"chain\": [\"m:1\", \"b\"]}}}";

static redisReply *
str_reply(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

/* A snapshot.lua reply with a few counters, one queue, two models (m:1 open). */
static redisReply *
snapshot_reply(void)
{
    static const char *const hash[] = {"jobs",
                                       "10",
                                       "jobs:default:primary",
                                       "6",
                                       "jobs:default:fallback",
                                       "4",
                                       "attempts:m:1",
                                       "9",
                                       "errors:m:1:http_500",
                                       "3",
                                       "attempts:b",
                                       "4",
                                       "breaker:m:1:open",
                                       "1",
                                       "latency_le:50",
                                       "7",
                                       "latency_le:1000",
                                       "2",
                                       "latency_le:inf",
                                       "1",
                                       "latency_sum_ms",
                                       "40123"};
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = 5;
    r->element = calloc(5, sizeof(redisReply *));
    redisReply *h = calloc(1, sizeof(*h));
    h->type = REDIS_REPLY_ARRAY;
    h->elements = sizeof(hash) / sizeof(hash[0]);
    h->element = calloc(h->elements, sizeof(redisReply *));
    for (size_t i = 0; i < h->elements; i++)
        h->element[i] = str_reply(hash[i]);
    r->element[0] = h;
    long long depth[] = {3}, breakers[] = {1, 2500, 0, 0}, w[] = {10, 6, 4, 0, 0, 0, 0};
    r->element[1] = int_array(depth, 1);
    r->element[2] = calloc(1, sizeof(redisReply));
    r->element[2]->type = REDIS_REPLY_INTEGER;
    r->element[2]->integer = 2;
    r->element[3] = int_array(breakers, 4);
    redisReply *ws = calloc(1, sizeof(*ws));
    ws->type = REDIS_REPLY_ARRAY;
    ws->elements = 3;
    ws->element = calloc(3, sizeof(redisReply *));
    for (int i = 0; i < 3; i++)
        ws->element[i] = int_array(w, 7);
    r->element[4] = ws;
    return r;
}

Test(snapshot, parses_and_formats_strict_prometheus_text)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(test_cfg, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    redisReply *r = snapshot_reply();
    pb_stats_snapshot snap;
    cr_assert_eq(pb_stats_parse(cfg, r, &snap), PB_OK);
    cr_assert_eq(snap.queue_depth[0], 3);
    cr_assert_eq(snap.inflight, 2);
    cr_assert_eq(snap.breaker_state[0], PB_BREAKER_OPEN);
    cr_assert_eq(pb_stats_get(&snap, "jobs"), 10);
    cr_assert_float_eq(pb_stats_fallback_rate(snap.win[1]), 0.4, 1e-9);

    pb_buf out;
    pb_buf_init(&out, 1 << 20);
    pb_metrics_format(cfg, &snap, &out);
    const char *why = th_prom_check(out.data);
    cr_assert_null(why, "%s\n%s", why, out.data);
    cr_assert_not_null(
        strstr(out.data, "planb_jobs_total{route=\"default\",source=\"fallback\"} 4\n"));
    cr_assert_not_null(strstr(out.data, "planb_attempts_total{model=\"m:1\",outcome=\"ok\"} 6\n"));
    cr_assert_not_null(
        strstr(out.data, "planb_attempts_total{model=\"m:1\",outcome=\"http_500\"} 3\n"));
    cr_assert_not_null(strstr(out.data, "planb_breaker_state{model=\"m:1\"} 1\n"));
    cr_assert_not_null(
        strstr(out.data, "planb_breaker_transitions_total{model=\"m:1\",state=\"open\"} 1\n"));
    cr_assert_not_null(strstr(out.data, "planb_job_latency_seconds_bucket{le=\"0.5\"} 7\n"));
    cr_assert_not_null(strstr(out.data, "planb_job_latency_seconds_bucket{le=\"+Inf\"} 10\n"));
    cr_assert_not_null(strstr(out.data, "planb_job_latency_seconds_count 10\n"));
    cr_assert_not_null(strstr(out.data, "planb_fallback_ratio{window=\"5m\"} 0.400000\n"));
    pb_buf_free(&out);

    json_object *o = pb_stats_to_json(cfg, &snap);
    cr_assert_not_null(strstr(json_object_to_json_string(o), "\"fallback_rate\": 0.4"), "%s",
                       json_object_to_json_string(o));
    json_object_put(o);
    pb_stats_snapshot_free(&snap);
    /* A malformed reply is refused, not crashed on. */
    r->element[2]->type = REDIS_REPLY_NIL;
    cr_assert_eq(pb_stats_parse(cfg, r, &snap), PB_ERR);
    freeReplyObject(r);
    pb_config_free(cfg);
}

Test(promtext, the_checker_rejects_broken_text)
{
    cr_assert_null(th_prom_check("# HELP a x\n# TYPE a gauge\na 1\n"));
    cr_assert_not_null(th_prom_check("a 1\n"), "no HELP/TYPE");
    cr_assert_not_null(th_prom_check("# HELP a x\n# TYPE a gauge\na{l=\"\\x\"} 1\n"), "escape");
    cr_assert_not_null(th_prom_check("# HELP a x\n# TYPE a gauge\na{1l=\"v\"} 1\n"), "label");
    cr_assert_not_null(th_prom_check("# HELP a x\n# TYPE a gauge\na one\n"), "value");
    cr_assert_not_null(th_prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                     "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
                       "not cumulative");
    cr_assert_not_null(th_prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                                     "h_sum 1\nh_count 1\n"),
                       "no +Inf");
}

Test(config, breaker_monitor_and_limits)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(test_cfg, &err);
    cr_assert_eq(cfg->breaker_failures, 5);
    cr_assert_eq(cfg->breaker_window_s, 30);
    cr_assert_eq(cfg->breaker_open_s, 30);
    cr_assert_eq(cfg->stats_interval_s, 10);
    cr_assert_float_eq(cfg->alert_fallback_rate, 0.2, 1e-9);
    cr_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
    cr_assert_eq(cfg->models[0].rpm, 0);
    pb_config_free(cfg);
    static const char *bad[] = {"\"breaker\": {\"failures\": -1}",
                                "\"breaker\": {\"open_s\": 0}",
                                "\"breaker\": {\"typo\": 1}",
                                "\"monitor\": {\"alert_fallback_rate\": 1.5}",
                                "\"monitor\": {\"metrics_listen\": \"nohost\"}",
                                "\"monitor\": {\"stats_interval_s\": 0}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[1024];
        snprintf(json, sizeof(json), "%.*s, %s}", (int)strlen(test_cfg) - 1, test_cfg, bad[i]);
        cr_expect_null(pb_config_parse(json, &err), "%s accepted", bad[i]);
    }
    char json[1024];
    snprintf(json, sizeof(json),
             "%.*s, \"monitor\": {\"metrics_listen\": \"\", \"alert_fallback_rate\": 0.5}}",
             (int)strlen(test_cfg) - 1, test_cfg);
    cfg = pb_config_parse(json, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_null(cfg->metrics_listen);
    cr_assert_float_eq(cfg->alert_fallback_rate, 0.5, 1e-9);
    pb_config_free(cfg);
}
