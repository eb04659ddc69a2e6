/* test_gemini.c -- the native Gemini dialect end to end: real redis-server, planb-mock serving
 * Gemini's generateContent and streamGenerateContent (validating what planb sends: the key in
 * x-goog-api-key and not in the URL, contents of user/model turns, function responses after
 * their calls) and `planb serve`: answers, fallback both ways, a tool round trip, streams (cut
 * before and after the first token, tool calls with the ids of the unstreamed reply).
 *
 * Route "gf" = [gem (gemini), gpt (openai)], route "og" = the reverse; no retries, so each
 * failure moves down the chain at once. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "th_jobs.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

static void
setup(void)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,"
             " \"concurrency\": 16, \"drain_timeout_ms\": 2000,"
             " \"providers\": {\"goog\": {\"type\": \"gemini\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1beta\", \"api_key_env\": \"PB_TEST_KEY\"},"
             " \"oa\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             " \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"gem\": {\"provider\": \"goog\", \"model\": \"gemini-2.5-flash\","
             " \"timeout_ms\": 5000, \"price_in_per_mtok\": 0.3, \"price_out_per_mtok\": 2.5},"
             " \"gpt\": {\"provider\": \"oa\", \"tier\": 2, \"timeout_ms\": 5000}},"
             " \"routes\": {\"default\": {\"chain\": [\"gem\", \"gpt\"], \"retries\": 0},"
             " \"gf\": {\"chain\": [\"gem\", \"gpt\"], \"retries\": 0},"
             " \"og\": {\"chain\": [\"gpt\", \"gem\"], \"retries\": 0}},"
             " \"breaker\": {\"failures\": 0, \"refused_hold_s\": 0},"
             " \"monitor\": {\"metrics_listen\": \"\"}}",
             redis_p.port, mock_p.port, mock_p.port);
    th_serve(&planb_p, cfg);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(gemini, .init = setup, .fini = teardown, .timeout = 120);

/* o at a dotted path ("a.0.b"), NULL when absent. */
static json_object *
at(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok(buf, "."); tok && o; tok = strtok(NULL, ".")) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(tok));
        else if (!json_object_object_get_ex(o, tok, &o))
            return NULL;
    }
    return o;
}

static const char *
str_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    return v ? json_object_get_string(v) : "";
}

/* GET /_mock/<what> as JSON. Caller puts. */
static json_object *
mock_get(const char *what)
{
    char url[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/%s", mock_p.port, what);
    long status = 0;
    char *body = th_http("GET", url, NULL, &status);
    cr_assert(body && status == 200, "GET %s: %ld", url, status);
    json_object *o = json_tokener_parse(body);
    free(body);
    cr_assert_not_null(o);
    return o;
}

static long
mock_invalid(const char *model)
{
    json_object *s = mock_get("stats");
    char path[96];
    snprintf(path, sizeof(path), "models.%s.invalid", model);
    json_object *v = at(s, path);
    long n = v ? json_object_get_int64(v) : 0;
    json_object_put(s);
    return n;
}

/* Pushes job (with "id":"<id>" already in it) and waits for its result. Caller puts. */
static json_object *
run(const char *id, const char *job)
{
    cr_assert_eq(th_push_raw(rc, job), 0);
    json_object *r = th_wait_result(rc, id, 20);
    cr_assert_not_null(r, "no result for %s", id);
    return r;
}

Test(gemini, answers_with_the_key_in_its_header_and_the_conversation_translated)
{
    json_object *r = run("g1", "{\"id\":\"g1\",\"reply\":true,\"route\":\"gf\",\"cache\":\"skip\","
                               "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                               "{\"role\":\"user\",\"content\":\"hello\"},{\"role\":\"assistant\","
                               "\"content\":\"hi\"},{\"role\":\"user\",\"content\":\"again\"}],"
                               "\"params\":{\"temperature\":0.5,\"max_tokens\":50}}");
    cr_assert_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "gem");
    cr_expect_str_eq(str_at(r, "provider"), "goog");
    cr_expect_str_eq(str_at(r, "source"), "primary");
    cr_expect_str_eq(str_at(r, "content"), "echo: again");
    cr_expect_str_eq(str_at(r, "finish_reason"), "stop");
    cr_expect_eq(json_object_get_int(at(r, "usage.prompt_tokens")), 5, "words of every turn");
    cr_expect_eq(json_object_get_int(at(r, "usage.completion_tokens")), 2);
    json_object_put(r);
    cr_expect_eq(mock_invalid("gemini-2.5-flash"), 0);

    json_object *last = mock_get("last/gemini-2.5-flash");
    cr_expect_str_eq(str_at(last, "path"), "/v1beta/models/gemini-2.5-flash:generateContent");
    cr_expect_str_eq(str_at(last, "headers.x-goog-api-key"), getenv("PB_TEST_KEY"));
    cr_expect_str_eq(str_at(last, "headers.authorization"), "", "no Bearer key on Gemini");
    cr_expect_str_eq(str_at(last, "body.systemInstruction.parts.0.text"), "Be brief.");
    cr_expect_str_eq(str_at(last, "body.contents.1.role"), "model");
    cr_expect_str_eq(str_at(last, "body.contents.2.parts.0.text"), "again");
    cr_expect_str_eq(str_at(last, "body.generationConfig.temperature"), "0.5");
    cr_expect_eq(json_object_get_int(at(last, "body.generationConfig.maxOutputTokens")), 50);
    json_object_put(last);
}

Test(gemini, falls_back_to_openai_and_back)
{
    th_mock_set(&mock_p, "gemini-2.5-flash", "{\"mode\":\"status\",\"status\":503}");
    json_object *r = run("g2", "{\"id\":\"g2\",\"reply\":true,\"route\":\"gf\",\"cache\":\"skip\","
                               "\"messages\":[{\"role\":\"user\",\"content\":\"one\"}]}");
    cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "gpt");
    cr_expect_str_eq(str_at(r, "source"), "fallback");
    cr_expect_str_eq(str_at(r, "attempts.0.outcome"), "http_503");
    json_object_put(r);

    th_mock_set(&mock_p, "gemini-2.5-flash", "{\"mode\":\"status\",\"status\":403}");
    r = run("g3", "{\"id\":\"g3\",\"reply\":true,\"route\":\"gf\",\"cache\":\"skip\","
                  "\"messages\":[{\"role\":\"user\",\"content\":\"two\"}]}");
    cr_expect_str_eq(str_at(r, "model"), "gpt", "a refused key falls back");
    json_object_put(r);

    th_mock_set(&mock_p, "gemini-2.5-flash", "{\"mode\":\"ok\"}");
    th_mock_set(&mock_p, "gpt", "{\"mode\":\"status\",\"status\":429}");
    r = run("g4", "{\"id\":\"g4\",\"reply\":true,\"route\":\"og\",\"cache\":\"skip\","
                  "\"messages\":[{\"role\":\"user\",\"content\":\"three\"}]}");
    cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "gem");
    cr_expect_str_eq(str_at(r, "source"), "fallback");
    cr_expect_str_eq(str_at(r, "content"), "echo: three");
    json_object_put(r);

    th_mock_set(&mock_p, "gemini-2.5-flash",
                "{\"mode\":\"ok\",\"finish_reason\":\"content_filter\"}");
    r = run("g5", "{\"id\":\"g5\",\"reply\":true,\"route\":\"gf\",\"cache\":\"skip\","
                  "\"messages\":[{\"role\":\"user\",\"content\":\"four\"}]}");
    cr_expect_str_eq(str_at(r, "model"), "gem", "a safety block is an answer");
    cr_expect_str_eq(str_at(r, "finish_reason"), "content_filter");
    json_object_put(r);
    cr_expect_eq(mock_invalid("gemini-2.5-flash"), 0);
}

#define TOOLS                                                                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                    \
    "\"description\":\"Weather of a city\",\"parameters\":{\"type\":\"object\",\"properties\":"    \
    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]"

Test(gemini, a_tool_round_trip)
{
    th_mock_set(&mock_p, "gemini-2.5-flash",
                "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{"
                "\"city\":\"Paris\"}}]}");
    json_object *r = run("t1", "{\"id\":\"t1\",\"reply\":true,\"route\":\"gf\",\"cache\":\"skip\","
                               "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in "
                               "Paris?\"}],\"params\":{" TOOLS ",\"tool_choice\":\"auto\"}}");
    cr_assert_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "gem");
    cr_expect_str_eq(str_at(r, "finish_reason"), "tool_calls");
    json_object *calls = at(r, "message.tool_calls");
    cr_assert(json_object_is_type(calls, json_type_array) && json_object_array_length(calls) == 1,
              "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(calls, "0.function.name"), "get_weather");
    cr_expect_str_eq(str_at(calls, "0.function.arguments"), "{\"city\":\"Paris\"}");
    char call_id[96];
    snprintf(call_id, sizeof(call_id), "%s", str_at(calls, "0.id"));
    cr_expect(strncmp(call_id, "call_", 5) == 0, "a made-up id: %s", call_id);
    char *calls_json = strdup(json_object_to_json_string_ext(calls, JSON_C_TO_STRING_PLAIN));
    json_object_put(r);
    json_object *last = mock_get("last/gemini-2.5-flash");
    cr_expect_str_eq(str_at(last, "body.tools.0.functionDeclarations.0.name"), "get_weather");
    cr_expect_str_eq(str_at(last, "body.toolConfig.functionCallingConfig.mode"), "AUTO");
    json_object_put(last);

    char job[4096];
    snprintf(job, sizeof(job),
             "{\"id\":\"t2\",\"reply\":true,\"route\":\"gf\",\"cache\":\"skip\",\"messages\":["
             "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":%s},"
             "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"18C and sunny\"}],"
             "\"params\":{" TOOLS "}}",
             calls_json, call_id);
    r = run("t2", job);
    cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "gem");
    cr_expect_str_eq(str_at(r, "content"), "tool said: 18C and sunny");
    json_object_put(r);
    last = mock_get("last/gemini-2.5-flash");
    cr_expect_str_eq(str_at(last, "body.contents.1.parts.0.functionCall.name"), "get_weather");
    cr_expect_str_eq(str_at(last, "body.contents.1.parts.0.functionCall.args.city"), "Paris");
    cr_expect_str_eq(str_at(last, "body.contents.2.parts.0.functionResponse.name"), "get_weather",
                     "matched by the tool call's name");
    json_object_put(last);
    cr_expect_eq(mock_invalid("gemini-2.5-flash"), 0);

    /* The same conversation on OpenAI keeps the made-up id. */
    snprintf(job, sizeof(job),
             "{\"id\":\"t3\",\"reply\":true,\"route\":\"og\",\"cache\":\"skip\",\"messages\":["
             "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":%s},"
             "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"18C and sunny\"}],"
             "\"params\":{" TOOLS "}}",
             calls_json, call_id);
    free(calls_json);
    r = run("t3", job);
    cr_expect_str_eq(str_at(r, "model"), "gpt", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "content"), "tool said: 18C and sunny");
    json_object_put(r);
}

/* Pushes a streamed job and waits for its result. */
static json_object *
run_streamed(const char *id, const char *route)
{
    char job[512];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"stream\":true,\"route\":\"%s\",\"cache\":\"skip\","
             "\"messages\":[{\"role\":\"user\",\"content\":\"alpha beta gamma\"}]}",
             id, route);
    return run(id, job);
}

Test(gemini, streams_and_a_cut_before_the_first_token_falls_back)
{
    json_object *r = run_streamed("s1", "gf");
    cr_assert_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "gem");
    cr_expect_str_eq(str_at(r, "content"), "echo: alpha beta gamma");
    cr_expect_eq(json_object_get_int(at(r, "usage.completion_tokens")), 4);
    json_object_put(r);
    json_object *last = mock_get("last/gemini-2.5-flash");
    cr_expect_str_eq(str_at(last, "path"), "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    json_object_put(last);
    redisReply *x = redisCommand(rc, "XLEN planb:stream:s1");
    cr_expect(x && x->type == REDIS_REPLY_INTEGER && x->integer >= 5, "start, deltas, end");
    freeReplyObject(x);

    static const char *const faults[] = {"reset_mid", "error_before", "malformed"};
    for (size_t i = 0; i < 3; i++) {
        char b[160], id[16];
        snprintf(b, sizeof(b), "{\"mode\":\"ok\",\"stream_fault\":\"%s\",\"fault_after\":0}",
                 faults[i]);
        th_mock_set(&mock_p, "gemini-2.5-flash", b);
        snprintf(id, sizeof(id), "s%zu", i + 2);
        r = run_streamed(id, "gf");
        cr_expect_str_eq(str_at(r, "status"), "ok", "%s: %s", faults[i],
                         json_object_to_json_string(r));
        cr_expect_str_eq(str_at(r, "model"), "gpt", "%s", faults[i]);
        cr_expect_str_eq(str_at(r, "source"), "fallback", "%s", faults[i]);
        cr_expect_str_eq(str_at(r, "content"), "echo: alpha beta gamma", "%s", faults[i]);
        json_object_put(r);
    }

    /* A Gemini stream cut after its first token ends the answer cut. */
    th_mock_set(&mock_p, "gemini-2.5-flash",
                "{\"mode\":\"ok\",\"stream_fault\":\"reset_mid\",\"fault_after\":2}");
    r = run_streamed("s9", "gf");
    cr_expect_str_eq(str_at(r, "model"), "gem");
    cr_expect_str_eq(str_at(r, "finish_reason"), "cut");
    cr_expect_str_eq(str_at(r, "content"), "echo: alpha ");
    json_object_put(r);
}

Test(gemini, streamed_tool_calls_keep_the_ids_of_the_unstreamed_reply)
{
    th_mock_set(&mock_p, "gemini-2.5-flash",
                "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{"
                "\"city\":\"Paris\"}},{\"name\":\"get_weather\",\"arguments\":{\"city\":"
                "\"Rome\"}}]}");
    const char *ids[2] = {"ts1", "ts2"};
    char got[2][512];
    for (size_t i = 0; i < 2; i++) {
        char job[1024];
        snprintf(job, sizeof(job),
                 "{\"id\":\"%s\",\"reply\":true,%s\"route\":\"gf\",\"cache\":\"skip\","
                 "\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}],\"params\":{" TOOLS
                 "}}",
                 ids[i], i == 0 ? "\"stream\":true," : "");
        json_object *r = run(ids[i], job);
        cr_assert_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
        cr_expect_str_eq(str_at(r, "finish_reason"), "tool_calls");
        cr_expect_str_eq(str_at(r, "message.tool_calls.1.function.arguments"),
                         "{\"city\":\"Rome\"}");
        snprintf(got[i], sizeof(got[i]), "%s %s", str_at(r, "message.tool_calls.0.id"),
                 str_at(r, "message.tool_calls.1.id"));
        json_object_put(r);
    }
    cr_expect_str_eq(got[0], got[1], "streamed or not, the same made-up ids");
}
