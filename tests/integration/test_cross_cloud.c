/* test_cross_cloud.c -- the chain the enterprise clouds make: Azure OpenAI GPT -> Bedrock Claude
 * -> Gemini, each on planb-mock in its own dialect (Azure's api-key and v1 path, Bedrock's
 * SigV4 and event-stream frames, Gemini's x-goog-api-key and SSE), with real redis-server and
 * `planb serve`. Every combination of the three failing (each in a way of its own cloud)
 * must answer from the first healthy one, or degrade when none is: plain, with tool calls,
 * and streamed. Then, per cloud: a tool round trip answered by it, and its stream cut before
 * the first token (the next cloud answers) and after it (the answer ends cut). */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "th_jobs.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

/* The three clouds: chain model, the name planb-mock keys its behaviour by, and how each
 * one fails in the combinations (a status of its own cloud, or a reset). */
static const struct {
    const char *model;
    const char *mock_name;
    const char *failure;
} clouds[3] = {
    {"azure-gpt", "gpt-dep", "{\"mode\":\"status\",\"status\":503}"},
    {"bedrock-claude", TH_BEDROCK_MODEL_ID, "{\"mode\":\"status\",\"status\":500}"},
    {"gemini-flash", "gemini-2.5-flash", "{\"mode\":\"reset\"}"},
};

static void
setup(void)
{
    th_bedrock_env();
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    char cfg[8192];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,"
             " \"concurrency\": 32, \"drain_timeout_ms\": 2000,"
             " \"providers\": {"
             "  \"azure\": {\"type\": \"azure\", \"base_url\": \"http://127.0.0.1:%d/openai/v1\","
             "   \"api_key_env\": \"PB_TEST_KEY\"},"
             "  \"aws\": " TH_BEDROCK_PROVIDER ","
             "  \"google\": {\"type\": \"gemini\", \"base_url\": \"http://127.0.0.1:%d/v1beta\","
             "   \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"azure-gpt\": {\"provider\": \"azure\", \"model\": \"gpt-dep\","
             "   \"timeout_ms\": 3000},"
             "  \"bedrock-claude\": {\"provider\": \"aws\", \"model\": \"" TH_BEDROCK_MODEL_ID "\","
             "   \"tier\": 2, \"timeout_ms\": 3000},"
             "  \"gemini-flash\": {\"provider\": \"google\", \"model\": \"gemini-2.5-flash\","
             "   \"tier\": 3, \"timeout_ms\": 3000}},"
             " \"routes\": {\"default\": {\"chain\": [\"azure-gpt\", \"bedrock-claude\","
             "   \"gemini-flash\"], \"retries\": 1, \"backoff_ms\": 5, \"backoff_max_ms\": 10,"
             "   \"deadline_ms\": 15000, \"degraded_reply\": \"Sorry, later.\"},"
             "  \"azure\": {\"chain\": [\"azure-gpt\"], \"retries\": 0},"
             "  \"bedrock\": {\"chain\": [\"bedrock-claude\"], \"retries\": 0},"
             "  \"gemini\": {\"chain\": [\"gemini-flash\"], \"retries\": 0}},"
             " \"breaker\": {\"failures\": 0, \"refused_hold_s\": 0},"
             " \"monitor\": {\"metrics_listen\": \"\"}}",
             redis_p.port, mock_p.port, mock_p.port, mock_p.port);
    th_serve(&planb_p, cfg);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(cross_cloud, .init = setup, .fini = teardown, .timeout = 240);

#define R(o, path) th_at_str(o, path)

#define TOOLS                                                                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                    \
    "\"description\":\"Weather of a city\",\"parameters\":{\"type\":\"object\",\"properties\":"    \
    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]"
#define TOOL_CALLS "\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]"

/* Pushes job (with "id":"<id>" already in it) and waits for its result. Caller puts. */
static json_object *
run(const char *id, const char *job)
{
    cr_assert_eq(th_push_raw(rc, job), 0);
    json_object *r = th_wait_result(rc, id, 30);
    cr_assert_not_null(r, "no result for %s", id);
    return r;
}

/* Job id of kind 0 plain, 1 with tools, 2 streamed, on route. Caller puts the result. */
static json_object *
ask(const char *id, int kind, const char *route, const char *extra)
{
    char job[2048];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"cache\":\"skip\",%s\"messages\":"
             "[{\"role\":\"user\",\"content\":\"alpha beta gamma\"}]%s%s}",
             id, route, kind == 2 ? "\"stream\":true," : "",
             kind == 1 ? ",\"params\":{" TOOLS ",\"tool_choice\":\"auto\"}" : "", extra);
    return run(id, job);
}

Test(cross_cloud, every_failure_combination_answers_from_the_first_healthy_cloud)
{
    for (int mask = 0; mask < 8; mask++) {
        int first = -1;
        for (int c = 0; c < 3 && first < 0; c++)
            if (!(mask & (1 << c)))
                first = c;
        for (int kind = 0; kind < 3; kind++) {
            for (int c = 0; c < 3; c++)
                th_mock_set(&mock_p, clouds[c].mock_name,
                            mask & (1 << c) ? clouds[c].failure
                            : kind == 1     ? "{\"mode\":\"ok\"," TOOL_CALLS "}"
                                            : "{\"mode\":\"ok\"}");
            char id[32];
            snprintf(id, sizeof(id), "x%d-%d", mask, kind);
            json_object *r = ask(id, kind, "default", "");
            const char *why = json_object_to_json_string(r);
            if (first < 0) {
                cr_expect_str_eq(R(r, "source"), "degraded", "%s: %s", id, why);
                cr_expect_str_eq(R(r, "content"), "Sorry, later.", "%s", id);
                json_object_put(r);
                continue;
            }
            cr_expect_str_eq(R(r, "status"), "ok", "%s: %s", id, why);
            cr_expect_str_eq(R(r, "model"), clouds[first].model, "%s: %s", id, why);
            cr_expect_str_eq(R(r, "source"), first == 0 ? "primary" : "fallback", "%s", id);
            if (kind == 1) {
                cr_expect_str_eq(R(r, "finish_reason"), "tool_calls", "%s: %s", id, why);
                cr_expect_str_eq(R(r, "message.tool_calls[0].function.arguments"),
                                 "{\"city\":\"Paris\"}", "%s", id);
            } else {
                cr_expect_str_eq(R(r, "content"), "echo: alpha beta gamma", "%s: %s", id, why);
            }
            json_object_put(r);
        }
    }
}

Test(cross_cloud, a_tool_round_trip_on_each_cloud)
{
    static const char *const routes[3] = {"azure", "bedrock", "gemini"};
    for (int c = 0; c < 3; c++) {
        th_mock_set(&mock_p, clouds[c].mock_name, "{\"mode\":\"ok\"," TOOL_CALLS "}");
        char id[32];
        snprintf(id, sizeof(id), "t%d", c);
        json_object *r = ask(id, 1, routes[c], "");
        cr_assert_str_eq(R(r, "finish_reason"), "tool_calls", "%s: %s", id,
                         json_object_to_json_string(r));
        char *calls = strdup(
            json_object_to_json_string_ext(th_at(r, "message.tool_calls"), JSON_C_TO_STRING_PLAIN));
        char call_id[96];
        snprintf(call_id, sizeof(call_id), "%s", R(r, "message.tool_calls[0].id"));
        json_object_put(r);
        th_mock_set(&mock_p, clouds[c].mock_name, "{\"mode\":\"ok\"}");
        char job[4096];
        snprintf(job, sizeof(job),
                 "{\"id\":\"t%d-2\",\"reply\":true,\"route\":\"%s\",\"cache\":\"skip\","
                 "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                 "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":%s},"
                 "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"18C and sunny\"}],"
                 "\"params\":{" TOOLS "}}",
                 c, routes[c], calls, call_id);
        free(calls);
        snprintf(id, sizeof(id), "t%d-2", c);
        r = run(id, job);
        cr_expect_str_eq(R(r, "model"), clouds[c].model, "%s: %s", id,
                         json_object_to_json_string(r));
        cr_expect_str_eq(R(r, "content"), "tool said: 18C and sunny", "%s", id);
        json_object_put(r);
    }
}

Test(cross_cloud, each_cloud_s_stream_cut_before_and_after_the_first_token)
{
    for (int c = 0; c < 3; c++) {
        for (int c2 = 0; c2 < 3; c2++)
            th_mock_set(&mock_p, clouds[c2].mock_name, "{\"mode\":\"ok\"}");
        /* The clouds before c are down, so c is the one streaming. */
        for (int b = 0; b < c; b++)
            th_mock_set(&mock_p, clouds[b].mock_name, clouds[b].failure);
        th_mock_set(&mock_p, clouds[c].mock_name,
                    "{\"mode\":\"ok\",\"stream_fault\":\"reset_mid\",\"fault_after\":0}");
        char id[32];
        snprintf(id, sizeof(id), "s%d-before", c);
        json_object *r = ask(id, 2, "default", "");
        const char *why = json_object_to_json_string(r);
        if (c < 2) {
            cr_expect_str_eq(R(r, "model"), clouds[c + 1].model, "%s: %s", id, why);
            cr_expect_str_eq(R(r, "content"), "echo: alpha beta gamma", "%s: %s", id, why);
        } else {
            cr_expect_str_eq(R(r, "source"), "degraded", "%s: %s", id, why);
        }
        json_object_put(r);

        th_mock_set(&mock_p, clouds[c].mock_name,
                    "{\"mode\":\"ok\",\"stream_fault\":\"reset_mid\",\"fault_after\":2}");
        snprintf(id, sizeof(id), "s%d-after", c);
        r = ask(id, 2, "default", "");
        why = json_object_to_json_string(r);
        cr_expect_str_eq(R(r, "model"), clouds[c].model, "%s: %s", id, why);
        cr_expect_str_eq(R(r, "finish_reason"), "cut", "%s: %s", id, why);
        cr_expect_str_eq(R(r, "content"), "echo: alpha ", "%s: %s", id, why);
        json_object_put(r);
    }
}
