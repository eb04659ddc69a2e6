/* provider.c -- adapter lookup, the shared status table and helpers the adapters share.
 *
 * The dialects (provider_openai.c, provider_anthropic.c) differ in URLs,
 * headers and JSON shapes, but agree on what an HTTP status means, on how to
 * read an untrusted body (exactly len bytes, any bytes, one JSON object) and
 * on how to serialise a request. That common part lives here so a new
 * provider is one file of dialect and nothing else. */
#include "planb/provider.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/utf8.h"

/* Error bodies put the reason near the top; reading only this much bounds the
 * work on a multi-megabyte HTML page from a proxy. */
#define PROVIDER_SCAN_BYTES 4096

/* Phrases in a 400 body that mean "this model cannot take this job" rather than
 * "the job is malformed": another model (bigger context, other filter, higher
 * output limit) may well serve it. */
static const char *const provider_fallback_400[] = {
    "context_length_exceeded",
    "context length",
    "maximum context",
    "context window",
    "context size",
    "prompt is too long",
    "too many tokens",
    "content_filter",
    "content management policy",
    "responsible ai",
    "responsibleai",
    "supports at most",                        /* OpenAI: max_tokens above this model's limit */
    "maximum allowed number of output tokens", /* Anthropic: the same */
    NULL};

const pb_provider_ops *
pb_provider_for(pb_provider_type type)
{
    switch (type) {
    case PB_PROVIDER_OPENAI:
        return &pb_provider_openai;
    case PB_PROVIDER_ANTHROPIC:
        return &pb_provider_anthropic;
    case PB_PROVIDER_AZURE:
        return &pb_provider_azure;
    case PB_PROVIDER_GEMINI:
        return &pb_provider_gemini;
    case PB_PROVIDER_BEDROCK:
        return &pb_provider_bedrock;
    }
    return NULL;
}

pb_class
pb_provider_classify_status(long status, const char *body, size_t len)
{
    /* 529 is Anthropic's "overloaded"; every 5xx is the server's trouble, not the job's. */
    if (status >= 500 && status <= 599)
        return PB_CLASS_RETRY;
    switch (status) {
    case 408: /* request timeout */
    case 409: /* conflict: a concurrent request on the same resource, gone on retry */
    case 425: /* too early (TLS early data replayed) */
    case 429: /* rate limited */
        return PB_CLASS_RETRY;
    case 400:
        return pb_provider_body_mentions(body, len, provider_fallback_400) ? PB_CLASS_FALLBACK
                                                                           : PB_CLASS_INVALID;
    default:
        /* 401/403/404 (key, access, model), 413 (too large for this model), any other 4xx,
         * and 1xx/3xx, which mean a base_url pointing somewhere that is not the API. */
        return PB_CLASS_FALLBACK;
    }
}

const char *
pb_provider_unsupported(const pb_model_conf *m, pb_provider_type t, const pb_request *req)
{
    unsigned missing = req->needs & ~m->capabilities;
    for (unsigned bit = 1; missing != 0 && bit <= PB_CAP_ALL; bit <<= 1)
        if (missing & bit)
            return pb_request_cap_name(bit);
    const pb_provider_ops *ops = pb_provider_for(t);
    return ops != NULL && ops->refuses != NULL ? ops->refuses(req) : NULL;
}

/* Words that start like an API key (OpenAI sk-, Anthropic sk-ant-, Google AIza, AWS access key
 * ids AKIA/ASIA, Bedrock API keys ABSK, bearer tokens and AWS secrets: 40 characters or more)
 * are never echoed, even when an upstream quotes them back. */
static bool
provider_is_keyish(const char *w, size_t n)
{
    static const char *const prefixes[] = {"sk-", "key-", "AIza", "AKIA", "ASIA", "ABSK"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes); i++)
        if (n >= strlen(prefixes[i]) && strncmp(w, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return n >= 40;
}

void
pb_provider_error_message(const char *body, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    json_object *root = pb_provider_parse_object(body, len, NULL), *e, *msg = NULL;
    if (root != NULL && json_object_object_get_ex(root, "error", &e)) {
        if (json_object_is_type(e, json_type_string))
            msg = e;
        else
            json_object_object_get_ex(e, "message", &msg);
    } else if (root != NULL) {
        json_object_object_get_ex(root, "message", &msg); /* AWS: {"message": ...} */
    }
    const char *s = json_object_is_type(msg, json_type_string) ? json_object_get_string(msg) : "";
    size_t o = 0;
    while (*s && o + 1 < cap) {
        size_t w = strcspn(s, " \t\r\n");
        if (w > 0 && provider_is_keyish(s, w)) {
            const char *red = "[redacted]";
            for (size_t k = 0; red[k] && o + 1 < cap; k++)
                out[o++] = red[k];
            s += w;
            continue;
        }
        unsigned char c = (unsigned char)*s++;
        out[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    /* Cut on a character boundary: the message ends up in a JSON result. */
    size_t lead = o;
    while (lead > 0 && ((unsigned char)out[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead > 0 && pb_utf8_seq_len((const unsigned char *)out + lead - 1, o - lead + 1) == 0)
        o = lead - 1;
    out[o] = '\0';
    json_object_put(root);
}

void
pb_provider_json_string(pb_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    pb_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        pb_buf_append(b, s + run, i - run);
        char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t n = 2;
        if (c < 0x20) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        pb_buf_append(b, esc, n);
        run = i + 1;
    }
    pb_buf_append(b, s + run, len - run);
    pb_buf_append(b, "\"", 1);
}

bool
pb_provider_is_blank(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
        s++;
    return *s == '\0';
}

void
pb_provider_add_calls(json_object *blocks, json_object *tool_calls, const pb_provider_blocks *b)
{
    for (size_t k = 0; tool_calls != NULL && k < json_object_array_length(tool_calls); k++) {
        json_object *call = json_object_array_get_idx(tool_calls, k), *id, *fn, *name, *args;
        json_object_object_get_ex(call, "id", &id);
        json_object_object_get_ex(call, "function", &fn);
        json_object_object_get_ex(fn, "name", &name);
        json_object_object_get_ex(fn, "arguments", &args);
        json_object *input = json_tokener_parse(json_object_get_string(args));
        json_object_array_add(blocks, b->call(id, name, input ? input : json_object_new_object()));
    }
}

void
pb_provider_add_blocks(json_object *blocks, const pb_message *m, const pb_provider_blocks *b)
{
    if (m->parts == NULL) {
        if (!pb_provider_is_blank(m->content))
            json_object_array_add(blocks, b->text(m->content, strlen(m->content)));
    }
    for (size_t k = 0; m->parts != NULL && k < json_object_array_length(m->parts); k++) {
        json_object *part = json_object_array_get_idx(m->parts, k), *v, *img;
        json_object_object_get_ex(part, "type", &v);
        if (strcmp(json_object_get_string(v), "text") == 0) {
            json_object_object_get_ex(part, "text", &v);
            if (!pb_provider_is_blank(json_object_get_string(v)))
                json_object_array_add(blocks, b->text(json_object_get_string(v),
                                                      (size_t)json_object_get_string_len(v)));
        } else if (json_object_object_get_ex(part, "image_url", &img) &&
                   json_object_object_get_ex(img, "url", &v)) {
            json_object_array_add(blocks, b->image(json_object_get_string(v)));
        }
    }
    pb_provider_add_calls(blocks, m->tool_calls, b);
}

void
pb_provider_walk_turns(const pb_request *req, pb_buf *system, pb_provider_turn_fn add, void *arg)
{
    int side = -1; /* of the turn being merged: 1 the assistant's, 0 the user's, -1 none yet */
    for (size_t i = 0; i < req->n_messages; i++) {
        const pb_message *m = &req->messages[i];
        if (m->role == PB_ROLE_SYSTEM || m->role == PB_ROLE_DEVELOPER) {
            if (pb_provider_is_blank(m->content))
                continue;
            if (system->len > 0)
                pb_buf_append(system, "\n\n", 2);
            pb_buf_append(system, m->content, strlen(m->content));
            continue;
        }
        /* A blank message adds nothing and must not split a turn. */
        if (m->role != PB_ROLE_TOOL && m->tool_calls == NULL && m->parts == NULL &&
            pb_provider_is_blank(m->content))
            continue;
        int now = m->role == PB_ROLE_ASSISTANT;
        add(arg, i, now == 1, now != side);
        side = now;
    }
}

void
pb_provider_drop(char (*names)[PB_PROVIDER_PARAM_LEN], size_t *n, size_t max, const char *name)
{
    if (*n >= max)
        return;
    snprintf(names[*n], PB_PROVIDER_PARAM_LEN, "%s", name);
    (*n)++;
}

void
pb_provider_drop_unsendable(const pb_request *req, char (*names)[PB_PROVIDER_PARAM_LEN], size_t *n,
                            size_t max)
{
    json_object *tools = pb_request_param(req, "tools"), *v;
    for (size_t i = 0; tools != NULL && i < json_object_array_length(tools); i++) {
        json_object *fn;
        json_object_object_get_ex(json_object_array_get_idx(tools, i), "function", &fn);
        if (json_object_object_get_ex(fn, "strict", &v) && json_object_get_boolean(v)) {
            pb_provider_drop(names, n, max, "tools.function.strict");
            break;
        }
    }
    json_object *rf = pb_request_param(req, "response_format"), *js;
    if (json_object_object_get_ex(rf, "json_schema", &js) &&
        json_object_object_get_ex(js, "strict", &v) && json_object_get_boolean(v))
        pb_provider_drop(names, n, max, "response_format.json_schema.strict");
    bool name = false, detail = false;
    for (size_t i = 0; i < req->n_messages; i++) {
        const pb_message *m = &req->messages[i];
        name |= m->name != NULL;
        for (size_t k = 0; m->parts != NULL && k < json_object_array_length(m->parts); k++) {
            json_object *img;
            detail |= json_object_object_get_ex(json_object_array_get_idx(m->parts, k), "image_url",
                                                &img) &&
                      json_object_object_get_ex(img, "detail", &v);
        }
    }
    if (name)
        pb_provider_drop(names, n, max, "messages.name");
    if (detail)
        pb_provider_drop(names, n, max, "image_url.detail");
}

void
pb_provider_completion_free(pb_completion *c)
{
    if (c == NULL)
        return;
    free(c->content);
    free(c->tool_calls);
    free(c->refusal);
    free(c->logprobs);
    free(c->response_id);
    c->content = c->tool_calls = c->refusal = c->logprobs = c->response_id = NULL;
}

static bool
provider_is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

json_object *
pb_provider_parse_object(const char *body, size_t len, pb_error *err)
{
    if (body == NULL || len == 0) {
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY empty body");
        return NULL;
    }
    /* json-c takes an int length; replies are bounded far below this by limits.reply_max_bytes. */
    if (len > INT32_MAX) {
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY body too large to parse");
        return NULL;
    }
    /* One tokener per process, reset per reply (see job.c's pb_job_tokenize). */
    static json_tokener *tok;
    if (tok == NULL) {
        tok = json_tokener_new();
        pb_assert(tok != NULL);
    }
    json_tokener_reset(tok);
    json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_reset(tok);
    const char *why = NULL;
    if (jerr == json_tokener_continue)
        why = "body is incomplete JSON";
    else if (jerr != json_tokener_success)
        why = "body is not JSON";
    else if (!json_object_is_type(root, json_type_object))
        why = "body is not a JSON object";
    for (size_t i = end; why == NULL && i < len; i++)
        if (!provider_is_json_space(body[i]))
            why = "bytes after the JSON object";
    if (why != NULL) {
        json_object_put(root);
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
        return NULL;
    }
    return root;
}

char *
pb_provider_join_text(json_object *parts)
{
    if (!json_object_is_type(parts, json_type_array))
        return NULL;
    pb_buf text;
    pb_buf_init(&text, SIZE_MAX);
    size_t n = json_object_array_length(parts);
    for (size_t i = 0; i < n; i++) {
        json_object *part = json_object_array_get_idx(parts, i);
        json_object *type, *s;
        if (!json_object_object_get_ex(part, "type", &type) ||
            !json_object_is_type(type, json_type_string) ||
            strcmp(json_object_get_string(type), "text") != 0 ||
            !json_object_object_get_ex(part, "text", &s) ||
            !json_object_is_type(s, json_type_string))
            continue;
        size_t len = (size_t)json_object_get_string_len(s);
        if (len > 0)
            pb_buf_append(&text, json_object_get_string(s), len);
    }
    /* Checked as a C string: a text that starts with \u0000 is empty to every reader. */
    if (text.data == NULL || text.data[0] == '\0') {
        pb_buf_free(&text);
        return NULL;
    }
    return text.data;
}

long
pb_provider_tokens(json_object *usage, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(usage, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    int64_t n = json_object_get_int64(v);
    return n < 0 ? -1 : n > PB_PROVIDER_TOKENS_MAX ? (long)PB_PROVIDER_TOKENS_MAX : (long)n;
}

static char
provider_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A bounded, NUL-tolerant, ASCII case-insensitive memmem (strcasestr stops at a NUL). */
static bool
provider_contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m > 0 && i + m <= n; i++) {
        size_t j = 0;
        while (j < m && provider_lower(hay[i + j]) == needle[j])
            j++;
        if (j == m)
            return true;
    }
    return false;
}

bool
pb_provider_body_mentions(const char *body, size_t len, const char *const *needles)
{
    if (body == NULL)
        return false;
    if (len > PROVIDER_SCAN_BYTES)
        len = PROVIDER_SCAN_BYTES;
    for (const char *const *n = needles; *n; n++)
        if (provider_contains(body, len, *n))
            return true;
    return false;
}

int
pb_provider_add_header(pb_http_request *r, pb_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    pb_assert(n >= 0);
    char *line = pb_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(line, (size_t)n + 1, fmt, ap);
    va_end(ap);
    /* A line break in a value (a key pasted with its newline) would split the request into
     * forged headers. Only the name, which is ours, goes into the message. */
    if (strpbrk(line, "\r\n") != NULL) {
        pb_error_set(err, PB_PROVIDER_BAD_CONF, "BAD_CONF header %.*s contains a line break",
                     (int)strcspn(line, ":\r\n"), line);
        free(line);
        return PB_ERR;
    }
    size_t count = 0;
    while (r->headers && r->headers[count])
        count++;
    r->headers = pb_xrealloc(r->headers, (count + 2) * sizeof(*r->headers));
    r->headers[count] = line;
    r->headers[count + 1] = NULL;
    return PB_OK;
}

int
pb_provider_add_conn(const pb_provider_conf *p, pb_http_request *r, pb_error *err)
{
    for (size_t i = 0; i < p->n_headers; i++)
        if (pb_provider_add_header(r, err, "%s", p->headers[i]) != PB_OK)
            return PB_ERR;
    /* providers.<name>.query, URL-encoded by config.c, after the adapter's own parameters. */
    if (p->query != NULL && r->url != NULL) {
        char *url = pb_xasprintf("%s%c%s", r->url, strchr(r->url, '?') ? '&' : '?', p->query);
        free(r->url);
        r->url = url;
    }
    r->ca_file = p->ca_file;
    r->cert_file = p->cert_file;
    r->key_file = p->key_file;
    r->proxy = p->proxy;
    return PB_OK;
}

void
pb_provider_set_json_body(pb_http_request *r, json_object *body)
{
    size_t len;
    const char *s = json_object_to_json_string_length(
        body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    free(r->body);
    r->body = pb_xstrndup(s, len);
    r->body_len = len;
    json_object_put(body);
}

json_object *
pb_provider_new_double(double d)
{
    /* json-c prints %.17g, so 0.2 would go out as 0.20000000000000001; the shortest form
     * that reads back as the same double is what the producer wrote. */
    char s[32];
    snprintf(s, sizeof(s), "%.15g", d);
    if (strtod(s, NULL) != d)
        snprintf(s, sizeof(s), "%.17g", d);
    return json_object_new_double_s(d, s);
}

const char *
pb_provider_response_id(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (n == 0 || n > PB_PROVIDER_RESPONSE_ID_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] > 0x7e)
            return NULL;
    return s;
}
