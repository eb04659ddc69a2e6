/* dialect.c -- what OpenAI and Anthropic accept and answer, as far as planb cares.
 *
 * Validation is strict on purpose: the mock exists to catch planb sending a
 * wrong request (missing max_tokens for Anthropic, roles out of order, no
 * key), so every rule the real APIs enforce on the fields planb sends is here,
 * with a message that names the field. Replies carry the fields planb parses
 * (answer text, usage) in the providers' shapes; usage counts whitespace-
 * separated words, which is enough for tests to check arithmetic.
 * Embedding vectors are a pure function of the input text (FNV-1a seed,
 * splitmix64 stream, L2-normalised) so caches keyed on them are testable. */
#include "dialect.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "planb/buf.h"
#include "planb/hash.h"

#define DIALECT_JSON_FLAGS   (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define DIALECT_DIMS_DEFAULT 64
#define DIALECT_DIMS_MAX     4096 /* OpenAI's largest embedding model has 3072 */
/* Room for the usage counters to gain digits when padding grows the answer:
 * two counters of at most 9 digits each (256 MiB of words). */
#define DIALECT_PAD_SLACK 24

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

/* OpenAI: any allowed role in any order; content is a string. */
static int
dialect_openai_message(json_object *m, size_t i, const char *rs, pb_error *err)
{
    json_object *content;
    (void)rs;
    if (!json_object_object_get_ex(m, "content", &content) ||
        !json_object_is_type(content, json_type_string)) {
        pb_error_set(err, 400, "messages[%zu].content: must be a string", i);
        return 400;
    }
    return 0;
}

/* Anthropic: user first, then alternating; content is a string or text blocks. */
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
    if (!json_object_object_get_ex(m, "content", &content) ||
        !dialect_text_blocks_ok(content, true)) {
        pb_error_set(err, 400,
                     "messages[%zu].content: must be a string or a non-empty array of "
                     "{\"type\":\"text\",\"text\":string}",
                     i);
        return 400;
    }
    return 0;
}

static int
dialect_validate_openai(const pb_mock_request *r, pb_error *err)
{
    static const char *const roles[] = {"system", "user", "assistant", "tool", NULL};
    if (!dialect_bearer_ok(r->authorization))
        return dialect_fail(err, 401, "Authorization: a header 'Bearer <api key>' is required");
    int bad = dialect_validate_messages(r->body, roles, "system, user, assistant or tool",
                                        dialect_openai_message, err);
    if (bad != 0)
        return bad;
    if (!dialect_positive_int_or_absent(r->body, "max_tokens"))
        return dialect_fail(err, 400, "max_tokens: must be a positive integer");
    if (!dialect_temperature_ok(r->body, 2.0))
        return dialect_fail(err, 400, "temperature: must be a number between 0 and 2");
    return 0;
}

static int
dialect_validate_anthropic(const pb_mock_request *r, pb_error *err)
{
    static const char *const roles[] = {"user", "assistant", NULL};
    if (r->api_key == NULL || r->api_key[0] == '\0')
        return dialect_fail(err, 401, "x-api-key: header is required");
    if (r->version == NULL || r->version[0] == '\0')
        return dialect_fail(err, 400, "anthropic-version: header is required");
    json_object *v;
    if (!json_object_object_get_ex(r->body, "max_tokens", &v) ||
        !dialect_positive_int_or_absent(r->body, "max_tokens"))
        return dialect_fail(err, 400, "max_tokens: a positive integer is required");
    int bad = dialect_validate_messages(r->body, roles, "user or assistant",
                                        dialect_anthropic_message, err);
    if (bad != 0)
        return bad;
    if (json_object_object_get_ex(r->body, "system", &v) && !dialect_text_blocks_ok(v, true))
        return dialect_fail(err, 400, "system: must be a string or an array of text blocks");
    if (!dialect_temperature_ok(r->body, 1.0))
        return dialect_fail(err, 400, "temperature: must be a number between 0 and 1");
    return 0;
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

static char *
dialect_chat_json(const pb_mock_request *r, const char *text, size_t text_len, long prompt,
                  unsigned long id, size_t *len)
{
    long words = dialect_words_n(text, text_len);
    json_object *o = json_object_new_object();
    json_object *content = json_object_new_string_len(text, (int)text_len);
    char idbuf[48];
    if (r->api == PB_MOCK_API_ANTHROPIC) {
        snprintf(idbuf, sizeof(idbuf), "msg_mock_%lu", id);
        json_object *blk = json_object_new_object();
        json_object_object_add(blk, "type", json_object_new_string("text"));
        json_object_object_add(blk, "text", content);
        json_object *arr = json_object_new_array();
        json_object_array_add(arr, blk);
        json_object_object_add(o, "id", json_object_new_string(idbuf));
        json_object_object_add(o, "type", json_object_new_string("message"));
        json_object_object_add(o, "role", json_object_new_string("assistant"));
        json_object_object_add(o, "model", json_object_new_string(r->model));
        json_object_object_add(o, "content", arr);
        json_object_object_add(o, "stop_reason", json_object_new_string("end_turn"));
        json_object_object_add(o, "stop_sequence", NULL);
        json_object_object_add(o, "usage",
                               dialect_usage("input_tokens", prompt, "output_tokens", words));
        return dialect_take_json(o, len);
    }
    snprintf(idbuf, sizeof(idbuf), "chatcmpl-mock-%lu", id);
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string("assistant"));
    json_object_object_add(msg, "content", content);
    json_object *choice = json_object_new_object();
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(choice, "message", msg);
    json_object_object_add(choice, "finish_reason", json_object_new_string("stop"));
    json_object *choices = json_object_new_array();
    json_object_array_add(choices, choice);
    json_object_object_add(o, "id", json_object_new_string(idbuf));
    json_object_object_add(o, "object", json_object_new_string("chat.completion"));
    json_object_object_add(o, "created", json_object_new_int64((int64_t)time(NULL)));
    json_object_object_add(o, "model", json_object_new_string(r->model));
    json_object_object_add(o, "choices", choices);
    json_object_object_add(o, "usage",
                           dialect_usage("prompt_tokens", prompt, "completion_tokens", words));
    return dialect_take_json(o, len);
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

char *
pb_mock_dialect_reply(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                      unsigned long id, size_t pad_to, size_t *len)
{
    if (r->api == PB_MOCK_API_EMBEDDINGS)
        return dialect_embeddings_reply(r, kind, pad_to, len);
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
    json_object *last_user;
    long prompt = dialect_prompt(r, &last_user);
    if (kind == PB_MOCK_BODY_EMPTY)
        return dialect_chat_reply(r, "", prompt, id, pad_to, len);
    if (text != NULL)
        return dialect_chat_reply(r, text, prompt, id, pad_to, len);
    pb_buf echo;
    pb_buf_init(&echo, SIZE_MAX);
    pb_buf_append(&echo, "echo: ", 6);
    if (last_user != NULL)
        dialect_content_text(last_user, &echo);
    char *body = dialect_chat_reply(r, echo.data, prompt, id, pad_to, len);
    pb_buf_free(&echo);
    return body;
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

char *
pb_mock_dialect_error(pb_mock_api api, int status, const char *type, const char *message,
                      const char *code, size_t *len)
{
    char dflt[96];
    if (type == NULL)
        type = dialect_error_type(api, status);
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
    }
    json_object_object_add(o, "error", e);
    return dialect_take_json(o, len);
}
