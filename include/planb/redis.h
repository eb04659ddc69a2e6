/* redis.h -- one hiredis async connection on the worker's libevent loop, with reconnect.
 *
 * Sends AUTH/SELECT and loads every embedded script on each (re)connect.
 * While disconnected, commands fail at once (callback with NULL, from the
 * loop, never re-entrantly) and the connection retries with backoff,
 * logging the outage once and the recovery once. */
#ifndef PLANB_REDIS_H
#define PLANB_REDIS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "planb/config.h"

typedef struct pb_redis pb_redis;

/* reply is borrowed (freed after the callback) and NULL on disconnect or error to send. */
typedef void (*pb_redis_fn)(redisReply *reply, void *arg);

/* Connects to cfg's Redis; name appears in log lines ("cmd", "claim"). */
pb_redis *pb_redis_new(struct event_base *base, const pb_config *cfg, const char *name);
void pb_redis_free(pb_redis *r);
bool pb_redis_is_up(const pb_redis *r);

/* Sends one command (argv copied); fn may be NULL. */
void pb_redis_command(pb_redis *r, pb_redis_fn fn, void *arg, int argc, const char **argv,
                      const size_t *lens);
/* EVALSHA of an embedded script (argv = keys then args); on NOSCRIPT falls back to EVAL once. */
void pb_redis_script(pb_redis *r, const char *script, pb_redis_fn fn, void *arg, int numkeys,
                     int argc, const char **argv, const size_t *lens);

#endif
