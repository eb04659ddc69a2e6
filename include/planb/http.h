/* http.h -- libcurl multi driven by a libevent loop: many concurrent upstream calls, one thread.
 *
 * A call takes ownership of a pb_http_request, runs it with a connect and a
 * total timeout, and reports once through its callback. Reply bodies are
 * bounded; a bigger body ends the call with `too_large`. */
#ifndef PLANB_HTTP_H
#define PLANB_HTTP_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include <stddef.h>

#include "planb/buf.h"

typedef struct pb_http pb_http;

/* A POST to send: built by a provider adapter, owned by the call once started. */
typedef struct pb_http_request {
    char *url;       /* full URL (owned) */
    char **headers;  /* "Name: value" lines, NULL-terminated (owned) */
    char *body;      /* request body (owned) */
    size_t body_len; /* bytes of body */
    /* How the call goes, borrowed from the config (which outlives every call); NULL: the
     * default. Every call sets them afresh on its (pooled) handle, so none leaks to the next. */
    const char *ca_file;   /* CURLOPT_CAINFO instead of the system store */
    const char *cert_file; /* client certificate (CURLOPT_SSLCERT), with key_file */
    const char *key_file;  /* CURLOPT_SSLKEY */
    const char *proxy;     /* CURLOPT_PROXY, used for every host; NULL: libcurl's env vars */
} pb_http_request;

/* Frees r and all it owns (requests are heap-allocated, then handed to a call); accepts NULL. */
void pb_http_request_free(pb_http_request *r);
typedef struct pb_http_call pb_http_call;

typedef struct pb_http_reply {
    long status;      /* HTTP status, 0 when no response arrived */
    int curl_code;    /* CURLcode; 0 when the transfer completed */
    bool timed_out;   /* connect or total timeout */
    bool too_large;   /* body passed the limit */
    const char *body; /* NUL-terminated (may be empty), valid during the callback */
    size_t body_len;
    bool streamed; /* a streaming call's 2xx body went to its data callback (body empty) */
    bool stopped;  /* the data callback stopped the transfer */
    const char *retry_after; /* Retry-After header value or NULL */
    int64_t elapsed_ms;      /* start to completion */
    const char *error;       /* libcurl's words for a failed transfer ("" when none) */
} pb_http_reply;

/* Called once per call, from the loop; reply is borrowed for the call's duration. */
typedef void (*pb_http_done_fn)(const pb_http_reply *reply, void *arg);

/* One per worker loop; reply_max_bytes bounds a buffered body, stream_max_bytes a streamed
 * one; max_conns sizes curl's connection cache. */
pb_http *pb_http_new(struct event_base *base, size_t reply_max_bytes, size_t stream_max_bytes,
                     int max_conns);
void pb_http_free(pb_http *h);

/* Starts a POST; takes ownership of req. Returns the call (cancel handle). */
pb_http_call *pb_http_start(pb_http *h, pb_http_request *req, int connect_timeout_ms,
                            int timeout_ms, pb_http_done_fn done, void *arg);
/* A piece of a streaming call's 2xx body, from inside the transfer: it must not start or
 * cancel calls. Non-zero stops the transfer (the done callback then reports stopped). */
typedef int (*pb_http_data_fn)(const char *p, size_t n, void *arg);
/* pb_http_start whose 2xx body goes to on_data as it arrives (bounded in total by
 * stream_max_bytes); a non-2xx body is buffered as usual for classification. */
pb_http_call *pb_http_start_stream(pb_http *h, pb_http_request *req, int connect_timeout_ms,
                                   int timeout_ms, pb_http_data_fn on_data, pb_http_done_fn done,
                                   void *arg);
/* Aborts a call that has not reported yet; its callback never runs. */
void pb_http_cancel(pb_http_call *call);
/* Calls in flight. */
int pb_http_active(const pb_http *h);

#endif
