/* monitor.h -- the host's monitor process: cluster-wide duties that need a loop and Redis.
 *
 * The master has no event loop and no Redis connection (it only supervises),
 * so periodic work that spans workers runs in one extra child the master
 * forks and respawns like a worker: the lease reaper, the stats publisher and
 * the Prometheus endpoint. Each duty is a small module (duty.h) started from here. */
#ifndef PLANB_MONITOR_H
#define PLANB_MONITOR_H

#include "planb/config.h"

/* Runs the monitor until SIGTERM/SIGINT; returns the process exit code. reap_fd: read end of
 * the master's dead-worker pipe (see reaper.h), or -1. */
int pb_monitor_run(const pb_config *cfg, int reap_fd);

#endif
