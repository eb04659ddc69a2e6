/* cache_world.h -- the world shared by test_cache.c and test_providers.c (header-only helpers).
 *
 * A real redis-server, planb-mock (both dialects) and `planb serve` with two
 * providers: "oai" (OpenAI dialect) and "ant" (Anthropic dialect). Models:
 * top (oai, tier 1), claude (ant, tier 1), low (ant, tier 2). Routes:
 * default [top, low] (no retries, critical floor 1), oa [top, claude] and
 * an [claude, top] (one retry each). Cache TTL 60 s, stale for 600 s more. Helpers are
 * static inline so each test file may leave some unused. */
#ifndef PLANB_TEST_CACHE_WORLD_H
#define PLANB_TEST_CACHE_WORLD_H

#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

static inline const char *
world_config(int workers, const char *cache_extra)
{
    static char buf[8192];
    snprintf(
        buf, sizeof(buf),
        "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"},\n"
        " \"workers\": %d, \"concurrency\": 256, \"drain_timeout_ms\": 2000,\n"
        " \"providers\": {\n"
        "   \"oai\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
        " \"api_key_env\": \"PB_TEST_KEY\"},\n"
        "   \"ant\": {\"type\": \"anthropic\", \"base_url\": \"http://127.0.0.1:%d/v1\","
        " \"api_key_env\": \"PB_TEST_KEY\"}},\n"
        " \"models\": {\n"
        "   \"top\": {\"provider\": \"oai\", \"tier\": 1, \"timeout_ms\": 3000},\n"
        "   \"claude\": {\"provider\": \"ant\", \"tier\": 1, \"timeout_ms\": 800},\n"
        "   \"low\": {\"provider\": \"ant\", \"tier\": 2, \"timeout_ms\": 3000}},\n"
        " \"routes\": {\n"
        "   \"default\": {\"chain\": [\"top\", \"low\"], \"retries\": 0, \"deadline_ms\": 10000,"
        " \"critical_min_tier\": 1, \"degraded_reply\": \"Sorry, try later.\"},\n"
        "   \"oa\": {\"chain\": [\"top\", \"claude\"], \"retries\": 1, \"backoff_ms\": 10,"
        " \"backoff_max_ms\": 20},\n"
        "   \"an\": {\"chain\": [\"claude\", \"top\"], \"retries\": 1, \"backoff_ms\": 10,"
        " \"backoff_max_ms\": 20}},\n"
        " \"cache\": {\"ttl_s\": 60, \"stale_if_error_s\": 600 %s}}\n",
        redis_p.port, workers, mock_p.port, mock_p.port, cache_extra ? cache_extra : "");
    return buf;
}

/* Starts redis (extra config lines may be NULL), the mock and planb. */
static inline void
world_start(int workers, const char *redis_conf, const char *cache_extra)
{
    setenv("PB_TEST_KEY", "sk-test-not-a-real-key", 1);
    cr_assert_eq(th_redis_start(&redis_p, redis_conf), 0);
    cr_assert_eq(th_mock_start(&mock_p, NULL), 0);
    rc = th_redis(redis_p.port);
    const char *args[] = {"serve", "-c", "%CONFIG%", NULL};
    cr_assert_eq(th_planb_start(&planb_p, world_config(workers, cache_extra), args), 0);
}

static inline void
world_stop(void)
{
    if (planb_p.pid) {
        int st = th_proc_stop(&planb_p, 10000);
        char *log = th_proc_log(&planb_p);
        if (log && (strstr(log, "Sanitizer") || strstr(log, "runtime error:")))
            fprintf(stderr, "planb log:\n%s\n", log);
        free(log);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "planb drained and exited 0 (status %d)",
                  st);
    }
    th_proc_stop(&mock_p, 5000);
    if (rc)
        redisFree(rc);
    rc = NULL;
    th_proc_stop(&redis_p, 5000);
}

/* Pushes a job asking for a reply list: {"id":id,"reply":true,"messages":[user: text],extra}. */
static inline void
push_job(const char *id, const char *text, const char *extra)
{
    char job[4096];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]"
             "%s%s}",
             id, text, extra ? "," : "", extra ? extra : "");
    redisReply *r = redisCommand(rc, "LPUSH planb:q:default %s", job);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* The result pushed on planb:reply:<id>, or NULL after timeout_s. Caller puts. */
static inline json_object *
wait_result(const char *id, double timeout_s)
{
    redisReply *r = redisCommand(rc, "BLPOP planb:reply:%s %.2f", id, timeout_s);
    cr_assert(r != NULL);
    json_object *o = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        o = json_tokener_parse(r->element[1]->str);
    freeReplyObject(r);
    return o;
}

static inline json_object *
run_job(const char *id, const char *text, const char *extra)
{
    push_job(id, text, extra);
    json_object *res = wait_result(id, 20);
    cr_assert_not_null(res, "no result for %s", id);
    return res;
}

/* o[name] as a string ("" when absent). */
static inline const char *
field(json_object *o, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v))
        return "";
    return json_object_get_string(v);
}

/* o[name] as an integer, -1 when absent. */
static inline long
field_int(json_object *o, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v))
        return -1;
    return (long)json_object_get_int64(v);
}

static inline size_t
n_attempts(json_object *o)
{
    json_object *a;
    cr_assert(json_object_object_get_ex(o, "attempts", &a));
    return json_object_array_length(a);
}

static inline const char *
attempt_field(json_object *o, size_t i, const char *name)
{
    json_object *a;
    json_object_object_get_ex(o, "attempts", &a);
    return field(json_object_array_get_idx(a, i), name);
}

/* A planb:stats counter, 0 when absent. */
static inline long
stat(const char *name)
{
    redisReply *r = redisCommand(rc, "HGET planb:stats %s", name);
    long n = (r && r->type == REDIS_REPLY_STRING) ? atol(r->str) : 0;
    freeReplyObject(r);
    return n;
}

#endif
