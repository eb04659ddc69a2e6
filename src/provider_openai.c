/* provider_openai.c -- the OpenAI Chat Completions dialect.
 *
 * Spoken by OpenAI itself and by most self-hosted and routing servers (vLLM,
 * Ollama, llama.cpp server, OpenRouter). A job is an OpenAI request already,
 * so every message field and every param goes out as the producer gave it
 * (request.c has checked them); only the Anthropic-only knobs (params.anthropic)
 * are left out and reported. A reply is usable when choices[0].message holds
 * text, tool calls whose arguments are JSON objects, a refusal, or a
 * content_filter stop; anything else a server may send with a 200 is a
 * BAD_REPLY, which the chain retries. */
#include "planb/provider.h"
#include "planb/provider_openai.h"

#include "planb/delta.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/utf8.h"

#define OPENAI_JSON_FLAGS     (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define OPENAI_MAX_TOOL_CALLS 128 /* tool calls taken from one reply (request.c's bound) */

static json_object *
openai_message(const pb_message *m)
{
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string(pb_request_role_name(m->role)));
    if (m->parts != NULL)
        json_object_object_add(msg, "content", json_object_get(m->parts));
    else if (m->tool_calls != NULL && m->content[0] == '\0')
        json_object_object_add(msg, "content", NULL);
    else
        json_object_object_add(msg, "content", json_object_new_string(m->content));
    if (m->name != NULL)
        json_object_object_add(msg, "name", json_object_new_string(m->name));
    if (m->tool_calls != NULL)
        json_object_object_add(msg, "tool_calls", json_object_get(m->tool_calls));
    if (m->tool_call_id != NULL)
        json_object_object_add(msg, "tool_call_id", json_object_new_string(m->tool_call_id));
    return msg;
}

static int
openai_build_request(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                     pb_http_request *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    out->url = pb_xasprintf("%s/chat/completions", p->base_url);
    /* Local servers run without a key; an empty variable means the same. */
    bool has_key = p->api_key != NULL && p->api_key[0] != '\0';
    if (pb_provider_add_header(out, err, "Content-Type: application/json") != PB_OK ||
        (has_key &&
         pb_provider_add_header(out, err, "Authorization: Bearer %s", p->api_key) != PB_OK) ||
        pb_provider_add_conn(p, out, err) != PB_OK)
        return PB_ERR;
    pb_provider_openai_body(m, req, out);
    return PB_OK;
}

void
pb_provider_openai_body(const pb_model_conf *m, const pb_request *req, pb_http_request *out)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "model",
                           json_object_new_string(m->upstream ? m->upstream : m->name));
    json_object *msgs = json_object_new_array_ext((int)req->n_messages);
    for (size_t i = 0; i < req->n_messages; i++)
        json_object_array_add(msgs, openai_message(&req->messages[i]));
    json_object_object_add(root, "messages", msgs);
    /* The typed fields are the canonical values; the token limit keeps the name it came in. */
    if (req->max_tokens >= 0)
        json_object_object_add(
            root,
            pb_request_param(req, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
            json_object_new_int(req->max_tokens));
    if (isfinite(req->temperature))
        json_object_object_add(root, "temperature", pb_provider_new_double(req->temperature));
    if (isfinite(req->top_p))
        json_object_object_add(root, "top_p", pb_provider_new_double(req->top_p));
    if (req->params != NULL) {
        static const char *const skip[] = {
            "anthropic",   "stream", "max_tokens", "max_completion_tokens",
            "temperature", "top_p",  NULL};
        json_object_object_foreach(req->params, key, val)
        {
            /* stream and stream_options are planb's to set (the job-level "stream" above). */
            bool skipped = false;
            for (const char *const *k = skip; *k && !skipped; k++)
                skipped = strcmp(key, *k) == 0;
            if (!skipped)
                json_object_object_add(root, key, json_object_get(val));
        }
    }
    if (req->stream) {
        /* chat.completion.chunk events; the last one carries the usage. */
        json_object_object_add(root, "stream", json_object_new_boolean(1));
        json_object *so = json_object_new_object();
        json_object_object_add(so, "include_usage", json_object_new_boolean(1));
        json_object_object_add(root, "stream_options", so);
    }
    pb_provider_set_json_body(out, root);
}

/* obj[key] when it is a string, else NULL. */
static const char *
openai_string(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* The reply's tool calls in the canonical shape {id, type, function{name, arguments}}, as JSON
 * text (caller frees), or NULL with *why set when any is malformed. *none is set when the reply
 * has none. Written by hand: a json-c tree per call would cost more than the reply's parse. */
static char *
openai_tool_calls(json_object *message, bool *none, const char **why)
{
    json_object *tc;
    *none = !json_object_object_get_ex(message, "tool_calls", &tc) || tc == NULL ||
            (json_object_is_type(tc, json_type_array) && json_object_array_length(tc) == 0);
    if (*none)
        return NULL;
    size_t n = json_object_is_type(tc, json_type_array) ? json_object_array_length(tc) : 0;
    if (n == 0 || n > OPENAI_MAX_TOOL_CALLS) {
        *why = "tool_calls is not an array of at most 128 calls";
        return NULL;
    }
    pb_buf out;
    pb_buf_init(&out, SIZE_MAX);
    pb_buf_append(&out, "[", 1);
    for (size_t i = 0; i < n; i++) {
        json_object *call = json_object_array_get_idx(tc, i), *fn;
        const char *id = openai_string(call, "id");
        const char *name =
            json_object_object_get_ex(call, "function", &fn) ? openai_string(fn, "name") : NULL;
        const char *args = name ? openai_string(fn, "arguments") : NULL;
        if (id == NULL || id[0] == '\0' || name == NULL || name[0] == '\0' ||
            !pb_utf8_is_text(id, strlen(id)) || !pb_utf8_is_text(name, strlen(name))) {
            *why = "a tool call without id or function name";
        } else if (args == NULL || !pb_request_is_json_object(args, strlen(args))) {
            *why = "tool call arguments are not a JSON object";
        } else {
            pb_buf_append(&out, i ? ",{\"id\":" : "{\"id\":", i ? 7 : 6);
            pb_provider_json_string(&out, id, strlen(id));
            pb_buf_append(&out, ",\"type\":\"function\",\"function\":{\"name\":", 38);
            pb_provider_json_string(&out, name, strlen(name));
            pb_buf_append(&out, ",\"arguments\":", 13);
            pb_provider_json_string(&out, args, strlen(args));
            pb_buf_append(&out, "}}", 2);
            continue;
        }
        pb_buf_free(&out);
        return NULL;
    }
    pb_buf_append(&out, "]", 2); /* with the terminating NUL */
    return out.data;
}

/* OpenAI's finish reasons are the normalized ones; function_call is the old name. */
static const char *
openai_finish_reason(json_object *choice, bool has_tool_calls)
{
    const char *f = openai_string(choice, "finish_reason");
    static const char *const known[] = {"stop", "length", "tool_calls", "content_filter", NULL};
    for (const char *const *k = known; f != NULL && *k; k++)
        if (strcmp(f, *k) == 0)
            return *k;
    if (f != NULL && strcmp(f, "function_call") == 0)
        return "tool_calls";
    return has_tool_calls ? "tool_calls" : "stop";
}

/* content is a string, null, or (newer servers, multimodal replies) an array of typed parts. */
static char *
openai_content_text(json_object *content)
{
    if (content == NULL)
        return pb_xstrdup("");
    if (json_object_is_type(content, json_type_array)) {
        char *s = pb_provider_join_text(content);
        return s ? s : pb_xstrdup("");
    }
    if (!json_object_is_type(content, json_type_string))
        return NULL;
    return pb_xstrndup(json_object_get_string(content), strlen(json_object_get_string(content)));
}

/* usage[outer][key] for the *_details objects, or -1. */
static long
openai_detail(json_object *usage, const char *outer, const char *key)
{
    json_object *d = NULL;
    json_object_object_get_ex(usage, outer, &d);
    return pb_provider_tokens(d, key);
}

static int
openai_parse_response(const char *body, size_t len, const pb_request *req, pb_completion *out,
                      pb_error *err)
{
    (void)req;
    memset(out, 0, sizeof(*out));
    json_object *root = pb_provider_parse_object(body, len, err);
    if (root == NULL)
        return PB_ERR;
    json_object *error, *choices, *choice = NULL, *message = NULL, *content = NULL;
    const char *why = NULL;
    bool no_calls = true;
    /* Some routers (OpenRouter) report upstream failures as a 200 with an error object. */
    if (json_object_object_get_ex(root, "error", &error) && error != NULL)
        why = "error object in a 200 reply";
    else if (!json_object_object_get_ex(root, "choices", &choices) ||
             !json_object_is_type(choices, json_type_array) ||
             json_object_array_length(choices) == 0)
        why = "no choices";
    else if (!json_object_object_get_ex((choice = json_object_array_get_idx(choices, 0)), "message",
                                        &message) ||
             !json_object_is_type(message, json_type_object))
        why = "choices[0] has no message";
    else if (json_object_object_get_ex(message, "content", &content) &&
             (out->content = openai_content_text(content)) == NULL)
        why = "content is not text";
    else
        out->tool_calls = openai_tool_calls(message, &no_calls, &why); /* NULL: none, or why */
    if (why == NULL) {
        if (out->content == NULL)
            out->content = pb_xstrdup("");
        const char *refusal = openai_string(message, "refusal");
        if (refusal != NULL && refusal[0] != '\0')
            out->refusal = pb_xstrdup(refusal);
        out->finish_reason = openai_finish_reason(choice, out->tool_calls != NULL);
        const char *rid = pb_provider_response_id(root, "id");
        out->response_id = rid ? pb_xstrdup(rid) : NULL;
        if (out->content[0] == '\0' && out->tool_calls == NULL && out->refusal == NULL &&
            strcmp(out->finish_reason, "content_filter") != 0)
            why = content == NULL ? "content is null or missing" : "empty content";
    }
    if (why != NULL) {
        json_object_put(root);
        pb_provider_completion_free(out);
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
        return PB_ERR;
    }
    json_object *lp;
    if (json_object_object_get_ex(choice, "logprobs", &lp) && lp != NULL) {
        const char *s = json_object_to_json_string_ext(lp, OPENAI_JSON_FLAGS);
        if (pb_utf8_is_text(s, strlen(s)))
            out->logprobs = pb_xstrdup(s);
    }
    json_object *usage = NULL;
    json_object_object_get_ex(root, "usage", &usage);
    out->prompt_tokens = pb_provider_tokens(usage, "prompt_tokens");
    out->completion_tokens = pb_provider_tokens(usage, "completion_tokens");
    out->cached_tokens = openai_detail(usage, "prompt_tokens_details", "cached_tokens");
    out->reasoning_tokens = openai_detail(usage, "completion_tokens_details", "reasoning_tokens");
    json_object_put(root);
    return PB_OK;
}

/* Everything OpenAI takes, it takes as sent: nothing refused. */
static const char *
openai_refuses(const pb_request *req)
{
    (void)req;
    return NULL;
}

static size_t
openai_dropped(const pb_request *req, char (*names)[PB_PROVIDER_PARAM_LEN], size_t max)
{
    size_t n = 0;
    json_object *a = pb_request_param(req, "anthropic");
    if (a != NULL) {
        json_object_object_foreach(a, key, val)
        {
            (void)val;
            char name[PB_PROVIDER_PARAM_LEN];
            snprintf(name, sizeof(name), "anthropic.%s", key);
            pb_provider_drop(names, &n, max, name);
        }
    }
    return n;
}

/* One chat.completion.chunk event: choices[0].delta's content, refusal and tool_calls
 * pieces, its finish_reason, and the usage of the last chunk; "[DONE]" ends the stream. */
static int
openai_stream_event(pb_delta *d, const char *event, const char *data, size_t len, pb_error *err)
{
    (void)event;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        pb_delta_end(d);
        return PB_OK;
    }
    json_object *root = pb_provider_parse_object(data, len, err);
    if (root == NULL)
        return PB_ERR;
    int rc = PB_OK;
    json_object *choices, *usage = NULL, *error;
    if (json_object_object_get_ex(root, "error", &error)) {
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY the stream reported an error");
        rc = PB_ERR;
        goto out;
    }
    pb_delta_response_id(d, pb_provider_response_id(root, "id"));
    if (json_object_object_get_ex(root, "usage", &usage) &&
        json_object_is_type(usage, json_type_object))
        pb_delta_usage(d, pb_provider_tokens(usage, "prompt_tokens"),
                       pb_provider_tokens(usage, "completion_tokens"),
                       openai_detail(usage, "prompt_tokens_details", "cached_tokens"),
                       openai_detail(usage, "completion_tokens_details", "reasoning_tokens"));
    if (!json_object_object_get_ex(root, "choices", &choices) ||
        !json_object_is_type(choices, json_type_array) || json_object_array_length(choices) == 0)
        goto out; /* the usage chunk */
    json_object *choice = json_object_array_get_idx(choices, 0), *delta, *v;
    if (json_object_object_get_ex(choice, "delta", &delta) &&
        json_object_is_type(delta, json_type_object)) {
        if (json_object_object_get_ex(delta, "content", &v) &&
            json_object_is_type(v, json_type_string))
            pb_delta_text(d, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        if (json_object_object_get_ex(delta, "refusal", &v) &&
            json_object_is_type(v, json_type_string))
            pb_delta_refusal(d, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        json_object *calls;
        if (json_object_object_get_ex(delta, "tool_calls", &calls) &&
            json_object_is_type(calls, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(calls) && rc == PB_OK; i++) {
                json_object *c = json_object_array_get_idx(calls, i), *idx, *fn = NULL;
                json_object_object_get_ex(c, "function", &fn);
                const char *args = openai_string(fn, "arguments");
                if (!json_object_object_get_ex(c, "index", &idx) ||
                    !json_object_is_type(idx, json_type_int) ||
                    pb_delta_tool(d, json_object_get_int(idx), openai_string(c, "id"),
                                  openai_string(fn, "name"), args ? args : "",
                                  args ? strlen(args) : 0) != PB_OK) {
                    pb_error_set(err, PB_PROVIDER_BAD_REPLY,
                                 "BAD_REPLY malformed tool_calls delta");
                    rc = PB_ERR;
                }
            }
        }
    }
    if (openai_string(choice, "finish_reason") != NULL)
        pb_delta_finish_reason(d, openai_finish_reason(choice, false));
out:
    json_object_put(root);
    return rc;
}

const pb_provider_ops pb_provider_openai = {
    .type_name = "openai",
    .build_request = openai_build_request,
    .parse_response = openai_parse_response,
    .classify = pb_provider_classify_status,
    .refuses = openai_refuses,
    .dropped = openai_dropped,
    .stream_event = openai_stream_event,
};
