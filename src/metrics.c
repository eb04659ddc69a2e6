/* metrics.c -- GET /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * A scrape is answered asynchronously: the request waits for one
 * snapshot.lua reply. If the scraper hangs up first, evhttp frees the
 * request; the connection's close callback marks our pending record so the
 * late reply is dropped instead of touching freed memory.
 *
 * Families: planb_jobs_total{route,source}, planb_attempts_total{model,outcome},
 * planb_breaker_state{model} (0 closed, 1 open, 2 half_open),
 * planb_breaker_transitions_total{model,state}, planb_breaker_window_calls{model},
 * planb_breaker_failure_rate{model}, planb_breaker_slow_call_rate{model},
 * planb_hedges_total{model,event}, planb_queue_depth{queue}, planb_scheduled_jobs{queue},
 * planb_inflight, planb_job_latency_seconds (histogram),
 * planb_fallback_ratio / planb_degraded_ratio / planb_cache_hit_ratio{window}, and what the
 * alerts of deploy/prometheus/alerts.yml read beside those: planb_redis_up,
 * planb_queue_oldest_age_seconds{queue}, planb_workers, planb_dead_letters,
 * planb_dead_lettered_total, planb_finish_held_total, planb_finish_resends_total, and for the
 * dashboard planb_cost_usd_total{model}, planb_rpm / planb_tpm{model} and their limits.
 *
 * A scrape Redis cannot answer is still a page, status 200: planb_redis_up 0 and nothing
 * else, so "Redis unreachable" is an alert on a sample rather than on a failed scrape. */
#include "planb/metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/log.h"

#define METRICS_MAX_BYTES (8u << 20) /* a page this big means a runaway stats hash */

struct pb_metrics {
    pb_duty_ctx ctx;
    struct evhttp *http;
};

/* One scrape waiting for Redis. */
typedef struct metrics_pending {
    pb_metrics *m;
    struct evhttp_request *req;
    bool gone; /* the connection closed: req is freed */
} metrics_pending;

static void metrics_printf(pb_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
metrics_printf(pb_buf *out, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        pb_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* A label value with \, " and newline escaped as the format requires. */
static void
metrics_label(pb_buf *out, const char *name, const char *value, size_t len, bool last)
{
    metrics_printf(out, "%s=\"", name);
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        if (c == '\\' || c == '"')
            pb_buf_append(out, "\\", 1);
        if (c == '\n')
            pb_buf_append(out, "\\n", 2);
        else
            pb_buf_append(out, &c, 1);
    }
    pb_buf_append(out, last ? "\"}" : "\",", 2);
}

static void
metrics_family(pb_buf *out, const char *name, const char *type, const char *help)
{
    metrics_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Fields "<head><a>:<b>" where b has no ':' (a may: names allow it): one sample each. */
static void
metrics_split_family(pb_buf *out, const pb_stats_snapshot *snap, const char *metric,
                     const char *head, const char *la, const char *lb)
{
    size_t hl = strlen(head);
    for (size_t i = 0; i < snap->n_fields; i++) {
        const char *f = snap->fields[i].name;
        const char *colon = strrchr(f, ':');
        if (strncmp(f, head, hl) != 0 || colon == NULL || colon < f + hl + 1)
            continue;
        metrics_printf(out, "%s{", metric);
        metrics_label(out, la, f + hl, (size_t)(colon - f - (long)hl), false);
        metrics_label(out, lb, colon + 1, strlen(colon + 1), true);
        metrics_printf(out, " %lld\n", snap->fields[i].value);
    }
}

static void
metrics_attempts(pb_buf *out, const pb_config *cfg, const pb_stats_snapshot *snap)
{
    metrics_family(out, "planb_attempts_total", "counter",
                   "Model attempts by outcome (ok, http_<status>, timeout, breaker_open, ...).");
    for (size_t m = 0; m < cfg->n_models; m++) {
        const char *name = cfg->models[m].name;
        char *attempts = pb_xasprintf("attempts:%s", name);
        char *prefix = pb_xasprintf("errors:%s:", name);
        size_t pl = strlen(prefix);
        long long ok = pb_stats_get(snap, attempts);
        for (size_t i = 0; i < snap->n_fields; i++) {
            const char *f = snap->fields[i].name;
            if (strncmp(f, prefix, pl) != 0 || strchr(f + pl, ':') != NULL)
                continue;
            ok -= snap->fields[i].value;
            metrics_printf(out, "planb_attempts_total{");
            metrics_label(out, "model", name, strlen(name), false);
            metrics_label(out, "outcome", f + pl, strlen(f + pl), true);
            metrics_printf(out, " %lld\n", snap->fields[i].value);
        }
        metrics_printf(out, "planb_attempts_total{");
        metrics_label(out, "model", name, strlen(name), false);
        metrics_label(out, "outcome", "ok", 2, true);
        metrics_printf(out, " %lld\n", ok > 0 ? ok : 0);
        free(attempts);
        free(prefix);
    }
}

static void
metrics_latency(pb_buf *out, const pb_stats_snapshot *snap)
{
    metrics_family(out, "planb_job_latency_seconds", "histogram",
                   "Claim-to-result time of finished jobs.");
    long long cum = 0;
    for (int i = 0; i < PB_STATS_N_BUCKETS; i++) {
        int64_t probe = i < PB_STATS_N_BUCKETS - 1 ? pb_stats_bucket_ms[i] : INT64_MAX;
        cum += pb_stats_get(snap, pb_stats_latency_field(probe));
        if (i < PB_STATS_N_BUCKETS - 1)
            metrics_printf(out, "planb_job_latency_seconds_bucket{le=\"%g\"} %lld\n",
                           pb_stats_bucket_ms[i] / 1000.0, cum);
        else
            metrics_printf(out, "planb_job_latency_seconds_bucket{le=\"+Inf\"} %lld\n", cum);
    }
    metrics_printf(out, "planb_job_latency_seconds_sum %.3f\n",
                   pb_stats_get(snap, "latency_sum_ms") / 1000.0);
    metrics_printf(out, "planb_job_latency_seconds_count %lld\n", cum);
}

static void
metrics_ratios(pb_buf *out, const pb_stats_snapshot *snap)
{
    static const char *const names[] = {"planb_fallback_ratio", "planb_degraded_ratio",
                                        "planb_cache_hit_ratio"};
    static const char *const helps[] = {
        "Share of jobs answered by a backup model or stale cache, by window.",
        "Share of jobs that got the degraded reply, by window.",
        "Share of jobs answered from the cache, by window."};
    static const char *const windows[PB_STATS_N_WINDOWS] = {"1m", "5m", "60m"};
    for (int k = 0; k < 3; k++) {
        metrics_family(out, names[k], "gauge", helps[k]);
        for (int w = 0; w < PB_STATS_N_WINDOWS; w++) {
            double v = k == 0   ? pb_stats_fallback_rate(snap->win[w])
                       : k == 1 ? pb_stats_degraded_rate(snap->win[w])
                                : pb_stats_cache_rate(snap->win[w]);
            metrics_printf(out, "%s{window=\"%s\"} %.6f\n", names[k], windows[w], v);
        }
    }
}

/* The breaker's sliding window per model, as of its last report: calls and the failed and
 * slow shares that open it. */
static void
metrics_breaker_window(pb_buf *out, const pb_config *cfg, const pb_stats_snapshot *snap)
{
    static const char *const names[3] = {"planb_breaker_window_calls", "planb_breaker_failure_rate",
                                         "planb_breaker_slow_call_rate"};
    static const char *const helps[3] = {
        "Calls counted in the breaker's sliding window (breaker.window_s).",
        "Share of the window's calls that failed (opens at breaker.failure_rate).",
        "Share of the window's calls slower than breaker.slow_call_ms."};
    for (int k = 0; k < 3; k++) {
        metrics_family(out, names[k], "gauge", helps[k]);
        for (size_t m = 0; m < cfg->n_models; m++) {
            const long long *w = snap->breaker_window[m];
            metrics_printf(out, "%s{", names[k]);
            metrics_label(out, "model", cfg->models[m].name, strlen(cfg->models[m].name), true);
            if (k == 0)
                metrics_printf(out, " %lld\n", w[0]);
            else
                metrics_printf(out, " %.4f\n", w[0] > 0 ? (double)w[k] / (double)w[0] : 0.0);
        }
    }
}

static void
metrics_redis_up(pb_buf *out, bool up)
{
    metrics_family(out, "planb_redis_up", "gauge",
                   "1 when this scrape could read the figures from Redis, else 0.");
    metrics_printf(out, "planb_redis_up %d\n", up ? 1 : 0);
}

/* Family k of metrics_models for model m. */
static double
metrics_model_value(const pb_config *cfg, const pb_stats_snapshot *snap, int k, size_t m)
{
    const pb_model_conf *mc = &cfg->models[m];
    if (k == 0) {
        char *f = pb_xasprintf("cost_micro_usd:%s", mc->name);
        double usd = (double)pb_stats_get(snap, f) / 1e6;
        free(f);
        return usd;
    }
    return k == 1   ? (double)snap->usage[m][0]
           : k == 2 ? (double)mc->rpm
           : k == 3 ? (double)snap->usage[m][1]
                    : (double)mc->tpm;
}

/* Cost and the rpm/tpm windows per model: used in the last 60 s and the configured limit. */
static void
metrics_models(pb_buf *out, const pb_config *cfg, const pb_stats_snapshot *snap)
{
    static const char *const fam[5][3] = {
        {"planb_cost_usd_total", "counter",
         "Cost of answers fresh from upstream at the model's prices, in USD."},
        {"planb_rpm", "gauge", "Requests granted in the last 60 s (models with an rpm limit)."},
        {"planb_rpm_limit", "gauge", "The model's rpm (0: none)."},
        {"planb_tpm", "gauge", "Tokens used in the last 60 s (models with a tpm limit)."},
        {"planb_tpm_limit", "gauge", "The model's tpm (0: none)."}};
    for (int k = 0; k < 5; k++) {
        metrics_family(out, fam[k][0], fam[k][1], fam[k][2]);
        for (size_t m = 0; m < cfg->n_models; m++) {
            metrics_printf(out, "%s{", fam[k][0]);
            metrics_label(out, "model", cfg->models[m].name, strlen(cfg->models[m].name), true);
            /* micro-dollars are exact with 6 decimals; the rest are integers */
            metrics_printf(out, " %.*f\n", k == 0 ? 6 : 0, metrics_model_value(cfg, snap, k, m));
        }
    }
}

/* Queue age, live workers, dead letters and held results: what the alerts watch. */
static void
metrics_health(pb_buf *out, const pb_config *cfg, const pb_stats_snapshot *snap)
{
    metrics_family(out, "planb_queue_oldest_age_seconds", "gauge",
                   "Age of each queue's oldest job (Redis clock minus its submitted_at_ms); 0 "
                   "when empty, no sample when that job has no submitted_at_ms.");
    for (size_t q = 0; q < cfg->n_queues; q++) {
        if (snap->queue_age_ms[q] < 0)
            continue;
        metrics_printf(out, "planb_queue_oldest_age_seconds{");
        metrics_label(out, "queue", cfg->queues[q], strlen(cfg->queues[q]), true);
        metrics_printf(out, " %.3f\n", (double)snap->queue_age_ms[q] / 1000.0);
    }
    metrics_family(out, "planb_workers", "gauge",
                   "Workers whose heartbeat is younger than lease_ms, on every host.");
    metrics_printf(out, "planb_workers %lld\n", snap->workers_alive);
    metrics_family(out, "planb_dead_letters", "gauge",
                   "Entries in the dead-letter list (at most limits.dead_max_entries).");
    metrics_printf(out, "planb_dead_letters %lld\n", snap->dead_letters);
    static const char *const counters[][3] = {
        {"planb_dead_lettered_total", "dead:added", "Jobs dead-lettered, trimmed ones too."},
        {"planb_finish_held_total", "finish:held",
         "Finished jobs whose result Redis could not take at once (held, re-sent, landed)."},
        {"planb_finish_resends_total", "finish:resends", "Re-sends of those held results."},
        {"planb_telemetry_spans_exported_total", "telemetry:exported",
         "Trace spans the collector took."},
        {"planb_telemetry_spans_dropped_total", "telemetry:dropped",
         "Trace spans dropped: queue full, collector refusing or gone."},
        {"planb_telemetry_bad_context_total", "telemetry:bad_context",
         "Jobs whose traceparent was malformed (ignored)."}};
    for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++) {
        metrics_family(out, counters[k][0], "counter", counters[k][2]);
        metrics_printf(out, "%s %lld\n", counters[k][0], pb_stats_get(snap, counters[k][1]));
    }
}

void
pb_metrics_format(const pb_config *cfg, const pb_stats_snapshot *snap, pb_buf *out)
{
    metrics_redis_up(out, true);
    metrics_family(out, "planb_jobs_total", "counter", "Jobs finished, by route and source.");
    metrics_split_family(out, snap, "planb_jobs_total", "jobs:", "route", "source");
    metrics_attempts(out, cfg, snap);
    metrics_family(out, "planb_breaker_state", "gauge",
                   "Shared circuit breaker per model: 0 closed, 1 open, 2 half_open.");
    for (size_t m = 0; m < cfg->n_models; m++) {
        metrics_printf(out, "planb_breaker_state{");
        metrics_label(out, "model", cfg->models[m].name, strlen(cfg->models[m].name), true);
        metrics_printf(out, " %d\n", snap->breaker_state[m]);
    }
    metrics_family(out, "planb_breaker_transitions_total", "counter",
                   "Breaker transitions by model and the state entered.");
    metrics_split_family(out, snap, "planb_breaker_transitions_total", "breaker:", "model",
                         "state");
    metrics_breaker_window(out, cfg, snap);
    metrics_family(out, "planb_hedges_total", "counter",
                   "Hedged requests by model: started, won (its answer was used), cancelled "
                   "(its transfer was stopped by the other's answer).");
    metrics_split_family(out, snap, "planb_hedges_total", "hedges:", "model", "event");
    metrics_family(out, "planb_queue_depth", "gauge", "Jobs waiting in each queue.");
    for (size_t q = 0; q < cfg->n_queues; q++) {
        metrics_printf(out, "planb_queue_depth{");
        metrics_label(out, "queue", cfg->queues[q], strlen(cfg->queues[q]), true);
        metrics_printf(out, " %lld\n", snap->queue_depth[q]);
    }
    metrics_family(
        out, "planb_scheduled_jobs", "gauge",
        "Delayed jobs waiting for their run_at_ms in each queue's planb:delayed:<queue>.");
    for (size_t q = 0; q < cfg->n_queues; q++) {
        metrics_printf(out, "planb_scheduled_jobs{");
        metrics_label(out, "queue", cfg->queues[q], strlen(cfg->queues[q]), true);
        metrics_printf(out, " %lld\n", snap->queue_scheduled[q]);
    }
    metrics_family(out, "planb_inflight", "gauge", "Jobs claimed by a worker and not finished.");
    metrics_printf(out, "planb_inflight %lld\n", snap->inflight);
    metrics_latency(out, snap);
    metrics_ratios(out, snap);
    metrics_health(out, cfg, snap);
    metrics_models(out, cfg, snap);
}

static void
metrics_on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    metrics_pending *p = arg;
    p->gone = true;
}

static void
metrics_on_snapshot(redisReply *reply, void *arg)
{
    metrics_pending *p = arg;
    if (p->gone) {
        free(p);
        return;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
    const pb_config *cfg = p->m->ctx.cfg;
    pb_stats_snapshot snap;
    pb_buf out;
    pb_buf_init(&out, METRICS_MAX_BYTES);
    if (pb_stats_parse(cfg, reply, &snap) != PB_OK) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            pb_log(PB_LOG_ERROR, "event=snapshot_failed error=\"%s\"", reply->str);
        metrics_redis_up(&out, false);
    } else {
        pb_metrics_format(cfg, &snap, &out);
        pb_stats_snapshot_free(&snap);
    }
    struct evbuffer *body = evbuffer_new();
    evbuffer_add(body, out.data ? out.data : "", out.len);
    pb_buf_free(&out);
    evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(p->req, 200, "OK", body);
    evbuffer_free(body);
    free(p);
}

static void
metrics_on_request(struct evhttp_request *req, void *arg)
{
    pb_metrics *m = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL || strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, 404, "Not Found");
        return;
    }
    metrics_pending *p = pb_xcalloc(1, sizeof(*p));
    p->m = m;
    p->req = req;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), metrics_on_close, p);
    pb_stats_request_snapshot(m->ctx.cmd, m->ctx.cfg, metrics_on_snapshot, p);
}

pb_metrics *
pb_metrics_start(const pb_duty_ctx *ctx)
{
    const char *listen = ctx->cfg->metrics_listen;
    if (listen == NULL)
        return NULL;
    const char *colon = strrchr(listen, ':');
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    int port = atoi(colon + 1);
    pb_metrics *m = pb_xcalloc(1, sizeof(*m));
    m->ctx = *ctx;
    m->http = evhttp_new(ctx->base);
    pb_assert(m->http != NULL);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET);
    evhttp_set_max_headers_size(m->http, 16384);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_timeout(m->http, 10);
    evhttp_set_gencb(m->http, metrics_on_request, m);
    if (evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port) == NULL) {
        pb_log_errno("event=metrics_bind_failed listen=%s", listen);
        evhttp_free(m->http);
        free(m);
        return NULL;
    }
    pb_log(PB_LOG_INFO, "event=metrics_listen listen=%s", listen);
    return m;
}

void
pb_metrics_stop(pb_metrics *m)
{
    if (m == NULL)
        return;
    evhttp_free(m->http);
    free(m);
}
