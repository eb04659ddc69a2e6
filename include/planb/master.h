/* master.h -- the supervisor: forks the workers, restarts the dead, drains, reloads.
 *
 * No event loop, no Redis, no curl in the master: it blocks its signals and
 * waits for them with sigtimedwait, so there is no handler code at all. */
#ifndef PLANB_MASTER_H
#define PLANB_MASTER_H

#include "planb/config.h"

/* Supervises workers for cfg (taken: the master frees it) until SIGTERM/SIGINT
 * has drained them. config_path is re-read on SIGHUP. Returns the exit code. */
int pb_master_run(const char *config_path, pb_config *cfg);

#endif
