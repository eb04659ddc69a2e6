/* overview.c -- the admin overview: one overview.lua read per refresh, figures and charts
 * computed here from the per-minute stats hashes (see overview.h). */
#include "planb/overview.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/scripts.h"
#include "planb/stats.h"

/* Older minutes read per refresh until the 24 h are in memory: about 25 us of Redis CPU each
 * (bench_admin), so a refresh stays under 1 ms while it backfills (72 refreshes, 2.4 min). */
#define OV_BACKFILL_PER_REFRESH 20
#define OV_REPLY_MAX            (16u << 20) /* a larger overview reply means a runaway hash */

typedef struct ov_minute {
    long long minute;    /* unix minute, 0 when the slot is empty */
    json_object *fields; /* its stats hash (field -> int), NULL when Redis had none */
    bool read;           /* asked of Redis at least once */
} ov_minute;

struct pb_overview {
    const pb_config *cfg;
    json_object *last; /* overview.lua's last reply, parsed */
    int64_t last_ms;   /* its Redis time */
    ov_minute ring[PB_OVERVIEW_MINUTES + 2];
};

pb_overview *
pb_overview_new(const pb_config *cfg)
{
    pb_overview *o = pb_xcalloc(1, sizeof(*o));
    o->cfg = cfg;
    return o;
}

void
pb_overview_free(pb_overview *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < sizeof(o->ring) / sizeof(o->ring[0]); i++)
        json_object_put(o->ring[i].fields);
    json_object_put(o->last);
    free(o);
}

static ov_minute *
ov_slot(pb_overview *o, long long minute)
{
    return &o->ring[minute % (long long)(sizeof(o->ring) / sizeof(o->ring[0]))];
}

static const ov_minute *
ov_slot_c(const pb_overview *o, long long minute)
{
    const ov_minute *m = &o->ring[minute % (long long)(sizeof(o->ring) / sizeof(o->ring[0]))];
    return m->minute == minute ? m : NULL;
}

/* The minutes this refresh asks for: the current and previous one always, then up to
 * OV_BACKFILL_PER_REFRESH never read, newest first. */
static size_t
ov_minutes_to_read(pb_overview *o, long long cur, long long *out, size_t max)
{
    size_t n = 0;
    out[n++] = cur;
    out[n++] = cur - 1;
    for (long long m = cur - 2; m > cur - PB_OVERVIEW_MINUTES && n < max; m--) {
        ov_minute *s = ov_slot(o, m);
        if (s->minute != m || !s->read)
            out[n++] = m;
    }
    return n;
}

int
pb_overview_refresh(pb_overview *o, pb_redissync *c, char *why, size_t why_size)
{
    const pb_config *cfg = o->cfg;
    long long cur = pb_wall_ms() / 60000;
    long long minutes[2 + OV_BACKFILL_PER_REFRESH];
    size_t nmin = ov_minutes_to_read(o, cur, minutes, sizeof(minutes) / sizeof(minutes[0]));
    size_t argc = 6 + cfg->n_queues + cfg->n_models + nmin; /* EVAL body 0 prefix nq .. nm .. */
    const char **argv = pb_xcalloc(argc, sizeof(*argv));
    char **owned = pb_xcalloc(argc, sizeof(*owned));
    const pb_lua_source *src = pb_scripts_find("overview");
    pb_assert(src != NULL);
    size_t a = 0;
    argv[a++] = "EVAL";
    argv[a++] = src->body;
    argv[a++] = "0";
    argv[a++] = cfg->prefix;
    owned[a] = pb_xasprintf("%zu", cfg->n_queues);
    argv[a] = owned[a];
    a++;
    for (size_t i = 0; i < cfg->n_queues; i++)
        argv[a++] = cfg->queues[i];
    owned[a] = pb_xasprintf("%zu", cfg->n_models);
    argv[a] = owned[a];
    a++;
    for (size_t i = 0; i < cfg->n_models; i++)
        argv[a++] = cfg->models[i].name;
    for (size_t i = 0; i < nmin && a < argc; i++) {
        owned[a] = pb_xasprintf("%lld", minutes[i]);
        argv[a] = owned[a];
        a++;
    }
    redisReply *r = pb_redissync_command_argv(c, (int)a, argv, NULL);
    for (size_t i = 0; i < argc; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len > OV_REPLY_MAX) {
        snprintf(why, why_size, "%s",
                 r == NULL                      ? pb_redissync_error(c)
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "overview.lua gave no JSON");
        freeReplyObject(r);
        return PB_ERR;
    }
    json_object *j = json_tokener_parse(r->str);
    freeReplyObject(r);
    json_object *now, *mins;
    if (j == NULL || !json_object_object_get_ex(j, "now_ms", &now) ||
        !json_object_object_get_ex(j, "minutes", &mins)) {
        snprintf(why, why_size, "overview.lua's reply is malformed");
        json_object_put(j);
        return PB_ERR;
    }
    for (size_t i = 0; i < nmin; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%lld", minutes[i]);
        ov_minute *s = ov_slot(o, minutes[i]);
        json_object_put(s->fields);
        json_object *f = NULL;
        s->fields =
            json_object_object_get_ex(mins, name, &f) && json_object_is_type(f, json_type_object)
                ? json_object_get(f)
                : NULL;
        s->minute = minutes[i];
        s->read = true;
    }
    json_object_object_del(j, "minutes");
    json_object_put(o->last);
    o->last = j;
    o->last_ms = json_object_get_int64(now);
    return PB_OK;
}

/* Field f summed over the n minutes ending at cur. */
static long long
ov_sum(const pb_overview *o, long long cur, int n, const char *f)
{
    long long sum = 0;
    for (long long m = cur - n + 1; m <= cur; m++) {
        const ov_minute *s = ov_slot_c(o, m);
        json_object *v;
        if (s && s->fields && json_object_object_get_ex(s->fields, f, &v))
            sum += json_object_get_int64(v);
    }
    return sum;
}

/* The q-quantile (0..1) in ms of the histogram "<prefix><bound>" over n minutes ending at cur,
 * interpolated inside its bucket; -1 with no sample. */
static double
ov_quantile(const pb_overview *o, long long cur, int n, const char *prefix, double q)
{
    long long counts[PB_STATS_N_BUCKETS], total = 0;
    char f[200];
    for (int b = 0; b < PB_STATS_N_BUCKETS; b++) {
        const char *bound =
            pb_stats_bucket_name(b < PB_STATS_N_BUCKETS - 1 ? pb_stats_bucket_ms[b] : 1 << 30);
        snprintf(f, sizeof(f), "%s%s", prefix, bound);
        counts[b] = ov_sum(o, cur, n, f);
        total += counts[b];
    }
    if (total == 0)
        return -1;
    double want = q * (double)total, seen = 0;
    for (int b = 0; b < PB_STATS_N_BUCKETS; b++) {
        if (counts[b] > 0 && seen + (double)counts[b] >= want) {
            double lo = b == 0 ? 0 : pb_stats_bucket_ms[b - 1];
            double hi = b < PB_STATS_N_BUCKETS - 1 ? pb_stats_bucket_ms[b] : lo * 2;
            return lo + (hi - lo) * ((want - seen) / (double)counts[b]);
        }
        seen += (double)counts[b];
    }
    return pb_stats_bucket_ms[PB_STATS_N_BUCKETS - 2];
}

static json_object *
ov_ms(double v)
{
    return v < 0 ? NULL : json_object_new_int64((int64_t)(v + 0.5));
}

static json_object *
ov_rate(long long part, long long whole)
{
    return json_object_new_double(whole > 0 ? (double)part / (double)whole : 0.0);
}

static json_object *
ov_p50_p99(const pb_overview *o, long long cur, int n, const char *prefix)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "p50", ov_ms(ov_quantile(o, cur, n, prefix, 0.50)));
    json_object_object_add(r, "p99", ov_ms(ov_quantile(o, cur, n, prefix, 0.99)));
    return r;
}

/* One chart point over the n minutes ending at last. */
static json_object *
ov_point(const pb_overview *o, long long last, int n)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "t", json_object_new_int64((last - n + 1) * 60000));
    json_object_object_add(p, "jobs", json_object_new_int64(ov_sum(o, last, n, "jobs")));
    json_object_object_add(p, "fallback",
                           json_object_new_int64(ov_sum(o, last, n, "source:fallback") +
                                                 ov_sum(o, last, n, "source:stale_cache")));
    json_object_object_add(p, "degraded",
                           json_object_new_int64(ov_sum(o, last, n, "source:degraded")));
    json_object_object_add(p, "cache",
                           json_object_new_int64(ov_sum(o, last, n, "source:cache") +
                                                 ov_sum(o, last, n, "source:semantic_cache")));
    json_object_object_add(p, "p50_ms", ov_ms(ov_quantile(o, last, n, "latency_le:", 0.5)));
    json_object_object_add(p, "p99_ms", ov_ms(ov_quantile(o, last, n, "latency_le:", 0.99)));
    return p;
}

static json_object *
ov_history(const pb_overview *o, long long cur)
{
    json_object *h = json_object_new_object(), *minute = json_object_new_array(),
                *five = json_object_new_array();
    for (long long m = cur - 59; m <= cur; m++)
        json_object_array_add(minute, ov_point(o, m, 1));
    for (long long m = cur - PB_OVERVIEW_MINUTES + 5; m <= cur; m += 5)
        json_object_array_add(five, ov_point(o, m, 5));
    json_object_object_add(h, "minute", minute);
    json_object_object_add(h, "five_min", five);
    return h;
}

/* Element i of array field name of the last reply, or NULL. */
static json_object *
ov_last_at(const pb_overview *o, const char *name, size_t i)
{
    json_object *a;
    if (o->last == NULL || !json_object_object_get_ex(o->last, name, &a) ||
        !json_object_is_type(a, json_type_array) || i >= json_object_array_length(a))
        return NULL;
    return json_object_array_get_idx(a, i);
}

static json_object *
ov_copy_field(json_object *obj, const char *name)
{
    json_object *v;
    if (obj == NULL || !json_object_object_get_ex(obj, name, &v) || v == NULL)
        return NULL;
    return json_object_get(v);
}

const char *
pb_overview_paused(const pb_overview *o, const char *queue)
{
    json_object *p, *v;
    if (o->last == NULL || !json_object_object_get_ex(o->last, "paused", &p) ||
        !json_object_is_type(p, json_type_object) || !json_object_object_get_ex(p, queue, &v))
        return NULL;
    return json_object_get_string(v);
}

static json_object *
ov_queues(const pb_overview *o, int64_t now_ms)
{
    json_object *qs = json_object_new_array();
    for (size_t i = 0; i < o->cfg->n_queues; i++) {
        const char *name = o->cfg->queues[i];
        json_object *q = json_object_new_object(), *last = ov_last_at(o, "queues", i), *v;
        json_object_object_add(q, "name", json_object_new_string(name));
        json_object_object_add(q, "depth", ov_copy_field(last, "depth"));
        json_object *age = NULL;
        if (last && json_object_object_get_ex(last, "oldest_ms", &v) &&
            (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))) {
            int64_t at = json_object_get_int64(v);
            age = json_object_new_int64(now_ms > at ? now_ms - at : 0);
        }
        json_object_object_add(q, "oldest_age_ms", age);
        const char *paused = pb_overview_paused(o, name);
        json_object_object_add(q, "paused", json_object_new_boolean(paused != NULL));
        json_object *pj = paused ? json_tokener_parse(paused) : NULL;
        json_object_object_add(q, "paused_by", ov_copy_field(pj, "by"));
        json_object_put(pj);
        json_object_array_add(qs, q);
    }
    return qs;
}

static json_object *
ov_routes(const pb_overview *o, long long cur)
{
    json_object *rs = json_object_new_array();
    static const char *const sources[] = {"primary",        "fallback",    "cache",
                                          "semantic_cache", "stale_cache", "degraded"};
    for (size_t i = 0; i < o->cfg->n_routes; i++) {
        const char *name = o->cfg->routes[i].name;
        long long by[6], jobs = 0;
        for (int s = 0; s < 6; s++) {
            char f[160];
            snprintf(f, sizeof(f), "jobs:%s:%s", name, sources[s]);
            by[s] = ov_sum(o, cur, 5, f);
            jobs += by[s];
        }
        json_object *r = json_object_new_object();
        json_object_object_add(r, "name", json_object_new_string(name));
        json_object_object_add(r, "jobs_5m", json_object_new_int64(jobs));
        json_object_object_add(r, "fallback_rate", ov_rate(by[1] + by[4], jobs));
        json_object_object_add(r, "degraded_rate", ov_rate(by[5], jobs));
        json_object_object_add(r, "cache_rate", ov_rate(by[2] + by[3], jobs));
        json_object_array_add(rs, r);
    }
    return rs;
}

/* errors:<model>:<outcome> over 5 minutes, as {"outcome": n}. */
static json_object *
ov_model_errors(const pb_overview *o, long long cur, const char *model)
{
    json_object *errs = json_object_new_object();
    char prefix[160];
    int plen = snprintf(prefix, sizeof(prefix), "errors:%s:", model);
    for (long long m = cur - 4; m <= cur; m++) {
        const ov_minute *s = ov_slot_c(o, m);
        if (s == NULL || s->fields == NULL)
            continue;
        json_object_object_foreach(s->fields, k, v)
        {
            if (strncmp(k, prefix, (size_t)plen) != 0)
                continue;
            json_object *was;
            int64_t n = json_object_get_int64(v);
            if (json_object_object_get_ex(errs, k + plen, &was))
                n += json_object_get_int64(was);
            json_object_object_add(errs, k + plen, json_object_new_int64(n));
        }
    }
    return errs;
}

static json_object *
ov_models(const pb_overview *o, long long cur, int64_t now_ms)
{
    json_object *ms = json_object_new_array();
    for (size_t i = 0; i < o->cfg->n_models; i++) {
        const pb_model_conf *mc = &o->cfg->models[i];
        json_object *m = json_object_new_object(), *b = ov_last_at(o, "breakers", i), *v;
        char f[200];
        json_object_object_add(m, "name", json_object_new_string(mc->name));
        json_object_object_add(m, "provider",
                               json_object_new_string(o->cfg->providers[mc->provider].name));
        const char *state =
            b && json_object_object_get_ex(b, "state", &v) ? json_object_get_string(v) : "closed";
        json_object *forced = ov_copy_field(b, "forced");
        if (forced && strcmp(json_object_get_string(forced), "open") == 0)
            state = "open";
        json_object_object_add(m, "breaker", json_object_new_string(state));
        json_object_object_add(m, "forced", forced);
        json_object_object_add(m, "forced_by", ov_copy_field(b, "forced_by"));
        int64_t until =
            b && json_object_object_get_ex(b, "open_until", &v) ? json_object_get_int64(v) : 0;
        json_object_object_add(
            m, "open_until_ms",
            strcmp(state, "open") == 0 && until > now_ms ? json_object_new_int64(until) : NULL);
        snprintf(f, sizeof(f), "attempts:%s", mc->name);
        json_object_object_add(m, "attempts_5m", json_object_new_int64(ov_sum(o, cur, 5, f)));
        json_object_object_add(m, "errors_5m", ov_model_errors(o, cur, mc->name));
        snprintf(f, sizeof(f), "mlat_le:%s:", mc->name);
        json_object_object_add(m, "latency_ms", ov_p50_p99(o, cur, 5, f));
        snprintf(f, sizeof(f), "hedges:%s:started", mc->name);
        json_object_object_add(m, "hedges_5m", json_object_new_int64(ov_sum(o, cur, 5, f)));
        json_object_object_add(m, "rpm_used", json_object_get(ov_last_at(o, "rpm", i)));
        json_object_object_add(m, "rpm", mc->rpm ? json_object_new_int(mc->rpm) : NULL);
        json_object_object_add(m, "tpm_used", json_object_get(ov_last_at(o, "tpm", i)));
        json_object_object_add(m, "tpm", mc->tpm ? json_object_new_int(mc->tpm) : NULL);
        snprintf(f, sizeof(f), "cost_micro_usd:%s", mc->name);
        json_object_object_add(
            m, "cost_usd_24h",
            json_object_new_double((double)ov_sum(o, cur, PB_OVERVIEW_MINUTES, f) / 1e6));
        json_object_array_add(ms, m);
    }
    return ms;
}

/* Workers from the planb:workers zset, and the same grouped by host ("host:pid"). */
static void
ov_workers(const pb_overview *o, json_object *out)
{
    json_object *ws = json_object_new_array(), *hosts = json_object_new_object(), *a;
    if (o->last && json_object_object_get_ex(o->last, "workers", &a) &&
        json_object_is_type(a, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(a); i++) {
            json_object *e = json_object_array_get_idx(a, i);
            if (!json_object_is_type(e, json_type_array) || json_object_array_length(e) != 3)
                continue;
            const char *id = json_object_get_string(json_object_array_get_idx(e, 0));
            int64_t seen = json_object_get_int64(json_object_array_get_idx(e, 1));
            int64_t inflight = json_object_get_int64(json_object_array_get_idx(e, 2));
            if (o->last_ms - seen > o->cfg->lease_ms)
                continue; /* not alive: the reaper hands its jobs back */
            const char *colon = strrchr(id, ':');
            char host[128];
            snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - id) : (int)strlen(id), id);
            json_object *w = json_object_new_object();
            json_object_object_add(w, "id", json_object_new_string(id));
            json_object_object_add(w, "host", json_object_new_string(host));
            json_object_object_add(w, "inflight", json_object_new_int64(inflight));
            json_object_object_add(w, "last_seen_ms", json_object_new_int64(seen));
            json_object_array_add(ws, w);
            json_object *h;
            if (!json_object_object_get_ex(hosts, host, &h)) {
                h = json_object_new_object();
                json_object_object_add(h, "host", json_object_new_string(host));
                json_object_object_add(h, "workers", json_object_new_int(0));
                json_object_object_add(h, "inflight", json_object_new_int64(0));
                json_object_object_add(hosts, host, h);
            }
            json_object *nw, *ni;
            json_object_object_get_ex(h, "workers", &nw);
            json_object_object_get_ex(h, "inflight", &ni);
            json_object_set_int(nw, json_object_get_int(nw) + 1);
            json_object_set_int64(ni, json_object_get_int64(ni) + inflight);
        }
    }
    json_object *hl = json_object_new_array();
    json_object_object_foreach(hosts, k, v)
    {
        (void)k;
        json_object_array_add(hl, json_object_get(v));
    }
    json_object_put(hosts);
    json_object_object_add(out, "workers", ws);
    json_object_object_add(out, "hosts", hl);
}

json_object *
pb_overview_json(const pb_overview *o, bool redis_up, int64_t now_ms)
{
    json_object *out = json_object_new_object(), *v;
    long long cur = (o->last_ms ? o->last_ms : now_ms) / 60000;
    int64_t secs = (o->last_ms ? o->last_ms : now_ms) / 1000 % 60 + 1;
    json_object_object_add(out, "at_ms", json_object_new_int64(o->last_ms));
    json_object_object_add(out, "redis", json_object_new_string(redis_up ? "up" : "down"));
    json_object_object_add(out, "age_ms",
                           o->last_ms ? json_object_new_int64(now_ms - o->last_ms) : NULL);
    json_object_object_add(out, "queues", ov_queues(o, o->last_ms ? o->last_ms : now_ms));
    json_object *jps = json_object_new_object();
    json_object_object_add(
        jps, "1m", json_object_new_double((double)ov_sum(o, cur, 2, "jobs") / (double)(60 + secs)));
    json_object_object_add(
        jps, "5m",
        json_object_new_double((double)ov_sum(o, cur, 5, "jobs") / (double)(240 + secs)));
    json_object_object_add(out, "jobs_per_s", jps);
    json_object_object_add(out, "latency_ms", ov_p50_p99(o, cur, 5, "latency_le:"));
    json_object_object_add(out, "wait_ms", ov_p50_p99(o, cur, 5, "wait_le:"));
    json_object_object_add(out, "routes", ov_routes(o, cur));
    json_object_object_add(out, "models", ov_models(o, cur, o->last_ms ? o->last_ms : now_ms));
    ov_workers(o, out);
    json_object *dead = json_object_new_object();
    json_object_object_add(
        dead, "count",
        o->last && json_object_object_get_ex(o->last, "dead", &v) ? json_object_get(v) : NULL);
    json_object_object_add(out, "dead", dead);
    json_object_object_add(out, "totals", ov_copy_field(o->last, "totals"));
    json_object_object_add(out, "history", ov_history(o, cur));
    return out;
}
