/* test_cancel.c -- cancelling jobs (cancel.lua, `planb cancel`, the workers' planb:cancel).
 *
 * World: redis-server and planb-mock (model m); `planb serve` (1 worker) is started by each
 * test when it needs it, so a job can be cancelled while nothing runs it. Every cancelled job
 * must get exactly one result, status cancelled, on its reply list; a finished one keeps its
 * own. `planb cancel` runs against the same config file the serve uses. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "th_fleet.h"
#include "th_jobs.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;
static char cfg_dir[64];

static const char *
config(void)
{
    static char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,"
             " \"concurrency\": 8, \"drain_timeout_ms\": 1000,"
             " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"m\": {\"provider\": \"a\", \"timeout_ms\": 20000},"
             " \"h\": {\"provider\": \"a\", \"timeout_ms\": 20000}},"
             " \"routes\": {\"default\": {\"chain\": [\"m\"], \"retries\": 2,"
             " \"deadline_ms\": 30000},"
             " \"hedged\": {\"chain\": [\"m\", \"h\"], \"retries\": 0, \"hedge_after_ms\": 100,"
             " \"deadline_ms\": 30000}}}",
             redis_p.port, mock_p.port);
    return cfg;
}

static void
setup(void)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    snprintf(cfg_dir, sizeof(cfg_dir), "/tmp/pb-cancel-XXXXXX");
    cr_assert_not_null(mkdtemp(cfg_dir));
    th_write_file(cfg_dir, "planb.json", config());
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", cfg_dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(cancel, .init = setup, .fini = teardown, .timeout = 60);

/* `planb cancel -c <config> id`: its exit code, its one line in out (out_cap bytes). */
static int
cancel_cli(const char *id, char *out, size_t out_cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s cancel -c %s/planb.json %s", th_bin("planb"), cfg_dir, id);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, out_cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long long
count(const char *fmt, const char *arg)
{
    return th_fleet_int(rc, fmt, arg);
}

/* Exactly one result on id's reply list, status want; returns it (caller puts). */
static json_object *
one_result(const char *id, const char *want, double timeout_s)
{
    json_object *res = th_wait_result(rc, id, timeout_s);
    cr_assert_not_null(res, "no result for %s", id);
    cr_assert_str_eq(th_field(res, "status"), want, "%s: %s", id, json_object_to_json_string(res));
    cr_assert_eq(count("LLEN planb:reply:%s", id), 0, "%s: a second result", id);
    return res;
}

static bool
has_delayed(void *arg)
{
    return th_fleet_int(rc, "ZCARD planb:delayed:%s", arg) > 0;
}

static void
serve(void)
{
    th_serve(&planb_p, config());
}

Test(cancel, queued_job_never_runs)
{
    cr_assert_eq(th_push_job(rc, "q1", NULL), 0);
    char out[256];
    cr_assert_eq(cancel_cli("q1", out, sizeof(out)), 0, "%s", out);
    cr_expect(strstr(out, "cancelled q1") != NULL, "%s", out);
    cr_expect_eq(count("LLEN planb:q:%s", "default"), 0);
    cr_expect_eq(count("EXISTS planb:cancelled:%s", "q1"), 1);
    json_object *res = one_result("q1", "cancelled", 1);
    json_object_put(res);
    cr_expect_eq(count("HGET planb:stats %s", "cancelled"), 1);
    cr_expect_eq(count("HGET planb:stats %s", "jobs"), 1);
    cr_expect_eq(count("HGET planb:stats %s", "jobs:default:none"), 1);
    serve();
    cr_assert_eq(th_push_job(rc, "q2", NULL), 0); /* a later job runs: the worker is up */
    json_object_put(one_result("q2", "ok", 10));
    cr_expect_eq(th_mock_requests(&mock_p, "m"), 1, "only q2 reached the mock");
    cr_expect_eq(count("LLEN planb:reply:%s", "q1"), 0);
}

Test(cancel, delayed_job_never_runs)
{
    serve();
    cr_assert_eq(th_push_job(rc, "d1", "\"delay_ms\":3000"), 0);
    cr_assert(th_wait_for(has_delayed, (char[]){"default"}, 200, 25), "never delayed");
    char out[256];
    cr_assert_eq(cancel_cli("d1", out, sizeof(out)), 0, "%s", out);
    cr_expect_eq(count("ZCARD planb:delayed:%s", "default"), 0);
    json_object_put(one_result("d1", "cancelled", 1));
    usleep(3500 * 1000); /* past its time: nothing may run it now */
    cr_expect_eq(th_mock_requests(&mock_p, "m"), 0);
    cr_expect_eq(count("LLEN planb:reply:%s", "d1"), 0);
}

Test(cancel, finished_job_keeps_its_result)
{
    serve();
    cr_assert_eq(th_push_job(rc, "f1", NULL), 0);
    json_object_put(one_result("f1", "ok", 10));
    redisReply *before = redisCommand(rc, "GET planb:result:f1");
    char out[256];
    cr_assert_eq(cancel_cli("f1", out, sizeof(out)), 6, "%s", out);
    cr_expect(strstr(out, "already finished") != NULL, "%s", out);
    redisReply *after = redisCommand(rc, "GET planb:result:f1");
    cr_expect_str_eq(after->str, before->str);
    freeReplyObject(before);
    freeReplyObject(after);
    cr_expect_eq(count("LLEN planb:reply:%s", "f1"), 0);
    cr_expect_eq(count("HGET planb:stats %s", "cancelled"), -1);
}

Test(cancel, unknown_id)
{
    char out[256];
    cr_assert_eq(cancel_cli("nobody", out, sizeof(out)), 1, "%s", out);
    cr_expect(strstr(out, "not found") != NULL, "%s", out);
    cr_expect_eq(count("EXISTS planb:result:%s", "nobody"), 0);
}
