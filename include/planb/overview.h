/* overview.h -- the admin page's overview: figures read from Redis once per refresh, history
 * kept in memory.
 *
 * One overview.lua per refresh (admin.refresh_ms) serves every viewer: the page's cost on
 * Redis does not grow with viewers or queue lengths. The per-minute stats hashes
 * (planb:stats:m:<minute>, 25 h) are the history: after the first refresh only the current and
 * the previous minute are read again; older minutes are read once, newest first, 60 per
 * refresh, so the 24-hour charts fill within a minute of a start. */
#ifndef PLANB_OVERVIEW_H
#define PLANB_OVERVIEW_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/config.h"
#include "planb/redissync.h"

#define PB_OVERVIEW_MINUTES 1440 /* the history: 24 hours of minutes */

typedef struct pb_overview pb_overview;

pb_overview *pb_overview_new(const pb_config *cfg);
void pb_overview_free(pb_overview *o);
/* Reads Redis once; PB_OK, or PB_ERR with why filled (the last figures are kept). */
int pb_overview_refresh(pb_overview *o, pb_redissync *c, char *why, size_t why_size);
/* The overview as served by GET /api/overview (caller puts); redis_up false marks it stale. */
json_object *pb_overview_json(const pb_overview *o, bool redis_up, int64_t now_ms);
/* The paused state of queue (its JSON from planb:paused, borrowed) as of the last refresh. */
const char *pb_overview_paused(const pb_overview *o, const char *queue);

#endif
