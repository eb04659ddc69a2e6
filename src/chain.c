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
 *     |   ^                      --400: this model refuses the job--> next model; when every
 *     |   |                        model has refused (400 or unsupported): finish(invalid)
 *     v   | retry
 *   backoff (timer: jittered backoff or Retry-After, only when it fits the deadline)
 *
 *   A model that cannot serve the job (a capability it lacks, or a param its dialect
 *   cannot send without changing its meaning) is skipped without a call (outcome
 *   unsupported, 0 ms); a job no model of its chain can serve is invalid at once.
 *
 *   Before each attempt the model's shared breaker (breaker.h) is consulted:
 *   open = the attempt is skipped at once (outcome breaker_open, fall back);
 *   a Retry-After hold or a full rpm/tpm limit = outcome held_off or
 *   rate_limited, handled like a 429 (wait when the deadline allows, else fall
 *   back). A half-open probe or a rate-limit slot needs a Redis reply first
 *   (state gate); its answer resumes the job from a timer, never re-entrantly.
 *
 *   cancel (pb_chain_cancel, from the worker's planb:cancel subscription): the call and the
 *   hedge are aborted at once (outcome cancelled), every timer stopped, no retry or fallback,
 *   finish(cancelled); a job waiting on a Redis answer (cache, gate) finishes so at its next
 *   step (cancel_asked), one started with an id cancelled lately (or claim.lua's {job}) at once.
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
#include "planb/delta.h"
#include "planb/eventstream.h"
#include "planb/sse.h"
#include "planb/stream.h"
#include "planb/core.h"
#include "planb/job.h"
#include "planb/jobtrace.h"
#include "planb/log.h"
#include "planb/provider.h"
#include "planb/retry.h"
#include "planb/stats.h"
#include "planb/testhook.h"

#define CHAIN_MIN_ATTEMPT_MS 20    /* an attempt with less time than this left is not started */
#define FINISH_RETRY_MS      250   /* first re-send of a finish Redis could not take */
#define FINISH_RETRY_MAX_MS  1000  /* re-send cap: a held result lands <= 1 s after Redis is back */
#define CANCELS_KEPT         64    /* cancelled ids remembered that no live job had yet */
#define CANCELS_KEEP_MS      10000 /* ... for this long: a claim reply still on its way */

/* A cancel can overtake the claim of its job: cancel.lua runs after claim.lua took the job,
 * but its message comes on the subscription before claim.lua's reply on the command
 * connection. Such ids are kept a while, and a job started with one finishes cancelled. */
typedef struct chain_cancels {
    char *ids[CANCELS_KEPT];     /* owned, NULL: free slot */
    int64_t at_ms[CANCELS_KEPT]; /* when each was heard (monotonic) */
    size_t next;                 /* slot the next id takes (oldest first) */
} chain_cancels;

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
    pb_http_call *call;            /* the attempt in flight */
    bool probing;                  /* the attempt in flight is the breaker's half-open probe */
    pb_http_call *hedge_call;      /* the hedge beside call, on models[hedge_pos] (NULL: none) */
    size_t hedge_pos;              /* index into req->models of the hedge's model */
    int64_t hedge_started_mono_ms; /* when the hedge call started */
    int64_t hedge_started_us;      /* ... on the wall clock (its attempt's span) */
    int64_t call_started_us;       /* when the main call started, wall clock (span) */
    bool hedged;                   /* the job's one hedge was started (never a second) */
    bool hedge_is_main;            /* the hedge call took over as the main attempt */
    int hedge_model;               /* model the hedge ran on (stats), -1 none */
    bool hedge_won;                /* the hedge's answer was used */
    int cancelled_model;           /* model whose transfer was cancelled by the other's answer */
    struct event *hedge_timer;     /* fires hedge_after_ms into the main attempt */
    /* streamed jobs (req->stream) */
    pb_stream *stream;          /* the job's planb:stream:<id> writer, NULL: not streamed */
    pb_sse sse;                 /* the streamed attempt's event reader */
    pb_eventstream_decoder *es; /* ... its frame reader instead, when the dialect's is AWS's */
    pb_delta *delta;            /* the streamed attempt's answer so far (NULL: none) */
    struct event *stream_timer; /* first_token_ms, then idle_ms, of the streamed attempt */
    const char *stream_fail;    /* why the attempt failed inside its transfer, or NULL */
    const char *stream_timeout; /* "first_token_timeout" / "idle_timeout" when the timer won */
    bool started;               /* the current attempt's `start` entry is on the stream */
    bool cut;                   /* the answer was cut after its first token */
    char cut_reason[32];        /* the outcome that cut it */
    bool continued;             /* a later model continued a cut answer (a piece, or its end) */
    char *partial;              /* the cut text a continuation starts from, NULL: none */
    size_t cut_pos;             /* index into req->models of the attempt that sent it last */
    pb_gate gate;               /* PB_GATE_PROBE or PB_GATE_LIMIT while in state JOB_GATE */
    int64_t gate_wait;          /* its answer (see pb_breaker_fn) */
    struct event *timer;        /* backoff and finish retry */
    /* outcome */
    pb_status status;
    pb_source source;
    char *content;             /* owned answer (NULL: degraded reply or none) */
    char *tool_calls;          /* owned JSON array of the answer's tool calls, NULL: none */
    char *refusal;             /* owned refusal of the answer, NULL: none */
    char *logprobs;            /* owned logprobs JSON of the answer, NULL: none */
    char *response_id;         /* owned: the provider's id of the answer (traces), NULL: none */
    const char *finish_reason; /* static; NULL: no model answered */
    int model;
    long prompt_tokens, completion_tokens;
    long cached_tokens, reasoning_tokens; /* 0 when unknown */
    size_t n_refused;                     /* models that refused: upstream 400 or unsupported */
    size_t n_rejected;                    /* of them, by an upstream 400 */
    char reject_msg[160];                 /* the last such 400's message (sanitized) */
    char *error;                          /* "CODE sentence" for invalid */
    bool dead;                            /* dead-letter the raw job too */
    char *result_json;
    size_t result_len;
    int64_t latency_ms;       /* claim to finish, fixed when the job starts finishing */
    double cost_usd;          /* the answer's cost at the model's prices, 0 without */
    pb_semcache_query *semq;  /* semantic cache view, NULL when it does not apply */
    bool semantic_tried;      /* the fallback lookup ran */
    char *matched_question;   /* semantic_cache hit: the question it answered */
    double similarity;        /* semantic_cache hit: cosine, else -1 */
    pb_cache_op *cache_op;    /* lookup and herd lock; NULL once ended or when skipping the cache */
    pb_cache_entry stale;     /* answers when the chain is spent (empty: none) */
    int64_t cache_age_s;      /* age of a cached answer, -1 otherwise */
    bool cache_missed;        /* looked the cache up and had to run the chain */
    bool coalesced;           /* answered from another job's call we waited on */
    pb_jobtrace *trace;       /* the job's trace (NULL: tracing off, or an invalid job) */
    int64_t lookup_start_us;  /* wall clock when the cache lookup in progress began */
    const char *cache_result; /* hit, miss, coalesced, failed, skip (traces) */
    bool cancel_asked;        /* cancelled while no call ran: finishes cancelled at its next step */
    int finish_resends;       /* finishes sent again after a transient refusal */
    int64_t held_since_ms;    /* first transient refusal of its finish (0: none) */
} chain_job;

static void chain_next_model(chain_job *j);
static void chain_attempt(chain_job *j);
static void chain_finish(chain_job *j);
static void chain_call(chain_job *j);
static void chain_gate_resume(chain_job *j);
static void chain_decide(chain_job *j, int m, pb_class cls, int64_t retry_after, long status);
static void chain_cache_end(chain_job *j);
static void chain_stream_end_cut(chain_job *j);
static void chain_on_main_done(chain_job *j, const pb_http_reply *r);
static bool chain_cancels_take(pb_chain_ctx *ctx, const char *id);

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

/* Whether a failed read or write was the server's TLS alert. Under TLS 1.3 a gateway checks
 * the client certificate after the client has finished its handshake, so a missing or
 * untrusted one comes back as an alert on the first read or write: curl 7.88 reports
 * CURLE_RECV_ERROR or CURLE_SEND_ERROR with OpenSSL's words in its error buffer ("OpenSSL
 * SSL_read: ... SSL routines::tlsv13 alert certificate required"). A reset, an EOF or a
 * proxy's refusal ("CONNECT tunnel failed, response 407") on the same codes is no alert. */
static bool
chain_is_tls_alert(int curl_code, const char *error)
{
    return (curl_code == CURLE_RECV_ERROR || curl_code == CURLE_SEND_ERROR) && error != NULL &&
           strstr(error, "SSL routines") != NULL && strstr(error, " alert ") != NULL;
}

/* Names a transport failure for the attempt list (and the stats). */
static const char *
chain_transport_outcome(const pb_http_reply *r)
{
    if (chain_is_tls_alert(r->curl_code, r->error))
        return "tls_error";
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
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CLIENTCERT:
        return "tls_error";
    default:
        return "transport_error";
    }
}

pb_class
pb_chain_classify_reply(const pb_provider_ops *ops, const pb_http_reply *r, const pb_request *req,
                        pb_completion *comp, char *outcome, size_t outcome_size)
{
    if (r->curl_code != 0 || r->too_large) {
        snprintf(outcome, outcome_size, "%s", chain_transport_outcome(r));
        return PB_CLASS_RETRY;
    }
    if (r->status >= 200 && r->status < 300) {
        if (ops->parse_response(r->body, r->body_len, req, comp, NULL) == PB_OK) {
            snprintf(outcome, outcome_size, "ok");
            return PB_CLASS_OK;
        }
        snprintf(outcome, outcome_size, "bad_reply");
        return PB_CLASS_RETRY;
    }
    snprintf(outcome, outcome_size, "http_%ld", r->status);
    pb_class cls = ops->classify(r->status, r->body, r->body_len);
    /* An error status that is the provider's answer (Azure's content-filter 400). */
    if (cls == PB_CLASS_OK) {
        if (ops->parse_response(r->body, r->body_len, req, comp, NULL) == PB_OK) {
            snprintf(outcome, outcome_size, "ok");
            return PB_CLASS_OK;
        }
        cls = PB_CLASS_FALLBACK;
    }
    return cls;
}

void
pb_chain_attempt_timeouts(const pb_model_conf *m, int64_t remaining_ms, int *connect_ms,
                          int *timeout_ms)
{
    *timeout_ms = m->timeout_ms < remaining_ms ? m->timeout_ms : (int)remaining_ms;
    *connect_ms = m->connect_timeout_ms < *timeout_ms ? m->connect_timeout_ms : *timeout_ms;
}

/* ---------------------------------------------------------------- model latencies */

#define CHAIN_LATENCY_SAMPLES 256 /* recent answers kept per model for the adaptive hedge */
#define CHAIN_LATENCY_MIN     20  /* fewer samples than this: no p95 yet */
#define CHAIN_LATENCY_EVERY   32  /* the p95 is recomputed every this many samples */

/* This worker's recent answer times for one model (adaptive hedging). */
struct chain_latency {
    int64_t ms[CHAIN_LATENCY_SAMPLES]; /* ring of elapsed ms of successful calls */
    size_t n;                          /* samples taken (the ring holds the last 256) */
    int64_t p95;                       /* of the ring, as of the last recompute; -1 none */
};

static int
chain_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void
chain_latency_add(pb_chain_ctx *ctx, int m, int64_t ms)
{
    if (ctx->latency == NULL)
        return; /* no adaptive hedge has asked yet: nobody reads them */
    struct chain_latency *l = &ctx->latency[m];
    l->ms[l->n++ % CHAIN_LATENCY_SAMPLES] = ms;
    if (l->n >= CHAIN_LATENCY_MIN && l->n % CHAIN_LATENCY_EVERY == 0) {
        size_t k = l->n < CHAIN_LATENCY_SAMPLES ? l->n : CHAIN_LATENCY_SAMPLES;
        int64_t sorted[CHAIN_LATENCY_SAMPLES];
        memcpy(sorted, l->ms, k * sizeof(int64_t));
        qsort(sorted, k, sizeof(int64_t), chain_cmp_i64);
        l->p95 = sorted[(k * 95) / 100 < k ? (k * 95) / 100 : k - 1];
    }
}

/* The model's recent p95 answer time, or -1 while there are too few samples. */
static int64_t
chain_latency_p95(const pb_chain_ctx *ctx, int m)
{
    if (ctx->latency == NULL || ctx->latency[m].n < CHAIN_LATENCY_EVERY)
        return -1;
    return ctx->latency[m].p95;
}

/* ---------------------------------------------------------------- one job */

static void
chain_job_free(chain_job *j)
{
    pb_chain_ctx *ctx = j->ctx;
    if (j->call)
        pb_http_cancel(j->call);
    if (j->hedge_call)
        pb_http_cancel(j->hedge_call);
    if (j->timer)
        event_free(j->timer);
    if (j->hedge_timer)
        event_free(j->hedge_timer);
    if (j->stream_timer)
        event_free(j->stream_timer);
    pb_stream_free(j->stream);
    pb_delta_free(j->delta);
    pb_sse_free(&j->sse);
    pb_eventstream_decoder_free(j->es);
    free(j->partial);
    pb_semcache_query_free(j->semq);
    free(j->matched_question);
    pb_cache_end(j->cache_op, NULL, false);
    pb_cache_entry_free(&j->stale);
    pb_jobtrace_free(j->trace);
    pb_request_free(j->req);
    free(j->bad_id);
    free(j->raw);
    free(j->attempts);
    free(j->content);
    free(j->tool_calls);
    free(j->refusal);
    free(j->logprobs);
    free(j->response_id);
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
    a->reached = false;
    a->end_wall_us = pb_wall_us();
    a->start_wall_us = 0;
    a->status = 0;
    a->retry_after_ms = -1;
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
    j->finish_reason = "stop";
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
    pb_jobtrace_lookup(j->trace, "semantic", j->lookup_start_us, hit ? "hit" : "miss");
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
    j->lookup_start_us = pb_wall_us();
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
    free(j->tool_calls);
    free(j->refusal);
    j->tool_calls = e->tool_calls;
    j->refusal = e->refusal;
    e->tool_calls = e->refusal = NULL;
    j->finish_reason = e->finish_reason;
    j->cache_age_s = e->age_s;
    pb_cache_entry_free(e);
    chain_finish(j);
}

/* The chain is spent: the semantic cache (mode fallback), then a stale cache entry, then
 * the degraded reply. */
static void
chain_degrade(chain_job *j)
{
    if (j->partial != NULL) {
        chain_stream_end_cut(j);
        return;
    }
    if (chain_semantic_fallback(j))
        return;
    if (j->stale.content != NULL) {
        chain_answer_from_entry(j, &j->stale, PB_SOURCE_STALE_CACHE);
        return;
    }
    j->status = PB_STATUS_DEGRADED;
    j->source = PB_SOURCE_DEGRADED;
    j->model = -1;
    pb_jobtrace_event(j->trace, "planb.degraded", NULL, 0, NULL);
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

/* Why model m cannot serve the job (capability or dialect), NULL when it can. */
static const char *
chain_unsupported(const pb_config *cfg, const pb_request *req, int m)
{
    const pb_model_conf *model = &cfg->models[m];
    return pb_provider_unsupported(model, cfg->providers[model->provider].type, req);
}

/* Every model of the chain has refused the job (an upstream 400, or unsupported) and at
 * least one upstream said why: the job is invalid, with the last upstream's words. */
static void
chain_reject(chain_job *j)
{
    j->status = PB_STATUS_INVALID;
    j->source = PB_SOURCE_NONE;
    j->model = -1;
    j->dead = true;
    j->error = pb_xasprintf("UPSTREAM_REJECTED every model refused the request; the last said: %s",
                            j->reject_msg[0] ? j->reject_msg : "(no message)");
    chain_finish(j);
}

static void
chain_next_model(chain_job *j)
{
    const pb_config *cfg = j->ctx->cfg;
    for (; j->pos < j->req->n_models; j->pos++) {
        int m = j->req->models[j->pos];
        if (!pb_chain_model_allowed(cfg, j->req, m))
            continue;
        const char *why = chain_unsupported(cfg, j->req, m);
        if (why == NULL)
            break;
        /* Skipped without a call: recorded like a refusal before any request. */
        j->try_no = 1;
        chain_add_attempt(j, m, "unsupported", 0);
        j->n_refused++;
        pb_log(PB_LOG_DEBUG, "event=attempt job=%s model=%s outcome=unsupported why=\"%s\"",
               j->req->id, cfg->models[m].name, why);
    }
    if (j->pos >= j->req->n_models && j->n_rejected > 0 && j->n_refused == j->req->n_models) {
        chain_reject(j);
        return;
    }
    if (j->pos >= j->req->n_models || chain_remaining_ms(j) < CHAIN_MIN_ATTEMPT_MS) {
        chain_degrade(j);
        return;
    }
    j->try_no = 0;
    chain_attempt(j);
}

/* ---------------------------------------------------------------- streamed attempts */

static const char *
chain_source_for_pos(size_t pos)
{
    return pos == 0 ? "primary" : "fallback";
}

/* The first piece of an attempt's answer puts its `start` entry on the stream; an attempt
 * after a cut (partial set) continues the answer from then on. */
static void
chain_stream_started(chain_job *j)
{
    if (j->started)
        return;
    j->started = true;
    if (j->partial != NULL)
        j->continued = true;
    pb_jobtrace_event(j->trace, "planb.first_token", "planb.model", 0,
                      j->ctx->cfg->models[j->req->models[j->pos]].name);
    pb_stream_start(j->stream, j->ctx->cfg->models[j->req->models[j->pos]].name,
                    chain_source_for_pos(j->pos), j->continued);
}

/* A content piece came: the attempt's idle bound starts again. */
static void
chain_stream_rearm(chain_job *j)
{
    const pb_model_conf *m = &j->ctx->cfg->models[j->req->models[j->pos]];
    struct timeval tv = {m->idle_ms / 1000, (m->idle_ms % 1000) * 1000};
    evtimer_add(j->stream_timer, &tv);
}

/* Delta sink (inside the transfer's write callback: only queues Redis commands). */
static void
chain_on_delta_text(void *arg, const char *p, size_t n)
{
    chain_job *j = arg;
    chain_stream_started(j);
    pb_stream_text(j->stream, p, n);
    chain_stream_rearm(j);
}

static void
chain_on_delta_tool(void *arg, int index, const char *id, const char *name, const char *args,
                    size_t args_len)
{
    chain_job *j = arg;
    chain_stream_started(j);
    pb_stream_tool(j->stream, index, id, name, args, args_len);
    chain_stream_rearm(j);
}

/* A refusal is not put on the stream (the result carries it), but its pieces keep the
 * attempt alive like content: a refusal streamed slower than first_token_ms is still the
 * model's answer, not a reason to ask a model that may not refuse. */
static void
chain_on_delta_refusal(void *arg, const char *p, size_t n)
{
    (void)p;
    (void)n;
    chain_stream_rearm(arg);
}

/* One event of the streamed answer, from either framing, into the attempt's answer. Non-zero
 * stops the transfer (a broken stream). */
static int
chain_stream_event(chain_job *j, const char *event, const char *data, size_t len)
{
    const pb_config *cfg = j->ctx->cfg;
    const pb_model_conf *m = &cfg->models[j->req->models[j->pos]];
    pb_error err = {0};
    if (pb_provider_for(cfg->providers[m->provider].type)
            ->stream_event(j->delta, event, data, len, &err) != PB_OK) {
        pb_log(PB_LOG_DEBUG, "event=stream_error job=%s model=%s error=\"%s\"", j->req->id, m->name,
               err.msg);
        j->stream_fail = "bad_reply";
        return 1;
    }
    if (pb_delta_too_large(j->delta)) {
        j->stream_fail = "too_large"; /* the decoded answer passed limits.reply_max_bytes */
        return 1;
    }
    return 0;
}

static int
chain_on_sse_event(const pb_sse_event *ev, void *arg)
{
    return chain_stream_event(arg, ev->event, ev->data, ev->data_len);
}

/* An event-stream message: an event by its :event-type, an exception by its :exception-type
 * (the adapter fails the attempt on it). */
static int
chain_on_es_message(void *arg, const pb_eventstream_message *m)
{
    bool exception = m->message_type != NULL && strcmp(m->message_type, "event") != 0;
    const char *name = exception ? (m->exception_type ? m->exception_type : m->message_type)
                                 : (m->event_type ? m->event_type : "");
    return chain_stream_event(arg, name, (const char *)m->payload, m->payload_len) == 0 ? PB_OK
                                                                                        : PB_ERR;
}

/* A piece of a streamed 2xx body (curl's write callback): events parsed, pieces put on the
 * stream in one flush per read. Non-zero stops the transfer (a broken stream). */
static int
chain_on_stream_data(const char *p, size_t n, void *arg)
{
    chain_job *j = arg;
    pb_error err = {0};
    int rc = j->es != NULL ? pb_eventstream_feed(j->es, p, n, &err)
                           : pb_sse_feed(&j->sse, p, n, chain_on_sse_event, j);
    pb_stream_flush(j->stream);
    if (rc != PB_OK && j->stream_fail == NULL)
        j->stream_fail = "bad_reply"; /* the framing itself is broken (SSE, or a frame's CRC) */
    return rc == PB_OK ? 0 : 1;
}

/* No first token within first_token_ms, or no content for idle_ms: the transfer is dropped
 * (from the loop, outside curl) and the attempt fails like a timeout. */
static void
chain_on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    chain_job *j = arg;
    if (j->call == NULL)
        return;
    pb_http_cancel(j->call);
    j->call = NULL;
    j->stream_timeout = pb_delta_has_content(j->delta) ? "idle_timeout" : "first_token_timeout";
    pb_http_reply r = {.timed_out = true, .body = "", .elapsed_ms = 0};
    chain_on_main_done(j, &r);
}

/* A new streamed attempt: fresh reader and answer, the first-token bound armed. */
static void
chain_stream_begin_attempt(chain_job *j, const pb_model_conf *m)
{
    pb_delta_sink sink = {chain_on_delta_text, chain_on_delta_tool, chain_on_delta_refusal, j};
    pb_delta_free(j->delta);
    j->delta = pb_delta_new(&sink, j->ctx->cfg->limits.reply_max_bytes);
    pb_sse_free(&j->sse);
    pb_sse_init(&j->sse);
    pb_eventstream_decoder_free(j->es);
    j->es = pb_provider_for(j->ctx->cfg->providers[m->provider].type)->eventstream
                ? pb_eventstream_decoder_new(j->ctx->cfg->limits.reply_max_bytes,
                                             chain_on_es_message, j)
                : NULL;
    j->stream_fail = NULL;
    j->stream_timeout = NULL;
    j->started = false;
    if (j->stream_timer == NULL)
        j->stream_timer = evtimer_new(j->ctx->base, chain_on_stream_timer, j);
    struct timeval tv = {m->first_token_ms / 1000, (m->first_token_ms % 1000) * 1000};
    evtimer_add(j->stream_timer, &tv);
}

/* What a streamed attempt came to: a timeout, a broken stream, or the whole answer. */
static pb_class
chain_stream_classify(chain_job *j, pb_completion *comp, char *outcome, size_t size)
{
    if (j->stream_timeout) {
        snprintf(outcome, size, "%s", j->stream_timeout);
        return PB_CLASS_RETRY;
    }
    if (j->stream_fail == NULL && pb_delta_complete(j->delta, comp, NULL) == PB_OK) {
        snprintf(outcome, size, "ok");
        return PB_CLASS_OK;
    }
    snprintf(outcome, size, "%s", j->stream_fail ? j->stream_fail : "bad_reply");
    return PB_CLASS_RETRY;
}

/* A continuation's answer starts with the cut text it continued (one with no text of its
 * own, a refusal or a content-filter stop, still ends the text the reader got). */
static void
chain_stream_join_partial(chain_job *j)
{
    if (j->partial == NULL || j->content == NULL)
        return;
    j->continued = true;
    char *joined = pb_xasprintf("%s%s", j->partial, j->content);
    free(j->content);
    j->content = joined;
}

/* Ends the job with the answer cut where its stream broke: the text the reader has, marked,
 * with the source and model (set by chain_stream_cut) of the attempt that sent it last, not
 * of a continuation that failed before its first token. */
static void
chain_stream_end_cut(chain_job *j)
{
    j->status = PB_STATUS_OK;
    j->source = j->cut_pos == 0 ? PB_SOURCE_PRIMARY : PB_SOURCE_FALLBACK;
    j->cut = true;
    free(j->content);
    j->content = j->partial ? j->partial : pb_xstrdup("");
    j->partial = NULL;
    j->finish_reason = "cut";
    free(j->tool_calls);
    j->tool_calls = NULL;
    chain_finish(j);
}

/* The streamed attempt on model m failed after the reader saw its first token. With the
 * route's stream_continue, and not inside a tool call, the next model continues the text
 * (prompted with it as the assistant's start); else the job ends cut. */
static void
chain_stream_cut(chain_job *j, int m)
{
    size_t len;
    const char *text = pb_delta_text_so_far(j->delta, &len);
    char *partial = pb_xasprintf("%s%.*s", j->partial ? j->partial : "", (int)len, text);
    free(j->partial);
    j->partial = partial;
    snprintf(j->cut_reason, sizeof(j->cut_reason), "%s",
             j->n_attempts ? j->attempts[j->n_attempts - 1].outcome : "cut");
    pb_jobtrace_event(j->trace, "planb.stream_cut", "planb.cut_reason", 0, j->cut_reason);
    j->model = m;
    j->cut_pos = j->pos;
    const pb_route_conf *route = &j->ctx->cfg->routes[j->req->route];
    if (!route->stream_continue || pb_delta_in_tool(j->delta) || j->pos + 1 >= j->req->n_models ||
        j->req->n_messages >= j->ctx->cfg->limits.max_messages) {
        chain_stream_end_cut(j);
        return;
    }
    pb_request *req = j->req;
    req->messages = pb_xrealloc(req->messages, (req->n_messages + 1) * sizeof(pb_message));
    req->messages[req->n_messages++] =
        (pb_message){.role = PB_ROLE_ASSISTANT, .content = pb_xstrdup(j->partial)};
    j->pos++;
    chain_next_model(j);
}

/* An answer that did not come as a stream (cache, stale, semantic, degraded) still reaches a
 * streamed job's reader the one way: `start`, the whole text and its tool calls (our own
 * stored JSON), then finish.lua's `end`. Never once the reader has seen content: a cut
 * answer whose continuation failed before its first token has its text there already. */
static void
chain_stream_deliver_whole(chain_job *j)
{
    if (j->stream == NULL || j->started || pb_stream_has_content(j->stream) ||
        j->status == PB_STATUS_INVALID || j->status == PB_STATUS_CANCELLED)
        return;
    const pb_config *cfg = j->ctx->cfg;
    const char *text = j->status == PB_STATUS_DEGRADED ? cfg->routes[j->req->route].degraded_reply
                                                       : (j->content ? j->content : "");
    j->started = true;
    pb_stream_start(j->stream, j->model >= 0 ? cfg->models[j->model].name : NULL,
                    pb_job_source_name(j->source), false);
    pb_stream_text(j->stream, text, strlen(text));
    json_object *calls = j->tool_calls ? json_tokener_parse(j->tool_calls) : NULL;
    for (size_t i = 0; calls && i < json_object_array_length(calls); i++) {
        json_object *c = json_object_array_get_idx(calls, i), *id, *fn = NULL, *name, *args;
        json_object_object_get_ex(c, "function", &fn);
        if (json_object_object_get_ex(c, "id", &id) &&
            json_object_object_get_ex(fn, "name", &name) &&
            json_object_object_get_ex(fn, "arguments", &args))
            pb_stream_tool(j->stream, (int)i, json_object_get_string(id),
                           json_object_get_string(name), json_object_get_string(args),
                           (size_t)json_object_get_string_len(args));
    }
    json_object_put(calls);
    pb_stream_flush(j->stream);
}

/* What one finished call (main or hedge) on model m said, recorded and reported. */
typedef struct chain_reply {
    pb_class cls;        /* what it means for the job */
    int64_t retry_after; /* from the reply's Retry-After, -1 none */
    long status;         /* HTTP status, 0 none */
} chain_reply;

/* Records the attempt, reports it to the breaker and, on an answer, takes it as the job's
 * content. */
static chain_reply
chain_take_reply(chain_job *j, int m, const pb_http_reply *r, bool probe, int64_t started_us)
{
    pb_chain_ctx *ctx = j->ctx;
    const pb_model_conf *model = &ctx->cfg->models[m];
    const pb_provider_ops *ops = pb_provider_for(ctx->cfg->providers[model->provider].type);
    pb_completion comp = {0};
    char outcome[32];
    chain_reply out = {.status = r->status};
    if (j->delta != NULL &&
        (j->stream_timeout || (r->streamed && (r->curl_code == 0 || r->stopped))))
        out.cls = chain_stream_classify(j, &comp, outcome, sizeof(outcome));
    else
        out.cls = pb_chain_classify_reply(ops, r, j->req, &comp, outcome, sizeof(outcome));
    if (out.cls == PB_CLASS_OK) {
        chain_latency_add(ctx, m, r->elapsed_ms);
        free(j->content);
        free(j->tool_calls);
        free(j->refusal);
        free(j->logprobs);
        free(j->response_id);
        j->response_id = comp.response_id;
        comp.response_id = NULL;
        j->content = comp.content;
        j->tool_calls = comp.tool_calls;
        j->refusal = comp.refusal;
        j->logprobs = comp.logprobs;
        comp.content = comp.tool_calls = comp.refusal = comp.logprobs = NULL;
        j->finish_reason = comp.finish_reason;
        j->prompt_tokens = comp.prompt_tokens;
        j->completion_tokens = comp.completion_tokens;
        j->cached_tokens = comp.cached_tokens > 0 ? comp.cached_tokens : 0;
        j->reasoning_tokens = comp.reasoning_tokens > 0 ? comp.reasoning_tokens : 0;
    } else if (out.cls == PB_CLASS_INVALID) {
        pb_provider_error_message(r->body, r->body_len, j->reject_msg, sizeof(j->reject_msg));
    }
    pb_provider_completion_free(&comp);
    pb_attempt *at = chain_add_attempt(j, m, outcome, r->elapsed_ms);
    at->reached = true;
    at->status = r->status;
    at->start_wall_us = started_us;
    pb_log(PB_LOG_DEBUG, "event=attempt job=%s model=%s try=%d outcome=%s ms=%lld", j->req->id,
           model->name, j->try_no, outcome, (long long)r->elapsed_ms);
    /* A certificate problem is a setup error to fix, not load: say why, every time (curl's
     * words name the certificate check or OpenSSL's alert, never a header or a key). */
    if (strcmp(outcome, "tls_error") == 0)
        pb_log(PB_LOG_WARN, "event=upstream_tls_failed job=%s model=%s reason=\"%s\"", j->req->id,
               model->name, r->error ? r->error : "");
    out.retry_after =
        r->retry_after ? pb_retry_after_ms(r->retry_after, pb_wall_ms()) : (int64_t)-1;
    at->retry_after_ms = out.retry_after;
    if (ctx->breaker) {
        /* A Retry-After on 429/503 holds the model for every worker, not just this job. */
        bool held = r->status == 429 || r->status == 503;
        long tokens = out.cls == PB_CLASS_OK && j->prompt_tokens >= 0 && j->completion_tokens >= 0
                          ? j->prompt_tokens + j->completion_tokens
                          : 0;
        pb_breaker_outcome bo = {.verdict = pb_breaker_verdict_of(out.cls, r->status),
                                 .status = r->status,
                                 .elapsed_ms = r->elapsed_ms,
                                 .hold_ms = held ? out.retry_after : -1,
                                 .tokens = tokens,
                                 .probe = probe};
        pb_breaker_report(ctx->breaker, m, &bo);
    }
    return out;
}

/* Cancels the transfer still running beside an answer and records it (0 ms of use to the
 * job, the time it ran so far as its ms). */
static void
chain_cancel_loser(chain_job *j, pb_http_call **call, int m, int64_t started_mono_ms)
{
    pb_http_cancel(*call);
    *call = NULL;
    chain_add_attempt(j, m, "hedge_cancelled", pb_mono_ms() - started_mono_ms);
    j->cancelled_model = m;
}

/* The main attempt on models[pos] finished. With a hedge in flight: an answer wins at once
 * (the hedge is cancelled); a failure hands the job to the hedge, which becomes the main
 * attempt (first try of its model) instead of retrying or falling back now. */
static void
chain_on_main_done(chain_job *j, const pb_http_reply *r)
{
    int m = j->req->models[j->pos];
    bool probe = j->probing;
    j->probing = false;
    if (j->hedge_timer)
        evtimer_del(j->hedge_timer);
    if (j->stream_timer)
        evtimer_del(j->stream_timer);
    chain_reply cr = chain_take_reply(j, m, r, probe,
                                      j->hedge_is_main ? j->hedge_started_us : j->call_started_us);
    j->stream_timeout = NULL;
    if (j->delta != NULL && pb_delta_has_content(j->delta) && cr.cls != PB_CLASS_OK) {
        chain_stream_cut(j, m);
        return;
    }
    if (j->delta != NULL && cr.cls == PB_CLASS_OK)
        chain_stream_join_partial(j);
    if (j->hedge_call != NULL) {
        if (cr.cls == PB_CLASS_OK) {
            chain_cancel_loser(j, &j->hedge_call, j->req->models[j->hedge_pos],
                               j->hedge_started_mono_ms);
        } else {
            j->call = j->hedge_call;
            j->hedge_call = NULL;
            j->hedge_is_main = true;
            j->pos = j->hedge_pos;
            j->try_no = 1;
            return;
        }
    }
    chain_decide(j, m, cr.cls, cr.retry_after, cr.status);
}

static void
chain_on_attempt_done(const pb_http_reply *r, void *arg)
{
    chain_job *j = arg;
    j->call = NULL;
    chain_on_main_done(j, r);
}

/* The hedge's call finished: as the main attempt once it took over; else an answer wins
 * (the main call is cancelled) and a failure is only recorded (the main call goes on). */
static void
chain_on_hedge_done(const pb_http_reply *r, void *arg)
{
    chain_job *j = arg;
    if (j->hedge_is_main) {
        j->call = NULL;
        chain_on_main_done(j, r);
        return;
    }
    j->hedge_call = NULL;
    int hm = j->req->models[j->hedge_pos];
    chain_reply cr = chain_take_reply(j, hm, r, false, j->hedge_started_us);
    if (cr.cls != PB_CLASS_OK)
        return;
    j->hedge_won = true;
    chain_cancel_loser(j, &j->call, j->req->models[j->pos], j->hedge_started_mono_ms);
    j->probing = false;
    j->pos = j->hedge_pos;
    j->try_no = 1;
    chain_decide(j, hm, PB_CLASS_OK, -1, cr.status);
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
        /* A cut answer or a tool call is not an answer to a question asked in other words. */
        if (j->semq && strcmp(j->finish_reason, "length") != 0 &&
            (j->tool_calls == NULL || cfg->routes[j->req->route].semantic_tools)) {
            pb_semcache_shadow_record(j->semq, j->content);
            pb_semcache_insert(j->semq, j->content);
        }
        chain_finish(j);
        return;
    case PB_NEXT_RETRY:
        j->state = JOB_BACKOFF;
        pb_jobtrace_event(j->trace, "planb.backoff", "planb.backoff_ms", plan.delay_ms, NULL);
        chain_arm_timer(j, plan.delay_ms);
        return;
    case PB_NEXT_FALLBACK:
        j->pos++;
        chain_next_model(j);
        return;
    case PB_NEXT_INVALID:
        /* A 400 is this model's verdict (a param or value it lacks, its context, its policy):
         * the next model may take the job; chain_next_model rejects it when none does. */
        pb_log(PB_LOG_INFO, "event=model_refused job=%s model=%s status=%ld", j->req->id,
               cfg->models[m].name, status);
        j->n_refused++;
        j->n_rejected++;
        j->pos++;
        chain_next_model(j);
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
    if (j->cancel_asked) {
        chain_finish(j);
        return;
    }
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
    case PB_GATE_REFUSED:
        chain_refuse(j, m, "key_refused", PB_CLASS_FALLBACK, -1);
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

/* Starts a call of models[pos] with done as its callback; NULL after recording a build error
 * (the caller moves on). */
static pb_http_call *
chain_start_call(chain_job *j, size_t pos, pb_http_done_fn done)
{
    pb_chain_ctx *ctx = j->ctx;
    const pb_config *cfg = ctx->cfg;
    int m = j->req->models[pos];
    const pb_model_conf *model = &cfg->models[m];
    const pb_provider_conf *prov = &cfg->providers[model->provider];
    pb_http_request *hr = pb_xcalloc(1, sizeof(*hr));
    pb_error err = {0};
    if (pb_provider_for(prov->type)->build_request(prov, model, j->req, hr, &err) != PB_OK) {
        pb_http_request_free(hr);
        bool unsupported = err.code == PB_PROVIDER_UNSUPPORTED;
        chain_add_attempt(j, m, unsupported ? "unsupported" : "build_error", 0);
        j->n_refused += unsupported;
        pb_log(PB_LOG_WARN, "event=build_error job=%s model=%s error=\"%s\"", j->req->id,
               model->name, err.msg);
        return NULL;
    }
    int timeout, connect;
    pb_chain_attempt_timeouts(model, chain_remaining_ms(j), &connect, &timeout);
    if (j->stream != NULL) {
        /* A stream may run past timeout_ms: first_token_ms and idle_ms bound it instead. */
        chain_stream_begin_attempt(j, model);
        int64_t left = chain_remaining_ms(j);
        return pb_http_start_stream(ctx->http, hr, connect, (int)left, chain_on_stream_data, done,
                                    j);
    }
    return pb_http_start(ctx->http, hr, connect, timeout, done, j);
}

static void chain_on_hedge_timer(evutil_socket_t fd, short what, void *arg);

/* Arms the job's one hedge when its route hedges and a later model could take it. */
static void
chain_arm_hedge(chain_job *j)
{
    const pb_route_conf *route = &j->ctx->cfg->routes[j->req->route];
    if (route->hedge_after_ms <= 0 || j->hedged || j->pos + 1 >= j->req->n_models ||
        j->stream != NULL)
        return; /* a streamed job is not hedged: its reader would see two answers begin */
    int64_t delay = route->hedge_after_ms;
    if (route->hedge_adaptive) {
        if (j->ctx->latency == NULL)
            j->ctx->latency = pb_xcalloc(j->ctx->cfg->n_models, sizeof(*j->ctx->latency));
        int64_t p95 = chain_latency_p95(j->ctx, j->req->models[j->pos]);
        if (p95 < 0)
            return; /* still learning the model: a hedge now would cut the very answers that
                       teach its p95 */
        if (p95 > delay)
            delay = p95;
    }
    if (delay >= chain_remaining_ms(j))
        return;
    if (j->hedge_timer == NULL)
        j->hedge_timer = evtimer_new(j->ctx->base, chain_on_hedge_timer, j);
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
    evtimer_add(j->hedge_timer, &tv);
}

/* The main attempt is slow: start the next model that may answer and whose breaker passes
 * (no probe, no rate-limit round trip), beside it. */
static void
chain_on_hedge_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    chain_job *j = arg;
    if (j->call == NULL || j->hedged || chain_remaining_ms(j) < CHAIN_MIN_ATTEMPT_MS)
        return;
    for (size_t p = j->pos + 1; p < j->req->n_models; p++) {
        int m = j->req->models[p];
        int64_t wait;
        if (!pb_chain_model_allowed(j->ctx->cfg, j->req, m) ||
            chain_unsupported(j->ctx->cfg, j->req, m) != NULL ||
            (j->ctx->breaker && pb_breaker_check(j->ctx->breaker, m, &wait) != PB_GATE_PASS))
            continue;
        j->hedged = true; /* even when the call cannot be built: one try per job */
        j->hedge_pos = p;
        j->hedge_started_mono_ms = pb_mono_ms();
        j->hedge_started_us = pb_wall_us();
        j->hedge_call = chain_start_call(j, p, chain_on_hedge_done);
        if (j->hedge_call != NULL)
            j->hedge_model = m;
        pb_log(PB_LOG_DEBUG, "event=hedge job=%s model=%s", j->req->id,
               j->ctx->cfg->models[m].name);
        return;
    }
}

static void
chain_call(chain_job *j)
{
    if (j->cancel_asked) {
        chain_finish(j);
        return;
    }
    if (chain_remaining_ms(j) < CHAIN_MIN_ATTEMPT_MS) {
        chain_degrade(j);
        return;
    }
    j->try_no++;
    j->call_started_us = pb_wall_us();
    j->call = chain_start_call(j, j->pos, chain_on_attempt_done);
    if (j->call == NULL) {
        j->pos++;
        chain_next_model(j);
        return;
    }
    chain_arm_hedge(j);
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
    /* What the answering model was not sent (only for an answer fresh from it). */
    char dropped[PB_PROVIDER_DROPPED_MAX][PB_PROVIDER_PARAM_LEN];
    const char *dropped_p[PB_PROVIDER_DROPPED_MAX];
    size_t n_dropped = 0;
    bool fresh = j->status == PB_STATUS_OK &&
                 (j->source == PB_SOURCE_PRIMARY || j->source == PB_SOURCE_FALLBACK);
    const pb_model_conf *mc = j->model >= 0 ? &cfg->models[j->model] : NULL;
    if (fresh && mc != NULL)
        n_dropped = pb_provider_for(cfg->providers[mc->provider].type)
                        ->dropped(req, dropped, PB_PROVIDER_DROPPED_MAX);
    for (size_t i = 0; i < n_dropped; i++)
        dropped_p[i] = dropped[i];
    bool has_cost = fresh && mc != NULL && mc->price_in_per_mtok >= 0 && j->prompt_tokens >= 0 &&
                    j->completion_tokens >= 0;
    j->cost_usd = has_cost ? ((double)j->prompt_tokens * mc->price_in_per_mtok +
                              (double)j->completion_tokens * mc->price_out_per_mtok) /
                                 1e6
                           : 0;
    pb_result res = {
        .id = req ? req->id : j->bad_id,
        .status = j->status,
        .source = j->source,
        .content =
            j->status == PB_STATUS_INVALID || j->status == PB_STATUS_CANCELLED ? NULL : content,
        .error = j->error,
        .model = j->model,
        .attempts = j->attempts,
        .n_attempts = j->n_attempts,
        .prompt_tokens = j->prompt_tokens,
        .completion_tokens = j->completion_tokens,
        .queued_ms = pb_job_queued_ms(req, j->claimed_wall_ms),
        .latency_ms = j->latency_ms,
        .worker = ctx->worker_id,
        .meta = req ? req->meta : NULL,
        .cache_age_s = j->cache_age_s,
        .similarity = j->similarity,
        .matched_question = j->matched_question,
        .finish_reason = j->status == PB_STATUS_OK ? j->finish_reason : NULL,
        .tool_calls = j->status == PB_STATUS_OK ? j->tool_calls : NULL,
        .refusal = j->status == PB_STATUS_OK ? j->refusal : NULL,
        .logprobs = j->status == PB_STATUS_OK ? j->logprobs : NULL,
        .cached_tokens = j->cached_tokens,
        .reasoning_tokens = j->reasoning_tokens,
        .has_cost = has_cost,
        .cost_usd = j->cost_usd,
        .dropped = dropped_p,
        .n_dropped = n_dropped,
        .cut = j->cut,
        .cut_reason = j->cut ? j->cut_reason : NULL,
        .continued = j->continued,
    };
    char trace_id[33];
    if (pb_jobtrace_id(j->trace, trace_id))
        res.trace_id = trace_id;
    j->result_json = pb_job_result_to_json(&res, cfg, &j->result_len);
    /* One line per job; never message bodies or keys (error is our own sentence). */
    pb_log(PB_LOG_INFO,
           "event=job_done job=%s route=%s status=%s source=%s model=%s attempts=%zu ms=%lld%s%s",
           res.id ? res.id : "-", req ? cfg->routes[req->route].name : "-",
           pb_job_status_name(j->status), pb_job_source_name(j->source),
           j->model >= 0 ? cfg->models[j->model].name : "-", j->n_attempts,
           (long long)res.latency_ms, j->error ? " error=" : "", j->error ? j->error : "");
}

/* Hands the job's trace its facts (pb_jobtrace_finish keeps or drops it). */
static void
chain_trace_finish(chain_job *j)
{
    if (j->trace == NULL)
        return;
    bool answered = j->status == PB_STATUS_OK;
    pb_jobtrace_facts f = {
        .cfg = j->ctx->cfg,
        .req = j->req,
        .claimed_wall_ms = j->claimed_wall_ms,
        .attempts = j->attempts,
        .n_attempts = j->n_attempts,
        .model = j->model,
        .status = pb_job_status_name(j->status),
        .source = pb_job_source_name(j->source),
        .finish_reason = answered ? j->finish_reason : NULL,
        .prompt_tokens = answered ? j->prompt_tokens : -1,
        .completion_tokens = answered ? j->completion_tokens : -1,
        .has_cost = j->cost_usd > 0,
        .cost_usd = j->cost_usd,
        .cache = j->cache_result ? j->cache_result : "skip",
        .hedged = j->hedge_model >= 0,
        .content = answered ? j->content : NULL,
        .response_id = answered && j->source != PB_SOURCE_CACHE ? j->response_id : NULL,
    };
    pb_jobtrace_finish(j->trace, &f);
    j->trace = NULL;
}

/* The exporter's counts since the last finish, and a malformed traceparent of this job,
 * ride on its finish counters (telemetry:exported, telemetry:dropped, telemetry:bad_context). */
static void
chain_count_telemetry(chain_job *j, pb_stats_tally *c)
{
    int64_t exported = 0, dropped = 0;
    if (j->ctx->telemetry != NULL)
        pb_telemetry_take_counts(j->ctx->telemetry, &exported, &dropped);
    const char *names[3] = {"telemetry:exported", "telemetry:dropped", "telemetry:bad_context"};
    int64_t counts[3] = {exported, dropped, j->req != NULL && j->req->bad_traceparent};
    for (int k = 0; k < 3; k++) {
        if (counts[k] == 0)
            continue;
        if (c->n >= PB_QUEUE_MAX_COUNTERS) {
            if (k < 2 && j->ctx->telemetry != NULL) /* no room: carried to the next finish */
                pb_telemetry_return_counts(j->ctx->telemetry, k == 0 ? counts[k] : 0,
                                           k == 1 ? counts[k] : 0);
            continue;
        }
        c->fields[c->n] = names[k];
        c->counts[c->n++] = counts[k];
    }
}

/* The job's outcome becomes `cancelled`, whatever it was heading for (cancel.lua asked). */
static void
chain_mark_cancelled(chain_job *j)
{
    j->status = PB_STATUS_CANCELLED;
    j->source = PB_SOURCE_NONE;
    j->model = -1;
    j->dead = false;
    free(j->error);
    j->error = pb_xstrdup("CANCELLED job was cancelled while it ran");
}

static void
chain_finish(chain_job *j)
{
    pb_chain_ctx *ctx = j->ctx;
    const char *id = j->req ? j->req->id : j->bad_id;
    if (j->state != JOB_FINISHING) {
        j->state = JOB_FINISHING;
        if (j->cancel_asked)
            chain_mark_cancelled(j);
        chain_stream_deliver_whole(j);
        j->latency_ms = pb_mono_ms() - j->claimed_mono_ms;
        chain_cache_end(j);
        if (id)
            chain_build_result(j);
        chain_trace_finish(j);
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
        .queued_ms = pb_job_queued_ms(j->req, j->claimed_wall_ms),
        .attempts = j->attempts,
        .n_attempts = j->n_attempts,
        .cache_missed = j->cache_missed,
        .coalesced = j->coalesced,
        .hedged = j->hedge_model >= 0,
        .hedge_model = j->hedge_model,
        .hedge_won = j->hedge_won,
        .cancelled = j->cancelled_model >= 0,
        .cancelled_model = j->cancelled_model,
        .cost_usd = j->cost_usd,
        .tenant = j->req ? j->req->tenant : NULL,
    };
    pb_stats_tally c;
    pb_stats_count_job(ctx->cfg, &facts, &c);
    chain_count_telemetry(j, &c);
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
        .stream_key = j->stream ? pb_stream_key(j->stream) : NULL,
        .stream_run = j->stream ? pb_stream_run(j->stream) : NULL,
        .counters = c.fields,
        .counts = c.counts,
        .n_counters = c.n,
    };
    if (j->stream)
        pb_stream_flush(j->stream); /* entries lost to an outage go before `end` */
    pb_queue_finish(ctx->cmd, ctx->cfg, ctx->keys, &f, chain_on_finished, j);
    free(dead);
}

static void
chain_on_semantic_first(const pb_semcache_hit *hit, void *arg)
{
    chain_job *j = arg;
    pb_jobtrace_lookup(j->trace, "semantic", j->lookup_start_us, hit ? "hit" : "miss");
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
    j->lookup_start_us = pb_wall_us();
    pb_semcache_lookup(j->semq,
                       left < cfg->semantic.timeout_ms ? (int)left : cfg->semantic.timeout_ms,
                       cfg->cache_ttl_s, chain_on_semantic_first, j);
}

/* The cache verdict as a trace attribute. */
static const char *
chain_cache_result(const pb_cache_outcome *o)
{
    if (o->verdict == PB_CACHE_HIT)
        return o->coalesced ? "coalesced" : "hit";
    return o->verdict == PB_CACHE_FAILED ? "failed" : "miss";
}

static void
chain_on_cache(pb_cache_outcome *o, void *arg)
{
    chain_job *j = arg;
    j->cache_result = chain_cache_result(o);
    pb_jobtrace_lookup(j->trace, "exact", j->lookup_start_us, j->cache_result);
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
    unsigned types = 0;
    for (size_t i = 0; i < j->req->n_models && n < PB_CONFIG_MAX_CHAIN; i++) {
        const pb_model_conf *m = &cfg->models[j->req->models[i]];
        if (!pb_chain_model_allowed(cfg, j->req, j->req->models[i]))
            continue;
        names[n++] = m->name;
        types |= 1u << cfg->providers[m->provider].type;
    }
    int max_tier = j->req->critical ? route->critical_min_tier : 0;
    j->lookup_start_us = pb_wall_us();
    j->cache_op = pb_cache_begin(j->ctx->cache, j->req, names, n, types, max_tier,
                                 j->deadline_mono_ms, chain_on_cache, j);
}

/* Stores an answer fresh from upstream (not skip), or shares a spent chain with the jobs
 * waiting on this one; either way gives the herd lock up. */
static void
chain_cache_end(chain_job *j)
{
    if (j->cache_op == NULL)
        return;
    pb_cache_entry answer = {0};
    /* An answer cut at max_tokens is returned but never cached: the next ask may fit. */
    bool fresh = j->status == PB_STATUS_OK &&
                 (j->source == PB_SOURCE_PRIMARY || j->source == PB_SOURCE_FALLBACK) &&
                 strcmp(j->finish_reason, "length") != 0 && !j->cut;
    if (fresh) {
        const pb_model_conf *m = &j->ctx->cfg->models[j->model];
        answer = (pb_cache_entry){.content = j->content,
                                  .model = m->name,
                                  .tier = m->tier,
                                  .prompt_tokens = j->prompt_tokens,
                                  .completion_tokens = j->completion_tokens,
                                  .tool_calls = j->tool_calls,
                                  .refusal = j->refusal,
                                  .finish_reason = j->finish_reason};
    }
    bool spent = j->status == PB_STATUS_DEGRADED || j->source == PB_SOURCE_STALE_CACHE;
    pb_cache_end(j->cache_op, fresh ? &answer : NULL, spent);
    j->cache_op = NULL;
}

/* A job that no model of its chain can serve is invalid before the cache or any call: the
 * error names what the first model lacks (all of them lack something). */
static int
chain_check_servable(chain_job *j)
{
    const pb_config *cfg = j->ctx->cfg;
    const char *first = NULL;
    for (size_t i = 0; i < j->req->n_models; i++) {
        const char *why = chain_unsupported(cfg, j->req, j->req->models[i]);
        if (why == NULL)
            return PB_OK;
        if (first == NULL)
            first = why;
    }
    j->status = PB_STATUS_INVALID;
    j->source = PB_SOURCE_NONE;
    j->dead = true;
    j->error = pb_xasprintf("UNSUPPORTED no model of the chain can serve this job (%s: %s)",
                            cfg->models[j->req->models[0]].name, first);
    return PB_ERR;
}

static void
chain_start(pb_chain_ctx *ctx, char *raw, size_t len, bool cancelled)
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
    j->hedge_model = j->cancelled_model = -1;
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
        if (j->bad_id != NULL && pb_job_asks_stream(raw, len, ctx->cfg))
            j->stream = pb_stream_new(ctx->cmd, ctx->cfg, j->bad_id, ctx->worker_id); /* `end` */
        chain_finish(j);
        return;
    }
    j->deadline_mono_ms = j->claimed_mono_ms + j->req->deadline_ms;
    j->trace = pb_jobtrace_new(ctx->telemetry, j->req);
    j->cache_result = ctx->cache != NULL && j->req->cache != PB_CACHE_SKIP ? "miss" : "skip";
    if (j->req->stream)
        j->stream = pb_stream_new(ctx->cmd, ctx->cfg, j->req->id, ctx->worker_id);
    if (chain_check_servable(j) != PB_OK) {
        chain_finish(j);
        return;
    }
    if (cancelled || chain_cancels_take(ctx, j->req->id)) {
        j->cancel_asked = true;
        chain_finish(j);
        return;
    }
    pb_testhook_job_started(j->req);
    if (ctx->cache != NULL && j->req->cache != PB_CACHE_SKIP) {
        chain_cache_begin(j);
        return;
    }
    chain_semantic_first(j);
}

void
pb_chain_start(pb_chain_ctx *ctx, char *raw, size_t len)
{
    chain_start(ctx, raw, len, false);
}

void
pb_chain_start_cancelled(pb_chain_ctx *ctx, char *raw, size_t len)
{
    chain_start(ctx, raw, len, true);
}

void
pb_chain_abandon_all(pb_chain_ctx *ctx)
{
    ctx->on_released = NULL;
    while (ctx->jobs)
        chain_job_free(ctx->jobs);
    free(ctx->latency);
    ctx->latency = NULL;
    for (size_t i = 0; ctx->cancels != NULL && i < CANCELS_KEPT; i++)
        free(ctx->cancels->ids[i]);
    free(ctx->cancels);
    ctx->cancels = NULL;
}

/* Stops a call of the job on models[pos] and records it (outcome cancelled, the time it ran;
 * not "reached": an aborted call says nothing of the model's latency, as hedge_cancelled). */
static void
chain_cancel_call(chain_job *j, pb_http_call **call, size_t pos, int64_t started_us)
{
    pb_http_cancel(*call);
    *call = NULL;
    pb_attempt *a =
        chain_add_attempt(j, j->req->models[pos], "cancelled", (pb_wall_us() - started_us) / 1000);
    a->start_wall_us = started_us;
}

static void
chain_cancels_add(pb_chain_ctx *ctx, const char *id)
{
    if (ctx->cancels == NULL)
        ctx->cancels = pb_xcalloc(1, sizeof(chain_cancels));
    chain_cancels *c = ctx->cancels;
    free(c->ids[c->next]);
    c->ids[c->next] = pb_xstrdup(id);
    c->at_ms[c->next] = pb_mono_ms();
    c->next = (c->next + 1) % CANCELS_KEPT;
}

/* Whether id was cancelled lately before its job started here (and forgets it). */
static bool
chain_cancels_take(pb_chain_ctx *ctx, const char *id)
{
    chain_cancels *c = ctx->cancels;
    for (size_t i = 0; c != NULL && i < CANCELS_KEPT; i++) {
        if (c->ids[i] != NULL && strcmp(c->ids[i], id) == 0 &&
            pb_mono_ms() - c->at_ms[i] <= CANCELS_KEEP_MS) {
            free(c->ids[i]);
            c->ids[i] = NULL;
            return true;
        }
    }
    return false;
}

size_t
pb_chain_cancel(pb_chain_ctx *ctx, const char *id)
{
    size_t n = 0;
    for (chain_job *j = ctx->jobs, *next; j; j = next) {
        next = j->next; /* chain_finish may free a job (a reply comes later, never here) */
        if (j->req == NULL || strcmp(j->req->id, id) != 0 || j->state == JOB_FINISHING ||
            j->cancel_asked)
            continue;
        n++;
        j->cancel_asked = true;
        bool calling = j->call != NULL || j->hedge_call != NULL;
        if (!calling && j->state != JOB_BACKOFF)
            continue; /* a Redis answer (cache, gate) is due: its next step finishes it */
        pb_log(PB_LOG_INFO, "event=job_cancel job=%s calls=%d", id,
               (j->call != NULL) + (j->hedge_call != NULL));
        if (j->call != NULL)
            chain_cancel_call(j, &j->call, j->pos,
                              j->hedge_is_main ? j->hedge_started_us : j->call_started_us);
        if (j->hedge_call != NULL)
            chain_cancel_call(j, &j->hedge_call, j->hedge_pos, j->hedge_started_us);
        j->probing = false;
        if (j->timer)
            evtimer_del(j->timer);
        if (j->hedge_timer)
            evtimer_del(j->hedge_timer);
        if (j->stream_timer)
            evtimer_del(j->stream_timer);
        chain_finish(j);
    }
    if (n == 0)
        chain_cancels_add(ctx, id);
    return n;
}

size_t
pb_chain_count_raw(const pb_chain_ctx *ctx, const char *raw, size_t len)
{
    size_t n = 0;
    for (const chain_job *j = ctx->jobs; j; j = j->next)
        n += j->raw_len == len && memcmp(j->raw, raw, len) == 0;
    return n;
}
