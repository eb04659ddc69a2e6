/* worker.h -- one worker process: its event loop, Redis connections, curl multi and jobs.
 *
 * Claims up to `concurrency` jobs and runs each through the chain. SIGTERM
 * drains: stop claiming, let in-flight jobs finish within drain_timeout_ms,
 * hand back what is left, exit 0. */
#ifndef PLANB_WORKER_H
#define PLANB_WORKER_H

#include "planb/config.h"

/* Runs a worker until it drains; returns the process exit code. slot names it in logs. */
int pb_worker_run(const pb_config *cfg, int slot);

#endif
