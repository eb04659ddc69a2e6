/* adminauth.h -- who is asking the admin page: keys by their SHA-256, signed session cookies,
 * CSRF tokens.
 *
 * A login presents a key of admin.keys once; the page then holds a session token in an
 * HttpOnly cookie: "v1.<name hex>.<expiry s>.<nonce hex>.<HMAC-SHA256 hex>", signed (OpenSSL's
 * HMAC) with a secret the master draws at its start, so sessions survive admin respawns and
 * reloads and end with the master. The MAC covers the key's SHA-256 too: a session dies when
 * its key is removed or replaced in the config. The CSRF token is another MAC of the session's
 * nonce, so it needs no storage either. Pure: no I/O. */
#ifndef PLANB_ADMINAUTH_H
#define PLANB_ADMINAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "planb/config.h"

#define PB_ADMINAUTH_SECRET_BYTES 32
#define PB_ADMINAUTH_TOKEN_MAX    384 /* a session token, NUL included */
#define PB_ADMINAUTH_CSRF_MAX     65  /* a CSRF token: 64 hex digits and NUL */

/* The key of admin.keys whose SHA-256 is that of key[0..len) (constant-time compares), or NULL. */
const pb_admin_key *pb_adminauth_key(const pb_admin_conf *ac, const char *key, size_t len);
/* A new session token for k, valid until now_s + ttl_s; nonce is 16 random bytes. */
void pb_adminauth_session(const unsigned char *secret, const pb_admin_key *k, int64_t now_s,
                          int ttl_s, const unsigned char nonce[16],
                          char out[PB_ADMINAUTH_TOKEN_MAX]);
/* The key a session token speaks for (its signature good, not expired, its key still
 * configured with the same SHA-256), or NULL; csrf (may be NULL) gets its CSRF token. */
const pb_admin_key *pb_adminauth_check(const unsigned char *secret, const pb_admin_conf *ac,
                                       const char *token, int64_t now_s,
                                       char csrf[PB_ADMINAUTH_CSRF_MAX]);
/* The CSRF token of a listener without keys (loopback only): every request is "local". */
void pb_adminauth_local_csrf(const unsigned char *secret, char csrf[PB_ADMINAUTH_CSRF_MAX]);
/* The two CSRF tokens are equal (constant time). */
int pb_adminauth_csrf_ok(const char *want, const char *got);

#endif
