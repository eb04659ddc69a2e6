/* worker.c -- wires one worker process: loop, Redis, curl multi, claiming, drain.
 *
 * Claiming: while there is room (active < concurrency) the worker asks
 * claim.lua for a batch of up to claim_batch jobs on the command connection;
 * a full batch means the queue is deep, so it asks again at once. An empty
 * batch parks it on BLMOVE (1 s timeout, queues in turn) on a dedicated
 * connection, because a blocking command would stall every other reply on a
 * shared one. A job BLMOVE brings is not started until the next claim.lua
 * call (which follows at once anyway) has vetted it: a re-delivery whose
 * result already exists is acked there instead of calling a model again. A watchdog timer bounds
 * the BLMOVE (hiredis 0.14 has no command timeout): a claim connection that stops answering is
 * dropped and rebuilt.
 *
 * Paused queues (planb:paused, the admin API): claim.lua skips them and names them in its
 * reply, so BLMOVE parks only on the others and a job it took from one paused meanwhile goes
 * back unrun. With every queue paused the worker neither blocks nor spins: it asks claim.lua
 * again once a second (WORKER_PAUSED_POLL_MS), which is how it hears of the resume.
 *
 * Reconciling: a claim whose reply was lost (the connection dropped after Redis ran it)
 * leaves jobs in our in-flight list that nothing runs. Each time a connection comes back
 * the worker reads the list (LRANGE) and starts every entry that no live job holds, once:
 * the started job is live, so the next reconcile does not count it again. No BLMOVE is
 * started while a reconcile is out (it could move a job in between), and one that is
 * out when a connection comes back delays the reconcile until its reply is in.
 *
 * Drain (SIGTERM/SIGINT): stop claiming, wait for in-flight jobs up to
 * drain_timeout_ms, hand the rest back to the queue and leave planb:workers
 * (handback.lua), exit 0. */
#include "planb/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "planb/cache.h"
#include "planb/chain.h"
#include "planb/core.h"
#include "planb/http.h"
#include "planb/keys.h"
#include "planb/semcache.h"
#include "planb/telemetry.h"
#include "planb/log.h"
#include "planb/queue.h"
#include "planb/redis.h"

#define WORKER_BLOCK_S          1.0 /* BLMOVE timeout: how often an idle worker looks up */
#define WORKER_WATCHDOG_SLACK_S 5   /* BLMOVE reply later than timeout + this: connection dead */
#define WORKER_HEARTBEAT_MS     1000
#define WORKER_CLAIM_RETRY_MS   200  /* claim again after a failed claim (Redis away) */
#define WORKER_PAUSED_POLL_MS   1000 /* every queue paused: how often to ask again */

typedef struct worker {
    struct event_base *base;
    const pb_config *cfg;
    char id[PB_KEY_WORKER_ID_MAX]; /* "host:pid" */
    char role[16];                 /* "w<slot>" for logs */
    pb_queue_keys keys;
    pb_redis *cmd;   /* scripts and commands */
    pb_redis *claim; /* BLMOVE only */
    pb_redis *sub;   /* subscribed to <p>:cancel: cancel.lua names the jobs to stop */
    pb_cache *cache; /* answer cache (its own connection when cache.redis is set) */
    pb_http *http;
    pb_chain_ctx chain;
    bool claiming; /* a claim (batch or BLMOVE) is outstanding */
    bool blocked;  /* the outstanding claim is a BLMOVE */
    bool draining;
    size_t next_queue;  /* round robin over queues for BLMOVE */
    size_t block_queue; /* the queue the outstanding BLMOVE waits on */
    bool *paused;       /* per queue: paused, as of the last claim.lua reply */
    bool reconciling;   /* an LRANGE of the in-flight list is out */
    bool reconcile_due; /* a connection came back while a BLMOVE or a reconcile was out */
    char *vet;          /* a job BLMOVE claimed, waiting for claim.lua to vet it */
    size_t vet_len;
    size_t vet_queue;          /* ... and the queue it came from */
    struct event *claim_retry; /* claim again later */
    struct event *watchdog;    /* bounds an outstanding BLMOVE */
    struct event *heartbeat;
    struct event *drain_deadline;
    struct event *sig_term, *sig_int;
    int exit_code;
} worker;

static void worker_claim(worker *w);
static void worker_reconcile(worker *w);
static void worker_on_conn_up(void *arg);

static bool
worker_has_room(const worker *w)
{
    return !w->draining && w->chain.active < w->cfg->concurrency;
}

static void
worker_handback_done(redisReply *reply, void *arg)
{
    worker *w = arg;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        pb_log(PB_LOG_WARN, "event=handback jobs=%lld", (long long)reply->integer);
    else if (reply == NULL)
        pb_log(PB_LOG_WARN, "event=handback_failed note=\"Redis away, the lease reaper will\"");
    /* The last spans get a second to leave (the drain flushed them); then the loop ends. */
    struct timeval grace = {1, 0};
    event_base_loopexit(w->base, pb_telemetry_busy(w->chain.telemetry) ? &grace : NULL);
}

/* Ends the drain: anything still in flight goes back to the queue for another worker, and
 * the worker leaves planb:workers (no more heartbeats, so none can put it back). */
static void
worker_drain_end(worker *w)
{
    event_del(w->heartbeat);
    pb_telemetry_flush(w->chain.telemetry);
    pb_queue_handback(w->cmd, &w->keys, w->id, worker_handback_done, w);
}

static void
worker_on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    pb_log(PB_LOG_WARN, "event=drain_timeout in_flight=%d", w->chain.active);
    worker_drain_end(w);
}

static void
worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    worker *w = arg;
    if (w->draining)
        return;
    w->draining = true;
    pb_log(PB_LOG_INFO, "event=draining signal=%d in_flight=%d", (int)sig, w->chain.active);
    /* Dropping the claim connection abandons a parked BLMOVE; a job it moved in the
     * meantime stays in our in-flight list and is handed back at the end. */
    pb_redis_free(w->claim);
    w->claim = NULL;
    w->claiming = w->blocked ? false : w->claiming;
    w->blocked = false;
    evtimer_del(w->watchdog);
    if (w->chain.active == 0) {
        worker_drain_end(w);
        return;
    }
    struct timeval tv = {w->cfg->drain_timeout_ms / 1000, (w->cfg->drain_timeout_ms % 1000) * 1000};
    evtimer_add(w->drain_deadline, &tv);
}

static void
worker_on_released(void *owner)
{
    worker *w = owner;
    if (w->draining) {
        if (w->chain.active == 0) {
            evtimer_del(w->drain_deadline);
            worker_drain_end(w);
        }
        return;
    }
    if (!w->claiming)
        worker_claim(w);
}

static void
worker_claim_in(worker *w, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(w->claim_retry, &tv);
}

static void
worker_retry_claim_later(worker *w)
{
    worker_claim_in(w, WORKER_CLAIM_RETRY_MS);
}

/* A message on <p>:cancel: the id of a job to stop, if this worker runs it. */
static void
worker_on_cancel(redisReply *reply, void *arg)
{
    worker *w = arg;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "message") != 0 ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    pb_chain_cancel(&w->chain, reply->element[2]->str);
}

static void
worker_start_job(worker *w, const char *raw, size_t len)
{
    pb_chain_start(&w->chain, pb_xstrndup(raw, len), len);
}

static void
worker_on_blmove(redisReply *reply, void *arg)
{
    worker *w = arg;
    evtimer_del(w->watchdog);
    w->claiming = false;
    w->blocked = false;
    if (w->draining)
        return;
    if (w->reconcile_due) {
        w->reconcile_due = false;
        worker_reconcile(w);
    }
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        worker_retry_claim_later(w);
        return;
    }
    w->next_queue = (w->block_queue + 1) % w->keys.n_queues;
    if (reply->type == REDIS_REPLY_STRING) {
        /* One job arrived: more may be right behind it, so ask for a batch, which vets it
         * (and puts it back if its queue was paused meanwhile). */
        w->vet = pb_xstrndup(reply->str, reply->len);
        w->vet_len = reply->len;
        w->vet_queue = w->block_queue;
    }
    worker_claim(w);
}

static void
worker_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    pb_log(PB_LOG_WARN, "event=claim_stalled note=\"BLMOVE did not answer, reconnecting\"");
    pb_redis_free(w->claim); /* the pending BLMOVE callback runs with NULL and retries */
    w->claim = pb_redis_new(w->base, w->cfg, "claim");
    pb_redis_no_ping(w->claim);
    pb_redis_on_up(w->claim, worker_on_conn_up, w);
    worker_on_conn_up(w); /* its BLMOVE may have moved a job whose reply we never got */
}

static void
worker_block(worker *w)
{
    if (w->claim == NULL)
        return;
    if (w->reconciling) {
        worker_retry_claim_later(w); /* a BLMOVE now could move a job the LRANGE then sees */
        return;
    }
    size_t q = pb_queue_next_open(w->paused, w->keys.n_queues, w->next_queue);
    if (q == w->keys.n_queues) {
        worker_claim_in(w, WORKER_PAUSED_POLL_MS); /* all paused: claim.lua tells the resume */
        return;
    }
    w->claiming = true;
    w->blocked = true;
    w->block_queue = q;
    double timeout = w->keys.n_queues > 1 ? 0.1 : WORKER_BLOCK_S;
    pb_queue_claim_wait(w->claim, &w->keys, q, timeout, worker_on_blmove, w);
    struct timeval tv = {(time_t)timeout + WORKER_WATCHDOG_SLACK_S, 0};
    evtimer_add(w->watchdog, &tv);
}

static void
worker_on_batch(redisReply *reply, void *arg)
{
    worker *w = arg;
    w->claiming = false;
    char *vet = w->vet;
    w->vet = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        /* Redis away or not ready is logged by the connection; anything else is a bug. */
        if (reply && reply->type == REDIS_REPLY_ERROR && !pb_redis_is_transient(reply))
            pb_log(PB_LOG_ERROR, "event=claim_failed error=\"%s\"", reply->str);
        /* Not vetted, but it is ours: run it (a second finish would only be refused). */
        if (vet)
            pb_chain_start(&w->chain, vet, w->vet_len);
        if (!w->draining)
            worker_retry_claim_later(w);
        return;
    }
    free(vet);
    pb_queue_read_paused(reply, w->paused, w->keys.n_queues);
    size_t started = 0;
    bool deferred = false; /* claim.lua left a re-delivered job for later (see there) */
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            worker_start_job(w, e->str, e->len);
            started++;
        } else if (e->type == REDIS_REPLY_ARRAY && e->elements == 1 &&
                   e->element[0]->type == REDIS_REPLY_STRING) {
            /* cancelled before it ran (claim.lua): finished cancelled, never called */
            const redisReply *c = e->element[0];
            pb_chain_start_cancelled(&w->chain, pb_xstrndup(c->str, c->len), c->len);
            started++;
        } else if (e->type == REDIS_REPLY_NIL) {
            deferred = true;
        }
    }
    if (w->draining)
        return;
    if (deferred && started == 0) {
        /* BLMOVE would only bring back the job claim.lua just put back. */
        worker_retry_claim_later(w);
        return;
    }
    if (started == 0) {
        worker_block(w);
        return;
    }
    if (worker_has_room(w))
        worker_claim(w);
}

static void
worker_claim(worker *w)
{
    if (w->claiming || (!worker_has_room(w) && w->vet == NULL))
        return;
    int room = w->cfg->concurrency - w->chain.active;
    int batch = room < w->cfg->claim_batch ? room : w->cfg->claim_batch;
    w->claiming = true;
    pb_queue_claim_batch(w->cmd, &w->keys, w->id, batch, w->vet, w->vet_len, w->vet_queue,
                         worker_on_batch, w);
    pb_queue_wait(w->cmd, w->cfg);
}

static void
worker_on_claim_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_claim(arg);
}

static void
worker_on_reconcile_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_reconcile(arg);
}

/* The in-flight list as Redis has it: start each entry that no live job (or the job waiting
 * to be vetted) accounts for. Equal bytes are counted, not just matched. */
static void
worker_on_inflight(redisReply *reply, void *arg)
{
    worker *w = arg;
    w->reconciling = false;
    if (w->reconcile_due && !w->blocked) {
        /* another connection came back meanwhile: look again (started jobs count as live) */
        w->reconcile_due = false;
        event_base_once(w->base, -1, EV_TIMEOUT, worker_on_reconcile_due, w, NULL);
    }
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || w->draining)
        return;
    size_t orphans = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        size_t seen = 0; /* earlier entries with the same bytes */
        for (size_t k = 0; k < i; k++)
            seen += reply->element[k]->type == REDIS_REPLY_STRING &&
                    reply->element[k]->len == e->len &&
                    memcmp(reply->element[k]->str, e->str, e->len) == 0;
        size_t held = pb_chain_count_raw(&w->chain, e->str, e->len) +
                      (w->vet && w->vet_len == e->len && memcmp(w->vet, e->str, e->len) == 0);
        if (seen >= held) {
            worker_start_job(w, e->str, e->len);
            orphans++;
        }
    }
    if (orphans > 0) {
        pb_log(PB_LOG_WARN, "event=reconciled orphans=%zu in_flight=%zu", orphans, reply->elements);
        char n[24];
        snprintf(n, sizeof(n), "%zu", orphans);
        const char *argv[] = {"HINCRBY", w->keys.stats, "orphans", n};
        pb_redis_command(w->cmd, NULL, NULL, 4, argv, NULL);
    }
}

static void
worker_reconcile(worker *w)
{
    if (w->draining)
        return;
    if (w->blocked || w->reconciling) {
        w->reconcile_due = true;
        return;
    }
    w->reconciling = true;
    const char *argv[] = {"LRANGE", w->keys.inflight, "0", "-1"};
    pb_redis_command(w->cmd, worker_on_inflight, w, 4, argv, NULL);
}

/* A connection is usable again after an outage: stamp the lease at once (the reaper's grace
 * waits for it) and look for claims whose reply was lost. */
static void
worker_on_conn_up(void *arg)
{
    worker *w = arg;
    pb_queue_heartbeat(w->cmd, &w->keys, w->id);
    worker_reconcile(w);
}

/* An idle worker's exporter counts reach planb:stats with its heartbeat (a busy worker's ride
 * on its jobs' finish counters): fire-and-forget, like any counter. */
static void
worker_flush_telemetry_counts(worker *w)
{
    int64_t counts[2];
    if (w->chain.telemetry == NULL || w->chain.active > 0)
        return;
    pb_telemetry_take_counts(w->chain.telemetry, &counts[0], &counts[1]);
    static const char *const fields[2] = {"telemetry:exported", "telemetry:dropped"};
    for (int k = 0; k < 2; k++) {
        if (counts[k] == 0)
            continue;
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)counts[k]);
        const char *argv[] = {"HINCRBY", w->keys.stats, fields[k], n};
        pb_redis_command(w->cmd, NULL, NULL, 4, argv, NULL);
    }
}

static void
worker_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    pb_queue_heartbeat(w->cmd, &w->keys, w->id);
    worker_flush_telemetry_counts(w);
}

/* Thousands of concurrent upstream calls need thousands of descriptors. */
static void
worker_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int
pb_worker_run(const pb_config *cfg, int slot)
{
    worker *w = pb_xcalloc(1, sizeof(*w));
    w->cfg = cfg;
    snprintf(w->role, sizeof(w->role), "w%d", slot);
    pb_log_set_role(w->role);
    pb_key_worker_id(w->id, sizeof(w->id), getpid());

    /* An orphan must not keep claiming jobs. */
    pb_core_child_start();
    worker_raise_nofile();

    /* The changelist folds a socket's del+add in one loop turn into one epoll_ctl:
     * syscalls dominate when thousands of upstream connections churn. */
    struct event_config *ecfg = event_config_new();
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    pb_queue_keys_init(&w->keys, cfg, w->id);
    w->paused = pb_xcalloc(cfg->n_queues, sizeof(bool));
    w->cmd = pb_redis_new(w->base, cfg, "cmd");
    w->claim = pb_redis_new(w->base, cfg, "claim");
    pb_redis_no_ping(w->claim);
    w->sub = pb_redis_new(w->base, cfg, "sub");
    char *cancel_channel = pb_key_channel_cancel(cfg->prefix);
    const char *channels[] = {cancel_channel};
    pb_redis_subscribe(w->sub, 1, channels, worker_on_cancel, w);
    free(cancel_channel);
    pb_redis_on_up(w->cmd, worker_on_conn_up, w);
    pb_redis_on_up(w->claim, worker_on_conn_up, w);
    w->http = pb_http_new(w->base, cfg->limits.reply_max_bytes, cfg->limits.stream_raw_max_bytes,
                          cfg->concurrency);
    w->cache = pb_cache_new(w->base, cfg, w->cmd, w->id);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed) || seed == 0)
        seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL + (uint64_t)pb_mono_ms();
    w->chain = (pb_chain_ctx){
        .base = w->base,
        .cfg = cfg,
        .http = w->http,
        .cmd = w->cmd,
        .breaker = pb_breaker_new(w->base, cfg, w->cmd, w->id),
        .cache = w->cache,
        .keys = &w->keys,
        .worker_id = w->id,
        .rng = seed | 1,
        .semcache = pb_semcache_new(cfg, w->base, pb_cache_conn(w->cache), w->http),
        .telemetry = pb_telemetry_new(w->base, cfg, w->id),
        .on_released = worker_on_released,
        .owner = w,
    };
    w->claim_retry = evtimer_new(w->base, worker_on_claim_retry, w);
    w->watchdog = evtimer_new(w->base, worker_on_watchdog, w);
    w->drain_deadline = evtimer_new(w->base, worker_on_drain_deadline, w);
    w->heartbeat = event_new(w->base, -1, EV_PERSIST, worker_on_heartbeat, w);
    struct timeval hb = {WORKER_HEARTBEAT_MS / 1000, 0};
    event_add(w->heartbeat, &hb);
    w->sig_term = evsignal_new(w->base, SIGTERM, worker_on_signal, w);
    w->sig_int = evsignal_new(w->base, SIGINT, worker_on_signal, w);
    evsignal_add(w->sig_term, NULL);
    evsignal_add(w->sig_int, NULL);
    if (getppid() == 1) {
        pb_log(PB_LOG_ERROR, "event=orphan note=\"master is gone, not starting\"");
        return PB_EXIT_FATAL;
    }

    pb_log(PB_LOG_INFO, "event=worker_start id=%s concurrency=%d queues=%zu", w->id,
           cfg->concurrency, cfg->n_queues);
    pb_queue_heartbeat(w->cmd, &w->keys, w->id);
    worker_claim(w);
    event_base_dispatch(w->base);
    pb_log(PB_LOG_INFO, "event=worker_exit id=%s", w->id);

    int code = w->exit_code;
    /* Order matters: freeing a connection runs its pending callbacks (with NULL), which
     * still touch jobs; then the jobs go, then the curl calls they owned. */
    pb_redis_free(w->sub);
    pb_redis_free(w->claim);
    pb_cache_close(w->cache);
    pb_redis_free(w->cmd);
    pb_chain_abandon_all(&w->chain);
    pb_breaker_free(w->chain.breaker);
    pb_semcache_free(w->chain.semcache);
    pb_telemetry_free(w->chain.telemetry);
    pb_cache_free(w->cache);
    pb_http_free(w->http);
    event_free(w->claim_retry);
    event_free(w->watchdog);
    event_free(w->drain_deadline);
    event_free(w->heartbeat);
    event_free(w->sig_term);
    event_free(w->sig_int);
    pb_queue_keys_free(&w->keys);
    free(w->paused);
    free(w->vet);
    event_base_free(w->base);
    free(w);
    return code;
}
