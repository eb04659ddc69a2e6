/* breaker.c -- shared per-model circuit breakers, Retry-After holds, refused-key holds and rate
 * limits.
 *
 * States (per model, in Redis, see lua/breaker.lua):
 *
 *                  failure rate >= failure_rate, or slow-call rate >= slow_call_rate
 *                  (both with >= min_calls calls in window_s), or `consecutive` failures
 *   closed ---------------------------------------------------------------> open
 *     ^                                                                     |  open time over:
 *     | half_open_calls probes succeed             a probe fails: open     |  probes granted
 *     +---------------------------- half_open <-----------------------------+
 *                                       |  (open time doubled, up to max_open_s)
 *                                       +--------------------------------> open
 *
 * API:
 *   pb_breaker_check decides from this worker's local view of the model. A
 *   timer runs every BREAKER_REFRESH_MS and sends one "report" per model: the
 *   calls, failures and slow calls this worker saw since the last one (zeros
 *   when idle), which also brings the shared state back, so a view is never
 *   older than that plus a round trip and an attempt costs no round trip of
 *   its own. Once the view says the open time is over, the chain asks
 *   pb_breaker_probe; up to half_open_calls callers across all workers get a
 *   probe, the others skip the model. Probe results, Retry-After holds
 *   (capped by max_hold_s) and refused keys (401/403: the model is skipped
 *   everywhere for refused_hold_s, with one alert) are sent at once: they are
 *   rare and others must see them soon. pb_breaker_acquire asks
 *   ratelimit.lua for a slot of a model with rpm/tpm limits (the one case
 *   that needs a round trip per attempt). */
#include "planb/breaker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

#define BREAKER_REFRESH_MS     200  /* period of the background re-read of every view */
#define BREAKER_PROBE_SLACK_MS 1000 /* a probe's lease: the model's timeout plus this */

/* Calls on one model since this worker's last report. */
typedef struct breaker_counts {
    long calls;              /* attempts with a verdict of ok or fail */
    long fails;              /* ... of which failed */
    long slow;               /* ... slower than breaker.slow_call_ms */
    int64_t last_ok_mono_ms; /* when the batch's last success completed, 0: none */
    int n_fail_at;           /* failures since then (the newest breaker.consecutive) in fail_at */
} breaker_counts;

typedef struct breaker_model {
    pb_breaker_view view;
    breaker_counts counts; /* not yet reported */
    int64_t *fail_at;      /* ring of breaker.consecutive completion times of those failures */
    int fail_next;         /* ... the slot the next failure takes */
    long run;              /* failures since this worker's last success, across reports */
    char *key;             /* <p>:breaker:<model> */
    char *rl_key;          /* <p>:ratelimit:<model> */
    char *tokens_key;      /* <p>:tokens:<model> */
} breaker_model;

struct pb_breaker {
    const pb_config *cfg;
    struct event *refresh; /* re-reads every model's view */
    pb_redis *cmd;
    char *stats_key;    /* <p>:stats */
    char *alerts;       /* <p>:alerts */
    char *worker_id;    /* makes rate-limit members unique */
    char settings[256]; /* breaker.lua ARGV[4], the same for every call */
    uint64_t seq;       /* ... with this counter */
    breaker_model *models;
};

/* A probe or acquire waiting for its reply. */
typedef struct breaker_call {
    pb_breaker *b;
    int m;
    pb_breaker_fn fn;
    void *arg;
} breaker_call;

pb_breaker_verdict
pb_breaker_verdict_of(pb_class cls, long status)
{
    if (cls == PB_CLASS_OK)
        return PB_VERDICT_OK;
    if (status == 401 || status == 403)
        return PB_VERDICT_REFUSED;
    if (status == 429 || status == 400 ||
        (status >= 400 && status < 500 && status != 404 && status != 408))
        return PB_VERDICT_NEUTRAL;
    return PB_VERDICT_FAIL; /* no response, 404, 408, 5xx, bad or oversized 2xx replies */
}

pb_gate
pb_breaker_decide(const pb_breaker_view *v, int64_t now_ms, int64_t *wait_ms)
{
    *wait_ms = 0;
    if (now_ms < v->refused_until_mono_ms)
        return PB_GATE_REFUSED;
    if (v->state != PB_BREAKER_CLOSED)
        return now_ms < v->open_until_mono_ms ? PB_GATE_OPEN : PB_GATE_PROBE;
    if (now_ms < v->not_before_mono_ms) {
        *wait_ms = v->not_before_mono_ms - now_ms;
        return PB_GATE_HOLD;
    }
    return PB_GATE_PASS;
}

int
pb_breaker_apply(pb_breaker_view *v, const redisReply *reply, int64_t now_ms)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return -1;
    for (size_t i = 0; i < 5; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer < 0)
            return -1;
    long long st = reply->element[0]->integer;
    if (st > PB_BREAKER_HALF_OPEN)
        return -1;
    v->state = (pb_breaker_state)st;
    v->open_until_mono_ms = now_ms + reply->element[1]->integer;
    v->not_before_mono_ms = now_ms + reply->element[2]->integer;
    v->refused_until_mono_ms = now_ms + reply->element[4]->integer;
    return (int)reply->element[3]->integer;
}

static breaker_call *breaker_call_new(pb_breaker *b, int m, pb_breaker_fn fn, void *arg);
static void breaker_send(pb_breaker *b, int m, const char *op, const char *arg5, const char *arg6,
                         pb_redis_fn fn, void *arg);
static void breaker_on_view(redisReply *reply, void *arg);

/* Sends model m's report: this worker's counts since the last one (then zeroed), which also
 * refreshes the view. A model whose last report is unanswered keeps counting. Times go as ages
 * (ms before now) so that Redis places them on its own clock: the failures after the batch's
 * last success, newest breaker.consecutive of them, are what "in a row" is decided from
 * across workers (lua/breaker.lua). */
static void
breaker_flush(pb_breaker *b, int m)
{
    breaker_model *bm = &b->models[m];
    if (bm->view.refreshing)
        return; /* Redis is slow or away: one outstanding report per model is enough */
    bm->view.refreshing = true;
    const breaker_counts *c = &bm->counts;
    int cap = b->cfg->breaker_consecutive;
    int64_t now = pb_mono_ms();
    size_t size = (size_t)(5 + c->n_fail_at) * 24, len;
    char *report = pb_xmalloc(size);
    len = (size_t)snprintf(report, size, "%ld %ld %ld %lld", c->calls, c->fails, c->slow,
                           c->last_ok_mono_ms > 0 ? (long long)(now - c->last_ok_mono_ms) : -1LL);
    for (int i = 0; i < c->n_fail_at; i++) {
        int slot = ((bm->fail_next - c->n_fail_at + i) % cap + cap) % cap;
        len += (size_t)snprintf(report + len, size - len, " %lld",
                                (long long)(now - bm->fail_at[slot]));
    }
    bm->counts = (breaker_counts){0};
    breaker_send(b, m, "report", report, "0", breaker_on_view, breaker_call_new(b, m, NULL, b));
    free(report);
}

static void
breaker_on_refresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_breaker *b = arg;
    for (size_t m = 0; m < b->cfg->n_models; m++)
        breaker_flush(b, (int)m);
}

pb_breaker *
pb_breaker_new(struct event_base *base, const pb_config *cfg, pb_redis *cmd, const char *worker_id)
{
    pb_breaker *b = pb_xcalloc(1, sizeof(*b));
    b->cfg = cfg;
    b->cmd = cmd;
    b->stats_key = pb_key_stats(cfg->prefix);
    b->alerts = pb_key_channel_alerts(cfg->prefix);
    b->worker_id = pb_xstrdup(worker_id);
    b->models = pb_xcalloc(cfg->n_models, sizeof(breaker_model));
    snprintf(b->settings, sizeof(b->settings), "%d %d %.4f %d %d %.4f %d %lld %lld",
             cfg->breaker_failures > 0 ? 1 : 0, cfg->breaker_window_s, cfg->breaker_failure_rate,
             cfg->breaker_min_calls, cfg->breaker_consecutive,
             cfg->breaker_slow_call_ms > 0 ? cfg->breaker_slow_call_rate : 0.0,
             cfg->breaker_half_open_calls, (long long)cfg->breaker_open_s * 1000,
             (long long)cfg->breaker_max_open_s * 1000);
    for (size_t i = 0; i < cfg->n_models; i++) {
        b->models[i].key = pb_key_breaker(cfg->prefix, cfg->models[i].name);
        b->models[i].rl_key = pb_key_ratelimit(cfg->prefix, cfg->models[i].name);
        b->models[i].tokens_key = pb_key_tokens(cfg->prefix, cfg->models[i].name);
        if (cfg->breaker_consecutive > 0)
            b->models[i].fail_at = pb_xcalloc((size_t)cfg->breaker_consecutive, sizeof(int64_t));
    }
    b->refresh = event_new(base, -1, EV_PERSIST, breaker_on_refresh, b);
    struct timeval tv = {0, BREAKER_REFRESH_MS * 1000};
    event_add(b->refresh, &tv);
    breaker_on_refresh(-1, 0, b);
    return b;
}

void
pb_breaker_free(pb_breaker *b)
{
    if (b == NULL)
        return;
    event_free(b->refresh);
    for (size_t i = 0; i < b->cfg->n_models; i++) {
        free(b->models[i].key);
        free(b->models[i].rl_key);
        free(b->models[i].tokens_key);
        free(b->models[i].fail_at);
    }
    free(b->models);
    free(b->stats_key);
    free(b->alerts);
    free(b->worker_id);
    free(b);
}

/* Sends one breaker.lua op for model m with its ARGV[5] and ARGV[6]. */
static void
breaker_send(pb_breaker *b, int m, const char *op, const char *arg5, const char *arg6,
             pb_redis_fn fn, void *arg)
{
    const char *argv[] = {b->models[m].key, b->stats_key, op,   b->cfg->models[m].name,
                          b->alerts,        b->settings,  arg5, arg6};
    pb_redis_script_within(b->cmd, b->cfg->redis_timeout_ms, "breaker", fn, arg, 2, 8, argv, NULL);
}

/* Reply of a report or a one-way op: only refreshes the view. arg is a breaker_call without
 * fn (the timer's report has arg == b). */
static void
breaker_on_view(redisReply *reply, void *arg)
{
    breaker_call *c = arg;
    breaker_model *bm = &c->b->models[c->m];
    if (c->fn == NULL && c->arg == c->b)
        bm->view.refreshing = false; /* the timer's read */
    if (reply && reply->type == REDIS_REPLY_ERROR)
        pb_log(PB_LOG_ERROR, "event=breaker_failed model=%s error=\"%s\"",
               c->b->cfg->models[c->m].name, reply->str);
    pb_breaker_apply(&bm->view, reply, pb_mono_ms());
    free(c);
}

static breaker_call *
breaker_call_new(pb_breaker *b, int m, pb_breaker_fn fn, void *arg)
{
    breaker_call *c = pb_xmalloc(sizeof(*c));
    *c = (breaker_call){b, m, fn, arg};
    return c;
}

pb_gate
pb_breaker_check(pb_breaker *b, int m, int64_t *wait_ms)
{
    pb_gate g = pb_breaker_decide(&b->models[m].view, pb_mono_ms(), wait_ms);
    if (g == PB_GATE_PASS && (b->cfg->models[m].rpm > 0 || b->cfg->models[m].tpm > 0))
        return PB_GATE_LIMIT;
    return g;
}

static void
breaker_on_probe(redisReply *reply, void *arg)
{
    breaker_call *c = arg;
    int granted = pb_breaker_apply(&c->b->models[c->m].view, reply, pb_mono_ms());
    c->fn(granted == 1 ? 0 : -1, c->arg);
    free(c);
}

void
pb_breaker_probe(pb_breaker *b, int m, pb_breaker_fn fn, void *arg)
{
    char lease[24];
    snprintf(lease, sizeof(lease), "%lld",
             (long long)b->cfg->models[m].timeout_ms + BREAKER_PROBE_SLACK_MS);
    breaker_send(b, m, "probe", lease, "0", breaker_on_probe, breaker_call_new(b, m, fn, arg));
}

static void
breaker_on_acquire(redisReply *reply, void *arg)
{
    breaker_call *c = arg;
    int64_t wait = -1;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0)
        wait = reply->integer;
    else if (reply && reply->type == REDIS_REPLY_ERROR)
        pb_log(PB_LOG_ERROR, "event=ratelimit_failed model=%s error=\"%s\"",
               c->b->cfg->models[c->m].name, reply->str);
    c->fn(wait, c->arg);
    free(c);
}

void
pb_breaker_acquire(pb_breaker *b, int m, pb_breaker_fn fn, void *arg)
{
    const pb_model_conf *mc = &b->cfg->models[m];
    char rpm[16], tpm[24], member[160];
    snprintf(rpm, sizeof(rpm), "%d", mc->rpm);
    snprintf(tpm, sizeof(tpm), "%lld", (long long)mc->tpm);
    snprintf(member, sizeof(member), "%s:%llu", b->worker_id, (unsigned long long)++b->seq);
    const char *argv[] = {
        b->models[m].rl_key, b->models[m].tokens_key, "acquire", rpm, tpm, member};
    pb_redis_script_within(b->cmd, b->cfg->redis_timeout_ms, "ratelimit", breaker_on_acquire,
                           breaker_call_new(b, m, fn, arg), 2, 6, argv, NULL);
}

/* Sends a one-way op whose reply only refreshes the view. */
static void
breaker_tell(pb_breaker *b, int m, const char *op, int64_t ms, long status)
{
    char a5[24], a6[24];
    snprintf(a5, sizeof(a5), "%lld", (long long)ms);
    snprintf(a6, sizeof(a6), "%ld", status);
    breaker_send(b, m, op, a5, a6, breaker_on_view, breaker_call_new(b, m, NULL, NULL));
}

void
pb_breaker_report(pb_breaker *b, int m, const pb_breaker_outcome *o)
{
    const pb_config *cfg = b->cfg;
    breaker_model *bm = &b->models[m];
    int64_t now = pb_mono_ms();
    if (o->hold_ms > 0) {
        /* Hold off at once in this worker; the reply brings the shared value. */
        int64_t hold = o->hold_ms;
        if (hold > (int64_t)cfg->breaker_max_hold_s * 1000)
            hold = (int64_t)cfg->breaker_max_hold_s * 1000;
        if (now + hold > bm->view.not_before_mono_ms)
            bm->view.not_before_mono_ms = now + hold;
        breaker_tell(b, m, "hold", hold, o->status);
    }
    if (o->verdict == PB_VERDICT_REFUSED && cfg->breaker_refused_hold_s > 0) {
        int64_t hold = (int64_t)cfg->breaker_refused_hold_s * 1000;
        bm->view.refused_until_mono_ms = now + hold;
        breaker_tell(b, m, "refused", hold, o->status);
    }
    if (o->probe) {
        if (o->verdict == PB_VERDICT_OK || o->verdict == PB_VERDICT_FAIL ||
            o->verdict == PB_VERDICT_REFUSED)
            breaker_tell(b, m, o->verdict == PB_VERDICT_OK ? "probe_ok" : "probe_fail", 0,
                         o->status);
    } else if (cfg->breaker_failures > 0 && bm->view.state == PB_BREAKER_CLOSED &&
               (o->verdict == PB_VERDICT_OK || o->verdict == PB_VERDICT_FAIL)) {
        breaker_counts *c = &bm->counts;
        c->calls++;
        if (cfg->breaker_slow_call_ms > 0 && o->elapsed_ms >= cfg->breaker_slow_call_ms)
            c->slow++;
        if (o->verdict == PB_VERDICT_FAIL) {
            c->fails++;
            int cap = cfg->breaker_consecutive;
            if (cap > 0) {
                bm->fail_at[bm->fail_next] = now;
                bm->fail_next = (bm->fail_next + 1) % cap;
                if (c->n_fail_at < cap)
                    c->n_fail_at++;
                /* This worker alone saw enough failures in a row to open it: tell Redis now
                 * rather than at the next tick, so every worker stops calling sooner. */
                if (++bm->run % cap == 0)
                    breaker_flush(b, m);
            }
        } else {
            c->last_ok_mono_ms = now;
            c->n_fail_at = 0;
            bm->run = 0;
        }
    }
    if (o->verdict == PB_VERDICT_OK && o->tokens > 0 && cfg->models[m].tpm > 0) {
        char n[24];
        snprintf(n, sizeof(n), "%ld", o->tokens);
        const char *argv[] = {bm->rl_key, bm->tokens_key, "usage", n};
        pb_redis_script(b->cmd, "ratelimit", NULL, NULL, 2, 4, argv, NULL);
    }
}
