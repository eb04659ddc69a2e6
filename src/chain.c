/* chain.c -- the per-job state machine: models in order, retries, degradation, finish.
 *
 * States (one job, one deadline = claim time + deadline_ms):
 *
 *   start --parse fails--> finish(invalid, dead-lettered)
 *     |
 *   cache (cache.c: lookup, herd lock, wait) --hit--> finish(ok, cache)
 *     |                                      --holder's chain spent--> spent
 *   next_model --no model left / no time--> spent: finish(ok, stale_cache) or finish(degraded)
 *     |   ^ fall back (next model)
 *     v   |
 *   attempt (HTTP call in flight) --ok--> finish(ok, primary|fallback)
 *     |   ^                      --upstream says the job is malformed--> finish(invalid)
 *     v   | retry
 *   backoff (timer: jittered backoff or Retry-After, only when it fits the deadline)
 *
 *   Before each attempt the model's shared breaker (breaker.h) is consulted:
 *   open = the attempt is skipped at once (outcome breaker_open, fall back);
 *   a Retry-After hold or a full rpm/tpm limit = outcome held_off or
 *   rate_limited, handled like a 429 (wait when the deadline allows, else fall
 *   back). A half-open probe or a rate-limit slot needs a Redis reply first
 *   (state gate); its answer resumes the job from a timer, never re-entrantly.
 *
 *   finish: finish.lua. A reply that is Redis away or not ready (no reply, LOADING, BUSY,
 *   OOM, READONLY, MASTERDOWN, NOAUTH, TRYAGAIN: pb_redis_is_transient) keeps the result
 *   and re-sends it after FINISH_RETRY_MS doubling to FINISH_RETRY_MAX_MS, until it lands,
 *   so a result is never dropped while the worker lives. Held results are bounded by
 *   concurrency (a held job keeps its slot, so no more are claimed), logged once each
 *   (finish_held) and counted when they land (finish:held, finish:resends).
 *
 * Every attempt's timeout is the smaller of the model's and what is left of
 * the deadline, so the degraded reply arrives before the deadline. */
#include "planb/chain.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/cache.h"
#include "planb/core.h"
#include "planb/job.h"
#include "planb/log.h"
#include "planb/provider.h"
#include "planb/retry.h"
#include "planb/stats.h"
#include "planb/testhook.h"

#define CHAIN_MIN_ATTEMPT_MS 20   /* an attempt with less time than this left is not started */
#define FINISH_RETRY_MS      250  /* first re-send of a finish Redis could not take */
#define FINISH_RETRY_MAX_MS  1000 /* re-send cap: a held result lands <= 1 s after Redis is back */

typedef enum { JOB_RUNNING, JOB_BACKOFF, JOB_GATE, JOB_FINISHING } chain_state;

typedef struct chain_job {
    pb_chain_ctx *ctx;
    struct chain_job *prev, *next; /* ctx->jobs list */
    char *raw;                     /* job bytes as claimed (needed to ack it) */
    size_t raw_len;
    pb_request *req; /* NULL for an invalid job */
    char *bad_id;    /* id of an invalid job, when readable */
    chain_state state;
    int64_t claimed_mono_ms;
    int64_t claimed_wall_ms;
    int64_t deadline_mono_ms;
    size_t pos; /* index into req->models */
    int try_no; /* tries of the current model so far */
    pb_attempt *attempts;
    size_t n_attempts, cap_attempts;
    pb_http_call *call;  /* the attempt in flight */
    bool probing;        /* the attempt in flight is the breaker's half-open probe */
    pb_gate gate;        /* PB_GATE_PROBE or PB_GATE_LIMIT while in state JOB_GATE */
    int64_t gate_wait;   /* its answer (see pb_breaker_fn) */
    struct event *timer; /* backoff and finish retry */
    /* outcome */
    pb_status status;
    pb_source source;
    char *content; /* owned answer (NULL: degraded reply or none) */
    int model;
    long prompt_tokens, completion_tokens;
    char *error; /* "CODE sentence" for invalid */
    bool dead;   /* dead-letter the raw job too */
    char *result_json;
    size_t result_len;
    int64_t latency_ms;      /* claim to finish, fixed when the job starts finishing */
    pb_semcache_query *semq; /* semantic cache view, NULL when it does not apply */
    bool semantic_tried;     /* the fallback lookup ran */
    char *matched_question;  /* semantic_cache hit: the question it answered */
    double similarity;       /* semantic_cache hit: cosine, else -1 */
    pb_cache_op *cache_op;   /* lookup and herd lock; NULL once ended or when skipping the cache */
    pb_cache_entry stale;    /* answers when the chain is spent (empty: none) */
    int64_t cache_age_s;     /* age of a cached answer, -1 otherwise */
    bool cache_missed;       /* looked the cache up and had to run the chain */
    bool coalesced;          /* answered from another job's call we waited on */
    int finish_resends;      /* finishes sent again after a transient refusal */
    int64_t held_since_ms;   /* first transient refusal of its finish (0: none) */
} chain_job;

static void chain_next_model(chain_job *j);
static void chain_attempt(chain_job *j);
static void chain_finish(chain_job *j);
static void chain_call(chain_job *j);
static void chain_gate_resume(chain_job *j);
static void chain_decide(chain_job *j, int m, pb_class cls, int64_t retry_after, long status);
static void chain_cache_end(chain_job *j);

static uint64_t
chain_rand(pb_chain_ctx *ctx)
{
    /* xorshift64*: jitter only needs to decorrelate workers, not be secret. */
    uint64_t x = ctx->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ctx->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---------------------------------------------------------------- pure decisions */

/* Names a transport failure for the attempt list (and the stats). */
static const char *
chain_transport_outcome(const pb_http_reply *r)
{
    if (r->too_large)
        return "too_large";
    if (r->timed_out)
        return "timeout";
    switch (r->curl_code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return "connect_error";
    case CURLE_GOT_NOTHING:
        return "no_response";
    default:
        return "transport_error";
    }
}

pb_class
pb_chain_classify_reply(const pb_provider_ops *ops, const pb_http_reply *r, pb_completion *comp,
                        char *outcome, size_t outcome_size)
{
    if (r->curl_code != 0 || r->too_large) {
        snprintf(outcome, outcome_size, "%s", chain_transport_outcome(r));
        return PB_CLASS_RETRY;
    }
    if (r->status >= 200 && r->status < 300) {
        if (ops->parse_response(r->body, r->body_len, comp, NULL) == PB_OK) {
            snprintf(outcome, outcome_size, "ok");
            return PB_CLASS_OK;
        }
        snprintf(outcome, outcome_size, "bad_reply");
        return PB_CLASS_RETRY;
    }
    snprintf(outcome, outcome_size, "http_%ld", r->status);
    return ops->classify(r->status, r->body, r->body_len);
}

void
pb_chain_attempt_timeouts(const pb_model_conf *m, int64_t remaining_ms, int *connect_ms,
                          int *timeout_ms)
{
    *timeout_ms = m->timeout_ms < remaining_ms ? m->timeout_ms : (int)remaining_ms;
    *connect_ms = m->connect_timeout_ms < *timeout_ms ? m->connect_timeout_ms : *timeout_ms;
}

/* ---------------------------------------------------------------- one job */

static void
chain_job_free(chain_job *j)
{
    pb_chain_ctx *ctx = j->ctx;
    if (j->call)
        pb_http_cancel(j->call);
    if (j->timer)
        event_free(j->timer);
    pb_semcache_query_free(j->semq);
    free(j->matched_question);
    pb_cache_end(j->cache_op, NULL, false);
    pb_cache_entry_free(&j->stale);
    pb_request_free(j->req);
    free(j->bad_id);
    free(j->raw);
    free(j->attempts);
    free(j->content);
    free(j->error);
    free(j->result_json);
    if (j->prev)
        j->prev->next = j->next;
    else
        ctx->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    free(j);
    ctx->active--;
    if (ctx->on_released)
        ctx->on_released(ctx->owner);
}

static int64_t
chain_remaining_ms(const chain_job *j)
{
    return j->deadline_mono_ms - pb_mono_ms();
}

static void
chain_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    chain_job *j = arg;
    if (j->state == JOB_BACKOFF) {
        j->state = JOB_RUNNING;
        chain_attempt(j);
    } else if (j->state == JOB_GATE) {
        j->state = JOB_RUNNING;
        chain_gate_resume(j);
    } else if (j->state == JOB_FINISHING) {
        chain_finish(j);
    }
}

static void
chain_arm_timer(chain_job *j, int64_t delay_ms)
{
    if (j->timer == NULL)
        j->timer = evtimer_new(j->ctx->base, chain_on_timer, j);
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
    evtimer_add(j->timer, &tv);
}

static pb_attempt *
chain_add_attempt(chain_job *j, int model, const char *outcome, int64_t ms)
{
    if (j->n_attempts == j->cap_attempts) {
        j->cap_attempts = j->cap_attempts ? 2 * j->cap_attempts : 4;
        j->attempts = pb_xrealloc(j->attempts, j->cap_attempts * sizeof(pb_attempt));
    }
    pb_attempt *a = &j->attempts[j->n_attempts++];
    a->model = model;
    a->try_no = j->try_no;
    snprintf(a->outcome, sizeof(a->outcome), "%s", outcome);
    a->elapsed_ms = ms;
    return a;
}

/* Takes a semantic hit as the job's answer. */
static void
chain_take_semantic(chain_job *j, const pb_semcache_hit *hit)
{
    j->status = PB_STATUS_OK;
    j->source = PB_SOURCE_SEMANTIC_CACHE;
    j->model = -1;
    free(j->content);
    j->content = pb_xstrdup(hit->content);
    j->matched_question = pb_xstrdup(hit->question);
    j->similarity = hit->similarity;
    j->cache_age_s = hit->age_s;
    chain_finish(j);
}

static void chain_degrade(chain_job *j);

static void
chain_on_semantic_fallback(const pb_semcache_hit *hit, void *arg)
{
    chain_job *j = arg;
    if (hit)
        chain_take_semantic(j, hit);
    else
        chain_degrade(j);
}

/* Every model failed: mode "fallback" asks the semantic cache (answers up to the stale
 * limit count) before the degraded reply, within what is left of the deadline. */
static bool
chain_semantic_fallback(chain_job *j)
{
    const pb_config *cfg = j->ctx->cfg;
    int64_t left = chain_remaining_ms(j);
    if (j->semq == NULL || j->semantic_tried || cfg->semantic.mode != PB_SEMANTIC_FALLBACK ||
        j->req->cache == PB_CACHE_REFRESH || left < 1)
        return false;
    j->semantic_tried = true;
    pb_semcache_lookup(
        j->semq, left < cfg->semantic.timeout_ms ? (int)left : cfg->semantic.timeout_ms,
        (int64_t)cfg->cache_ttl_s + cfg->cache_stale_if_error_s, chain_on_semantic_fallback, j);
    return true;
}

/* An answer from a cache entry (taken: its content moves into the job). */
static void
chain_answer_from_entry(chain_job *j, pb_cache_entry *e, pb_source source)
{
    j->status = PB_STATUS_OK;
    j->source = source;
    free(j->content);
    j->content = e->content;
    e->content = NULL;
    j->model = pb_config_model_index(j->ctx->cfg, e->model);
    j->prompt_tokens = e->prompt_tokens;
    j->completion_tokens = e->completion_tokens;
    j->cache_age_s = e->age_s;
    pb_cache_entry_free(e);
    chain_finish(j);
}

/* The chain is spent: the semantic cache (mode fallback), then a stale cache entry, then
 * the degraded reply. */
static void
chain_degrade(chain_job *j)
{
    if (chain_semantic_fallback(j))
        return;
    if (j->stale.content != NULL) {
        chain_answer_from_entry(j, &j->stale, PB_SOURCE_STALE_CACHE);
        return;
    }
    j->status = PB_STATUS_DEGRADED;
    j->source = PB_SOURCE_DEGRADED;
    j->model = -1;
    chain_finish(j);
}

bool
pb_chain_model_allowed(const pb_config *cfg, const pb_request *req, int m)
{
    const pb_route_conf *route = &cfg->routes[req->route];
    if (!req->critical || route->critical_min_tier <= 0)
        return true;
    return cfg->models[m].tier <= route->critical_min_tier;
}

static void
chain_next_model(chain_job *j)
{
    while (j->pos < j->req->n_models &&
           !pb_chain_model_allowed(j->ctx->cfg, j->req, j->req->models[j->pos]))
        j->pos++;
    if (j->pos >= j->req->n_models || chain_remaining_ms(j) < CHAIN_MIN_ATTEMPT_MS) {
        chain_degrade(j);
        return;
    }
    j->try_no = 0;
    chain_attempt(j);
}

static void
chain_on_attempt_done(const pb_http_reply *r, void *arg)
{
    chain_job *j = arg;
    pb_chain_ctx *ctx = j->ctx;
    const pb_config *cfg = ctx->cfg;
    j->call = NULL;
    int m = j->req->models[j->pos];
    const pb_model_conf *model = &cfg->models[m];
    const pb_provider_ops *ops = pb_provider_for(cfg->providers[model->provider].type);

    pb_completion comp = {0};
    char outcome[32];
    pb_class cls = pb_chain_classify_reply(ops, r, &comp, outcome, sizeof(outcome));
    if (cls == PB_CLASS_OK) {
        free(j->content);
        j->content = comp.content;
        comp.content = NULL;
        j->prompt_tokens = comp.prompt_tokens;
        j->completion_tokens = comp.completion_tokens;
    }
    pb_provider_completion_free(&comp);
    chain_add_attempt(j, m, outcome, r->elapsed_ms);
    pb_log(PB_LOG_DEBUG, "event=attempt job=%s model=%s try=%d outcome=%s ms=%lld", j->req->id,
           model->name, j->try_no, outcome, (long long)r->elapsed_ms);

    int64_t retry_after =
        r->retry_after ? pb_retry_after_ms(r->retry_after, pb_wall_ms()) : (int64_t)-1;
    if (ctx->breaker) {
        /* A Retry-After on 429/503 holds the model for every worker, not just this job. */
        bool held = r->status == 429 || r->status == 503;
        long tokens = cls == PB_CLASS_OK && j->prompt_tokens >= 0 && j->completion_tokens >= 0
                          ? j->prompt_tokens + j->completion_tokens
                          : 0;
        pb_breaker_report(ctx->breaker, m, cls == PB_CLASS_RETRY, held ? retry_after : -1, tokens);
    }
    j->probing = false;
    chain_decide(j, m, cls, retry_after, r->status);
}

/* After an attempt (or a refusal without a call) of class cls on model m: finish, retry
 * after a backoff (or retry_after, -1 none), fall back, or reject the job (HTTP status). */
static void
chain_decide(chain_job *j, int m, pb_class cls, int64_t retry_after, long status)
{
    const pb_config *cfg = j->ctx->cfg;
    const pb_route_conf *route = &cfg->routes[j->req->route];
    int64_t backoff = pb_retry_backoff_ms(route->backoff_ms, route->backoff_max_ms, j->try_no - 1,
                                          chain_rand(j->ctx));
    pb_retry_plan plan = pb_retry_decide(cls, j->try_no, route->retries, backoff, retry_after,
                                         chain_remaining_ms(j), CHAIN_MIN_ATTEMPT_MS);
    switch (plan.next) {
    case PB_NEXT_DONE:
        j->status = PB_STATUS_OK;
        j->source = j->pos == 0 ? PB_SOURCE_PRIMARY : PB_SOURCE_FALLBACK;
        j->model = m;
        if (j->semq) {
            pb_semcache_shadow_record(j->semq, j->content);
            pb_semcache_insert(j->semq, j->content);
        }
        chain_finish(j);
        return;
    case PB_NEXT_RETRY:
        j->state = JOB_BACKOFF;
        chain_arm_timer(j, plan.delay_ms);
        return;
    case PB_NEXT_FALLBACK:
        j->pos++;
        chain_next_model(j);
        return;
    case PB_NEXT_INVALID:
        j->status = PB_STATUS_INVALID;
        j->source = PB_SOURCE_NONE;
        j->model = -1;
        j->dead = true;
        j->error = pb_xasprintf("UPSTREAM_REJECTED model %s rejected the request as malformed "
                                "(HTTP %ld)",
                                cfg->models[m].name, status);
        chain_finish(j);
        return;
    }
}

/* An attempt refused before any call (breaker open, held off, rate limited): recorded as
 * an attempt of 0 ms, then decided like a failed call of class cls. */
static void
chain_refuse(chain_job *j, int m, const char *outcome, pb_class cls, int64_t retry_after)
{
    j->try_no++;
    chain_add_attempt(j, m, outcome, 0);
    pb_log(PB_LOG_DEBUG, "event=attempt job=%s model=%s try=%d outcome=%s ms=0", j->req->id,
           j->ctx->cfg->models[m].name, j->try_no, outcome);
    chain_decide(j, m, cls, retry_after, 0);
}

/* A probe or rate-limit answer: resumed from the job's timer, outside the Redis callback
 * (which may run while the connection is being freed). */
static void
chain_on_gate(int64_t wait_ms, void *arg)
{
    chain_job *j = arg;
    j->gate_wait = wait_ms;
    chain_arm_timer(j, 0);
}

static void
chain_gate_resume(chain_job *j)
{
    int m = j->req->models[j->pos];
    if (j->gate_wait == 0) {
        j->probing = j->gate == PB_GATE_PROBE;
        chain_call(j);
    } else if (j->gate == PB_GATE_PROBE || j->gate_wait < 0) {
        chain_refuse(j, m, j->gate == PB_GATE_PROBE ? "breaker_open" : "rate_limited",
                     PB_CLASS_FALLBACK, -1);
    } else {
        chain_refuse(j, m, "rate_limited", PB_CLASS_RETRY, j->gate_wait);
    }
}

/* Asks the model's shared breaker before calling it (see the file comment). */
static void
chain_attempt(chain_job *j)
{
    if (chain_remaining_ms(j) < CHAIN_MIN_ATTEMPT_MS) {
        chain_degrade(j);
        return;
    }
    pb_breaker *b = j->ctx->breaker;
    int m = j->req->models[j->pos];
    int64_t wait = 0;
    pb_gate g = b ? pb_breaker_check(b, m, &wait) : PB_GATE_PASS;
    switch (g) {
    case PB_GATE_PASS:
        chain_call(j);
        return;
    case PB_GATE_OPEN:
        chain_refuse(j, m, "breaker_open", PB_CLASS_FALLBACK, -1);
        return;
    case PB_GATE_HOLD:
        chain_refuse(j, m, "held_off", PB_CLASS_RETRY, wait);
        return;
    case PB_GATE_PROBE:
    case PB_GATE_LIMIT:
        j->state = JOB_GATE;
        j->gate = g;
        if (g == PB_GATE_PROBE)
            pb_breaker_probe(b, m, chain_on_gate, j);
        else
            pb_breaker_acquire(b, m, chain_on_gate, j);
        return;
    }
}

static void
chain_call(chain_job *j)
{
    pb_chain_ctx *ctx = j->ctx;
    const pb_config *cfg = ctx->cfg;
    int m = j->req->models[j->pos];
    const pb_model_conf *model = &cfg->models[m];
    const pb_provider_conf *prov = &cfg->providers[model->provider];
    int64_t remaining = chain_remaining_ms(j);
    if (remaining < CHAIN_MIN_ATTEMPT_MS) {
        chain_degrade(j);
        return;
    }
    j->try_no++;
    pb_http_request *hr = pb_xcalloc(1, sizeof(*hr));
    pb_error err = {0};
    if (pb_provider_for(prov->type)->build_request(prov, model, j->req, hr, &err) != PB_OK) {
        pb_http_request_free(hr);
        chain_add_attempt(j, m, "build_error", 0);
        pb_log(PB_LOG_WARN, "event=build_error job=%s model=%s error=\"%s\"", j->req->id,
               model->name, err.msg);
        j->pos++;
        chain_next_model(j);
        return;
    }
    int timeout, connect;
    pb_chain_attempt_timeouts(model, remaining, &connect, &timeout);
    j->call = pb_http_start(ctx->http, hr, connect, timeout, chain_on_attempt_done, j);
}

static void
chain_on_finished(redisReply *reply, void *arg)
{
    chain_job *j = arg;
    const char *id = j->req ? j->req->id : (j->bad_id ? j->bad_id : "-");
    if (pb_redis_is_transient(reply)) {
        /* Redis is away or not ready: keep the result and send it again, backing off. */
        if (j->held_since_ms == 0) {
            j->held_since_ms = pb_mono_ms();
            pb_log(PB_LOG_WARN, "event=finish_held job=%s why=\"%.*s\"", id,
                   reply ? (int)strcspn(reply->str, " \r\n") : 14,
                   reply ? reply->str : "no connection");
        }
        int64_t delay = (int64_t)FINISH_RETRY_MS << (j->finish_resends < 3 ? j->finish_resends : 3);
        chain_arm_timer(j, delay < FINISH_RETRY_MAX_MS ? delay : FINISH_RETRY_MAX_MS);
        j->finish_resends++;
        return;
    }
    if (j->held_since_ms != 0)
        pb_log(PB_LOG_INFO, "event=finish_landed job=%s resends=%d held_ms=%lld", id,
               j->finish_resends, (long long)(pb_mono_ms() - j->held_since_ms));
    if (reply->type == REDIS_REPLY_ERROR) {
        /* A script error is a bug, not an outage: leave the job in flight for hand-back. */
        pb_log(PB_LOG_ERROR, "event=finish_failed job=%s error=\"%s\"", id, reply->str);
    } else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        pb_log(PB_LOG_INFO, "event=duplicate job=%s note=\"a result already existed\"", id);
    }
    chain_job_free(j);
}

static void
chain_build_result(chain_job *j)
{
    pb_chain_ctx *ctx = j->ctx;
    const pb_config *cfg = ctx->cfg;
    const pb_request *req = j->req;
    const char *content = j->content;
    if (j->status == PB_STATUS_DEGRADED)
        content = cfg->routes[req->route].degraded_reply;
    pb_result res = {
        .id = req ? req->id : j->bad_id,
        .status = j->status,
        .source = j->source,
        .content = j->status == PB_STATUS_INVALID ? NULL : content,
        .error = j->error,
        .model = j->model,
        .attempts = j->attempts,
        .n_attempts = j->n_attempts,
        .prompt_tokens = j->prompt_tokens,
        .completion_tokens = j->completion_tokens,
        .queued_ms = (req && req->submitted_at_ms > 0)
                         ? (j->claimed_wall_ms > req->submitted_at_ms
                                ? j->claimed_wall_ms - req->submitted_at_ms
                                : 0)
                         : -1,
        .latency_ms = j->latency_ms,
        .worker = ctx->worker_id,
        .meta = req ? req->meta : NULL,
        .cache_age_s = j->cache_age_s,
        .similarity = j->similarity,
        .matched_question = j->matched_question,
    };
    j->result_json = pb_job_result_to_json(&res, cfg, &j->result_len);
    /* One line per job; never message bodies or keys (error is our own sentence). */
    pb_log(PB_LOG_INFO,
           "event=job_done job=%s route=%s status=%s source=%s model=%s attempts=%zu ms=%lld%s%s",
           res.id ? res.id : "-", req ? cfg->routes[req->route].name : "-",
           pb_job_status_name(j->status), pb_job_source_name(j->source),
           j->model >= 0 ? cfg->models[j->model].name : "-", j->n_attempts,
           (long long)res.latency_ms, j->error ? " error=" : "", j->error ? j->error : "");
}

static void
chain_finish(chain_job *j)
{
    pb_chain_ctx *ctx = j->ctx;
    const char *id = j->req ? j->req->id : j->bad_id;
    if (j->state != JOB_FINISHING) {
        j->state = JOB_FINISHING;
        j->latency_ms = pb_mono_ms() - j->claimed_mono_ms;
        chain_cache_end(j);
        if (id)
            chain_build_result(j);
    }
    char *dead = j->dead ? pb_job_dead_entry(j->raw, j->raw_len, ctx->cfg->limits.job_max_bytes, id,
                                             j->error, ctx->worker_id, pb_wall_ms())
                         : NULL;
    pb_stats_job facts = {
        .status = j->status,
        .source = j->source,
        .route = j->req ? j->req->route : -1,
        .model = j->model,
        .latency_ms = j->latency_ms,
        .attempts = j->attempts,
        .n_attempts = j->n_attempts,
        .cache_missed = j->cache_missed,
        .coalesced = j->coalesced,
    };
    pb_stats_tally c;
    pb_stats_count_job(ctx->cfg, &facts, &c);
    if (j->finish_resends > 0 && c.n + 2 <= PB_QUEUE_MAX_COUNTERS) {
        c.fields[c.n] = "finish:held";
        c.counts[c.n++] = 1;
        c.fields[c.n] = "finish:resends";
        c.counts[c.n++] = j->finish_resends;
    }
    pb_finish f = {
        .raw = j->raw,
        .raw_len = j->raw_len,
        .id = id,
        .result_json = j->result_json,
        .result_len = j->result_len,
        /* An invalid job's reply flag may be unreadable, so its result always goes to
         * the reply list too: a producer waiting on it must not hang. */
        .reply_ttl_s = (j->req == NULL || j->req->reply) ? ctx->cfg->reply_ttl_s : 0,
        .dead_entry = dead,
        .counters = c.fields,
        .counts = c.counts,
        .n_counters = c.n,
    };
    pb_queue_finish(ctx->cmd, ctx->cfg, ctx->keys, &f, chain_on_finished, j);
    free(dead);
}

static void
chain_on_semantic_first(const pb_semcache_hit *hit, void *arg)
{
    chain_job *j = arg;
    if (hit && j->ctx->cfg->semantic.mode == PB_SEMANTIC_FIRST)
        chain_take_semantic(j, hit);
    else
        chain_next_model(j); /* shadow mode only remembers the hit */
}

/* Modes "first" and "shadow" ask the semantic cache before any model (after the exact
 * cache); only fresh answers (ttl_s) count. */
static void
chain_semantic_first(chain_job *j)
{
    const pb_config *cfg = j->ctx->cfg;
    j->semq = pb_semcache_query_new(j->ctx->semcache, j->req);
    if (j->semq == NULL || cfg->semantic.mode == PB_SEMANTIC_FALLBACK ||
        j->req->cache == PB_CACHE_REFRESH) {
        chain_next_model(j);
        return;
    }
    int64_t left = chain_remaining_ms(j) / 2; /* leave the models most of the deadline */
    pb_semcache_lookup(j->semq,
                       left < cfg->semantic.timeout_ms ? (int)left : cfg->semantic.timeout_ms,
                       cfg->cache_ttl_s, chain_on_semantic_first, j);
}

static void
chain_on_cache(pb_cache_outcome *o, void *arg)
{
    chain_job *j = arg;
    j->stale = o->stale;
    if (o->verdict == PB_CACHE_HIT) {
        j->coalesced = o->coalesced;
        chain_answer_from_entry(j, &o->hit, PB_SOURCE_CACHE);
        return;
    }
    j->cache_missed = true;
    if (o->verdict == PB_CACHE_FAILED)
        chain_degrade(j);
    else
        chain_semantic_first(j);
}

/* Looks the job up in the cache with the models it may use and its quality floor. */
static void
chain_cache_begin(chain_job *j)
{
    const pb_config *cfg = j->ctx->cfg;
    const pb_route_conf *route = &cfg->routes[j->req->route];
    const char *names[PB_CONFIG_MAX_CHAIN];
    size_t n = 0;
    for (size_t i = 0; i < j->req->n_models && n < PB_CONFIG_MAX_CHAIN; i++)
        if (pb_chain_model_allowed(cfg, j->req, j->req->models[i]))
            names[n++] = cfg->models[j->req->models[i]].name;
    int max_tier = j->req->critical ? route->critical_min_tier : 0;
    j->cache_op = pb_cache_begin(j->ctx->cache, j->req, names, n, max_tier, j->deadline_mono_ms,
                                 chain_on_cache, j);
}

/* Stores an answer fresh from upstream (not skip), or shares a spent chain with the jobs
 * waiting on this one; either way gives the herd lock up. */
static void
chain_cache_end(chain_job *j)
{
    if (j->cache_op == NULL)
        return;
    pb_cache_entry answer = {0};
    bool fresh = j->status == PB_STATUS_OK &&
                 (j->source == PB_SOURCE_PRIMARY || j->source == PB_SOURCE_FALLBACK);
    if (fresh) {
        const pb_model_conf *m = &j->ctx->cfg->models[j->model];
        answer = (pb_cache_entry){.content = j->content,
                                  .model = m->name,
                                  .tier = m->tier,
                                  .prompt_tokens = j->prompt_tokens,
                                  .completion_tokens = j->completion_tokens};
    }
    bool spent = j->status == PB_STATUS_DEGRADED || j->source == PB_SOURCE_STALE_CACHE;
    pb_cache_end(j->cache_op, fresh ? &answer : NULL, spent);
    j->cache_op = NULL;
}

void
pb_chain_start(pb_chain_ctx *ctx, char *raw, size_t len)
{
    chain_job *j = pb_xcalloc(1, sizeof(*j));
    j->ctx = ctx;
    j->raw = raw;
    j->raw_len = len;
    j->claimed_mono_ms = pb_mono_ms();
    j->claimed_wall_ms = pb_wall_ms();
    j->model = -1;
    j->prompt_tokens = j->completion_tokens = -1;
    j->similarity = -1;
    j->cache_age_s = -1;
    j->state = JOB_RUNNING;
    j->next = ctx->jobs;
    if (ctx->jobs)
        ctx->jobs->prev = j;
    ctx->jobs = j;
    ctx->active++;

    pb_error err = {0};
    if (pb_job_parse(raw, len, ctx->cfg, &j->req, &j->bad_id, &err) != PB_OK) {
        j->req = NULL;
        j->status = PB_STATUS_INVALID;
        j->source = PB_SOURCE_NONE;
        j->error = pb_xstrdup(err.msg);
        j->dead = true;
        chain_finish(j);
        return;
    }
    j->deadline_mono_ms = j->claimed_mono_ms + j->req->deadline_ms;
    pb_testhook_job_started(j->req);
    if (ctx->cache != NULL && j->req->cache != PB_CACHE_SKIP) {
        chain_cache_begin(j);
        return;
    }
    chain_semantic_first(j);
}

void
pb_chain_abandon_all(pb_chain_ctx *ctx)
{
    ctx->on_released = NULL;
    while (ctx->jobs)
        chain_job_free(ctx->jobs);
}

size_t
pb_chain_count_raw(const pb_chain_ctx *ctx, const char *raw, size_t len)
{
    size_t n = 0;
    for (const chain_job *j = ctx->jobs; j; j = j->next)
        n += j->raw_len == len && memcmp(j->raw, raw, len) == 0;
    return n;
}
