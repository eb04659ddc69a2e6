/* wire.c -- OpenAI Chat Completions bodies in and out of the front door (wire.h).
 *
 * In: the body is tokenized as strictly as a job, reshaped into a job (model -> route or
 * models, stream and stream_options kept by the front, the rest under params) and run
 * through pb_job_parse, so an accepted request is a valid job. Out: results and stream
 * pieces are rebuilt with json-c in OpenAI's shapes; errors always carry OpenAI's
 * {"error":{message,type,param,code}}. */
#include "planb/wire.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "planb/core.h"
#include "planb/job.h"
#include "planb/utf8.h"

#define WIRE_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* A message as one line of whole UTF-8: CR/LF become spaces, and a sequence that is not
 * UTF-8 is dropped, so a %.200s (or the message's own bound) that cut a character in two
 * leaves the text before it. */
static void
wire_error_text(char *msg)
{
    size_t n = strlen(msg), o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = pb_utf8_seq_len((const unsigned char *)msg + i, n - i);
        if (len == 0) {
            i++;
            continue;
        }
        for (size_t k = 0; k < len; k++, i++)
            msg[o++] = msg[i] == '\r' || msg[i] == '\n' ? ' ' : msg[i];
    }
    msg[o] = '\0';
}

void
pb_wire_error_set(pb_wire_error *err, int status, const char *type, const char *code,
                  const char *fmt, ...)
{
    err->status = status;
    snprintf(err->type, sizeof(err->type), "%s", type);
    snprintf(err->code, sizeof(err->code), "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    wire_error_text(err->message);
}

char *
pb_wire_error_json(const pb_wire_error *err, size_t *len)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "message", json_object_new_string(err->message));
    json_object_object_add(e, "type", json_object_new_string(err->type));
    json_object_object_add(e, "param", NULL);
    json_object_object_add(e, "code", err->code[0] ? json_object_new_string(err->code) : NULL);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", e);
    size_t n = 0;
    char *s = pb_xstrdup(json_object_to_json_string_length(o, WIRE_JSON_FLAGS, &n));
    json_object_put(o);
    if (len)
        *len = n;
    return s;
}

/* "CODE sentence" of the job parser as an OpenAI error: the code lowercased, the sentence
 * without the job-only "params." prefix (the client sent those fields at the top level). */
static void
wire_error_from_job(pb_wire_error *err, const pb_error *jerr)
{
    const char *msg = jerr->msg, *space = strchr(msg, ' ');
    char code[32] = "";
    size_t n = space ? (size_t)(space - msg) : 0;
    for (size_t i = 0; i < n && i + 1 < sizeof(code); i++)
        code[i] = (char)(msg[i] >= 'A' && msg[i] <= 'Z' ? msg[i] + 32 : msg[i]);
    char text[sizeof(err->message)];
    size_t o = 0;
    for (const char *p = space ? space + 1 : msg; *p && o + 1 < sizeof(text);) {
        if (strncmp(p, "params.", 7) == 0) {
            p += 7;
            continue;
        }
        text[o++] = *p++;
    }
    text[o] = '\0';
    bool unknown = jerr->code == PB_JOB_UNKNOWN_ROUTE || jerr->code == PB_JOB_UNKNOWN_MODEL;
    pb_wire_error_set(err, unknown ? 404 : 400, "invalid_request_error",
                      unknown ? "model_not_found" : code, "%s", text);
}

/* model: a route name, else a configured model as a one-model chain, else 404. */
static int
wire_model(json_object *job, json_object *model, const pb_config *cfg, pb_wire_job *out,
           pb_wire_error *err)
{
    if (model == NULL || json_object_is_type(model, json_type_null)) {
        out->model = pb_xstrdup("");
        return PB_OK;
    }
    if (!json_object_is_type(model, json_type_string)) {
        pb_wire_error_set(err, 400, "invalid_request_error", "bad_field",
                          "model must be a string: a route or a model of this planb");
        return PB_ERR;
    }
    const char *name = json_object_get_string(model);
    out->model = pb_xstrdup(name);
    if (pb_config_route_index(cfg, name) >= 0) {
        json_object_object_add(job, "route", json_object_new_string(name));
        return PB_OK;
    }
    if (pb_config_model_index(cfg, name) >= 0) {
        json_object *models = json_object_new_array();
        json_object_array_add(models, json_object_new_string(name));
        json_object_object_add(job, "models", models);
        return PB_OK;
    }
    pb_wire_error_set(err, 404, "invalid_request_error", "model_not_found",
                      "The model '%.200s' does not exist: use a route or a model of this planb "
                      "(GET /v1/models)",
                      name);
    return PB_ERR;
}

/* stream and stream_options stay with the front: the job gets "stream", the rest is ours. */
static int
wire_stream(json_object *body, pb_wire_job *out, pb_wire_error *err)
{
    json_object *stream = NULL, *opts = NULL;
    json_object_object_get_ex(body, "stream", &stream);
    json_object_object_get_ex(body, "stream_options", &opts);
    if (stream && !json_object_is_type(stream, json_type_null)) {
        if (!json_object_is_type(stream, json_type_boolean)) {
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_field",
                              "stream must be a boolean");
            return PB_ERR;
        }
        out->stream = json_object_get_boolean(stream);
    }
    if (opts && !json_object_is_type(opts, json_type_null)) {
        json_object *usage = NULL;
        if (!out->stream) {
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_field",
                              "stream_options is only allowed with stream: true");
            return PB_ERR;
        }
        if (!json_object_is_type(opts, json_type_object)) {
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_field",
                              "stream_options must be an object");
            return PB_ERR;
        }
        json_object_object_foreach(opts, k, v)
        {
            if (strcmp(k, "include_usage") == 0 && json_object_is_type(v, json_type_boolean)) {
                usage = v;
                continue;
            }
            if (strcmp(k, "include_obfuscation") == 0 && json_object_is_type(v, json_type_boolean))
                continue; /* a transport knob of OpenAI's own; nothing to obfuscate here */
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_field",
                              "stream_options.%.64s is not supported (include_usage is)", k);
            return PB_ERR;
        }
        out->include_usage = usage && json_object_get_boolean(usage);
    }
    return PB_OK;
}

int
pb_wire_job_from_body(const char *body, size_t len, const pb_config *cfg, const pb_wire_opts *opts,
                      pb_wire_job *out, pb_wire_error *err)
{
    memset(out, 0, sizeof(*out));
    pb_error jerr = {0};
    json_object *root = pb_job_tokenize(body, len, &jerr);
    if (root == NULL) {
        const char *why = strstr(jerr.msg, "job ");
        pb_wire_error_set(err, 400, "invalid_request_error", "bad_json", "request body %s",
                          why ? why + 4 : "is not valid JSON");
        return PB_ERR;
    }
    json_object *job = json_object_new_object(), *params = json_object_new_object();
    json_object *model = NULL, *messages = NULL;
    int rc = PB_ERR;
    json_object_object_add(job, "id", json_object_new_string(opts->id));
    json_object_object_get_ex(root, "model", &model);
    json_object_object_get_ex(root, "messages", &messages);
    if (wire_model(job, model, cfg, out, err) != PB_OK || wire_stream(root, out, err) != PB_OK)
        goto out;
    if (messages == NULL) {
        pb_wire_error_set(err, 400, "invalid_request_error", "bad_field",
                          "messages is required: an array of chat messages");
        goto out;
    }
    json_object_object_add(job, "messages", json_object_get(messages));
    json_object_object_foreach(root, key, val)
    {
        if (strcmp(key, "model") != 0 && strcmp(key, "messages") != 0 &&
            strcmp(key, "stream") != 0 && strcmp(key, "stream_options") != 0)
            json_object_object_add(params, key, json_object_get(val));
    }
    if (json_object_object_length(params) > 0)
        json_object_object_add(job, "params", json_object_get(params));
    if (out->stream)
        json_object_object_add(job, "stream", json_object_new_boolean(1));
    if (opts->tenant)
        json_object_object_add(job, "tenant", json_object_new_string(opts->tenant));
    /* Trace context goes on as the worker reads it: a malformed one is ignored there, never a
     * refused request (only its length is bounded here). */
    if (opts->traceparent && strlen(opts->traceparent) <= 2 * PB_TRACEPARENT_LEN)
        json_object_object_add(job, "traceparent", json_object_new_string(opts->traceparent));
    if (opts->traceparent && opts->tracestate && strlen(opts->tracestate) <= PB_TRACESTATE_MAX_LEN)
        json_object_object_add(job, "tracestate", json_object_new_string(opts->tracestate));
    if (opts->deadline_ms > 0)
        json_object_object_add(job, "deadline_ms", json_object_new_int(opts->deadline_ms));
    if (opts->cache)
        json_object_object_add(job, "cache", json_object_new_string(opts->cache));
    if (opts->critical >= 0)
        json_object_object_add(job, "critical", json_object_new_boolean(opts->critical));
    if (opts->submitted_at_ms > 0)
        json_object_object_add(job, "submitted_at_ms",
                               json_object_new_int64(opts->submitted_at_ms));
    size_t n = 0;
    const char *text = json_object_to_json_string_length(job, WIRE_JSON_FLAGS, &n);
    if (n > cfg->limits.job_max_bytes) {
        pb_wire_error_set(err, 400, "invalid_request_error", "too_large",
                          "the request makes a job of %zu bytes, limit %zu", n,
                          cfg->limits.job_max_bytes);
        goto out;
    }
    /* The job is checked as built (the body was tokenized as strictly as a job is), so its
     * text is not parsed a second time here; the worker parses that text as its job. */
    pb_request *req = NULL;
    char *bad_id = NULL;
    if (pb_job_parse_object(job, n, cfg, &req, &bad_id, &jerr) != PB_OK) {
        free(bad_id);
        wire_error_from_job(err, &jerr);
        goto out;
    }
    out->deadline_ms = req->deadline_ms;
    pb_request_free(req);
    out->json = pb_xstrdup(text);
    out->len = n;
    rc = PB_OK;
out:
    json_object_put(params);
    json_object_put(job);
    json_object_put(root);
    if (rc != PB_OK)
        pb_wire_job_free(out);
    return rc;
}

void
pb_wire_job_free(pb_wire_job *job)
{
    free(job->json);
    free(job->model);
    memset(job, 0, sizeof(*job));
}

void
pb_wire_result_id(const char *result, size_t len, char *id, size_t size)
{
    static const char head[] = "{\"id\":\"";
    id[0] = '\0';
    if (len > sizeof(head) - 1 && memcmp(result, head, sizeof(head) - 1) == 0) {
        const char *s = result + sizeof(head) - 1, *end = result + len;
        size_t n = 0;
        while (s + n < end && s[n] != '"' && s[n] != '\\')
            n++;
        if (s + n < end && s[n] == '"' && n < size) {
            memcpy(id, s, n);
            id[n] = '\0';
            return;
        }
    }
    json_object *o = json_tokener_parse(result), *v;
    if (o && json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_string))
        snprintf(id, size, "%s", json_object_get_string(v));
    json_object_put(o);
}

static const char *
wire_str(json_object *o, const char *key, const char *def)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return def;
}

const char *
pb_wire_cache_status(const char *source)
{
    return strcmp(source, "cache") == 0            ? "hit"
           : strcmp(source, "semantic_cache") == 0 ? "semantic_hit"
           : strcmp(source, "stale_cache") == 0    ? "stale"
                                                   : "miss";
}

static void
wire_meta(json_object *res, pb_wire_meta *meta)
{
    memset(meta, 0, sizeof(*meta));
    json_object *a, *l;
    snprintf(meta->status, sizeof(meta->status), "%s", wire_str(res, "status", ""));
    snprintf(meta->source, sizeof(meta->source), "%s", wire_str(res, "source", ""));
    snprintf(meta->model, sizeof(meta->model), "%s", wire_str(res, "model", ""));
    snprintf(meta->provider, sizeof(meta->provider), "%s", wire_str(res, "provider", ""));
    snprintf(meta->cache, sizeof(meta->cache), "%s", pb_wire_cache_status(meta->source));
    if (json_object_object_get_ex(res, "attempts", &a) && json_object_is_type(a, json_type_array))
        meta->attempts = (int)json_object_array_length(a);
    if (json_object_object_get_ex(res, "latency_ms", &l))
        meta->latency_ms = (long)json_object_get_int64(l);
}

/* OpenAI's usage object from a result's {prompt_tokens, completion_tokens, cached_tokens,
 * reasoning_tokens}; NULL when the result has none. */
static json_object *
wire_usage(json_object *res)
{
    json_object *u, *v;
    if (!json_object_object_get_ex(res, "usage", &u) || !json_object_is_type(u, json_type_object))
        return NULL;
    int64_t p = json_object_object_get_ex(u, "prompt_tokens", &v) ? json_object_get_int64(v) : 0;
    int64_t c =
        json_object_object_get_ex(u, "completion_tokens", &v) ? json_object_get_int64(v) : 0;
    int64_t cached =
        json_object_object_get_ex(u, "cached_tokens", &v) ? json_object_get_int64(v) : 0;
    int64_t reasoning =
        json_object_object_get_ex(u, "reasoning_tokens", &v) ? json_object_get_int64(v) : 0;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "prompt_tokens", json_object_new_int64(p));
    json_object_object_add(o, "completion_tokens", json_object_new_int64(c));
    json_object_object_add(o, "total_tokens", json_object_new_int64(p + c));
    json_object *pd = json_object_new_object(), *cd = json_object_new_object();
    json_object_object_add(pd, "cached_tokens", json_object_new_int64(cached));
    json_object_object_add(cd, "reasoning_tokens", json_object_new_int64(reasoning));
    json_object_object_add(o, "prompt_tokens_details", pd);
    json_object_object_add(o, "completion_tokens_details", cd);
    return o;
}

/* The OpenAI finish_reason of a result: a cut stream ended early, which OpenAI spells length. */
static const char *
wire_finish_reason(json_object *res)
{
    const char *f = wire_str(res, "finish_reason", "stop");
    return strcmp(f, "cut") == 0 ? "length" : f;
}

static void
wire_invalid_error(json_object *res, pb_wire_error *err)
{
    pb_error jerr = {0};
    snprintf(jerr.msg, sizeof(jerr.msg), "%s",
             wire_str(res, "error", "INVALID the job was refused"));
    jerr.code = strncmp(jerr.msg, "UNKNOWN_", 8) == 0 ? PB_JOB_UNKNOWN_MODEL : PB_JOB_BAD_FIELD;
    wire_error_from_job(err, &jerr);
}

/* The HTTP error of a result that is not an answer (invalid, cancelled); false for an answer. */
static bool
wire_result_error(json_object *res, pb_wire_error *err)
{
    const char *st = wire_str(res, "status", "");
    if (strcmp(st, "invalid") == 0) {
        wire_invalid_error(res, err);
        return true;
    }
    if (strcmp(st, "cancelled") == 0) {
        pb_wire_error_set(err, 409, "invalid_request_error", "cancelled",
                          "the job was cancelled (planb cancel)");
        return true;
    }
    return false;
}

static char *
wire_dump(json_object *o, size_t *len)
{
    size_t n = 0;
    char *s = pb_xstrdup(json_object_to_json_string_length(o, WIRE_JSON_FLAGS, &n));
    *len = n;
    return s;
}

int
pb_wire_completion(const char *result, size_t len, const char *model, int64_t created_s,
                   int *status, char **body, size_t *body_len, pb_wire_meta *meta)
{
    json_object *res = json_tokener_parse(result), *msg = NULL, *lp = NULL;
    (void)len;
    if (res == NULL || !json_object_is_type(res, json_type_object)) {
        json_object_put(res);
        return PB_ERR;
    }
    wire_meta(res, meta);
    pb_wire_error err;
    if (wire_result_error(res, &err)) {
        *status = err.status;
        *body = pb_wire_error_json(&err, body_len);
        json_object_put(res);
        return PB_OK;
    }
    json_object *o = json_object_new_object();
    char id[160];
    snprintf(id, sizeof(id), "chatcmpl-%s", wire_str(res, "id", ""));
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "object", json_object_new_string("chat.completion"));
    json_object_object_add(o, "created", json_object_new_int64(created_s));
    json_object_object_add(o, "model",
                           json_object_new_string(meta->model[0] ? meta->model : model));
    json_object *choice = json_object_new_object();
    json_object_object_add(choice, "index", json_object_new_int(0));
    if (json_object_object_get_ex(res, "message", &msg) &&
        json_object_is_type(msg, json_type_object))
        json_object_object_add(choice, "message", json_object_get(msg));
    else {
        json_object *m = json_object_new_object();
        json_object_object_add(m, "role", json_object_new_string("assistant"));
        json_object_object_add(m, "content", json_object_new_string(wire_str(res, "content", "")));
        json_object_object_add(choice, "message", m);
    }
    json_object_object_get_ex(res, "logprobs", &lp);
    json_object_object_add(choice, "logprobs", lp ? json_object_get(lp) : NULL);
    json_object_object_add(choice, "finish_reason",
                           json_object_new_string(wire_finish_reason(res)));
    json_object *choices = json_object_new_array();
    json_object_array_add(choices, choice);
    json_object_object_add(o, "choices", choices);
    json_object *usage = wire_usage(res);
    if (usage)
        json_object_object_add(o, "usage", usage);
    json_object_object_add(o, "system_fingerprint", NULL);
    *status = 200;
    *body = wire_dump(o, body_len);
    json_object_put(o);
    json_object_put(res);
    return PB_OK;
}

/* ------------------------------------------------------------------ stream chunks */

/* A chunk {id, object, created, model, choices:[{index:0, delta, logprobs:null,
 * finish_reason}]} with delta (taken) and finish (NULL: null). */
static json_object *
wire_chunk(const pb_wire_chunker *c, json_object *delta, const char *finish)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(c->id));
    json_object_object_add(o, "object", json_object_new_string("chat.completion.chunk"));
    json_object_object_add(o, "created", json_object_new_int64(c->created));
    json_object_object_add(o, "model", json_object_new_string(c->model));
    json_object_object_add(o, "system_fingerprint", NULL);
    json_object *choices = json_object_new_array();
    if (delta != NULL) {
        json_object *ch = json_object_new_object();
        json_object_object_add(ch, "index", json_object_new_int(0));
        json_object_object_add(ch, "delta", delta);
        json_object_object_add(ch, "logprobs", NULL);
        json_object_object_add(ch, "finish_reason", finish ? json_object_new_string(finish) : NULL);
        json_object_array_add(choices, ch);
    }
    json_object_object_add(o, "choices", choices);
    return o;
}

static void
wire_emit(json_object *chunk, pb_buf *out)
{
    size_t n = 0;
    const char *s = json_object_to_json_string_length(chunk, WIRE_JSON_FLAGS, &n);
    pb_buf_append(out, "data: ", 6);
    pb_buf_append(out, s, n);
    pb_buf_append(out, "\n\n", 2);
    json_object_put(chunk);
}

/* A delta object; the first one of a stream also says role "assistant". */
static json_object *
wire_delta(pb_wire_chunker *c)
{
    json_object *d = json_object_new_object();
    if (!c->role_sent) {
        json_object_object_add(d, "role", json_object_new_string("assistant"));
        c->role_sent = true;
    }
    return d;
}

void
pb_wire_chunk_text(pb_wire_chunker *c, const char *text, size_t len, pb_buf *out)
{
    json_object *d = wire_delta(c);
    json_object_object_add(d, "content", json_object_new_string_len(text, (int)len));
    wire_emit(wire_chunk(c, d, NULL), out);
}

void
pb_wire_chunk_tool(pb_wire_chunker *c, int index, const char *call_id, const char *name,
                   const char *arguments, pb_buf *out)
{
    json_object *d = wire_delta(c);
    if (!json_object_object_get_ex(d, "content", NULL) && json_object_object_length(d) > 0)
        json_object_object_add(d, "content", NULL);
    json_object *call = json_object_new_object();
    json_object_object_add(call, "index", json_object_new_int(index));
    if (call_id && *call_id) {
        json_object_object_add(call, "id", json_object_new_string(call_id));
        json_object_object_add(call, "type", json_object_new_string("function"));
    }
    json_object *fn = json_object_new_object();
    if (name && *name)
        json_object_object_add(fn, "name", json_object_new_string(name));
    json_object_object_add(fn, "arguments", json_object_new_string(arguments ? arguments : ""));
    json_object_object_add(call, "function", fn);
    json_object *calls = json_object_new_array();
    json_object_array_add(calls, call);
    json_object_object_add(d, "tool_calls", calls);
    wire_emit(wire_chunk(c, d, NULL), out);
}

void
pb_wire_chunk_end(pb_wire_chunker *c, const char *result, size_t len, bool include_usage,
                  pb_buf *out)
{
    (void)len;
    json_object *res = json_tokener_parse(result);
    pb_wire_error err;
    if (res == NULL || wire_result_error(res, &err)) {
        if (res == NULL)
            pb_wire_error_set(&err, 500, "server_error", "bad_result",
                              "the stream ended without a readable result");
        size_t n = 0;
        char *e = pb_wire_error_json(&err, &n);
        pb_buf_append(out, "data: ", 6);
        pb_buf_append(out, e, n);
        pb_buf_append(out, "\n\n", 2);
        free(e);
    } else {
        if (!c->role_sent) {
            /* An answer with no pieces (never expected: cached and degraded answers come
             * as one delta): its text, so the client still gets the content. */
            const char *text = wire_str(res, "content", "");
            pb_wire_chunk_text(c, text, strlen(text), out);
        }
        wire_emit(wire_chunk(c, json_object_new_object(), wire_finish_reason(res)), out);
        json_object *usage = include_usage ? wire_usage(res) : NULL;
        if (usage) {
            json_object *u = wire_chunk(c, NULL, NULL);
            json_object_object_add(u, "usage", usage);
            wire_emit(u, out);
        }
    }
    c->finished = true;
    pb_buf_append(out, "data: [DONE]\n\n", 14);
    json_object_put(res);
}

/* ------------------------------------------------------------------ models */

static json_object *
wire_model_obj(const char *id)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "id", json_object_new_string(id));
    json_object_object_add(m, "object", json_object_new_string("model"));
    json_object_object_add(m, "created", json_object_new_int(0));
    json_object_object_add(m, "owned_by", json_object_new_string("planb"));
    return m;
}

char *
pb_wire_models(const pb_config *cfg, size_t *len)
{
    json_object *o = json_object_new_object(), *data = json_object_new_array();
    json_object_object_add(o, "object", json_object_new_string("list"));
    for (size_t i = 0; i < cfg->n_routes; i++)
        json_object_array_add(data, wire_model_obj(cfg->routes[i].name));
    for (size_t i = 0; i < cfg->n_models; i++)
        if (pb_config_route_index(cfg, cfg->models[i].name) < 0) /* a route wins a shared name */
            json_object_array_add(data, wire_model_obj(cfg->models[i].name));
    json_object_object_add(o, "data", data);
    char *s = wire_dump(o, len);
    json_object_put(o);
    return s;
}

char *
pb_wire_model(const pb_config *cfg, const char *id, size_t *len)
{
    if (pb_config_route_index(cfg, id) < 0 && pb_config_model_index(cfg, id) < 0)
        return NULL;
    json_object *m = wire_model_obj(id);
    char *s = wire_dump(m, len);
    json_object_put(m);
    return s;
}

/* ------------------------------------------------------------------ request heads */

static bool
wire_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool
wire_name_is(const char *p, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(p, name, n) == 0;
}

/* One header line "name: value" (OWS around the value stripped) into the head: false when
 * its framing is refused (err filled). folded: the line continues the previous one. */
static bool
wire_head_field(const char *p, size_t n, pb_wire_head *h, int *lengths, int *codings,
                const char **last, pb_wire_error *err)
{
    const char *colon = memchr(p, ':', n);
    if (colon == NULL)
        return true; /* evhttp refuses it */
    size_t name_len = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + n;
    while (v < end && wire_is_ows(*v))
        v++;
    while (end > v && wire_is_ows(end[-1]))
        end--;
    size_t vlen = (size_t)(end - v);
    *last = NULL;
    if (wire_name_is(p, name_len, "Content-Length")) {
        *last = "Content-Length";
        uint64_t x = 0;
        bool digits = vlen > 0 && vlen <= 18;
        for (size_t i = 0; digits && i < vlen; i++) {
            digits = v[i] >= '0' && v[i] <= '9';
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if (!digits || ++*lengths > 1) {
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_request",
                              "Content-Length must be given once, as digits only (RFC 9112 "
                              "section 6.3)");
            return false;
        }
        h->length = x;
    } else if (wire_name_is(p, name_len, "Transfer-Encoding")) {
        *last = "Transfer-Encoding";
        if (++*codings > 1 || !wire_name_is(v, vlen, "chunked")) {
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_request",
                              "Transfer-Encoding must be chunked, given once");
            return false;
        }
    } else if (wire_name_is(p, name_len, "Authorization")) {
        *last = "Authorization";
        if (h->auth == NULL) {
            h->auth = v;
            h->auth_len = vlen;
        }
    }
    return true;
}

/* The methods evhttp reads a body for (evhttp_method_may_have_body) and those it never does;
 * any other is evhttp's to refuse. */
static bool
wire_head_method(const char *m, size_t n, bool *has_body)
{
    static const char *const with[] = {"GET",    "POST",    "PUT",    "PATCH",
                                       "DELETE", "OPTIONS", "CONNECT"};
    *has_body = false;
    for (size_t i = 0; i < sizeof(with) / sizeof(with[0]); i++)
        if (n == strlen(with[i]) && memcmp(m, with[i], n) == 0)
            return (*has_body = true);
    return (n == 4 && memcmp(m, "HEAD", 4) == 0) || (n == 5 && memcmp(m, "TRACE", 5) == 0);
}

int
pb_wire_head_parse(const char *head, size_t len, pb_wire_head *h, pb_wire_error *err)
{
    memset(h, 0, sizeof(*h));
    const char *p = head, *end = head + len;
    const char *eol = memchr(p, '\n', len);
    size_t n = eol ? (size_t)(eol - p) : len;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    const char *sp1 = memchr(p, ' ', n);
    bool has_body = false;
    if (sp1 == NULL || !wire_head_method(p, (size_t)(sp1 - p), &has_body)) {
        h->other = true;
        return PB_OK;
    }
    const char *target = sp1 + 1, *q = memchr(target, ' ', n - (size_t)(target - p));
    size_t tlen = q ? (size_t)(q - target) : 0;
    const char *query = tlen ? memchr(target, '?', tlen) : NULL;
    if (query)
        tlen = (size_t)(query - target);
    h->healthz = tlen == 8 && memcmp(target, "/healthz", 8) == 0;
    int lengths = 0, codings = 0;
    const char *last = NULL;
    for (p = eol ? eol + 1 : end; p < end; p = eol ? eol + 1 : end) {
        eol = memchr(p, '\n', (size_t)(end - p));
        n = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0)
            break;
        if (wire_is_ows(*p)) { /* obs-fold: refused where it would change the framing or key */
            if (last != NULL) {
                pb_wire_error_set(err, 400, "invalid_request_error", "bad_request",
                                  "%s must not be folded over lines", last);
                return PB_ERR;
            }
            continue;
        }
        if (!wire_head_field(p, n, h, &lengths, &codings, &last, err))
            return PB_ERR;
    }
    if (lengths && codings) {
        pb_wire_error_set(err, 400, "invalid_request_error", "bad_request",
                          "Content-Length and Transfer-Encoding must not both be given");
        return PB_ERR;
    }
    h->body = !has_body ? PB_WIRE_BODY_NONE
              : codings ? PB_WIRE_BODY_CHUNKED
              : lengths ? PB_WIRE_BODY_LENGTH
                        : PB_WIRE_BODY_NONE;
    return PB_OK;
}

int
pb_wire_chunk_size(const char *line, size_t len, uint64_t *size)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    uint64_t x = 0;
    size_t i = 0;
    for (; i < len && i < 16; i++) {
        char c = line[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        x = x * 16 + (uint64_t)d;
    }
    if (i == 0 || i > 15)
        return PB_ERR;
    while (i < len && wire_is_ows(line[i]))
        i++;
    if (i < len && line[i] != ';')
        return PB_ERR;
    for (; i < len; i++) /* chunk-ext: tokens and quoted strings, no control bytes */
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            return PB_ERR;
    *size = x;
    return PB_OK;
}
