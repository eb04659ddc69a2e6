/* redisconn.h -- one RESP connection to a Redis server or sentinel, over TCP or TLS.
 *
 * The transport under pb_redis and the sentinel queries: libevent does the I/O (a socket
 * bufferevent, or an OpenSSL one over it), hiredis only formats commands and parses
 * replies, so plain and TLS connections share every line above the socket. A connection
 * is used once: it connects, carries commands, and ends (failure or close) exactly once;
 * its owner then frees it and makes a new one. Callbacks always run from the loop, never
 * from inside a call of this module. */
#ifndef PLANB_REDISCONN_H
#define PLANB_REDISCONN_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "planb/tls.h"

typedef struct pb_redisconn pb_redisconn;

/* A reply (borrowed: freed after the call) to one command, or NULL when the connection ended
 * or was freed before it came. */
typedef void (*pb_redisconn_reply_fn)(redisReply *reply, void *arg);
/* The connection is usable (TCP connected, TLS handshake done: ended = false), or it ended
 * (ended = true; why says how, tls says the cause is TLS: a failed handshake or verification,
 * or the wrong URL scheme). After ended, every command sent got its NULL; only free is left. */
typedef void (*pb_redisconn_event_fn)(bool ended, const char *why, bool tls, void *arg);

/* Connects to ip:port (an address, never a name), over TLS with tls (NULL: plain TCP) proving
 * tls_host (the name or address the certificate must hold). Commands may be sent at once;
 * they go out, in order, once connected. */
pb_redisconn *pb_redisconn_new(struct event_base *base, const char *ip, int port, const pb_tls *tls,
                               const char *tls_host, pb_redisconn_event_fn on_event, void *arg);
/* Ends it now if it has not ended (on_event is not called); each command still waiting gets
 * its NULL now (from inside a callback of c: when that callback returns). Accepts NULL. */
void pb_redisconn_free(pb_redisconn *c);

/* Sends one command (argv copied into the output; lens NULL: C strings); fn may be NULL.
 * false (fn not called) only when the connection has ended. */
bool pb_redisconn_command(pb_redisconn *c, pb_redisconn_reply_fn fn, void *arg, int argc,
                          const char **argv, const size_t *lens);
/* Sends SUBSCRIBE with the channels; from then on fn gets every reply of the connection
 * (confirmations and messages) until it ends, when it gets NULL once. */
bool pb_redisconn_subscribe(pb_redisconn *c, pb_redisconn_reply_fn fn, void *arg, int argc,
                            const char *const *channels);

/* Bytes queued and not yet written. */
size_t pb_redisconn_unsent(const pb_redisconn *c);
/* Writes what is queued now rather than when the loop next polls (plain TCP only: a TLS
 * connection writes through its own state machine, from the loop). */
void pb_redisconn_write_now(pb_redisconn *c);
/* Whether the connection is over TLS. */
bool pb_redisconn_is_tls(const pb_redisconn *c);

#endif
