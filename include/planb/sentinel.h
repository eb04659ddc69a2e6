/* sentinel.h -- Redis Sentinel: where the master is now, and when it moves.
 *
 * Discovery follows the Sentinel client guidelines: ask each sentinel of
 * redis.sentinels in turn (the one that answered last first) with SENTINEL
 * get-master-addr-by-name, each with a short timeout; the caller then checks
 * ROLE on the address it got (redis.c). A watch subscribes to +switch-master
 * on one reachable sentinel and reports a move of our master. */
#ifndef PLANB_SENTINEL_H
#define PLANB_SENTINEL_H

#include <event2/event.h>
#include <stddef.h>

#include "planb/config.h"

typedef struct pb_sentinel_query pb_sentinel_query;
typedef struct pb_sentinel_watch pb_sentinel_watch;

/* ip is NULL when no sentinel answered; called once, from the loop; the query is gone after. */
typedef void (*pb_sentinel_fn)(const char *ip, int port, void *arg);

/* Asks cfg's sentinels for cfg->master_name, each for at most per_sentinel_ms. */
pb_sentinel_query *pb_sentinel_resolve(struct event_base *base, const pb_config *cfg,
                                       int per_sentinel_ms, pb_sentinel_fn fn, void *arg);
/* Abandons a query: fn is not called. Accepts NULL. */
void pb_sentinel_cancel(pb_sentinel_query *q);

/* Calls fn(new ip, new port, arg) on every +switch-master of cfg->master_name. */
pb_sentinel_watch *pb_sentinel_watch_new(struct event_base *base, const pb_config *cfg,
                                         pb_sentinel_fn fn, void *arg);
void pb_sentinel_watch_free(pb_sentinel_watch *w);

/* Blocking discovery for the command line: PB_OK with ip (ip_size bytes) and *port filled. */
int pb_sentinel_resolve_sync(const pb_config *cfg, int per_sentinel_ms, char *ip, size_t ip_size,
                             int *port);

#endif
