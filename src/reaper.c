/* reaper.c -- the monitor's lease reaper: dead workers' jobs go back to the queue.
 *
 * A worker stamps planb:workers every second with Redis's clock. The sweep
 * runs reap.lua every REAPER_SWEEP_MS; the script picks workers silent for
 * longer than lease_ms and hands their in-flight jobs back, atomically. With
 * several hosts every monitor sweeps; a short lock inside the script leaves the
 * work to one of them, and atomicity makes a double reap harmless anyway.
 *
 * A worker whose death the master saw is not left to the lease: the master
 * writes its id to a pipe (it never talks to Redis itself), and the reaper runs
 * reap.lua for that id at once. If Redis is away at that moment the id is not
 * kept: its heartbeat grows old and the sweep takes it within the lease.
 *
 * An outage must not look like every worker dying: while Redis was away (or
 * restarting, or BUSY) nobody could heartbeat. reap.lua notices the gap between
 * two sweeps on Redis's own clock and pauses the lease sweep for one lease
 * (planb:reaper:clock), so a job runs twice only when its worker really died or
 * froze. One sweep is outstanding at a time: a stalled connection must not pile
 * up sweeps that all run at once when it wakes. */
#include "planb/reaper.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

#define REAPER_SWEEP_MS    250  /* how often the lease is checked: dead host found < lease + this */
#define REAPER_LOCK_MS     1000 /* sweep lock: another host takes over 1 s after its holder dies */
#define REAPER_MAX_PER_RUN 64   /* workers one script call reaps (bounds its run time) */
#define REAPER_ID_MAX      PB_KEY_WORKER_ID_MAX
#define REAPER_GAP_MS      2000 /* sweeps further apart than this (Redis clock): grace, reap.lua */
#define REAPER_FIXED_ARGV  15
#define REAPER_NUM_KEYS    8
#define REAPER_BUF_BYTES   (REAPER_MAX_PER_RUN * REAPER_ID_MAX)

/* Callback tags: what made a reap.lua call (logged with its outcome). */
static char reaper_why_lease[] = "lease", reaper_why_exit[] = "exit";

struct pb_reaper {
    pb_duty_ctx ctx;        /* borrowed loop, connection, config */
    int notify_fd;          /* master's pipe, -1 none */
    struct event *sweep;    /* persistent sweep timer */
    struct event *notified; /* notify_fd readable */
    char buf[REAPER_BUF_BYTES + 1];
    size_t buf_len; /* bytes of an unfinished line kept in buf */
    char *keys[REAPER_NUM_KEYS];
    char lease[16], max_deliveries[16], result_ttl[16], reply_ttl[16], maxlen[16];
    char *results_chan;
};

/* A sweep's reply is outstanding. Module state, not a field: the monitor (one reaper per
 * process) stops the reaper before it frees the connection whose callbacks still run. */
static bool reaper_sweeping;

static void
reaper_report(redisReply *reply, const char *why)
{
    if (reply == NULL)
        return; /* Redis away: the next sweep tries again */
    if (reply->type == REDIS_REPLY_ERROR) {
        pb_log(PB_LOG_ERROR, "event=reap_failed error=\"%s\"", reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
        return;
    long long n[4];
    for (int i = 0; i < 4; i++)
        n[i] = reply->element[i]->type == REDIS_REPLY_INTEGER ? reply->element[i]->integer : 0;
    if (n[1] + n[2] + n[3] > 0 || (n[0] > 0 && why == reaper_why_lease))
        pb_log(PB_LOG_WARN,
               "event=reaped why=%s workers=%lld handed_back=%lld dead=%lld acked=%lld", why, n[0],
               n[1], n[2], n[3]);
}

static void
reaper_on_reply(redisReply *reply, void *arg)
{
    reaper_report(reply, arg);
}

static void
reaper_on_sweep_reply(redisReply *reply, void *arg)
{
    (void)arg;
    reaper_sweeping = false;
    reaper_report(reply, reaper_why_lease);
}

/* Runs reap.lua: lease > 0 sweeps; ids (may be empty) are reaped regardless of their stamp. */
static void
reaper_run(pb_reaper *r, bool sweep, const char *const *ids, size_t n_ids)
{
    const char *argv[REAPER_NUM_KEYS + REAPER_FIXED_ARGV + REAPER_MAX_PER_RUN];
    char lock_ms[16], per_run[16], id_max[16], dead_max[24], gap[16], stream_max[16],
        stream_ttl[16];
    snprintf(stream_max, sizeof(stream_max), "%d", r->ctx.cfg->stream_maxlen);
    snprintf(stream_ttl, sizeof(stream_ttl), "%d", r->ctx.cfg->stream_ttl_s);
    snprintf(dead_max, sizeof(dead_max), "%zu", r->ctx.cfg->limits.dead_max_entries);
    snprintf(gap, sizeof(gap), "%d", REAPER_GAP_MS);
    snprintf(lock_ms, sizeof(lock_ms), "%d", REAPER_LOCK_MS);
    snprintf(per_run, sizeof(per_run), "%d", REAPER_MAX_PER_RUN);
    snprintf(id_max, sizeof(id_max), "%zu", r->ctx.cfg->limits.id_max_bytes);
    int n = 0;
    for (int i = 0; i < REAPER_NUM_KEYS; i++)
        argv[n++] = r->keys[i];
    argv[n++] = r->ctx.cfg->prefix;
    argv[n++] = sweep ? r->lease : "0";
    argv[n++] = r->max_deliveries;
    argv[n++] = r->result_ttl;
    argv[n++] = r->reply_ttl;
    argv[n++] = r->results_chan;
    argv[n++] = r->maxlen;
    argv[n++] = r->ctx.host;
    argv[n++] = lock_ms;
    argv[n++] = per_run;
    argv[n++] = id_max;
    argv[n++] = dead_max;
    argv[n++] = gap;
    argv[n++] = stream_max;
    argv[n++] = stream_ttl;
    for (size_t i = 0; i < n_ids && i < REAPER_MAX_PER_RUN; i++)
        argv[n++] = ids[i];
    if (sweep) {
        reaper_sweeping = true;
        pb_redis_script(r->ctx.cmd, "reap", reaper_on_sweep_reply, NULL, REAPER_NUM_KEYS, n, argv,
                        NULL);
    } else {
        pb_redis_script(r->ctx.cmd, "reap", reaper_on_reply, reaper_why_exit, REAPER_NUM_KEYS, n,
                        argv, NULL);
    }
}

static void
reaper_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (!reaper_sweeping)
        reaper_run(arg, true, NULL, 0);
}

/* Reads worker ids the master announced; whole lines only, the rest waits for more bytes. */
static void
reaper_on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pb_reaper *r = arg;
    ssize_t got = read(fd, r->buf + r->buf_len, REAPER_BUF_BYTES - r->buf_len);
    if (got <= 0) {
        if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            pb_log(PB_LOG_WARN, "event=reaper_pipe_closed");
            event_del(r->notified);
        }
        return;
    }
    r->buf_len += (size_t)got;
    r->buf[r->buf_len] = '\0';
    const char *ids[REAPER_MAX_PER_RUN];
    size_t n_ids = 0;
    char *line = r->buf, *nl;
    while (n_ids < REAPER_MAX_PER_RUN && (nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        if (nl > line && (size_t)(nl - line) < REAPER_ID_MAX)
            ids[n_ids++] = line;
        line = nl + 1;
    }
    if (n_ids > 0)
        reaper_run(r, false, ids, n_ids);
    size_t rest = r->buf_len - (size_t)(line - r->buf);
    /* A line longer than any id is garbage: drop it rather than wedge the buffer. */
    if (rest >= REAPER_ID_MAX && memchr(line, '\n', rest) == NULL)
        rest = 0;
    memmove(r->buf, line, rest);
    r->buf_len = rest;
    if (memchr(r->buf, '\n', r->buf_len) != NULL)
        event_active(r->notified, EV_READ, 0); /* more lines than one run takes */
}

pb_reaper *
pb_reaper_start(const pb_duty_ctx *ctx, int notify_fd)
{
    pb_reaper *r = pb_xcalloc(1, sizeof(*r));
    r->ctx = *ctx;
    r->notify_fd = notify_fd;
    const char *prefix = ctx->cfg->prefix;
    r->keys[0] = pb_key_workers(prefix);
    r->keys[1] = pb_key_deliveries(prefix);
    r->keys[2] = pb_key_queue(prefix, ctx->cfg->queues[0]);
    r->keys[3] = pb_key_dead(prefix);
    r->keys[4] = pb_key_stats(prefix);
    r->keys[5] = pb_key_events(prefix);
    r->keys[6] = pb_key_reaper_lock(prefix);
    r->keys[7] = pb_key_reaper_clock(prefix);
    r->results_chan = pb_key_channel_results(prefix);
    snprintf(r->lease, sizeof(r->lease), "%d", ctx->cfg->lease_ms);
    snprintf(r->max_deliveries, sizeof(r->max_deliveries), "%d", ctx->cfg->max_deliveries);
    snprintf(r->result_ttl, sizeof(r->result_ttl), "%d", ctx->cfg->result_ttl_s);
    snprintf(r->reply_ttl, sizeof(r->reply_ttl), "%d", ctx->cfg->reply_ttl_s);
    snprintf(r->maxlen, sizeof(r->maxlen), "%d", ctx->cfg->events_maxlen);
    r->sweep = event_new(ctx->base, -1, EV_PERSIST, reaper_on_sweep, r);
    struct timeval tv = {0, REAPER_SWEEP_MS * 1000};
    event_add(r->sweep, &tv);
    if (notify_fd >= 0) {
        r->notified = event_new(ctx->base, notify_fd, EV_READ | EV_PERSIST, reaper_on_notify, r);
        event_add(r->notified, NULL);
    }
    return r;
}

void
pb_reaper_stop(pb_reaper *r)
{
    if (r == NULL)
        return;
    event_free(r->sweep);
    if (r->notified)
        event_free(r->notified);
    for (int i = 0; i < REAPER_NUM_KEYS; i++)
        free(r->keys[i]);
    free(r->results_chan);
    free(r);
}
