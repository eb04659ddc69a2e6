/* http.c -- libcurl multi <-> libevent glue with bounded replies.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to
 * wake it (CURLMOPT_TIMERFUNCTION); libevent does the watching, so thousands
 * of upstream calls share the worker's one loop with Redis. Easy handles are
 * pooled: connection reuse lives in the multi handle, and reusing an easy
 * handle saves its buffers' allocation on every call at 10k calls/s.
 *
 * Calls are spread over shards, each its own multi handle holding at most
 * HTTP_SHARD_CALLS transfers: curl 7.88 looks for a reusable connection by
 * walking every connection to the host, so one multi with 5,000 connections
 * to one upstream costs O(n) per call. A call goes to the first shard with
 * room, so light load stays on shard 0 and keeps its warm connections. */
#include "planb/http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "planb/core.h"
#include "planb/log.h"

#define HTTP_SHARD_CALLS     256 /* transfers per multi handle (see above) */
#define HTTP_RETRY_AFTER_MAX 128 /* longest Retry-After value kept (an HTTP-date is 29) */

typedef struct http_shard {
    pb_http *http;
    CURLM *multi;
    struct event *timer; /* curl's single timeout for this multi */
    int active;          /* transfers in this multi */
} http_shard;

struct pb_http_call {
    pb_http *http;
    http_shard *shard; /* the multi running it */
    CURL *easy;
    pb_http_request *req;       /* owned until the call ends (POSTFIELDS does not copy) */
    struct curl_slist *headers; /* built from req->headers */
    pb_buf body;                /* reply body, bounded by http->reply_max_bytes */
    char retry_after[HTTP_RETRY_AFTER_MAX]; /* "" when absent */
    char error[CURL_ERROR_SIZE];            /* CURLOPT_ERRORBUFFER: why a transfer failed */
    int64_t started_mono_ms;
    pb_http_done_fn done;
    void *arg;
    pb_http_data_fn on_data; /* streaming: 2xx body pieces go here, not to body (NULL: none) */
    size_t streamed_bytes;   /* bytes handed to on_data, bounded by stream_max_bytes */
    bool streamed;           /* on_data got the body */
    bool stopped;            /* on_data asked to stop */
    bool overflow;           /* the streamed body passed stream_max_bytes */
    pb_http_call *next_free; /* pool link (unused while active) */
};

struct pb_http {
    struct event_base *base;
    http_shard *shards; /* created on demand, up to n_shards_max */
    int n_shards, n_shards_max;
    long max_conns_per_shard; /* CURLMOPT_MAXCONNECTS */
    size_t reply_max_bytes;
    size_t stream_max_bytes; /* a streamed body, framing and all (its reader bounds the answer) */
    int active;              /* calls started and not yet reported or cancelled */
    pb_http_call *pool;      /* idle calls with a reusable easy handle */
    int pool_len;
    int pool_max; /* = max_conns: a burst's handles serve the next burst */
};

/* Per-socket watcher, attached to curl's socket with curl_multi_assign. */
typedef struct http_sock {
    struct event *ev;
    short kind; /* the EV_READ/EV_WRITE set ev watches */
} http_sock;

static void http_check_done(http_shard *sh);

static void
http_on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    http_shard *sh = arg;
    int flags = 0;
    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(sh->multi, fd, flags, &running);
    http_check_done(sh);
}

static void
http_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    http_shard *sh = arg;
    int running;
    curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_check_done(sh);
}

/* CURLMOPT_SOCKETFUNCTION: (re)arm or drop the libevent watcher of one socket. */
static int
http_on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    http_shard *sh = userp;
    http_sock *hs = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (hs) {
            event_free(hs->ev);
            free(hs);
            curl_multi_assign(sh->multi, s, NULL);
        }
        return 0;
    }
    short kind = EV_PERSIST;
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (hs == NULL) {
        hs = pb_xcalloc(1, sizeof(*hs));
        hs->ev = event_new(sh->http->base, s, kind, http_on_socket_event, sh);
        curl_multi_assign(sh->multi, s, hs);
    } else if (hs->kind == kind) {
        return 0; /* curl often repeats itself: a syscall saved per call */
    } else {
        event_del(hs->ev);
        event_assign(hs->ev, sh->http->base, s, kind, http_on_socket_event, sh);
    }
    hs->kind = kind;
    event_add(hs->ev, NULL);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be called back after timeout_ms (-1: never). */
static int
http_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    http_shard *sh = userp;
    if (timeout_ms < 0) {
        evtimer_del(sh->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(sh->timer, &tv);
    return 0;
}

/* Body bytes: buffered (bounded), or for a streaming call with a 2xx status handed to its
 * data callback as they come (bounded in total by stream_max_bytes: the SSE framing is many
 * times the answer it carries). Returning short aborts the transfer with CURLE_WRITE_ERROR. */
static size_t
http_on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    pb_http_call *c = userdata;
    size_t n = size * nmemb;
    if (c->on_data != NULL) {
        long status = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            c->streamed = true;
            if (c->streamed_bytes + n > c->http->stream_max_bytes) {
                c->overflow = true;
                return 0;
            }
            c->streamed_bytes += n;
            if (c->on_data(ptr, n, c->arg) != 0) {
                c->stopped = true;
                return 0;
            }
            return n;
        }
    }
    if (pb_buf_append(&c->body, ptr, n) != PB_OK)
        return 0;
    return n;
}

/* Keeps only Retry-After; the rest of the headers are never stored or logged. */
static size_t
http_on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    pb_http_call *c = userdata;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
        const char *v = ptr + sizeof(name) - 1;
        size_t vl = n - (sizeof(name) - 1);
        while (vl && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof(c->retry_after))
            vl = sizeof(c->retry_after) - 1;
        memcpy(c->retry_after, v, vl);
        c->retry_after[vl] = '\0';
    }
    return n;
}

pb_http *
pb_http_new(struct event_base *base, size_t reply_max_bytes, size_t stream_max_bytes, int max_conns)
{
    pb_http *h = pb_xcalloc(1, sizeof(*h));
    h->base = base;
    h->reply_max_bytes = reply_max_bytes;
    h->stream_max_bytes = stream_max_bytes;
    if (max_conns < 1)
        max_conns = 1;
    h->n_shards_max = (max_conns + HTTP_SHARD_CALLS - 1) / HTTP_SHARD_CALLS + 1;
    h->shards = pb_xcalloc((size_t)h->n_shards_max, sizeof(http_shard));
    h->max_conns_per_shard = max_conns < HTTP_SHARD_CALLS ? max_conns : HTTP_SHARD_CALLS;
    h->pool_max = max_conns;
    return h;
}

static http_shard *
http_shard_for_call(pb_http *h)
{
    for (int i = 0; i < h->n_shards; i++)
        if (h->shards[i].active < HTTP_SHARD_CALLS)
            return &h->shards[i];
    if (h->n_shards == h->n_shards_max) {
        /* More calls than configured: pile onto the least busy shard. */
        http_shard *best = &h->shards[0];
        for (int i = 1; i < h->n_shards; i++)
            if (h->shards[i].active < best->active)
                best = &h->shards[i];
        return best;
    }
    http_shard *sh = &h->shards[h->n_shards++];
    sh->http = h;
    sh->multi = curl_multi_init();
    pb_assert(sh->multi != NULL);
    sh->timer = evtimer_new(h->base, http_on_timer, sh);
    curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, http_on_curl_socket);
    curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
    curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, http_on_curl_timer);
    curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
    curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, h->max_conns_per_shard);
    return sh;
}

static void
http_call_release(pb_http_call *c)
{
    pb_http *h = c->http;
    curl_slist_free_all(c->headers);
    c->headers = NULL;
    pb_http_request_free(c->req);
    c->req = NULL;
    if (h->pool_len < h->pool_max) {
        pb_buf_reset(&c->body);
        c->next_free = h->pool;
        h->pool = c;
        h->pool_len++;
        return;
    }
    curl_easy_cleanup(c->easy);
    pb_buf_free(&c->body);
    free(c);
}

void
pb_http_free(pb_http *h)
{
    if (h == NULL)
        return;
    while (h->pool) {
        pb_http_call *c = h->pool;
        h->pool = c->next_free;
        curl_easy_cleanup(c->easy);
        pb_buf_free(&c->body);
        free(c);
    }
    for (int i = 0; i < h->n_shards; i++) {
        curl_multi_cleanup(h->shards[i].multi);
        event_free(h->shards[i].timer);
    }
    free(h->shards);
    free(h);
}

void
pb_http_request_free(pb_http_request *r)
{
    if (r == NULL)
        return;
    free(r->url);
    for (char **h = r->headers; h && *h; h++)
        free(*h);
    free(r->headers);
    free(r->body);
    free(r);
}

pb_http_call *
pb_http_start(pb_http *h, pb_http_request *req, int connect_timeout_ms, int timeout_ms,
              pb_http_done_fn done, void *arg)
{
    return pb_http_start_stream(h, req, connect_timeout_ms, timeout_ms, NULL, done, arg);
}

pb_http_call *
pb_http_start_stream(pb_http *h, pb_http_request *req, int connect_timeout_ms, int timeout_ms,
                     pb_http_data_fn on_data, pb_http_done_fn done, void *arg)
{
    pb_http_call *c = h->pool;
    if (c) {
        h->pool = c->next_free;
        h->pool_len--;
        curl_easy_reset(c->easy);
    } else {
        c = pb_xcalloc(1, sizeof(*c));
        c->http = h;
        c->easy = curl_easy_init();
        pb_assert(c->easy != NULL);
    }
    c->body.limit = h->reply_max_bytes; /* a pooled call keeps its buffer's memory */
    pb_buf_reset(&c->body);
    c->req = req;
    c->retry_after[0] = '\0';
    c->done = done;
    c->arg = arg;
    c->on_data = on_data;
    c->streamed_bytes = 0;
    c->streamed = c->stopped = c->overflow = false;
    c->started_mono_ms = pb_mono_ms();
    c->headers = NULL;
    for (char **hd = req->headers; hd && *hd; hd++)
        c->headers = curl_slist_append(c->headers, *hd);
    c->headers = curl_slist_append(c->headers, "Expect:"); /* no 100-continue round trip */

    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING,
                     ""); /* gzip replies are smaller, body limit applies decoded */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "planb/0.1");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    c->error[0] = '\0';
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->error);
    /* The handle was reset above, so a provider's TLS files and proxy never reach another's
     * call; curl reuses a connection only for a call with the same CA, client certificate
     * and proxy (tests/integration/test_provider_conn.c checks it). */
    if (req->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
    if (req->cert_file != NULL) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, req->cert_file);
        curl_easy_setopt(e, CURLOPT_SSLKEY, req->key_file);
    }
    if (req->proxy != NULL) {
        curl_easy_setopt(e, CURLOPT_PROXY, req->proxy);
        curl_easy_setopt(e, CURLOPT_NOPROXY, ""); /* a configured proxy ignores no_proxy */
    }
    h->active++;
    c->shard = http_shard_for_call(h);
    c->shard->active++;
    CURLMcode rc = curl_multi_add_handle(c->shard->multi, e);
    pb_assert(rc == CURLM_OK);
    return c;
}

void
pb_http_cancel(pb_http_call *c)
{
    if (c == NULL)
        return;
    pb_http *h = c->http;
    curl_multi_remove_handle(c->shard->multi, c->easy);
    c->shard->active--;
    h->active--;
    http_call_release(c);
}

int
pb_http_active(const pb_http *h)
{
    return h->active;
}

/* Reports every finished transfer. A callback may start or cancel other calls. */
static void
http_check_done(http_shard *sh)
{
    pb_http *h = sh->http;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(sh->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode code = msg->data.result;
        pb_http_call *c = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&c);
        long status = 0;
        if (code == CURLE_OK)
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(sh->multi, e);
        sh->active--;
        h->active--;

        pb_http_reply r = {
            .status = status,
            .curl_code = (int)code,
            .timed_out = code == CURLE_OPERATION_TIMEDOUT,
            .too_large = c->body.overflow || c->overflow,
            .streamed = c->streamed,
            .stopped = c->stopped,
            .body = c->body.data ? c->body.data : "",
            .body_len = c->body.len,
            .retry_after = c->retry_after[0] ? c->retry_after : NULL,
            .elapsed_ms = pb_mono_ms() - c->started_mono_ms,
            .error = code != CURLE_OK && c->error[0] == '\0' ? curl_easy_strerror(code) : c->error,
        };
        pb_http_done_fn done = c->done;
        void *arg = c->arg;
        done(&r, arg);
        http_call_release(c);
    }
}
