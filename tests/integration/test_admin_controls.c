/* test_admin_controls.c -- the operators' controls of the admin API, enforced: a paused queue
 * (workers stop claiming from it, the front door answers 503 queue_paused) and a forced
 * breaker (open: every call refused; closed: never trips; auto: the rules again).
 *
 * Real redis-server, planb-mock and `planb serve` with admin.listen and an admin key: every
 * control goes through the admin API, so what the API writes is what the workers and the
 * front read. Upstream calls are counted by the mock, so "not called" is observed.
 *
 * The claim_script suite runs claim.lua on its own for the one race a live world cannot aim at:
 * a job BLMOVE took from a queue just paused goes back unrun. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "harness.h"
#include "planb/scripts.h"
#include "th_jobs.h"

#define ADMIN_KEY "sk-admin-test"
#define ADMIN_SHA "d091874f1da5363b8d73bc91699d802a99fd2421e45f09d69e36d2c2f69b6e3b"

static th_proc redis_p, mock_p, planb_p;
static char q_bulk[] = "planb:q:bulk", breaker_primary[] = "planb:breaker:primary";
static redisContext *rc, *sub;
static int admin_port, front_port;

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static bool
never(void *arg)
{
    (void)arg;
    return false;
}

/* Lets ms pass: what is waited for is that nothing happens (or that every worker's view,
 * re-read every 200 ms, has heard of a change). */
static void
let_pass_ms(int ms)
{
    th_wait_for(never, NULL, 2, ms);
}

/* GET url (with the admin key, which the front door, without http.keys, ignores) is a 200: the
 * admin API (/api/session) or the front door (/healthz) is up. */
static bool
answers_200(void *url)
{
    long status = 0;
    free(th_http_with("GET", url, NULL, "Authorization: Bearer " ADMIN_KEY, NULL, &status));
    return status == 200;
}

/* Two queues (default, bulk), primary and backup on two mock providers, the admin API and, with
 * front, the front door on the default queue; alerts subscribed on sub. */
static void
start(int workers, const char *breaker, bool front)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    sub = th_redis(redis_p.port);
    freeReplyObject(redisCommand(sub, "SUBSCRIBE planb:alerts"));
    admin_port = th_free_port();
    front_port = front ? th_free_port() : 0;
    char http[128] = "", admin[256] = "";
    if (front)
        snprintf(http, sizeof(http), " \"http\": {\"listen\": \"127.0.0.1:%d\"},", front_port);
    snprintf(admin, sizeof(admin),
             ", \"admin\": {\"listen\": \"127.0.0.1:%d\", \"keys\": [{\"name\": \"ops\","
             " \"role\": \"admin\", \"sha256\": \"" ADMIN_SHA "\"}]}",
             admin_port);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {%s}, \"workers\": %d, \"concurrency\": 64, \"drain_timeout_ms\": 2000,"
             " \"queues\": [\"default\", \"bulk\"],%s"
             " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"},"
             " \"b\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             " \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"primary\": {\"provider\": \"a\", \"timeout_ms\": 1000},"
             " \"backup\": {\"provider\": \"b\", \"tier\": 2}},"
             " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"retries\": 0,"
             " \"deadline_ms\": 10000}},"
             " \"breaker\": %s, \"monitor\": {\"metrics_listen\": \"\"}%s}",
             th_redis_json(&redis_p), workers, http, mock_p.port, mock_p.port, breaker, admin);
    th_serve(&planb_p, cfg);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/session", admin_port);
    cr_assert(th_wait_for(answers_200, url, 100, 100), "the admin API did not come up");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", front_port);
    if (front)
        cr_assert(th_wait_for(answers_200, url, 100, 100), "the front door did not come up");
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    if (sub)
        redisFree(sub);
    sub = NULL;
    th_world_stop(&mock_p, &redis_p, &rc);
}

/* POST path (under /api/) with body as the admin; returns the reply parsed (caller puts). */
static json_object *
admin_post(const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/%s", admin_port, path);
    long status = 0;
    char *reply = th_http_with("POST", url, body ? body : "", "Authorization: Bearer " ADMIN_KEY,
                               NULL, &status);
    cr_assert_eq(status, 200, "POST %s: %ld %s", path, status, reply ? reply : "");
    json_object *o = json_tokener_parse(reply);
    free(reply);
    cr_assert_not_null(o);
    return o;
}

static void
pause_queue(const char *q, bool pause)
{
    char path[128];
    snprintf(path, sizeof(path), "queues/%s/%s", q, pause ? "pause" : "resume");
    json_object *o = admin_post(path, NULL);
    json_object *v;
    cr_assert(json_object_object_get_ex(o, "paused", &v) && json_object_get_boolean(v) == pause);
    json_object_put(o);
}

static void
force_breaker(const char *model, const char *state)
{
    char path[128], body[64];
    snprintf(path, sizeof(path), "models/%s/breaker", model);
    snprintf(body, sizeof(body), "{\"state\": \"%s\"}", state);
    json_object_put(admin_post(path, body));
    /* every worker's view is re-read every 200 ms: let them all hear of it */
    let_pass_ms(600);
}

/* LPUSHes a job with reply:true on planb:q:<queue>. */
static void
push_on(const char *queue, const char *id)
{
    char job[256];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"hi %s\"}]}",
             id, id);
    redisReply *r = redisCommand(rc, "LPUSH planb:q:%s %s", queue, job);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

static long long
llen(const char *key)
{
    redisReply *r = redisCommand(rc, "LLEN %s", key);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

static bool
queue_empty(void *key)
{
    return llen(key) == 0;
}

/* The one result of id: its reply list held it and nothing more. */
static json_object *
result_once(const char *id, double timeout_s)
{
    json_object *r = th_wait_result(rc, id, timeout_s);
    cr_assert_not_null(r, "no result for %s", id);
    char key[64];
    snprintf(key, sizeof(key), "planb:reply:%s", id);
    cr_expect_eq(llen(key), 0, "%s answered more than once", id);
    return r;
}

static json_object *
run(const char *id)
{
    push_on("default", id);
    return result_once(id, 20);
}

/* A number from INFO commandstats: calls of cmd since the last CONFIG RESETSTAT. */
static long
command_calls(const char *cmd)
{
    redisReply *r = redisCommand(rc, "INFO commandstats");
    char needle[64];
    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, needle) : NULL;
    long n = p ? atol(p + strlen(needle)) : 0;
    freeReplyObject(r);
    return n;
}

/* Reads the alerts that arrived (none waited for); counts those of type. */
static int
alerts_of_type(const char *type)
{
    int n = 0;
    for (;;) {
        void *m = NULL;
        if (redisGetReplyFromReader(sub, &m) != REDIS_OK)
            return n;
        if (m == NULL) {
            struct pollfd p = {.fd = sub->fd, .events = POLLIN};
            if (poll(&p, 1, 100) <= 0 || redisGetReply(sub, &m) != REDIS_OK || m == NULL)
                return n;
        }
        redisReply *r = m;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            json_object *o = json_tokener_parse(r->element[2]->str);
            n += o && strcmp(th_field(o, "type"), type) == 0;
            json_object_put(o);
        }
        freeReplyObject(r);
    }
}

TestSuite(admin_controls, .fini = teardown, .timeout = 180);

Test(admin_controls, a_paused_queue_is_not_claimed_and_resume_drains_it_once)
{
    start(2, "{\"failures\": 0}", false);
    /* A job in flight when its queue is paused finishes normally. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":800}");
    push_on("bulk", "f0");
    cr_assert(th_wait_for(queue_empty, q_bulk, 100, 20), "f0 was not claimed");
    pause_queue("bulk", true);
    json_object_put(result_once("f0", 10));
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\"}");

    /* Jobs pushed while it is paused stay queued; the other queue keeps flowing. */
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%d", i);
        push_on("bulk", id);
    }
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "d%d", i);
        json_object *r = run(id);
        cr_expect_str_eq(th_field(r, "source"), "primary");
        json_object_put(r);
    }
    double t0 = now_ms();
    while (now_ms() - t0 < 1600) {
        cr_assert_eq(llen("planb:q:bulk"), 10, "a job was claimed from the paused queue");
        let_pass_ms(100);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 6, "f0 and d0..d4 only");

    /* Every queue paused: the workers neither park BLMOVE nor spin. */
    pause_queue("default", true);
    let_pass_ms(1200); /* a BLMOVE out at the pause times out first */
    freeReplyObject(redisCommand(rc, "CONFIG RESETSTAT"));
    let_pass_ms(2000);
    long blmoves = command_calls("blmove"), scripts = command_calls("evalsha");
    cr_expect_eq(blmoves, 0, "BLMOVE on a paused queue");
    /* 2 workers: heartbeat + one claim.lua a second each, breaker reports of 2 models 5 a
     * second each, the monitor's sweeps 4 a second: ~60 in 2 s */
    cr_expect_leq(scripts, 150, "%ld script calls in 2 s with every queue paused", scripts);
    cr_expect_eq(llen("planb:q:bulk"), 10);

    /* Resume: drained within about a second, each job answered once. */
    pause_queue("default", false);
    pause_queue("bulk", false);
    t0 = now_ms();
    json_object_put(result_once("b0", 5));
    double first_ms = now_ms() - t0;
    cr_expect_leq(first_ms, 2000, "first job %.0f ms after the resume", first_ms);
    fprintf(stderr,
            "every queue paused: %ld BLMOVE, %ld script calls in 2 s; resume -> first "
            "result %.0f ms\n",
            blmoves, scripts, first_ms);
    for (int i = 1; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%d", i);
        json_object *r = result_once(id, 10);
        cr_expect_str_eq(th_field(r, "source"), "primary");
        json_object_put(r);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 16, "each job called upstream once");
    char buf[32];
    cr_expect_str_eq(th_hget(rc, "planb:stats", "jobs", buf, sizeof(buf)), "16");
    cr_expect_str_eq(th_hget(rc, "planb:stats", "duplicates", buf, sizeof(buf)), "");
    redisReply *r = redisCommand(rc, "XLEN planb:events");
    cr_expect_eq(r->integer, 16, "one stored result per job");
    freeReplyObject(r);
    cr_expect_eq(llen("planb:q:bulk"), 0);
}

Test(admin_controls, the_front_door_answers_503_queue_paused_then_200_after_resume)
{
    start(1, "{\"failures\": 0}", true);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", front_port);
    const char *req =
        "{\"model\": \"default\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    long status = 0;

    /* Another queue paused: the front's queue (default) takes requests. */
    pause_queue("bulk", true);
    char *body = th_http("POST", url, req, &status);
    cr_expect_eq(status, 200, "%ld %s", status, body ? body : "");
    free(body);
    long calls = th_mock_requests(&mock_p, "primary");

    pause_queue("default", true);
    char *head = NULL;
    body = th_http_with("POST", url, req, NULL, &head, &status);
    cr_assert_eq(status, 503, "%ld %s", status, body ? body : "");
    cr_expect(head && strcasestr(head, "\r\nRetry-After: 1\r\n"), "no Retry-After: %s", head);
    json_object *o = json_tokener_parse(body), *err = NULL;
    cr_assert(o && json_object_object_get_ex(o, "error", &err), "body %s", body);
    cr_expect_str_eq(th_field(err, "code"), "queue_paused");
    cr_expect_str_eq(th_field(err, "type"), "server_error");
    json_object_put(o);
    free(body);
    free(head);
    cr_expect_eq(llen("planb:q:default"), 0, "nothing was pushed");
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), calls);
    char buf[32];
    cr_expect_str_eq(th_hget(rc, "planb:stats", "jobs", buf, sizeof(buf)), "1");

    pause_queue("default", false);
    body = th_http("POST", url, req, &status);
    cr_expect_eq(status, 200, "after the resume: %ld %s", status, body ? body : "");
    cr_expect(body && strstr(body, "chat.completion"), "%s", body);
    free(body);
}

/* The breaker state code snapshot.lua gives model (what /metrics and `planb stats` show). */
static long long
snapshot_state(const char *model)
{
    const pb_lua_source *src = pb_scripts_find("snapshot");
    /* prefix, minute, lease_ms, no queue, the model */
    redisReply *r = redisCommand(rc, "EVAL %b 2 planb:stats planb:workers planb 0 10000 0 %s",
                                 src->body, src->len, model);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements >= 4);
    long long st = r->element[3]->element[0]->integer;
    freeReplyObject(r);
    return st;
}

static long long
pttl(const char *key)
{
    redisReply *r = redisCommand(rc, "PTTL %s", key);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static bool
has_ttl(void *key)
{
    return pttl(key) > 0;
}

Test(admin_controls, forced_open_refuses_every_call_and_auto_restores_the_rules)
{
    start(2, "{\"failures\": 3, \"window_s\": 30, \"open_s\": 30}", false);
    json_object *r = run("before");
    cr_expect_str_eq(th_field(r, "source"), "primary");
    json_object_put(r);
    cr_assert(th_wait_for(has_ttl, breaker_primary, 50, 20), "reported, so it expires");

    force_breaker("primary", "open");
    long calls = th_mock_requests(&mock_p, "primary");
    char buf[32];
    cr_expect_str_eq(th_hget(rc, "planb:breaker:primary", "forced_by", buf, sizeof(buf)), "ops");
    cr_expect_eq(snapshot_state("primary"), 1, "shown open");
    cr_expect_eq(pttl("planb:breaker:primary"), -1, "a forced breaker does not expire");
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof(id), "o%d", i);
        r = run(id);
        cr_expect_str_eq(th_field(r, "source"), "fallback");
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "breaker_open");
        cr_expect_str_eq(th_attempt(r, 1, "model"), "backup");
        json_object_put(r);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), calls, "no call while forced open");
    cr_expect_str_eq(th_hget(rc, "planb:breaker:primary", "state", buf, sizeof(buf)), "closed");
    cr_expect_eq(alerts_of_type("breaker"), 0, "no transition alert");

    force_breaker("primary", "auto");
    cr_expect_eq(snapshot_state("primary"), 0);
    r = run("after");
    cr_expect_str_eq(th_field(r, "source"), "primary");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), calls + 1);
    cr_expect_str_eq(th_hget(rc, "planb:stats", "breaker:primary:open", buf, sizeof(buf)), "");
}

Test(admin_controls, forced_closed_never_trips_and_auto_returns_to_the_state_it_was_in)
{
    start(2, "{\"failures\": 3, \"window_s\": 30, \"open_s\": 30}", false);
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "f%d", i);
        json_object_put(run(id));
    }
    char buf[32];
    for (int i = 0;
         i < 50 &&
         strcmp(th_hget(rc, "planb:breaker:primary", "state", buf, sizeof(buf)), "open") != 0;
         i++)
        let_pass_ms(20);
    cr_assert_str_eq(buf, "open", "3 failures opened it");
    cr_expect_eq(alerts_of_type("breaker"), 1);

    /* Forced closed: every call goes to the failing primary, and it never opens again. */
    force_breaker("primary", "closed");
    cr_expect_eq(snapshot_state("primary"), 0, "shown closed");
    long calls = th_mock_requests(&mock_p, "primary");
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "c%d", i);
        json_object *r = run(id);
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "http_500");
        cr_expect_str_eq(th_field(r, "source"), "fallback");
        json_object_put(r);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), calls + 10, "every call let through");
    let_pass_ms(500); /* the last reports land */
    cr_expect_str_eq(th_hget(rc, "planb:stats", "breaker:primary:open", buf, sizeof(buf)), "1");
    cr_expect_str_eq(th_hget(rc, "planb:breaker:primary", "w_calls", buf, sizeof(buf)), "",
                     "calls while forced are not counted");
    cr_expect_eq(alerts_of_type("breaker"), 0, "no transition alert while forced");

    /* Auto: the breaker is as it was, open with most of its 30 s left. */
    force_breaker("primary", "auto");
    calls = th_mock_requests(&mock_p, "primary");
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "a%d", i);
        json_object *r = run(id);
        cr_expect_str_eq(th_attempt(r, 0, "outcome"), "breaker_open");
        json_object_put(r);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), calls);
    cr_expect_eq(snapshot_state("primary"), 1);
}

/* ----------------------------------------------------------------- claim.lua on its own */

static char claim_sha[41];

static void
claim_setup(void)
{
    cr_assert_eq(th_redis_start(&redis_p, NULL), 0, "redis-server did not start");
    rc = th_redis(redis_p.port);
    const pb_lua_source *src = pb_scripts_find("claim");
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %b", src->body, src->len);
    cr_assert(r && r->type == REDIS_REPLY_STRING, "SCRIPT LOAD");
    snprintf(claim_sha, sizeof(claim_sha), "%s", r->str);
    freeReplyObject(r);
}

static void
claim_teardown(void)
{
    if (rc)
        redisFree(rc);
    rc = NULL;
    th_proc_stop(&redis_p, 5000);
}

/* claim.lua for worker w on queues a and b, up to max jobs; vet_q 0 or the position of the
 * queue vet came from. */
static redisReply *
claim(int max, int vet_q, const char *vet)
{
    redisReply *r = redisCommand(rc,
                                 "EVALSHA %s 8 planb:inflight:w planb:deliveries planb:stats "
                                 "planb:suspect:w planb:workers planb:paused planb:q:a planb:q:b "
                                 "%d planb:result: w %d %s a b planb:delayed:a planb:delayed:b",
                                 claim_sha, max, vet_q, vet);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "claim: %s",
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no array");
    return r;
}

TestSuite(claim_script, .init = claim_setup, .fini = claim_teardown, .timeout = 60);

Test(claim_script, a_paused_queue_is_skipped_and_named_in_the_reply)
{
    freeReplyObject(redisCommand(rc, "LPUSH planb:q:a a1 a2"));
    freeReplyObject(redisCommand(rc, "LPUSH planb:q:b b1 b2"));
    freeReplyObject(redisCommand(rc, "HSET planb:paused a {\"by\":\"ops\"}"));
    redisReply *r = claim(10, 0, "");
    cr_assert_eq(r->elements, 3, "b1, b2, then the paused queues");
    cr_expect_str_eq(r->element[0]->str, "b1");
    cr_expect_str_eq(r->element[1]->str, "b2");
    cr_assert_eq(r->element[2]->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->element[2]->elements, 1);
    cr_expect_eq(r->element[2]->element[0]->integer, 1, "queue a is position 1");
    freeReplyObject(r);
    cr_expect_eq(llen("planb:q:a"), 2);

    freeReplyObject(redisCommand(rc, "HDEL planb:paused a"));
    r = claim(10, 0, "");
    cr_assert_eq(r->elements, 2, "a1, a2 and no paused array");
    cr_expect_str_eq(r->element[0]->str, "a1");
    freeReplyObject(r);
}

Test(claim_script, a_job_blmove_took_from_a_queue_paused_since_goes_back_unrun)
{
    freeReplyObject(redisCommand(rc, "LPUSH planb:q:b b1 b2 b3"));
    /* BLMOVE took b1 (the oldest) into the in-flight list, then b was paused */
    freeReplyObject(redisCommand(rc, "LMOVE planb:q:b planb:inflight:w RIGHT LEFT"));
    freeReplyObject(redisCommand(rc, "HSET planb:paused b {\"by\":\"ops\"}"));
    redisReply *r = claim(10, 2, "b1");
    cr_assert_eq(r->elements, 1, "nothing to run, only the paused array");
    cr_expect_eq(r->element[0]->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    cr_expect_eq(llen("planb:inflight:w"), 0);
    r = redisCommand(rc, "LRANGE planb:q:b 0 -1");
    cr_assert_eq(r->elements, 3);
    cr_expect_str_eq(r->element[2]->str, "b1", "back at the oldest end");
    freeReplyObject(r);
    /* unpaused, the same job is vetted and run */
    freeReplyObject(redisCommand(rc, "HDEL planb:paused b"));
    freeReplyObject(redisCommand(rc, "LMOVE planb:q:b planb:inflight:w RIGHT LEFT"));
    r = claim(1, 2, "b1");
    cr_assert_eq(r->elements, 1);
    cr_expect_str_eq(r->element[0]->str, "b1");
    freeReplyObject(r);
}
