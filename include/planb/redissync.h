/* redissync.h -- a blocking RESP connection for the command line, over TCP or TLS.
 *
 * The one-shot commands (submit, stats, dead, result, check --connect) and the blocking
 * Sentinel lookup run once and exit, so they need no event loop; hiredis 0.14's blocking
 * API has no TLS, so this module owns the socket and the OpenSSL session and uses hiredis
 * only to format commands and parse replies. Every connect, read and write is bounded by
 * the connection's timeout. After an I/O error or a timeout the connection is dead: every
 * later command returns NULL and pb_redissync_error says why. */
#ifndef PLANB_REDISSYNC_H
#define PLANB_REDISSYNC_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "planb/config.h"
#include "planb/tls.h"

typedef struct pb_redissync pb_redissync;

/* Connects to host:port (a name or an address), over TLS with tls (NULL: plain TCP) proving
 * tls_host, connect and handshake within timeout_ms. NULL with why filled (never a secret). */
pb_redissync *pb_redissync_connect(const char *host, int port, const pb_tls *tls,
                                   const char *tls_host, int timeout_ms, char *why,
                                   size_t why_size);
/* cfg's Redis (its redis_* fields) at host:port (cfg->redis_host's, or the master a sentinel
 * named): TLS with cfg->redis_tls when on, then AUTH and SELECT as cfg says, each bounded by
 * timeout_ms. NULL with why filled ("AUTH failed: ...", OpenSSL's reason...). */
pb_redissync *pb_redissync_open(const pb_config *cfg, const char *host, int port, int timeout_ms,
                                char *why, size_t why_size);
void pb_redissync_free(pb_redissync *c);

/* One command (hiredis's format: %s, %b, %d...) and its reply (caller freeReplyObject()s;
 * an error reply is a reply), or NULL when the connection failed or timed out. */
redisReply *pb_redissync_command(pb_redissync *c, const char *fmt, ...);
/* The same with an argument vector (lens NULL: C strings). */
redisReply *pb_redissync_command_argv(pb_redissync *c, int argc, const char **argv,
                                      const size_t *lens);
/* The bound of each later command (a BLPOP waits longer than a GET). */
void pb_redissync_set_timeout(pb_redissync *c, int timeout_ms);
/* Why the last command returned NULL ("" while none did); borrowed. */
const char *pb_redissync_error(const pb_redissync *c);

#endif
