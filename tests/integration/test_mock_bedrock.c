/* test_mock_bedrock.c -- planb-mock's Amazon Bedrock endpoint does what docs/mock.md says,
 * talked to with libcurl and requests signed here with pb_sigv4_sign: who may call (a SigV4
 * signature by the mock's key over exactly what arrives, a Bearer API key; 403s named in
 * x-amzn-ErrorType), the Converse validation rules, replies (echo, tool calls and results,
 * stop reasons, missing and empty answers, error statuses), and streams decoded frame by
 * frame with pb_eventstream (text and tool pieces, every fault, a stamped frame still valid). */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "fixture.h"
#include "harness.h"
#include "planb/buf.h"
#include "planb/eventstream.h"
#include "planb/sigv4.h"

#define KEY_ID   "AKIAPLANBMOCK0000000" /* planb-mock's default credentials */
#define SECRET   "planb-mock-secret-access-key"
#define MODEL    "anthropic.claude-3-5-sonnet-20240620-v1:0"
#define MODEL_IN "anthropic.claude-3-5-sonnet-20240620-v1%3A0" /* as in the path */
#define HELLO    "\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hello bedrock\"}]}]"

static th_proc mock;

static void
setup(void)
{
    cr_assert_eq(th_mock_start(&mock, NULL), PB_OK, "planb-mock did not start");
}

/* A non-zero exit of the mock (a sanitizer report) is printed for CTest to see. */
static void
teardown(void)
{
    int st = th_proc_stop(&mock, 5000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *log = th_proc_log(&mock);
        fprintf(stderr, "planb-mock exited abnormally (status %d), log:\n%s\n", st, log);
        free(log);
    }
}

TestSuite(mock_bedrock, .init = setup, .fini = teardown, .timeout = 60);

typedef struct reply {
    long status;
    pb_buf body;
    char error_type[160];
    char content_type[96];
    json_object *json; /* body parsed, or NULL */
} reply;

static size_t
on_header(char *line, size_t size, size_t n, void *arg)
{
    reply *r = arg;
    th_take_header(line, size * n, "x-amzn-ErrorType", r->error_type, sizeof(r->error_type));
    th_take_header(line, size * n, "Content-Type", r->content_type, sizeof(r->content_type));
    return size * n;
}

typedef enum {
    AUTH_SIGV4,      /* signed with the mock's credentials */
    AUTH_NONE,       /* no Authorization */
    AUTH_BEARER,     /* a Bedrock API key */
    AUTH_OTHER_KEY,  /* signed by a key id the mock does not know */
    AUTH_TAMPERED,   /* signed over another body than the one sent */
    AUTH_OTHER_PATH, /* signed over another path than the one sent to */
} auth_kind;

/* POST body to path (a raw path: "/model/<id>/converse"), authenticated as auth says.
 * Caller frees. */
static reply *
post(const char *path, const char *body, auth_kind auth)
{
    reply *r = pb_xcalloc(1, sizeof(*r));
    pb_buf_init(&r->body, (size_t)16 << 20);
    char host[64], url[512], date[17], line[1024];
    snprintf(host, sizeof(host), "127.0.0.1:%d", mock.port);
    snprintf(url, sizeof(url), "http://%s%s", host, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    hl = curl_slist_append(hl, "Content-Type: application/json");
    pb_sigv4_signed sig = {0};
    if (auth == AUTH_BEARER)
        hl = curl_slist_append(hl, "Authorization: Bearer ABSKtest-api-key");
    if (auth != AUTH_NONE && auth != AUTH_BEARER) {
        pb_sigv4_amz_date(pb_wall_ms(), date);
        const pb_sigv4_header extra[] = {{"content-type", "application/json"}};
        const char *signed_body = auth == AUTH_TAMPERED ? "{}" : body;
        pb_sigv4_request sr = {.method = "POST",
                               .host = host,
                               .path = auth == AUTH_OTHER_PATH ? "/model/x/converse" : path,
                               .headers = extra,
                               .n_headers = 1,
                               .body = signed_body,
                               .body_len = strlen(signed_body),
                               .sign_content_sha256 = auth != AUTH_TAMPERED,
                               .region = "eu-west-3",
                               .service = "bedrock",
                               .access_key_id = auth == AUTH_OTHER_KEY ? "AKIAOTHER" : KEY_ID,
                               .secret_access_key = SECRET,
                               .amz_date = date};
        pb_error err;
        cr_assert_eq(pb_sigv4_sign(&sr, &sig, &err), PB_OK, "%s", err.msg);
        snprintf(line, sizeof(line), "Authorization: %s", sig.authorization);
        hl = curl_slist_append(hl, line);
        snprintf(line, sizeof(line), "x-amz-date: %s", sig.amz_date);
        hl = curl_slist_append(hl, line);
        if (auth != AUTH_TAMPERED) {
            snprintf(line, sizeof(line), "x-amz-content-sha256: %s", sig.content_sha256);
            hl = curl_slist_append(hl, line);
        }
    }
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, th_http_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    pb_sigv4_signed_free(&sig);
    pb_buf_append(&r->body, "", 0); /* NUL-terminated, len unchanged */
    r->json = json_tokener_parse(r->body.data);
    return r;
}

static void
reply_free(reply *r)
{
    json_object_put(r->json);
    pb_buf_free(&r->body);
    free(r);
}

/* Converse (stream: converse-stream) on MODEL with body {<fields>}, signed. */
static reply *
converse(const char *fields, bool stream)
{
    char body[4096];
    snprintf(body, sizeof(body), "{%s}", fields);
    return post(stream ? "/model/" MODEL_IN "/converse-stream" : "/model/" MODEL_IN "/converse",
                body, AUTH_SIGV4);
}

static void
set(const char *behaviour)
{
    cr_assert_eq(th_mock_set(&mock, MODEL, behaviour), PB_OK);
}

static bool
starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

Test(mock_bedrock, who_may_call_signed_bearer_or_refused_by_name)
{
    reply *r = converse(HELLO, false);
    cr_assert_eq(r->status, 200, "%s", r->body.data);
    cr_expect_str_eq(th_at_str(r->json, "output.message.content[0].text"), "echo: hello bedrock");
    reply_free(r);
    r = post("/model/" MODEL_IN "/converse", "{" HELLO "}", AUTH_BEARER);
    cr_expect_eq(r->status, 200, "%s", r->body.data);
    reply_free(r);
    static const struct {
        auth_kind auth;
        const char *type;
    } refused[] = {{AUTH_NONE, "MissingAuthenticationTokenException"},
                   {AUTH_OTHER_KEY, "UnrecognizedClientException"},
                   {AUTH_TAMPERED, "InvalidSignatureException"},
                   {AUTH_OTHER_PATH, "InvalidSignatureException"}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
        r = post("/model/" MODEL_IN "/converse", "{" HELLO "}", refused[i].auth);
        cr_expect_eq(r->status, 403, "%zu: %s", i, r->body.data);
        cr_expect(starts(r->error_type, refused[i].type), "%zu: %s", i, r->error_type);
        cr_expect_not_null(th_at(r->json, "message"), "%s", r->body.data);
        reply_free(r);
    }
    /* The last request is filed under the decoded id, its path as it came. */
    r = post("/model/" MODEL_IN "/converse", "{" HELLO "}", AUTH_SIGV4);
    reply_free(r);
    char url[256];
    long status = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/last/%s", mock.port, MODEL_IN);
    char *text = th_http("GET", url, NULL, &status);
    cr_assert_eq(status, 200, "%s", text);
    json_object *last = json_tokener_parse(text);
    free(text);
    cr_expect_str_eq(th_at_str(last, "path"), "/model/" MODEL_IN "/converse");
    cr_expect(starts(th_at_str(last, "headers.authorization"), "AWS4-HMAC-SHA256 Credential="));
    json_object_put(last);
    r = post("/model/anthropic.other/converse-stream", "{" HELLO "}", AUTH_BEARER);
    cr_expect_eq(r->status, 200);
    cr_expect_str_eq(r->content_type, "application/vnd.amazon.eventstream");
    reply_free(r);
    r = post("/model/" MODEL_IN "/invoke", "{" HELLO "}", AUTH_BEARER);
    cr_expect_eq(r->status, 404);
    cr_expect(starts(r->error_type, "UnknownOperationException"), "%s", r->error_type);
    reply_free(r);
}

Test(mock_bedrock, validation_refuses_what_converse_refuses)
{
#define U(x) "{\"role\":\"user\",\"content\":[" x "]}"
#define A(x) "{\"role\":\"assistant\",\"content\":[" x "]}"
#define T(x) "{\"text\":\"" x "\"}"
#define USE  "{\"toolUse\":{\"toolUseId\":\"tu_1\",\"name\":\"f\",\"input\":{}}}"
#define RES  "{\"toolResult\":{\"toolUseId\":\"tu_1\",\"content\":[{\"text\":\"ok\"}]}}"
#define TOOLCFG                                                                                    \
    "\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"name\":\"f\",\"inputSchema\":{\"json\":{"         \
    "\"type\":\"object\"}}}}]}"
    static const struct {
        const char *fields;
        const char *says;
    } bad[] = {
        {"\"model\":\"x\"," HELLO, "extraneous key [model]"},
        {"\"messages\":[]", "messages: must be a non-empty array"},
        {"\"messages\":[" A(T("hi")) "]", "must start with a user message"},
        {"\"messages\":[" U(T("a")) "," U(T("b")) "]", "must alternate"},
        {"\"messages\":[" U(T("  ")) "]", "is blank"},
        {"\"messages\":[" U("{\"text\":\"a\",\"image\":{}}") "]", "exactly one of"},
        {"\"messages\":[" U("{\"image\":{\"format\":\"bmp\",\"source\":{\"bytes\":\"AA\"}}}") "]",
         "png|jpeg|gif|webp"},
        {"\"messages\":[" U(USE) "]," TOOLCFG, "only in an assistant message"},
        {"\"messages\":[" U(T("a")) "," A(USE) "," U(T("b")) "]," TOOLCFG,
         "Expected toolResult blocks"},
        {"\"messages\":[" U(RES) "]," TOOLCFG, "don't match the previous turn"},
        {"\"messages\":[" U(T("a")) "," A(USE) "," U(RES) "]", "toolConfig field must be defined"},
        {"\"messages\":[" U(T("a")) "," A(T("b ")) "]", "trailing whitespace"},
        {HELLO ",\"inferenceConfig\":{\"maxTokens\":0}", "maxTokens"},
        {HELLO ",\"inferenceConfig\":{\"temperature\":1.5}", "temperature"},
        {HELLO ",\"inferenceConfig\":{\"max_tokens\":10}", "inferenceConfig"},
        {HELLO ",\"inferenceConfig\":{\"stopSequences\":[\"\"]}", "stopSequences"},
        {HELLO ",\"system\":[{\"text\":\" \"}]", "system.0"},
        {HELLO ",\"toolConfig\":{\"tools\":[]}", "toolConfig.tools"},
        {HELLO ",\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"name\":\"bad name\",\"inputSchema\":"
               "{\"json\":{}}}}]}",
         "toolSpec"},
        {HELLO "," TOOLCFG "}", NULL}, /* a JSON syntax error: the body check */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        reply *r = converse(bad[i].fields, false);
        cr_expect_eq(r->status, 400, "%zu: %ld %s", i, r->status, r->body.data);
        cr_expect(starts(r->error_type, "ValidationException"), "%zu: %s", i, r->error_type);
        const char *msg = th_at_str(r->json, "message");
        cr_expect(bad[i].says == NULL || strstr(msg, bad[i].says) != NULL, "%zu: %s", i, msg);
        reply_free(r);
    }
    /* The same conversation, well-formed, passes: tool use answered, tools configured. */
    reply *r =
        converse("\"messages\":[" U(T("a")) "," A(USE) "," U(
                     RES) "]," TOOLCFG ",\"system\":[{\"text\":\"Be brief.\"}],\"inferenceConfig\":"
                          "{\"maxTokens\":5,\"temperature\":0.2,\"stopSequences\":[\"x\"]}",
                 false);
    cr_expect_eq(r->status, 200, "%s", r->body.data);
    cr_expect_str_eq(th_at_str(r->json, "output.message.content[0].text"), "tool said: ok");
    reply_free(r);
}

Test(mock_bedrock, replies_tool_calls_stop_reasons_and_errors)
{
    set("{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":"
        "\"Paris\"}}]}");
    reply *r = converse(HELLO "," TOOLCFG, false);
    cr_assert_eq(r->status, 200, "%s", r->body.data);
    cr_expect_str_eq(th_at_str(r->json, "stopReason"), "tool_use");
    cr_expect_str_eq(th_at_str(r->json, "output.message.content[0].toolUse.name"), "get_weather");
    cr_expect_str_eq(th_at_str(r->json, "output.message.content[0].toolUse.input.city"), "Paris");
    cr_expect(
        starts(th_at_str(r->json, "output.message.content[0].toolUse.toolUseId"), "tooluse_mock_"));
    cr_expect_gt(json_object_get_int(th_at(r->json, "usage.inputTokens")), 0);
    reply_free(r);
    /* A json tool result is echoed serialized. */
    set("{\"mode\":\"ok\",\"finish_reason\":\"length\"}");
    r = converse(
        "\"messages\":[" U(T("a")) "," A(
            USE) ",{\"role\":\"user\",\"content\":[{"
                 "\"toolResult\":{\"toolUseId\":\"tu_1\",\"content\":[{\"json\":{\"t\":18}}]}}]}"
                 "]," TOOLCFG,
        false);
    cr_expect_str_eq(th_at_str(r->json, "output.message.content[0].text"), "tool said: {\"t\":18}");
    cr_expect_str_eq(th_at_str(r->json, "stopReason"), "max_tokens");
    reply_free(r);
    set("{\"mode\":\"missing\"}");
    r = converse(HELLO, false);
    cr_expect_eq(r->status, 200);
    cr_expect_null(th_at(r->json, "output"));
    reply_free(r);
    set("{\"mode\":\"empty\"}");
    r = converse(HELLO, false);
    cr_expect_str_eq(th_at_str(r->json, "output.message.content[0].text"), "");
    reply_free(r);
    static const struct {
        int status;
        const char *type;
    } errors[] = {{400, "ValidationException"},       {403, "AccessDeniedException"},
                  {404, "ResourceNotFoundException"}, {408, "ModelTimeoutException"},
                  {424, "ModelErrorException"},       {429, "ThrottlingException"},
                  {500, "InternalServerException"},   {503, "ServiceUnavailableException"}};
    for (size_t i = 0; i < sizeof(errors) / sizeof(*errors); i++) {
        char b[96];
        snprintf(b, sizeof(b), "{\"mode\":\"status\",\"status\":%d}", errors[i].status);
        set(b);
        r = converse(HELLO, false);
        cr_expect_eq(r->status, errors[i].status);
        cr_expect(starts(r->error_type, errors[i].type), "%d: %s", errors[i].status, r->error_type);
        cr_expect_not_null(th_at(r->json, "message"));
        reply_free(r);
    }
    set("{\"mode\":\"ok\",\"fail_first\":1,\"fail_status\":429}");
    r = converse(HELLO, false);
    cr_expect(starts(r->error_type, "ThrottlingException"), "%s", r->error_type);
    reply_free(r);
    set("{\"mode\":\"status\",\"status\":400,\"error_type\":\"ModelNotReadyException\"}");
    r = converse(HELLO, false);
    cr_expect(starts(r->error_type, "ModelNotReadyException"), "%s", r->error_type);
    reply_free(r);
}

/* The frames of a streamed body, decoded: event (or exception) names joined by ' ', the text
 * deltas and tool input pieces concatenated, and whether the decoder refused the bytes. */
typedef struct frames {
    char names[1024];
    pb_buf text;
    pb_buf input;
    bool refused;
    size_t pending;
} frames;

static int
on_frame(void *ud, const pb_eventstream_message *m)
{
    frames *f = ud;
    const char *name = m->event_type != NULL ? m->event_type : m->exception_type;
    snprintf(f->names + strlen(f->names), sizeof(f->names) - strlen(f->names), "%s%s",
             f->names[0] ? " " : "", name ? name : "?");
    char *payload = pb_xstrndup((const char *)m->payload, m->payload_len);
    json_object *o = json_tokener_parse(payload);
    free(payload);
    const char *t = th_at_str(o, "delta.text"), *in = th_at_str(o, "delta.toolUse.input");
    if (strcmp(t, "(absent)") != 0)
        pb_buf_append(&f->text, t, strlen(t));
    if (strcmp(in, "(absent)") != 0)
        pb_buf_append(&f->input, in, strlen(in));
    json_object_put(o);
    return PB_OK;
}

static void
decode(const reply *r, frames *f)
{
    memset(f, 0, sizeof(*f));
    pb_buf_init(&f->text, 1 << 20);
    pb_buf_init(&f->input, 1 << 20);
    pb_eventstream_decoder *d = pb_eventstream_decoder_new(0, on_frame, f);
    pb_error err;
    f->refused = pb_eventstream_feed(d, r->body.data, r->body.len, &err) != PB_OK;
    f->pending = pb_eventstream_pending(d);
    pb_eventstream_decoder_free(d);
    pb_buf_append(&f->text, "", 0);
    pb_buf_append(&f->input, "", 0);
}

static void
frames_free(frames *f)
{
    pb_buf_free(&f->text);
    pb_buf_free(&f->input);
}

Test(mock_bedrock, streams_frames_faults_and_stamps)
{
    reply *r = converse(HELLO, true);
    frames f;
    cr_assert_eq(r->status, 200);
    cr_expect_str_eq(r->content_type, "application/vnd.amazon.eventstream");
    decode(r, &f);
    cr_expect(!f.refused && f.pending == 0);
    cr_expect_str_eq(f.text.data, "echo: hello bedrock");
    cr_expect(starts(f.names, "messageStart contentBlockDelta"), "%s", f.names);
    cr_expect_neq(strstr(f.names, "contentBlockStop messageStop metadata"), NULL, "%s", f.names);
    frames_free(&f);
    reply_free(r);

    set("{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"f\",\"arguments\":{\"city\":\"Paris\"}}]}");
    r = converse(HELLO "," TOOLCFG, true);
    decode(r, &f);
    cr_expect_str_eq(f.input.data, "{\"city\":\"Paris\"}");
    cr_expect_str_eq(f.names, "messageStart contentBlockStart contentBlockDelta contentBlockDelta "
                              "contentBlockStop messageStop metadata");
    frames_free(&f);
    reply_free(r);

    static const struct {
        const char *fault;
        const char *names; /* the frames that arrive */
        bool refused;      /* a frame the decoder refuses */
    } faults[] = {
        {"error_before", "modelStreamErrorException", false},
        {"error_mid", "messageStart contentBlockDelta modelStreamErrorException", false},
        {"malformed", "messageStart contentBlockDelta", true},
        {"no_done",
         "messageStart contentBlockDelta contentBlockDelta contentBlockDelta "
         "contentBlockStop",
         false},
    };
    for (size_t i = 0; i < sizeof(faults) / sizeof(*faults); i++) {
        char b[128];
        snprintf(b, sizeof(b), "{\"mode\":\"ok\",\"stream_fault\":\"%s\",\"fault_after\":1}",
                 faults[i].fault);
        set(b);
        r = converse(HELLO, true);
        decode(r, &f);
        cr_expect_eq(f.refused, faults[i].refused, "%s", faults[i].fault);
        cr_expect(starts(f.names, faults[i].names), "%s: %s", faults[i].fault, f.names);
        cr_expect_eq(strstr(f.names, "messageStop"), NULL, "%s: %s", faults[i].fault, f.names);
        frames_free(&f);
        reply_free(r);
    }

    /* A stamped answer: the '@' run leaves as 16 digits and the frame's CRC still holds. */
    set("{\"mode\":\"ok\",\"reply\":\"t @@@@@@@@@@@@@@@@\"}");
    r = converse(HELLO, true);
    decode(r, &f);
    cr_expect(!f.refused, "a stamped frame must stay valid");
    cr_expect_eq(strlen(f.text.data), 18, "%s", f.text.data);
    cr_expect_eq(strspn(f.text.data + 2, "0123456789"), 16, "%s", f.text.data);
    frames_free(&f);
    reply_free(r);
}
