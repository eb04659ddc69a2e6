/* test_semantic.c -- the semantic cache in the real chain: fallback, first and shadow modes.
 *
 * Each Test starts its own Redis, planb-mock and `planb serve` with cache.semantic on (local
 * embedder, the given mode), answers one question through the model, then asks others:
 * a paraphrase, a near miss, an unrelated question, a critical job. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

#define SEM_ANSWER "Open Settings, then Account, and press Delete."

static void
start_world(const char *mode)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    static char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"},\n"
             " \"workers\": 1, \"concurrency\": 64, \"drain_timeout_ms\": 2000,\n"
             " \"providers\": {\"mockai\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},\n"
             " \"models\": {\"primary\": {\"provider\": \"mockai\", \"tier\": 1, \"timeout_ms\": "
             "2000}, \"backup\": {\"provider\": \"mockai\", \"tier\": 2, \"timeout_ms\": 2000}},\n"
             " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"retries\": 0,"
             " \"deadline_ms\": 10000, \"degraded_reply\": \"Sorry, try later.\"}},\n"
             " \"cache\": {\"semantic\": {\"enabled\": true, \"mode\": \"%s\"}}}\n",
             redis_p.port, mock_p.port, mode);
    th_serve(&planb_p, cfg);
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"reply\":\"" SEM_ANSWER "\"}"),
                 0);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

/* Runs one job asking question; returns its result (caller puts). */
static json_object *
ask(const char *id, const char *question, const char *extra)
{
    char job[2048];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"messages\":[{\"role\":\"system\",\"content\":"
             "\"You are a shop assistant.\"},{\"role\":\"user\",\"content\":\"%s\"}]%s}",
             id, question, extra ? extra : "");
    redisReply *r = redisCommand(rc, "LPUSH planb:q:default %s", job);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    r = redisCommand(rc, "BLPOP planb:reply:%s 20", id);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "no result for %s", id);
    json_object *o = json_tokener_parse(r->element[1]->str);
    freeReplyObject(r);
    cr_assert_not_null(o);
    return o;
}

static const char *
field(json_object *o, const char *name)
{
    json_object *v;
    return json_object_object_get_ex(o, name, &v) ? json_object_get_string(v) : NULL;
}

static void
expect_source(json_object *o, const char *source)
{
    const char *got = field(o, "source");
    cr_expect_str_eq(got ? got : "(none)", source, "%s: source %s, want %s", field(o, "id"),
                     got ? got : "(none)", source);
}

static void
models_down(void)
{
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":503}"), 0);
    cr_assert_eq(th_mock_set(&mock_p, "backup", "{\"mode\":\"status\",\"status\":503}"), 0);
}

TestSuite(semantic, .fini = teardown, .timeout = 120);

Test(semantic, fallback_answers_paraphrase_and_degrades_near_miss)
{
    start_world("fallback");
    json_object *r = ask("s1", "How do I delete my account?", NULL);
    expect_source(r, "primary");
    json_object_put(r);
    models_down();

    r = ask("s2", "How can I remove my account?", NULL);
    expect_source(r, "semantic_cache");
    cr_expect_str_eq(field(r, "status"), "ok");
    cr_expect_str_eq(field(r, "content"), SEM_ANSWER);
    cr_expect_str_eq(field(r, "matched_question"), "How do I delete my account?");
    json_object *sim;
    cr_assert(json_object_object_get_ex(r, "similarity", &sim));
    cr_expect(json_object_get_double(sim) >= 0.82 && json_object_get_double(sim) <= 1.0001);
    json_object_put(r);

    /* Near misses and unrelated questions must not be answered from it. */
    const char *misses[] = {"How do I create an account?", "Why can't I delete my account?",
                            "What is the capital of France?"};
    for (size_t i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "m%zu", i);
        r = ask(id, misses[i], NULL);
        expect_source(r, "degraded");
        cr_expect_null(field(r, "matched_question"));
        json_object_put(r);
    }
    /* Critical jobs are not served from it; another tenant is another scope. */
    r = ask("c1", "How can I remove my account?", ",\"critical\":true");
    expect_source(r, "degraded");
    json_object_put(r);
    r = ask("t1", "How can I remove my account?", ",\"tenant\":\"other\"");
    expect_source(r, "degraded");
    json_object_put(r);
}

Test(semantic, first_mode_skips_the_models_on_a_hit)
{
    start_world("first");
    json_object *r = ask("f1", "How do I contact customer support?", NULL);
    expect_source(r, "primary");
    json_object_put(r);
    cr_assert_eq(th_mock_reset(&mock_p), 0);
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"reply\":\"other\"}"), 0);

    r = ask("f2", "How can I reach customer support?", NULL);
    expect_source(r, "semantic_cache");
    cr_expect_str_eq(field(r, "content"), SEM_ANSWER);
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 0, "a hit asks no model");

    r = ask("f3", "How do I change my username?", NULL);
    expect_source(r, "primary");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 1, "a miss asks the model");
}

Test(semantic, shadow_mode_never_serves_and_records_agreement)
{
    start_world("shadow");
    json_object *r = ask("h1", "How do I book a flight?", NULL);
    expect_source(r, "primary");
    json_object_put(r);
    r = ask("h2", "How can I book a flight?", NULL);
    expect_source(r, "primary");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "primary"), 2);

    redisReply *s = redisCommand(rc, "HGET planb:stats semantic:shadow_agree");
    cr_expect(s && s->type == REDIS_REPLY_STRING && strcmp(s->str, "1") == 0,
              "the would-be hit agreed with the model");
    freeReplyObject(s);
    s = redisCommand(rc, "LINDEX planb:sem:shadow 0");
    cr_assert(s && s->type == REDIS_REPLY_STRING);
    json_object *sample = json_tokener_parse(s->str);
    freeReplyObject(s);
    cr_assert_not_null(sample);
    cr_expect_str_eq(field(sample, "matched_question"), "How do I book a flight?");
    cr_expect_str_eq(field(sample, "agreed"), "true");
    json_object_put(sample);
}

/* Tool calling and structured output answer an app, not a question in other words: such jobs
 * neither store nor find semantic answers (the route has no semantic_tools). */
Test(semantic, jobs_with_tools_or_response_format_stay_out)
{
    start_world("first");
    const char *tools = ",\"params\":{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
                        "\"open_ticket\"}}]}";
    const char *format = ",\"params\":{\"response_format\":{\"type\":\"json_object\"}}";
    json_object *r = ask("s1", "How do I contact customer support?", tools);
    expect_source(r, "primary");
    json_object_put(r);
    r = ask("s2", "How can I reach customer support?", tools);
    expect_source(r, "primary");
    json_object_put(r);
    r = ask("s3", "How can I reach customer support?", NULL);
    expect_source(r, "primary"); /* s1/s2 stored nothing */
    json_object_put(r);
    r = ask("s4", "How do I contact customer support?", format);
    expect_source(r, "primary"); /* and a structured job finds nothing either */
    json_object_put(r);
}
