/* provider_anthropic.c -- the Anthropic Messages dialect.
 *
 * Jobs arrive in the OpenAI shape (system messages anywhere, any role order,
 * tool calls on assistant messages, tool results as their own messages). The
 * Messages API is stricter: the system prompt is a separate field, turns must
 * alternate starting with the user, text blocks must not be blank, a final
 * assistant turn (a prefill) must not end in whitespace, max_tokens is
 * required, tool calls are tool_use blocks and their results tool_result
 * blocks of the next user turn, stop sequences must not be blank. build_request
 * converts (docs/translation.md "Translation" has the table), so the shape of a job that
 * OpenAI would take is never why Anthropic rejects it; what has no
 * equivalent is listed by anthropic_dropped, and what cannot be sent without a
 * change of meaning is refused by anthropic_refuses (the chain moves on).
 * A response_format is a forced tool whose input is the answer. Error replies carry a typed
 * {"type":"error","error":{"type":...}} body, which classify reads before
 * falling back to the shared status table. */
#include "planb/provider.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/delta.h"
#include "planb/utf8.h"

#define ANTHROPIC_VERSION_DEFAULT "2023-06-01"
/* Stands in for the user turn the API requires first when a job starts elsewhere. */
#define ANTHROPIC_CONTINUED "(continued)"
/* The description of the tool that carries a response_format. */
#define ANTHROPIC_FORMAT_DESC    "Give the answer as this tool's input, matching its schema."
#define ANTHROPIC_JSON_FLAGS     (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define ANTHROPIC_MAX_TOOL_CALLS 128 /* tool calls taken from one reply (request.c's bound) */

/* Error types whose meaning does not depend on the status they came with. */
static const struct {
    const char *type; /* error.type in the body */
    pb_class cls;     /* what it means for the chain */
} anthropic_error_types[] = {
    {"overloaded_error", PB_CLASS_RETRY},
    {"rate_limit_error", PB_CLASS_RETRY},
    {"api_error", PB_CLASS_RETRY},
    {"timeout_error", PB_CLASS_RETRY},
    {"authentication_error", PB_CLASS_FALLBACK},
    {"permission_error", PB_CLASS_FALLBACK},
    {"not_found_error", PB_CLASS_FALLBACK},
    {"request_too_large", PB_CLASS_FALLBACK},
    {"billing_error", PB_CLASS_FALLBACK},
};

/* An invalid_request_error saying one of these is about this model's limits or this
 * account (the API reports an empty balance this way), not about the job. */
static const char *const anthropic_not_the_job[] = {"prompt is too long", "context", "too long",
                                                    "credit balance", NULL};

/* What the Messages API cannot take without a change of meaning. */
static const char *
anthropic_refuses(const pb_request *req)
{
    if (isfinite(req->temperature) && req->temperature > 1.0)
        return "temperature above 1 (the Messages API takes 0..1)";
    json_object *rf = pb_request_param(req, "response_format"), *type;
    bool json = json_object_object_get_ex(rf, "type", &type) &&
                strcmp(json_object_get_string(type), "text") != 0;
    if (json && pb_request_param(req, "tools") != NULL)
        return "response_format together with tools (the JSON answer is a forced tool here)";
    if (json && req->stream)
        return "a streamed response_format (the JSON answer is a forced tool's input here)";
    return NULL;
}

static bool
anthropic_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The name of the tool that carries a response_format on Anthropic (forced with
 * tool_choice), or NULL when the job asks for no JSON answer. */
static const char *
anthropic_format_tool(const pb_request *req, json_object **schema, const char **desc)
{
    json_object *rf = pb_request_param(req, "response_format"), *v, *js = NULL;
    *schema = NULL;
    *desc = NULL;
    if (rf == NULL || !json_object_object_get_ex(rf, "type", &v))
        return NULL;
    const char *type = json_object_get_string(v);
    if (strcmp(type, "json_object") == 0)
        return "json_object";
    if (strcmp(type, "json_schema") != 0 || !json_object_object_get_ex(rf, "json_schema", &js))
        return NULL;
    json_object_object_get_ex(js, "schema", schema);
    if (json_object_object_get_ex(js, "description", &v))
        *desc = json_object_get_string(v);
    return json_object_object_get_ex(js, "name", &v) ? json_object_get_string(v) : NULL;
}

static json_object *
anthropic_text_block(const char *text, size_t len)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("text"));
    json_object_object_add(b, "text", json_object_new_string_len(text, (int)len));
    return b;
}

/* image_url (validated by request.c: https or data:image/<type>;base64,<data>) -> image. */
static json_object *
anthropic_image_block(const char *url)
{
    json_object *src = json_object_new_object();
    if (strncmp(url, "data:", 5) == 0) {
        const char *semi = strchr(url, ';'), *comma = strchr(url, ',');
        json_object_object_add(src, "type", json_object_new_string("base64"));
        json_object_object_add(src, "media_type",
                               json_object_new_string_len(url + 5, (int)(semi - url - 5)));
        json_object_object_add(src, "data", json_object_new_string(comma + 1));
    } else {
        json_object_object_add(src, "type", json_object_new_string("url"));
        json_object_object_add(src, "url", json_object_new_string(url));
    }
    json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("image"));
    json_object_object_add(b, "source", src);
    return b;
}

/* Adds a text block, or joins text to the turn's last block (of an earlier message of the
 * same side) with a blank line, so merged messages read as before. */
static void
anthropic_add_text(json_object *blocks, const char *text, size_t len, bool join)
{
    size_t n = json_object_array_length(blocks);
    json_object *last = n ? json_object_array_get_idx(blocks, n - 1) : NULL, *type, *t;
    if (join && last != NULL && json_object_object_get_ex(last, "type", &type) &&
        strcmp(json_object_get_string(type), "text") == 0 &&
        json_object_object_get_ex(last, "text", &t)) {
        pb_buf b;
        pb_buf_init(&b, SIZE_MAX);
        pb_buf_append(&b, json_object_get_string(t), (size_t)json_object_get_string_len(t));
        pb_buf_append(&b, "\n\n", 2);
        pb_buf_append(&b, text, len);
        json_object_object_add(last, "text", json_object_new_string_len(b.data, (int)b.len));
        pb_buf_free(&b);
        return;
    }
    json_object_array_add(blocks, anthropic_text_block(text, len));
}

/* A tool_use block with the same id, input = the parsed arguments. */
static json_object *
anthropic_tool_use_block(json_object *id, json_object *name, json_object *input)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("tool_use"));
    json_object_object_add(b, "id", json_object_get(id));
    json_object_object_add(b, "name", json_object_get(name));
    json_object_object_add(b, "input", input);
    return b;
}

static const pb_provider_blocks anthropic_blocks = {anthropic_text_block, anthropic_image_block,
                                                    anthropic_tool_use_block};

/* Adds m's content as blocks: text (a whole content joins the turn's text), images, tool
 * calls. */
static void
anthropic_add_content(json_object *blocks, const pb_message *m)
{
    if (m->parts == NULL && !pb_provider_is_blank(m->content)) {
        anthropic_add_text(blocks, m->content, strlen(m->content), true);
        pb_provider_add_calls(blocks, m->tool_calls, &anthropic_blocks);
        return;
    }
    pb_provider_add_blocks(blocks, m, &anthropic_blocks);
}

/* A tool message -> one tool_result block answering its tool_use. */
static json_object *
anthropic_tool_result(const pb_message *m)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("tool_result"));
    json_object_object_add(b, "tool_use_id", json_object_new_string(m->tool_call_id));
    if (!pb_provider_is_blank(m->content))
        json_object_object_add(b, "content", json_object_new_string(m->content));
    return b;
}

/* Emits a turn (role, blocks) unless it is empty; a single text block becomes a string. The
 * final assistant turn (a prefill) must not end in whitespace. */
static void
anthropic_flush_turn(json_object *msgs, const char *role, json_object *blocks, bool is_last)
{
    size_t n = json_object_array_length(blocks);
    if (n == 0) {
        json_object_put(blocks);
        return;
    }
    bool assistant = strcmp(role, "assistant") == 0;
    json_object *lastb = json_object_array_get_idx(blocks, n - 1), *type, *text;
    if (is_last && assistant && json_object_object_get_ex(lastb, "type", &type) &&
        strcmp(json_object_get_string(type), "text") == 0 &&
        json_object_object_get_ex(lastb, "text", &text)) {
        const char *s = json_object_get_string(text);
        size_t len = (size_t)json_object_get_string_len(text);
        while (len > 0 && anthropic_is_space(s[len - 1]))
            len--;
        json_object_object_add(lastb, "text", json_object_new_string_len(s, (int)len));
    }
    if (assistant && json_object_array_length(msgs) == 0) {
        json_object *u = json_object_new_object();
        json_object_object_add(u, "role", json_object_new_string("user"));
        json_object_object_add(u, "content", json_object_new_string(ANTHROPIC_CONTINUED));
        json_object_array_add(msgs, u);
    }
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string(role));
    json_object *first = json_object_array_get_idx(blocks, 0);
    if (n == 1 && json_object_object_get_ex(first, "type", &type) &&
        strcmp(json_object_get_string(type), "text") == 0) {
        json_object_object_get_ex(first, "text", &text);
        json_object_object_add(msg, "content", json_object_get(text));
        json_object_put(blocks);
    } else {
        json_object_object_add(msg, "content", blocks);
    }
    json_object_array_add(msgs, msg);
}

/* Adds "system" (system and developer messages, joined) and "messages": the rest as turns of
 * blocks, consecutive messages of one side merged so roles alternate user first; tool
 * messages become tool_result blocks of a user turn (so consecutive ones share one turn),
 * tool calls tool_use blocks of the assistant's. */
static void
anthropic_add_conversation(json_object *root, const pb_request *req)
{
    pb_buf sys;
    pb_buf_init(&sys, SIZE_MAX);
    json_object *msgs = json_object_new_array();
    const char *role = NULL; /* side of the turn being merged; NULL: none yet */
    json_object *blocks = NULL;
    for (size_t i = 0; i < req->n_messages; i++) {
        const pb_message *m = &req->messages[i];
        if (m->role == PB_ROLE_SYSTEM || m->role == PB_ROLE_DEVELOPER) {
            if (pb_provider_is_blank(m->content))
                continue;
            if (sys.len > 0)
                pb_buf_append(&sys, "\n\n", 2);
            pb_buf_append(&sys, m->content, strlen(m->content));
            continue;
        }
        /* A blank message adds nothing and must not split a turn. */
        if (m->role != PB_ROLE_TOOL && m->tool_calls == NULL && m->parts == NULL &&
            pb_provider_is_blank(m->content))
            continue;
        const char *side = m->role == PB_ROLE_ASSISTANT ? "assistant" : "user";
        if (role == NULL || strcmp(role, side) != 0) {
            if (blocks != NULL)
                anthropic_flush_turn(msgs, role, blocks, false);
            blocks = json_object_new_array();
            role = side;
        }
        if (m->role == PB_ROLE_TOOL) {
            json_object_array_add(blocks, anthropic_tool_result(m));
            continue;
        }
        anthropic_add_content(blocks, m);
    }
    if (blocks != NULL)
        anthropic_flush_turn(msgs, role, blocks, true);
    if (json_object_array_length(msgs) == 0) {
        json_object *u = json_object_new_object();
        json_object_object_add(u, "role", json_object_new_string("user"));
        json_object_object_add(u, "content", json_object_new_string(ANTHROPIC_CONTINUED));
        json_object_array_add(msgs, u);
    }
    if (sys.len > 0)
        json_object_object_add(root, "system", json_object_new_string_len(sys.data, (int)sys.len));
    json_object_object_add(root, "messages", msgs);
    pb_buf_free(&sys);
}

/* OpenAI function tools -> {name, description, input_schema}; a response_format is one more
 * tool, forced by tool_choice. */
static void
anthropic_add_tools(json_object *root, const pb_request *req)
{
    json_object *tools = pb_request_param(req, "tools"),
                *choice = pb_request_param(req, "tool_choice");
    json_object *schema;
    const char *desc;
    const char *format = anthropic_format_tool(req, &schema, &desc);
    json_object *out = json_object_new_array(), *tc = NULL;
    for (size_t i = 0; tools != NULL && i < json_object_array_length(tools); i++) {
        json_object *fn, *v, *t = json_object_new_object();
        json_object_object_get_ex(json_object_array_get_idx(tools, i), "function", &fn);
        json_object_object_get_ex(fn, "name", &v);
        json_object_object_add(t, "name", json_object_get(v));
        if (json_object_object_get_ex(fn, "description", &v) && v != NULL)
            json_object_object_add(t, "description", json_object_get(v));
        if (json_object_object_get_ex(fn, "parameters", &v) && v != NULL)
            json_object_object_add(t, "input_schema", json_object_get(v));
        else
            json_object_object_add(t, "input_schema",
                                   json_tokener_parse("{\"type\":\"object\",\"properties\":{}}"));
        json_object_array_add(out, t);
    }
    if (format != NULL) {
        json_object *t = json_object_new_object();
        json_object_object_add(t, "name", json_object_new_string(format));
        json_object_object_add(t, "description",
                               json_object_new_string(desc ? desc : ANTHROPIC_FORMAT_DESC));
        json_object_object_add(t, "input_schema",
                               schema ? json_object_get(schema)
                                      : json_tokener_parse("{\"type\":\"object\"}"));
        json_object_array_add(out, t);
        tc = json_object_new_object();
        json_object_object_add(tc, "type", json_object_new_string("tool"));
        json_object_object_add(tc, "name", json_object_new_string(format));
    } else if (json_object_is_type(choice, json_type_string)) {
        const char *c = json_object_get_string(choice);
        tc = json_object_new_object();
        json_object_object_add(tc, "type",
                               json_object_new_string(strcmp(c, "required") == 0 ? "any" : c));
    } else if (choice != NULL) {
        json_object *fn, *name;
        json_object_object_get_ex(choice, "function", &fn);
        json_object_object_get_ex(fn, "name", &name);
        tc = json_object_new_object();
        json_object_object_add(tc, "type", json_object_new_string("tool"));
        json_object_object_add(tc, "name", json_object_get(name));
    }
    json_object *ptc = pb_request_param(req, "parallel_tool_calls");
    if (ptc != NULL && !json_object_get_boolean(ptc)) {
        if (tc == NULL) {
            tc = json_object_new_object();
            json_object_object_add(tc, "type", json_object_new_string("auto"));
        }
        json_object *type;
        json_object_object_get_ex(tc, "type", &type);
        if (strcmp(json_object_get_string(type), "none") != 0)
            json_object_object_add(tc, "disable_parallel_tool_use", json_object_new_boolean(1));
    }
    if (json_object_array_length(out) > 0)
        json_object_object_add(root, "tools", out);
    else
        json_object_put(out);
    if (tc != NULL)
        json_object_object_add(root, "tool_choice", tc);
}

/* stop -> stop_sequences without whitespace-only entries (which Anthropic refuses). */
static void
anthropic_add_stop(json_object *root, const pb_request *req)
{
    json_object *stop = pb_request_param(req, "stop");
    if (stop == NULL)
        return;
    json_object *out = json_object_new_array();
    size_t n = json_object_is_type(stop, json_type_array) ? json_object_array_length(stop) : 1;
    for (size_t i = 0; i < n; i++) {
        json_object *s =
            json_object_is_type(stop, json_type_array) ? json_object_array_get_idx(stop, i) : stop;
        if (!pb_provider_is_blank(json_object_get_string(s)))
            json_object_array_add(out, json_object_get(s));
    }
    if (json_object_array_length(out) > 0)
        json_object_object_add(root, "stop_sequences", out);
    else
        json_object_put(out);
}

static int
anthropic_build_request(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                        pb_http_request *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    out->url = pb_xasprintf("%s/messages", p->base_url);
    bool has_key = p->api_key != NULL && p->api_key[0] != '\0';
    const char *version = p->anthropic_version ? p->anthropic_version : ANTHROPIC_VERSION_DEFAULT;
    if (pb_provider_add_header(out, err, "Content-Type: application/json") != PB_OK ||
        (has_key && pb_provider_add_header(out, err, "x-api-key: %s", p->api_key) != PB_OK) ||
        pb_provider_add_header(out, err, "anthropic-version: %s", version) != PB_OK ||
        pb_provider_add_conn(p, out, err) != PB_OK)
        return PB_ERR;
    const char *why = anthropic_refuses(req);
    if (why != NULL) {
        pb_error_set(err, PB_PROVIDER_UNSUPPORTED, "UNSUPPORTED %s", why);
        return PB_ERR;
    }

    json_object *root = json_object_new_object();
    json_object_object_add(root, "model",
                           json_object_new_string(m->upstream ? m->upstream : m->name));
    json_object_object_add(
        root, "max_tokens",
        json_object_new_int(req->max_tokens >= 0 ? req->max_tokens : m->max_tokens_default));
    anthropic_add_conversation(root, req);
    if (isfinite(req->temperature))
        json_object_object_add(root, "temperature", pb_provider_new_double(req->temperature));
    if (isfinite(req->top_p))
        json_object_object_add(root, "top_p", pb_provider_new_double(req->top_p));
    anthropic_add_stop(root, req);
    anthropic_add_tools(root, req);
    json_object *user = pb_request_param(req, "safety_identifier"), *a, *v;
    if (user == NULL)
        user = pb_request_param(req, "user");
    if (user != NULL) {
        json_object *md = json_object_new_object();
        json_object_object_add(md, "user_id", json_object_get(user));
        json_object_object_add(root, "metadata", md);
    }
    if ((a = pb_request_param(req, "anthropic")) != NULL) {
        if (json_object_object_get_ex(a, "top_k", &v) && v != NULL)
            json_object_object_add(root, "top_k", json_object_get(v));
        if (json_object_object_get_ex(a, "thinking", &v) && v != NULL)
            json_object_object_add(root, "thinking", json_object_get(v));
    }
    if (req->stream)
        json_object_object_add(root, "stream", json_object_new_boolean(1));
    pb_provider_set_json_body(out, root);
    return PB_OK;
}

/* stop_reason -> the normalized finish_reason. */
static const char *
anthropic_finish_reason(const char *stop, bool has_tool_calls)
{
    if (stop == NULL)
        return has_tool_calls ? "tool_calls" : "stop";
    if (strcmp(stop, "max_tokens") == 0 || strcmp(stop, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop, "tool_use") == 0)
        return has_tool_calls ? "tool_calls" : "stop";
    if (strcmp(stop, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

/* Reads the content blocks: text joined into out->content, tool_use into out->tool_calls
 * (OpenAI shape, arguments = the input serialized), except the forced response_format tool,
 * whose input is the answer text. NULL, or why the blocks are malformed. */
static const char *
anthropic_read_blocks(json_object *content, const pb_request *req, pb_completion *out)
{
    json_object *schema;
    const char *desc;
    const char *format = req ? anthropic_format_tool(req, &schema, &desc) : NULL;
    pb_buf text;
    pb_buf_init(&text, SIZE_MAX);
    json_object *calls = json_object_new_array();
    const char *why = NULL;
    for (size_t i = 0; why == NULL && i < json_object_array_length(content); i++) {
        json_object *b = json_object_array_get_idx(content, i), *type, *v, *id, *name, *input;
        if (!json_object_object_get_ex(b, "type", &type) ||
            !json_object_is_type(type, json_type_string))
            continue;
        const char *t = json_object_get_string(type);
        if (strcmp(t, "text") == 0 && json_object_object_get_ex(b, "text", &v) &&
            json_object_is_type(v, json_type_string)) {
            pb_buf_append(&text, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        } else if (strcmp(t, "tool_use") == 0) {
            if (!json_object_object_get_ex(b, "id", &id) ||
                !json_object_is_type(id, json_type_string) || json_object_get_string_len(id) == 0 ||
                !json_object_object_get_ex(b, "name", &name) ||
                !json_object_is_type(name, json_type_string) ||
                json_object_get_string_len(name) == 0) {
                why = "a tool_use block without id or name";
            } else if (!json_object_object_get_ex(b, "input", &input) ||
                       !json_object_is_type(input, json_type_object)) {
                why = "tool_use input is not a JSON object";
            } else if (format != NULL && strcmp(json_object_get_string(name), format) == 0) {
                const char *s = json_object_to_json_string_ext(input, ANTHROPIC_JSON_FLAGS);
                pb_buf_reset(&text);
                pb_buf_append(&text, s, strlen(s));
                format = NULL; /* one answer; later text is not appended to it */
                break;
            } else if (json_object_array_length(calls) >= ANTHROPIC_MAX_TOOL_CALLS) {
                why = "more than 128 tool_use blocks";
            } else {
                json_object *f = json_object_new_object(), *c = json_object_new_object();
                json_object_object_add(f, "name", json_object_get(name));
                json_object_object_add(f, "arguments",
                                       json_object_new_string(json_object_to_json_string_ext(
                                           input, ANTHROPIC_JSON_FLAGS)));
                json_object_object_add(c, "id", json_object_get(id));
                json_object_object_add(c, "type", json_object_new_string("function"));
                json_object_object_add(c, "function", f);
                json_object_array_add(calls, c);
            }
        }
    }
    if (why == NULL && json_object_array_length(calls) > 0) {
        const char *s = json_object_to_json_string_ext(calls, ANTHROPIC_JSON_FLAGS);
        if (pb_utf8_is_text(s, strlen(s)))
            out->tool_calls = pb_xstrdup(s);
        else
            why = "tool calls are not valid UTF-8";
    }
    json_object_put(calls);
    /* Checked as a C string: a text that starts with \u0000 is empty to every reader. */
    out->content = pb_xstrdup(text.data ? text.data : "");
    pb_buf_free(&text);
    return why;
}

/* The prompt tokens of a usage object, as OpenAI counts them: input + cache reads + cache
 * writes (Anthropic counts the cached ones apart), -1 without input_tokens; *cached gets the
 * cache reads (-1 unknown). Plain replies and streams (message_start, message_delta) alike. */
static long
anthropic_prompt_tokens(json_object *usage, long *cached)
{
    long in = pb_provider_tokens(usage, "input_tokens");
    long read = pb_provider_tokens(usage, "cache_read_input_tokens");
    long made = pb_provider_tokens(usage, "cache_creation_input_tokens");
    *cached = read;
    return in < 0 ? -1 : in + (read > 0 ? read : 0) + (made > 0 ? made : 0);
}

static int
anthropic_parse_response(const char *body, size_t len, const pb_request *req, pb_completion *out,
                         pb_error *err)
{
    memset(out, 0, sizeof(*out));
    json_object *root = pb_provider_parse_object(body, len, err);
    if (root == NULL)
        return PB_ERR;
    json_object *type, *error, *content, *usage = NULL, *stop;
    const char *why = NULL;
    if ((json_object_object_get_ex(root, "type", &type) &&
         json_object_is_type(type, json_type_string) &&
         strcmp(json_object_get_string(type), "error") == 0) ||
        (json_object_object_get_ex(root, "error", &error) && error != NULL))
        why = "error object in a 200 reply";
    else if (!json_object_object_get_ex(root, "content", &content) ||
             !json_object_is_type(content, json_type_array))
        why = "no content";
    else
        why = anthropic_read_blocks(content, req, out);
    if (why == NULL) {
        const char *sr = json_object_object_get_ex(root, "stop_reason", &stop) &&
                                 json_object_is_type(stop, json_type_string)
                             ? json_object_get_string(stop)
                             : NULL;
        out->finish_reason = anthropic_finish_reason(sr, out->tool_calls != NULL);
        const char *rid = pb_provider_response_id(root, "id");
        out->response_id = rid ? pb_xstrdup(rid) : NULL;
        if (out->content[0] == '\0' && out->tool_calls == NULL &&
            strcmp(out->finish_reason, "content_filter") != 0)
            why = "no text in content";
    }
    if (why != NULL) {
        json_object_put(root);
        pb_provider_completion_free(out);
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
        return PB_ERR;
    }
    json_object_object_get_ex(root, "usage", &usage);
    out->prompt_tokens = anthropic_prompt_tokens(usage, &out->cached_tokens);
    out->completion_tokens = pb_provider_tokens(usage, "output_tokens");
    out->reasoning_tokens = -1;
    json_object_put(root);
    return PB_OK;
}

/* error.type of a typed error body, and error.message (NULL when absent). Borrowed from root. */
static const char *
anthropic_error_type(json_object *root, const char **message)
{
    json_object *error, *type, *msg;
    *message = NULL;
    if (!json_object_object_get_ex(root, "error", &error) ||
        !json_object_object_get_ex(error, "type", &type) ||
        !json_object_is_type(type, json_type_string))
        return NULL;
    if (json_object_object_get_ex(error, "message", &msg) &&
        json_object_is_type(msg, json_type_string))
        *message = json_object_get_string(msg);
    return json_object_get_string(type);
}

/* The typed error decides where it is unambiguous; an invalid_request_error not about
 * length or credit is left to the status table, which makes it INVALID at 400 (the job is wrong)
 * but retries it at 5xx and falls back at other 4xx (then it is not the job's fault). */
static pb_class
anthropic_classify(long status, const char *body, size_t len)
{
    json_object *root = pb_provider_parse_object(body, len, NULL);
    const char *message = NULL;
    const char *type = root ? anthropic_error_type(root, &message) : NULL;
    pb_class cls = pb_provider_classify_status(status, body, len);
    for (size_t i = 0;
         type != NULL && i < sizeof(anthropic_error_types) / sizeof(*anthropic_error_types); i++)
        if (strcmp(type, anthropic_error_types[i].type) == 0)
            cls = anthropic_error_types[i].cls;
    if (type != NULL && message != NULL && strcmp(type, "invalid_request_error") == 0 &&
        pb_provider_body_mentions(message, strlen(message), anthropic_not_the_job))
        cls = PB_CLASS_FALLBACK;
    json_object_put(root);
    return cls;
}

/* Params Anthropic has no equivalent for: sent nowhere, listed in dropped_params. */
static const char *const anthropic_drops[] = {"frequency_penalty",
                                              "presence_penalty",
                                              "logit_bias",
                                              "logprobs",
                                              "top_logprobs",
                                              "seed",
                                              "store",
                                              "metadata",
                                              "prediction",
                                              "service_tier",
                                              "prompt_cache_key",
                                              "reasoning_effort",
                                              "verbosity",
                                              NULL};

static size_t
anthropic_dropped(const pb_request *req, char (*names)[PB_PROVIDER_PARAM_LEN], size_t max)
{
    size_t n = 0;
    for (const char *const *d = anthropic_drops; *d; d++)
        if (pb_request_param(req, *d) != NULL)
            pb_provider_drop(names, &n, max, *d);
    json_object *stop = pb_request_param(req, "stop");
    for (size_t i = 0;
         json_object_is_type(stop, json_type_array) && i < json_object_array_length(stop); i++)
        if (pb_provider_is_blank(json_object_get_string(json_object_array_get_idx(stop, i)))) {
            char name[PB_PROVIDER_PARAM_LEN];
            snprintf(name, sizeof(name), "stop[%zu]", i);
            pb_provider_drop(names, &n, max, name);
        }
    if (json_object_is_type(stop, json_type_string) &&
        pb_provider_is_blank(json_object_get_string(stop)))
        pb_provider_drop(names, &n, max, "stop");
    pb_provider_drop_unsendable(req, names, &n, max);
    return n;
}

/* obj[key] as an int, or -1. */
static int
anthropic_int(json_object *obj, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_int)
               ? json_object_get_int(v)
               : -1;
}

/* obj[key] as a string, or NULL. */
static const char *
anthropic_str(json_object *obj, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* One Messages stream event: message_start (input usage), content_block_start (a text block,
 * or a tool_use with its id and name), content_block_delta (text_delta, or input_json_delta
 * pieces of a tool's input), message_delta (stop_reason, output usage), message_stop (the
 * end), ping (nothing), error (a failure of the attempt). */
static int
anthropic_stream_event(pb_delta *d, const char *event, const char *data, size_t len, pb_error *err)
{
    if (strcmp(event, "ping") == 0)
        return PB_OK;
    json_object *root = pb_provider_parse_object(data, len, err), *o = NULL;
    if (root == NULL)
        return PB_ERR;
    const char *why = NULL;
    int index, block = anthropic_int(root, "index");
    if (strcmp(event, "error") == 0) {
        why = "the stream reported an error";
    } else if (strcmp(event, "message_start") == 0) {
        json_object *usage = NULL;
        if (json_object_object_get_ex(root, "message", &o))
            json_object_object_get_ex(o, "usage", &usage);
        long cached, prompt = anthropic_prompt_tokens(usage, &cached);
        pb_delta_usage(d, prompt, -1, prompt >= 0 ? cached : -1, -1);
        pb_delta_response_id(d, pb_provider_response_id(o, "id"));
    } else if (strcmp(event, "content_block_start") == 0) {
        json_object_object_get_ex(root, "content_block", &o);
        const char *type = anthropic_str(o, "type");
        if (type != NULL && strcmp(type, "tool_use") == 0) {
            if (pb_delta_block_tool(d, block, true, &index) != PB_OK ||
                pb_delta_tool(d, index, anthropic_str(o, "id"), anthropic_str(o, "name"), "", 0) !=
                    PB_OK)
                why = "too many tool_use blocks";
        } else if (type != NULL && strcmp(type, "text") == 0) {
            const char *t = anthropic_str(o, "text");
            if (t)
                pb_delta_text(d, t, strlen(t));
        }
    } else if (strcmp(event, "content_block_delta") == 0) {
        json_object_object_get_ex(root, "delta", &o);
        const char *type = anthropic_str(o, "type");
        const char *t = anthropic_str(o, "text"), *pj = anthropic_str(o, "partial_json");
        if (type != NULL && strcmp(type, "text_delta") == 0 && t != NULL)
            pb_delta_text(d, t, strlen(t));
        else if (type != NULL && strcmp(type, "input_json_delta") == 0 && pj != NULL &&
                 (pb_delta_block_tool(d, block, false, &index) != PB_OK ||
                  pb_delta_tool(d, index, NULL, NULL, pj, strlen(pj)) != PB_OK))
            why = "input_json_delta for a block that is not a tool_use";
    } else if (strcmp(event, "message_delta") == 0) {
        json_object *usage = NULL;
        json_object_object_get_ex(root, "delta", &o);
        json_object_object_get_ex(root, "usage", &usage);
        const char *stop = anthropic_str(o, "stop_reason");
        if (stop)
            pb_delta_finish_reason(d, anthropic_finish_reason(stop, strcmp(stop, "tool_use") == 0));
        /* Its usage is cumulative; when it repeats the input side, that replaces message_start's.
         */
        long cached, prompt = anthropic_prompt_tokens(usage, &cached);
        pb_delta_usage(d, prompt, pb_provider_tokens(usage, "output_tokens"),
                       prompt >= 0 ? cached : -1, -1);
    } else if (strcmp(event, "message_stop") == 0) {
        pb_delta_end(d);
    }
    json_object_put(root);
    if (why) {
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
        return PB_ERR;
    }
    return PB_OK;
}

const pb_provider_ops pb_provider_anthropic = {
    .type_name = "anthropic",
    .build_request = anthropic_build_request,
    .parse_response = anthropic_parse_response,
    .classify = anthropic_classify,
    .refuses = anthropic_refuses,
    .dropped = anthropic_dropped,
    .stream_event = anthropic_stream_event,
};
