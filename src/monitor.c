/* monitor.c -- the monitor process: one libevent loop hosting the host-wide duties.
 *
 * Forked by the master beside the workers (slot "mon"), respawned like them.
 * It owns no jobs, so SIGTERM simply stops the loop. Duties (reaper, stats
 * publisher, metrics endpoint) are started from monitor_start_duties and
 * stopped from monitor_stop_duties; each keeps its own timers and state. */
#include "planb/monitor.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "planb/cache.h"
#include "planb/core.h"
#include "planb/log.h"
#include "planb/reaper.h"

typedef struct monitor {
    pb_monitor_ctx ctx;
    char host[64];
    struct event *sig_term;
    struct event *sig_int;
    int reap_fd;       /* master's dead-worker pipe */
    pb_reaper *reaper; /* lease sweep + immediate hand-back of dead workers */
} monitor;

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
    mon->reaper = pb_reaper_start(&mon->ctx, mon->reap_fd);
    pb_cache_check_policy(mon->ctx.base, mon->ctx.cmd);
}

static void
monitor_stop_duties(monitor *mon)
{
    pb_reaper_free(mon->reaper);
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

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (getppid() == 1) {
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
    monitor_stop_duties(mon);

    pb_redis_free(mon->ctx.cmd);
    event_free(mon->sig_term);
    event_free(mon->sig_int);
    event_base_free(mon->ctx.base);
    free(mon);
    return 0;
}
