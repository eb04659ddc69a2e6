/* test_wire.c -- the front door's OpenAI wire shapes (wire.c) and its config section.
 *
 * Bodies in (model -> route or models, stream and stream_options kept apart, the rest under
 * params, refusals as OpenAI errors with the right status), results out (chat.completion,
 * invalid results as 400s), stream chunks, the models list, and http.* validation. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/utf8.h"
#include "planb/wire.h"
#include "th_config.h"

static const char wire_config[] =
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:1/v1\"}},"
    " \"models\": {\"m1\": {\"provider\": \"p\"}, \"m2\": {\"provider\": \"p\", \"tier\": 2}},"
    " \"routes\": {\"default\": {\"chain\": [\"m1\", \"m2\"], \"deadline_ms\": 5000},"
    "              \"fast\": {\"chain\": [\"m2\"], \"deadline_ms\": 700}}}";

static pb_config *
cfg_new(void)
{
    return th_config_parse(wire_config);
}

/* The job of body (asserting it is accepted), as a json-c object; caller puts it. */
static json_object *
job_of(const pb_config *cfg, const char *body, const pb_wire_opts *opts, pb_wire_job *job)
{
    pb_wire_error err;
    int rc = pb_wire_job_from_body(body, strlen(body), cfg, opts, job, &err);
    cr_assert_eq(rc, PB_OK, "refused: %d %s", err.status, err.message);
    json_object *o = json_tokener_parse(job->json);
    cr_assert_not_null(o);
    return o;
}

static const char *
str_at(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

Test(wire, body_becomes_job)
{
    pb_config *cfg = cfg_new();
    pb_wire_opts opts = {.id = "pb-1",
                         .tenant = "acme",
                         .deadline_ms = 900,
                         .cache = "skip",
                         .critical = 1,
                         .submitted_at_ms = 1234};
    pb_wire_job job;
    json_object *o =
        job_of(cfg,
               "{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
               "\"temperature\":0.5,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
               &opts, &job);
    cr_assert_str_eq(str_at(o, "id"), "pb-1");
    cr_assert_str_eq(str_at(o, "route"), "fast");
    cr_assert_str_eq(str_at(o, "tenant"), "acme");
    cr_assert_str_eq(str_at(o, "cache"), "skip");
    json_object *params, *v;
    cr_assert(json_object_object_get_ex(o, "params", &params));
    cr_assert(json_object_object_get_ex(params, "temperature", &v));
    cr_assert(!json_object_object_get_ex(params, "stream", NULL), "stream is the front's");
    cr_assert(!json_object_object_get_ex(params, "stream_options", NULL));
    cr_assert(json_object_object_get_ex(o, "stream", &v) && json_object_get_boolean(v));
    cr_assert(json_object_object_get_ex(o, "critical", &v) && json_object_get_boolean(v));
    cr_assert(job.stream && job.include_usage);
    cr_assert_eq(job.deadline_ms, 900);
    cr_assert_str_eq(job.model, "fast");
    json_object_put(o);
    pb_wire_job_free(&job);

    /* A model name is a one-model chain; no model is the default route and its deadline. */
    pb_wire_opts plain = {.id = "pb-2", .critical = -1};
    o = job_of(cfg, "{\"model\":\"m2\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               &plain, &job);
    cr_assert(json_object_object_get_ex(o, "models", &v));
    cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(v, 0)), "m2");
    cr_assert(!json_object_object_get_ex(o, "critical", NULL));
    json_object_put(o);
    pb_wire_job_free(&job);
    o = job_of(cfg, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &plain, &job);
    cr_assert_null(str_at(o, "route"));
    cr_assert_eq(job.deadline_ms, 5000);
    cr_assert(!job.stream);
    json_object_put(o);
    pb_wire_job_free(&job);
    pb_config_free(cfg);
}

/* body is refused with status and code, and its message contains needle. */
static void
refused(const pb_config *cfg, const char *body, int status, const char *code, const char *needle)
{
    pb_wire_opts opts = {.id = "pb-3", .critical = -1};
    pb_wire_job job;
    pb_wire_error err;
    cr_assert_eq(pb_wire_job_from_body(body, strlen(body), cfg, &opts, &job, &err), PB_ERR,
                 "accepted: %s", body);
    cr_assert_eq(err.status, status, "%s: status %d (%s)", body, err.status, err.message);
    cr_assert_str_eq(err.code, code, "%s: %s", body, err.message);
    cr_assert(strstr(err.message, needle), "%s: message %s", body, err.message);
    cr_assert_null(job.json);
    size_t n = 0;
    char *e = pb_wire_error_json(&err, &n);
    json_object *o = json_tokener_parse(e), *eo, *param;
    cr_assert(json_object_object_get_ex(o, "error", &eo));
    cr_assert_str_eq(str_at(eo, "type"), "invalid_request_error");
    cr_assert(json_object_object_get_ex(eo, "param", &param) && param == NULL);
    json_object_put(o);
    free(e);
}

Test(wire, bad_bodies_are_openai_errors)
{
    pb_config *cfg = cfg_new();
    const char *msg = "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]";
    char b[512];
    refused(cfg, "{", 400, "bad_json", "not valid JSON");
    refused(cfg, "[1]", 400, "bad_json", "object");
    refused(cfg, "{\"model\":\"default\"}", 400, "bad_field", "messages is required");
    refused(cfg, "{\"model\":\"default\",\"messages\":[]}", 400, "bad_field", "messages");
    snprintf(b, sizeof(b), "{\"model\":\"gpt-9\",%s}", msg);
    refused(cfg, b, 404, "model_not_found", "gpt-9");
    snprintf(b, sizeof(b), "{\"model\":3,%s}", msg);
    refused(cfg, b, 400, "bad_field", "model must be a string");
    snprintf(b, sizeof(b), "{\"temperature\":9,%s}", msg);
    refused(cfg, b, 400, "bad_field", "temperature");
    snprintf(b, sizeof(b), "{\"stream\":1,%s}", msg);
    refused(cfg, b, 400, "bad_field", "stream must be a boolean");
    snprintf(b, sizeof(b), "{\"stream_options\":{\"include_usage\":true},%s}", msg);
    refused(cfg, b, 400, "bad_field", "only allowed with stream");
    snprintf(b, sizeof(b), "{\"stream\":true,\"stream_options\":{\"x\":1},%s}", msg);
    refused(cfg, b, 400, "bad_field", "stream_options.x");
    snprintf(b, sizeof(b), "{\"bogus\":1,%s}", msg);
    refused(cfg, b, 400, "bad_field", "bogus is not an OpenAI");
    pb_config_free(cfg);
}

/* A long model name is cut at 200 bytes in the 404's message: never inside a character (a
 * client's strict JSON decoder refuses a broken sequence). */
Test(wire, error_message_keeps_utf8_whole)
{
    pb_config *cfg = cfg_new();
    char name[400] = "x";
    for (int i = 0; i < 150; i++)
        strcat(name, "\xc3\xa9"); /* 1 + 300 bytes: the 200th byte is a lead byte */
    char b[1024];
    snprintf(b, sizeof(b),
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", name);
    pb_wire_opts opts = {.id = "pb-u", .critical = -1};
    pb_wire_job job;
    pb_wire_error err;
    cr_assert_eq(pb_wire_job_from_body(b, strlen(b), cfg, &opts, &job, &err), PB_ERR);
    cr_assert_eq(err.status, 404);
    cr_assert(pb_utf8_is_text(err.message, strlen(err.message)), "split character: %s",
              err.message);
    cr_assert(strstr(err.message, "' does not exist"), "%s", err.message);
    /* Every other message goes through the same cut: a 512-byte message of 2-byte characters. */
    char many[1200] = "";
    for (int i = 0; i < 550; i++)
        strcat(many, "\xc3\xa9");
    pb_wire_error_set(&err, 400, "invalid_request_error", "bad_field", "a%s", many);
    cr_assert(pb_utf8_is_text(err.message, strlen(err.message)), "split at the end");
    cr_assert_gt(strlen(err.message), 500);
    pb_config_free(cfg);
}

Test(wire, result_becomes_completion)
{
    const char *res =
        "{\"id\":\"pb-9\",\"status\":\"ok\",\"content\":\"\",\"message\":{\"role\":\"assistant\","
        "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\",\"model\":"
        "\"m1\",\"provider\":\"p\",\"source\":\"fallback\",\"attempts\":[{},{}],\"usage\":"
        "{\"prompt_tokens\":3,\"completion_tokens\":4,\"cached_tokens\":2},\"latency_ms\":17}";
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    pb_wire_meta meta;
    cr_assert_eq(pb_wire_completion(res, strlen(res), "default", 42, &status, &body, &len, &meta),
                 PB_OK);
    cr_assert_eq(status, 200);
    cr_assert_str_eq(meta.source, "fallback");
    cr_assert_str_eq(meta.model, "m1");
    cr_assert_str_eq(meta.provider, "p");
    cr_assert_str_eq(meta.cache, "miss");
    cr_assert_eq(meta.attempts, 2);
    cr_assert_eq(meta.latency_ms, 17);
    json_object *o = json_tokener_parse(body), *choices, *usage, *v;
    cr_assert_str_eq(str_at(o, "id"), "chatcmpl-pb-9");
    cr_assert_str_eq(str_at(o, "object"), "chat.completion");
    cr_assert(json_object_object_get_ex(o, "choices", &choices));
    json_object *c0 = json_object_array_get_idx(choices, 0), *m;
    cr_assert_str_eq(str_at(c0, "finish_reason"), "tool_calls");
    cr_assert(json_object_object_get_ex(c0, "message", &m));
    cr_assert(json_object_object_get_ex(m, "tool_calls", &v));
    cr_assert(json_object_object_get_ex(o, "usage", &usage));
    cr_assert(json_object_object_get_ex(usage, "total_tokens", &v) && json_object_get_int(v) == 7);
    json_object_put(o);
    free(body);

    /* An invalid result is a 400 with the job error's code; a cache hit says so. */
    const char *bad = "{\"id\":\"pb-8\",\"status\":\"invalid\",\"error\":\"UNSUPPORTED no model "
                      "can serve it\",\"attempts\":[],\"latency_ms\":0}";
    cr_assert_eq(pb_wire_completion(bad, strlen(bad), "default", 0, &status, &body, &len, &meta),
                 PB_OK);
    cr_assert_eq(status, 400);
    cr_assert(strstr(body, "\"code\":\"unsupported\"") && strstr(body, "no model can serve it"),
              "%s", body);
    free(body);
    /* A cancelled result is a 409 cancelled (never a 200 without an answer). */
    const char *cancelled = "{\"id\":\"pb-9\",\"status\":\"cancelled\",\"error\":\"CANCELLED "
                            "job was cancelled while it ran\",\"attempts\":[],\"latency_ms\":3}";
    cr_assert_eq(
        pb_wire_completion(cancelled, strlen(cancelled), "default", 0, &status, &body, &len, &meta),
        PB_OK);
    cr_assert_eq(status, 409);
    cr_assert(strstr(body, "\"code\":\"cancelled\""), "%s", body);
    free(body);
    const char *hit = "{\"id\":\"pb-7\",\"status\":\"ok\",\"content\":\"hi\",\"source\":\"cache\","
                      "\"attempts\":[],\"latency_ms\":0}";
    cr_assert_eq(pb_wire_completion(hit, strlen(hit), "default", 0, &status, &body, &len, &meta),
                 PB_OK);
    cr_assert_str_eq(meta.cache, "hit");
    cr_assert(strstr(body, "\"content\":\"hi\"") && strstr(body, "\"model\":\"default\""), "%s",
              body);
    free(body);
    cr_assert_eq(pb_wire_completion("nope", 4, "d", 0, &status, &body, &len, &meta), PB_ERR);
}

Test(wire, result_id)
{
    char id[64];
    const char *fast = "{\"id\":\"pb-abc\",\"status\":\"ok\"}";
    pb_wire_result_id(fast, strlen(fast), id, sizeof(id));
    cr_assert_str_eq(id, "pb-abc");
    const char *escaped = "{\"id\":\"a\\/b\",\"status\":\"ok\"}";
    pb_wire_result_id(escaped, strlen(escaped), id, sizeof(id));
    cr_assert_str_eq(id, "a/b");
    pb_wire_result_id("{}", 2, id, sizeof(id));
    cr_assert_str_eq(id, "");
}

Test(wire, stream_chunks)
{
    pb_wire_chunker c = {.id = "chatcmpl-pb-1", .model = "m1", .created = 5};
    pb_buf out;
    pb_buf_init(&out, 1 << 20);
    pb_wire_chunk_text(&c, "Hel", 3, &out);
    pb_wire_chunk_tool(&c, 0, "call_1", "f", "{\"a\"", &out);
    const char *res = "{\"id\":\"pb-1\",\"status\":\"ok\",\"content\":\"Hel\",\"finish_reason\":"
                      "\"cut\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}";
    pb_wire_chunk_end(&c, res, strlen(res), true, &out);
    cr_assert(c.finished);
    /* role only on the first chunk, a cut answer finishes as length, usage, then [DONE] */
    const char *role = strstr(out.data, "\"role\":\"assistant\"");
    cr_assert(role && strstr(role + 1, "\"role\"") == NULL, "%s", out.data);
    cr_assert(strstr(out.data, "\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":"
                               "\"function\",\"function\":{\"name\":\"f\",\"arguments\":"),
              "%s", out.data);
    cr_assert(strstr(out.data, "\"finish_reason\":\"length\""), "%s", out.data);
    cr_assert(strstr(out.data, "\"choices\":[],\"usage\":{\"prompt_tokens\":1"), "%s", out.data);
    size_t n = strlen(out.data);
    cr_assert(n > 14 && strcmp(out.data + n - 14, "data: [DONE]\n\n") == 0);
    pb_buf_free(&out);

    /* An invalid result ends the stream with an error event. */
    pb_wire_chunker e = {.id = "x", .model = "m1"};
    pb_buf_init(&out, 1 << 20);
    const char *bad = "{\"id\":\"pb-2\",\"status\":\"invalid\",\"error\":\"BAD_FIELD x\"}";
    pb_wire_chunk_end(&e, bad, strlen(bad), false, &out);
    cr_assert(strstr(out.data, "data: {\"error\":") && strstr(out.data, "data: [DONE]"), "%s",
              out.data);
    pb_buf_free(&out);
}

Test(wire, models)
{
    pb_config *cfg = cfg_new();
    size_t len = 0;
    char *s = pb_wire_models(cfg, &len);
    cr_assert(strstr(s, "\"object\":\"list\"") && strstr(s, "\"id\":\"default\"") &&
                  strstr(s, "\"id\":\"fast\"") && strstr(s, "\"id\":\"m1\"") &&
                  strstr(s, "\"id\":\"m2\""),
              "%s", s);
    free(s);
    s = pb_wire_model(cfg, "m2", &len);
    cr_assert(s && strstr(s, "\"id\":\"m2\""));
    free(s);
    cr_assert_null(pb_wire_model(cfg, "gpt-9", &len));
    pb_config_free(cfg);
}

/* http.* validation: defaults, and every refusal names its field. */
static void
http_refused(const char *http, const char *needle)
{
    char json[2048];
    snprintf(json, sizeof(json),
             "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x/v1\"}},"
             " \"models\": {\"m\": {\"provider\": \"p\"}}, \"routes\": {\"default\": {\"chain\": "
             "[\"m\"]}}, \"http\": %s}",
             http);
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(json, &err);
    cr_assert_null(cfg, "accepted http %s", http);
    cr_assert(strstr(err.msg, needle), "%s: %s", http, err.msg);
}

Test(wire, http_config)
{
    pb_config *cfg = cfg_new();
    cr_assert_null(cfg->http.listen, "off unless listen is set");
    cr_assert_eq(cfg->http.max_connections, 10000);
    cr_assert_eq(cfg->http.max_body_bytes, cfg->limits.job_max_bytes);
    cr_assert_eq(cfg->http.n_keys, 0);
    cr_assert(cfg->http.tenant_header, "no keys: x-planb-tenant names the tenant");
    pb_config_free(cfg);
    const char *sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    char json[2048];
    snprintf(json, sizeof(json),
             "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x/v1\"}},"
             " \"models\": {\"m\": {\"provider\": \"p\"}}, \"routes\": {\"default\": {\"chain\": "
             "[\"m\"]}}, \"http\": {\"listen\": \"0.0.0.0:8080\", \"keys\": [{\"name\": \"web\","
             " \"tenant\": \"acme\", \"sha256\": \"%s\", \"rpm\": 60}]}}",
             sha);
    cfg = th_config_parse(json);
    cr_assert_str_eq(cfg->http.listen, "0.0.0.0:8080");
    cr_assert_eq(cfg->http.n_keys, 1);
    cr_assert_eq(cfg->http.keys[0].rpm, 60);
    cr_assert_eq(cfg->http.keys[0].sha256[0], 0x9f);
    cr_assert_eq(cfg->http.keys[0].sha256[31], 0x08);
    cr_assert_not(cfg->http.tenant_header, "keys: x-planb-tenant refused unless asked for");
    pb_config_free(cfg);
    snprintf(json, sizeof(json),
             "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x/v1\"}},"
             " \"models\": {\"m\": {\"provider\": \"p\"}}, \"routes\": {\"default\": {\"chain\": "
             "[\"m\"]}}, \"http\": {\"tenant_header\": true, \"keys\": [{\"name\": \"web\","
             " \"sha256\": \"%s\"}]}}",
             sha);
    cfg = th_config_parse(json);
    cr_assert(cfg->http.tenant_header);
    pb_config_free(cfg);
    http_refused("{\"tenant_header\": 1}", "http.tenant_header: must be true or false");
    http_refused("{\"listen\": \"nowhere\"}", "http.listen");
    http_refused("{\"listen\": \"a:1\", \"bogus\": 1}", "http.bogus: unknown key");
    http_refused("{\"queue\": \"other\"}", "http.queue");
    http_refused("{\"keys\": [{\"name\": \"k\"}]}", "http.keys[0].sha256");
    http_refused("{\"keys\": [{\"name\": \"k\", \"sha256\": \"zz\"}]}", "http.keys[0].sha256");
    http_refused("{\"keys\": [{\"sha256\": \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c"
                 "15b0f00a08\"}]}",
                 "http.keys[0].name");
    http_refused("{\"keys\": [{\"name\": \"a\", \"sha256\": \"9f86d081884c7d659a2feaa0c55ad015a3bf4"
                 "f1b2b0b822cd15d6c15b0f00a08\"}, {\"name\": \"a\", \"sha256\": \"0f86d081884c7d65"
                 "9a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}]}",
                 "http.keys[1]");
    http_refused("{\"max_connections\": 0}", "http.max_connections");
    http_refused("{\"request_read_timeout_ms\": 99}", "http.request_read_timeout_ms");
    http_refused("{\"max_body_bytes\": 65536, \"max_bodies_bytes\": 65535}",
                 "http.max_bodies_bytes");
    cfg = cfg_new();
    cr_assert_eq(cfg->http.request_read_timeout_ms, 60000);
    cr_assert_eq(cfg->http.max_bodies_bytes, 256u << 20);
    pb_config_free(cfg);
}

static int
head_of(const char *text, pb_wire_head *h, pb_wire_error *err)
{
    return pb_wire_head_parse(text, strlen(text), h, err);
}

/* RFC 9112 section 6.3: a request's framing has one reading, or it is a 400 before its body. */
Test(wire, request_heads)
{
    pb_wire_head h;
    pb_wire_error err;
    cr_assert_eq(head_of("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length:  74\r\n"
                         "authorization: Bearer sk-1\r\n\r\n",
                         &h, &err),
                 PB_OK);
    cr_assert(!h.other && !h.healthz && h.body == PB_WIRE_BODY_LENGTH && h.length == 74);
    cr_assert(h.auth_len == 11 && strncmp(h.auth, "Bearer sk-1", 11) == 0);
    cr_assert_eq(
        head_of("POST /v1/chat/completions HTTP/1.1\nTransfer-Encoding: Chunked\n\n", &h, &err),
        PB_OK);
    cr_assert(h.body == PB_WIRE_BODY_CHUNKED && h.auth == NULL);
    cr_assert_eq(head_of("GET /healthz?x=1 HTTP/1.1\r\n\r\n", &h, &err), PB_OK);
    cr_assert(h.healthz && h.body == PB_WIRE_BODY_NONE);
    cr_assert_eq(head_of("HEAD / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &h, &err), PB_OK);
    cr_assert(h.body == PB_WIRE_BODY_NONE, "evhttp reads no body for HEAD");
    cr_assert_eq(head_of("\x16\x03\x01 junk\r\n\r\n", &h, &err), PB_OK);
    cr_assert(h.other);
    const char *bad[] = {
        "POST / HTTP/1.1\r\nContent-Length: 74\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 74\r\nContent-Length: 74\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +74\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 7 4\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length:\r\n 74\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(head_of(bad[i], &h, &err), PB_ERR, "accepted: %s", bad[i]);
        cr_assert_eq(err.status, 400);
        cr_assert_str_eq(err.code, "bad_request");
    }
    uint64_t n = 0;
    cr_assert(pb_wire_chunk_size("4a;ext=1\r", 9, &n) == PB_OK && n == 0x4a);
    cr_assert(pb_wire_chunk_size("10 ; name=\"v\"", 13, &n) == PB_OK && n == 16);
    cr_assert(pb_wire_chunk_size("0", 1, &n) == PB_OK && n == 0);
    cr_assert_eq(pb_wire_chunk_size("", 0, &n), PB_ERR);
    cr_assert_eq(pb_wire_chunk_size("zz", 2, &n), PB_ERR);
    cr_assert_eq(pb_wire_chunk_size("4 a", 3, &n), PB_ERR);
    cr_assert_eq(pb_wire_chunk_size("1234567890abcdef0", 17, &n), PB_ERR);
    cr_assert_eq(pb_wire_chunk_size("4;\x01", 3, &n), PB_ERR);
}
