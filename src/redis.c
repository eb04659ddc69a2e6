/* redis.c -- async Redis connection: resolve, connect, prove usable, ping, reconnect.
 *
 * The transport is redisconn.c (libevent I/O, TCP or TLS, hiredis's reader and
 * formatter), which only ever gets an IP address: names are resolved here with
 * evdns (or the master's address is asked of the sentinels, sentinel.c); one timer
 * bounds resolve + connect + TLS handshake + Redis handshake; a ping every REDIS_PING_MS with a
 * REDIS_PING_TIMEOUT_MS bound (and TCP keepalive) finds a connection that
 * stalls without closing; per-call timers bound the calls on a job's path.
 *
 * States: resolving -> connecting -> handshake (AUTH, SELECT, ROLE, SCRIPT LOAD,
 * each reply checked) -> up. Any failure drops the context and a timer starts
 * over (100 ms doubling to 2 s; 500 ms at most while the server is only not
 * ready: LOADING, BUSY, a replica). A dead context is never reused. While up,
 * a reply that says the server is no longer a usable master (READONLY,
 * MASTERDOWN, LOADING, NOAUTH) drops the connection too, so the next one is
 * resolved afresh: READONLY after a failover means "ask the sentinels again".
 * Commands are not queued across outages: callers decide what a NULL reply
 * means (pb_redis_is_transient; the chain keeps a finished result and re-sends). */
#include "planb/redis.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "planb/core.h"
#include "planb/log.h"
#include "planb/redisconn.h"
#include "planb/scripts.h"
#include "planb/sentinel.h"

#define REDIS_BACKOFF_MIN_MS      100
#define REDIS_BACKOFF_MAX_MS      2000
#define REDIS_BACKOFF_NOTREADY_MS 500  /* cap while the server answers but is not ready */
#define REDIS_CONNECT_LIMIT_MS    3000 /* resolve + connect + handshake longer than this: abandon */
#define REDIS_PING_MS             1000 /* how often an up connection is pinged */
#define REDIS_PING_TIMEOUT_MS                                                                      \
    6000                          /* no PONG for this long: stalled. Above Redis's default         \
                                     5 s busy-reply-threshold, after which even a busy             \
                                     script's server answers (BUSY) */
#define REDIS_SENTINEL_ASK_MS 500 /* one sentinel's answer to get-master-addr-by-name */
#define REDIS_IP_MAX          64  /* INET6_ADDRSTRLEN plus room */
#define REDIS_FLUSH_AFTER_US                                                                       \
    200 /* a command queued this long within one busy loop turn is written without waiting for     \
           the turn to end */

struct pb_redis {
    struct event_base *base;
    const pb_config *cfg;
    char name[32];
    pb_redisconn *conn; /* NULL while resolving or disconnected */
    pb_tls *tls;        /* redis.tls's context, made at the first TLS connect */
    bool up;            /* handshake passed: the connection is usable */
    bool down_logged;   /* the current outage was logged */
    bool was_up;        /* it has been up before (on_up runs on re-ups only) */
    bool not_ready;     /* the last failure was a not-ready server (short backoff) */
    bool ping_on;       /* this connection pings */
    int backoff_ms;
    unsigned long ups;          /* times it became up */
    char hint_ip[REDIS_IP_MAX]; /* +switch-master's new address: tried once before asking */
    int hint_port;
    int handshake_left;       /* handshake replies still awaited */
    int64_t ping_sent_ms;     /* monotonic send time of the outstanding PING, 0 none */
    int64_t queued_since_us;  /* monotonic time the output buffer stopped being empty */
    char ip[REDIS_IP_MAX];    /* address being connected to */
    int port;                 /* its port */
    struct event *retry;      /* reconnect / attempt-deadline timer */
    struct event *ping;       /* persistent ping timer */
    pb_redis_lookup *lookup;  /* name resolution in progress */
    pb_sentinel_query *sq;    /* sentinel discovery in progress */
    pb_sentinel_watch *watch; /* +switch-master subscription (with sentinels) */
    void (*on_up)(void *arg); /* re-up hook */
    void *on_up_arg;
    char **sub_channels; /* pb_redis_subscribe: subscribed again on every up */
    int n_sub_channels;
    pb_redis_fn sub_fn;
    void *sub_arg;
};

/* Carries a reply (or NULL) to a caller's callback; timer bounds it when set. */
typedef struct redis_deferred {
    pb_redis *r;
    pb_redis_fn fn; /* NULL once answered by the timeout: the late reply is dropped */
    void *arg;
} redis_deferred;

/* Keeps an EVALSHA's arguments so it can be re-sent as EVAL after NOSCRIPT. */
typedef struct redis_script_call {
    pb_redis *r;
    const pb_lua_source *src;
    pb_redis_fn fn; /* NULL after a timeout answered for it */
    void *arg;
    struct event *timer; /* the caller's bound, NULL none */
    int argc;            /* total argv of EVAL: "EVAL", body, numkeys, ... */
    char **argv;         /* owned copies */
    const char **view;   /* the same pointers, as redisconn wants them */
    size_t *lens;
} redis_script_call;

static void redis_start(pb_redis *r);

/* ------------------------------------------------------------------ error classes */

/* The first word of an error reply, compared with code. */
static bool
redis_error_is(const redisReply *reply, const char *code)
{
    size_t n = strlen(code);
    return reply->type == REDIS_REPLY_ERROR && reply->len >= n &&
           strncmp(reply->str, code, n) == 0 && (reply->len == n || reply->str[n] == ' ');
}

bool
pb_redis_is_transient(const redisReply *reply)
{
    static const char *const codes[] = {
        "LOADING",   "BUSY",        "OOM",        "READONLY", "MASTERDOWN", "NOAUTH", "TRYAGAIN",
        "WRONGPASS", "CLUSTERDOWN", "NOREPLICAS", "MISCONF",  "NOPERM",     NULL};
    if (reply == NULL)
        return true;
    if (reply->type != REDIS_REPLY_ERROR)
        return false;
    for (const char *const *c = codes; *c; c++)
        if (redis_error_is(reply, *c))
            return true;
    /* maxclients reached: "ERR max number of clients reached" */
    return reply->len > 4 && strstr(reply->str, "max number of clients") != NULL;
}

/* A reply saying this server is not (or no longer) a usable master for us. */
static bool
redis_reply_unusable(const redisReply *reply)
{
    return reply != NULL &&
           (redis_error_is(reply, "READONLY") || redis_error_is(reply, "MASTERDOWN") ||
            redis_error_is(reply, "LOADING") || redis_error_is(reply, "NOAUTH"));
}

/* ------------------------------------------------------------------ resolving */

struct pb_redis_lookup {
    pb_redis_resolved_fn fn;
    void *arg;
    struct evdns_getaddrinfo_request *req; /* NULL once answered */
    struct event *now;                     /* a literal address: answered from the loop */
    char ip[REDIS_IP_MAX];
    bool cancelled;
    bool starting; /* inside evdns_getaddrinfo, which answers /etc/hosts hits at once */
    bool answered; /* it did: ip holds the answer ("" none), given from the loop */
};

/* One evdns base per process and loop (workers have one loop each). */
static struct evdns_base *redis_dns;
static struct event_base *redis_dns_loop;

static void
redis_on_literal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_redis_lookup *q = arg;
    event_free(q->now);
    q->fn(q->ip[0] ? q->ip : NULL, q->arg);
    free(q);
}

static void
redis_on_dns(int result, struct evutil_addrinfo *res, void *arg)
{
    pb_redis_lookup *q = arg;
    char ip[REDIS_IP_MAX] = "";
    for (struct evutil_addrinfo *a = res; result == 0 && a && ip[0] == '\0'; a = a->ai_next) {
        if (a->ai_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr, ip,
                      sizeof(ip));
        else if (a->ai_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr, ip,
                      sizeof(ip));
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (q->starting) {
        snprintf(q->ip, sizeof(q->ip), "%s", ip);
        q->answered = true;
        return;
    }
    if (!q->cancelled && result != EVUTIL_EAI_CANCEL)
        q->fn(ip[0] ? ip : NULL, q->arg);
    free(q);
}

pb_redis_lookup *
pb_redis_resolve(struct event_base *base, const char *host, pb_redis_resolved_fn fn, void *arg)
{
    pb_redis_lookup *q = pb_xcalloc(1, sizeof(*q));
    q->fn = fn;
    q->arg = arg;
    struct in6_addr a6;
    struct in_addr a4;
    struct timeval now = {0, 0};
    if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
        snprintf(q->ip, sizeof(q->ip), "%s", host);
        q->now = evtimer_new(base, redis_on_literal, q);
        evtimer_add(q->now, &now);
        return q;
    }
    if (redis_dns == NULL || redis_dns_loop != base) {
        /* reads resolv.conf and /etc/hosts once; inactive lookups do not keep the loop alive */
        redis_dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        redis_dns_loop = base;
    }
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    q->starting = true;
    q->req = evdns_getaddrinfo(redis_dns, host, NULL, &hints, redis_on_dns, q);
    q->starting = false;
    if (q->answered) { /* an /etc/hosts hit or an immediate error: answered like a literal */
        q->req = NULL;
        q->now = evtimer_new(base, redis_on_literal, q);
        evtimer_add(q->now, &now);
    }
    return q;
}

void
pb_redis_resolve_cancel(pb_redis_lookup *q)
{
    if (q == NULL)
        return;
    if (q->now) {
        event_free(q->now);
        free(q);
        return;
    }
    q->cancelled = true;
    evdns_getaddrinfo_cancel(q->req); /* the callback runs (EAI_CANCEL) and frees q */
}

/* ------------------------------------------------------------------ connection life */

static void
redis_schedule_reconnect(pb_redis *r)
{
    evtimer_del(r->retry);
    int cap = r->not_ready ? REDIS_BACKOFF_NOTREADY_MS : REDIS_BACKOFF_MAX_MS;
    if (r->backoff_ms > cap)
        r->backoff_ms = cap;
    struct timeval tv = {r->backoff_ms / 1000, (r->backoff_ms % 1000) * 1000};
    evtimer_add(r->retry, &tv);
    r->backoff_ms *= 2;
    if (r->backoff_ms > REDIS_BACKOFF_MAX_MS)
        r->backoff_ms = REDIS_BACKOFF_MAX_MS;
}

/* Once per outage: redis_tls_failed (the cause is TLS: OpenSSL's reason, or the wrong URL
 * scheme) or redis_down. */
static void
redis_log_down(pb_redis *r, const char *why, bool tls)
{
    if (!r->down_logged) {
        const char *host =
            r->ip[0] ? r->ip : (r->cfg->n_sentinels ? "(sentinel)" : r->cfg->redis_host);
        int port = r->ip[0] ? r->port : r->cfg->redis_port;
        if (tls)
            pb_log(PB_LOG_WARN, "event=redis_tls_failed conn=%s host=%s port=%d reason=\"%s\"",
                   r->name, host, port, why);
        else
            pb_log(PB_LOG_WARN, "event=redis_down conn=%s host=%s port=%d why=\"%s\"", r->name,
                   host, port, why);
    }
    r->down_logged = true;
}

/* Lets go of the connection: every command still waiting gets its NULL. */
static void
redis_detach(pb_redis *r)
{
    pb_redisconn *c = r->conn;
    r->conn = NULL;
    r->up = false;
    r->ping_sent_ms = 0;
    evtimer_del(r->ping);
    pb_redisconn_free(c);
}

/* Gives up on the current attempt or connection and starts over after a backoff. */
static void
redis_drop_why(pb_redis *r, const char *why, bool not_ready, bool tls)
{
    pb_redis_resolve_cancel(r->lookup);
    r->lookup = NULL;
    pb_sentinel_cancel(r->sq);
    r->sq = NULL;
    redis_detach(r);
    r->not_ready = not_ready;
    redis_log_down(r, why, tls);
    redis_schedule_reconnect(r);
}

static void
redis_drop(pb_redis *r, const char *why, bool not_ready)
{
    redis_drop_why(r, why, not_ready, false);
}

/* Every reply of the subscription (redisconn keeps calling this one callback for it). */
static void
redis_on_sub_reply(redisReply *reply, void *arg)
{
    pb_redis *r = arg;
    if (reply == NULL)
        return; /* the connection is going away: the next up subscribes again */
    r->sub_fn(reply, r->sub_arg);
}

static void
redis_send_subscribe(pb_redis *r)
{
    if (!pb_redisconn_subscribe(r->conn, redis_on_sub_reply, r, r->n_sub_channels,
                                (const char *const *)r->sub_channels))
        redis_drop(r, "SUBSCRIBE could not be sent", false);
}

static void
redis_became_up(pb_redis *r)
{
    evtimer_del(r->retry);
    r->up = true;
    r->not_ready = false;
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    if (r->down_logged)
        pb_log(PB_LOG_INFO, "event=redis_up conn=%s host=%s port=%d", r->name, r->ip, r->port);
    r->down_logged = false;
    if (r->ping_on) {
        struct timeval tv = {REDIS_PING_MS / 1000, (REDIS_PING_MS % 1000) * 1000};
        event_add(r->ping, &tv);
    }
    bool again = r->was_up;
    r->was_up = true;
    r->ups++;
    if (r->sub_fn)
        redis_send_subscribe(r);
    if (again && r->on_up)
        r->on_up(r->on_up_arg);
}

/* Each handshake reply: any refusal drops the attempt (the text is Redis's, never ours). */
static void
redis_handshake_reply(pb_redis *r, const char *step, const redisReply *reply)
{
    if (reply == NULL)
        return; /* an abandoned attempt, or the connection's end handles it */
    char why[160];
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "%s refused: %.*s", step,
                 (int)(reply->len < 100 ? reply->len : 100), reply->str);
        for (char *p = why; *p; p++)
            if (*p == '"' || *p == '\r' || *p == '\n')
                *p = '\'';
        bool not_ready = redis_error_is(reply, "LOADING") || redis_error_is(reply, "BUSY") ||
                         redis_error_is(reply, "MASTERDOWN");
        redis_drop(r, why, not_ready);
        return;
    }
    if (strcmp(step, "ROLE") == 0) {
        const char *role = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                                   reply->element[0]->type == REDIS_REPLY_STRING
                               ? reply->element[0]->str
                               : "?";
        if (strcmp(role, "master") != 0) {
            snprintf(why, sizeof(why), "server is a %s, not a writable master", role);
            redis_drop(r, why, true);
            return;
        }
    }
    if (--r->handshake_left == 0)
        redis_became_up(r);
}

static void
redis_on_auth(redisReply *reply, void *arg)
{
    redis_handshake_reply(arg, "AUTH", reply);
}

static void
redis_on_select(redisReply *reply, void *arg)
{
    redis_handshake_reply(arg, "SELECT", reply);
}

static void
redis_on_role(redisReply *reply, void *arg)
{
    redis_handshake_reply(arg, "ROLE", reply);
}

static void
redis_on_script_load(redisReply *reply, void *arg)
{
    redis_handshake_reply(arg, "SCRIPT LOAD", reply);
}

/* The connection is usable (the handshake replies then decide when r is up) or it ended. */
static void
redis_on_conn_event(bool ended, const char *why, bool tls, void *arg)
{
    pb_redis *r = arg;
    if (!ended)
        return;
    redis_drop_why(r, why, false, tls);
}

/* redis.tls's context, made at the first connect and kept (a SIGHUP's new files come with the
 * new processes the reload starts). false with why when the files do not load. */
static bool
redis_tls_ready(pb_redis *r, char *why, size_t size)
{
    static bool warned;
    if (!r->cfg->redis_tls.on || r->tls != NULL)
        return true;
    r->tls = pb_tls_client_new(&r->cfg->redis_tls, why, size);
    if (r->tls && pb_tls_unverified(r->tls) && !warned) {
        pb_log(PB_LOG_WARN,
               "event=redis_tls_unverified conn=%s why=\"redis.tls.verify is false: "
               "the server's certificate is not checked\"",
               r->name);
        warned = true;
    }
    return r->tls != NULL;
}

static void
redis_connect_ip(pb_redis *r, const char *ip, int port)
{
    snprintf(r->ip, sizeof(r->ip), "%s", ip);
    r->port = port;
    char why[256];
    if (!redis_tls_ready(r, why, sizeof(why))) {
        redis_drop_why(r, why, false, true);
        return;
    }
    /* The certificate must name the URL's host; a sentinel-announced master is an address,
     * which redis.tls.server_name overrides when the certificate names a host. */
    const char *tls_host = r->cfg->n_sentinels ? ip : r->cfg->redis_host;
    r->conn = pb_redisconn_new(r->base, ip, port, r->tls, tls_host, redis_on_conn_event, r);

    /* Queued before the connect completes; sent first, in order. */
    const pb_config *cfg = r->cfg;
    r->handshake_left = 0;
    if (cfg->redis_password) {
        const char *auth[3] = {"AUTH", cfg->redis_user, cfg->redis_password};
        if (cfg->redis_user)
            pb_redisconn_command(r->conn, redis_on_auth, r, 3, auth, NULL);
        else {
            auth[1] = cfg->redis_password;
            pb_redisconn_command(r->conn, redis_on_auth, r, 2, auth, NULL);
        }
        r->handshake_left++;
    }
    if (cfg->redis_db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", cfg->redis_db);
        const char *sel[2] = {"SELECT", db};
        pb_redisconn_command(r->conn, redis_on_select, r, 2, sel, NULL);
        r->handshake_left++;
    }
    const char *role[1] = {"ROLE"};
    pb_redisconn_command(r->conn, redis_on_role, r, 1, role, NULL);
    r->handshake_left++;
    /* SCRIPT LOAD is refused with LOADING until the dataset is loaded: its OK means ready. */
    for (const pb_lua_source *s = pb_lua_sources; s->name; s++) {
        const char *load[3] = {"SCRIPT", "LOAD", s->body};
        size_t lens[3] = {6, 4, s->len};
        pb_redisconn_command(r->conn, redis_on_script_load, r, 3, load, lens);
        r->handshake_left++;
    }
}

static void
redis_on_resolved(const char *ip, void *arg)
{
    pb_redis *r = arg;
    r->lookup = NULL;
    if (ip == NULL) {
        redis_drop(r, "host name did not resolve", false);
        return;
    }
    redis_connect_ip(r, ip, r->cfg->redis_port);
}

static void
redis_on_master(const char *ip, int port, void *arg)
{
    pb_redis *r = arg;
    r->sq = NULL;
    if (ip == NULL) {
        redis_drop(r, "no sentinel named a master", false);
        return;
    }
    redis_connect_ip(r, ip, port);
}

/* +switch-master: the connection (if any) points at the old master; start over. */
static void
redis_on_switch(const char *ip, int port, void *arg)
{
    pb_redis *r = arg;
    pb_log(PB_LOG_WARN, "event=switch_master conn=%s to=%s:%d", r->name, ip ? ip : "?", port);
    if (r->up && ip && strcmp(ip, r->ip) == 0 && port == r->port)
        return;
    /* A sentinel that has not heard of the switch yet would name the old master, which
     * stays writable until Sentinel reconfigures it: go where the switch says. */
    if (ip && strlen(ip) < sizeof(r->hint_ip)) {
        snprintf(r->hint_ip, sizeof(r->hint_ip), "%s", ip);
        r->hint_port = port;
    }
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    redis_drop(r, "sentinel switched the master", true);
}

static void
redis_start(pb_redis *r)
{
    struct timeval tv = {REDIS_CONNECT_LIMIT_MS / 1000, (REDIS_CONNECT_LIMIT_MS % 1000) * 1000};
    evtimer_add(r->retry, &tv); /* bounds the whole attempt */
    if (r->cfg->n_sentinels > 0 && r->hint_ip[0]) {
        char ip[REDIS_IP_MAX];
        snprintf(ip, sizeof(ip), "%s", r->hint_ip);
        r->hint_ip[0] = '\0';
        redis_connect_ip(r, ip, r->hint_port); /* ROLE still checks it */
        return;
    }
    if (r->cfg->n_sentinels > 0) {
        r->sq = pb_sentinel_resolve(r->base, r->cfg, REDIS_SENTINEL_ASK_MS, redis_on_master, r);
        return;
    }
    r->lookup = pb_redis_resolve(r->base, r->cfg->redis_host, redis_on_resolved, r);
}

static void
redis_on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_redis *r = arg;
    if (r->up)
        return;
    if (r->conn != NULL || r->lookup != NULL || r->sq != NULL) {
        /* The attempt's deadline passed (a server that accepts and never answers). */
        redis_drop_why(r,
                       r->conn ? (pb_redisconn_is_tls(r->conn)
                                      ? "connect, TLS handshake or Redis handshake timed out"
                                      : "connect or handshake timed out")
                               : "resolve timed out",
                       false, false);
        return;
    }
    redis_start(r);
}

static void
redis_on_pong(redisReply *reply, void *arg)
{
    pb_redis *r = arg;
    if (reply == NULL)
        return;
    r->ping_sent_ms = 0; /* any answer, BUSY included, shows the connection lives */
}

static void
redis_on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_redis *r = arg;
    if (!r->up || r->conn == NULL)
        return;
    if (r->ping_sent_ms != 0) {
        if (pb_mono_ms() - r->ping_sent_ms > REDIS_PING_TIMEOUT_MS)
            redis_drop(r, "no reply to PING: connection stalled", false);
        return;
    }
    r->ping_sent_ms = pb_mono_ms();
    const char *ping[1] = {"PING"};
    pb_redisconn_command(r->conn, redis_on_pong, r, 1, ping, NULL);
}

pb_redis *
pb_redis_new(struct event_base *base, const pb_config *cfg, const char *name)
{
    pb_redis *r = pb_xcalloc(1, sizeof(*r));
    r->base = base;
    r->cfg = cfg;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    r->ping_on = true;
    r->retry = evtimer_new(base, redis_on_retry_timer, r);
    r->ping = event_new(base, -1, EV_PERSIST, redis_on_ping_timer, r);
    if (cfg->n_sentinels > 0)
        r->watch = pb_sentinel_watch_new(base, cfg, redis_on_switch, r);
    redis_start(r);
    return r;
}

void
pb_redis_free(pb_redis *r)
{
    if (r == NULL)
        return;
    pb_redis_resolve_cancel(r->lookup);
    pb_sentinel_cancel(r->sq);
    pb_sentinel_watch_free(r->watch);
    r->on_up = NULL;
    redis_detach(r);
    pb_tls_free(r->tls);
    for (int i = 0; i < r->n_sub_channels; i++)
        free(r->sub_channels[i]);
    free(r->sub_channels);
    event_free(r->retry);
    event_free(r->ping);
    free(r);
}

bool
pb_redis_is_up(const pb_redis *r)
{
    return r->up;
}

unsigned long
pb_redis_ups(const pb_redis *r)
{
    return r->ups;
}

void
pb_redis_no_ping(pb_redis *r)
{
    r->ping_on = false;
    evtimer_del(r->ping);
}

void
pb_redis_subscribe(pb_redis *r, int n, const char *const *channels, pb_redis_fn fn, void *arg)
{
    pb_redis_no_ping(r); /* PING in subscribed mode answers in another shape ([pong, ""]) */
    if (n > 64)
        n = 64;
    r->sub_channels = pb_xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++)
        r->sub_channels[i] = pb_xstrdup(channels[i]);
    r->n_sub_channels = n;
    r->sub_fn = fn;
    r->sub_arg = arg;
    if (r->up && r->conn)
        redis_send_subscribe(r);
}

void
pb_redis_reset(pb_redis *r, const char *why)
{
    redis_drop(r, why, false);
}

void
pb_redis_on_up(pb_redis *r, void (*fn)(void *arg), void *arg)
{
    r->on_up = fn;
    r->on_up_arg = arg;
}

/* ------------------------------------------------------------------ commands */

static void
redis_on_deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redis_deferred *d = arg;
    d->fn(NULL, d->arg);
    free(d);
}

static void
redis_fail_later(pb_redis *r, pb_redis_fn fn, void *arg)
{
    if (fn == NULL)
        return;
    redis_deferred *d = pb_xcalloc(1, sizeof(*d));
    d->fn = fn;
    d->arg = arg;
    event_base_once(r->base, -1, EV_TIMEOUT, redis_on_deferred, d, NULL);
}

/* A reply to a caller's command; a non-NULL one always comes from r's live connection. */
static void
redis_on_reply(redisReply *reply, void *arg)
{
    redis_deferred *d = arg;
    pb_redis *r = d->r;
    if (redis_reply_unusable(reply)) {
        /* The server stopped being a usable master under us (failover, restart, rotated
         * password): the next connection is resolved and checked afresh. */
        char why[64];
        const redisReply *e = reply;
        snprintf(why, sizeof(why), "%.*s", (int)strcspn(e->str, " "), e->str);
        redis_drop(r, why, true);
    }
    if (d->fn)
        d->fn(reply, d->arg);
    free(d);
}

/* Queued commands are written when the loop next polls, after the current turn. A turn
 * busy with hundreds of stream chunks (each queuing an XADD) would hold the first chunk's
 * XADD for the whole turn, so a buffer older than REDIS_FLUSH_AFTER_US is written here.
 * Only the write: a failure is left for the write event, handled (end, callbacks) from the
 * loop, never from inside a caller. */
static void
redis_flush_if_stale(pb_redis *r, bool was_empty)
{
    int64_t now = pb_mono_us();
    if (was_empty) {
        r->queued_since_us = now;
        return;
    }
    if (now - r->queued_since_us < REDIS_FLUSH_AFTER_US)
        return;
    pb_redisconn_write_now(r->conn);
    r->queued_since_us = now; /* what a partial write left is as old as now, at worst */
}

void
pb_redis_command(pb_redis *r, pb_redis_fn fn, void *arg, int argc, const char **argv,
                 const size_t *lens)
{
    if (r->conn == NULL || !r->up) {
        redis_fail_later(r, fn, arg);
        return;
    }
    redis_deferred *d = pb_xmalloc(sizeof(*d));
    d->r = r;
    d->fn = fn;
    d->arg = arg;
    bool was_empty = pb_redisconn_unsent(r->conn) == 0;
    if (!pb_redisconn_command(r->conn, redis_on_reply, d, argc, argv, lens)) {
        free(d);
        redis_fail_later(r, fn, arg);
        return;
    }
    redis_flush_if_stale(r, was_empty);
}

static void
redis_script_call_free(redis_script_call *sc)
{
    for (int i = 0; i < sc->argc; i++)
        free(sc->argv[i]);
    free(sc->argv);
    free(sc->view);
    free(sc->lens);
    if (sc->timer)
        event_free(sc->timer);
    free(sc);
}

static void
redis_on_eval_reply(redisReply *reply, void *arg)
{
    redis_script_call *sc = arg;
    if (sc->fn)
        sc->fn(reply, sc->arg);
    redis_script_call_free(sc);
}

static void
redis_on_evalsha_reply(redisReply *reply, void *arg)
{
    redis_script_call *sc = arg;
    if (reply == NULL || !redis_error_is(reply, "NOSCRIPT") || sc->fn == NULL) {
        redis_on_eval_reply(reply, sc);
        return;
    }
    /* Scripts were flushed (Redis restarted without us noticing, or SCRIPT FLUSH):
     * EVAL sends the body, which also caches it again. */
    free(sc->argv[1]);
    sc->argv[1] = pb_xstrndup(sc->src->body, sc->src->len);
    sc->lens[1] = sc->src->len;
    free(sc->argv[0]);
    sc->argv[0] = pb_xstrdup("EVAL");
    sc->lens[0] = 4;
    sc->view[0] = sc->argv[0];
    sc->view[1] = sc->argv[1];
    pb_redis_command(sc->r, redis_on_eval_reply, sc, sc->argc, sc->view, sc->lens);
}

static void
redis_on_script_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redis_script_call *sc = arg;
    pb_redis_fn fn = sc->fn;
    sc->fn = NULL; /* the reply, when it comes, only frees sc */
    if (fn)
        fn(NULL, sc->arg);
}

void
pb_redis_script_within(pb_redis *r, int timeout_ms, const char *script, pb_redis_fn fn, void *arg,
                       int numkeys, int argc, const char **argv, const size_t *lens)
{
    const pb_lua_source *src = pb_scripts_find(script);
    pb_assert(src != NULL);
    redis_script_call *sc = pb_xcalloc(1, sizeof(*sc));
    sc->r = r;
    sc->src = src;
    sc->fn = fn;
    sc->arg = arg;
    sc->argc = argc + 3;
    sc->argv = pb_xmalloc(sizeof(char *) * (size_t)sc->argc);
    sc->view = pb_xmalloc(sizeof(char *) * (size_t)sc->argc);
    sc->lens = pb_xmalloc(sizeof(size_t) * (size_t)sc->argc);
    const char *sha = pb_scripts_sha(src);
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", numkeys);
    sc->argv[0] = pb_xstrdup("EVALSHA");
    sc->lens[0] = 7;
    sc->argv[1] = pb_xstrdup(sha);
    sc->lens[1] = 40;
    sc->argv[2] = pb_xstrdup(nk);
    sc->lens[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        size_t l = lens ? lens[i] : strlen(argv[i]);
        sc->argv[i + 3] = pb_xstrndup(argv[i], l);
        sc->lens[i + 3] = l;
    }
    for (int i = 0; i < sc->argc; i++)
        sc->view[i] = sc->argv[i];
    if (timeout_ms > 0 && fn != NULL && r->up) {
        sc->timer = evtimer_new(r->base, redis_on_script_timeout, sc);
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(sc->timer, &tv);
    }
    pb_redis_command(r, redis_on_evalsha_reply, sc, sc->argc, sc->view, sc->lens);
}

void
pb_redis_script(pb_redis *r, const char *script, pb_redis_fn fn, void *arg, int numkeys, int argc,
                const char **argv, const size_t *lens)
{
    pb_redis_script_within(r, 0, script, fn, arg, numkeys, argc, argv, lens);
}
