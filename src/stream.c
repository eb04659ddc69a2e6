/* stream.c -- a streamed job's entries on planb:stream:<id> (see stream.h).
 *
 * Pieces are kept in arrival order: consecutive text merges into one pending
 * `delta`, each tool piece is an entry of its own. A flush sends them as XADDs
 * on the worker's command connection, so they reach Redis in order and before
 * the job's finish (which adds `end`). A send lost to a Redis outage is not
 * retried: the reader then misses those pieces, but `end` carries the whole
 * answer in its result, which is what a reader falls back on. */
#include "planb/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/core.h"
#include "planb/keys.h"

#define STREAM_PENDING_MAX (4u << 20) /* text buffered between two flushes (one read's worth) */

typedef struct stream_piece {
    bool tool;   /* a tool piece (else merged text) */
    int index;   /* tool call number */
    char *id;    /* tool: first piece's id, or NULL */
    char *name;  /* tool: first piece's function name, or NULL */
    pb_buf text; /* text, or the tool's arguments piece */
} stream_piece;

struct pb_stream {
    pb_redis *r;          /* the worker's command connection (borrowed) */
    char *key;            /* <p>:stream:<id> */
    char maxlen[16];      /* stream_maxlen as text */
    char ttl[16];         /* stream_ttl_s as text */
    stream_piece *pieces; /* pending, in order */
    size_t n, cap;
    bool has_content;           /* a text or tool piece was sent */
    int64_t expired_at_mono_ms; /* when the TTL was last renewed (0: never) */
};

pb_stream *
pb_stream_new(pb_redis *r, const pb_config *cfg, const char *id)
{
    pb_stream *s = pb_xcalloc(1, sizeof(*s));
    s->r = r;
    s->key = pb_key_stream(cfg->prefix, id);
    snprintf(s->maxlen, sizeof(s->maxlen), "%d", cfg->stream_maxlen);
    snprintf(s->ttl, sizeof(s->ttl), "%d", cfg->stream_ttl_s);
    return s;
}

static void
stream_pieces_clear(pb_stream *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->pieces[i].id);
        free(s->pieces[i].name);
        pb_buf_free(&s->pieces[i].text);
    }
    s->n = 0;
}

void
pb_stream_free(pb_stream *s)
{
    if (s == NULL)
        return;
    stream_pieces_clear(s);
    free(s->pieces);
    free(s->key);
    free(s);
}

/* XADD key MAXLEN ~ n * <field value ...>, then the key's TTL. */
static void
stream_xadd(pb_stream *s, int nfields, const char **fv, const size_t *fv_lens)
{
    const char *argv[6 + 16];
    size_t lens[6 + 16];
    int argc = 0;
    const char *head[] = {"XADD", s->key, "MAXLEN", "~", s->maxlen, "*"};
    for (int i = 0; i < 6; i++) {
        argv[argc] = head[i];
        lens[argc++] = strlen(head[i]);
    }
    for (int i = 0; i < 2 * nfields && argc < (int)(sizeof(argv) / sizeof(argv[0])); i++) {
        argv[argc] = fv[i];
        lens[argc++] = fv_lens ? fv_lens[i] : strlen(fv[i]);
    }
    pb_redis_command(s->r, NULL, NULL, argc, argv, lens);
    /* The TTL is renewed at most once a second: an EXPIRE per piece would double the stream's
     * Redis traffic for nothing (finish.lua renews it once more with `end`). */
    int64_t now = pb_mono_ms();
    if (s->expired_at_mono_ms == 0 || now - s->expired_at_mono_ms >= 1000) {
        s->expired_at_mono_ms = now;
        const char *exp[] = {"EXPIRE", s->key, s->ttl};
        pb_redis_command(s->r, NULL, NULL, 3, exp, NULL);
    }
}

void
pb_stream_start(pb_stream *s, const char *model, const char *source, bool continued)
{
    pb_stream_flush(s);
    const char *fv[8] = {"type", "start", "model", model ? model : "", "source", source};
    int n = 3;
    if (continued) {
        fv[6] = "continued";
        fv[7] = "1";
        n = 4;
    }
    stream_xadd(s, n, fv, NULL);
}

static stream_piece *
stream_push(pb_stream *s, bool tool)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4;
        s->pieces = pb_xrealloc(s->pieces, s->cap * sizeof(*s->pieces));
    }
    stream_piece *p = &s->pieces[s->n++];
    memset(p, 0, sizeof(*p));
    p->tool = tool;
    pb_buf_init(&p->text, STREAM_PENDING_MAX);
    return p;
}

void
pb_stream_text(pb_stream *s, const char *p, size_t n)
{
    if (n == 0)
        return;
    stream_piece *last = s->n ? &s->pieces[s->n - 1] : NULL;
    if (last == NULL || last->tool)
        last = stream_push(s, false);
    if (pb_buf_append(&last->text, p, n) != PB_OK) {
        /* More than one read can hold: send what is there and go on with a fresh piece. */
        pb_stream_flush(s);
        pb_stream_text(s, p, n < STREAM_PENDING_MAX ? n : STREAM_PENDING_MAX);
    }
}

void
pb_stream_tool(pb_stream *s, int index, const char *id, const char *name, const char *args,
               size_t args_len)
{
    stream_piece *p = stream_push(s, true);
    p->index = index;
    p->id = id ? pb_xstrdup(id) : NULL;
    p->name = name ? pb_xstrdup(name) : NULL;
    if (pb_buf_append(&p->text, args, args_len) != PB_OK)
        pb_buf_reset(&p->text); /* a tool piece past 4 MiB cannot come from one read */
}

void
pb_stream_flush(pb_stream *s)
{
    for (size_t i = 0; i < s->n; i++) {
        stream_piece *p = &s->pieces[i];
        const char *text = p->text.data ? p->text.data : "";
        if (!p->tool) {
            const char *fv[] = {"type", "delta", "text", text};
            size_t lens[] = {4, 5, 4, p->text.len};
            stream_xadd(s, 2, fv, lens);
        } else {
            char idx[16];
            snprintf(idx, sizeof(idx), "%d", p->index);
            const char *fv[10] = {"type", "tool", "index", idx, "arguments", text};
            size_t lens[10] = {4, 4, 5, strlen(idx), 9, p->text.len};
            int n = 3;
            if (p->id) {
                fv[2 * n] = "id";
                fv[2 * n + 1] = p->id;
                lens[2 * n] = 2;
                lens[2 * n + 1] = strlen(p->id);
                n++;
            }
            if (p->name) {
                fv[2 * n] = "name";
                fv[2 * n + 1] = p->name;
                lens[2 * n] = 4;
                lens[2 * n + 1] = strlen(p->name);
                n++;
            }
            stream_xadd(s, n, fv, lens);
        }
        s->has_content = true;
    }
    stream_pieces_clear(s);
}

bool
pb_stream_has_content(const pb_stream *s)
{
    return s->has_content;
}

const char *
pb_stream_key(const pb_stream *s)
{
    return s->key;
}
