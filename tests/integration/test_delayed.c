/* test_delayed.c -- delayed jobs (run_at_ms, delay_ms) through real planb processes.
 *
 * World: redis-server, planb-mock (model m answers at once) and one `planb serve`
 * (2 workers, its monitor promoting every 50 ms); the fleet test starts a second
 * `planb serve` on the same Redis, so two monitors promote side by side.
 *
 * When a job ran is measured twice: by its result's queued_ms (the worker's claim minus
 * the later of submitted_at_ms and run_at_ms, worker clock) and on Redis's clock from
 * planb:events (the entry id's ms, when finish.lua stored the result, minus latency_ms,
 * claim to finish: a little after the claim, so it can only overstate lateness). The
 * test, Redis and planb share one host clock. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "harness.h"
#include "th_fleet.h"
#include "th_jobs.h"

#define FLEET_JOBS      200
#define FLEET_MAX_DELAY 2000 /* ms */
#define LATE_MAX_MS     100  /* the bound */

static th_proc redis_p, mock_p, planb_p, planb2_p;
static redisContext *rc;
static int metrics_port;

static long long
now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static const char *
config(int port)
{
    static char cfg[2048];
    char metrics[128] = "";
    if (port > 0)
        snprintf(metrics, sizeof(metrics), ", \"monitor\": {\"metrics_listen\": \"127.0.0.1:%d\"}",
                 port);
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 2,"
             " \"concurrency\": 64, \"drain_timeout_ms\": 2000,"
             " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"m\": {\"provider\": \"a\"}},"
             " \"routes\": {\"default\": {\"chain\": [\"m\"], \"retries\": 0}}"
             "%s}",
             redis_p.port, mock_p.port, metrics);
    return cfg;
}

static void
setup(void)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    metrics_port = th_free_port();
    th_serve(&planb_p, config(metrics_port));
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_planb_stop_clean(&planb2_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(delayed, .init = setup, .fini = teardown, .timeout = 90);

static void
push(const char *id, const char *extra)
{
    cr_assert_eq(th_push_job(rc, id, extra), 0);
}

/* A planb:stats counter, 0 when absent. */
static long long
stat_of(const char *field)
{
    long long v = th_fleet_int(rc, "HGET planb:stats %s", field);
    return v < 0 ? 0 : v;
}

static bool
result_exists(void *arg)
{
    return th_fleet_int(rc, "EXISTS planb:result:%s", arg) == 1;
}

/* The claim time of id on Redis's clock (see the file comment), -1 when not in planb:events. */
static long long
claim_ms_from_events(const char *id)
{
    redisReply *r = redisCommand(rc, "XRANGE planb:events - +");
    long long at = -1;
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements && at < 0; i++) {
        redisReply *e = r->element[i];
        json_object *res = json_tokener_parse(e->element[1]->element[1]->str);
        if (res && strcmp(th_field(res, "id"), id) == 0)
            at = atoll(e->element[0]->str) - th_field_int(res, "latency_ms");
        json_object_put(res);
    }
    freeReplyObject(r);
    return at;
}

/* stdout of `planb stats` (no --json) against the first planb's config; caller frees. */
static char *
stats_text(void)
{
    char cmd[1024], *out = calloc(1, 8192);
    snprintf(cmd, sizeof(cmd), "%s stats -c %s/planb.json", th_bin("planb"), planb_p.dir);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, 8191, f);
    out[n] = '\0';
    cr_expect_eq(pclose(f), 0);
    return out;
}

static bool
workers_up(void *arg)
{
    return th_fleet_int(rc, "ZCARD %s", "planb:workers") >= *(const int *)arg;
}

/* Waits for n workers and for one delayed job to come back (a monitor promotes), then clears
 * the counters, so a test starts on a running fleet. */
static void
warm_up(int n)
{
    cr_assert(th_wait_for(workers_up, &n, 200, 25), "%d workers never came up", n);
    char id[] = "warm";
    push(id, "\"delay_ms\":50");
    cr_assert(th_wait_for(result_exists, id, 200, 25), "the warm-up job never ran");
    freeReplyObject(redisCommand(rc, "DEL planb:stats planb:events planb:reply:warm"));
    th_mock_reset(&mock_p);
}

Test(delayed, zero_short_long_and_past_delays_run_on_time)
{
    char id_d0[] = "d0", id_past[] = "past", id_d300[] = "d300", id_d1500[] = "d1500";
    warm_up(2);
    long long t0 = now_ms();
    char extra[256];
    snprintf(extra, sizeof(extra), "\"submitted_at_ms\":%lld,\"delay_ms\":0", t0);
    push("d0", extra);
    snprintf(extra, sizeof(extra), "\"submitted_at_ms\":%lld,\"delay_ms\":300", t0);
    push("d300", extra);
    snprintf(extra, sizeof(extra), "\"submitted_at_ms\":%lld,\"delay_ms\":1500", t0);
    push("d1500", extra);
    snprintf(extra, sizeof(extra), "\"run_at_ms\":%lld", t0 - 60000);
    push("past", extra);

    cr_assert(th_wait_for(result_exists, id_d0, 100, 20), "delay_ms 0 runs at once");
    cr_assert(th_wait_for(result_exists, id_past, 100, 20), "a run_at_ms in the past runs at once");
    cr_expect_lt(now_ms() - t0, 1000);
    /* Not before their time: while they wait they are in the delayed set, with no result. */
    cr_expect_eq(th_fleet_int(rc, "EXISTS planb:result:%s", "d300"), 0);
    cr_expect_eq(th_fleet_int(rc, "EXISTS planb:result:%s", "d1500"), 0);

    cr_assert(th_wait_for(result_exists, id_d300, 100, 10));
    /* The 1500 ms job still waits: `planb stats` and /metrics count it. */
    char *text = stats_text();
    cr_expect_not_null(strstr(text, "scheduled  default=1\n"), "%s", text);
    free(text);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
    cr_assert(th_wait_for(th_http_up, url, 100, 20));
    long status = 0;
    char *body = th_http("GET", url, NULL, &status);
    cr_expect_not_null(strstr(body, "planb_scheduled_jobs{queue=\"default\"} 1\n"), "%s", body);
    free(body);
    redisReply *r = redisCommand(rc, "ZRANGE planb:delayed:default 0 -1 WITHSCORES");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    cr_expect_not_null(strstr(r->element[0]->str, "\"run_at_ms\":"), "%s", r->element[0]->str);
    cr_expect_null(strstr(r->element[0]->str, "delay_ms"), "delay_ms replaced by its run_at_ms");
    cr_expect_eq(atoll(r->element[1]->str), t0 + 1500, "score = submitted_at_ms + delay_ms");
    freeReplyObject(r);

    cr_assert(th_wait_for(result_exists, id_d1500, 200, 10));
    const char *ids[] = {"d0", "d300", "d1500", "past"};
    const long long at[] = {t0, t0 + 300, t0 + 1500, t0 - 60000};
    for (int i = 0; i < 4; i++) {
        json_object *res = th_wait_result(rc, ids[i], 5);
        cr_assert_not_null(res, "%s", ids[i]);
        cr_expect_str_eq(th_field(res, "status"), "ok", "%s", ids[i]);
        long long claim = claim_ms_from_events(ids[i]);
        if (i < 3) { /* the past one is as late as it was pushed */
            cr_expect_geq(claim, at[i], "%s claimed %lld ms early", ids[i], at[i] - claim);
            cr_expect_leq(claim - at[i], LATE_MAX_MS, "%s late by %lld ms", ids[i], claim - at[i]);
            cr_expect_leq(th_field_int(res, "queued_ms"), LATE_MAX_MS, "%s", ids[i]);
        }
        printf("figures: %s late_ms=%lld queued_ms=%lld\n", ids[i], claim - at[i],
               (long long)th_field_int(res, "queued_ms"));
        json_object_put(res);
    }
    cr_expect_eq(stat_of("delayed:deferred"), 2);
    cr_expect_eq(stat_of("delayed:promoted"), 2);
    cr_expect_eq(th_fleet_int(rc, "ZCARD %s", "planb:delayed:default"), 0);
}

Test(delayed, a_bad_delay_is_refused_not_delayed)
{
    push("both", "\"run_at_ms\":1,\"delay_ms\":1");
    push("neg", "\"delay_ms\":-1");
    json_object *res = th_wait_result(rc, "both", 10);
    cr_assert_not_null(res);
    cr_expect_str_eq(th_field(res, "error"), "BAD_FIELD run_at_ms and delay_ms exclude each other");
    json_object_put(res);
    res = th_wait_result(rc, "neg", 10);
    cr_assert_not_null(res);
    cr_expect_str_eq(th_field(res, "status"), "invalid");
    json_object_put(res);
    cr_expect_eq(th_fleet_int(rc, "ZCARD %s", "planb:delayed:default"), 0);
    /* The documented gap: a second "delay_ms" key (in meta) makes the rewrite ambiguous, so
     * the job is not delayed. */
    push("ambiguous", "\"delay_ms\":60000,\"meta\":{\"delay_ms\":1}");
    res = th_wait_result(rc, "ambiguous", 10);
    cr_assert_not_null(res, "runs at once");
    cr_expect_str_eq(th_field(res, "status"), "ok");
    json_object_put(res);
    cr_expect_eq(stat_of("delayed:deferred"), 0);
}

Test(delayed, two_hosts_monitors_promote_each_job_once_and_on_time)
{
    th_serve(&planb2_p, config(0));
    warm_up(4);
    srand(42);
    long long run_at[FLEET_JOBS], t0 = now_ms();
    for (int i = 0; i < FLEET_JOBS; i++) {
        char id[32], extra[160];
        long long d = rand() % (FLEET_MAX_DELAY + 1);
        snprintf(id, sizeof(id), "f%d", i);
        run_at[i] = t0 + d;
        if (i % 2 == 0)
            snprintf(extra, sizeof(extra), "\"submitted_at_ms\":%lld,\"delay_ms\":%lld", t0, d);
        else
            snprintf(extra, sizeof(extra), "\"run_at_ms\":%lld", run_at[i]);
        push(id, extra);
    }
    /* While they wait, planb stats shows them scheduled. */
    char *text = stats_text();
    char *line = strstr(text, "scheduled  default=");
    cr_assert_not_null(line, "%s", text);
    long shown = atol(line + strlen("scheduled  default="));
    cr_expect_gt(shown, 0, "%s", text);
    free(text);

    long long late_max = 0, early_max = 0, queued_max = 0;
    for (int i = 0; i < FLEET_JOBS; i++) {
        char id[32];
        snprintf(id, sizeof(id), "f%d", i);
        json_object *res = th_wait_result(rc, id, 10);
        cr_assert_not_null(res, "no result for %s", id);
        cr_expect_str_eq(th_field(res, "status"), "ok", "%s", id);
        long long claim = claim_ms_from_events(id);
        cr_assert_geq(claim, 0, "%s not in planb:events", id);
        if (claim - run_at[i] > late_max)
            late_max = claim - run_at[i];
        if (run_at[i] - claim > early_max)
            early_max = run_at[i] - claim;
        if (th_field_int(res, "queued_ms") > queued_max)
            queued_max = th_field_int(res, "queued_ms");
        json_object_put(res);
    }
    /* Each answered exactly once: one upstream call, one result, one events entry per job. */
    cr_expect_eq(th_mock_requests(&mock_p, "m"), FLEET_JOBS);
    cr_expect_eq(stat_of("jobs"), FLEET_JOBS);
    cr_expect_eq(stat_of("duplicates"), 0);
    cr_expect_eq(th_fleet_int(rc, "XLEN %s", "planb:events"), FLEET_JOBS);
    long long deferred = stat_of("delayed:deferred");
    cr_expect_eq(stat_of("delayed:promoted"), deferred, "every deferred job promoted once");
    cr_expect_eq(th_fleet_int(rc, "ZCARD %s", "planb:delayed:default"), 0);
    printf("figures: jobs=%d deferred=%lld scheduled_shown=%ld late_max_ms=%lld "
           "early_max_ms=%lld queued_max_ms=%lld\n",
           FLEET_JOBS, deferred, shown, late_max, early_max, queued_max);
    cr_expect_leq(late_max, LATE_MAX_MS);
    cr_expect_leq(queued_max, LATE_MAX_MS);
    cr_expect_eq(early_max, 0, "a job ran %lld ms before its run_at", early_max);
}
