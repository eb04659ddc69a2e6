/* front.c -- the front door: OpenAI's Chat Completions over HTTP, answered through the queue.
 *
 * One libevent loop, one evhttp server, three Redis connections whatever the load: cmd
 * (admission + push in one script, LREM, GET), the results subscriber (resultwait.h) and
 * the stream reader (streamread.h). A request's life:
 *
 *   auth (bearer key -> SHA-256 -> http.keys) -> per-key concurrency -> x-planb-* headers
 *   -> body -> job (wire.h; the worker's own parser, so a bad body is a 400 here)
 *   -> wait registered -> front_push.lua (queue paused, no live worker, queue full: 503; key's
 *   rpm: 429)
 *   -> result published (or stream entries) -> chat.completion (or SSE chunks) + headers
 *
 * Hostile and gone clients: evhttp bounds headers, body and idle time; connections are
 * counted exactly (each gets a filter bufferevent whose free callback decrements the count)
 * and the listener pauses at http.max_connections. The filter also frames what a client
 * sends (front_read_state): a request's key, framing and share of http.max_bodies_bytes are
 * judged at its headers, before its body is read; a whole request is bounded by
 * http.request_read_timeout_ms; and the next request's bytes (or junk) are not read past
 * FRONT_SOCKET_READ_MAX until the answer is out. While a request waits, evhttp
 * reads nothing, so a watch on the socket notices the client hanging up. A gone client's
 * job is cancelled (cancel.lua): taken off the queue when no worker took it yet, else aborted
 * by its worker; its `cancelled` result gives back its key's concurrency slot. A stream whose
 * client reads slower than the answer comes is cut when FRONT_MAX_PENDING_OUT bytes wait unsent.
 *
 * A request's outstanding work: at most one Redis call at a time of push, settle or cancel
 * (pending counts them; r is freed only at zero), or the hold's timer (owned, deleted when
 * r finishes). The push is bounded by redis.timeout_ms; a push whose reply is lost leaves
 * the job maybe queued, so the request waits on its id as if pushed. At the wait bound
 * (never while a push is out) front_settle.lua tells what became of the job: taken off the
 * queue (503), running or finished (504), or nowhere (503: it will not run).
 *
 * HTTPS (http.tls): the filter sits on a TLS bufferevent instead of a socket one, so framing,
 * bounds and counting are the same; what the plain path writes straight to the socket goes
 * through TLS instead (front_conn_write_tls, front_conn_refuse). */
#include "planb/front.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "planb/cancel.h"
#include "planb/core.h"
#include "planb/job.h"
#include "planb/keys.h"
#include "planb/log.h"
#include "planb/redis.h"
#include "planb/resultwait.h"
#include "planb/streamread.h"
#include "planb/tls.h"
#include "planb/wire.h"

#define FRONT_MAX_PENDING_OUT (1u << 20) /* unsent SSE bytes before a slow reader is cut */
#define FRONT_FD_RESERVE      256        /* descriptors beyond the connections: Redis, logs */
#define FRONT_RETRY_AFTER_S   "1"
#define FRONT_HOLD_MS         2000 /* a request waits this long for Redis before a 503 */
#define FRONT_HOLD_STEP_MS    10
#define FRONT_DRAIN_QUIET_MS  250         /* the drain also waits for connections this long idle */
#define FRONT_BACKLOG         1024        /* connections the kernel queues while no front accepts */
#define FRONT_SOCKET_READ_MAX (64u << 10) /* bytes read ahead of the request being framed */
#define FRONT_TLS_LOG_MS      10000       /* at most one line about failed handshakes per 10 s */

typedef struct front front;
typedef struct front_conn front_conn;

/* A kind of event logged at most once per period: how many since its last line, and when. */
typedef struct front_ratelog {
    unsigned long n;
    int64_t at_mono_ms; /* 0: never logged */
} front_ratelog;

typedef struct front_req {
    front *f;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    char id[64];
    pb_wire_job job;
    int key;                    /* index into http.keys, -1 none */
    bool cache_skip;            /* x-planb-cache: skip (the cache header says so) */
    struct event *timer;        /* the wait's bound: deadline + http.wait_grace_ms; once
                                   detached, the job's deadline */
    struct event *eof;          /* the client's socket, watched for a hang-up */
    struct event *hold;         /* the next push of a request held for workers or Redis */
    const char *held_for;       /* why it is held: "NO_WORKERS", or NULL (Redis down) */
    struct event *keepalive;    /* streamed: a comment when nothing went out for a while */
    pb_streamread_sub *sub;     /* streamed: the relay */
    int pending;                /* Redis calls outstanding that hold r (push, settle, cancel) */
    unsigned long push_ups;     /* pb_redis_ups of cmd when the push went out */
    bool waiting;               /* in resultwait */
    bool pushing;               /* front_push.lua sent, not answered */
    bool pushed;                /* the job is (or may be) on the queue */
    bool push_unknown;          /* the push's reply was lost: the job may be queued or not */
    bool expired;               /* the wait bound passed while the push was out */
    bool started;               /* streamed: 200 and headers sent */
    bool content_sent;          /* streamed: a text or tool chunk went to the client */
    bool done;                  /* answered, or the client is gone: nothing more is sent */
    bool gone;                  /* the client went away unanswered */
    bool detached;              /* done, but its job may still run: r keeps the key's slot */
    const char *gone_why;       /* why the client is gone (logged with the cancel) */
    int64_t hold_until_mono_ms; /* NO_WORKERS (or Redis down) is retried until then */
    int64_t deadline_mono_ms;   /* the job's deadline (a detached slot is held until then) */
    pb_wire_chunker chunker;
    struct front_req *prev, *next;
} front_req;

struct front {
    const pb_config *cfg;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    pb_redis *cmd;
    pb_resultwait *results;
    pb_streamread *streams;
    char name[PB_KEY_WORKER_ID_MAX]; /* "host:pid" */
    char *queue_key;
    char *workers_key;
    char *paused_key; /* <p>:paused: an operator's paused queues */
    size_t sse_max;   /* one entry's SSE events: an entry's text (up to a whole cached answer)
                         JSON-escaped, with room for the chunk around it */
    int n_conns;      /* client connections open */
    int64_t conn_activity_mono_ms; /* draining: the drain began, or a connection moved bytes */
    bool paused;                   /* the listener waits for a connection to close */
    int *key_inflight;             /* per http.keys entry: its requests in progress */
    front_req *reqs;               /* every request alive, detached ones too */
    int n_reqs;                    /* requests not answered yet (the drain waits for them) */
    char *inflight_prefix;         /* "<p>:inflight:" (front_settle.lua) */
    bool closing;                  /* the loop ended: callbacks only let go of their request */
    size_t bodies_bytes;           /* bodies being read (their Content-Length, else the max) */
    front_conn **conn_of_fd;       /* connections by descriptor (NULL: none) */
    int n_conn_of_fd;
    bool draining;
    int64_t drain_until_mono_ms;
    struct event *sig_term, *sig_int, *drain_tick;
    pb_tls *tls;               /* http.tls: HTTPS (made from the files at start); NULL: HTTP */
    front_ratelog tls_failed;  /* handshakes that failed with OpenSSL's reason */
    front_ratelog tls_hangups; /* handshakes the client closed without one */
};

/* ------------------------------------------------------------------ replies */

static void
front_header(struct evhttp_request *req, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), name, value);
}

static void
front_send(struct evhttp_request *req, int status, const char *type, const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    front_header(req, "Content-Type", type);
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
}

/* An OpenAI error object; 429/503 say when to come back, 4xx/504 that a retry will not help. */
static void
front_send_error(struct evhttp_request *req, const pb_wire_error *err)
{
    size_t len = 0;
    char *body = pb_wire_error_json(err, &len);
    if (err->status == 429 || err->status == 503)
        front_header(req, "Retry-After", FRONT_RETRY_AFTER_S);
    else
        front_header(req, "x-should-retry", "false");
    front_send(req, err->status, "application/json", body, len);
    free(body);
}

/* ------------------------------------------------------------------ request lifetime */

static void front_on_closed(struct evhttp_connection *evcon, void *arg);
static void front_on_detached_result(const char *result, size_t len, void *arg);

/* Frees r once nothing refers to it: answered (or gone), no Redis call of its outstanding,
 * and no longer detached. */
static void
front_req_release(front_req *r)
{
    if (!r->done || r->pending > 0 || r->detached)
        return;
    front *f = r->f;
    if (r->prev)
        r->prev->next = r->next;
    else
        f->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->key >= 0)
        f->key_inflight[r->key]--;
    if (r->timer)
        event_free(r->timer);
    if (r->eof)
        event_free(r->eof);
    if (r->hold)
        event_free(r->hold);
    if (r->keepalive)
        event_free(r->keepalive);
    pb_wire_job_free(&r->job);
    free(r);
}

/* Nothing more goes to the client: the wait, the relay, the hold and the watches stop. */
static void
front_req_finish(front_req *r)
{
    if (!r->done)
        r->f->n_reqs--;
    r->done = true;
    if (r->waiting)
        pb_resultwait_remove(r->f->results, r->id);
    r->waiting = false;
    pb_streamread_remove(r->f->streams, r->sub);
    r->sub = NULL;
    if (r->timer)
        evtimer_del(r->timer);
    if (r->hold)
        evtimer_del(r->hold);
    if (r->eof)
        event_del(r->eof);
    if (r->keepalive)
        evtimer_del(r->keepalive);
    if (r->evcon) /* alive: evhttp calls this hook before freeing a connection */
        evhttp_connection_set_closecb(r->evcon, NULL, NULL);
}

/* A finished request whose job may still run (its client left, or its stream was ended
 * early) keeps its key's concurrency slot until the job's result or its deadline: else a
 * client that hangs up at once could keep any number of a key's jobs running. */
static void
front_req_detach(front_req *r)
{
    const pb_http_key *k = r->key >= 0 ? &r->f->cfg->http.keys[r->key] : NULL;
    if (k == NULL || k->concurrency == 0 || !(r->pushed || r->pushing) || r->f->closing)
        return;
    r->detached = true;
    pb_resultwait_add(r->f->results, r->id, front_on_detached_result, r);
    int64_t left = r->deadline_mono_ms - pb_mono_ms();
    if (left < 0)
        left = 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    evtimer_add(r->timer, &tv);
}

/* A detached request's job is over (its result came, it was taken off the queue or never
 * queued, or its deadline passed): its slot can go. The caller releases r. */
static void
front_req_undetach(front_req *r)
{
    if (!r->detached)
        return;
    r->detached = false;
    pb_resultwait_remove(r->f->results, r->id);
    evtimer_del(r->timer);
}

static void
front_on_detached_result(const char *result, size_t len, void *arg)
{
    (void)result;
    (void)len;
    front_req *r = arg;
    front_req_undetach(r);
    front_req_release(r);
}

/* A gone client's cancel.lua answered: "removed" is a job taken off the queue before any
 * worker claimed it (it never runs: the slot is free at once, its `cancelled` result is
 * stored and published by the script); "running", its worker was told to abort it and
 * answers `cancelled`; "finished", its result came first. */
static void
front_on_cancel(redisReply *reply, void *arg)
{
    front_req *r = arg;
    r->pending--;
    pb_cancel_outcome o = reply && reply->type == REDIS_REPLY_STRING
                              ? pb_cancel_outcome_of(reply->str)
                              : PB_CANCEL_ERROR;
    if (!r->f->closing && o != PB_CANCEL_ERROR)
        pb_log(PB_LOG_INFO, "event=front_cancel id=%s why=%s job=%s", r->id, r->gone_why,
               reply->str);
    if (!r->f->closing && o == PB_CANCEL_REMOVED)
        front_req_undetach(r);
    front_req_release(r);
}

/* Cancels the job of a gone client (cancel.lua): off the queue if no worker took it yet, else
 * aborted by its worker; either way its one result is `cancelled`. Not while a push or a
 * settle is out: their replies see the client gone and do it (or did it). */
static void
front_cancel_job(front_req *r)
{
    if (!r->pushed || r->pending > 0 || r->job.json == NULL || r->f->closing)
        return;
    r->pending++;
    char **owned;
    const char **view;
    int numkeys;
    int argc = pb_cancel_args(r->f->cfg, r->id, "front", &owned, &view, &numkeys);
    pb_redis_script_within(r->f->cmd, r->f->cfg->redis_timeout_ms, "cancel", front_on_cancel, r,
                           numkeys, argc, view, NULL);
    pb_cancel_args_free(owned, view, argc);
}

/* The client went away before its answer (why: a static string). */
static void
front_req_gone(front_req *r, const char *why)
{
    if (r->done)
        return;
    r->gone = true;
    r->gone_why = why;
    front_req_finish(r);
    front_req_detach(r);
    front_cancel_job(r);
    front_req_release(r);
}

/* evhttp closes the connection (write error or timeout, or the server going down). When
 * evhttp has already detached the unanswered request from it, the request is ours to free;
 * otherwise evhttp frees it with the connection. */
static void
front_on_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    front_req *r = arg;
    if (r->done)
        return;
    if (r->started) /* a write failed or timed out: the client saw no end */
        pb_log(PB_LOG_WARN, "event=front_stream_cut id=%s why=connection_closed", r->id);
    if (evhttp_request_get_connection(r->req) == NULL)
        evhttp_request_free(r->req);
    front_req_gone(r, "client_closed");
}

/* The socket of a waiting request became readable: EOF (or a reset) is the client hanging
 * up; bytes are a pipelined request, which evhttp reads after this answer. They keep the
 * socket readable, so from then on only a hang-up is watched (EV_CLOSED, epoll's RDHUP,
 * seen with unread bytes too); a backend without it cannot tell, and stops watching. */
static void
front_on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    front_req *r = arg;
    char c;
    ssize_t n = what & EV_CLOSED ? 0 : recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        if (event_base_get_features(r->f->base) & EV_FEATURE_EARLY_CLOSE) {
            event_assign(r->eof, r->f->base, fd, EV_CLOSED, front_on_client_readable, r);
            event_add(r->eof, NULL);
        }
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(r->eof, NULL);
        return;
    }
    /* Freeing the connection frees the request too (it is still queued on it). */
    struct evhttp_connection *evcon = r->evcon;
    front_req_gone(r, "client_closed");
    evhttp_connection_free(evcon);
}

/* Readies the client's socket for its answer: TCP_NODELAY, and a watch for a hang-up. */
static void
front_watch_client(front_req *r)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    /* A stream's small events must leave when written, not wait for the client's delayed ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    r->eof = event_new(r->f->base, fd, EV_READ, front_on_client_readable, r);
    event_add(r->eof, NULL);
}

/* ------------------------------------------------------------------ answers */

/* The x-planb-* headers of an answer. A stream's go out with its first entry, before its
 * attempts and latency are known: only a full answer (full) has those. */
static void
front_meta_headers(front_req *r, const pb_wire_meta *m, bool full)
{
    char num[32];
    front_header(r->req, "x-request-id", r->id);
    if (m->source[0])
        front_header(r->req, "x-planb-source", m->source);
    if (m->model[0])
        front_header(r->req, "x-planb-model", m->model);
    if (m->provider[0])
        front_header(r->req, "x-planb-provider", m->provider);
    front_header(r->req, "x-planb-cache", r->cache_skip ? "skip" : m->cache);
    if (full) {
        snprintf(num, sizeof(num), "%d", m->attempts);
        front_header(r->req, "x-planb-attempts", num);
        snprintf(num, sizeof(num), "%ld", m->latency_ms);
        front_header(r->req, "x-planb-latency-ms", num);
    }
    if (strcmp(m->source, "degraded") == 0) {
        front_header(r->req, "x-planb-degraded", "true");
        front_header(r->req, "x-should-retry", "false"); /* planb already retried */
    }
}

/* Ends r with err: a plain error before a stream began, else an error event and [DONE].
 * The caller releases r (or detaches it first). */
static void
front_end_with_error(front_req *r, const pb_wire_error *err)
{
    front_req_finish(r);
    if (!r->started) {
        front_header(r->req, "x-request-id", r->id);
        front_send_error(r->req, err);
        return;
    }
    size_t len = 0;
    char *e = pb_wire_error_json(err, &len);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "data: %s\n\ndata: [DONE]\n\n", e);
    evhttp_send_reply_chunk(r->req, b);
    evbuffer_free(b);
    free(e);
    evhttp_send_reply_end(r->req);
}

/* The job was not queued (why: front_push.lua's refusal, or NULL: Redis was not there). */
static void
front_refuse(front_req *r, const char *why)
{
    pb_wire_error err;
    if (why && strcmp(why, "RATE_LIMITED") == 0)
        pb_wire_error_set(&err, 429, "rate_limit_error", "rate_limit_exceeded",
                          "this key's requests per minute are used up");
    else if (why && strcmp(why, "PAUSED") == 0)
        pb_wire_error_set(&err, 503, "server_error", "queue_paused",
                          "the queue %s is paused by an operator",
                          r->f->cfg->queues[r->f->cfg->http.queue]);
    else if (why && strcmp(why, "NO_WORKERS") == 0)
        pb_wire_error_set(&err, 503, "server_error", "no_workers",
                          "no planb worker is alive to take the request");
    else if (why && strcmp(why, "QUEUE_FULL") == 0)
        pb_wire_error_set(&err, 503, "server_error", "queue_full",
                          "the queue is full (http.max_queue)");
    else
        pb_wire_error_set(&err, 503, "server_error", "redis_unavailable",
                          "the queue's Redis is not reachable");
    front_end_with_error(r, &err);
    front_req_release(r);
}

/* A Redis status (or bulk string) reply's text, else NULL. */
static const char *
front_reply_status(const redisReply *reply)
{
    if (reply && (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_STRING))
        return reply->str;
    return NULL;
}

/* The wait bound passed with no result heard and none stored; front_settle.lua says where
 * the job is. Taken off the queue: 503 not_taken. Found nowhere: it will not run, 503
 * (job_lost; redis_unavailable when the push was never answered). Running, finished, or no
 * verdict: 504, it may still finish (a job that ran is never a 503). */
static void
front_on_settled(redisReply *reply, void *arg)
{
    front_req *r = arg;
    r->pending--;
    const char *s = front_reply_status(reply);
    bool removed = s && strcmp(s, "REMOVED") == 0;
    /* After a lost push reply, "nowhere" is certain only when this went out on the connection
     * that carried the push: the bytes of a dropped one may still reach Redis. */
    bool lost =
        s && strcmp(s, "LOST") == 0 && (!r->push_unknown || pb_redis_ups(r->f->cmd) == r->push_ups);
    if (r->done || r->f->closing) { /* the client left meanwhile */
        if (removed || lost)
            front_req_undetach(r);
        front_req_release(r);
        return;
    }
    pb_wire_error err;
    if (removed)
        pb_wire_error_set(&err, 503, "server_error", "not_taken",
                          "no worker took the request within its deadline; it was cancelled");
    else if (lost && r->push_unknown)
        pb_wire_error_set(&err, 503, "server_error", "redis_unavailable",
                          "the queue's Redis did not answer; the job never reached the queue");
    else if (lost)
        pb_wire_error_set(&err, 503, "server_error", "job_lost",
                          "the job is neither queued, running nor finished (was its queue "
                          "deleted?); it will not run");
    else
        pb_wire_error_set(&err, 504, "server_error", "timeout",
                          "no answer within the deadline (the job may still finish: "
                          "GET planb:result:%s)",
                          r->id);
    pb_log(PB_LOG_WARN, "event=front_timeout id=%s status=%d code=%s", r->id, err.status, err.code);
    front_end_with_error(r, &err);
    front_req_release(r);
}

static void
front_settle(front_req *r)
{
    front *f = r->f;
    char *result_key = pb_key_result(f->cfg->prefix, r->id);
    const char *argv[] = {f->queue_key, f->workers_key, result_key, r->job.json,
                          f->inflight_prefix};
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = i == 3 ? r->job.len : strlen(argv[i]);
    r->pending++;
    pb_redis_script_within(f->cmd, f->cfg->redis_timeout_ms, "front_settle", front_on_settled, r, 3,
                           5, argv, lens);
    free(result_key);
}

/* A non-streamed request's result (NULL: a bounded wait found none stored). */
static void
front_on_result(const char *result, size_t len, void *arg)
{
    front_req *r = arg;
    r->waiting = false;
    if (r->done)
        return;
    if (result == NULL) {
        front_settle(r);
        return;
    }
    int status = 500;
    char *body = NULL;
    size_t body_len = 0;
    pb_wire_meta meta;
    front_req_finish(r);
    if (pb_wire_completion(result, len, r->job.model, (int64_t)time(NULL), &status, &body,
                           &body_len, &meta) != PB_OK) {
        pb_wire_error err;
        pb_wire_error_set(&err, 502, "server_error", "bad_result",
                          "the job's result is unreadable");
        front_send_error(r->req, &err);
    } else {
        front_meta_headers(r, &meta, true);
        front_send(r->req, status, "application/json", body, body_len);
    }
    free(body);
    front_req_release(r);
}

/* The wait bound (or, detached, the job's deadline). Never settles while a push is out: the
 * push's reply does. A request still held was never queued: refused for what held it. */
static void
front_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_req *r = arg;
    if (r->done) {
        front_req_undetach(r);
        front_req_release(r);
        return;
    }
    if (r->pushing)
        r->expired = true;
    else if (evtimer_pending(r->hold, NULL))
        front_refuse(r, r->held_for);
    else if (r->job.stream)
        front_settle(r);
    else
        pb_resultwait_check(r->f->results, r->id); /* a missed publish, else front_settle */
}

/* ------------------------------------------------------------------ streams */

static const redisReply *
front_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    return NULL;
}

static const char *
front_field_str(const redisReply *fields, const char *name)
{
    const redisReply *v = front_field(fields, name);
    return v ? v->str : "";
}

/* A stream's quiet bound: evhttp's read timeout (http.client_timeout_ms) is re-armed by each
 * piece written, so a comment goes out when nothing did for a third of it (a model that
 * thinks for minutes keeps its stream, and proxies on the way see bytes). */
static void
front_keepalive_arm(front_req *r)
{
    int ms = r->f->cfg->http.client_timeout_ms / 3;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(r->keepalive, &tv);
}

static bool front_stream_send(front_req *r, pb_buf *out);

static void
front_on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_req *r = arg;
    if (r->done)
        return;
    pb_buf out;
    pb_buf_init(&out, 64);
    pb_buf_append(&out, ": keep-alive\n\n", 14);
    front_stream_send(r, &out);
    pb_buf_free(&out);
}

/* The 200 of a stream, sent with its first entry (the start names model and source). */
static void
front_stream_start(front_req *r, const redisReply *fields)
{
    pb_wire_meta m;
    memset(&m, 0, sizeof(m));
    snprintf(m.source, sizeof(m.source), "%s", front_field_str(fields, "source"));
    snprintf(m.model, sizeof(m.model), "%s", front_field_str(fields, "model"));
    snprintf(m.cache, sizeof(m.cache), "%s", pb_wire_cache_status(m.source));
    front_meta_headers(r, &m, false);
    front_header(r->req, "Content-Type", "text/event-stream");
    front_header(r->req, "Cache-Control", "no-cache");
    snprintf(r->chunker.model, sizeof(r->chunker.model), "%s", m.model[0] ? m.model : r->job.model);
    evhttp_send_reply_start(r->req, 200, "OK");
    r->started = true;
    r->keepalive = evtimer_new(r->f->base, front_on_keepalive, r);
    front_keepalive_arm(r);
}

/* Sends out (SSE events); a reader that let FRONT_MAX_PENDING_OUT pile up is cut off, and
 * then false: r is freed. */
static bool
front_stream_send(front_req *r, pb_buf *out)
{
    if (out->len == 0)
        return true;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > FRONT_MAX_PENDING_OUT) {
        pb_log(PB_LOG_WARN, "event=front_slow_reader id=%s note=\"stream cut\"", r->id);
        struct evhttp_connection *evcon = r->evcon;
        front_req_gone(r, "slow_reader");
        evhttp_connection_free(evcon);
        return false;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, out->data, out->len);
    evhttp_send_reply_chunk(r->req, b);
    evbuffer_free(b);
    front_keepalive_arm(r);
    return true;
}

/* A stream that ends before any answer began is an invalid job: answered as a plain 400
 * (true: r is freed). An answer without a start (never expected) streams as usual. */
static bool
front_stream_refused(front_req *r, const redisReply *result)
{
    int status = 500;
    char *body = NULL;
    size_t len = 0;
    pb_wire_meta meta;
    if (pb_wire_completion(result->str, result->len, r->job.model, r->chunker.created, &status,
                           &body, &len, &meta) != PB_OK ||
        status == 200) {
        free(body);
        return false;
    }
    front_req_finish(r);
    front_header(r->req, "x-request-id", r->id);
    front_send(r->req, status, "application/json", body, len);
    free(body);
    front_req_release(r);
    return true;
}

/* A second start after text went out, not a continuation: the job runs again (its worker
 * was lost mid-stream) and would send its text twice. The client's stream ends with an
 * error event; the job runs on (its result is stored), holding its key's slot. */
static bool
front_stream_restarted(front_req *r, const char *type, const redisReply *fields)
{
    if (!r->started || !r->content_sent || strcmp(type, "start") != 0 ||
        strcmp(front_field_str(fields, "continued"), "1") == 0)
        return false;
    pb_wire_error err;
    pb_wire_error_set(&err, 502, "server_error", "stream_restarted",
                      "the answer started over (its worker was lost); this stream ends here "
                      "(the whole answer: GET planb:result:%s)",
                      r->id);
    pb_log(PB_LOG_WARN, "event=front_stream_restarted id=%s", r->id);
    front_end_with_error(r, &err);
    front_req_detach(r);
    front_req_release(r);
    return true;
}

/* One entry of the job's answer stream, as chat.completion.chunk events. */
static void
front_on_stream_entry(const redisReply *fields, void *arg)
{
    front_req *r = arg;
    if (r->done)
        return;
    const char *type = front_field_str(fields, "type");
    const redisReply *result = strcmp(type, "end") == 0 ? front_field(fields, "result") : NULL;
    if (front_stream_restarted(r, type, fields))
        return;
    if (!r->started) {
        if (result != NULL && front_stream_refused(r, result))
            return;
        front_stream_start(r, fields);
    }
    pb_buf out;
    pb_buf_init(&out, r->f->sse_max);
    if (strcmp(type, "delta") == 0) {
        const redisReply *t = front_field(fields, "text");
        if (t)
            pb_wire_chunk_text(&r->chunker, t->str, t->len, &out);
        r->content_sent = r->content_sent || (t && t->len > 0);
    } else if (strcmp(type, "tool") == 0) {
        r->content_sent = true;
        pb_wire_chunk_tool(&r->chunker, atoi(front_field_str(fields, "index")),
                           front_field_str(fields, "id"), front_field_str(fields, "name"),
                           front_field_str(fields, "arguments"), &out);
    } else if (result != NULL) {
        pb_wire_chunk_end(&r->chunker, result->str, result->len, r->job.include_usage, &out);
    }
    bool alive = front_stream_send(r, &out);
    pb_buf_free(&out);
    if (alive && result != NULL && !r->done) {
        front_req_finish(r);
        evhttp_send_reply_end(r->req);
        front_req_release(r);
    }
}

/* ------------------------------------------------------------------ admission */

static void front_push(front_req *r);

/* The hold of a request not queued for now (no live worker, no Redis) is over: push again.
 * (The hold's timer is r's, deleted when r finishes.) */
static void
front_on_push_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_push(arg);
}

/* A reload's old workers leave before the new ones beat, and a new front binds before its
 * Redis is up: hold the request a moment, don't refuse it (why: what it waits for). */
static void
front_hold(front_req *r, const char *why)
{
    r->held_for = why;
    struct timeval tv = {0, FRONT_HOLD_STEP_MS * 5 * 1000};
    evtimer_add(r->hold, &tv);
}

/* front_push.lua answered. A lost reply (NULL: the bound passed, or the connection dropped)
 * leaves the job maybe queued: the request waits on its id as if pushed, and the settle
 * at its bound tells which. */
static void
front_on_pushed(redisReply *reply, void *arg)
{
    front_req *r = arg;
    r->pending--;
    r->pushing = false;
    if (r->f->closing) {
        front_req_release(r);
        return;
    }
    const char *s = front_reply_status(reply);
    r->push_unknown = reply == NULL;
    if (r->push_unknown || (s && strcmp(s, "OK") == 0))
        r->pushed = true;
    if (r->done) { /* answered by a result that came first, or the client left */
        if (r->pushed && r->gone)
            front_cancel_job(r);
        else if (!r->pushed)
            front_req_undetach(r); /* refused: it never runs */
        front_req_release(r);
        return;
    }
    if (r->pushed) {
        if (r->expired)
            front_settle(r);
        return;
    }
    if (s && strcmp(s, "NO_WORKERS") == 0 && !r->expired && pb_mono_ms() < r->hold_until_mono_ms) {
        front_hold(r, "NO_WORKERS");
        return;
    }
    front_refuse(r, s);
}

static void
front_push(front_req *r)
{
    front *f = r->f;
    if (!pb_redis_is_up(f->cmd)) { /* not sent, so surely not queued */
        if (pb_mono_ms() < r->hold_until_mono_ms)
            front_hold(r, NULL);
        else
            front_refuse(r, NULL);
        return;
    }
    const pb_http_key *k = r->key >= 0 ? &f->cfg->http.keys[r->key] : NULL;
    char *rpm_key = k && k->rpm > 0 ? pb_key_front_rpm(f->cfg->prefix, k->name,
                                                       (long long)(pb_wall_ms() / 60000))
                                    : NULL;
    char max_queue[24], lease[24], rpm[24];
    snprintf(max_queue, sizeof(max_queue), "%d", f->cfg->http.max_queue);
    snprintf(lease, sizeof(lease), "%d", f->cfg->lease_ms);
    snprintf(rpm, sizeof(rpm), "%d", k ? k->rpm : 0);
    const char *argv[] = {f->queue_key,
                          f->workers_key,
                          rpm_key ? rpm_key : "-",
                          f->paused_key,
                          r->job.json,
                          max_queue,
                          lease,
                          rpm,
                          f->cfg->queues[f->cfg->http.queue]};
    size_t lens[9];
    for (int i = 0; i < 9; i++)
        lens[i] = i == 4 ? r->job.len : strlen(argv[i]);
    r->pending++;
    r->pushing = true;
    r->push_ups = pb_redis_ups(f->cmd);
    pb_redis_script_within(f->cmd, f->cfg->redis_timeout_ms, "front_push", front_on_pushed, r, 4, 9,
                           argv, lens);
    free(rpm_key);
}

/* The index in http.keys of the bearer key in an Authorization value a (len bytes; NULL:
 * none): -1 with no keys configured, -2 refused. */
static int
front_key_index(front *f, const char *a, size_t len)
{
    const pb_http_conf *h = &f->cfg->http;
    if (h->n_keys == 0)
        return -1;
    if (a == NULL || len < 7 || strncasecmp(a, "Bearer ", 7) != 0)
        return -2;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(a + 7, len - 7, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        return -2;
    for (size_t i = 0; i < h->n_keys; i++)
        if (CRYPTO_memcmp(md, h->keys[i].sha256, 32) == 0)
            return (int)i;
    return -2;
}

/* The bearer key's index in http.keys (-1 with no keys configured), or -2: refused. */
static int
front_auth(front *f, struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    return front_key_index(f, a, a ? strlen(a) : 0);
}

/* x-planb-deadline-ms, x-planb-cache, x-planb-critical, x-planb-tenant into opts. A key's
 * tenant wins over x-planb-tenant; without one the header counts only with
 * http.tenant_header (a 400 otherwise: silently ignored, it would share the keyless
 * tenant's cache with whoever sent it). */
static int
front_options(const front *f, struct evhttp_request *req, const pb_http_key *key, pb_wire_opts *o,
              pb_wire_error *err)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *v;
    if ((v = evhttp_find_header(in, "x-planb-deadline-ms")) != NULL) {
        char *end = NULL;
        long ms = strtol(v, &end, 10);
        if (end == v || *end != '\0' || ms < 100 || ms > 3600000) {
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_header",
                              "x-planb-deadline-ms must be an integer from 100 to 3600000");
            return PB_ERR;
        }
        o->deadline_ms = (int)ms;
    }
    if ((v = evhttp_find_header(in, "x-planb-cache")) != NULL) {
        if (strcmp(v, "use") != 0 && strcmp(v, "skip") != 0 && strcmp(v, "refresh") != 0) {
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_header",
                              "x-planb-cache must be use, skip or refresh");
            return PB_ERR;
        }
        o->cache = v;
    }
    if ((v = evhttp_find_header(in, "x-planb-critical")) != NULL) {
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            pb_wire_error_set(err, 400, "invalid_request_error", "bad_header",
                              "x-planb-critical must be true or false");
            return PB_ERR;
        }
        o->critical = strcmp(v, "true") == 0;
    }
    v = evhttp_find_header(in, "x-planb-tenant");
    if (v && !(key && key->tenant) && !f->cfg->http.tenant_header) {
        pb_wire_error_set(err, 400, "invalid_request_error", "bad_header",
                          "x-planb-tenant is not accepted here (http.tenant_header is off)");
        return PB_ERR;
    }
    o->tenant = key && key->tenant ? key->tenant : v;
    o->traceparent = evhttp_find_header(in, "traceparent");
    o->tracestate = evhttp_find_header(in, "tracestate");
    return PB_OK;
}

static void front_chat(front *f, struct evhttp_request *req, int key, int64_t held_until);

/* A request that came before Redis was ready (a front just started or reconnecting). */
typedef struct front_held {
    front *f;
    struct evhttp_request *req;
    int key;
    int64_t until_mono_ms;
} front_held;

static void
front_on_held(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_held *h = arg;
    front_chat(h->f, h->req, h->key, h->until_mono_ms);
    free(h);
}

/* Answers one request; held_until > 0 when it already waited for Redis until then. */
static void
front_chat(front *f, struct evhttp_request *req, int key, int64_t held_until)
{
    pb_wire_error err;
    const pb_http_key *k = key >= 0 ? &f->cfg->http.keys[key] : NULL;
    if (k && k->concurrency > 0 && f->key_inflight[key] >= k->concurrency) {
        pb_wire_error_set(&err, 429, "rate_limit_error", "concurrency_exceeded",
                          "this key has %d requests in progress, its limit", k->concurrency);
        front_send_error(req, &err);
        return;
    }
    bool ready = pb_resultwait_ready(f->results) && pb_redis_is_up(f->cmd);
    int64_t now = pb_mono_ms();
    if (!ready && (held_until == 0 || now < held_until) && !f->draining) {
        /* Held a moment rather than refused: a reload's new front takes requests as soon as
         * it binds, a few ms before its connections are up. */
        front_held *h = pb_xcalloc(1, sizeof(*h));
        *h = (front_held){f, req, key, held_until ? held_until : now + FRONT_HOLD_MS};
        struct timeval tv = {0, FRONT_HOLD_STEP_MS * 1000};
        event_base_once(f->base, -1, EV_TIMEOUT, front_on_held, h, &tv);
        return;
    }
    if (!ready) {
        pb_wire_error_set(&err, 503, "server_error", "redis_unavailable",
                          "the front door is not connected to the queue's Redis");
        front_send_error(req, &err);
        return;
    }
    char *id = pb_job_new_id();
    pb_wire_opts opts = {.id = id, .critical = -1, .submitted_at_ms = pb_wall_ms()};
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
    front_req *r = pb_xcalloc(1, sizeof(*r));
    if (front_options(f, req, k, &opts, &err) != PB_OK ||
        pb_wire_job_from_body(body, len, f->cfg, &opts, &r->job, &err) != PB_OK) {
        front_header(req, "x-request-id", id);
        front_send_error(req, &err);
        free(id);
        free(r);
        return;
    }
    r->f = f;
    r->req = req;
    r->evcon = evhttp_request_get_connection(req);
    snprintf(r->id, sizeof(r->id), "%s", id);
    free(id);
    r->key = key;
    r->cache_skip = opts.cache && strcmp(opts.cache, "skip") == 0;
    r->hold_until_mono_ms = pb_mono_ms() + FRONT_HOLD_MS;
    r->deadline_mono_ms = pb_mono_ms() + r->job.deadline_ms;
    r->hold = evtimer_new(f->base, front_on_push_again, r);
    snprintf(r->chunker.id, sizeof(r->chunker.id), "chatcmpl-%s", r->id);
    r->chunker.created = (int64_t)time(NULL);
    if (key >= 0)
        f->key_inflight[key]++;
    r->next = f->reqs;
    if (f->reqs)
        f->reqs->prev = r;
    f->reqs = r;
    f->n_reqs++;
    evhttp_connection_set_closecb(r->evcon, front_on_closed, r);
    front_watch_client(r);
    int64_t bound_ms = r->job.deadline_ms + (int64_t)f->cfg->http.wait_grace_ms;
    r->timer = evtimer_new(f->base, front_on_timer, r);
    struct timeval tv = {(time_t)(bound_ms / 1000), (suseconds_t)(bound_ms % 1000) * 1000};
    evtimer_add(r->timer, &tv);
    if (r->job.stream) {
        r->sub = pb_streamread_add(f->streams, r->id, front_on_stream_entry, r);
    } else {
        pb_resultwait_add(f->results, r->id, front_on_result, r);
        r->waiting = true;
    }
    front_push(r);
}

/* ------------------------------------------------------------------ routing */

static void front_conn_watch_answer(front *f, struct evhttp_request *req);

static void
front_on_request(struct evhttp_request *req, void *arg)
{
    front *f = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    pb_wire_error err;
    front_conn_watch_answer(f, req);
    if (path == NULL)
        path = "";
    if (f->draining) /* still served (a reload's jobs go to the new workers); then goodbye */
        front_header(req, "Connection", "close");
    if (strcmp(path, "/healthz") == 0) {
        bool ok = !f->draining && pb_resultwait_ready(f->results) && pb_redis_is_up(f->cmd);
        front_send(req, ok ? 200 : 503, "text/plain", ok ? "ok\n" : "unavailable\n", ok ? 3 : 12);
        return;
    }
    bool chat = strcmp(path, "/v1/chat/completions") == 0;
    bool models = strcmp(path, "/v1/models") == 0;
    bool model = strncmp(path, "/v1/models/", 11) == 0 && path[11] != '\0';
    if (!chat && !models && !model) {
        pb_wire_error_set(&err, 404, "invalid_request_error", "unknown_url",
                          "Unknown request URL: %.100s (planb serves POST /v1/chat/completions "
                          "and GET /v1/models)",
                          path);
        front_send_error(req, &err);
        return;
    }
    if ((chat && method != EVHTTP_REQ_POST) || (!chat && method != EVHTTP_REQ_GET)) {
        pb_wire_error_set(&err, 405, "invalid_request_error", "method_not_allowed", "%s takes %s",
                          path, chat ? "POST" : "GET");
        front_send_error(req, &err);
        return;
    }
    int key = front_auth(f, req);
    if (key == -2) {
        pb_wire_error_set(&err, 401, "invalid_request_error", "invalid_api_key",
                          "Incorrect API key provided (Authorization: Bearer <key>)");
        front_send_error(req, &err);
        return;
    }
    if (chat) {
        front_chat(f, req, key, 0);
        return;
    }
    size_t len = 0;
    char *body = models ? pb_wire_models(f->cfg, &len) : NULL;
    if (model) {
        char *id = evhttp_uridecode(path + 11, 0, NULL);
        body = id ? pb_wire_model(f->cfg, id, &len) : NULL;
        free(id);
        if (body == NULL) {
            pb_wire_error_set(&err, 404, "invalid_request_error", "model_not_found",
                              "The model '%.100s' does not exist", path + 11);
            front_send_error(req, &err);
            return;
        }
    }
    front_send(req, 200, "application/json", body, len);
    free(body);
}

/* ------------------------------------------------------------------ connections */

/* Where a connection's reading is: the bytes of a request pass the input filter
 * (front_conn_read) only as far as its framing goes, and the next request's only once its
 * answer is out and evhttp reads again, so what a client sends meanwhile waits in the
 * socket's bufferevent, bounded by FRONT_SOCKET_READ_MAX. */
typedef enum {
    FRONT_READ_HEAD,       /* request line and headers, kept in c->line until the blank line */
    FRONT_READ_BODY,       /* c->left bytes of a Content-Length body */
    FRONT_READ_CHUNK_SIZE, /* a chunk-size line (extensions dropped for evhttp) */
    FRONT_READ_CHUNK_DATA, /* c->left bytes of a chunk */
    FRONT_READ_CHUNK_END,  /* the CRLF after a chunk */
    FRONT_READ_TRAILER,    /* trailer lines up to the blank one */
    FRONT_READ_DONE,       /* the request is read: its answer comes, then the next request */
    FRONT_READ_OTHER,      /* a head we do not frame: evhttp reads (and refuses) it */
    FRONT_READ_REFUSED     /* answered before its body: what comes is dropped */
} front_read_state;

/* One client connection's bookkeeping, freed with its bufferevent. */
struct front_conn {
    front *f;
    struct bufferevent *bev; /* the filter evhttp uses */
    struct event *flush;     /* pushes its output on to the socket (see front_on_conn_out) */
    struct event *writable;  /* a full socket can take more (see front_conn_write) */
    struct event *deadline;  /* http.request_read_timeout_ms from a request's first byte */
    struct event *next;      /* the answer is out: read the next request (front_on_conn_next) */
    front_read_state state;  /* where the request being read is */
    pb_buf line;             /* the head, or a chunk-size or trailer line, being read */
    uint64_t left;           /* body or chunk bytes still to pass */
    size_t reserved;         /* this body's share of front.bodies_bytes */
    bool answered;           /* the read request's answer is out (front_on_conn_answered) */
    evutil_socket_t fd;      /* its index in front.conn_of_fd (-1: not yet read from) */
    /* HTTPS (http.tls): the filter sits on a TLS bufferevent instead of a socket one */
    struct bufferevent *tls;         /* the TLS bufferevent under c->bev; NULL: plain HTTP */
    size_t tls_out;                  /* bytes of the filter's output copied into c->tls */
    bufferevent_data_cb tls_readcb;  /* the filter's own callbacks on c->tls, which */
    bufferevent_data_cb tls_writecb; /* front_conn_tls_read/_written/_event pass on */
    bufferevent_event_cb tls_eventcb;
    void *tls_cbarg;
    bool tls_shut; /* a refusal went out and the TLS connection was shut for writing */
};

/* A request's body is read, or will not be: its share of the bodies budget comes back. */
static void
front_conn_unreserve(front_conn *c)
{
    c->f->bodies_bytes -= c->reserved;
    c->reserved = 0;
}

/* A client connection closed (its filter bufferevent is being freed). */
static void
front_on_conn_freed(void *arg)
{
    front_conn *c = arg;
    front *f = c->f;
    if (c->fd >= 0 && f->conn_of_fd[c->fd] == c)
        f->conn_of_fd[c->fd] = NULL;
    front_conn_unreserve(c);
    event_free(c->flush);
    event_free(c->deadline);
    event_free(c->next);
    if (c->writable)
        event_free(c->writable);
    pb_buf_free(&c->line);
    free(c);
    f->n_conns--;
    if (f->paused && f->n_conns < f->cfg->http.max_connections && f->bound) {
        f->paused = false;
        evconnlistener_enable(evhttp_bound_socket_get_listener(f->bound));
    }
}

/* Runs a turn after output was added, or when a full socket can take more. evhttp may have
 * freed the connection meanwhile (bufferevent_free clears the callbacks; the memory goes
 * later): flushing it then would free it a second time. */
static void
front_on_conn_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_conn *c = arg;
    bufferevent_data_cb readcb, writecb;
    bufferevent_event_cb eventcb;
    void *cbarg;
    bufferevent_getcb(c->bev, &readcb, &writecb, &eventcb, &cbarg);
    if (eventcb != NULL)
        bufferevent_flush(c->bev, EV_WRITE, BEV_NORMAL);
}

/* The filter's output filter: bytes go from the filter straight into the kernel, and only
 * those the kernel took leave the filter. evhttp hears "written" when the filter is empty,
 * and then frees a Connection: close connection, shutting its socket down: had the bytes
 * gone on to the socket's bufferevent first, the reply would be cut off unsent. A full
 * socket keeps the rest here and waits for c->writable. */
static enum bufferevent_filter_result
front_conn_write(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
                 enum bufferevent_flush_mode mode, void *arg)
{
    (void)dst;
    (void)limit;
    (void)mode;
    front_conn *c = arg;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    while (fd >= 0 && evbuffer_get_length(src) > 0) {
        int n = evbuffer_write(src, fd);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return BEV_ERROR; /* the client is gone: its read side or the timeout says so */
        if (n <= 0)
            break;
    }
    if (evbuffer_get_length(src) == 0)
        return BEV_OK;
    if (c->writable == NULL)
        c->writable = event_new(c->f->base, fd, EV_WRITE, front_on_conn_flush, c);
    if (c->writable)
        event_add(c->writable, NULL);
    return BEV_NEED_MORE;
}

/* The output filter over TLS. The bytes must be encrypted by the TLS bufferevent, which writes
 * them when the socket takes them, yet leave the filter only once written, for the reason
 * above (evhttp frees the connection, and with it the TLS bufferevent and what it holds, when
 * the filter is empty). So the filter keeps what it handed on: the first c->tls_out bytes of
 * src are also in dst, and as dst empties they are dropped from src. libevent's filter runs
 * this again when the TLS bufferevent has written all it holds. Unsent bytes are in memory
 * twice: a stream's are bounded by FRONT_MAX_PENDING_OUT, an answer's by its size. */
static enum bufferevent_filter_result
front_conn_write_tls(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
                     enum bufferevent_flush_mode mode, void *arg)
{
    (void)limit;
    (void)mode;
    front_conn *c = arg;
    size_t held = evbuffer_get_length(dst);
    if (held < c->tls_out) { /* the TLS bufferevent wrote c->tls_out - held of them */
        evbuffer_drain(src, c->tls_out - held);
        c->tls_out = held;
    }
    size_t len = evbuffer_get_length(src);
    struct evbuffer_ptr pos;
    if (c->tls_out < len && evbuffer_ptr_set(src, &pos, c->tls_out, EVBUFFER_PTR_SET) == 0) {
        char tmp[16384];
        while (c->tls_out < len) {
            size_t want = len - c->tls_out < sizeof(tmp) ? len - c->tls_out : sizeof(tmp);
            ev_ssize_t n = evbuffer_copyout_from(src, &pos, tmp, want);
            if (n <= 0 || evbuffer_add(dst, tmp, (size_t)n) != 0)
                return BEV_ERROR; /* out of memory */
            c->tls_out += (size_t)n;
            evbuffer_ptr_set(src, &pos, (size_t)n, EVBUFFER_PTR_ADD);
        }
    }
    return evbuffer_get_length(src) == 0 ? BEV_OK : BEV_NEED_MORE;
}

/* evhttp reads a request on c (not: a request read and waiting for its answer, or an answer
 * being written); its read callback is set only while it reads. */
static bool
front_conn_evhttp_reads(front_conn *c, struct evhttp_connection **evcon)
{
    bufferevent_data_cb readcb, writecb;
    bufferevent_event_cb eventcb;
    void *cbarg = NULL;
    bufferevent_getcb(c->bev, &readcb, &writecb, &eventcb, &cbarg);
    if (evcon)
        *evcon = eventcb ? cbarg : NULL;
    return readcb != NULL && (bufferevent_get_enabled(c->bev) & EV_READ);
}

/* The request's reading is over (read whole, or refused). */
static void
front_conn_read_done(front_conn *c, front_read_state state)
{
    c->state = state;
    c->answered = false;
    front_conn_unreserve(c);
    if (state == FRONT_READ_DONE)
        evtimer_del(c->deadline);
    pb_buf_free(&c->line);
}

/* Answers a request at its head, before its body is read (so a refused body costs no memory):
 * written straight to the socket, which evhttp has not written to since the last answer went
 * out, then no more is read. The client's close (or the read deadline) frees the connection. */
static void
front_conn_refuse(front_conn *c, const pb_wire_error *err)
{
    size_t len = 0;
    char *body = pb_wire_error_json(err, &len);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\n%s\r\nConnection: close\r\n\r\n",
                     err->status, err->status == 503 ? "Service Unavailable" : "Error", len,
                     err->status == 503 ? "Retry-After: " FRONT_RETRY_AFTER_S
                                        : "x-should-retry: false");
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    struct iovec iov[2] = {{head, (size_t)n}, {body, len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    if (c->tls) { /* encrypted on its way out; the close follows it (front_conn_tls_written) */
        evbuffer_add(bufferevent_get_output(c->tls), head, (size_t)n);
        evbuffer_add(bufferevent_get_output(c->tls), body, len);
    } else if (fd >= 0 && sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) {
        shutdown(fd, SHUT_WR);
    }
    free(body);
    pb_log(err->status == 503 ? PB_LOG_WARN : PB_LOG_DEBUG, "event=front_refused status=%d code=%s",
           err->status, err->code);
    front_conn_read_done(c, FRONT_READ_REFUSED);
}

/* A head is complete in c->line: refused, or passed on to evhttp (true). A request with a body
 * must bring a valid key (when keys are configured) and fit in http.max_bodies_bytes. */
static bool
front_conn_head(front_conn *c, struct evbuffer *dst)
{
    front *f = c->f;
    const pb_http_conf *hc = &f->cfg->http;
    pb_wire_head h;
    pb_wire_error err;
    if (pb_wire_head_parse(c->line.data, c->line.len, &h, &err) != PB_OK) {
        front_conn_refuse(c, &err);
        return false;
    }
    if (h.other) {
        c->state = FRONT_READ_OTHER;
    } else if (h.body != PB_WIRE_BODY_NONE && (h.body == PB_WIRE_BODY_CHUNKED || h.length > 0)) {
        if (!h.healthz && front_key_index(f, h.auth, h.auth_len) == -2) {
            pb_wire_error_set(&err, 401, "invalid_request_error", "invalid_api_key",
                              "Incorrect API key provided (Authorization: Bearer <key>)");
            front_conn_refuse(c, &err);
            return false;
        }
        /* Over max_body_bytes: evhttp answers 413 at once, reading none of it. */
        size_t want = h.body == PB_WIRE_BODY_CHUNKED || h.length > hc->max_body_bytes
                          ? hc->max_body_bytes
                          : (size_t)h.length;
        if (f->bodies_bytes + want > hc->max_bodies_bytes) {
            pb_wire_error_set(&err, 503, "server_error", "overloaded",
                              "the request bodies being read now fill http.max_bodies_bytes");
            front_conn_refuse(c, &err);
            return false;
        }
        c->reserved = want;
        f->bodies_bytes += want;
        c->state = h.body == PB_WIRE_BODY_CHUNKED ? FRONT_READ_CHUNK_SIZE : FRONT_READ_BODY;
        c->left = h.length;
    }
    evbuffer_add(dst, c->line.data, c->line.len);
    pb_buf_free(&c->line);
    if (c->state == FRONT_READ_HEAD)
        front_conn_read_done(c, FRONT_READ_DONE); /* no body */
    return true;
}

/* Moves bytes of src up to and including a LF into c->line: 1 a line is complete, 0 src is
 * used up first, -1 the line would pass max (the caller gives up framing it). */
static int
front_conn_take_line(front_conn *c, struct evbuffer *src, size_t max)
{
    struct evbuffer_ptr eol = evbuffer_search_eol(src, NULL, NULL, EVBUFFER_EOL_LF);
    size_t n = eol.pos >= 0 ? (size_t)eol.pos + 1 : evbuffer_get_length(src);
    if (c->line.len + n > max)
        return -1;
    char tmp[4096];
    for (size_t k = n; k > 0;) {
        size_t m = k < sizeof(tmp) ? k : sizeof(tmp);
        evbuffer_remove(src, tmp, m);
        pb_buf_append(&c->line, tmp, m);
        k -= m;
    }
    return eol.pos >= 0;
}

/* The line just taken is empty ("\n" or "\r\n" after the line's start at from). */
static bool
front_conn_line_blank(const front_conn *c, size_t from)
{
    size_t n = c->line.len - from;
    return n == 1 || (n == 2 && c->line.data[from] == '\r');
}

/* Makes c findable by its descriptor (front_conn_watch_answer), once it has one. */
static void
front_conn_register(front_conn *c)
{
    front *f = c->f;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (c->fd >= 0 || fd < 0)
        return;
    if (fd >= f->n_conn_of_fd) {
        int n = fd + 1 > 2 * f->n_conn_of_fd ? fd + 1 : 2 * f->n_conn_of_fd;
        f->conn_of_fd = pb_xrealloc(f->conn_of_fd, (size_t)n * sizeof(*f->conn_of_fd));
        memset(f->conn_of_fd + f->n_conn_of_fd, 0,
               (size_t)(n - f->n_conn_of_fd) * sizeof(*f->conn_of_fd));
        f->n_conn_of_fd = n;
    }
    f->conn_of_fd[fd] = c;
    c->fd = fd;
}

/* The connection's input filter (see front_read_state): frames the request being read, and
 * holds the next one back until evhttp reads again. */
static enum bufferevent_filter_result
front_conn_read(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
                enum bufferevent_flush_mode mode, void *arg)
{
    (void)limit;
    (void)mode;
    front_conn *c = arg;
    const pb_http_conf *hc = &c->f->cfg->http;
    size_t in = evbuffer_get_length(src);
    front_conn_register(c);
    while (evbuffer_get_length(src) > 0) {
        if (c->state == FRONT_READ_DONE) {
            if (!c->answered)
                break; /* the answer first */
            c->state = FRONT_READ_HEAD;
        }
        if (c->state == FRONT_READ_HEAD && c->line.len == 0) {
            struct timeval tv = {hc->request_read_timeout_ms / 1000,
                                 (hc->request_read_timeout_ms % 1000) * 1000};
            evtimer_add(c->deadline, &tv);
        }
        size_t from = c->line.len;
        int got;
        switch (c->state) {
        case FRONT_READ_HEAD:
            got = front_conn_take_line(c, src, 2 * hc->max_header_bytes + 64);
            if (got < 0 || (got == 1 && from == 0 && front_conn_line_blank(c, from))) {
                /* Too long, or a blank first line: evhttp refuses it with a 400. */
                evbuffer_add(dst, c->line.data, c->line.len);
                pb_buf_free(&c->line);
                c->state = FRONT_READ_OTHER;
            } else if (got == 1 && front_conn_line_blank(c, from)) {
                front_conn_head(c, dst);
            }
            break;
        case FRONT_READ_BODY:
        case FRONT_READ_CHUNK_DATA: {
            size_t n = evbuffer_get_length(src);
            if ((uint64_t)n > c->left)
                n = (size_t)c->left;
            evbuffer_remove_buffer(src, dst, n);
            c->left -= n;
            if (c->left == 0 && c->state == FRONT_READ_BODY)
                front_conn_read_done(c, FRONT_READ_DONE);
            else if (c->left == 0)
                c->state = FRONT_READ_CHUNK_END;
            break;
        }
        case FRONT_READ_CHUNK_SIZE:
        case FRONT_READ_CHUNK_END:
        case FRONT_READ_TRAILER: {
            got = front_conn_take_line(c, src, 4096);
            if (got == 0)
                break;
            uint64_t size = 0;
            pb_wire_error err;
            bool blank = got == 1 && front_conn_line_blank(c, 0);
            if (c->state == FRONT_READ_CHUNK_SIZE && got == 1 &&
                pb_wire_chunk_size(c->line.data, c->line.len - 1, &size) == PB_OK) {
                /* evhttp 2.1 refuses chunk extensions: it gets the bare size. */
                evbuffer_add_printf(dst, "%llx\r\n", (unsigned long long)size);
                c->state = size ? FRONT_READ_CHUNK_DATA : FRONT_READ_TRAILER;
                c->left = size;
            } else if (c->state != FRONT_READ_CHUNK_SIZE && blank) {
                evbuffer_add(dst, c->line.data, c->line.len);
                if (c->state == FRONT_READ_TRAILER)
                    front_conn_read_done(c, FRONT_READ_DONE);
                else
                    c->state = FRONT_READ_CHUNK_SIZE;
            } else if (c->state == FRONT_READ_TRAILER && got == 1) {
                evbuffer_add(dst, c->line.data, c->line.len);
            } else {
                pb_wire_error_set(&err, 400, "invalid_request_error", "bad_request",
                                  "the chunked body is malformed");
                front_conn_refuse(c, &err);
                break;
            }
            pb_buf_reset(&c->line);
            break;
        }
        case FRONT_READ_OTHER:
            evbuffer_add_buffer(dst, src);
            break;
        case FRONT_READ_REFUSED:
            evbuffer_drain(src, evbuffer_get_length(src));
            break;
        case FRONT_READ_DONE:
            break;
        }
    }
    return evbuffer_get_length(src) < in ? BEV_OK : BEV_NEED_MORE;
}

/* A request was not read whole within http.request_read_timeout_ms of its first byte (a
 * slow trickle that the idle timeout never sees): the connection is closed. */
static void
front_on_conn_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_conn *c = arg;
    struct evhttp_connection *evcon = NULL;
    front_conn_evhttp_reads(c, &evcon);
    if (c->state == FRONT_READ_DONE || evcon == NULL)
        return;
    pb_log(PB_LOG_WARN, "event=front_read_timeout state=%d timeout_ms=%d", (int)c->state,
           c->f->cfg->http.request_read_timeout_ms);
    evhttp_connection_free(evcon);
}

/* An answer is out and evhttp reads again (a turn after front_on_conn_answered): the next
 * request's bytes held back go on to it. */
static void
front_on_conn_next(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_conn *c = arg;
    if (c->state != FRONT_READ_DONE || !c->answered || !front_conn_evhttp_reads(c, NULL))
        return;
    c->state = FRONT_READ_HEAD;
    struct bufferevent *sock = bufferevent_get_underlying(c->bev);
    if (sock && evbuffer_get_length(bufferevent_get_input(sock)) > 0)
        bufferevent_flush(c->bev, EV_READ, BEV_NORMAL);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

/* evhttp's "answer written" hook of a request on c: it reads the next request right after
 * this returns, so the bytes held back go on a turn later. */
static void
front_on_conn_answered(struct evhttp_request *req, void *arg)
{
    (void)req;
    front_conn *c = arg;
    c->answered = true;
    struct timeval now = {0, 0};
    evtimer_add(c->next, &now);
}

/* Hooks the connection's bookkeeping to a request read on it (its fd finds it). */
static void
front_conn_watch_answer(front *f, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    front_conn *c = fd >= 0 && fd < f->n_conn_of_fd ? f->conn_of_fd[fd] : NULL;
    if (c && c->bev == bev)
        evhttp_request_set_on_complete_cb(req, front_on_conn_answered, c);
}

/* A connection moved bytes while the front drains: a request on its way in, or a reply on
 * its way out, which the drain waits for. (Not timed before the drain: no need.) */
static void
front_conn_active(front *f)
{
    if (f->draining)
        f->conn_activity_mono_ms = pb_mono_ms();
}

static void
front_on_conn_in(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    front_conn *c = arg;
    if (info->n_added > 0)
        front_conn_active(c->f);
}

/* libevent 2.1's filter moves output on only when bytes are added while writing is enabled,
 * and evhttp adds a reply first and enables writing after: so every addition also asks for
 * a flush on the next loop turn, when writing is on. (The filter's callbacks are deferred
 * for the same reason: run at once, its "written" callback would reach evhttp before evhttp
 * has said what to do when the reply is out, and a keep-alive connection would hang.) */
static void
front_on_conn_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    front_conn *c = arg;
    if (info->n_added > 0)
        event_active(c->flush, EV_TIMEOUT, 0);
    if (info->n_added > 0 || info->n_deleted > 0)
        front_conn_active(c->f);
}

/* A client's TLS handshake failed (a plain-HTTP client, a scanner, a client that does not
 * trust the certificate, or a hang-up mid-handshake): nothing to answer, the connection just
 * closes. It is the client's problem, so it is counted and written at most once per
 * FRONT_TLS_LOG_MS: at info with OpenSSL's reason, at debug for a bare hang-up (load
 * balancers' TCP checks, clients that drop a certificate they refuse), each kind with its own
 * count so hang-ups never hide the reasons. */
static void
front_tls_failed(front *f, struct bufferevent *tls)
{
    /* libevent keeps SSL_get_error's code under OpenSSL's queue: the last error with a
     * reason is the one that says why. */
    const char *reason = NULL;
    for (unsigned long e; (e = bufferevent_get_openssl_error(tls)) != 0;)
        if (reason == NULL)
            reason = ERR_reason_error_string(e);
    front_ratelog *rl = reason ? &f->tls_failed : &f->tls_hangups;
    rl->n++;
    int64_t now = pb_mono_ms();
    if (rl->at_mono_ms != 0 && now - rl->at_mono_ms < FRONT_TLS_LOG_MS)
        return;
    pb_log(reason ? PB_LOG_INFO : PB_LOG_DEBUG,
           "event=front_tls_failed reason=\"%s\" failures=%lu note=\"a client's TLS handshake "
           "failed; failures counts those%s since the last such line (at most one per %d s)\"",
           reason ? reason : "closed during the handshake", rl->n,
           reason ? " with a reason" : " closed without one", FRONT_TLS_LOG_MS / 1000);
    rl->at_mono_ms = now;
    rl->n = 0;
}

/* The TLS bufferevent read: the filter's own callback (sock's callbacks share one argument,
 * c, so each of them is passed on). */
static void
front_conn_tls_read(struct bufferevent *tls, void *arg)
{
    front_conn *c = arg;
    c->tls_readcb(tls, c->tls_cbarg);
}

/* The TLS bufferevent's events, before the filter (and evhttp) hear them: an end before the
 * handshake finished is a failed handshake. The filter's callback may free c. */
static void
front_conn_tls_event(struct bufferevent *tls, short what, void *arg)
{
    front_conn *c = arg;
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) &&
        !SSL_is_init_finished(bufferevent_openssl_get_ssl(tls)))
        front_tls_failed(c->f, tls);
    c->tls_eventcb(tls, what, c->tls_cbarg);
}

/* The TLS bufferevent wrote all it held. After a refusal (front_conn_refuse) that is the
 * answer: close_notify and a shutdown for writing follow it, as the plain path's shutdown
 * does, so the client sees the end. Then the filter's own callback. */
static void
front_conn_tls_written(struct bufferevent *tls, void *arg)
{
    front_conn *c = arg;
    if (c->state == FRONT_READ_REFUSED && !c->tls_shut &&
        evbuffer_get_length(bufferevent_get_output(tls)) == 0) {
        c->tls_shut = true;
        SSL_shutdown(bufferevent_openssl_get_ssl(tls));
        ERR_clear_error();
        evutil_socket_t fd = bufferevent_getfd(tls);
        if (fd >= 0)
            shutdown(fd, SHUT_WR);
    }
    c->tls_writecb(tls, c->tls_cbarg);
}

/* The bufferevent under a connection's filter: a socket one, or over HTTPS a TLS one that
 * accepts a handshake once evhttp gives it the socket (libevent's filter passes the fd
 * down). Peers that close without close_notify are an EOF, not an error (OpenSSL 3 reports
 * them so and libevent 2.1.12 predates that). */
static struct bufferevent *
front_conn_sock_new(front *f, struct event_base *base)
{
    if (f->tls == NULL)
        return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = pb_tls_server_ssl(f->tls);
    if (ssl == NULL)
        return NULL;
    /* On failure it frees ssl (BEV_OPT_CLOSE_ON_FREE). */
    struct bufferevent *tls = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (tls)
        bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    return tls;
}

/* Every accepted connection's bufferevent: a socket (or TLS) one under a filter, so that its
 * free is seen (evhttp 2.1 has no connection cap and no close hook for a connection that never
 * completed a request) and what it reads is framed and bounded (front_conn_read). */
static struct bufferevent *
front_bevcb(struct event_base *base, void *arg)
{
    front *f = arg;
    front_conn *c = pb_xcalloc(1, sizeof(*c));
    c->f = f;
    c->flush = event_new(base, -1, 0, front_on_conn_flush, c);
    c->fd = -1;
    c->deadline = evtimer_new(base, front_on_conn_deadline, c);
    c->next = evtimer_new(base, front_on_conn_next, c);
    pb_buf_init(&c->line, 2 * f->cfg->http.max_header_bytes + 4096);
    struct bufferevent *sock = front_conn_sock_new(f, base);
    c->bev = sock ? bufferevent_filter_new(
                        sock, front_conn_read, f->tls ? front_conn_write_tls : front_conn_write,
                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, front_on_conn_freed, c)
                  : NULL;
    if (c->bev == NULL) {
        if (sock)
            bufferevent_free(sock);
        event_free(c->flush);
        event_free(c->deadline);
        event_free(c->next);
        free(c);
        return NULL; /* evhttp makes a plain one: not counted, and rare (out of memory) */
    }
    if (f->tls) { /* the filter set its callbacks on sock: ours go first */
        bufferevent_getcb(sock, &c->tls_readcb, &c->tls_writecb, &c->tls_eventcb, &c->tls_cbarg);
        bufferevent_setcb(sock, front_conn_tls_read, front_conn_tls_written, front_conn_tls_event,
                          c);
        c->tls = sock;
    }
    /* What the client sends while its answer is written waits here, not in memory. */
    bufferevent_setwatermark(sock, EV_READ, 0, FRONT_SOCKET_READ_MAX);
    evbuffer_add_cb(bufferevent_get_output(c->bev), front_on_conn_out, c);
    evbuffer_add_cb(bufferevent_get_input(c->bev), front_on_conn_in, c);
    f->n_conns++;
    if (f->n_conns >= f->cfg->http.max_connections && !f->paused && f->bound) {
        f->paused = true;
        evconnlistener_disable(evhttp_bound_socket_get_listener(f->bound));
        pb_log(PB_LOG_WARN, "event=front_max_connections connections=%d", f->n_conns);
    }
    return c->bev;
}

/* ------------------------------------------------------------------ process */

/* The host of "host:port" or "[v6]:port", brackets removed (config.c checked the shape). */
static void
front_listen_host(const char *listen, char *out, size_t n)
{
    const char *colon = strrchr(listen, ':');
    const char *host = listen;
    int len = (int)(colon - listen);
    if (host[0] == '[') {
        host++;
        len -= 2;
    }
    snprintf(out, n, "%.*s", len < 0 ? 0 : len, host);
}

static bool
front_is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "::1") == 0;
}

/* The master binds http.listen once and keeps the socket across reloads and respawns:
 * every front accepts from the one queue of the kernel, so a reload's new front takes the
 * connections the old one stopped accepting (none is refused or reset in between). */
int
pb_front_bind(const pb_http_conf *h)
{
    char bare[256];
    front_listen_host(h->listen, bare, sizeof(bare));
    const char *colon = strrchr(h->listen, ':');
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICSERV;
    if (evutil_getaddrinfo(bare, colon + 1, &hints, &ai) != 0 || ai == NULL) {
        pb_log(PB_LOG_ERROR, "event=front_listen_failed listen=%s why=\"cannot resolve\"",
               h->listen);
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) != 0 || listen(fd, FRONT_BACKLOG) != 0) {
        pb_log_errno("event=front_listen_failed listen=%s", h->listen);
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    evutil_freeaddrinfo(ai);
    return fd;
}

/* Serves the listening socket inherited from the master (closing our copy on drain leaves
 * the master's open). */
static int
front_listen(front *f, int listen_fd)
{
    const pb_http_conf *h = &f->cfg->http;
    struct evconnlistener *l =
        evconnlistener_new(f->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, 0, listen_fd);
    if (l == NULL) {
        pb_log_errno("event=front_listen_failed listen=%s", h->listen);
        return PB_ERR;
    }
    f->bound = evhttp_bind_listener(f->http, l);
    char bare[256];
    front_listen_host(h->listen, bare, sizeof(bare));
    if (h->n_keys == 0 && !front_is_loopback(bare))
        pb_log(PB_LOG_WARN,
               "event=front_no_keys listen=%s note=\"http.keys is empty: anyone "
               "who can reach this address can use planb\"",
               h->listen);
    pb_log(PB_LOG_INFO, "event=front_listen listen=%s scheme=%s keys=%zu max_connections=%d",
           h->listen, f->tls ? "https" : "http", h->n_keys, h->max_connections);
    return PB_OK;
}

/* Room for http.max_connections sockets plus our own. */
static void
front_raise_fd_limit(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = (rlim_t)want + FRONT_FD_RESERVE;
    if (rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        pb_log(PB_LOG_WARN,
               "event=front_fd_limit limit=%lu wanted=%lu note=\"raise the hard open-file limit "
               "(LimitNOFILE) to hold http.max_connections\"",
               (unsigned long)rl.rlim_cur, (unsigned long)need);
}

/* A stream still going when the drain's time is up ends with an error event, written out
 * now (the loop stops after this turn), never with a silent close. */
static void
front_stream_drain_cut(front_req *r)
{
    pb_wire_error err;
    pb_wire_error_set(&err, 503, "server_error", "drain_timeout",
                      "planb is restarting and this answer did not finish within "
                      "drain_timeout_ms; the job finishes unread (GET planb:result:%s)",
                      r->id);
    pb_log(PB_LOG_WARN, "event=front_stream_cut id=%s why=drain_timeout", r->id);
    size_t len = 0;
    char *e = pb_wire_error_json(&err, &len);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "data: %s\n\ndata: [DONE]\n\n", e);
    free(e);
    evhttp_send_reply_chunk(r->req, b);
    evbuffer_free(b);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    if (bev)
        bufferevent_flush(bev, EV_WRITE, BEV_FLUSH);
    front_req_finish(r);
}

static void
front_on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front *f = arg;
    int64_t now = pb_mono_ms();
    /* Done when every connection has closed (a draining front's replies close theirs), or
     * when no request is in progress and no connection moved a byte for a moment: a
     * request on its way in is read and answered, a reply on its way out is written. */
    bool quiet = f->n_conns == 0 || now - f->conn_activity_mono_ms >= FRONT_DRAIN_QUIET_MS;
    if (f->n_conns == 0 || (f->n_reqs == 0 && quiet) || now >= f->drain_until_mono_ms) {
        if (f->n_reqs > 0)
            pb_log(PB_LOG_WARN, "event=front_drain_timeout requests=%d", f->n_reqs);
        bool cut = false;
        for (front_req *r = f->reqs; r; r = r->next)
            if (r->started && !r->done) {
                front_stream_drain_cut(r);
                cut = true;
            }
        /* Over TLS the cut streams' last events are encrypted and written on a later turn
         * (when their sockets can take them): the next tick ends the loop. */
        if (cut && f->tls)
            return;
        event_base_loopbreak(f->base);
    }
}

static void
front_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    front *f = arg;
    if (f->draining)
        return;
    f->draining = true;
    f->conn_activity_mono_ms = pb_mono_ms(); /* a connection accepted just now gets its turn */
    f->drain_until_mono_ms = f->conn_activity_mono_ms + f->cfg->drain_timeout_ms;
    pb_log(PB_LOG_INFO, "event=front_drain signal=%d requests=%d", (int)sig, f->n_reqs);
    if (f->bound) {
        evhttp_del_accept_socket(f->http, f->bound); /* the next front takes the queue */
        f->bound = NULL;
    }
    f->drain_tick = event_new(f->base, -1, EV_PERSIST, front_on_drain_tick, f);
    struct timeval tv = {0, 100 * 1000};
    event_add(f->drain_tick, &tv);
}

int
pb_front_run(const pb_config *cfg, int listen_fd)
{
    front *f = pb_xcalloc(1, sizeof(*f));
    f->cfg = cfg;
    pb_log_set_role("front");
    if (!pb_core_child_start()) {
        free(f);
        return PB_EXIT_FATAL;
    }
    /* http.tls is read afresh by every front, so the one a SIGHUP starts serves the rotated
     * files (the master's reload checked them first, refusing a reload onto a bad pair). */
    if (cfg->http.tls_cert_file) {
        char why[512];
        f->tls =
            pb_tls_server_new(cfg->http.tls_cert_file, cfg->http.tls_key_file, why, sizeof(why));
        if (f->tls == NULL) {
            pb_log(PB_LOG_ERROR,
                   "event=front_tls_unusable why=\"%s\" note=\"http.tls changed "
                   "since the config was checked; retried at the next respawn\"",
                   why);
            free(f);
            return 1;
        }
    }
    front_raise_fd_limit(cfg->http.max_connections);
    pb_key_worker_id(f->name, sizeof(f->name), getpid());
    f->base = event_base_new();
    f->queue_key = pb_key_queue(cfg->prefix, cfg->queues[cfg->http.queue]);
    f->workers_key = pb_key_workers(cfg->prefix);
    f->paused_key = pb_key_paused(cfg->prefix);
    f->inflight_prefix = pb_key_inflight(cfg->prefix, "");
    f->sse_max = 6 * cfg->limits.reply_max_bytes + (64u << 10); /* \u00XX is 6 bytes */
    f->key_inflight = pb_xcalloc(cfg->http.n_keys + 1, sizeof(int));
    f->cmd = pb_redis_new(f->base, cfg, "cmd");
    f->results = pb_resultwait_new(f->base, cfg, f->cmd, f->name);
    f->streams = pb_streamread_new(f->base, cfg, f->cmd);
    f->http = evhttp_new(f->base);
    evhttp_set_max_body_size(f->http, (ev_ssize_t)cfg->http.max_body_bytes);
    evhttp_set_max_headers_size(f->http, (ev_ssize_t)cfg->http.max_header_bytes);
    struct timeval tv = {cfg->http.client_timeout_ms / 1000,
                         (cfg->http.client_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(f->http, &tv);
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_bevcb(f->http, front_bevcb, f);
    evhttp_set_gencb(f->http, front_on_request, f);
    int code = 1; /* retried by the master's respawn backoff */
    f->sig_term = evsignal_new(f->base, SIGTERM, front_on_signal, f);
    f->sig_int = evsignal_new(f->base, SIGINT, front_on_signal, f);
    evsignal_add(f->sig_term, NULL);
    evsignal_add(f->sig_int, NULL);
    if (front_listen(f, listen_fd) == PB_OK) {
        event_base_dispatch(f->base);
        code = 0;
    }
    /* Requests still open at the end (drain timeout): their clients get a closed connection;
     * their jobs finish unread. */
    f->closing = true;
    evhttp_free(f->http);
    pb_streamread_free(f->streams);
    pb_resultwait_free(f->results);
    pb_redis_free(f->cmd);
    for (front_req *r = f->reqs, *next; r; r = next) {
        next = r->next;
        r->done = true;
        r->pending = 0; /* the connection is gone and its callbacks with it */
        r->detached = false;
        front_req_release(r);
    }
    if (f->drain_tick)
        event_free(f->drain_tick);
    event_free(f->sig_term);
    event_free(f->sig_int);
    event_base_free(f->base);
    pb_tls_free(f->tls);
    free(f->queue_key);
    free(f->workers_key);
    free(f->paused_key);
    free(f->inflight_prefix);
    free(f->key_inflight);
    free(f->conn_of_fd);
    free(f);
    return code;
}
