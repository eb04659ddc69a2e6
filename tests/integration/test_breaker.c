/* test_breaker.c -- shared circuit breakers, the half-open probe and rpm limits, end to end.
 *
 * Real redis-server, planb-mock and `planb serve`; upstream calls are counted
 * by the mock, so "no call to the primary" is observed, not inferred. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "th_jobs.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

/* Primary and backup on two mock "providers"; retries 0, so one job = one primary failure. */
static void
start_world(int workers, const char *primary_extra, const char *breaker)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": %d,"
             " \"concurrency\": 256, \"drain_timeout_ms\": 2000,"
             " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"},"
             " \"b\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             " \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"primary\": {\"provider\": \"a\", \"timeout_ms\": 1000 %s},"
             " \"backup\": {\"provider\": \"b\", \"tier\": 2}},"
             " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"retries\": 0,"
             " \"deadline_ms\": 10000}},"
             " \"breaker\": %s, \"monitor\": {\"metrics_listen\": \"\"}}",
             redis_p.port, workers, mock_p.port, mock_p.port, primary_extra ? primary_extra : "",
             breaker);
    th_serve(&planb_p, cfg);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

static json_object *
run(const char *id)
{
    cr_assert_eq(th_push_job(rc, id, NULL), 0);
    json_object *r = th_wait_result(rc, id, 20);
    cr_assert_not_null(r, "no result for %s", id);
    return r;
}

static char st_open[] = "open", st_closed[] = "closed";

static bool
breaker_is(void *state)
{
    char buf[32];
    return strcmp(th_hget(rc, "planb:breaker:primary", "state", buf, sizeof(buf)),
                  (const char *)state) == 0;
}

/* Redis time has passed the breaker's open_until: the next attempt may probe. */
static bool
open_time_over(void *arg)
{
    (void)arg;
    char buf[32];
    long long until = atoll(th_hget(rc, "planb:breaker:primary", "open_until", buf, sizeof(buf)));
    redisReply *t = redisCommand(rc, "TIME");
    long long now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    return until > 0 && now >= until;
}

/* Views in other workers are at most ~200 ms stale; give them time to hear of a change. */
static bool
never(void *arg)
{
    (void)arg;
    return false;
}

TestSuite(breaker, .fini = teardown, .timeout = 120);

Test(breaker, opens_after_failures_then_skips_and_one_probe_closes_it)
{
    start_world(1, NULL, "{\"failures\": 3, \"window_s\": 30, \"open_s\": 2}");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "f%d", i);
        json_object *r = run(id);
        cr_expect_str_eq(th_field(r, "source"), "fallback");
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "http_500");
        json_object_put(r);
    }
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20), "breaker opened after 3 failures");
    th_wait_for(never, NULL, 2, 300);
    long calls = th_mock_requests(&mock_p, "primary");
    cr_expect_eq(calls, 3);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s%d", i);
        json_object *r = run(id);
        cr_expect_str_eq(th_field(r, "source"), "fallback");
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "breaker_open");
        cr_expect_eq(atol(th_attempt(r, 0, "ms")), 0);
        cr_expect_str_eq(th_attempt(r, 1, "model"), "backup");
        json_object_put(r);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), calls, "no upstream call while open");

    /* Recovery: after open_s one probe goes through and closes it. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\"}");
    cr_assert(th_wait_for(open_time_over, NULL, 100, 50));
    json_object *r = run("probe");
    cr_expect_str_eq(th_field(r, "source"), "primary");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), calls + 1);
    cr_expect(breaker_is(st_closed));
    r = run("after");
    cr_expect_str_eq(th_field(r, "source"), "primary");
    json_object_put(r);
    char buf[32];
    cr_expect_str_eq(th_hget(rc, "planb:stats", "breaker:primary:open", buf, sizeof(buf)), "1");
    cr_expect_str_eq(th_hget(rc, "planb:stats", "breaker:primary:closed", buf, sizeof(buf)), "1");
}

Test(breaker, a_failed_probe_reopens_and_only_one_job_probes)
{
    start_world(2, NULL, "{\"failures\": 2, \"window_s\": 30, \"open_s\": 1}");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":503}");
    json_object_put(run("a"));
    json_object_put(run("b"));
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20));
    cr_assert(th_wait_for(open_time_over, NULL, 100, 50));
    /* The probe hangs a while; every other job of the burst must skip the primary. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":503,\"latency_ms\":800}");
    long before = th_mock_requests(&mock_p, "primary");
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        cr_assert_eq(th_push_job(rc, id, NULL), 0);
    }
    int skipped = 0;
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        json_object *r = th_wait_result(rc, id, 20);
        cr_assert_not_null(r);
        skipped += strcmp(th_attempt(r, 0, "outcome"), "breaker_open") == 0;
        cr_expect_str_eq(th_field(r, "source"), "fallback");
        json_object_put(r);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary") - before, 1, "exactly one probe");
    cr_expect_eq(skipped, 19);
    cr_expect(breaker_is(st_open), "the failed probe re-opened it");
}

Test(breaker, hanging_primary_costs_only_the_backup_latency_once_open)
{
    start_world(1, NULL, "{\"failures\": 2, \"window_s\": 30, \"open_s\": 30}");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"hang\"}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"ok\",\"latency_ms\":50}");
    for (int i = 0; i < 2; i++) {
        char id[16];
        snprintf(id, sizeof(id), "h%d", i);
        json_object *r = run(id);
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "timeout");
        cr_expect_geq(th_field_int(r, "latency_ms"), 1000);
        json_object_put(r);
    }
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20));
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "q%d", i);
        json_object *r = run(id);
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "breaker_open");
        cr_expect_str_eq(th_field(r, "source"), "fallback");
        long ms = th_field_int(r, "latency_ms");
        cr_expect(ms >= 45 && ms < 500, "latency %ld ms: about the backup's 50 ms", ms);
        json_object_put(r);
    }
}

Test(breaker, rpm_is_shared_by_all_workers)
{
    start_world(2, ", \"rpm\": 60", "{\"failures\": 5}");
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r%d", i);
        cr_assert_eq(th_push_job(rc, id, NULL), 0);
    }
    int primary = 0, fallback = 0, limited = 0, got429 = 0;
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r%d", i);
        json_object *r = th_wait_result(rc, id, 30);
        cr_assert_not_null(r, "no result for %s", id);
        primary += strcmp(th_field(r, "source"), "primary") == 0;
        fallback += strcmp(th_field(r, "source"), "fallback") == 0;
        limited += strcmp(th_attempt(r, 0, "outcome"), "rate_limited") == 0;
        json_object *a;
        json_object_object_get_ex(r, "attempts", &a);
        for (size_t k = 0; k < json_object_array_length(a); k++)
            got429 += strcmp(th_attempt(r, k, "outcome"), "http_429") == 0;
        json_object_put(r);
    }
    long calls = th_mock_requests(&mock_p, "primary");
    cr_expect_leq(calls, 60, "primary called %ld times in the minute", calls);
    cr_expect_geq(calls, 50, "the limit is used, not just refused (%ld)", calls);
    cr_expect_eq(primary, calls);
    cr_expect_eq(primary + fallback, 200);
    cr_expect_eq(limited, fallback);
    cr_expect_eq(got429, 0);
}

static bool
hold_is_set(void *arg)
{
    (void)arg;
    char buf[32];
    return atoll(th_hget(rc, "planb:breaker:primary", "not_before", buf, sizeof(buf))) > 0;
}

Test(breaker, retry_after_holds_the_model_for_every_worker)
{
    start_world(2, NULL, "{\"failures\": 100}");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":429,\"retry_after\":\"30\"}");
    json_object *r = run("ra0");
    cr_expect_str_eq(th_attempt(r, 0, "outcome"), "http_429");
    cr_expect_str_eq(th_field(r, "source"), "fallback");
    json_object_put(r);
    cr_assert(th_wait_for(hold_is_set, NULL, 50, 20));
    th_wait_for(never, NULL, 2, 300); /* both workers' views have it */
    for (int i = 1; i <= 6; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ra%d", i);
        r = run(id);
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "held_off");
        cr_expect_str_eq(th_field(r, "source"), "fallback");
        json_object_put(r);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 1, "only the first call reached it");
}

Test(breaker, tpm_counts_reported_usage_across_the_cluster)
{
    /* The mock reports 1-2 prompt + 2-3 completion tokens per answer. */
    start_world(2, ", \"tpm\": 8", "{\"failures\": 5}");
    int primary = 0, limited = 0;
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof(id), "t%d", i);
        json_object *r = run(id);
        primary += strcmp(th_field(r, "source"), "primary") == 0;
        limited += strcmp(th_attempt(r, 0, "outcome"), "rate_limited") == 0;
        json_object_put(r);
        th_wait_for(never, NULL, 2, 50); /* the usage report lands */
    }
    cr_expect(primary >= 1 && primary <= 3, "%d answers fit 8 tokens per minute", primary);
    cr_expect_eq(limited, 6 - primary);
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), primary);
}
