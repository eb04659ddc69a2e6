/* promote.c -- the monitor's promoter: delayed jobs go back to their queue when due.
 *
 * One promote.lua call per tick covers every configured queue (its delayed set and
 * its list), so the work per tick is bounded by PB_PROMOTE_MAX per queue, and a
 * backlog of due jobs drains at that rate instead of stalling Redis. One call is
 * outstanding at a time: a stalled connection must not pile up calls that all run
 * at once when it wakes, so the timer is one-shot and armed from each reply: at once
 * when a queue's batch was full (a backlog of due jobs), else at the earliest waiting
 * job's time, at least PB_PROMOTE_MIN_MS and at most PB_PROMOTE_TICK_MS ahead (a job
 * pushed meanwhile by another host is not seen by this one before the next call). Several monitors
 * (one per host) run it side by side: each call is atomic and promotes a job only when its own ZREM
 * removed it. */
#include "planb/promote.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

struct pb_promoter {
    pb_duty_ctx ctx;     /* borrowed loop, connection, config */
    struct event *tick;  /* one-shot timer: the next call */
    char **keys;         /* stats hash, then delayed set and queue per configured queue */
    size_t n_keys;       /* 1 + 2 * n_queues */
    char max[16];        /* PB_PROMOTE_MAX as text */
    bool running;        /* a call is outstanding */
    bool logged_failure; /* a script error was logged (once until it succeeds again) */
};

static void promote_run(pb_promoter *p);

static void
promote_arm(pb_promoter *p, long long ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(p->tick, &tv);
}

/* Module state, as in reaper.c: the monitor (one promoter per process) stops the promoter
 * after freeing the connection, whose pending callback then runs with NULL. */
static pb_promoter *promote_live;

static void
promote_on_reply(redisReply *reply, void *arg)
{
    pb_promoter *p = arg;
    if (p != promote_live)
        return; /* stopped meanwhile */
    p->running = false;
    long long wait = PB_PROMOTE_TICK_MS; /* Redis away, or an error: try again a tick later */
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        if (!p->logged_failure)
            pb_log(PB_LOG_ERROR, "event=promote_failed error=\"%s\"", reply->str);
        p->logged_failure = true;
    } else if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
               reply->element[1]->type == REDIS_REPLY_INTEGER) {
        p->logged_failure = false;
        long long next = reply->element[1]->integer;
        if (next == 0) {
            promote_run(p); /* a backlog of due jobs: go on at once */
            return;
        }
        if (next > 0 && next < wait)
            wait = next < PB_PROMOTE_MIN_MS ? PB_PROMOTE_MIN_MS : next;
    }
    promote_arm(p, wait);
}

static void
promote_run(pb_promoter *p)
{
    const char *argv[1 + 2 * 64 + 1];
    const char **args = argv;
    size_t n = p->n_keys + 1;
    if (n > sizeof(argv) / sizeof(*argv))
        args = pb_xmalloc(sizeof(char *) * n);
    for (size_t i = 0; i < p->n_keys; i++)
        args[i] = p->keys[i];
    args[p->n_keys] = p->max;
    p->running = true;
    pb_redis_script(p->ctx.cmd, "promote", promote_on_reply, p, (int)p->n_keys, (int)n, args, NULL);
    if (args != argv)
        free(args);
}

static void
promote_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_promoter *p = arg;
    if (!p->running)
        promote_run(p);
}

pb_promoter *
pb_promote_start(const pb_duty_ctx *ctx)
{
    pb_promoter *p = pb_xcalloc(1, sizeof(*p));
    p->ctx = *ctx;
    const pb_config *cfg = ctx->cfg;
    p->n_keys = 1 + 2 * cfg->n_queues;
    p->keys = pb_xcalloc(p->n_keys, sizeof(char *));
    p->keys[0] = pb_key_stats(cfg->prefix);
    for (size_t i = 0; i < cfg->n_queues; i++) {
        p->keys[1 + 2 * i] = pb_key_delayed(cfg->prefix, cfg->queues[i]);
        p->keys[2 + 2 * i] = pb_key_queue(cfg->prefix, cfg->queues[i]);
    }
    snprintf(p->max, sizeof(p->max), "%d", PB_PROMOTE_MAX);
    promote_live = p;
    p->tick = evtimer_new(ctx->base, promote_on_tick, p);
    promote_arm(p, PB_PROMOTE_TICK_MS);
    return p;
}

void
pb_promote_stop(pb_promoter *p)
{
    if (p == NULL)
        return;
    if (promote_live == p)
        promote_live = NULL;
    event_free(p->tick);
    for (size_t i = 0; i < p->n_keys; i++)
        free(p->keys[i]);
    free(p->keys);
    free(p);
}
