/* stats.c -- cluster-wide figures: snapshot parsing, rates, planb:stats publisher, alerts.
 *
 * Everything comes from Redis (snapshot.lua), never from this process, so
 * every host shows the same figures. The publisher runs in each host's
 * monitor; per interval only the host that takes the lock <p>:lock:stats
 * (SET NX PX, a little shorter than the interval) publishes, and the alert
 * state <p>:alert:fallback is swapped with SET ... GET, so each crossing of
 * alert_fallback_rate (and each recovery) is announced once, whichever host
 * sees it. */
#include "planb/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/breaker.h"
#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

#define STATS_MAX_FIELDS    65536 /* a sane planb:stats has models x outcomes fields */
#define STATS_LOCK_SLACK_MS 200   /* the lock ends this much before the next tick */

const int pb_stats_bucket_ms[PB_STATS_N_BUCKETS - 1] = {50,   100,  250,   500,  1000,
                                                        2500, 5000, 10000, 30000};
const int pb_stats_window_min[PB_STATS_N_WINDOWS] = {1, 5, 60};
static const char *const stats_window_names[PB_STATS_N_WINDOWS] = {"1m", "5m", "60m"};
static const char *const stats_breaker_names[] = {"closed", "open", "half_open"};

const char *
pb_stats_latency_field(int64_t ms)
{
    static const char *const names[PB_STATS_N_BUCKETS] = {
        "latency_le:50",    "latency_le:100",  "latency_le:250",  "latency_le:500",
        "latency_le:1000",  "latency_le:2500", "latency_le:5000", "latency_le:10000",
        "latency_le:30000", "latency_le:inf"};
    for (int i = 0; i < PB_STATS_N_BUCKETS - 1; i++)
        if (ms <= pb_stats_bucket_ms[i])
            return names[i];
    return names[PB_STATS_N_BUCKETS - 1];
}

const char *
pb_stats_bucket_name(int64_t ms)
{
    static const char *const names[PB_STATS_N_BUCKETS] = {"50",   "100",  "250",   "500",   "1000",
                                                          "2500", "5000", "10000", "30000", "inf"};
    for (int i = 0; i < PB_STATS_N_BUCKETS - 1; i++)
        if (ms <= pb_stats_bucket_ms[i])
            return names[i];
    return names[PB_STATS_N_BUCKETS - 1];
}

/* Adds n to field, a name that outlives t (a constant, or a string in t->names). */
static void
stats_tally_add(pb_stats_tally *t, const char *field, long n)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->fields[i], field) == 0) {
            t->counts[i] += n;
            return;
        }
    }
    if (t->n == PB_QUEUE_MAX_COUNTERS)
        return;
    t->fields[t->n] = field;
    t->counts[t->n++] = n;
}

/* Adds n to a field named by "a:b" or "a:b:c" (c may be NULL), formatted into t->names. */
static void
stats_tally_add_name_n(pb_stats_tally *t, const char *a, const char *b, const char *c, long n)
{
    size_t room = sizeof(t->names) - t->names_used;
    char *dst = t->names + t->names_used;
    int len = c ? snprintf(dst, room, "%s:%s:%s", a, b, c) : snprintf(dst, room, "%s:%s", a, b);
    if (len < 0 || (size_t)len >= room)
        return; /* cannot happen with config-bounded names; dropping beats overflowing */
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->fields[i], dst) == 0) {
            t->counts[i] += n;
            return; /* the copy in names[] is simply not kept */
        }
    }
    if (t->n == PB_QUEUE_MAX_COUNTERS)
        return;
    t->names_used += (size_t)len + 1;
    t->fields[t->n] = dst;
    t->counts[t->n++] = n;
}

static void
stats_tally_add_name(pb_stats_tally *t, const char *a, const char *b, const char *c)
{
    stats_tally_add_name_n(t, a, b, c, 1);
}

void
pb_stats_count_job(const pb_config *cfg, const pb_stats_job *job, pb_stats_tally *t)
{
    t->n = 0;
    t->names_used = 0;
    stats_tally_add(t, "jobs", 1);
    stats_tally_add(t, pb_job_status_name(job->status), 1);
    if (job->source != PB_SOURCE_NONE)
        stats_tally_add_name(t, "source", pb_job_source_name(job->source), NULL);
    if (job->route >= 0)
        stats_tally_add_name(t, "jobs", cfg->routes[job->route].name,
                             pb_job_source_name(job->source));
    stats_tally_add(t, pb_stats_latency_field(job->latency_ms), 1);
    stats_tally_add(t, "latency_sum_ms", (long)job->latency_ms);
    if (job->queued_ms >= 0)
        stats_tally_add_name(t, "wait_le", pb_stats_bucket_name(job->queued_ms), NULL);
    for (size_t i = 0; i < job->n_attempts; i++) {
        const pb_attempt *a = &job->attempts[i];
        const char *name = cfg->models[a->model].name;
        const char *prov = cfg->providers[cfg->models[a->model].provider].name;
        stats_tally_add_name(t, "attempts", name, NULL);
        stats_tally_add_name(t, "provider_attempts", prov, NULL);
        if (a->reached) /* a refused attempt (breaker_open, held_off...) has no latency */
            stats_tally_add_name(t, "mlat_le", name, pb_stats_bucket_name(a->elapsed_ms));
        if (strcmp(a->outcome, "ok") != 0) {
            stats_tally_add_name(t, "errors", name, a->outcome);
            stats_tally_add_name(t, "provider_errors", prov, NULL);
        }
    }
    if (job->cache_missed)
        stats_tally_add(t, "cache:misses", 1);
    if (job->coalesced)
        stats_tally_add(t, "cache:coalesced", 1);
    if (job->hedged) {
        const char *hm = cfg->models[job->hedge_model].name;
        stats_tally_add_name(t, "hedges", hm, "started");
        if (job->hedge_won)
            stats_tally_add_name(t, "hedges", hm, "won");
    }
    if (job->cancelled)
        stats_tally_add_name(t, "hedges", cfg->models[job->cancelled_model].name, "cancelled");
    if ((job->source == PB_SOURCE_CACHE || job->source == PB_SOURCE_STALE_CACHE) && job->model >= 0)
        stats_tally_add_name(t, job->source == PB_SOURCE_CACHE ? "cache:hits" : "cache:stale_hits",
                             cfg->providers[cfg->models[job->model].provider].name, NULL);
    /* Micro-dollars: HINCRBY counts integers. */
    long micro = (long)llround(job->cost_usd * 1e6);
    if (micro > 0 && job->model >= 0) {
        stats_tally_add_name_n(t, "cost_micro_usd", cfg->models[job->model].name, NULL, micro);
        if (job->tenant != NULL)
            stats_tally_add_name_n(t, "cost_micro_usd:tenant", job->tenant, NULL, micro);
    }
}

int
pb_stats_args(const pb_config *cfg, char ***owned, const char ***view, int *numkeys)
{
    int argc = 2 + 4 + (int)cfg->n_queues + (int)cfg->n_models;
    char **v = pb_xcalloc((size_t)argc, sizeof(char *));
    int n = 0;
    v[n++] = pb_key_stats(cfg->prefix);
    v[n++] = pb_key_workers(cfg->prefix);
    v[n++] = pb_xstrdup(cfg->prefix);
    v[n++] = pb_xasprintf("%lld", (long long)(pb_wall_ms() / 60000));
    v[n++] = pb_xasprintf("%d", cfg->lease_ms);
    v[n++] = pb_xasprintf("%zu", cfg->n_queues);
    for (size_t i = 0; i < cfg->n_queues; i++)
        v[n++] = pb_xstrdup(cfg->queues[i]);
    for (size_t i = 0; i < cfg->n_models; i++)
        v[n++] = pb_xstrdup(cfg->models[i].name);
    const char **cv = pb_xcalloc((size_t)argc, sizeof(char *));
    for (int i = 0; i < argc; i++)
        cv[i] = v[i];
    *owned = v;
    *view = cv;
    *numkeys = 2;
    return argc;
}

void
pb_stats_request_snapshot(pb_redis *r, const pb_config *cfg, pb_redis_fn fn, void *arg)
{
    char **owned;
    const char **view;
    int numkeys;
    int argc = pb_stats_args(cfg, &owned, &view, &numkeys);
    pb_redis_script(r, "snapshot", fn, arg, numkeys, argc, view, NULL);
    pb_stats_args_free(owned, view, argc);
}

void
pb_stats_args_free(char **owned, const char **view, int argc)
{
    for (int i = 0; i < argc; i++)
        free(owned[i]);
    free(owned);
    free(view);
}

static bool
stats_is_int(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER;
}

static bool
stats_is_array(const redisReply *r, size_t n)
{
    return r->type == REDIS_REPLY_ARRAY && (n == (size_t)-1 || r->elements == n);
}

int
pb_stats_parse(const pb_config *cfg, const redisReply *reply, pb_stats_snapshot *snap)
{
    memset(snap, 0, sizeof(*snap));
    if (reply == NULL || !stats_is_array(reply, 10))
        return PB_ERR;
    const redisReply *h = reply->element[0], *d = reply->element[1], *inf = reply->element[2],
                     *b = reply->element[3], *w = reply->element[4], *dead = reply->element[5],
                     *alive = reply->element[6], *age = reply->element[7], *use = reply->element[8],
                     *sched = reply->element[9];
    if (!stats_is_array(h, (size_t)-1) || h->elements % 2 != 0 ||
        h->elements / 2 > STATS_MAX_FIELDS || !stats_is_array(d, cfg->n_queues) ||
        !stats_is_int(inf) || !stats_is_array(b, PB_STATS_BREAKER_INTS * cfg->n_models) ||
        !stats_is_array(w, PB_STATS_N_WINDOWS) || !stats_is_int(dead) || !stats_is_int(alive) ||
        !stats_is_array(age, cfg->n_queues) || !stats_is_array(use, 2 * cfg->n_models) ||
        !stats_is_array(sched, cfg->n_queues))
        return PB_ERR;
    snap->fields = pb_xcalloc(h->elements / 2 + 1, sizeof(pb_stats_field));
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        if (h->element[i]->type != REDIS_REPLY_STRING ||
            h->element[i + 1]->type != REDIS_REPLY_STRING)
            goto bad;
        pb_stats_field *f = &snap->fields[snap->n_fields++];
        f->name = pb_xstrndup(h->element[i]->str, h->element[i]->len);
        f->value = strtoll(h->element[i + 1]->str, NULL, 10);
    }
    snap->queue_depth = pb_xcalloc(cfg->n_queues + 1, sizeof(long long));
    snap->queue_age_ms = pb_xcalloc(cfg->n_queues + 1, sizeof(long long));
    snap->queue_scheduled = pb_xcalloc(cfg->n_queues + 1, sizeof(long long));
    for (size_t i = 0; i < cfg->n_queues; i++) {
        if (!stats_is_int(d->element[i]) || !stats_is_int(age->element[i]) ||
            !stats_is_int(sched->element[i]))
            goto bad;
        snap->queue_depth[i] = d->element[i]->integer;
        snap->queue_age_ms[i] = age->element[i]->integer;
        snap->queue_scheduled[i] = sched->element[i]->integer;
    }
    snap->inflight = inf->integer;
    snap->dead_letters = dead->integer;
    snap->workers_alive = alive->integer;
    snap->usage = pb_xcalloc(cfg->n_models + 1, sizeof(*snap->usage));
    for (size_t i = 0; i < cfg->n_models; i++) {
        for (int k = 0; k < 2; k++) {
            if (!stats_is_int(use->element[2 * i + (size_t)k]))
                goto bad;
            snap->usage[i][k] = use->element[2 * i + (size_t)k]->integer;
        }
    }
    snap->breaker_state = pb_xcalloc(cfg->n_models + 1, sizeof(int));
    snap->breaker_left_ms = pb_xcalloc(cfg->n_models + 1, sizeof(long long));
    snap->breaker_window = pb_xcalloc(cfg->n_models + 1, sizeof(*snap->breaker_window));
    for (size_t i = 0; i < cfg->n_models; i++) {
        redisReply *const *e = &b->element[PB_STATS_BREAKER_INTS * i];
        for (int k = 0; k < PB_STATS_BREAKER_INTS; k++)
            if (!stats_is_int(e[k]) || e[k]->integer < 0)
                goto bad;
        if (e[0]->integer > 2)
            goto bad;
        snap->breaker_state[i] = (int)e[0]->integer;
        snap->breaker_left_ms[i] = e[1]->integer;
        for (int k = 0; k < 3; k++)
            snap->breaker_window[i][k] = e[2 + k]->integer;
    }
    for (int k = 0; k < PB_STATS_N_WINDOWS; k++) {
        const redisReply *one = w->element[k];
        if (!stats_is_array(one, PB_WIN_NFIELDS))
            goto bad;
        for (int f = 0; f < PB_WIN_NFIELDS; f++) {
            if (!stats_is_int(one->element[f]))
                goto bad;
            snap->win[k][f] = one->element[f]->integer;
        }
    }
    return PB_OK;
bad:
    pb_stats_snapshot_free(snap);
    return PB_ERR;
}

void
pb_stats_snapshot_free(pb_stats_snapshot *snap)
{
    for (size_t i = 0; i < snap->n_fields; i++)
        free(snap->fields[i].name);
    free(snap->fields);
    free(snap->queue_depth);
    free(snap->queue_age_ms);
    free(snap->queue_scheduled);
    free(snap->usage);
    free(snap->breaker_state);
    free(snap->breaker_left_ms);
    free(snap->breaker_window);
    memset(snap, 0, sizeof(*snap));
}

long long
pb_stats_get(const pb_stats_snapshot *snap, const char *name)
{
    for (size_t i = 0; i < snap->n_fields; i++)
        if (strcmp(snap->fields[i].name, name) == 0)
            return snap->fields[i].value;
    return 0;
}

static double
stats_share(long long part, long long jobs)
{
    return jobs > 0 ? (double)part / (double)jobs : 0.0;
}

/* A ratio as JSON with 4 decimals ("0.2", not "0.20000000000000001"). */
static json_object *
stats_json_ratio(double d)
{
    char s[32];
    snprintf(s, sizeof(s), "%.4f", d);
    size_t n = strlen(s);
    while (n > 3 && s[n - 1] == '0' && s[n - 2] != '.')
        s[--n] = '\0';
    return json_object_new_double_s(d, s);
}

double
pb_stats_fallback_rate(const long long *win)
{
    return stats_share(win[PB_WIN_FALLBACK] + win[PB_WIN_STALE], win[PB_WIN_JOBS]);
}

double
pb_stats_degraded_rate(const long long *win)
{
    return stats_share(win[PB_WIN_DEGRADED], win[PB_WIN_JOBS]);
}

double
pb_stats_cache_rate(const long long *win)
{
    return stats_share(win[PB_WIN_CACHE] + win[PB_WIN_SEMANTIC], win[PB_WIN_JOBS]);
}

json_object *
pb_stats_to_json(const pb_config *cfg, const pb_stats_snapshot *snap)
{
    static const char *const win_fields[PB_WIN_NFIELDS] = {
        "jobs", "primary", "fallback", "cache", "semantic_cache", "stale_cache", "degraded"};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("stats"));
    json_object_object_add(o, "at_ms", json_object_new_int64(pb_wall_ms()));
    json_object *q = json_object_new_object();
    for (size_t i = 0; i < cfg->n_queues; i++)
        json_object_object_add(q, cfg->queues[i], json_object_new_int64(snap->queue_depth[i]));
    json_object_object_add(o, "queues", q);
    json_object *sq = json_object_new_object();
    for (size_t i = 0; i < cfg->n_queues; i++)
        json_object_object_add(sq, cfg->queues[i], json_object_new_int64(snap->queue_scheduled[i]));
    json_object_object_add(o, "scheduled", sq);
    json_object_object_add(o, "inflight", json_object_new_int64(snap->inflight));
    json_object *ws = json_object_new_object();
    for (int k = 0; k < PB_STATS_N_WINDOWS; k++) {
        json_object *w = json_object_new_object();
        for (int f = 0; f < PB_WIN_NFIELDS; f++)
            json_object_object_add(w, win_fields[f], json_object_new_int64(snap->win[k][f]));
        json_object_object_add(w, "fallback_rate",
                               stats_json_ratio(pb_stats_fallback_rate(snap->win[k])));
        json_object_object_add(w, "degraded_rate",
                               stats_json_ratio(pb_stats_degraded_rate(snap->win[k])));
        json_object_object_add(w, "cache_hit_rate",
                               stats_json_ratio(pb_stats_cache_rate(snap->win[k])));
        json_object_object_add(ws, stats_window_names[k], w);
    }
    json_object_object_add(o, "windows", ws);
    json_object *bs = json_object_new_object();
    for (size_t i = 0; i < cfg->n_models; i++) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "state",
                               json_object_new_string(stats_breaker_names[snap->breaker_state[i]]));
        json_object_object_add(b, "left_ms", json_object_new_int64(snap->breaker_left_ms[i]));
        const long long *win = snap->breaker_window[i];
        json_object_object_add(b, "window_calls", json_object_new_int64(win[0]));
        json_object_object_add(b, "failure_rate", stats_json_ratio(stats_share(win[1], win[0])));
        json_object_object_add(b, "slow_call_rate", stats_json_ratio(stats_share(win[2], win[0])));
        json_object_object_add(bs, cfg->models[i].name, b);
    }
    json_object_object_add(o, "breakers", bs);
    json_object *t = json_object_new_object();
    for (size_t i = 0; i < snap->n_fields; i++)
        json_object_object_add(t, snap->fields[i].name,
                               json_object_new_int64(snap->fields[i].value));
    json_object_object_add(o, "totals", t);
    return o;
}

/* The publisher: tick -> lock -> snapshot -> publish -> alert state swap. */
struct pb_stats_publisher {
    pb_duty_ctx ctx;
    struct event *tick;
    char *lock_key;
    char *alert_key;
    char *stats_chan;
    char *alerts_chan;
    bool busy;      /* a tick's commands are outstanding */
    double rate_5m; /* of the snapshot being published */
    long long jobs_5m;
};

static void
stats_publish(pb_stats_publisher *p, const char *chan, const char *msg)
{
    const char *argv[] = {"PUBLISH", chan, msg};
    pb_redis_command(p->ctx.cmd, NULL, NULL, 3, argv, NULL);
}

static void
stats_on_alert_swap(redisReply *reply, void *arg)
{
    pb_stats_publisher *p = arg;
    p->busy = false;
    if (reply == NULL || (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_NIL))
        return;
    bool was_high = reply->type == REDIS_REPLY_STRING && strcmp(reply->str, "high") == 0;
    bool high = p->rate_5m >= p->ctx.cfg->alert_fallback_rate && p->jobs_5m > 0;
    if (was_high == high)
        return;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("fallback_rate"));
    json_object_object_add(o, "state", json_object_new_string(high ? "high" : "ok"));
    json_object_object_add(o, "rate_5m", stats_json_ratio(p->rate_5m));
    json_object_object_add(o, "jobs_5m", json_object_new_int64(p->jobs_5m));
    json_object_object_add(o, "threshold", stats_json_ratio(p->ctx.cfg->alert_fallback_rate));
    json_object_object_add(o, "host", json_object_new_string(p->ctx.host));
    json_object_object_add(o, "at_ms", json_object_new_int64(pb_wall_ms()));
    stats_publish(p, p->alerts_chan, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    pb_log(PB_LOG_WARN, "event=fallback_rate_%s rate_5m=%.3f jobs_5m=%lld threshold=%.3f",
           high ? "high" : "ok", p->rate_5m, p->jobs_5m, p->ctx.cfg->alert_fallback_rate);
    json_object_put(o);
}

static void
stats_on_snapshot(redisReply *reply, void *arg)
{
    pb_stats_publisher *p = arg;
    pb_stats_snapshot snap;
    if (pb_stats_parse(p->ctx.cfg, reply, &snap) != PB_OK) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            pb_log(PB_LOG_ERROR, "event=snapshot_failed error=\"%s\"", reply->str);
        p->busy = false;
        return;
    }
    json_object *o = pb_stats_to_json(p->ctx.cfg, &snap);
    json_object_object_add(o, "host", json_object_new_string(p->ctx.host));
    stats_publish(p, p->stats_chan, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    p->rate_5m = pb_stats_fallback_rate(snap.win[1]);
    p->jobs_5m = snap.win[1][PB_WIN_JOBS];
    bool high = p->rate_5m >= p->ctx.cfg->alert_fallback_rate && p->jobs_5m > 0;
    pb_stats_snapshot_free(&snap);
    const char *argv[] = {"SET", p->alert_key, high ? "high" : "ok", "GET"};
    pb_redis_command(p->ctx.cmd, stats_on_alert_swap, p, 4, argv, NULL);
}

static void
stats_on_lock(redisReply *reply, void *arg)
{
    pb_stats_publisher *p = arg;
    if (reply == NULL || reply->type != REDIS_REPLY_STATUS) {
        p->busy = false; /* another host publishes this interval (or Redis is away) */
        return;
    }
    pb_stats_request_snapshot(p->ctx.cmd, p->ctx.cfg, stats_on_snapshot, p);
}

static void
stats_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_stats_publisher *p = arg;
    if (p->busy)
        return;
    p->busy = true;
    int64_t px = (int64_t)p->ctx.cfg->stats_interval_s * 1000 - STATS_LOCK_SLACK_MS;
    char pxs[24];
    snprintf(pxs, sizeof(pxs), "%lld", (long long)(px > 100 ? px : 100));
    const char *argv[] = {"SET", p->lock_key, p->ctx.host, "NX", "PX", pxs};
    pb_redis_command(p->ctx.cmd, stats_on_lock, p, 6, argv, NULL);
}

pb_stats_publisher *
pb_stats_publisher_start(const pb_duty_ctx *ctx)
{
    pb_stats_publisher *p = pb_xcalloc(1, sizeof(*p));
    p->ctx = *ctx;
    p->lock_key = pb_key_stats_lock(ctx->cfg->prefix);
    p->alert_key = pb_key_alert_state(ctx->cfg->prefix);
    p->stats_chan = pb_key_channel_stats(ctx->cfg->prefix);
    p->alerts_chan = pb_key_channel_alerts(ctx->cfg->prefix);
    p->tick = event_new(ctx->base, -1, EV_PERSIST, stats_on_tick, p);
    struct timeval tv = {ctx->cfg->stats_interval_s, 0};
    event_add(p->tick, &tv);
    return p;
}

void
pb_stats_publisher_stop(pb_stats_publisher *p)
{
    if (p == NULL)
        return;
    event_free(p->tick);
    free(p->lock_key);
    free(p->alert_key);
    free(p->stats_chan);
    free(p->alerts_chan);
    free(p);
}
