/* dialect.c -- what OpenAI and Anthropic accept and answer, as far as planb cares.
 *
 * Validation is strict on purpose: the mock exists to catch planb sending a
 * wrong request (missing max_tokens for Anthropic, roles out of order, no
 * key), so every rule the real APIs enforce on the fields planb sends is here,
 * with a message that names the field. Replies carry the fields planb parses
 * (answer text, usage) in the providers' shapes; usage counts whitespace-
 * separated words, which is enough for tests to check arithmetic. A
 * streamed reply is the same answer (one dialect_answer feeds both) cut into
 * server-sent events: a word per text event, DIALECT_ARGS_PIECE bytes per
 * tool-input event (longer for very long answers), each event marked with its kind so the server
 * knows where a stream fault goes. Embedding vectors are a pure function of the input text (FNV-1a
 * seed, splitmix64 stream, L2-normalised) so caches keyed on them are testable. */
#include "dialect.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bedrock.h"
#include "gemini.h"
#include "planb/buf.h"
#include "planb/hash.h"

#define DIALECT_JSON_FLAGS   (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define DIALECT_DIMS_DEFAULT 64
#define DIALECT_DIMS_MAX     4096 /* OpenAI's largest embedding model has 3072 */
/* Room for the usage counters to gain digits when padding grows the answer:
 * two counters of at most 9 digits each (256 MiB of words). */
#define DIALECT_PAD_SLACK 24
/* Bytes of tool-call arguments per streamed fragment: small, as the real APIs stream them. */
#define DIALECT_ARGS_PIECE 8
/* Content events per streamed block at most: a long answer (a 64 MiB echo) gets longer
 * pieces, so a stream costs its text plus at most this many events' framing. */
#define DIALECT_STREAM_PIECES_MAX 4096

static int
dialect_fail(pb_error *err, int status, const char *msg)
{
    pb_error_set(err, status, "%s", msg);
    return status;
}

static bool
dialect_is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* True when the optional field key is absent or a positive integer. */
static bool
dialect_positive_int_or_absent(json_object *body, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(body, key, &v))
        return true;
    return json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0;
}

/* True when temperature is absent or a number in [0, max]. */
static bool
dialect_temperature_ok(json_object *body, double max)
{
    json_object *v;
    if (!json_object_object_get_ex(body, "temperature", &v))
        return true;
    if (!dialect_is_number(v))
        return false;
    double t = json_object_get_double(v);
    return t >= 0 && t <= max;
}

static bool
dialect_bearer_ok(const char *authorization)
{
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    for (const char *p = authorization + 7; *p; p++)
        if (*p != ' ')
            return true;
    return false;
}

/* Anthropic text content: a string or a non-empty array of {"type":"text","text":string}. */
static bool
dialect_text_blocks_ok(json_object *v, bool allow_string)
{
    if (allow_string && json_object_is_type(v, json_type_string))
        return true;
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
        return false;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *blk = json_object_array_get_idx(v, i), *type, *text;
        if (!json_object_is_type(blk, json_type_object) ||
            !json_object_object_get_ex(blk, "type", &type) ||
            !json_object_is_type(type, json_type_string) ||
            strcmp(json_object_get_string(type), "text") != 0 ||
            !json_object_object_get_ex(blk, "text", &text) ||
            !json_object_is_type(text, json_type_string))
            return false;
    }
    return true;
}

/* The role of messages[i] (m) when m is an object whose role is one of allowed
 * (NULL-terminated, listed in words as must_be for the error); NULL with a 400 in
 * err otherwise. The dialects differ in their roles, not in how they check them. */
static const char *
dialect_message_role(json_object *m, size_t i, const char *const *allowed, const char *must_be,
                     pb_error *err)
{
    json_object *role;
    if (!json_object_is_type(m, json_type_object)) {
        pb_error_set(err, 400, "messages[%zu]: must be an object", i);
        return NULL;
    }
    const char *rs =
        json_object_object_get_ex(m, "role", &role) && json_object_is_type(role, json_type_string)
            ? json_object_get_string(role)
            : "";
    for (size_t k = 0; allowed[k] != NULL; k++)
        if (strcmp(rs, allowed[k]) == 0)
            return rs;
    pb_error_set(err, 400, "messages[%zu].role: must be %s", i, must_be);
    return NULL;
}

/* A dialect's rules for messages[i] (m, an object whose role rs is allowed) beyond its
 * role: 0 when it passes, else 400 with err set. */
typedef int (*dialect_message_fn)(json_object *m, size_t i, const char *rs, pb_error *err);

/* Checks body.messages: a non-empty array whose every message has a role among allowed
 * (see dialect_message_role) and passes check. 0 when valid, else 400 with err set. */
static int
dialect_validate_messages(json_object *body, const char *const *allowed, const char *must_be,
                          dialect_message_fn check, pb_error *err)
{
    json_object *msgs;
    if (!json_object_object_get_ex(body, "messages", &msgs) ||
        !json_object_is_type(msgs, json_type_array) || json_object_array_length(msgs) == 0)
        return dialect_fail(err, 400, "messages: must be a non-empty array");
    for (size_t i = 0; i < json_object_array_length(msgs); i++) {
        json_object *m = json_object_array_get_idx(msgs, i);
        const char *rs = dialect_message_role(m, i, allowed, must_be, err);
        if (rs == NULL || check(m, i, rs, err) != 0)
            return 400;
    }
    return 0;
}

/* The string obj[key], or NULL. */
static const char *
dialect_str(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool
dialect_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\f' && *s != '\v')
            return false;
    return true;
}

/* The real APIs refuse fields they do not know: a 400 naming the first one. */
static int
dialect_known_fields(json_object *body, const char *const *known, bool anthropic, pb_error *err)
{
    json_object_object_foreach(body, key, val)
    {
        (void)val;
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(key, *k) == 0;
        if (!ok) {
            if (anthropic)
                pb_error_set(err, 400, "%s: Extra inputs are not permitted", key);
            else
                pb_error_set(err, 400, "Unrecognized request argument supplied: %s", key);
            return 400;
        }
    }
    return 0;
}

/* A function/tool name as both APIs require: ^[a-zA-Z0-9_-]{1,64}$. */
static bool
dialect_tool_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* A JSON Schema for tool input: an object whose type is "object". */
static bool
dialect_object_schema_ok(json_object *v)
{
    const char *type = dialect_str(v, "type");
    return json_object_is_type(v, json_type_object) && type != NULL && strcmp(type, "object") == 0;
}

/* OpenAI: a content part (text, or image_url with an https or data: URL). */
static bool
dialect_openai_part_ok(json_object *p, bool user)
{
    const char *type = dialect_str(p, "type");
    json_object *img;
    if (type == NULL)
        return false;
    if (strcmp(type, "text") == 0)
        return dialect_str(p, "text") != NULL;
    if (strcmp(type, "image_url") != 0 || !user || !json_object_object_get_ex(p, "image_url", &img))
        return false;
    const char *url = dialect_str(img, "url");
    return url != NULL &&
           (strncmp(url, "https://", 8) == 0 || strncmp(url, "data:image/", 11) == 0);
}

/* OpenAI: any allowed role in any order; content is a string or parts (null for an assistant
 * with tool_calls); tool_calls and tool_call_id as the API shapes them. */
static int
dialect_openai_message(json_object *m, size_t i, const char *rs, pb_error *err)
{
    json_object *content = NULL, *tc = NULL;
    bool has_content = json_object_object_get_ex(m, "content", &content);
    bool assistant = strcmp(rs, "assistant") == 0;
    if (json_object_object_get_ex(m, "tool_calls", &tc) && tc != NULL) {
        size_t n = json_object_is_type(tc, json_type_array) ? json_object_array_length(tc) : 0;
        bool ok = assistant && n > 0;
        for (size_t k = 0; ok && k < n; k++) {
            json_object *c = json_object_array_get_idx(tc, k), *fn;
            const char *type = dialect_str(c, "type");
            ok = dialect_str(c, "id") != NULL && type != NULL && strcmp(type, "function") == 0 &&
                 json_object_object_get_ex(c, "function", &fn) && dialect_str(fn, "name") != NULL &&
                 dialect_str(fn, "arguments") != NULL;
        }
        if (!ok) {
            pb_error_set(err, 400,
                         "messages[%zu].tool_calls: must be an array of {id, type: "
                         "function, function: {name, arguments}} on an assistant message",
                         i);
            return 400;
        }
    }
    if (strcmp(rs, "tool") == 0 && dialect_str(m, "tool_call_id") == NULL) {
        pb_error_set(err, 400, "messages[%zu].tool_call_id: is required for role tool", i);
        return 400;
    }
    if (assistant && tc != NULL && (!has_content || content == NULL))
        return 0;
    if (json_object_is_type(content, json_type_string))
        return 0;
    size_t n =
        json_object_is_type(content, json_type_array) ? json_object_array_length(content) : 0;
    bool ok = n > 0;
    for (size_t k = 0; ok && k < n; k++)
        ok = dialect_openai_part_ok(json_object_array_get_idx(content, k), strcmp(rs, "user") == 0);
    if (!ok) {
        pb_error_set(err, 400,
                     "messages[%zu].content: must be a string or an array of text / "
                     "image_url parts",
                     i);
        return 400;
    }
    return 0;
}

/* OpenAI: every tool message answers a tool call of the assistant message before its run,
 * and every tool call is answered. */
static int
dialect_openai_tool_pairs(json_object *msgs, pb_error *err)
{
    json_object *calls = NULL;
    size_t n = json_object_array_length(msgs), answered = 0;
    for (size_t i = 0; i <= n; i++) {
        json_object *m = i < n ? json_object_array_get_idx(msgs, i) : NULL;
        const char *role = m ? dialect_str(m, "role") : "";
        if (strcmp(role, "tool") == 0) {
            const char *id = dialect_str(m, "tool_call_id");
            bool found = false;
            for (size_t k = 0; calls != NULL && k < json_object_array_length(calls) && !found; k++)
                found = strcmp(dialect_str(json_object_array_get_idx(calls, k), "id"), id) == 0;
            if (!found) {
                pb_error_set(err, 400,
                             "messages[%zu]: messages with role 'tool' must be a "
                             "response to a preceding message with 'tool_calls'",
                             i);
                return 400;
            }
            answered++;
            continue;
        }
        if (calls != NULL && answered < json_object_array_length(calls))
            return dialect_fail(err, 400,
                                "messages: an assistant message with 'tool_calls' must "
                                "be followed by tool messages responding to each "
                                "'tool_call_id'");
        json_object *tc = NULL;
        calls = m && json_object_object_get_ex(m, "tool_calls", &tc) ? tc : NULL;
        answered = 0;
    }
    return 0;
}

static int
dialect_openai_tools(json_object *body, pb_error *err)
{
    json_object *tools = NULL, *choice = NULL, *rf = NULL, *stop = NULL, *v;
    if (json_object_object_get_ex(body, "tools", &tools)) {
        size_t n =
            json_object_is_type(tools, json_type_array) ? json_object_array_length(tools) : 0;
        if (n == 0)
            return dialect_fail(err, 400, "tools: must be a non-empty array");
        for (size_t i = 0; i < n; i++) {
            json_object *t = json_object_array_get_idx(tools, i), *fn, *params;
            const char *type = dialect_str(t, "type");
            if (type == NULL || strcmp(type, "function") != 0 ||
                !json_object_object_get_ex(t, "function", &fn) ||
                !dialect_tool_name_ok(dialect_str(fn, "name")) ||
                (json_object_object_get_ex(fn, "parameters", &params) &&
                 !dialect_object_schema_ok(params))) {
                pb_error_set(err, 400,
                             "tools[%zu]: Invalid schema for function: must be "
                             "{type: function, function: {name, parameters: {type: "
                             "object}}}",
                             i);
                return 400;
            }
        }
    }
    if (json_object_object_get_ex(body, "tool_choice", &choice)) {
        const char *c = json_object_get_string(choice);
        bool ok = tools != NULL;
        if (ok && json_object_is_type(choice, json_type_string))
            ok = strcmp(c, "none") == 0 || strcmp(c, "auto") == 0 || strcmp(c, "required") == 0;
        else if (ok)
            ok = json_object_object_get_ex(choice, "function", &v) && dialect_str(v, "name");
        if (!ok)
            return dialect_fail(err, 400,
                                "tool_choice: must be none, auto, required or a "
                                "function, and is only allowed with tools");
    }
    if (json_object_object_get_ex(body, "response_format", &rf)) {
        const char *type = dialect_str(rf, "type");
        bool ok = type != NULL && (strcmp(type, "text") == 0 || strcmp(type, "json_object") == 0);
        if (type != NULL && strcmp(type, "json_schema") == 0)
            ok = json_object_object_get_ex(rf, "json_schema", &v) && dialect_str(v, "name");
        if (!ok)
            return dialect_fail(err, 400,
                                "response_format: must be text, json_object or "
                                "json_schema with a name");
    }
    if (json_object_object_get_ex(body, "stop", &stop) &&
        !json_object_is_type(stop, json_type_string) &&
        (!json_object_is_type(stop, json_type_array) || json_object_array_length(stop) > 4))
        return dialect_fail(err, 400, "stop: must be a string or up to 4 strings");
    if (json_object_object_get_ex(body, "max_tokens", &v) &&
        json_object_object_get_ex(body, "max_completion_tokens", &v))
        return dialect_fail(err, 400,
                            "max_tokens: use max_tokens or max_completion_tokens, not "
                            "both");
    return 0;
}

/* Anthropic: one content block of a message of role rs (user or assistant). */
static bool
dialect_anthropic_block_ok(json_object *b, bool user)
{
    const char *type = dialect_str(b, "type");
    json_object *v, *src;
    if (type == NULL)
        return false;
    if (strcmp(type, "text") == 0) {
        const char *t = dialect_str(b, "text");
        return t != NULL && !dialect_blank(t);
    }
    if (strcmp(type, "image") == 0) {
        const char *st =
            json_object_object_get_ex(b, "source", &src) ? dialect_str(src, "type") : NULL;
        if (!user || st == NULL)
            return false;
        if (strcmp(st, "url") == 0)
            return dialect_str(src, "url") != NULL;
        const char *mt = dialect_str(src, "media_type");
        return strcmp(st, "base64") == 0 && dialect_str(src, "data") != NULL && mt != NULL &&
               (strcmp(mt, "image/png") == 0 || strcmp(mt, "image/jpeg") == 0 ||
                strcmp(mt, "image/gif") == 0 || strcmp(mt, "image/webp") == 0);
    }
    if (strcmp(type, "tool_use") == 0)
        return !user && dialect_str(b, "id") != NULL &&
               dialect_tool_name_ok(dialect_str(b, "name")) &&
               json_object_object_get_ex(b, "input", &v) &&
               json_object_is_type(v, json_type_object);
    if (strcmp(type, "tool_result") == 0)
        return user && dialect_str(b, "tool_use_id") != NULL &&
               (!json_object_object_get_ex(b, "content", &v) ||
                json_object_is_type(v, json_type_string) ||
                json_object_is_type(v, json_type_array));
    return false;
}

/* Anthropic: user first, then alternating; content is a non-blank string or blocks. */
static int
dialect_anthropic_message(json_object *m, size_t i, const char *rs, pb_error *err)
{
    json_object *content;
    const char *want = i % 2 == 0 ? "user" : "assistant";
    if (strcmp(rs, want) != 0) {
        if (i == 0)
            return dialect_fail(err, 400, "messages[0].role: the first message must be user");
        pb_error_set(err, 400, "messages[%zu].role: roles must alternate user/assistant", i);
        return 400;
    }
    bool ok = json_object_object_get_ex(m, "content", &content);
    if (ok && json_object_is_type(content, json_type_string)) {
        ok = !dialect_blank(json_object_get_string(content));
    } else if (ok) {
        size_t n =
            json_object_is_type(content, json_type_array) ? json_object_array_length(content) : 0;
        ok = n > 0;
        bool after_other = false;
        for (size_t k = 0; ok && k < n; k++) {
            json_object *b = json_object_array_get_idx(content, k);
            ok = dialect_anthropic_block_ok(b, strcmp(rs, "user") == 0);
            bool result = ok && strcmp(dialect_str(b, "type"), "tool_result") == 0;
            if (result && after_other) {
                pb_error_set(err, 400,
                             "messages[%zu].content[%zu]: tool_result blocks must come "
                             "first in the content",
                             i, k);
                return 400;
            }
            after_other |= !result;
        }
    }
    if (!ok) {
        pb_error_set(err, 400,
                     "messages[%zu].content: must be a non-blank string or a non-empty array of "
                     "text (non-blank), image, tool_use (assistant) or tool_result (user) blocks",
                     i);
        return 400;
    }
    return 0;
}

/* True when blocks (a content array) has a block of type with field key equal to id. */
static bool
dialect_has_block(json_object *content, const char *type, const char *key, const char *id)
{
    for (size_t k = 0;
         json_object_is_type(content, json_type_array) && k < json_object_array_length(content);
         k++) {
        json_object *b = json_object_array_get_idx(content, k);
        const char *t = dialect_str(b, "type"), *v = dialect_str(b, key);
        if (t != NULL && v != NULL && strcmp(t, type) == 0 && strcmp(v, id) == 0)
            return true;
    }
    return false;
}

/* Anthropic: every tool_result answers a tool_use of the message just before, and every
 * tool_use is answered in the message just after. */
static int
dialect_anthropic_tool_pairs(json_object *msgs, pb_error *err)
{
    size_t n = json_object_array_length(msgs);
    for (size_t i = 0; i < n; i++) {
        json_object *content, *prev = NULL, *next = NULL;
        json_object_object_get_ex(json_object_array_get_idx(msgs, i), "content", &content);
        if (i > 0)
            json_object_object_get_ex(json_object_array_get_idx(msgs, i - 1), "content", &prev);
        if (i + 1 < n)
            json_object_object_get_ex(json_object_array_get_idx(msgs, i + 1), "content", &next);
        for (size_t k = 0;
             json_object_is_type(content, json_type_array) && k < json_object_array_length(content);
             k++) {
            json_object *b = json_object_array_get_idx(content, k);
            const char *t = dialect_str(b, "type");
            if (strcmp(t, "tool_result") == 0 &&
                !dialect_has_block(prev, "tool_use", "id", dialect_str(b, "tool_use_id"))) {
                pb_error_set(err, 400,
                             "messages.%zu.content.%zu: unexpected tool_use_id found in "
                             "tool_result blocks: %s. Each tool_result block must have a "
                             "corresponding tool_use block in the previous message.",
                             i, k, dialect_str(b, "tool_use_id"));
                return 400;
            }
            if (strcmp(t, "tool_use") == 0 && i + 1 < n &&
                !dialect_has_block(next, "tool_result", "tool_use_id", dialect_str(b, "id"))) {
                pb_error_set(err, 400,
                             "messages.%zu: tool_use ids were found without tool_result "
                             "blocks immediately after: %s",
                             i, dialect_str(b, "id"));
                return 400;
            }
        }
    }
    return 0;
}

static int
dialect_anthropic_tools(json_object *body, pb_error *err)
{
    json_object *tools = NULL, *choice, *stop, *v;
    if (json_object_object_get_ex(body, "tools", &tools)) {
        size_t n =
            json_object_is_type(tools, json_type_array) ? json_object_array_length(tools) : 0;
        for (size_t i = 0; i < n; i++) {
            json_object *t = json_object_array_get_idx(tools, i), *schema;
            if (!dialect_tool_name_ok(dialect_str(t, "name")) ||
                !json_object_object_get_ex(t, "input_schema", &schema) ||
                !dialect_object_schema_ok(schema)) {
                pb_error_set(err, 400,
                             "tools.%zu: must have a name matching "
                             "^[a-zA-Z0-9_-]{1,64}$ and an input_schema of type object",
                             i);
                return 400;
            }
        }
        if (n == 0)
            return dialect_fail(err, 400, "tools: must be an array of tools");
    }
    if (json_object_object_get_ex(body, "tool_choice", &choice)) {
        const char *type = dialect_str(choice, "type");
        bool ok = type != NULL && (strcmp(type, "auto") == 0 || strcmp(type, "any") == 0 ||
                                   strcmp(type, "none") == 0);
        if (type != NULL && strcmp(type, "tool") == 0) {
            const char *name = dialect_str(choice, "name");
            for (size_t i = 0; name != NULL && tools != NULL && i < json_object_array_length(tools);
                 i++)
                ok |= strcmp(dialect_str(json_object_array_get_idx(tools, i), "name"), name) == 0;
        }
        if (!ok)
            return dialect_fail(err, 400,
                                "tool_choice: must be {type: auto|any|none} or {type: "
                                "tool, name: <a tool in tools>}");
    }
    if (json_object_object_get_ex(body, "stop_sequences", &stop)) {
        size_t n = json_object_is_type(stop, json_type_array) ? json_object_array_length(stop) : 0;
        bool ok = json_object_is_type(stop, json_type_array);
        for (size_t i = 0; ok && i < n; i++) {
            v = json_object_array_get_idx(stop, i);
            ok = json_object_is_type(v, json_type_string) &&
                 !dialect_blank(json_object_get_string(v));
        }
        if (!ok)
            return dialect_fail(err, 400,
                                "stop_sequences: each element must contain "
                                "non-whitespace");
    }
    if (json_object_object_get_ex(body, "top_k", &v) &&
        (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0))
        return dialect_fail(err, 400, "top_k: must be a non-negative integer");
    return 0;
}

/* stream is a boolean; OpenAI's stream_options ({"include_usage": bool}) only comes with
 * stream true, as the real API insists. 0 when valid, else 400 with err set. */
static int
dialect_stream_ok(json_object *body, bool openai, pb_error *err)
{
    json_object *st = NULL, *so, *iu;
    if (json_object_object_get_ex(body, "stream", &st) &&
        !json_object_is_type(st, json_type_boolean))
        return dialect_fail(err, 400, "stream: must be a boolean");
    if (!openai || !json_object_object_get_ex(body, "stream_options", &so) || so == NULL)
        return 0;
    if (st == NULL || !json_object_get_boolean(st))
        return dialect_fail(err, 400,
                            "stream_options: The 'stream_options' parameter is only allowed "
                            "when 'stream' is enabled.");
    if (!json_object_is_type(so, json_type_object) ||
        (json_object_object_get_ex(so, "include_usage", &iu) &&
         !json_object_is_type(iu, json_type_boolean)))
        return dialect_fail(err, 400,
                            "stream_options: must be an object {\"include_usage\": boolean}");
    return 0;
}

static int
dialect_validate_openai(const pb_mock_request *r, pb_error *err)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", NULL};
    static const char *const known[] = {"model",
                                        "messages",
                                        "audio",
                                        "frequency_penalty",
                                        "function_call",
                                        "functions",
                                        "logit_bias",
                                        "logprobs",
                                        "max_completion_tokens",
                                        "max_tokens",
                                        "metadata",
                                        "modalities",
                                        "n",
                                        "parallel_tool_calls",
                                        "prediction",
                                        "presence_penalty",
                                        "prompt_cache_key",
                                        "reasoning_effort",
                                        "response_format",
                                        "safety_identifier",
                                        "seed",
                                        "service_tier",
                                        "stop",
                                        "store",
                                        "stream",
                                        "stream_options",
                                        "temperature",
                                        "tool_choice",
                                        "tools",
                                        "top_logprobs",
                                        "top_p",
                                        "user",
                                        "verbosity",
                                        "web_search_options",
                                        NULL};
    /* Azure: the key in api-key or an Entra ID token as Bearer; the deployment API wants its
     * api-version (the v1 API takes none). */
    if (r->azure && (r->azure_key == NULL || r->azure_key[0] == '\0') &&
        !dialect_bearer_ok(r->authorization))
        return dialect_fail(err, 401,
                            "Access denied due to invalid subscription key or wrong API endpoint: "
                            "an api-key header or 'Authorization: Bearer <token>' is required");
    if (r->azure_deployment && (r->api_version == NULL || r->api_version[0] == '\0'))
        return dialect_fail(err, 400, "Missing required query parameter: api-version");
    if (!r->azure && !dialect_bearer_ok(r->authorization))
        return dialect_fail(err, 401, "Authorization: a header 'Bearer <api key>' is required");
    int bad = dialect_known_fields(r->body, known, false, err);
    if (bad == 0)
        bad =
            dialect_validate_messages(r->body, roles, "system, developer, user, assistant or tool",
                                      dialect_openai_message, err);
    if (bad != 0)
        return bad;
    json_object *msgs;
    json_object_object_get_ex(r->body, "messages", &msgs);
    if ((bad = dialect_openai_tool_pairs(msgs, err)) != 0 ||
        (bad = dialect_openai_tools(r->body, err)) != 0)
        return bad;
    if (!dialect_positive_int_or_absent(r->body, "max_tokens") ||
        !dialect_positive_int_or_absent(r->body, "max_completion_tokens"))
        return dialect_fail(err, 400, "max_tokens: must be a positive integer");
    if (!dialect_temperature_ok(r->body, 2.0))
        return dialect_fail(err, 400, "temperature: must be a number between 0 and 2");
    return dialect_stream_ok(r->body, true, err);
}

static int
dialect_validate_anthropic(const pb_mock_request *r, pb_error *err)
{
    static const char *const roles[] = {"user", "assistant", NULL};
    static const char *const known[] = {
        "model",       "messages", "max_tokens", "system",       "stop_sequences",
        "temperature", "top_p",    "top_k",      "tools",        "tool_choice",
        "metadata",    "thinking", "stream",     "service_tier", "container",
        "mcp_servers", NULL};
    if (r->api_key == NULL || r->api_key[0] == '\0')
        return dialect_fail(err, 401, "x-api-key: header is required");
    if (r->version == NULL || r->version[0] == '\0')
        return dialect_fail(err, 400, "anthropic-version: header is required");
    int bad = dialect_known_fields(r->body, known, true, err);
    if (bad != 0)
        return bad;
    json_object *v;
    if (!json_object_object_get_ex(r->body, "max_tokens", &v) ||
        !dialect_positive_int_or_absent(r->body, "max_tokens"))
        return dialect_fail(err, 400, "max_tokens: a positive integer is required");
    bad = dialect_validate_messages(r->body, roles, "user or assistant", dialect_anthropic_message,
                                    err);
    if (bad != 0)
        return bad;
    json_object_object_get_ex(r->body, "messages", &v);
    if ((bad = dialect_anthropic_tool_pairs(v, err)) != 0 ||
        (bad = dialect_anthropic_tools(r->body, err)) != 0)
        return bad;
    if (json_object_object_get_ex(r->body, "system", &v) && !dialect_text_blocks_ok(v, true))
        return dialect_fail(err, 400, "system: must be a string or an array of text blocks");
    if (!dialect_temperature_ok(r->body, 1.0))
        return dialect_fail(err, 400, "temperature: must be a number between 0 and 1");
    return dialect_stream_ok(r->body, false, err);
}

static int
dialect_validate_embeddings(const pb_mock_request *r, pb_error *err)
{
    if (!dialect_bearer_ok(r->authorization))
        return dialect_fail(err, 401, "Authorization: a header 'Bearer <api key>' is required");
    json_object *in;
    bool ok = json_object_object_get_ex(r->body, "input", &in);
    if (ok && json_object_is_type(in, json_type_array)) {
        ok = json_object_array_length(in) > 0;
        for (size_t i = 0; ok && i < json_object_array_length(in); i++)
            ok = json_object_is_type(json_object_array_get_idx(in, i), json_type_string);
    } else if (ok) {
        ok = json_object_is_type(in, json_type_string);
    }
    if (!ok)
        return dialect_fail(err, 400, "input: must be a string or a non-empty array of strings");
    json_object *d;
    if (json_object_object_get_ex(r->body, "dimensions", &d) &&
        (!json_object_is_type(d, json_type_int) || json_object_get_int64(d) < 1 ||
         json_object_get_int64(d) > DIALECT_DIMS_MAX))
        return dialect_fail(err, 400, "dimensions: must be an integer between 1 and 4096");
    return 0;
}

int
pb_mock_dialect_validate(const pb_mock_request *r, pb_error *err)
{
    switch (r->api) {
    case PB_MOCK_API_OPENAI:
        return dialect_validate_openai(r, err);
    case PB_MOCK_API_ANTHROPIC:
        return dialect_validate_anthropic(r, err);
    case PB_MOCK_API_EMBEDDINGS:
        return dialect_validate_embeddings(r, err);
    case PB_MOCK_API_GEMINI:
        return pb_mock_gemini_validate(r, err);
    case PB_MOCK_API_BEDROCK:
        return pb_mock_bedrock_validate(r, err);
    }
    return 0;
}

static long
dialect_words_n(const char *s, size_t len)
{
    long n = 0;
    bool in = false;
    for (const char *end = s + len; s < end; s++) {
        bool sp = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v';
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

static long
dialect_words(const char *s)
{
    return dialect_words_n(s, strlen(s));
}

/* Words of a string or of the texts of an array of text blocks. */
static long
dialect_content_words(json_object *content)
{
    if (json_object_is_type(content, json_type_string))
        return dialect_words(json_object_get_string(content));
    long n = 0;
    if (!json_object_is_type(content, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(content); i++) {
        json_object *text;
        if (json_object_object_get_ex(json_object_array_get_idx(content, i), "text", &text))
            n += dialect_words(json_object_get_string(text));
    }
    return n;
}

/* Appends the text of content (string, or text blocks joined by newlines). */
static void
dialect_content_text(json_object *content, pb_buf *out)
{
    if (json_object_is_type(content, json_type_string)) {
        pb_buf_append(out, json_object_get_string(content),
                      (size_t)json_object_get_string_len(content));
        return;
    }
    for (size_t i = 0; i < json_object_array_length(content); i++) {
        json_object *text;
        if (!json_object_object_get_ex(json_object_array_get_idx(content, i), "text", &text))
            continue;
        if (i > 0)
            pb_buf_append(out, "\n", 1);
        pb_buf_append(out, json_object_get_string(text), (size_t)json_object_get_string_len(text));
    }
}

/* Prompt words over all messages and the system prompt; *last_user gets the last user content. */
static long
dialect_prompt(const pb_mock_request *r, json_object **last_user)
{
    json_object *msgs, *v;
    long n = 0;
    *last_user = NULL;
    if (json_object_object_get_ex(r->body, "system", &v))
        n += dialect_content_words(v);
    json_object_object_get_ex(r->body, "messages", &msgs);
    for (size_t i = 0; i < json_object_array_length(msgs); i++) {
        json_object *m = json_object_array_get_idx(msgs, i), *role;
        if (json_object_object_get_ex(m, "content", &v))
            n += dialect_content_words(v);
        if (json_object_object_get_ex(m, "role", &role) &&
            strcmp(json_object_get_string(role), "user") == 0 &&
            json_object_object_get_ex(m, "content", &v))
            *last_user = v;
    }
    return n;
}

/* Serialises o into a new string (caller frees) and drops o. */
static char *
dialect_take_json(json_object *o, size_t *len)
{
    size_t n;
    const char *s = json_object_to_json_string_length(o, DIALECT_JSON_FLAGS, &n);
    char *out = pb_xstrndup(s, n);
    json_object_put(o);
    *len = n;
    return out;
}

static json_object *
dialect_usage(const char *in_key, long in, const char *out_key, long out)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, in_key, json_object_new_int64(in));
    json_object_object_add(u, out_key, json_object_new_int64(out));
    if (strcmp(in_key, "prompt_tokens") == 0)
        json_object_object_add(u, "total_tokens", json_object_new_int64(in + out));
    return u;
}

/* The stop reason a behaviour asks for in r's dialect, else natural. */
static const char *
dialect_stop_reason(const pb_mock_request *r, const char *natural)
{
    bool an = r->api == PB_MOCK_API_ANTHROPIC;
    if (r->finish_reason != NULL && strcmp(r->finish_reason, "length") == 0)
        return an ? "max_tokens" : "length";
    if (r->finish_reason != NULL && strcmp(r->finish_reason, "content_filter") == 0)
        return an ? "refusal" : "content_filter";
    return natural;
}

/* The tool-call arguments as OpenAI replies carry them (and both dialects stream them):
 * JSON text, broken when the behaviour asks (OpenAI only). */
static const char *
dialect_args_text(const pb_mock_request *r, json_object *args)
{
    return r->bad_tool_args && r->api != PB_MOCK_API_ANTHROPIC
               ? "{\"city\": \"Par"
               : json_object_to_json_string_ext(args, DIALECT_JSON_FLAGS);
}

/* Fills o as an OpenAI chat.completion (id chatcmpl-mock-<id>, one choice holding msg, taken;
 * finish_reason after the behaviour's, else natural) and serializes it; o is put. */
static char *
dialect_openai_reply(json_object *o, const pb_mock_request *r, unsigned long id, json_object *msg,
                     const char *natural_finish, long prompt, long completion_tokens, size_t *len)
{
    char idbuf[48];
    snprintf(idbuf, sizeof(idbuf), "chatcmpl-mock-%lu", id);
    json_object *choice = json_object_new_object();
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(choice, "message", msg);
    json_object_object_add(choice, "finish_reason",
                           json_object_new_string(dialect_stop_reason(r, natural_finish)));
    json_object *choices = json_object_new_array();
    json_object_array_add(choices, choice);
    json_object_object_add(o, "id", json_object_new_string(idbuf));
    json_object_object_add(o, "object", json_object_new_string("chat.completion"));
    json_object_object_add(o, "created", json_object_new_int64((int64_t)time(NULL)));
    json_object_object_add(o, "model", json_object_new_string(r->model));
    json_object_object_add(o, "choices", choices);
    json_object_object_add(
        o, "usage", dialect_usage("prompt_tokens", prompt, "completion_tokens", completion_tokens));
    return dialect_take_json(o, len);
}

/* Fills o as an Anthropic Messages reply (id msg_mock_<id>, content blocks taken, stop_reason
 * after the behaviour's finish_reason, else natural) and serializes it; o is put. */
static char *
dialect_anthropic_reply(json_object *o, const pb_mock_request *r, unsigned long id,
                        json_object *content, const char *natural_stop, long prompt,
                        long output_tokens, size_t *len)
{
    char idbuf[48];
    snprintf(idbuf, sizeof(idbuf), "msg_mock_%lu", id);
    json_object_object_add(o, "id", json_object_new_string(idbuf));
    json_object_object_add(o, "type", json_object_new_string("message"));
    json_object_object_add(o, "role", json_object_new_string("assistant"));
    json_object_object_add(o, "model", json_object_new_string(r->model));
    json_object_object_add(o, "content", content);
    json_object_object_add(o, "stop_reason",
                           json_object_new_string(dialect_stop_reason(r, natural_stop)));
    json_object_object_add(o, "stop_sequence", NULL);
    json_object_object_add(o, "usage",
                           dialect_usage("input_tokens", prompt, "output_tokens", output_tokens));
    return dialect_take_json(o, len);
}

/* A reply carrying tool calls ([{name, arguments: object}]): OpenAI tool_calls (arguments as
 * JSON text, broken when the behaviour asks) or Anthropic tool_use blocks. */
static char *
dialect_tool_json(const pb_mock_request *r, json_object *calls, long prompt, unsigned long id,
                  size_t *len)
{
    json_object *o = json_object_new_object(), *list = json_object_new_array();
    bool an = r->api == PB_MOCK_API_ANTHROPIC;
    char idbuf[64];
    for (size_t i = 0; i < json_object_array_length(calls); i++) {
        json_object *c = json_object_array_get_idx(calls, i), *name, *args;
        json_object_object_get_ex(c, "name", &name);
        json_object_object_get_ex(c, "arguments", &args);
        json_object *out = json_object_new_object();
        if (an) {
            snprintf(idbuf, sizeof(idbuf), "toolu_mock_%lu_%zu", id, i);
            json_object_object_add(out, "type", json_object_new_string("tool_use"));
            json_object_object_add(out, "id", json_object_new_string(idbuf));
            json_object_object_add(out, "name", json_object_get(name));
            json_object_object_add(out, "input", json_object_get(args));
        } else {
            snprintf(idbuf, sizeof(idbuf), "call_mock_%lu_%zu", id, i);
            json_object *fn = json_object_new_object();
            json_object_object_add(fn, "name", json_object_get(name));
            json_object_object_add(fn, "arguments",
                                   json_object_new_string(dialect_args_text(r, args)));
            json_object_object_add(out, "id", json_object_new_string(idbuf));
            json_object_object_add(out, "type", json_object_new_string("function"));
            json_object_object_add(out, "function", fn);
        }
        json_object_array_add(list, out);
    }
    if (an)
        return dialect_anthropic_reply(o, r, id, list, "tool_use", prompt, 1, len);
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string("assistant"));
    json_object_object_add(msg, "content", NULL);
    json_object_object_add(msg, "tool_calls", list);
    return dialect_openai_reply(o, r, id, msg, "tool_calls", prompt, 1, len);
}

/* The result text of the tool results the conversation ends with, or NULL when it ends
 * otherwise: an OpenAI tool message, or an Anthropic user turn holding tool_result blocks. */
static json_object *
dialect_tool_result(const pb_mock_request *r)
{
    json_object *msgs, *content;
    if (!json_object_object_get_ex(r->body, "messages", &msgs) ||
        json_object_array_length(msgs) == 0)
        return NULL;
    json_object *last = json_object_array_get_idx(msgs, json_object_array_length(msgs) - 1);
    const char *role = dialect_str(last, "role");
    if (!json_object_object_get_ex(last, "content", &content))
        return NULL;
    if (r->api != PB_MOCK_API_ANTHROPIC)
        return role != NULL && strcmp(role, "tool") == 0 ? content : NULL;
    for (size_t k = 0;
         json_object_is_type(content, json_type_array) && k < json_object_array_length(content);
         k++) {
        json_object *b = json_object_array_get_idx(content, k), *c;
        const char *t = dialect_str(b, "type");
        if (t != NULL && strcmp(t, "tool_result") == 0)
            return json_object_object_get_ex(b, "content", &c) ? c : b;
    }
    return NULL;
}

/* The tool Anthropic is forced to call (tool_choice {type: tool}), or NULL. */
static const char *
dialect_forced_tool(const pb_mock_request *r)
{
    json_object *tc;
    const char *type;
    if (r->api != PB_MOCK_API_ANTHROPIC ||
        !json_object_object_get_ex(r->body, "tool_choice", &tc) ||
        (type = dialect_str(tc, "type")) == NULL || strcmp(type, "tool") != 0)
        return NULL;
    return dialect_str(tc, "name");
}

static char *
dialect_chat_json(const pb_mock_request *r, const char *text, size_t text_len, long prompt,
                  unsigned long id, size_t *len)
{
    long words = dialect_words_n(text, text_len);
    json_object *o = json_object_new_object();
    json_object *content = json_object_new_string_len(text, (int)text_len);
    if (r->api == PB_MOCK_API_ANTHROPIC) {
        json_object *blk = json_object_new_object();
        json_object_object_add(blk, "type", json_object_new_string("text"));
        json_object_object_add(blk, "text", content);
        json_object *arr = json_object_new_array();
        json_object_array_add(arr, blk);
        return dialect_anthropic_reply(o, r, id, arr, "end_turn", prompt, words, len);
    }
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string("assistant"));
    json_object_object_add(msg, "content", r->refusal != NULL ? NULL : content);
    if (r->refusal != NULL)
        json_object_object_add(msg, "refusal", content); /* the text is the refusal */
    return dialect_openai_reply(o, r, id, msg, "stop", prompt, words, len);
}

/* Appends filler words until out holds n more bytes. */
static void
dialect_fill(pb_buf *out, size_t n)
{
    static const char filler[] = " lorem ipsum dolor sit amet";
    while (n > 0) {
        size_t k = n < sizeof(filler) - 1 ? n : sizeof(filler) - 1;
        pb_buf_append(out, filler, k);
        n -= k;
    }
}

/* A chat reply whose answer is text, padded with filler words and then spaces so the
 * body is exactly pad_to bytes: spaces add no words, so the usage (and with it the
 * length of everything but the answer) is fixed by the time they go in. */
static char *
dialect_chat_reply(const pb_mock_request *r, const char *text, long prompt, unsigned long id,
                   size_t pad_to, size_t *len)
{
    char *body = dialect_chat_json(r, text, strlen(text), prompt, id, len);
    if (*len >= pad_to)
        return body;
    pb_buf answer;
    pb_buf_init(&answer, SIZE_MAX);
    pb_buf_append(&answer, text, strlen(text));
    if (pad_to - *len > DIALECT_PAD_SLACK)
        dialect_fill(&answer, pad_to - *len - DIALECT_PAD_SLACK);
    free(body);
    body = dialect_chat_json(r, answer.data, answer.len, prompt, id, len);
    if (*len < pad_to) {
        size_t extra = pad_to - *len;
        free(body);
        while (extra-- > 0)
            pb_buf_append(&answer, " ", 1);
        body = dialect_chat_json(r, answer.data, answer.len, prompt, id, len);
    }
    pb_buf_free(&answer);
    return body;
}

/* The vector of input, dims long and L2-normalised: the FNV-1a 64 of the text seeds a
 * splitmix64 stream whose values, mapped to [-1, 1), are the components before the
 * normalising, so the same text always gives the same vector. */
static json_object *
dialect_vector(json_object *input, int dims)
{
    double v[DIALECT_DIMS_MAX];
    uint64_t state =
        pb_hash_fnv1a64(json_object_get_string(input), (size_t)json_object_get_string_len(input),
                        PB_HASH_FNV1A64_OFFSET);
    double norm = 0;
    for (int i = 0; i < dims; i++) {
        v[i] = (double)(pb_hash_splitmix64(&state) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
        norm += v[i] * v[i];
    }
    norm = sqrt(norm);
    json_object *arr = json_object_new_array_ext(dims);
    for (int i = 0; i < dims; i++)
        json_object_array_add(arr, json_object_new_double(norm > 0 ? v[i] / norm : 0));
    return arr;
}

static char *
dialect_embeddings_reply(const pb_mock_request *r, pb_mock_body_kind kind, size_t pad_to,
                         size_t *len)
{
    json_object *in, *d;
    json_object_object_get_ex(r->body, "input", &in);
    int dims = DIALECT_DIMS_DEFAULT;
    if (json_object_object_get_ex(r->body, "dimensions", &d))
        dims = json_object_get_int(d);
    json_object *data = json_object_new_array();
    long words = 0;
    size_t n = json_object_is_type(in, json_type_array) ? json_object_array_length(in) : 1;
    for (size_t i = 0; kind != PB_MOCK_BODY_MISSING && i < n; i++) {
        json_object *s =
            json_object_is_type(in, json_type_array) ? json_object_array_get_idx(in, i) : in;
        words += dialect_words(json_object_get_string(s));
        json_object *e = json_object_new_object();
        json_object_object_add(e, "object", json_object_new_string("embedding"));
        json_object_object_add(e, "index", json_object_new_int((int)i));
        json_object_object_add(e, "embedding",
                               kind == PB_MOCK_BODY_OK ? dialect_vector(s, dims)
                                                       : json_object_new_array());
        json_object_array_add(data, e);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", data);
    json_object_object_add(o, "model", json_object_new_string(r->model));
    if (kind != PB_MOCK_BODY_MISSING) {
        json_object *u = json_object_new_object();
        json_object_object_add(u, "prompt_tokens", json_object_new_int64(words));
        json_object_object_add(u, "total_tokens", json_object_new_int64(words));
        json_object_object_add(o, "usage", u);
    }
    char *body = dialect_take_json(o, len);
    if (*len < pad_to) {
        /* Vectors have no free text to lengthen: pad with JSON whitespace before the '}'. */
        body = pb_xrealloc(body, pad_to + 1);
        memset(body + *len - 1, ' ', pad_to - *len);
        body[pad_to - 1] = '}';
        body[pad_to] = '\0';
        *len = pad_to;
    }
    return body;
}

/* What a valid chat request is answered with, streamed or not: the text, or the tool calls. */
typedef struct dialect_answer {
    pb_buf text;        /* the answer when calls is NULL (NUL-terminated) */
    json_object *calls; /* [{name, arguments: object}] (owned ref), or NULL for a text answer */
    long prompt;        /* prompt words (usage) */
} dialect_answer;

/* Fills a with the answer to r (a chat request): kind EMPTY is "", text replaces the echo;
 * otherwise tool calls when the behaviour asks (unless the app is handing results back), a
 * forced Anthropic tool or a response_format gets {"answer": ...}, and the rest an echo. */
static void
dialect_answer_make(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                    dialect_answer *a)
{
    json_object *last_user;
    a->prompt = dialect_prompt(r, &last_user);
    a->calls = NULL;
    pb_buf_init(&a->text, SIZE_MAX);
    pb_buf_append(&a->text, "", 0);
    if (kind == PB_MOCK_BODY_EMPTY)
        return;
    if (r->refusal != NULL && r->api == PB_MOCK_API_OPENAI) {
        pb_buf_append(&a->text, r->refusal, strlen(r->refusal));
        return;
    }
    if (text != NULL) {
        pb_buf_append(&a->text, text, strlen(text));
        return;
    }
    json_object *result = dialect_tool_result(r);
    if (r->tool_calls != NULL && result == NULL) {
        a->calls = json_object_get(r->tool_calls);
        return;
    }
    pb_buf echo;
    pb_buf_init(&echo, SIZE_MAX);
    pb_buf_append(&echo, "", 0);
    if (result != NULL) {
        pb_buf_append(&echo, "tool said: ", 11);
        if (json_object_is_type(result, json_type_string) ||
            json_object_is_type(result, json_type_array))
            dialect_content_text(result, &echo);
    } else {
        pb_buf_append(&echo, "echo: ", 6);
        if (last_user != NULL)
            dialect_content_text(last_user, &echo);
    }
    /* Structured output: {"answer": <the text>}, as content (OpenAI response_format) or as the
     * input of the forced tool (Anthropic). */
    json_object *rf, *answer = json_object_new_object();
    json_object_object_add(answer, "answer", json_object_new_string_len(echo.data, (int)echo.len));
    const char *forced = dialect_forced_tool(r);
    if (forced != NULL) {
        json_object *c = json_object_new_object();
        a->calls = json_object_new_array();
        json_object_object_add(c, "name", json_object_new_string(forced));
        json_object_object_add(c, "arguments", json_object_get(answer));
        json_object_array_add(a->calls, c);
    } else if (r->api == PB_MOCK_API_OPENAI &&
               json_object_object_get_ex(r->body, "response_format", &rf) &&
               strcmp(dialect_str(rf, "type"), "text") != 0) {
        size_t n;
        const char *s = json_object_to_json_string_length(answer, DIALECT_JSON_FLAGS, &n);
        pb_buf_append(&a->text, s, n);
    } else {
        pb_buf_append(&a->text, echo.data, echo.len);
    }
    json_object_put(answer);
    pb_buf_free(&echo);
}

static void
dialect_answer_free(dialect_answer *a)
{
    pb_buf_free(&a->text);
    json_object_put(a->calls);
}

char *
pb_mock_dialect_reply(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                      unsigned long id, size_t pad_to, size_t *len)
{
    if (r->api == PB_MOCK_API_EMBEDDINGS)
        return dialect_embeddings_reply(r, kind, pad_to, len);
    if (r->api == PB_MOCK_API_GEMINI)
        return pb_mock_gemini_reply(r, kind, text, id, pad_to, len);
    if (r->api == PB_MOCK_API_BEDROCK)
        return pb_mock_bedrock_reply(r, kind, text, id, pad_to, len);
    if (kind == PB_MOCK_BODY_MISSING) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string("x"));
        if (r->api == PB_MOCK_API_ANTHROPIC) {
            json_object_object_add(o, "type", json_object_new_string("message"));
            json_object_object_add(o, "role", json_object_new_string("assistant"));
            json_object_object_add(o, "content", json_object_new_array());
        } else {
            json_object_object_add(o, "object", json_object_new_string("chat.completion"));
            json_object_object_add(o, "choices", json_object_new_array());
        }
        return dialect_take_json(o, len);
    }
    dialect_answer a;
    dialect_answer_make(r, kind, text, &a);
    char *body = a.calls != NULL ? dialect_tool_json(r, a.calls, a.prompt, id, len)
                                 : dialect_chat_reply(r, a.text.data, a.prompt, id, pad_to, len);
    dialect_answer_free(&a);
    return body;
}

bool
pb_mock_dialect_wants_stream(const pb_mock_request *r)
{
    json_object *v;
    if (r->api == PB_MOCK_API_GEMINI || r->api == PB_MOCK_API_BEDROCK)
        return r->stream;
    return r->api != PB_MOCK_API_EMBEDDINGS && json_object_object_get_ex(r->body, "stream", &v) &&
           json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

void
pb_mock_stream_free(pb_mock_stream *s)
{
    if (s == NULL)
        return;
    pb_buf_free(&s->data);
    free(s->events);
    free(s);
}

/* Appends one event: "event: <type>\n" when type is set (Anthropic), then "data: <o>\n\n"
 * ("data: [DONE]" when o is NULL); takes o. */
static void
dialect_event(pb_mock_stream *s, pb_mock_event_kind kind, const char *type, json_object *o)
{
    pb_mock_event *e = pb_mock_stream_add(s, kind);
    if (type != NULL) {
        pb_buf_append(&s->data, "event: ", 7);
        pb_buf_append(&s->data, type, strlen(type));
        pb_buf_append(&s->data, "\n", 1);
    }
    size_t n = 6;
    const char *js = "[DONE]"; /* o NULL: OpenAI's terminator */
    if (o != NULL)
        js = json_object_to_json_string_length(o, DIALECT_JSON_FLAGS, &n);
    pb_buf_append(&s->data, "data: ", 6);
    pb_buf_append(&s->data, js, n);
    pb_buf_append(&s->data, "\n\n", 2);
    e->len = s->data.len - e->off;
    json_object_put(o);
}

static bool
dialect_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The end of the text piece of s (n bytes) that starts at i: `words` words, each with the
 * whitespace after it (and before it, for the first); past i, so every loop ends. */
static size_t
dialect_word_end(const char *s, size_t n, size_t i, long words)
{
    while (i < n && dialect_is_space(s[i]))
        i++;
    for (long w = 0; w < words && i < n; w++) {
        while (i < n && !dialect_is_space(s[i]))
            i++;
        while (i < n && dialect_is_space(s[i]))
            i++;
    }
    return i;
}

/* How many words go in one text event of an answer of `words` words: one, unless that
 * would pass DIALECT_STREAM_PIECES_MAX events. */
static long
dialect_words_per_piece(long words)
{
    return words > DIALECT_STREAM_PIECES_MAX
               ? (words + DIALECT_STREAM_PIECES_MAX - 1) / DIALECT_STREAM_PIECES_MAX
               : 1;
}

/* The end of the next tool-input fragment of s (n bytes) from i: DIALECT_ARGS_PIECE bytes
 * (more when that would pass DIALECT_STREAM_PIECES_MAX fragments), never splitting a UTF-8
 * sequence. */
static size_t
dialect_piece_end(const char *s, size_t n, size_t i)
{
    size_t piece = (n + DIALECT_STREAM_PIECES_MAX - 1) / DIALECT_STREAM_PIECES_MAX;
    if (piece < DIALECT_ARGS_PIECE)
        piece = DIALECT_ARGS_PIECE;
    size_t j = n - i > piece ? i + piece : n;
    while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
        j++;
    return j;
}

/* One OpenAI chat.completion.chunk around delta (taken); finish NULL = null. */
static void
dialect_chunk(pb_mock_stream *s, pb_mock_event_kind kind, const pb_mock_request *r, const char *id,
              int64_t created, json_object *delta, const char *finish, bool usage_null)
{
    json_object *o = json_object_new_object(), *choice = json_object_new_object();
    json_object *choices = json_object_new_array();
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(choice, "delta", delta);
    json_object_object_add(choice, "finish_reason",
                           finish != NULL ? json_object_new_string(finish) : NULL);
    json_object_array_add(choices, choice);
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "object", json_object_new_string("chat.completion.chunk"));
    json_object_object_add(o, "created", json_object_new_int64(created));
    json_object_object_add(o, "model", json_object_new_string(r->model));
    json_object_object_add(o, "choices", choices);
    if (usage_null)
        json_object_object_add(o, "usage", NULL);
    dialect_event(s, kind, NULL, o);
}

/* One OpenAI tool_calls piece of call k: with its id, type and name when callid is set,
 * then n bytes of its arguments text. */
static void
dialect_tool_piece(pb_mock_stream *s, const pb_mock_request *r, const char *id, int64_t created,
                   bool usage, size_t k, const char *callid, json_object *name, const char *args,
                   size_t n)
{
    json_object *tc = json_object_new_object(), *fn = json_object_new_object();
    json_object *list = json_object_new_array(), *d = json_object_new_object();
    json_object_object_add(tc, "index", json_object_new_int((int)k));
    if (callid != NULL) {
        json_object_object_add(tc, "id", json_object_new_string(callid));
        json_object_object_add(tc, "type", json_object_new_string("function"));
        json_object_object_add(fn, "name", json_object_get(name));
    }
    json_object_object_add(fn, "arguments", json_object_new_string_len(args, (int)n));
    json_object_object_add(tc, "function", fn);
    json_object_array_add(list, tc);
    json_object_object_add(d, "tool_calls", list);
    dialect_chunk(s, PB_MOCK_EVENT_CONTENT, r, id, created, d, NULL, usage);
}

/* OpenAI: role chunk, content (or a refusal's) or tool_calls pieces, finish chunk, usage
 * chunk when stream_options.include_usage, [DONE]. */
static void
dialect_stream_openai(pb_mock_stream *s, const pb_mock_request *r, const dialect_answer *a,
                      unsigned long id)
{
    char idbuf[48], callid[64];
    json_object *so, *iu;
    bool usage = json_object_object_get_ex(r->body, "stream_options", &so) &&
                 json_object_object_get_ex(so, "include_usage", &iu) && json_object_get_boolean(iu);
    int64_t created = (int64_t)time(NULL);
    long words = 1;
    snprintf(idbuf, sizeof(idbuf), "chatcmpl-mock-%lu", id);
    json_object *d = json_object_new_object();
    json_object_object_add(d, "role", json_object_new_string("assistant"));
    bool refuses = r->refusal != NULL && a->calls == NULL;
    json_object_object_add(d, "content",
                           a->calls != NULL || refuses ? NULL : json_object_new_string(""));
    dialect_chunk(s, PB_MOCK_EVENT_HEAD, r, idbuf, created, d, NULL, usage);
    if (a->calls == NULL) {
        words = dialect_words_n(a->text.data, a->text.len);
        long per = dialect_words_per_piece(words);
        for (size_t i = 0, j; i < a->text.len; i = j) {
            j = dialect_word_end(a->text.data, a->text.len, i, per);
            d = json_object_new_object();
            json_object_object_add(d, refuses ? "refusal" : "content",
                                   json_object_new_string_len(a->text.data + i, (int)(j - i)));
            dialect_chunk(s, PB_MOCK_EVENT_CONTENT, r, idbuf, created, d, NULL, usage);
        }
    }
    for (size_t k = 0; a->calls != NULL && k < json_object_array_length(a->calls); k++) {
        json_object *c = json_object_array_get_idx(a->calls, k), *name, *args;
        json_object_object_get_ex(c, "name", &name);
        json_object_object_get_ex(c, "arguments", &args);
        const char *text = dialect_args_text(r, args);
        size_t n = strlen(text);
        snprintf(callid, sizeof(callid), "call_mock_%lu_%zu", id, k);
        /* The first piece names the call with empty arguments; fragments of them follow. */
        dialect_tool_piece(s, r, idbuf, created, usage, k, callid, name, "", 0);
        for (size_t i = 0, j; i < n; i = j) {
            j = dialect_piece_end(text, n, i);
            dialect_tool_piece(s, r, idbuf, created, usage, k, NULL, NULL, text + i, j - i);
        }
    }
    dialect_chunk(s, PB_MOCK_EVENT_FRAME, r, idbuf, created, json_object_new_object(),
                  dialect_stop_reason(r, a->calls != NULL ? "tool_calls" : "stop"), usage);
    if (usage) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(idbuf));
        json_object_object_add(o, "object", json_object_new_string("chat.completion.chunk"));
        json_object_object_add(o, "created", json_object_new_int64(created));
        json_object_object_add(o, "model", json_object_new_string(r->model));
        json_object_object_add(o, "choices", json_object_new_array());
        json_object_object_add(
            o, "usage", dialect_usage("prompt_tokens", a->prompt, "completion_tokens", words));
        dialect_event(s, PB_MOCK_EVENT_FRAME, NULL, o);
    }
    dialect_event(s, PB_MOCK_EVENT_END, NULL, NULL);
}

/* One Anthropic event of type: {"type": type, ...fields of o}; takes o. */
static void
dialect_anthropic_event(pb_mock_stream *s, pb_mock_event_kind kind, const char *type,
                        json_object *o)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "type", json_object_new_string(type));
    json_object_object_foreach(o, key, v)
    {
        json_object_object_add(e, key, json_object_get(v));
    }
    json_object_put(o);
    dialect_event(s, kind, type, e);
}

/* {"index": i} plus, when key is set, key: v (taken). */
static json_object *
dialect_indexed(size_t i, const char *key, json_object *v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "index", json_object_new_int((int)i));
    if (key != NULL)
        json_object_object_add(o, key, v);
    return o;
}

/* {"type": type, key: the n bytes at p}. */
static json_object *
dialect_delta(const char *type, const char *key, const char *p, size_t n)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "type", json_object_new_string(type));
    json_object_object_add(d, key, json_object_new_string_len(p, (int)n));
    return d;
}

/* Anthropic: message_start, then per block content_block_start (a ping after the first),
 * text_delta or input_json_delta pieces, content_block_stop; message_delta, message_stop. */
static void
dialect_stream_anthropic(pb_mock_stream *s, const pb_mock_request *r, const dialect_answer *a,
                         unsigned long id)
{
    char idbuf[64];
    snprintf(idbuf, sizeof(idbuf), "msg_mock_%lu", id);
    json_object *m = json_object_new_object();
    json_object_object_add(m, "id", json_object_new_string(idbuf));
    json_object_object_add(m, "type", json_object_new_string("message"));
    json_object_object_add(m, "role", json_object_new_string("assistant"));
    json_object_object_add(m, "model", json_object_new_string(r->model));
    json_object_object_add(m, "content", json_object_new_array());
    json_object_object_add(m, "stop_reason", NULL);
    json_object_object_add(m, "stop_sequence", NULL);
    json_object_object_add(m, "usage",
                           dialect_usage("input_tokens", a->prompt, "output_tokens", 1));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "message", m);
    dialect_anthropic_event(s, PB_MOCK_EVENT_HEAD, "message_start", o);
    size_t blocks = a->calls != NULL ? json_object_array_length(a->calls) : 1;
    for (size_t k = 0; k < blocks; k++) {
        pb_mock_event_kind frame = k == 0 ? PB_MOCK_EVENT_HEAD : PB_MOCK_EVENT_FRAME;
        json_object *blk = json_object_new_object(), *c = NULL, *name, *args;
        const char *text = a->text.data;
        size_t n = a->text.len;
        long per = dialect_words_per_piece(dialect_words_n(text, n));
        if (a->calls != NULL) {
            c = json_object_array_get_idx(a->calls, k);
            json_object_object_get_ex(c, "name", &name);
            json_object_object_get_ex(c, "arguments", &args);
            snprintf(idbuf, sizeof(idbuf), "toolu_mock_%lu_%zu", id, k);
            json_object_object_add(blk, "type", json_object_new_string("tool_use"));
            json_object_object_add(blk, "id", json_object_new_string(idbuf));
            json_object_object_add(blk, "name", json_object_get(name));
            json_object_object_add(blk, "input", json_object_new_object());
            text = dialect_args_text(r, args);
            n = strlen(text);
        } else {
            json_object_object_add(blk, "type", json_object_new_string("text"));
            json_object_object_add(blk, "text", json_object_new_string(""));
        }
        dialect_anthropic_event(s, frame, "content_block_start",
                                dialect_indexed(k, "content_block", blk));
        if (k == 0)
            dialect_anthropic_event(s, PB_MOCK_EVENT_HEAD, "ping", json_object_new_object());
        for (size_t i = 0, j; i < n; i = j) {
            j = c != NULL ? dialect_piece_end(text, n, i) : dialect_word_end(text, n, i, per);
            json_object *d =
                c != NULL ? dialect_delta("input_json_delta", "partial_json", text + i, j - i)
                          : dialect_delta("text_delta", "text", text + i, j - i);
            dialect_anthropic_event(s, PB_MOCK_EVENT_CONTENT, "content_block_delta",
                                    dialect_indexed(k, "delta", d));
        }
        dialect_anthropic_event(s, PB_MOCK_EVENT_FRAME, "content_block_stop",
                                dialect_indexed(k, NULL, NULL));
    }
    json_object *d = json_object_new_object(), *u = json_object_new_object();
    json_object_object_add(
        d, "stop_reason",
        json_object_new_string(dialect_stop_reason(r, a->calls != NULL ? "tool_use" : "end_turn")));
    json_object_object_add(d, "stop_sequence", NULL);
    json_object_object_add(
        u, "output_tokens",
        json_object_new_int64(a->calls != NULL ? 1 : dialect_words_n(a->text.data, a->text.len)));
    o = json_object_new_object();
    json_object_object_add(o, "delta", d);
    json_object_object_add(o, "usage", u);
    dialect_anthropic_event(s, PB_MOCK_EVENT_FRAME, "message_delta", o);
    dialect_anthropic_event(s, PB_MOCK_EVENT_END, "message_stop", json_object_new_object());
}

pb_mock_stream *
pb_mock_dialect_stream(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                       unsigned long id)
{
    pb_mock_stream *s = pb_xcalloc(1, sizeof(*s));
    pb_buf_init(&s->data, SIZE_MAX);
    if (r->api == PB_MOCK_API_GEMINI) {
        pb_mock_gemini_stream(s, r, kind, text, id);
        return s;
    }
    if (r->api == PB_MOCK_API_BEDROCK) {
        pb_mock_bedrock_stream(s, r, kind, text, id);
        return s;
    }
    dialect_answer a;
    dialect_answer_make(r, kind, text, &a);
    if (r->api == PB_MOCK_API_ANTHROPIC)
        dialect_stream_anthropic(s, r, &a, id);
    else
        dialect_stream_openai(s, r, &a, id);
    dialect_answer_free(&a);
    return s;
}

char *
pb_mock_dialect_stream_error(pb_mock_api api, const char *type, const char *message, size_t *len)
{
    if (api == PB_MOCK_API_GEMINI)
        return pb_mock_gemini_error(500, type, message, true, len);
    if (api == PB_MOCK_API_BEDROCK)
        return pb_mock_bedrock_stream_error(type, message, len);
    pb_mock_stream s = {0};
    pb_buf_init(&s.data, SIZE_MAX);
    json_object *e = json_object_new_object(), *o = json_object_new_object();
    if (type == NULL)
        type = api == PB_MOCK_API_ANTHROPIC ? "overloaded_error" : "server_error";
    if (message == NULL)
        message = "planb-mock: injected stream error";
    if (api == PB_MOCK_API_ANTHROPIC) {
        json_object_object_add(e, "type", json_object_new_string(type));
        json_object_object_add(e, "message", json_object_new_string(message));
        json_object_object_add(o, "type", json_object_new_string("error"));
    } else {
        json_object_object_add(e, "message", json_object_new_string(message));
        json_object_object_add(e, "type", json_object_new_string(type));
    }
    json_object_object_add(o, "error", e);
    dialect_event(&s, PB_MOCK_EVENT_FRAME, api == PB_MOCK_API_ANTHROPIC ? "error" : NULL, o);
    free(s.events);
    *len = s.data.len;
    return s.data.data;
}

const char *
pb_mock_dialect_stream_malformed(pb_mock_api api, size_t *len)
{
    if (api == PB_MOCK_API_BEDROCK)
        return pb_mock_bedrock_stream_malformed(len);
    const char *bad = api == PB_MOCK_API_ANTHROPIC
                          ? "event: content_block_delta\ndata: {not json\n\n"
                          : "data: {not json\n\n";
    *len = strlen(bad);
    return bad;
}

const char *
pb_mock_dialect_stream_type(pb_mock_api api)
{
    return api == PB_MOCK_API_BEDROCK ? "application/vnd.amazon.eventstream" : "text/event-stream";
}

const char *
pb_mock_dialect_stream_ping(pb_mock_api api)
{
    return api == PB_MOCK_API_ANTHROPIC ? "event: ping\ndata: {\"type\":\"ping\"}\n\n" : NULL;
}

/* The error type a provider puts in its body for status. */
static const char *
dialect_error_type(pb_mock_api api, int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    default:
        break;
    }
    if (status >= 500)
        return api != PB_MOCK_API_ANTHROPIC ? "server_error"
               : status == 529              ? "overloaded_error"
                                            : "api_error";
    return "invalid_request_error";
}

/* Azure's content-filter refusal: error.param, error.status and innererror naming the
 * category that was filtered (violence here), as Azure OpenAI answers a filtered prompt. */
static void
dialect_azure_filter(json_object *e, int status)
{
    static const char *const cats[] = {"hate", "self_harm", "sexual", "violence", NULL};
    json_object *res = json_object_new_object();
    for (const char *const *c = cats; *c; c++) {
        bool hit = strcmp(*c, "violence") == 0;
        json_object *one = json_object_new_object();
        json_object_object_add(one, "filtered", json_object_new_boolean(hit));
        json_object_object_add(one, "severity", json_object_new_string(hit ? "medium" : "safe"));
        json_object_object_add(res, *c, one);
    }
    json_object *inner = json_object_new_object();
    json_object_object_add(inner, "code", json_object_new_string("ResponsibleAIPolicyViolation"));
    json_object_object_add(inner, "content_filter_result", res);
    json_object_object_add(e, "param", json_object_new_string("prompt"));
    json_object_object_add(e, "status", json_object_new_int(status));
    json_object_object_add(e, "innererror", inner);
}

char *
pb_mock_dialect_error(pb_mock_api api, int status, const char *type, const char *message,
                      const char *code, size_t *len)
{
    char dflt[96];
    if (api == PB_MOCK_API_GEMINI)
        return pb_mock_gemini_error(status, type, message, false, len);
    if (api == PB_MOCK_API_BEDROCK)
        return pb_mock_bedrock_error(status, type, message, len);
    if (type == NULL)
        type = dialect_error_type(api, status);
    if (message == NULL && code != NULL && strcmp(code, "content_filter") == 0)
        message = "The response was filtered due to the prompt triggering Azure OpenAI's content "
                  "management policy.";
    if (message == NULL) {
        snprintf(dflt, sizeof(dflt), "planb-mock: injected HTTP %d (%s)", status, type);
        message = dflt;
    }
    json_object *e = json_object_new_object();
    json_object *o = json_object_new_object();
    if (api == PB_MOCK_API_ANTHROPIC) {
        json_object_object_add(e, "type", json_object_new_string(type));
        json_object_object_add(e, "message", json_object_new_string(message));
        json_object_object_add(o, "type", json_object_new_string("error"));
    } else {
        json_object_object_add(e, "message", json_object_new_string(message));
        json_object_object_add(e, "type", json_object_new_string(type));
        json_object_object_add(e, "code", code != NULL ? json_object_new_string(code) : NULL);
        if (code != NULL && strcmp(code, "content_filter") == 0)
            dialect_azure_filter(e, status);
    }
    json_object_object_add(o, "error", e);
    return dialect_take_json(o, len);
}

long
pb_mock_dialect_words(const char *s, size_t n)
{
    return dialect_words_n(s, n);
}

long
pb_mock_dialect_words_per_piece(long words)
{
    return dialect_words_per_piece(words);
}

size_t
pb_mock_dialect_word_end(const char *s, size_t n, size_t i, long per)
{
    return dialect_word_end(s, n, i, per);
}

char *
pb_mock_dialect_take_json(json_object *o, size_t *len)
{
    return dialect_take_json(o, len);
}

json_object *
pb_mock_get(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

const char *
pb_mock_str(json_object *o, const char *key)
{
    return dialect_str(o, key);
}

bool
pb_mock_only_keys(json_object *o, const char *const *known, const char **unknown)
{
    json_object_object_foreach(o, key, v)
    {
        (void)v;
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(key, *k) == 0;
        if (!ok) {
            *unknown = key;
            return false;
        }
    }
    return true;
}

pb_mock_event *
pb_mock_stream_add(pb_mock_stream *s, pb_mock_event_kind kind)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->events = pb_xrealloc(s->events, s->cap * sizeof(*s->events));
    }
    pb_mock_event *e = &s->events[s->n++];
    e->kind = kind;
    e->off = s->data.len;
    e->len = 0;
    return e;
}

char *
pb_mock_pad_json(char *body, size_t *len, size_t pad_to)
{
    if (*len >= pad_to)
        return body;
    body = pb_xrealloc(body, pad_to + 1);
    memset(body + *len - 1, ' ', pad_to - *len);
    body[pad_to - 1] = '}';
    body[pad_to] = '\0';
    *len = pad_to;
    return body;
}

long
pb_mock_texts(json_object *blocks, pb_buf *b)
{
    long words = 0;
    bool first = true;
    size_t n = json_object_is_type(blocks, json_type_array) ? json_object_array_length(blocks) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *t = pb_mock_get(json_object_array_get_idx(blocks, i), "text");
        if (!json_object_is_type(t, json_type_string))
            continue;
        size_t len = (size_t)json_object_get_string_len(t);
        words += dialect_words_n(json_object_get_string(t), len);
        if (b != NULL) {
            if (!first)
                pb_buf_append(b, "\n", 1);
            pb_buf_append(b, json_object_get_string(t), len);
        }
        first = false;
    }
    return words;
}

bool
pb_mock_number_in(json_object *v, double lo, double hi)
{
    if (v == NULL)
        return true;
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return false;
    double d = json_object_get_double(v);
    return d >= lo && d <= hi;
}
