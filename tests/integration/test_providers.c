/* test_providers.c -- chains mixing the OpenAI and Anthropic dialects, and every planb-mock
 * fault in the Anthropic dialect, against the real binary.
 *
 * World: cache_world.h (route "oa" = [top (openai), claude (anthropic)], route
 * "an" = the reverse, one retry each). planb-mock validates what planb sends
 * (Anthropic: x-api-key, anthropic-version, max_tokens, system field, roles)
 * and keeps each model's last request, which the tests read back. Jobs skip
 * the cache so each one reaches upstream. */
#include "cache_world.h"

static void
setup(void)
{
    world_start(1, NULL, NULL);
}

TestSuite(providers, .init = setup, .fini = world_stop, .timeout = 120);

/* GET /_mock/<what> as JSON (asserts). Caller puts. */
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

/* Requests of model the mock refused as malformed. */
static long
mock_invalid(const char *model)
{
    json_object *s = mock_get("stats"), *models, *m;
    long n = -1;
    if (json_object_object_get_ex(s, "models", &models) &&
        json_object_object_get_ex(models, model, &m))
        n = field_int(m, "invalid");
    json_object_put(s);
    return n;
}

#define CONVERSATION                                                                               \
    "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"                               \
    "{\"role\":\"user\",\"content\":\"hello\"},{\"role\":\"assistant\",\"content\":\"hi\"},"       \
    "{\"role\":\"user\",\"content\":\"%s\"}]"

/* Runs a job with the CONVERSATION above (last user turn: text) on route. Caller puts. */
static json_object *
run_conversation(const char *id, const char *route, const char *text, const char *extra)
{
    char job[2048];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"route\":\"%s\",\"cache\":\"skip\"," CONVERSATION
             "%s%s}",
             id, route, text, extra ? "," : "", extra ? extra : "");
    redisReply *r = redisCommand(rc, "LPUSH planb:q:default %s", job);
    freeReplyObject(r);
    json_object *res = th_wait_result(rc, id, 20);
    cr_assert_not_null(res, "no result for %s", id);
    return res;
}

Test(providers, openai_down_falls_back_to_anthropic_with_a_valid_messages_body)
{
    th_mock_set(&mock_p, "top", "{\"mode\":\"status\",\"status\":503}");
    json_object *r = run_conversation("o1", "oa", "again", NULL);
    cr_expect_str_eq(field(r, "status"), "ok");
    cr_expect_str_eq(field(r, "source"), "fallback");
    cr_expect_str_eq(field(r, "model"), "claude");
    cr_expect_str_eq(field(r, "provider"), "ant");
    cr_expect_str_eq(field(r, "content"), "echo: again");
    cr_expect_eq(n_attempts(r), 3);
    cr_expect_str_eq(attempt_field(r, 1, "outcome"), "http_503");
    json_object *usage;
    cr_expect(json_object_object_get_ex(r, "usage", &usage) &&
              field_int(usage, "prompt_tokens") > 0 && field_int(usage, "completion_tokens") > 0);
    json_object_put(r);

    json_object *last = mock_get("last/claude"), *h, *body, *msgs;
    cr_expect_str_eq(field(last, "path"), "/v1/messages");
    cr_assert(json_object_object_get_ex(last, "headers", &h));
    cr_expect_str_eq(field(h, "x-api-key"), "sk-test-not-a-real-key");
    cr_expect_str_eq(field(h, "anthropic-version"), "2023-06-01");
    cr_expect_str_eq(field(h, "authorization"), "", "no OpenAI header on Anthropic");
    cr_assert(json_object_object_get_ex(last, "body", &body));
    cr_expect_str_eq(field(body, "system"), "Be brief.");
    cr_expect_eq(field_int(body, "max_tokens"), 1024, "the model's default");
    cr_assert(json_object_object_get_ex(body, "messages", &msgs));
    cr_assert_eq(json_object_array_length(msgs), 3);
    const char *roles[] = {"user", "assistant", "user"};
    for (size_t i = 0; i < 3; i++)
        cr_expect_str_eq(field(json_object_array_get_idx(msgs, i), "role"), roles[i]);
    json_object_put(last);
    cr_expect_eq(mock_invalid("claude"), 0);

    /* The job's own max_tokens goes through. */
    r = run_conversation("o2", "oa", "more", "\"params\":{\"max_tokens\":77}");
    cr_expect_str_eq(field(r, "model"), "claude");
    json_object_put(r);
    last = mock_get("last/claude");
    json_object_object_get_ex(last, "body", &body);
    cr_expect_eq(field_int(body, "max_tokens"), 77);
    json_object_put(last);
}

Test(providers, anthropic_down_falls_back_to_openai)
{
    th_mock_set(&mock_p, "claude", "{\"mode\":\"status\",\"status\":529}");
    json_object *r = run_conversation("a1", "an", "again", NULL);
    cr_expect_str_eq(field(r, "source"), "fallback");
    cr_expect_str_eq(field(r, "model"), "top");
    cr_expect_str_eq(field(r, "provider"), "oai");
    cr_expect_str_eq(field(r, "content"), "echo: again");
    cr_expect_eq(n_attempts(r), 3, "529 overloaded is retried once");
    cr_expect_str_eq(attempt_field(r, 0, "outcome"), "http_529");
    json_object_put(r);
    json_object *last = mock_get("last/top"), *h, *body, *msgs;
    cr_expect_str_eq(field(last, "path"), "/v1/chat/completions");
    json_object_object_get_ex(last, "headers", &h);
    cr_expect_str_eq(field(h, "authorization"), "Bearer sk-test-not-a-real-key");
    json_object_object_get_ex(last, "body", &body);
    cr_assert(json_object_object_get_ex(body, "messages", &msgs));
    cr_expect_eq(json_object_array_length(msgs), 4, "system stays a message for OpenAI");
    json_object_put(last);
    cr_expect_eq(mock_invalid("top"), 0);
    cr_expect_eq(stat("provider_attempts:ant"), 2);
    cr_expect_eq(stat("provider_errors:ant"), 2);
    cr_expect_eq(stat("provider_attempts:oai"), 1);

    /* Both healthy: the Anthropic primary answers. */
    th_mock_set(&mock_p, "claude", "{\"mode\":\"ok\"}");
    r = run_conversation("a2", "an", "third", NULL);
    cr_expect_str_eq(field(r, "source"), "primary");
    cr_expect_str_eq(field(r, "model"), "claude");
    json_object_put(r);
}

/* One planb-mock behaviour of the Anthropic model and what planb must make of it. */
typedef struct fault {
    const char *behaviour;
    size_t claude_tries; /* 2: retried once; 1: fell back at once */
} fault;

Test(providers, every_anthropic_fault_retries_or_falls_back)
{
    static const fault faults[] = {
        {"{\"mode\":\"status\",\"status\":529}", 2},
        {"{\"mode\":\"status\",\"status\":429}", 2},
        {"{\"mode\":\"status\",\"status\":500}", 2},
        {"{\"mode\":\"status\",\"status\":401}", 1},
        {"{\"mode\":\"status\",\"status\":403}", 1},
        {"{\"mode\":\"status\",\"status\":404}", 1},
        {"{\"mode\":\"status\",\"status\":413}", 1},
        {"{\"mode\":\"status\",\"status\":400,\"error_type\":\"invalid_request_error\","
         "\"error_message\":\"prompt is too long: 250000 tokens > 200000 maximum\"}",
         1},
        {"{\"mode\":\"status\",\"status\":400,\"error_type\":\"overloaded_error\"}", 2},
        {"{\"mode\":\"reset\"}", 2},
        {"{\"mode\":\"truncated\"}", 2},
        {"{\"mode\":\"html\"}", 2},
        {"{\"mode\":\"missing\"}", 2},
        {"{\"mode\":\"empty\"}", 2},
        {"{\"mode\":\"oversized\"}", 2},
        {"{\"mode\":\"hang\"}", 2},
        {"{\"mode\":\"drip\",\"drip_bytes\":1,\"drip_interval_ms\":200}", 2},
    };
    for (size_t i = 0; i < sizeof(faults) / sizeof(*faults); i++) {
        th_mock_set(&mock_p, "claude", faults[i].behaviour);
        char id[32], text[32];
        snprintf(id, sizeof(id), "fault-%zu", i);
        snprintf(text, sizeof(text), "q%zu", i);
        json_object *r = run_conversation(id, "an", text, NULL);
        cr_expect_str_eq(field(r, "status"), "ok", "%s", faults[i].behaviour);
        cr_expect_str_eq(field(r, "model"), "top", "%s", faults[i].behaviour);
        cr_expect_eq(n_attempts(r), faults[i].claude_tries + 1, "%s: %zu attempts",
                     faults[i].behaviour, n_attempts(r));
        cr_expect_str_neq(attempt_field(r, 0, "outcome"), "ok", "%s", faults[i].behaviour);
        json_object_put(r);
    }
    /* A trickled but complete reply is an answer; one model's 400 falls back, and only when
     * every model refuses is the job "invalid", with the last upstream's message. */
    th_mock_set(&mock_p, "claude", "{\"mode\":\"drip\",\"drip_bytes\":256,\"drip_interval_ms\":5}");
    json_object *r = run_conversation("drip-ok", "an", "slowly", NULL);
    cr_expect_str_eq(field(r, "source"), "primary");
    cr_expect_str_eq(field(r, "content"), "echo: slowly");
    json_object_put(r);
    th_mock_set(&mock_p, "claude",
                "{\"mode\":\"status\",\"status\":400,\"error_type\":\"invalid_request_error\","
                "\"error_message\":\"messages: roles must alternate\"}");
    r = run_conversation("bad", "an", "x", NULL);
    cr_expect_str_eq(field(r, "status"), "ok");
    cr_expect_str_eq(field(r, "model"), "top");
    cr_expect_str_eq(attempt_field(r, 0, "outcome"), "http_400");
    json_object_put(r);
    th_mock_set(&mock_p, "top",
                "{\"mode\":\"status\",\"status\":400,\"error_message\":\"Unsupported value: "
                "'x' for sk-abcdef0123456789\"}");
    r = run_conversation("bad2", "an", "x", NULL);
    cr_expect_str_eq(field(r, "status"), "invalid");
    cr_expect(strstr(field(r, "error"), "UPSTREAM_REJECTED") == field(r, "error") &&
                  strstr(field(r, "error"), "Unsupported value") != NULL &&
                  strstr(field(r, "error"), "sk-abc") == NULL,
              "%s", field(r, "error"));
    cr_expect_eq(n_attempts(r), 2);
    json_object_put(r);
    cr_expect_eq(mock_invalid("claude"), 0, "planb never sent a malformed request");
}
