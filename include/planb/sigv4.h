/* sigv4.h -- AWS Signature Version 4 for one HTTP request (Amazon Bedrock's authentication).
 *
 * Pure: no clock, no environment, no I/O; the caller passes the time and the credentials.
 * The signing itself is OpenSSL's SHA-256 and HMAC-SHA256; this module only builds the
 * canonical request and the string to sign of the published algorithm around them. */
#ifndef PLANB_SIGV4_H
#define PLANB_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/core.h"

#define PB_SIGV4_MAX_HEADERS 32 /* headers to sign beyond host/x-amz-*: Bedrock sends 2-3 */

typedef struct pb_sigv4_header {
    const char *name;  /* any case; lowercased when signed */
    const char *value; /* trimmed and inner runs of spaces collapsed when signed */
} pb_sigv4_header;

typedef struct pb_sigv4_request {
    const char *method; /* "POST" */
    const char *host;   /* the Host header as sent ("bedrock-runtime.x.amazonaws.com") */
    const char *path;   /* the path as sent (already percent-encoded), NULL = "/" */
    const char *query;  /* the query as sent, without '?', or NULL */
    const pb_sigv4_header *headers; /* more headers to sign (content-type, ...) */
    size_t n_headers;               /* at most PB_SIGV4_MAX_HEADERS */
    const void *body;               /* the payload (may be NULL when body_len is 0) */
    size_t body_len;                /* its length */
    const char *body_sha256_hex;    /* the payload's SHA-256 in hex, used instead of body if set */
    bool sign_content_sha256;       /* also sign an x-amz-content-sha256 header */
    const char *region;             /* "us-east-1" */
    const char *service;            /* "bedrock" (not S3: the path is encoded again) */
    const char *access_key_id;      /* AKIA... */
    const char *secret_access_key;  /* never copied into the outputs */
    const char *session_token;      /* NULL or "" = none; else signed as x-amz-security-token */
    const char *amz_date;           /* "YYYYMMDDTHHMMSSZ" (UTC) */
} pb_sigv4_request;

typedef struct pb_sigv4_signed {
    char *authorization;     /* the Authorization header value */
    char *amz_date;          /* x-amz-date value (a copy of the request's) */
    char *content_sha256;    /* x-amz-content-sha256 value: the payload hash, 64 hex */
    char *security_token;    /* x-amz-security-token value, NULL without a session token */
    char *canonical_request; /* step 1 of the algorithm, for tests and the mock's 403 text */
    char *string_to_sign;    /* step 2 */
} pb_sigv4_signed;

/* Signs req into out (all strings owned by out: pb_sigv4_signed_free). PB_ERR with err
 * ("BAD_SIGV4 ...") on a malformed date, a missing field or a bound passed. */
int pb_sigv4_sign(const pb_sigv4_request *req, pb_sigv4_signed *out, pb_error *err);
/* Frees out's strings (out itself is the caller's); accepts a zeroed struct. */
void pb_sigv4_signed_free(pb_sigv4_signed *out);
/* A request as received (planb-mock checks Bedrock's signatures with it). */
typedef struct pb_sigv4_received {
    const char *method;             /* "POST" */
    const char *path;               /* the path as received, still percent-encoded */
    const char *query;              /* the query as received, without '?', or NULL */
    const pb_sigv4_header *headers; /* every header received, Authorization included */
    size_t n_headers;               /* their count */
    const void *body;               /* the body received */
    size_t body_len;                /* its length */
} pb_sigv4_received;

/* PB_OK when r's Authorization is a SigV4 signature by access_key_id with secret for
 * region/service over exactly r's method, path, query, signed headers and body (an
 * x-amz-content-sha256 sent must be the body's hash). PB_ERR with err "BAD_SIGV4 why" else.
 * The time is not judged: *amz_date (NULL allowed) gets the signed x-amz-date, borrowed. */
int pb_sigv4_verify(const pb_sigv4_received *r, const char *region, const char *service,
                    const char *access_key_id, const char *secret_access_key, const char **amz_date,
                    pb_error *err);
/* Formats wall-clock ms since the epoch as "YYYYMMDDTHHMMSSZ" (UTC) into out. */
void pb_sigv4_amz_date(int64_t wall_ms, char out[17]);
/* Percent-encodes n bytes of s for one path segment or query part (everything but
 * A-Z a-z 0-9 - _ . ~, so ':' is %3A and '/' is %2F); caller frees. */
char *pb_sigv4_uri_encode(const char *s, size_t n);

#endif
