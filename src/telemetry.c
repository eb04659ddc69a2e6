/* telemetry.c -- the batching OTLP/HTTP exporter of one worker.
 *
 * The queue is a ring of encoded spans (max_queue_spans); one export request at most is in
 * flight, through a curl multi of its own (so a slow collector never takes a connection or a
 * transfer slot an upstream call would use). A batch leaves when batch_spans are queued (on
 * the next loop turn, never inside the caller) or batch_interval_ms after the first span of
 * a partial one. Answers: 2xx exported; 429, 502, 503, 504 and no answer at all are retried
 * after Retry-After (capped) or a doubling backoff, TELEMETRY_TRIES times in all; any other
 * status drops the batch, since sending it again would get the same answer. Everything that
 * leaves the queue unsent is counted as dropped, and the counts ride on the next finished
 * job's counters (chain.c), or an idle worker's heartbeat (worker.c), so a busy exporter
 * costs no Redis call of its own. */
#include "planb/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "planb/core.h"
#include "planb/http.h"
#include "planb/log.h"
#include "planb/otlp.h"
#include "planb/retry.h"

#define TELEMETRY_TRIES         5         /* sends of one batch before it is dropped */
#define TELEMETRY_BACKOFF_MS    500       /* first retry delay, doubled per try */
#define TELEMETRY_BACKOFF_MAX   30000     /* cap of that, and of a Retry-After */
#define TELEMETRY_REPLY_MAX     (1 << 16) /* a collector's answer is a few bytes */
#define TELEMETRY_CONNECT_MS    2000      /* connect bound (within timeout_ms) */
#define TELEMETRY_SCOPE         "planb"
#define TELEMETRY_HOST_NAME_MAX 256

struct pb_telemetry {
    const pb_telemetry_conf *conf;
    pb_http *http;             /* our own curl multi */
    pb_otlp_attrs resource;    /* resource attributes (service.*, host.name), encoded */
    pb_otlp_piece *ring;       /* queued spans (owned data) */
    size_t cap, head, n;       /* ring capacity, first, count */
    pb_otlp_piece *batch;      /* the batch in flight or waiting to be retried (owned data) */
    size_t n_batch;            /* its spans (0: none) */
    int tries;                 /* sends of that batch so far */
    pb_http_call *call;        /* the request in flight, NULL: none */
    struct event *timer;       /* batch interval, retry delay, or "now" */
    bool retry_wait;           /* the timer is a retry delay */
    int64_t exported, dropped; /* since the last pb_telemetry_take_counts */
};

static void telemetry_send(pb_telemetry *t);

static void
telemetry_free_pieces(pb_otlp_piece *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)(uintptr_t)p[i].data);
}

static void
telemetry_arm(pb_telemetry *t, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(t->timer, &tv);
}

static void
telemetry_on_timer(evutil_socket_t fd, short what, void *arg)
{
    pb_telemetry *t = arg;
    (void)fd;
    (void)what;
    t->retry_wait = false;
    telemetry_send(t);
}

/* Drops the batch (counted) and starts on the queue again. */
static void
telemetry_drop_batch(pb_telemetry *t)
{
    telemetry_free_pieces(t->batch, t->n_batch);
    t->dropped += (int64_t)t->n_batch;
    t->n_batch = 0;
    t->tries = 0;
}

static void
telemetry_on_done(const pb_http_reply *reply, void *arg)
{
    pb_telemetry *t = arg;
    t->call = NULL;
    long st = reply->status;
    if (st >= 200 && st < 300) {
        telemetry_free_pieces(t->batch, t->n_batch);
        t->exported += (int64_t)t->n_batch;
        t->n_batch = 0;
        t->tries = 0;
    } else if ((st == 0 || st == 429 || st == 502 || st == 503 || st == 504) &&
               t->tries < TELEMETRY_TRIES) {
        int64_t wait = pb_retry_after_ms(reply->retry_after, pb_wall_ms());
        if (wait < 0)
            wait = (int64_t)TELEMETRY_BACKOFF_MS << (t->tries - 1);
        if (wait > TELEMETRY_BACKOFF_MAX)
            wait = TELEMETRY_BACKOFF_MAX;
        pb_log(PB_LOG_DEBUG, "event=telemetry_retry status=%ld spans=%zu wait_ms=%lld", st,
               t->n_batch, (long long)wait);
        t->retry_wait = true;
        telemetry_arm(t, (int)wait);
        return;
    } else {
        pb_log(PB_LOG_WARN, "event=telemetry_export_failed status=%ld spans=%zu error=\"%s\"", st,
               t->n_batch, reply->error ? reply->error : "");
        telemetry_drop_batch(t);
    }
    if (t->n > 0)
        telemetry_arm(t, t->n >= (size_t)t->conf->batch_spans ? 0 : t->conf->batch_interval_ms);
}

/* Takes the next batch off the queue (unless one waits to be retried) and posts it. */
static void
telemetry_send(pb_telemetry *t)
{
    if (t->call != NULL || t->retry_wait)
        return;
    if (t->n_batch == 0) {
        size_t k = t->n < (size_t)t->conf->batch_spans ? t->n : (size_t)t->conf->batch_spans;
        for (size_t i = 0; i < k; i++)
            t->batch[i] = t->ring[(t->head + i) % t->cap];
        t->head = (t->head + k) % t->cap;
        t->n -= k;
        t->n_batch = k;
    }
    if (t->n_batch == 0)
        return;
    pb_http_request *req = pb_xcalloc(1, sizeof(*req));
    req->url = pb_xstrdup(t->conf->traces_url);
    req->headers = pb_xcalloc(t->conf->n_headers + 2, sizeof(*req->headers));
    req->headers[0] = pb_xstrdup(t->conf->protobuf ? "Content-Type: application/x-protobuf"
                                                   : "Content-Type: application/json");
    for (size_t i = 0; i < t->conf->n_headers; i++)
        req->headers[i + 1] = pb_xstrdup(t->conf->headers[i]);
    req->body = pb_otlp_request(t->conf->protobuf, &t->resource, TELEMETRY_SCOPE, PB_VERSION,
                                t->batch, t->n_batch, &req->body_len);
    t->tries++;
    int connect =
        t->conf->timeout_ms < TELEMETRY_CONNECT_MS ? t->conf->timeout_ms : TELEMETRY_CONNECT_MS;
    t->call = pb_http_start(t->http, req, connect, t->conf->timeout_ms, telemetry_on_done, t);
}

pb_telemetry *
pb_telemetry_new(struct event_base *base, const pb_config *cfg, const char *worker_id)
{
    const pb_telemetry_conf *c = &cfg->telemetry;
    if (c->traces_url == NULL)
        return NULL;
    pb_telemetry *t = pb_xcalloc(1, sizeof(*t));
    t->conf = c;
    t->http = pb_http_new(base, TELEMETRY_REPLY_MAX, TELEMETRY_REPLY_MAX, 2);
    t->cap = (size_t)c->max_queue_spans;
    t->ring = pb_xcalloc(t->cap, sizeof(*t->ring));
    t->batch = pb_xcalloc((size_t)c->batch_spans, sizeof(*t->batch));
    t->timer = evtimer_new(base, telemetry_on_timer, t);
    pb_assert(t->timer != NULL);
    char host[TELEMETRY_HOST_NAME_MAX] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "unknown");
    pb_otlp_attrs_init(&t->resource, c->protobuf);
    pb_otlp_str(&t->resource, "service.name", c->service_name);
    pb_otlp_str(&t->resource, "service.version", PB_VERSION);
    pb_otlp_str(&t->resource, "service.instance.id", worker_id);
    pb_otlp_str(&t->resource, "host.name", host);
    pb_otlp_str(&t->resource, "telemetry.sdk.name", "planb");
    pb_otlp_str(&t->resource, "telemetry.sdk.language", "c");
    return t;
}

void
pb_telemetry_free(pb_telemetry *t)
{
    if (t == NULL)
        return;
    if (t->call != NULL)
        pb_http_cancel(t->call);
    pb_http_free(t->http);
    event_free(t->timer);
    for (size_t i = 0; i < t->n; i++)
        free((void *)(uintptr_t)t->ring[(t->head + i) % t->cap].data);
    telemetry_free_pieces(t->batch, t->n_batch);
    free(t->ring);
    free(t->batch);
    pb_otlp_attrs_free(&t->resource);
    free(t);
}

bool
pb_telemetry_has_room(const pb_telemetry *t, size_t n)
{
    return t->n + n <= t->cap;
}

void
pb_telemetry_add(pb_telemetry *t, char *data, size_t len)
{
    if (t->n == t->cap) {
        free(data);
        t->dropped++;
        return;
    }
    t->ring[(t->head + t->n) % t->cap] = (pb_otlp_piece){data, len};
    t->n++;
    if (t->call != NULL || t->retry_wait)
        return;
    if (t->n >= (size_t)t->conf->batch_spans)
        telemetry_arm(t, 0); /* the next loop turn: never a transfer started inside a job */
    else if (t->n == 1 && !evtimer_pending(t->timer, NULL))
        telemetry_arm(t, t->conf->batch_interval_ms);
}

void
pb_telemetry_drop(pb_telemetry *t, size_t n)
{
    t->dropped += (int64_t)n;
}

void
pb_telemetry_take_counts(pb_telemetry *t, int64_t *exported, int64_t *dropped)
{
    *exported = t->exported;
    *dropped = t->dropped;
    t->exported = t->dropped = 0;
}

void
pb_telemetry_return_counts(pb_telemetry *t, int64_t exported, int64_t dropped)
{
    t->exported += exported;
    t->dropped += dropped;
}

void
pb_telemetry_flush(pb_telemetry *t)
{
    if (t != NULL && !t->retry_wait && t->call == NULL && (t->n > 0 || t->n_batch > 0)) {
        event_del(t->timer);
        telemetry_send(t);
    }
}

bool
pb_telemetry_busy(const pb_telemetry *t)
{
    return t != NULL && (t->call != NULL || t->n > 0 || t->n_batch > 0);
}
