/* model.c -- behaviours and the per-model table of planb-mock.
 *
 * A test chooses a fault per model name: the config file sets the starting
 * behaviours, the control endpoints replace them at run time, and reset goes
 * back to the config. Every entry also keeps the counters behind
 * /_mock/stats and the last request behind /_mock/last/<name>. The table is a
 * chained hash keyed by model name; it only grows (up to MOCK_MODELS_MAX). */
#include "model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "planb/hash.h"

/* Bounds on behaviour fields: generous for tests, small enough that a typo
 * (latency in seconds instead of ms, say) cannot wedge a test run for hours. */
#define MOCK_LATENCY_MAX_MS  600000
#define MOCK_DRIP_BYTES_MAX  (1 << 20)
#define MOCK_INTERVAL_MAX_MS 60000
#define MOCK_BYTES_DEFAULT   ((size_t)8 << 20)
#define MOCK_BYTES_MAX       ((size_t)256 << 20)
#define MOCK_FAIL_FIRST_MAX  1000000000L
#define MOCK_FAULT_AFTER_MAX 100000 /* far more content events than a test streams */
/* A load test may invent model names; past this many the rest share the default
 * behaviour and go uncounted instead of growing memory without bound. */
#define MOCK_MODELS_MAX 65536

struct pb_mock_table {
    pb_mock_model **buckets;     /* hash chains */
    size_t nbuckets;             /* power of two */
    size_t count;                /* entries */
    pb_mock_behaviour *fallback; /* behaviour of models without their own */
    json_object *config;         /* the config file (owned ref), for reset */
    long total;                  /* requests on API endpoints since the last reset */
};

static const char *const model_stream_fault_names[] = {
    "none", "error_before", "error_mid", "reset_mid", "stall", "malformed", "no_done",
};

static const char *const model_mode_names[] = {
    "ok", "status", "hang", "drip", "reset", "truncated", "html", "missing", "empty", "oversized",
};

void
pb_mock_behaviour_free(pb_mock_behaviour *b)
{
    if (b == NULL)
        return;
    free(b->error_type);
    free(b->error_message);
    free(b->error_code);
    free(b->retry_after);
    free(b->reply);
    free(b->finish_reason);
    free(b->refusal);
    json_object_put(b->tool_calls);
    free(b);
}

static pb_mock_behaviour *
model_behaviour_default(void)
{
    pb_mock_behaviour *b = pb_xcalloc(1, sizeof(*b));
    b->mode = PB_MOCK_OK;
    b->status = 500;
    b->drip_bytes = 1;
    b->drip_interval_ms = 100;
    b->bytes = MOCK_BYTES_DEFAULT;
    b->fail_status = 503;
    b->fault_after = 2;
    return b;
}

/* Reads an integer field into *out when it lies in [min, max]. */
static int
model_get_int(json_object *v, const char *key, int64_t min, int64_t max, int64_t *out,
              pb_error *err)
{
    if (!json_object_is_type(v, json_type_int)) {
        pb_error_set(err, 1, "%s: must be an integer", key);
        return PB_ERR;
    }
    int64_t n = json_object_get_int64(v);
    if (n < min || n > max) {
        pb_error_set(err, 1, "%s: must be between %lld and %lld", key, (long long)min,
                     (long long)max);
        return PB_ERR;
    }
    *out = n;
    return PB_OK;
}

/* Reads a share (a number from 0 to 1) into *out. */
static int
model_get_share(json_object *v, const char *key, double *out, pb_error *err)
{
    double d = json_object_get_double(v);
    if ((!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) ||
        !(d >= 0.0 && d <= 1.0)) {
        pb_error_set(err, 1, "%s: must be a number from 0 to 1", key);
        return PB_ERR;
    }
    *out = d;
    return PB_OK;
}

/* Copies a string field into *out (replacing it); header values must not hold CR/LF. */
static int
model_get_str(json_object *v, const char *key, bool header, char **out, pb_error *err)
{
    if (!json_object_is_type(v, json_type_string)) {
        pb_error_set(err, 1, "%s: must be a string", key);
        return PB_ERR;
    }
    const char *s = json_object_get_string(v);
    if (header && (*s == '\0' || strpbrk(s, "\r\n") != NULL)) {
        pb_error_set(err, 1, "%s: must be a non-empty single-line string", key);
        return PB_ERR;
    }
    free(*out);
    *out = pb_xstrdup(s);
    return PB_OK;
}

/* Reads an int field into *out when it lies in [min, max]. */
static int
model_set_int(json_object *v, const char *key, int min, int max, int *out, pb_error *err)
{
    int64_t n;
    if (model_get_int(v, key, min, max, &n, err) != PB_OK)
        return PB_ERR;
    *out = (int)n;
    return PB_OK;
}

static int
model_get_bool(json_object *v, const char *key, bool *out, pb_error *err)
{
    if (!json_object_is_type(v, json_type_boolean)) {
        pb_error_set(err, 1, "%s: must be true or false", key);
        return PB_ERR;
    }
    *out = json_object_get_boolean(v);
    return PB_OK;
}

/* tool_calls: a non-empty array of {"name": string, "arguments": object}. */
static int
model_parse_tool_calls(pb_mock_behaviour *b, json_object *v, pb_error *err)
{
    size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
    bool ok = n > 0 && n <= 16;
    for (size_t i = 0; ok && i < n; i++) {
        json_object *c = json_object_array_get_idx(v, i), *name, *args;
        ok = json_object_object_get_ex(c, "name", &name) &&
             json_object_is_type(name, json_type_string) &&
             json_object_object_get_ex(c, "arguments", &args) &&
             json_object_is_type(args, json_type_object);
    }
    if (!ok) {
        pb_error_set(err, 1, "tool_calls: must be 1..16 {\"name\": string, \"arguments\": object}");
        return PB_ERR;
    }
    json_object_put(b->tool_calls);
    b->tool_calls = json_object_get(v);
    return PB_OK;
}

static int
model_parse_field(pb_mock_behaviour *b, const char *key, json_object *v, pb_error *err)
{
    int64_t n = 0;
    if (strcmp(key, "mode") == 0) {
        const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        for (size_t i = 0; i < sizeof(model_mode_names) / sizeof(model_mode_names[0]); i++) {
            if (strcmp(s, model_mode_names[i]) == 0) {
                b->mode = (pb_mock_mode)i;
                return PB_OK;
            }
        }
        pb_error_set(err, 1,
                     "mode: must be one of ok, status, hang, drip, reset, truncated, html, "
                     "missing, empty, oversized");
        return PB_ERR;
    }
    if (strcmp(key, "status") == 0)
        return model_set_int(v, key, 400, 599, &b->status, err);
    if (strcmp(key, "fail_status") == 0)
        return model_set_int(v, key, 400, 599, &b->fail_status, err);
    if (strcmp(key, "latency_ms") == 0)
        return model_set_int(v, key, 0, MOCK_LATENCY_MAX_MS, &b->latency_ms, err);
    if (strcmp(key, "slow_ms") == 0)
        return model_set_int(v, key, 0, MOCK_LATENCY_MAX_MS, &b->slow_ms, err);
    if (strcmp(key, "fail_rate") == 0)
        return model_get_share(v, key, &b->fail_rate, err);
    if (strcmp(key, "slow_rate") == 0)
        return model_get_share(v, key, &b->slow_rate, err);
    if (strcmp(key, "drip_bytes") == 0)
        return model_set_int(v, key, 1, MOCK_DRIP_BYTES_MAX, &b->drip_bytes, err);
    if (strcmp(key, "drip_interval_ms") == 0)
        return model_set_int(v, key, 1, MOCK_INTERVAL_MAX_MS, &b->drip_interval_ms, err);
    if (strcmp(key, "bytes") == 0) {
        if (model_get_int(v, key, 0, (int64_t)MOCK_BYTES_MAX, &n, err) != PB_OK)
            return PB_ERR;
        b->bytes = (size_t)n;
        return PB_OK;
    }
    if (strcmp(key, "fail_first") == 0) {
        if (model_get_int(v, key, 0, MOCK_FAIL_FIRST_MAX, &n, err) != PB_OK)
            return PB_ERR;
        b->fail_first = (long)n;
        return PB_OK;
    }
    if (strcmp(key, "error_type") == 0)
        return model_get_str(v, key, false, &b->error_type, err);
    if (strcmp(key, "error_message") == 0)
        return model_get_str(v, key, false, &b->error_message, err);
    if (strcmp(key, "error_code") == 0)
        return model_get_str(v, key, false, &b->error_code, err);
    if (strcmp(key, "reply") == 0)
        return model_get_str(v, key, false, &b->reply, err);
    if (strcmp(key, "refusal") == 0)
        return model_get_str(v, key, false, &b->refusal, err);
    if (strcmp(key, "retry_after") == 0)
        return model_get_str(v, key, true, &b->retry_after, err);
    if (strcmp(key, "tool_calls") == 0)
        return model_parse_tool_calls(b, v, err);
    if (strcmp(key, "chunk_interval_ms") == 0)
        return model_set_int(v, key, 0, MOCK_INTERVAL_MAX_MS, &b->chunk_interval_ms, err);
    if (strcmp(key, "fault_after") == 0) {
        if (model_get_int(v, key, 0, MOCK_FAULT_AFTER_MAX, &n, err) != PB_OK)
            return PB_ERR;
        b->fault_after = (long)n;
        return PB_OK;
    }
    if (strcmp(key, "stream_fault") == 0) {
        const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        for (size_t i = 0;
             i < sizeof(model_stream_fault_names) / sizeof(model_stream_fault_names[0]); i++) {
            if (strcmp(s, model_stream_fault_names[i]) == 0) {
                b->stream_fault = (pb_mock_stream_fault)i;
                return PB_OK;
            }
        }
        pb_error_set(err, 1,
                     "stream_fault: must be one of none, error_before, error_mid, reset_mid, "
                     "stall, malformed, no_done");
        return PB_ERR;
    }
    if (strcmp(key, "bad_tool_args") == 0)
        return model_get_bool(v, key, &b->bad_tool_args, err);
    if (strcmp(key, "stall_pings") == 0)
        return model_get_bool(v, key, &b->stall_pings, err);
    if (strcmp(key, "finish_reason") == 0) {
        const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (strcmp(s, "length") != 0 && strcmp(s, "content_filter") != 0) {
            pb_error_set(err, 1, "finish_reason: must be length or content_filter");
            return PB_ERR;
        }
        return model_get_str(v, key, false, &b->finish_reason, err);
    }
    pb_error_set(err, 1, "%s: unknown field", key);
    return PB_ERR;
}

pb_mock_behaviour *
pb_mock_behaviour_parse(json_object *obj, pb_error *err)
{
    if (!json_object_is_type(obj, json_type_object)) {
        pb_error_set(err, 1, "behaviour must be a JSON object");
        return NULL;
    }
    pb_mock_behaviour *b = model_behaviour_default();
    json_object_object_foreach(obj, key, v)
    {
        if (model_parse_field(b, key, v, err) != PB_OK) {
            pb_mock_behaviour_free(b);
            return NULL;
        }
    }
    return b;
}

/* The bucket of name among nbuckets (a power of two). FNV-1a 64: model names are
 * short, so a simple hash is enough. */
static size_t
model_bucket(const char *name, size_t nbuckets)
{
    return (size_t)pb_hash_fnv1a64_str(name, PB_HASH_FNV1A64_OFFSET) & (nbuckets - 1);
}

static void
model_free(pb_mock_model *m)
{
    free(m->name);
    pb_mock_behaviour_free(m->behaviour);
    if (m->last != NULL)
        json_object_put(m->last);
    free(m);
}

static void
model_clear(pb_mock_table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        pb_mock_model *m = t->buckets[i];
        while (m != NULL) {
            pb_mock_model *next = m->next;
            model_free(m);
            m = next;
        }
        t->buckets[i] = NULL;
    }
    t->count = 0;
    t->total = 0;
    pb_mock_behaviour_free(t->fallback);
    t->fallback = NULL;
}

/* Doubles the bucket array once the chains average more than one entry. */
static void
model_grow(pb_mock_table *t)
{
    size_t n = t->nbuckets * 2;
    pb_mock_model **b = pb_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        pb_mock_model *m = t->buckets[i];
        while (m != NULL) {
            pb_mock_model *next = m->next;
            size_t j = model_bucket(m->name, n);
            m->next = b[j];
            b[j] = m;
            m = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

pb_mock_model *
pb_mock_table_get(pb_mock_table *t, const char *name, bool create)
{
    size_t i = model_bucket(name, t->nbuckets);
    for (pb_mock_model *m = t->buckets[i]; m != NULL; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    if (!create || t->count >= MOCK_MODELS_MAX)
        return NULL;
    if (t->count >= t->nbuckets) {
        model_grow(t);
        i = model_bucket(name, t->nbuckets);
    }
    pb_mock_model *m = pb_xcalloc(1, sizeof(*m));
    m->name = pb_xstrdup(name);
    m->next = t->buckets[i];
    t->buckets[i] = m;
    t->count++;
    return m;
}

const pb_mock_behaviour *
pb_mock_table_behaviour(const pb_mock_table *t, const pb_mock_model *m)
{
    return m != NULL && m->behaviour != NULL ? m->behaviour : t->fallback;
}

void
pb_mock_table_set(pb_mock_table *t, const char *name, pb_mock_behaviour *b)
{
    if (name == NULL) {
        pb_mock_behaviour_free(t->fallback);
        t->fallback = b;
        /* Models that follow the default start their fail_first count again. */
        for (size_t i = 0; i < t->nbuckets; i++)
            for (pb_mock_model *m = t->buckets[i]; m != NULL; m = m->next)
                if (m->behaviour == NULL)
                    m->fail_seen = 0;
        return;
    }
    pb_mock_model *m = pb_mock_table_get(t, name, true);
    if (m == NULL) {
        pb_mock_behaviour_free(b);
        return;
    }
    pb_mock_behaviour_free(m->behaviour);
    m->behaviour = b;
    m->fail_seen = 0;
}

/* Applies the config to an empty table; the config was validated by pb_mock_table_new. */
static int
model_load(pb_mock_table *t, pb_error *err)
{
    json_object *v;
    if (t->config != NULL && json_object_object_get_ex(t->config, "default", &v)) {
        pb_mock_behaviour *b = pb_mock_behaviour_parse(v, err);
        if (b == NULL)
            return PB_ERR;
        pb_mock_table_set(t, NULL, b);
    } else {
        pb_mock_table_set(t, NULL, model_behaviour_default());
    }
    if (t->config == NULL || !json_object_object_get_ex(t->config, "models", &v))
        return PB_OK;
    if (!json_object_is_type(v, json_type_object)) {
        pb_error_set(err, 1, "models: must be an object of name: behaviour");
        return PB_ERR;
    }
    json_object_object_foreach(v, name, bv)
    {
        pb_error sub;
        pb_mock_behaviour *b = pb_mock_behaviour_parse(bv, &sub);
        if (b == NULL) {
            pb_error_set(err, 1, "models.%s: %s", name, sub.msg);
            return PB_ERR;
        }
        pb_mock_table_set(t, name, b);
    }
    return PB_OK;
}

pb_mock_table *
pb_mock_table_new(json_object *config, pb_error *err)
{
    if (config != NULL) {
        if (!json_object_is_type(config, json_type_object)) {
            pb_error_set(err, 1, "config must be a JSON object");
            return NULL;
        }
        json_object_object_foreach(config, key, v)
        {
            (void)v;
            if (strcmp(key, "default") != 0 && strcmp(key, "models") != 0) {
                pb_error_set(err, 1, "%s: unknown config key (expected default, models)", key);
                return NULL;
            }
        }
    }
    pb_mock_table *t = pb_xcalloc(1, sizeof(*t));
    t->nbuckets = 64;
    t->buckets = pb_xcalloc(t->nbuckets, sizeof(*t->buckets));
    t->config = config != NULL ? json_object_get(config) : NULL;
    if (model_load(t, err) != PB_OK) {
        pb_mock_table_free(t);
        return NULL;
    }
    return t;
}

void
pb_mock_table_free(pb_mock_table *t)
{
    if (t == NULL)
        return;
    model_clear(t);
    free(t->buckets);
    if (t->config != NULL)
        json_object_put(t->config);
    free(t);
}

void
pb_mock_table_reset(pb_mock_table *t)
{
    model_clear(t);
    /* The config loaded once at start, so it loads again. */
    int rc = model_load(t, NULL);
    pb_assert(rc == PB_OK);
}

void
pb_mock_table_count(pb_mock_table *t)
{
    t->total++;
}

json_object *
pb_mock_table_stats(const pb_mock_table *t, long pending)
{
    json_object *models = json_object_new_object();
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (const pb_mock_model *m = t->buckets[i]; m != NULL; m = m->next) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "requests", json_object_new_int64(m->requests));
            json_object_object_add(o, "ok", json_object_new_int64(m->ok));
            json_object_object_add(o, "failed", json_object_new_int64(m->failed));
            json_object_object_add(o, "invalid", json_object_new_int64(m->invalid));
            json_object_object_add(models, m->name, o);
        }
    }
    json_object *s = json_object_new_object();
    json_object_object_add(s, "total", json_object_new_int64(t->total));
    json_object_object_add(s, "pending", json_object_new_int64(pending));
    json_object_object_add(s, "models", models);
    return s;
}
