/* resultwait.h -- many waits for job results on one subscriber connection (the front door).
 *
 * Every result is published once on planb:results; one SUBSCRIBE per process hears them
 * all and hands each to the wait of its id, if any (a table lookup, so results of other
 * producers cost one id scan). A publish heard by nobody is not lost: after every
 * (re)subscription each wait GETs its result key, and a heartbeat published on the front's
 * own channel every second proves the subscription alive (silence for 3 s replaces it). */
#ifndef PLANB_RESULTWAIT_H
#define PLANB_RESULTWAIT_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "planb/config.h"
#include "planb/redis.h"

typedef struct pb_resultwait pb_resultwait;

/* result: the result JSON (borrowed for the call), or NULL when a pb_resultwait_check found
 * no result. The wait is gone before fn runs. */
typedef void (*pb_resultwait_fn)(const char *result, size_t len, void *arg);

/* Subscribes on a connection of its own; GETs and heartbeats go on cmd (borrowed). name: the
 * front's id ("host:pid"), which names its heartbeat channel. */
pb_resultwait *pb_resultwait_new(struct event_base *base, const pb_config *cfg, pb_redis *cmd,
                                 const char *name);
void pb_resultwait_free(pb_resultwait *w);
/* The subscription is up: a wait added now hears its result. */
bool pb_resultwait_ready(const pb_resultwait *w);
/* Waits for id's result (register before pushing the job, so no publish comes first). */
void pb_resultwait_add(pb_resultwait *w, const char *id, pb_resultwait_fn fn, void *arg);
/* Stops waiting; fn is not called. Unknown ids are ignored. */
void pb_resultwait_remove(pb_resultwait *w, const char *id);
/* GETs id's result key now: fn gets the result, or NULL when there is none yet (a wait past
 * its bound). Nothing happens when the wait is gone by the reply. */
void pb_resultwait_check(pb_resultwait *w, const char *id);
/* Waits in progress. */
size_t pb_resultwait_count(const pb_resultwait *w);

#endif
