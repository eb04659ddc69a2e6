/* cache_world.h -- the world shared by test_cache.c and test_providers.c (header-only helpers).
 *
 * A real redis-server, planb-mock (both dialects) and `planb serve` with two
 * providers: "oai" (OpenAI dialect) and "ant" (Anthropic dialect). Models:
 * top (oai, tier 1), claude (ant, tier 1), low (ant, tier 2). Routes:
 * default [top, low] (no retries, critical floor 1), oa [top, claude] and
 * an [claude, top] (one retry each). Cache TTL 60 s, stale for 600 s more; breakers off
 * (faults run back to back on one model). Helpers are
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
#include "th_jobs.h"

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
        " \"breaker\": {\"failures\": 0, \"refused_hold_s\": 0},\n"
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
    th_world_start(&redis_p, &mock_p, redis_conf, &rc);
    th_serve(&planb_p, world_config(workers, cache_extra));
}

static inline void
world_stop(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

/* Pushes {"id":id,"reply":true,"messages":[user: text],extra} and waits up to 20 s for its
 * result. Caller puts. */
static inline json_object *
run_job(const char *id, const char *text, const char *extra)
{
    cr_assert_eq(th_push_job_text(rc, id, text, extra), 0);
    json_object *res = th_wait_result(rc, id, 20);
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
