/* sentinel.c -- master discovery and +switch-master through Redis Sentinel.
 *
 * Follows the Sentinel client guidelines (redis.io "Sentinel client spec"):
 * step 1, try the sentinels in order, the one that answered last first (kept
 * per process in sentinel_first), each bounded by a timer; step 2, ask
 * SENTINEL get-master-addr-by-name <master_name>; step 3 (checking ROLE on
 * that address) is redis.c's handshake, which refuses a replica and starts
 * over. A failover is noticed three ways: Sentinel disconnects the clients of
 * a reconfigured instance, a write gets READONLY (redis.c drops the
 * connection), and the watch here hears +switch-master. Sentinels are asked
 * over their own short-lived connections (redisconn.c: TLS with
 * redis.sentinel_tls, each sentinel's own host the name checked), addresses
 * resolved with evdns (pb_redis_resolve); AUTH sends redis.sentinel_user and
 * the sentinel password, which is never logged. */
#include "planb/sentinel.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/log.h"
#include "planb/redis.h"
#include "planb/redisconn.h"
#include "planb/redissync.h"

#define SENTINEL_SYNC_ONE_MS 1000 /* one sentinel's answer in pb_sentinel_open_sync */

#define SENTINEL_WATCH_RETRY_MS 1000 /* a lost subscription is tried again (next sentinel) */
#define SENTINEL_IP_MAX         64

/* The sentinel that answered last: asked first next time (guidelines, step 1). */
static size_t sentinel_first;

/* The TLS context for the sentinels of one config (redis.sentinel_tls), made on first use and
 * kept for the process: queries come and go on every reconnect. */
static const pb_config *sentinel_tls_cfg;
static pb_tls *sentinel_tls;

/* NULL with why filled when sentinel_tls is on and its files do not load; plain: *tls NULL. */
static bool
sentinel_tls_for(const pb_config *cfg, const pb_tls **tls, char *why, size_t size)
{
    *tls = NULL;
    if (!cfg->sentinel_tls.on)
        return true;
    if (sentinel_tls == NULL || sentinel_tls_cfg != cfg) {
        pb_tls_free(sentinel_tls);
        sentinel_tls = pb_tls_client_new(&cfg->sentinel_tls, why, size);
        sentinel_tls_cfg = sentinel_tls ? cfg : NULL;
    }
    *tls = sentinel_tls;
    return sentinel_tls != NULL;
}

struct pb_sentinel_query {
    struct event_base *base;
    const pb_config *cfg;
    int per_ms;
    pb_sentinel_fn fn;
    void *arg;
    size_t tried;            /* sentinels asked so far */
    size_t idx;              /* the one being asked */
    pb_redisconn *conn;      /* its connection, NULL none */
    pb_redis_lookup *lookup; /* its name being resolved */
    struct event *timer;     /* bounds one sentinel */
};

static void query_next(pb_sentinel_query *q);

static void
sentinel_detach(pb_redisconn **cp)
{
    pb_redisconn *c = *cp;
    *cp = NULL;
    pb_redisconn_free(c); /* its waiting callbacks get NULL and do nothing */
}

static void
query_abandon_current(pb_sentinel_query *q)
{
    pb_redis_resolve_cancel(q->lookup);
    q->lookup = NULL;
    sentinel_detach(&q->conn);
    evtimer_del(q->timer);
}

static void
query_free(pb_sentinel_query *q)
{
    query_abandon_current(q);
    event_free(q->timer);
    free(q);
}

static void
query_done(pb_sentinel_query *q, const char *ip, int port)
{
    query_abandon_current(q);
    q->fn(ip, port, q->arg);
    query_free(q);
}

static void
query_on_addr(redisReply *reply, void *arg)
{
    pb_sentinel_query *q = arg;
    if (reply == NULL)
        return; /* abandoned, or the connection's end moves on */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING && reply->element[0]->len < SENTINEL_IP_MAX) {
        char ip[SENTINEL_IP_MAX];
        snprintf(ip, sizeof(ip), "%s", reply->element[0]->str);
        int port = atoi(reply->element[1]->str);
        sentinel_first = q->idx;
        query_done(q, ip, port);
        return;
    }
    pb_log(PB_LOG_WARN, "event=sentinel_no_master sentinel=%s:%d master=%s",
           q->cfg->sentinel_hosts[q->idx], q->cfg->sentinel_ports[q->idx], q->cfg->master_name);
    query_abandon_current(q);
    query_next(q);
}

/* A refused AUTH: said once per sentinel and process (a wrong sentinel_user or password). */
static void
sentinel_on_auth(redisReply *reply, void *arg)
{
    (void)arg;
    static bool said;
    if (reply && reply->type == REDIS_REPLY_ERROR && !said) {
        pb_log(PB_LOG_WARN, "event=sentinel_auth_refused why=\"%.*s\"",
               (int)(reply->len < 100 ? reply->len : 100), reply->str);
        said = true;
    }
}

/* A TLS failure reaching a sentinel, said once per process and reason change. */
static void
sentinel_log_tls(const pb_config *cfg, size_t idx, const char *why)
{
    static char last[200];
    if (strncmp(last, why, sizeof(last) - 1) == 0)
        return;
    snprintf(last, sizeof(last), "%s", why);
    pb_log(PB_LOG_WARN, "event=redis_tls_failed conn=sentinel host=%s port=%d reason=\"%s\"",
           cfg->sentinel_hosts[idx], cfg->sentinel_ports[idx], why);
}

/* Opens a connection to sentinel idx at ip (NULL: it did not resolve), AUTH queued; on_event
 * runs when it ends. NULL when it cannot be tried (no address, TLS files that do not load). */
static pb_redisconn *
sentinel_open(struct event_base *base, const pb_config *cfg, size_t idx, const char *ip,
              pb_redisconn_event_fn on_event, void *arg)
{
    const pb_tls *tls;
    char why[256];
    if (ip == NULL)
        return NULL;
    if (!sentinel_tls_for(cfg, &tls, why, sizeof(why))) {
        sentinel_log_tls(cfg, idx, why);
        return NULL;
    }
    const char *host = cfg->sentinel_hosts[idx]; /* the name its certificate must hold */
    pb_redisconn *c =
        pb_redisconn_new(base, ip, cfg->sentinel_ports[idx], tls, host, on_event, arg);
    if (cfg->sentinel_password) {
        const char *argv[3] = {"AUTH", cfg->sentinel_user ? cfg->sentinel_user : "",
                               cfg->sentinel_password};
        if (cfg->sentinel_user)
            pb_redisconn_command(c, sentinel_on_auth, NULL, 3, argv, NULL);
        else {
            argv[1] = cfg->sentinel_password;
            pb_redisconn_command(c, sentinel_on_auth, NULL, 2, argv, NULL);
        }
    }
    return c;
}

/* The connect failed or the connection closed: ask the next sentinel. */
static void
query_on_conn_event(bool ended, const char *why, bool tls, void *arg)
{
    pb_sentinel_query *q = arg;
    if (!ended)
        return;
    if (tls)
        sentinel_log_tls(q->cfg, q->idx, why);
    query_abandon_current(q);
    query_next(q);
}

static void
query_on_ip(const char *ip, void *arg)
{
    pb_sentinel_query *q = arg;
    q->lookup = NULL;
    q->conn = sentinel_open(q->base, q->cfg, q->idx, ip, query_on_conn_event, q);
    if (q->conn == NULL) {
        evtimer_del(q->timer);
        query_next(q);
        return;
    }
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", q->cfg->master_name};
    pb_redisconn_command(q->conn, query_on_addr, q, 3, argv, NULL);
}

static void
query_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_sentinel_query *q = arg;
    query_abandon_current(q);
    query_next(q);
}

static void
query_next(pb_sentinel_query *q)
{
    size_t n = q->cfg->n_sentinels;
    if (q->tried >= n) {
        query_done(q, NULL, 0);
        return;
    }
    q->idx = (sentinel_first + q->tried) % n;
    q->tried++;
    struct timeval tv = {q->per_ms / 1000, (q->per_ms % 1000) * 1000};
    evtimer_add(q->timer, &tv);
    q->lookup = pb_redis_resolve(q->base, q->cfg->sentinel_hosts[q->idx], query_on_ip, q);
}

pb_sentinel_query *
pb_sentinel_resolve(struct event_base *base, const pb_config *cfg, int per_sentinel_ms,
                    pb_sentinel_fn fn, void *arg)
{
    pb_sentinel_query *q = pb_xcalloc(1, sizeof(*q));
    q->base = base;
    q->cfg = cfg;
    q->per_ms = per_sentinel_ms;
    q->fn = fn;
    q->arg = arg;
    q->timer = evtimer_new(base, query_on_timer, q);
    if (sentinel_first >= cfg->n_sentinels)
        sentinel_first = 0;
    /* Start from the loop: the caller must have stored the handle before fn can run. */
    struct timeval tv = {0, 0};
    evtimer_add(q->timer, &tv);
    return q;
}

void
pb_sentinel_cancel(pb_sentinel_query *q)
{
    if (q == NULL)
        return;
    query_free(q);
}

/* ------------------------------------------------------------------ the watch */

struct pb_sentinel_watch {
    struct event_base *base;
    const pb_config *cfg;
    pb_sentinel_fn fn;
    void *arg;
    size_t idx;              /* sentinel subscribed to */
    pb_redisconn *conn;      /* the subscription, NULL none */
    pb_redis_lookup *lookup; /* its name being resolved */
    struct event *retry;     /* resubscribe timer */
};

static void
watch_retry(pb_sentinel_watch *w)
{
    pb_redis_resolve_cancel(w->lookup);
    w->lookup = NULL;
    sentinel_detach(&w->conn);
    w->idx = (w->idx + 1) % w->cfg->n_sentinels;
    struct timeval tv = {SENTINEL_WATCH_RETRY_MS / 1000, (SENTINEL_WATCH_RETRY_MS % 1000) * 1000};
    evtimer_add(w->retry, &tv);
}

/* ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"] */
static void
watch_on_message(redisReply *reply, void *arg)
{
    pb_sentinel_watch *w = arg;
    if (reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        watch_retry(w);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[2]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str ? reply->element[0]->str : "", "message") != 0)
        return;
    char name[257], old_ip[SENTINEL_IP_MAX], new_ip[SENTINEL_IP_MAX];
    int old_port, new_port;
    if (sscanf(reply->element[2]->str, "%256s %63s %d %63s %d", name, old_ip, &old_port, new_ip,
               &new_port) != 5 ||
        strcmp(name, w->cfg->master_name) != 0)
        return;
    w->fn(new_ip, new_port, w->arg);
}

static void
watch_on_conn_event(bool ended, const char *why, bool tls, void *arg)
{
    pb_sentinel_watch *w = arg;
    if (!ended)
        return;
    if (tls)
        sentinel_log_tls(w->cfg, w->idx, why);
    watch_retry(w);
}

static void
watch_on_ip(const char *ip, void *arg)
{
    pb_sentinel_watch *w = arg;
    w->lookup = NULL;
    w->conn = sentinel_open(w->base, w->cfg, w->idx, ip, watch_on_conn_event, w);
    if (w->conn == NULL) {
        watch_retry(w);
        return;
    }
    const char *channel[1] = {"+switch-master"};
    pb_redisconn_subscribe(w->conn, watch_on_message, w, 1, channel);
}

static void
watch_on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_sentinel_watch *w = arg;
    w->lookup = pb_redis_resolve(w->base, w->cfg->sentinel_hosts[w->idx], watch_on_ip, w);
}

pb_sentinel_watch *
pb_sentinel_watch_new(struct event_base *base, const pb_config *cfg, pb_sentinel_fn fn, void *arg)
{
    pb_sentinel_watch *w = pb_xcalloc(1, sizeof(*w));
    w->base = base;
    w->cfg = cfg;
    w->fn = fn;
    w->arg = arg;
    w->idx = sentinel_first < cfg->n_sentinels ? sentinel_first : 0;
    w->retry = evtimer_new(base, watch_on_retry, w);
    struct timeval tv = {0, 0};
    evtimer_add(w->retry, &tv);
    return w;
}

void
pb_sentinel_watch_free(pb_sentinel_watch *w)
{
    if (w == NULL)
        return;
    pb_redis_resolve_cancel(w->lookup);
    sentinel_detach(&w->conn);
    event_free(w->retry);
    free(w);
}

/* ------------------------------------------------------------------ blocking (cli) */

int
pb_sentinel_resolve_sync(const pb_config *cfg, int per_sentinel_ms, char *ip, size_t ip_size,
                         int *port, char *why, size_t why_size)
{
    pb_tls *tls = NULL;
    snprintf(why, why_size, "no sentinel configured");
    if (cfg->sentinel_tls.on &&
        (tls = pb_tls_client_new(&cfg->sentinel_tls, why, why_size)) == NULL)
        return PB_ERR;
    int rc = PB_ERR;
    for (size_t i = 0; i < cfg->n_sentinels && rc != PB_OK; i++) {
        const char *host = cfg->sentinel_hosts[i]; /* the name its certificate must hold */
        char one[256];
        pb_redissync *c = pb_redissync_connect(host, cfg->sentinel_ports[i], tls, host,
                                               per_sentinel_ms, one, sizeof(one));
        redisReply *r = NULL;
        if (c != NULL && cfg->sentinel_password) {
            r = cfg->sentinel_user ? pb_redissync_command(c, "AUTH %s %s", cfg->sentinel_user,
                                                          cfg->sentinel_password)
                                   : pb_redissync_command(c, "AUTH %s", cfg->sentinel_password);
            if (r == NULL || r->type == REDIS_REPLY_ERROR) {
                snprintf(one, sizeof(one), "%s%s", r ? "AUTH failed: " : "",
                         r ? r->str : pb_redissync_error(c));
                pb_redissync_free(c);
                c = NULL;
            }
            freeReplyObject(r);
        }
        if (c != NULL) {
            r = pb_redissync_command(c, "SENTINEL get-master-addr-by-name %s", cfg->master_name);
            bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                      r->element[0]->type == REDIS_REPLY_STRING &&
                      r->element[1]->type == REDIS_REPLY_STRING;
            if (ok) {
                snprintf(ip, ip_size, "%s", r->element[0]->str);
                *port = atoi(r->element[1]->str);
                rc = PB_OK;
            } else {
                snprintf(one, sizeof(one), "%s",
                         r == NULL                      ? pb_redissync_error(c)
                         : r->type == REDIS_REPLY_ERROR ? r->str
                                                        : "it knows no such master");
            }
            freeReplyObject(r);
            pb_redissync_free(c);
        }
        if (rc != PB_OK)
            snprintf(why, why_size, "sentinel %s:%d: %s", host, cfg->sentinel_ports[i], one);
    }
    pb_tls_free(tls);
    return rc;
}

/* The one-shot commands and the admin process open Redis this way: the sentinels first when
 * configured (blocking is fine there), then pb_redissync_open. */
pb_redissync *
pb_sentinel_open_sync(const pb_config *cfg, int timeout_ms, char *where, size_t where_size,
                      char *why, size_t why_size)
{
    char host[256];
    int port = cfg->redis_port;
    snprintf(host, sizeof(host), "%s", cfg->redis_host);
    if (cfg->n_sentinels > 0) {
        char one[256];
        int per_ms = timeout_ms < SENTINEL_SYNC_ONE_MS ? timeout_ms : SENTINEL_SYNC_ONE_MS;
        snprintf(where, where_size, "master \"%s\"", cfg->master_name);
        if (pb_sentinel_resolve_sync(cfg, per_ms, host, sizeof(host), &port, one, sizeof(one)) !=
            PB_OK) {
            snprintf(why, why_size, "no sentinel named a master (%s)", one);
            return NULL;
        }
    }
    snprintf(where, where_size, "%s:%d", host, port);
    return pb_redissync_open(cfg, host, port, timeout_ms, why, why_size);
}
