/* redis.h -- one async Redis connection (TCP or TLS) on the worker's libevent loop, with reconnect.
 *
 * A connection is up only once it is usable: AUTH and SELECT answered OK, the
 * server says (ROLE) it is a master, and every embedded script loaded (which
 * also proves it finished loading its dataset). Host names are resolved with
 * evdns, never by a blocking getaddrinfo; with redis.sentinels the master's
 * address is asked of the sentinels on every (re)connect and +switch-master is
 * followed. An idle-looking connection is pinged; one that stops answering is
 * replaced. While not up, commands fail at once (callback with NULL, from the
 * loop, never re-entrantly); the outage is logged once and the recovery once. */
#ifndef PLANB_REDIS_H
#define PLANB_REDIS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "planb/config.h"

typedef struct pb_redis pb_redis;

/* reply is borrowed (freed after the callback) and NULL on disconnect, timeout or error to send. */
typedef void (*pb_redis_fn)(redisReply *reply, void *arg);

/* Connects to cfg's Redis; name appears in log lines ("cmd", "claim"). */
pb_redis *pb_redis_new(struct event_base *base, const pb_config *cfg, const char *name);
void pb_redis_free(pb_redis *r);
bool pb_redis_is_up(const pb_redis *r);
/* How many times the connection has become usable (1 after the first connect). */
unsigned long pb_redis_ups(const pb_redis *r);
/* Pinging off: for a connection that parks blocking commands (BLMOVE has its own watchdog). */
void pb_redis_no_ping(pb_redis *r);
/* fn(arg) runs (from the loop) each time the connection becomes usable again after an outage. */
void pb_redis_on_up(pb_redis *r, void (*fn)(void *arg), void *arg);

/* Makes r a subscriber: on every (re)connect it SUBSCRIBEs to the n channels (copied), and fn
 * gets each reply of that subscription: ["subscribe", channel, count] confirmations (after
 * one, nothing published there since is missed) and ["message", channel, payload]. Such a
 * connection takes no other command and does not ping (watch it with a heartbeat of your own:
 * pb_redis_reset). Call once, right after pb_redis_new. */
void pb_redis_subscribe(pb_redis *r, int n, const char *const *channels, pb_redis_fn fn, void *arg);
/* Drops the connection (pending callbacks get NULL) and reconnects after the usual backoff:
 * for a connection its owner found stalled (a subscriber whose heartbeat stopped, a blocking
 * read past its bound). why is logged. */
void pb_redis_reset(pb_redis *r, const char *why);

/* Sends one command (argv copied); fn may be NULL. */
void pb_redis_command(pb_redis *r, pb_redis_fn fn, void *arg, int argc, const char **argv,
                      const size_t *lens);
/* EVALSHA of an embedded script (argv = keys then args); on NOSCRIPT falls back to EVAL once. */
void pb_redis_script(pb_redis *r, const char *script, pb_redis_fn fn, void *arg, int numkeys,
                     int argc, const char **argv, const size_t *lens);
/* The same with a bound: when no reply came within timeout_ms, fn gets NULL then and the late
 * reply is dropped (timeout_ms <= 0: no bound). */
void pb_redis_script_within(pb_redis *r, int timeout_ms, const char *script, pb_redis_fn fn,
                            void *arg, int numkeys, int argc, const char **argv,
                            const size_t *lens);

typedef struct pb_redis_lookup pb_redis_lookup;
/* ip is the first IPv4/IPv6 address of the name, NULL when it did not resolve. */
typedef void (*pb_redis_resolved_fn)(const char *ip, void *arg);
/* Resolves host (a name or an address) with evdns, never blocking; fn runs once, from the loop. */
pb_redis_lookup *pb_redis_resolve(struct event_base *base, const char *host,
                                  pb_redis_resolved_fn fn, void *arg);
/* Abandons a lookup (fn is not called); accepts NULL. */
void pb_redis_resolve_cancel(pb_redis_lookup *q);

/* Whether a reply (NULL included) is Redis being away or not ready for now (lost connection,
 * LOADING, BUSY, OOM, READONLY, MASTERDOWN, NOAUTH, TRYAGAIN, ...): the same call may succeed
 * later. false for a success and for an error that sending again cannot fix (planb's bug). */
bool pb_redis_is_transient(const redisReply *reply);

#endif
