/* test_chain.c -- the chain's pure decisions: which models a critical job may use, each
 * attempt's timeouts, and what a finished HTTP call means (class and attempt outcome).
 *
 * Replies are hand-made pb_http_reply values; 2xx and error bodies are the provider
 * fixtures in tests/fixtures/replies/, run through the real adapters. No network. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "planb/chain.h"
#include "th_config.h"

/* Tiers 1..3, a route per kind of floor. */
static const char *const tier_cfg =
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\"}},"
    " \"models\": {\"t1\": {\"provider\": \"p\", \"tier\": 1},"
    " \"t2\": {\"provider\": \"p\", \"tier\": 2}, \"t3\": {\"provider\": \"p\", \"tier\": 3}},"
    " \"routes\": {\"floor2\": {\"chain\": [\"t1\", \"t2\", \"t3\"], \"critical_min_tier\": 2},"
    " \"floor1\": {\"chain\": [\"t1\", \"t2\"], \"critical_min_tier\": 1},"
    " \"nofloor\": {\"chain\": [\"t3\", \"t1\"]}}}";

/* Whether model on route may answer a job critical or not. */
static bool
allowed(const pb_config *cfg, const char *route, bool critical, const char *model)
{
    pb_request req = {.route = th_config_route(cfg, route), .critical = critical};
    return pb_chain_model_allowed(cfg, &req, th_config_model(cfg, model));
}

Test(model_allowed, a_critical_job_keeps_to_its_floor)
{
    pb_config *cfg = th_config_parse(tier_cfg);
    cr_expect(allowed(cfg, "floor2", true, "t1"));
    cr_expect(allowed(cfg, "floor2", true, "t2"), "the floor itself is allowed");
    cr_expect_not(allowed(cfg, "floor2", true, "t3"));
    cr_expect(allowed(cfg, "floor1", true, "t1"));
    cr_expect_not(allowed(cfg, "floor1", true, "t2"));
    cr_expect_not(allowed(cfg, "floor1", true, "t3"));
    pb_config_free(cfg);
}

Test(model_allowed, a_non_critical_job_takes_any_tier)
{
    pb_config *cfg = th_config_parse(tier_cfg);
    static const char *const routes[] = {"floor2", "floor1", "nofloor"};
    static const char *const models[] = {"t1", "t2", "t3"};
    for (size_t r = 0; r < 3; r++)
        for (size_t m = 0; m < 3; m++)
            cr_expect(allowed(cfg, routes[r], false, models[m]), "%s %s", routes[r], models[m]);
    pb_config_free(cfg);
}

Test(model_allowed, a_route_without_floor_lets_critical_jobs_use_any_tier)
{
    pb_config *cfg = th_config_parse(tier_cfg);
    cr_assert_eq(cfg->routes[th_config_route(cfg, "nofloor")].critical_min_tier, 0);
    cr_expect(allowed(cfg, "nofloor", true, "t1"));
    cr_expect(allowed(cfg, "nofloor", true, "t2"));
    cr_expect(allowed(cfg, "nofloor", true, "t3"));
    pb_config_free(cfg);
}

/* The timeouts of an attempt on a model with timeout_ms/connect_ms, remaining_ms left. */
static void
expect_timeouts(int timeout_ms, int connect_ms, int64_t remaining_ms, int want_connect,
                int want_timeout)
{
    pb_model_conf m = {.timeout_ms = timeout_ms, .connect_timeout_ms = connect_ms};
    int connect = -1, timeout = -1;
    pb_chain_attempt_timeouts(&m, remaining_ms, &connect, &timeout);
    cr_expect_eq(timeout, want_timeout, "model %d/%d, %lld left: timeout %d", timeout_ms,
                 connect_ms, (long long)remaining_ms, timeout);
    cr_expect_eq(connect, want_connect, "model %d/%d, %lld left: connect %d", timeout_ms,
                 connect_ms, (long long)remaining_ms, connect);
    cr_expect_leq(connect, timeout);
}

Test(attempt_timeouts, the_model_s_own_when_time_is_plenty)
{
    expect_timeouts(2000, 500, 10000, 500, 2000);
    expect_timeouts(2000, 500, 2000, 500, 2000);
    expect_timeouts(10000, 2000, INT64_C(1) << 40, 2000, 10000);
}

Test(attempt_timeouts, capped_by_what_is_left_of_the_job)
{
    expect_timeouts(2000, 500, 1999, 500, 1999);
    expect_timeouts(2000, 500, 800, 500, 800);
    expect_timeouts(2000, 500, 300, 300, 300);
    expect_timeouts(2000, 500, 1, 1, 1);
}

Test(attempt_timeouts, connect_never_exceeds_total)
{
    /* Config refuses connect > timeout, but the cap must hold whatever the model says. */
    expect_timeouts(1000, 5000, 10000, 1000, 1000);
    expect_timeouts(1000, 1000, 10000, 1000, 1000);
}

Test(attempt_timeouts, from_config_defaults)
{
    pb_config *cfg = th_config_parse(tier_cfg);
    const pb_model_conf *m = &cfg->models[th_config_model(cfg, "t1")];
    int connect, timeout;
    pb_chain_attempt_timeouts(m, 60000, &connect, &timeout);
    cr_expect_eq(timeout, m->timeout_ms);
    cr_expect_eq(connect, m->connect_timeout_ms);
    pb_chain_attempt_timeouts(m, 100, &connect, &timeout);
    cr_expect_eq(timeout, 100);
    cr_expect_eq(connect, 100);
    pb_config_free(cfg);
}

/* ---------------------------------------------------------------- classify_reply */

/* A reply as pb_http delivers it, with a NUL-terminated copy of a fixture as its body. */
typedef struct fixture_reply {
    pb_http_reply r; /* what the chain is handed */
    char *body;      /* owned copy behind r.body */
} fixture_reply;

static fixture_reply
fixture_reply_new(const pb_provider_ops *ops, long status, const char *name)
{
    th_fixture f = th_fixture_load(ops->type_name, name);
    fixture_reply fr = {.body = malloc(f.len + 1)};
    memcpy(fr.body, f.data, f.len);
    fr.body[f.len] = '\0';
    free(f.data);
    fr.r = (pb_http_reply){.status = status, .body = fr.body, .body_len = f.len, .elapsed_ms = 7};
    return fr;
}

/* Classifies r with ops; expects class cls and outcome, and an answer exactly when OK (content
 * is then expected, unless NULL). */
static void
expect_class(const pb_provider_ops *ops, const pb_http_reply *r, pb_class cls, const char *outcome,
             const char *content)
{
    pb_completion comp = {0};
    char got[32];
    memset(got, 'x', sizeof(got));
    pb_class c = pb_chain_classify_reply(ops, r, NULL, &comp, got, sizeof(got));
    cr_expect_eq(c, cls, "%s status %ld curl %d: class %d, want %d", ops->type_name, r->status,
                 r->curl_code, c, cls);
    cr_expect_str_eq(got, outcome, "%s status %ld curl %d", ops->type_name, r->status,
                     r->curl_code);
    if (cls == PB_CLASS_OK) {
        cr_expect_not_null(comp.content);
        if (content != NULL && comp.content != NULL)
            cr_expect_str_eq(comp.content, content);
    } else {
        cr_expect_null(comp.content, "no answer from a failed call");
    }
    pb_provider_completion_free(&comp);
}

/* A transfer that ended without a usable HTTP reply. */
static void
expect_transport(bool timed_out, int curl_code, const char *outcome)
{
    pb_http_reply r = {.curl_code = curl_code, .timed_out = timed_out, .body = "", .elapsed_ms = 1};
    expect_class(&pb_provider_openai, &r, PB_CLASS_RETRY, outcome, NULL);
    expect_class(&pb_provider_anthropic, &r, PB_CLASS_RETRY, outcome, NULL);
}

Test(classify_reply, transport_failures_retry_with_their_name)
{
    expect_transport(true, CURLE_OPERATION_TIMEDOUT, "timeout");
    expect_transport(true, CURLE_COULDNT_CONNECT, "timeout"); /* timed out while connecting */
    expect_transport(false, CURLE_COULDNT_CONNECT, "connect_error");
    expect_transport(false, CURLE_COULDNT_RESOLVE_HOST, "connect_error");
    expect_transport(false, CURLE_GOT_NOTHING, "no_response");
    expect_transport(false, CURLE_RECV_ERROR, "transport_error");
    expect_transport(false, CURLE_SEND_ERROR, "transport_error");
    expect_transport(false, CURLE_PARTIAL_FILE, "transport_error");
    expect_transport(false, CURLE_SSL_CONNECT_ERROR, "tls_error");
    expect_transport(false, CURLE_PEER_FAILED_VERIFICATION, "tls_error");
    expect_transport(false, CURLE_SSL_CERTPROBLEM, "tls_error");
}

/* A failed read or write: tls_error when curl's words are OpenSSL's alert, else transport. */
static void
expect_read_error(int curl_code, const char *error, const char *outcome)
{
    pb_http_reply r = {.curl_code = curl_code, .error = error, .body = "", .elapsed_ms = 1};
    expect_class(&pb_provider_openai, &r, PB_CLASS_RETRY, outcome, NULL);
}

Test(classify_reply, a_tls_alert_on_a_read_or_write_is_a_tls_error)
{
    /* curl 7.88's words when a TLS 1.3 gateway refuses a missing client certificate */
    expect_read_error(CURLE_RECV_ERROR,
                      "OpenSSL SSL_read: OpenSSL/3.0.19: error:0A00045C:SSL routines::tlsv13 "
                      "alert certificate required, errno 0",
                      "tls_error");
    expect_read_error(CURLE_SEND_ERROR,
                      "OpenSSL SSL_write: error:0A000418:SSL routines::tlsv1 alert unknown ca, "
                      "errno 0",
                      "tls_error");
    expect_read_error(CURLE_RECV_ERROR,
                      "OpenSSL SSL_read: error:0A000412:SSL routines::sslv3 alert bad "
                      "certificate, errno 0",
                      "tls_error");
    /* the same codes without an alert: the connection broke, or a proxy said no */
    expect_read_error(CURLE_RECV_ERROR, "OpenSSL SSL_read: Connection reset by peer, errno 104",
                      "transport_error");
    expect_read_error(CURLE_RECV_ERROR,
                      "OpenSSL SSL_read: error:0A000126:SSL routines::unexpected eof while "
                      "reading, errno 0",
                      "transport_error");
    expect_read_error(CURLE_RECV_ERROR, "CONNECT tunnel failed, response 407", "transport_error");
    expect_read_error(CURLE_SEND_ERROR, "Send failure: Broken pipe", "transport_error");
    expect_read_error(CURLE_RECV_ERROR, "", "transport_error");
    expect_read_error(CURLE_RECV_ERROR, NULL, "transport_error");
    /* an alert's words on another code keep that code's name */
    expect_read_error(CURLE_PARTIAL_FILE, "SSL routines::tlsv1 alert internal error",
                      "transport_error");
}

Test(classify_reply, a_too_large_body_retries)
{
    pb_http_reply r = {.status = 200,
                       .curl_code = CURLE_WRITE_ERROR,
                       .too_large = true,
                       .body = "",
                       .elapsed_ms = 3};
    expect_class(&pb_provider_openai, &r, PB_CLASS_RETRY, "too_large", NULL);
    r.curl_code = 0;
    expect_class(&pb_provider_openai, &r, PB_CLASS_RETRY, "too_large", NULL);
}

Test(classify_reply, a_cut_transfer_is_not_an_answer)
{
    /* A 200 whose transfer failed: even a body that parses is not trusted. */
    fixture_reply fr = fixture_reply_new(&pb_provider_openai, 200, "good.json");
    fr.r.curl_code = CURLE_PARTIAL_FILE;
    expect_class(&pb_provider_openai, &fr.r, PB_CLASS_RETRY, "transport_error", NULL);
    free(fr.body);
}

Test(classify_reply, a_good_200_is_ok_with_the_answer)
{
    fixture_reply fr = fixture_reply_new(&pb_provider_openai, 200, "good.json");
    expect_class(&pb_provider_openai, &fr.r, PB_CLASS_OK, "ok", "Paris is the capital of France.");
    pb_completion comp = {0};
    char outcome[32];
    cr_assert_eq(
        pb_chain_classify_reply(&pb_provider_openai, &fr.r, NULL, &comp, outcome, sizeof(outcome)),
        PB_CLASS_OK);
    cr_expect_eq(comp.prompt_tokens, 12);
    cr_expect_eq(comp.completion_tokens, 30);
    pb_provider_completion_free(&comp);
    free(fr.body);

    fr = fixture_reply_new(&pb_provider_anthropic, 200, "good.json");
    expect_class(&pb_provider_anthropic, &fr.r, PB_CLASS_OK, "ok",
                 "Paris is the capital of France.");
    free(fr.body);
}

Test(classify_reply, a_200_with_garbage_is_a_bad_reply)
{
    static const char *const openai_bad[] = {"html.html", "error_200.json", "truncated.json",
                                             "empty.txt", "empty_choices.json"};
    for (size_t i = 0; i < sizeof(openai_bad) / sizeof(openai_bad[0]); i++) {
        fixture_reply fr = fixture_reply_new(&pb_provider_openai, 200, openai_bad[i]);
        expect_class(&pb_provider_openai, &fr.r, PB_CLASS_RETRY, "bad_reply", NULL);
        free(fr.body);
    }
    /* The other dialect's answer is garbage too. */
    fixture_reply fr = fixture_reply_new(&pb_provider_anthropic, 200, "openai_shape.json");
    expect_class(&pb_provider_anthropic, &fr.r, PB_CLASS_RETRY, "bad_reply", NULL);
    free(fr.body);
    pb_http_reply r = {.status = 200, .body = "not json", .body_len = 8};
    expect_class(&pb_provider_openai, &r, PB_CLASS_RETRY, "bad_reply", NULL);
}

Test(classify_reply, http_errors_take_the_adapter_s_class)
{
    static const struct {
        const pb_provider_ops *ops;
        long status;
        const char *fixture;
        pb_class cls;
        const char *outcome;
    } cases[] = {
        {&pb_provider_openai, 503, "err_500.json", PB_CLASS_RETRY, "http_503"},
        {&pb_provider_openai, 500, "err_500.json", PB_CLASS_RETRY, "http_500"},
        {&pb_provider_openai, 429, "err_429.json", PB_CLASS_RETRY, "http_429"},
        {&pb_provider_openai, 502, "html.html", PB_CLASS_RETRY, "http_502"},
        {&pb_provider_openai, 401, "err_401.json", PB_CLASS_FALLBACK, "http_401"},
        {&pb_provider_openai, 404, "err_404_model.json", PB_CLASS_FALLBACK, "http_404"},
        {&pb_provider_openai, 400, "err_400_plain.json", PB_CLASS_INVALID, "http_400"},
        {&pb_provider_openai, 400, "err_400_context_length.json", PB_CLASS_FALLBACK, "http_400"},
        {&pb_provider_anthropic, 529, "err_529_overloaded.json", PB_CLASS_RETRY, "http_529"},
        {&pb_provider_anthropic, 401, "err_401_auth.json", PB_CLASS_FALLBACK, "http_401"},
        {&pb_provider_anthropic, 400, "err_400_invalid.json", PB_CLASS_INVALID, "http_400"},
        {&pb_provider_anthropic, 400, "err_400_prompt_too_long.json", PB_CLASS_FALLBACK,
         "http_400"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fixture_reply fr = fixture_reply_new(cases[i].ops, cases[i].status, cases[i].fixture);
        expect_class(cases[i].ops, &fr.r, cases[i].cls, cases[i].outcome, NULL);
        free(fr.body);
    }
}

Test(classify_reply, a_400_that_mentions_context_length_falls_back)
{
    static const char plain[] = "bad request";
    static const char ctx[] = "Error: this request exceeds the model's context length";
    pb_http_reply r = {.status = 400, .body = plain, .body_len = sizeof(plain) - 1};
    expect_class(&pb_provider_openai, &r, PB_CLASS_INVALID, "http_400", NULL);
    r.body = ctx;
    r.body_len = sizeof(ctx) - 1;
    expect_class(&pb_provider_openai, &r, PB_CLASS_FALLBACK, "http_400", NULL);
    /* No body at all: the status table alone. */
    pb_http_reply empty = {.status = 503, .body = "", .body_len = 0};
    expect_class(&pb_provider_openai, &empty, PB_CLASS_RETRY, "http_503", NULL);
}

Test(classify_reply, the_outcome_is_cut_to_its_buffer)
{
    pb_http_reply r = {.status = 503, .body = "", .body_len = 0};
    pb_completion comp = {0};
    char outcome[8];
    memset(outcome, 'x', sizeof(outcome));
    cr_expect_eq(pb_chain_classify_reply(&pb_provider_openai, &r, NULL, &comp, outcome, 6),
                 PB_CLASS_RETRY);
    cr_expect_str_eq(outcome, "http_");
    cr_expect_eq(outcome[6], 'x', "nothing written past outcome_size");
    pb_provider_completion_free(&comp);
}
