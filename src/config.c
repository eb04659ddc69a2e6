/* config.c -- planb.json parsed, validated and defaulted into a pb_config.
 *
 * Everything an operator can get wrong is caught here, at start-up or on
 * SIGHUP, rather than as a strange failure under load: wrong types, values
 * out of range, names that refer to nothing, and unknown keys (a typo such as
 * "retires" must not silently fall back to the default). Every error names
 * the JSON path and why: `CONFIG routes.default.chain[1]: unknown model "claude"`.
 *
 * This is the only module that reads secrets from the environment (provider
 * API keys, the Redis password). Error messages name the variable, never its
 * value, and never quote the Redis URL, which may hold a password.
 *
 * Defaulting rule worth knowing: a model's connect_timeout_ms must not exceed
 * its timeout_ms. When connect_timeout_ms is left out, the default (2000) is
 * clamped to timeout_ms; when it is given explicitly and is larger, that is an
 * error, because the operator asked for something that cannot happen. */
#include "planb/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "planb/buf.h"
#include "planb/utf8.h"

#define CONFIG_ERR        1             /* pb_error.code of every config error */
#define CONFIG_MAX_BYTES  (1024 * 1024) /* real configs are a few KiB */
#define CONFIG_MAX_DEPTH  32            /* the schema nests 4 levels; the rest is slack */
#define CONFIG_NAME_MAX   64            /* names end up in Redis keys and metric labels */
#define CONFIG_PATH_MAX   96            /* "providers." + a name */
#define CONFIG_MAX_QUEUES 64            /* one BLMOVE round-robin per queue */
#define CONFIG_REPLY_MAX  (64 * 1024)   /* degraded_reply is shown to end users */
#define CONFIG_DAY_S      (24 * 60 * 60)
#define CONFIG_RPM_MAX    1000000 /* ratelimit.lua keeps one zset entry per request */
#define CONFIG_KIB        1024
#define CONFIG_MIB        (1024 * 1024)
/* A streamed reply's raw bytes per byte of answer by default: an OpenAI chunk wraps a token
 * of ~4 bytes in ~150-250 bytes of JSON and SSE framing (more with logprobs); the raw bytes
 * are parsed as they come, never buffered, so the bound is about time, not memory. */
#define CONFIG_STREAM_RAW_PER_BYTE 64
#define CONFIG_STREAM_RAW_MAX      ((size_t)4 << 30) /* limits.stream_raw_max_bytes' upper end */
#define CONFIG_DEFAULT_URL         "redis://127.0.0.1:6379/0"
#define CONFIG_HEADER_NAME_MAX     64 /* longer than any real header name */
#define CONFIG_HEADER_VALUE_MAX                                                                    \
    4096 /* a JWT fits; a header line beyond 8 KiB is refused by many servers */
#define CONFIG_HEADERS_MAX_BYTES 16384 /* all of a provider's extra header lines together */
#define CONFIG_DEFAULT_DEGRADED                                                                    \
    "The AI assistant is temporarily unavailable. Please try again later or contact customer "     \
    "support."

/* Characters allowed in queue names and the key prefix (they become Redis key parts). */
static const char config_key_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789_.:-";
/* Provider, model and route names: the same plus what upstream model ids use ("org/model@v"). */
static const char config_name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789_.:-@/+=";

static const char *const config_top_keys[] = {
    "redis",        "workers",        "concurrency",   "queues",
    "result_ttl_s", "reply_ttl_s",    "claim_batch",   "drain_timeout_ms",
    "lease_ms",     "max_deliveries", "events_maxlen", "stream_maxlen",
    "stream_ttl_s", "limits",         "providers",     "models",
    "routes",       "cache",          "breaker",       "monitor",
    "http",         "admin",          "telemetry",     NULL};
static const char *const config_redis_keys[] = {"url",
                                                "password_env",
                                                "user",
                                                "prefix",
                                                "sentinels",
                                                "master_name",
                                                "sentinel_user",
                                                "sentinel_password_env",
                                                "sentinel_tls",
                                                "tls",
                                                "timeout_ms",
                                                "wait_replicas",
                                                "wait_timeout_ms",
                                                NULL};
static const char *const config_cache_redis_keys[] = {"url",
                                                      "password_env",
                                                      "user",
                                                      "sentinels",
                                                      "master_name",
                                                      "sentinel_user",
                                                      "sentinel_password_env",
                                                      "sentinel_tls",
                                                      "tls",
                                                      "timeout_ms",
                                                      NULL};
static const char *const config_tls_keys[] = {"ca_file",     "ca_dir", "cert_file",   "key_file",
                                              "server_name", "verify", "min_version", NULL};
static const char *const config_limits_keys[] = {
    "job_max_bytes",  "max_messages", "reply_max_bytes",  "stream_raw_max_bytes",
    "meta_max_bytes", "id_max_bytes", "dead_max_entries", NULL};
static const char *const config_provider_keys[] = {"type",
                                                   "base_url",
                                                   "api_key_env",
                                                   "anthropic_version",
                                                   "ca_file",
                                                   "cert_file",
                                                   "key_file",
                                                   "proxy",
                                                   "headers",
                                                   "query",
                                                   "api_version",
                                                   "bearer_token_env",
                                                   "region",
                                                   "aws_access_key_id_env",
                                                   "aws_secret_access_key_env",
                                                   "aws_session_token_env",
                                                   NULL};
static const char *const config_model_keys[] = {"provider",
                                                "model",
                                                "tier",
                                                "timeout_ms",
                                                "connect_timeout_ms",
                                                "max_tokens_default",
                                                "rpm",
                                                "tpm",
                                                "capabilities",
                                                "price_in_per_mtok",
                                                "price_out_per_mtok",
                                                "first_token_ms",
                                                "idle_ms",
                                                NULL};
static const char *const config_route_keys[] = {"chain",
                                                "retries",
                                                "backoff_ms",
                                                "backoff_max_ms",
                                                "deadline_ms",
                                                "critical_min_tier",
                                                "degraded_reply",
                                                "semantic_critical",
                                                "semantic_tools",
                                                "hedge_after_ms",
                                                "hedge_adaptive",
                                                "stream_continue",
                                                NULL};
static const char *const config_cache_keys[] = {"ttl_s", "stale_if_error_s", "semantic", "redis",
                                                NULL};
static const char *const config_breaker_keys[] = {"failures",
                                                  "window_s",
                                                  "open_s",
                                                  "failure_rate",
                                                  "min_calls",
                                                  "consecutive",
                                                  "slow_call_ms",
                                                  "slow_call_rate",
                                                  "half_open_calls",
                                                  "max_open_s",
                                                  "max_hold_s",
                                                  "refused_hold_s",
                                                  NULL};
static const char *const config_monitor_keys[] = {"stats_interval_s", "alert_fallback_rate",
                                                  "metrics_listen", NULL};
static const char *const config_http_keys[] = {"listen",
                                               "queue",
                                               "max_connections",
                                               "max_body_bytes",
                                               "max_header_bytes",
                                               "client_timeout_ms",
                                               "request_read_timeout_ms",
                                               "max_bodies_bytes",
                                               "max_queue",
                                               "wait_grace_ms",
                                               "keys",
                                               "tenant_header",
                                               "tls",
                                               NULL};
static const char *const config_http_tls_keys[] = {"cert_file", "key_file", NULL};
static const char *const config_http_key_keys[] = {"name", "tenant",      "sha256",
                                                   "rpm",  "concurrency", NULL};
static const char *const config_admin_keys[] = {"listen",     "keys",          "web_dir",
                                                "refresh_ms", "session_ttl_s", NULL};
static const char *const config_admin_key_keys[] = {"name", "role", "sha256", NULL};
static const char *const config_telemetry_keys[] = {
    "otlp_endpoint",     "headers",         "encoding",        "sample",
    "keep_fallbacks",    "capture_content", "max_queue_spans", "batch_spans",
    "batch_interval_ms", "timeout_ms",      "service_name",    NULL};
static const char *const config_semantic_keys[] = {
    "enabled", "threshold",  "embedder",    "mode",          "provider",
    "model",   "timeout_ms", "max_entries", "shadow_sample", NULL};

/* Where each table above applies, for pb_config_each_key: a section's dotted path ("" the top
 * level, "<name>" any name of a map, "[]" any element of an array). A table missing here would
 * hide its keys from the docs test, so every config_*_keys table has its row. */
static const struct {
    const char *path;        /* dotted path of the object the table checks */
    const char *const *keys; /* the keys the parser accepts there */
} config_sections[] = {
    {"", config_top_keys},
    {"redis", config_redis_keys},
    {"limits", config_limits_keys},
    {"providers.<name>", config_provider_keys},
    {"models.<name>", config_model_keys},
    {"routes.<name>", config_route_keys},
    {"cache", config_cache_keys},
    {"cache.redis", config_cache_redis_keys},
    {"redis.tls", config_tls_keys},
    {"redis.sentinel_tls", config_tls_keys},
    {"cache.redis.tls", config_tls_keys},
    {"cache.redis.sentinel_tls", config_tls_keys},
    {"cache.semantic", config_semantic_keys},
    {"breaker", config_breaker_keys},
    {"monitor", config_monitor_keys},
    {"http", config_http_keys},
    {"http.keys[]", config_http_key_keys},
    {"http.tls", config_http_tls_keys},
    {"admin", config_admin_keys},
    {"admin.keys[]", config_admin_key_keys},
    {"telemetry", config_telemetry_keys},
};

/* True when path names a section of config_sections, or a map whose entries are one
 * ("providers" for "providers.<name>"): such a key is a container, not a setting. */
static bool
config_is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof(config_sections) / sizeof(config_sections[0]); i++) {
        const char *p = config_sections[i].path;
        if (strcmp(p, path) == 0 || (strncmp(p, path, n) == 0 && strcmp(p + n, ".<name>") == 0))
            return true;
    }
    return false;
}

/* The docs test (tests/unit/test_docs_config.c) compares docs/config.md with what the parser
 * accepts; walking the parser's own tables keeps that list from being a copy that drifts. */
void
pb_config_each_key(void (*fn)(const char *key, void *arg), void *arg)
{
    char key[CONFIG_PATH_MAX + 64];
    for (size_t i = 0; i < sizeof(config_sections) / sizeof(config_sections[0]); i++) {
        const char *path = config_sections[i].path;
        for (const char *const *k = config_sections[i].keys; *k != NULL; k++) {
            snprintf(key, sizeof(key), "%s%s%s", path, *path != '\0' ? "." : "", *k);
            /* sentinel_tls is both: true/false, or an object of TLS options */
            if (!config_is_section(key) || strstr(key, "sentinel_tls") != NULL)
                fn(key, arg);
        }
    }
}

/* Fills err with "CONFIG <path>.<key>: <why>" and returns PB_ERR. path "" is the top level;
 * key NULL names path itself; a key starting with '[' is an array index. */
static int config_fail(pb_error *err, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
config_fail(pb_error *err, const char *path, const char *key, const char *fmt, ...)
{
    char why[PB_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (key == NULL)
        key = "";
    const char *dot = (*path != '\0' && *key != '\0' && *key != '[') ? "." : "";
    const char *space = (*path != '\0' || *key != '\0') ? " " : "";
    pb_error_set(err, CONFIG_ERR, "CONFIG%s%s%s%s: %s", space, path, dot, key, why);
    return PB_ERR;
}

static bool
config_in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

/* Rejects keys not in allowed: typos must not pass silently. */
static int
config_check_keys(json_object *obj, const char *path, const char *const *allowed, pb_error *err)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        if (!config_in_list(key, allowed))
            return config_fail(err, path, key, "unknown key");
    }
    return PB_OK;
}

/* obj[key] when present (a JSON null counts as present, and is then a type error). */
static bool
config_get(json_object *obj, const char *key, json_object **val)
{
    return json_object_object_get_ex(obj, key, val);
}

/* Reads obj[key] as an integer in [min, max], def when absent. */
static int
config_i64(json_object *obj, const char *path, const char *key, int64_t def, int64_t min,
           int64_t max, int64_t *out, pb_error *err)
{
    json_object *v;
    if (!config_get(obj, key, &v)) {
        *out = def;
        return PB_OK;
    }
    int64_t n = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || n < min || n > max)
        return config_fail(err, path, key, "must be an integer from %" PRId64 " to %" PRId64, min,
                           max);
    *out = n;
    return PB_OK;
}

static int
config_int(json_object *obj, const char *path, const char *key, int def, int min, int max, int *out,
           pb_error *err)
{
    int64_t n = 0;
    if (config_i64(obj, path, key, def, min, max, &n, err) != PB_OK)
        return PB_ERR;
    *out = (int)n;
    return PB_OK;
}

static int
config_size(json_object *obj, const char *path, const char *key, size_t def, size_t min, size_t max,
            size_t *out, pb_error *err)
{
    int64_t n = 0;
    if (config_i64(obj, path, key, (int64_t)def, (int64_t)min, (int64_t)max, &n, err) != PB_OK)
        return PB_ERR;
    *out = (size_t)n;
    return PB_OK;
}

/* Reads obj[key] as a string of 1..max bytes without NULs; a copy of def (or NULL) when
 * absent. The value is never quoted in errors: it may be a URL with a password. */
static int
config_str(json_object *obj, const char *path, const char *key, const char *def, size_t max,
           char **out, pb_error *err)
{
    json_object *v;
    if (!config_get(obj, key, &v)) {
        *out = def ? pb_xstrdup(def) : NULL;
        return PB_OK;
    }
    if (!json_object_is_type(v, json_type_string))
        return config_fail(err, path, key, "must be a string");
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (len == 0 || len > max || strlen(s) != len)
        return config_fail(err, path, key, "must be a string of 1 to %zu bytes", max);
    *out = pb_xstrdup(s);
    return PB_OK;
}

/* obj[key] as an object, or NULL when absent. */
static int
config_obj(json_object *obj, const char *path, const char *key, json_object **out, pb_error *err)
{
    json_object *v;
    *out = NULL;
    if (!config_get(obj, key, &v))
        return PB_OK;
    if (!json_object_is_type(v, json_type_object))
        return config_fail(err, path, key, "must be an object");
    *out = v;
    return PB_OK;
}

/* Reads obj[key] as true/false, def when absent. */
static int
config_boolean(json_object *obj, const char *path, const char *key, bool def, bool *out,
               pb_error *err)
{
    json_object *v;
    *out = def;
    if (!config_get(obj, key, &v))
        return PB_OK;
    if (!json_object_is_type(v, json_type_boolean))
        return config_fail(err, path, key, "must be true or false");
    *out = json_object_get_boolean(v);
    return PB_OK;
}

/* Reads obj[key] as a number in [min, max], def when absent. */
static int
config_number(json_object *obj, const char *path, const char *key, double def, double min,
              double max, double *out, pb_error *err)
{
    json_object *v;
    *out = def;
    if (!config_get(obj, key, &v))
        return PB_OK;
    double d = json_object_get_double(v);
    if ((!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) ||
        !(d >= min && d <= max))
        return config_fail(err, path, key, "must be a number from %g to %g", min, max);
    *out = d;
    return PB_OK;
}

static bool
config_is_name(const char *s, const char *chars)
{
    size_t n = strlen(s);
    return n >= 1 && n <= CONFIG_NAME_MAX && strspn(s, chars) == n;
}

static bool
config_has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* An environment variable name such as OPENAI_API_KEY. */
static bool
config_is_env_name(const char *s)
{
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789";
    size_t n = strlen(s);
    return n >= 1 && (s[0] < '0' || s[0] > '9') && strspn(s, chars) == n;
}

/* Reads an "..._env" key: the variable's name, then its value (NULL when unset or empty). */
static int
config_env(json_object *obj, const char *path, const char *key, char **name, char **value,
           pb_error *err)
{
    if (config_str(obj, path, key, NULL, 256, name, err) != PB_OK)
        return PB_ERR;
    *value = NULL;
    if (*name == NULL)
        return PB_OK;
    if (!config_is_env_name(*name))
        return config_fail(err, path, key, "must be an environment variable name");
    const char *v = getenv(*name);
    if (v != NULL && *v != '\0')
        *value = pb_xstrdup(v);
    return PB_OK;
}

static int
config_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies n bytes of a URL part, decoding %XX (a password may hold ':' or '@' that way).
 * Malformed escapes and %00 are kept as written. */
static char *
config_url_decode(const char *s, size_t n)
{
    char *out = pb_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = config_hex(s[i + 1])) >= 0 &&
            (lo = config_hex(s[i + 2])) >= 0 && (hi | lo) != 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* Parses a decimal number of 1..10 digits in [min, max] from s..end. */
static bool
config_parse_num(const char *s, const char *end, long min, long max, int *out)
{
    if (s == end || end - s > 10)
        return false;
    long n = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        n = n * 10 + (*p - '0');
    }
    if (n < min || n > max)
        return false;
    *out = (int)n;
    return true;
}

/* Splits redis://[user[:password]@]host[:port][/db] into cfg->redis_*. The userinfo ends at
 * the last '@', so an unescaped '@' or '/' in a password still works. Errors never quote the
 * URL: it may hold a password. */
static int
config_parse_redis_url(pb_config *cfg, const char *path, pb_error *err)
{
    const char *url = cfg->redis_url;
    size_t scheme_len = strncmp(url, "redis://", 8) == 0    ? 8
                        : strncmp(url, "rediss://", 9) == 0 ? 9
                                                            : 0;
    if (scheme_len == 0)
        return config_fail(err, path, "url",
                           "must look like redis[s]://[user[:password]@]host[:port][/db]");
    cfg->redis_tls.on = scheme_len == 9;
    const char *p = url + scheme_len;
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *user_end = colon ? colon : at;
        if (user_end > p)
            cfg->redis_user = config_url_decode(p, (size_t)(user_end - p));
        if (colon && at > colon + 1)
            cfg->redis_password = config_url_decode(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *host = p, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL)
            return config_fail(err, path, "url", "unterminated [IPv6] host");
        p = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/");
        p = host_end;
    }
    if (host_end == host)
        return config_fail(err, path, "url", "has no host");
    cfg->redis_host = pb_xstrndup(host, (size_t)(host_end - host));
    cfg->redis_port = 6379;
    cfg->redis_db = 0;
    if (*p == ':') {
        const char *port_end = p + 1 + strcspn(p + 1, "/");
        if (!config_parse_num(p + 1, port_end, 1, 65535, &cfg->redis_port))
            return config_fail(err, path, "url", "port must be a number from 1 to 65535");
        p = port_end;
    }
    if (*p == '/' && p[1] != '\0') {
        if (!config_parse_num(p + 1, p + strlen(p), 0, INT_MAX, &cfg->redis_db))
            return config_fail(err, path, "url", "database must be a non-negative number");
    } else if (*p != '\0' && strcmp(p, "/") != 0) {
        return config_fail(err, path, "url", "has unexpected text after the host");
    }
    return PB_OK;
}

/* redis.sentinels: 1..PB_CONFIG_MAX_SENTINELS "host:port" strings, with master_name. */
static int
config_parse_sentinels(pb_config *cfg, json_object *r, const char *path, pb_error *err)
{
    json_object *list;
    if (!config_get(r, "sentinels", &list))
        return PB_OK;
    size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
    if (n == 0 || n > PB_CONFIG_MAX_SENTINELS)
        return config_fail(err, path, "sentinels", "must be an array of 1 to %d \"host:port\"",
                           PB_CONFIG_MAX_SENTINELS);
    cfg->sentinel_hosts = pb_xcalloc(n, sizeof(char *));
    cfg->sentinel_ports = pb_xcalloc(n, sizeof(int));
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(list, i);
        const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";
        const char *colon = strrchr(s, ':');
        char idx[32];
        snprintf(idx, sizeof(idx), "sentinels[%zu]", i);
        if (colon == NULL || colon == s || colon - s > 255 ||
            !config_parse_num(colon + 1, s + strlen(s), 1, 65535, &cfg->sentinel_ports[i]))
            return config_fail(err, path, idx, "must look like \"host:port\"");
        cfg->sentinel_hosts[i] = pb_xstrndup(s, (size_t)(colon - s));
        cfg->n_sentinels = i + 1;
    }
    if (cfg->master_name == NULL)
        return config_fail(err, path, "master_name", "is required with sentinels");
    return PB_OK;
}

/* A file path of a TLS object: a string naming a file this process can read (checked at load
 * and on SIGHUP, so a typo is a config error rather than a connection that never comes up). */
static int
config_tls_path(json_object *o, const char *path, const char *key, bool dir, char **out,
                pb_error *err)
{
    if (config_str(o, path, key, NULL, 4096, out, err) != PB_OK)
        return PB_ERR;
    if (*out != NULL && access(*out, dir ? R_OK | X_OK : R_OK) != 0)
        return config_fail(err, path, key, "cannot read %s: %s", *out, strerror(errno));
    return PB_OK;
}

/* The OpenSSL reason of the last error, for a config error ("no certificate or crl found"). */
static const char *
config_ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unusable";
}

/* Refuses a passphrase prompt: a key file must be usable unattended. */
static int
config_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Loads CA, certificate and key files the way tls.c (Redis) and libcurl's OpenSSL backend
 * (providers) will, so a file that is not PEM, holds no certificate, or a key that does not
 * match the certificate is a config error (`planb check`, a refused reload) and not a
 * failure of every connection. */
static int
config_check_tls_files(const char *ca_file, const char *ca_dir, const char *cert_file,
                       const char *key_file, const char *path, pb_error *err)
{
    if (ca_file == NULL && ca_dir == NULL && cert_file == NULL)
        return PB_OK;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    pb_assert(ctx != NULL); /* only out of memory fails here */
    SSL_CTX_set_default_passwd_cb(ctx, config_no_passphrase);
    int rc = PB_OK;
    if (ca_file != NULL && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
        rc = config_fail(err, path, "ca_file", "%s holds no usable PEM certificate: %s", ca_file,
                         config_ssl_reason());
    else if (ca_dir != NULL && SSL_CTX_load_verify_locations(ctx, NULL, ca_dir) != 1)
        rc = config_fail(err, path, "ca_dir", "%s is no usable CA directory: %s", ca_dir,
                         config_ssl_reason());
    else if (cert_file != NULL && SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
        rc = config_fail(err, path, "cert_file", "%s holds no usable PEM certificate: %s",
                         cert_file, config_ssl_reason());
    else if (key_file != NULL && SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
        rc = config_fail(err, path, "key_file",
                         "%s is no usable PEM private key of cert_file (encrypted keys "
                         "are not supported): %s",
                         key_file, config_ssl_reason());
    else if (key_file != NULL && SSL_CTX_check_private_key(ctx) != 1)
        rc = config_fail(err, path, "key_file", "%s does not match cert_file", key_file);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rc;
}

/* One TLS options object (config_tls_keys) into t; t->on is the caller's. */
static int
config_tls_object(json_object *o, const char *path, pb_tls_conf *t, pb_error *err)
{
    char *minv = NULL;
    int rc = PB_ERR;
    if (config_check_keys(o, path, config_tls_keys, err) != PB_OK ||
        config_tls_path(o, path, "ca_file", false, &t->ca_file, err) != PB_OK ||
        config_tls_path(o, path, "ca_dir", true, &t->ca_dir, err) != PB_OK ||
        config_tls_path(o, path, "cert_file", false, &t->cert_file, err) != PB_OK ||
        config_tls_path(o, path, "key_file", false, &t->key_file, err) != PB_OK ||
        config_str(o, path, "server_name", NULL, 253, &t->server_name, err) != PB_OK ||
        config_boolean(o, path, "verify", true, &t->verify, err) != PB_OK ||
        config_str(o, path, "min_version", "1.2", 8, &minv, err) != PB_OK)
        goto out;
    if ((t->cert_file == NULL) != (t->key_file == NULL)) {
        config_fail(err, path, t->cert_file ? "key_file" : "cert_file",
                    "is required with %s (a client certificate needs both)",
                    t->cert_file ? "cert_file" : "key_file");
        goto out;
    }
    if (t->server_name != NULL &&
        (config_has_ctl(t->server_name) || strpbrk(t->server_name, " /@") != NULL)) {
        config_fail(err, path, "server_name", "must be a host name or an address");
        goto out;
    }
    if (config_check_tls_files(t->ca_file, t->ca_dir, t->cert_file, t->key_file, path, err) !=
        PB_OK)
        goto out;
    if (strcmp(minv, "1.2") == 0)
        t->min_version = 12;
    else if (strcmp(minv, "1.3") == 0)
        t->min_version = 13;
    else {
        config_fail(err, path, "min_version", "must be \"1.2\" or \"1.3\"");
        goto out;
    }
    rc = PB_OK;
out:
    free(minv);
    return rc;
}

/* Copies a TLS conf (sentinel_tls: true reuses redis.tls; the name each sentinel is checked
 * against stays its own host, so server_name is not copied). */
static void
config_tls_copy(pb_tls_conf *dst, const pb_tls_conf *src)
{
    dst->ca_file = src->ca_file ? pb_xstrdup(src->ca_file) : NULL;
    dst->ca_dir = src->ca_dir ? pb_xstrdup(src->ca_dir) : NULL;
    dst->cert_file = src->cert_file ? pb_xstrdup(src->cert_file) : NULL;
    dst->key_file = src->key_file ? pb_xstrdup(src->key_file) : NULL;
    dst->verify = src->verify;
    dst->min_version = src->min_version;
}

static void
config_tls_free(pb_tls_conf *t)
{
    free(t->ca_file);
    free(t->ca_dir);
    free(t->cert_file);
    free(t->key_file);
    free(t->server_name);
}

/* redis.tls (needs a rediss:// URL, whose defaults apply without it) and redis.sentinel_tls
 * (an options object, or true for redis.tls's options; absent or false: plain TCP). */
static int
config_parse_redis_tls(pb_config *cfg, json_object *r, const char *path, pb_error *err)
{
    char sub[CONFIG_PATH_MAX];
    json_object *t, *st;
    if (config_obj(r, path, "tls", &t, err) != PB_OK)
        return PB_ERR;
    if (t != NULL && !cfg->redis_tls.on)
        return config_fail(err, path, "tls", "needs a rediss:// url");
    cfg->redis_tls.verify = true;
    cfg->redis_tls.min_version = 12;
    snprintf(sub, sizeof(sub), "%s.tls", path);
    if (t != NULL && config_tls_object(t, sub, &cfg->redis_tls, err) != PB_OK)
        return PB_ERR;
    cfg->sentinel_tls.verify = true;
    cfg->sentinel_tls.min_version = 12;
    if (!config_get(r, "sentinel_tls", &st))
        return PB_OK;
    snprintf(sub, sizeof(sub), "%s.sentinel_tls", path);
    if (json_object_is_type(st, json_type_boolean)) {
        cfg->sentinel_tls.on = json_object_get_boolean(st);
        if (cfg->sentinel_tls.on)
            config_tls_copy(&cfg->sentinel_tls, &cfg->redis_tls);
        return PB_OK;
    }
    if (!json_object_is_type(st, json_type_object))
        return config_fail(err, path, "sentinel_tls", "must be true, false or an object");
    cfg->sentinel_tls.on = true;
    return config_tls_object(st, sub, &cfg->sentinel_tls, err);
}

/* The connection fields of root[key] (path "redis", or "cache.redis", which has no prefix and
 * whose url defaults to the queue's). */
static int
config_parse_redis_at(pb_config *cfg, json_object *root, const char *key, const char *path,
                      const char *def_url, pb_error *err)
{
    json_object *r;
    bool with_prefix = strcmp(path, "redis") == 0;
    if (config_obj(root, with_prefix ? "" : "cache", key, &r, err) != PB_OK)
        return PB_ERR;
    if (r == NULL)
        r = json_object_new_object();
    else
        json_object_get(r);
    char *pass_env = NULL, *pass = NULL, *user = NULL, *spass_env = NULL;
    int rc = PB_ERR;
    if (config_check_keys(r, path, with_prefix ? config_redis_keys : config_cache_redis_keys,
                          err) != PB_OK ||
        config_str(r, path, "url", def_url, 4096, &cfg->redis_url, err) != PB_OK ||
        config_env(r, path, "password_env", &pass_env, &pass, err) != PB_OK ||
        config_str(r, path, "user", NULL, 256, &user, err) != PB_OK ||
        (with_prefix &&
         config_str(r, path, "prefix", "planb", CONFIG_NAME_MAX, &cfg->prefix, err) != PB_OK) ||
        config_str(r, path, "master_name", NULL, 256, &cfg->master_name, err) != PB_OK ||
        config_env(r, path, "sentinel_password_env", &spass_env, &cfg->sentinel_password, err) !=
            PB_OK ||
        config_str(r, path, "sentinel_user", NULL, 256, &cfg->sentinel_user, err) != PB_OK ||
        config_int(r, path, "timeout_ms", 1000, 10, 60000, &cfg->redis_timeout_ms, err) != PB_OK ||
        (with_prefix &&
         (config_int(r, path, "wait_replicas", 0, 0, 16, &cfg->wait_replicas, err) != PB_OK ||
          config_int(r, path, "wait_timeout_ms", 1000, 10, 5000, &cfg->wait_timeout_ms, err) !=
              PB_OK)) ||
        config_parse_sentinels(cfg, r, path, err) != PB_OK)
        goto out;
    if (with_prefix && !config_is_name(cfg->prefix, config_key_chars)) {
        config_fail(err, "redis", "prefix", "must be 1 to %d characters [A-Za-z0-9_.:-]",
                    CONFIG_NAME_MAX);
        goto out;
    }
    if (config_parse_redis_url(cfg, path, err) != PB_OK ||
        config_parse_redis_tls(cfg, r, path, err) != PB_OK)
        goto out;
    if (cfg->sentinel_tls.on && cfg->n_sentinels == 0) {
        config_fail(err, path, "sentinel_tls", "needs sentinels");
        goto out;
    }
    if (user != NULL) {
        free(cfg->redis_user);
        cfg->redis_user = user;
        user = NULL;
    }
    if (pass != NULL) {
        free(cfg->redis_password);
        cfg->redis_password = pass;
        pass = NULL;
    }
    rc = PB_OK;
out:
    free(pass_env);
    free(spass_env);
    free(pass);
    free(user);
    json_object_put(r);
    return rc;
}

static int
config_parse_queues(pb_config *cfg, json_object *root, pb_error *err)
{
    json_object *q;
    if (!config_get(root, "queues", &q)) {
        cfg->queues = pb_xcalloc(1, sizeof(char *));
        cfg->queues[0] = pb_xstrdup("default");
        cfg->n_queues = 1;
        return PB_OK;
    }
    size_t n = json_object_is_type(q, json_type_array) ? json_object_array_length(q) : 0;
    if (n < 1 || n > CONFIG_MAX_QUEUES)
        return config_fail(err, "", "queues", "must be an array of 1 to %d queue names",
                           CONFIG_MAX_QUEUES);
    cfg->queues = pb_xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        char idx[32];
        snprintf(idx, sizeof(idx), "[%zu]", i);
        json_object *v = json_object_array_get_idx(q, i);
        const char *s = json_object_get_string(v);
        if (!json_object_is_type(v, json_type_string) ||
            (size_t)json_object_get_string_len(v) != strlen(s) ||
            !config_is_name(s, config_key_chars))
            return config_fail(err, "queues", idx, "must be 1 to %d characters [A-Za-z0-9_.:-]",
                               CONFIG_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->queues[j], s) == 0)
                return config_fail(err, "queues", idx, "duplicate queue \"%s\"", s);
        cfg->queues[cfg->n_queues++] = pb_xstrdup(s);
    }
    return PB_OK;
}

static int
config_parse_limits(pb_config *cfg, json_object *root, pb_error *err)
{
    json_object *l;
    if (config_obj(root, "", "limits", &l, err) != PB_OK)
        return PB_ERR;
    pb_limits *lim = &cfg->limits;
    if (l == NULL) {
        *lim = (pb_limits){CONFIG_MIB,
                           256,
                           4 * CONFIG_MIB,
                           16 * CONFIG_KIB,
                           128,
                           10000,
                           (size_t)CONFIG_STREAM_RAW_PER_BYTE * 4 * CONFIG_MIB};
        return PB_OK;
    }
    if (config_check_keys(l, "limits", config_limits_keys, err) != PB_OK ||
        config_size(l, "limits", "job_max_bytes", CONFIG_MIB, CONFIG_KIB, 64 * CONFIG_MIB,
                    &lim->job_max_bytes, err) != PB_OK ||
        config_size(l, "limits", "max_messages", 256, 1, 10000, &lim->max_messages, err) != PB_OK ||
        config_size(l, "limits", "reply_max_bytes", 4 * CONFIG_MIB, CONFIG_KIB, 64 * CONFIG_MIB,
                    &lim->reply_max_bytes, err) != PB_OK ||
        config_size(l, "limits", "stream_raw_max_bytes",
                    CONFIG_STREAM_RAW_PER_BYTE * lim->reply_max_bytes, lim->reply_max_bytes,
                    CONFIG_STREAM_RAW_MAX, &lim->stream_raw_max_bytes, err) != PB_OK ||
        config_size(l, "limits", "meta_max_bytes", 16 * CONFIG_KIB, 0, CONFIG_MIB,
                    &lim->meta_max_bytes, err) != PB_OK ||
        config_size(l, "limits", "id_max_bytes", 128, 8, 512, &lim->id_max_bytes, err) != PB_OK ||
        config_size(l, "limits", "dead_max_entries", 10000, 1, 10000000, &lim->dead_max_entries,
                    err) != PB_OK)
        return PB_ERR;
    return PB_OK;
}

/* A required object of named entries ("providers", "models", "routes"); checks the names. */
static int
config_section(json_object *root, const char *key, const char *what, json_object **out, size_t *n,
               pb_error *err)
{
    if (config_obj(root, "", key, out, err) != PB_OK)
        return PB_ERR;
    if (*out == NULL || json_object_object_length(*out) == 0)
        return config_fail(err, "", key, "must be an object with at least one %s", what);
    json_object_object_foreach(*out, name, val)
    {
        if (!config_is_name(name, config_name_chars))
            return config_fail(err, key, name,
                               "name must be 1 to %d characters [A-Za-z0-9_.:@/+=-]",
                               CONFIG_NAME_MAX);
        if (!json_object_is_type(val, json_type_object))
            return config_fail(err, key, name, "must be an object");
    }
    *n = (size_t)json_object_object_length(*out);
    return PB_OK;
}

static int config_parse_provider_conn(pb_provider_conf *p, json_object *o, const char *path,
                                      pb_error *err);

/* True when s ends with suffix. */
static bool
config_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The Azure OpenAI keys (docs/providers.md "Azure OpenAI"): api_version picks the deployment
 * API, whose base_url is the resource's address, over the v1 API, whose base_url ends in
 * /openai/v1; a base_url of the other style is refused here rather than found as 404s. The
 * key goes in api-key, or an Entra ID token from bearer_token_env as Bearer: one of them. */
static int
config_parse_azure(pb_provider_conf *p, json_object *o, const char *path, pb_error *err)
{
    json_object *v;
    if (p->type != PB_PROVIDER_AZURE) {
        if (config_get(o, "api_version", &v))
            return config_fail(err, path, "api_version", "is only for type \"azure\"");
        if (p->type != PB_PROVIDER_BEDROCK && config_get(o, "bearer_token_env", &v))
            return config_fail(err, path, "bearer_token_env",
                               "is only for types \"azure\" and \"bedrock\"");
        return PB_OK;
    }
    if (config_str(o, path, "api_version", NULL, 32, &p->api_version, err) != PB_OK ||
        config_env(o, path, "bearer_token_env", &p->bearer_token_env, &p->bearer_token, err) !=
            PB_OK)
        return PB_ERR;
    if (p->api_version != NULL &&
        (p->api_version[0] == '\0' ||
         strspn(p->api_version,
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
             strlen(p->api_version)))
        return config_fail(err, path, "api_version",
                           "must be 1 to 32 characters [A-Za-z0-9.-] (e.g. 2024-10-21)");
    bool v1 = config_ends_with(p->base_url, "/openai/v1");
    if (p->api_version == NULL && !v1)
        return config_fail(err, path, "base_url",
                           "must end in /openai/v1 (the v1 API), or set api_version for the "
                           "deployment API");
    if (p->api_version != NULL && (v1 || config_ends_with(p->base_url, "/openai")))
        return config_fail(err, path, "base_url",
                           "with api_version is the resource's address "
                           "(https://<resource>.openai.azure.com), without /openai");
    if (p->api_key_env != NULL && p->bearer_token_env != NULL)
        return config_fail(err, path, "bearer_token_env", "and api_key_env: give one of them");
    if (p->bearer_token != NULL && config_has_ctl(p->bearer_token))
        return config_fail(err, path, "bearer_token_env",
                           "the value of %s contains control characters", p->bearer_token_env);
    return PB_OK;
}

#define CONFIG_REGION_RULE "must be an AWS region, 1 to 32 characters [a-z0-9-] (e.g. us-east-1)"

/* One of the AWS credentials: the env var named by key (default_name when not given) read at
 * load; a value with control characters would split a header. */
static int
config_aws_env(json_object *o, const char *path, const char *key, const char *default_name,
               char **name, char **value, pb_error *err)
{
    if (config_env(o, path, key, name, value, err) != PB_OK)
        return PB_ERR;
    if (*name == NULL) {
        *name = pb_xstrdup(default_name);
        const char *v = getenv(default_name);
        if (v != NULL && *v != '\0')
            *value = pb_xstrdup(v);
    }
    if (*value != NULL && config_has_ctl(*value))
        return config_fail(err, path, key, "the value of %s contains control characters", *name);
    return PB_OK;
}

/* The Amazon Bedrock keys (docs/providers.md "Amazon Bedrock"): region (required: it scopes
 * the signature and names the default endpoint), and either a Bedrock API key from
 * bearer_token_env or AWS credentials from the environment for Signature V4. */
static int
config_parse_bedrock(pb_provider_conf *p, json_object *o, const char *path, pb_error *err)
{
    static const char *const only[] = {"region", "aws_access_key_id_env",
                                       "aws_secret_access_key_env", "aws_session_token_env", NULL};
    json_object *v;
    if (p->type != PB_PROVIDER_BEDROCK) {
        for (const char *const *k = only; *k; k++)
            if (config_get(o, *k, &v))
                return config_fail(err, path, *k, "is only for type \"bedrock\"");
        return PB_OK;
    }
    /* Checked by config_parse_provider, which needs it for the default base_url. */
    if (config_str(o, path, "region", NULL, 32, &p->region, err) != PB_OK)
        return PB_ERR;
    if (p->api_key_env != NULL)
        return config_fail(err, path, "api_key_env",
                           "is not for type \"bedrock\": use bearer_token_env (a Bedrock API key) "
                           "or AWS credentials (aws_access_key_id_env, ...)");
    if (config_env(o, path, "bearer_token_env", &p->bearer_token_env, &p->bearer_token, err) !=
        PB_OK)
        return PB_ERR;
    if (p->bearer_token != NULL && config_has_ctl(p->bearer_token))
        return config_fail(err, path, "bearer_token_env",
                           "the value of %s contains control characters", p->bearer_token_env);
    if (p->bearer_token_env != NULL) {
        for (const char *const *k = only + 1; *k; k++)
            if (config_get(o, *k, &v))
                return config_fail(err, path, *k, "and bearer_token_env: give one way to sign in");
        return PB_OK;
    }
    return config_aws_env(o, path, "aws_access_key_id_env", "AWS_ACCESS_KEY_ID",
                          &p->aws_access_key_id_env, &p->aws_access_key_id, err) != PB_OK ||
                   config_aws_env(o, path, "aws_secret_access_key_env", "AWS_SECRET_ACCESS_KEY",
                                  &p->aws_secret_access_key_env, &p->aws_secret_access_key,
                                  err) != PB_OK ||
                   config_aws_env(o, path, "aws_session_token_env", "AWS_SESSION_TOKEN",
                                  &p->aws_session_token_env, &p->aws_session_token, err) != PB_OK
               ? PB_ERR
               : PB_OK;
}

static int
config_parse_provider(pb_provider_conf *p, json_object *o, const char *path, pb_error *err)
{
    char *type = NULL;
    if (config_check_keys(o, path, config_provider_keys, err) != PB_OK ||
        config_str(o, path, "type", NULL, 64, &type, err) != PB_OK)
        return PB_ERR;
    if (type != NULL && strcmp(type, "openai") == 0)
        p->type = PB_PROVIDER_OPENAI;
    else if (type != NULL && strcmp(type, "anthropic") == 0)
        p->type = PB_PROVIDER_ANTHROPIC;
    else if (type != NULL && strcmp(type, "azure") == 0)
        p->type = PB_PROVIDER_AZURE;
    else if (type != NULL && strcmp(type, "gemini") == 0)
        p->type = PB_PROVIDER_GEMINI;
    else if (type != NULL && strcmp(type, "bedrock") == 0)
        p->type = PB_PROVIDER_BEDROCK;
    else {
        free(type);
        return config_fail(err, path, "type",
                           "must be \"openai\", \"anthropic\", \"azure\", \"gemini\" or "
                           "\"bedrock\"");
    }
    free(type);
    /* Gemini has one public address, Bedrock one per region; the other types have many
     * (self-hosted servers). The region is read first for that. */
    char bedrock_default[96];
    const char *base_default =
        p->type == PB_PROVIDER_GEMINI ? "https://generativelanguage.googleapis.com/v1beta" : NULL;
    if (p->type == PB_PROVIDER_BEDROCK) {
        json_object *r;
        if (!config_get(o, "region", &r) || !json_object_is_type(r, json_type_string) ||
            json_object_get_string_len(r) == 0 || json_object_get_string_len(r) > 32 ||
            strspn(json_object_get_string(r), "abcdefghijklmnopqrstuvwxyz0123456789-") !=
                (size_t)json_object_get_string_len(r))
            return config_fail(err, path, "region", CONFIG_REGION_RULE);
        snprintf(bedrock_default, sizeof(bedrock_default),
                 "https://bedrock-runtime.%s.amazonaws.com", json_object_get_string(r));
        base_default = bedrock_default;
    }
    if (config_str(o, path, "base_url", base_default, 2048, &p->base_url, err) != PB_OK)
        return PB_ERR;
    if (p->base_url == NULL || config_has_ctl(p->base_url) || strchr(p->base_url, ' ') ||
        (strncmp(p->base_url, "http://", 7) != 0 && strncmp(p->base_url, "https://", 8) != 0))
        return config_fail(err, path, "base_url", "must be an http:// or https:// URL");
    size_t len = strlen(p->base_url);
    while (len > 0 && p->base_url[len - 1] == '/')
        p->base_url[--len] = '\0';
    if (config_env(o, path, "api_key_env", &p->api_key_env, &p->api_key, err) != PB_OK)
        return PB_ERR;
    /* The key goes into an HTTP header: a stray newline would split it. */
    if (p->api_key != NULL && config_has_ctl(p->api_key))
        return config_fail(err, path, "api_key_env", "the value of %s contains control characters",
                           p->api_key_env);
    if (config_str(o, path, "anthropic_version", "2023-06-01", 64, &p->anthropic_version, err) !=
        PB_OK)
        return PB_ERR;
    if (config_has_ctl(p->anthropic_version))
        return config_fail(err, path, "anthropic_version", "must not contain control characters");
    if (config_parse_azure(p, o, path, err) != PB_OK ||
        config_parse_bedrock(p, o, path, err) != PB_OK)
        return PB_ERR;
    return config_parse_provider_conn(p, o, path, err);
}

/* The headers a provider adapter sets itself (its key, its API version): refused in
 * providers.<name>.headers, allowed in telemetry.headers (a collector's Authorization). */
static const char *const config_adapter_headers[] = {
    "authorization", "x-api-key", "api-key", "anthropic-version", "x-goog-api-key", NULL};

/* The headers planb or libcurl set on every call, or that frame the request: an extra header
 * of these names would change what is sent or how curl frames it. */
static const char *const config_reserved_headers[] = {"content-type",
                                                      "content-length",
                                                      "transfer-encoding",
                                                      "host",
                                                      "expect",
                                                      "connection",
                                                      "accept-encoding",
                                                      "user-agent",
                                                      "proxy-authorization",
                                                      "te",
                                                      "upgrade",
                                                      "keep-alive",
                                                      "trailer",
                                                      NULL};

/* An HTTP field name: RFC 9110's token characters. */
static bool
config_is_header_name(const char *s)
{
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                "!#$%&'*+-.^_`|~";
    size_t n = strlen(s);
    return n >= 1 && n <= CONFIG_HEADER_NAME_MAX && strspn(s, chars) == n;
}

/* A field value: no CR, LF, NUL or other controls but tab (a newline would start a forged
 * header), and no leading or trailing blank (HTTP strips them, so the value would differ). */
static bool
config_is_header_value(const char *s, size_t len)
{
    if (len == 0 || len > CONFIG_HEADER_VALUE_MAX || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return false;
    return s[0] != ' ' && s[0] != '\t' && s[len - 1] != ' ' && s[len - 1] != '\t';
}

/* providers.<name>.headers: {"X-Org": "acme", "X-Gateway-Key": {"value_env": "GW_KEY"}}. A
 * value from the environment must be set: a gateway that wants a header refuses calls
 * without it, which is better found here than as a run of 401s. Errors name the header and
 * the variable, never a value. */
static int
config_parse_headers(char ***headers, size_t *n_headers, json_object *o, const char *path,
                     bool adapter, pb_error *err)
{
    json_object *h;
    if (config_obj(o, path, "headers", &h, err) != PB_OK)
        return PB_ERR;
    if (h == NULL)
        return PB_OK;
    char hpath[CONFIG_PATH_MAX + 16];
    snprintf(hpath, sizeof(hpath), "%s.headers", path);
    size_t n = (size_t)json_object_object_length(h);
    if (n > PB_CONFIG_MAX_HEADERS)
        return config_fail(err, path, "headers", "at most %d headers", PB_CONFIG_MAX_HEADERS);
    (*headers) = pb_xcalloc(n + 1, sizeof(*(*headers)));
    size_t total = 0;
    json_object_object_foreach(h, name, val)
    {
        if (!config_is_header_name(name))
            return config_fail(
                err, hpath, name,
                "a header name is 1 to %d token characters [A-Za-z0-9!#$%%&'*+.^_`|~-]",
                CONFIG_HEADER_NAME_MAX);
        for (const char *const *r = config_reserved_headers; *r; r++)
            if (strcasecmp(name, *r) == 0)
                return config_fail(err, hpath, name, "is set by planb itself");
        for (const char *const *r = config_adapter_headers; adapter && *r; r++)
            if (strcasecmp(name, *r) == 0)
                return config_fail(err, hpath, name, "is set by planb itself");
        for (size_t i = 0; i < (*n_headers); i++) {
            size_t len = strcspn((*headers)[i], ":");
            if (strlen(name) == len && strncasecmp((*headers)[i], name, len) == 0)
                return config_fail(err, hpath, name, "is given twice (names ignore case)");
        }
        const char *value;
        size_t vlen;
        char *env_name = NULL, *env_value = NULL;
        if (json_object_is_type(val, json_type_string)) {
            value = json_object_get_string(val);
            vlen = (size_t)json_object_get_string_len(val);
            if (!config_is_header_value(value, vlen))
                return config_fail(err, hpath, name,
                                   "must be 1 to %d bytes without control characters or "
                                   "blanks at either end",
                                   CONFIG_HEADER_VALUE_MAX);
        } else if (json_object_is_type(val, json_type_object)) {
            char vpath[CONFIG_PATH_MAX + 96];
            snprintf(vpath, sizeof(vpath), "%s.%s", hpath, name);
            /* {"env": VAR} is the issue's spelling, {"value_env": VAR} the older one. */
            static const char *const keys[] = {"env", "value_env", NULL};
            const char *ekey = json_object_object_length(val) == 1 &&
                                       json_object_object_get_ex(val, "value_env", NULL)
                                   ? "value_env"
                                   : "env";
            if (json_object_object_length(val) > 1)
                return config_fail(err, vpath, "env", "give env or value_env, not both");
            if (config_check_keys(val, vpath, keys, err) != PB_OK ||
                config_env(val, vpath, ekey, &env_name, &env_value, err) != PB_OK) {
                free(env_name);
                return PB_ERR;
            }
            if (env_name == NULL)
                return config_fail(err, vpath, "env", "is required");
            int rc = PB_OK;
            if (env_value == NULL)
                rc = config_fail(err, vpath, ekey, "%s is not set", env_name);
            else if (!config_is_header_value(env_value, strlen(env_value)))
                rc = config_fail(err, vpath, ekey,
                                 "the value of %s must be 1 to %d bytes without control "
                                 "characters or blanks at either end",
                                 env_name, CONFIG_HEADER_VALUE_MAX);
            free(env_name);
            if (rc != PB_OK) {
                free(env_value);
                return PB_ERR;
            }
            value = env_value;
            vlen = strlen(env_value);
        } else {
            return config_fail(err, hpath, name, "must be a string or {\"env\": NAME}");
        }
        total += strlen(name) + 2 + vlen;
        if (total > CONFIG_HEADERS_MAX_BYTES) {
            free(env_value);
            return config_fail(err, path, "headers", "the headers add up to more than %d bytes",
                               CONFIG_HEADERS_MAX_BYTES);
        }
        (*headers)[(*n_headers)++] = pb_xasprintf("%s: %s", name, value);
        if (env_value != NULL) {
            OPENSSL_cleanse(env_value, vlen);
            free(env_value);
        }
    }
    return PB_OK;
}

/* Appends s to b percent-encoded: RFC 3986's unreserved characters as they are, every other
 * byte as %XX (so a value's '&', '=', '+' or space cannot change the query's meaning). */
static void
config_url_encode(pb_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            pb_buf_append(b, s, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            pb_buf_append(b, esc, 3);
        }
    }
}

/* providers.<name>.query: {"name": "value"}, appended to every request's URL (after Azure's
 * api-version) for gateways that route or authenticate on the query. Names are 1 to 64
 * unreserved characters, values UTF-8 text without controls; both go out URL-encoded, bounded
 * like headers. A value is not secret: URLs are logged by proxies, keys belong in headers. */
static int
config_parse_query(pb_provider_conf *p, json_object *o, const char *path, pb_error *err)
{
    json_object *q;
    if (config_obj(o, path, "query", &q, err) != PB_OK)
        return PB_ERR;
    if (q == NULL || json_object_object_length(q) == 0)
        return PB_OK;
    char qpath[CONFIG_PATH_MAX + 16];
    snprintf(qpath, sizeof(qpath), "%s.query", path);
    if (json_object_object_length(q) > PB_CONFIG_MAX_HEADERS)
        return config_fail(err, path, "query", "at most %d parameters", PB_CONFIG_MAX_HEADERS);
    static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-._~";
    pb_buf b;
    pb_buf_init(&b, SIZE_MAX);
    int rc = PB_OK;
    json_object_object_foreach(q, name, val)
    {
        size_t n = strlen(name);
        const char *v =
            json_object_is_type(val, json_type_string) ? json_object_get_string(val) : NULL;
        size_t vlen = v ? (size_t)json_object_get_string_len(val) : 0;
        if (n < 1 || n > CONFIG_HEADER_NAME_MAX || strspn(name, unreserved) != n)
            rc = config_fail(err, qpath, name,
                             "a parameter name is 1 to %d characters [A-Za-z0-9._~-]",
                             CONFIG_HEADER_NAME_MAX);
        else if (p->type == PB_PROVIDER_AZURE && p->api_version != NULL &&
                 strcmp(name, "api-version") == 0)
            rc = config_fail(err, qpath, name, "is set by planb itself (api_version)");
        else if (v == NULL || vlen > CONFIG_HEADER_VALUE_MAX || strlen(v) != vlen ||
                 config_has_ctl(v) || !pb_utf8_is_text(v, vlen))
            rc = config_fail(err, qpath, name,
                             "must be a string of at most %d bytes of text without control "
                             "characters",
                             CONFIG_HEADER_VALUE_MAX);
        if (rc != PB_OK)
            break;
        if (b.len > 0)
            pb_buf_append(&b, "&", 1);
        config_url_encode(&b, name);
        pb_buf_append(&b, "=", 1);
        config_url_encode(&b, v);
        if (b.len > CONFIG_HEADERS_MAX_BYTES) {
            rc = config_fail(err, path, "query", "the parameters add up to more than %d bytes",
                             CONFIG_HEADERS_MAX_BYTES);
            break;
        }
    }
    if (rc == PB_OK) {
        p->query = b.data;
    } else {
        pb_buf_free(&b);
    }
    return rc;
}

/* providers.<name>.proxy: http:// or https://, a host, an optional port and nothing after the
 * authority. The URL may hold "user:password@": errors never quote it. */
static int
config_check_proxy(const char *url, const char *path, pb_error *err)
{
    const char *rest = NULL;
    if (strncmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        rest = url + 8;
    if (rest == NULL || config_has_ctl(url) || strpbrk(url, " \\") != NULL)
        return config_fail(err, path, "proxy",
                           "must be an http:// or https:// URL (the URL is not shown: it may "
                           "hold a password)");
    size_t auth_len = strcspn(rest, "/?#");
    if (rest[auth_len] != '\0' && strcmp(rest + auth_len, "/") != 0)
        return config_fail(err, path, "proxy", "must be scheme://[user:password@]host[:port]");
    const char *at = memrchr(rest, '@', auth_len);
    const char *host = at ? at + 1 : rest;
    size_t host_len = auth_len - (size_t)(host - rest);
    const char *colon = host[0] == '[' ? memchr(host, ']', host_len) : host;
    if (colon == NULL)
        return config_fail(err, path, "proxy", "has an unterminated [IPv6] host");
    colon = memchr(colon, ':', host_len - (size_t)(colon - host));
    size_t name_len = colon ? (size_t)(colon - host) : host_len;
    if (name_len == 0)
        return config_fail(err, path, "proxy", "has no host");
    if (colon != NULL) {
        size_t plen = host_len - name_len - 1;
        long port = 0;
        for (size_t i = 0; i < plen; i++) {
            if (colon[1 + i] < '0' || colon[1 + i] > '9' || port > 65535)
                return config_fail(err, path, "proxy", "has a port that is not 1..65535");
            port = port * 10 + (colon[1 + i] - '0');
        }
        if (plen == 0 || port < 1 || port > 65535)
            return config_fail(err, path, "proxy", "has a port that is not 1..65535");
    }
    return PB_OK;
}

/* The keys of a provider about the way its calls go: TLS files, proxy, extra headers. */
static int
config_parse_provider_conn(pb_provider_conf *p, json_object *o, const char *path, pb_error *err)
{
    if (config_tls_path(o, path, "ca_file", false, &p->ca_file, err) != PB_OK ||
        config_tls_path(o, path, "cert_file", false, &p->cert_file, err) != PB_OK ||
        config_tls_path(o, path, "key_file", false, &p->key_file, err) != PB_OK)
        return PB_ERR;
    if ((p->cert_file == NULL) != (p->key_file == NULL))
        return config_fail(err, path, p->cert_file ? "key_file" : "cert_file",
                           "is required with %s (a client certificate needs both)",
                           p->cert_file ? "cert_file" : "key_file");
    if ((p->ca_file != NULL || p->cert_file != NULL) && strncmp(p->base_url, "https://", 8) != 0)
        return config_fail(err, path, p->ca_file ? "ca_file" : "cert_file",
                           "needs an https:// base_url");
    if (config_check_tls_files(p->ca_file, NULL, p->cert_file, p->key_file, path, err) != PB_OK)
        return PB_ERR;
    if (config_str(o, path, "proxy", NULL, 2048, &p->proxy, err) != PB_OK ||
        (p->proxy != NULL && config_check_proxy(p->proxy, path, err) != PB_OK))
        return PB_ERR;
    if (config_parse_headers(&p->headers, &p->n_headers, o, path, true, err) != PB_OK)
        return PB_ERR;
    return config_parse_query(p, o, path, err);
}

unsigned
pb_config_default_capabilities(pb_provider_type t)
{
    /* Anthropic's Messages API returns no token log probabilities, nor does Gemini's in
     * OpenAI's shape (its adapter does not ask for them); Azure OpenAI is OpenAI's Chat
     * Completions and has every capability a deployment's model has. */
    if (t == PB_PROVIDER_BEDROCK) /* Converse has no JSON response mode either */
        return PB_CAP_ALL & ~(unsigned)(PB_CAP_LOGPROBS | PB_CAP_JSON_SCHEMA | PB_CAP_JSON_OBJECT);
    return t == PB_PROVIDER_ANTHROPIC || t == PB_PROVIDER_GEMINI
               ? PB_CAP_ALL & ~(unsigned)PB_CAP_LOGPROBS
               : PB_CAP_ALL;
}

/* models.<m>.capabilities: an array of capability names replacing the provider type's
 * defaults (a local server without tool calling or vision says so here). */
static int
config_capabilities(json_object *o, const char *path, pb_provider_type t, unsigned *out,
                    pb_error *err)
{
    json_object *v;
    *out = pb_config_default_capabilities(t);
    if (!config_get(o, "capabilities", &v))
        return PB_OK;
    if (!json_object_is_type(v, json_type_array))
        return config_fail(err, path, "capabilities",
                           "must be an array of tools, vision, json_schema, json_object, logprobs");
    *out = 0;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *c = json_object_array_get_idx(v, i);
        unsigned bit = json_object_is_type(c, json_type_string)
                           ? pb_request_cap_parse(json_object_get_string(c))
                           : 0;
        if (bit == 0)
            return config_fail(err, path, "capabilities",
                               "entry %zu is not one of tools, vision, json_schema, json_object, "
                               "logprobs",
                               i);
        *out |= bit;
    }
    return PB_OK;
}

static int
config_parse_model(pb_config *cfg, pb_model_conf *m, json_object *o, const char *path,
                   pb_error *err)
{
    char *prov = NULL;
    if (config_check_keys(o, path, config_model_keys, err) != PB_OK ||
        config_str(o, path, "provider", NULL, CONFIG_NAME_MAX, &prov, err) != PB_OK)
        return PB_ERR;
    if (prov == NULL)
        return config_fail(err, path, "provider", "is required");
    m->provider = -1;
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (strcmp(cfg->providers[i].name, prov) == 0)
            m->provider = (int)i;
    if (m->provider < 0) {
        config_fail(err, path, "provider", "unknown provider \"%s\"", prov);
        free(prov);
        return PB_ERR;
    }
    free(prov);
    if (config_str(o, path, "model", m->name, 256, &m->upstream, err) != PB_OK ||
        config_int(o, path, "tier", 1, 1, 9, &m->tier, err) != PB_OK ||
        config_int(o, path, "timeout_ms", 10000, 100, 600000, &m->timeout_ms, err) != PB_OK)
        return PB_ERR;
    if (config_has_ctl(m->upstream))
        return config_fail(err, path, "model", "must not contain control characters");
    if (!config_get(o, "connect_timeout_ms", NULL))
        m->connect_timeout_ms = m->timeout_ms < 2000 ? m->timeout_ms : 2000;
    else if (config_int(o, path, "connect_timeout_ms", 2000, 50,
                        m->timeout_ms < 60000 ? m->timeout_ms : 60000, &m->connect_timeout_ms,
                        err) != PB_OK)
        return PB_ERR;
    if (config_int(o, path, "max_tokens_default", 1024, 1, 1000000, &m->max_tokens_default, err) !=
            PB_OK ||
        config_int(o, path, "rpm", 0, 0, CONFIG_RPM_MAX, &m->rpm, err) != PB_OK ||
        config_i64(o, path, "tpm", 0, 0, INT64_C(1000000000000), &m->tpm, err) != PB_OK ||
        config_number(o, path, "price_in_per_mtok", -1, 0, 1e6, &m->price_in_per_mtok, err) !=
            PB_OK ||
        config_number(o, path, "price_out_per_mtok", -1, 0, 1e6, &m->price_out_per_mtok, err) !=
            PB_OK ||
        config_int(o, path, "first_token_ms", m->timeout_ms, 50, 600000, &m->first_token_ms, err) !=
            PB_OK ||
        config_int(o, path, "idle_ms", m->timeout_ms, 50, 600000, &m->idle_ms, err) != PB_OK)
        return PB_ERR;
    if (config_get(o, "price_in_per_mtok", NULL) != config_get(o, "price_out_per_mtok", NULL))
        return config_fail(err, path, "price_in_per_mtok",
                           "and price_out_per_mtok must be given together");
    return config_capabilities(o, path, cfg->providers[m->provider].type, &m->capabilities, err);
}

static int
config_parse_route(pb_config *cfg, pb_route_conf *r, json_object *o, const char *path,
                   pb_error *err)
{
    if (config_check_keys(o, path, config_route_keys, err) != PB_OK)
        return PB_ERR;
    json_object *chain;
    size_t n = 0;
    if (config_get(o, "chain", &chain) && json_object_is_type(chain, json_type_array))
        n = json_object_array_length(chain);
    if (n < 1 || n > PB_CONFIG_MAX_CHAIN)
        return config_fail(err, path, "chain", "must be an array of 1 to %d model names",
                           PB_CONFIG_MAX_CHAIN);
    r->chain = pb_xcalloc(n, sizeof(int));
    char chain_path[CONFIG_PATH_MAX + 8];
    snprintf(chain_path, sizeof(chain_path), "%s.chain", path);
    for (size_t i = 0; i < n; i++) {
        char idx[32];
        snprintf(idx, sizeof(idx), "[%zu]", i);
        json_object *v = json_object_array_get_idx(chain, i);
        if (!json_object_is_type(v, json_type_string))
            return config_fail(err, chain_path, idx, "must be a model name");
        const char *name = json_object_get_string(v);
        int m = pb_config_model_index(cfg, name);
        if (m < 0)
            return config_fail(err, chain_path, idx, "unknown model \"%s\"", name);
        r->chain[r->chain_len++] = m;
    }
    if (config_int(o, path, "retries", 2, 0, 10, &r->retries, err) != PB_OK ||
        config_int(o, path, "backoff_ms", 250, 0, 60000, &r->backoff_ms, err) != PB_OK ||
        config_int(o, path, "backoff_max_ms", r->backoff_ms > 4000 ? r->backoff_ms : 4000,
                   r->backoff_ms, 600000, &r->backoff_max_ms, err) != PB_OK ||
        config_int(o, path, "deadline_ms", 30000, 100, 3600000, &r->deadline_ms, err) != PB_OK ||
        config_int(o, path, "critical_min_tier", 0, 0, 9, &r->critical_min_tier, err) != PB_OK ||
        config_str(o, path, "degraded_reply", CONFIG_DEFAULT_DEGRADED, CONFIG_REPLY_MAX,
                   &r->degraded_reply, err) != PB_OK ||
        config_boolean(o, path, "semantic_critical", false, &r->semantic_critical, err) != PB_OK ||
        config_boolean(o, path, "semantic_tools", false, &r->semantic_tools, err) != PB_OK ||
        config_int(o, path, "hedge_after_ms", 0, 0, 600000, &r->hedge_after_ms, err) != PB_OK ||
        config_boolean(o, path, "hedge_adaptive", false, &r->hedge_adaptive, err) != PB_OK ||
        config_boolean(o, path, "stream_continue", false, &r->stream_continue, err) != PB_OK)
        return PB_ERR;
    if (r->hedge_adaptive && r->hedge_after_ms == 0)
        return config_fail(err, path, "hedge_adaptive", "needs hedge_after_ms (the floor)");
    return PB_OK;
}

/* Parses providers, then models (which name providers), then routes (which name models). */
static int
config_parse_sections(pb_config *cfg, json_object *root, pb_error *err)
{
    json_object *sec;
    char path[CONFIG_PATH_MAX];
    size_t n;
    if (config_section(root, "providers", "provider", &sec, &n, err) != PB_OK)
        return PB_ERR;
    cfg->providers = pb_xcalloc(n, sizeof(pb_provider_conf));
    json_object_object_foreach(sec, pname, pval)
    {
        pb_provider_conf *p = &cfg->providers[cfg->n_providers++];
        p->name = pb_xstrdup(pname);
        snprintf(path, sizeof(path), "providers.%s", pname);
        if (config_parse_provider(p, pval, path, err) != PB_OK)
            return PB_ERR;
    }
    if (config_section(root, "models", "model", &sec, &n, err) != PB_OK)
        return PB_ERR;
    cfg->models = pb_xcalloc(n, sizeof(pb_model_conf));
    json_object_object_foreach(sec, mname, mval)
    {
        pb_model_conf *m = &cfg->models[cfg->n_models++];
        m->name = pb_xstrdup(mname);
        snprintf(path, sizeof(path), "models.%s", mname);
        if (config_parse_model(cfg, m, mval, path, err) != PB_OK)
            return PB_ERR;
    }
    if (config_section(root, "routes", "route", &sec, &n, err) != PB_OK)
        return PB_ERR;
    cfg->routes = pb_xcalloc(n, sizeof(pb_route_conf));
    json_object_object_foreach(sec, rname, rval)
    {
        pb_route_conf *r = &cfg->routes[cfg->n_routes++];
        r->name = pb_xstrdup(rname);
        snprintf(path, sizeof(path), "routes.%s", rname);
        if (config_parse_route(cfg, r, rval, path, err) != PB_OK)
            return PB_ERR;
    }
    int d = pb_config_route_index(cfg, "default");
    cfg->default_route = d >= 0 ? d : 0;
    return PB_OK;
}

/* One of names (the index), or the default when absent. */
static int
config_enum(json_object *obj, const char *path, const char *key, const char *const *names, int def,
            int *out, pb_error *err)
{
    char *s = NULL;
    *out = def;
    if (config_str(obj, path, key, NULL, CONFIG_NAME_MAX, &s, err) != PB_OK)
        return PB_ERR;
    if (s == NULL)
        return PB_OK;
    int found = -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            found = i;
    free(s);
    if (found < 0)
        return config_fail(err, path, key, "must be one of %s|%s%s%s", names[0], names[1],
                           names[2] ? "|" : "", names[2] ? names[2] : "");
    *out = found;
    return PB_OK;
}

/* cache.semantic: the embedder, mode and bounds of the semantic cache (semcache.c). The local
 * embedder's default threshold comes from the evaluation set (docs/cache.md "Semantic cache"). */
static int
config_parse_semantic(pb_config *cfg, json_object *o, pb_error *err)
{
    static const char *const embedders[] = {"local", "http", NULL};
    static const char *const modes[] = {"fallback", "first", "shadow", NULL};
    static const char path[] = "cache.semantic";
    pb_semantic_conf *s = &cfg->semantic;
    int embedder, mode;
    char *prov = NULL;
    s->provider = -1;
    s->threshold = PB_SEMANTIC_LOCAL_THRESHOLD;
    s->timeout_ms = 1000;
    s->max_entries = 100000;
    s->shadow_sample = 1;
    if (o == NULL)
        return PB_OK;
    if (config_check_keys(o, path, config_semantic_keys, err) != PB_OK ||
        config_boolean(o, path, "enabled", false, &s->enabled, err) != PB_OK ||
        config_enum(o, path, "embedder", embedders, 0, &embedder, err) != PB_OK ||
        config_enum(o, path, "mode", modes, 0, &mode, err) != PB_OK ||
        config_number(o, path, "threshold",
                      embedder == PB_EMBEDDER_LOCAL ? PB_SEMANTIC_LOCAL_THRESHOLD : 0.9, 0.5, 1,
                      &s->threshold, err) != PB_OK ||
        config_int(o, path, "timeout_ms", 1000, 10, 60000, &s->timeout_ms, err) != PB_OK ||
        config_int(o, path, "max_entries", 100000, 1, 100000000, &s->max_entries, err) != PB_OK ||
        config_number(o, path, "shadow_sample", 1, 0, 1, &s->shadow_sample, err) != PB_OK ||
        config_str(o, path, "model", NULL, 256, &s->model, err) != PB_OK ||
        config_str(o, path, "provider", NULL, CONFIG_NAME_MAX, &prov, err) != PB_OK)
        return PB_ERR;
    s->embedder = (pb_embedder_kind)embedder;
    s->mode = (pb_semantic_mode)mode;
    for (size_t i = 0; prov && i < cfg->n_providers; i++)
        if (strcmp(cfg->providers[i].name, prov) == 0)
            s->provider = (int)i;
    free(prov);
    if (s->embedder == PB_EMBEDDER_HTTP &&
        (s->provider < 0 || cfg->providers[s->provider].type != PB_PROVIDER_OPENAI))
        return config_fail(err, path, "provider", "must name a provider of type openai");
    if (s->embedder == PB_EMBEDDER_HTTP && s->model == NULL)
        return config_fail(err, path, "model", "is required with embedder http");
    if (s->model != NULL && config_has_ctl(s->model))
        return config_fail(err, path, "model", "must not contain control characters");
    return PB_OK;
}

/* The cache section: TTLs, an optional separate Redis (cache.redis) and cache.semantic. */
static int
config_parse_cache(pb_config *cfg, json_object *root, pb_error *err)
{
    json_object *c, *sub = NULL, *sem = NULL;
    if (config_obj(root, "", "cache", &c, err) != PB_OK)
        return PB_ERR;
    cfg->cache_ttl_s = CONFIG_DAY_S;
    cfg->cache_stale_if_error_s = 7 * CONFIG_DAY_S;
    if (c != NULL && (config_check_keys(c, "cache", config_cache_keys, err) != PB_OK ||
                      config_int(c, "cache", "ttl_s", CONFIG_DAY_S, 1, 30 * CONFIG_DAY_S,
                                 &cfg->cache_ttl_s, err) != PB_OK ||
                      config_int(c, "cache", "stale_if_error_s", 7 * CONFIG_DAY_S, 0,
                                 90 * CONFIG_DAY_S, &cfg->cache_stale_if_error_s, err) != PB_OK ||
                      config_obj(c, "cache", "semantic", &sem, err) != PB_OK ||
                      config_obj(c, "cache", "redis", &sub, err) != PB_OK))
        return PB_ERR;
    if (sub != NULL) {
        cfg->cache_redis = pb_xcalloc(1, sizeof(*cfg->cache_redis));
        if (config_parse_redis_at(cfg->cache_redis, c, "redis", "cache.redis", cfg->redis_url,
                                  err) != PB_OK)
            return PB_ERR;
    }
    return config_parse_semantic(cfg, sem, err);
}

/* A "host:port" listen address (monitor.metrics_listen, http.listen); "" (or absent with def
 * NULL) is off: NULL. */
static int
config_listen(json_object *m, const char *path, const char *key, const char *def, char **out,
              pb_error *err)
{
    json_object *v;
    if (config_get(m, key, &v) && json_object_is_type(v, json_type_string) &&
        json_object_get_string_len(v) == 0) {
        *out = NULL;
        return PB_OK;
    }
    if (config_str(m, path, key, def, 256, out, err) != PB_OK)
        return PB_ERR;
    if (*out == NULL)
        return PB_OK;
    const char *colon = strrchr(*out, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || colon == *out || end == colon + 1 || *end != '\0' || port < 0 ||
        port > 65535 || config_has_ctl(*out))
        return config_fail(err, path, key, "must be \"host:port\" or \"\"");
    return PB_OK;
}

/* A key's "sha256": 64 hex digits (the key itself is never in the config) into out. */
static int
config_sha256(const char *hex, const char *path, unsigned char out[32], pb_error *err)
{
    if (hex == NULL || strlen(hex) != 64)
        return config_fail(err, path, "sha256",
                           "is required: the 64 hex digits of the key's SHA-256 (printf %%s "
                           "\"$KEY\" | sha256sum)");
    for (int i = 0; i < 32; i++) {
        int hi = config_hex(hex[2 * i]), lo = config_hex(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return config_fail(err, path, "sha256", "must be 64 hex digits");
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return PB_OK;
}

/* http.keys[i]: name, tenant, the key's SHA-256 (64 hex digits; the key itself is never in
 * the config), rpm, concurrency. */
static int
config_http_key(pb_http_key *k, json_object *o, const char *path, pb_error *err)
{
    char *hex = NULL;
    if (!json_object_is_type(o, json_type_object))
        return config_fail(err, path, NULL, "must be an object");
    if (config_check_keys(o, path, config_http_key_keys, err) != PB_OK ||
        config_str(o, path, "name", NULL, CONFIG_NAME_MAX, &k->name, err) != PB_OK ||
        config_str(o, path, "tenant", NULL, 128, &k->tenant, err) != PB_OK ||
        config_str(o, path, "sha256", NULL, 64, &hex, err) != PB_OK ||
        config_int(o, path, "rpm", 0, 0, CONFIG_RPM_MAX, &k->rpm, err) != PB_OK ||
        config_int(o, path, "concurrency", 0, 0, 1000000, &k->concurrency, err) != PB_OK)
        goto fail;
    if (k->name == NULL || !config_is_name(k->name, config_name_chars)) {
        config_fail(err, path, "name", "is required: 1..64 chars of [A-Za-z0-9_.:@/+=-]");
        goto fail;
    }
    if (k->tenant != NULL && config_has_ctl(k->tenant)) {
        config_fail(err, path, "tenant", "must not contain control characters");
        goto fail;
    }
    if (config_sha256(hex, path, k->sha256, err) != PB_OK)
        goto fail;
    free(hex);
    return PB_OK;
fail:
    free(hex);
    return PB_ERR;
}

/* http.tls: the front door's certificate chain and key, both or neither (neither: plain
 * HTTP). The files are loaded here as the front will load them (tls.c), so a bad pair is
 * `planb check`'s error and a reload onto one is refused while the old front keeps serving;
 * the front reads them again when it starts, which is how a SIGHUP rotates them. */
static int
config_http_tls(pb_http_conf *hc, json_object *o, pb_error *err)
{
    json_object *t;
    if (config_obj(o, "http", "tls", &t, err) != PB_OK)
        return PB_ERR;
    if (t == NULL)
        return PB_OK;
    if (config_check_keys(t, "http.tls", config_http_tls_keys, err) != PB_OK ||
        config_tls_path(t, "http.tls", "cert_file", false, &hc->tls_cert_file, err) != PB_OK ||
        config_tls_path(t, "http.tls", "key_file", false, &hc->tls_key_file, err) != PB_OK)
        return PB_ERR;
    if ((hc->tls_cert_file == NULL) != (hc->tls_key_file == NULL))
        return config_fail(err, "http.tls", hc->tls_cert_file ? "key_file" : "cert_file",
                           "is required with %s (HTTPS needs both)",
                           hc->tls_cert_file ? "cert_file" : "key_file");
    if (hc->tls_cert_file != NULL && hc->listen == NULL)
        return config_fail(err, "http", "tls", "needs http.listen");
    return config_check_tls_files(NULL, NULL, hc->tls_cert_file, hc->tls_key_file, "http.tls", err);
}

/* A listen address's host is a loopback one ("127.0.0.1:9000", "[::1]:9000", "localhost:..."). */
static bool
config_listen_is_loopback(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0 ||
           strncmp(listen, "localhost:", 10) == 0;
}

/* admin.keys[i]: name, role, the key's SHA-256. */
static int
config_admin_key(pb_admin_key *k, json_object *o, const char *path, pb_error *err)
{
    char *hex = NULL, *role = NULL;
    int rc = PB_ERR;
    if (!json_object_is_type(o, json_type_object))
        return config_fail(err, path, NULL, "must be an object");
    if (config_check_keys(o, path, config_admin_key_keys, err) != PB_OK ||
        config_str(o, path, "name", NULL, CONFIG_NAME_MAX, &k->name, err) != PB_OK ||
        config_str(o, path, "role", "viewer", 16, &role, err) != PB_OK ||
        config_str(o, path, "sha256", NULL, 64, &hex, err) != PB_OK)
        goto out;
    if (k->name == NULL || !config_is_name(k->name, config_name_chars)) {
        config_fail(err, path, "name", "is required: 1..64 chars of [A-Za-z0-9_.:@/+=-]");
        goto out;
    }
    if (strcmp(role, "viewer") != 0 && strcmp(role, "admin") != 0) {
        config_fail(err, path, "role", "must be \"viewer\" or \"admin\"");
        goto out;
    }
    k->role = strcmp(role, "admin") == 0 ? PB_ADMIN_ADMIN : PB_ADMIN_VIEWER;
    rc = config_sha256(hex, path, k->sha256, err);
out:
    free(hex);
    free(role);
    return rc;
}

/* The telemetry section (telemetry.c): off unless otlp_endpoint is set. The endpoint is the
 * collector's base address ("http://collector:4318"): /v1/traces is appended, as the OTLP
 * exporters' OTEL_EXPORTER_OTLP_ENDPOINT does. */
static int
config_parse_telemetry(pb_config *cfg, json_object *root, pb_error *err)
{
    json_object *t;
    pb_telemetry_conf *tc = &cfg->telemetry;
    if (config_obj(root, "", "telemetry", &t, err) != PB_OK)
        return PB_ERR;
    json_object *empty = json_object_new_object();
    json_object *o = t ? t : empty;
    char *endpoint = NULL, *encoding = NULL;
    int rc = PB_ERR;
    if (config_check_keys(o, "telemetry", config_telemetry_keys, err) != PB_OK ||
        config_str(o, "telemetry", "otlp_endpoint", NULL, 1024, &endpoint, err) != PB_OK ||
        config_str(o, "telemetry", "encoding", "json", 16, &encoding, err) != PB_OK ||
        config_number(o, "telemetry", "sample", 1.0, 0.0, 1.0, &tc->sample, err) != PB_OK ||
        config_boolean(o, "telemetry", "keep_fallbacks", true, &tc->keep_fallbacks, err) != PB_OK ||
        config_boolean(o, "telemetry", "capture_content", false, &tc->capture_content, err) !=
            PB_OK ||
        config_int(o, "telemetry", "max_queue_spans", 8192, 16, 1000000, &tc->max_queue_spans,
                   err) != PB_OK ||
        config_int(o, "telemetry", "batch_spans", 512, 1, 10000, &tc->batch_spans, err) != PB_OK ||
        config_int(o, "telemetry", "batch_interval_ms", 1000, 10, 60000, &tc->batch_interval_ms,
                   err) != PB_OK ||
        config_int(o, "telemetry", "timeout_ms", 10000, 100, 120000, &tc->timeout_ms, err) !=
            PB_OK ||
        config_str(o, "telemetry", "service_name", "planb", 256, &tc->service_name, err) != PB_OK ||
        config_parse_headers(&tc->headers, &tc->n_headers, o, "telemetry", false, err) != PB_OK)
        goto out;
    if (strcmp(encoding, "json") != 0 && strcmp(encoding, "protobuf") != 0) {
        config_fail(err, "telemetry", "encoding", "must be \"json\" or \"protobuf\"");
        goto out;
    }
    tc->protobuf = strcmp(encoding, "protobuf") == 0;
    if (endpoint != NULL) {
        size_t n = strlen(endpoint);
        while (n > 0 && endpoint[n - 1] == '/')
            n--;
        if ((strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0) ||
            strcspn(endpoint, " \t\r\n?#") != strlen(endpoint) || n <= 8) {
            config_fail(err, "telemetry", "otlp_endpoint",
                        "must be an http:// or https:// address without a query "
                        "(\"http://collector:4318\")");
            goto out;
        }
        tc->traces_url = pb_xasprintf("%.*s/v1/traces", (int)n, endpoint);
    }
    if (tc->batch_spans > tc->max_queue_spans)
        tc->batch_spans = tc->max_queue_spans; /* a batch is never more than the queue holds */
    rc = PB_OK;
out:
    free(endpoint);
    free(encoding);
    json_object_put(empty);
    return rc;
}

/* The admin section (admin.c): off unless listen is set; without keys only on loopback. */
static int
config_parse_admin(pb_config *cfg, json_object *root, pb_error *err)
{
    json_object *a, *v;
    pb_admin_conf *ac = &cfg->admin;
    if (config_obj(root, "", "admin", &a, err) != PB_OK)
        return PB_ERR;
    json_object *empty = json_object_new_object();
    json_object *o = a ? a : empty;
    int rc = PB_ERR;
    if (config_check_keys(o, "admin", config_admin_keys, err) != PB_OK ||
        config_listen(o, "admin", "listen", NULL, &ac->listen, err) != PB_OK ||
        config_str(o, "admin", "web_dir", NULL, 4096, &ac->web_dir, err) != PB_OK ||
        config_int(o, "admin", "refresh_ms", 2000, 500, 60000, &ac->refresh_ms, err) != PB_OK ||
        config_int(o, "admin", "session_ttl_s", 43200, 60, 30 * CONFIG_DAY_S, &ac->session_ttl_s,
                   err) != PB_OK)
        goto out;
    if (config_get(o, "keys", &v)) {
        size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
        if (!json_object_is_type(v, json_type_array) || n > 1000) {
            config_fail(err, "admin", "keys", "must be an array of at most 1000 keys");
            goto out;
        }
        ac->keys = n ? pb_xcalloc(n, sizeof(*ac->keys)) : NULL;
        for (size_t i = 0; i < n; i++) {
            char path[CONFIG_PATH_MAX];
            snprintf(path, sizeof(path), "admin.keys[%zu]", i);
            ac->n_keys = i + 1;
            if (config_admin_key(&ac->keys[i], json_object_array_get_idx(v, i), path, err) != PB_OK)
                goto out;
            for (size_t j = 0; j < i; j++)
                if (memcmp(ac->keys[j].sha256, ac->keys[i].sha256, 32) == 0 ||
                    strcmp(ac->keys[j].name, ac->keys[i].name) == 0) {
                    config_fail(err, path, NULL, "repeats the name or key of admin.keys[%zu]", j);
                    goto out;
                }
        }
    }
    if (ac->listen != NULL && ac->n_keys == 0 && !config_listen_is_loopback(ac->listen)) {
        config_fail(err, "admin", "listen",
                    "is not a loopback address and admin.keys is empty: anyone who can reach "
                    "it could act on the queues (add keys, or listen on 127.0.0.1)");
        goto out;
    }
    if (ac->listen != NULL && cfg->http.listen != NULL &&
        strcmp(ac->listen, cfg->http.listen) == 0) {
        config_fail(err, "admin", "listen", "must differ from http.listen");
        goto out;
    }
    rc = PB_OK;
out:
    json_object_put(empty);
    return rc;
}

/* The http section (front.c): off unless listen is set. */
static int
config_parse_http(pb_config *cfg, json_object *root, pb_error *err)
{
    json_object *h, *v;
    pb_http_conf *hc = &cfg->http;
    char *queue = NULL;
    if (config_obj(root, "", "http", &h, err) != PB_OK)
        return PB_ERR;
    json_object *empty = json_object_new_object();
    json_object *o = h ? h : empty;
    int rc = PB_ERR;
    if (config_check_keys(o, "http", config_http_keys, err) != PB_OK ||
        config_listen(o, "http", "listen", NULL, &hc->listen, err) != PB_OK ||
        config_str(o, "http", "queue", cfg->queues[0], CONFIG_NAME_MAX, &queue, err) != PB_OK ||
        config_int(o, "http", "max_connections", 10000, 1, 1000000, &hc->max_connections, err) !=
            PB_OK ||
        config_size(o, "http", "max_body_bytes", cfg->limits.job_max_bytes, 1024, 64u << 20,
                    &hc->max_body_bytes, err) != PB_OK ||
        config_size(o, "http", "max_header_bytes", 16384, 1024, 1u << 20, &hc->max_header_bytes,
                    err) != PB_OK ||
        config_int(o, "http", "client_timeout_ms", 30000, 100, 3600000, &hc->client_timeout_ms,
                   err) != PB_OK ||
        config_int(o, "http", "request_read_timeout_ms", 60000, 100, 3600000,
                   &hc->request_read_timeout_ms, err) != PB_OK ||
        config_size(o, "http", "max_bodies_bytes",
                    hc->max_body_bytes > (size_t)256 * CONFIG_MIB ? hc->max_body_bytes
                                                                  : (size_t)256 * CONFIG_MIB,
                    hc->max_body_bytes, (size_t)1 << 40, &hc->max_bodies_bytes, err) != PB_OK ||
        config_int(o, "http", "max_queue", 100000, 1, 100000000, &hc->max_queue, err) != PB_OK ||
        config_int(o, "http", "wait_grace_ms", 10000, 0, 3600000, &hc->wait_grace_ms, err) != PB_OK)
        goto out;
    hc->queue = -1;
    for (size_t i = 0; i < cfg->n_queues; i++)
        if (strcmp(cfg->queues[i], queue) == 0)
            hc->queue = (int)i;
    if (hc->queue < 0) {
        config_fail(err, "http", "queue", "must be one of queues");
        goto out;
    }
    if (config_get(o, "keys", &v)) {
        size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
        if (!json_object_is_type(v, json_type_array) || n > 10000) {
            config_fail(err, "http", "keys", "must be an array of at most 10000 keys");
            goto out;
        }
        hc->keys = n ? pb_xcalloc(n, sizeof(*hc->keys)) : NULL;
        for (size_t i = 0; i < n; i++) {
            char path[CONFIG_PATH_MAX];
            snprintf(path, sizeof(path), "http.keys[%zu]", i);
            hc->n_keys = i + 1;
            if (config_http_key(&hc->keys[i], json_object_array_get_idx(v, i), path, err) != PB_OK)
                goto out;
            for (size_t j = 0; j < i; j++)
                if (memcmp(hc->keys[j].sha256, hc->keys[i].sha256, 32) == 0 ||
                    strcmp(hc->keys[j].name, hc->keys[i].name) == 0) {
                    config_fail(err, path, NULL, "repeats the name or key of http.keys[%zu]", j);
                    goto out;
                }
        }
    }
    /* A key's tenant keeps its cached answers apart: a client must not pick another's. */
    if (config_boolean(o, "http", "tenant_header", hc->n_keys == 0, &hc->tenant_header, err) !=
            PB_OK ||
        config_http_tls(hc, o, err) != PB_OK)
        goto out;
    rc = PB_OK;
out:
    free(queue);
    json_object_put(empty);
    return rc;
}

/* The breaker section (docs/chain.md "Circuit breakers"): failures keeps its old name as the switch
 * and the default of consecutive; the rate rules need min_calls calls in the window. */
#define CONFIG_MAX_CONSECUTIVE 1000 /* a run's failure times are kept (and sent) to order them */
static int
config_breaker(json_object *b, pb_config *cfg, pb_error *err)
{
    if (config_int(b, "breaker", "failures", 5, 0, CONFIG_MAX_CONSECUTIVE, &cfg->breaker_failures,
                   err) != PB_OK ||
        config_int(b, "breaker", "window_s", 30, 1, CONFIG_DAY_S, &cfg->breaker_window_s, err) !=
            PB_OK ||
        config_int(b, "breaker", "open_s", 30, 1, CONFIG_DAY_S, &cfg->breaker_open_s, err) !=
            PB_OK ||
        config_number(b, "breaker", "failure_rate", 0.5, 0.01, 1.0, &cfg->breaker_failure_rate,
                      err) != PB_OK ||
        config_int(b, "breaker", "min_calls", 20, 1, 1000000, &cfg->breaker_min_calls, err) !=
            PB_OK ||
        config_int(b, "breaker", "consecutive", cfg->breaker_failures, 0, CONFIG_MAX_CONSECUTIVE,
                   &cfg->breaker_consecutive, err) != PB_OK ||
        config_int(b, "breaker", "slow_call_ms", 10000, 0, 3600000, &cfg->breaker_slow_call_ms,
                   err) != PB_OK ||
        config_number(b, "breaker", "slow_call_rate", 0.5, 0.01, 1.0, &cfg->breaker_slow_call_rate,
                      err) != PB_OK ||
        config_int(b, "breaker", "half_open_calls", 1, 1, 100, &cfg->breaker_half_open_calls,
                   err) != PB_OK ||
        config_int(b, "breaker", "max_open_s",
                   cfg->breaker_open_s > 300 ? cfg->breaker_open_s : 300, cfg->breaker_open_s,
                   CONFIG_DAY_S, &cfg->breaker_max_open_s, err) != PB_OK ||
        config_int(b, "breaker", "max_hold_s", 60, 1, CONFIG_DAY_S, &cfg->breaker_max_hold_s,
                   err) != PB_OK ||
        config_int(b, "breaker", "refused_hold_s", 60, 0, CONFIG_DAY_S,
                   &cfg->breaker_refused_hold_s, err) != PB_OK)
        return PB_ERR;
    return PB_OK;
}

/* The breaker and monitor sections (breaker.c, stats.c, metrics.c read them). */
static int
config_parse_breaker_monitor(pb_config *cfg, json_object *root, pb_error *err)
{
    json_object *b, *m, *v;
    if (config_obj(root, "", "breaker", &b, err) != PB_OK ||
        config_obj(root, "", "monitor", &m, err) != PB_OK)
        return PB_ERR;
    json_object *empty = json_object_new_object();
    int rc = PB_ERR;
    if (config_check_keys(b ? b : empty, "breaker", config_breaker_keys, err) != PB_OK ||
        config_breaker(b ? b : empty, cfg, err) != PB_OK ||
        config_check_keys(m ? m : empty, "monitor", config_monitor_keys, err) != PB_OK ||
        config_int(m ? m : empty, "monitor", "stats_interval_s", 10, 1, 3600,
                   &cfg->stats_interval_s, err) != PB_OK ||
        config_listen(m ? m : empty, "monitor", "metrics_listen", "127.0.0.1:9464",
                      &cfg->metrics_listen, err) != PB_OK)
        goto out;
    cfg->alert_fallback_rate = 0.2;
    if (m && config_get(m, "alert_fallback_rate", &v)) {
        double d = json_object_get_double(v);
        if (!(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)) ||
            !(d > 0.0 && d <= 1.0)) {
            config_fail(err, "monitor", "alert_fallback_rate", "must be a number in (0, 1]");
            goto out;
        }
        cfg->alert_fallback_rate = d;
    }
    rc = PB_OK;
out:
    json_object_put(empty);
    return rc;
}

static int
config_parse_root(pb_config *cfg, json_object *root, pb_error *err)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int def_workers = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
    if (config_check_keys(root, "", config_top_keys, err) != PB_OK ||
        config_parse_redis_at(cfg, root, "redis", "redis", CONFIG_DEFAULT_URL, err) != PB_OK ||
        config_int(root, "", "workers", def_workers, 1, 256, &cfg->workers, err) != PB_OK ||
        config_int(root, "", "concurrency", 512, 1, 100000, &cfg->concurrency, err) != PB_OK ||
        config_parse_queues(cfg, root, err) != PB_OK ||
        config_int(root, "", "result_ttl_s", CONFIG_DAY_S, 1, 30 * CONFIG_DAY_S, &cfg->result_ttl_s,
                   err) != PB_OK ||
        config_int(root, "", "reply_ttl_s", 300, 1, CONFIG_DAY_S, &cfg->reply_ttl_s, err) !=
            PB_OK ||
        config_int(root, "", "claim_batch", 64, 1, 1000, &cfg->claim_batch, err) != PB_OK ||
        config_int(root, "", "drain_timeout_ms", 30000, 0, 600000, &cfg->drain_timeout_ms, err) !=
            PB_OK ||
        config_int(root, "", "lease_ms", 10000, 1000, 600000, &cfg->lease_ms, err) != PB_OK ||
        config_int(root, "", "max_deliveries", 5, 1, 100, &cfg->max_deliveries, err) != PB_OK ||
        config_int(root, "", "stream_maxlen", 10000, 16, 1000000, &cfg->stream_maxlen, err) !=
            PB_OK ||
        config_int(root, "", "stream_ttl_s", 300, 1, CONFIG_DAY_S, &cfg->stream_ttl_s, err) !=
            PB_OK ||
        config_int(root, "", "events_maxlen", 100000, 0, 100000000, &cfg->events_maxlen, err) !=
            PB_OK ||
        config_parse_limits(cfg, root, err) != PB_OK ||
        config_parse_sections(cfg, root, err) != PB_OK ||
        config_parse_cache(cfg, root, err) != PB_OK ||
        config_parse_breaker_monitor(cfg, root, err) != PB_OK ||
        config_parse_http(cfg, root, err) != PB_OK || config_parse_admin(cfg, root, err) != PB_OK ||
        config_parse_telemetry(cfg, root, err) != PB_OK)
        return PB_ERR;
    return PB_OK;
}

/* Parses exactly len bytes; comments are allowed, so this is json-c's non-strict mode. */
static pb_config *
config_parse_buf(const char *json, size_t len, pb_error *err)
{
    if (len > CONFIG_MAX_BYTES) {
        config_fail(err, "", NULL, "config is %zu bytes, limit %d", len, CONFIG_MAX_BYTES);
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(CONFIG_MAX_DEPTH);
    pb_assert(tok != NULL);
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, json, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (root == NULL || end != len) {
        int line = 1;
        for (size_t i = 0; i < end && i < len; i++)
            line += json[i] == '\n';
        const char *why = root != NULL                    ? "unexpected text after the end"
                          : jerr == json_tokener_continue ? "unexpected end of file"
                                                          : json_tokener_error_desc(jerr);
        json_object_put(root);
        config_fail(err, "", NULL, "not valid JSON (line %d: %s)", line, why);
        return NULL;
    }
    pb_config *cfg = NULL;
    if (!json_object_is_type(root, json_type_object)) {
        config_fail(err, "", NULL, "must be a JSON object");
    } else {
        cfg = pb_xcalloc(1, sizeof(*cfg));
        if (config_parse_root(cfg, root, err) != PB_OK) {
            pb_config_free(cfg);
            cfg = NULL;
        }
    }
    json_object_put(root);
    return cfg;
}

pb_config *
pb_config_parse(const char *json, pb_error *err)
{
    return config_parse_buf(json, strlen(json), err);
}

/* Reads at most CONFIG_MAX_BYTES + 1 bytes, so a huge file (or a pipe) is refused without
 * reading it all, whatever fstat says. */
pb_config *
pb_config_load(const char *path, pb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        config_fail(err, "", NULL, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = pb_xmalloc(CONFIG_MAX_BYTES + 1);
    size_t len = 0;
    while (len <= CONFIG_MAX_BYTES) {
        ssize_t n = read(fd, buf + len, CONFIG_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            config_fail(err, "", NULL, "cannot read %s: %s", path, strerror(errno));
            close(fd);
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    pb_config *cfg;
    if (len > CONFIG_MAX_BYTES) {
        config_fail(err, "", NULL, "%s is larger than %d bytes", path, CONFIG_MAX_BYTES);
        cfg = NULL;
    } else {
        cfg = config_parse_buf(buf, len, err);
    }
    free(buf);
    if (cfg != NULL)
        cfg->path = pb_xstrdup(path);
    return cfg;
}

void
pb_config_free(pb_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->redis_url);
    free(cfg->redis_host);
    free(cfg->redis_user);
    free(cfg->redis_password);
    for (size_t i = 0; i < cfg->n_sentinels; i++)
        free(cfg->sentinel_hosts[i]);
    free(cfg->sentinel_hosts);
    free(cfg->sentinel_ports);
    free(cfg->master_name);
    free(cfg->sentinel_password);
    free(cfg->sentinel_user);
    config_tls_free(&cfg->redis_tls);
    config_tls_free(&cfg->sentinel_tls);
    free(cfg->prefix);
    for (size_t i = 0; i < cfg->n_queues; i++)
        free(cfg->queues[i]);
    free(cfg->queues);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        pb_provider_conf *p = &cfg->providers[i];
        free(p->name);
        free(p->base_url);
        free(p->api_key_env);
        free(p->api_key);
        free(p->anthropic_version);
        free(p->query);
        free(p->api_version);
        free(p->bearer_token_env);
        if (p->bearer_token != NULL)
            OPENSSL_cleanse(p->bearer_token, strlen(p->bearer_token));
        free(p->bearer_token);
        free(p->region);
        free(p->aws_access_key_id_env);
        free(p->aws_secret_access_key_env);
        free(p->aws_session_token_env);
        char *secrets[] = {p->aws_access_key_id, p->aws_secret_access_key, p->aws_session_token};
        for (size_t k = 0; k < sizeof(secrets) / sizeof(*secrets); k++) {
            if (secrets[k] != NULL)
                OPENSSL_cleanse(secrets[k], strlen(secrets[k]));
            free(secrets[k]);
        }
        free(p->ca_file);
        free(p->cert_file);
        free(p->key_file);
        free(p->proxy);
        for (size_t k = 0; k < p->n_headers; k++) {
            OPENSSL_cleanse(p->headers[k], strlen(p->headers[k]));
            free(p->headers[k]);
        }
        free(p->headers);
    }
    free(cfg->providers);
    for (size_t i = 0; i < cfg->n_models; i++) {
        free(cfg->models[i].name);
        free(cfg->models[i].upstream);
    }
    free(cfg->models);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        free(cfg->routes[i].name);
        free(cfg->routes[i].chain);
        free(cfg->routes[i].degraded_reply);
    }
    free(cfg->routes);
    free(cfg->metrics_listen);
    free(cfg->http.listen);
    free(cfg->admin.listen);
    free(cfg->admin.web_dir);
    for (size_t i = 0; i < cfg->admin.n_keys; i++)
        free(cfg->admin.keys[i].name);
    free(cfg->admin.keys);
    for (size_t i = 0; i < cfg->http.n_keys; i++) {
        free(cfg->http.keys[i].name);
        free(cfg->http.keys[i].tenant);
    }
    free(cfg->http.keys);
    free(cfg->http.tls_cert_file);
    free(cfg->http.tls_key_file);
    free(cfg->semantic.model);
    free(cfg->telemetry.traces_url);
    free(cfg->telemetry.service_name);
    for (size_t k = 0; k < cfg->telemetry.n_headers; k++) {
        OPENSSL_cleanse(cfg->telemetry.headers[k], strlen(cfg->telemetry.headers[k]));
        free(cfg->telemetry.headers[k]);
    }
    free(cfg->telemetry.headers);
    pb_config_free(cfg->cache_redis);
    free(cfg);
}

int
pb_config_model_index(const pb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (strcmp(cfg->models[i].name, name) == 0)
            return (int)i;
    return -1;
}

int
pb_config_route_index(const pb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i].name, name) == 0)
            return (int)i;
    return -1;
}
