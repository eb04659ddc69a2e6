/* test_provider_anthropic.c -- the Anthropic Messages dialect, without a network.
 *
 * Most of the weight is on build_request's conversion from the OpenAI-shaped
 * job (system prompt apart, merged alternating turns, user first, max_tokens
 * always) and on classify reading the typed error body. Replies come from
 * tests/fixtures/replies/anthropic in buffers of exactly their size. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "planb/delta.h"
#include "planb/provider.h"

static char provider_name[] = "anthropic";
static char base_url[] = "https://api.anthropic.com/v1";

static pb_provider_conf
provider(char *key, char *version)
{
    return (pb_provider_conf){.name = provider_name,
                              .type = PB_PROVIDER_ANTHROPIC,
                              .base_url = base_url,
                              .api_key = key,
                              .anthropic_version = version};
}

static const pb_model_conf model = {.name = (char[]){"claude-sonnet"},
                                    .upstream = (char[]){"claude-3-5-sonnet-latest"},
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

static size_t
header_count(const pb_http_request *r)
{
    size_t n = 0;
    while (r->headers[n])
        n++;
    return n;
}

static json_object *
field(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* Builds req with a keyed provider and returns the body parsed back (caller puts). */
static json_object *
build_body(const pb_request *req)
{
    pb_provider_conf p = provider((char[]){"k"}, (char[]){"2023-06-01"});
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_assert_eq(pb_provider_anthropic.build_request(&p, &model, req, r, &err), PB_OK, "%s",
                 err.msg);
    cr_assert_eq(r->body_len, strlen(r->body));
    json_object *body = json_tokener_parse(r->body);
    cr_assert(json_object_is_type(body, json_type_object), "body: %s", r->body);
    pb_http_request_free(r);
    return body;
}

/* Asserts body.messages is exactly the n (role, content) pairs given. */
static void
expect_messages(json_object *body, const char *const *pairs, size_t n)
{
    json_object *msgs = field(body, "messages");
    cr_assert_eq(json_object_array_length(msgs), n, "%s", json_object_to_json_string(msgs));
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(msgs, i);
        cr_expect_str_eq(json_object_get_string(field(m, "role")), pairs[2 * i], "[%zu]", i);
        cr_expect_str_eq(json_object_get_string(field(m, "content")), pairs[2 * i + 1], "[%zu]", i);
    }
}

Test(anthropic, request_url_and_headers)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    pb_provider_conf p = provider((char[]){"sk-ant-1"}, (char[]){"2024-01-01"});
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    cr_assert_eq(pb_provider_anthropic.build_request(&p, &model, &req, r, NULL), PB_OK);
    cr_assert_str_eq(r->url, "https://api.anthropic.com/v1/messages");
    cr_assert_eq(header_count(r), 3);
    cr_assert_str_eq(th_header(r, "Content-Type"), "application/json");
    cr_assert_str_eq(th_header(r, "x-api-key"), "sk-ant-1");
    cr_assert_str_eq(th_header(r, "anthropic-version"), "2024-01-01");
    cr_assert_null(th_header(r, "Authorization"));
    pb_http_request_free(r);
}

Test(anthropic, request_without_key_and_default_version)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    char *keys[] = {NULL, (char[]){""}};
    for (size_t i = 0; i < 2; i++) {
        pb_provider_conf p = provider(keys[i], NULL);
        pb_http_request *r = pb_xcalloc(1, sizeof(*r));
        cr_assert_eq(pb_provider_anthropic.build_request(&p, &model, &req, r, NULL), PB_OK);
        cr_assert_eq(header_count(r), 2);
        cr_assert_null(th_header(r, "x-api-key"));
        cr_assert_str_eq(th_header(r, "anthropic-version"), "2023-06-01");
        pb_http_request_free(r);
    }
}

Test(anthropic, request_key_with_line_break_is_refused_without_echo)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    pb_provider_conf p = provider((char[]){"sk-ant-secret\n"}, NULL);
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    pb_error err = {0};
    cr_assert_eq(pb_provider_anthropic.build_request(&p, &model, &req, r, &err), PB_ERR);
    cr_assert_eq(err.code, PB_PROVIDER_BAD_CONF);
    cr_assert(strstr(err.msg, "x-api-key") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "secret") == NULL, "%s", err.msg);
    cr_assert_null(r->body);
    pb_http_request_free(r);
}

Test(anthropic, request_max_tokens_always)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    json_object *body = build_body(&req);
    cr_assert_str_eq(json_object_get_string(field(body, "model")), "claude-3-5-sonnet-latest");
    cr_assert_eq(json_object_get_int(field(body, "max_tokens")), 1024);
    cr_assert_null(field(body, "system"));
    cr_assert_null(field(body, "temperature"));
    cr_assert_null(field(body, "top_p"));
    cr_assert_eq(json_object_object_length(body), 3);
    json_object_put(body);

    req.max_tokens = 77;
    body = build_body(&req);
    cr_assert_eq(json_object_get_int(field(body, "max_tokens")), 77);
    json_object_put(body);
}

Test(anthropic, request_system_messages_joined_and_lifted)
{
    pb_message msgs[] = {
        {.role = PB_ROLE_SYSTEM, .content = (char[]){"You are terse."}},
        {.role = PB_ROLE_USER, .content = (char[]){"Hi"}},
        {.role = PB_ROLE_SYSTEM, .content = (char[]){"Answer in French."}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"Bonjour"}},
    };
    pb_request req = request(msgs, 4);
    json_object *body = build_body(&req);
    cr_assert_str_eq(json_object_get_string(field(body, "system")),
                     "You are terse.\n\nAnswer in French.");
    const char *want[] = {"user", "Hi", "assistant", "Bonjour"};
    expect_messages(body, want, 2);
    json_object_put(body);
}

Test(anthropic, request_consecutive_roles_merged)
{
    pb_message msgs[] = {
        {.role = PB_ROLE_USER, .content = (char[]){"one"}},
        {.role = PB_ROLE_USER, .content = (char[]){"two"}},
        {.role = PB_ROLE_SYSTEM, .content = (char[]){"sys"}},
        {.role = PB_ROLE_USER, .content = (char[]){"three"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"a1"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"a2"}},
        {.role = PB_ROLE_USER, .content = (char[]){"four"}},
    };
    pb_request req = request(msgs, 7);
    json_object *body = build_body(&req);
    const char *want[] = {"user", "one\n\ntwo\n\nthree", "assistant", "a1\n\na2", "user", "four"};
    expect_messages(body, want, 3);
    cr_assert_str_eq(json_object_get_string(field(body, "system")), "sys");
    json_object_put(body);
}

Test(anthropic, request_first_turn_is_user)
{
    pb_message msgs[] = {
        {.role = PB_ROLE_SYSTEM, .content = (char[]){"sys"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"How can I help?"}},
        {.role = PB_ROLE_USER, .content = (char[]){"Weather?"}},
    };
    pb_request req = request(msgs, 3);
    json_object *body = build_body(&req);
    const char *want[] = {"user", "(continued)", "assistant", "How can I help?",
                          "user", "Weather?"};
    expect_messages(body, want, 3);
    json_object_put(body);
}

Test(anthropic, request_only_system_gets_a_user_turn)
{
    pb_message msgs[] = {{.role = PB_ROLE_SYSTEM, .content = (char[]){"Tell a joke."}}};
    pb_request req = request(msgs, 1);
    json_object *body = build_body(&req);
    const char *want[] = {"user", "(continued)"};
    expect_messages(body, want, 1);
    cr_assert_str_eq(json_object_get_string(field(body, "system")), "Tell a joke.");
    json_object_put(body);
}

Test(anthropic, request_blank_messages_skipped)
{
    pb_message msgs[] = {
        {.role = PB_ROLE_SYSTEM, .content = (char[]){" "}},
        {.role = PB_ROLE_USER, .content = (char[]){"one"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){""}},
        {.role = PB_ROLE_USER, .content = (char[]){"two"}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"\n\t "}},
    };
    pb_request req = request(msgs, 5);
    json_object *body = build_body(&req);
    cr_assert_null(field(body, "system"));
    const char *want[] = {"user", "one\n\ntwo"};
    expect_messages(body, want, 1);
    json_object_put(body);
}

Test(anthropic, request_final_assistant_prefill_trimmed)
{
    pb_message msgs[] = {
        {.role = PB_ROLE_USER, .content = (char[]){"List three fruits."}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"Sure:  \n"}},
        {.role = PB_ROLE_USER, .content = (char[]){"As JSON."}},
        {.role = PB_ROLE_ASSISTANT, .content = (char[]){"{\"fruits\": [ \n"}},
    };
    pb_request req = request(msgs, 4);
    json_object *body = build_body(&req);
    /* Only the last turn is a prefill; earlier whitespace is the producer's text. */
    const char *want[] = {"user", "List three fruits.", "assistant", "Sure:  \n",
                          "user", "As JSON.",           "assistant", "{\"fruits\": ["};
    expect_messages(body, want, 4);
    json_object_put(body);
}

Test(anthropic, request_roles_alternate_user_first_for_every_small_job)
{
    /* Every role sequence of length 1..5 (3^5 = 243 jobs of the last length). */
    char text[] = "text";
    for (size_t n = 1; n <= 5; n++) {
        size_t total = 1;
        for (size_t i = 0; i < n; i++)
            total *= 3;
        for (size_t code = 0; code < total; code++) {
            pb_message msgs[5];
            size_t c = code;
            for (size_t i = 0; i < n; i++, c /= 3)
                msgs[i] = (pb_message){.role = (pb_role)(c % 3), .content = text};
            pb_request req = request(msgs, n);
            json_object *body = build_body(&req);
            json_object *out = field(body, "messages");
            size_t m = json_object_array_length(out);
            cr_assert_geq(m, 1);
            for (size_t i = 0; i < m; i++) {
                const char *role =
                    json_object_get_string(field(json_object_array_get_idx(out, i), "role"));
                cr_assert_str_eq(role, i % 2 == 0 ? "user" : "assistant", "job %zu/%zu", n, code);
            }
            json_object_put(body);
        }
    }
}

Test(anthropic, request_temperature_above_1_refused_top_p_passed)
{
    pb_message msgs[] = {{.role = PB_ROLE_USER, .content = (char[]){"Hi"}}};
    pb_request req = request(msgs, 1);
    req.temperature = 1.7;
    cr_expect_not_null(pb_provider_anthropic.refuses(&req), "never clamped: refused");
    double in[] = {0.0, 0.3, 1.0};
    double want[] = {0.0, 0.3, 1.0};
    for (size_t i = 0; i < 3; i++) {
        req.temperature = in[i];
        req.top_p = 0.95;
        json_object *body = build_body(&req);
        cr_assert_not_null(field(body, "temperature"));
        cr_assert_float_eq(json_object_get_double(field(body, "temperature")), want[i], 1e-12);
        cr_assert_float_eq(json_object_get_double(field(body, "top_p")), 0.95, 1e-12);
        json_object_put(body);
    }
    req.temperature = INFINITY;
    req.top_p = NAN;
    json_object *body = build_body(&req);
    cr_assert_null(field(body, "temperature"));
    cr_assert_null(field(body, "top_p"));
    json_object_put(body);
}

Test(anthropic, parse_good)
{
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(th_fixture_parse(&pb_provider_anthropic, "good.json", &c, &err), PB_OK, "%s",
                 err.msg);
    cr_assert_str_eq(c.content, "Paris is the capital of France.");
    cr_assert_eq(c.prompt_tokens, 12);
    cr_assert_eq(c.completion_tokens, 30);
    pb_provider_completion_free(&c);
}

Test(anthropic, parse_text_blocks_joined_others_skipped)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_anthropic, "good_blocks.json", &c, NULL), PB_OK);
    cr_assert_str_eq(c.content, "First part. Second part.");
    cr_expect_str_eq(c.response_id, "msg_2", "the message id, not a block's");
    cr_assert_eq(c.prompt_tokens, 100);
    cr_assert_eq(c.completion_tokens, 50);
    pb_provider_completion_free(&c);
}

Test(anthropic, parse_usage_absent_or_odd)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_anthropic, "good_no_usage.json", &c, NULL), PB_OK);
    cr_assert_str_eq(c.content, "Hi");
    cr_assert_eq(c.prompt_tokens, -1);
    cr_assert_eq(c.completion_tokens, -1);
    pb_provider_completion_free(&c);

    cr_assert_eq(th_fixture_parse(&pb_provider_anthropic, "good_odd_usage.json", &c, NULL), PB_OK);
    cr_assert_eq(c.prompt_tokens, -1);
    cr_assert_eq(c.completion_tokens, -1);
    pb_provider_completion_free(&c);
}

/* Counts saturate at PB_PROVIDER_TOKENS_MAX: summing huge ones into prompt_tokens once
 * overflowed (found by fuzz_anthropic). */
Test(anthropic, parse_usage_beyond_bounds)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_anthropic, "good_huge_usage.json", &c, NULL), PB_OK);
    cr_assert_eq(c.prompt_tokens, 10 + 2 * PB_PROVIDER_TOKENS_MAX);
    cr_assert_eq(c.cached_tokens, PB_PROVIDER_TOKENS_MAX);
    cr_assert_eq(c.completion_tokens, PB_PROVIDER_TOKENS_MAX);
    pb_provider_completion_free(&c);
}

Test(anthropic, parse_bad_replies)
{
    th_expect_bad_reply(&pb_provider_anthropic, "error_200.json", "error object");
    th_expect_bad_reply(&pb_provider_anthropic, "empty_content.json", "no text");
    th_expect_bad_reply(&pb_provider_anthropic, "bad_tool_input.json", "not a JSON object");
    th_expect_bad_reply(&pb_provider_anthropic, "empty_text.json", "no text");
    th_expect_bad_reply(&pb_provider_anthropic, "null_text.json", "no text");
    th_expect_bad_reply(&pb_provider_anthropic, "missing_content.json", "no content");
    th_expect_bad_reply(&pb_provider_anthropic, "content_string.json", "no content");
    th_expect_bad_reply(&pb_provider_anthropic, "openai_shape.json", "no content");
    th_expect_bad_reply(&pb_provider_anthropic, "truncated.json", "incomplete");
    th_expect_bad_reply(&pb_provider_anthropic, "html.html", "not JSON");
}

Test(anthropic, parse_every_prefix_fails_without_crashing)
{
    th_fixture fx = th_fixture_load("anthropic", "good_blocks.json");
    for (size_t n = 0; n < fx.len; n++) {
        char *prefix = malloc(n ? n : 1);
        memcpy(prefix, fx.data, n);
        pb_completion c;
        int rc = pb_provider_anthropic.parse_response(prefix, n, NULL, &c, NULL);
        if (rc == PB_OK) {
            cr_assert(fx.data[n] == '\n' && n + 1 == fx.len, "prefix %zu parsed", n);
            pb_provider_completion_free(&c);
        }
        free(prefix);
    }
    free(fx.data);
}

Test(anthropic, classify_typed_errors)
{
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 529, "err_529_overloaded.json"),
                 PB_CLASS_RETRY);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 429, "err_429_rate_limit.json"),
                 PB_CLASS_RETRY);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 500, "err_500_api.json"),
                 PB_CLASS_RETRY);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 401, "err_401_auth.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 403, "err_403_permission.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 404, "err_404_not_found.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 413, "err_413_too_large.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 400, "err_400_billing.json"),
                 PB_CLASS_FALLBACK);
}

Test(anthropic, classify_invalid_request_errors)
{
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 400, "err_400_prompt_too_long.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 400, "err_400_context_limit.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 400, "err_400_credit.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 400, "err_400_invalid.json"),
                 PB_CLASS_INVALID);
    /* At 5xx the status wins: the server is at fault, not the job. */
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 500, "err_500_invalid_type.json"),
                 PB_CLASS_RETRY);
    /* The type wins over an odd status. */
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 400, "err_400_overloaded_type.json"),
                 PB_CLASS_RETRY);
}

Test(anthropic, classify_untyped_bodies_use_the_status_table)
{
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 400, "err_400_text_too_long.txt"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 400, "html.html"), PB_CLASS_INVALID);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 503, "html.html"), PB_CLASS_RETRY);
    cr_expect_eq(th_fixture_classify(&pb_provider_anthropic, 529, "truncated.json"),
                 PB_CLASS_RETRY);
    cr_expect_eq(pb_provider_anthropic.classify(529, NULL, 0), PB_CLASS_RETRY);
    cr_expect_eq(pb_provider_anthropic.classify(401, "", 0), PB_CLASS_FALLBACK);
    cr_expect_eq(pb_provider_anthropic.classify(400, NULL, 0), PB_CLASS_INVALID);
    const char *odd = "{\"type\":\"error\",\"error\":{\"type\":42}}";
    cr_expect_eq(pb_provider_anthropic.classify(429, odd, strlen(odd)), PB_CLASS_RETRY);
    const char *unknown =
        "{\"type\":\"error\",\"error\":{\"type\":\"new_error\",\"message\":\"x\"}}";
    cr_expect_eq(pb_provider_anthropic.classify(400, unknown, strlen(unknown)), PB_CLASS_INVALID);
    cr_expect_eq(pb_provider_anthropic.classify(422, unknown, strlen(unknown)), PB_CLASS_FALLBACK);
}

Test(anthropic, parse_tool_use_and_finish_reasons)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_anthropic, "tool_use.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.content, "Checking.");
    cr_expect_str_eq(c.finish_reason, "tool_calls");
    json_object *calls = json_tokener_parse(c.tool_calls), *fn, *v;
    cr_assert_eq(json_object_array_length(calls), 1, "%s", c.tool_calls);
    json_object *c0 = json_object_array_get_idx(calls, 0);
    json_object_object_get_ex(c0, "id", &v);
    cr_expect_str_eq(json_object_get_string(v), "toolu_01A", "the same id");
    json_object_object_get_ex(c0, "function", &fn);
    json_object_object_get_ex(fn, "arguments", &v);
    cr_expect_str_eq(json_object_get_string(v), "{\"city\":\"Paris\"}", "input as JSON text");
    json_object_put(calls);
    cr_expect_eq(c.prompt_tokens, 15, "input + cache reads, as OpenAI counts");
    cr_expect_eq(c.cached_tokens, 5);
    pb_provider_completion_free(&c);

    cr_assert_eq(th_fixture_parse(&pb_provider_anthropic, "tool_only.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.content, "");
    cr_expect_not_null(c.tool_calls);
    pb_provider_completion_free(&c);

    cr_assert_eq(th_fixture_parse(&pb_provider_anthropic, "max_tokens.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.finish_reason, "length");
    pb_provider_completion_free(&c);
}

/* Feeds Messages stream events ({type, data} pairs, NULL-terminated) to stream_event and
 * completes the answer; each event's data gets a buffer of exactly its size. */
static int
stream_answer(const char *const (*events)[2], pb_completion *c, pb_error *err)
{
    pb_delta *d = pb_delta_new(NULL, 1u << 20);
    int rc = PB_OK;
    for (const char *const(*e)[2] = events; (*e)[0] && rc == PB_OK; e++) {
        size_t n = strlen((*e)[1]);
        char *data = malloc(n ? n : 1);
        memcpy(data, (*e)[1], n);
        rc = pb_provider_anthropic.stream_event(d, (*e)[0], data, n, err);
        free(data);
    }
    if (rc == PB_OK)
        rc = pb_delta_complete(d, c, err);
    pb_delta_free(d);
    return rc;
}

Test(anthropic_stream, prompt_tokens_count_cache_reads_and_writes_as_unstreamed)
{
    static const char *const events[][2] = {
        {"message_start",
         "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
         "\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":10,"
         "\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":5,"
         "\"output_tokens\":1}}}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi.\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                          "\"end_turn\"},\"usage\":{\"output_tokens\":2}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
        {NULL, NULL}};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.content, "Hi.");
    cr_expect_eq(c.prompt_tokens, 18, "input + cache reads + cache writes, as unstreamed");
    cr_expect_eq(c.cached_tokens, 5);
    cr_expect_eq(c.completion_tokens, 2);
    pb_provider_completion_free(&c);
}

Test(anthropic_stream, a_final_usage_in_message_delta_replaces_the_first)
{
    /* The API may repeat the whole usage, cumulative, in message_delta. */
    static const char *const events[][2] = {
        {"message_start", "{\"type\":\"message_start\",\"message\":{\"usage\":"
                          "{\"input_tokens\":10,\"output_tokens\":1}}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
                                "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi.\"}}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
                          "\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":4,"
                          "\"cache_read_input_tokens\":6,\"output_tokens\":7}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
        {NULL, NULL}};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_eq(c.prompt_tokens, 22);
    cr_expect_eq(c.cached_tokens, 6);
    cr_expect_eq(c.completion_tokens, 7);
    pb_provider_completion_free(&c);
}

Test(anthropic_stream, a_refusal_without_text_is_a_content_filter_answer_as_unstreamed)
{
    static const char *const events[][2] = {
        {"message_start", "{\"type\":\"message_start\",\"message\":{\"usage\":"
                          "{\"input_tokens\":10,\"output_tokens\":1}}}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                          "\"refusal\"},\"usage\":{\"output_tokens\":0}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
        {NULL, NULL}};
    pb_completion c;
    pb_error err = {0};
    cr_assert_eq(stream_answer(events, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.content, "");
    cr_expect_str_eq(c.finish_reason, "content_filter");
    pb_provider_completion_free(&c);
    static const char body[] = "{\"type\":\"message\",\"content\":[],\"stop_reason\":"
                               "\"refusal\",\"usage\":{\"input_tokens\":10,\"output_tokens\":0}}";
    cr_assert_eq(pb_provider_anthropic.parse_response(body, sizeof(body) - 1, NULL, &c, NULL),
                 PB_OK);
    cr_expect_str_eq(c.finish_reason, "content_filter");
    pb_provider_completion_free(&c);
}
