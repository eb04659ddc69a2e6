/* job.c -- job JSON -> pb_request (validated, bounded) and pb_result -> result JSON. No I/O.
 *
 * Job bytes come from anyone who can LPUSH, so parsing is bounded at every
 * step: the raw size before the tokenizer, nesting depth and UTF-8 validity
 * inside it, and counts and lengths per field after it. Any input, including
 * NULs and invalid UTF-8, ends as either a request or a "CODE sentence" error,
 * never a crash. Optional fields may be JSON null (many producers serialize
 * "not set" that way): null means absent. An unknown top-level field is a
 * BAD_FIELD naming it: a misplaced "temperature" or "tools" must not pass
 * silently. "messages" and "params" are parsed by request.c.
 *
 * The result writer is hand-rolled instead of building a json-c tree: it runs
 * once per job on the hot path, and one growing buffer is much cheaper than an
 * allocation per field. It escapes per RFC 8259 (no "\/") and replaces invalid
 * UTF-8 (upstream text is not trusted) with U+FFFD, so every result is valid
 * JSON in valid UTF-8 whatever the model sent. */
#include "planb/job.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "planb/utf8.h"

#define JOB_MAX_DEPTH    32            /* real jobs nest 3 levels; meta gets the rest */
#define JOB_TENANT_MAX   128           /* hashed into the cache key, so only a sanity bound */
#define JOB_DEADLINE_MIN 100           /* shorter than one upstream round trip */
#define JOB_DEADLINE_MAX 3600000       /* an hour: past that nobody is waiting for the answer */
#define JOB_DELAY_MAX    31536000000LL /* delay_ms: a year (claim.lua checks the same) */
#define JOB_RUN_AT_MAX   9007199254740991LL /* 2^53 - 1: exact in claim.lua's Lua numbers */
#define JOB_QUOTE_MAX    64                 /* bytes of a producer's value echoed in an error */
#define JOB_ID_RANDOM    12 /* random bytes in a generated id: 96 bits, 24 hex chars */
#define JOB_JSON_FLAGS   (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define JOB_HEAD_SCAN    65536 /* bytes of an oversized job searched for its id */
#define JOB_DEAD_HEAD    4096  /* bytes of an oversized job kept in its dead letter */

/* Characters allowed in a job id: it becomes part of Redis key names. */
static const char job_id_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789_.:@/+=-";

static const char *const job_cache_names[] = {"use", "skip", "refresh"};
static const char *const job_status_names[] = {"ok", "degraded", "invalid", "cancelled"};
static const char *const job_source_names[] = {"primary",     "fallback", "cache", "semantic_cache",
                                               "stale_cache", "degraded", "none"};

/* ---------------------------------------------------------------- parsing */

/* obj[key], or NULL when absent or JSON null. */
static json_object *
job_field(json_object *obj, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(obj, key, &v);
    return v;
}

/* v's string when v is a JSON string holding no NUL (a C string could not keep it). */
static const char *
job_string(json_object *v, size_t *len)
{
    if (!json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    *len = (size_t)json_object_get_string_len(v);
    return strlen(s) == *len ? s : NULL;
}

/* Copies at most JOB_QUOTE_MAX bytes of s for an error message, cut on a UTF-8 character
 * boundary (the message ends up in a JSON result) and marked "..." when cut. */
static const char *
job_quote(const char *s, char out[JOB_QUOTE_MAX + 4])
{
    size_t n = strlen(s);
    if (n <= JOB_QUOTE_MAX)
        return s;
    n = JOB_QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    memcpy(out, s, n);
    memcpy(out + n, "...", 4);
    return out;
}

/* Index of s in a NULL-free list of n names, or -1. */
static int
job_lookup(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

json_object *
pb_job_tokenize(const char *raw, size_t len, pb_error *err)
{
    /* One tokener per process, reset per job: a new one is a multi-KiB allocation per job
     * (a worker is one thread, and parsing never re-enters). */
    static json_tokener *tok;
    if (tok == NULL) {
        tok = json_tokener_new_ex(JOB_MAX_DEPTH);
        pb_assert(tok != NULL);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    }
    json_tokener_reset(tok);
    json_object *root = json_tokener_parse_ex(tok, raw, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    bool truncated = false;
    if (jerr == json_tokener_continue) {
        /* A bare literal ("null", "12") waits for a delimiter; json-c ends input at a NUL. */
        root = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        truncated = jerr != json_tokener_success;
    }
    json_tokener_reset(tok); /* drops what a failed parse built */
    /* json-c takes a NUL for the end of input, wherever it is: name it instead. */
    const char *nul = (jerr != json_tokener_success || end != len)
                          ? memchr(raw, '\0', end < len ? end + 1 : len)
                          : NULL;
    if (jerr == json_tokener_error_depth)
        pb_error_set(err, PB_JOB_BAD_JSON,
                     "BAD_JSON job is not valid JSON (nested deeper than %d levels)",
                     JOB_MAX_DEPTH);
    else if (truncated)
        pb_error_set(err, PB_JOB_BAD_JSON, "BAD_JSON job is not valid JSON (truncated)");
    else if (nul != NULL)
        pb_error_set(err, PB_JOB_BAD_JSON, "BAD_JSON job is not valid JSON (NUL byte at byte %zu)",
                     (size_t)(nul - raw));
    else if (jerr != json_tokener_success)
        pb_error_set(err, PB_JOB_BAD_JSON, "BAD_JSON job is not valid JSON (%s at byte %zu)",
                     json_tokener_error_desc(jerr), end);
    else if (end != len)
        pb_error_set(err, PB_JOB_BAD_JSON,
                     "BAD_JSON job is not valid JSON (unexpected text at byte %zu)", end);
    else if (!json_object_is_type(root, json_type_object))
        pb_error_set(err, PB_JOB_BAD_JSON, "BAD_JSON job must be a JSON object");
    else
        return root;
    json_object_put(root);
    return NULL;
}

static int
job_parse_id(pb_request *req, json_object *root, const pb_config *cfg, pb_error *err)
{
    json_object *v = job_field(root, "id");
    if (v == NULL)
        return PB_OK;
    size_t len;
    const char *s = job_string(v, &len);
    if (s == NULL || len == 0 || len > cfg->limits.id_max_bytes || strspn(s, job_id_chars) != len) {
        pb_error_set(err, PB_JOB_BAD_FIELD,
                     "BAD_FIELD id must be a string of 1..%zu characters [A-Za-z0-9_.:@/+=-]",
                     cfg->limits.id_max_bytes);
        return PB_ERR;
    }
    req->id = pb_xstrndup(s, len);
    return PB_OK;
}

/* The job's top-level fields. Anything else is refused by name: an OpenAI request field
 * there (temperature, tools, stream) would otherwise be silently ignored. */
static const char *const job_fields[] = {
    "id",          "messages",    "route",      "tenant",    "models",  "params",
    "deadline_ms", "critical",    "cache",      "reply",     "meta",    "submitted_at_ms",
    "stream",      "traceparent", "tracestate", "run_at_ms", "delay_ms"};

static int
job_check_fields(json_object *root, pb_error *err)
{
    json_object_object_foreach(root, key, val)
    {
        (void)val;
        if (job_lookup(key, job_fields, sizeof(job_fields) / sizeof(*job_fields)) >= 0)
            continue;
        char q[JOB_QUOTE_MAX + 4];
        if (strcmp(key, "model") == 0)
            pb_error_set(err, PB_JOB_BAD_FIELD,
                         "BAD_FIELD model is not a job field: name configured models in "
                         "\"models\", or let the route choose");
        else if (pb_request_is_openai_field(key))
            pb_error_set(err, PB_JOB_BAD_FIELD,
                         "BAD_FIELD %s is not a job field: OpenAI request parameters go in "
                         "\"params\"",
                         key);
        else
            pb_error_set(err, PB_JOB_BAD_FIELD, "BAD_FIELD %s is not a job field",
                         job_quote(key, q));
        return PB_ERR;
    }
    return PB_OK;
}

/* "route", then "models" (the job's override, else a copy of the route's chain). */
static int
job_parse_chain(pb_request *req, json_object *root, const pb_config *cfg, pb_error *err)
{
    char q[JOB_QUOTE_MAX + 4];
    size_t len;
    json_object *v = job_field(root, "route");
    req->route = cfg->default_route;
    if (v != NULL) {
        const char *s = job_string(v, &len);
        if (s == NULL) {
            pb_error_set(err, PB_JOB_BAD_FIELD, "BAD_FIELD route must be a string");
            return PB_ERR;
        }
        req->route = pb_config_route_index(cfg, s);
        if (req->route < 0) {
            pb_error_set(err, PB_JOB_UNKNOWN_ROUTE, "UNKNOWN_ROUTE route \"%s\" is not configured",
                         job_quote(s, q));
            return PB_ERR;
        }
    }
    v = job_field(root, "models");
    if (v == NULL) {
        const pb_route_conf *r = &cfg->routes[req->route];
        req->models = pb_xcalloc(r->chain_len, sizeof(int));
        memcpy(req->models, r->chain, r->chain_len * sizeof(int));
        req->n_models = r->chain_len;
        return PB_OK;
    }
    size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
    if (n == 0 || n > PB_CONFIG_MAX_CHAIN) {
        pb_error_set(err, PB_JOB_BAD_FIELD,
                     "BAD_FIELD models must be an array of 1..%d model names", PB_CONFIG_MAX_CHAIN);
        return PB_ERR;
    }
    req->models = pb_xcalloc(n, sizeof(int));
    for (size_t i = 0; i < n; i++) {
        const char *s = job_string(json_object_array_get_idx(v, i), &len);
        if (s == NULL) {
            pb_error_set(err, PB_JOB_BAD_FIELD, "BAD_FIELD models[%zu] must be a string", i);
            return PB_ERR;
        }
        int m = pb_config_model_index(cfg, s);
        if (m < 0) {
            pb_error_set(err, PB_JOB_UNKNOWN_MODEL,
                         "UNKNOWN_MODEL models[%zu]: \"%s\" is not configured", i, job_quote(s, q));
            return PB_ERR;
        }
        req->models[req->n_models++] = m;
    }
    return PB_OK;
}

/* An optional boolean field; false when absent. */
static int
job_parse_bool(json_object *root, const char *key, bool *out, pb_error *err)
{
    json_object *v = job_field(root, key);
    *out = false;
    if (v == NULL)
        return PB_OK;
    if (!json_object_is_type(v, json_type_boolean)) {
        pb_error_set(err, PB_JOB_BAD_FIELD, "BAD_FIELD %s must be true or false", key);
        return PB_ERR;
    }
    *out = json_object_get_boolean(v);
    return PB_OK;
}

/* traceparent and tracestate (W3C Trace Context): the caller's trace, continued by the job's
 * spans. A malformed traceparent never refuses the job, which matters more than its trace:
 * it is ignored (and counted); a tracestate goes only with a valid traceparent. */
static void
job_parse_trace(pb_request *req, json_object *root)
{
    size_t len;
    json_object *v = job_field(root, "traceparent");
    if (v == NULL)
        return;
    const char *s = job_string(v, &len);
    if (s == NULL || !pb_traceparent_parse(s, len, &req->parent_trace)) {
        req->bad_traceparent = true;
        return;
    }
    req->has_trace = true;
    v = job_field(root, "tracestate");
    s = v != NULL ? job_string(v, &len) : NULL;
    if (s != NULL && pb_tracestate_ok(s, len))
        req->tracestate = pb_xstrndup(s, len);
}

/* An integer field v (present) of 0..max into *out; else BAD_FIELD naming it, its range, unit. */
static int
job_parse_ms(json_object *v, const char *name, int64_t max, const char *unit, int64_t *out,
             pb_error *err)
{
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
        json_object_get_int64(v) > max) {
        pb_error_set(err, PB_JOB_BAD_FIELD, "BAD_FIELD %s must be an integer from 0 to %lld%s",
                     name, (long long)max, unit);
        return PB_ERR;
    }
    *out = json_object_get_int64(v);
    return PB_OK;
}

/* run_at_ms or delay_ms (not both). claim.lua makes the wait (it alone knows the job's queue
 * and uses Redis's clock); here the values are checked, so a bad one is refused, not run. */
static int
job_parse_delay(pb_request *req, json_object *root, pb_error *err)
{
    json_object *at = job_field(root, "run_at_ms"), *d = job_field(root, "delay_ms");
    req->delay_ms = -1;
    if (at != NULL && d != NULL) {
        pb_error_set(err, PB_JOB_BAD_FIELD, "BAD_FIELD run_at_ms and delay_ms exclude each other");
        return PB_ERR;
    }
    if (at != NULL)
        return job_parse_ms(at, "run_at_ms", JOB_RUN_AT_MAX, " (epoch ms)", &req->run_at_ms, err);
    if (d != NULL)
        return job_parse_ms(d, "delay_ms", JOB_DELAY_MAX, "", &req->delay_ms, err);
    return PB_OK;
}

int64_t
pb_job_queued_ms(const pb_request *req, int64_t claimed_wall_ms)
{
    if (req == NULL || (req->submitted_at_ms <= 0 && req->run_at_ms <= 0))
        return -1;
    int64_t from = req->submitted_at_ms > req->run_at_ms ? req->submitted_at_ms : req->run_at_ms;
    return claimed_wall_ms > from ? claimed_wall_ms - from : 0;
}

/* tenant, deadline_ms, critical, reply, cache, meta, submitted_at_ms. */
static int
job_parse_options(pb_request *req, json_object *root, const pb_config *cfg, pb_error *err)
{
    size_t len;
    json_object *v = job_field(root, "tenant");
    if (v != NULL) {
        const char *s = job_string(v, &len);
        if (s == NULL || len == 0 || len > JOB_TENANT_MAX) {
            pb_error_set(err, PB_JOB_BAD_FIELD, "BAD_FIELD tenant must be a string of 1..%d bytes",
                         JOB_TENANT_MAX);
            return PB_ERR;
        }
        req->tenant = pb_xstrndup(s, len);
    }
    req->deadline_ms = cfg->routes[req->route].deadline_ms;
    v = job_field(root, "deadline_ms");
    if (v != NULL) {
        int64_t n = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || n < JOB_DEADLINE_MIN ||
            n > JOB_DEADLINE_MAX) {
            pb_error_set(err, PB_JOB_BAD_FIELD,
                         "BAD_FIELD deadline_ms must be an integer from %d to %d", JOB_DEADLINE_MIN,
                         JOB_DEADLINE_MAX);
            return PB_ERR;
        }
        req->deadline_ms = n;
    }
    if (job_parse_bool(root, "critical", &req->critical, err) != PB_OK ||
        job_parse_bool(root, "reply", &req->reply, err) != PB_OK ||
        job_parse_bool(root, "stream", &req->stream, err) != PB_OK)
        return PB_ERR;
    v = job_field(root, "cache");
    if (v != NULL) {
        const char *s = job_string(v, &len);
        int c = s ? job_lookup(s, job_cache_names, 3) : -1;
        if (c < 0) {
            pb_error_set(err, PB_JOB_BAD_FIELD,
                         "BAD_FIELD cache must be one of use, skip, refresh");
            return PB_ERR;
        }
        req->cache = (pb_cache_mode)c;
    }
    v = job_field(root, "meta");
    if (v != NULL) {
        /* Serializing caches the text inside v, freed with it; the size must be measured
         * the way the result will print it. */
        size_t n = 0;
        json_object_to_json_string_length(v, JOB_JSON_FLAGS, &n);
        if (n > cfg->limits.meta_max_bytes) {
            pb_error_set(err, PB_JOB_TOO_LARGE, "TOO_LARGE meta is %zu bytes, limit %zu", n,
                         cfg->limits.meta_max_bytes);
            return PB_ERR;
        }
        req->meta = json_object_get(v);
    }
    v = job_field(root, "submitted_at_ms");
    if (v != NULL) {
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
            pb_error_set(err, PB_JOB_BAD_FIELD,
                         "BAD_FIELD submitted_at_ms must be a non-negative integer");
            return PB_ERR;
        }
        req->submitted_at_ms = json_object_get_int64(v);
    }
    if (job_parse_delay(req, root, err) != PB_OK)
        return PB_ERR;
    job_parse_trace(req, root);
    return PB_OK;
}

/* Should the kernel refuse getrandom (seccomp, ancient kernel), time, pid and a counter
 * still make ids unique within this host. */
char *
pb_job_new_id(void)
{
    static const char hex[] = "0123456789abcdef";
    static uint64_t fallback_counter;
    unsigned char rnd[JOB_ID_RANDOM];
    ssize_t got;
    do
        got = getrandom(rnd, sizeof(rnd), GRND_NONBLOCK);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof(rnd)) {
        uint64_t a = (uint64_t)pb_wall_ms(), b = ((uint64_t)getpid() << 32) ^ ++fallback_counter;
        uint32_t c = (uint32_t)pb_mono_ms();
        memcpy(rnd, &a, 8);
        memcpy(rnd + 8, &c, 4);
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] ^= (unsigned char)(b >> (8 * (i % 8)));
    }
    char *id = pb_xmalloc(3 + 2 * sizeof(rnd) + 1);
    memcpy(id, "pb-", 3);
    for (size_t i = 0; i < sizeof(rnd); i++) {
        id[3 + 2 * i] = hex[rnd[i] >> 4];
        id[4 + 2 * i] = hex[rnd[i] & 15];
    }
    id[3 + 2 * sizeof(rnd)] = '\0';
    return id;
}

/* Scans a JSON string starting at raw[*i] == '"'; *i ends past the closing quote. Returns its
 * length, or -1 when it is cut off; *escaped tells whether it has a backslash. */
static long
job_head_string(const char *raw, size_t n, size_t *i, bool *escaped)
{
    size_t start = ++*i;
    *escaped = false;
    while (*i < n && raw[*i] != '"') {
        if (raw[*i] == '\\') {
            *escaped = true;
            ++*i;
        }
        ++*i;
    }
    if (*i >= n)
        return -1;
    return (long)(*i)++ - (long)start;
}

/* The top-level "id" of a job too large to parse, read from its first JOB_HEAD_SCAN bytes
 * without building a tree: a plain valid id string, else NULL. Caller frees. So a producer
 * blocked on planb:reply:<id> still gets its TOO_LARGE answer. */
static char *
job_head_id(const char *raw, size_t len, size_t id_max)
{
    size_t n = len < JOB_HEAD_SCAN ? len : JOB_HEAD_SCAN, i = 0;
    int depth = 0;
    bool want_key = false, esc;
    while (i < n) {
        char c = raw[i];
        if (c == '{' || c == '[') {
            depth++;
            want_key = depth == 1 && c == '{';
            i++;
        } else if (c == '}' || c == ']') {
            depth--;
            i++;
        } else if (c == ',') {
            want_key = depth == 1;
            i++;
        } else if (c == '"') {
            size_t at = i + 1;
            long kl = job_head_string(raw, n, &i, &esc);
            if (kl < 0)
                return NULL;
            if (!(depth == 1 && want_key))
                continue;
            want_key = false;
            bool is_id = kl == 2 && !esc && memcmp(raw + at, "id", 2) == 0;
            while (i < n && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r'))
                i++;
            if (i >= n || raw[i] != ':')
                return NULL;
            i++;
            while (i < n && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r'))
                i++;
            if (!is_id)
                continue;
            if (i >= n || raw[i] != '"')
                return NULL;
            at = i + 1;
            long vl = job_head_string(raw, n, &i, &esc);
            if (vl <= 0 || esc || (size_t)vl > id_max)
                return NULL;
            char *id = pb_xstrndup(raw + at, (size_t)vl);
            if (strspn(id, job_id_chars) != (size_t)vl) {
                free(id);
                return NULL;
            }
            return id;
        } else {
            i++;
        }
    }
    return NULL;
}

int
pb_job_parse(const char *raw, size_t len, const pb_config *cfg, pb_request **out, char **bad_id,
             pb_error *err)
{
    *out = NULL;
    if (bad_id != NULL)
        *bad_id = NULL;
    /* Checked before tokenizing: a huge job must cost nothing to refuse. */
    if (len > cfg->limits.job_max_bytes) {
        pb_error_set(err, PB_JOB_TOO_LARGE, "TOO_LARGE job is %zu bytes, limit %zu", len,
                     cfg->limits.job_max_bytes);
        if (bad_id != NULL)
            *bad_id = job_head_id(raw, len, cfg->limits.id_max_bytes);
        return PB_ERR;
    }
    json_object *root = pb_job_tokenize(raw, len, err);
    if (root == NULL)
        return PB_ERR;
    int rc = pb_job_parse_object(root, len, cfg, out, bad_id, err);
    json_object_put(root);
    return rc;
}

bool
pb_job_asks_stream(const char *raw, size_t len, const pb_config *cfg)
{
    if (len > cfg->limits.job_max_bytes)
        return false;
    json_object *root = pb_job_tokenize(raw, len, NULL);
    json_object *v = root ? job_field(root, "stream") : NULL;
    bool streams =
        v != NULL && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
    json_object_put(root);
    return streams;
}

int
pb_job_parse_object(json_object *root, size_t len, const pb_config *cfg, pb_request **out,
                    char **bad_id, pb_error *err)
{
    *out = NULL;
    if (bad_id != NULL)
        *bad_id = NULL;
    pb_request *req = pb_xcalloc(1, sizeof(*req));
    req->max_tokens = -1;
    req->temperature = NAN;
    req->top_p = NAN;
    int rc = PB_ERR;
    if (job_parse_id(req, root, cfg, err) == PB_OK && job_check_fields(root, err) == PB_OK &&
        pb_request_parse_messages(req, job_field(root, "messages"), cfg->limits.max_messages,
                                  err) == PB_OK &&
        job_parse_chain(req, root, cfg, err) == PB_OK &&
        pb_request_parse_params(req, job_field(root, "params"), len, err) == PB_OK &&
        job_parse_options(req, root, cfg, err) == PB_OK)
        rc = PB_OK;
    if (rc != PB_OK) {
        /* The id is parsed first, so any later error can still be reported under it. */
        if (bad_id != NULL && req->id != NULL)
            *bad_id = pb_xstrdup(req->id);
        pb_request_free(req);
        return PB_ERR;
    }
    if (req->id == NULL) {
        req->id = pb_job_new_id();
        req->id_generated = true;
    }
    *out = req;
    return PB_OK;
}

const char *
pb_job_status_name(pb_status s)
{
    return (unsigned)s <= PB_STATUS_CANCELLED ? job_status_names[s] : "unknown";
}

const char *
pb_job_source_name(pb_source s)
{
    return (unsigned)s <= PB_SOURCE_NONE ? job_source_names[s] : "unknown";
}

/* ---------------------------------------------------------------- result JSON */

typedef struct job_out {
    char *p;    /* NUL-terminated once finished */
    size_t len; /* bytes written */
    size_t cap; /* bytes allocated */
} job_out;

static void
job_out_reserve(job_out *o, size_t n)
{
    if (o->len + n <= o->cap)
        return;
    size_t cap = o->cap * 2;
    if (cap < o->len + n)
        cap = o->len + n;
    o->p = pb_xrealloc(o->p, cap);
    o->cap = cap;
}

static void
job_out_raw(job_out *o, const char *s, size_t n)
{
    job_out_reserve(o, n);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define job_out_lit(o, lit) job_out_raw((o), (lit), sizeof(lit) - 1)

static void
job_out_i64(job_out *o, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    job_out_raw(o, num, (size_t)n);
}

/* Writes n bytes of s as a JSON string. Runs of plain ASCII are copied in one go. */
static void
job_out_strn(job_out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    job_out_reserve(o, n + 2);
    o->p[o->len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        job_out_raw(o, s + i, run - i);
        i = run;
        if (i == n)
            break;
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t k = pb_utf8_seq_len(p + i, n - i);
            if (k == 0)
                job_out_lit(o, "\xEF\xBF\xBD"); /* U+FFFD REPLACEMENT CHARACTER */
            else
                job_out_raw(o, s + i, k);
            i += k ? k : 1;
            continue;
        }
        char esc[6] = {'\\', (char)c};
        size_t esc_len = 2;
        switch (c) {
        case '"':
        case '\\':
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc_len = 6;
        }
        job_out_raw(o, esc, esc_len);
        i++;
    }
    job_out_lit(o, "\"");
}

static void
job_out_str(job_out *o, const char *s)
{
    job_out_strn(o, s, strlen(s));
}

/* Name of model m, or NULL when m is not a model index. */
static const pb_model_conf *
job_model(const pb_config *cfg, int m)
{
    return m >= 0 && (size_t)m < cfg->n_models ? &cfg->models[m] : NULL;
}

char *
pb_job_result_to_json(const pb_result *res, const pb_config *cfg, size_t *len)
{
    job_out o = {0};
    size_t content_len = res->content ? strlen(res->content) : 0;
    /* One allocation for the usual case: fixed fields ~200 bytes, attempts ~70 each. */
    size_t calls_len = res->tool_calls ? strlen(res->tool_calls) : 0;
    job_out_reserve(&o,
                    384 + 2 * (content_len + content_len / 8) + calls_len + 80 * res->n_attempts);
    job_out_lit(&o, "{\"id\":");
    if (res->id)
        job_out_str(&o, res->id);
    else
        job_out_lit(&o, "null");
    job_out_lit(&o, ",\"status\":");
    job_out_str(&o, pb_job_status_name(res->status));
    if (res->content) {
        job_out_lit(&o, ",\"content\":");
        job_out_strn(&o, res->content, content_len);
        /* The OpenAI-shaped assistant message: the tool calls are JSON text the adapters
         * wrote (valid UTF-8, checked there). */
        job_out_lit(&o, ",\"message\":{\"role\":\"assistant\",\"content\":");
        if (content_len > 0 || res->tool_calls == NULL)
            job_out_strn(&o, res->content, content_len);
        else
            job_out_lit(&o, "null");
        if (res->tool_calls) {
            job_out_lit(&o, ",\"tool_calls\":");
            job_out_raw(&o, res->tool_calls, strlen(res->tool_calls));
        }
        if (res->refusal) {
            job_out_lit(&o, ",\"refusal\":");
            job_out_str(&o, res->refusal);
        }
        job_out_lit(&o, "}");
    }
    if (res->cut) {
        job_out_lit(&o, ",\"cut\":true,\"cut_reason\":");
        job_out_str(&o, res->cut_reason ? res->cut_reason : "");
    }
    if (res->continued)
        job_out_lit(&o, ",\"continued\":true");
    if (res->finish_reason) {
        job_out_lit(&o, ",\"finish_reason\":");
        job_out_str(&o, res->finish_reason);
    }
    if (res->n_dropped > 0) {
        job_out_lit(&o, ",\"dropped_params\":[");
        for (size_t i = 0; i < res->n_dropped; i++) {
            if (i > 0)
                job_out_lit(&o, ",");
            job_out_str(&o, res->dropped[i]);
        }
        job_out_lit(&o, "]");
    }
    if (res->logprobs) {
        job_out_lit(&o, ",\"logprobs\":");
        job_out_raw(&o, res->logprobs, strlen(res->logprobs));
    }
    if (res->error) {
        job_out_lit(&o, ",\"error\":");
        job_out_str(&o, res->error);
    }
    const pb_model_conf *m = job_model(cfg, res->model);
    if (m != NULL) {
        job_out_lit(&o, ",\"model\":");
        job_out_str(&o, m->name);
        job_out_lit(&o, ",\"provider\":");
        job_out_str(&o, cfg->providers[m->provider].name);
    }
    if (res->source != PB_SOURCE_NONE) {
        job_out_lit(&o, ",\"source\":");
        job_out_str(&o, pb_job_source_name(res->source));
    }
    job_out_lit(&o, ",\"attempts\":[");
    for (size_t i = 0; i < res->n_attempts; i++) {
        const pb_attempt *a = &res->attempts[i];
        const pb_model_conf *am = job_model(cfg, a->model);
        job_out_raw(&o, i ? ",{\"model\":" : "{\"model\":", i ? 10 : 9);
        if (am != NULL)
            job_out_str(&o, am->name);
        else
            job_out_lit(&o, "null");
        job_out_lit(&o, ",\"try\":");
        job_out_i64(&o, a->try_no);
        job_out_lit(&o, ",\"outcome\":");
        job_out_strn(&o, a->outcome, strnlen(a->outcome, sizeof(a->outcome)));
        job_out_lit(&o, ",\"ms\":");
        job_out_i64(&o, a->elapsed_ms);
        job_out_lit(&o, "}");
    }
    job_out_lit(&o, "]");
    if (res->prompt_tokens >= 0 || res->completion_tokens >= 0) {
        job_out_lit(&o, ",\"usage\":{");
        if (res->prompt_tokens >= 0) {
            job_out_lit(&o, "\"prompt_tokens\":");
            job_out_i64(&o, res->prompt_tokens);
        }
        if (res->completion_tokens >= 0) {
            if (res->prompt_tokens >= 0)
                job_out_lit(&o, ",");
            job_out_lit(&o, "\"completion_tokens\":");
            job_out_i64(&o, res->completion_tokens);
        }
        if (res->cached_tokens > 0) {
            job_out_lit(&o, ",\"cached_tokens\":");
            job_out_i64(&o, res->cached_tokens);
        }
        if (res->reasoning_tokens > 0) {
            job_out_lit(&o, ",\"reasoning_tokens\":");
            job_out_i64(&o, res->reasoning_tokens);
        }
        job_out_lit(&o, "}");
    }
    if (res->has_cost) {
        char num[48];
        int n = snprintf(num, sizeof(num), ",\"cost_usd\":%.8f", res->cost_usd);
        job_out_raw(&o, num, (size_t)n);
    }
    if (res->queued_ms >= 0) {
        job_out_lit(&o, ",\"queued_ms\":");
        job_out_i64(&o, res->queued_ms);
    }
    job_out_lit(&o, ",\"latency_ms\":");
    job_out_i64(&o, res->latency_ms);
    if (res->trace_id) {
        job_out_lit(&o, ",\"trace_id\":");
        job_out_str(&o, res->trace_id);
    }
    if (res->worker) {
        job_out_lit(&o, ",\"worker\":");
        job_out_str(&o, res->worker);
    }
    if (res->cache_age_s >= 0) {
        job_out_lit(&o, ",\"cache_age_s\":");
        job_out_i64(&o, res->cache_age_s);
    }
    if (res->similarity >= 0 && res->matched_question) {
        char num[32];
        int n = snprintf(num, sizeof(num), ",\"similarity\":%.4f", res->similarity);
        job_out_raw(&o, num, (size_t)n);
        job_out_lit(&o, ",\"matched_question\":");
        job_out_str(&o, res->matched_question);
    }
    if (res->meta) {
        /* json-c's serializer takes a non-const object only because it caches the text in
         * it; meta is not otherwise changed. */
        size_t meta_len = 0;
        const char *meta = json_object_to_json_string_length((json_object *)(uintptr_t)res->meta,
                                                             JOB_JSON_FLAGS, &meta_len);
        job_out_lit(&o, ",\"meta\":");
        job_out_raw(&o, meta, meta_len);
    }
    job_out_raw(&o, "}", 2); /* with the terminating NUL */
    *len = o.len - 1;
    return o.p;
}

/* ---------------------------------------------------------------- dead letters */

/* Base64 of bytes that cannot be stored as a JSON string (invalid UTF-8, NUL). Caller frees. */
static char *
job_base64(const char *p, size_t n)
{
    char *out = pb_xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)p, (int)n);
    return out;
}

/* Lower-case hex SHA-256 of the bytes into out (65 bytes). */
static void
job_sha256_hex(const char *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int md_len = 0;
    EVP_Digest(p, n, md, &md_len, EVP_sha256(), NULL);
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

char *
pb_job_dead_entry(const char *raw, size_t raw_len, size_t keep_max, const char *id,
                  const char *error, const char *worker, int64_t at_wall_ms)
{
    json_object *o = json_object_new_object();
    if (id)
        json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "error", json_object_new_string(error ? error : ""));
    json_object_object_add(o, "worker", json_object_new_string(worker));
    json_object_object_add(o, "at_ms", json_object_new_int64(at_wall_ms));
    /* Oversized: a bounded head (cut on a character boundary), the length and a hash. */
    bool cut = raw_len > keep_max;
    size_t n = cut && raw_len > JOB_DEAD_HEAD ? JOB_DEAD_HEAD : raw_len;
    while (cut && n > 0 && n < raw_len && ((unsigned char)raw[n] & 0xC0) == 0x80)
        n--;
    /* json-c copies string bytes through unchecked, so only text may go in as a string. */
    if (pb_utf8_is_text(raw, n)) {
        json_object_object_add(o, cut ? "job_head" : "job",
                               json_object_new_string_len(raw, (int)n));
    } else {
        char *b64 = job_base64(raw, n);
        json_object_object_add(o, cut ? "job_head_base64" : "job_base64",
                               json_object_new_string(b64));
        free(b64);
    }
    if (cut) {
        char sha[65];
        job_sha256_hex(raw, raw_len, sha);
        json_object_object_add(o, "job_bytes", json_object_new_int64((int64_t)raw_len));
        json_object_object_add(o, "job_sha256", json_object_new_string(sha));
    }
    char *s = pb_xstrdup(json_object_to_json_string_ext(o, JOB_JSON_FLAGS));
    json_object_put(o);
    return s;
}
