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

/* Primary and backup on two mock "providers"; route_extra adds route keys (retries is 0
 * unless it sets it, so by default one job = one primary failure). */
static void
start_world_route(int workers, const char *primary_extra, const char *breaker,
                  const char *route_extra)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    char cfg[4096];
    snprintf(
        cfg, sizeof(cfg),
        "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": %d,"
        " \"concurrency\": 256, \"drain_timeout_ms\": 2000,"
        " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
        "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"},"
        " \"b\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
        " \"api_key_env\": \"PB_TEST_KEY\"}},"
        " \"models\": {\"primary\": {\"provider\": \"a\", \"timeout_ms\": 1000 %s},"
        " \"backup\": {\"provider\": \"b\", \"tier\": 2}},"
        " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"deadline_ms\": 10000,"
        " %s}},"
        " \"breaker\": %s, \"monitor\": {\"metrics_listen\": \"\"}}",
        redis_p.port, workers, mock_p.port, mock_p.port, primary_extra ? primary_extra : "",
        route_extra ? route_extra : "\"retries\": 0", breaker);
    th_serve(&planb_p, cfg);
}

static void
start_world(int workers, const char *primary_extra, const char *breaker)
{
    start_world_route(workers, primary_extra, breaker, NULL);
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

static char st_open[] = "open", st_closed[] = "closed", st_half_open[] = "half_open";

static bool
breaker_is(void *state)
{
    char buf[32];
    return strcmp(th_hget(rc, "planb:breaker:primary", "state", buf, sizeof(buf)),
                  (const char *)state) == 0;
}

/* Redis's clock in ms (the breaker's times are in it). */
static long long
redis_now_ms(void)
{
    redisReply *t = redisCommand(rc, "TIME");
    long long now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    return now;
}

/* Redis time has passed the breaker's open_until: the next attempt may probe. */
static bool
open_time_over(void *arg)
{
    (void)arg;
    char buf[32];
    long long until = atoll(th_hget(rc, "planb:breaker:primary", "open_until", buf, sizeof(buf)));
    return until > 0 && redis_now_ms() >= until;
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

/* Pushes n jobs "<tag><i>" and waits for all; counts sources and first-attempt outcomes. */
typedef struct tally {
    int primary, fallback, first_outcome_hits;
} tally;

static tally
run_many(const char *tag, int n, const char *first_outcome)
{
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%d", tag, i);
        cr_assert_eq(th_push_job(rc, id, NULL), 0);
    }
    tally t = {0};
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%d", tag, i);
        json_object *r = th_wait_result(rc, id, 60);
        cr_assert_not_null(r, "no result for %s", id);
        t.primary += strcmp(th_field(r, "source"), "primary") == 0;
        t.fallback += strcmp(th_field(r, "source"), "fallback") == 0;
        if (first_outcome)
            t.first_outcome_hits += strcmp(th_attempt(r, 0, "outcome"), first_outcome) == 0;
        json_object_put(r);
    }
    return t;
}

static long long
stat_of(const char *field)
{
    char buf[32];
    return atoll(th_hget(rc, "planb:stats", field, buf, sizeof(buf)));
}

Test(breaker, one_percent_noise_never_opens_it)
{
    /* Default breaker settings; each random failure is cured by the one retry. */
    start_world_route(2, NULL, "{}", "\"retries\": 1, \"backoff_ms\": 0");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"fail_rate\":0.01,\"fail_status\":500}");
    tally t = run_many("n", 3000, NULL);
    long failed = th_mock_requests(&mock_p, "primary") - 3000;
    printf("figures: noise jobs=3000 primary=%d fallback=%d primary_failures~=%ld opened=%lld\n",
           t.primary, t.fallback, failed, stat_of("breaker:primary:open"));
    cr_expect_geq(t.primary, 2940, "the primary answers >= 98%% (%d)", t.primary);
    cr_expect_eq(stat_of("breaker:primary:open"), 0, "the breaker never opened");
    cr_expect_gt(failed, 0, "the mock did fail some calls");
}

Test(breaker, a_high_failure_rate_opens_it_without_a_run_of_failures)
{
    /* consecutive 0: only the rate rule; 60% failures at random over >= 20 calls. */
    start_world(1, NULL, "{\"consecutive\": 0, \"min_calls\": 20, \"failure_rate\": 0.5}");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"fail_rate\":0.6,\"fail_status\":502}");
    for (int i = 0; i < 60 && !breaker_is(st_open); i++) {
        char id[16];
        snprintf(id, sizeof(id), "fr%d", i);
        json_object_put(run(id));
    }
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20), "the failure rate opened it");
    char buf[32];
    cr_expect_geq(atoll(th_hget(rc, "planb:breaker:primary", "w_calls", buf, sizeof(buf))), 0);
    cr_expect_eq(stat_of("breaker:primary:open"), 1);
}

Test(breaker, slow_calls_open_it)
{
    start_world(1, NULL,
                "{\"consecutive\": 0, \"min_calls\": 5, \"slow_call_ms\": 150, "
                "\"slow_call_rate\": 0.5}");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"slow_rate\":1,\"slow_ms\":200}");
    for (int i = 0; i < 20 && !breaker_is(st_open); i++) {
        char id[16];
        snprintf(id, sizeof(id), "sl%d", i);
        json_object *r = run(id);
        cr_expect_str_eq(th_field(r, "source"), "primary", "slow answers still answer");
        json_object_put(r);
    }
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20), "slow answers opened it");
    json_object *r = run("after-slow");
    cr_expect_str_eq(th_attempt(r, 0, "outcome"), "breaker_open");
    json_object_put(r);
}

Test(breaker, failed_probes_double_the_open_time_and_half_open_lets_n_through)
{
    start_world(1, NULL,
                "{\"failures\": 2, \"open_s\": 1, \"max_open_s\": 3, \"half_open_calls\": 2}");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":503}");
    json_object_put(run("o1"));
    json_object_put(run("o2"));
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20));
    char buf[32];
    cr_expect_str_eq(th_hget(rc, "planb:breaker:primary", "open_ms", buf, sizeof(buf)), "1000");
    cr_assert(th_wait_for(open_time_over, NULL, 100, 50));
    json_object_put(run("probe-fails"));
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20));
    cr_expect_str_eq(th_hget(rc, "planb:breaker:primary", "open_ms", buf, sizeof(buf)), "2000",
                     "a failed probe doubles the open time");
    cr_assert(th_wait_for(open_time_over, NULL, 100, 50));
    json_object_put(run("probe-fails-2"));
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20));
    cr_expect_str_eq(th_hget(rc, "planb:breaker:primary", "open_ms", buf, sizeof(buf)), "3000",
                     "capped by max_open_s");
    /* Recovery needs half_open_calls = 2 good probes. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\"}");
    cr_assert(th_wait_for(open_time_over, NULL, 100, 50));
    json_object *r = run("good-1");
    cr_expect_str_eq(th_field(r, "source"), "primary");
    json_object_put(r);
    cr_expect(breaker_is(st_half_open), "one good probe is not enough");
    r = run("good-2");
    cr_expect_str_eq(th_field(r, "source"), "primary");
    json_object_put(r);
    cr_expect(breaker_is(st_closed), "two good probes close it");
    cr_expect_str_eq(th_hget(rc, "planb:breaker:primary", "open_ms", buf, sizeof(buf)), "1000",
                     "closing resets the open time");
}

/* A subscriber on planb:alerts that collects what arrives within a bounded wait. */
static int
count_alerts(redisContext *sub, const char *type, const char *model)
{
    int n = 0;
    redisReply *r;
    while (redisGetReply(sub, (void **)&r) == REDIS_OK && r != NULL) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            json_object *o = json_tokener_parse(r->element[2]->str);
            n += o && strcmp(th_field(o, "type"), type) == 0 &&
                 strcmp(th_field(o, "model"), model) == 0;
            json_object_put(o);
        }
        freeReplyObject(r);
    }
    return n;
}

Test(breaker, a_refused_key_is_skipped_everywhere_with_one_alert)
{
    start_world(2, NULL, "{\"refused_hold_s\": 30}");
    redisContext *sub = th_redis(redis_p.port);
    redisReply *r0 = redisCommand(sub, "SUBSCRIBE planb:alerts");
    freeReplyObject(r0);
    struct timeval tv = {1, 0};
    redisSetTimeout(sub, tv);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"status\",\"status\":401,\"error_type\":\"authentication_error\"}");
    json_object *r = run("k0");
    cr_expect_str_eq(th_attempt(r, 0, "outcome"), "http_401");
    cr_expect_str_eq(th_field(r, "source"), "fallback");
    json_object_put(r);
    th_wait_for(never, NULL, 2, 300); /* both workers' views have the hold */
    tally t = run_many("kr", 30, "key_refused");
    cr_expect_eq(t.fallback, 30);
    cr_expect_eq(t.first_outcome_hits, 30, "every later job skipped the model with no call");
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 1, "only the first job paid a round trip");
    cr_expect_eq(count_alerts(sub, "model_refused", "primary"), 1, "one alert names the model");
    cr_expect_eq(stat_of("breaker:primary:refused"), 1);
    cr_expect_eq(stat_of("breaker:primary:open"), 0, "a refused key does not open the breaker");
    redisFree(sub);
}

static bool
hold_at_most_2s(void *arg)
{
    (void)arg;
    char buf[32];
    long long nb = atoll(th_hget(rc, "planb:breaker:primary", "not_before", buf, sizeof(buf)));
    long long now = redis_now_ms();
    return nb > now && nb - now <= 2000;
}

Test(breaker, a_long_retry_after_hold_is_capped_by_max_hold_s)
{
    start_world(1, NULL, "{\"max_hold_s\": 2}");
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"status\",\"status\":503,\"retry_after\":\"3600\"}");
    json_object_put(run("h0"));
    cr_assert(th_wait_for(hold_at_most_2s, NULL, 50, 20), "the one-hour hold became 2 s");
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\"}");
    cr_assert(th_wait_for(never, NULL, 25, 100) == false); /* 2.5 s: the hold is over */
    json_object *r = run("h1");
    cr_expect_str_eq(th_field(r, "source"), "primary");
    json_object_put(r);
}

Test(breaker, two_serve_processes_share_the_state)
{
    start_world(1, NULL, "{\"failures\": 3}");
    /* A second `planb serve` on the same Redis, claiming from its own queue. */
    th_proc other = {0};
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,"
             " \"queues\": [\"other\"], \"drain_timeout_ms\": 2000,"
             " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"primary\": {\"provider\": \"a\"}, \"backup\": {\"provider\": \"a\"}},"
             " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"retries\": 0}},"
             " \"breaker\": {\"failures\": 3}, \"monitor\": {\"metrics_listen\": \"\"}}",
             redis_p.port, mock_p.port);
    th_serve(&other, cfg);
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "sh%d", i);
        json_object_put(run(id));
    }
    cr_assert(th_wait_for(breaker_is, st_open, 50, 20));
    th_wait_for(never, NULL, 2, 300); /* the other process's view hears of it */
    long calls = th_mock_requests(&mock_p, "primary");
    for (int i = 0; i < 5; i++) {
        char job[256], id[16];
        snprintf(id, sizeof(id), "os%d", i);
        snprintf(job, sizeof(job),
                 "{\"id\": \"%s\", \"reply\": true, \"messages\": [{\"role\": \"user\", "
                 "\"content\": \"q %d\"}]}",
                 id, i);
        redisReply *p = redisCommand(rc, "LPUSH planb:q:other %s", job);
        freeReplyObject(p);
        json_object *r = th_wait_result(rc, id, 20);
        cr_assert_not_null(r);
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "breaker_open",
                         "the other serve skips the model the first one opened");
        json_object_put(r);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), calls);
    th_planb_stop_clean(&other);
}
