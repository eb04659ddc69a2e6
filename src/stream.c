/* stream.c -- a streamed job's entries on planb:stream:<id> (see stream.h).
 *
 * Pieces are kept in arrival order: consecutive text merges into one pending
 * `delta`, each tool piece is an entry of its own. A flush sends them through
 * stream_add.lua on the worker's command connection, so they reach Redis in order
 * and before the job's finish (which adds `end`), and only while this run owns the
 * stream (a job can run twice: see stream_add.lua). Every entry sent is kept until
 * Redis answers for it: one whose reply was lost to an outage is sent again, in
 * order, at the next flush once the connection is back (entries are numbered, so
 * one that did land is not added twice). While entries wait for Redis, what is kept
 * is bounded per stream; past the bound the rest of the run's pieces are dropped, and
 * the reader falls back on `end`, whose result carries the whole answer. */
#include "planb/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

#define STREAM_PENDING_MAX (4u << 20) /* text buffered between two flushes (one read's worth) */
#define STREAM_KEPT_MAX                                                                            \
    (256u << 10) /* bytes of entries kept for a re-send: seconds of outage at any model's          \
                    speed, times the hundreds of streams one worker may hold */
#define STREAM_FIELDS_MAX 6 /* field-value pairs of one entry (a tool piece has 5) */
#define STREAM_SCRIPT_ARGS                                                                         \
    (4 + 5 + 2 * STREAM_FIELDS_MAX) /* stream_add.lua: 4 keys, 5 fixed ARGV, the fields */

typedef struct stream_piece {
    bool tool;   /* a tool piece (else merged text) */
    int index;   /* tool call number */
    char *id;    /* tool: first piece's id, or NULL */
    char *name;  /* tool: first piece's function name, or NULL */
    pb_buf text; /* text, or the tool's arguments piece */
} stream_piece;

/* An entry sent (or to send) and not yet answered for. */
typedef struct stream_entry {
    unsigned long seq;                  /* its number within the run, from 1 */
    int n;                              /* field and value strings */
    char *fv[2 * STREAM_FIELDS_MAX];    /* owned copies */
    size_t lens[2 * STREAM_FIELDS_MAX]; /* their lengths */
    size_t bytes;                       /* their total */
    bool in_flight;                     /* sent, its reply awaited */
} stream_entry;

struct pb_stream {
    pb_redis *r;          /* the worker's command connection (borrowed) */
    char *key;            /* <p>:stream:<id> */
    char *run_key;        /* <p>:streamrun:<id> */
    char *result_key;     /* <p>:result:<id> */
    char *workers_key;    /* <p>:workers */
    char *token;          /* this run's token: "<worker id>|<run number>" */
    char maxlen[16];      /* stream_maxlen as text */
    char ttl[16];         /* stream_ttl_s as text */
    stream_piece *pieces; /* pending, in order */
    size_t n, cap;
    stream_entry *kept;         /* entries not answered for yet, oldest first: [head, end) */
    size_t head, end, cap_kept; /* replies come in order, so the oldest leaves at head */
    size_t kept_bytes;          /* their bytes */
    size_t n_unsent;            /* of them, not in flight: new, or lost to an outage */
    unsigned long seq;          /* the last entry number given */
    unsigned long dropped;      /* entries dropped past STREAM_KEPT_MAX */
    bool refused;               /* stream_add.lua refused an entry: this run writes no more */
    int outstanding;            /* replies still to come */
    bool freed;                 /* pb_stream_free was called: freed at the last reply */
    bool has_content;           /* a text or tool piece was sent */
    int64_t expired_at_mono_ms; /* when the TTL was last renewed (0: never) */
};

/* A reply's link back to its entry. */
typedef struct stream_ticket {
    pb_stream *s;
    unsigned long seq;
} stream_ticket;

pb_stream *
pb_stream_new(pb_redis *r, const pb_config *cfg, const char *id, const char *worker_id)
{
    static unsigned long runs; /* this process's runs: with the worker id, a unique token */
    pb_stream *s = pb_xcalloc(1, sizeof(*s));
    s->r = r;
    s->key = pb_key_stream(cfg->prefix, id);
    s->run_key = pb_key_stream_run(cfg->prefix, id);
    s->result_key = pb_key_result(cfg->prefix, id);
    s->workers_key = pb_key_workers(cfg->prefix);
    s->token = pb_xasprintf("%s|%lu", worker_id, ++runs);
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

static void
stream_entry_clear(stream_entry *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->fv[i]);
}

static void
stream_destroy(pb_stream *s)
{
    stream_pieces_clear(s);
    free(s->pieces);
    for (size_t i = s->head; i < s->end; i++)
        stream_entry_clear(&s->kept[i]);
    free(s->kept);
    free(s->key);
    free(s->run_key);
    free(s->result_key);
    free(s->workers_key);
    free(s->token);
    free(s);
}

void
pb_stream_free(pb_stream *s)
{
    if (s == NULL)
        return;
    if (s->outstanding > 0) {
        s->freed = true; /* the last reply frees it */
        return;
    }
    stream_destroy(s);
}

/* Lets go of kept entry i (answered for, or dropped unsent). */
static void
stream_forget(pb_stream *s, size_t i)
{
    stream_entry *e = &s->kept[i];
    s->kept_bytes -= e->bytes;
    if (!e->in_flight)
        s->n_unsent--;
    stream_entry_clear(e);
    if (i == s->head)
        s->head++;
    else
        memmove(e, e + 1, (--s->end - i) * sizeof(*e)); /* after a transient error */
}

/* Redis answered for one entry: added or refused, it is done with; lost to an outage (or a
 * not-ready server), it waits for the next flush to be sent again. */
static void
stream_on_reply(redisReply *reply, void *arg)
{
    stream_ticket *t = arg;
    pb_stream *s = t->s;
    s->outstanding--;
    for (size_t i = s->head; i < s->end; i++) {
        stream_entry *e = &s->kept[i];
        if (e->seq != t->seq)
            continue;
        if (pb_redis_is_transient(reply)) {
            e->in_flight = false;
            s->n_unsent++;
        } else {
            if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && !s->refused) {
                s->refused = true; /* what is still unsent is dropped at the next flush */
                pb_log(PB_LOG_INFO, "event=stream_refused key=%s run=%s", s->key, s->token);
            }
            if (reply->type == REDIS_REPLY_ERROR)
                pb_log(PB_LOG_ERROR, "event=stream_add_failed key=%s error=\"%.*s\"", s->key,
                       (int)strcspn(reply->str, "\r\n"), reply->str);
            stream_forget(s, i);
        }
        break;
    }
    free(t);
    if (s->freed && s->outstanding == 0)
        stream_destroy(s);
}

static void
stream_send(pb_stream *s, stream_entry *e)
{
    char seq[24];
    snprintf(seq, sizeof(seq), "%lu", e->seq);
    /* The TTL is renewed at most once a second: an EXPIRE per piece would double the stream's
     * Redis traffic for nothing (finish.lua renews it once more with `end`). */
    int64_t now = pb_mono_ms();
    bool renew = s->expired_at_mono_ms == 0 || now - s->expired_at_mono_ms >= 1000;
    if (renew)
        s->expired_at_mono_ms = now;
    const char *argv[STREAM_SCRIPT_ARGS] = {s->key,         s->run_key, s->result_key,
                                            s->workers_key, s->token,   seq,
                                            s->maxlen,      s->ttl,     renew ? "1" : "0"};
    size_t lens[STREAM_SCRIPT_ARGS];
    int argc = 9;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < e->n; i++) {
        argv[argc] = e->fv[i];
        lens[argc++] = e->lens[i];
    }
    stream_ticket *t = pb_xmalloc(sizeof(*t));
    t->s = s;
    t->seq = e->seq;
    e->in_flight = true;
    s->n_unsent--;
    s->outstanding++;
    pb_redis_script(s->r, "stream_add", stream_on_reply, t, 4, argc, argv, lens);
}

/* Sends every kept entry not in flight, oldest first; nothing while the connection is down
 * (the next flush tries again), so an entry never overtakes one lost before it. */
static void
stream_pump(pb_stream *s)
{
    if (s->refused) {
        for (size_t i = s->end; i-- > s->head;)
            if (!s->kept[i].in_flight)
                stream_forget(s, i);
        return;
    }
    if (s->n_unsent == 0 || !pb_redis_is_up(s->r))
        return;
    for (size_t i = s->head; i < s->end && s->n_unsent > 0; i++)
        if (!s->kept[i].in_flight)
            stream_send(s, &s->kept[i]);
}

/* A new entry of nfields field-value pairs (fv_lens NULL: NUL-terminated), kept and sent. */
static void
stream_xadd(pb_stream *s, int nfields, const char **fv, const size_t *fv_lens)
{
    pb_assert(nfields <= STREAM_FIELDS_MAX);
    if (s->refused)
        return;
    size_t bytes = 0;
    for (int i = 0; i < 2 * nfields; i++)
        bytes += fv_lens ? fv_lens[i] : strlen(fv[i]);
    bool held = s->n_unsent > 0 || !pb_redis_is_up(s->r);
    if (s->dropped > 0 || (held && s->kept_bytes + bytes > STREAM_KEPT_MAX)) {
        /* Entries wait for Redis, and have for long: the rest of this run is dropped, not a
         * piece here and there (a reader would get text with holes). Entries merely in
         * flight never count as waiting: a fast upstream is not an outage. */
        if (s->dropped++ == 0)
            pb_log(PB_LOG_WARN, "event=stream_dropped key=%s kept_bytes=%zu", s->key,
                   s->kept_bytes);
        return;
    }
    if (s->end == s->cap_kept && s->head > 0) {
        memmove(s->kept, s->kept + s->head, (s->end - s->head) * sizeof(*s->kept));
        s->end -= s->head;
        s->head = 0;
    } else if (s->end == s->cap_kept) {
        s->cap_kept = s->cap_kept ? 2 * s->cap_kept : 4;
        s->kept = pb_xrealloc(s->kept, s->cap_kept * sizeof(*s->kept));
    }
    stream_entry *e = &s->kept[s->end++];
    memset(e, 0, sizeof(*e));
    e->seq = ++s->seq;
    e->n = 2 * nfields;
    for (int i = 0; i < e->n; i++) {
        e->lens[i] = fv_lens ? fv_lens[i] : strlen(fv[i]);
        e->fv[i] = pb_xstrndup(fv[i], e->lens[i]);
    }
    e->bytes = bytes;
    s->kept_bytes += bytes;
    s->n_unsent++;
    stream_pump(s);
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
    stream_pump(s); /* entries lost to an outage first, in order */
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

const char *
pb_stream_run(const pb_stream *s)
{
    return s->token;
}
