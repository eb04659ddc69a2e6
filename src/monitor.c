/* monitor.c -- the monitor process: one libevent loop hosting the host-wide duties.
 *
 * Forked by the master beside the workers (slot "mon"), respawned like them.
 * It owns no jobs, so SIGTERM simply stops the loop. Duties (reaper, promoter of
 * delayed jobs, stats publisher, metrics endpoint) are started from monitor_start_duties and
 * stopped from monitor_stop_duties; each keeps its own timers and state. */
#include "planb/monitor.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "planb/core.h"
#include "planb/log.h"
#include "planb/duty.h"
#include "planb/metrics.h"
#include "planb/stats.h"
#include "planb/reaper.h"
#include "planb/promote.h"

typedef struct monitor {
    pb_duty_ctx ctx;
    char host[64];
    struct event *sig_term;
    struct event *sig_int;
    pb_stats_publisher *stats;
    pb_metrics *metrics;
    int reap_fd;           /* master's dead-worker pipe */
    pb_reaper *reaper;     /* lease sweep + immediate hand-back of dead workers */
    pb_promoter *promoter; /* delayed jobs back to their queue when due */
} monitor;

#define MONITOR_POLICY_RETRY_S 1 /* asks again while Redis is not reachable yet */

static void monitor_check_policy(monitor *mon);

static void
monitor_on_policy_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    monitor_check_policy(arg);
}

/* CONFIG GET maxmemory-policy answers ["maxmemory-policy", "<policy>"]. */
static void
monitor_on_policy(redisReply *reply, void *arg)
{
    monitor *mon = arg;
    if (reply == NULL) {
        /* Not connected yet (or Redis away): ask again later, from the loop. */
        struct timeval tv = {MONITOR_POLICY_RETRY_S, 0};
        event_base_once(mon->ctx.base, -1, EV_TIMEOUT, monitor_on_policy_retry, mon, &tv);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        const char *policy = reply->element[1]->str;
        if (strcmp(policy, "noeviction") != 0)
            pb_log(PB_LOG_WARN,
                   "event=eviction_policy policy=%s note=\"the queue Redis may evict keys: "
                   "jobs and results can be lost; set maxmemory-policy noeviction and put the "
                   "cache on its own Redis (cache.redis.url)\"",
                   policy);
    } else {
        pb_log(PB_LOG_INFO, "event=eviction_policy_unknown note=\"CONFIG GET maxmemory-policy "
                            "was refused; the eviction policy was not checked\"");
    }
}

/* Logs a warning once the queue's Redis answers with an eviction policy that can drop jobs. */
static void
monitor_check_policy(monitor *mon)
{
    const char *argv[] = {"CONFIG", "GET", "maxmemory-policy"};
    pb_redis_command(mon->ctx.cmd, monitor_on_policy, mon, 3, argv, NULL);
}

static void
monitor_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    monitor *mon = arg;
    pb_log(PB_LOG_INFO, "event=monitor_stop signal=%d", (int)sig);
    event_base_loopbreak(mon->ctx.base);
}

static void
monitor_start_duties(monitor *mon)
{
    mon->stats = pb_stats_publisher_start(&mon->ctx);
    mon->metrics = pb_metrics_start(&mon->ctx);
    mon->reaper = pb_reaper_start(&mon->ctx, mon->reap_fd);
    mon->promoter = pb_promote_start(&mon->ctx);
    monitor_check_policy(mon);
}

static void
monitor_stop_duties(monitor *mon)
{
    pb_stats_publisher_stop(mon->stats);
    pb_metrics_stop(mon->metrics);
    pb_reaper_stop(mon->reaper);
    pb_promote_stop(mon->promoter);
}

int
pb_monitor_run(const pb_config *cfg, int reap_fd)
{
    monitor *mon = pb_xcalloc(1, sizeof(*mon));
    mon->reap_fd = reap_fd;
    pb_log_set_role("mon");
    if (gethostname(mon->host, sizeof(mon->host)) != 0)
        snprintf(mon->host, sizeof(mon->host), "localhost");
    mon->host[sizeof(mon->host) - 1] = '\0';

    if (!pb_core_child_start()) {
        pb_log(PB_LOG_ERROR, "event=orphan note=\"master is gone, not starting\"");
        free(mon);
        return PB_EXIT_FATAL;
    }

    mon->ctx.base = event_base_new();
    mon->ctx.cfg = cfg;
    mon->ctx.host = mon->host;
    mon->ctx.cmd = pb_redis_new(mon->ctx.base, cfg, "cmd");
    mon->sig_term = evsignal_new(mon->ctx.base, SIGTERM, monitor_on_signal, mon);
    mon->sig_int = evsignal_new(mon->ctx.base, SIGINT, monitor_on_signal, mon);
    evsignal_add(mon->sig_term, NULL);
    evsignal_add(mon->sig_int, NULL);

    pb_log(PB_LOG_INFO, "event=monitor_start host=%s", mon->host);
    monitor_start_duties(mon);
    event_base_dispatch(mon->ctx.base);
    /* The connection first: its pending callbacks (run with NULL) still use the duties. */
    pb_redis_free(mon->ctx.cmd);
    monitor_stop_duties(mon);

    event_free(mon->sig_term);
    event_free(mon->sig_int);
    event_base_free(mon->ctx.base);
    free(mon);
    return 0;
}
