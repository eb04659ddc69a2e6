/* redissync.c -- blocking RESP over a socket of our own, plain or OpenSSL.
 *
 * The command line's Redis client (redissync.h). hiredis 0.14's redisContext
 * cannot speak TLS and cannot adopt a socket, so the socket is ours: a
 * non-blocking connect per getaddrinfo address, then, for TLS, an SSL from
 * tls.c (SNI, chain and host-name check) driven by SSL_connect/read/write;
 * every wait is a poll() against the deadline of the current step, so no
 * step can hang. hiredis formats the commands and its reader parses the
 * replies, as in redisconn.c. Name resolution (getaddrinfo) is the one wait
 * not bounded here: the resolver's own timeouts (resolv.conf) bound it.
 *
 * The wrong-scheme cases get words of their own. A plain connection whose
 * first reply byte is 0x15 (TLS alert) or 0x16 (handshake) is a TLS server
 * behind redis://; Redis 7 sends neither, it just closes, so a plain
 * connection closed before any reply is probed with a TLS handshake on a new
 * connection. A TLS server refusing a plaintext one says "wrong version
 * number" (tls.c adds the hint); a plaintext Redis may instead sit waiting for
 * a line end the ClientHello lacks, so a handshake that times out is probed
 * with a plain PING. A peer that closes without close_notify is an EOF
 * (pb_tls_error_is_eof), as everywhere in planb. */
#include "planb/redissync.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "planb/core.h"

#define REDISSYNC_WHY_MAX 256
#define REDISSYNC_CHUNK   16384 /* bytes read per call */
/* Bytes of one reply: twice Redis's proto-max-bulk-len default, above what `dead list --limit
 * 100000` can bring. */
#define REDISSYNC_REPLY_MAX (1ul << 30)
#define REDISSYNC_PROBE_MS  1000 /* the wrong-scheme probe's connect and answer */

struct pb_redissync {
    int fd;                       /* connected socket, non-blocking */
    SSL *ssl;                     /* the TLS session over fd, or NULL: plain TCP */
    redisReader *reader;          /* hiredis's RESP parser */
    int timeout_ms;               /* bound of one command (write + whole reply) */
    bool got_bytes;               /* the server has sent something (the 0x15/0x16 check) */
    bool dead;                    /* an I/O error or timeout: no more commands */
    bool probe;                   /* a wrong-scheme probe: probes nothing itself */
    char why[REDISSYNC_WHY_MAX];  /* why it died */
    struct sockaddr_storage addr; /* the address connected to, for a probe */
    socklen_t addr_len;           /* its length */
    char *host;                   /* the name connected to (SNI of a probe) */
};

/* Waits until fd is ready for events or the deadline passes; false (why filled) on timeout. */
static bool
redissync_wait(int fd, short events, long long deadline_ms, const char *doing, char *why,
               size_t size)
{
    for (;;) {
        long long left = deadline_ms - pb_mono_ms();
        if (left <= 0) {
            snprintf(why, size, "timed out %s", doing);
            return false;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR) {
            snprintf(why, size, "poll: %s", strerror(errno));
            return false;
        }
    }
}

/* One address: a non-blocking connect finished within the deadline. -1 with why filled. */
static int
redissync_connect_one(const struct sockaddr *sa, socklen_t len, long long deadline_ms, char *why,
                      size_t size)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, size, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, sa, len) != 0) {
        int err = errno;
        socklen_t elen = sizeof(err);
        if (err == EINPROGRESS) {
            if (!redissync_wait(fd, POLLOUT, deadline_ms, "connecting", why, size)) {
                close(fd);
                return -1;
            }
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
                err = errno;
        }
        if (err != 0) {
            snprintf(why, size, "%s", strerror(err));
            close(fd);
            return -1;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Marks c dead with why; returns false (for the I/O paths). */
__attribute__((format(printf, 2, 3))) static bool
redissync_die(pb_redissync *c, const char *fmt, ...)
{
    char why[REDISSYNC_WHY_MAX]; /* fmt's arguments may be c->why itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    memcpy(c->why, why, sizeof(why));
    c->dead = true;
    return false;
}

/* What a failed SSL call means: 0 retry after waiting for *events, 1 EOF, -1 error (why). */
static int
redissync_ssl_failed(SSL *ssl, int ret, short *events, char *why, size_t size)
{
    int e = SSL_get_error(ssl, ret);
    unsigned long err;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *events = POLLIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *events = POLLOUT;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return 1;
    case SSL_ERROR_SYSCALL: /* an OpenSSL error on the queue: as SSL_ERROR_SSL */
        if (ERR_peek_error() == 0) {
            if (ret == 0 || errno == 0 || errno == ECONNRESET || errno == EPIPE)
                return 1;
            snprintf(why, size, "%s", strerror(errno));
            return -1;
        }
        /* fall through */
    default:
        err = ERR_get_error();
        if (pb_tls_error_is_eof(err)) {
            ERR_clear_error();
            return 1;
        }
        pb_tls_reason(ssl, err, why, size);
        return -1;
    }
}

/* The TLS handshake on c->fd within the deadline: 1 done, 0 timed out, -1 failed (why
 * filled either way). */
static int
redissync_handshake(pb_redissync *c, const pb_tls *tls, const char *tls_host, long long deadline_ms,
                    char *why, size_t size)
{
    c->ssl = pb_tls_client_ssl(tls, tls_host);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        snprintf(why, size, "cannot make a TLS session for %s", tls_host);
        return -1;
    }
    ERR_clear_error();
    for (;;) {
        int ret = SSL_connect(c->ssl);
        if (ret == 1)
            return 1;
        short events = 0;
        int r = redissync_ssl_failed(c->ssl, ret, &events, why, size);
        if (r == 1)
            snprintf(why, size, "the server closed the connection during the TLS handshake");
        if (r != 0)
            return -1;
        if (!redissync_wait(c->fd, events, deadline_ms, "in the TLS handshake", why, size))
            return 0;
    }
}

/* A connection on fd to addr (host: the name it came from). */
static pb_redissync *
redissync_new(int fd, const struct sockaddr *addr, socklen_t addr_len, const char *host,
              int timeout_ms)
{
    pb_redissync *c = pb_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    c->reader = redisReaderCreate();
    pb_assert(c->reader != NULL);
    memcpy(&c->addr, addr, addr_len);
    c->addr_len = addr_len;
    c->host = pb_xstrdup(host);
    return c;
}

/* A second, short connection to c's address, for a probe; NULL when it does not connect. */
static pb_redissync *
redissync_probe_new(const pb_redissync *c, long long deadline_ms)
{
    char why[REDISSYNC_WHY_MAX];
    const struct sockaddr *sa = (const struct sockaddr *)&c->addr;
    int fd = redissync_connect_one(sa, c->addr_len, deadline_ms, why, sizeof(why));
    if (fd < 0)
        return NULL;
    pb_redissync *p = redissync_new(fd, sa, c->addr_len, c->host, REDISSYNC_PROBE_MS);
    p->probe = true;
    return p;
}

/* A TLS handshake that got no answer: is it a plaintext Redis, which waits for a line that a
 * ClientHello may never hold? A PING on a new connection tells (any reply is RESP). */
static bool
redissync_speaks_plain(const pb_redissync *c)
{
    pb_redissync *p = redissync_probe_new(c, pb_mono_ms() + REDISSYNC_PROBE_MS);
    redisReply *r = p ? pb_redissync_command(p, "PING") : NULL;
    bool plain = r != NULL;
    freeReplyObject(r);
    pb_redissync_free(p);
    return plain;
}

/* A plain connection closed before any reply: is it a TLS server (Redis 7 closes on a
 * plaintext command without a TLS alert)? A handshake on a new connection tells; it verifies
 * nothing, only that TLS answers. */
static bool
redissync_speaks_tls(const pb_redissync *c)
{
    pb_tls_conf conf = {.verify = false, .min_version = 12};
    char why[REDISSYNC_WHY_MAX];
    pb_tls *t = pb_tls_client_new(&conf, why, sizeof(why));
    long long deadline = pb_mono_ms() + REDISSYNC_PROBE_MS;
    pb_redissync *p = t ? redissync_probe_new(c, deadline) : NULL;
    bool tls = p && redissync_handshake(p, t, c->host, deadline, why, sizeof(why)) == 1;
    pb_redissync_free(p);
    pb_tls_free(t);
    return tls;
}

pb_redissync *
pb_redissync_connect(const char *host, int port, const pb_tls *tls, const char *tls_host,
                     int timeout_ms, char *why, size_t why_size)
{
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        snprintf(why, why_size, "cannot resolve %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    long long deadline = pb_mono_ms() + timeout_ms;
    pb_redissync *c = NULL;
    for (const struct addrinfo *ai = res; ai != NULL && c == NULL; ai = ai->ai_next) {
        int fd = redissync_connect_one(ai->ai_addr, ai->ai_addrlen, deadline, why, why_size);
        if (fd >= 0)
            c = redissync_new(fd, ai->ai_addr, ai->ai_addrlen, host, timeout_ms);
    }
    freeaddrinfo(res);
    if (c == NULL || tls == NULL)
        return c;
    int hs = redissync_handshake(c, tls, tls_host, deadline, why, why_size);
    if (hs == 0 && redissync_speaks_plain(c))
        snprintf(why, why_size, "no TLS handshake: the server speaks plaintext: use redis://");
    if (hs != 1) {
        pb_redissync_free(c);
        return NULL;
    }
    return c;
}

pb_redissync *
pb_redissync_open(const pb_config *cfg, const char *host, int port, int timeout_ms, char *why,
                  size_t why_size)
{
    pb_tls *tls = NULL;
    if (cfg->redis_tls.on && (tls = pb_tls_client_new(&cfg->redis_tls, why, why_size)) == NULL)
        return NULL;
    /* The certificate must name the URL's host; an address from a sentinel is checked as an
     * IP SAN unless redis.tls.server_name names the host (redis.c does the same). */
    const char *tls_host = cfg->n_sentinels ? host : cfg->redis_host;
    pb_redissync *c = pb_redissync_connect(host, port, tls, tls_host, timeout_ms, why, why_size);
    pb_tls_free(tls); /* the SSL holds its own reference to the context */
    if (c == NULL)
        return NULL;
    redisReply *r = NULL;
    if (cfg->redis_password)
        r = cfg->redis_user
                ? pb_redissync_command(c, "AUTH %s %s", cfg->redis_user, cfg->redis_password)
                : pb_redissync_command(c, "AUTH %s", cfg->redis_password);
    else
        r = pb_redissync_command(c, "PING"); /* a TLS 1.3 server refuses a client here */
    bool bad = r == NULL || r->type == REDIS_REPLY_ERROR;
    if (bad)
        snprintf(why, why_size, "%s%s", r && cfg->redis_password ? "AUTH failed: " : "",
                 r ? r->str : c->why);
    freeReplyObject(r);
    if (!bad && cfg->redis_db) {
        r = pb_redissync_command(c, "SELECT %d", cfg->redis_db);
        bad = r == NULL || r->type == REDIS_REPLY_ERROR;
        if (bad)
            snprintf(why, why_size, "SELECT %d failed: %s", cfg->redis_db, r ? r->str : c->why);
        freeReplyObject(r);
    }
    if (bad) {
        pb_redissync_free(c);
        return NULL;
    }
    return c;
}

void
pb_redissync_free(pb_redissync *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        if (!c->dead)
            SSL_shutdown(c->ssl); /* close_notify, best effort: the socket is non-blocking */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    close(c->fd);
    redisReaderFree(c->reader);
    free(c->host);
    free(c);
}

void
pb_redissync_set_timeout(pb_redissync *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

const char *
pb_redissync_error(const pb_redissync *c)
{
    return c->why;
}

/* One read into rd (rd not NULL) or write from wr of up to len bytes: > 0 bytes done, 0 wait
 * for *events, -1 c died (the peer's close included). A write into a connection the peer
 * closed counts as done: what the peer sent before it went (a TLS alert such as "certificate
 * required", which TLS 1.3 sends after the handshake, or an error reply) is still there to be
 * read, and says why. */
static ssize_t
redissync_io(pb_redissync *c, char *rd, const char *wr, size_t len, short *events)
{
    bool reading = rd != NULL;
    *events = reading ? POLLIN : POLLOUT;
    if (c->ssl != NULL) {
        int n = reading ? SSL_read(c->ssl, rd, (int)len) : SSL_write(c->ssl, wr, (int)len);
        if (n > 0)
            return n;
        char why[REDISSYNC_WHY_MAX];
        int f = redissync_ssl_failed(c->ssl, n, events, why, sizeof(why));
        if (f == 0)
            return 0;
        if (f == 1 && !reading)
            return (ssize_t)len;
        redissync_die(c, "%s", f == 1 ? "the server closed the connection" : why);
        return -1;
    }
    ssize_t n = reading ? recv(c->fd, rd, len, 0) : send(c->fd, wr, len, MSG_NOSIGNAL);
    if (n > 0)
        return n;
    if (n == 0 && !reading)
        return 0;
    int err = n < 0 ? errno : 0;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
        return 0;
    if (!reading && (err == ECONNRESET || err == EPIPE))
        return (ssize_t)len;
    /* The peer closed (an EOF, a reset, a write into a closed socket) or an error. */
    if (err != 0 && err != ECONNRESET && err != EPIPE)
        redissync_die(c, "%s: %s", reading ? "read" : "write", strerror(err));
    else if (!c->got_bytes && !c->probe && redissync_speaks_tls(c))
        redissync_die(c, "the server speaks TLS: use rediss://");
    else
        redissync_die(c, "the server closed the connection");
    return -1;
}

/* Waits for events on c by the deadline; false when c died (timed out). */
static bool
redissync_wait_io(pb_redissync *c, short events, long long deadline_ms)
{
    char why[REDISSYNC_WHY_MAX];
    if (redissync_wait(c->fd, events, deadline_ms, "waiting for Redis", why, sizeof(why)))
        return true;
    return redissync_die(c, "%s", why);
}

/* Writes all of buf by the deadline. */
static bool
redissync_write(pb_redissync *c, const char *buf, size_t len, long long deadline_ms)
{
    size_t off = 0;
    while (off < len) {
        short events;
        ssize_t n = redissync_io(c, NULL, buf + off, len - off, &events);
        if (n < 0)
            return false;
        off += (size_t)n;
        if (n == 0 && !redissync_wait_io(c, events, deadline_ms))
            return false;
    }
    return true;
}

/* Reads what comes next into the reader, waiting by the deadline; false when c died. */
static bool
redissync_read(pb_redissync *c, long long deadline_ms, size_t *total)
{
    char buf[REDISSYNC_CHUNK];
    for (;;) {
        short events;
        ssize_t n = redissync_io(c, buf, NULL, sizeof(buf), &events);
        if (n < 0)
            return false;
        if (n == 0) {
            if (!redissync_wait_io(c, events, deadline_ms))
                return false;
            continue;
        }
        if (c->ssl == NULL && !c->got_bytes && (buf[0] == 0x15 || buf[0] == 0x16))
            return redissync_die(c, "the server speaks TLS: use rediss://");
        c->got_bytes = true;
        *total += (size_t)n;
        if (*total > REDISSYNC_REPLY_MAX)
            return redissync_die(c, "a reply over %lu bytes", REDISSYNC_REPLY_MAX);
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK)
            return redissync_die(c, "bad reply: %s", c->reader->errstr);
        return true;
    }
}

/* Sends one formatted command (freed here) and returns its reply. */
static redisReply *
redissync_roundtrip(pb_redissync *c, char *cmd, long long len)
{
    if (c->dead || len < 0) {
        free(cmd);
        if (!c->dead)
            redissync_die(c, "cannot format the command");
        return NULL;
    }
    long long deadline = pb_mono_ms() + c->timeout_ms;
    bool ok = redissync_write(c, cmd, (size_t)len, deadline);
    free(cmd);
    size_t total = 0;
    while (ok) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            redissync_die(c, "bad reply: %s", c->reader->errstr);
            return NULL;
        }
        if (reply != NULL)
            return reply;
        ok = redissync_read(c, deadline, &total);
    }
    return NULL;
}

redisReply *
pb_redissync_command(pb_redissync *c, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    return redissync_roundtrip(c, cmd, len);
}

redisReply *
pb_redissync_command_argv(pb_redissync *c, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    return redissync_roundtrip(c, cmd, len);
}
