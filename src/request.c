/* request.c -- the canonical request: role and capability tables, the parsers of a job's
 * "messages" and "params", the canonical form the caches hash, and the destructor.
 *
 * A job's messages and params are the body an app would send to OpenAI's Chat Completions
 * API, minus "model". They come from anyone who can LPUSH, so every shape is checked here the
 * way the real API checks it (so a job OpenAI would refuse is refused before any call, with a
 * BAD_FIELD naming the field) and every size is bounded: parts per message, tools, tool calls,
 * schema bytes, URL length. What passes is kept as validated JSON nodes (params by their
 * OpenAI names, content parts, tool calls), so the providers translate from one model and the
 * OpenAI dialect sends them on as they came. Each param has one row in request_params: its
 * kind, its bounds and what it requires of a model (capabilities); the per-provider policy
 * (sent, translated, dropped and reported, or refused) lives in each adapter. */
#include "planb/request.h"

#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/utf8.h"

#define REQUEST_MAX_PARTS        64    /* content parts per message */
#define REQUEST_MAX_TOOLS        128   /* OpenAI's limit on tools */
#define REQUEST_MAX_TOOL_CALLS   128   /* tool calls per assistant message */
#define REQUEST_SCHEMA_MAX_BYTES 32768 /* one tool's parameters or one json_schema, serialized */
#define REQUEST_URL_MAX          8192  /* an https image URL (data: URLs: the job's size bound) */
#define REQUEST_NAME_MAX         64 /* tool/function/schema names: OpenAI's ^[a-zA-Z0-9_-]{1,64}$ */
#define REQUEST_ID_MAX           128  /* tool call ids (OpenAI's are ~30, Anthropic's ~30) */
#define REQUEST_TEXT_MAX         256  /* user, safety_identifier, prompt_cache_key */
#define REQUEST_DESC_MAX         8192 /* a tool's description */
#define REQUEST_STOP_MAX         4    /* OpenAI: up to 4 stop sequences */
#define REQUEST_STOP_BYTES       256  /* one stop sequence */
#define REQUEST_META_KEYS        16   /* OpenAI metadata: 16 pairs, keys 64, values 512 */
#define REQUEST_META_KEY_MAX     64
#define REQUEST_META_VALUE_MAX   512
#define REQUEST_LOGIT_BIAS_MAX   300     /* token ids in logit_bias */
#define REQUEST_MAX_TOKENS_MAX   1000000 /* above any model's output window */
#define REQUEST_QUOTE_MAX        48      /* bytes of a producer's key echoed in an error */
#define REQUEST_ARGS_DEPTH                                                                         \
    24 /* nesting of tool-call arguments (json-c, which                                            \
          parses them for Anthropic, takes 32) */
#define REQUEST_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const request_role_names[PB_ROLE_COUNT] = {"system", "user", "assistant",
                                                              "developer", "tool"};
static const char *const request_cap_names[] = {"tools", "vision", "json_schema", "json_object",
                                                "logprobs"};
static const char request_name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789_-";

/* ---------------------------------------------------------------- tables */

const char *
pb_request_role_name(pb_role role)
{
    return (unsigned)role < PB_ROLE_COUNT ? request_role_names[role] : "user";
}

int
pb_request_role_parse(const char *s)
{
    for (int i = 0; i < PB_ROLE_COUNT; i++)
        if (strcmp(s, request_role_names[i]) == 0)
            return i;
    return -1;
}

const char *
pb_request_cap_name(unsigned cap)
{
    for (size_t i = 0; i < sizeof(request_cap_names) / sizeof(*request_cap_names); i++)
        if (cap == 1u << i)
            return request_cap_names[i];
    return "?";
}

unsigned
pb_request_cap_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(request_cap_names) / sizeof(*request_cap_names); i++)
        if (strcmp(s, request_cap_names[i]) == 0)
            return 1u << i;
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static int request_bad(pb_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
request_bad(pb_error *err, const char *fmt, ...)
{
    char msg[PB_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pb_error_set(err, PB_REQUEST_BAD_FIELD, "BAD_FIELD %s", msg);
    return PB_ERR;
}

/* obj[key], or NULL when absent or JSON null. */
static json_object *
request_field(json_object *obj, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(obj, key, &v);
    return v;
}

/* v's string when v is a JSON string holding no NUL; its length in *len. */
static const char *
request_string(json_object *v, size_t *len)
{
    if (!json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    *len = (size_t)json_object_get_string_len(v);
    return strlen(s) == *len ? s : NULL;
}

/* A key quoted for an error: cut to REQUEST_QUOTE_MAX bytes on a UTF-8 boundary. */
static const char *
request_quote(const char *s, char out[REQUEST_QUOTE_MAX + 4])
{
    size_t n = strlen(s);
    if (n <= REQUEST_QUOTE_MAX)
        return s;
    n = REQUEST_QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    memcpy(out, s, n);
    memcpy(out + n, "...", 4);
    return out;
}

/* True when v is a string of 1..max characters of [A-Za-z0-9_-]. */
static bool
request_is_name(json_object *v, size_t max)
{
    size_t len;
    const char *s = request_string(v, &len);
    return s != NULL && len > 0 && len <= max && strspn(s, request_name_chars) == len;
}

/* Checks that obj (an object) has only keys from allowed (NULL-terminated); else BAD_FIELD
 * "<where>.<key> is not a known field". */
static int
request_only_keys(json_object *obj, const char *const *allowed, const char *where, pb_error *err)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(key, *a) == 0;
        if (!known) {
            char q[REQUEST_QUOTE_MAX + 4];
            return request_bad(err, "%s.%s is not a known field", where, request_quote(key, q));
        }
    }
    return PB_OK;
}

static size_t
request_json_bytes(json_object *v)
{
    size_t n = 0;
    json_object_to_json_string_length(v, REQUEST_JSON_FLAGS, &n);
    return n;
}

/* A JSON number (integer or not) in [min, max]. */
static bool
request_number(json_object *v, double min, double max, double *out)
{
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return false;
    double d = json_object_get_double(v);
    if (!isfinite(d) || d < min || d > max)
        return false;
    *out = d;
    return true;
}

/* A JSON integer in [min, max]. */
static bool
request_integer(json_object *v, int64_t min, int64_t max, int64_t *out)
{
    if (!json_object_is_type(v, json_type_int))
        return false;
    int64_t n = json_object_get_int64(v);
    if (n < min || n > max)
        return false;
    *out = n;
    return true;
}

/* Bytes of the job being parsed (pb_request_parse_params), an upper bound on any part of it. */
static size_t request_job_bytes;

/* A JSON Schema for an object: an object whose "type" is "object", at most
 * REQUEST_SCHEMA_MAX_BYTES serialized. */
static int
request_check_schema(json_object *schema, const char *where, pb_error *err)
{
    size_t len;
    const char *type = request_string(request_field(schema, "type"), &len);
    if (!json_object_is_type(schema, json_type_object) || type == NULL ||
        strcmp(type, "object") != 0)
        return request_bad(err, "%s must be a JSON Schema object with \"type\": \"object\"", where);
    /* A part serializes to no more bytes than the job it came in, so small jobs skip this. */
    size_t n = request_job_bytes > REQUEST_SCHEMA_MAX_BYTES ? request_json_bytes(schema) : 0;
    if (n > REQUEST_SCHEMA_MAX_BYTES) {
        pb_error_set(err, PB_REQUEST_TOO_LARGE, "TOO_LARGE %s is %zu bytes, limit %d", where, n,
                     REQUEST_SCHEMA_MAX_BYTES);
        return PB_ERR;
    }
    return PB_OK;
}

/* ---------------------------------------------------------------- messages */

static bool
request_is_base64(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    size_t pad = strspn(s + n, "=");
    return n > 0 && s[n + pad] == '\0' && pad <= 2;
}

/* An image URL: https (at most REQUEST_URL_MAX bytes) or data:image/<png|jpeg|gif|webp>;base64. */
static bool
request_image_url_ok(const char *url, size_t len)
{
    static const char *const types[] = {"data:image/png;base64,", "data:image/jpeg;base64,",
                                        "data:image/gif;base64,", "data:image/webp;base64,", NULL};
    if (strncmp(url, "https://", 8) == 0)
        return len > 8 && len <= REQUEST_URL_MAX && strpbrk(url, " \t\r\n") == NULL;
    for (const char *const *t = types; *t; t++)
        if (strncmp(url, *t, strlen(*t)) == 0)
            return request_is_base64(url + strlen(*t));
    return false;
}

/* One content part of messages[i] (role r). Text goes into text; an image sets PB_CAP_VISION. */
static int
request_check_part(pb_request *req, json_object *part, size_t i, size_t k, pb_role r, char **text,
                   size_t *text_len, pb_error *err)
{
    static const char *const text_keys[] = {"type", "text", NULL};
    static const char *const image_keys[] = {"type", "image_url", NULL};
    static const char *const url_keys[] = {"url", "detail", NULL};
    char where[64];
    snprintf(where, sizeof(where), "messages[%zu].content[%zu]", i, k);
    size_t len;
    const char *type = request_string(request_field(part, "type"), &len);
    if (!json_object_is_type(part, json_type_object) || type == NULL)
        return request_bad(err, "%s must be an object with a \"type\"", where);
    if (strcmp(type, "text") == 0) {
        const char *s = request_string(request_field(part, "text"), &len);
        if (s == NULL)
            return request_bad(err, "%s.text must be a string without NUL characters", where);
        if (request_only_keys(part, text_keys, where, err) != PB_OK)
            return PB_ERR;
        *text = pb_xrealloc(*text, *text_len + len + 2);
        if (*text_len > 0)
            (*text)[(*text_len)++] = '\n';
        memcpy(*text + *text_len, s, len);
        *text_len += len;
        (*text)[*text_len] = '\0';
        return PB_OK;
    }
    if (strcmp(type, "image_url") == 0) {
        if (r != PB_ROLE_USER)
            return request_bad(err, "%s: image_url parts are allowed in user messages only", where);
        json_object *img = request_field(part, "image_url");
        const char *url = request_string(request_field(img, "url"), &len);
        if (!json_object_is_type(img, json_type_object) || url == NULL ||
            !request_image_url_ok(url, len))
            return request_bad(err,
                               "%s.image_url.url must be an https URL (at most %d bytes) or a "
                               "data:image/(png|jpeg|gif|webp);base64 URL",
                               where, REQUEST_URL_MAX);
        json_object *detail = request_field(img, "detail");
        const char *d = request_string(detail, &len);
        if (detail != NULL && (d == NULL || (strcmp(d, "auto") != 0 && strcmp(d, "low") != 0 &&
                                             strcmp(d, "high") != 0)))
            return request_bad(err, "%s.image_url.detail must be one of auto, low, high", where);
        if (request_only_keys(part, image_keys, where, err) != PB_OK ||
            request_only_keys(img, url_keys, where, err) != PB_OK)
            return PB_ERR;
        req->needs |= PB_CAP_VISION;
        return PB_OK;
    }
    char q[REQUEST_QUOTE_MAX + 4];
    return request_bad(err, "%s.type \"%s\" is not supported (text%s)", where,
                       request_quote(type, q), r == PB_ROLE_USER ? ", image_url" : "");
}

/* messages[i].content: a string, an array of parts, or (assistant with tool calls) null. */
static int
request_parse_content(pb_request *req, pb_message *m, json_object *c, size_t i, pb_error *err)
{
    size_t len;
    if (c == NULL) {
        if (m->role == PB_ROLE_ASSISTANT && m->tool_calls != NULL) {
            m->content = pb_xstrdup("");
            return PB_OK;
        }
        return request_bad(err, "messages[%zu].content must be a string or an array of parts", i);
    }
    if (json_object_is_type(c, json_type_string)) {
        const char *s = request_string(c, &len);
        if (s == NULL)
            return request_bad(err, "messages[%zu].content must be a string without NUL characters",
                               i);
        m->content = pb_xstrndup(s, len);
        return PB_OK;
    }
    if (!json_object_is_type(c, json_type_array))
        return request_bad(err, "messages[%zu].content must be a string or an array of parts", i);
    size_t n = json_object_array_length(c);
    if (n == 0)
        return request_bad(err, "messages[%zu].content must not be an empty array", i);
    if (n > REQUEST_MAX_PARTS) {
        pb_error_set(err, PB_REQUEST_TOO_LARGE,
                     "TOO_LARGE messages[%zu].content has %zu parts, "
                     "limit %d",
                     i, n, REQUEST_MAX_PARTS);
        return PB_ERR;
    }
    size_t text_len = 0;
    m->content = pb_xstrdup("");
    for (size_t k = 0; k < n; k++)
        if (request_check_part(req, json_object_array_get_idx(c, k), i, k, m->role, &m->content,
                               &text_len, err) != PB_OK)
            return PB_ERR;
    m->parts = json_object_get(c);
    return PB_OK;
}

/* A strict RFC 8259 syntax check, allocation-free (tool-call arguments are checked on every
 * job and every reply that carries them; building a json-c tree for that would cost more than
 * the rest of the job). Each json_* step returns the position after the value, or NULL. */
typedef struct request_json {
    const char *end; /* one past the last byte */
    int depth;       /* nesting left before REQUEST_ARGS_DEPTH is exceeded */
} request_json;

static const char *request_json_value(request_json *j, const char *p);

static const char *
request_json_ws(const request_json *j, const char *p)
{
    while (p < j->end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static bool
request_is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static const char *
request_json_string(const request_json *j, const char *p)
{
    for (p++; p < j->end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c != '\\')
            continue;
        if (++p >= j->end)
            return NULL;
        if (*p == 'u') {
            if (j->end - p < 5 || !request_is_hex(p[1]) || !request_is_hex(p[2]) ||
                !request_is_hex(p[3]) || !request_is_hex(p[4]))
                return NULL;
            p += 4;
        } else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
            return NULL;
        }
    }
    return NULL;
}

static const char *
request_json_digits(const request_json *j, const char *p)
{
    const char *start = p;
    while (p < j->end && *p >= '0' && *p <= '9')
        p++;
    return p > start ? p : NULL;
}

static const char *
request_json_number(const request_json *j, const char *p)
{
    if (p < j->end && *p == '-')
        p++;
    if (p < j->end && *p == '0')
        p++;
    else if ((p = request_json_digits(j, p)) == NULL)
        return NULL;
    if (p < j->end && *p == '.' && (p = request_json_digits(j, p + 1)) == NULL)
        return NULL;
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        p = request_json_digits(j, p);
    }
    return p;
}

/* An object or array (open is '{' or '['), members separated by commas. */
static const char *
request_json_container(request_json *j, const char *p, char close)
{
    if (--j->depth < 0)
        return NULL;
    p = request_json_ws(j, p + 1);
    if (p < j->end && *p == close) {
        j->depth++;
        return p + 1;
    }
    for (;;) {
        if (close == '}') {
            if (p >= j->end || *p != '"' || (p = request_json_string(j, p)) == NULL)
                return NULL;
            p = request_json_ws(j, p);
            if (p >= j->end || *p != ':')
                return NULL;
            p++;
        }
        if ((p = request_json_value(j, p)) == NULL)
            return NULL;
        p = request_json_ws(j, p);
        if (p < j->end && *p == ',') {
            p = request_json_ws(j, p + 1);
            continue;
        }
        if (p < j->end && *p == close) {
            j->depth++;
            return p + 1;
        }
        return NULL;
    }
}

static const char *
request_json_literal(const request_json *j, const char *p, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(j->end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static const char *
request_json_value(request_json *j, const char *p)
{
    p = request_json_ws(j, p);
    if (p >= j->end)
        return NULL;
    switch (*p) {
    case '{':
        return request_json_container(j, p, '}');
    case '[':
        return request_json_container(j, p, ']');
    case '"':
        return request_json_string(j, p);
    case 't':
        return request_json_literal(j, p, "true");
    case 'f':
        return request_json_literal(j, p, "false");
    case 'n':
        return request_json_literal(j, p, "null");
    default:
        return request_json_number(j, p);
    }
}

bool
pb_request_is_json_object(const char *s, size_t len)
{
    if (!pb_utf8_is_text(s, len))
        return false;
    request_json j = {.end = s + len, .depth = REQUEST_ARGS_DEPTH};
    const char *p = request_json_ws(&j, s);
    if (p >= j.end || *p != '{' || (p = request_json_container(&j, p, '}')) == NULL)
        return false;
    return request_json_ws(&j, p) == j.end;
}

/* messages[i].tool_calls of an assistant: [{id, type "function", function{name, arguments}}]. */
static int
request_parse_tool_calls(pb_message *m, json_object *tc, size_t i, pb_error *err)
{
    static const char *const call_keys[] = {"id", "type", "function", NULL};
    static const char *const fn_keys[] = {"name", "arguments", NULL};
    size_t n = json_object_is_type(tc, json_type_array) ? json_object_array_length(tc) : 0;
    if (n == 0)
        return request_bad(err, "messages[%zu].tool_calls must be a non-empty array", i);
    if (n > REQUEST_MAX_TOOL_CALLS) {
        pb_error_set(err, PB_REQUEST_TOO_LARGE,
                     "TOO_LARGE messages[%zu].tool_calls has %zu "
                     "entries, limit %d",
                     i, n, REQUEST_MAX_TOOL_CALLS);
        return PB_ERR;
    }
    for (size_t k = 0; k < n; k++) {
        json_object *call = json_object_array_get_idx(tc, k), *fn = request_field(call, "function");
        char where[64];
        snprintf(where, sizeof(where), "messages[%zu].tool_calls[%zu]", i, k);
        size_t len = 0, args_len = 0;
        const char *type = request_string(request_field(call, "type"), &len);
        const char *args = request_string(request_field(fn, "arguments"), &args_len);
        if (!json_object_is_type(call, json_type_object) ||
            !request_is_name(request_field(call, "id"), REQUEST_ID_MAX))
            return request_bad(err, "%s.id must be 1..%d characters [A-Za-z0-9_-]", where,
                               REQUEST_ID_MAX);
        if (type == NULL || strcmp(type, "function") != 0)
            return request_bad(err, "%s.type must be \"function\"", where);
        if (!json_object_is_type(fn, json_type_object) ||
            !request_is_name(request_field(fn, "name"), REQUEST_NAME_MAX))
            return request_bad(err, "%s.function.name must be 1..%d characters [A-Za-z0-9_-]",
                               where, REQUEST_NAME_MAX);
        if (args == NULL || !pb_request_is_json_object(args, args_len))
            return request_bad(err, "%s.function.arguments must be a string holding a JSON object",
                               where);
        if (request_only_keys(call, call_keys, where, err) != PB_OK ||
            request_only_keys(fn, fn_keys, where, err) != PB_OK)
            return PB_ERR;
        for (size_t e = 0; e < k; e++)
            if (strcmp(
                    json_object_get_string(request_field(json_object_array_get_idx(tc, e), "id")),
                    json_object_get_string(request_field(call, "id"))) == 0)
                return request_bad(err, "%s.id repeats an earlier id", where);
    }
    m->tool_calls = json_object_get(tc);
    return PB_OK;
}

/* True when id is one of the ids of tool_calls. */
static bool
request_has_call_id(json_object *tool_calls, const char *id)
{
    for (size_t k = 0; k < json_object_array_length(tool_calls); k++)
        if (strcmp(json_object_get_string(
                       request_field(json_object_array_get_idx(tool_calls, k), "id")),
                   id) == 0)
            return true;
    return false;
}

/* How many of calls' ids the tool messages [from, to) answer. */
static size_t
request_answered(const pb_request *req, json_object *calls, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t k = 0; k < json_object_array_length(calls); k++) {
        const char *id =
            json_object_get_string(request_field(json_object_array_get_idx(calls, k), "id"));
        for (size_t t = from; t < to; t++)
            if (strcmp(req->messages[t].tool_call_id, id) == 0) {
                n++;
                break;
            }
    }
    return n;
}

/* The OpenAI rule Anthropic's tool_use/tool_result pairing also needs: an assistant's tool
 * calls are followed by tool messages answering each of them, and a tool message answers a
 * call of the assistant message before its run of tool messages. */
static int
request_check_tool_pairs(const pb_request *req, pb_error *err)
{
    json_object *calls = NULL; /* tool_calls of the assistant message before this run */
    size_t run_start = 0;
    for (size_t i = 0; i <= req->n_messages; i++) {
        const pb_message *m = i < req->n_messages ? &req->messages[i] : NULL;
        if (m != NULL && m->role == PB_ROLE_TOOL) {
            if (calls == NULL || !request_has_call_id(calls, m->tool_call_id))
                return request_bad(err,
                                   "messages[%zu]: a tool message must answer a tool_call_id of "
                                   "the assistant message before it",
                                   i);
            continue;
        }
        if (calls != NULL &&
            request_answered(req, calls, run_start, i) < json_object_array_length(calls))
            return request_bad(err,
                               "messages[%zu]: an assistant message with tool_calls must be "
                               "followed by a tool message for each tool_call_id",
                               run_start - 1);
        calls = m != NULL && m->role == PB_ROLE_ASSISTANT ? m->tool_calls : NULL;
        run_start = i + 1;
    }
    return PB_OK;
}

static int
request_parse_message(pb_request *req, pb_message *m, json_object *o, size_t i, pb_error *err)
{
    static const char *const keys[] = {"role",         "content", "name", "tool_calls",
                                       "tool_call_id", "refusal", NULL};
    char where[32];
    snprintf(where, sizeof(where), "messages[%zu]", i);
    if (!json_object_is_type(o, json_type_object))
        return request_bad(err, "messages[%zu] must be an object", i);
    size_t len;
    const char *role = request_string(request_field(o, "role"), &len);
    int r = role ? pb_request_role_parse(role) : -1;
    if (r < 0)
        return request_bad(err,
                           "messages[%zu].role must be one of system, developer, user, "
                           "assistant, tool",
                           i);
    m->role = (pb_role)r;
    if (request_only_keys(o, keys, where, err) != PB_OK)
        return PB_ERR;
    json_object *name = request_field(o, "name");
    if (name != NULL) {
        const char *s = request_string(name, &len);
        if (s == NULL || len == 0 || len > REQUEST_NAME_MAX)
            return request_bad(err, "messages[%zu].name must be a string of 1..%d bytes", i,
                               REQUEST_NAME_MAX);
        m->name = pb_xstrndup(s, len);
    }
    json_object *tc = request_field(o, "tool_calls"), *tid = request_field(o, "tool_call_id");
    if (tc != NULL) {
        if (m->role != PB_ROLE_ASSISTANT)
            return request_bad(err,
                               "messages[%zu].tool_calls is allowed on assistant messages "
                               "only",
                               i);
        if (request_parse_tool_calls(m, tc, i, err) != PB_OK)
            return PB_ERR;
        req->needs |= PB_CAP_TOOLS;
    }
    if (m->role == PB_ROLE_TOOL) {
        if (!request_is_name(tid, REQUEST_ID_MAX))
            return request_bad(err,
                               "messages[%zu].tool_call_id must be 1..%d characters "
                               "[A-Za-z0-9_-]",
                               i, REQUEST_ID_MAX);
        m->tool_call_id = pb_xstrdup(json_object_get_string(tid));
        req->needs |= PB_CAP_TOOLS;
    } else if (tid != NULL) {
        return request_bad(err, "messages[%zu].tool_call_id is allowed on tool messages only", i);
    }
    if (request_field(o, "refusal") != NULL && m->role != PB_ROLE_ASSISTANT)
        return request_bad(err, "messages[%zu].refusal is allowed on assistant messages only", i);
    return request_parse_content(req, m, request_field(o, "content"), i, err);
}

int
pb_request_parse_messages(pb_request *req, json_object *msgs, size_t max_messages, pb_error *err)
{
    size_t n = json_object_is_type(msgs, json_type_array) ? json_object_array_length(msgs) : 0;
    if (n == 0)
        return request_bad(err, "messages must be a non-empty array");
    if (n > max_messages) {
        pb_error_set(err, PB_REQUEST_TOO_LARGE, "TOO_LARGE job has %zu messages, limit %zu", n,
                     max_messages);
        return PB_ERR;
    }
    req->messages = pb_xcalloc(n, sizeof(pb_message));
    bool has_user = false;
    for (size_t i = 0; i < n; i++) {
        /* Counted first: pb_request_free releases a half-parsed message too. */
        req->n_messages++;
        pb_message *m = &req->messages[i];
        if (request_parse_message(req, m, json_object_array_get_idx(msgs, i), i, err) != PB_OK)
            return PB_ERR;
        has_user |= m->role == PB_ROLE_USER;
    }
    if (!has_user)
        return request_bad(err, "messages must contain a user message");
    return request_check_tool_pairs(req, err);
}

/* ---------------------------------------------------------------- params */

typedef enum {
    PARAM_INT,             /* integer in [min, max] */
    PARAM_NUM,             /* number in [min, max] */
    PARAM_BOOL,            /* true or false */
    PARAM_TEXT,            /* string of 1..REQUEST_TEXT_MAX bytes */
    PARAM_ENUM,            /* one of values */
    PARAM_STOP,            /* string or 1..4 strings */
    PARAM_TOOLS,           /* function tools */
    PARAM_TOOL_CHOICE,     /* none | auto | required | {type function, function{name}} */
    PARAM_RESPONSE_FORMAT, /* text | json_object | json_schema */
    PARAM_METADATA,        /* string -> string, bounded */
    PARAM_LOGIT_BIAS,      /* token id -> -100..100 */
    PARAM_PREDICTION,      /* {type content, content} */
    PARAM_MODALITIES,      /* ["text"] */
    PARAM_ANTHROPIC,       /* Anthropic-only knobs: {top_k, thinking} */
    PARAM_REFUSED          /* a field planb does not take: refused with why */
} request_param_kind;

typedef struct request_param {
    const char *name;        /* OpenAI's name, the key in params */
    request_param_kind kind; /* how it is checked */
    double min, max;         /* PARAM_INT, PARAM_NUM bounds */
    const char *values;      /* PARAM_ENUM: space-separated; PARAM_REFUSED: the reason */
} request_param;

/* Every OpenAI Chat Completions request field but messages and model, plus "anthropic", in
 * the canonical (cache key) order. Bounds are OpenAI's documented ones. */
static const request_param request_params[] = {
    {"audio", PARAM_REFUSED, 0, 0, "planb returns text answers (no audio output)"},
    {"frequency_penalty", PARAM_NUM, -2, 2, NULL},
    {"function_call", PARAM_REFUSED, 0, 0, "is deprecated: use tool_choice"},
    {"functions", PARAM_REFUSED, 0, 0, "is deprecated: use tools"},
    {"logit_bias", PARAM_LOGIT_BIAS, 0, 0, NULL},
    {"logprobs", PARAM_BOOL, 0, 0, NULL},
    {"max_completion_tokens", PARAM_INT, 1, REQUEST_MAX_TOKENS_MAX, NULL},
    {"max_tokens", PARAM_INT, 1, REQUEST_MAX_TOKENS_MAX, NULL},
    {"metadata", PARAM_METADATA, 0, 0, NULL},
    {"modalities", PARAM_MODALITIES, 0, 0, NULL},
    {"n", PARAM_INT, 1, 1, NULL},
    {"parallel_tool_calls", PARAM_BOOL, 0, 0, NULL},
    {"prediction", PARAM_PREDICTION, 0, 0, NULL},
    {"presence_penalty", PARAM_NUM, -2, 2, NULL},
    {"prompt_cache_key", PARAM_TEXT, 0, 0, NULL},
    {"reasoning_effort", PARAM_ENUM, 0, 0, "none minimal low medium high"},
    {"response_format", PARAM_RESPONSE_FORMAT, 0, 0, NULL},
    {"safety_identifier", PARAM_TEXT, 0, 0, NULL},
    {"seed", PARAM_INT, -9.2e18, 9.2e18, NULL},
    {"service_tier", PARAM_ENUM, 0, 0, "auto default flex scale priority"},
    {"stop", PARAM_STOP, 0, 0, NULL},
    {"store", PARAM_BOOL, 0, 0, NULL},
    {"stream", PARAM_REFUSED, 0, 0,
     "is a job field: put \"stream\": true at the job's top level (the answer then streams "
     "on planb:stream:<id>)"},
    {"stream_options", PARAM_REFUSED, 0, 0,
     "is planb's to set: a streamed job always asks for usage"},
    {"temperature", PARAM_NUM, 0, 2, NULL},
    {"tool_choice", PARAM_TOOL_CHOICE, 0, 0, NULL},
    {"tools", PARAM_TOOLS, 0, 0, NULL},
    {"top_logprobs", PARAM_INT, 0, 20, NULL},
    {"top_p", PARAM_NUM, 0, 1, NULL},
    {"user", PARAM_TEXT, 0, 0, NULL},
    {"verbosity", PARAM_ENUM, 0, 0, "low medium high"},
    {"web_search_options", PARAM_REFUSED, 0, 0, "is not supported: planb calls no search tool"},
    {"anthropic", PARAM_ANTHROPIC, 0, 0, NULL},
};
#define REQUEST_N_PARAMS (sizeof(request_params) / sizeof(*request_params))

bool
pb_request_is_openai_field(const char *name)
{
    if (strcmp(name, "model") == 0 || strcmp(name, "messages") == 0)
        return true;
    for (size_t i = 0; i < REQUEST_N_PARAMS; i++)
        if (strcmp(name, request_params[i].name) == 0 && request_params[i].kind != PARAM_ANTHROPIC)
            return true;
    return false;
}

json_object *
pb_request_param(const pb_request *req, const char *name)
{
    json_object *v = NULL;
    if (req->params != NULL)
        json_object_object_get_ex(req->params, name, &v);
    return v;
}

/* True when s is one of the space-separated words of list. */
static bool
request_in_list(const char *s, const char *list)
{
    size_t n = strlen(s);
    for (const char *p = list; *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && strncmp(p, s, n) == 0)
            return true;
        p += w;
        p += strspn(p, " ");
    }
    return false;
}

static int
request_check_stop(json_object *v, pb_error *err)
{
    size_t len;
    if (json_object_is_type(v, json_type_string)) {
        const char *s = request_string(v, &len);
        if (s != NULL && len > 0 && len <= REQUEST_STOP_BYTES)
            return PB_OK;
    } else if (json_object_is_type(v, json_type_array)) {
        size_t n = json_object_array_length(v);
        bool ok = n >= 1 && n <= REQUEST_STOP_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            const char *s = request_string(json_object_array_get_idx(v, i), &len);
            ok = s != NULL && len > 0 && len <= REQUEST_STOP_BYTES;
        }
        if (ok)
            return PB_OK;
    }
    return request_bad(err,
                       "params.stop must be a string or an array of 1..%d strings of 1..%d "
                       "bytes",
                       REQUEST_STOP_MAX, REQUEST_STOP_BYTES);
}

static int
request_check_tools(json_object *v, pb_error *err)
{
    static const char *const tool_keys[] = {"type", "function", NULL};
    static const char *const fn_keys[] = {"name", "description", "parameters", "strict", NULL};
    size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
    if (n == 0)
        return request_bad(err, "params.tools must be a non-empty array of function tools");
    if (n > REQUEST_MAX_TOOLS) {
        pb_error_set(err, PB_REQUEST_TOO_LARGE, "TOO_LARGE params.tools has %zu tools, limit %d", n,
                     REQUEST_MAX_TOOLS);
        return PB_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(v, i), *fn = request_field(t, "function");
        char where[48];
        snprintf(where, sizeof(where), "params.tools[%zu]", i);
        size_t len;
        const char *type = request_string(request_field(t, "type"), &len);
        if (!json_object_is_type(t, json_type_object) || type == NULL ||
            strcmp(type, "function") != 0)
            return request_bad(err,
                               "%s.type must be \"function\" (custom tools are not "
                               "supported)",
                               where);
        if (request_only_keys(t, tool_keys, where, err) != PB_OK)
            return PB_ERR;
        if (!json_object_is_type(fn, json_type_object) ||
            !request_is_name(request_field(fn, "name"), REQUEST_NAME_MAX))
            return request_bad(err, "%s.function.name must be 1..%d characters [A-Za-z0-9_-]",
                               where, REQUEST_NAME_MAX);
        if (request_only_keys(fn, fn_keys, where, err) != PB_OK)
            return PB_ERR;
        json_object *d = request_field(fn, "description"), *p = request_field(fn, "parameters"),
                    *s = request_field(fn, "strict");
        const char *ds = request_string(d, &len);
        if (d != NULL && (ds == NULL || len > REQUEST_DESC_MAX))
            return request_bad(err,
                               "%s.function.description must be a string of at most %d "
                               "bytes",
                               where, REQUEST_DESC_MAX);
        if (s != NULL && !json_object_is_type(s, json_type_boolean))
            return request_bad(err, "%s.function.strict must be true or false", where);
        snprintf(where, sizeof(where), "params.tools[%zu].function.parameters", i);
        if (p != NULL && request_check_schema(p, where, err) != PB_OK)
            return PB_ERR;
        const char *name = json_object_get_string(request_field(fn, "name"));
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_object_get_string(request_field(
                           request_field(json_object_array_get_idx(v, k), "function"), "name")),
                       name) == 0)
                return request_bad(err,
                                   "params.tools[%zu]: the name \"%s\" repeats an earlier "
                                   "tool",
                                   i, name);
    }
    return PB_OK;
}

/* The tool named name in tools (validated), or NULL. */
static json_object *
request_find_tool(json_object *tools, const char *name)
{
    for (size_t i = 0; tools != NULL && i < json_object_array_length(tools); i++) {
        json_object *fn = request_field(json_object_array_get_idx(tools, i), "function");
        if (strcmp(json_object_get_string(request_field(fn, "name")), name) == 0)
            return fn;
    }
    return NULL;
}

static int
request_check_tool_choice(json_object *v, json_object *tools, pb_error *err)
{
    size_t len;
    const char *s = request_string(v, &len);
    if (s != NULL &&
        (strcmp(s, "none") == 0 || strcmp(s, "auto") == 0 || strcmp(s, "required") == 0))
        return PB_OK;
    const char *type = request_string(request_field(v, "type"), &len);
    json_object *fn = request_field(v, "function");
    static const char *const keys[] = {"type", "function", NULL};
    static const char *const fn_keys[] = {"name", NULL};
    if (json_object_is_type(v, json_type_object) && type != NULL && strcmp(type, "function") == 0 &&
        json_object_is_type(fn, json_type_object) &&
        request_is_name(request_field(fn, "name"), REQUEST_NAME_MAX)) {
        if (request_only_keys(v, keys, "params.tool_choice", err) != PB_OK ||
            request_only_keys(fn, fn_keys, "params.tool_choice.function", err) != PB_OK)
            return PB_ERR;
        if (request_find_tool(tools, json_object_get_string(request_field(fn, "name"))) == NULL)
            return request_bad(err, "params.tool_choice names a function that is not in "
                                    "params.tools");
        return PB_OK;
    }
    return request_bad(err, "params.tool_choice must be none, auto, required or {\"type\": "
                            "\"function\", \"function\": {\"name\": ...}}");
}

static int
request_check_response_format(pb_request *req, json_object *v, pb_error *err)
{
    static const char *const keys[] = {"type", "json_schema", NULL};
    static const char *const schema_keys[] = {"name", "description", "schema", "strict", NULL};
    size_t len;
    const char *type = request_string(request_field(v, "type"), &len);
    if (!json_object_is_type(v, json_type_object) || type == NULL)
        return request_bad(err, "params.response_format must be an object with a type");
    if (request_only_keys(v, keys, "params.response_format", err) != PB_OK)
        return PB_ERR;
    if (strcmp(type, "text") == 0)
        return PB_OK;
    if (strcmp(type, "json_object") == 0) {
        req->needs |= PB_CAP_JSON_OBJECT;
        return PB_OK;
    }
    if (strcmp(type, "json_schema") != 0)
        return request_bad(err, "params.response_format.type must be text, json_object or "
                                "json_schema");
    json_object *js = request_field(v, "json_schema");
    if (!json_object_is_type(js, json_type_object) ||
        !request_is_name(request_field(js, "name"), REQUEST_NAME_MAX))
        return request_bad(err,
                           "params.response_format.json_schema.name must be 1..%d "
                           "characters [A-Za-z0-9_-]",
                           REQUEST_NAME_MAX);
    if (request_only_keys(js, schema_keys, "params.response_format.json_schema", err) != PB_OK)
        return PB_ERR;
    json_object *schema = request_field(js, "schema"), *strict = request_field(js, "strict"),
                *desc = request_field(js, "description");
    if (strict != NULL && !json_object_is_type(strict, json_type_boolean))
        return request_bad(err, "params.response_format.json_schema.strict must be true or false");
    if (desc != NULL && (request_string(desc, &len) == NULL || len > REQUEST_DESC_MAX))
        return request_bad(err,
                           "params.response_format.json_schema.description must be a "
                           "string of at most %d bytes",
                           REQUEST_DESC_MAX);
    if (schema != NULL &&
        request_check_schema(schema, "params.response_format.json_schema.schema", err) != PB_OK)
        return PB_ERR;
    req->needs |= PB_CAP_JSON_SCHEMA;
    return PB_OK;
}

static int
request_check_metadata(json_object *v, pb_error *err)
{
    if (!json_object_is_type(v, json_type_object) ||
        json_object_object_length(v) > REQUEST_META_KEYS)
        return request_bad(err, "params.metadata must be an object of at most %d string values",
                           REQUEST_META_KEYS);
    json_object_object_foreach(v, key, val)
    {
        size_t len;
        const char *s = request_string(val, &len);
        if (strlen(key) == 0 || strlen(key) > REQUEST_META_KEY_MAX || s == NULL ||
            len > REQUEST_META_VALUE_MAX)
            return request_bad(err,
                               "params.metadata keys must be 1..%d bytes and values "
                               "strings of at most %d bytes",
                               REQUEST_META_KEY_MAX, REQUEST_META_VALUE_MAX);
    }
    return PB_OK;
}

static int
request_check_logit_bias(json_object *v, pb_error *err)
{
    if (!json_object_is_type(v, json_type_object) ||
        json_object_object_length(v) > REQUEST_LOGIT_BIAS_MAX)
        return request_bad(err, "params.logit_bias must be an object of at most %d token ids",
                           REQUEST_LOGIT_BIAS_MAX);
    json_object_object_foreach(v, key, val)
    {
        double d;
        size_t n = strlen(key);
        if (n == 0 || n > 10 || strspn(key, "0123456789") != n ||
            !request_number(val, -100, 100, &d))
            return request_bad(err, "params.logit_bias maps token ids (digits) to numbers from "
                                    "-100 to 100");
    }
    return PB_OK;
}

static int
request_check_prediction(json_object *v, pb_error *err)
{
    size_t len;
    const char *type = request_string(request_field(v, "type"), &len);
    json_object *c = request_field(v, "content");
    static const char *const keys[] = {"type", "content", NULL};
    if (!json_object_is_type(v, json_type_object) || type == NULL || strcmp(type, "content") != 0 ||
        (!json_object_is_type(c, json_type_string) && !json_object_is_type(c, json_type_array)))
        return request_bad(err, "params.prediction must be {\"type\": \"content\", \"content\": "
                                "...}");
    return request_only_keys(v, keys, "params.prediction", err);
}

static int
request_check_modalities(json_object *v, pb_error *err)
{
    size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = request_string(json_object_array_get_idx(v, i), &len);
        if (s == NULL || strcmp(s, "text") != 0)
            return request_bad(err, "params.modalities: only [\"text\"] is supported (planb "
                                    "returns text answers)");
    }
    if (n == 0)
        return request_bad(err, "params.modalities must be [\"text\"]");
    return PB_OK;
}

/* params.anthropic: {top_k: integer >= 0, thinking: {type enabled, budget_tokens >= 1024} |
 * {type disabled}} -- sent to Anthropic models only. */
static int
request_check_anthropic(json_object *v, pb_error *err)
{
    static const char *const keys[] = {"top_k", "thinking", NULL};
    if (!json_object_is_type(v, json_type_object))
        return request_bad(err, "params.anthropic must be an object");
    if (request_only_keys(v, keys, "params.anthropic", err) != PB_OK)
        return PB_ERR;
    int64_t n;
    json_object *k = request_field(v, "top_k"), *t = request_field(v, "thinking");
    if (k != NULL && !request_integer(k, 0, 1000000, &n))
        return request_bad(err, "params.anthropic.top_k must be an integer from 0 to 1000000");
    if (t != NULL) {
        size_t len;
        const char *type = request_string(request_field(t, "type"), &len);
        json_object *b = request_field(t, "budget_tokens");
        static const char *const tkeys[] = {"type", "budget_tokens", NULL};
        bool ok = json_object_is_type(t, json_type_object) && type != NULL &&
                  ((strcmp(type, "disabled") == 0 && b == NULL) ||
                   (strcmp(type, "enabled") == 0 &&
                    request_integer(b, 1024, REQUEST_MAX_TOKENS_MAX, &n)));
        if (!ok)
            return request_bad(err, "params.anthropic.thinking must be {\"type\": \"enabled\", "
                                    "\"budget_tokens\": 1024..} or {\"type\": \"disabled\"}");
        if (request_only_keys(t, tkeys, "params.anthropic.thinking", err) != PB_OK)
            return PB_ERR;
    }
    return PB_OK;
}

static int
request_check_param(pb_request *req, const request_param *p, json_object *v, json_object *all,
                    pb_error *err)
{
    double d;
    int64_t n;
    size_t len;
    const char *s;
    switch (p->kind) {
    case PARAM_INT:
        if (!request_integer(v, (int64_t)p->min, (int64_t)p->max, &n)) {
            if (strcmp(p->name, "n") == 0)
                return request_bad(err, "params.n must be 1: planb returns one answer per job "
                                        "(push one job per answer)");
            return request_bad(err, "params.%s must be an integer from %.0f to %.0f", p->name,
                               p->min, p->max);
        }
        if (strcmp(p->name, "max_tokens") == 0 || strcmp(p->name, "max_completion_tokens") == 0)
            req->max_tokens = (int)n;
        return PB_OK;
    case PARAM_NUM:
        if (!request_number(v, p->min, p->max, &d))
            return request_bad(err, "params.%s must be a number from %g to %g", p->name, p->min,
                               p->max);
        if (strcmp(p->name, "temperature") == 0)
            req->temperature = d;
        else if (strcmp(p->name, "top_p") == 0)
            req->top_p = d;
        return PB_OK;
    case PARAM_BOOL:
        if (!json_object_is_type(v, json_type_boolean))
            return request_bad(err, "params.%s must be true or false", p->name);
        if (strcmp(p->name, "logprobs") == 0 && json_object_get_boolean(v))
            req->needs |= PB_CAP_LOGPROBS;
        return PB_OK;
    case PARAM_TEXT:
        s = request_string(v, &len);
        if (s == NULL || len == 0 || len > REQUEST_TEXT_MAX)
            return request_bad(err, "params.%s must be a string of 1..%d bytes", p->name,
                               REQUEST_TEXT_MAX);
        return PB_OK;
    case PARAM_ENUM:
        s = request_string(v, &len);
        if (s == NULL || !request_in_list(s, p->values))
            return request_bad(err, "params.%s must be one of %s", p->name, p->values);
        return PB_OK;
    case PARAM_STOP:
        return request_check_stop(v, err);
    case PARAM_TOOLS:
        if (request_check_tools(v, err) != PB_OK)
            return PB_ERR;
        req->needs |= PB_CAP_TOOLS;
        return PB_OK;
    case PARAM_TOOL_CHOICE:
        return request_check_tool_choice(v, request_field(all, "tools"), err);
    case PARAM_RESPONSE_FORMAT:
        return request_check_response_format(req, v, err);
    case PARAM_METADATA:
        return request_check_metadata(v, err);
    case PARAM_LOGIT_BIAS:
        return request_check_logit_bias(v, err);
    case PARAM_PREDICTION:
        return request_check_prediction(v, err);
    case PARAM_MODALITIES:
        return request_check_modalities(v, err);
    case PARAM_ANTHROPIC:
        return request_check_anthropic(v, err);
    case PARAM_REFUSED:
        /* stream: false asks for what planb does anyway. */
        if (strcmp(p->name, "stream") == 0 && json_object_is_type(v, json_type_boolean) &&
            !json_object_get_boolean(v))
            return PB_OK;
        return request_bad(err, "params.%s %s", p->name, p->values);
    }
    return PB_OK;
}

/* Rules between params: each names the one the real API would report. */
static int
request_check_combinations(const pb_request *req, pb_error *err)
{
    json_object *tools = pb_request_param(req, "tools"), *lp = pb_request_param(req, "logprobs");
    if (pb_request_param(req, "max_tokens") && pb_request_param(req, "max_completion_tokens"))
        return request_bad(err, "params.max_tokens and params.max_completion_tokens: give one of "
                                "them");
    if (tools == NULL && pb_request_param(req, "tool_choice") != NULL)
        return request_bad(err, "params.tool_choice is only allowed when params.tools is given");
    if (tools == NULL && pb_request_param(req, "parallel_tool_calls") != NULL)
        return request_bad(err, "params.parallel_tool_calls is only allowed when params.tools is "
                                "given");
    if (pb_request_param(req, "top_logprobs") != NULL &&
        (lp == NULL || !json_object_get_boolean(lp)))
        return request_bad(err, "params.top_logprobs needs params.logprobs: true");
    return PB_OK;
}

int
pb_request_parse_params(pb_request *req, json_object *params, size_t job_bytes, pb_error *err)
{
    if (params == NULL)
        return PB_OK;
    request_job_bytes = job_bytes;
    if (!json_object_is_type(params, json_type_object))
        return request_bad(err, "params must be an object");
    req->params = json_object_new_object();
    json_object_object_foreach(params, key, val)
    {
        const request_param *p = NULL;
        for (size_t i = 0; i < REQUEST_N_PARAMS && p == NULL; i++)
            if (strcmp(key, request_params[i].name) == 0)
                p = &request_params[i];
        if (p == NULL) {
            char q[REQUEST_QUOTE_MAX + 4];
            return request_bad(err, "params.%s is not an OpenAI Chat Completions parameter",
                               request_quote(key, q));
        }
        if (val == NULL) /* null means absent, as elsewhere in a job */
            continue;
        if (request_check_param(req, p, val, params, err) != PB_OK)
            return PB_ERR;
        json_object_object_add(req->params, key, json_object_get(val));
    }
    return request_check_combinations(req, err);
}

/* ---------------------------------------------------------------- canonical form */

void
pb_request_canon(const pb_request *req,
                 void (*feed)(void *arg, char tag, const char *s, size_t len), void *arg)
{
    size_t len;
    for (size_t i = 0; i < req->n_messages; i++) {
        const pb_message *m = &req->messages[i];
        const char *role = pb_request_role_name(m->role);
        feed(arg, 'r', role, strlen(role));
        feed(arg, 'c', m->content, strlen(m->content));
        if (m->parts != NULL) {
            const char *s = json_object_to_json_string_length(m->parts, REQUEST_JSON_FLAGS, &len);
            feed(arg, 'P', s, len);
        }
        if (m->tool_calls != NULL) {
            const char *s =
                json_object_to_json_string_length(m->tool_calls, REQUEST_JSON_FLAGS, &len);
            feed(arg, 'K', s, len);
        }
        if (m->tool_call_id != NULL)
            feed(arg, 'i', m->tool_call_id, strlen(m->tool_call_id));
        if (m->name != NULL)
            feed(arg, 'N', m->name, strlen(m->name));
    }
    /* Table order, not the producer's key order: the same params give the same key. */
    for (size_t i = 0; i < REQUEST_N_PARAMS; i++) {
        json_object *v = pb_request_param(req, request_params[i].name);
        if (v == NULL)
            continue;
        feed(arg, 'k', request_params[i].name, strlen(request_params[i].name));
        const char *s = json_object_to_json_string_length(v, REQUEST_JSON_FLAGS, &len);
        feed(arg, 'v', s, len);
    }
}

void
pb_request_free(pb_request *req)
{
    if (req == NULL)
        return;
    free(req->id);
    for (size_t i = 0; i < req->n_messages; i++) {
        pb_message *m = &req->messages[i];
        free(m->content);
        json_object_put(m->parts);
        json_object_put(m->tool_calls);
        free(m->tool_call_id);
        free(m->name);
    }
    free(req->messages);
    free(req->tenant);
    free(req->tracestate);
    free(req->models);
    json_object_put(req->params);
    json_object_put(req->meta);
    free(req);
}
