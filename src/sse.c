/* sse.c -- incremental text/event-stream parsing (see sse.h).
 *
 * Follows the WHATWG event-stream rules: lines end in CRLF, LF or CR (a CR at the
 * end of one piece and an LF at the start of the next are one line end); a line
 * starting with ':' is a comment (keep-alives); "field: value" drops one space
 * after the colon; data lines join with "\n"; a blank line dispatches the event
 * (an event without data lines is dropped, as browsers do); id and retry are
 * read and ignored. A NUL byte, or a line or an event past its bound, breaks the
 * stream: an upstream that sends that is not speaking SSE. */
#include "planb/sse.h"

#include <stdio.h>
#include <string.h>

#include "planb/core.h"

void
pb_sse_init(pb_sse *s)
{
    memset(s, 0, sizeof(*s));
    pb_buf_init(&s->line, PB_SSE_LINE_MAX);
    pb_buf_init(&s->data, PB_SSE_EVENT_MAX);
}

void
pb_sse_free(pb_sse *s)
{
    pb_buf_free(&s->line);
    pb_buf_free(&s->data);
}

/* A blank line: hands the event over (when it has data) and starts the next one. */
static int
sse_dispatch(pb_sse *s, pb_sse_fn fn, void *arg)
{
    int rc = 0;
    if (s->has_data) {
        pb_sse_event ev = {.event = s->event[0] ? s->event : "message",
                           .data = s->data.data ? s->data.data : "",
                           .data_len = s->data.len};
        rc = fn(&ev, arg);
    }
    pb_buf_reset(&s->data);
    s->event[0] = '\0';
    s->has_data = false;
    return rc;
}

/* One complete line (without its end). */
static int
sse_line(pb_sse *s, const char *line, size_t n, pb_sse_fn fn, void *arg)
{
    if (n == 0)
        return sse_dispatch(s, fn, arg);
    if (line[0] == ':')
        return 0;
    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const char *value = colon ? colon + 1 : line + n;
    size_t value_len = (size_t)(line + n - value);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        if ((s->has_data && pb_buf_append(&s->data, "\n", 1) != PB_OK) ||
            pb_buf_append(&s->data, value, value_len) != PB_OK) {
            s->error = "event data over its bound";
            return -1;
        }
        s->has_data = true;
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        if (value_len >= sizeof(s->event)) {
            s->error = "event type too long";
            return -1;
        }
        memcpy(s->event, value, value_len);
        s->event[value_len] = '\0';
    }
    return 0;
}

int
pb_sse_feed(pb_sse *s, const char *p, size_t n, pb_sse_fn fn, void *arg)
{
    if (s->error)
        return PB_ERR;
    size_t i = 0;
    if (s->skip_lf && n > 0 && p[0] == '\n')
        i = 1;
    s->skip_lf = false;
    while (i < n) {
        size_t end = i;
        while (end < n && p[end] != '\n' && p[end] != '\r' && p[end] != '\0')
            end++;
        if (end < n && p[end] == '\0') {
            s->error = "NUL byte in the stream";
            return PB_ERR;
        }
        if (pb_buf_append(&s->line, p + i, end - i) != PB_OK) {
            s->error = "line over its bound";
            return PB_ERR;
        }
        if (end == n)
            break; /* the line goes on in the next piece */
        int rc = sse_line(s, s->line.data ? s->line.data : "", s->line.len, fn, arg);
        pb_buf_reset(&s->line);
        if (rc != 0) {
            if (s->error == NULL)
                s->error = "stopped by the reader";
            return PB_ERR;
        }
        if (p[end] == '\r') {
            if (end + 1 == n)
                s->skip_lf = true;
            else if (p[end + 1] == '\n')
                end++;
        }
        i = end + 1;
    }
    return PB_OK;
}
