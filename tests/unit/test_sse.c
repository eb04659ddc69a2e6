/* test_sse.c -- the incremental event-stream reader: any split of the input gives the same
 * events, every line-end form, comments, multi-line data, bounds and broken streams. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/sse.h"

/* What the callback saw: "event|data" per event, joined with ";". */
typedef struct seen {
    char text[4096];
    int n;
    int stop_after; /* stop the feed after this many events (0 = never) */
} seen;

static int
collect(const pb_sse_event *ev, void *arg)
{
    seen *s = arg;
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof(s->text) - used, "%s%s|%s", s->n ? ";" : "", ev->event,
             ev->data);
    cr_assert_eq(strlen(ev->data), ev->data_len);
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

/* Feeds input in pieces of `piece` bytes and returns what was seen. */
static seen
feed_in_pieces(const char *input, size_t piece)
{
    pb_sse sse;
    pb_sse_init(&sse);
    seen s = {0};
    size_t n = strlen(input);
    for (size_t i = 0; i < n; i += piece)
        cr_assert_eq(pb_sse_feed(&sse, input + i, n - i < piece ? n - i : piece, collect, &s),
                     PB_OK, "%s", sse.error ? sse.error : "");
    pb_sse_free(&sse);
    return s;
}

Test(sse, any_split_gives_the_same_events)
{
    const char *stream = ": keep-alive\r\n"
                         "data: {\"a\":1}\n\n"
                         "event: content_block_delta\r\n"
                         "data: line one\r\n"
                         "data:line two\r\n\r\n"
                         "id: 7\rretry: 10\rdata: cr only\r\r"
                         "event: ping\ndata: {}\n\n"
                         "data: [DONE]\n\n";
    const char *want = "message|{\"a\":1};content_block_delta|line one\nline two;message|cr only;"
                       "ping|{};message|[DONE]";
    for (size_t piece = 1; piece <= strlen(stream); piece++) {
        seen s = feed_in_pieces(stream, piece);
        cr_assert_str_eq(s.text, want, "pieces of %zu", piece);
    }
}

Test(sse, an_unfinished_event_waits_and_an_event_without_data_is_dropped)
{
    seen s = feed_in_pieces("event: x\n\ndata: half", 3);
    cr_assert_eq(s.n, 0);
    s = feed_in_pieces("data: a\n\nevent: only\n\ndata: b\n\n", 5);
    cr_assert_str_eq(s.text, "message|a;message|b");
}

Test(sse, a_nul_byte_breaks_the_stream)
{
    pb_sse sse;
    pb_sse_init(&sse);
    seen s = {0};
    const char bad[] = "data: a\0b\n\n";
    cr_assert_eq(pb_sse_feed(&sse, bad, sizeof(bad) - 1, collect, &s), PB_ERR);
    cr_assert_not_null(sse.error);
    cr_assert_eq(pb_sse_feed(&sse, "data: x\n\n", 9, collect, &s), PB_ERR, "broken for good");
    cr_assert_eq(s.n, 0);
    pb_sse_free(&sse);
}

Test(sse, lines_and_events_are_bounded)
{
    pb_sse sse;
    pb_sse_init(&sse);
    seen s = {0};
    size_t big = PB_SSE_LINE_MAX + 10;
    char *line = malloc(big);
    memset(line, 'x', big);
    memcpy(line, "data: ", 6);
    cr_assert_eq(pb_sse_feed(&sse, line, big, collect, &s), PB_ERR);
    cr_assert_str_eq(sse.error, "line over its bound");
    pb_sse_free(&sse);

    /* Many short data lines that add up past the event bound. */
    pb_sse_init(&sse);
    char chunk[1024 + 8];
    memcpy(chunk, "data: ", 6);
    memset(chunk + 6, 'y', 1024);
    chunk[1030] = '\n';
    int rc = PB_OK;
    for (size_t total = 0; rc == PB_OK && total < 2 * PB_SSE_EVENT_MAX; total += 1031)
        rc = pb_sse_feed(&sse, chunk, 1031, collect, &s);
    cr_assert_eq(rc, PB_ERR);
    cr_assert_str_eq(sse.error, "event data over its bound");
    pb_sse_free(&sse);
    free(line);
}

Test(sse, the_reader_can_stop_the_feed)
{
    pb_sse sse;
    pb_sse_init(&sse);
    seen s = {.stop_after = 1};
    const char *two = "data: 1\n\ndata: 2\n\n";
    cr_assert_eq(pb_sse_feed(&sse, two, strlen(two), collect, &s), PB_ERR);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(sse.error, "stopped by the reader");
    pb_sse_free(&sse);
}
