/* main.c -- planb-mock: a fault-injecting mock LLM server for tests, benchmarks and demos.
 *
 * One thread, one libevent loop, evhttp. It speaks enough of the OpenAI chat
 * and embeddings APIs, the Anthropic Messages API, Azure OpenAI's paths,
 * Gemini's generateContent and Bedrock's Converse (SigV4 checked, streams in
 * event-stream frames) for planb, and answers
 * each request the way the behaviour of its "model" says: a good reply, an
 * error status, a hang, a trickle, a TCP reset, a broken body (model.h
 * lists them). A request with "stream": true is answered as the real APIs
 * stream (server-sent events), with stream faults of its own: an error
 * event, a reset, a stall, a malformed event, a missing terminator. Tests
 * pick faults per model through /_mock/ control endpoints and read back
 * counters and the last request.
 *
 * Requests answered at once never allocate call state. A request that must
 * wait (latency_ms, hang, drip, reset, stream) becomes a mock_call with a
 * timer and a watch on the client socket: evhttp stops reading a connection
 * once it has read a request, so without the watch a client that gives up
 * on a hung request (or a stalled stream) would never be noticed. When the
 * watch sees EOF the connection is freed; every way a connection dies (that,
 * a write error during a drip or a stream, a reset, evhttp_free at exit)
 * ends in the connection's close callback, the single place a pending call
 * is torn down. A call that finishes normally clears the close callback
 * first, so it cannot fire for a freed call. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <json-c/json.h>

#include "planb/core.h"
#include "planb/hash.h"
#include "planb/log.h"

#include "bedrock.h"
#include "dialect.h"
#include "model.h"

#define MOCK_MAX_BODY_BYTES ((size_t)64 << 20) /* well above any real chat request */
#define MOCK_MODEL_MAX_LEN  256                /* longer "model" strings are rejected */
#define MOCK_GEMINI_PREFIX  "/v1beta/models/"  /* Gemini's API: the model in the path */
#define MOCK_BEDROCK_PREFIX "/model/"          /* Bedrock's Converse: the model id in the path */
#define MOCK_HEADERS_MAX    64                 /* headers a Bedrock request may carry (signed) */
/* The credentials Bedrock requests must be signed with (--aws-access-key-id and
 * --aws-secret-access-key change them; tests/support/harness.c th_bedrock_env uses these). */
#define MOCK_AWS_KEY_ID       "AKIAPLANBMOCK0000000"
#define MOCK_AWS_SECRET       "planb-mock-secret-access-key"
#define MOCK_AMZN_TYPE_SUFFIX ":http://internal.amazon.com/coral/com.amazon.bedrock/"
#define MOCK_HEADER_MAX_LEN   128 /* longer header names are not recorded */
/* listen(2) backlog: the kernel caps it at net.core.somaxconn; asking for the
 * most lets a burst of thousands of connects queue instead of retrying SYNs. */
#define MOCK_BACKLOG 65535
/* reset_mid polls this often, this many times, for the events before it to leave. */
#define MOCK_RESET_WAIT_MS    2
#define MOCK_RESET_WAIT_TRIES 500
#define MOCK_PING_DEFAULT_MS  1000 /* stall_pings period when chunk_interval_ms is 0 */
#define MOCK_STAMP_LEN        16   /* '@' run replaced by the send time in us (16 digits) */

static const char mock_stamp_marker[MOCK_STAMP_LEN + 1] = "@@@@@@@@@@@@@@@@";

static const char mock_html[] = "<html><body><h1>502 Bad Gateway</h1></body></html>";

typedef struct mock_server {
    struct event_base *base; /* the one loop */
    struct evhttp *http;     /* the server */
    pb_mock_table *table;    /* behaviours and counters */
    json_tokener *tok;       /* reused for every body */
    long pending;            /* calls held (latency, hang, drip, reset) */
    unsigned long next_id;   /* numbers replies: chatcmpl-mock-<n>, msg_mock_<n> */
    uint64_t rng;            /* splitmix64 state for fail_rate and slow_rate draws (fixed seed) */
    long trace_requests;     /* POST /v1/traces taken */
    long trace_bytes;        /* ... and their bytes */
    const char *aws_key_id;  /* Bedrock: the access key id signatures must be by */
    const char *aws_secret;  /* ... and its secret */
} mock_server;

typedef enum {
    MOCK_SEND,  /* answer status + body */
    MOCK_DRIP,  /* chunked 200 body, drip_bytes per tick */
    MOCK_RESET, /* abortive close, no answer */
    MOCK_HANG,  /* no answer until the client leaves */
    MOCK_STREAM /* 200 text/event-stream, one event per tick, with the stream fault */
} mock_action;

/* An answer: built by mock_plan, sent at once or held in a mock_call. */
typedef struct mock_call {
    mock_server *srv;                /* owner */
    struct evhttp_request *req;      /* borrowed from evhttp until answered */
    struct evhttp_connection *evcon; /* the request's connection */
    struct event *timer;             /* latency, then drip ticks; NULL for hang */
    struct event *watch;             /* client socket readable: it may have left */
    mock_action action;              /* what to do when the timer fires */
    int status;                      /* HTTP status (MOCK_SEND) */
    const char *content_type;        /* static string */
    char *body;                      /* owned; sent as is (MOCK_SEND) or dripped */
    size_t len;                      /* bytes of body to send */
    size_t sent;                     /* MOCK_DRIP: bytes sent so far */
    char *retry_after;               /* owned; Retry-After header or NULL */
    char *error_type;                /* owned; Bedrock's x-amzn-ErrorType header or NULL */
    int latency_ms;                  /* delay before the answer starts */
    int drip_bytes;                  /* MOCK_DRIP: bytes per tick */
    int drip_interval_ms;            /* MOCK_DRIP: tick period */
    bool started;                    /* MOCK_DRIP, MOCK_STREAM: headers sent */
    pb_mock_api api;                 /* MOCK_STREAM: the dialect (error, malformed, ping) */
    pb_mock_stream *stream;          /* MOCK_STREAM: the events (owned); body = error event */
    size_t next;                     /* MOCK_STREAM: the next event to send */
    size_t fault_at;                 /* MOCK_STREAM: the fault comes before events[fault_at] */
    pb_mock_stream_fault fault;      /* MOCK_STREAM: what goes wrong */
    int chunk_interval_ms;           /* MOCK_STREAM: tick period after the first event */
    bool stall_pings;                /* MOCK_STREAM: pings while stalled (if the dialect has) */
    bool faulted;                    /* MOCK_STREAM: the fault has happened */
    int reset_tries;                 /* MOCK_STREAM: waits so far for the output to drain */
} mock_call;

static const char *
mock_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 529:
        return "Overloaded";
    default:
        return status < 500 ? "Client Error" : "Server Error";
    }
}

static void
mock_free_cleanup(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)(uintptr_t)data);
}

/* Sends a complete answer; takes body (handed to the output buffer without a copy).
 * error_type, when set, goes out as x-amzn-ErrorType (Bedrock names its exceptions there). */
static void
mock_respond(struct evhttp_request *req, int status, const char *content_type, char *body,
             size_t len, const char *retry_after, const char *error_type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", content_type);
    if (retry_after != NULL)
        evhttp_add_header(h, "Retry-After", retry_after);
    if (error_type != NULL)
        evhttp_add_header(h, "x-amzn-ErrorType", error_type);
    if (len > 0)
        evbuffer_add_reference(evhttp_request_get_output_buffer(req), body, len, mock_free_cleanup,
                               NULL);
    else
        free(body);
    evhttp_send_reply(req, status, mock_reason(status), NULL);
}

/* Sends a JSON answer built from o (taken). */
static void
mock_respond_json(struct evhttp_request *req, int status, json_object *o)
{
    size_t n;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    mock_respond(req, status, "application/json", pb_xstrndup(s, n), n, NULL, NULL);
    json_object_put(o);
}

/* Control endpoint success: {"ok":true}. */
static void
mock_respond_ok(struct evhttp_request *req)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    mock_respond_json(req, 200, o);
}

/* Control endpoint errors: {"error":"..."}. */
static void
mock_respond_control_error(struct evhttp_request *req, int status, const char *msg)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(msg));
    mock_respond_json(req, status, o);
}

/* x-amzn-ErrorType for a Bedrock error answer of status (type NULL: the usual one); caller
 * frees. NULL for the other dialects. */
static char *
mock_amzn_type(pb_mock_api api, int status, const char *type)
{
    if (api != PB_MOCK_API_BEDROCK)
        return NULL;
    const char *name = pb_mock_bedrock_error_type(status, type);
    size_t n = strlen(name), k = strlen(MOCK_AMZN_TYPE_SUFFIX);
    char *out = pb_xmalloc(n + k + 1);
    memcpy(out, name, n);
    memcpy(out + n, MOCK_AMZN_TYPE_SUFFIX, k + 1);
    return out;
}

/* The dialect's error answer; type NULL: the status's usual one. */
static void
mock_respond_api_error(struct evhttp_request *req, pb_mock_api api, int status, const char *type,
                       const char *msg)
{
    size_t len;
    char *body = pb_mock_dialect_error(api, status, type, msg, NULL, &len);
    char *amzn = mock_amzn_type(api, status, type);
    mock_respond(req, status, "application/json", body, len, NULL, amzn);
    free(amzn);
}

/* Parses the request body; NULL unless it is complete JSON. Caller puts. */
static json_object *
mock_parse_body(mock_server *srv, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n == 0 || n > INT_MAX)
        return NULL;
    const char *data = (const char *)evbuffer_pullup(in, -1);
    json_tokener_reset(srv->tok);
    json_object *o = json_tokener_parse_ex(srv->tok, data, (int)n);
    if (o == NULL)
        return NULL;
    for (size_t i = json_tokener_get_parse_end(srv->tok); i < n; i++) {
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n') {
            json_object_put(o);
            return NULL;
        }
    }
    return o;
}

static void
mock_call_free(mock_call *c)
{
    if (c->timer != NULL)
        event_free(c->timer);
    if (c->watch != NULL)
        event_free(c->watch);
    free(c->body);
    free(c->retry_after);
    free(c->error_type);
    pb_mock_stream_free(c->stream);
    c->srv->pending--;
    free(c);
}

/* Close callback of a connection with a pending call: the single teardown path for calls
 * whose client went away (or whose connection evhttp_free is freeing at exit). */
static void
mock_on_close(struct evhttp_connection *evcon, void *arg)
{
    mock_call *c = arg;
    (void)evcon;
    /* On a network error evhttp detaches an unanswered request before freeing the
     * connection and leaves it to its user; otherwise the connection frees it. */
    if (evhttp_request_get_connection(c->req) == NULL)
        evhttp_request_free(c->req);
    mock_call_free(c);
}

/* The client socket of a held request became readable: EOF or an error means the
 * client left. Other data (a pipelined request) ends the watch; evhttp reads it later. */
static void
mock_on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    mock_call *c = arg;
    char byte;
    (void)what;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(c->watch, NULL);
        return;
    }
    evhttp_connection_free(c->evcon); /* calls mock_on_close, which frees c */
}

/* Ends a call that answered: the close callback must not fire for it any more. */
static void
mock_call_done(mock_call *c)
{
    evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    mock_call_free(c);
}

/* Ends a chunked reply (drip, stream) and its call. */
static void
mock_reply_end(mock_call *c)
{
    evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    evhttp_send_reply_end(c->req);
    mock_call_free(c);
}

static void
mock_arm(mock_call *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
}

static void
mock_drip_tick(mock_call *c)
{
    if (!c->started) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
        evhttp_add_header(h, "Content-Type", c->content_type);
        if (c->retry_after != NULL)
            evhttp_add_header(h, "Retry-After", c->retry_after);
        evhttp_send_reply_start(c->req, 200, "OK");
        c->started = true;
        mock_arm(c, c->drip_interval_ms);
        return;
    }
    size_t k = c->len - c->sent;
    if (k > (size_t)c->drip_bytes)
        k = (size_t)c->drip_bytes;
    struct evbuffer *chunk = evbuffer_new();
    evbuffer_add(chunk, c->body + c->sent, k);
    evhttp_send_reply_chunk(c->req, chunk);
    evbuffer_free(chunk);
    c->sent += k;
    if (c->sent < c->len) {
        mock_arm(c, c->drip_interval_ms);
        return;
    }
    mock_reply_end(c);
}

/* The abortive close of MOCK_RESET and reset_mid: linger 0 makes close(2) send RST. evhttp
 * shuts the write side down (a FIN) before its deferred close, so dissolve the connection
 * first: connect(2) with AF_UNSPEC aborts a TCP socket with an RST on Linux and leaves
 * nothing to FIN. Frees c (through mock_on_close). */
static void
mock_reset(mock_call *c)
{
    struct linger lg = {1, 0};
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    evutil_socket_t sock = bufferevent_getfd(evhttp_connection_get_bufferevent(c->evcon));
    setsockopt(sock, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    connect(sock, &unspec, sizeof(unspec));
    evhttp_connection_free(c->evcon); /* calls mock_on_close, which frees c */
}

/* Writes the time now (wall clock, us, MOCK_STAMP_LEN digits) over each run of MOCK_STAMP_LEN
 * '@' in the n bytes at p. */
static void
mock_stamp(char *p, size_t n)
{
    char *end = p + n, *at = p;
    char stamp[MOCK_STAMP_LEN + 1] = "";
    while ((at = memchr(at, '@', (size_t)(end - at))) != NULL) {
        if (end - at < MOCK_STAMP_LEN || memcmp(at, mock_stamp_marker, MOCK_STAMP_LEN) != 0) {
            at++;
            continue;
        }
        if (stamp[0] == '\0') {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            snprintf(stamp, sizeof(stamp), "%0*lld", MOCK_STAMP_LEN,
                     (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
        }
        memcpy(at, stamp, MOCK_STAMP_LEN);
        at += MOCK_STAMP_LEN;
    }
}

/* Sends n bytes at p as one chunk of the streamed reply, out to the kernel now rather than
 * after the rest of this loop turn (a turn can run hundreds of streams' ticks); what the
 * socket does not take, the bufferevent sends when it can. A run of MOCK_STAMP_LEN '@' in the
 * chunk (in an answer a benchmark chose) goes out as the send time, written into evhttp's
 * buffer just before the write(2), so a reader can tell how long a piece took to reach it. */
static void
mock_stream_send(mock_call *c, const char *p, size_t n)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    struct evbuffer *out = bufferevent_get_output(bev);
    size_t queued = evbuffer_get_length(out);
    struct evbuffer *chunk = evbuffer_new();
    bool framed = c->api == PB_MOCK_API_BEDROCK;
    if (framed && memchr(p, '@', n) != NULL) {
        /* An event-stream frame's CRC covers the stamp: stamp a copy and reseal it here, a
         * few microseconds before the write rather than in evhttp's buffer. */
        char *copy = pb_xmalloc(n);
        memcpy(copy, p, n);
        mock_stamp(copy, n);
        pb_mock_bedrock_reseal(copy, n);
        evbuffer_add(chunk, copy, n);
        free(copy);
    } else {
        evbuffer_add(chunk, p, n);
    }
    evhttp_send_reply_chunk(c->req, chunk);
    evbuffer_free(chunk);
    struct evbuffer_ptr from;
    struct evbuffer_iovec v[8];
    evbuffer_ptr_set(out, &from, queued, EVBUFFER_PTR_SET);
    int nv = framed ? 0 : evbuffer_peek(out, -1, &from, v, 8);
    for (int i = 0; i < nv && i < 8; i++)
        mock_stamp(v[i].iov_base, v[i].iov_len);
    /* A socket bufferevent keeps its output's start frozen once its own write callback has
     * run (it unfreezes around each write), which on a kept-alive connection is from the
     * second reply on; a write past the freeze fails and the chunk would wait a loop turn. So
     * the same unfreeze-write-freeze as bufferevent_writecb. */
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) == 0)
        bufferevent_disable(bev, EV_WRITE); /* nothing left for it to watch the socket for */
}

/* reset_mid: an RST discards what the kernel has not delivered yet, so the events before
 * the fault must have left (evhttp's buffer and the socket's send queue empty) first.
 * A client that stops reading cannot hold the call for ever: after about a second of
 * polling the reset goes out regardless. */
static void
mock_stream_reset(mock_call *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    int queued = 0;
    if (ioctl(bufferevent_getfd(bev), TIOCOUTQ, &queued) != 0)
        queued = 0;
    if ((evbuffer_get_length(bufferevent_get_output(bev)) > 0 || queued > 0) &&
        c->reset_tries++ < MOCK_RESET_WAIT_TRIES) {
        mock_arm(c, MOCK_RESET_WAIT_MS);
        return;
    }
    mock_reset(c);
}

/* The stream fault, due before events[c->next]: false when the stream goes on at once
 * (malformed), true when this tick is over (c may be freed). */
static bool
mock_stream_fault(mock_call *c)
{
    c->faulted = true;
    switch (c->fault) {
    case PB_MOCK_STREAM_ERROR_BEFORE:
    case PB_MOCK_STREAM_ERROR_MID:
        mock_stream_send(c, c->body, c->len);
        mock_reply_end(c); /* "Connection: close" went with the headers */
        return true;
    case PB_MOCK_STREAM_RESET_MID:
        mock_stream_reset(c);
        return true;
    case PB_MOCK_STREAM_STALL: {
        /* No timer: the call waits for its client to leave, pinging if asked to. */
        const char *ping = pb_mock_dialect_stream_ping(c->api);
        if (c->stall_pings && ping != NULL) {
            mock_stream_send(c, ping, strlen(ping));
            mock_arm(c, c->chunk_interval_ms > 0 ? c->chunk_interval_ms : MOCK_PING_DEFAULT_MS);
        }
        return true;
    }
    case PB_MOCK_STREAM_MALFORMED: {
        size_t n;
        const char *bad = pb_mock_dialect_stream_malformed(c->api, &n);
        mock_stream_send(c, bad, n);
        if (c->chunk_interval_ms == 0)
            return false;
        mock_arm(c, c->chunk_interval_ms);
        return true;
    }
    case PB_MOCK_STREAM_NONE:
    case PB_MOCK_STREAM_NO_DONE:
        break;
    }
    return false;
}

/* One tick of a stream: headers and the first event, then one event per chunk_interval_ms
 * (all of them at once when that is 0), the fault where it is due. */
static void
mock_stream_tick(mock_call *c)
{
    if (c->faulted && c->fault == PB_MOCK_STREAM_RESET_MID) {
        mock_stream_reset(c);
        return;
    }
    if (c->faulted && c->fault == PB_MOCK_STREAM_STALL) {
        mock_stream_fault(c); /* the next ping */
        return;
    }
    if (!c->started) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
        evhttp_add_header(h, "Content-Type", pb_mock_dialect_stream_type(c->api));
        evhttp_add_header(h, "Cache-Control", "no-cache");
        if (c->fault == PB_MOCK_STREAM_ERROR_BEFORE || c->fault == PB_MOCK_STREAM_ERROR_MID)
            evhttp_add_header(h, "Connection", "close");
        evhttp_send_reply_start(c->req, 200, "OK");
        c->started = true;
        if (c->fault == PB_MOCK_STREAM_ERROR_BEFORE) {
            mock_stream_fault(c);
            return;
        }
    }
    do {
        if (!c->faulted && c->next == c->fault_at && mock_stream_fault(c))
            return;
        const pb_mock_event *e = &c->stream->events[c->next];
        if (e->kind == PB_MOCK_EVENT_END && c->fault == PB_MOCK_STREAM_NO_DONE) {
            mock_reply_end(c);
            return;
        }
        mock_stream_send(c, c->stream->data.data + e->off, e->len);
        if (++c->next == c->stream->n) {
            mock_reply_end(c);
            return;
        }
    } while (c->chunk_interval_ms == 0);
    mock_arm(c, c->chunk_interval_ms);
}

static void
mock_on_timer(evutil_socket_t fd, short what, void *arg)
{
    mock_call *c = arg;
    (void)fd;
    (void)what;
    switch (c->action) {
    case MOCK_SEND:
        mock_respond(c->req, c->status, c->content_type, c->body, c->len, c->retry_after,
                     c->error_type);
        c->body = NULL;
        mock_call_done(c);
        break;
    case MOCK_DRIP:
        mock_drip_tick(c);
        break;
    case MOCK_RESET:
        mock_reset(c);
        break;
    case MOCK_STREAM:
        mock_stream_tick(c);
        break;
    case MOCK_HANG:
        break;
    }
}

/* Holds req until plan's timer fires or its client leaves; takes plan's strings. */
static void
mock_hold(mock_server *srv, struct evhttp_request *req, const mock_call *plan)
{
    mock_call *c = pb_xmalloc(sizeof(*c));
    *c = *plan;
    c->srv = srv;
    c->req = req;
    c->evcon = evhttp_request_get_connection(req);
    evutil_socket_t sock = bufferevent_getfd(evhttp_connection_get_bufferevent(c->evcon));
    if (c->action == MOCK_DRIP || c->action == MOCK_STREAM) {
        /* Small chunks must leave when written, not wait for the client's delayed ACK. */
        int one = 1;
        setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->watch = event_new(srv->base, sock, EV_READ, mock_on_client_readable, c);
    event_add(c->watch, NULL);
    c->timer = NULL;
    if (c->action != MOCK_HANG) {
        c->timer = evtimer_new(srv->base, mock_on_timer, c);
        mock_arm(c, c->latency_ms);
    }
    evhttp_connection_set_closecb(c->evcon, mock_on_close, c);
    srv->pending++;
}

/* Records req as the model's last request: path, lower-cased headers, parsed body. */
static void
mock_record_last(pb_mock_model *m, struct evhttp_request *req, const char *path, json_object *body)
{
    json_object *h = json_object_new_object();
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        char key[MOCK_HEADER_MAX_LEN];
        size_t n = strlen(kv->key);
        if (n >= sizeof(key))
            continue;
        for (size_t i = 0; i <= n; i++)
            key[i] = (char)(kv->key[i] >= 'A' && kv->key[i] <= 'Z' ? kv->key[i] + 32 : kv->key[i]);
        json_object_object_add(h, key, json_object_new_string(kv->value));
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    json_object_object_add(o, "query", query != NULL ? json_object_new_string(query) : NULL);
    json_object_object_add(o, "headers", h);
    json_object_object_add(o, "body", json_object_get(body));
    if (m->last != NULL)
        json_object_put(m->last);
    m->last = o;
}

/* A uniform draw in [0, 1) from the server's stream: runs repeat given the same requests. */
static double
mock_draw(mock_server *srv)
{
    return (double)(pb_hash_splitmix64(&srv->rng) >> 11) * 0x1.0p-53;
}

/* Where a stream's fault goes: before the content event that follows the first `after`
 * ones, or, with fewer, just after the last (just after the preamble when there is none). */
static size_t
mock_fault_at(const pb_mock_stream *s, long after)
{
    size_t at = 0, seen = 0;
    while (at < s->n && s->events[at].kind == PB_MOCK_EVENT_HEAD)
        at++;
    for (size_t i = at; i < s->n; i++) {
        if (s->events[i].kind != PB_MOCK_EVENT_CONTENT)
            continue;
        if (seen == (size_t)after)
            return i;
        seen++;
        at = i + 1;
    }
    return at;
}

/* Makes plan a stream (kind OK or EMPTY) with b's pacing and fault; true when unfaulted. */
static bool
mock_plan_stream(const pb_mock_request *r, const pb_mock_behaviour *b, pb_mock_body_kind kind,
                 unsigned long id, mock_call *plan)
{
    plan->action = MOCK_STREAM;
    plan->api = r->api;
    plan->stream = pb_mock_dialect_stream(r, kind, kind == PB_MOCK_BODY_OK ? b->reply : NULL, id);
    plan->fault = b->stream_fault;
    plan->fault_at = mock_fault_at(plan->stream, b->fault_after);
    plan->chunk_interval_ms = b->chunk_interval_ms;
    plan->stall_pings = b->stall_pings;
    if (b->stream_fault == PB_MOCK_STREAM_ERROR_BEFORE ||
        b->stream_fault == PB_MOCK_STREAM_ERROR_MID)
        plan->body =
            pb_mock_dialect_stream_error(r->api, b->error_type, b->error_message, &plan->len);
    return b->stream_fault == PB_MOCK_STREAM_NONE;
}

/* The whole stream as one body (drip and truncated answers to stream requests). */
static void
mock_plan_stream_body(const pb_mock_request *r, const char *reply, unsigned long id,
                      mock_call *plan)
{
    pb_mock_stream *st = pb_mock_dialect_stream(r, PB_MOCK_BODY_OK, reply, id);
    plan->content_type = pb_mock_dialect_stream_type(r->api);
    plan->len = st->data.len;
    plan->body = st->data.data;
    st->data.data = NULL;
    pb_mock_stream_free(st);
}

/* Fills plan with the answer behaviour b gives to valid request r, and counts it on m.
 * A stream request ("stream": true) is streamed in modes ok and empty, dripped or cut as a
 * stream in drip and truncated; the other modes answer it as they answer any request. */
static void
mock_plan(mock_server *srv, const pb_mock_request *r, pb_mock_model *m, const pb_mock_behaviour *b,
          mock_call *plan)
{
    memset(plan, 0, sizeof(*plan));
    plan->action = MOCK_SEND;
    plan->status = 200;
    plan->content_type = "application/json";
    plan->latency_ms = b->latency_ms;
    plan->retry_after = b->retry_after != NULL ? pb_xstrdup(b->retry_after) : NULL;
    unsigned long id = ++srv->next_id;
    bool ok = false;
    bool stream = pb_mock_dialect_wants_stream(r);
    bool random_fail = b->fail_rate > 0 && mock_draw(srv) < b->fail_rate;
    if (b->slow_rate > 0 && mock_draw(srv) < b->slow_rate)
        plan->latency_ms = b->slow_ms;
    if (m != NULL && (m->fail_seen < b->fail_first || random_fail)) {
        if (m->fail_seen < b->fail_first)
            m->fail_seen++;
        m->failed++;
        plan->status = b->fail_status;
        plan->body = pb_mock_dialect_error(r->api, b->fail_status, NULL, NULL, NULL, &plan->len);
        return;
    }
    switch (b->mode) {
    case PB_MOCK_OK:
        if (stream) {
            ok = mock_plan_stream(r, b, PB_MOCK_BODY_OK, id, plan);
            break;
        }
        plan->body = pb_mock_dialect_reply(r, PB_MOCK_BODY_OK, b->reply, id, 0, &plan->len);
        ok = true;
        break;
    case PB_MOCK_STATUS:
        plan->status = b->status;
        plan->body = pb_mock_dialect_error(r->api, b->status, b->error_type, b->error_message,
                                           b->error_code, &plan->len);
        break;
    case PB_MOCK_HANG:
        plan->action = MOCK_HANG;
        break;
    case PB_MOCK_DRIP:
        plan->action = MOCK_DRIP;
        plan->drip_bytes = b->drip_bytes;
        plan->drip_interval_ms = b->drip_interval_ms;
        if (stream)
            mock_plan_stream_body(r, b->reply, id, plan);
        else
            plan->body = pb_mock_dialect_reply(r, PB_MOCK_BODY_OK, b->reply, id, 0, &plan->len);
        ok = true;
        break;
    case PB_MOCK_RESET:
        plan->action = MOCK_RESET;
        break;
    case PB_MOCK_TRUNCATED:
        if (stream)
            mock_plan_stream_body(r, b->reply, id, plan);
        else
            plan->body = pb_mock_dialect_reply(r, PB_MOCK_BODY_OK, b->reply, id, 0, &plan->len);
        plan->len /= 2;
        break;
    case PB_MOCK_HTML:
        plan->content_type = "text/html";
        plan->len = sizeof(mock_html) - 1;
        plan->body = pb_xstrndup(mock_html, plan->len);
        break;
    case PB_MOCK_MISSING:
        plan->body = pb_mock_dialect_reply(r, PB_MOCK_BODY_MISSING, NULL, id, 0, &plan->len);
        break;
    case PB_MOCK_EMPTY:
        if (stream)
            mock_plan_stream(r, b, PB_MOCK_BODY_EMPTY, id, plan);
        else
            plan->body = pb_mock_dialect_reply(r, PB_MOCK_BODY_EMPTY, NULL, id, 0, &plan->len);
        break;
    case PB_MOCK_OVERSIZED:
        plan->body = pb_mock_dialect_reply(r, PB_MOCK_BODY_OK, b->reply, id, b->bytes, &plan->len);
        break;
    }
    if (m != NULL) {
        if (ok)
            m->ok++;
        else
            m->failed++;
    }
}

/* Gemini's /v1beta/models/<model>:generateContent or :streamGenerateContent?alt=sse: the
 * model (caller frees) and whether it streams; non-zero after answering a bad path. */
static int
mock_gemini_path(struct evhttp_request *req, const char *path, char **model, bool *stream)
{
    const char *rest = path + strlen(MOCK_GEMINI_PREFIX), *colon = strrchr(rest, ':');
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    *stream = colon != NULL && strcmp(colon, ":streamGenerateContent") == 0;
    if (colon == NULL || colon == rest || (size_t)(colon - rest) > MOCK_MODEL_MAX_LEN ||
        (!*stream && strcmp(colon, ":generateContent") != 0)) {
        mock_respond_api_error(req, PB_MOCK_API_GEMINI, 404, NULL, "unknown model method");
        return 1;
    }
    if (*stream && (query == NULL || strstr(query, "alt=sse") == NULL)) {
        mock_respond_api_error(req, PB_MOCK_API_GEMINI, 400, NULL,
                               "alt=sse: planb-mock streams server-sent events only");
        return 1;
    }
    char *raw = pb_xstrndup(rest, (size_t)(colon - rest));
    *model = evhttp_uridecode(raw, 0, NULL);
    free(raw);
    if (*model == NULL || (*model)[0] == '\0') {
        free(*model);
        *model = NULL;
        mock_respond_api_error(req, PB_MOCK_API_GEMINI, 404, NULL, "model: missing from the path");
        return 1;
    }
    return 0;
}

/* Azure OpenAI's chat paths: "/openai/v1/chat/completions" (the v1 API) and
 * "/openai/deployments/<deployment>/chat/completions" (*deployment: the name, URL-decoded,
 * caller frees). False for any other path. */
static bool
mock_azure_path(const char *path, char **deployment)
{
    static const char v1[] = "/openai/v1/chat/completions";
    static const char dep[] = "/openai/deployments/", tail[] = "/chat/completions";
    *deployment = NULL;
    if (strcmp(path, v1) == 0)
        return true;
    size_t n = strlen(path);
    if (strncmp(path, dep, sizeof(dep) - 1) != 0 || n <= sizeof(dep) - 1 + sizeof(tail) - 1 ||
        strcmp(path + n - (sizeof(tail) - 1), tail) != 0)
        return false;
    size_t name_len = n - (sizeof(dep) - 1) - (sizeof(tail) - 1);
    char *raw = pb_xstrndup(path + sizeof(dep) - 1, name_len);
    *deployment = strchr(raw, '/') == NULL ? evhttp_uridecode(raw, 0, NULL) : NULL;
    free(raw);
    if (*deployment != NULL &&
        ((*deployment)[0] == '\0' || strlen(*deployment) > MOCK_MODEL_MAX_LEN)) {
        free(*deployment);
        *deployment = NULL;
    }
    return *deployment != NULL;
}

/* The value of the query parameter name in req's URI, or NULL. Caller frees. */
static char *
mock_query_param(struct evhttp_request *req, const char *name)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (q == NULL || evhttp_parse_query_str(q, &params) != 0)
        return NULL;
    const char *v = evhttp_find_header(&params, name);
    char *out = v != NULL ? pb_xstrdup(v) : NULL;
    evhttp_clear_headers(&params);
    return out;
}

/* Bedrock's /model/<id>/converse or /converse-stream: the model id (percent-decoded, caller
 * frees) and whether it streams; non-zero after answering a bad path. */
static int
mock_bedrock_path(struct evhttp_request *req, const char *path, char **model, bool *stream)
{
    const char *rest = path + strlen(MOCK_BEDROCK_PREFIX), *slash = strchr(rest, '/');
    *model = NULL;
    *stream = slash != NULL && strcmp(slash, "/converse-stream") == 0;
    if (slash == NULL || slash == rest || (!*stream && strcmp(slash, "/converse") != 0)) {
        mock_respond_api_error(req, PB_MOCK_API_BEDROCK, 404, "UnknownOperationException", NULL);
        return 1;
    }
    char *raw = pb_xstrndup(rest, (size_t)(slash - rest));
    *model = evhttp_uridecode(raw, 0, NULL);
    free(raw);
    if (*model == NULL || (*model)[0] == '\0' || strlen(*model) > MOCK_MODEL_MAX_LEN) {
        free(*model);
        *model = NULL;
        mock_respond_api_error(req, PB_MOCK_API_BEDROCK, 400, NULL,
                               "1 validation error detected: Value at 'modelId' failed to "
                               "satisfy constraint");
        return 1;
    }
    return 0;
}

/* Bedrock checks who signed before anything else: 0, or the 403 status (answered). */
static int
mock_bedrock_authorize(mock_server *srv, struct evhttp_request *req, const char *path)
{
    pb_sigv4_header hs[MOCK_HEADERS_MAX];
    size_t n = 0;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = in->tqh_first; kv != NULL && n < MOCK_HEADERS_MAX;
         kv = kv->next.tqe_next)
        hs[n++] = (pb_sigv4_header){kv->key, kv->value};
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    pb_sigv4_received rcv = {
        .method = "POST",
        .path = path,
        .query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)),
        .headers = hs,
        .n_headers = n,
        .body = evbuffer_pullup(body, -1),
        .body_len = evbuffer_get_length(body),
    };
    const char *type = NULL;
    pb_error err;
    int bad = pb_mock_bedrock_authorize(&rcv, evhttp_find_header(in, "Authorization"),
                                        srv->aws_key_id, srv->aws_secret, &type, &err);
    if (bad != 0)
        mock_respond_api_error(req, PB_MOCK_API_BEDROCK, bad, type, err.msg);
    return bad;
}

/* An API call; azure says it came to an Azure path, deployment (borrowed, NULL: none) names
 * the deployment of the deployment API's path, which stands for body.model. */
static void
mock_on_api(mock_server *srv, struct evhttp_request *req, pb_mock_api api, const char *path,
            bool azure, const char *deployment)
{
    pb_mock_table_count(srv->table);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        mock_respond_api_error(req, api, 405, NULL, "method: only POST is allowed");
        return;
    }
    json_object *body = mock_parse_body(srv, req);
    if (body == NULL || !json_object_is_type(body, json_type_object)) {
        mock_respond_api_error(req, api, 400, NULL, "body: must be a JSON object");
        json_object_put(body);
        return;
    }
    json_object *mv = NULL;
    char *gmodel = NULL; /* Gemini, Bedrock: the model comes in the path */
    bool gstream = false;
    if ((api == PB_MOCK_API_GEMINI && mock_gemini_path(req, path, &gmodel, &gstream) != 0) ||
        (api == PB_MOCK_API_BEDROCK && mock_bedrock_path(req, path, &gmodel, &gstream) != 0)) {
        json_object_put(body);
        return;
    }
    if (deployment == NULL && gmodel == NULL &&
        (!json_object_object_get_ex(body, "model", &mv) ||
         !json_object_is_type(mv, json_type_string) || json_object_get_string_len(mv) == 0 ||
         json_object_get_string_len(mv) > MOCK_MODEL_MAX_LEN)) {
        mock_respond_api_error(req, api, 400, NULL, "model: must be a non-empty string");
        json_object_put(body);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    pb_mock_request r = {
        .api = api,
        .body = body,
        .model = gmodel != NULL       ? gmodel
                 : deployment != NULL ? deployment
                                      : json_object_get_string(mv),
        .authorization = evhttp_find_header(h, "Authorization"),
        .api_key =
            evhttp_find_header(h, api == PB_MOCK_API_GEMINI ? "x-goog-api-key" : "x-api-key"),
        .version = evhttp_find_header(h, "anthropic-version"),
        .stream = gstream,
        .key_in_url = query != NULL && (strncmp(query, "key=", 4) == 0 || strstr(query, "&key=")),
        .azure = azure,
        .azure_deployment = deployment != NULL,
        .azure_key = azure ? evhttp_find_header(h, "api-key") : NULL,
    };
    char *api_version = azure ? mock_query_param(req, "api-version") : NULL;
    r.api_version = api_version;
    pb_mock_model *m = pb_mock_table_get(srv->table, r.model, true);
    if (m != NULL) {
        m->requests++;
        mock_record_last(m, req, path, body);
    }
    pb_error err;
    int bad = api == PB_MOCK_API_BEDROCK ? mock_bedrock_authorize(srv, req, path) : 0;
    if (bad == 0 && (bad = pb_mock_dialect_validate(&r, &err)) != 0)
        mock_respond_api_error(req, api, bad, NULL, err.msg);
    if (bad != 0) {
        if (m != NULL)
            m->invalid++;
        json_object_put(body);
        free(api_version);
        free(gmodel);
        return;
    }
    free(api_version);
    r.api_version = NULL;
    mock_call plan;
    const pb_mock_behaviour *b = pb_mock_table_behaviour(srv->table, m);
    r.tool_calls = b->tool_calls;
    r.bad_tool_args = b->bad_tool_args;
    r.finish_reason = b->finish_reason;
    r.refusal = b->refusal;
    mock_plan(srv, &r, m, b, &plan);
    if (plan.status >= 400)
        plan.error_type =
            mock_amzn_type(api, plan.status, b->mode == PB_MOCK_STATUS ? b->error_type : NULL);
    json_object_put(body);
    free(gmodel);
    if (plan.action == MOCK_SEND && plan.latency_ms == 0) {
        mock_respond(req, plan.status, plan.content_type, plan.body, plan.len, plan.retry_after,
                     plan.error_type);
        free(plan.retry_after);
        free(plan.error_type);
        return;
    }
    mock_hold(srv, req, &plan);
}

/* POST /v1/traces: an OTLP/HTTP collector that takes everything at once (benchmarks, the
 * demo); the bytes are counted, never decoded (tests/support/otlp is the strict one). */
static void
mock_on_traces(mock_server *srv, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    srv->trace_requests++;
    srv->trace_bytes += (long)evbuffer_get_length(in);
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    bool protobuf = ct != NULL && strncmp(ct, "application/x-protobuf", 22) == 0;
    mock_respond(req, evhttp_request_get_command(req) == EVHTTP_REQ_POST ? 200 : 405,
                 protobuf ? "application/x-protobuf" : "application/json",
                 pb_xstrdup(protobuf ? "" : "{}"), protobuf ? 0 : 2, NULL, NULL);
}

/* POST /_mock/models/<name> and /_mock/default (name NULL). */
static void
mock_on_set(mock_server *srv, struct evhttp_request *req, const char *name)
{
    json_object *o = mock_parse_body(srv, req);
    pb_error err;
    pb_mock_behaviour *b = o != NULL ? pb_mock_behaviour_parse(o, &err) : NULL;
    if (o == NULL)
        pb_error_set(&err, 1, "body: must be a JSON object");
    json_object_put(o);
    if (b == NULL) {
        mock_respond_control_error(req, 400, err.msg);
        return;
    }
    pb_mock_table_set(srv->table, name, b);
    mock_respond_ok(req);
}

static void
mock_on_control(mock_server *srv, struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *rest = NULL;
    bool get = strcmp(path, "/_mock/stats") == 0 ||
               strncmp(path, "/_mock/last/", strlen("/_mock/last/")) == 0;
    if (strncmp(path, "/_mock/models/", strlen("/_mock/models/")) == 0)
        rest = path + strlen("/_mock/models/");
    else if (strncmp(path, "/_mock/last/", strlen("/_mock/last/")) == 0)
        rest = path + strlen("/_mock/last/");
    else if (strcmp(path, "/_mock/stats") != 0 && strcmp(path, "/_mock/reset") != 0 &&
             strcmp(path, "/_mock/default") != 0) {
        mock_respond_control_error(req, 404, "unknown control endpoint");
        return;
    }
    if (cmd != (get ? EVHTTP_REQ_GET : EVHTTP_REQ_POST)) {
        mock_respond_control_error(req, 405, get ? "use GET" : "use POST");
        return;
    }
    if (strcmp(path, "/_mock/stats") == 0) {
        json_object *st = pb_mock_table_stats(srv->table, srv->pending);
        json_object_object_add(st, "trace_requests", json_object_new_int64(srv->trace_requests));
        json_object_object_add(st, "trace_bytes", json_object_new_int64(srv->trace_bytes));
        mock_respond_json(req, 200, st);
        return;
    }
    if (strcmp(path, "/_mock/reset") == 0) {
        pb_mock_table_reset(srv->table);
        mock_respond_ok(req);
        return;
    }
    if (rest == NULL) {
        mock_on_set(srv, req, NULL);
        return;
    }
    char *name = evhttp_uridecode(rest, 0, NULL);
    if (name == NULL || name[0] == '\0') {
        mock_respond_control_error(req, 400, "model name missing from the path");
    } else if (get) {
        pb_mock_model *m = pb_mock_table_get(srv->table, name, false);
        if (m == NULL || m->last == NULL)
            mock_respond_control_error(req, 404, "no request for this model yet");
        else
            mock_respond_json(req, 200, json_object_get(m->last));
    } else {
        mock_on_set(srv, req, name);
    }
    free(name);
}

static void
mock_on_request(struct evhttp_request *req, void *arg)
{
    mock_server *srv = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    char *deployment;
    if (path == NULL) {
        mock_respond_control_error(req, 400, "bad request line");
    } else if (strcmp(path, "/v1/chat/completions") == 0) {
        mock_on_api(srv, req, PB_MOCK_API_OPENAI, path, false, NULL);
    } else if (strcmp(path, "/v1/messages") == 0) {
        mock_on_api(srv, req, PB_MOCK_API_ANTHROPIC, path, false, NULL);
    } else if (strcmp(path, "/v1/embeddings") == 0) {
        mock_on_api(srv, req, PB_MOCK_API_EMBEDDINGS, path, false, NULL);
    } else if (mock_azure_path(path, &deployment)) {
        mock_on_api(srv, req, PB_MOCK_API_OPENAI, path, true, deployment);
        free(deployment);
    } else if (strncmp(path, MOCK_GEMINI_PREFIX, strlen(MOCK_GEMINI_PREFIX)) == 0) {
        mock_on_api(srv, req, PB_MOCK_API_GEMINI, path, false, NULL);
    } else if (strncmp(path, MOCK_BEDROCK_PREFIX, strlen(MOCK_BEDROCK_PREFIX)) == 0) {
        mock_on_api(srv, req, PB_MOCK_API_BEDROCK, path, false, NULL);
    } else if (strcmp(path, "/v1/traces") == 0) {
        mock_on_traces(srv, req);
    } else if (strncmp(path, "/_mock/", 7) == 0) {
        mock_on_control(srv, req, path);
    } else {
        mock_respond_api_error(req, PB_MOCK_API_OPENAI, 404, NULL, "unknown path");
    }
}

/* Parses "HOST:PORT" or "[V6HOST]:PORT" (numeric host, port may be 0) into ss. */
static int
mock_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return PB_ERR;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return PB_ERR;
    memset(ss, 0, sizeof(*ss));
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        host[hl - 1] = '\0';
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof(*a6);
        return inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1 ? PB_OK : PB_ERR;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *sslen = sizeof(*a4);
    return inet_pton(AF_INET, host, &a4->sin_addr) == 1 ? PB_OK : PB_ERR;
}

/* Binds and listens on addr; returns the socket and sets *port to the bound port, or -1. */
static evutil_socket_t
mock_listen(const char *addr, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (mock_parse_addr(addr, &ss, &sslen) != PB_OK) {
        pb_log(PB_LOG_ERROR, "event=bad_listen addr=%s want=HOST:PORT (numeric host)", addr);
        return -1;
    }
    evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pb_log_errno("event=socket_failed");
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t len = sizeof(ss);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, MOCK_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        pb_log_errno("event=listen_failed addr=%s", addr);
        close(fd);
        return -1;
    }
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Thousands of held connections need as many descriptors as the hard limit allows. */
static void
mock_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            pb_log_errno("event=setrlimit_failed");
    }
}

static void
mock_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static void
mock_usage(FILE *out)
{
    fputs(
        "usage: planb-mock [--listen HOST:PORT] [--config FILE.json] [--quiet]\n"
        "                  [--aws-access-key-id ID] [--aws-secret-access-key SECRET]\n"
        "\n"
        "A fault-injecting mock LLM server (OpenAI chat + embeddings, Anthropic Messages,\n"
        "Azure OpenAI's /openai/v1/chat/completions and\n"
        "/openai/deployments/<model>/chat/completions?api-version=..., with api-key;\n"
        "Gemini: POST /v1beta/models/<model>:generateContent, :streamGenerateContent?alt=sse;\n"
        "Bedrock: POST /model/<model id>/converse and /converse-stream, SigV4-signed or with a\n"
        "Bearer API key, streamed as application/vnd.amazon.eventstream frames).\n"
        "Prints \"port=<N>\" on stdout once listening (default 127.0.0.1:0: a free port).\n"
        "\n"
        "  --listen HOST:PORT  numeric address to bind (port 0 = any free port)\n"
        "  --config FILE       {\"default\": {behaviour}, \"models\": {\"name\": {behaviour}}}\n"
        "  --quiet             log errors only\n"
        "  --aws-access-key-id ID, --aws-secret-access-key SECRET\n"
        "                      the credentials Bedrock requests must be signed with\n"
        "                      (default " MOCK_AWS_KEY_ID " / " MOCK_AWS_SECRET ")\n"
        "\n"
        "Behaviour: {\"mode\": ok|status|hang|drip|reset|truncated|html|missing|empty|oversized,\n"
        "  \"reply\", \"status\", \"error_type\", \"error_message\", \"error_code\"\n"
        "  (content_filter: Azure's content-filter body, innererror included),\n"
        "  \"retry_after\", \"latency_ms\", \"drip_bytes\", \"drip_interval_ms\", \"bytes\",\n"
        "  \"fail_first\", \"fail_status\", \"fail_rate\" (0..1: that share fails at random),\n"
        "  \"slow_rate\" (0..1), \"slow_ms\" (that share of answers waits slow_ms),\n"
        "  \"tool_calls\": [{\"name\", \"arguments\": {...}}],\n"
        "  \"bad_tool_args\", \"finish_reason\": length|content_filter,\n"
        "  \"refusal\" (OpenAI: refuse with this text instead of answering),\n"
        "  \"chunk_interval_ms\" (0..60000: streams, between events after the first),\n"
        "  \"stream_fault\": none|error_before|error_mid|reset_mid|stall|malformed|no_done,\n"
        "  \"fault_after\" (0..100000, default 2: content events before the fault),\n"
        "  \"stall_pings\" (Anthropic pings every chunk_interval_ms, or 1 s, while stalled)}\n"
        "Answers echo the last user text (\"tool said: ...\" after tool results), as\n"
        "{\"answer\": ...} JSON for a response_format or a forced Anthropic tool.\n"
        "In a streamed answer each run of 16 '@' leaves as the send time (wall-clock us).\n"
        "\"stream\": true gets text/event-stream (OpenAI chunks ending in data: [DONE],\n"
        "Anthropic message_start ... message_stop) in modes ok and empty; drip and\n"
        "truncated drip or cut that stream's bytes; latency_ms delays its first byte.\n"
        "POST /v1/traces takes OTLP/HTTP exports at once (counted in /_mock/stats).\n"
        "Control: POST /_mock/models/<name>, POST /_mock/default, POST /_mock/reset,\n"
        "  GET /_mock/stats, GET /_mock/last/<name>\n",
        out);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"config", required_argument, NULL, 'c'},
        {"quiet", no_argument, NULL, 'q'},
        {"aws-access-key-id", required_argument, NULL, 'k'},
        {"aws-secret-access-key", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen_addr = "127.0.0.1:0", *config_path = NULL;
    const char *aws_key_id = MOCK_AWS_KEY_ID, *aws_secret = MOCK_AWS_SECRET;
    int opt;
    pb_log_set_role("mock");
    while ((opt = getopt_long(argc, argv, "l:c:qhk:s:", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen_addr = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'q':
            pb_log_min_level = PB_LOG_WARN;
            break;
        case 'k':
            aws_key_id = optarg;
            break;
        case 's':
            aws_secret = optarg;
            break;
        case 'h':
            mock_usage(stdout);
            return PB_EXIT_OK;
        default:
            mock_usage(stderr);
            return PB_EXIT_FATAL;
        }
    }
    if (optind != argc) {
        mock_usage(stderr);
        return PB_EXIT_FATAL;
    }
    signal(SIGPIPE, SIG_IGN);
    mock_raise_nofile();

    json_object *config = NULL;
    if (config_path != NULL && (config = json_object_from_file(config_path)) == NULL) {
        pb_log(PB_LOG_ERROR, "event=bad_config path=%s error=\"%s\"", config_path,
               json_util_get_last_err());
        return PB_EXIT_FATAL;
    }
    pb_error err;
    mock_server srv = {
        .rng = 0x5EED5EED5EED5EEDULL, .aws_key_id = aws_key_id, .aws_secret = aws_secret};
    srv.table = pb_mock_table_new(config, &err);
    json_object_put(config);
    if (srv.table == NULL) {
        pb_log(PB_LOG_ERROR, "event=bad_config path=%s error=\"%s\"", config_path, err.msg);
        return PB_EXIT_FATAL;
    }
    int port = 0;
    evutil_socket_t fd = mock_listen(listen_addr, &port);
    if (fd < 0) {
        pb_mock_table_free(srv.table);
        return PB_EXIT_FATAL;
    }
    /* The changelist folds a socket's del+add within one loop turn into one epoll_ctl:
     * thousands of slow connections otherwise cost a syscall per state flip. */
    struct event_config *ecfg = event_config_new();
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    srv.base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    srv.http = evhttp_new(srv.base);
    srv.tok = json_tokener_new();
    pb_assert(srv.base != NULL && srv.http != NULL && srv.tok != NULL);
    evhttp_set_max_body_size(srv.http, (ev_ssize_t)MOCK_MAX_BODY_BYTES);
    evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv.http, mock_on_request, &srv);
    if (evhttp_accept_socket_with_handle(srv.http, fd) == NULL) {
        pb_log(PB_LOG_ERROR, "event=accept_failed addr=%s", listen_addr);
        return PB_EXIT_FATAL;
    }
    struct event *sigterm = evsignal_new(srv.base, SIGTERM, mock_on_signal, srv.base);
    struct event *sigint = evsignal_new(srv.base, SIGINT, mock_on_signal, srv.base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);

    printf("port=%d\n", port);
    fflush(stdout);
    pb_log(PB_LOG_INFO, "event=listening addr=%s port=%d config=%s", listen_addr, port,
           config_path != NULL ? config_path : "-");
    event_base_dispatch(srv.base);

    /* Freeing the server frees every connection; held calls go through mock_on_close. */
    evhttp_free(srv.http);
    event_free(sigterm);
    event_free(sigint);
    json_tokener_free(srv.tok);
    pb_mock_table_free(srv.table);
    event_base_free(srv.base);
    return PB_EXIT_OK;
}
