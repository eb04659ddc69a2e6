/* test_stream.c -- streamed jobs end to end: a reader on planb:stream:<id> sees the answer as
 * the upstream sends it, fallback until the first token, cut (or continued) after it, the
 * first-token and idle bounds, resuming from a last id, cached / degraded answers as
 * streams too, a continuation that fails before its first token, content-filter answers, and
 * the bounds of a streamed answer (reply_max_bytes) and of its raw bytes.
 *
 * Real redis-server, planb-mock streaming in both dialects with its faults (chunk_interval_ms,
 * stream_fault, fault_after) and `planb serve`; the reader uses XREAD BLOCK like a producer. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "th_jobs.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

/* Primary (OpenAI dialect) and backup (Anthropic dialect); top is the top-level keys from
 * "workers" on (NULL: one worker), route_extra adds route keys, model_extra the primary's. */
static void
start_world_top(const char *top, const char *route_extra, const char *model_extra)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, %s,"
             " \"concurrency\": 64, \"drain_timeout_ms\": 2000,"
             " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"},"
             " \"b\": {\"type\": \"anthropic\", \"base_url\": \"http://127.0.0.1:%d/v1\","
             " \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"primary\": {\"provider\": \"a\", \"timeout_ms\": 5000 %s},"
             " \"backup\": {\"provider\": \"b\", \"tier\": 2}},"
             " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"retries\": 0,"
             " \"deadline_ms\": 10000 %s}},"
             " \"breaker\": {\"failures\": 0, \"refused_hold_s\": 0},"
             " \"monitor\": {\"metrics_listen\": \"\"}}",
             redis_p.port, top ? top : "\"workers\": 1", mock_p.port, mock_p.port,
             model_extra ? model_extra : "", route_extra ? route_extra : "");
    th_serve(&planb_p, cfg);
}

static void
start_world(const char *route_extra, const char *model_extra)
{
    start_world_top(NULL, route_extra, model_extra);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(stream, .fini = teardown, .timeout = 120);

#define MAX_ENTRIES 4096 /* a long answer may take one entry per word */

/* One stream entry as the reader got it. */
typedef struct entry {
    char id[48];         /* the stream entry id */
    json_object *fields; /* its fields as a JSON object of strings */
    int64_t at_ms;       /* when the reader had it (monotonic) */
} entry;

typedef struct reading {
    entry e[MAX_ENTRIES];
    int n;
    int64_t t0; /* when the job was pushed */
} reading;

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
ef(const entry *e, const char *name)
{
    return th_field(e->fields, name);
}

/* XREAD BLOCK from `from` until an `end` entry, up to max entries or timeout_ms. */
static void
read_stream(reading *rd, const char *id, const char *from, int max, int timeout_ms)
{
    char last[48];
    snprintf(last, sizeof(last), "%s", from);
    int64_t until = mono_ms() + timeout_ms;
    while (rd->n < max && mono_ms() < until) {
        redisReply *r =
            redisCommand(rc, "XREAD COUNT 16 BLOCK 200 STREAMS planb:stream:%s %s", id, last);
        cr_assert_not_null(r);
        bool ended = false;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            redisReply *entries = r->element[0]->element[1];
            for (size_t i = 0; i < entries->elements && rd->n < max; i++) {
                redisReply *en = entries->element[i];
                entry *e = &rd->e[rd->n++];
                snprintf(e->id, sizeof(e->id), "%s", en->element[0]->str);
                snprintf(last, sizeof(last), "%s", e->id);
                e->fields = json_object_new_object();
                redisReply *kv = en->element[1];
                for (size_t k = 0; k + 1 < kv->elements; k += 2)
                    json_object_object_add(
                        e->fields, kv->element[k]->str,
                        json_object_new_string_len(kv->element[k + 1]->str,
                                                   (int)kv->element[k + 1]->len));
                e->at_ms = mono_ms();
                ended |= strcmp(ef(e, "type"), "end") == 0;
            }
        }
        freeReplyObject(r);
        if (ended)
            return;
    }
}

static void
reading_free(reading *rd)
{
    for (int i = 0; i < rd->n; i++)
        json_object_put(rd->e[i].fields);
    rd->n = 0;
}

/* Pushes a streamed job (question text, extra job fields) and reads its whole stream. */
static void
run_streamed(reading *rd, const char *id, const char *text, const char *extra)
{
    char fields[512];
    snprintf(fields, sizeof(fields), "\"stream\": true%s%s", extra ? ", " : "", extra ? extra : "");
    rd->n = 0;
    rd->t0 = mono_ms();
    cr_assert_eq(th_push_job_text(rc, id, text, fields), 0);
    read_stream(rd, id, "0", MAX_ENTRIES, 15000);
    cr_assert_gt(rd->n, 0, "nothing on planb:stream:%s", id);
}

/* The deltas' text joined; counts of entry types; checks exactly one end, last. */
static json_object *
check_shape(const reading *rd, char *text, size_t cap, int *starts)
{
    text[0] = '\0';
    *starts = 0;
    int ends = 0;
    for (int i = 0; i < rd->n; i++) {
        const char *t = ef(&rd->e[i], "type");
        if (strcmp(t, "delta") == 0)
            strncat(text, ef(&rd->e[i], "text"), cap - strlen(text) - 1);
        *starts += strcmp(t, "start") == 0;
        ends += strcmp(t, "end") == 0;
    }
    cr_assert_eq(ends, 1, "exactly one end entry");
    cr_assert_str_eq(ef(&rd->e[rd->n - 1], "type"), "end", "the end entry is last");
    json_object *res = json_tokener_parse(ef(&rd->e[rd->n - 1], "result"));
    cr_assert_not_null(res, "the end entry carries the result");
    return res;
}

Test(stream, the_first_chunk_reaches_the_reader_before_the_upstream_sends_its_last)
{
    start_world(NULL, NULL);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"one two three four five six\","
                "\"chunk_interval_ms\":150}");
    reading rd;
    run_streamed(&rd, "s1", "count", NULL);
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_eq(starts, 1);
    cr_expect_str_eq(ef(&rd.e[0], "type"), "start");
    cr_expect_str_eq(ef(&rd.e[0], "model"), "primary");
    cr_expect_str_eq(ef(&rd.e[0], "source"), "primary");
    cr_expect_str_eq(text, "one two three four five six");
    cr_expect_str_eq(th_field(res, "content"), text, "the result holds the streamed answer");
    cr_expect_str_eq(th_field(res, "status"), "ok");
    int first_delta = -1;
    for (int i = 0; i < rd.n && first_delta < 0; i++)
        if (strcmp(ef(&rd.e[i], "type"), "delta") == 0)
            first_delta = i;
    cr_assert_geq(first_delta, 0);
    int64_t first_ms = rd.e[first_delta].at_ms - rd.t0, end_ms = rd.e[rd.n - 1].at_ms - rd.t0;
    printf("figures: stream first_delta_ms=%lld end_ms=%lld entries=%d\n", (long long)first_ms,
           (long long)end_ms, rd.n);
    cr_expect_lt(first_ms + 500, end_ms, "first chunk at %lld ms, last at %lld ms",
                 (long long)first_ms, (long long)end_ms);
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, a_primary_failing_before_its_first_token_shows_only_the_backup)
{
    start_world(NULL, NULL);
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"stream_fault\":\"error_before\"}");
    reading rd;
    run_streamed(&rd, "s2", "hello", NULL);
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_eq(starts, 1, "nothing of the failed attempt is visible");
    cr_expect_str_eq(ef(&rd.e[0], "model"), "backup");
    cr_expect_str_eq(ef(&rd.e[0], "source"), "fallback");
    cr_expect_str_eq(th_field(res, "source"), "fallback");
    cr_expect_str_eq(th_attempt(res, 0, "outcome"), "bad_reply");
    cr_expect_str_eq(th_field(res, "content"), text);
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, a_failure_after_the_first_token_ends_the_stream_cut)
{
    start_world(NULL, NULL);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"alpha beta gamma delta\","
                "\"stream_fault\":\"error_mid\",\"fault_after\":2}");
    reading rd;
    run_streamed(&rd, "s3", "x", NULL);
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_eq(starts, 1, "no backup once the reader saw tokens");
    cr_expect_str_eq(text, "alpha beta ");
    cr_expect_str_eq(th_field(res, "content"), "alpha beta ", "the partial text");
    cr_expect_str_eq(th_field(res, "cut"), "true");
    cr_expect_str_eq(th_field(res, "cut_reason"), "bad_reply");
    cr_expect_str_eq(th_field(res, "finish_reason"), "cut");
    cr_expect_eq(th_mock_requests(&mock_p, "backup"), 0);
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, stream_continue_lets_the_backup_continue_a_cut_answer)
{
    start_world(", \"stream_continue\": true", NULL);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"alpha beta gamma delta\","
                "\"stream_fault\":\"reset_mid\",\"fault_after\":2}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"ok\",\"reply\":\"gamma delta\"}");
    reading rd;
    run_streamed(&rd, "s4", "x", NULL);
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_eq(starts, 2);
    int second = -1;
    for (int i = 1; i < rd.n && second < 0; i++)
        if (strcmp(ef(&rd.e[i], "type"), "start") == 0)
            second = i;
    cr_assert_gt(second, 0);
    cr_expect_str_eq(ef(&rd.e[second], "model"), "backup");
    cr_expect_str_eq(ef(&rd.e[second], "continued"), "1");
    cr_expect_str_eq(text, "alpha beta gamma delta");
    cr_expect_str_eq(th_field(res, "content"), "alpha beta gamma delta");
    cr_expect_str_eq(th_field(res, "continued"), "true");
    /* The backup was prompted with the cut text as the assistant's start. */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/last/backup", mock_p.port);
    long status = 0;
    char *last = th_http("GET", url, NULL, &status);
    cr_assert_not_null(last);
    cr_expect(strstr(last, "\"assistant\"") != NULL && strstr(last, "alpha beta") != NULL,
              "the continuation request: %s", last);
    free(last);
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, a_stalled_stream_is_abandoned_within_its_bounds)
{
    start_world(NULL, ", \"first_token_ms\": 300, \"idle_ms\": 300");
    /* Stalls before any content: first_token_ms, then the backup answers. */
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"stream_fault\":\"stall\",\"fault_after\":0}");
    reading rd;
    run_streamed(&rd, "s5", "x", NULL);
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_str_eq(th_attempt(res, 0, "outcome"), "first_token_timeout");
    cr_expect_str_eq(th_field(res, "source"), "fallback");
    long ms = th_field_int(res, "latency_ms");
    cr_expect_lt(ms, 300 + 100 + 200, "fell back after first_token_ms: %ld ms", ms);
    json_object_put(res);
    reading_free(&rd);

    /* Stalls after two chunks: idle_ms after the last content, the job ends cut. */
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"a b c d\",\"stream_fault\":\"stall\","
                "\"fault_after\":2,\"stall_pings\":true,\"chunk_interval_ms\":50}");
    run_streamed(&rd, "s6", "another question", NULL);
    res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_str_eq(th_field(res, "cut"), "true", "%s", json_object_to_json_string(res));
    cr_expect_str_eq(th_field(res, "cut_reason"), "idle_timeout");
    int last_delta = 0;
    for (int i = 0; i < rd.n; i++)
        if (strcmp(ef(&rd.e[i], "type"), "delta") == 0)
            last_delta = i;
    int64_t gap = rd.e[rd.n - 1].at_ms - rd.e[last_delta].at_ms;
    printf("figures: stream idle_cut_gap_ms=%lld (idle_ms 300)\n", (long long)gap);
    cr_expect_lt(gap, 300 + 100 + 50, "ended %lld ms after the last content", (long long)gap);
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, a_reader_that_resumes_from_its_last_id_loses_no_chunk)
{
    start_world(NULL, NULL);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"w1 w2 w3 w4 w5 w6 w7 w8\","
                "\"chunk_interval_ms\":60}");
    reading part = {0}, rest = {0}, all = {0};
    part.t0 = mono_ms();
    cr_assert_eq(th_push_job_text(rc, "s7", "x", "\"stream\": true"), 0);
    read_stream(&part, "s7", "0", 3, 10000); /* the reader goes away after 3 entries */
    cr_assert_eq(part.n, 3);
    read_stream(&rest, "s7", part.e[2].id, MAX_ENTRIES, 10000);
    read_stream(&all, "s7", "0", MAX_ENTRIES, 10000);
    cr_expect_eq(part.n + rest.n, all.n, "%d + %d entries, %d in the stream", part.n, rest.n,
                 all.n);
    for (int i = 0; i < all.n && i < part.n + rest.n; i++) {
        const entry *got = i < part.n ? &part.e[i] : &rest.e[i - part.n];
        cr_expect_str_eq(got->id, all.e[i].id);
    }
    reading_free(&part);
    reading_free(&rest);
    reading_free(&all);
}

Test(stream, cached_and_degraded_answers_come_as_a_stream_too)
{
    start_world(NULL, NULL);
    reading rd;
    char text[1024];
    int starts;
    run_streamed(&rd, "c1", "same question", "\"cache\": \"use\"");
    json_object *first = check_shape(&rd, text, sizeof(text), &starts);
    json_object_put(first);
    reading_free(&rd);
    run_streamed(&rd, "c2", "same question", "\"cache\": \"use\"");
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_str_eq(th_field(res, "source"), "cache");
    cr_expect_str_eq(ef(&rd.e[0], "source"), "cache");
    cr_expect_str_eq(text, th_field(res, "content"));
    json_object_put(res);
    reading_free(&rd);

    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"status\",\"status\":500}");
    run_streamed(&rd, "d1", "a new question", NULL);
    res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_str_eq(th_field(res, "status"), "degraded");
    cr_expect_str_eq(ef(&rd.e[0], "source"), "degraded");
    cr_expect_str_eq(text, th_field(res, "content"), "the reader gets the degraded reply");
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, tool_calls_stream_in_both_dialects)
{
    start_world(NULL, NULL);
    const char *tools = "\"params\": {\"tools\": [{\"type\": \"function\", \"function\": "
                        "{\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", "
                        "\"properties\": {\"city\": {\"type\": \"string\"}}}}}]}";
    const char *beh = "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\","
                      "\"arguments\":{\"city\":\"Paris\"}}]}";
    for (int dialect = 0; dialect < 2; dialect++) {
        th_mock_set(&mock_p, dialect == 0 ? "primary" : "backup", beh);
        if (dialect == 1)
            th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
        reading rd;
        char id[16], text[1024];
        snprintf(id, sizeof(id), "t%d", dialect);
        char extra[1024];
        snprintf(extra, sizeof(extra), "\"cache\": \"skip\", %s", tools);
        run_streamed(&rd, id, "weather?", extra);
        int starts, tool_entries = 0;
        json_object *res = check_shape(&rd, text, sizeof(text), &starts);
        for (int i = 0; i < rd.n; i++)
            tool_entries += strcmp(ef(&rd.e[i], "type"), "tool") == 0;
        cr_expect_gt(tool_entries, 0, "dialect %d: tool pieces on the stream", dialect);
        cr_expect_str_eq(th_field(res, "finish_reason"), "tool_calls", "dialect %d", dialect);
        json_object *msg, *calls;
        cr_assert(json_object_object_get_ex(res, "message", &msg));
        cr_assert(json_object_object_get_ex(msg, "tool_calls", &calls));
        json_object *fn, *args;
        json_object_object_get_ex(json_object_array_get_idx(calls, 0), "function", &fn);
        json_object_object_get_ex(fn, "arguments", &args);
        json_object *parsed = json_tokener_parse(json_object_get_string(args));
        cr_expect_str_eq(th_field(parsed, "city"), "Paris", "dialect %d", dialect);
        json_object_put(parsed);
        json_object_put(res);
        reading_free(&rd);
    }
}

Test(stream, a_continuation_that_fails_before_its_first_token_repeats_nothing)
{
    start_world(", \"stream_continue\": true", NULL);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"one two three four\","
                "\"stream_fault\":\"error_mid\",\"fault_after\":2}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"status\",\"status\":500}");
    reading rd;
    run_streamed(&rd, "s8", "x", NULL);
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_eq(starts, 1, "one start: the backup never sent a token");
    cr_expect_str_eq(text, "one two ", "the reader got the cut text once");
    cr_expect_str_eq(th_field(res, "content"), "one two ");
    cr_expect_str_eq(th_field(res, "cut"), "true");
    cr_expect_str_eq(th_field(res, "cut_reason"), "bad_reply");
    cr_expect_str_eq(th_field(res, "continued"), "", "nothing continued the answer: %s",
                     json_object_to_json_string(res));
    cr_expect_str_eq(th_field(res, "source"), "primary", "the text is the primary's");
    cr_expect_str_eq(th_field(res, "model"), "primary");
    cr_expect_str_eq(th_attempt(res, 1, "model"), "backup");
    cr_expect_str_eq(th_attempt(res, 1, "outcome"), "http_500");
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, a_continuation_stopped_by_its_content_filter_keeps_the_cut_text)
{
    start_world(", \"stream_continue\": true", NULL);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"one two three four\","
                "\"stream_fault\":\"error_mid\",\"fault_after\":2}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"empty\",\"finish_reason\":\"content_filter\"}");
    reading rd;
    run_streamed(&rd, "s9", "x", NULL);
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_eq(starts, 1, "the backup sent no piece");
    cr_expect_str_eq(text, "one two ");
    cr_expect_str_eq(th_field(res, "content"), "one two ", "the text the reader got: %s",
                     json_object_to_json_string(res));
    cr_expect_str_eq(th_field(res, "finish_reason"), "content_filter");
    cr_expect_str_eq(th_field(res, "continued"), "true", "the backup's answer ended it");
    cr_expect_str_eq(th_field(res, "source"), "fallback");
    cr_expect_str_eq(th_field(res, "model"), "backup");
    cr_expect_str_eq(th_field(res, "cut"), "");
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, content_filter_answers_are_answers_in_both_dialects)
{
    start_world(NULL, NULL);
    /* OpenAI: no text, finish_reason content_filter; no fallback sidesteps the filter. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"empty\",\"finish_reason\":\"content_filter\"}");
    reading rd;
    run_streamed(&rd, "f1", "x", "\"cache\": \"skip\"");
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_str_eq(th_field(res, "status"), "ok", "%s", json_object_to_json_string(res));
    cr_expect_str_eq(th_field(res, "source"), "primary");
    cr_expect_str_eq(th_field(res, "model"), "primary");
    cr_expect_str_eq(th_field(res, "finish_reason"), "content_filter");
    cr_expect_str_eq(th_attempt(res, 0, "outcome"), "ok");
    cr_expect_str_eq(th_attempt(res, 1, "outcome"), "", "one attempt");
    cr_expect_eq(th_mock_requests(&mock_p, "backup"), 0);
    cr_expect_eq(starts, 1);
    cr_expect_str_eq(text, "");
    json_object_put(res);
    reading_free(&rd);

    /* Anthropic: stop_reason refusal without text, on the backup. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
    th_mock_set(&mock_p, "backup", "{\"mode\":\"empty\",\"finish_reason\":\"content_filter\"}");
    run_streamed(&rd, "f2", "y", "\"cache\": \"skip\"");
    res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_str_eq(th_field(res, "status"), "ok", "%s", json_object_to_json_string(res));
    cr_expect_str_eq(th_field(res, "source"), "fallback");
    cr_expect_str_eq(th_field(res, "model"), "backup");
    cr_expect_str_eq(th_field(res, "finish_reason"), "content_filter");
    cr_expect_str_eq(th_attempt(res, 1, "outcome"), "ok");
    cr_expect_eq(starts, 1);
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, a_streamed_refusal_is_the_answer_even_slower_than_first_token_ms)
{
    start_world(NULL, ", \"first_token_ms\": 300");
    /* Five delta.refusal pieces 150 ms apart: the refusal takes ~600 ms, past first_token_ms. */
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"refusal\":\"I cannot help with that.\","
                "\"chunk_interval_ms\":150}");
    reading rd;
    run_streamed(&rd, "f3", "x", "\"cache\": \"skip\"");
    char text[1024];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_str_eq(th_field(res, "status"), "ok", "%s", json_object_to_json_string(res));
    cr_expect_str_eq(th_field(res, "source"), "primary", "no fallback around the refusal");
    cr_expect_str_eq(th_attempt(res, 0, "outcome"), "ok");
    cr_expect_eq(th_mock_requests(&mock_p, "backup"), 0);
    json_object *msg;
    cr_assert(json_object_object_get_ex(res, "message", &msg));
    cr_expect_str_eq(th_field(msg, "refusal"), "I cannot help with that.");
    cr_expect_str_eq(th_field(res, "content"), "");
    cr_expect_eq(starts, 1);
    cr_expect_str_eq(text, "", "a refusal is not answer text");
    /* The same answer unstreamed gives the same result. */
    cr_assert_eq(th_push_job_text(rc, "f4", "x", "\"cache\": \"skip\""), 0);
    json_object *plain = th_wait_result(rc, "f4", 10), *pmsg;
    cr_assert_not_null(plain);
    cr_assert(json_object_object_get_ex(plain, "message", &pmsg));
    cr_expect_str_eq(th_field(pmsg, "refusal"), th_field(msg, "refusal"));
    cr_expect_str_eq(th_field(plain, "source"), th_field(res, "source"));
    cr_expect_str_eq(th_field(plain, "finish_reason"), th_field(res, "finish_reason"));
    cr_expect_str_eq(th_field(plain, "content"), th_field(res, "content"));
    json_object_put(plain);
    json_object_put(res);
    reading_free(&rd);
}

/* A reply of n words of 4 letters and a space (5 n bytes). */
static char *
words_reply(int n)
{
    char *s = malloc((size_t)n * 5 + 1);
    for (int i = 0; i < n; i++)
        memcpy(s + 5 * i, "wxyz ", 5);
    s[5 * n] = '\0';
    return s;
}

static char big_text[1 << 17];

Test(stream, reply_max_bytes_bounds_the_answer_not_the_stream_framing)
{
    start_world_top("\"workers\": 1, \"limits\": {\"reply_max_bytes\": 16384}", NULL, NULL);
    /* 15,000 bytes of text: a plain reply fits, so the stream (~40 times that) must too. */
    char *reply = words_reply(3000);
    char beh[20000];
    snprintf(beh, sizeof(beh), "{\"mode\":\"ok\",\"reply\":\"%s\"}", reply);
    th_mock_set(&mock_p, "primary", beh);
    static reading rd;
    int starts;
    run_streamed(&rd, "r1", "x", "\"cache\": \"skip\"");
    json_object *res = check_shape(&rd, big_text, sizeof(big_text), &starts);
    printf("figures: stream entries=%d for %zu bytes of text\n", rd.n, strlen(reply));
    cr_expect_str_eq(th_field(res, "status"), "ok");
    cr_expect_str_eq(th_field(res, "cut"), "", "not cut: %s", th_field(res, "cut_reason"));
    cr_expect_str_eq(th_attempt(res, 0, "outcome"), "ok");
    cr_expect_eq(strlen(th_field(res, "content")), strlen(reply));
    cr_expect_eq(strlen(big_text), strlen(reply), "the reader got all of it");
    json_object_put(res);
    reading_free(&rd);
    free(reply);

    /* 20,000 bytes of text are over the limit: the answer is cut there (too_large), and the
     * reader never got more than reply_max_bytes. */
    reply = words_reply(4000);
    char beh2[24000];
    snprintf(beh2, sizeof(beh2), "{\"mode\":\"ok\",\"reply\":\"%s\"}", reply);
    th_mock_set(&mock_p, "primary", beh2);
    run_streamed(&rd, "r2", "y", "\"cache\": \"skip\"");
    res = check_shape(&rd, big_text, sizeof(big_text), &starts);
    cr_expect_str_eq(th_field(res, "cut"), "true");
    cr_expect_str_eq(th_field(res, "cut_reason"), "too_large");
    cr_expect_leq(strlen(big_text), 16384);
    cr_expect_gt(strlen(big_text), 8192, "cut near the limit, not at the framing's: %zu",
                 strlen(big_text));
    json_object_put(res);
    reading_free(&rd);
    free(reply);
}

Test(stream, stream_raw_max_bytes_bounds_the_raw_stream)
{
    start_world_top(
        "\"workers\": 1, \"limits\": {\"reply_max_bytes\": 16384, \"stream_raw_max_bytes\": 65536}",
        NULL, NULL);
    /* 10,000 bytes of text in ~2,000 events of ~190 bytes each: past 64 KiB raw. */
    char *reply = words_reply(2000);
    char beh[12000];
    snprintf(beh, sizeof(beh), "{\"mode\":\"ok\",\"reply\":\"%s\"}", reply);
    th_mock_set(&mock_p, "primary", beh);
    static reading rd;
    int starts;
    run_streamed(&rd, "r3", "x", "\"cache\": \"skip\"");
    json_object *res = check_shape(&rd, big_text, sizeof(big_text), &starts);
    cr_expect_str_eq(th_field(res, "cut"), "true", "%s", th_field(res, "status"));
    cr_expect_str_eq(th_field(res, "cut_reason"), "too_large");
    cr_expect_lt(strlen(big_text), strlen(reply));
    json_object_put(res);
    reading_free(&rd);
    free(reply);
}

/* The whole stream as it is now (XRANGE - +), as a reader from 0 would get it. */
static void
range_stream(reading *rd, const char *id)
{
    rd->n = 0;
    redisReply *r = redisCommand(rc, "XRANGE planb:stream:%s - + COUNT %d", id, MAX_ENTRIES);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *en = r->element[i];
        entry *e = &rd->e[rd->n++];
        snprintf(e->id, sizeof(e->id), "%s", en->element[0]->str);
        e->fields = json_object_new_object();
        redisReply *kv = en->element[1];
        for (size_t k = 0; k + 1 < kv->elements; k += 2)
            json_object_object_add(
                e->fields, kv->element[k]->str,
                json_object_new_string_len(kv->element[k + 1]->str, (int)kv->element[k + 1]->len));
        e->at_ms = mono_ms();
    }
    freeReplyObject(r);
}

static long long
redis_ll(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    cr_assert_not_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

typedef struct holder {
    const char *stream; /* planb:stream:<id> */
    long long min_len;  /* entries it must have */
    pid_t pid;          /* out: the worker holding a job in flight */
} holder;

/* The stream has min_len entries and a worker holds a job (its pid, from the worker id). */
static bool
stream_running(void *arg)
{
    holder *h = arg;
    if (redis_ll("XLEN %s", h->stream) < h->min_len)
        return false;
    redisReply *r = redisCommand(rc, "ZRANGE planb:workers 0 -1");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    h->pid = 0;
    for (size_t i = 0; i < r->elements && h->pid == 0; i++) {
        const char *colon = strrchr(r->element[i]->str, ':');
        if (colon && redis_ll("LLEN planb:inflight:%s", r->element[i]->str) > 0)
            h->pid = (pid_t)atoi(colon + 1);
    }
    freeReplyObject(r);
    return h->pid > 0;
}

static bool
key_exists(void *arg)
{
    return redis_ll("EXISTS %s", arg) == 1;
}

static bool
log_has(void *arg)
{
    char *log = th_proc_log(&planb_p);
    bool found = log && strstr(log, arg) != NULL;
    free(log);
    return found;
}

/* The stream a reader from 0 gets: one start (no continuation here), text only of the run
 * that answered, exactly one end, last; returns the joined text's match with the result. */
static void
check_one_run(const reading *rd, const char *what)
{
    char text[4096];
    int starts;
    json_object *res = check_shape(rd, text, sizeof(text), &starts);
    cr_expect_eq(starts, 1, "%s: one start sequence, got %d starts", what, starts);
    cr_expect_str_eq(ef(&rd->e[0], "type"), "start", "%s: the stream begins with start", what);
    cr_expect_str_eq(text, th_field(res, "content"), "%s: the streamed text is the result's", what);
    json_object_put(res);
}

Test(stream, a_worker_stopped_past_its_lease_leaves_only_the_winning_run_on_the_stream)
{
    start_world_top("\"workers\": 2, \"lease_ms\": 1500", NULL, NULL);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15 "
                "a16\",\"chunk_interval_ms\":200}");
    cr_assert_eq(th_push_job_text(rc, "lease1", "x", "\"stream\": true"), 0);
    holder h = {.stream = "planb:stream:lease1", .min_len = 3};
    cr_assert(th_wait_for(stream_running, &h, 200, 20), "the stream did not begin");
    /* Frozen mid-stream: the reaper hands the job to the other worker after the lease. */
    cr_assert_eq(kill(h.pid, SIGSTOP), 0);
    char result_key[] = "planb:result:lease1";
    bool done = th_wait_for(key_exists, result_key, 300, 50);
    kill(h.pid, SIGCONT);
    cr_assert(done, "the other worker did not finish the job");
    /* The frozen run wakes up with the rest of its upstream reply buffered, writes what it
     * may, and its finish finds the result stored. */
    char dup[] = "event=duplicate job=lease1";
    cr_assert(th_wait_for(log_has, dup, 200, 50), "the stopped run never finished");
    cr_assert_geq(th_mock_requests(&mock_p, "primary"), 2, "the job ran twice");
    reading rd;
    range_stream(&rd, "lease1");
    check_one_run(&rd, "lease1");
    reading_free(&rd);
}

Test(stream, a_poisoned_streamed_job_ends_its_stream)
{
    setenv("PLANB_TEST_HOOKS", "1", 1);
    start_world_top("\"workers\": 1, \"max_deliveries\": 2", NULL, NULL);
    reading rd = {0};
    rd.t0 = mono_ms();
    cr_assert_eq(th_push_job_text(rc, "poison1", "x",
                                  "\"stream\": true, \"meta\": {\"pb_test_crash\": true}"),
                 0);
    read_stream(&rd, "poison1", "0", MAX_ENTRIES, 20000);
    cr_assert_gt(rd.n, 0, "nothing on the poisoned job's stream");
    char text[256];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_str_eq(th_field(res, "status"), "invalid");
    cr_expect(strstr(th_field(res, "error"), "TOO_MANY_DELIVERIES") != NULL, "%s",
              th_field(res, "error"));
    json_object_put(res);
    reading_free(&rd);
}

Test(stream, a_streamed_job_that_fails_validation_ends_its_stream)
{
    start_world(NULL, NULL);
    reading rd = {0};
    cr_assert_eq(th_push_raw(rc, "{\"id\":\"bad1\",\"stream\":true,\"messages\":\"nope\"}"), 0);
    read_stream(&rd, "bad1", "0", MAX_ENTRIES, 5000);
    cr_assert_gt(rd.n, 0, "nothing on the invalid job's stream");
    char text[256];
    int starts;
    json_object *res = check_shape(&rd, text, sizeof(text), &starts);
    cr_expect_eq(starts, 0);
    cr_expect_str_eq(th_field(res, "status"), "invalid");
    cr_expect_str_eq(th_field(res, "id"), "bad1");
    json_object_put(res);
    reading_free(&rd);
    /* A job that did not ask to stream gets no stream. */
    cr_assert_eq(th_push_raw(rc, "{\"id\":\"bad2\",\"messages\":\"nope\"}"), 0);
    char key[] = "planb:result:bad2";
    cr_assert(th_wait_for(key_exists, key, 100, 50));
    cr_expect_eq(redis_ll("EXISTS %s", "planb:stream:bad2"), 0);
}

typedef struct ups {
    const char *needle;
    int min;
} ups;

static bool
log_counts(void *arg)
{
    const ups *u = arg;
    char *log = th_proc_log(&planb_p);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, u->needle)) != NULL; p += strlen(u->needle))
        n++;
    free(log);
    return n >= u->min;
}

Test(stream, entries_lost_to_a_redis_reconnect_are_sent_again)
{
    start_world(NULL, NULL);
    th_mock_set(&mock_p, "primary",
                "{\"mode\":\"ok\",\"reply\":\"k1 k2 k3 k4 k5 k6 k7 k8 k9 k10\","
                "\"chunk_interval_ms\":80}");
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ck%d", i);
        cr_assert_eq(th_push_job_text(rc, id, id, "\"stream\": true, \"cache\": \"skip\""), 0);
    }
    /* Three kills of planb's connections while the streams run (this one is skipped). */
    for (int k = 0; k < 3; k++) {
        holder h = {.stream = "planb:stream:ck0", .min_len = 1 + k};
        th_wait_for(stream_running, &h, 100, 20);
        redisReply *r = redisCommand(rc, "CLIENT KILL TYPE normal");
        cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer > 0, "CLIENT KILL");
        freeReplyObject(r);
        /* the next kill comes once the command connection is back and streaming again */
        ups want = {"event=redis_up conn=cmd", 2 * (k + 1)}; /* the worker and the monitor */
        cr_assert(th_wait_for(log_counts, &want, 200, 20), "no reconnect after kill %d", k);
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        char id[16], key[48];
        snprintf(id, sizeof(id), "ck%d", i);
        snprintf(key, sizeof(key), "planb:result:%s", id);
        cr_assert(th_wait_for(key_exists, key, 200, 50), "%s has no result", id);
        reading rd;
        range_stream(&rd, id);
        char text[1024] = "";
        for (int e = 0; e < rd.n; e++)
            if (strcmp(ef(&rd.e[e], "type"), "delta") == 0)
                strncat(text, ef(&rd.e[e], "text"), sizeof(text) - strlen(text) - 1);
        bool ok = rd.n > 0 && strcmp(ef(&rd.e[0], "type"), "start") == 0 &&
                  strcmp(ef(&rd.e[rd.n - 1], "type"), "end") == 0;
        json_object *res = ok ? json_tokener_parse(ef(&rd.e[rd.n - 1], "result")) : NULL;
        ok = ok && strcmp(text, th_field(res, "content")) == 0;
        if (!ok)
            fprintf(stderr, "%s: %d entries, first %s, text \"%s\"\n", id, rd.n,
                    rd.n ? ef(&rd.e[0], "type") : "-", text);
        bad += !ok;
        json_object_put(res);
        reading_free(&rd);
    }
    printf("figures: stream reconnects=3 streams=%d incomplete=%d\n", N, bad);
    cr_expect_eq(bad, 0, "%d of %d streams lost entries to the reconnects", bad, N);
}
