/* promote.h -- delayed jobs back to their queue on time (a monitor duty).
 *
 * claim.lua parks a job whose run_at_ms is still ahead in planb:delayed:<queue>;
 * this duty runs lua/promote.lua for all configured queues at least every
 * PB_PROMOTE_TICK_MS, and at the earliest waiting job's time when that is sooner
 * (but not within PB_PROMOTE_MIN_MS of the last call); the script moves the due
 * ones (at most PB_PROMOTE_MAX per queue and call) onto the claim end of their
 * queue. Every host's monitor runs it; the script's
 * ZREM decides, so no job is promoted twice. */
#ifndef PLANB_PROMOTE_H
#define PLANB_PROMOTE_H

#include "planb/duty.h"

#define PB_PROMOTE_TICK_MS 50  /* the longest wait between calls: bounds a job's lateness */
#define PB_PROMOTE_MIN_MS  10  /* the shortest: at most 100 calls/s per monitor */
#define PB_PROMOTE_MAX     500 /* per queue and call: a backlog drains 500 at a time */

typedef struct pb_promoter pb_promoter;

/* Starts the tick on ctx's loop and connection (borrowed; they outlive the promoter). */
pb_promoter *pb_promote_start(const pb_duty_ctx *ctx);
/* Stops the timer and frees p; accepts NULL. */
void pb_promote_stop(pb_promoter *p);

#endif
