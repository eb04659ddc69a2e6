/* test_hedge.c -- hedged requests end to end: a slow attempt gets the next model beside it,
 * the first valid answer wins, the other transfer is cancelled, at most one hedge per job.
 *
 * Real redis-server, planb-mock (its slow_rate gives the primary a latency tail) and
 * `planb serve`; calls are counted by the mock. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "th_jobs.h"

#if defined(__SANITIZE_ADDRESS__)
#define TH_SLOWDOWN 2 /* ASan build: timing bounds get this factor on their margin */
#else
#define TH_SLOWDOWN 1
#endif

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

/* Primary and backup on two providers; route_extra sets the hedge keys. */
static void
start_world_n(int workers, const char *route_extra)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": %d,"
             " \"concurrency\": 512, \"drain_timeout_ms\": 2000,"
             " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"},"
             " \"b\": {\"type\": \"anthropic\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             " \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"primary\": {\"provider\": \"a\", \"timeout_ms\": 5000},"
             " \"backup\": {\"provider\": \"b\", \"tier\": 2}},"
             " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"retries\": 1,"
             " \"deadline_ms\": 10000, %s}},"
             " \"breaker\": {\"slow_call_ms\": 0}, \"monitor\": {\"metrics_listen\": \"\"}}",
             redis_p.port, workers, mock_p.port, mock_p.port, route_extra);
    th_serve(&planb_p, cfg);
}

static void
start_world(const char *route_extra)
{
    start_world_n(2, route_extra);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(hedge, .fini = teardown, .timeout = 120);

static int
cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long long
stat_of(const char *field)
{
    char buf[32];
    return atoll(th_hget(rc, "planb:stats", field, buf, sizeof(buf)));
}

Test(hedge, a_slow_tail_is_cut_by_the_backup)
{
    start_world("\"hedge_after_ms\": 300");
    /* 10% of the primary's answers take 3 s, the rest are immediate; the backup takes 50 ms. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"slow_rate\":0.1,\"slow_ms\":3000}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"ok\",\"latency_ms\":50}");
    /* Rounds of 40 jobs at a time: the figure is the hedge's, not a queue's (a sanitizer
     * build given 400 at once spends more on the queue than on the answers). */
    enum { N = 400, ROUND = 40 };
    long lat[N];
    int primary = 0, fallback = 0;
    for (int base = 0; base < N; base += ROUND) {
        for (int i = base; i < base + ROUND; i++) {
            char id[16];
            snprintf(id, sizeof(id), "h%d", i);
            cr_assert_eq(th_push_job(rc, id, NULL), 0);
        }
        for (int i = base; i < base + ROUND; i++) {
            char id[16];
            snprintf(id, sizeof(id), "h%d", i);
            json_object *r = th_wait_result(rc, id, 30);
            cr_assert_not_null(r, "no result for %s", id);
            lat[i] = th_field_int(r, "latency_ms");
            primary += strcmp(th_field(r, "source"), "primary") == 0;
            fallback += strcmp(th_field(r, "source"), "fallback") == 0;
            json_object_put(r);
        }
    }
    qsort(lat, N, sizeof(long), cmp_long);
    long p99 = lat[N * 99 / 100 - 1];
    long calls = th_mock_requests(&mock_p, "primary") + th_mock_requests(&mock_p, "backup");
    printf("figures: hedge jobs=%d primary=%d fallback=%d p50_ms=%ld p99_ms=%ld "
           "upstream_calls=%ld calls_per_job=%.3f started=%lld won=%lld cancelled_primary=%lld\n",
           N, primary, fallback, lat[N / 2], p99, calls, (double)calls / N,
           stat_of("hedges:backup:started"), stat_of("hedges:backup:won"),
           stat_of("hedges:primary:cancelled"));
    /* The targets (bench_breaker prints them for the release build); a sanitizer build runs
     * several times slower, so it gets twice the margin over the 300 ms + 50 ms floor. */
    cr_expect_leq(p99, 300 + 50 + 100 * TH_SLOWDOWN, "p99 %ld ms: the hedge cuts the 3 s tail",
                  p99);
    cr_expect_leq(calls, N * (115 + 5 * (TH_SLOWDOWN - 1)) / 100, "%ld calls for %d jobs", calls,
                  N);
    cr_expect_eq(primary + fallback, N);
    cr_expect_gt(stat_of("hedges:backup:started"), 0);
    cr_expect_eq(stat_of("hedges:backup:won"), fallback, "every fallback here is a won hedge");
    cr_expect_eq(stat_of("hedges:primary:cancelled"), fallback,
                 "each won hedge cancels the slow call");
}

Test(hedge, the_primary_still_wins_when_it_answers_first)
{
    start_world("\"hedge_after_ms\": 100");
    /* Primary 300 ms, backup 2 s: the hedge starts at 100 ms, the primary answers at 300. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":300}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"ok\",\"latency_ms\":2000}");
    cr_assert_eq(th_push_job(rc, "pw", NULL), 0);
    json_object *r = th_wait_result(rc, "pw", 20);
    cr_assert_not_null(r);
    cr_expect_str_eq(th_field(r, "source"), "primary");
    cr_expect_lt(th_field_int(r, "latency_ms"), 1000, "the slow hedge is not waited for");
    cr_expect_str_eq(th_attempt(r, 0, "outcome"), "ok");
    cr_expect_str_eq(th_attempt(r, 1, "model"), "backup");
    cr_expect_str_eq(th_attempt(r, 1, "outcome"), "hedge_cancelled");
    json_object_put(r);
    cr_expect_eq(stat_of("hedges:backup:started"), 1);
    cr_expect_eq(stat_of("hedges:backup:cancelled"), 1);
    cr_expect_eq(stat_of("hedges:backup:won"), 0);
}

Test(hedge, a_failing_primary_hands_the_job_to_its_hedge_and_never_hedges_twice)
{
    start_world("\"hedge_after_ms\": 100");
    /* The primary fails after 400 ms (hedge already running); the backup answers at 600 ms. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500,\"latency_ms\":400}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"ok\",\"latency_ms\":600}");
    cr_assert_eq(th_push_job(rc, "fh", NULL), 0);
    json_object *r = th_wait_result(rc, "fh", 20);
    cr_assert_not_null(r);
    cr_expect_str_eq(th_field(r, "source"), "fallback");
    long ms = th_field_int(r, "latency_ms");
    cr_expect(ms >= 600 && ms < 1200, "answered by the hedge at ~700 ms, took %ld", ms);
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 1, "no retry of the primary meanwhile");
    cr_expect_eq(th_mock_requests(&mock_p, "backup"), 1, "one hedge, no second call");
    json_object_put(r);
}

Test(hedge, no_hedge_without_the_route_key)
{
    start_world("\"hedge_after_ms\": 0");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":400}");
    cr_assert_eq(th_push_job(rc, "nh", NULL), 0);
    json_object *r = th_wait_result(rc, "nh", 20);
    cr_assert_not_null(r);
    cr_expect_str_eq(th_field(r, "source"), "primary");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "backup"), 0);
}

Test(hedge, adaptive_hedging_waits_for_the_models_p95)
{
    /* One worker, so it holds every latency sample. */
    start_world_n(1, "\"hedge_after_ms\": 50, \"hedge_adaptive\": true");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":250}");
    for (int i = 0; i < 64; i++) {
        char id[16];
        snprintf(id, sizeof(id), "learn%d", i);
        cr_assert_eq(th_push_job(rc, id, NULL), 0);
    }
    for (int i = 0; i < 64; i++) {
        char id[16];
        snprintf(id, sizeof(id), "learn%d", i);
        json_object *r = th_wait_result(rc, id, 30);
        cr_assert_not_null(r);
        json_object_put(r);
    }
    /* Now the primary hangs: the hedge starts after the learnt ~250 ms, not the 50 ms floor. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":4000}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"ok\",\"latency_ms\":50}");
    cr_assert_eq(th_push_job(rc, "late", NULL), 0);
    json_object *r = th_wait_result(rc, "late", 20);
    cr_assert_not_null(r);
    long ms = th_field_int(r, "latency_ms");
    printf("figures: adaptive hedge_answer_ms=%ld (floor 50 + backup 50 would be ~100)\n", ms);
    cr_expect_str_eq(th_field(r, "source"), "fallback");
    cr_expect(ms >= 290 && ms < 800, "hedged after the p95 (~250 ms) + backup 50 ms: %ld", ms);
    json_object_put(r);
}
