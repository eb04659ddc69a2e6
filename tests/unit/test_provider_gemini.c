/* test_provider_gemini.c -- Google's native Gemini dialect, without a network.
 *
 * build_request's conversion from the OpenAI-shaped job (contents of parts, roles user and
 * model merged so they alternate, systemInstruction, generationConfig, functionDeclarations,
 * tool calls and results matched by name, inline images), what it refuses and drops;
 * parse_response on the replies in tests/fixtures/replies/gemini (finish reasons, safety
 * blocks, usage, made-up stable tool-call ids, malformed replies as BAD_REPLY); classify on
 * Gemini's {"error": {code, message, status}} bodies; the SSE chunks of a streamed answer. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "planb/delta.h"
#include "planb/provider.h"

static char provider_name[] = "gemini";
static char base_url[] = "https://generativelanguage.googleapis.com/v1beta";

static pb_provider_conf
provider(char *key)
{
    return (pb_provider_conf){
        .name = provider_name, .type = PB_PROVIDER_GEMINI, .base_url = base_url, .api_key = key};
}

static const pb_model_conf model = {.name = (char[]){"flash"},
                                    .upstream = (char[]){"gemini-2.5-flash"},
                                    .tier = 1,
                                    .max_tokens_default = 1024};

static char job_id[] = "job-1";

static pb_request
request(pb_message *msgs, size_t n)
{
    return (pb_request){.id = job_id,
                        .messages = msgs,
                        .n_messages = n,
                        .max_tokens = -1,
                        .temperature = NAN,
                        .top_p = NAN};
}

/* Builds req with a keyed provider and returns the body parsed back (caller puts). */
static json_object *
build_body(const pb_request *req)
{
    pb_provider_conf p = provider((char[]){"AIzaTestKey"});
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_assert_eq(pb_provider_gemini.build_request(&p, &model, req, r, &err), PB_OK, "%s", err.msg);
    cr_assert_eq(r->body_len, strlen(r->body));
    json_object *body = json_tokener_parse(r->body);
    cr_assert(json_object_is_type(body, json_type_object), "body: %s", r->body);
    pb_http_request_free(r);
    return body;
}

Test(gemini, request_url_and_key_header_never_the_url)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    pb_provider_conf p = provider((char[]){"AIzaSecret"});
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    cr_assert_eq(pb_provider_gemini.build_request(&p, &model, &req, r, NULL), PB_OK);
    cr_assert_str_eq(r->url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "gemini-2.5-flash:generateContent");
    cr_assert_str_eq(th_header(r, "x-goog-api-key"), "AIzaSecret");
    cr_assert_str_eq(th_header(r, "Content-Type"), "application/json");
    cr_assert_null(th_header(r, "Authorization"));
    pb_http_request_free(r);

    req.stream = true;
    pb_model_conf prefixed = model;
    prefixed.upstream = (char[]){"models/tuned model:v1"};
    r = pb_xcalloc(1, sizeof(*r));
    cr_assert_eq(pb_provider_gemini.build_request(&p, &prefixed, &req, r, NULL), PB_OK);
    cr_assert_str_eq(r->url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "tuned%20model%3Av1:streamGenerateContent?alt=sse");
    cr_assert(strstr(r->url, "key=") == NULL && strstr(r->url, "AIza") == NULL);
    json_object *body = json_tokener_parse(r->body);
    cr_assert_null(th_at(body, "stream"), "the method streams, not a field");
    json_object_put(body);
    pb_http_request_free(r);

    pb_provider_conf nokey = provider(NULL);
    r = pb_xcalloc(1, sizeof(*r));
    cr_assert_eq(pb_provider_gemini.build_request(&nokey, &model, &req, r, NULL), PB_OK);
    cr_assert_null(th_header(r, "x-goog-api-key"));
    pb_http_request_free(r);
}

Test(gemini, request_key_with_line_break_is_refused_without_echo)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    pb_provider_conf p = provider((char[]){"AIzaSecret\r\n"});
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_assert_eq(pb_provider_gemini.build_request(&p, &model, &req, r, &err), PB_ERR);
    cr_assert_eq(err.code, PB_PROVIDER_BAD_CONF);
    cr_assert(strstr(err.msg, "Secret") == NULL, "%s", err.msg);
    pb_http_request_free(r);
}

Test(gemini, request_system_lifted_roles_user_and_model_merged)
{
    pb_message msgs[] = {
        {.role = PB_ROLE_SYSTEM, .content = (char[]){"Be brief."}},
        {.role = PB_ROLE_USER, .content = (char[]){"hello"}},
        {.role = PB_ROLE_DEVELOPER, .content = (char[]){"Use French."}},
        {.role = PB_ROLE_USER, .content = (char[]){"again"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"salut"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"  "}},
        {.role = PB_ROLE_USER, .content = (char[]){"bye"}},
    };
    pb_request req = request(msgs, 7);
    json_object *body = build_body(&req);
    cr_expect_str_eq(th_at_str(body, "systemInstruction.parts[0].text"),
                     "Be brief.\n\nUse French.");
    cr_assert_eq(json_object_array_length(th_at(body, "contents")), 3, "%s",
                 json_object_to_json_string(body));
    cr_expect_str_eq(th_at_str(body, "contents[0].role"), "user");
    cr_expect_str_eq(th_at_str(body, "contents[0].parts[0].text"), "hello");
    cr_expect_str_eq(th_at_str(body, "contents[0].parts[1].text"), "again");
    cr_expect_str_eq(th_at_str(body, "contents[1].role"), "model");
    cr_expect_eq(json_object_array_length(th_at(body, "contents[1].parts")), 1, "blank skipped");
    cr_expect_str_eq(th_at_str(body, "contents[2].role"), "user");
    cr_expect_null(th_at(body, "model"), "the model is in the URL");
    cr_expect_null(th_at(body, "messages"));
    json_object_put(body);

    pb_message only_sys[] = {{.role = PB_ROLE_SYSTEM, .content = (char[]){"Say hi."}}};
    req = request(only_sys, 1);
    body = build_body(&req);
    cr_expect_str_eq(th_at_str(body, "contents[0].role"), "user", "contents is never empty");
    cr_expect_str_eq(th_at_str(body, "contents[0].parts[0].text"), "(continued)");
    json_object_put(body);
}

Test(gemini, request_generation_config)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    json_object *body = build_body(&req);
    cr_expect_eq(json_object_get_int(th_at(body, "generationConfig.candidateCount")), 1);
    cr_expect_eq(json_object_object_length(th_at(body, "generationConfig")), 1);
    json_object_put(body);

    req.temperature = 1.5;
    req.top_p = 0.2;
    req.max_tokens = 77;
    req.params = json_tokener_parse("{\"stop\":\"END\",\"seed\":42,\"response_format\":{\"type\":"
                                    "\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":{"
                                    "\"type\":\"object\"}}}}");
    body = build_body(&req);
    cr_expect_str_eq(th_at_str(body, "generationConfig.temperature"), "1.5");
    cr_expect_str_eq(th_at_str(body, "generationConfig.topP"), "0.2", "printed as written");
    cr_expect_eq(json_object_get_int(th_at(body, "generationConfig.maxOutputTokens")), 77);
    cr_expect_str_eq(th_at_str(body, "generationConfig.stopSequences[0]"), "END");
    cr_expect_eq(json_object_get_int(th_at(body, "generationConfig.seed")), 42);
    cr_expect_str_eq(th_at_str(body, "generationConfig.responseMimeType"), "application/json");
    cr_expect_str_eq(th_at_str(body, "generationConfig.responseSchema.type"), "object");
    json_object_put(body);
    json_object_put(req.params);

    req.params = json_tokener_parse("{\"stop\":[\"a\",\"b\"],\"seed\":9000000000,"
                                    "\"response_format\":{\"type\":\"json_object\"}}");
    body = build_body(&req);
    cr_expect_eq(json_object_array_length(th_at(body, "generationConfig.stopSequences")), 2);
    cr_expect_null(th_at(body, "generationConfig.seed"), "beyond int32: dropped");
    cr_expect_str_eq(th_at_str(body, "generationConfig.responseMimeType"), "application/json");
    cr_expect_null(th_at(body, "generationConfig.responseSchema"));
    char names[PB_PROVIDER_DROPPED_MAX][PB_PROVIDER_PARAM_LEN];
    size_t n = pb_provider_gemini.dropped(&req, names, PB_PROVIDER_DROPPED_MAX);
    cr_expect_eq(n, 1);
    cr_expect_str_eq(names[0], "seed");
    json_object_put(body);
    json_object_put(req.params);
}

Test(gemini, request_tools_calls_and_results_matched_by_name)
{
    json_object *calls = json_tokener_parse(
        "[{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_b\",\"type\":"
        "\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}}]");
    pb_message msgs[] = {
        {.role = PB_ROLE_USER, .content = (char[]){"Weather and time?"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){""}, .tool_calls = calls},
        {.role = PB_ROLE_TOOL,
         .content = (char[]){"{\"temp\":21}"},
         .tool_call_id = (char[]){"call_a"}},
        {.role = PB_ROLE_TOOL, .content = (char[]){"noon"}, .tool_call_id = (char[]){"call_b"}},
    };
    pb_request req = request(msgs, 4);
    req.params = json_tokener_parse(
        "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Weather\",\"parameters\":{\"type\":\"object\",\"properties\":{"
        "\"city\":{\"type\":\"string\"}}},\"strict\":true}},{\"type\":\"function\",\"function\":"
        "{\"name\":\"get_time\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
        "\"get_time\"}},\"parallel_tool_calls\":false}");
    json_object *body = build_body(&req);
    cr_expect_str_eq(th_at_str(body, "tools[0].functionDeclarations[0].name"), "get_weather");
    cr_expect_str_eq(th_at_str(body, "tools[0].functionDeclarations[0].description"), "Weather");
    cr_expect_str_eq(th_at_str(body, "tools[0].functionDeclarations[0].parameters.type"), "object");
    cr_expect_str_eq(th_at_str(body, "tools[0].functionDeclarations[1].name"), "get_time");
    cr_expect_null(th_at(body, "tools[0].functionDeclarations[1].parameters"));
    cr_expect_str_eq(th_at_str(body, "toolConfig.functionCallingConfig.mode"), "ANY");
    cr_expect_str_eq(th_at_str(body, "toolConfig.functionCallingConfig.allowedFunctionNames[0]"),
                     "get_time");
    cr_assert_eq(json_object_array_length(th_at(body, "contents")), 3, "%s",
                 json_object_to_json_string(body));
    cr_expect_str_eq(th_at_str(body, "contents[1].role"), "model");
    cr_expect_str_eq(th_at_str(body, "contents[1].parts[0].functionCall.name"), "get_weather");
    cr_expect_str_eq(th_at_str(body, "contents[1].parts[0].functionCall.args.city"), "Paris");
    cr_expect_str_eq(th_at_str(body, "contents[1].parts[1].functionCall.name"), "get_time");
    cr_expect_str_eq(th_at_str(body, "contents[2].role"), "user", "both results in one turn");
    cr_expect_str_eq(th_at_str(body, "contents[2].parts[0].functionResponse.name"), "get_weather");
    cr_expect_eq(json_object_get_int(th_at(body, "contents[2].parts[0].functionResponse.response."
                                                 "temp")),
                 21, "a JSON object result goes as it is");
    cr_expect_str_eq(th_at_str(body, "contents[2].parts[1].functionResponse.name"), "get_time");
    cr_expect_str_eq(th_at_str(body, "contents[2].parts[1].functionResponse.response.result"),
                     "noon", "text is wrapped");
    char names[PB_PROVIDER_DROPPED_MAX][PB_PROVIDER_PARAM_LEN];
    size_t n = pb_provider_gemini.dropped(&req, names, PB_PROVIDER_DROPPED_MAX);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(names[0], "parallel_tool_calls");
    cr_expect_str_eq(names[1], "tools.function.strict");
    json_object_put(body);

    static const char *const choices[][2] = {
        {"\"none\"", "NONE"}, {"\"auto\"", "AUTO"}, {"\"required\"", "ANY"}};
    for (size_t i = 0; i < 3; i++) {
        json_object_object_add(req.params, "tool_choice", json_tokener_parse(choices[i][0]));
        body = build_body(&req);
        cr_expect_str_eq(th_at_str(body, "toolConfig.functionCallingConfig.mode"), choices[i][1]);
        cr_expect_null(th_at(body, "toolConfig.functionCallingConfig.allowedFunctionNames"));
        json_object_put(body);
    }
    json_object_put(req.params);
    json_object_put(calls);
}

Test(gemini, request_images_inline_or_refused)
{
    json_object *parts = json_tokener_parse(
        "[{\"type\":\"text\",\"text\":\"What is this?\"},{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"data:image/png;base64,iVBORw0KGgo=\",\"detail\":\"low\"}}]");
    pb_message msgs[] = {
        {.role = PB_ROLE_USER, .content = (char[]){"What is this?"}, .parts = parts}};
    pb_request req = request(msgs, 1);
    json_object *body = build_body(&req);
    cr_expect_str_eq(th_at_str(body, "contents[0].parts[0].text"), "What is this?");
    cr_expect_str_eq(th_at_str(body, "contents[0].parts[1].inlineData.mimeType"), "image/png");
    cr_expect_str_eq(th_at_str(body, "contents[0].parts[1].inlineData.data"), "iVBORw0KGgo=");
    char names[PB_PROVIDER_DROPPED_MAX][PB_PROVIDER_PARAM_LEN];
    cr_expect_eq(pb_provider_gemini.dropped(&req, names, PB_PROVIDER_DROPPED_MAX), 1);
    cr_expect_str_eq(names[0], "image_url.detail");
    json_object_put(body);
    json_object_put(parts);

    msgs[0].parts = json_tokener_parse("[{\"type\":\"image_url\",\"image_url\":{\"url\":"
                                       "\"https://example.com/cat.png\"}}]");
    cr_expect_not_null(pb_provider_gemini.refuses(&req));
    pb_provider_conf p = provider(NULL);
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_expect_eq(pb_provider_gemini.build_request(&p, &model, &req, r, &err), PB_ERR);
    cr_expect_eq(err.code, PB_PROVIDER_UNSUPPORTED);
    pb_http_request_free(r);
    json_object_put(msgs[0].parts);
}

Test(gemini, refuses_a_json_answer_with_tools_and_drops_what_it_lacks)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}, .name = (char[]){"x"}}};
    pb_request req = request(msgs, 1);
    cr_expect_null(pb_provider_gemini.refuses(&req));
    req.params = json_tokener_parse(
        "{\"response_format\":{\"type\":\"json_object\"},\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"f\"}}]}");
    cr_expect_not_null(pb_provider_gemini.refuses(&req));
    json_object_put(req.params);
    req.params = json_tokener_parse(
        "{\"frequency_penalty\":1,\"presence_penalty\":1,\"logit_bias\":{\"1\":2},\"user\":\"u\","
        "\"reasoning_effort\":\"low\",\"anthropic\":{\"top_k\":3},\"temperature\":2}");
    req.temperature = 2;
    cr_expect_null(pb_provider_gemini.refuses(&req), "temperature 2 is Gemini's range too");
    char names[PB_PROVIDER_DROPPED_MAX][PB_PROVIDER_PARAM_LEN];
    size_t n = pb_provider_gemini.dropped(&req, names, PB_PROVIDER_DROPPED_MAX);
    static const char *const want[] = {
        "frequency_penalty", "presence_penalty", "logit_bias", "reasoning_effort", "user",
        "anthropic.top_k",   "messages.name"};
    cr_assert_eq(n, sizeof(want) / sizeof(*want));
    for (size_t i = 0; i < n; i++)
        cr_expect_str_eq(names[i], want[i]);
    json_object_put(req.params);
}

Test(gemini, parse_text_skips_thoughts_and_reads_usage)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_gemini, "good.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.content, "Hello there.");
    cr_expect_str_eq(c.finish_reason, "stop");
    cr_expect_null(c.tool_calls);
    cr_expect_eq(c.prompt_tokens, 12, "promptTokenCount holds the cached ones, as OpenAI's");
    cr_expect_eq(c.cached_tokens, 4);
    cr_expect_eq(c.completion_tokens, 8, "candidates + thoughts, as OpenAI counts");
    cr_expect_eq(c.reasoning_tokens, 5);
    cr_expect_str_eq(c.response_id, "r1", "responseId: the trace's gen_ai.response.id");
    pb_provider_completion_free(&c);
}

Test(gemini, parse_function_calls_get_stable_ids)
{
    pb_completion c, again;
    cr_assert_eq(th_fixture_parse(&pb_provider_gemini, "tool_call.json", &c, NULL), PB_OK);
    cr_assert_eq(th_fixture_parse(&pb_provider_gemini, "tool_call.json", &again, NULL), PB_OK);
    cr_expect_str_eq(c.content, "Checking.");
    cr_expect_str_eq(c.finish_reason, "tool_calls");
    cr_expect_str_eq(c.tool_calls, again.tool_calls, "the same reply, the same ids");
    json_object *calls = json_tokener_parse(c.tool_calls);
    cr_assert_eq(json_object_array_length(calls), 2, "%s", c.tool_calls);
    cr_expect_str_eq(th_at_str(calls, "[0].function.name"), "get_weather");
    cr_expect_str_eq(th_at_str(calls, "[0].function.arguments"), "{\"city\":\"Paris\"}");
    cr_expect_str_eq(th_at_str(calls, "[0].type"), "function");
    cr_expect_str_eq(th_at_str(calls, "[1].function.arguments"), "{}", "no args: an empty object");
    cr_expect(strncmp(th_at_str(calls, "[0].id"), "call_", 5) == 0);
    cr_expect_str_neq(th_at_str(calls, "[0].id"), th_at_str(calls, "[1].id"));
    cr_expect_eq(c.prompt_tokens, 30);
    cr_expect_eq(c.completion_tokens, 8);
    cr_expect_eq(c.cached_tokens, -1);
    json_object_put(calls);
    pb_provider_completion_free(&c);
    pb_provider_completion_free(&again);
}

Test(gemini, parse_finish_reasons_and_safety_blocks)
{
    static const char *const cases[][3] = {
        {"max_tokens.json", "length", "It was a dark and"},
        {"safety.json", "content_filter", ""},
        {"recitation.json", "content_filter", "Four score"},
        {"prompt_blocked.json", "content_filter", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        pb_completion c;
        pb_error err = {0};
        cr_assert_eq(th_fixture_parse(&pb_provider_gemini, cases[i][0], &c, &err), PB_OK, "%s: %s",
                     cases[i][0], err.msg);
        cr_expect_str_eq(c.finish_reason, cases[i][1], "%s", cases[i][0]);
        cr_expect_str_eq(c.content, cases[i][2], "%s", cases[i][0]);
        pb_provider_completion_free(&c);
    }
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_gemini, "prompt_blocked.json", &c, NULL), PB_OK);
    cr_expect_eq(c.prompt_tokens, 7);
    cr_expect_eq(c.completion_tokens, -1);
    pb_provider_completion_free(&c);
}

Test(gemini, parse_bad_replies)
{
    th_expect_bad_reply(&pb_provider_gemini, "no_candidates.json", "no candidates");
    th_expect_bad_reply(&pb_provider_gemini, "empty_text.json", "no text");
    th_expect_bad_reply(&pb_provider_gemini, "malformed_call.json", "no text");
    th_expect_bad_reply(&pb_provider_gemini, "bad_call_args.json", "functionCall");
    th_expect_bad_reply(&pb_provider_gemini, "error_in_200.json", "error object");
    th_expect_bad_reply(&pb_provider_gemini, "bad_utf8_call_name.json", "UTF-8 name");
    static const char *const bodies[] = {
        "", "[]", "{\"candidates\":{}}", "{\"candidates\":[1]}", "{\"candidates\":[{}]}", "nope"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
        pb_completion c;
        pb_error err = {0};
        cr_expect_eq(
            pb_provider_gemini.parse_response(bodies[i], strlen(bodies[i]), NULL, &c, &err), PB_ERR,
            "%s", bodies[i]);
        cr_expect_eq(err.code, PB_PROVIDER_BAD_REPLY, "%s", bodies[i]);
    }
}

Test(gemini, parse_every_prefix_fails_without_crashing)
{
    th_fixture fx = th_fixture_load("gemini", "tool_call.json");
    for (size_t n = 0; n < fx.len; n++) {
        char *prefix = malloc(n ? n : 1);
        memcpy(prefix, fx.data, n);
        pb_completion c;
        int rc = pb_provider_gemini.parse_response(prefix, n, NULL, &c, NULL);
        if (rc == PB_OK) {
            cr_assert(fx.data[n] == '\n' && n + 1 == fx.len, "prefix %zu parsed", n);
            pb_provider_completion_free(&c);
        }
        free(prefix);
    }
    free(fx.data);
}

Test(gemini, classify_google_rpc_statuses)
{
    static const struct {
        long status;
        const char *fixture;
        pb_class want;
    } cases[] = {
        {429, "err_429.json", PB_CLASS_RETRY},
        {503, "err_503.json", PB_CLASS_RETRY},
        {500, "err_500.json", PB_CLASS_RETRY},
        {400, "err_400_invalid.json", PB_CLASS_INVALID},
        {400, "err_400_key.json", PB_CLASS_FALLBACK},
        {400, "err_400_tokens.json", PB_CLASS_FALLBACK},
        {400, "err_400_location.json", PB_CLASS_FALLBACK},
        {403, "err_403.json", PB_CLASS_FALLBACK},
        {404, "err_404.json", PB_CLASS_FALLBACK},
        {400, "err_429.json", PB_CLASS_RETRY}, /* the status name wins over the number */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
        cr_expect_eq(th_fixture_classify(&pb_provider_gemini, cases[i].status, cases[i].fixture),
                     cases[i].want, "%ld %s", cases[i].status, cases[i].fixture);
    cr_expect_eq(pb_provider_gemini.classify(502, "<html>", 6), PB_CLASS_RETRY);
    cr_expect_eq(pb_provider_gemini.classify(400, "", 0), PB_CLASS_INVALID);
}

Test(gemini, error_message_never_echoes_a_google_key)
{
    const char *body = "{\"error\":{\"code\":400,\"message\":\"API key AIzaSyD-abcdefghijklmnop"
                       "qrstuvwxyz0123 not valid\",\"status\":\"INVALID_ARGUMENT\"}}";
    char out[256];
    pb_provider_error_message(body, strlen(body), out, sizeof(out));
    cr_expect_str_eq(out, "API key [redacted] not valid");
}

/* Feeds SSE data lines (NULL-terminated) to stream_event and completes the answer. */
static int
stream_answer(const char *const *events, pb_completion *c, pb_error *err)
{
    pb_delta *d = pb_delta_new(NULL, 1u << 20);
    int rc = PB_OK;
    for (const char *const *e = events; *e && rc == PB_OK; e++) {
        size_t n = strlen(*e);
        char *data = malloc(n ? n : 1);
        memcpy(data, *e, n);
        rc = pb_provider_gemini.stream_event(d, "", data, n, err);
        free(data);
    }
    if (rc == PB_OK)
        rc = pb_delta_complete(d, c, err);
    pb_delta_free(d);
    return rc;
}

Test(gemini_stream, text_chunks_usage_and_the_finishing_chunk)
{
    static const char *const events[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}],"
        "\"usageMetadata\":{\"promptTokenCount\":6}}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo.\"}],\"role\":\"model\"},"
        "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":6,"
        "\"candidatesTokenCount\":2,\"thoughtsTokenCount\":1}}",
        NULL};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.content, "Hello.");
    cr_expect_str_eq(c.finish_reason, "stop");
    cr_expect_eq(c.prompt_tokens, 6);
    cr_expect_eq(c.completion_tokens, 3);
    cr_expect_eq(c.reasoning_tokens, 1);
    pb_provider_completion_free(&c);

    static const char *const unfinished[] = {events[0], NULL};
    cr_expect_eq(stream_answer(unfinished, &c, &err), PB_ERR, "no finishReason: not ended");
}

Test(gemini_stream, function_calls_have_the_ids_of_the_unstreamed_reply)
{
    th_fixture fx = th_fixture_load("gemini", "tool_call.json");
    char *whole = pb_xstrndup(fx.data, fx.len);
    free(fx.data);
    static const char *const events_tail[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_time\"}}],"
        "\"role\":\"model\"},\"finishReason\":\"STOP\"}]}",
        NULL};
    const char *events[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Checking.\"},{\"functionCall\":"
        "{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}}}],\"role\":\"model\"}}]}",
        events_tail[0], NULL};
    pb_completion c, plain;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_OK, "%s", err.msg);
    cr_assert_eq(pb_provider_gemini.parse_response(whole, strlen(whole), NULL, &plain, NULL),
                 PB_OK);
    cr_expect_str_eq(c.finish_reason, "tool_calls");
    cr_expect_str_eq(c.content, "Checking.");
    json_object *a = json_tokener_parse(c.tool_calls), *b = json_tokener_parse(plain.tool_calls);
    cr_assert_eq(json_object_array_length(a), 2, "%s", c.tool_calls);
    for (size_t i = 0; i < 2; i++) {
        char path[32];
        snprintf(path, sizeof(path), "[%zu].id", i);
        cr_expect_str_eq(th_at_str(a, path), th_at_str(b, path), "%zu", i);
        snprintf(path, sizeof(path), "[%zu].function.arguments", i);
        cr_expect_str_eq(th_at_str(a, path), th_at_str(b, path), "%zu", i);
    }
    json_object_put(a);
    json_object_put(b);
    free(whole);
    pb_provider_completion_free(&c);
    pb_provider_completion_free(&plain);
}

Test(gemini_stream, blocks_and_errors)
{
    static const char *const blocked[] = {
        "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{"
        "\"promptTokenCount\":4}}",
        NULL};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(blocked, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.finish_reason, "content_filter");
    cr_expect_str_eq(c.content, "");
    pb_provider_completion_free(&c);

    static const char *const safety[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Well\"}]}}]}",
        "{\"candidates\":[{\"finishReason\":\"SAFETY\"}]}", NULL};
    cr_assert_eq(stream_answer(safety, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.finish_reason, "content_filter");
    pb_provider_completion_free(&c);

    static const char *const errors[] = {
        "{\"error\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}", NULL};
    cr_expect_eq(stream_answer(errors, &c, &err), PB_ERR);
    cr_expect_eq(err.code, PB_PROVIDER_BAD_REPLY);
    static const char *const broken[] = {"{not json", NULL};
    cr_expect_eq(stream_answer(broken, &c, &err), PB_ERR);
    static const char *const bad_call[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"args\":{}}}]}}]}", NULL};
    cr_expect_eq(stream_answer(bad_call, &c, &err), PB_ERR);
}
