/* test_loading.c -- a Redis restart on a dataset big enough that loading takes seconds.
 *
 * Label "slow" (docs/contributing.md "Working on planb"): it writes a few million keys with
 * DEBUG POPULATE, rewrites the AOF, then restarts Redis while 500 jobs (2-s
 * upstream) are in flight. Redis answers -LOADING for seconds; planb must keep
 * every finished result, hand nothing back (the outage outlasts no lease, but
 * the heartbeats stop) and store 500 of 500 results within the loading time +
 * 5 s, with 500 upstream calls. PB_LOADING_KEYS sets the dataset size
 * (default 6000000, about 10 s of loading here). Prints one "figures:" line. Its twin
 * slow.test_loading_tls runs it with PB_TEST_TLS=1: planb on the server's TLS port. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "planb/core.h"
#include "th_fleet.h"
#include "th_jobs.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

static void
teardown(void)
{
    th_planb_stop(&planb_p, 15000);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(loading, .fini = teardown, .timeout = 600);

static bool
in_flight(void *arg)
{
    return th_fleet_inflight(rc) >= *(int *)arg;
}

static bool
all_done(void *arg)
{
    return th_fleet_results(rc, "L", *(int *)arg) == *(int *)arg;
}

static bool
aof_rewritten(void *arg)
{
    (void)arg;
    redisReply *r = redisCommand(rc, "INFO persistence");
    bool done = r && r->type == REDIS_REPLY_STRING &&
                strstr(r->str, "aof_rewrite_in_progress:0") != NULL &&
                strstr(r->str, "aof_rewrite_scheduled:0") != NULL;
    freeReplyObject(r);
    return done;
}

/* True once the restarted server has finished loading (INFO answers during LOADING). */
static bool
loaded(void *arg)
{
    (void)arg;
    redisContext *c = th_redis(redis_p.port);
    redisReply *r = redisCommand(c, "INFO persistence");
    bool done = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "\r\nloading:0") != NULL;
    freeReplyObject(r);
    redisFree(c);
    return done;
}

Test(loading, restart_with_seconds_of_loading_and_500_in_flight)
{
    const char *keys_env = getenv("PB_LOADING_KEYS");
    long keys = keys_env ? atol(keys_env) : 6000000;
    th_world_start(&redis_p, &mock_p,
                   "appendonly yes\nappendfsync everysec\nenable-debug-command local\n", &rc);
    int64_t t_pop = pb_mono_ms();
    redisReply *r = redisCommand(rc, "DEBUG POPULATE %ld filler 64", keys);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "DEBUG POPULATE: %s", r ? r->str : rc->errstr);
    freeReplyObject(r);
    r = redisCommand(rc, "BGREWRITEAOF");
    freeReplyObject(r);
    cr_assert(th_wait_for(aof_rewritten, NULL, 1200, 100), "AOF rewrite did not finish");
    double populate_s = (double)(pb_mono_ms() - t_pop) / 1000.0;

    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":2000}"), 0);
    static char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {%s}, \"workers\": 2,"
             " \"concurrency\": 512, \"providers\": {\"mockai\": {\"type\": \"openai\","
             " \"base_url\": \"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"primary\": {\"provider\": \"mockai\", \"timeout_ms\": 8000}},"
             " \"routes\": {\"default\": {\"chain\": [\"primary\"], \"retries\": 0,"
             " \"deadline_ms\": 30000}}}",
             th_redis_json(&redis_p), mock_p.port);
    th_serve(&planb_p, cfg);
    int n = 500;
    cr_assert_eq(th_fleet_push(rc, "L", n, NULL), 0);
    cr_assert(th_wait_for(in_flight, &n, 400, 25), "500 jobs never got in flight");

    redisFree(rc);
    rc = NULL;
    int64_t t0 = pb_mono_ms();
    th_proc_stop(&redis_p, 60000); /* SIGTERM: the AOF is fsynced, nothing saved as RDB */
    cr_assert_eq(th_redis_restart_loading(&redis_p, true), 0);
    int64_t t_up = pb_mono_ms();
    cr_assert(th_wait_for(loaded, NULL, 1200, 50), "Redis did not finish loading");
    int64_t t_loaded = pb_mono_ms();
    rc = th_redis(redis_p.port);
    th_wait_for(all_done, &n, 600, 50);
    int64_t t_done = pb_mono_ms();
    int got = th_fleet_results(rc, "L", n);
    long long dups = th_fleet_int(rc, "XLEN %s", "planb:events") - got;
    int replies = th_fleet_replies_once(rc, "L", n);
    long calls = th_mock_requests(&mock_p, "primary");
    long long handbacks = th_fleet_int(rc, "HGET %s handbacks", "planb:stats");
    long long held = th_fleet_int(rc, "HGET %s finish:held", "planb:stats");
    long long graces = th_fleet_int(rc, "HGET %s reaper:graces", "planb:stats");
    double loading_s = (double)(t_loaded - t_up) / 1000.0;
    double after_load_s = (double)(t_done - t_loaded) / 1000.0;
    fprintf(stderr,
            "figures: loading keys=%ld populate_s=%.1f pushed=%d results=%d replies_once=%d "
            "duplicates=%lld upstream_calls=%ld held=%lld handbacks=%lld reaper_graces=%lld "
            "down_to_loaded_s=%.2f loading_s=%.2f done_after_loaded_s=%.2f\n",
            keys, populate_s, n, got, replies, dups, calls, held, handbacks, graces,
            (double)(t_loaded - t0) / 1000.0, loading_s, after_load_s);
    cr_expect_eq(got, n, "every job has a result");
    cr_expect_eq(replies, n);
    cr_expect_eq(dups, 0);
    cr_expect_eq(calls, n, "every job ran upstream once");
    cr_expect_leq(handbacks, 0, "nothing was handed back");
    cr_expect_lt(after_load_s, 5.0, "all results within loading time + 5 s");
    cr_expect_gt(loading_s, 2.0, "the dataset took seconds to load");
}
