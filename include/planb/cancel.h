/* cancel.h -- cancelling a job by id: cancel.lua's arguments and its answer (docs/redis.md).
 *
 * A producer, `planb cancel` or the front door runs cancel.lua with these arguments; the
 * workers subscribe to <p>:cancel and abort the running job it names (worker.c, chain.c). */
#ifndef PLANB_CANCEL_H
#define PLANB_CANCEL_H

#include "planb/config.h"

#define PB_CANCEL_SCAN_MAX 10000 /* entries of one queue list or delayed set cancel.lua scans */

/* What cancel.lua did (its reply). */
typedef enum {
    PB_CANCEL_REMOVED,  /* queued or delayed: removed, its cancelled result written */
    PB_CANCEL_RUNNING,  /* in a worker's in-flight list: its worker was told to abort it */
    PB_CANCEL_UNKNOWN,  /* found nowhere (marked and announced all the same) */
    PB_CANCEL_FINISHED, /* it has a result already: nothing done */
    PB_CANCEL_ERROR     /* not a reply of cancel.lua */
} pb_cancel_outcome;

/* cancel.lua's keys then arguments for job id (EVALSHA <sha> <*numkeys> argv...); the
 * strings in *owned are new, *view aliases them; free both with pb_cancel_args_free.
 * who is the result's "worker" (e.g. "cancel"). Returns the number of strings. */
int pb_cancel_args(const pb_config *cfg, const char *id, const char *who, char ***owned,
                   const char ***view, int *numkeys);
void pb_cancel_args_free(char **owned, const char **view, int argc);
/* cancel.lua's reply text ("removed", "running", "unknown", "finished") as an outcome. */
pb_cancel_outcome pb_cancel_outcome_of(const char *reply);

#endif
