/* test_bedrock.c -- Amazon Bedrock's Converse dialect end to end: real redis-server,
 * planb-mock serving /model/<id>/converse and /converse-stream (checking every SigV4
 * signature as AWS does, the Converse body as Bedrock validates it, and answering in
 * event-stream frames) and `planb serve`: answers signed with long-term and temporary
 * credentials and with a Bedrock API key, a model id with ':' and an inference-profile ARN,
 * Bedrock's error statuses (retry, fall back, a refused signature), a tool round trip, and
 * streams cut before and after the first token.
 *
 * Route "bo" = [claude (bedrock), gpt (openai)] with one retry; "arn" = [profile, gpt];
 * "key" = [keyed (a Bedrock API key), gpt]; "bad" = [forged (a wrong secret), gpt];
 * "temp" = [temp (a session token), gpt]. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "th_jobs.h"

#define ARN                                                                                        \
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-"      \
    "20241022-v1:0"
/* A Bedrock provider on the mock (%d: its port) authenticating with auth. */
#define MOCK_PROVIDER                                                                              \
    "{\"type\": \"bedrock\", \"region\": \"us-east-1\", \"base_url\": \"http://127.0.0.1:%d\", "   \
    "%s}"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

static void
setup(void)
{
    th_bedrock_env();
    setenv("PB_TEST_AWS_WRONG", "not-the-secret", 1);
    setenv("PB_TEST_AWS_TOKEN", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN", 1);
    setenv("PB_TEST_BR_KEY", "ABSKbedrock-api-key-for-tests", 1);
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    static const char temp_auth[] =
        "\"aws_access_key_id_env\": \"PB_TEST_AWS_KEY_ID\", \"aws_secret_access_key_env\": "
        "\"PB_TEST_AWS_SECRET\", \"aws_session_token_env\": \"PB_TEST_AWS_TOKEN\"";
    static const char key_auth[] = "\"bearer_token_env\": \"PB_TEST_BR_KEY\"";
    static const char forged_auth[] =
        "\"aws_access_key_id_env\": \"PB_TEST_AWS_KEY_ID\", \"aws_secret_access_key_env\": "
        "\"PB_TEST_AWS_WRONG\"";
    char temp[512], keyed[512], forged[512], cfg[8192];
    snprintf(temp, sizeof(temp), MOCK_PROVIDER, mock_p.port, temp_auth);
    snprintf(keyed, sizeof(keyed), MOCK_PROVIDER, mock_p.port, key_auth);
    snprintf(forged, sizeof(forged), MOCK_PROVIDER, mock_p.port, forged_auth);
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,"
             " \"concurrency\": 16, \"drain_timeout_ms\": 2000,"
             " \"providers\": {\"aws\": " TH_BEDROCK_PROVIDER ", \"aws_temp\": %s,"
             " \"aws_key\": %s, \"aws_forged\": %s,"
             " \"oa\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             " \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"claude\": {\"provider\": \"aws\", \"model\": \"" TH_BEDROCK_MODEL_ID
             "\","
             " \"timeout_ms\": 5000, \"price_in_per_mtok\": 3, \"price_out_per_mtok\": 15},"
             " \"profile\": {\"provider\": \"aws\", \"model\": \"" ARN "\"},"
             " \"temp\": {\"provider\": \"aws_temp\", \"model\": \"" TH_BEDROCK_MODEL_ID "\"},"
             " \"keyed\": {\"provider\": \"aws_key\", \"model\": \"" TH_BEDROCK_MODEL_ID "\"},"
             " \"forged\": {\"provider\": \"aws_forged\", \"model\": \"" TH_BEDROCK_MODEL_ID "\"},"
             " \"gpt\": {\"provider\": \"oa\", \"tier\": 2, \"timeout_ms\": 5000}},"
             " \"routes\": {\"default\": {\"chain\": [\"claude\", \"gpt\"], \"retries\": 0},"
             " \"bo\": {\"chain\": [\"claude\", \"gpt\"], \"retries\": 1, \"backoff_ms\": 10,"
             " \"backoff_max_ms\": 20},"
             " \"arn\": {\"chain\": [\"profile\", \"gpt\"], \"retries\": 0},"
             " \"temp\": {\"chain\": [\"temp\", \"gpt\"], \"retries\": 0},"
             " \"key\": {\"chain\": [\"keyed\", \"gpt\"], \"retries\": 0},"
             " \"bad\": {\"chain\": [\"forged\", \"gpt\"], \"retries\": 0},"
             " \"gpt\": {\"chain\": [\"gpt\"], \"retries\": 0}},"
             " \"breaker\": {\"failures\": 0, \"refused_hold_s\": 0},"
             " \"monitor\": {\"metrics_listen\": \"\"}}",
             redis_p.port, mock_p.port, temp, keyed, forged, mock_p.port);
    th_serve(&planb_p, cfg);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(bedrock, .init = setup, .fini = teardown, .timeout = 120);

/* GET /_mock/<what> as JSON. Caller puts. */
static json_object *
mock_get(const char *what)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/%s", mock_p.port, what);
    long status = 0;
    char *body = th_http("GET", url, NULL, &status);
    cr_assert(body && status == 200, "GET %s: %ld", url, status);
    json_object *o = json_tokener_parse(body);
    free(body);
    cr_assert_not_null(o);
    return o;
}

/* The mock's last request to the Bedrock model id (':' escaped in the control URL). */
static json_object *
mock_last(const char *id)
{
    char what[256] = "last/";
    for (const char *p = id; *p && strlen(what) + 4 < sizeof(what); p++) {
        if (*p == ':' || *p == '/')
            snprintf(what + strlen(what), 4, "%%%02X", (unsigned char)*p);
        else
            what[strlen(what) + 1] = '\0', what[strlen(what)] = *p;
    }
    return mock_get(what);
}

static long
mock_count(const char *model, const char *what)
{
    json_object *s = mock_get("stats"), *m, *v;
    long n = json_object_object_get_ex(s, "models", &m) &&
                     json_object_object_get_ex(m, model, &m) &&
                     json_object_object_get_ex(m, what, &v)
                 ? json_object_get_int64(v)
                 : 0;
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

/* A plain job "hello <id>" on route. Caller puts. */
static json_object *
ask(const char *id, const char *route)
{
    char job[512];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"cache\":\"skip\",\"messages\":"
             "[{\"role\":\"user\",\"content\":\"hello %s\"}]}",
             id, route, id);
    return run(id, job);
}

#define R(o, path) th_at_str(o, path)

Test(bedrock, signed_answers_with_the_conversation_translated)
{
    json_object *r = run("b1", "{\"id\":\"b1\",\"reply\":true,\"route\":\"bo\",\"cache\":\"skip\","
                               "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                               "{\"role\":\"user\",\"content\":\"hello\"},{\"role\":\"assistant\","
                               "\"content\":\"hi\"},{\"role\":\"user\",\"content\":\"again\"}],"
                               "\"params\":{\"temperature\":0.5,\"max_tokens\":50}}");
    cr_assert_str_eq(R(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(R(r, "model"), "claude");
    cr_expect_str_eq(R(r, "provider"), "aws");
    cr_expect_str_eq(R(r, "source"), "primary");
    cr_expect_str_eq(R(r, "content"), "echo: again");
    cr_expect_str_eq(R(r, "finish_reason"), "stop");
    cr_expect_gt(json_object_get_int(th_at(r, "usage.prompt_tokens")), 0);
    cr_expect_gt(json_object_get_double(th_at(r, "cost_usd")), 0.0, "priced per model");
    json_object_put(r);
    cr_expect_eq(mock_count(TH_BEDROCK_MODEL_ID, "invalid"), 0);

    json_object *last = mock_last(TH_BEDROCK_MODEL_ID);
    cr_expect_str_eq(R(last, "path"),
                     "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    cr_expect_str_neq(R(last, "headers.x-amz-date"), "(absent)");
    cr_expect_str_eq(R(last, "headers.x-amz-security-token"), "(absent)");
    cr_expect_str_eq(R(last, "body.system[0].text"), "Be brief.");
    cr_expect_str_eq(R(last, "body.messages[1].role"), "assistant");
    cr_expect_str_eq(R(last, "body.messages[2].content[0].text"), "again");
    cr_expect_str_eq(R(last, "body.inferenceConfig.temperature"), "0.5");
    cr_expect_eq(json_object_get_int(th_at(last, "body.inferenceConfig.maxTokens")), 50);
    json_object_put(last);

    /* An inference-profile ARN, temporary credentials, a Bedrock API key. */
    r = ask("b2", "arn");
    cr_expect_str_eq(R(r, "model"), "profile", "%s", json_object_to_json_string(r));
    json_object_put(r);
    last = mock_last(ARN);
    cr_expect_str_eq(R(last, "path"),
                     "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
                     "%2Fus.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse");
    json_object_put(last);
    r = ask("b3", "temp");
    cr_expect_str_eq(R(r, "model"), "temp", "%s", json_object_to_json_string(r));
    json_object_put(r);
    last = mock_last(TH_BEDROCK_MODEL_ID);
    cr_expect_str_eq(R(last, "headers.x-amz-security-token"), "FwoGZXIvYXdzEXAMPLESESSIONTOKEN");
    json_object_put(last);
    r = ask("b4", "key");
    cr_expect_str_eq(R(r, "model"), "keyed", "%s", json_object_to_json_string(r));
    json_object_put(r);
}

Test(bedrock, error_statuses_retry_fall_back_or_refuse_a_signature)
{
    /* A wrong secret: the mock answers 403 InvalidSignatureException, the chain moves on. */
    json_object *r = ask("e0", "bad");
    cr_expect_str_eq(R(r, "model"), "gpt", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(R(r, "attempts[0].outcome"), "http_403");
    json_object_put(r);

    static const struct {
        int status;
        const char *outcome0;
        int attempts_on_bedrock; /* route bo: one retry for retryable outcomes */
    } table[] = {
        {429, "http_429", 2}, /* ThrottlingException: retried */
        {408, "http_408", 2}, /* ModelTimeoutException: retried */
        {424, "http_424", 2}, /* ModelErrorException: retried */
        {500, "http_500", 1}, /* InternalServerException: the next model at once */
        {503, "http_503", 1}, /* ServiceUnavailableException: the next model at once */
        {400, "http_400", 1}, /* ValidationException: this model's limits, not "invalid" */
        {403, "http_403", 1}, /* AccessDeniedException */
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(*table); i++) {
        char beh[96], id[16];
        snprintf(beh, sizeof(beh), "{\"mode\":\"status\",\"status\":%d}", table[i].status);
        th_mock_set(&mock_p, TH_BEDROCK_MODEL_ID, beh);
        snprintf(id, sizeof(id), "e%zu", i + 1);
        r = ask(id, "bo");
        cr_expect_str_eq(R(r, "status"), "ok", "%d: %s", table[i].status,
                         json_object_to_json_string(r));
        cr_expect_str_eq(R(r, "model"), "gpt", "%d", table[i].status);
        cr_expect_str_eq(R(r, "attempts[0].outcome"), table[i].outcome0, "%d", table[i].status);
        char path[32];
        snprintf(path, sizeof(path), "attempts[%d].model", table[i].attempts_on_bedrock);
        cr_expect_str_eq(R(r, path), "gpt", "%d: %s", table[i].status,
                         json_object_to_json_string(r));
        json_object_put(r);
    }
}

#define TOOLS                                                                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","                    \
    "\"description\":\"Weather of a city\",\"parameters\":{\"type\":\"object\",\"properties\":"    \
    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]"

Test(bedrock, a_tool_round_trip_keeps_bedrock_s_ids)
{
    th_mock_set(&mock_p, TH_BEDROCK_MODEL_ID,
                "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{"
                "\"city\":\"Paris\"}}]}");
    json_object *r = run("t1", "{\"id\":\"t1\",\"reply\":true,\"cache\":\"skip\",\"messages\":"
                               "[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],"
                               "\"params\":{" TOOLS ",\"tool_choice\":\"required\"}}");
    cr_assert_str_eq(R(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(R(r, "model"), "claude");
    cr_expect_str_eq(R(r, "finish_reason"), "tool_calls");
    cr_expect_str_eq(R(r, "message.tool_calls[0].function.name"), "get_weather");
    cr_expect_str_eq(R(r, "message.tool_calls[0].function.arguments"), "{\"city\":\"Paris\"}");
    char call_id[96];
    snprintf(call_id, sizeof(call_id), "%s", R(r, "message.tool_calls[0].id"));
    char *calls = strdup(
        json_object_to_json_string_ext(th_at(r, "message.tool_calls"), JSON_C_TO_STRING_PLAIN));
    json_object_put(r);
    json_object *last = mock_last(TH_BEDROCK_MODEL_ID);
    cr_expect_str_eq(R(last, "body.toolConfig.tools[0].toolSpec.name"), "get_weather");
    cr_expect_not_null(th_at(last, "body.toolConfig.toolChoice.any"));
    json_object_put(last);

    char job[4096];
    snprintf(job, sizeof(job),
             "{\"id\":\"t2\",\"reply\":true,\"cache\":\"skip\",\"messages\":["
             "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":%s},"
             "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"18C and sunny\"}],"
             "\"params\":{" TOOLS "}}",
             calls, call_id);
    free(calls);
    th_mock_set(&mock_p, TH_BEDROCK_MODEL_ID, "{\"mode\":\"ok\"}");
    r = run("t2", job);
    cr_expect_str_eq(R(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(R(r, "model"), "claude");
    cr_expect_str_eq(R(r, "content"), "tool said: 18C and sunny");
    json_object_put(r);
    last = mock_last(TH_BEDROCK_MODEL_ID);
    cr_expect_str_eq(R(last, "body.messages[1].content[0].toolUse.toolUseId"), call_id);
    cr_expect_str_eq(R(last, "body.messages[2].content[0].toolResult.toolUseId"), call_id);
    json_object_put(last);
    cr_expect_eq(mock_count(TH_BEDROCK_MODEL_ID, "invalid"), 0);
}

/* Pushes a streamed job and waits for its result. */
static json_object *
run_streamed(const char *id, const char *extra)
{
    char job[1024];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"stream\":true,\"cache\":\"skip\",\"messages\":"
             "[{\"role\":\"user\",\"content\":\"alpha beta gamma\"}]%s}",
             id, extra);
    return run(id, job);
}

Test(bedrock, streams_in_event_stream_frames_and_cuts)
{
    json_object *r = run_streamed("s1", "");
    cr_assert_str_eq(R(r, "status"), "ok", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(R(r, "model"), "claude");
    cr_expect_str_eq(R(r, "content"), "echo: alpha beta gamma");
    cr_expect_gt(json_object_get_int(th_at(r, "usage.completion_tokens")), 0,
                 "the metadata event's usage");
    json_object_put(r);
    json_object *last = mock_last(TH_BEDROCK_MODEL_ID);
    cr_expect_str_eq(R(last, "path"),
                     "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream");
    json_object_put(last);
    redisReply *x = redisCommand(rc, "XLEN planb:stream:s1");
    cr_expect(x && x->type == REDIS_REPLY_INTEGER && x->integer >= 5, "start, deltas, end");
    freeReplyObject(x);

    /* Before the first token every fault falls back: a reset, an exception frame, a frame
     * whose CRC is wrong, no messageStop. */
    static const char *const faults[] = {"reset_mid", "error_before", "malformed", "no_done"};
    for (size_t i = 0; i < sizeof(faults) / sizeof(*faults); i++) {
        char b[160], id[16];
        snprintf(b, sizeof(b), "{\"mode\":\"ok\",\"stream_fault\":\"%s\",\"fault_after\":0}",
                 faults[i]);
        th_mock_set(&mock_p, TH_BEDROCK_MODEL_ID, b);
        snprintf(id, sizeof(id), "s%zu", i + 2);
        r = run_streamed(id, "");
        cr_expect_str_eq(R(r, "status"), "ok", "%s: %s", faults[i], json_object_to_json_string(r));
        if (strcmp(faults[i], "no_done") == 0) {
            /* The whole text came but never messageStop: cut, after its tokens. */
            cr_expect_str_eq(R(r, "finish_reason"), "cut", "%s: %s", faults[i],
                             json_object_to_json_string(r));
        } else {
            cr_expect_str_eq(R(r, "model"), "gpt", "%s", faults[i]);
            cr_expect_str_eq(R(r, "source"), "fallback", "%s", faults[i]);
            cr_expect_str_eq(R(r, "content"), "echo: alpha beta gamma", "%s", faults[i]);
        }
        json_object_put(r);
    }

    /* After the first token: the answer ends cut. */
    th_mock_set(&mock_p, TH_BEDROCK_MODEL_ID,
                "{\"mode\":\"ok\",\"stream_fault\":\"reset_mid\",\"fault_after\":2}");
    r = run_streamed("s9", "");
    cr_expect_str_eq(R(r, "model"), "claude", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(R(r, "finish_reason"), "cut");
    cr_expect_str_eq(R(r, "content"), "echo: alpha ");
    json_object_put(r);

    /* Streamed tool calls: the toolUse input in pieces, the ids of the unstreamed reply. */
    th_mock_set(&mock_p, TH_BEDROCK_MODEL_ID,
                "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{"
                "\"city\":\"Paris\"}}]}");
    r = run_streamed("s10", ",\"params\":{" TOOLS "}");
    cr_expect_str_eq(R(r, "finish_reason"), "tool_calls", "%s", json_object_to_json_string(r));
    cr_expect_str_eq(R(r, "message.tool_calls[0].function.arguments"), "{\"city\":\"Paris\"}");
    json_object_put(r);
}

/* The cache key covers the provider types a chain spans: an answer made through Bedrock (which
 * drops what Converse lacks) serves the next job on a Bedrock-and-OpenAI chain, never one on a
 * chain of OpenAI-compatible models only. */
Test(bedrock, the_cache_key_covers_the_provider_types)
{
    static const char job[] =
        "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"cache me\"}],\"params\":{\"seed\":7}}";
    static const struct {
        const char *id, *route, *source;
    } steps[] = {{"c1", "bo", "primary"},
                 {"c2", "bo", "cache"},
                 {"c3", "gpt", "primary"},
                 {"c4", "gpt", "cache"},
                 {"c5", "default", "cache"}};
    for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
        char j[512];
        snprintf(j, sizeof(j), job, steps[i].id, steps[i].route);
        json_object *r = run(steps[i].id, j);
        cr_expect_str_eq(R(r, "source"), steps[i].source, "%s on %s: %s", steps[i].id,
                         steps[i].route, json_object_to_json_string(r));
        json_object_put(r);
    }
}
