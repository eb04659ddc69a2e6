/* queue.c -- claim, finish and heartbeat commands for one worker.
 *
 * The in-flight list is a list because BLMOVE can only target a list. Claims
 * push on its head, so the oldest claim sits at its tail, and finish.lua's
 * LREM scans from the tail (count -1): jobs finish roughly in claim order,
 * so an ack touches a few entries, not every job in flight. */
#include "planb/queue.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

#define QUEUE_FINISH_FIXED_ARGS 22 /* 11 keys + 11 fixed ARGV of finish.lua */
#define QUEUE_FINISH_KEYS       11

void
pb_queue_keys_init(pb_queue_keys *k, const pb_config *cfg, const char *worker_id)
{
    memset(k, 0, sizeof(*k));
    k->prefix = cfg->prefix;
    k->inflight = pb_key_inflight(cfg->prefix, worker_id);
    k->n_queues = cfg->n_queues;
    k->queue_names = cfg->queues;
    k->paused = pb_key_paused(cfg->prefix);
    k->queues = pb_xcalloc(cfg->n_queues, sizeof(char *));
    k->delayed = pb_xcalloc(cfg->n_queues, sizeof(char *));
    for (size_t i = 0; i < cfg->n_queues; i++) {
        k->queues[i] = pb_key_queue(cfg->prefix, cfg->queues[i]);
        k->delayed[i] = pb_key_delayed(cfg->prefix, cfg->queues[i]);
    }
    k->stats = pb_key_stats(cfg->prefix);
    k->dead = pb_key_dead(cfg->prefix);
    k->workers = pb_key_workers(cfg->prefix);
    k->results_chan = pb_key_channel_results(cfg->prefix);
    k->deliveries = pb_key_deliveries(cfg->prefix);
    k->suspect = pb_key_suspect(cfg->prefix, worker_id);
    k->events = pb_key_events(cfg->prefix);
    k->result_prefix = pb_key_result(cfg->prefix, "");
    k->events_maxlen = pb_xasprintf("%d", cfg->events_maxlen);
    k->cancels = pb_key_cancels(cfg->prefix);
}

void
pb_queue_keys_free(pb_queue_keys *k)
{
    free(k->inflight);
    for (size_t i = 0; i < k->n_queues; i++) {
        free(k->queues[i]);
        free(k->delayed[i]);
    }
    free(k->queues);
    free(k->delayed);
    free(k->paused);
    free(k->stats);
    free(k->dead);
    free(k->workers);
    free(k->results_chan);
    free(k->deliveries);
    free(k->suspect);
    free(k->events);
    free(k->result_prefix);
    free(k->events_maxlen);
    free(k->cancels);
    memset(k, 0, sizeof(*k));
}

void
pb_queue_claim_batch(pb_redis *r, const pb_queue_keys *k, const char *worker_id, int max,
                     const char *vet, size_t vet_len, size_t vet_qi, pb_redis_fn fn, void *arg)
{
    size_t nkeys = 6 + k->n_queues, argc = nkeys + 5 + 2 * k->n_queues + 1;
    const char **argv = pb_xmalloc(sizeof(char *) * argc);
    size_t *lens = pb_xmalloc(sizeof(size_t) * argc);
    char maxs[16], vq[16];
    snprintf(maxs, sizeof(maxs), "%d", max);
    snprintf(vq, sizeof(vq), "%zu", vet ? vet_qi + 1 : 0);
    argv[0] = k->inflight;
    argv[1] = k->deliveries;
    argv[2] = k->stats;
    argv[3] = k->suspect;
    argv[4] = k->workers;
    argv[5] = k->paused;
    for (size_t i = 0; i < k->n_queues; i++) {
        argv[6 + i] = k->queues[i];
        argv[nkeys + 5 + i] = k->queue_names[i];
        argv[nkeys + 5 + k->n_queues + i] = k->delayed[i];
    }
    argv[nkeys] = maxs;
    argv[nkeys + 1] = k->result_prefix;
    argv[nkeys + 2] = worker_id;
    argv[nkeys + 3] = vq;
    argv[nkeys + 4] = vet ? vet : "";
    argv[argc - 1] = k->cancels;
    for (size_t i = 0; i < argc; i++)
        lens[i] = i == nkeys + 4 ? (vet ? vet_len : 0) : strlen(argv[i]);
    pb_redis_script(r, "claim", fn, arg, (int)nkeys, (int)argc, argv, lens);
    free(argv);
    free(lens);
}

size_t
pb_queue_read_paused(const redisReply *reply, bool *paused, size_t n)
{
    memset(paused, 0, sizeof(bool) * n);
    size_t count = 0;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t j = 0; j < e->elements; j++) {
            const redisReply *p = e->element[j];
            /* positions are 1-based, as in claim.lua's KEYS */
            if (p->type == REDIS_REPLY_INTEGER && p->integer >= 1 && (size_t)p->integer <= n &&
                !paused[p->integer - 1]) {
                paused[p->integer - 1] = true;
                count++;
            }
        }
    }
    return count;
}

size_t
pb_queue_next_open(const bool *paused, size_t n, size_t from)
{
    for (size_t i = 0; i < n; i++) {
        size_t q = (from + i) % n;
        if (!paused[q])
            return q;
    }
    return n;
}

void
pb_queue_claim_wait(pb_redis *r, const pb_queue_keys *k, size_t qi, double timeout_s,
                    pb_redis_fn fn, void *arg)
{
    char ts[32];
    snprintf(ts, sizeof(ts), "%.3f", timeout_s);
    const char *argv[] = {"BLMOVE", k->queues[qi], k->inflight, "RIGHT", "LEFT", ts};
    pb_redis_command(r, fn, arg, 6, argv, NULL);
}

/* A finish under redis.wait_replicas: it counts once WAIT says enough replicas have it.
 * The WAIT is pipelined right behind the EVALSHA. After a NOSCRIPT the script is sent again
 * as EVAL behind that WAIT, whose answer then says nothing about it: it is dropped and a
 * second WAIT sent once the script has answered. Freed when the script's reply and the
 * WAIT that follows it are in; the caller hears once, at the second. */
typedef struct queue_finish_wait {
    pb_redis *r; /* the connection, for the second WAIT */
    const pb_config *cfg;
    pb_redis_fn fn;
    void *arg;
    int want;           /* replicas wanted */
    int pending;        /* replies still to come (2, 1, 0) */
    bool stale_wait;    /* a WAIT answered before the script: it ran before the EVAL re-send */
    bool have;          /* the script answered */
    int type;           /* its reply type: finish.lua returns an integer or an error */
    long long integer;  /* its integer */
    char *err;          /* its error text, NULL none */
    long long replicas; /* WAIT's answer, -1 none */
} queue_finish_wait;

static void
queue_finish_wait_done(queue_finish_wait *fw)
{
    if (--fw->pending > 0)
        return;
    if (fw->have && fw->type == REDIS_REPLY_ERROR) {
        redisReply e = {.type = REDIS_REPLY_ERROR, .str = fw->err, .len = strlen(fw->err)};
        fw->fn(&e, fw->arg);
    } else if (fw->have && fw->replicas >= fw->want) {
        redisReply v = {.type = REDIS_REPLY_INTEGER, .integer = fw->integer};
        fw->fn(&v, fw->arg);
    } else {
        /* Stored on this master but on too few replicas: a failover could lose it, so it is
         * held and sent again (finish.lua is idempotent) until enough replicas have it. */
        if (fw->have)
            pb_log(PB_LOG_WARN, "event=wait_short replicas=%lld wanted=%d", fw->replicas, fw->want);
        fw->fn(NULL, fw->arg);
    }
    free(fw->err);
    free(fw);
}

static void queue_on_finish_wait(redisReply *reply, void *arg);

static void
queue_send_finish_wait(queue_finish_wait *fw)
{
    char want[16], ms[16];
    snprintf(want, sizeof(want), "%d", fw->cfg->wait_replicas);
    snprintf(ms, sizeof(ms), "%d", fw->cfg->wait_timeout_ms);
    const char *wait[] = {"WAIT", want, ms};
    pb_redis_command(fw->r, queue_on_finish_wait, fw, 3, wait, NULL);
}

static void
queue_on_finish_script(redisReply *reply, void *arg)
{
    queue_finish_wait *fw = arg;
    if (reply && (reply->type == REDIS_REPLY_INTEGER || reply->type == REDIS_REPLY_ERROR)) {
        fw->have = true;
        fw->type = reply->type;
        fw->integer = reply->integer;
        if (reply->type == REDIS_REPLY_ERROR)
            fw->err = pb_xstrndup(reply->str, reply->len);
        if (pb_redis_is_transient(reply))
            fw->have = false; /* held like a lost reply */
    }
    if (fw->stale_wait && fw->have && fw->type == REDIS_REPLY_INTEGER) {
        fw->stale_wait = false;
        fw->pending = 1; /* the script is in; the WAIT behind it is still to come */
        queue_send_finish_wait(fw);
        return;
    }
    queue_finish_wait_done(fw);
}

static void
queue_on_finish_wait(redisReply *reply, void *arg)
{
    queue_finish_wait *fw = arg;
    if (fw->pending == 2 && reply != NULL) {
        /* The script has not answered: it went out again as EVAL behind this WAIT. */
        fw->stale_wait = true;
        fw->pending = 1;
        return;
    }
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        fw->replicas = reply->integer;
    queue_finish_wait_done(fw);
}

void
pb_queue_finish(pb_redis *r, const pb_config *cfg, const pb_queue_keys *k, const pb_finish *f,
                pb_redis_fn fn, void *arg)
{
    pb_assert(f->n_counters <= PB_QUEUE_MAX_COUNTERS);
    const char *argv[QUEUE_FINISH_FIXED_ARGS + 2 * PB_QUEUE_MAX_COUNTERS];
    size_t lens[QUEUE_FINISH_FIXED_ARGS + 2 * PB_QUEUE_MAX_COUNTERS];
    char counts[PB_QUEUE_MAX_COUNTERS][24];
    char *result_key = f->id ? pb_key_result(cfg->prefix, f->id) : pb_xstrdup("-");
    char *reply_key = f->id ? pb_key_reply(cfg->prefix, f->id) : pb_xstrdup("-");
    char *run_key =
        f->id && f->stream_key ? pb_key_stream_run(cfg->prefix, f->id) : pb_xstrdup("-");
    char *minute_key = pb_key_stats_minute(cfg->prefix, (long long)(pb_wall_ms() / 60000));
    char ttl[16], reply_ttl[16], dead_max[24], stream_maxlen[16], stream_ttl[16];
    snprintf(dead_max, sizeof(dead_max), "%zu", cfg->limits.dead_max_entries);
    snprintf(stream_maxlen, sizeof(stream_maxlen), "%d", f->stream_key ? cfg->stream_maxlen : 0);
    snprintf(stream_ttl, sizeof(stream_ttl), "%d", cfg->stream_ttl_s);
    snprintf(ttl, sizeof(ttl), "%d", cfg->result_ttl_s);
    snprintf(reply_ttl, sizeof(reply_ttl), "%d", f->id ? f->reply_ttl_s : 0);
    int n = 0;
    argv[n++] = k->inflight;
    argv[n++] = result_key;
    argv[n++] = reply_key;
    argv[n++] = k->stats;
    argv[n++] = k->dead;
    argv[n++] = k->events;
    argv[n++] = k->deliveries;
    argv[n++] = k->suspect;
    argv[n++] = minute_key;
    argv[n++] = f->stream_key ? f->stream_key : "-";
    argv[n++] = run_key;
    argv[n] = f->raw;
    lens[n++] = f->raw_len;
    argv[n] = f->result_json ? f->result_json : "";
    lens[n++] = f->result_json ? f->result_len : 0;
    argv[n++] = ttl;
    argv[n++] = reply_ttl;
    argv[n++] = k->results_chan;
    argv[n++] = f->dead_entry ? f->dead_entry : "";
    argv[n++] = k->events_maxlen;
    argv[n++] = dead_max;
    argv[n++] = stream_maxlen;
    argv[n++] = stream_ttl;
    argv[n++] = f->stream_key && f->stream_run ? f->stream_run : "-";
    for (size_t i = 0; i < f->n_counters; i++) {
        snprintf(counts[i], sizeof(counts[i]), "%ld", f->counts[i]);
        argv[n++] = f->counters[i];
        argv[n++] = counts[i];
    }
    for (int i = 0; i < n; i++)
        if (i < QUEUE_FINISH_KEYS || i > QUEUE_FINISH_KEYS + 1)
            lens[i] = strlen(argv[i]);
    if (cfg->wait_replicas > 0) {
        queue_finish_wait *fw = pb_xcalloc(1, sizeof(*fw));
        *fw = (queue_finish_wait){.r = r,
                                  .cfg = cfg,
                                  .fn = fn,
                                  .arg = arg,
                                  .want = cfg->wait_replicas,
                                  .pending = 2,
                                  .replicas = -1};
        pb_redis_script(r, "finish", queue_on_finish_script, fw, QUEUE_FINISH_KEYS, n, argv, lens);
        queue_send_finish_wait(fw);
    } else {
        pb_redis_script(r, "finish", fn, arg, QUEUE_FINISH_KEYS, n, argv, lens);
    }
    free(minute_key);
    free(result_key);
    free(reply_key);
    free(run_key);
}

static void
queue_on_wait(redisReply *reply, void *arg)
{
    long want = (long)(intptr_t)arg;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer < want)
        pb_log(PB_LOG_WARN, "event=wait_short replicas=%lld wanted=%ld", (long long)reply->integer,
               want);
}

void
pb_queue_wait(pb_redis *r, const pb_config *cfg)
{
    if (cfg->wait_replicas <= 0)
        return;
    char n[16], ms[16];
    snprintf(n, sizeof(n), "%d", cfg->wait_replicas);
    snprintf(ms, sizeof(ms), "%d", cfg->wait_timeout_ms);
    const char *argv[] = {"WAIT", n, ms};
    pb_redis_command(r, queue_on_wait, (void *)(intptr_t)cfg->wait_replicas, 3, argv, NULL);
}

void
pb_queue_heartbeat(pb_redis *r, const pb_queue_keys *k, const char *worker_id)
{
    const char *argv[] = {k->workers, worker_id};
    pb_redis_script(r, "heartbeat", NULL, NULL, 1, 2, argv, NULL);
}

void
pb_queue_handback(pb_redis *r, const pb_queue_keys *k, const char *worker_id, pb_redis_fn fn,
                  void *arg)
{
    const char *argv[] = {k->inflight, k->queues[0], k->workers, k->suspect, worker_id};
    pb_redis_script(r, "handback", fn, arg, 4, 5, argv, NULL);
}
