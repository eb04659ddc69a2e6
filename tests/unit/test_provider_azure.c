/* test_provider_azure.c -- the Azure OpenAI dialect, without a network: where a request goes
 * (the v1 API and the deployment API), how it is authenticated, the query a provider adds,
 * and what Azure's replies mean (its content-filter 400 is an answer, not a retry).
 *
 * Replies come from tests/fixtures/replies/azure, loaded into buffers of exactly their size. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "planb/chain.h"
#include "planb/delta.h"
#include "planb/provider.h"

static pb_provider_conf
provider(char *base_url, char *api_version)
{
    return (pb_provider_conf){.name = (char[]){"az"},
                              .type = PB_PROVIDER_AZURE,
                              .base_url = base_url,
                              .api_version = api_version};
}

static const pb_model_conf model = {.name = (char[]){"gpt4o"},
                                    .upstream = (char[]){"gpt-4o-prod"},
                                    .tier = 1,
                                    .max_tokens_default = 1024};

static pb_message chat[] = {
    {.role = PB_ROLE_SYSTEM, .content = (char[]){"Be brief."}},
    {.role = PB_ROLE_USER, .content = (char[]){"Capital of Spain?"}},
};

static pb_request
request(bool stream)
{
    return (pb_request){.id = (char[]){"job-1"},
                        .messages = chat,
                        .n_messages = 2,
                        .max_tokens = 50,
                        .temperature = NAN,
                        .top_p = NAN,
                        .stream = stream};
}

/* Value of header name in r, or NULL. */
static const char *
header(const pb_http_request *r, const char *name)
{
    size_t n = strlen(name);
    for (char **h = r->headers; h && *h; h++)
        if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':' && (*h)[n + 1] == ' ')
            return *h + n + 2;
    return NULL;
}

/* Builds the request for p on model m; the body parsed back (caller puts). */
static json_object *
build(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
      pb_http_request *out)
{
    pb_error err = {0};
    cr_assert_eq(pb_provider_azure.build_request(p, m, req, out, &err), PB_OK, "%s", err.msg);
    json_object *body = json_tokener_parse(out->body);
    cr_assert(json_object_is_type(body, json_type_object), "body: %s", out->body);
    return body;
}

Test(azure, provider_for_returns_the_table)
{
    cr_assert_eq(pb_provider_for(PB_PROVIDER_AZURE), &pb_provider_azure);
    cr_assert_str_eq(pb_provider_azure.type_name, "azure");
}

Test(azure, v1_api_url_model_and_api_key)
{
    pb_provider_conf p = provider((char[]){"https://acme.openai.azure.com/openai/v1"}, NULL);
    p.api_key = (char[]){"az-key-1"};
    pb_request req = request(false);
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object *body = build(&p, &model, &req, r);
    cr_expect_str_eq(r->url, "https://acme.openai.azure.com/openai/v1/chat/completions");
    cr_expect_str_eq(header(r, "api-key"), "az-key-1");
    cr_expect_null(header(r, "Authorization"), "the key goes in api-key only");
    cr_expect_str_eq(header(r, "Content-Type"), "application/json");
    json_object *v;
    cr_assert(json_object_object_get_ex(body, "model", &v));
    cr_expect_str_eq(json_object_get_string(v), "gpt-4o-prod", "the deployment name as model");
    cr_assert(json_object_object_get_ex(body, "max_tokens", &v));
    cr_expect_eq(json_object_get_int(v), 50);
    cr_expect(!json_object_object_get_ex(body, "stream", NULL));
    json_object_put(body);
    pb_http_request_free(r);
}

Test(azure, deployment_api_url_with_api_version_and_bearer_token)
{
    pb_provider_conf p =
        provider((char[]){"https://acme.openai.azure.com"}, (char[]){"2024-10-21"});
    p.bearer_token = (char[]){"eyJ0eXAi.token"};
    pb_request req = request(true);
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object *body = build(&p, &model, &req, r);
    cr_expect_str_eq(r->url, "https://acme.openai.azure.com/openai/deployments/gpt-4o-prod/"
                             "chat/completions?api-version=2024-10-21");
    cr_expect_str_eq(header(r, "Authorization"), "Bearer eyJ0eXAi.token");
    cr_expect_null(header(r, "api-key"));
    /* A stream is OpenAI's: stream and include_usage. */
    json_object *v, *u;
    cr_assert(json_object_object_get_ex(body, "stream", &v) && json_object_get_boolean(v));
    cr_assert(json_object_object_get_ex(body, "stream_options", &v) &&
              json_object_object_get_ex(v, "include_usage", &u) && json_object_get_boolean(u));
    json_object_put(body);
    pb_http_request_free(r);
}

Test(azure, deployment_name_is_one_encoded_path_segment)
{
    pb_provider_conf p = provider((char[]){"http://127.0.0.1:9"}, (char[]){"2024-10-21"});
    pb_model_conf m = model;
    m.upstream = (char[]){"a/b?c d"};
    pb_request req = request(false);
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object_put(build(&p, &m, &req, r));
    cr_expect_str_eq(r->url, "http://127.0.0.1:9/openai/deployments/a%2Fb%3Fc%20d/"
                             "chat/completions?api-version=2024-10-21");
    pb_http_request_free(r);
    m.upstream = NULL; /* the model's name when it has no "model" */
    r = pb_xcalloc(1, sizeof(*r));
    json_object_put(build(&p, &m, &req, r));
    cr_expect_str_eq(r->url,
                     "http://127.0.0.1:9/openai/deployments/gpt4o/chat/completions?api-version="
                     "2024-10-21");
    pb_http_request_free(r);
}

Test(azure, query_follows_api_version_and_headers_follow_the_adapters)
{
    char *headers[] = {(char[]){"X-Org: acme"}, NULL};
    pb_provider_conf p = provider((char[]){"https://gw.example"}, (char[]){"2024-10-21"});
    p.api_key = (char[]){"k"};
    p.query = (char[]){"team=search&route=eu%20west"};
    p.headers = headers;
    p.n_headers = 1;
    pb_request req = request(false);
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object_put(build(&p, &model, &req, r));
    cr_expect_str_eq(r->url, "https://gw.example/openai/deployments/gpt-4o-prod/chat/"
                             "completions?api-version=2024-10-21&team=search&route=eu%20west");
    cr_expect_str_eq(header(r, "X-Org"), "acme");
    cr_expect_str_eq(r->headers[2], "X-Org: acme", "extra headers after the adapter's own");
    pb_http_request_free(r);
    /* The v1 API has no query of its own: the provider's starts it. */
    pb_provider_conf v1 = provider((char[]){"https://gw.example/openai/v1"}, NULL);
    v1.query = p.query;
    r = pb_xcalloc(1, sizeof(*r));
    json_object_put(build(&v1, &model, &req, r));
    cr_expect_str_eq(r->url, "https://gw.example/openai/v1/chat/completions?team=search&route=eu"
                             "%20west");
    pb_http_request_free(r);
    /* And the OpenAI dialect takes it the same way. */
    pb_provider_conf o = {.type = PB_PROVIDER_OPENAI,
                          .base_url = (char[]){"http://127.0.0.1:8000/v1"},
                          .query = (char[]){"a=1"}};
    pb_error err = {0};
    r = pb_xcalloc(1, sizeof(*r));
    cr_assert_eq(pb_provider_openai.build_request(&o, &model, &req, r, &err), PB_OK);
    cr_expect_str_eq(r->url, "http://127.0.0.1:8000/v1/chat/completions?a=1");
    pb_http_request_free(r);
}

Test(azure, no_key_no_auth_header_and_a_key_with_a_line_break_is_refused_unquoted)
{
    pb_provider_conf p = provider((char[]){"https://acme.openai.azure.com/openai/v1"}, NULL);
    pb_request req = request(false);
    pb_http_request *r = pb_xcalloc(1, sizeof(*r));
    json_object_put(build(&p, &model, &req, r));
    cr_expect_null(header(r, "api-key"));
    cr_expect_null(header(r, "Authorization"));
    pb_http_request_free(r);
    p.api_key = (char[]){"secret-az\r\nX-Evil: 1"};
    pb_error err = {0};
    r = pb_xcalloc(1, sizeof(*r));
    cr_expect_eq(pb_provider_azure.build_request(&p, &model, &req, r, &err), PB_ERR);
    cr_expect_eq(err.code, PB_PROVIDER_BAD_CONF);
    cr_expect_null(strstr(err.msg, "secret-az"), "%s", err.msg);
    pb_http_request_free(r);
}

Test(azure, replies_parse_as_openai)
{
    pb_completion c;
    cr_assert_eq(th_fixture_parse(&pb_provider_azure, "good.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.content, "Madrid.");
    cr_expect_str_eq(c.finish_reason, "stop");
    cr_expect_eq(c.prompt_tokens, 21);
    cr_expect_eq(c.completion_tokens, 3);
    pb_provider_completion_free(&c);
    /* Output stopped by the filter: an answer without text. */
    cr_assert_eq(th_fixture_parse(&pb_provider_azure, "good_filtered.json", &c, NULL), PB_OK);
    cr_expect_str_eq(c.content, "");
    cr_expect_str_eq(c.finish_reason, "content_filter");
    cr_expect_eq(c.completion_tokens, 12);
    pb_provider_completion_free(&c);
    /* An error body is no answer unless it is the content filter's. */
    th_expect_bad_reply(&pb_provider_azure, "err_400_plain.json", "error object");
    th_expect_bad_reply(&pb_provider_azure, "err_429.json", NULL);
}

Test(azure, status_table_with_the_content_filter_as_an_answer)
{
    cr_expect_eq(th_fixture_classify(&pb_provider_azure, 400, "err_400_content_filter.json"),
                 PB_CLASS_OK);
    cr_expect_eq(
        th_fixture_classify(&pb_provider_azure, 400, "err_400_content_filter_inner_error.json"),
        PB_CLASS_OK);
    cr_expect_eq(th_fixture_classify(&pb_provider_azure, 400, "err_400_plain.json"),
                 PB_CLASS_INVALID);
    cr_expect_eq(th_fixture_classify(&pb_provider_azure, 400, "err_400_context_length.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_azure, 404, "err_404_deployment.json"),
                 PB_CLASS_FALLBACK);
    cr_expect_eq(th_fixture_classify(&pb_provider_azure, 429, "err_429.json"), PB_CLASS_RETRY);
    cr_expect_eq(pb_provider_azure.classify(503, "", 0), PB_CLASS_RETRY);
    /* Only a 400 is a refusal: the same body on a 500 is the server's trouble. */
    cr_expect_eq(th_fixture_classify(&pb_provider_azure, 500, "err_400_content_filter.json"),
                 PB_CLASS_RETRY);
    /* For type openai the same body still falls back to the next model. */
    cr_expect_eq(th_fixture_classify(&pb_provider_openai, 400, "err_400_content_filter.json"),
                 PB_CLASS_FALLBACK);
    /* Text that only mentions the filter, not in error.code, is no refusal. */
    static const char mention[] = "{\"error\":{\"message\":\"see content_filter docs\","
                                  "\"code\":\"invalid_value\"}}";
    cr_expect_eq(pb_provider_azure.classify(400, mention, sizeof(mention) - 1), PB_CLASS_FALLBACK);
}

Test(azure, the_chain_takes_a_content_filter_400_as_the_answer)
{
    th_fixture f = th_fixture_load("azure", "err_400_content_filter.json");
    pb_http_reply reply = {.status = 400, .body = f.data, .body_len = f.len};
    pb_request req = request(false);
    pb_completion c = {0};
    char outcome[32];
    cr_expect_eq(
        pb_chain_classify_reply(&pb_provider_azure, &reply, &req, &c, outcome, sizeof(outcome)),
        PB_CLASS_OK);
    cr_expect_str_eq(outcome, "ok");
    cr_assert_not_null(c.content);
    cr_expect_str_eq(c.content, "");
    cr_expect_str_eq(c.finish_reason, "content_filter");
    cr_expect_null(c.tool_calls);
    cr_expect_eq(c.prompt_tokens, -1);
    pb_provider_completion_free(&c);
    /* The OpenAI dialect falls back on it, as before. */
    cr_expect_eq(
        pb_chain_classify_reply(&pb_provider_openai, &reply, &req, &c, outcome, sizeof(outcome)),
        PB_CLASS_FALLBACK);
    cr_expect_str_eq(outcome, "http_400");
    pb_provider_completion_free(&c);
    free(f.data);
}

Test(azure, a_stream_with_prompt_filter_results_is_openais)
{
    static const char *const events[] = {
        "{\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\","
        "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}]}",
        "{\"choices\":[{\"content_filter_results\":{},\"delta\":{\"content\":\"Mad\","
        "\"role\":\"assistant\"},\"finish_reason\":null,\"index\":0}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"rid.\"},\"finish_reason\":null,\"index\":0}]}",
        "{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\",\"index\":0}]}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":3}}",
        "[DONE]",
        NULL};
    pb_delta *d = pb_delta_new(NULL, 1u << 20);
    pb_error err = {0};
    for (const char *const *e = events; *e; e++)
        cr_assert_eq(pb_provider_azure.stream_event(d, "message", *e, strlen(*e), &err), PB_OK,
                     "%s", err.msg);
    pb_completion c;
    cr_assert_eq(pb_delta_complete(d, &c, &err), PB_OK, "%s", err.msg);
    cr_expect_str_eq(c.content, "Madrid.");
    cr_expect_eq(c.prompt_tokens, 21);
    pb_provider_completion_free(&c);
    pb_delta_free(d);
}
