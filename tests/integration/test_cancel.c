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

/* The mock's calls held open right now, -1 when it does not answer. */
static long
mock_pending(void)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/stats", mock_p.port);
    long status;
    char *body = th_http("GET", url, NULL, &status);
    json_object *o = body != NULL && status == 200 ? json_tokener_parse(body) : NULL;
    free(body);
    json_object *v;
    long n = o != NULL && json_object_object_get_ex(o, "pending", &v) ? json_object_get_int(v) : -1;
    json_object_put(o);
    return n;
}

static bool
pending_is(void *arg)
{
    return mock_pending() == *(const long *)arg;
}

static void
wait_pending(long n)
{
    cr_assert(th_wait_for(pending_is, &n, 400, 25), "the mock never held %ld calls (%ld)", n,
              mock_pending());
}

/* How many of res's attempts have outcome "cancelled". */
static int
cancelled_attempts(json_object *res)
{
    json_object *a;
    int n = 0;
    if (!json_object_object_get_ex(res, "attempts", &a))
        return -1;
    for (size_t i = 0; i < json_object_array_length(a); i++)
        n += strcmp(th_field(json_object_array_get_idx(a, i), "outcome"), "cancelled") == 0;
    return n;
}

/* Cancels id while the worker runs it; returns its one result (caller puts). */
static json_object *
cancel_running(const char *id)
{
    char out[256];
    cr_assert_eq(cancel_cli(id, out, sizeof(out)), 0, "%s", out);
    cr_expect(strstr(out, "told to stop") != NULL, "%s", out);
    json_object *res = one_result(id, "cancelled", 3);
    wait_pending(0); /* the upstream call was closed */
    cr_expect_str_eq(th_field(res, "source"), "");
    return res;
}

Test(cancel, mid_attempt_aborts_the_call_without_retry)
{
    serve();
    th_mock_set(&mock_p, "m", "{\"mode\":\"hang\"}");
    cr_assert_eq(th_push_job(rc, "a1", NULL), 0);
    wait_pending(1);
    json_object *res = cancel_running("a1");
    cr_expect_eq(cancelled_attempts(res), 1, "%s", json_object_to_json_string(res));
    json_object_put(res);
    usleep(300 * 1000);
    cr_expect_eq(th_mock_requests(&mock_p, "m"), 1, "retried after the cancel");
    cr_expect_eq(count("HGET planb:stats %s", "cancelled"), 1);
    cr_expect_eq(count("HGET planb:stats %s", "jobs:default:none"), 1);
}

Test(cancel, mid_stream_ends_the_stream)
{
    serve();
    th_mock_set(&mock_p, "m",
                "{\"mode\":\"ok\",\"reply\":\"one two three four five six seven eight nine ten\","
                "\"chunk_interval_ms\":300}");
    cr_assert_eq(th_push_job(rc, "s1", "\"stream\":true"), 0);
    wait_pending(1);
    usleep(400 * 1000); /* a delta or two on the stream */
    json_object *res = cancel_running("s1");
    cr_expect_eq(cancelled_attempts(res), 1, "%s", json_object_to_json_string(res));
    json_object_put(res);
    redisReply *r = redisCommand(rc, "XREVRANGE planb:stream:s1 + - COUNT 1");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    cr_expect_str_eq(r->element[0]->element[1]->element[1]->str, "end");
    freeReplyObject(r);
}

Test(cancel, mid_hedge_aborts_both_calls)
{
    serve();
    th_mock_set(&mock_p, "m", "{\"mode\":\"hang\"}");
    th_mock_set(&mock_p, "h", "{\"mode\":\"hang\"}");
    cr_assert_eq(th_push_job(rc, "h1", "\"route\":\"hedged\""), 0);
    wait_pending(2);
    json_object *res = cancel_running("h1");
    cr_expect_eq(cancelled_attempts(res), 2, "%s", json_object_to_json_string(res));
    json_object_put(res);
}

Test(cancel, claimed_after_the_cancel_never_runs)
{
    /* Cancelled before it is in any queue (as when its worker claimed it just before the
     * cancel, and a crash handed it back): claim.lua hands it over as cancelled. */
    char out[256];
    cr_assert_eq(cancel_cli("late1", out, sizeof(out)), 1, "%s", out);
    cr_assert_eq(th_push_job(rc, "late1", NULL), 0);
    serve();
    json_object *res = one_result("late1", "cancelled", 10);
    cr_expect_eq(cancelled_attempts(res), 0, "%s", json_object_to_json_string(res));
    json_object_put(res);
    cr_expect_eq(th_mock_requests(&mock_p, "m"), 0);
}

Test(cancel, submit_wait_exits_cancelled)
{
    serve();
    th_mock_set(&mock_p, "m", "{\"mode\":\"hang\"}");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s submit -c %s/planb.json --id w1 --wait --timeout 10 hello",
             th_bin("planb"), cfg_dir);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    wait_pending(1);
    char out[256];
    cr_assert_eq(cancel_cli("w1", out, sizeof(out)), 0, "%s", out);
    char res[4096];
    size_t n = fread(res, 1, sizeof(res) - 1, f);
    res[n] = '\0';
    int st = pclose(f);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 7, "submit --wait exit %d: %s",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, res);
    cr_expect(strstr(res, "\"status\":\"cancelled\"") != NULL, "%s", res);
}
