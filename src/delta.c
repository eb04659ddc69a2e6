/* delta.c -- a streamed answer put back together (see delta.h).
 *
 * Text, a refusal and each tool call's arguments grow in buffers bounded together by
 * the answer's limit (limits.reply_max_bytes: the decoded answer, never the SSE framing
 * around it); tool calls are kept in their index order, as both dialects number them.
 * The finished answer is the same pb_completion the non-streamed parsers make, with the
 * same rule for what is an answer, so results, caches and stats cannot tell the two
 * apart. */
#include "planb/delta.h"

#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/core.h"
#include "planb/request.h"

typedef struct delta_tool {
    char *id;     /* call id (the first piece's) */
    char *name;   /* function name (the first piece's) */
    pb_buf args;  /* arguments JSON text, as it grows */
    bool started; /* a piece arrived */
} delta_tool;

struct pb_delta {
    pb_delta_sink sink;
    pb_buf text;                                /* the answer text so far */
    pb_buf refusal;                             /* the model's refusal so far */
    size_t max_bytes, bytes;                    /* content bound, content taken so far */
    delta_tool tools[PB_DELTA_MAX_TOOL_CALLS];  /* by index */
    int n_tools;                                /* highest index + 1 */
    short block_tool[PB_DELTA_MAX_BLOCKS];      /* Anthropic block -> tool index + 1 */
    const char *finish_reason;                  /* normalized, NULL until told */
    long prompt, completion, cached, reasoning; /* usage, -1 unknown */
    bool has_content, ended, in_tool;
    bool too_large;    /* a piece was dropped: it would have passed max_bytes */
    char *response_id; /* the reply's id, NULL until told */
};

pb_delta *
pb_delta_new(const pb_delta_sink *sink, size_t max_bytes)
{
    pb_delta *d = pb_xcalloc(1, sizeof(*d));
    if (sink)
        d->sink = *sink;
    d->max_bytes = max_bytes;
    pb_buf_init(&d->text, max_bytes);
    pb_buf_init(&d->refusal, max_bytes);
    d->prompt = d->completion = d->cached = d->reasoning = -1;
    return d;
}

void
pb_delta_free(pb_delta *d)
{
    if (d == NULL)
        return;
    pb_buf_free(&d->text);
    pb_buf_free(&d->refusal);
    free(d->response_id);
    for (int i = 0; i < d->n_tools; i++) {
        free(d->tools[i].id);
        free(d->tools[i].name);
        pb_buf_free(&d->tools[i].args);
    }
    free(d);
}

/* Counts n more bytes of content against the bound; false (and too_large) when they would
 * pass it: the piece is dropped, the chain ends the attempt as too_large. */
static bool
delta_take(pb_delta *d, size_t n)
{
    if (d->too_large || n > d->max_bytes - d->bytes) {
        d->too_large = true;
        return false;
    }
    d->bytes += n;
    return true;
}

void
pb_delta_text(pb_delta *d, const char *p, size_t n)
{
    if (n == 0 || !delta_take(d, n))
        return;
    pb_buf_append(&d->text, p, n);
    d->has_content = true;
    d->in_tool = false;
    if (d->sink.text)
        d->sink.text(d->sink.arg, p, n);
}

void
pb_delta_refusal(pb_delta *d, const char *p, size_t n)
{
    if (n == 0 || !delta_take(d, n))
        return;
    pb_buf_append(&d->refusal, p, n);
    if (d->sink.refusal)
        d->sink.refusal(d->sink.arg, p, n);
}

int
pb_delta_tool(pb_delta *d, int index, const char *id, const char *name, const char *args,
              size_t args_len)
{
    if (index < 0 || index >= PB_DELTA_MAX_TOOL_CALLS)
        return PB_ERR;
    if (!delta_take(d, (id ? strlen(id) : 0) + (name ? strlen(name) : 0) + args_len))
        return PB_OK;
    while (d->n_tools <= index)
        pb_buf_init(&d->tools[d->n_tools++].args, d->max_bytes);
    delta_tool *t = &d->tools[index];
    if (id && t->id == NULL)
        t->id = pb_xstrdup(id);
    if (name && t->name == NULL)
        t->name = pb_xstrdup(name);
    pb_buf_append(&t->args, args, args_len);
    t->started = true;
    d->has_content = true;
    d->in_tool = true;
    if (d->sink.tool)
        d->sink.tool(d->sink.arg, index, id, name, args, args_len);
    return PB_OK;
}

int
pb_delta_block_tool(pb_delta *d, int block, bool starts, int *index)
{
    if (block < 0 || block >= PB_DELTA_MAX_BLOCKS)
        return PB_ERR;
    if (starts) {
        if (d->n_tools >= PB_DELTA_MAX_TOOL_CALLS)
            return PB_ERR;
        d->block_tool[block] = (short)(d->n_tools + 1);
    }
    if (d->block_tool[block] == 0)
        return PB_ERR;
    *index = d->block_tool[block] - 1;
    return PB_OK;
}

int
pb_delta_tool_count(const pb_delta *d)
{
    return d->n_tools;
}

void
pb_delta_finish_reason(pb_delta *d, const char *normalized)
{
    d->finish_reason = normalized;
}

void
pb_delta_usage(pb_delta *d, long prompt, long completion, long cached, long reasoning)
{
    if (prompt >= 0)
        d->prompt = prompt;
    if (completion >= 0)
        d->completion = completion;
    if (cached >= 0)
        d->cached = cached;
    if (reasoning >= 0)
        d->reasoning = reasoning;
}

void
pb_delta_end(pb_delta *d)
{
    d->ended = true;
}

bool
pb_delta_has_content(const pb_delta *d)
{
    return d->has_content;
}

bool
pb_delta_too_large(const pb_delta *d)
{
    return d->too_large;
}

bool
pb_delta_ended(const pb_delta *d)
{
    return d->ended;
}

bool
pb_delta_in_tool(const pb_delta *d)
{
    return d->in_tool;
}

const char *
pb_delta_text_so_far(const pb_delta *d, size_t *len)
{
    *len = d->text.len;
    return d->text.data ? d->text.data : "";
}

/* The OpenAI-shaped tool_calls array of the answer, or NULL when it made none. */
static char *
delta_tool_calls_json(const pb_delta *d, pb_error *err)
{
    if (d->n_tools == 0)
        return NULL;
    pb_buf b;
    pb_buf_init(&b, (size_t)-1);
    pb_buf_append(&b, "[", 1);
    for (int i = 0; i < d->n_tools; i++) {
        const delta_tool *t = &d->tools[i];
        const char *args = t->args.data ? t->args.data : "";
        size_t alen = t->args.len;
        if (alen == 0) {
            args = "{}"; /* a call without arguments sends none (Anthropic: empty input) */
            alen = 2;
        }
        if (!t->started || t->id == NULL || t->name == NULL ||
            !pb_request_is_json_object(args, alen)) {
            pb_error_set(err, PB_PROVIDER_BAD_REPLY,
                         "BAD_REPLY streamed tool call %d is incomplete or its arguments are "
                         "not a JSON object",
                         i);
            pb_buf_free(&b);
            return NULL;
        }
        if (i > 0)
            pb_buf_append(&b, ",", 1);
        pb_buf_append(&b, "{\"id\":", 6);
        pb_provider_json_string(&b, t->id, strlen(t->id));
        pb_buf_append(&b, ",\"type\":\"function\",\"function\":{\"name\":", 38);
        pb_provider_json_string(&b, t->name, strlen(t->name));
        pb_buf_append(&b, ",\"arguments\":", 13);
        pb_provider_json_string(&b, args, alen);
        pb_buf_append(&b, "}}", 2);
    }
    pb_buf_append(&b, "]", 1);
    return b.data;
}

int
pb_delta_complete(pb_delta *d, pb_completion *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!d->ended) {
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY the stream ended before its end");
        return PB_ERR;
    }
    pb_error terr = {0};
    char *calls = delta_tool_calls_json(d, &terr);
    if (calls == NULL && d->n_tools > 0) {
        pb_error_set(err, terr.code, "%s", terr.msg);
        return PB_ERR;
    }
    const char *finish = d->finish_reason ? d->finish_reason : (calls ? "tool_calls" : "stop");
    /* As the non-streamed parsers: a refusal or a content-filter stop is an answer too. */
    if (calls == NULL && d->text.len == 0 && d->refusal.len == 0 &&
        strcmp(finish, "content_filter") != 0) {
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY the stream held no answer");
        return PB_ERR;
    }
    out->content = pb_xstrndup(d->text.data ? d->text.data : "", d->text.len);
    out->tool_calls = calls;
    out->refusal = d->refusal.len ? pb_xstrndup(d->refusal.data, d->refusal.len) : NULL;
    out->finish_reason = finish;
    out->prompt_tokens = d->prompt;
    out->completion_tokens = d->completion;
    out->cached_tokens = d->cached;
    out->reasoning_tokens = d->reasoning;
    out->response_id = d->response_id;
    d->response_id = NULL;
    return PB_OK;
}

void
pb_delta_response_id(pb_delta *d, const char *id)
{
    if (d->response_id == NULL && id != NULL)
        d->response_id = pb_xstrdup(id);
}
