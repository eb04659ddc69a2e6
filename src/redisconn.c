/* redisconn.c -- RESP over a libevent bufferevent (socket, or OpenSSL over the socket).
 *
 * hiredis 0.14's async API owns its socket and knows no TLS, and it cannot adopt a socket
 * made elsewhere. So the I/O is libevent's: bufferevent_socket for plain TCP (connect and
 * writes; reads are ours, see redisconn_on_plain_read), bufferevent_openssl
 * (BUFFEREVENT_SSL_CONNECTING, on an fd it connects itself) for TLS;
 * hiredis keeps what it is good at, redisFormatCommandArgv and its reply reader. A FIFO of
 * callbacks pairs replies with commands, as Redis answers in order; a subscription's
 * entry stays at the head and takes every later reply.
 *
 * Callbacks are deferred (BEV_OPT_DEFER_CALLBACKS), so none runs inside a send. Freeing
 * from inside a callback is allowed: the dispatch notices, stops, and hands every
 * command still waiting its NULL before the memory goes.
 *
 * Two wrong-scheme cases are named rather than left as a bare close: a plain connection
 * whose first byte from the server is a TLS record (0x15 alert, 0x16 handshake) is a TLS
 * server behind redis://; a TLS one refused with OpenSSL's "wrong version number" is a
 * plaintext server behind rediss:// (tls.c adds that hint). */
#include "planb/redisconn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "planb/core.h"

#define REDISCONN_KEEPALIVE_S 15    /* TCP keepalive idle time, as hiredis's redisEnableKeepAlive */
#define REDISCONN_READ_IOV    16    /* TLS input chunks fed to the reader per pass */
#define REDISCONN_READ_BYTES  16384 /* one plain read(), as hiredis's */
#define REDISCONN_READ_PASSES 4     /* plain reads per readable event, at most */
#define REDISCONN_WHY_MAX     200
#define REDISCONN_HANDSHAKE_MS                                                                     \
    1500 /* TLS handshake bound once TCP is up: a few round trips even across regions */

typedef struct redisconn_wait {
    pb_redisconn_reply_fn fn;
    void *arg;
    bool sticky; /* a subscription: takes every reply, never popped */
} redisconn_wait;

struct pb_redisconn {
    struct event_base *base;
    struct bufferevent *bev;
    redisReader *reader;
    bool tls;
    bool connected;        /* the connect (and handshake) completed */
    bool got_bytes;        /* the server has sent something */
    bool ended;            /* on_event(ended) ran or is running */
    bool freeing;          /* pb_redisconn_free ran inside a callback: finish after it */
    int in_callback;       /* callbacks of ours on the stack */
    redisconn_wait *waits; /* ring of commands awaiting replies */
    size_t head, count, cap;
    pb_redisconn_event_fn on_event;
    void *arg;
    struct event *fail_now;   /* reports a connect that could not even start, from the loop */
    struct event *handshake;  /* TLS: bounds the handshake once TCP is connected */
    struct event *plain_read; /* plain TCP: our reads (redisconn_on_plain_read) */
};

static void
redisconn_push(pb_redisconn *c, pb_redisconn_reply_fn fn, void *arg, bool sticky)
{
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        redisconn_wait *w = pb_xmalloc(cap * sizeof(*w));
        for (size_t i = 0; i < c->count; i++)
            w[i] = c->waits[(c->head + i) % c->cap];
        free(c->waits);
        c->waits = w;
        c->cap = cap;
        c->head = 0;
    }
    c->waits[(c->head + c->count) % c->cap] = (redisconn_wait){fn, arg, sticky};
    c->count++;
}

/* Hands every command still waiting its NULL (a subscription's once). */
static void
redisconn_fail_waiting(pb_redisconn *c)
{
    c->in_callback++;
    while (c->count > 0) {
        redisconn_wait w = c->waits[c->head];
        c->head = (c->head + 1) % c->cap;
        c->count--;
        if (w.fn)
            w.fn(NULL, w.arg);
    }
    c->in_callback--;
}

static void
redisconn_destroy(pb_redisconn *c)
{
    c->freeing = true; /* a NULL-handed callback that sends again is refused */
    if (c->fail_now)
        event_free(c->fail_now);
    if (c->handshake)
        event_free(c->handshake);
    if (c->plain_read)
        event_free(c->plain_read);
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    redisconn_fail_waiting(c);
    redisReaderFree(c->reader);
    free(c->waits);
    free(c);
}

/* Once per connection: NULLs to the waiting, then the owner hears why. true when the owner
 * freed c meanwhile (the caller must not touch it). */
static bool
redisconn_end(pb_redisconn *c, const char *why, bool tls)
{
    if (c->ended)
        return c->freeing;
    c->ended = true;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->plain_read)
        event_del(c->plain_read);
    redisconn_fail_waiting(c);
    c->in_callback++;
    if (!c->freeing && c->on_event)
        c->on_event(true, why, tls, c->arg);
    c->in_callback--;
    if (c->freeing && c->in_callback == 0) {
        redisconn_destroy(c);
        return true;
    }
    return c->freeing;
}

/* Feeds n bytes from the server to the reader and answers each complete reply in order.
 * false when c ended or was freed meanwhile (the caller must stop, and not touch a freed c:
 * it is gone when freed is set). */
static bool
redisconn_feed(pb_redisconn *c, const char *data, size_t n)
{
    if (!c->tls && !c->got_bytes && n > 0 && (data[0] == 0x15 || data[0] == 0x16)) {
        redisconn_end(c, "the server speaks TLS: use rediss://", true);
        return false;
    }
    c->got_bytes = true;
    int rc = redisReaderFeed(c->reader, data, n);
    c->in_callback++;
    void *reply = NULL;
    while (rc == REDIS_OK && !c->freeing && !c->ended &&
           (rc = redisReaderGetReply(c->reader, &reply)) == REDIS_OK && reply != NULL) {
        if (c->count == 0) { /* a reply nobody asked for: the stream is out of step */
            freeReplyObject(reply);
            rc = REDIS_ERR;
            break;
        }
        redisconn_wait w = c->waits[c->head];
        if (!w.sticky) {
            c->head = (c->head + 1) % c->cap;
            c->count--;
        }
        if (w.fn)
            w.fn(reply, w.arg);
        freeReplyObject(reply);
        reply = NULL;
    }
    c->in_callback--;
    if (c->freeing) {
        if (c->in_callback == 0)
            redisconn_destroy(c);
        return false;
    }
    if (c->ended)
        return false;
    if (rc != REDIS_OK) {
        char why[REDISCONN_WHY_MAX];
        snprintf(why, sizeof(why), "protocol error: %s",
                 c->reader->errstr[0] ? c->reader->errstr : "a reply nobody asked for");
        redisconn_end(c, why, false);
        return false;
    }
    return true;
}

/* TLS input, decrypted by bufferevent_openssl (a record, up to 16 KiB, per pass). */
static void
redisconn_on_read(struct bufferevent *bev, void *arg)
{
    pb_redisconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v[REDISCONN_READ_IOV];
        int n = evbuffer_peek(in, -1, NULL, v, REDISCONN_READ_IOV);
        if (n > REDISCONN_READ_IOV)
            n = REDISCONN_READ_IOV;
        size_t fed = 0;
        for (int i = 0; i < n; i++)
            fed += v[i].iov_len;
        /* the reader copies what it is fed, so the chunks can go first */
        for (int i = 0; i < n; i++) {
            if (!redisconn_feed(c, v[i].iov_base, v[i].iov_len))
                return;
        }
        evbuffer_drain(in, fed);
    }
}

static void
redisconn_keepalive(evutil_socket_t fd)
{
    int on = 1, idle = REDISCONN_KEEPALIVE_S, intvl = REDISCONN_KEEPALIVE_S / 3, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* A TLS connection that ends (reset, or closed with or without close_notify) after its
 * handshake and before any byte of a reply: TLS 1.3 finishes the client's handshake before the
 * server has checked its certificate, and the server's "certificate required" alert can lose
 * the race with the close or the reset that follows it (a loaded machine shows all three). */
static bool
redisconn_ended_after_handshake(const pb_redisconn *c, char *why, size_t size)
{
    if (!c->tls || !c->connected || c->got_bytes)
        return false;
    snprintf(why, size,
             "connection ended right after the TLS handshake: the server wants a client "
             "certificate (redis.tls.cert_file, key_file)");
    return true;
}

/* Why a connection failed, from OpenSSL's errors (TLS) or sock_err (an errno). true when the
 * cause is TLS (or the wrong scheme). */
static bool
redisconn_error_why(pb_redisconn *c, int sock_err, char *why, size_t size)
{
    if (c->tls) {
        unsigned long e = bufferevent_get_openssl_error(c->bev);
        if (e != 0 && !pb_tls_error_is_eof(e)) {
            pb_tls_reason(bufferevent_openssl_get_ssl(c->bev), e, why, size);
            while (bufferevent_get_openssl_error(c->bev) != 0) {
            }
            return true;
        }
        if (e != 0 && redisconn_ended_after_handshake(c, why, size))
            return true;
        if (e != 0) { /* closed without close_notify: an orderly EOF */
            snprintf(why, size, "%s",
                     c->connected ? "connection closed"
                                  : "connection closed during the TLS handshake");
            return !c->connected;
        }
    }
    if ((sock_err == 0 || sock_err == ECONNRESET || sock_err == EPIPE) &&
        redisconn_ended_after_handshake(c, why, size))
        return true;
    if (sock_err == ECONNRESET && !c->tls && c->connected && !c->got_bytes) {
        /* Redis's TLS port resets a plaintext client without an alert or a reply (the bytes
         * it did not read): no plaintext Redis answers a command that way. */
        snprintf(why, size,
                 "connection reset before any reply: the server speaks TLS, use "
                 "rediss://");
        return true;
    }
    if (sock_err == 0)
        snprintf(why, size, "connection closed");
    else
        snprintf(why, size, "%s", evutil_socket_error_to_string(sock_err));
    return false;
}

/* Plain TCP input, read here rather than by bufferevent_socket: libevent 2.1 reads at most
 * 4 KiB per readable event (EVBUFFER_MAX_READ; configurable only from 2.2), which cost
 * 14 % of bench_jobs' throughput against hiredis's 16 KiB reads. Up to
 * REDISCONN_READ_PASSES reads of 16 KiB per event, straight into hiredis's reader (no
 * evbuffer copy). */
static void
redisconn_on_plain_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pb_redisconn *c = arg;
    char buf[REDISCONN_READ_BYTES];
    for (int pass = 0; pass < REDISCONN_READ_PASSES; pass++) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (!redisconn_feed(c, buf, (size_t)n))
                return;
            if ((size_t)n < sizeof(buf))
                return; /* drained for now */
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        char why[REDISCONN_WHY_MAX];
        bool tls = n < 0 && redisconn_error_why(c, errno, why, sizeof(why));
        if (n == 0)
            snprintf(why, sizeof(why), "connection closed");
        redisconn_end(c, why, tls);
        return;
    }
}

static void
redisconn_on_event(struct bufferevent *bev, short what, void *arg)
{
    pb_redisconn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->connected = true;
        if (c->handshake)
            evtimer_del(c->handshake);
        if (!c->tls) {
            c->plain_read = event_new(c->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST,
                                      redisconn_on_plain_read, c);
            event_add(c->plain_read, NULL);
        }
        redisconn_keepalive(bufferevent_getfd(bev));
        c->in_callback++;
        if (c->on_event)
            c->on_event(false, NULL, false, c->arg);
        c->in_callback--;
        if (c->freeing && c->in_callback == 0)
            redisconn_destroy(c);
        return;
    }
    char why[REDISCONN_WHY_MAX];
    bool tls = false;
    if (what & BEV_EVENT_ERROR)
        tls = redisconn_error_why(c, EVUTIL_SOCKET_ERROR(), why, sizeof(why));
    else if (c->tls && !c->connected) {
        snprintf(why, sizeof(why), "connection closed during the TLS handshake");
        tls = true;
    } else if (redisconn_ended_after_handshake(c, why, sizeof(why)))
        tls = true;
    else
        snprintf(why, sizeof(why), "connection closed");
    redisconn_end(c, why, tls);
}

static void
redisconn_on_fail_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisconn_end(arg, "cannot connect: bad address or no socket", false);
}

/* A TLS handshake still unfinished REDISCONN_HANDSHAKE_MS after the start. A plaintext Redis
 * behind rediss:// reads the ClientHello as the start of an inline command and never answers,
 * so without this bound the cause would only surface as the owner's generic timeout. While
 * TCP itself is still connecting (no peer yet), the owner's connect bound stays in charge. */
static void
redisconn_on_handshake_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_redisconn *c = arg;
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    if (c->connected || c->ended)
        return;
    struct timeval tv = {REDISCONN_HANDSHAKE_MS / 1000, (REDISCONN_HANDSHAKE_MS % 1000) * 1000};
    if (getpeername(bufferevent_getfd(c->bev), (struct sockaddr *)&peer, &len) != 0) {
        evtimer_add(c->handshake, &tv); /* TCP still connecting: look again later */
        return;
    }
    char why[REDISCONN_WHY_MAX];
    snprintf(why, sizeof(why),
             "no TLS handshake reply within %d ms: the server speaks plaintext, use redis://",
             REDISCONN_HANDSHAKE_MS);
    redisconn_end(c, why, true);
}

pb_redisconn *
pb_redisconn_new(struct event_base *base, const char *ip, int port, const pb_tls *tls,
                 const char *tls_host, pb_redisconn_event_fn on_event, void *arg)
{
    pb_redisconn *c = pb_xcalloc(1, sizeof(*c));
    c->base = base;
    c->on_event = on_event;
    c->arg = arg;
    c->tls = tls != NULL;
    c->reader = redisReaderCreate();
    pb_assert(c->reader != NULL);
    int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (tls) {
        SSL *ssl = pb_tls_client_ssl(tls, tls_host);
        pb_assert(ssl != NULL);
        c->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        else
            SSL_free(ssl);
    } else {
        c->bev = bufferevent_socket_new(base, -1, opts);
    }
    pb_assert(c->bev != NULL);
    if (tls) {
        c->handshake = evtimer_new(base, redisconn_on_handshake_timer, c);
        redisconn_on_handshake_timer(-1, 0, c); /* arms it */
    }
    bufferevent_setcb(c->bev, redisconn_on_read, NULL, redisconn_on_event, c);
    bufferevent_enable(c->bev, tls ? EV_READ | EV_WRITE : EV_WRITE);

    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char spec[128];
    snprintf(spec, sizeof(spec), strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &len) != 0 ||
        bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) != 0) {
        /* reported from the loop like any other failure (a refused connect is too) */
        c->fail_now = evtimer_new(base, redisconn_on_fail_now, c);
        struct timeval now = {0, 0};
        evtimer_add(c->fail_now, &now);
    }
    return c;
}

void
pb_redisconn_free(pb_redisconn *c)
{
    if (c == NULL)
        return;
    c->on_event = NULL;
    if (c->in_callback > 0) {
        c->freeing = true; /* the callback on the stack finishes the job */
        return;
    }
    redisconn_destroy(c);
}

bool
pb_redisconn_command(pb_redisconn *c, pb_redisconn_reply_fn fn, void *arg, int argc,
                     const char **argv, const size_t *lens)
{
    if (c->ended || c->freeing)
        return false;
    char *cmd = NULL;
    long long n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        return false;
    bufferevent_write(c->bev, cmd, (size_t)n);
    free(cmd);
    redisconn_push(c, fn, arg, false);
    return true;
}

bool
pb_redisconn_subscribe(pb_redisconn *c, pb_redisconn_reply_fn fn, void *arg, int argc,
                       const char *const *channels)
{
    const char *argv[1 + 64];
    if (argc > 64 || c->ended || c->freeing)
        return false;
    argv[0] = "SUBSCRIBE";
    for (int i = 0; i < argc; i++)
        argv[i + 1] = channels[i];
    if (!pb_redisconn_command(c, fn, arg, argc + 1, argv, NULL))
        return false;
    c->waits[(c->head + c->count - 1) % c->cap].sticky = true;
    return true;
}

size_t
pb_redisconn_unsent(const pb_redisconn *c)
{
    return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

void
pb_redisconn_write_now(pb_redisconn *c)
{
    if (c->tls || !c->connected || c->ended)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) == 0)
        return;
    /* A socket bufferevent freezes its output's front so only its own write callback drains
     * it; this is that write, done early, so it thaws the front the same way. */
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(c->bev)); /* a failure is the write event's */
    evbuffer_freeze(out, 1);
}

bool
pb_redisconn_is_tls(const pb_redisconn *c)
{
    return c->tls;
}
