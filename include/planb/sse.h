/* sse.h -- an incremental server-sent-events reader with bounded buffers.
 *
 * Upstream streams (OpenAI chat.completion.chunk, Anthropic's event stream) arrive as
 * text/event-stream in whatever pieces the network delivers; the reader is fed those
 * pieces as they come (from curl's write callback) and hands back whole events. Lines
 * and events longer than the bounds are an error of the stream, never a crash. Pure. */
#ifndef PLANB_SSE_H
#define PLANB_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "planb/buf.h"

#define PB_SSE_LINE_MAX  (256u << 10) /* one line: a data line carries one JSON chunk */
#define PB_SSE_EVENT_MAX (1u << 20)   /* one event's joined data lines */

/* One event: its type ("message" when the stream gave none) and its data lines joined
 * with "\n". Both are borrowed for the callback. */
typedef struct pb_sse_event {
    const char *event; /* the event: field, or "message" */
    const char *data;  /* the data: lines, NUL-terminated */
    size_t data_len;   /* bytes of data */
} pb_sse_event;

/* Called once per complete event; a non-zero return stops the feed (pb_sse_feed returns
 * PB_ERR with that as the reason's code). */
typedef int (*pb_sse_fn)(const pb_sse_event *ev, void *arg);

typedef struct pb_sse {
    pb_buf line;       /* the current, unfinished line */
    pb_buf data;       /* the current event's data lines */
    char event[64];    /* the current event's type ("" = message) */
    bool has_data;     /* a data: line was seen for the current event */
    bool skip_lf;      /* the last byte was CR: a following LF belongs to it */
    const char *error; /* why the stream is broken (static text), NULL while fine */
} pb_sse;

void pb_sse_init(pb_sse *s);
void pb_sse_free(pb_sse *s);
/* Feeds n more bytes; fn runs for each event they complete. PB_ERR when the stream is
 * broken (s->error says why) or fn stopped it; feeding stops for good then. */
int pb_sse_feed(pb_sse *s, const char *p, size_t n, pb_sse_fn fn, void *arg);

#endif
