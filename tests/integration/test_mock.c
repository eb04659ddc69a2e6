/* test_mock.c -- planb-mock does what each behaviour promises, in both chat dialects.
 *
 * Every Test starts its own mock (harness, port 0) and talks to it with
 * libcurl: replies and their usage, injected statuses and headers, hangs,
 * trickles, resets, broken bodies, fail_first, latency, the validation rules
 * planb must satisfy, and the control endpoints (behaviours, stats, last
 * request, reset). .fini stops the mock and prints its log when it did not
 * exit cleanly, so a sanitizer report inside the mock fails the run too. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "planb/buf.h"
#include "planb/core.h"

static th_proc mock;

static const char *const openai_hdrs[] = {"Authorization: Bearer test-key",
                                          "Content-Type: application/json", NULL};
static const char *const anthropic_hdrs[] = {"x-api-key: test-key", "anthropic-version: 2023-06-01",
                                             "Content-Type: application/json", NULL};

typedef struct reply {
    CURLcode rc;            /* transfer result */
    long status;            /* HTTP status, 0 when none arrived */
    pb_buf body;            /* NUL-terminated body */
    char content_type[128]; /* Content-Type header */
    char retry_after[64];   /* Retry-After header */
    bool chunked;           /* Transfer-Encoding: chunked */
    int64_t ms;             /* request duration */
    json_object *json;      /* body parsed, NULL when it is not JSON */
} reply;

static void
start_mock(const char *config_json)
{
    cr_assert_eq(th_mock_start(&mock, config_json), PB_OK, "planb-mock did not start");
}

static void
setup(void)
{
    start_mock(NULL);
}

/* Stops the mock; a non-zero exit (e.g. a LeakSanitizer report) is printed for CTest to see. */
static void
teardown(void)
{
    if (mock.pid <= 0)
        return;
    int st = th_proc_stop(&mock, 5000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *log = th_proc_log(&mock);
        fprintf(stderr, "planb-mock exited abnormally (status %d), log:\n%s\n", st, log);
        free(log);
    }
}

static size_t
on_header(char *line, size_t size, size_t n, void *arg)
{
    reply *r = arg;
    char te[32] = "";
    th_take_header(line, size * n, "Content-Type", r->content_type, sizeof(r->content_type));
    th_take_header(line, size * n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    th_take_header(line, size * n, "Transfer-Encoding", te, sizeof(te));
    if (strcasecmp(te, "chunked") == 0)
        r->chunked = true;
    return size * n;
}

/* One request to the mock; body NULL means GET. Caller frees with reply_free. */
static reply *
request(const char *method, const char *path, const char *const *headers, const char *body,
        long timeout_ms)
{
    reply *r = pb_xcalloc(1, sizeof(*r));
    pb_buf_init(&r->body, (size_t)64 << 20);
    pb_buf_append(&r->body, "", 0);
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", mock.port, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hl = curl_slist_append(hl, headers[i]);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, th_http_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    int64_t t0 = pb_mono_ms();
    r->rc = curl_easy_perform(h);
    r->ms = pb_mono_ms() - t0;
    if (r->rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    r->json = json_tokener_parse(r->body.data);
    return r;
}

static void
reply_free(reply *r)
{
    if (r->json != NULL)
        json_object_put(r->json);
    pb_buf_free(&r->body);
    free(r);
}

static reply *
post_openai(const char *body)
{
    return request("POST", "/v1/chat/completions", openai_hdrs, body, 5000);
}

static reply *
post_anthropic(const char *body)
{
    return request("POST", "/v1/messages", anthropic_hdrs, body, 5000);
}

static reply *
post_embeddings(const char *body)
{
    return request("POST", "/v1/embeddings", openai_hdrs, body, 5000);
}

/* A one-message chat in either dialect ("openai" or "anthropic"). */
static reply *
chat(const char *dialect, const char *model, const char *content, long timeout_ms)
{
    char *body = pb_xasprintf("{\"model\":\"%s\",\"max_tokens\":64,\"messages\":"
                              "[{\"role\":\"user\",\"content\":\"%s\"}]}",
                              model, content);
    bool oa = strcmp(dialect, "openai") == 0;
    reply *r = request("POST", oa ? "/v1/chat/completions" : "/v1/messages",
                       oa ? openai_hdrs : anthropic_hdrs, body, timeout_ms);
    free(body);
    return r;
}

/* The node at a dotted path ("choices.0.message.content"), or NULL. */
static json_object *
jget(json_object *o, const char *path)
{
    char key[128];
    while (o != NULL && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        path += n + (path[n] == '.');
        if (json_object_is_type(o, json_type_array)) {
            size_t i = (size_t)strtoul(key, NULL, 10);
            o = i < json_object_array_length(o) ? json_object_array_get_idx(o, i) : NULL;
        } else if (!json_object_object_get_ex(o, key, &o)) {
            return NULL;
        }
    }
    return o;
}

static const char *
jstr(json_object *o, const char *path)
{
    json_object *v = jget(o, path);
    return v != NULL && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static long
jint(json_object *o, const char *path)
{
    json_object *v = jget(o, path);
    return v != NULL && json_object_is_type(v, json_type_int) ? (long)json_object_get_int64(v) : -1;
}

static void
set(const char *model, const char *behaviour)
{
    cr_assert_eq(th_mock_set(&mock, model, behaviour), PB_OK, "set %s %s", model, behaviour);
}

static json_object *
stats(void)
{
    reply *r = request("GET", "/_mock/stats", NULL, NULL, 5000);
    cr_assert_eq(r->status, 200);
    json_object *o = json_object_get(r->json);
    reply_free(r);
    return o;
}

static long
stat_of(const char *model, const char *field)
{
    json_object *s = stats();
    char path[256];
    snprintf(path, sizeof(path), "models.%s.%s", model, field);
    long n = jint(s, path);
    json_object_put(s);
    return n;
}

static bool
nothing_pending(void *arg)
{
    (void)arg;
    json_object *s = stats();
    long n = jint(s, "pending");
    json_object_put(s);
    return n == 0;
}

/* For th_wait_for: the mock holds want requests open; seen is the last count read. */
typedef struct pending_wait {
    long want; /* requests the mock should hold */
    long seen; /* "pending" at the last poll */
} pending_wait;

static bool
pending_reached(void *arg)
{
    pending_wait *w = arg;
    json_object *s = stats();
    w->seen = jint(s, "pending");
    json_object_put(s);
    return w->seen == w->want;
}

/* Sends a chat request with extra body fields (",..." or "") on a raw socket and returns it
 * unread (for held requests). */
static int
raw_chat_with(const char *model, const char *extra)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)mock.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char *body = pb_xasprintf(
        "{\"model\":\"%s\"%s,\"messages\":[{\"role\":\"user\",\"content\":\"hi there\"}]}", model,
        extra);
    char *req = pb_xasprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\n"
                             "Authorization: Bearer k\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             strlen(body), body);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    free(body);
    free(req);
    return fd;
}

static int
raw_chat(const char *model)
{
    return raw_chat_with(model, "");
}

TestSuite(mock, .init = setup, .fini = teardown, .timeout = 30);

Test(mock, ok_openai_echo_and_usage)
{
    reply *r = post_openai("{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"system\",\"content\":"
                           "\"be brief\"},{\"role\":\"user\",\"content\":\"hello big world\"}]}");
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->content_type, "application/json");
    cr_assert_str_eq(jstr(r->json, "choices.0.message.content"), "echo: hello big world");
    cr_assert_str_eq(jstr(r->json, "choices.0.message.role"), "assistant");
    cr_assert_str_eq(jstr(r->json, "choices.0.finish_reason"), "stop");
    cr_assert_str_eq(jstr(r->json, "object"), "chat.completion");
    cr_assert_str_eq(jstr(r->json, "model"), "gpt-x");
    cr_assert_eq(strncmp(jstr(r->json, "id"), "chatcmpl-mock-", 14), 0);
    cr_assert_gt(jint(r->json, "created"), 1600000000);
    cr_assert_eq(jint(r->json, "usage.prompt_tokens"), 5);
    cr_assert_eq(jint(r->json, "usage.completion_tokens"), 4);
    cr_assert_eq(jint(r->json, "usage.total_tokens"), 9);
    reply_free(r);
}

Test(mock, ok_anthropic_blocks_system_and_usage)
{
    reply *r = post_anthropic(
        "{\"model\":\"claude-x\",\"max_tokens\":10,\"system\":\"you are terse\","
        "\"messages\":[{\"role\":\"user\",\"content\":\"first one\"},"
        "{\"role\":\"assistant\",\"content\":\"ok\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"second question\"}]}]}");
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(jstr(r->json, "type"), "message");
    cr_assert_str_eq(jstr(r->json, "role"), "assistant");
    cr_assert_str_eq(jstr(r->json, "model"), "claude-x");
    cr_assert_eq(strncmp(jstr(r->json, "id"), "msg_mock_", 9), 0);
    cr_assert_str_eq(jstr(r->json, "content.0.type"), "text");
    cr_assert_str_eq(jstr(r->json, "content.0.text"), "echo: second question");
    cr_assert_str_eq(jstr(r->json, "stop_reason"), "end_turn");
    cr_assert_not_null(strstr(r->body.data, "\"stop_sequence\":null"));
    cr_assert_eq(jint(r->json, "usage.input_tokens"), 8); /* 3 system + 2 + 1 + 2 */
    cr_assert_eq(jint(r->json, "usage.output_tokens"), 3);
    reply_free(r);
}

Test(mock, reply_text_overrides_echo)
{
    set("fixed", "{\"mode\":\"ok\",\"reply\":\"a fixed answer\"}");
    reply *o = chat("openai", "fixed", "whatever", 5000);
    reply *a = chat("anthropic", "fixed", "whatever", 5000);
    cr_assert_str_eq(jstr(o->json, "choices.0.message.content"), "a fixed answer");
    cr_assert_eq(jint(o->json, "usage.completion_tokens"), 3);
    cr_assert_str_eq(jstr(a->json, "content.0.text"), "a fixed answer");
    cr_assert_eq(jint(a->json, "usage.output_tokens"), 3);
    reply_free(o);
    reply_free(a);
}

Test(mock, status_500_error_bodies)
{
    set("broken", "{\"mode\":\"status\",\"status\":500}");
    reply *o = chat("openai", "broken", "hi", 5000);
    cr_assert_eq(o->status, 500);
    cr_assert_str_eq(jstr(o->json, "error.type"), "server_error");
    cr_assert_not_null(jstr(o->json, "error.message"));
    cr_assert_not_null(strstr(o->body.data, "\"code\":null"));
    reply *a = chat("anthropic", "broken", "hi", 5000);
    cr_assert_eq(a->status, 500);
    cr_assert_str_eq(jstr(a->json, "type"), "error");
    cr_assert_str_eq(jstr(a->json, "error.type"), "api_error");
    cr_assert_not_null(jstr(a->json, "error.message"));
    cr_assert_str_eq(a->retry_after, "");
    reply_free(o);
    reply_free(a);
}

Test(mock, rate_limit_429_with_retry_after)
{
    set("limited", "{\"mode\":\"status\",\"status\":429,\"retry_after\":\"7\"}");
    const char *dialects[] = {"openai", "anthropic"};
    for (int i = 0; i < 2; i++) {
        reply *r = chat(dialects[i], "limited", "hi", 5000);
        cr_assert_eq(r->status, 429, "%s", dialects[i]);
        cr_assert_str_eq(r->retry_after, "7");
        cr_assert_str_eq(jstr(r->json, "error.type"), "rate_limit_error");
        reply_free(r);
    }
}

Test(mock, overloaded_529)
{
    set("busy", "{\"mode\":\"status\",\"status\":529}");
    reply *a = chat("anthropic", "busy", "hi", 5000);
    cr_assert_eq(a->status, 529);
    cr_assert_str_eq(jstr(a->json, "error.type"), "overloaded_error");
    reply *o = chat("openai", "busy", "hi", 5000);
    cr_assert_eq(o->status, 529);
    cr_assert_str_eq(jstr(o->json, "error.type"), "server_error");
    reply_free(a);
    reply_free(o);
}

Test(mock, error_type_message_code_override)
{
    set("ctx",
        "{\"mode\":\"status\",\"status\":400,\"error_type\":\"context_length_exceeded\","
        "\"error_message\":\"prompt is too long\",\"error_code\":\"context_length_exceeded\"}");
    reply *o = chat("openai", "ctx", "hi", 5000);
    cr_assert_eq(o->status, 400);
    cr_assert_str_eq(jstr(o->json, "error.type"), "context_length_exceeded");
    cr_assert_str_eq(jstr(o->json, "error.message"), "prompt is too long");
    cr_assert_str_eq(jstr(o->json, "error.code"), "context_length_exceeded");
    reply *a = chat("anthropic", "ctx", "hi", 5000);
    cr_assert_str_eq(jstr(a->json, "error.type"), "context_length_exceeded");
    cr_assert_str_eq(jstr(a->json, "error.message"), "prompt is too long");
    reply_free(o);
    reply_free(a);
}

Test(mock, hang_until_client_times_out_then_freed)
{
    set("stuck", "{\"mode\":\"hang\"}");
    const char *dialects[] = {"openai", "anthropic"};
    for (int i = 0; i < 2; i++) {
        reply *r = chat(dialects[i], "stuck", "hi", 400);
        cr_assert_eq(r->rc, CURLE_OPERATION_TIMEDOUT, "%s: %s", dialects[i],
                     curl_easy_strerror(r->rc));
        cr_assert_eq(r->status, 0);
        cr_assert_eq(r->body.len, 0);
        cr_assert_geq(r->ms, 390);
        cr_assert_lt(r->ms, 2000);
        reply_free(r);
    }
    cr_assert(th_wait_for(nothing_pending, NULL, 100, 10), "hung requests were not released");
}

Test(mock, many_hung_clients_leave)
{
    set("stuck", "{\"mode\":\"hang\"}");
    enum { N = 200 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = raw_chat("stuck");
    pending_wait w = {.want = N};
    cr_assert(th_wait_for(pending_reached, &w, 201, 10), "pending %ld, want %ld", w.seen, w.want);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    cr_assert(th_wait_for(nothing_pending, NULL, 200, 10));
}

Test(mock, drip_trickles_a_valid_chunked_body)
{
    set("slowdrip", "{\"mode\":\"drip\",\"drip_bytes\":64,\"drip_interval_ms\":40}");
    const char *dialects[] = {"openai", "anthropic"};
    for (int i = 0; i < 2; i++) {
        reply *r = chat(dialects[i], "slowdrip", "hi", 5000);
        cr_assert_eq(r->status, 200);
        cr_assert(r->chunked, "drip must be a chunked body");
        cr_assert_not_null(r->json, "drip body must be valid JSON: %s", r->body.data);
        long ticks = (long)((r->body.len + 63) / 64);
        cr_assert_gt(ticks, 3);
        cr_assert_geq(r->ms, ticks * 40 - 5, "%ld ms for %ld ticks", (long)r->ms, ticks);
        reply_free(r);
    }
    cr_assert_eq(stat_of("slowdrip", "ok"), 2);
}

Test(mock, drip_client_leaves_midway)
{
    set("slowdrip", "{\"mode\":\"drip\",\"drip_interval_ms\":20}");
    reply *r = chat("openai", "slowdrip", "hi", 150);
    cr_assert_eq(r->rc, CURLE_OPERATION_TIMEDOUT);
    cr_assert_gt(r->body.len, 0);
    reply_free(r);
    cr_assert(th_wait_for(nothing_pending, NULL, 100, 10));
}

Test(mock, reset_gives_no_response)
{
    set("rst", "{\"mode\":\"reset\"}");
    const char *dialects[] = {"openai", "anthropic"};
    for (int i = 0; i < 2; i++) {
        reply *r = chat(dialects[i], "rst", "hi", 5000);
        cr_assert(r->rc == CURLE_RECV_ERROR || r->rc == CURLE_GOT_NOTHING, "%s: %s", dialects[i],
                  curl_easy_strerror(r->rc));
        cr_assert_eq(r->status, 0);
        reply_free(r);
    }
    cr_assert(th_wait_for(nothing_pending, NULL, 100, 10));
}

Test(mock, truncated_is_half_a_reply)
{
    set("cut", "{\"mode\":\"truncated\"}");
    reply *o = chat("openai", "cut", "hi", 5000);
    cr_assert_eq(o->status, 200);
    cr_assert_str_eq(o->content_type, "application/json");
    cr_assert_null(o->json, "truncated body parsed: %s", o->body.data);
    cr_assert_eq(strncmp(o->body.data, "{\"id\":\"chatcmpl-mock-", 20), 0);
    reply *a = chat("anthropic", "cut", "hi", 5000);
    cr_assert_eq(a->status, 200);
    cr_assert_null(a->json);
    cr_assert_eq(strncmp(a->body.data, "{\"id\":\"msg_mock_", 15), 0);
    reply_free(o);
    reply_free(a);
}

Test(mock, html_proxy_page)
{
    set("proxy", "{\"mode\":\"html\"}");
    const char *dialects[] = {"openai", "anthropic"};
    for (int i = 0; i < 2; i++) {
        reply *r = chat(dialects[i], "proxy", "hi", 5000);
        cr_assert_eq(r->status, 200);
        cr_assert_str_eq(r->content_type, "text/html");
        cr_assert_str_eq(r->body.data, "<html><body><h1>502 Bad Gateway</h1></body></html>");
        reply_free(r);
    }
}

Test(mock, missing_answer)
{
    set("hollow", "{\"mode\":\"missing\"}");
    reply *o = chat("openai", "hollow", "hi", 5000);
    cr_assert_eq(o->status, 200);
    cr_assert_str_eq(o->body.data, "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[]}");
    reply *a = chat("anthropic", "hollow", "hi", 5000);
    cr_assert_eq(a->status, 200);
    cr_assert_str_eq(a->body.data,
                     "{\"id\":\"x\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[]}");
    reply_free(o);
    reply_free(a);
}

Test(mock, empty_answer)
{
    set("blank", "{\"mode\":\"empty\"}");
    reply *o = chat("openai", "blank", "hi", 5000);
    cr_assert_eq(o->status, 200);
    cr_assert_str_eq(jstr(o->json, "choices.0.message.content"), "");
    cr_assert_eq(jint(o->json, "usage.completion_tokens"), 0);
    reply *a = chat("anthropic", "blank", "hi", 5000);
    cr_assert_str_eq(jstr(a->json, "content.0.text"), "");
    cr_assert_eq(jint(a->json, "usage.output_tokens"), 0);
    reply_free(o);
    reply_free(a);
}

Test(mock, oversized_exact_size)
{
    set("huge", "{\"mode\":\"oversized\",\"bytes\":1048576}");
    const char *dialects[] = {"openai", "anthropic"};
    for (int i = 0; i < 2; i++) {
        reply *r = chat(dialects[i], "huge", "hi", 5000);
        cr_assert_eq(r->status, 200);
        cr_assert_eq(r->body.len, 1048576, "%s: %zu bytes", dialects[i], r->body.len);
        cr_assert_not_null(r->json, "oversized body must stay valid JSON");
        const char *text = jstr(r->json, i == 0 ? "choices.0.message.content" : "content.0.text");
        cr_assert_eq(strncmp(text, "echo: hi lorem ipsum", 20), 0);
        reply_free(r);
    }
    set("huge", "{\"mode\":\"oversized\"}");
    reply *r = chat("openai", "huge", "hi", 5000);
    cr_assert_eq(r->body.len, 8388608);
    reply_free(r);
}

Test(mock, fail_first_then_ok)
{
    set("flaky", "{\"fail_first\":2,\"retry_after\":\"1\"}");
    for (int i = 0; i < 2; i++) {
        reply *r = chat("openai", "flaky", "hi", 5000);
        cr_assert_eq(r->status, 503, "request %d", i);
        cr_assert_str_eq(r->retry_after, "1");
        cr_assert_str_eq(jstr(r->json, "error.type"), "server_error");
        reply_free(r);
    }
    for (int i = 0; i < 2; i++) {
        reply *r = chat("openai", "flaky", "hi", 5000);
        cr_assert_eq(r->status, 200);
        reply_free(r);
    }
    set("flaky2", "{\"fail_first\":1,\"fail_status\":429}");
    reply *a = chat("anthropic", "flaky2", "hi", 5000);
    cr_assert_eq(a->status, 429);
    cr_assert_str_eq(jstr(a->json, "error.type"), "rate_limit_error");
    reply_free(a);
    a = chat("anthropic", "flaky2", "hi", 5000);
    cr_assert_eq(a->status, 200);
    reply_free(a);
    cr_assert_eq(stat_of("flaky", "failed"), 2);
    cr_assert_eq(stat_of("flaky", "ok"), 2);
}

Test(mock, fail_first_of_default_counts_per_model)
{
    set(NULL, "{\"fail_first\":1}");
    const char *models[] = {"one", "two"};
    for (int i = 0; i < 2; i++) {
        reply *r = chat("openai", models[i], "hi", 5000);
        cr_assert_eq(r->status, 503, "%s", models[i]);
        reply_free(r);
        r = chat("openai", models[i], "hi", 5000);
        cr_assert_eq(r->status, 200, "%s", models[i]);
        reply_free(r);
    }
}

Test(mock, latency_delays_every_answer)
{
    set("lag", "{\"latency_ms\":250}");
    reply *r = chat("openai", "lag", "hi", 5000);
    cr_assert_eq(r->status, 200);
    cr_assert_geq(r->ms, 245);
    reply_free(r);
    set("lag", "{\"mode\":\"status\",\"status\":503,\"latency_ms\":200}");
    r = chat("anthropic", "lag", "hi", 5000);
    cr_assert_eq(r->status, 503);
    cr_assert_geq(r->ms, 195);
    reply_free(r);
    /* A client that gives up during the delay is forgotten. */
    set("lag", "{\"latency_ms\":2000}");
    r = chat("openai", "lag", "hi", 100);
    cr_assert_eq(r->rc, CURLE_OPERATION_TIMEDOUT);
    reply_free(r);
    cr_assert(th_wait_for(nothing_pending, NULL, 100, 10));
}

typedef struct bad_case {
    const char *path;           /* endpoint */
    const char *const *headers; /* request headers */
    const char *body;           /* request body */
    long status;                /* expected status */
    const char *message;        /* expected substring of error.message */
} bad_case;

static const char *const no_auth[] = {"Content-Type: application/json", NULL};
static const char *const anthropic_no_version[] = {"x-api-key: k", NULL};
static const char *const bad_bearer[] = {"Authorization: Bearer ", NULL};

#define OA      "/v1/chat/completions"
#define AN      "/v1/messages"
#define EM      "/v1/embeddings"
#define OK_MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static const bad_case bad_cases[] = {
    {OA, openai_hdrs, "not json", 400, "body"},
    {OA, openai_hdrs, "[1,2]", 400, "body"},
    {OA, openai_hdrs, "{\"messages\":[]}", 400, "model"},
    {OA, openai_hdrs, "{\"model\":\"\"," OK_MSGS "}", 400, "model"},
    {OA, openai_hdrs, "{\"model\":7," OK_MSGS "}", 400, "model"},
    {OA, no_auth, "{\"model\":\"v\"," OK_MSGS "}", 401, "Authorization"},
    {OA, bad_bearer, "{\"model\":\"v\"," OK_MSGS "}", 401, "Authorization"},
    {OA, openai_hdrs, "{\"model\":\"v\"}", 400, "messages"},
    {OA, openai_hdrs, "{\"model\":\"v\",\"messages\":[]}", 400, "messages"},
    {OA, openai_hdrs, "{\"model\":\"v\",\"messages\":[\"hi\"]}", 400, "messages[0]"},
    {OA, openai_hdrs, "{\"model\":\"v\",\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", 400,
     "messages[0].role"},
    {OA, openai_hdrs, "{\"model\":\"v\",\"messages\":[{\"role\":\"user\",\"content\":3}]}", 400,
     "messages[0].content"},
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"max_tokens\":0}", 400, "max_tokens"},
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"max_tokens\":\"9\"}", 400, "max_tokens"},
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"temperature\":2.5}", 400, "temperature"},
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"temperature\":\"hot\"}", 400, "temperature"},
    {AN, no_auth, "{\"model\":\"v\",\"max_tokens\":5," OK_MSGS "}", 401, "x-api-key"},
    {AN, anthropic_no_version, "{\"model\":\"v\",\"max_tokens\":5," OK_MSGS "}", 400,
     "anthropic-version"},
    {AN, anthropic_hdrs, "{\"model\":\"v\"," OK_MSGS "}", 400, "max_tokens"},
    {AN, anthropic_hdrs, "{\"model\":\"v\",\"max_tokens\":-1," OK_MSGS "}", 400, "max_tokens"},
    {AN, anthropic_hdrs, "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[]}", 400, "messages"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
     400, "messages[0].role"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"}]}",
     400, "first message must be user"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
     "{\"role\":\"user\",\"content\":\"y\"}]}",
     400, "alternate"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
     "[{\"type\":\"image\"}]}]}",
     400, "messages[0].content"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[]}]}", 400,
     "messages[0].content"},
    {AN, anthropic_hdrs, "{\"model\":\"v\",\"max_tokens\":5,\"system\":7," OK_MSGS "}", 400,
     "system"},
    {AN, anthropic_hdrs, "{\"model\":\"v\",\"max_tokens\":5,\"temperature\":1.5," OK_MSGS "}", 400,
     "temperature"},
    /* What real apps send: tools, tool results, parts, unknown fields, stop sequences. */
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"temprature\":1}", 400,
     "Unrecognized request argument supplied: temprature"},
    {OA, openai_hdrs,
     "{\"model\":\"v\"," OK_MSGS ",\"tools\":[{\"type\":\"function\","
     "\"function\":{\"name\":\"bad name\"}}]}",
     400, "Invalid schema for function"},
    {OA, openai_hdrs,
     "{\"model\":\"v\"," OK_MSGS ",\"tools\":[{\"type\":\"function\","
     "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"array\"}}}]}",
     400, "Invalid schema"},
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"tool_choice\":\"auto\"}", 400, "tool_choice"},
    {OA, openai_hdrs,
     "{\"model\":\"v\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
     "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r\"}]}",
     400, "must be a response to a preceding message with 'tool_calls'"},
    {OA, openai_hdrs,
     "{\"model\":\"v\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
     "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
     "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
     400, "must be followed by tool messages"},
    {OA, openai_hdrs,
     "{\"model\":\"v\",\"messages\":[{\"role\":\"user\",\"content\":"
     "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x\"}}]}]}",
     400, "messages[0].content"},
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"max_tokens\":5,\"max_completion_tokens\":5}",
     400, "not both"},
    {AN, anthropic_hdrs, "{\"model\":\"v\",\"max_tokens\":5," OK_MSGS ",\"seed\":1}", 400,
     "seed: Extra inputs are not permitted"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5," OK_MSGS ",\"stop_sequences\":[\" \"]}", 400,
     "stop_sequences"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5," OK_MSGS ",\"tools\":[{\"name\":\"f\","
     "\"input_schema\":{\"type\":\"string\"}}]}",
     400, "input_schema"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5," OK_MSGS ",\"tools\":[{\"name\":\"f\","
     "\"input_schema\":{\"type\":\"object\"}}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"g\"}}",
     400, "tool_choice"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"r\"}]}]}",
     400, "unexpected tool_use_id found in tool_result blocks: toolu_1"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":\"x\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":"
     "\"toolu_1\",\"name\":\"f\",\"input\":{}}]},{\"role\":\"user\",\"content\":\"no result\"}]}",
     400, "tool_use ids were found without tool_result blocks"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"text\",\"text\":\"  \"}]}]}",
     400, "messages[0].content"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
     "\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
     "\"image/bmp\",\"data\":\"AA\"}}]}]}",
     400, "messages[0].content"},
    /* Streaming flags. */
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"stream_options\":{\"include_usage\":true}}",
     400, "'stream_options' parameter is only allowed when 'stream' is enabled"},
    {OA, openai_hdrs,
     "{\"model\":\"v\"," OK_MSGS ",\"stream\":false,\"stream_options\":{\"include_usage\":true}}",
     400, "only allowed when 'stream' is enabled"},
    {OA, openai_hdrs,
     "{\"model\":\"v\"," OK_MSGS ",\"stream\":true,\"stream_options\":{\"include_usage\":1}}", 400,
     "stream_options"},
    {OA, openai_hdrs, "{\"model\":\"v\"," OK_MSGS ",\"stream\":\"yes\"}", 400, "stream"},
    {AN, anthropic_hdrs, "{\"model\":\"v\",\"max_tokens\":5," OK_MSGS ",\"stream\":1}", 400,
     "stream"},
    {AN, anthropic_hdrs,
     "{\"model\":\"v\",\"max_tokens\":5," OK_MSGS ",\"stream\":true,\"stream_options\":{}}", 400,
     "stream_options: Extra inputs are not permitted"},
    {EM, no_auth, "{\"model\":\"v\",\"input\":\"x\"}", 401, "Authorization"},
    {EM, openai_hdrs, "{\"model\":\"v\"}", 400, "input"},
    {EM, openai_hdrs, "{\"model\":\"v\",\"input\":[]}", 400, "input"},
    {EM, openai_hdrs, "{\"model\":\"v\",\"input\":[\"a\",1]}", 400, "input"},
    {EM, openai_hdrs, "{\"model\":\"v\",\"input\":\"a\",\"dimensions\":5000}", 400, "dimensions"},
};

Test(mock, validation_rejects_each_rule)
{
    long named = 0;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const bad_case *c = &bad_cases[i];
        reply *r = request("POST", c->path, c->headers, c->body, 5000);
        cr_assert_eq(r->status, c->status, "case %zu %s %s: got %ld %s", i, c->path, c->body,
                     r->status, r->body.data);
        const char *msg = jstr(r->json, "error.message");
        cr_assert_not_null(msg, "case %zu: no error.message in %s", i, r->body.data);
        cr_assert_not_null(strstr(msg, c->message), "case %zu: '%s' lacks '%s'", i, msg,
                           c->message);
        const char *type = jstr(r->json, "error.type");
        cr_assert_str_eq(type, c->status == 401 ? "authentication_error" : "invalid_request_error",
                         "case %zu", i);
        if (strcmp(c->path, AN) == 0)
            cr_assert_str_eq(jstr(r->json, "type"), "error", "case %zu", i);
        if (strstr(c->body, "\"model\":\"v\"") != NULL)
            named++;
        reply_free(r);
    }
    cr_assert_eq(stat_of("v", "invalid"), named);
    cr_assert_eq(stat_of("v", "requests"), named);
    cr_assert_eq(stat_of("v", "ok") + stat_of("v", "failed"), 0);
}

Test(mock, wrong_method_and_unknown_path)
{
    reply *r = request("GET", "/v1/chat/completions", openai_hdrs, NULL, 5000);
    cr_assert_eq(r->status, 405);
    reply_free(r);
    r = request("PUT", "/v1/messages", anthropic_hdrs, "{}", 5000);
    cr_assert_eq(r->status, 405);
    cr_assert_str_eq(jstr(r->json, "type"), "error");
    reply_free(r);
    r = request("POST", "/v2/chat/completions", openai_hdrs, "{}", 5000);
    cr_assert_eq(r->status, 404);
    reply_free(r);
    r = request("POST", "/chat/completions", openai_hdrs, "{}", 5000);
    cr_assert_eq(r->status, 404);
    reply_free(r);
}

Test(mock, flip_ok_503_ok_at_run_time)
{
    reply *r = chat("openai", "flip", "hi", 5000);
    cr_assert_eq(r->status, 200);
    reply_free(r);
    set("flip", "{\"mode\":\"status\",\"status\":503}");
    r = chat("openai", "flip", "hi", 5000);
    cr_assert_eq(r->status, 503);
    reply_free(r);
    set("flip", "{\"mode\":\"ok\"}");
    r = chat("openai", "flip", "hi", 5000);
    cr_assert_eq(r->status, 200);
    reply_free(r);
    cr_assert_eq(th_mock_requests(&mock, "flip"), 3);
}

Test(mock, stats_counters)
{
    set("counted", "{\"fail_first\":1}");
    reply *r;
    for (int i = 0; i < 3; i++) {
        r = chat(i % 2 ? "anthropic" : "openai", "counted", "hi", 5000);
        reply_free(r);
    }
    r = post_openai("{\"model\":\"counted\"}");
    reply_free(r);
    r = post_openai("nope");
    reply_free(r);
    json_object *s = stats();
    cr_assert_eq(jint(s, "total"), 5);
    cr_assert_eq(jint(s, "pending"), 0);
    cr_assert_eq(jint(s, "models.counted.requests"), 4);
    cr_assert_eq(jint(s, "models.counted.ok"), 2);
    cr_assert_eq(jint(s, "models.counted.failed"), 1);
    cr_assert_eq(jint(s, "models.counted.invalid"), 1);
    json_object_put(s);
    cr_assert_eq(th_mock_requests(&mock, "counted"), 4);
    cr_assert_eq(th_mock_requests(&mock, "never-asked"), 0);
}

Test(mock, last_request_recorded)
{
    reply *r = request("GET", "/_mock/last/lastm", NULL, NULL, 5000);
    cr_assert_eq(r->status, 404);
    reply_free(r);
    reply_free(chat("anthropic", "lastm", "remember me", 5000));
    r = request("GET", "/_mock/last/lastm", NULL, NULL, 5000);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(jstr(r->json, "path"), "/v1/messages");
    cr_assert_str_eq(jstr(r->json, "headers.x-api-key"), "test-key");
    cr_assert_str_eq(jstr(r->json, "headers.anthropic-version"), "2023-06-01");
    cr_assert_str_eq(jstr(r->json, "headers.content-type"), "application/json");
    cr_assert_str_eq(jstr(r->json, "body.model"), "lastm");
    cr_assert_eq(jint(r->json, "body.max_tokens"), 64);
    cr_assert_str_eq(jstr(r->json, "body.messages.0.content"), "remember me");
    reply_free(r);
    reply_free(chat("openai", "lastm", "second", 5000));
    r = request("GET", "/_mock/last/lastm", NULL, NULL, 5000);
    cr_assert_str_eq(jstr(r->json, "path"), "/v1/chat/completions");
    cr_assert_str_eq(jstr(r->json, "headers.authorization"), "Bearer test-key");
    cr_assert_str_eq(jstr(r->json, "body.messages.0.content"), "second");
    reply_free(r);
}

Test(mock, embeddings_deterministic_and_sized)
{
    reply *a = post_embeddings("{\"model\":\"emb\",\"input\":\"the same text\"}");
    reply *b = post_embeddings("{\"model\":\"emb\",\"input\":[\"other text\",\"the same text\"]}");
    cr_assert_eq(a->status, 200);
    cr_assert_eq(b->status, 200);
    cr_assert_str_eq(jstr(a->json, "object"), "list");
    cr_assert_str_eq(jstr(a->json, "data.0.object"), "embedding");
    cr_assert_str_eq(jstr(a->json, "model"), "emb");
    cr_assert_eq(jint(a->json, "usage.prompt_tokens"), 3);
    cr_assert_eq(jint(a->json, "usage.total_tokens"), 3);
    json_object *va = jget(a->json, "data.0.embedding");
    cr_assert_eq(json_object_array_length(va), 64);
    cr_assert_eq(jint(b->json, "data.1.index"), 1);
    cr_assert_str_eq(json_object_to_json_string(va),
                     json_object_to_json_string(jget(b->json, "data.1.embedding")));
    cr_assert_str_neq(json_object_to_json_string(va),
                      json_object_to_json_string(jget(b->json, "data.0.embedding")));
    double norm = 0;
    for (size_t i = 0; i < 64; i++) {
        double x = json_object_get_double(json_object_array_get_idx(va, i));
        norm += x * x;
    }
    cr_assert_float_eq(sqrt(norm), 1.0, 1e-9);
    reply_free(a);
    reply_free(b);
    reply *d = post_embeddings("{\"model\":\"emb\",\"input\":\"x\",\"dimensions\":8}");
    cr_assert_eq(json_object_array_length(jget(d->json, "data.0.embedding")), 8);
    reply_free(d);
}

Test(mock, control_rejects_bad_behaviours)
{
    const char *bad[] = {
        "{\"mode\":\"explode\"}",
        "{\"mode\":7}",
        "{\"latency_ms\":\"slow\"}",
        "{\"latency_ms\":-1}",
        "{\"status\":200}",
        "{\"retry_after\":\"1\\r\\nX-Evil: 1\"}",
        "{\"colour\":\"red\"}",
        "{\"stream_fault\":\"explode\"}",
        "{\"stream_fault\":1}",
        "{\"chunk_interval_ms\":60001}",
        "{\"chunk_interval_ms\":-1}",
        "{\"fault_after\":100001}",
        "{\"stall_pings\":\"yes\"}",
        "[]",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reply *r = request("POST", "/_mock/models/m", NULL, bad[i], 5000);
        cr_assert_eq(r->status, 400, "%s: %ld", bad[i], r->status);
        cr_assert_not_null(jstr(r->json, "error"), "%s", bad[i]);
        reply_free(r);
    }
    reply *r = request("GET", "/_mock/models/m", NULL, NULL, 5000);
    cr_assert_eq(r->status, 405);
    reply_free(r);
    r = request("POST", "/_mock/stats", NULL, "{}", 5000);
    cr_assert_eq(r->status, 405);
    reply_free(r);
    r = request("GET", "/_mock/nothing", NULL, NULL, 5000);
    cr_assert_eq(r->status, 404);
    reply_free(r);
    /* The model's behaviour is unchanged by the rejected updates. */
    r = chat("openai", "m", "hi", 5000);
    cr_assert_eq(r->status, 200);
    reply_free(r);
}

Test(mock, keep_alive_reuses_one_connection)
{
    set("lagging", "{\"latency_ms\":20}");
    CURL *h = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", mock.port);
    struct curl_slist *hl = NULL;
    for (size_t i = 0; openai_hdrs[i] != NULL; i++)
        hl = curl_slist_append(hl, openai_hdrs[i]);
    pb_buf sink;
    pb_buf_init(&sink, 1 << 20);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, th_http_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    long connects = 0;
    for (int i = 0; i < 40; i++) {
        const char *model = i % 4 == 0 ? "lagging" : "fast";
        char *body = pb_xasprintf(
            "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"n%d\"}]}", model, i);
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
        free(body);
        cr_assert_eq(curl_easy_perform(h), CURLE_OK);
        long status, n;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &n);
        cr_assert_eq(status, 200);
        connects += n;
    }
    cr_assert_eq(connects, 1, "keep-alive broken: %ld connects", connects);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    pb_buf_free(&sink);
}

Test(mock, sigterm_exits_cleanly_with_requests_held)
{
    set("stuck", "{\"mode\":\"hang\"}");
    set("slowdrip", "{\"mode\":\"drip\",\"drip_interval_ms\":50}");
    set("lag", "{\"latency_ms\":5000}");
    set("stall", "{\"stream_fault\":\"stall\",\"fault_after\":0}");
    set("dribble", "{\"chunk_interval_ms\":1000}");
    int fds[5] = {raw_chat("stuck"), raw_chat("slowdrip"), raw_chat("lag"),
                  raw_chat_with("stall", ",\"stream\":true"),
                  raw_chat_with("dribble", ",\"stream\":true")};
    pending_wait w = {.want = 5};
    cr_assert(th_wait_for(pending_reached, &w, 201, 10), "pending %ld, want %ld", w.seen, w.want);
    int st = th_proc_stop(&mock, 5000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
}

/* Streams ("stream": true). The SSE body is split into events and each is checked in
 * order: these are the shapes planb's stream parsers must accept. */

#define SSE_MAX_EVENTS 8192 /* the mock sends at most 4096 content events per block */

typedef struct sse_event {
    char type[48];     /* the "event:" line (Anthropic), "" when absent */
    char *data;        /* the "data:" line (owned) */
    json_object *json; /* data parsed, NULL when it is not JSON ([DONE], a malformed line) */
} sse_event;

typedef struct sse {
    sse_event ev[SSE_MAX_EVENTS]; /* in order of arrival */
    size_t n;                     /* events */
    bool tail;                    /* bytes after the last blank line (an unfinished event) */
} sse;

/* Splits an SSE body into its events (blank-line separated). Caller frees with sse_free. */
static sse *
sse_parse(const char *body)
{
    sse *s = pb_xcalloc(1, sizeof(*s));
    const char *p = body;
    while (*p != '\0') {
        const char *end = strstr(p, "\n\n");
        if (end == NULL) {
            s->tail = true;
            break;
        }
        cr_assert_lt(s->n, SSE_MAX_EVENTS);
        sse_event *e = &s->ev[s->n++];
        for (const char *line = p; line < end;) {
            const char *nl = memchr(line, '\n', (size_t)(end - line));
            size_t len = (size_t)((nl != NULL ? nl : end) - line);
            if (len > 7 && strncmp(line, "event: ", 7) == 0)
                snprintf(e->type, sizeof(e->type), "%.*s", (int)(len - 7), line + 7);
            else if (len > 6 && strncmp(line, "data: ", 6) == 0 && e->data == NULL)
                e->data = pb_xstrndup(line + 6, len - 6);
            else
                cr_assert_fail("not an SSE line: %.*s", (int)len, line);
            line += len + 1;
        }
        cr_assert_not_null(e->data, "an event without data: %.*s", (int)(end - p), p);
        e->json = json_tokener_parse(e->data);
        p = end + 2;
    }
    return s;
}

static void
sse_free(sse *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->ev[i].json != NULL)
            json_object_put(s->ev[i].json);
        free(s->ev[i].data);
    }
    free(s);
}

/* The event of s at i when it is an OpenAI content chunk: its delta.content, else NULL. */
static const char *
sse_openai_text(const sse *s, size_t i)
{
    return i < s->n ? jstr(s->ev[i].json, "choices.0.delta.content") : NULL;
}

/* Concatenates the text an OpenAI stream carries; *chunks counts the non-empty pieces. */
static void
sse_openai_join(const sse *s, pb_buf *out, int *chunks)
{
    *chunks = 0;
    pb_buf_append(out, "", 0);
    for (size_t i = 0; i < s->n; i++) {
        const char *t = sse_openai_text(s, i);
        if (t != NULL && *t != '\0') {
            pb_buf_append(out, t, strlen(t));
            (*chunks)++;
        }
    }
}

/* Concatenates an Anthropic stream's text_delta texts (or input_json_delta partial_json of
 * block index); *chunks counts the deltas. */
static void
sse_anthropic_join(const sse *s, long index, pb_buf *out, int *chunks)
{
    *chunks = 0;
    pb_buf_append(out, "", 0);
    for (size_t i = 0; i < s->n; i++) {
        json_object *j = s->ev[i].json;
        if (strcmp(s->ev[i].type, "content_block_delta") != 0 || jint(j, "index") != index)
            continue;
        const char *t = jstr(j, "delta.text");
        if (t == NULL)
            t = jstr(j, "delta.partial_json");
        cr_assert_not_null(t, "delta without text: %s", s->ev[i].data);
        pb_buf_append(out, t, strlen(t));
        (*chunks)++;
    }
}

/* True when t is one word with the whitespace after it (none inside). */
static bool
one_word(const char *t)
{
    size_t n = strcspn(t, " ");
    return n > 0 && t[n + strspn(t + n, " ")] == '\0';
}

/* A one-message chat with "stream": true and extra fields (",..." or ""). */
static reply *
stream_chat(const char *dialect, const char *model, const char *content, const char *extra,
            long timeout_ms)
{
    char *body = pb_xasprintf("{\"model\":\"%s\",\"max_tokens\":64,\"stream\":true%s,"
                              "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
                              model, extra, content);
    bool oa = strcmp(dialect, "openai") == 0;
    reply *r = request("POST", oa ? "/v1/chat/completions" : "/v1/messages",
                       oa ? openai_hdrs : anthropic_hdrs, body, timeout_ms);
    free(body);
    return r;
}

static const char *const anthropic_order[] = {"message_start", "content_block_start", "ping"};

/* Asserts s is the whole Anthropic text stream: message_start, content_block_start,
 * ping, deltas, content_block_stop, message_delta, message_stop, each event's type
 * line matching its data's type. */
static void
assert_anthropic_frame(const sse *s, const char *stop_reason, long output_tokens)
{
    cr_assert_geq(s->n, 6);
    for (size_t i = 0; i < s->n; i++)
        cr_assert_str_eq(s->ev[i].type, jstr(s->ev[i].json, "type"), "event %zu: %s", i,
                         s->ev[i].data);
    for (size_t i = 0; i < 3; i++)
        cr_assert_str_eq(s->ev[i].type, anthropic_order[i], "event %zu", i);
    for (size_t i = 3; i < s->n - 3; i++)
        cr_assert_str_eq(s->ev[i].type, "content_block_delta", "event %zu", i);
    cr_assert_str_eq(s->ev[s->n - 3].type, "content_block_stop");
    cr_assert_str_eq(s->ev[s->n - 2].type, "message_delta");
    cr_assert_str_eq(s->ev[s->n - 1].type, "message_stop");
    json_object *d = s->ev[s->n - 2].json;
    cr_assert_str_eq(jstr(d, "delta.stop_reason"), stop_reason);
    cr_assert_not_null(strstr(s->ev[s->n - 2].data, "\"stop_sequence\":null"));
    cr_assert_eq(jint(d, "usage.output_tokens"), output_tokens);
}

Test(mock, stream_openai_text_same_answer_and_usage)
{
    const char *words = "the quick brown fox";
    reply *plain = chat("openai", "st", words, 5000);
    reply *r =
        stream_chat("openai", "st", words, ",\"stream_options\":{\"include_usage\":true}", 5000);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->content_type, "text/event-stream");
    cr_assert(r->chunked);
    sse *s = sse_parse(r->body.data);
    cr_assert_not(s->tail, "unterminated event: %s", r->body.data);
    /* role chunk, 6 words ("echo: the quick brown fox"... "echo:" is one), finish, usage, DONE */
    cr_assert_eq(s->n, 1 + 5 + 3, "%zu events: %s", s->n, r->body.data);
    json_object *first = s->ev[0].json;
    cr_assert_str_eq(jstr(first, "object"), "chat.completion.chunk");
    cr_assert_str_eq(jstr(first, "choices.0.delta.role"), "assistant");
    cr_assert_str_eq(jstr(first, "choices.0.delta.content"), "");
    cr_assert_str_eq(jstr(first, "model"), "st");
    cr_assert_eq(strncmp(jstr(first, "id"), "chatcmpl-mock-", 14), 0);
    for (size_t i = 0; i + 1 < s->n; i++) {
        cr_assert_not_null(s->ev[i].json, "event %zu not JSON: %s", i, s->ev[i].data);
        cr_assert_str_eq(jstr(s->ev[i].json, "id"), jstr(first, "id"));
        cr_assert_str_eq(jstr(s->ev[i].json, "object"), "chat.completion.chunk");
        cr_assert_str_eq(s->ev[i].type, "");
    }
    for (size_t i = 1; i <= 5; i++) {
        const char *t = sse_openai_text(s, i);
        cr_assert_not_null(t);
        cr_assert_null(jstr(s->ev[i].json, "choices.0.finish_reason"));
        cr_assert(one_word(t), "one word per chunk: '%s'", t);
    }
    pb_buf text;
    pb_buf_init(&text, 1 << 20);
    int chunks;
    sse_openai_join(s, &text, &chunks);
    cr_assert_str_eq(text.data, jstr(plain->json, "choices.0.message.content"));
    json_object *fin = s->ev[s->n - 3].json;
    cr_assert_str_eq(jstr(fin, "choices.0.finish_reason"), "stop");
    cr_assert_eq(json_object_object_length(jget(fin, "choices.0.delta")), 0);
    json_object *usage = s->ev[s->n - 2].json;
    cr_assert_eq(json_object_array_length(jget(usage, "choices")), 0);
    cr_assert_str_eq(json_object_to_json_string(jget(usage, "usage")),
                     json_object_to_json_string(jget(plain->json, "usage")));
    cr_assert_str_eq(s->ev[s->n - 1].data, "[DONE]");
    /* The earlier chunks carry "usage": null, as the real API does with include_usage. */
    cr_assert_not_null(strstr(s->ev[1].data, "\"usage\":null"));
    pb_buf_free(&text);
    sse_free(s);
    reply_free(r);
    reply_free(plain);
    cr_assert_eq(stat_of("st", "ok"), 2);
    cr_assert_eq(stat_of("st", "failed"), 0);
}

Test(mock, stream_openai_without_usage_and_finish_reason)
{
    set("fixed", "{\"reply\":\"a fixed  answer \",\"finish_reason\":\"length\"}");
    reply *r = stream_chat("openai", "fixed", "x", "", 5000);
    sse *s = sse_parse(r->body.data);
    pb_buf text;
    pb_buf_init(&text, 1 << 20);
    int chunks;
    sse_openai_join(s, &text, &chunks);
    cr_assert_str_eq(text.data, "a fixed  answer ");
    cr_assert_eq(chunks, 3, "%d chunks", chunks);
    cr_assert_str_eq(sse_openai_text(s, 2), "fixed  ");
    cr_assert_str_eq(jstr(s->ev[s->n - 2].json, "choices.0.finish_reason"), "length");
    cr_assert_str_eq(s->ev[s->n - 1].data, "[DONE]");
    cr_assert_null(strstr(r->body.data, "usage"), "no usage unless asked: %s", r->body.data);
    pb_buf_free(&text);
    sse_free(s);
    reply_free(r);
    set("fixed", "{\"reply\":\"a fixed answer\",\"finish_reason\":\"length\"}");
    r = stream_chat("anthropic", "fixed", "x", "", 5000);
    s = sse_parse(r->body.data);
    assert_anthropic_frame(s, "max_tokens", 3);
    sse_free(s);
    reply_free(r);
}

#define TOOLS_BEHAVIOUR                                                                            \
    "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"unit\":"       \
    "\"celsius\"}},{\"name\":\"get_time\",\"arguments\":{\"tz\":\"Europe/Paris\"}}]}"

Test(mock, stream_openai_tool_calls_in_pieces)
{
    set("tools", TOOLS_BEHAVIOUR);
    reply *plain = chat("openai", "tools", "weather?", 5000);
    reply *r = stream_chat("openai", "tools", "weather?",
                           ",\"stream_options\":{\"include_usage\":true}", 5000);
    cr_assert_eq(r->status, 200);
    sse *s = sse_parse(r->body.data);
    cr_assert_str_eq(jstr(s->ev[0].json, "choices.0.delta.role"), "assistant");
    cr_assert_null(jstr(s->ev[0].json, "choices.0.delta.content"));
    pb_buf args[2];
    int pieces[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        pb_buf_init(&args[k], 1 << 20);
        pb_buf_append(&args[k], "", 0);
    }
    size_t i = 1;
    for (; i < s->n && jget(s->ev[i].json, "choices.0.delta.tool_calls") != NULL; i++) {
        json_object *tc = jget(s->ev[i].json, "choices.0.delta.tool_calls.0");
        long k = jint(tc, "index");
        cr_assert(k == 0 || k == 1, "index %ld", k);
        const char *frag = jstr(tc, "function.arguments");
        cr_assert_not_null(frag, "%s", s->ev[i].data);
        if (pieces[k]++ == 0) {
            char want[64];
            snprintf(want, sizeof(want), "choices.0.message.tool_calls.%ld", k);
            json_object *call = jget(plain->json, want);
            cr_assert_str_eq(jstr(tc, "type"), "function");
            cr_assert_str_eq(jstr(tc, "function.name"), jstr(call, "function.name"));
            cr_assert_eq(strncmp(jstr(tc, "id"), "call_mock_", 10), 0);
            cr_assert_str_eq(frag, "");
        } else {
            cr_assert_null(jget(tc, "id"), "only the first piece has the id");
            cr_assert_null(jget(tc, "function.name"));
        }
        pb_buf_append(&args[k], frag, strlen(frag));
    }
    for (int k = 0; k < 2; k++) {
        char want[64];
        snprintf(want, sizeof(want), "choices.0.message.tool_calls.%d.function.arguments", k);
        cr_assert_str_eq(args[k].data, jstr(plain->json, want));
        cr_assert_gt(pieces[k], 2, "call %d arrived in %d pieces", k, pieces[k]);
        pb_buf_free(&args[k]);
    }
    cr_assert_eq(i, s->n - 3, "finish, usage, [DONE] after the pieces");
    cr_assert_str_eq(jstr(s->ev[i].json, "choices.0.finish_reason"), "tool_calls");
    cr_assert_str_eq(json_object_to_json_string(jget(s->ev[i + 1].json, "usage")),
                     json_object_to_json_string(jget(plain->json, "usage")));
    cr_assert_str_eq(s->ev[i + 2].data, "[DONE]");
    sse_free(s);
    reply_free(r);
    reply_free(plain);
}

Test(mock, stream_anthropic_text_same_answer_and_usage)
{
    reply *plain = chat("anthropic", "sa", "tell me a story", 5000);
    reply *r = stream_chat("anthropic", "sa", "tell me a story", "", 5000);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->content_type, "text/event-stream");
    sse *s = sse_parse(r->body.data);
    cr_assert_not(s->tail);
    assert_anthropic_frame(s, "end_turn", jint(plain->json, "usage.output_tokens"));
    json_object *m = jget(s->ev[0].json, "message");
    cr_assert_eq(strncmp(jstr(m, "id"), "msg_mock_", 9), 0);
    cr_assert_str_eq(jstr(m, "model"), "sa");
    cr_assert_str_eq(jstr(m, "role"), "assistant");
    cr_assert_eq(json_object_array_length(jget(m, "content")), 0);
    cr_assert_eq(jint(m, "usage.input_tokens"), jint(plain->json, "usage.input_tokens"));
    cr_assert_eq(jint(m, "usage.output_tokens"), 1);
    cr_assert_str_eq(jstr(s->ev[1].json, "content_block.type"), "text");
    cr_assert_str_eq(jstr(s->ev[1].json, "content_block.text"), "");
    cr_assert_eq(jint(s->ev[1].json, "index"), 0);
    pb_buf text;
    pb_buf_init(&text, 1 << 20);
    int chunks;
    sse_anthropic_join(s, 0, &text, &chunks);
    cr_assert_str_eq(text.data, jstr(plain->json, "content.0.text"));
    cr_assert_eq(chunks, 5); /* "echo: ", "tell ", "me ", "a ", "story" */
    cr_assert_str_eq(jstr(s->ev[3].json, "delta.type"), "text_delta");
    cr_assert_eq(jint(s->ev[s->n - 3].json, "index"), 0);
    pb_buf_free(&text);
    sse_free(s);
    reply_free(r);
    reply_free(plain);
    cr_assert_eq(stat_of("sa", "ok"), 2);
}

Test(mock, stream_anthropic_tool_use_blocks)
{
    set("tools", TOOLS_BEHAVIOUR);
    reply *plain = chat("anthropic", "tools", "weather?", 5000);
    reply *r = stream_chat("anthropic", "tools", "weather?", "", 5000);
    sse *s = sse_parse(r->body.data);
    cr_assert_str_eq(s->ev[0].type, "message_start");
    cr_assert_str_eq(s->ev[s->n - 1].type, "message_stop");
    cr_assert_str_eq(jstr(s->ev[s->n - 2].json, "delta.stop_reason"), "tool_use");
    cr_assert_eq(jint(s->ev[s->n - 2].json, "usage.output_tokens"),
                 jint(plain->json, "usage.output_tokens"));
    /* Per block: start (tool_use, id, name, input {}), input_json_delta pieces, stop. */
    for (long k = 0; k < 2; k++) {
        size_t start = 0, stop = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (jint(s->ev[i].json, "index") != k)
                continue;
            if (strcmp(s->ev[i].type, "content_block_start") == 0)
                start = i;
            if (strcmp(s->ev[i].type, "content_block_stop") == 0)
                stop = i;
        }
        cr_assert(start > 0 && stop > start, "block %ld: start %zu stop %zu", k, start, stop);
        char path[64];
        snprintf(path, sizeof(path), "content.%ld", k);
        json_object *want = jget(plain->json, path),
                    *blk = jget(s->ev[start].json, "content_block");
        cr_assert_str_eq(jstr(blk, "type"), "tool_use");
        cr_assert_eq(strncmp(jstr(blk, "id"), "toolu_mock_", 11), 0);
        cr_assert_str_eq(jstr(blk, "name"), jstr(want, "name"));
        cr_assert_eq(json_object_object_length(jget(blk, "input")), 0);
        pb_buf js;
        pb_buf_init(&js, 1 << 20);
        int chunks;
        sse_anthropic_join(s, k, &js, &chunks);
        cr_assert_gt(chunks, 1);
        for (size_t i = start + 1; i < stop; i++)
            if (strcmp(s->ev[i].type, "content_block_delta") == 0)
                cr_assert_str_eq(jstr(s->ev[i].json, "delta.type"), "input_json_delta");
        json_object *input = json_tokener_parse(js.data);
        cr_assert_not_null(input, "partial_json pieces do not join into JSON: %s", js.data);
        cr_assert(json_object_equal(input, jget(want, "input")), "%s", js.data);
        json_object_put(input);
        pb_buf_free(&js);
    }
    cr_assert_str_eq(s->ev[2].type, "ping");
    sse_free(s);
    reply_free(r);
    reply_free(plain);
}

Test(mock, stream_empty_answer_has_no_deltas)
{
    set("blank", "{\"mode\":\"empty\"}");
    reply *r = stream_chat("openai", "blank", "hi", "", 5000);
    sse *s = sse_parse(r->body.data);
    cr_assert_eq(s->n, 3, "role, finish, [DONE]: %s", r->body.data);
    cr_assert_str_eq(jstr(s->ev[1].json, "choices.0.finish_reason"), "stop");
    sse_free(s);
    reply_free(r);
    r = stream_chat("anthropic", "blank", "hi", "", 5000);
    s = sse_parse(r->body.data);
    assert_anthropic_frame(s, "end_turn", 0);
    cr_assert_eq(s->n, 6);
    sse_free(s);
    reply_free(r);
    cr_assert_eq(stat_of("blank", "failed"), 2);
}

Test(mock, stream_long_answer_has_bounded_events)
{
    enum { WORDS = 10000 };
    pb_buf b;
    pb_buf_init(&b, 1 << 20);
    pb_buf_append(&b, "{\"reply\":\"", 10);
    for (int i = 0; i < WORDS; i++)
        pb_buf_append(&b, "w ", 2);
    pb_buf_append(&b, "\"}", 2);
    set("long", b.data);
    pb_buf_free(&b);
    reply *r = stream_chat("openai", "long", "x", "", 5000);
    sse *s = sse_parse(r->body.data);
    pb_buf text;
    pb_buf_init(&text, 1 << 20);
    int chunks;
    sse_openai_join(s, &text, &chunks);
    cr_assert_eq(text.len, 2 * WORDS);
    cr_assert_leq(chunks, 4096);
    cr_assert_geq(chunks, 3000, "%d chunks", chunks);
    pb_buf_free(&text);
    sse_free(s);
    reply_free(r);
}

Test(mock, stream_chunk_interval_spaces_events)
{
    set("dribble", "{\"chunk_interval_ms\":60,\"latency_ms\":100}");
    const char *dialects[] = {"openai", "anthropic"};
    for (int i = 0; i < 2; i++) {
        reply *r = stream_chat(dialects[i], "dribble", "one two three", "", 5000);
        cr_assert_eq(r->status, 200);
        sse *s = sse_parse(r->body.data);
        cr_assert_gt(s->n, 5);
        cr_assert_geq(r->ms, 100 + (int64_t)(s->n - 1) * 60 - 5, "%s: %ld ms for %zu events",
                      dialects[i], (long)r->ms, s->n);
        sse_free(s);
        reply_free(r);
    }
    /* Without an interval the whole stream goes at once. */
    set("fast", "{}");
    reply *r = stream_chat("openai", "fast", "one two three four five six seven eight", "", 5000);
    cr_assert_lt(r->ms, 500);
    reply_free(r);
}

Test(mock, stream_client_leaves_midway)
{
    set("dribble", "{\"chunk_interval_ms\":50}");
    reply *r = stream_chat("anthropic", "dribble", "one two three four five six", "", 180);
    cr_assert_eq(r->rc, CURLE_OPERATION_TIMEDOUT);
    cr_assert_gt(r->body.len, 0);
    reply_free(r);
    cr_assert(th_wait_for(nothing_pending, NULL, 100, 10));
}

/* Counts the content events of an SSE body: OpenAI chunks with content or tool_calls, or
 * Anthropic content_block_delta events. */
static int
sse_content_events(const sse *s)
{
    int n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const char *t = sse_openai_text(s, i);
        n += (t != NULL && *t != '\0') || strcmp(s->ev[i].type, "content_block_delta") == 0;
    }
    return n;
}

Test(mock, stream_fault_error_before)
{
    set("eb", "{\"stream_fault\":\"error_before\"}");
    reply *o = stream_chat("openai", "eb", "one two three", "", 5000);
    cr_assert_eq(o->rc, CURLE_OK);
    cr_assert_eq(o->status, 200);
    cr_assert_str_eq(o->content_type, "text/event-stream");
    sse *s = sse_parse(o->body.data);
    cr_assert_eq(s->n, 1, "%s", o->body.data);
    cr_assert_str_eq(jstr(s->ev[0].json, "error.type"), "server_error");
    cr_assert_not_null(jstr(s->ev[0].json, "error.message"));
    sse_free(s);
    reply_free(o);
    set("eb", "{\"stream_fault\":\"error_before\",\"error_message\":\"Overloaded\"}");
    reply *a = stream_chat("anthropic", "eb", "one two three", "", 5000);
    cr_assert_eq(a->status, 200);
    s = sse_parse(a->body.data);
    cr_assert_eq(s->n, 1, "%s", a->body.data);
    cr_assert_str_eq(s->ev[0].type, "error");
    cr_assert_str_eq(jstr(s->ev[0].json, "type"), "error");
    cr_assert_str_eq(jstr(s->ev[0].json, "error.type"), "overloaded_error");
    cr_assert_str_eq(jstr(s->ev[0].json, "error.message"), "Overloaded");
    sse_free(s);
    reply_free(a);
    cr_assert_eq(stat_of("eb", "failed"), 2);
    cr_assert_eq(stat_of("eb", "ok"), 0);
}

Test(mock, stream_fault_error_mid_after_fault_after)
{
    set("em", "{\"stream_fault\":\"error_mid\",\"fault_after\":3}");
    reply *o = stream_chat("openai", "em", "one two three four five", "", 5000);
    cr_assert_eq(o->rc, CURLE_OK);
    sse *s = sse_parse(o->body.data);
    cr_assert_eq(s->n, 1 + 3 + 1, "%s", o->body.data);
    cr_assert_eq(sse_content_events(s), 3);
    cr_assert_str_eq(jstr(s->ev[s->n - 1].json, "error.type"), "server_error");
    sse_free(s);
    reply_free(o);
    reply *a = stream_chat("anthropic", "em", "one two three four five", "", 5000);
    s = sse_parse(a->body.data);
    cr_assert_eq(s->n, 3 + 3 + 1, "%s", a->body.data);
    cr_assert_eq(sse_content_events(s), 3);
    cr_assert_str_eq(s->ev[s->n - 1].type, "error");
    cr_assert_str_eq(jstr(s->ev[s->n - 1].json, "error.type"), "overloaded_error");
    sse_free(s);
    reply_free(a);
    /* fault_after past the answer: the error comes after the last content event. */
    set("em", "{\"stream_fault\":\"error_mid\",\"fault_after\":100}");
    o = stream_chat("openai", "em", "one two", "", 5000);
    s = sse_parse(o->body.data);
    cr_assert_eq(sse_content_events(s), 3);
    cr_assert_not_null(jget(s->ev[s->n - 1].json, "error"));
    cr_assert_null(strstr(o->body.data, "finish_reason\":\"stop"));
    sse_free(s);
    reply_free(o);
}

Test(mock, stream_fault_reset_mid)
{
    set("rm", "{\"stream_fault\":\"reset_mid\"}");
    const char *dialects[] = {"openai", "anthropic"};
    for (int i = 0; i < 2; i++) {
        reply *r = stream_chat(dialects[i], "rm", "one two three four", "", 5000);
        cr_assert(r->rc == CURLE_RECV_ERROR || r->rc == CURLE_PARTIAL_FILE, "%s: %s", dialects[i],
                  curl_easy_strerror(r->rc));
        sse *s = sse_parse(r->body.data);
        cr_assert_eq(sse_content_events(s), 2, "%s: %s", dialects[i], r->body.data);
        cr_assert_null(strstr(r->body.data, "[DONE]"));
        cr_assert_null(strstr(r->body.data, "message_stop"));
        sse_free(s);
        reply_free(r);
    }
    cr_assert(th_wait_for(nothing_pending, NULL, 100, 10));
    cr_assert_eq(stat_of("rm", "failed"), 2);
}

Test(mock, stream_fault_stall_until_client_timeout)
{
    set("stall", "{\"stream_fault\":\"stall\",\"fault_after\":1}");
    reply *r = stream_chat("openai", "stall", "one two three", "", 600);
    cr_assert_eq(r->rc, CURLE_OPERATION_TIMEDOUT, "%s", curl_easy_strerror(r->rc));
    cr_assert_eq(r->status, 0); /* curl reports no status for a timed-out transfer */
    cr_assert_geq(r->ms, 590);
    sse *s = sse_parse(r->body.data);
    cr_assert_eq(s->n, 2, "%s", r->body.data);
    cr_assert_eq(sse_content_events(s), 1);
    sse_free(s);
    reply_free(r);
    cr_assert(th_wait_for(nothing_pending, NULL, 100, 10), "a stalled stream was not released");
    /* Anthropic pings keep a stall alive but carry no content. */
    set("stall", "{\"stream_fault\":\"stall\",\"stall_pings\":true,\"chunk_interval_ms\":100}");
    r = stream_chat("anthropic", "stall", "one two three", "", 1000);
    cr_assert_eq(r->rc, CURLE_OPERATION_TIMEDOUT);
    s = sse_parse(r->body.data);
    cr_assert_eq(sse_content_events(s), 2);
    size_t last_delta = 0, pings_after = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->ev[i].type, "content_block_delta") == 0)
            last_delta = i;
        else if (last_delta > 0)
            cr_assert_str_eq(s->ev[i].type, "ping", "event %zu after the stall", i);
    }
    pings_after = s->n - 1 - last_delta;
    cr_assert_geq(pings_after, 3, "%zu pings: %s", pings_after, r->body.data);
    sse_free(s);
    reply_free(r);
    cr_assert(th_wait_for(nothing_pending, NULL, 100, 10));
    cr_assert_eq(stat_of("stall", "failed"), 2);
}

Test(mock, stream_fault_malformed_then_the_rest)
{
    set("mal", "{\"stream_fault\":\"malformed\",\"fault_after\":2}");
    reply *plain = chat("openai", "mal", "one two three four", 5000);
    reply *o = stream_chat("openai", "mal", "one two three four", "", 5000);
    sse *s = sse_parse(o->body.data);
    cr_assert_eq(o->rc, CURLE_OK);
    cr_assert_null(s->ev[3].json, "event 3 should be the broken one: %s", s->ev[3].data);
    cr_assert_str_eq(s->ev[3].data, "{not json");
    for (size_t i = 0; i < s->n - 1; i++)
        cr_assert(i == 3 || s->ev[i].json != NULL, "event %zu: %s", i, s->ev[i].data);
    pb_buf text;
    pb_buf_init(&text, 1 << 20);
    int chunks;
    sse_openai_join(s, &text, &chunks);
    cr_assert_str_eq(text.data, jstr(plain->json, "choices.0.message.content"));
    cr_assert_str_eq(s->ev[s->n - 1].data, "[DONE]");
    pb_buf_free(&text);
    sse_free(s);
    reply_free(o);
    reply_free(plain);
    reply *a = stream_chat("anthropic", "mal", "one two three four", "", 5000);
    s = sse_parse(a->body.data);
    cr_assert_str_eq(s->ev[5].type, "content_block_delta");
    cr_assert_null(s->ev[5].json, "%s", s->ev[5].data);
    cr_assert_eq(sse_content_events(s), 5 + 1);
    cr_assert_str_eq(s->ev[s->n - 1].type, "message_stop");
    sse_free(s);
    reply_free(a);
    cr_assert_eq(stat_of("mal", "failed"), 2);
}

Test(mock, stream_fault_no_done)
{
    set("nd", "{\"stream_fault\":\"no_done\"}");
    reply *o = stream_chat("openai", "nd", "one two",
                           ",\"stream_options\":{\"include_usage\":true}", 5000);
    cr_assert_eq(o->rc, CURLE_OK);
    sse *s = sse_parse(o->body.data);
    cr_assert_not(s->tail);
    cr_assert_null(strstr(o->body.data, "[DONE]"));
    cr_assert_not_null(jget(s->ev[s->n - 1].json, "usage.total_tokens"), "usage still last");
    cr_assert_str_eq(jstr(s->ev[s->n - 2].json, "choices.0.finish_reason"), "stop");
    sse_free(s);
    reply_free(o);
    reply *a = stream_chat("anthropic", "nd", "one two", "", 5000);
    s = sse_parse(a->body.data);
    cr_assert_str_eq(s->ev[s->n - 1].type, "message_delta");
    cr_assert_null(strstr(a->body.data, "message_stop"));
    sse_free(s);
    reply_free(a);
    cr_assert_eq(stat_of("nd", "failed"), 2);
}

Test(mock, stream_drip_and_truncated_cut_the_sse_bytes)
{
    set("sdrip", "{\"mode\":\"drip\",\"drip_bytes\":7,\"drip_interval_ms\":1}");
    reply *d = stream_chat("anthropic", "sdrip", "one two", "", 5000);
    cr_assert_str_eq(d->content_type, "text/event-stream");
    sse *s = sse_parse(d->body.data);
    assert_anthropic_frame(s, "end_turn", 3);
    sse_free(s);
    set("scut", "{\"mode\":\"truncated\"}");
    reply *t = stream_chat("openai", "scut", "one two", "", 5000);
    cr_assert_str_eq(t->content_type, "text/event-stream");
    cr_assert_null(strstr(t->body.data, "[DONE]"));
    cr_assert_gt(t->body.len, 0);
    reply_free(d);
    reply_free(t);
}

TestSuite(mock_config, .fini = teardown, .timeout = 30);

Test(mock_config, config_file_behaviours_and_reset)
{
    start_mock("{\"default\":{\"mode\":\"status\",\"status\":502},"
               "\"models\":{\"good\":{\"mode\":\"ok\",\"reply\":\"fine\"},"
               "\"cfg\":{\"mode\":\"status\",\"status\":500}}}");
    reply *r = chat("openai", "anything", "hi", 5000);
    cr_assert_eq(r->status, 502);
    reply_free(r);
    r = chat("openai", "good", "hi", 5000);
    cr_assert_str_eq(jstr(r->json, "choices.0.message.content"), "fine");
    reply_free(r);
    set("cfg", "{\"mode\":\"ok\"}");
    set(NULL, "{\"mode\":\"ok\"}");
    r = chat("anthropic", "cfg", "hi", 5000);
    cr_assert_eq(r->status, 200);
    reply_free(r);
    r = chat("anthropic", "anything", "hi", 5000);
    cr_assert_eq(r->status, 200);
    reply_free(r);

    cr_assert_eq(th_mock_reset(&mock), PB_OK);
    json_object *s = stats();
    cr_assert_eq(jint(s, "total"), 0);
    cr_assert_eq(jint(s, "models.cfg.requests"), 0);
    json_object_put(s);
    r = request("GET", "/_mock/last/cfg", NULL, NULL, 5000);
    cr_assert_eq(r->status, 404);
    reply_free(r);
    r = chat("anthropic", "cfg", "hi", 5000);
    cr_assert_eq(r->status, 500);
    cr_assert_str_eq(jstr(r->json, "error.type"), "api_error");
    reply_free(r);
    r = chat("anthropic", "anything", "hi", 5000);
    cr_assert_eq(r->status, 502);
    reply_free(r);
}

Test(mock_config, bad_config_refuses_to_start)
{
    cr_assert_neq(th_mock_start(&mock, "{\"models\":{\"x\":{\"mode\":\"nope\"}}}"), PB_OK);
    cr_assert_neq(th_mock_start(&mock, "{\"defaults\":{}}"), PB_OK);
    char *log = th_proc_log(&mock);
    cr_assert_not_null(strstr(log, "defaults"), "log: %s", log);
    free(log);
}

static const char *const azure_hdrs[] = {"api-key: az-key", "Content-Type: application/json", NULL};
static const char *const azure_bearer_hdrs[] = {"Authorization: Bearer entra-token",
                                                "Content-Type: application/json", NULL};

#define AZ_MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hello azure\"}]"

Test(mock, azure_paths_keys_and_api_version)
{
    /* The deployment API: the path names the model, api-version is required. */
    const char *dep = "/openai/deployments/west-dep/chat/completions?api-version=2024-10-21";
    reply *r = request("POST", dep, azure_hdrs, "{" AZ_MSGS "}", 5000);
    cr_assert_eq(r->status, 200, "%s", r->body.data);
    cr_expect_str_eq(jstr(r->json, "choices.0.message.content"), "echo: hello azure");
    cr_expect_str_eq(jstr(r->json, "model"), "west-dep");
    reply_free(r);
    r = request("GET", "/_mock/last/west-dep", NULL, NULL, 5000);
    cr_expect_str_eq(jstr(r->json, "path"), "/openai/deployments/west-dep/chat/completions");
    cr_expect_str_eq(jstr(r->json, "query"), "api-version=2024-10-21");
    cr_expect_str_eq(jstr(r->json, "headers.api-key"), "az-key");
    reply_free(r);
    r = request("POST", "/openai/deployments/west-dep/chat/completions", azure_hdrs,
                "{" AZ_MSGS "}", 5000);
    cr_expect_eq(r->status, 400);
    cr_expect_str_eq(jstr(r->json, "error.message"),
                     "Missing required query parameter: api-version");
    reply_free(r);
    /* No api-key and no Bearer: 401; a Bearer token is enough. */
    static const char *const bare[] = {"Content-Type: application/json", NULL};
    r = request("POST", dep, bare, "{" AZ_MSGS "}", 5000);
    cr_expect_eq(r->status, 401);
    reply_free(r);
    r = request("POST", dep, azure_bearer_hdrs, "{" AZ_MSGS "}", 5000);
    cr_expect_eq(r->status, 200);
    reply_free(r);
    cr_expect_eq(stat_of("west-dep", "invalid"), 2);
    /* The v1 API: the model in the body, no api-version, the same key rules. */
    r = request("POST", "/openai/v1/chat/completions", azure_hdrs,
                "{\"model\":\"gpt-dep\"," AZ_MSGS "}", 5000);
    cr_expect_eq(r->status, 200);
    cr_expect_str_eq(jstr(r->json, "model"), "gpt-dep");
    reply_free(r);
    r = request("POST", "/openai/v1/chat/completions", bare, "{\"model\":\"gpt-dep\"," AZ_MSGS "}",
                5000);
    cr_expect_eq(r->status, 401);
    reply_free(r);
    /* An Azure path with an empty or nested deployment is no Azure path. */
    r = request("POST", "/openai/deployments//chat/completions?api-version=1", azure_hdrs,
                "{" AZ_MSGS "}", 5000);
    cr_expect_eq(r->status, 404);
    reply_free(r);
    r = request("POST", "/openai/deployments/a/b/chat/completions?api-version=1", azure_hdrs,
                "{" AZ_MSGS "}", 5000);
    cr_expect_eq(r->status, 404);
    reply_free(r);
}

Test(mock, azure_content_filter_body_and_openai_faults)
{
    set("az-f", "{\"mode\":\"status\",\"status\":400,\"error_code\":\"content_filter\"}");
    const char *dep = "/openai/deployments/az-f/chat/completions?api-version=2024-10-21";
    reply *r = request("POST", dep, azure_hdrs, "{" AZ_MSGS "}", 5000);
    cr_assert_eq(r->status, 400);
    cr_expect_str_eq(jstr(r->json, "error.code"), "content_filter");
    cr_expect_str_eq(jstr(r->json, "error.param"), "prompt");
    cr_expect_eq(jint(r->json, "error.status"), 400);
    cr_expect_str_eq(jstr(r->json, "error.innererror.code"), "ResponsibleAIPolicyViolation");
    json_object *hit = jget(r->json, "error.innererror.content_filter_result.violence.filtered");
    cr_expect(hit != NULL && json_object_get_boolean(hit));
    cr_expect_neq(strstr(jstr(r->json, "error.message"), "content management policy"), NULL);
    reply_free(r);
    /* The OpenAI dialect's faults, on the Azure path: a stream and fail_first. */
    set("az-f", "{\"mode\":\"ok\",\"fail_first\":1}");
    r = request("POST", dep, azure_hdrs, "{" AZ_MSGS "}", 5000);
    cr_expect_eq(r->status, 503);
    reply_free(r);
    r = request("POST", dep, azure_hdrs, "{\"stream\":true," AZ_MSGS "}", 5000);
    cr_expect_eq(r->status, 200);
    cr_expect_str_eq(r->content_type, "text/event-stream");
    cr_expect_neq(strstr(r->body.data, "data: [DONE]"), NULL);
    reply_free(r);
}
