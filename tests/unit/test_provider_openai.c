/* test_provider_openai.c -- the OpenAI dialect and the shared status table, without a network.
 *
 * Requests are checked by parsing the body back; replies come from
 * tests/fixtures/replies/openai, loaded into buffers of exactly their size
 * (no NUL after them) so an adapter reading past len shows up under ASan. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "planb/delta.h"
#include "planb/provider.h"

static char provider_name[] = "openai";
static char base_url[] = "http://127.0.0.1:8000/v1";

static pb_provider_conf
provider(char *key)
{
    return (pb_provider_conf){
        .name = provider_name, .type = PB_PROVIDER_OPENAI, .base_url = base_url, .api_key = key};
}

static const pb_model_conf model = {.name = (char[]){"fast"},
                                    .upstream = (char[]){"gpt-4o-mini-2024-07-18"},
                                    .tier = 1,
                                    .max_tokens_default = 1024};

static pb_message chat[] = {
    {.role = PB_ROLE_SYSTEM, .content = (char[]){"Be brief."}},
    {.role = PB_ROLE_USER, .content = (char[]){"Capital of France? a/b"}},
    {.role = PB_ROLE_ASSISTANT, .content = (char[]){"Paris."}},
    {.role = PB_ROLE_USER, .content = (char[]){"And Spain?"}},
};

static char job_id[] = "job-1";

static pb_request
request(void)
{
    return (pb_request){.id = job_id,
                        .messages = chat,
                        .n_messages = sizeof(chat) / sizeof(*chat),
                        .max_tokens = -1,
                        .temperature = NAN,
                        .top_p = NAN};
}

/* Value of header name in r, or NULL. */

static size_t
header_count(const pb_http_request *r)
{
    size_t n = 0;
    while (r->headers[n])
        n++;
    return n;
}

/* Builds req and returns its body parsed back (caller puts); out keeps the request. */
static json_object *
build(const pb_provider_conf *p, const pb_request *req, pb_http_request *out)
{
    pb_error err = {0};
    cr_assert_eq(pb_provider_openai.build_request(p, &model, req, out, &err), PB_OK, "%s", err.msg);
    cr_assert_not_null(out->body);
    cr_assert_eq(out->body_len, strlen(out->body));
    json_object *body = json_tokener_parse(out->body);
    cr_assert(json_object_is_type(body, json_type_object), "body: %s", out->body);
    return body;
}

static json_object *
field(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

Test(openai, provider_for_returns_the_tables)
{
    cr_assert_eq(pb_provider_for(PB_PROVIDER_OPENAI), &pb_provider_openai);
    cr_assert_eq(pb_provider_for(PB_PROVIDER_ANTHROPIC), &pb_provider_anthropic);
    cr_assert_str_eq(pb_provider_openai.type_name, "openai");
    cr_assert_str_eq(pb_provider_anthropic.type_name, "anthropic");
}

Test(openai, request_url_and_headers_with_key)
{
    pb_provider_conf p = provider((char[]){"sk-test-123"});
    pb_request req = request();
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object *body = build(&p, &req, r);
    cr_assert_str_eq(r->url, "http://127.0.0.1:8000/v1/chat/completions");
    cr_assert_eq(header_count(r), 2);
    cr_assert_str_eq(th_header(r, "Content-Type"), "application/json");
    cr_assert_str_eq(th_header(r, "Authorization"), "Bearer sk-test-123");
    json_object_put(body);
    pb_http_request_free(r);
}

Test(openai, request_without_key_sends_no_authorization)
{
    char *keys[] = {NULL, (char[]){""}};
    for (size_t i = 0; i < 2; i++) {
        pb_provider_conf p = provider(keys[i]);
        pb_request req = request();
        pb_http_request *r = pb_xcalloc(1, sizeof(*r));
        json_object *body = build(&p, &req, r);
        cr_assert_eq(header_count(r), 1);
        cr_assert_null(th_header(r, "Authorization"));
        cr_assert_str_eq(th_header(r, "Content-Type"), "application/json");
        json_object_put(body);
        pb_http_request_free(r);
    }
}

Test(openai, request_body_messages_in_order_no_params_when_unset)
{
    pb_provider_conf p = provider((char[]){"k"});
    pb_request req = request();
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object *body = build(&p, &req, r);
    cr_assert_str_eq(json_object_get_string(field(body, "model")), "gpt-4o-mini-2024-07-18");
    json_object *msgs = field(body, "messages");
    cr_assert_eq(json_object_array_length(msgs), 4);
    const char *roles[] = {"system", "user", "assistant", "user"};
    for (size_t i = 0; i < 4; i++) {
        json_object *m = json_object_array_get_idx(msgs, i);
        cr_assert_str_eq(json_object_get_string(field(m, "role")), roles[i]);
        cr_assert_str_eq(json_object_get_string(field(m, "content")), chat[i].content);
    }
    cr_assert_null(field(body, "max_tokens"));
    cr_assert_null(field(body, "temperature"));
    cr_assert_null(field(body, "top_p"));
    cr_assert_eq(json_object_object_length(body), 2);
    /* Plain output without escaped slashes. */
    cr_assert(strstr(r->body, "a/b") != NULL, "%s", r->body);
    cr_assert(strchr(r->body, '\n') == NULL);
    json_object_put(body);
    pb_http_request_free(r);
}

Test(openai, request_body_params_when_set)
{
    pb_provider_conf p = provider(NULL);
    pb_request req = request();
    req.max_tokens = 256;
    req.temperature = 0.2;
    req.top_p = 0.9;
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object *body = build(&p, &req, r);
    cr_assert_eq(json_object_get_int(field(body, "max_tokens")), 256);
    cr_assert_float_eq(json_object_get_double(field(body, "temperature")), 0.2, 1e-12);
    cr_assert_float_eq(json_object_get_double(field(body, "top_p")), 0.9, 1e-12);
    /* Printed as the producer wrote them, not 0.20000000000000001. */
    cr_assert(strstr(r->body, "\"temperature\":0.2,") != NULL, "%s", r->body);
    cr_assert(strstr(r->body, "\"top_p\":0.9") != NULL, "%s", r->body);
    json_object_put(body);
    pb_http_request_free(r);
}

Test(openai, request_temperature_zero_and_above_one_pass_through)
{
    pb_provider_conf p = provider(NULL);
    pb_request req = request();
    req.temperature = 0.0;
    req.max_tokens = 0;
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object *body = build(&p, &req, r);
    cr_assert_not_null(field(body, "temperature"));
    cr_assert_float_eq(json_object_get_double(field(body, "temperature")), 0.0, 1e-12);
    cr_assert_eq(json_object_get_int(field(body, "max_tokens")), 0);
    json_object_put(body);
    pb_http_request_free(r);

    req.temperature = 1.7;
    r = pb_xcalloc(1, sizeof(*r));
    body = build(&p, &req, r);
    cr_assert_float_eq(json_object_get_double(field(body, "temperature")), 1.7, 1e-12);
    json_object_put(body);
    pb_http_request_free(r);
}

Test(openai, request_model_defaults_to_name)
{
    pb_provider_conf p = provider(NULL);
    pb_model_conf m = model;
    m.upstream = NULL;
    pb_request req = request();
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_assert_eq(pb_provider_openai.build_request(&p, &m, &req, r, &err), PB_OK);
    json_object *body = json_tokener_parse(r->body);
    cr_assert_str_eq(json_object_get_string(field(body, "model")), "fast");
    json_object_put(body);
    pb_http_request_free(r);
}

Test(openai, request_key_with_line_break_is_refused_without_echo)
{
    pb_provider_conf p = provider((char[]){"sk-secret\r\nX-Evil: 1"});
    pb_request req = request();
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_assert_eq(pb_provider_openai.build_request(&p, &model, &req, r, &err), PB_ERR);
    cr_assert_eq(err.code, PB_PROVIDER_BAD_CONF);
    cr_assert(strncmp(err.msg, "BAD_CONF ", 9) == 0, "%s", err.msg);
    cr_assert(strstr(err.msg, "Authorization") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "secret") == NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "Evil") == NULL, "%s", err.msg);
    cr_assert_null(r->body);
    /* A partly built request is the caller's to free, like a whole one (ASan checks it all goes).
     */
    pb_http_request_free(r);
}

Test(openai, free_accepts_null)
{
    pb_http_request_free(NULL);
    pb_provider_completion_free(NULL);
    pb_completion c = {0};
    pb_provider_completion_free(&c);
}

Test(openai, parse_good)
{
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "good.json", &c, &err), PB_OK, "%s",
                 err.msg);
    cr_assert_str_eq(c.content, "Paris is the capital of France.");
    cr_assert_eq(c.prompt_tokens, 12);
    cr_assert_eq(c.completion_tokens, 30);
    cr_expect_str_eq(c.response_id, "chatcmpl-9x2Lw3Zb7YqK1");
    pb_provider_completion_free(&c);
    cr_assert_null(c.content);
    cr_assert_null(c.response_id);
}

Test(openai, parse_good_without_usage)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "good_no_usage.json", &c, NULL), PB_OK);
    cr_assert_str_eq(c.content, "Hi there");
    cr_assert_eq(c.prompt_tokens, -1);
    cr_assert_eq(c.completion_tokens, -1);
    pb_provider_completion_free(&c);

    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "good_usage_null.json", &c, NULL), PB_OK);
    cr_assert_str_eq(c.content, "ok");
    cr_assert_eq(c.prompt_tokens, -1);
    pb_provider_completion_free(&c);
}

Test(openai, parse_content_parts_joined)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "good_content_parts.json", &c, NULL), PB_OK);
    cr_assert_str_eq(c.content, "Hello, world");
    cr_assert_eq(c.prompt_tokens, 5);
    cr_assert_eq(c.completion_tokens, 3);
    pb_provider_completion_free(&c);
}

Test(openai, parse_unicode_and_escapes)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "good_unicode.json", &c, NULL), PB_OK);
    cr_assert_str_eq(c.content, "caf\xc3\xa9 \xf0\x9f\x98\x80 a/b \"q\"\n");
    cr_assert_eq(c.prompt_tokens, 0);
    cr_assert_eq(c.completion_tokens, 7);
    pb_provider_completion_free(&c);
}

Test(openai, parse_odd_usage_values)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "good_odd_usage.json", &c, NULL), PB_OK);
    cr_assert_eq(c.prompt_tokens, -1, "a string is not a count");
    cr_assert_eq(c.completion_tokens, -1, "a negative count is not a count");
    pb_provider_completion_free(&c);

    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "good_huge_usage.json", &c, NULL), PB_OK);
    cr_assert_eq(c.prompt_tokens, -1, "1e300 is a double");
    cr_assert_geq(c.completion_tokens, 0, "a huge integer saturates, never wraps");
    pb_provider_completion_free(&c);
}

Test(openai, parse_bad_replies)
{
    th_expect_bad_reply(&pb_provider_openai, "truncated.json", "incomplete");
    th_expect_bad_reply(&pb_provider_openai, "html.html", "not JSON");
    th_expect_bad_reply(&pb_provider_openai, "plain.txt", "not JSON");
    th_expect_bad_reply(&pb_provider_openai, "empty.txt", "empty body");
    th_expect_bad_reply(&pb_provider_openai, "not_object.json", "not a JSON object");
    th_expect_bad_reply(&pb_provider_openai, "string.json", "not a JSON object");
    th_expect_bad_reply(&pb_provider_openai, "null.json",
                        NULL); /* json-c waits for more after a bare literal */
    th_expect_bad_reply(&pb_provider_openai, "trailing_object.json", "after the JSON");
    th_expect_bad_reply(&pb_provider_openai, "missing_choices.json", "no choices");
    th_expect_bad_reply(&pb_provider_openai, "empty_choices.json", "no choices");
    th_expect_bad_reply(&pb_provider_openai, "choices_not_array.json", "no choices");
    th_expect_bad_reply(&pb_provider_openai, "missing_message.json", "no message");
    th_expect_bad_reply(&pb_provider_openai, "bad_tool_args.json", "arguments are not a JSON");
    th_expect_bad_reply(&pb_provider_openai, "null_content.json", "null or missing");
    th_expect_bad_reply(&pb_provider_openai, "empty_content.json", "empty content");
    th_expect_bad_reply(&pb_provider_openai, "content_number.json", "not text");
    th_expect_bad_reply(&pb_provider_openai, "empty_parts.json", "empty content");
    th_expect_bad_reply(&pb_provider_openai, "parts_no_text.json", "empty content");
    th_expect_bad_reply(&pb_provider_openai, "error_200.json", "error object");
    th_expect_bad_reply(&pb_provider_openai, "error_with_choices.json", "error object");
}

Test(openai, parse_bad_reply_never_quotes_upstream_text)
{
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "error_200.json", &c, &err), PB_ERR);
    cr_assert(strstr(err.msg, "upstream timeout") == NULL, "%s", err.msg);
}

Test(openai, parse_reads_exactly_len_bytes)
{
    /* The good reply followed by bytes that are not passed: they must not matter. */
    th_fixture fx = th_fixture_load("openai", "good.json");
    char *more = malloc(fx.len + 8);
    memcpy(more, fx.data, fx.len);
    memcpy(more + fx.len, "garbage!", 8);
    pb_completion c;
    cr_assert_eq(pb_provider_openai.parse_response(more, fx.len, NULL, &c, NULL), PB_OK);
    pb_provider_completion_free(&c);
    /* ... and one byte short of the whole is incomplete. */
    cr_assert_eq(pb_provider_openai.parse_response(more, fx.len - 3, NULL, &c, NULL), PB_ERR);
    free(more);
    free(fx.data);
}

Test(openai, parse_every_prefix_fails_without_crashing)
{
    th_fixture fx = th_fixture_load("openai", "good.json");
    for (size_t n = 0; n < fx.len; n++) {
        /* Each prefix in a buffer of exactly n bytes, so an over-read is an ASan report. */
        char *prefix = malloc(n ? n : 1);
        memcpy(prefix, fx.data, n);
        pb_completion c;
        pb_error err = {0};
        int rc = pb_provider_openai.parse_response(prefix, n, NULL, &c, &err);
        /* Only trailing whitespace may be cut from a complete reply. */
        if (rc == PB_OK) {
            for (size_t i = n; i < fx.len; i++)
                cr_assert(strchr(" \t\r\n", fx.data[i]) != NULL, "prefix %zu parsed", n);
            pb_provider_completion_free(&c);
        } else {
            cr_assert_eq(err.code, PB_PROVIDER_BAD_REPLY);
        }
        free(prefix);
    }
    free(fx.data);
}

Test(openai, parse_nul_bytes_and_random_bytes)
{
    static const char nul_inside[] = "{\"choices\":[{\"message\":{\"content\":\"a\0b\"}}]}";
    pb_completion c;
    cr_assert_eq(
        pb_provider_openai.parse_response(nul_inside, sizeof(nul_inside) - 1, NULL, &c, NULL),
        PB_ERR);
    static const char nul_after[] = "{\"choices\":[{\"message\":{\"content\":\"ab\"}}]}\0\0";
    cr_assert_eq(
        pb_provider_openai.parse_response(nul_after, sizeof(nul_after) - 1, NULL, &c, NULL),
        PB_ERR);
    static const char escaped_nul[] = "{\"choices\":[{\"message\":{\"content\":\"\\u0000b\"}}]}";
    cr_assert_eq(
        pb_provider_openai.parse_response(escaped_nul, sizeof(escaped_nul) - 1, NULL, &c, NULL),
        PB_ERR, "content that reads as an empty C string is empty");

    uint64_t x = 0x9E3779B97F4A7C15u; /* xorshift64, seeded: the same bytes every run */
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 97) + 1;
        char *junk = malloc(n);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk[i] = round % 2 ? (char)x : "{}[]\":,0a\\ "[x % 11];
        }
        pb_error err = {0};
        if (pb_provider_openai.parse_response(junk, n, NULL, &c, &err) == PB_OK)
            pb_provider_completion_free(&c);
        else
            cr_assert_eq(err.code, PB_PROVIDER_BAD_REPLY);
        free(junk);
    }
}

Test(openai, parse_deep_nesting_and_huge_content)
{
    /* Nesting past json-c's depth limit is refused, not recursed into. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    pb_completion c;
    cr_assert_eq(pb_provider_openai.parse_response(deep, 2 * depth, NULL, &c, NULL), PB_ERR);
    free(deep);

    size_t big = 3u << 20;
    const char *head = "{\"choices\":[{\"message\":{\"content\":\"";
    const char *tail = "\"}}]}";
    size_t len = strlen(head) + big + strlen(tail);
    char *body = malloc(len);
    memcpy(body, head, strlen(head));
    memset(body + strlen(head), 'x', big);
    memcpy(body + strlen(head) + big, tail, strlen(tail));
    cr_assert_eq(pb_provider_openai.parse_response(body, len, NULL, &c, NULL), PB_OK);
    cr_assert_eq(strlen(c.content), big);
    pb_provider_completion_free(&c);
    free(body);
}

Test(classify, status_table)
{
    long retry[] = {408, 409, 425, 429, 500, 501, 502, 503, 504, 520, 529, 599};
    for (size_t i = 0; i < sizeof(retry) / sizeof(*retry); i++)
        cr_expect_eq(pb_provider_classify_status(retry[i], NULL, 0), PB_CLASS_RETRY, "%ld",
                     retry[i]);
    long fallback[] = {401, 402, 403, 404, 405, 413, 418, 422, 451, 301, 302, 600};
    for (size_t i = 0; i < sizeof(fallback) / sizeof(*fallback); i++)
        cr_expect_eq(pb_provider_classify_status(fallback[i], "", 0), PB_CLASS_FALLBACK, "%ld",
                     fallback[i]);
    cr_expect_eq(pb_provider_classify_status(400, NULL, 0), PB_CLASS_INVALID);
    cr_expect_eq(pb_provider_classify_status(400, "", 0), PB_CLASS_INVALID);
}

Test(classify, openai_error_bodies)
{
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 400, "err_400_context_length.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 400, "err_400_vllm_context.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 400, "err_400_llamacpp_context.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 400, "err_400_content_filter.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 400, "err_400_max_tokens.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 400, "err_400_plain.json"),
                 PB_CLASS_INVALID);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 401, "err_401.json"), PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 404, "err_404_model.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 429, "err_429.json"), PB_CLASS_RETRY);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 500, "err_500.json"), PB_CLASS_RETRY);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 502, "html.html"), PB_CLASS_RETRY);
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 400, "html.html"), PB_CLASS_INVALID);
}

Test(classify, body_phrases_case_insensitive_and_bounded)
{
    const char *phrases[] = {"Context_Length_Exceeded",
                             "CONTEXT LENGTH",
                             "exceeds the Maximum Context",
                             "Prompt is too long",
                             "Too Many Tokens",
                             "content_filter",
                             "Content Management Policy",
                             "Responsible AI",
                             "ResponsibleAIPolicyViolation",
                             "context window"};
    for (size_t i = 0; i < sizeof(phrases) / sizeof(*phrases); i++)
        cr_expect_eq(pb_provider_classify_status(400, phrases[i], strlen(phrases[i])),
                     PB_CLASS_FALLBACK, "%s", phrases[i]);
    /* len is obeyed: the phrase just past it does not count. */
    const char *s = "bad: context length";
    cr_expect_eq(pb_provider_classify_status(400, s, strlen(s) - 1), PB_CLASS_INVALID);
    /* NULs before the phrase do not hide it. */
    static const char nul[] = "{\0\0\"code\":\"context_length_exceeded\"}";
    cr_expect_eq(pb_provider_classify_status(400, nul, sizeof(nul) - 1), PB_CLASS_FALLBACK);
    /* Only the first 4 KiB are read. */
    size_t pad = 8192;
    char *late = malloc(pad + 32);
    memset(late, ' ', pad);
    memcpy(late + pad, "context_length_exceeded", 23);
    cr_expect_eq(pb_provider_classify_status(400, late, pad + 23), PB_CLASS_INVALID);
    memcpy(late + 100, "context_length_exceeded", 23);
    cr_expect_eq(pb_provider_classify_status(400, late, pad + 23), PB_CLASS_FALLBACK);
    free(late);
}

Test(helpers, tokens_and_join_text_edge_cases)
{
    cr_assert_eq(pb_provider_tokens(NULL, "x"), -1);
    json_object *usage = json_tokener_parse("{\"a\":3,\"b\":true,\"c\":2.5,\"d\":[1]}");
    cr_assert_eq(pb_provider_tokens(usage, "a"), 3);
    cr_assert_eq(pb_provider_tokens(usage, "b"), -1);
    cr_assert_eq(pb_provider_tokens(usage, "c"), -1);
    cr_assert_eq(pb_provider_tokens(usage, "d"), -1);
    cr_assert_eq(pb_provider_tokens(usage, "missing"), -1);
    json_object_put(usage);

    cr_assert_null(pb_provider_join_text(NULL));
    json_object *parts = json_tokener_parse("[1,null,\"text\",{\"type\":\"text\"},"
                                            "{\"type\":\"text\",\"text\":\"\"}]");
    cr_assert_null(pb_provider_join_text(parts));
    json_object_put(parts);
}

Test(openai, parse_tool_calls_finish_reason_and_usage_details)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "tool_calls.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.content, "Let me check.");
    cr_expect_str_eq(c.finish_reason, "tool_calls");
    json_object *calls = json_tokener_parse(c.tool_calls);
    cr_assert_eq(json_object_array_length(calls), 2, "%s", c.tool_calls);
    json_object *c0 = json_object_array_get_idx(calls, 0), *fn, *v;
    cr_assert(json_object_object_get_ex(c0, "function", &fn));
    json_object_object_get_ex(c0, "id", &v);
    cr_expect_str_eq(json_object_get_string(v), "call_a");
    json_object_object_get_ex(fn, "arguments", &v);
    cr_expect_str_eq(json_object_get_string(v), "{\"city\":\"Paris\"}");
    json_object_put(calls);
    cr_expect_eq(c.prompt_tokens, 20);
    cr_expect_eq(c.cached_tokens, 8);
    cr_expect_eq(c.reasoning_tokens, 3);
    pb_provider_completion_free(&c);

    cr_assert_eq(th_fixture_parse(&pb_provider_openai, "tool_calls_only.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.content, "");
    cr_expect_str_eq(c.finish_reason, "tool_calls", "no finish_reason: tool calls decide");
    cr_expect_not_null(c.tool_calls);
    pb_provider_completion_free(&c);
}

/* Feeds chat.completion.chunk data lines (NULL-terminated) to stream_event and completes the
 * answer; each event gets a buffer of exactly its size. */
static int
stream_answer(const char *const *events, pb_completion *c, pb_error *err)
{
    pb_delta *d = pb_delta_new(NULL, 1u << 20);
    int rc = PB_OK;
    for (const char *const *e = events; *e && rc == PB_OK; e++) {
        size_t n = strlen(*e);
        char *data = malloc(n ? n : 1);
        memcpy(data, *e, n);
        rc = pb_provider_openai.stream_event(d, "message", data, n, err);
        free(data);
    }
    if (rc == PB_OK)
        rc = pb_delta_complete(d, c, err);
    pb_delta_free(d);
    return rc;
}

Test(openai_stream, a_streamed_refusal_is_an_answer_as_unstreamed)
{
    static const char *const events[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
        "\"refusal\":\"\"},\"finish_reason\":null}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't \"},"
        "\"finish_reason\":null}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"help with that.\"},"
        "\"finish_reason\":null}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4}}",
        "[DONE]",
        NULL};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.content, "");
    cr_assert_not_null(c.refusal);
    cr_expect_str_eq(c.refusal, "I can't help with that.");
    cr_expect_null(c.tool_calls);
    cr_expect_str_eq(c.finish_reason, "stop");
    cr_expect_eq(c.prompt_tokens, 9);
    pb_provider_completion_free(&c);
}

Test(openai_stream, a_content_filter_stop_without_text_is_an_answer_as_unstreamed)
{
    static const char *const events[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
        "\"finish_reason\":null}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}", "[DONE]",
        NULL};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.content, "");
    cr_expect_null(c.refusal);
    cr_expect_str_eq(c.finish_reason, "content_filter");
    pb_provider_completion_free(&c);
    /* The unstreamed parser takes the same answer. */
    static const char body[] = "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                               "\"content\":null},\"finish_reason\":\"content_filter\"}]}";
    cr_assert_eq(pb_provider_openai.parse_response(body, sizeof(body) - 1, NULL, &c, NULL), PB_OK);
    cr_expect_str_eq(c.finish_reason, "content_filter");
    pb_provider_completion_free(&c);
}

Test(openai_stream, a_stream_with_nothing_in_it_is_still_a_bad_reply)
{
    static const char *const events[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
        "\"finish_reason\":null}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}", "[DONE]", NULL};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_ERR);
    cr_expect(strncmp(err.msg, "BAD_REPLY", 9) == 0, "%s", err.msg);
}

/* Counts what reaches the sink. */
static void
count_text(void *arg, const char *p, size_t n)
{
    (void)p;
    *(size_t *)arg += n;
}

Test(openai_stream, the_decoded_answer_is_bounded_not_its_framing)
{
    size_t seen = 0;
    pb_delta_sink sink = {.text = count_text, .arg = &seen};
    pb_delta *d = pb_delta_new(&sink, 12);
    /* Each event is ~70 bytes of framing around 5 bytes of text. */
    static const char ev[] =
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"wxyz \"},\"finish_reason\":null}]}";
    pb_error err = {0};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pb_provider_openai.stream_event(d, "message", ev, sizeof(ev) - 1, &err),
                     PB_OK);
    cr_expect_not(pb_delta_too_large(d), "10 bytes of text fit in 12");
    cr_assert_eq(pb_provider_openai.stream_event(d, "message", ev, sizeof(ev) - 1, &err), PB_OK);
    cr_expect(pb_delta_too_large(d), "15 bytes do not");
    cr_expect_eq(seen, 10, "the piece past the bound never reached the sink");
    size_t len;
    pb_delta_text_so_far(d, &len);
    cr_expect_eq(len, 10);
    pb_delta_free(d);
}
