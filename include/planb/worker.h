/* worker.h -- one worker process: its event loop, Redis connections, curl multi and jobs.
 *
 * Claims up to `concurrency` jobs and runs each through the chain. SIGTERM
 * drains: stop claiming, let in-flight jobs finish within drain_timeout_ms,
 * hand back what is left, exit 0. */
#ifndef PLANB_WORKER_H
#define PLANB_WORKER_H

#include <stddef.h>
#include <sys/types.h>

#include "planb/config.h"

/* Runs a worker until it drains; returns the process exit code. slot names it in logs. */
int pb_worker_run(const pb_config *cfg, int slot);
/* The id of the worker process pid on this host, "host:pid" (its key in planb:workers). */
void pb_worker_id(char *buf, size_t size, pid_t pid);

#endif
