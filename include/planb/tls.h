/* tls.h -- OpenSSL contexts made from planb's TLS options, and why a handshake failed.
 *
 * One module owns the TLS policy so every connection gets it the same way: Redis and
 * Sentinel (redisconn.c, redissync.c), the command line, and the front door's HTTPS. A
 * client context verifies the chain (the system store unless ca_file/ca_dir) and the host
 * name (or address) of the peer, sends SNI, and never goes below TLS 1.2. A context reads
 * its files when made: SIGHUP starts new workers, which make new contexts from the
 * rotated files. */
#ifndef PLANB_TLS_H
#define PLANB_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "planb/config.h"

typedef struct pb_tls pb_tls;

/* A client context from conf (conf->on is not looked at); NULL with why filled (the file and
 * OpenSSL's reason) when a CA, certificate or key file cannot be used. */
pb_tls *pb_tls_client_new(const pb_tls_conf *conf, char *why, size_t why_size);
/* A server context with the certificate chain and key (the front door's HTTPS). */
pb_tls *pb_tls_server_new(const char *cert_file, const char *key_file, char *why, size_t why_size);
void pb_tls_free(pb_tls *t);

/* A new client SSL for a connection to host (a name or an address): the peer must prove
 * conf->server_name when set, else host; SNI carries that name unless it is an address.
 * NULL only when out of memory. */
SSL *pb_tls_client_ssl(const pb_tls *t, const char *host);
/* A new server SSL (accepting). */
SSL *pb_tls_server_ssl(const pb_tls *t);
/* Whether t checks nothing (verify: false): callers warn about it. */
bool pb_tls_unverified(const pb_tls *t);

/* Why the TLS connection of ssl failed, from its verify result and the first error on the
 * thread's OpenSSL error queue (err: that error, already taken off, or 0 to take it here):
 * "certificate verify failed: certificate has expired", "tlsv13 alert certificate required",
 * "wrong version number (the server speaks plaintext: use redis://)". The queue is cleared. */
void pb_tls_reason(SSL *ssl, unsigned long err, char *buf, size_t size);
/* Whether err is a peer that closed without close_notify: OpenSSL 3 reports it as an error
 * and libevent 2.1.12 predates that; planb treats it as an orderly EOF. */
bool pb_tls_error_is_eof(unsigned long err);

#endif
