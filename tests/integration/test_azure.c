/* test_azure.c -- Azure OpenAI models in a chain against planb-mock, through the real binary.
 *
 * World: route "default" = [gpt (azure v1 API, api-key, a query parameter and a header from
 * the environment), west (azure deployment API with api-version, Entra Bearer token), backup
 * (openai)], one retry each; breakers off. planb-mock checks Azure's api-key / Bearer and
 * api-version and keeps each deployment's last request (path, query, headers, body), which the
 * tests read back. Jobs skip the cache so each one reaches upstream. */
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
    setenv("PB_TEST_AZ_TOKEN", "entra-token-not-real", 1);
    setenv("PB_TEST_AZ_ORG", "org-from-env", 1);
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,"
             " \"concurrency\": 64, \"drain_timeout_ms\": 2000,"
             " \"breaker\": {\"failures\": 0, \"refused_hold_s\": 0},"
             " \"monitor\": {\"metrics_listen\": \"\"},"
             " \"providers\": {"
             "  \"azv1\": {\"type\": \"azure\", \"base_url\": \"http://127.0.0.1:%d/openai/v1\","
             "   \"api_key_env\": \"PB_TEST_KEY\", \"query\": {\"team\": \"search ops\"},"
             "   \"headers\": {\"X-Org\": {\"env\": \"PB_TEST_AZ_ORG\"}}},"
             "  \"azdep\": {\"type\": \"azure\", \"base_url\": \"http://127.0.0.1:%d\","
             "   \"api_version\": \"2024-10-21\", \"bearer_token_env\": \"PB_TEST_AZ_TOKEN\"},"
             "  \"oai\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             "   \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"gpt\": {\"provider\": \"azv1\", \"model\": \"gpt-dep\"},"
             "  \"west\": {\"provider\": \"azdep\", \"model\": \"west-dep\", \"tier\": 2},"
             "  \"backup\": {\"provider\": \"oai\", \"tier\": 3}},"
             " \"routes\": {\"default\": {\"chain\": [\"gpt\", \"west\", \"backup\"],"
             "  \"retries\": 1, \"backoff_ms\": 10, \"backoff_max_ms\": 20,"
             "  \"deadline_ms\": 10000}}}",
             redis_p.port, mock_p.port, mock_p.port, mock_p.port);
    th_serve(&planb_p, cfg);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(azure, .init = setup, .fini = teardown, .timeout = 120);

/* The value at a dotted path ("a.0.b") in o, or NULL. */
static json_object *
at(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && o;
         k = strtok_r(NULL, ".", &save)) {
        json_object *next = NULL;
        if (json_object_is_type(o, json_type_array))
            next = json_object_array_get_idx(o, (size_t)atoi(k));
        else if (!json_object_object_get_ex(o, k, &next))
            next = NULL;
        o = next;
    }
    return o;
}

static const char *
str_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

/* GET /_mock/last/<model> (asserts). Caller puts. */
static json_object *
mock_last(const char *model)
{
    char url[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/last/%s", mock_p.port, model);
    long status = 0;
    char *body = th_http("GET", url, NULL, &status);
    cr_assert(body && status == 200, "GET %s: %ld", url, status);
    json_object *o = json_tokener_parse(body);
    free(body);
    cr_assert_not_null(o);
    return o;
}

/* Pushes job (its id is id) and waits for the result. Caller puts. */
static json_object *
run(const char *id, const char *job)
{
    cr_assert_eq(th_push_raw(rc, job), 0);
    json_object *res = th_wait_result(rc, id, 20);
    cr_assert_not_null(res, "no result for %s", id);
    return res;
}

/* A one-question job, streamed or not. Caller puts the result. */
static json_object *
ask(const char *id, const char *text, bool stream)
{
    char job[1024];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"cache\":\"skip\",%s\"messages\":[{\"role\":"
             "\"user\",\"content\":\"%s\"}]}",
             id, stream ? "\"stream\":true," : "", text);
    return run(id, job);
}

Test(azure, the_v1_api_answers_with_api_key_query_and_header)
{
    json_object *r = ask("a1", "hello azure", false);
    cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "source"), "primary");
    cr_expect_str_eq(str_at(r, "model"), "gpt");
    cr_expect_str_eq(str_at(r, "provider"), "azv1");
    cr_expect_str_eq(str_at(r, "content"), "echo: hello azure");
    json_object_put(r);
    json_object *last = mock_last("gpt-dep");
    cr_expect_str_eq(str_at(last, "path"), "/openai/v1/chat/completions");
    cr_expect_str_eq(str_at(last, "query"), "team=search%20ops");
    cr_expect_str_eq(str_at(last, "headers.api-key"), "sk-test-not-a-real-key");
    cr_expect_null(at(last, "headers.authorization"), "the key goes in api-key only");
    cr_expect_str_eq(str_at(last, "headers.x-org"), "org-from-env");
    cr_expect_str_eq(str_at(last, "body.model"), "gpt-dep", "the deployment as model");
    json_object_put(last);
}

Test(azure, a_503_falls_back_to_the_deployment_api_with_its_bearer_token)
{
    th_mock_set(&mock_p, "gpt-dep", "{\"mode\":\"status\",\"status\":503}");
    json_object *r = ask("f1", "fall back", false);
    cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "source"), "fallback");
    cr_expect_str_eq(str_at(r, "model"), "west");
    cr_expect_str_eq(str_at(r, "content"), "echo: fall back");
    cr_expect_str_eq(str_at(r, "attempts.0.outcome"), "http_503");
    cr_expect_str_eq(str_at(r, "attempts.1.outcome"), "http_503", "one retry first");
    cr_expect_str_eq(str_at(r, "attempts.2.model"), "west");
    cr_expect_str_eq(str_at(r, "attempts.2.outcome"), "ok");
    json_object_put(r);
    json_object *last = mock_last("west-dep");
    cr_expect_str_eq(str_at(last, "path"), "/openai/deployments/west-dep/chat/completions");
    cr_expect_str_eq(str_at(last, "query"), "api-version=2024-10-21");
    cr_expect_str_eq(str_at(last, "headers.authorization"), "Bearer entra-token-not-real");
    cr_expect_null(at(last, "headers.api-key"));
    json_object_put(last);
    /* Both Azure models down: the OpenAI backup answers. */
    th_mock_set(&mock_p, "west-dep", "{\"mode\":\"status\",\"status\":500}");
    r = ask("f2", "both down", false);
    cr_expect_str_eq(str_at(r, "model"), "backup", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "content"), "echo: both down");
    json_object_put(r);
}

/* The types of planb:stream:<id>'s entries in order, joined with ",", and the text of its
 * deltas. */
static void
stream_entries(const char *id, char *types, size_t tcap, char *text, size_t xcap)
{
    redisReply *r = redisCommand(rc, "XRANGE planb:stream:%s - +", id);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    size_t tn = 0, xn = 0;
    types[0] = text[0] = '\0';
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *kv = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < kv->elements; k += 2) {
            const char *f = kv->element[k]->str, *v = kv->element[k + 1]->str;
            if (strcmp(f, "type") == 0)
                tn += (size_t)snprintf(types + tn, tcap - tn, "%s%s", tn ? "," : "", v);
            else if (strcmp(f, "text") == 0)
                xn += (size_t)snprintf(text + xn, xcap - xn, "%s", v);
        }
    }
    freeReplyObject(r);
}

Test(azure, a_content_filter_400_is_the_answer_not_a_retry)
{
    th_mock_set(&mock_p, "gpt-dep",
                "{\"mode\":\"status\",\"status\":400,\"error_code\":\"content_filter\"}");
    json_object *r = ask("c1", "something filtered", false);
    cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "source"), "primary");
    cr_expect_str_eq(str_at(r, "model"), "gpt");
    cr_expect_str_eq(str_at(r, "finish_reason"), "content_filter");
    cr_expect_str_eq(str_at(r, "content"), "");
    cr_expect_eq(json_object_array_length(at(r, "attempts")), 1, "no retry, no fallback");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "gpt-dep"), 1);
    cr_expect_eq(th_mock_requests(&mock_p, "west-dep"), 0);
    /* Streamed, the refusal (a 400, not a stream) ends the job's stream with that answer. */
    r = ask("c3", "something filtered", true);
    cr_expect_str_eq(str_at(r, "finish_reason"), "content_filter", "%s",
                     json_object_to_json_string(r));
    cr_expect_eq(json_object_array_length(at(r, "attempts")), 1);
    json_object_put(r);
    char types[256], text[64];
    stream_entries("c3", types, sizeof(types), text, sizeof(text));
    cr_expect_str_eq(types, "start,end", "a start, then the end with the result");
    cr_expect_str_eq(text, "");
    /* And a 200 stopped by the output filter, streamed: the same answer. */
    th_mock_set(&mock_p, "gpt-dep", "{\"mode\":\"ok\",\"finish_reason\":\"content_filter\"}");
    r = ask("c2", "cut by the filter", true);
    cr_expect_str_eq(str_at(r, "finish_reason"), "content_filter", "%s",
                     json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "gpt");
    json_object_put(r);
}

#define TOOLS                                                                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                    \
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"         \
    "\"required\":[\"city\"]}}}]"

Test(azure, a_tool_call_round_trip_on_the_deployment_api)
{
    th_mock_set(&mock_p, "gpt-dep", "{\"mode\":\"status\",\"status\":404}");
    th_mock_set(&mock_p, "west-dep",
                "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":"
                "{\"city\":\"Paris\"}}]}");
    char job[4096];
    snprintf(job, sizeof(job),
             "{\"id\":\"t1\",\"reply\":true,\"cache\":\"skip\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"Weather in Paris?\"}],\"params\":{" TOOLS "}}");
    json_object *r = run("t1", job);
    cr_assert_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "west");
    cr_expect_str_eq(str_at(r, "finish_reason"), "tool_calls");
    cr_expect_str_eq(str_at(r, "message.tool_calls.0.function.name"), "get_weather");
    char call_id[96];
    snprintf(call_id, sizeof(call_id), "%s", str_at(r, "message.tool_calls.0.id"));
    cr_assert_neq(call_id[0], '\0');
    char *calls =
        strdup(json_object_to_json_string_ext(at(r, "message.tool_calls"), JSON_C_TO_STRING_PLAIN));
    json_object_put(r);
    snprintf(job, sizeof(job),
             "{\"id\":\"t2\",\"reply\":true,\"cache\":\"skip\",\"messages\":["
             "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":%s},"
             "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"18C and sunny\"}],"
             "\"params\":{" TOOLS "}}",
             calls, call_id);
    free(calls);
    r = run("t2", job);
    cr_expect_str_eq(str_at(r, "content"), "tool said: 18C and sunny", "%s",
                     json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "west");
    json_object_put(r);
    json_object *last = mock_last("west-dep");
    cr_expect_str_eq(str_at(last, "body.messages.1.tool_calls.0.id"), call_id);
    cr_expect_str_eq(str_at(last, "body.messages.2.tool_call_id"), call_id);
    cr_expect_str_eq(str_at(last, "body.tools.0.function.name"), "get_weather");
    json_object_put(last);
}

Test(azure, a_stream_answers_and_falls_back_before_its_first_token)
{
    json_object *r = ask("s1", "one two three four", true);
    cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), "gpt");
    cr_expect_str_eq(str_at(r, "content"), "echo: one two three four");
    json_object_put(r);
    json_object *last = mock_last("gpt-dep");
    cr_expect(json_object_get_boolean(at(last, "body.stream")), "streamed upstream");
    json_object_put(last);
    char types[512], text[512];
    stream_entries("s1", types, sizeof(types), text, sizeof(text));
    cr_expect(strncmp(types, "start,delta,", 12) == 0, "entries: %s", types);
    cr_expect(strlen(types) > 4 && strcmp(types + strlen(types) - 4, ",end") == 0, "%s", types);
    cr_expect_str_eq(text, "echo: one two three four");
    /* An error event before any token: the deployment API's model streams the answer. */
    th_mock_set(&mock_p, "gpt-dep", "{\"mode\":\"ok\",\"stream_fault\":\"error_before\"}");
    r = ask("s2", "five six", true);
    cr_expect_str_eq(str_at(r, "model"), "west", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "source"), "fallback");
    cr_expect_str_eq(str_at(r, "content"), "echo: five six");
    json_object_put(r);
    stream_entries("s2", types, sizeof(types), text, sizeof(text));
    cr_expect_str_eq(text, "echo: five six", "one answer on the stream (%s)", types);
}
