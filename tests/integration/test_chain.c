/* test_chain.c -- the worker and the fallback chain against real redis-server, planb-mock, planb.
 *
 * Each Test starts its own Redis, mock and `planb serve` (one worker unless
 * the test says otherwise), pushes jobs with reply:true and reads each
 * result from its reply list. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "harness.h"
#include "th_jobs.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

/* A config with a primary (tier 1), a backup on another "provider" (tier 2) and a third model. */
static char *
chain_config(int workers, const char *route_extra, const char *primary_extra)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"},\n"
             " \"workers\": %d, \"concurrency\": 256, \"queues\": [\"default\"],\n"
             " \"drain_timeout_ms\": 2000, \"breaker\": {\"failures\": 0},\n"
             " \"providers\": {\n"
             "   \"mockai\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             " \"api_key_env\": \"PB_TEST_KEY\"},\n"
             "   \"mockai2\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             " \"api_key_env\": \"PB_TEST_KEY\"}},\n"
             " \"models\": {\n"
             "   \"primary\": {\"provider\": \"mockai\", \"tier\": 1, \"timeout_ms\": 2000 %s},\n"
             "   \"backup\": {\"provider\": \"mockai2\", \"tier\": 2, \"timeout_ms\": 2000},\n"
             "   \"third\": {\"provider\": \"mockai\", \"tier\": 3, \"timeout_ms\": 2000}},\n"
             " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"retries\": 2,"
             " \"backoff_ms\": 10, \"backoff_max_ms\": 50, \"deadline_ms\": 10000,"
             " \"critical_min_tier\": 1, \"degraded_reply\": \"Sorry, try later.\" %s},\n"
             "   \"other\": {\"chain\": [\"third\"], \"retries\": 0}}}\n",
             redis_p.port, workers, mock_p.port, mock_p.port, primary_extra ? primary_extra : "",
             route_extra ? route_extra : "");
    return buf;
}

static void
start_world(int workers, const char *route_extra, const char *primary_extra)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    th_serve(&planb_p, chain_config(workers, route_extra, primary_extra));
}

static void
setup(void)
{
    start_world(1, NULL, NULL);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

static void
push(const char *job)
{
    cr_assert_eq(th_push_raw(rc, job), 0);
}

static json_object *
run_job(const char *id, const char *extra_fields)
{
    cr_assert_eq(th_push_job(rc, id, extra_fields), 0);
    json_object *res = th_wait_result(rc, id, 20);
    cr_assert_not_null(res, "no result for %s", id);
    return res;
}

static const char *
field(json_object *o, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v))
        return NULL;
    return json_object_get_string(v);
}

static long
field_int(json_object *o, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v))
        return -1;
    return (long)json_object_get_int64(v);
}

static size_t
n_attempts(json_object *o)
{
    json_object *a;
    cr_assert(json_object_object_get_ex(o, "attempts", &a));
    return json_object_array_length(a);
}

static const char *
attempt_field(json_object *o, size_t i, const char *name)
{
    json_object *a;
    json_object_object_get_ex(o, "attempts", &a);
    return field(json_object_array_get_idx(a, i), name);
}

TestSuite(chain, .init = setup, .fini = teardown, .timeout = 120);

Test(chain, all_ok_is_primary)
{
    json_object *r = run_job("ok1", NULL);
    cr_expect_str_eq(field(r, "status"), "ok");
    cr_expect_str_eq(field(r, "source"), "primary");
    cr_expect_str_eq(field(r, "model"), "primary");
    cr_expect_str_eq(field(r, "provider"), "mockai");
    cr_expect_str_eq(field(r, "content"), "echo: hi ok1");
    cr_expect_str_eq(field(r, "worker") ? "set" : "unset", "set");
    cr_expect_eq(n_attempts(r), 1);
    cr_expect_str_eq(attempt_field(r, 0, "outcome"), "ok");
    json_object *usage;
    cr_expect(json_object_object_get_ex(r, "usage", &usage));
    cr_expect_eq(field_int(usage, "prompt_tokens"), 2);
    cr_expect_eq(field_int(usage, "completion_tokens"), 3);
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 1);
    json_object_put(r);

    /* The stored result and the in-flight list agree with the reply. */
    redisReply *s = redisCommand(rc, "GET planb:result:ok1");
    cr_expect(s && s->type == REDIS_REPLY_STRING);
    freeReplyObject(s);
}

Test(chain, first_503_is_retried_on_the_primary)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"fail_first\":1,\"fail_status\":503}");
    json_object *r = run_job("r1", NULL);
    cr_expect_str_eq(field(r, "source"), "primary");
    cr_expect_eq(n_attempts(r), 2);
    cr_expect_str_eq(attempt_field(r, 0, "outcome"), "http_503");
    cr_expect_str_eq(attempt_field(r, 1, "outcome"), "ok");
    cr_expect_str_eq(attempt_field(r, 1, "try"), "2");
    json_object_put(r);
}

Test(chain, primary_500_falls_back_with_attempts_listed)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
    json_object *r = run_job("f1", NULL);
    cr_expect_str_eq(field(r, "status"), "ok");
    cr_expect_str_eq(field(r, "source"), "fallback");
    cr_expect_str_eq(field(r, "model"), "backup");
    cr_expect_eq(n_attempts(r), 4); /* 1 + 2 retries on primary, then backup */
    for (size_t i = 0; i < 3; i++) {
        cr_expect_str_eq(attempt_field(r, i, "model"), "primary");
        cr_expect_str_eq(attempt_field(r, i, "outcome"), "http_500");
    }
    cr_expect_str_eq(attempt_field(r, 3, "model"), "backup");
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 3);
    json_object_put(r);
}

Test(chain, retry_after_is_honoured_within_the_deadline)
{
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"fail_first\":1,\"fail_status\":429,\"retry_after\":\"1\"}");
    json_object *r = run_job("ra1", NULL);
    cr_expect_str_eq(field(r, "source"), "primary");
    cr_expect_geq(field_int(r, "latency_ms"), 950);
    cr_expect_lt(field_int(r, "latency_ms"), 3000);
    json_object_put(r);
}

Test(chain, retry_after_past_the_deadline_moves_on)
{
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"fail_first\":5,\"fail_status\":429,\"retry_after\":\"5\"}");
    json_object *r = run_job("ra2", "\"deadline_ms\":1500");
    cr_expect_str_eq(field(r, "source"), "fallback");
    cr_expect_lt(field_int(r, "latency_ms"), 1000);
    json_object_put(r);
}

Test(chain, hanging_primary_times_out_then_falls_back)
{
    /* Primary timeout_ms 300 from the model config, deadline 5 s. */
    th_proc_stop(&planb_p, 5000);
    th_serve(&planb_p, chain_config(1, NULL, ", \"timeout_ms\": 300"));
    th_mock_set(&mock_p, "primary", "{\"mode\":\"hang\"}");
    json_object *r = run_job("h1", "\"deadline_ms\":5000");
    cr_expect_str_eq(field(r, "source"), "fallback");
    cr_expect_str_eq(attempt_field(r, 0, "outcome"), "timeout");
    cr_expect_lt(field_int(r, "latency_ms"), 2000);
    json_object_put(r);
}

Test(chain, hanging_everything_degrades_before_the_deadline)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"hang\"}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"hang\"}");
    json_object *r = run_job("h2", "\"deadline_ms\":1000");
    cr_expect_str_eq(field(r, "status"), "degraded");
    cr_expect_leq(field_int(r, "latency_ms"), 1100);
    json_object_put(r);
}

Test(chain, malformed_bodies_are_failures)
{
    const char *modes[] = {"truncated", "html", "missing", "empty"};
    for (size_t i = 0; i < 4; i++) {
        char b[128], id[32];
        snprintf(b, sizeof(b), "{\"mode\":\"%s\"}", modes[i]);
        th_mock_set(&mock_p, "primary", b);
        snprintf(id, sizeof(id), "bad-%s", modes[i]);
        json_object *r = run_job(id, NULL);
        cr_expect_str_eq(field(r, "source"), "fallback", "%s", modes[i]);
        cr_expect_str_eq(attempt_field(r, 0, "outcome"), "bad_reply", "%s", modes[i]);
        json_object_put(r);
    }
}

Test(chain, reset_connection_is_a_failure)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"reset\"}");
    json_object *r = run_job("rst", NULL);
    cr_expect_str_eq(field(r, "source"), "fallback");
    cr_expect_neq(strcmp(attempt_field(r, 0, "outcome"), "ok"), 0);
    json_object_put(r);
}

Test(chain, every_model_down_degrades_with_the_configured_reply)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":503}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"status\",\"status\":500}");
    json_object *r = run_job("d1", NULL);
    cr_expect_str_eq(field(r, "status"), "degraded");
    cr_expect_str_eq(field(r, "source"), "degraded");
    cr_expect_str_eq(field(r, "content"), "Sorry, try later.");
    cr_expect_eq(n_attempts(r), 6);
    json_object_put(r);
    redisReply *c = redisCommand(rc, "EXISTS planb:cache:x");
    freeReplyObject(c);
}

Test(chain, critical_job_never_served_below_the_floor)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
    json_object *r = run_job("c1", "\"critical\":true");
    cr_expect_str_eq(field(r, "status"), "degraded");
    for (size_t i = 0; i < n_attempts(r); i++)
        cr_expect_str_neq(attempt_field(r, i, "model"), "backup");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "backup"), 0);
    r = run_job("c2", "\"critical\":false");
    cr_expect_str_eq(field(r, "model"), "backup");
    json_object_put(r);
}

Test(chain, models_override_and_other_route)
{
    json_object *r = run_job("m1", "\"models\":[\"third\"]");
    cr_expect_str_eq(field(r, "model"), "third");
    json_object_put(r);
    r = run_job("m2", "\"route\":\"other\"");
    cr_expect_str_eq(field(r, "model"), "third");
    json_object_put(r);
}

/* One model's 400 is its own verdict: the next model is asked; only when every model of the
 * chain refuses is the job invalid, with the last upstream's message. */
Test(chain, upstream_400_falls_back_and_all_refused_is_invalid)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":400}");
    json_object *r = run_job("u1", NULL);
    cr_expect_str_eq(field(r, "status"), "ok");
    cr_expect_str_eq(field(r, "source"), "fallback");
    cr_expect_str_eq(attempt_field(r, 0, "outcome"), "http_400");
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 1, "a 400 is not retried");
    json_object_put(r);
    th_mock_set(&mock_p, "backup",
                "{\"mode\":\"status\",\"status\":400,\"error_message\":\"Unsupported parameter: "
                "'seed'\"}");
    r = run_job("u0", NULL);
    cr_expect_str_eq(field(r, "status"), "invalid");
    cr_expect_str_eq(field(r, "error"), "UPSTREAM_REJECTED every model refused the request; the "
                                        "last said: Unsupported parameter: 'seed'");
    json_object_put(r);
    th_mock_set(&mock_p, "backup", "{\"mode\":\"ok\"}");
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"status\",\"status\":400,\"error_type\":\"invalid_request_error\","
                "\"error_message\":\"This model's maximum context length is 8192 tokens\"}");
    r = run_job("u2", NULL);
    cr_expect_str_eq(field(r, "source"), "fallback");
    json_object_put(r);
}

Test(chain, auth_failure_falls_back_without_retry)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":401}");
    json_object *r = run_job("a1", NULL);
    cr_expect_str_eq(field(r, "source"), "fallback");
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 1);
    json_object_put(r);
}

/* Invalid inputs: each gets an invalid result when its id is readable and a dead-letter entry. */
Test(chain, invalid_jobs_get_an_error_result_and_a_dead_letter)
{
    struct {
        const char *id;
        const char *job;
        const char *code;
    } cases[] = {
        {"i-types", "{\"id\":\"i-types\",\"reply\":true,\"messages\":\"hello\"}", "BAD_FIELD"},
        {"i-nomsg", "{\"id\":\"i-nomsg\",\"reply\":true}", "BAD_FIELD"},
        {"i-empty", "{\"id\":\"i-empty\",\"reply\":true,\"messages\":[]}", "BAD_FIELD"},
        {"i-role",
         "{\"id\":\"i-role\",\"reply\":true,\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
         "BAD_FIELD"},
        {"i-route",
         "{\"id\":\"i-route\",\"reply\":true,\"route\":\"nope\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "UNKNOWN_ROUTE"},
        {"i-model",
         "{\"id\":\"i-model\",\"reply\":true,\"models\":[\"claude\"],\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "UNKNOWN_MODEL"},
        {"i-param",
         "{\"id\":\"i-param\",\"reply\":true,\"params\":{\"max_tokens\":\"lots\"},\"messages\":[{"
         "\"role\":\"user\",\"content\":\"x\"}]}",
         "BAD_FIELD"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    push("this is not json");
    push("[1,2,3]");
    for (size_t i = 0; i < n; i++)
        push(cases[i].job);
    for (size_t i = 0; i < n; i++) {
        json_object *r = th_wait_result(rc, cases[i].id, 10);
        cr_assert_not_null(r, "%s", cases[i].id);
        cr_expect_str_eq(field(r, "status"), "invalid");
        cr_expect(strncmp(field(r, "error"), cases[i].code, strlen(cases[i].code)) == 0, "%s: %s",
                  cases[i].id, field(r, "error"));
        json_object_put(r);
    }
    redisReply *d = redisCommand(rc, "LLEN planb:dead");
    cr_expect_eq(d->integer, (long long)n + 2);
    freeReplyObject(d);
    d = redisCommand(rc, "LINDEX planb:dead -1");
    json_object *e = json_tokener_parse(d->str);
    cr_expect_str_eq(field(e, "job"), "this is not json");
    cr_expect(strncmp(field(e, "error"), "BAD_JSON", 8) == 0);
    json_object_put(e);
    freeReplyObject(d);
    /* The worker goes on. */
    json_object *r = run_job("after-invalid", NULL);
    cr_expect_str_eq(field(r, "status"), "ok");
    json_object_put(r);
}

Test(chain, oversized_and_binary_jobs_are_dead_lettered)
{
    size_t big = 1100000;
    char *job = malloc(big + 1);
    memset(job, 'x', big);
    job[big] = '\0';
    memcpy(job, "{\"id\":\"big\",", 12);
    push(job);
    free(job);
    redisReply *r = redisCommand(rc, "LPUSH planb:q:default %b", "\x00\xff\xfe{", (size_t)4);
    freeReplyObject(r);
    json_object *ok = run_job("after-big", NULL);
    cr_expect_str_eq(field(ok, "status"), "ok");
    json_object_put(ok);
    redisReply *d = redisCommand(rc, "LRANGE planb:dead 0 -1");
    cr_assert_eq(d->elements, 2);
    bool saw_b64 = false, saw_large = false;
    for (size_t i = 0; i < d->elements; i++) {
        json_object *e = json_tokener_parse(d->element[i]->str);
        cr_assert_not_null(e, "dead entry is JSON");
        if (field(e, "job_base64"))
            saw_b64 = true;
        if (strncmp(field(e, "error"), "TOO_LARGE", 9) == 0)
            saw_large = true;
        json_object_put(e);
    }
    freeReplyObject(d);
    cr_expect(saw_b64);
    cr_expect(saw_large);
}

/* The primary's down phase: every call answers 503 until the next flip (its next 100,000),
 * however fast or slow the workers take them, so jobs spend their retries and fall back on
 * any machine. */
#define FLAP_DOWN "{\"mode\":\"ok\",\"fail_first\":100000,\"fail_status\":503}"

/* For th_wait_for: every flap job has its result. Each poll also flips the primary, so the
 * flips overlap the processing however fast or slow this machine is. */
typedef struct flap_wait {
    int total; /* jobs pushed */
    int seen;  /* results at the last poll */
    int polls; /* polls so far: their parity picks the primary's next mode */
} flap_wait;

static bool
flap_all_results(void *arg)
{
    flap_wait *w = arg;
    redisReply *k =
        redisCommand(rc, "EVAL %s 0", "return #redis.call('KEYS','planb:result:flap-*')");
    cr_assert(k && k->type == REDIS_REPLY_INTEGER);
    w->seen = (int)k->integer;
    freeReplyObject(k);
    /* Up again only once a job fell back: on a loaded machine a failed attempt's retry could
     * otherwise always land in an up phase, and no job would ever fall back. */
    char fb[32];
    bool fell_back = atol(th_hget(rc, "planb:stats", "source:fallback", fb, sizeof(fb))) > 0;
    th_mock_set(&mock_p, "primary", w->polls++ % 2 || !fell_back ? FLAP_DOWN : "{\"mode\":\"ok\"}");
    return w->seen >= w->total;
}

/* 1,000 jobs while the primary flips down and up: exactly one result each, counters add up. */
Test(chain, thousand_jobs_with_a_flapping_primary)
{
    th_proc_stop(&planb_p, 5000);
    th_serve(&planb_p, chain_config(2, NULL, NULL));
    int total = 1000;
    for (int i = 0; i < total; i++) {
        if (i % 100 == 0)
            th_mock_set(&mock_p, "primary", (i / 100) % 2 ? FLAP_DOWN : "{\"mode\":\"ok\"}");
        char job[256];
        /* cache skip: the test times its pushes against the flips, and a cache lookup per
         * job would only slow the workers past them under ASan. */
        snprintf(job, sizeof(job),
                 "{\"id\":\"flap-%d\",\"cache\":\"skip\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"q%d\"}]}",
                 i, i);
        push(job);
        /* A deliberate pause, not a wait for a condition: it spreads each 100-job phase over
         * at least 40 ms so the flips land on jobs being processed. */
        if (i % 50 == 49)
            usleep(20000);
    }
    /* Keep flipping while the workers catch up (up to a minute). */
    flap_wait w = {.total = total};
    th_wait_for(flap_all_results, &w, 600, 100);
    int primary = 0, fallback = 0, other = 0, seen = w.seen;
    cr_assert_eq(seen, total, "results: %d of %d", seen, total);
    for (int i = 0; i < total; i++) {
        redisReply *g = redisCommand(rc, "GET planb:result:flap-%d", i);
        cr_assert(g && g->type == REDIS_REPLY_STRING);
        json_object *r = json_tokener_parse(g->str);
        const char *src = r ? field(r, "source") : NULL;
        if (src && strcmp(src, "primary") == 0)
            primary++;
        else if (src && strcmp(src, "fallback") == 0)
            fallback++;
        else
            other++;
        json_object_put(r);
        freeReplyObject(g);
    }
    cr_expect_eq(primary + fallback, total, "primary %d fallback %d other %d", primary, fallback,
                 other);
    cr_expect_gt(fallback, 0);
    cr_expect_gt(primary, 0);
    redisReply *h = redisCommand(rc, "HMGET planb:stats jobs ok source:primary source:fallback");
    cr_assert(h && h->type == REDIS_REPLY_ARRAY && h->elements == 4);
    long counters[4];
    for (size_t i = 0; i < 4; i++) /* a field never bumped is nil: 0 */
        counters[i] = h->element[i]->type == REDIS_REPLY_STRING ? atol(h->element[i]->str) : 0;
    freeReplyObject(h);
    cr_expect_eq(counters[0], total);
    cr_expect_eq(counters[1], total);
    cr_expect_eq(counters[2], primary);
    cr_expect_eq(counters[3], fallback);
    redisReply *q =
        redisCommand(rc, "EVAL %s 0",
                     "local n=0 for _,k in ipairs(redis.call('KEYS','planb:inflight:*')) "
                     "do n=n+redis.call('LLEN',k) end return n");
    cr_expect_eq(q->integer, 0, "nothing left in flight");
    freeReplyObject(q);
}
