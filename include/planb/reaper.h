/* reaper.h -- hands the jobs of dead workers back to their queue (a monitor duty).
 *
 * Two triggers, one Lua script (lua/reap.lua): a sweep every REAPER_SWEEP_MS for
 * workers whose heartbeat is older than lease_ms (a dead host, a hung worker),
 * and worker ids the master writes to a pipe when it reaps a dead child (a dead
 * worker's jobs go back at once instead of after the lease). */
#ifndef PLANB_REAPER_H
#define PLANB_REAPER_H

#include "planb/duty.h"

typedef struct pb_reaper pb_reaper;

/* Starts both triggers on ctx's loop and connection (borrowed; they outlive the reaper).
 * notify_fd: non-blocking read end of the master's pipe ("host:pid\n" per dead worker), or -1. */
pb_reaper *pb_reaper_start(const pb_duty_ctx *ctx, int notify_fd);
/* Stops the timers and frees r; accepts NULL. */
void pb_reaper_stop(pb_reaper *r);

#endif
