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
 * with their own short-lived hiredis contexts, addresses resolved with evdns
 * (pb_redis_resolve); the sentinel password is sent with AUTH and never logged. */
#include "planb/sentinel.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/log.h"
#include "planb/redis.h"

#define SENTINEL_WATCH_RETRY_MS 1000 /* a lost subscription is tried again (next sentinel) */
#define SENTINEL_IP_MAX         64

/* The sentinel that answered last: asked first next time (guidelines, step 1). */
static size_t sentinel_first;

struct pb_sentinel_query {
    struct event_base *base;
    const pb_config *cfg;
    int per_ms;
    pb_sentinel_fn fn;
    void *arg;
    size_t tried;            /* sentinels asked so far */
    size_t idx;              /* the one being asked */
    redisAsyncContext *ac;   /* its connection, NULL none */
    pb_redis_lookup *lookup; /* its name being resolved */
    struct event *timer;     /* bounds one sentinel */
};

static void query_next(pb_sentinel_query *q);

static void
sentinel_detach(redisAsyncContext **acp)
{
    redisAsyncContext *ac = *acp;
    *acp = NULL;
    if (ac == NULL)
        return;
    ac->data = NULL;
    ac->onDisconnect = NULL;
    ac->onConnect = NULL;
    redisAsyncFree(ac);
}

static void
query_abandon_current(pb_sentinel_query *q)
{
    pb_redis_resolve_cancel(q->lookup);
    q->lookup = NULL;
    sentinel_detach(&q->ac);
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
query_on_addr(redisAsyncContext *ac, void *reply_, void *privdata)
{
    (void)privdata;
    redisReply *reply = reply_;
    pb_sentinel_query *q = ac->data;
    if (q == NULL || q->ac != ac)
        return;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
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

/* Opens a context to sentinel idx at ip (NULL: it did not resolve), AUTH queued; data is
 * the owner, on_lost runs when the connect fails or the connection closes. NULL on failure. */
static redisAsyncContext *
sentinel_open(struct event_base *base, const pb_config *cfg, size_t idx, const char *ip, void *data,
              redisDisconnectCallback *on_lost, redisConnectCallback *on_connect)
{
    redisAsyncContext *ac = ip ? redisAsyncConnect(ip, cfg->sentinel_ports[idx]) : NULL;
    if (ac == NULL || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    redisEnableKeepAlive(&ac->c);
    ac->data = data;
    redisLibeventAttach(ac, base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_lost);
    if (cfg->sentinel_password)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", cfg->sentinel_password);
    return ac;
}

/* The connect failed or the connection closed: ask the next sentinel. */
static void
query_on_lost(const redisAsyncContext *ac, int status)
{
    (void)status;
    pb_sentinel_query *q = ac->data;
    if (q == NULL || q->ac != ac)
        return;
    q->ac = NULL; /* hiredis frees it after this callback */
    query_abandon_current(q);
    query_next(q);
}

static void
query_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        query_on_lost(ac, status);
}

static void
query_on_ip(const char *ip, void *arg)
{
    pb_sentinel_query *q = arg;
    q->lookup = NULL;
    q->ac = sentinel_open(q->base, q->cfg, q->idx, ip, q, query_on_lost, query_on_connect);
    if (q->ac == NULL) {
        evtimer_del(q->timer);
        query_next(q);
        return;
    }
    redisAsyncCommand(q->ac, query_on_addr, NULL, "SENTINEL get-master-addr-by-name %s",
                      q->cfg->master_name);
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
    redisAsyncContext *ac;   /* the subscription, NULL none */
    pb_redis_lookup *lookup; /* its name being resolved */
    struct event *retry;     /* resubscribe timer */
};

static void
watch_retry(pb_sentinel_watch *w)
{
    pb_redis_resolve_cancel(w->lookup);
    w->lookup = NULL;
    sentinel_detach(&w->ac);
    w->idx = (w->idx + 1) % w->cfg->n_sentinels;
    struct timeval tv = {SENTINEL_WATCH_RETRY_MS / 1000, (SENTINEL_WATCH_RETRY_MS % 1000) * 1000};
    evtimer_add(w->retry, &tv);
}

/* ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"] */
static void
watch_on_message(redisAsyncContext *ac, void *reply_, void *privdata)
{
    (void)privdata;
    redisReply *reply = reply_;
    pb_sentinel_watch *w = ac->data;
    if (w == NULL || w->ac != ac || reply == NULL)
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
watch_on_lost(const redisAsyncContext *ac, int status)
{
    (void)status;
    pb_sentinel_watch *w = ac->data;
    if (w == NULL || w->ac != ac)
        return;
    w->ac = NULL; /* hiredis frees it after this callback */
    watch_retry(w);
}

static void
watch_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        watch_on_lost(ac, status);
}

static void
watch_on_ip(const char *ip, void *arg)
{
    pb_sentinel_watch *w = arg;
    w->lookup = NULL;
    w->ac = sentinel_open(w->base, w->cfg, w->idx, ip, w, watch_on_lost, watch_on_connect);
    if (w->ac == NULL) {
        watch_retry(w);
        return;
    }
    redisAsyncCommand(w->ac, watch_on_message, NULL, "SUBSCRIBE +switch-master");
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
    sentinel_detach(&w->ac);
    event_free(w->retry);
    free(w);
}

/* ------------------------------------------------------------------ blocking (cli) */

int
pb_sentinel_resolve_sync(const pb_config *cfg, int per_sentinel_ms, char *ip, size_t ip_size,
                         int *port)
{
    struct timeval tv = {per_sentinel_ms / 1000, (per_sentinel_ms % 1000) * 1000};
    for (size_t i = 0; i < cfg->n_sentinels; i++) {
        redisContext *c =
            redisConnectWithTimeout(cfg->sentinel_hosts[i], cfg->sentinel_ports[i], tv);
        if (c == NULL || c->err) {
            redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        if (cfg->sentinel_password) {
            redisReply *a = redisCommand(c, "AUTH %s", cfg->sentinel_password);
            freeReplyObject(a);
        }
        redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", cfg->master_name);
        int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 r->element[1]->type == REDIS_REPLY_STRING;
        if (ok) {
            snprintf(ip, ip_size, "%s", r->element[0]->str);
            *port = atoi(r->element[1]->str);
        }
        freeReplyObject(r);
        redisFree(c);
        if (ok)
            return PB_OK;
    }
    return PB_ERR;
}
