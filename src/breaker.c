/* breaker.c -- shared per-model circuit breakers, Retry-After holds and rate limits.
 *
 * States (per model, in Redis, see lua/breaker.lua):
 *
 *   closed --`failures` retryable failures within window_s--> open
 *   open --open_s passed, one caller wins "probe"--> half_open
 *   half_open --the probe succeeds--> closed     --the probe fails--> open
 *
 * API:
 *   pb_breaker_check decides from this worker's local view of the model, which
 *   a timer refreshes every BREAKER_REFRESH_MS (one "get" per model, whether
 *   or not jobs run, so a view is never older than that plus a round trip),
 *   as does the reply of every report: an attempt on a healthy model costs no
 *   Redis round trip. Once the view says
 *   the open time is over, the chain asks pb_breaker_probe; exactly one caller
 *   across all workers gets the probe, the others skip the model.
 *   pb_breaker_report sends retryable failures (and Retry-After holds) to
 *   Redis; a success is only sent when the view is not closed, i.e. when it
 *   may close the breaker. pb_breaker_acquire asks ratelimit.lua for a slot
 *   of a model with rpm/tpm limits (the one case that needs a round trip per
 *   attempt). */
#include "planb/breaker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

#define BREAKER_REFRESH_MS     200  /* period of the background re-read of every view */
#define BREAKER_PROBE_SLACK_MS 1000 /* a probe's lease: the model's timeout plus this */

typedef struct breaker_model {
    pb_breaker_view view;
    char *key;        /* <p>:breaker:<model> */
    char *rl_key;     /* <p>:ratelimit:<model> */
    char *tokens_key; /* <p>:tokens:<model> */
} breaker_model;

struct pb_breaker {
    const pb_config *cfg;
    struct event *refresh; /* re-reads every model's view */
    pb_redis *cmd;
    char *stats_key; /* <p>:stats */
    char *alerts;    /* <p>:alerts */
    char *worker_id; /* makes rate-limit members unique */
    uint64_t seq;    /* ... with this counter */
    breaker_model *models;
};

/* A probe or acquire waiting for its reply. */
typedef struct breaker_call {
    pb_breaker *b;
    int m;
    pb_breaker_fn fn;
    void *arg;
} breaker_call;

pb_gate
pb_breaker_decide(const pb_breaker_view *v, int64_t now_ms, int64_t *wait_ms)
{
    *wait_ms = 0;
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
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
        return -1;
    for (size_t i = 0; i < 4; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer < 0)
            return -1;
    long long st = reply->element[0]->integer;
    if (st > PB_BREAKER_HALF_OPEN)
        return -1;
    v->state = (pb_breaker_state)st;
    v->open_until_mono_ms = now_ms + reply->element[1]->integer;
    v->not_before_mono_ms = now_ms + reply->element[2]->integer;
    return (int)reply->element[3]->integer;
}

static breaker_call *breaker_call_new(pb_breaker *b, int m, pb_breaker_fn fn, void *arg);
static void breaker_send(pb_breaker *b, int m, const char *op, int64_t hold_ms, pb_redis_fn fn,
                         void *arg);
static void breaker_on_view(redisReply *reply, void *arg);

static void
breaker_on_refresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_breaker *b = arg;
    for (size_t m = 0; m < b->cfg->n_models; m++) {
        breaker_model *bm = &b->models[m];
        if (bm->view.refreshing)
            continue; /* Redis is slow or away: one outstanding read per model is enough */
        bm->view.refreshing = true;
        breaker_send(b, (int)m, "get", 0, breaker_on_view, breaker_call_new(b, (int)m, NULL, b));
    }
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
    for (size_t i = 0; i < cfg->n_models; i++) {
        b->models[i].key = pb_key_breaker(cfg->prefix, cfg->models[i].name);
        b->models[i].rl_key = pb_key_ratelimit(cfg->prefix, cfg->models[i].name);
        b->models[i].tokens_key = pb_key_tokens(cfg->prefix, cfg->models[i].name);
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
    }
    free(b->models);
    free(b->stats_key);
    free(b->alerts);
    free(b->worker_id);
    free(b);
}

/* Sends one breaker.lua op for model m; hold_ms is the op's ARGV[6]. */
static void
breaker_send(pb_breaker *b, int m, const char *op, int64_t hold_ms, pb_redis_fn fn, void *arg)
{
    const pb_config *cfg = b->cfg;
    char failures[16], window[24], open[24], hold[24];
    snprintf(failures, sizeof(failures), "%d", cfg->breaker_failures);
    snprintf(window, sizeof(window), "%lld", (long long)cfg->breaker_window_s * 1000);
    snprintf(open, sizeof(open), "%lld", (long long)cfg->breaker_open_s * 1000);
    snprintf(hold, sizeof(hold), "%lld", (long long)(hold_ms > 0 ? hold_ms : 0));
    const char *argv[] = {b->models[m].key, b->stats_key, op,   cfg->models[m].name,
                          failures,         window,       open, hold,
                          b->alerts};
    pb_redis_script_within(b->cmd, cfg->redis_timeout_ms, "breaker", fn, arg, 2, 9, argv, NULL);
}

/* Reply of a get/fail/ok: only refreshes the view. arg is a breaker_call without fn. */
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
    int64_t lease = (int64_t)b->cfg->models[m].timeout_ms + BREAKER_PROBE_SLACK_MS;
    breaker_send(b, m, "probe", lease, breaker_on_probe, breaker_call_new(b, m, fn, arg));
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

void
pb_breaker_report(pb_breaker *b, int m, bool failed, int64_t hold_ms, long tokens)
{
    breaker_model *bm = &b->models[m];
    if (failed && hold_ms > 0) {
        /* Hold off at once in this worker; the reply brings the shared value. */
        int64_t until = pb_mono_ms() + hold_ms;
        if (until > bm->view.not_before_mono_ms)
            bm->view.not_before_mono_ms = until;
    }
    if (failed && (b->cfg->breaker_failures > 0 || hold_ms > 0))
        breaker_send(b, m, "fail", hold_ms, breaker_on_view, breaker_call_new(b, m, NULL, NULL));
    else if (!failed && bm->view.state != PB_BREAKER_CLOSED)
        breaker_send(b, m, "ok", 0, breaker_on_view, breaker_call_new(b, m, NULL, NULL));
    if (!failed && tokens > 0 && b->cfg->models[m].tpm > 0) {
        char n[24];
        snprintf(n, sizeof(n), "%ld", tokens);
        const char *argv[] = {bm->rl_key, bm->tokens_key, "usage", n};
        pb_redis_script(b->cmd, "ratelimit", NULL, NULL, 2, 4, argv, NULL);
    }
}
