/* test_requests.c -- what real apps send, through the real binary in both dialects: tool
 * calling round trips (primary up, and primary down with an Anthropic backup), structured
 * output, images, stop and seed, capability skips, model-specific 400s, cut answers, costs.
 *
 * World: redis-server, planb-mock (validating like the real APIs: unknown fields, tool
 * schemas, tool_result pairing, role alternation, blank stop sequences) and planb with
 * models gpt (OpenAI dialect, priced), claude (Anthropic), textonly (OpenAI, no capabilities)
 * and routes default [gpt, claude], an [claude, gpt], nv [textonly, claude], plain
 * [textonly]. No retries, breakers off, so each fault costs one attempt. */
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
    snprintf(
        cfg, sizeof(cfg),
        "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,\n"
        " \"drain_timeout_ms\": 2000, \"breaker\": {\"failures\": 0},\n"
        " \"providers\": {\n"
        "   \"oai\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
        " \"api_key_env\": \"PB_TEST_KEY\"},\n"
        "   \"ant\": {\"type\": \"anthropic\", \"base_url\": \"http://127.0.0.1:%d/v1\","
        " \"api_key_env\": \"PB_TEST_KEY\"}},\n"
        " \"models\": {\n"
        "   \"gpt\": {\"provider\": \"oai\", \"timeout_ms\": 3000, \"price_in_per_mtok\": 2.5,"
        " \"price_out_per_mtok\": 10},\n"
        "   \"claude\": {\"provider\": \"ant\", \"timeout_ms\": 3000},\n"
        "   \"textonly\": {\"provider\": \"oai\", \"timeout_ms\": 3000, \"capabilities\": []}},\n"
        " \"routes\": {\n"
        "   \"default\": {\"chain\": [\"gpt\", \"claude\"], \"retries\": 0},\n"
        "   \"an\": {\"chain\": [\"claude\", \"gpt\"], \"retries\": 0},\n"
        "   \"nv\": {\"chain\": [\"textonly\", \"claude\"], \"retries\": 0},\n"
        "   \"plain\": {\"chain\": [\"textonly\"], \"retries\": 0}},\n"
        " \"cache\": {\"ttl_s\": 60}}\n",
        redis_p.port, mock_p.port, mock_p.port);
    th_serve(&planb_p, cfg);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(requests, .init = setup, .fini = teardown, .timeout = 120);

/* Pushes job (a JSON object text) and waits for its result. Caller puts. */
static json_object *
run(const char *id, const char *job)
{
    cr_assert_eq(th_push_raw(rc, job), 0);
    json_object *r = th_wait_result(rc, id, 20);
    cr_assert_not_null(r, "no result for %s", id);
    return r;
}

/* o.path (dot-separated keys; a number indexes an array), NULL when absent. Borrowed. */
static json_object *
at(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok(buf, "."); tok && o; tok = strtok(NULL, ".")) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(tok));
        else if (!json_object_object_get_ex(o, tok, &o))
            o = NULL;
    }
    return o;
}

static const char *
str_at(json_object *o, const char *path)
{
    json_object *v = at(o, path);
    return v ? json_object_get_string(v) : "";
}

/* The body of the mock's last request for model. Caller puts. */
static json_object *
last_body(const char *model)
{
    char url[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/last/%s", mock_p.port, model);
    long status = 0;
    char *text = th_http("GET", url, NULL, &status);
    cr_assert(text && status == 200, "GET %s: %ld", url, status);
    json_object *o = json_tokener_parse(text), *b = NULL;
    free(text);
    cr_assert(json_object_object_get_ex(o, "body", &b));
    json_object_get(b);
    json_object_put(o);
    return b;
}

/* Requests of model the mock refused as malformed. */
static long
mock_invalid(const char *model)
{
    char url[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/stats", mock_p.port);
    long status = 0;
    char *text = th_http("GET", url, NULL, &status);
    json_object *o = json_tokener_parse(text);
    free(text);
    char path[96];
    snprintf(path, sizeof(path), "models.%s.invalid", model);
    json_object *v = at(o, path);
    long n = v ? json_object_get_int64(v) : 0;
    json_object_put(o);
    return n;
}

#define TOOLS                                                                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                    \
    "\"description\":\"Weather of a city\",\"parameters\":{\"type\":\"object\",\"properties\":"    \
    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]"
#define CALL_WEATHER                                                                               \
    "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":"          \
    "\"Paris\"}}]}"

/* Round trip: the model asks for get_weather, the app answers it, the model answers. The
 * second job carries the assistant's tool_calls (ids as returned) and the tool message. */
static void
round_trip(const char *route, const char *answering, const char *id_prefix)
{
    char id[64], job[4096];
    snprintf(id, sizeof(id), "%s-1", id_prefix);
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"cache\":\"skip\",\"messages\":[{"
             "\"role\":\"user\","
             "\"content\":\"Weather in Paris?\"}],\"params\":{" TOOLS ",\"tool_choice\":\"auto\"}}",
             id, route);
    json_object *r = run(id, job);
    cr_assert_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "model"), answering);
    cr_expect_str_eq(str_at(r, "finish_reason"), "tool_calls");
    json_object *calls = at(r, "message.tool_calls");
    cr_assert(json_object_is_type(calls, json_type_array) && json_object_array_length(calls) == 1,
              "%s", json_object_to_json_string(r));
    cr_expect_null(at(r, "message.content"), "content null beside tool calls");
    cr_expect_str_eq(str_at(calls, "0.type"), "function");
    cr_expect_str_eq(str_at(calls, "0.function.name"), "get_weather");
    json_object *args = json_tokener_parse(str_at(calls, "0.function.arguments"));
    cr_expect_str_eq(str_at(args, "city"), "Paris", "arguments are a JSON string");
    json_object_put(args);
    char call_id[96];
    snprintf(call_id, sizeof(call_id), "%s", str_at(calls, "0.id"));
    char *calls_json = strdup(json_object_to_json_string_ext(calls, JSON_C_TO_STRING_PLAIN));
    json_object_put(r);

    snprintf(id, sizeof(id), "%s-2", id_prefix);
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"messages\":["
             "{\"role\":\"system\",\"content\":\"Be brief.\"},"
             "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":%s},"
             "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"18C and sunny\"}],"
             "\"params\":{" TOOLS "}}",
             id, route, calls_json, call_id);
    free(calls_json);
    r = run(id, job);
    cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(str_at(r, "content"), "tool said: 18C and sunny");
    cr_expect_str_eq(str_at(r, "finish_reason"), "stop");
    cr_expect_str_eq(str_at(r, "model"), answering);
    json_object_put(r);
    /* The id planb returned is the id the model gets back. */
    json_object *b = last_body(answering);
    if (strcmp(answering, "claude") == 0) {
        cr_expect_str_eq(str_at(b, "system"), "Be brief.");
        cr_expect_str_eq(str_at(b, "tools.0.name"), "get_weather");
        cr_expect_str_eq(str_at(b, "tools.0.input_schema.type"), "object");
        cr_expect_str_eq(str_at(b, "tools.0.input_schema.required.0"), "city");
        cr_expect_str_eq(str_at(b, "messages.1.role"), "assistant");
        cr_expect_str_eq(str_at(b, "messages.1.content.0.type"), "tool_use");
        cr_expect_str_eq(str_at(b, "messages.1.content.0.id"), call_id);
        cr_expect_str_eq(str_at(b, "messages.1.content.0.input.city"), "Paris", "parsed input");
        cr_expect_str_eq(str_at(b, "messages.2.role"), "user");
        cr_expect_str_eq(str_at(b, "messages.2.content.0.type"), "tool_result");
        cr_expect_str_eq(str_at(b, "messages.2.content.0.tool_use_id"), call_id);
        cr_expect_str_eq(str_at(b, "messages.2.content.0.content"), "18C and sunny");
    } else {
        cr_expect_str_eq(str_at(b, "messages.2.tool_calls.0.id"), call_id);
        cr_expect_str_eq(str_at(b, "messages.3.role"), "tool");
        cr_expect_str_eq(str_at(b, "messages.3.tool_call_id"), call_id);
        cr_expect_str_eq(str_at(b, "tools.0.function.name"), "get_weather");
    }
    json_object_put(b);
}

Test(requests, tool_round_trip_through_the_openai_primary)
{
    th_mock_set(&mock_p, "gpt", CALL_WEATHER);
    round_trip("default", "gpt", "t1");
    json_object *b = last_body("gpt");
    cr_expect_str_eq(str_at(b, "tools.0.function.parameters.required.0"), "city", "as sent");
    json_object_put(b);
    cr_expect_eq(mock_invalid("gpt"), 0);
}

Test(requests, tool_round_trip_with_the_primary_down_goes_to_anthropic_translated)
{
    th_mock_set(&mock_p, "gpt", "{\"mode\":\"status\",\"status\":503}");
    th_mock_set(&mock_p, "claude", CALL_WEATHER);
    round_trip("default", "claude", "t2");
    json_object *b = last_body("claude");
    cr_expect_str_eq(str_at(b, "messages.0.content"), "Weather in Paris?");
    json_object_put(b);
    cr_expect_eq(mock_invalid("claude"), 0, "the mock found nothing to refuse");
}

Test(requests, tool_choice_and_parallel_tool_calls_translate_for_anthropic)
{
    const char *choices[][2] = {
        {"\"auto\"", "auto"},
        {"\"none\"", "none"},
        {"\"required\"", "any"},
        {"{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}", "tool"}};
    for (size_t i = 0; i < 4; i++) {
        char id[32], job[2048];
        snprintf(id, sizeof(id), "tc%zu", i);
        snprintf(job, sizeof(job),
                 "{\"id\":\"%s\",\"reply\":true,\"route\":\"an\",\"cache\":\"skip\","
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"params\":{" TOOLS
                 ",\"tool_choice\":%s,\"parallel_tool_calls\":false}}",
                 id, choices[i][0]);
        json_object *r = run(id, job);
        cr_expect_str_eq(str_at(r, "model"), "claude", "%s", json_object_to_json_string(r));
        json_object_put(r);
        json_object *b = last_body("claude");
        cr_expect_str_eq(str_at(b, "tool_choice.type"), choices[i][1]);
        if (i == 3)
            cr_expect_str_eq(str_at(b, "tool_choice.name"), "get_weather");
        if (i != 1)
            cr_expect(json_object_get_boolean(at(b, "tool_choice.disable_parallel_tool_use")));
        json_object_put(b);
    }
}

Test(requests, json_schema_reaches_each_dialect_and_comes_back_as_content)
{
    const char *params =
        "\"params\":{\"response_format\":{\"type\":\"json_schema\","
        "\"json_schema\":{\"name\":\"answer\",\"strict\":true,\"schema\":{\"type\":"
        "\"object\",\"properties\":{\"answer\":{\"type\":\"string\"}}}}}}";
    const char *routes[] = {"default", "an"};
    for (size_t i = 0; i < 2; i++) {
        char id[32], job[2048];
        snprintf(id, sizeof(id), "js%zu", i);
        snprintf(job, sizeof(job),
                 "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"cache\":\"skip\",\"messages\":[{"
                 "\"role\":\"user\","
                 "\"content\":\"capital of France\"}],%s}",
                 id, routes[i], params);
        json_object *r = run(id, job);
        cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
        json_object *answer = json_tokener_parse(str_at(r, "content"));
        cr_expect_str_eq(str_at(answer, "answer"), "echo: capital of France", "%s",
                         str_at(r, "content"));
        json_object_put(answer);
        cr_expect_str_eq(str_at(r, "finish_reason"), "stop");
        cr_expect_null(at(r, "message.tool_calls"), "never as tool calls (LiteLLM #6741)");
        json_object_put(r);
    }
    json_object *b = last_body("gpt");
    cr_expect_str_eq(str_at(b, "response_format.json_schema.name"), "answer", "OpenAI: as is");
    json_object_put(b);
    b = last_body("claude");
    cr_expect_str_eq(str_at(b, "tools.0.name"), "answer", "Anthropic: a forced tool");
    cr_expect_str_eq(str_at(b, "tools.0.input_schema.properties.answer.type"), "string");
    cr_expect_str_eq(str_at(b, "tool_choice.type"), "tool");
    cr_expect_str_eq(str_at(b, "tool_choice.name"), "answer");
    json_object_put(b);
}

#define PNG_DATA "iVBORw0KGgo="

Test(requests, images_data_and_https_reach_each_dialect)
{
    const char *routes[] = {"default", "an"};
    for (size_t i = 0; i < 2; i++) {
        char id[32], job[2048];
        snprintf(id, sizeof(id), "img%zu", i);
        snprintf(job, sizeof(job),
                 "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"cache\":\"skip\",\"messages\":[{"
                 "\"role\":\"user\","
                 "\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},"
                 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64," PNG_DATA
                 "\",\"detail\":\"low\"}},"
                 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.jpg\"}}"
                 "]}]}",
                 id, routes[i]);
        json_object *r = run(id, job);
        cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
        cr_expect_str_eq(str_at(r, "content"), "echo: What is this?");
        if (i == 1)
            cr_expect_str_eq(str_at(r, "dropped_params.0"), "image_url.detail");
        json_object_put(r);
    }
    json_object *b = last_body("gpt");
    cr_expect_str_eq(str_at(b, "messages.0.content.1.image_url.url"),
                     "data:image/png;base64," PNG_DATA);
    cr_expect_str_eq(str_at(b, "messages.0.content.1.image_url.detail"), "low");
    json_object_put(b);
    b = last_body("claude");
    cr_expect_str_eq(str_at(b, "messages.0.content.0.type"), "text");
    cr_expect_str_eq(str_at(b, "messages.0.content.1.type"), "image");
    cr_expect_str_eq(str_at(b, "messages.0.content.1.source.type"), "base64");
    cr_expect_str_eq(str_at(b, "messages.0.content.1.source.media_type"), "image/png");
    cr_expect_str_eq(str_at(b, "messages.0.content.1.source.data"), PNG_DATA);
    cr_expect_str_eq(str_at(b, "messages.0.content.2.source.type"), "url");
    cr_expect_str_eq(str_at(b, "messages.0.content.2.source.url"), "https://example.com/cat.jpg");
    json_object_put(b);
}

Test(requests, stop_and_seed_reach_each_dialect_as_documented)
{
    const char *params = "\"params\":{\"stop\":[\"END\",\"  \",\"\\n\"],\"seed\":42,"
                         "\"max_completion_tokens\":50}";
    const char *routes[] = {"default", "an"};
    for (size_t i = 0; i < 2; i++) {
        char id[32], job[1024];
        snprintf(id, sizeof(id), "ss%zu", i);
        snprintf(job, sizeof(job),
                 "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"cache\":\"skip\",\"messages\":[{"
                 "\"role\":\"user\","
                 "\"content\":\"count\"}],%s}",
                 id, routes[i], params);
        json_object *r = run(id, job);
        cr_expect_str_eq(str_at(r, "status"), "ok", "%s", json_object_to_json_string(r));
        if (i == 0) {
            cr_expect_null(at(r, "dropped_params"), "OpenAI takes them all");
        } else {
            cr_expect_str_eq(str_at(r, "dropped_params.0"), "seed");
            cr_expect_str_eq(str_at(r, "dropped_params.1"), "stop[1]");
            cr_expect_str_eq(str_at(r, "dropped_params.2"), "stop[2]");
        }
        json_object_put(r);
    }
    json_object *b = last_body("gpt");
    cr_expect_eq(json_object_array_length(at(b, "stop")), 3);
    cr_expect_eq(json_object_get_int(at(b, "seed")), 42);
    cr_expect_eq(json_object_get_int(at(b, "max_completion_tokens")), 50);
    cr_expect_null(at(b, "max_tokens"));
    json_object_put(b);
    b = last_body("claude");
    cr_expect_eq(json_object_array_length(at(b, "stop_sequences")), 1, "blank ones left out");
    cr_expect_str_eq(str_at(b, "stop_sequences.0"), "END");
    cr_expect_null(at(b, "seed"));
    cr_expect_eq(json_object_get_int(at(b, "max_tokens")), 50);
    json_object_put(b);
    cr_expect_eq(mock_invalid("claude"), 0);
}

Test(requests, a_model_lacking_a_capability_is_skipped_without_a_call)
{
    json_object *r = run("cap1", "{\"id\":\"cap1\",\"reply\":true,\"route\":\"nv\",\"messages\":["
                                 "{\"role\":\"user\",\"content\":\"hi\"}],\"params\":{" TOOLS "}}");
    cr_expect_str_eq(str_at(r, "status"), "ok");
    cr_expect_str_eq(str_at(r, "model"), "claude");
    cr_expect_str_eq(str_at(r, "source"), "fallback");
    cr_expect_str_eq(str_at(r, "attempts.0.model"), "textonly");
    cr_expect_str_eq(str_at(r, "attempts.0.outcome"), "unsupported");
    cr_expect_eq(json_object_get_int(at(r, "attempts.0.ms")), 0);
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "textonly"), 0, "never called");

    /* A plain job still goes to it. */
    r = run("cap2", "{\"id\":\"cap2\",\"reply\":true,\"route\":\"nv\",\"messages\":["
                    "{\"role\":\"user\",\"content\":\"hi\"}]}");
    cr_expect_str_eq(str_at(r, "model"), "textonly");
    json_object_put(r);

    /* No model of the chain can: invalid, naming the capability, dead-lettered. */
    r = run("cap3", "{\"id\":\"cap3\",\"reply\":true,\"route\":\"plain\",\"messages\":["
                    "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
                    "{\"url\":\"https://example.com/a.png\"}}]}]}");
    cr_expect_str_eq(str_at(r, "status"), "invalid");
    cr_expect(strstr(str_at(r, "error"), "UNSUPPORTED") == str_at(r, "error") &&
                  strstr(str_at(r, "error"), "vision") != NULL,
              "%s", str_at(r, "error"));
    json_object_put(r);
    redisReply *d = redisCommand(rc, "LLEN planb:dead");
    cr_expect_eq(d->integer, 1);
    freeReplyObject(d);
}

Test(requests, a_model_specific_400_falls_back)
{
    th_mock_set(&mock_p, "gpt",
                "{\"mode\":\"status\",\"status\":400,\"error_message\":\"Unsupported parameter: "
                "'reasoning_effort' is not supported with this model.\"}");
    json_object *r = run("m400", "{\"id\":\"m400\",\"reply\":true,\"messages\":[{\"role\":"
                                 "\"user\",\"content\":\"hi\"}],\"params\":{\"reasoning_effort\":"
                                 "\"low\"}}");
    cr_expect_str_eq(str_at(r, "status"), "ok");
    cr_expect_str_eq(str_at(r, "model"), "claude");
    cr_expect_str_eq(str_at(r, "attempts.0.outcome"), "http_400");
    cr_expect_str_eq(str_at(r, "dropped_params.0"), "reasoning_effort");
    json_object_put(r);
}

Test(requests, tool_arguments_that_are_not_json_are_a_bad_reply)
{
    th_mock_set(&mock_p, "gpt",
                "{\"mode\":\"ok\",\"bad_tool_args\":true,\"tool_calls\":[{\"name\":\"get_weather\","
                "\"arguments\":{\"city\":\"Paris\"}}]}");
    th_mock_set(&mock_p, "claude", CALL_WEATHER);
    json_object *r = run("bad1", "{\"id\":\"bad1\",\"reply\":true,\"messages\":[{\"role\":"
                                 "\"user\",\"content\":\"hi\"}],\"params\":{" TOOLS "}}");
    cr_expect_str_eq(str_at(r, "attempts.0.outcome"), "bad_reply");
    cr_expect_str_eq(str_at(r, "model"), "claude");
    cr_expect_str_eq(str_at(r, "message.tool_calls.0.function.arguments"), "{\"city\":\"Paris\"}");
    json_object_put(r);
}

Test(requests, a_length_answer_is_returned_marked_and_never_cached)
{
    th_mock_set(&mock_p, "gpt", "{\"mode\":\"ok\",\"finish_reason\":\"length\"}");
#define LEN_JOB                                                                                    \
    "{\"id\":\"%s\",\"reply\":true,\"messages\":[{\"role\":\"user\",\"content\":\"long story\"}]," \
    "\"params\":{\"max_tokens\":5}}"
    char buf[512];
    snprintf(buf, sizeof(buf), LEN_JOB, "len1");
    json_object *r = run("len1", buf);
    cr_expect_str_eq(str_at(r, "status"), "ok");
    cr_expect_str_eq(str_at(r, "finish_reason"), "length");
    cr_expect_str_eq(str_at(r, "content"), "echo: long story");
    json_object_put(r);
    snprintf(buf, sizeof(buf), LEN_JOB, "len2");
    r = run("len2", buf);
    cr_expect_str_eq(str_at(r, "source"), "primary", "not served from the cache");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "gpt"), 2);
}

Test(requests, tool_call_answers_are_cached_under_the_whole_request)
{
    th_mock_set(&mock_p, "gpt", CALL_WEATHER);
#define TOOL_JOB                                                                                   \
    "{\"id\":\"%s\",\"reply\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}],"   \
    "\"params\":{" TOOLS "%s}}"
    char buf[2048];
    snprintf(buf, sizeof(buf), TOOL_JOB, "c1", "");
    json_object_put(run("c1", buf));
    snprintf(buf, sizeof(buf), TOOL_JOB, "c2", "");
    json_object *r = run("c2", buf);
    cr_expect_str_eq(str_at(r, "source"), "cache");
    cr_expect_str_eq(str_at(r, "finish_reason"), "tool_calls");
    cr_expect_str_eq(str_at(r, "message.tool_calls.0.function.name"), "get_weather");
    json_object_put(r);
    /* Another param is another question. */
    snprintf(buf, sizeof(buf), TOOL_JOB, "c3", ",\"seed\":7");
    r = run("c3", buf);
    cr_expect_str_eq(str_at(r, "source"), "primary");
    json_object_put(r);
}

Test(requests, cost_and_usage_of_a_priced_model)
{
    json_object *r = run("cost1", "{\"id\":\"cost1\",\"reply\":true,\"tenant\":\"acme\","
                                  "\"cache\":\"skip\",\"messages\":[{\"role\":\"user\","
                                  "\"content\":\"one two three\"}]}");
    long in = json_object_get_int(at(r, "usage.prompt_tokens"));
    long out = json_object_get_int(at(r, "usage.completion_tokens"));
    cr_assert(in > 0 && out > 0);
    double want = (in * 2.5 + out * 10.0) / 1e6;
    cr_expect_float_eq(json_object_get_double(at(r, "cost_usd")), want, 1e-9);
    json_object_put(r);
    char buf[64], want_s[32];
    snprintf(want_s, sizeof(want_s), "%ld", (long)(want * 1e6 + 0.5));
    cr_expect_str_eq(th_hget(rc, "planb:stats", "cost_micro_usd:gpt", buf, sizeof(buf)), want_s);
    cr_expect_str_eq(th_hget(rc, "planb:stats", "cost_micro_usd:tenant:acme", buf, sizeof(buf)),
                     want_s);
}

Test(requests, openai_fields_at_the_top_level_are_refused_by_name)
{
    json_object *r = run("top1", "{\"id\":\"top1\",\"reply\":true,\"temperature\":0.2,"
                                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    cr_expect_str_eq(str_at(r, "status"), "invalid");
    cr_expect_str_eq(str_at(r, "error"), "BAD_FIELD temperature is not a job field: OpenAI "
                                         "request parameters go in \"params\"");
    json_object_put(r);
    r = run("top2", "{\"id\":\"top2\",\"reply\":true,\"messages\":[{\"role\":\"user\","
                    "\"content\":\"hi\"}],\"params\":{\"n\":2}}");
    cr_expect(strstr(str_at(r, "error"), "params.n must be 1") != NULL, "%s", str_at(r, "error"));
    json_object_put(r);
}
