/* test_provider_bedrock.c -- Amazon Bedrock's Converse dialect, without a network.
 *
 * build_request's URL (model ids with ':' and inference-profile ARNs percent-encoded), its
 * SigV4 headers checked by pb_sigv4_verify the way planb-mock and AWS check them (and a body
 * or path changed after signing refused), the Bedrock API key instead; the conversion from
 * the OpenAI-shaped job (system, alternating turns, images as bytes, toolUse/toolResult
 * blocks with their ids, inferenceConfig, toolConfig and toolChoice), what it refuses and
 * drops; parse_response on tests/fixtures/replies/bedrock (stopReason, usage, tool calls,
 * malformed replies); classify by Bedrock's statuses; the event-stream messages of a
 * streamed answer. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "planb/delta.h"
#include "planb/provider.h"
#include "planb/sigv4.h"

#define KEY_ID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static char provider_name[] = "aws";
static char base_url[] = "https://bedrock-runtime.us-east-1.amazonaws.com";

static char region[] = "us-east-1", id_env[] = "AWS_ACCESS_KEY_ID",
            secret_env[] = "AWS_SECRET_ACCESS_KEY", key_id[] = KEY_ID, secret[] = SECRET;

static pb_provider_conf
provider(void)
{
    return (pb_provider_conf){.name = provider_name,
                              .type = PB_PROVIDER_BEDROCK,
                              .base_url = base_url,
                              .region = region,
                              .aws_access_key_id_env = id_env,
                              .aws_secret_access_key_env = secret_env,
                              .aws_access_key_id = key_id,
                              .aws_secret_access_key = secret};
}

static const pb_model_conf model = {.name = (char[]){"claude"},
                                    .upstream =
                                        (char[]){"anthropic.claude-3-5-sonnet-20240620-v1:0"},
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

static pb_http_request *
build(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req)
{
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_assert_eq(pb_provider_bedrock.build_request(p, m, req, r, &err), PB_OK, "%s", err.msg);
    return r;
}

/* Builds req with the signing provider and returns the body parsed back (caller puts). */
static json_object *
build_body(const pb_request *req)
{
    pb_provider_conf p = provider();
    pb_http_request *r = build(&p, &model, req);
    cr_assert_eq(r->body_len, strlen(r->body));
    json_object *body = json_tokener_parse(r->body);
    cr_assert(json_object_is_type(body, json_type_object), "body: %s", r->body);
    pb_http_request_free(r);
    return body;
}

/* pb_sigv4_verify on r as a server receives it: the path and query of its URL, every header
 * (the body replaced by body when not NULL). */
static int
verify(const pb_http_request *r, const char *body, const char *path_override, pb_error *err)
{
    pb_sigv4_header hs[40];
    char names[40][64];
    size_t n = 0;
    for (char **h = r->headers; *h && n < 40; h++, n++) {
        const char *colon = strchr(*h, ':');
        snprintf(names[n], sizeof(names[n]), "%.*s", (int)(colon - *h), *h);
        hs[n] = (pb_sigv4_header){names[n], colon + 2};
    }
    const char *path = strstr(r->url, ".com") + 4;
    char *p = pb_xstrndup(path, strcspn(path, "?"));
    const char *q = strchr(path, '?');
    pb_sigv4_received rec = {.method = "POST",
                             .path = path_override ? path_override : p,
                             .query = q ? q + 1 : NULL,
                             .headers = hs,
                             .n_headers = n,
                             .body = body ? body : r->body,
                             .body_len = body ? strlen(body) : r->body_len};
    int rc = pb_sigv4_verify(&rec, "us-east-1", "bedrock", KEY_ID, SECRET, NULL, err);
    free(p);
    return rc;
}

Test(bedrock, request_url_encodes_the_model_id_and_signs_with_sigv4)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    pb_provider_conf p = provider();
    pb_http_request *r = build(&p, &model, &req);
    cr_expect_str_eq(r->url, "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                             "anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    cr_expect_str_eq(th_header(r, "Host"), "bedrock-runtime.us-east-1.amazonaws.com");
    cr_expect_str_eq(th_header(r, "Content-Type"), "application/json");
    cr_expect_not_null(th_header(r, "x-amz-date"));
    cr_expect_eq(strlen(th_header(r, "x-amz-content-sha256")), 64);
    cr_expect_null(th_header(r, "x-amz-security-token"));
    const char *auth = th_header(r, "Authorization");
    cr_assert_not_null(auth);
    cr_expect(strncmp(auth, "AWS4-HMAC-SHA256 Credential=" KEY_ID "/", 40) == 0, "%s", auth);
    cr_expect(strstr(auth, "/us-east-1/bedrock/aws4_request") != NULL, "%s", auth);
    cr_expect(strstr(auth, SECRET) == NULL, "the secret is never sent");
    pb_error err = {0};
    cr_expect_eq(verify(r, NULL, NULL, &err), PB_OK, "%s", err.msg);
    /* What a server must refuse: the body or the path changed after signing. */
    char *changed = pb_xstrdup(r->body);
    changed[strlen(changed) - 3] ^= 1;
    cr_expect_eq(verify(r, changed, NULL, &err), PB_ERR);
    free(changed);
    cr_expect_eq(verify(r, NULL, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", &err),
                 PB_ERR);
    pb_http_request_free(r);

    /* An inference-profile ARN, a session token, a streamed call, a query from the config. */
    req.stream = true;
    pb_model_conf arn = model;
    arn.upstream = (char[]){
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v1:0"};
    p.aws_session_token = (char[]){"FwoGZXIvYXdzEXAMPLETOKEN"};
    p.query = (char[]){"trace=1&b=a%20b"};
    r = build(&p, &arn, &req);
    cr_expect_str_eq(r->url, "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                             "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
                             "%2Fus.anthropic.claude-v1%3A0/converse-stream?trace=1&b=a%20b");
    cr_expect_str_eq(th_header(r, "x-amz-security-token"), "FwoGZXIvYXdzEXAMPLETOKEN");
    cr_expect(strstr(th_header(r, "Authorization"), "x-amz-security-token") != NULL);
    cr_expect_eq(verify(r, NULL, NULL, &err), PB_OK, "%s", err.msg);
    json_object *body = json_tokener_parse(r->body);
    cr_expect_null(th_at(body, "stream"), "the path streams, not a field");
    cr_expect_null(th_at(body, "model"), "the model is in the path");
    json_object_put(body);
    pb_http_request_free(r);
}

Test(bedrock, request_port_in_host_and_bearer_key_and_missing_credentials)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    pb_provider_conf p = provider();
    p.base_url = (char[]){"http://127.0.0.1:8089"};
    pb_http_request *r = build(&p, &model, &req);
    cr_expect_str_eq(th_header(r, "Host"), "127.0.0.1:8089");
    pb_http_request_free(r);
    p.base_url = (char[]){"https://vpce.example:443/prefix"};
    r = build(&p, &model, &req);
    cr_expect_str_eq(th_header(r, "Host"), "vpce.example", "the default port is not sent");
    cr_expect(strncmp(r->url, "https://vpce.example:443/prefix/model/", 38) == 0, "%s", r->url);
    pb_http_request_free(r);

    pb_provider_conf key = provider();
    key.aws_access_key_id = key.aws_secret_access_key = NULL;
    key.bearer_token_env = (char[]){"AWS_BEARER_TOKEN_BEDROCK"};
    key.bearer_token = (char[]){"ABSKbedrockkey"};
    r = build(&key, &model, &req);
    cr_expect_str_eq(th_header(r, "Authorization"), "Bearer ABSKbedrockkey");
    cr_expect_null(th_header(r, "x-amz-date"));
    pb_http_request_free(r);

    pb_provider_conf none = provider();
    none.aws_secret_access_key = NULL;
    r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_expect_eq(pb_provider_bedrock.build_request(&none, &model, &req, r, &err), PB_ERR);
    cr_expect_eq(err.code, PB_PROVIDER_BAD_CONF);
    cr_expect(strstr(err.msg, "AWS_SECRET_ACCESS_KEY") != NULL, "%s", err.msg);
    pb_http_request_free(r);
}

Test(bedrock, request_system_turns_alternate_user_first_and_inference_config)
{
    pb_message msgs[] = {
        {.role = PB_ROLE_SYSTEM, .content = (char[]){"Be brief."}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"Earlier answer."}},
        {.role = PB_ROLE_USER, .content = (char[]){"One"}},
        {.role = PB_ROLE_DEVELOPER, .content = (char[]){"Use French."}},
        {.role = PB_ROLE_USER, .content = (char[]){"   "}},
        {.role = PB_ROLE_USER, .content = (char[]){"Two"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"Prefill \n"}},
    };
    pb_request req = request(msgs, 7);
    req.temperature = 0.2;
    req.top_p = 0.9;
    req.params = json_tokener_parse("{\"stop\":\"END\",\"seed\":7,\"frequency_penalty\":1}");
    json_object *body = build_body(&req);
    cr_expect_str_eq(th_at_str(body, "system[0].text"), "Be brief.\n\nUse French.");
    cr_assert_eq(json_object_array_length(th_at(body, "messages")), 4, "%s",
                 json_object_to_json_string(body));
    cr_expect_str_eq(th_at_str(body, "messages[0].role"), "user");
    cr_expect_str_eq(th_at_str(body, "messages[0].content[0].text"), "(continued)");
    cr_expect_str_eq(th_at_str(body, "messages[1].role"), "assistant");
    cr_expect_str_eq(th_at_str(body, "messages[2].role"), "user");
    cr_expect_str_eq(th_at_str(body, "messages[2].content[0].text"), "One");
    cr_expect_str_eq(th_at_str(body, "messages[2].content[1].text"), "Two");
    cr_expect_str_eq(th_at_str(body, "messages[3].content[0].text"), "Prefill",
                     "a prefill loses trailing white space");
    cr_expect_eq(json_object_get_int(th_at(body, "inferenceConfig.maxTokens")), 1024);
    cr_expect_str_eq(th_at_str(body, "inferenceConfig.temperature"), "0.2");
    cr_expect_str_eq(th_at_str(body, "inferenceConfig.topP"), "0.9");
    cr_expect_str_eq(th_at_str(body, "inferenceConfig.stopSequences[0]"), "END");
    cr_expect_null(th_at(body, "toolConfig"));
    json_object_put(body);
    char names[PB_PROVIDER_DROPPED_MAX][PB_PROVIDER_PARAM_LEN];
    size_t n = pb_provider_bedrock.dropped(&req, names, PB_PROVIDER_DROPPED_MAX);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(names[0], "frequency_penalty");
    cr_expect_str_eq(names[1], "seed");
    json_object_put(req.params);
}

Test(bedrock, request_tools_tool_uses_and_results_keep_their_ids)
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
        "\"city\":{\"type\":\"string\"}}},\"strict\":true}}],\"tool_choice\":{\"type\":"
        "\"function\",\"function\":{\"name\":\"get_weather\"}},\"parallel_tool_calls\":false}");
    json_object *body = build_body(&req);
    cr_expect_str_eq(th_at_str(body, "toolConfig.tools[0].toolSpec.name"), "get_weather");
    cr_expect_str_eq(th_at_str(body, "toolConfig.tools[0].toolSpec.description"), "Weather");
    cr_expect_str_eq(th_at_str(body, "toolConfig.tools[0].toolSpec.inputSchema.json.type"),
                     "object");
    cr_expect_str_eq(th_at_str(body, "toolConfig.tools[1].toolSpec.name"), "get_time",
                     "a function called in the history but not offered gets a spec");
    cr_expect_str_eq(th_at_str(body, "toolConfig.toolChoice.tool.name"), "get_weather");
    cr_assert_eq(json_object_array_length(th_at(body, "messages")), 3);
    cr_expect_str_eq(th_at_str(body, "messages[1].content[0].toolUse.toolUseId"), "call_a");
    cr_expect_str_eq(th_at_str(body, "messages[1].content[0].toolUse.input.city"), "Paris");
    cr_expect_str_eq(th_at_str(body, "messages[1].content[1].toolUse.name"), "get_time");
    cr_expect_str_eq(th_at_str(body, "messages[2].role"), "user", "both results in one turn");
    cr_expect_str_eq(th_at_str(body, "messages[2].content[0].toolResult.toolUseId"), "call_a");
    cr_expect_eq(
        json_object_get_int(th_at(body, "messages[2].content[0].toolResult.content[0].json.temp")),
        21, "a JSON object result goes as json");
    cr_expect_str_eq(th_at_str(body, "messages[2].content[1].toolResult.content[0].text"), "noon");
    json_object_put(body);
    char names[PB_PROVIDER_DROPPED_MAX][PB_PROVIDER_PARAM_LEN];
    size_t n = pb_provider_bedrock.dropped(&req, names, PB_PROVIDER_DROPPED_MAX);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(names[0], "parallel_tool_calls");
    cr_expect_str_eq(names[1], "tools.function.strict");

    static const char *const choices[][2] = {{"\"auto\"", "toolConfig.toolChoice.auto"},
                                             {"\"required\"", "toolConfig.toolChoice.any"}};
    for (size_t i = 0; i < 2; i++) {
        json_object_object_add(req.params, "tool_choice", json_tokener_parse(choices[i][0]));
        body = build_body(&req);
        cr_expect_not_null(th_at(body, choices[i][1]), "%s", choices[i][0]);
        json_object_put(body);
    }
    /* none: with tool history the tools must go (Bedrock requires them), tool_choice is
     * dropped; without history the tools are left out. */
    json_object_object_add(req.params, "tool_choice", json_object_new_string("none"));
    body = build_body(&req);
    cr_expect_not_null(th_at(body, "toolConfig.tools"));
    cr_expect_null(th_at(body, "toolConfig.toolChoice"));
    json_object_put(body);
    n = pb_provider_bedrock.dropped(&req, names, PB_PROVIDER_DROPPED_MAX);
    cr_expect_str_eq(names[0], "parallel_tool_calls");
    cr_expect_str_eq(names[1], "tool_choice");
    req.n_messages = 1;
    body = build_body(&req);
    cr_expect_null(th_at(body, "toolConfig"));
    json_object_put(body);
    json_object_put(req.params);
    json_object_put(calls);
}

Test(bedrock, request_images_as_bytes_or_refused)
{
    json_object *parts = json_tokener_parse(
        "[{\"type\":\"text\",\"text\":\"What is this?\"},{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"data:image/jpeg;base64,/9j/4AAQ\"}}]");
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){""}, .parts = parts}};
    pb_request req = request(msgs, 1);
    json_object *body = build_body(&req);
    cr_expect_str_eq(th_at_str(body, "messages[0].content[0].text"), "What is this?");
    cr_expect_str_eq(th_at_str(body, "messages[0].content[1].image.format"), "jpeg");
    cr_expect_str_eq(th_at_str(body, "messages[0].content[1].image.source.bytes"), "/9j/4AAQ");
    json_object_put(body);
    json_object_put(parts);

    static const char *const refused[] = {
        "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.example/cat.png\"}}]",
        "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/bmp;base64,Qk0=\"}}]"};
    for (size_t i = 0; i < 2; i++) {
        msgs[0].parts = json_tokener_parse(refused[i]);
        cr_expect_not_null(pb_provider_bedrock.refuses(&req), "%s", refused[i]);
        pb_http_request *r = pb_xcalloc(1, sizeof(*r));
        pb_error err = {0};
        pb_provider_conf p = provider();
        cr_expect_eq(pb_provider_bedrock.build_request(&p, &model, &req, r, &err), PB_ERR);
        cr_expect_eq(err.code, PB_PROVIDER_UNSUPPORTED);
        pb_http_request_free(r);
        json_object_put(msgs[0].parts);
    }
}

Test(bedrock, parse_text_stop_reasons_and_usage)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_bedrock, "good.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.content, "Hello there.", "reasoning is not the answer");
    cr_expect_str_eq(c.finish_reason, "stop");
    cr_expect_null(c.tool_calls);
    cr_expect_eq(c.prompt_tokens, 14, "input + cache reads, as OpenAI counts");
    cr_expect_eq(c.cached_tokens, 4);
    cr_expect_eq(c.completion_tokens, 8);
    pb_provider_completion_free(&c);
    cr_assert_eq(th_fixture_parse(&pb_provider_bedrock, "max_tokens.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.finish_reason, "length");
    pb_provider_completion_free(&c);
    cr_assert_eq(th_fixture_parse(&pb_provider_bedrock, "guardrail.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.finish_reason, "content_filter", "a guardrail is an answer, not a retry");
    cr_expect_str_eq(c.content, "");
    pb_provider_completion_free(&c);
}

Test(bedrock, parse_tool_uses_as_openai_tool_calls)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_bedrock, "tool_use.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.finish_reason, "tool_calls");
    cr_expect_str_eq(c.content, "Checking.");
    json_object *calls = json_tokener_parse(c.tool_calls);
    cr_assert_eq(json_object_array_length(calls), 2, "%s", c.tool_calls);
    cr_expect_str_eq(th_at_str(calls, "[0].id"), "tooluse_abc");
    cr_expect_str_eq(th_at_str(calls, "[0].function.name"), "get_weather");
    cr_expect_str_eq(th_at_str(calls, "[0].function.arguments"), "{\"city\":\"Paris\"}");
    cr_expect_str_eq(th_at_str(calls, "[1].function.arguments"), "{}");
    json_object_put(calls);
    pb_provider_completion_free(&c);
}

Test(bedrock, parse_bad_replies)
{
    th_expect_bad_reply(&pb_provider_bedrock, "bad_tool_input.json", "toolUse");
    th_expect_bad_reply(&pb_provider_bedrock, "no_output.json", "output.message.content");
    th_expect_bad_reply(&pb_provider_bedrock, "empty_text.json", "no text");
    th_expect_bad_reply(&pb_provider_bedrock, "throttled.json", NULL);
}

Test(bedrock, classify_by_bedrock_statuses_and_error_message_redacted)
{
    static const struct {
        long status;
        pb_class cls;
    } table[] = {
        {429, PB_CLASS_RETRY},    {408, PB_CLASS_RETRY},    {424, PB_CLASS_RETRY},
        {500, PB_CLASS_FALLBACK}, {503, PB_CLASS_FALLBACK}, {400, PB_CLASS_FALLBACK},
        {403, PB_CLASS_FALLBACK}, {404, PB_CLASS_FALLBACK}, {502, PB_CLASS_RETRY},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(*table); i++)
        cr_expect_eq(th_fixture_classify(&pb_provider_bedrock, table[i].status, "throttled.json"),
                     table[i].cls, "%ld", table[i].status);
    th_fixture fx = th_fixture_load("bedrock", "throttled.json");
    char msg[256];
    pb_provider_error_message(fx.data, fx.len, msg, sizeof(msg));
    cr_expect(strncmp(msg, "Too many requests", 17) == 0, "AWS's {\"message\"}: %s", msg);
    cr_expect(strstr(msg, "sk-") == NULL && strstr(msg, "[redacted]") != NULL, "%s", msg);
    cr_expect(strstr(msg, "AKIA") == NULL, "an access key id is not echoed: %s", msg);
    free(fx.data);
}

/* Feeds events ({name, JSON}) to stream_event; on PB_OK completes into c. */
static int
stream_answer(const char *const (*events)[2], pb_completion *c, pb_error *err)
{
    pb_delta *d = pb_delta_new(NULL, 1 << 20);
    int rc = PB_OK;
    for (size_t i = 0; events[i][0] != NULL && rc == PB_OK; i++)
        rc = pb_provider_bedrock.stream_event(d, events[i][0], events[i][1], strlen(events[i][1]),
                                              err);
    if (rc == PB_OK)
        rc = pb_delta_complete(d, c, err);
    pb_delta_free(d);
    return rc;
}

Test(bedrock_stream, text_tool_use_pieces_stop_and_metadata)
{
    static const char *const events[][2] = {
        {"messageStart", "{\"role\":\"assistant\"}"},
        {"contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Check\"}}"},
        {"contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"ing.\"}}"},
        {"contentBlockStop", "{\"contentBlockIndex\":0}"},
        {"contentBlockStart", "{\"contentBlockIndex\":1,\"start\":{\"toolUse\":{\"toolUseId\":"
                              "\"tooluse_abc\",\"name\":\"get_weather\"}}}"},
        {"contentBlockDelta",
         "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"{\\\"city\\\":\"}}}"},
        {"contentBlockDelta",
         "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"\\\"Paris\\\"}\"}}}"},
        {"contentBlockStop", "{\"contentBlockIndex\":1}"},
        {"messageStop", "{\"stopReason\":\"tool_use\"}"},
        {"metadata", "{\"usage\":{\"inputTokens\":30,\"outputTokens\":12},\"metrics\":{}}"},
        {NULL, NULL}};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.content, "Checking.");
    cr_expect_str_eq(c.finish_reason, "tool_calls");
    cr_expect_eq(c.prompt_tokens, 30);
    cr_expect_eq(c.completion_tokens, 12);
    json_object *calls = json_tokener_parse(c.tool_calls);
    cr_expect_str_eq(th_at_str(calls, "[0].id"), "tooluse_abc");
    cr_expect_str_eq(th_at_str(calls, "[0].function.arguments"), "{\"city\":\"Paris\"}");
    json_object_put(calls);
    pb_provider_completion_free(&c);

    static const char *const unfinished[][2] = {
        {"contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}"},
        {NULL, NULL}};
    cr_expect_eq(stream_answer(unfinished, &c, &err), PB_ERR, "no messageStop: not ended");
}

Test(bedrock_stream, exceptions_and_malformed_events_fail_the_attempt)
{
    static const char *const bad[][3][2] = {
        {{"throttlingException", "{\"message\":\"slow down\"}"}, {NULL, NULL}},
        {{"modelStreamErrorException", "{\"message\":\"x\"}"}, {NULL, NULL}},
        {{"contentBlockDelta", "not json"}, {NULL, NULL}},
        {{"contentBlockDelta", "{\"contentBlockIndex\":3,\"delta\":{\"toolUse\":{\"input\":"
                               "\"{}\"}}}"},
         {NULL, NULL}},
        {{"contentBlockStart", "{\"contentBlockIndex\":0,\"start\":{\"toolUse\":{\"name\":"
                               "\"f\"}}}"},
         {NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        pb_completion c;
        pb_error err = {0};
        cr_expect_eq(stream_answer(bad[i], &c, &err), PB_ERR, "%zu", i);
        cr_expect_eq(err.code, PB_PROVIDER_BAD_REPLY, "%zu: %s", i, err.msg);
    }
}
