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
#include "planb/redissync.h"

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

/* Blocking discovery for the command line (redis.sentinel_tls, sentinel_user as the queries):
 * PB_OK with ip (ip_size bytes) and *port filled, else PB_ERR with why (the last failure). */
int pb_sentinel_resolve_sync(const pb_config *cfg, int per_sentinel_ms, char *ip, size_t ip_size,
                             int *port, char *why, size_t why_size);

/* cfg's Redis over a blocking connection (redissync.h): with sentinels, the master one of them
 * names (each asked within 1 s), then TLS, AUTH and SELECT as cfg says, within timeout_ms.
 * NULL with where ("host:port" or the master's name) and why filled. */
pb_redissync *pb_sentinel_open_sync(const pb_config *cfg, int timeout_ms, char *where,
                                    size_t where_size, char *why, size_t why_size);

#endif
