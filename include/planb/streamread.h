/* streamread.h -- many planb:stream:<id> readers on one blocking connection (the front door).
 *
 * One XREAD BLOCK names every stream being relayed, each from the last entry it delivered;
 * a stream added while that XREAD is parked wakes it (CLIENT UNBLOCK, sent on cmd), so a
 * new stream is read at once rather than after the block. A stream that does not exist yet
 * (its job still queued) is simply waited on. */
#ifndef PLANB_STREAMREAD_H
#define PLANB_STREAMREAD_H

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "planb/config.h"
#include "planb/redis.h"

typedef struct pb_streamread pb_streamread;
typedef struct pb_streamread_sub pb_streamread_sub;

/* One entry: fields is the entry's [name, value, ...] array (borrowed for the call). fn may
 * remove its own sub. */
typedef void (*pb_streamread_fn)(const redisReply *fields, void *arg);

pb_streamread *pb_streamread_new(struct event_base *base, const pb_config *cfg, pb_redis *cmd);
void pb_streamread_free(pb_streamread *sr);
/* Starts relaying the answer stream of job id from its first entry. */
pb_streamread_sub *pb_streamread_add(pb_streamread *sr, const char *id, pb_streamread_fn fn,
                                     void *arg);
/* Stops it; fn is not called again. */
void pb_streamread_remove(pb_streamread *sr, pb_streamread_sub *sub);

#endif
