/* redis.c -- async Redis connection with reconnect backoff and script loading.
 *
 * hiredis 0.14.1 (Debian bookworm) has no redisOptions or connect timeout, so
 * the connect is bounded by our own timer. A dead context is never reused:
 * on disconnect we drop it and a timer builds a new one (100 ms doubling to
 * 2 s). Commands are not queued across outages: callers decide what a NULL
 * reply means (the chain retries a finish; the claim loop just claims again). */
#include "planb/redis.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/log.h"
#include "planb/scripts.h"

#define REDIS_BACKOFF_MIN_MS   100
#define REDIS_BACKOFF_MAX_MS   2000
#define REDIS_CONNECT_LIMIT_MS 3000 /* a connect that takes longer is abandoned */

struct pb_redis {
    struct event_base *base;
    const pb_config *cfg;
    char name[32];
    redisAsyncContext *ac; /* NULL while disconnected */
    bool up;               /* connect callback succeeded */
    bool down_logged;      /* the current outage was logged */
    int backoff_ms;
    struct event *retry; /* reconnect / connect-deadline timer */
};

/* Carries a NULL reply to a callback from the loop (commands sent while down). */
typedef struct redis_deferred {
    pb_redis_fn fn;
    void *arg;
} redis_deferred;

/* Keeps an EVALSHA's arguments so it can be re-sent as EVAL after NOSCRIPT. */
typedef struct redis_script_call {
    pb_redis *r;
    const pb_lua_source *src;
    pb_redis_fn fn;
    void *arg;
    int argc;          /* total argv of EVAL: "EVAL", body, numkeys, ... */
    char **argv;       /* owned copies */
    const char **view; /* the same pointers, as hiredis wants them */
    size_t *lens;
} redis_script_call;

static void redis_connect(pb_redis *r);

static void
redis_schedule_reconnect(pb_redis *r)
{
    struct timeval tv = {r->backoff_ms / 1000, (r->backoff_ms % 1000) * 1000};
    evtimer_add(r->retry, &tv);
    r->backoff_ms *= 2;
    if (r->backoff_ms > REDIS_BACKOFF_MAX_MS)
        r->backoff_ms = REDIS_BACKOFF_MAX_MS;
}

static void
redis_log_down(pb_redis *r, const char *why)
{
    if (!r->down_logged)
        pb_log(PB_LOG_WARN, "event=redis_down conn=%s host=%s port=%d why=\"%s\"", r->name,
               r->cfg->redis_host, r->cfg->redis_port, why);
    r->down_logged = true;
}

static void
redis_on_connect(const redisAsyncContext *ac, int status)
{
    pb_redis *r = ac->data;
    if (r == NULL)
        return;
    evtimer_del(r->retry);
    if (status != REDIS_OK) {
        redis_log_down(r, ac->errstr);
        r->ac = NULL; /* hiredis frees the context after this callback */
        redis_schedule_reconnect(r);
        return;
    }
    r->up = true;
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    if (r->down_logged)
        pb_log(PB_LOG_INFO, "event=redis_up conn=%s", r->name);
    r->down_logged = false;
}

static void
redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    pb_redis *r = ac->data;
    (void)status;
    if (r == NULL)
        return; /* pb_redis_free already let go of it */
    r->ac = NULL;
    r->up = false;
    redis_log_down(r, ac->errstr[0] ? ac->errstr : "connection closed");
    redis_schedule_reconnect(r);
}

static void
redis_on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_redis *r = arg;
    if (r->ac != NULL && !r->up) {
        /* The connect deadline passed. hiredis 0.14 calls neither callback when a
         * context that never connected is freed, so we reschedule ourselves. */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
        redis_log_down(r, "connect timed out");
        redis_schedule_reconnect(r);
        return;
    }
    if (r->ac == NULL)
        redis_connect(r);
}

static void
redis_connect(pb_redis *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->cfg->redis_host, r->cfg->redis_port);
    if (ac == NULL || ac->err) {
        redis_log_down(r, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        redis_schedule_reconnect(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    struct timeval tv = {REDIS_CONNECT_LIMIT_MS / 1000, 0};
    evtimer_add(r->retry, &tv);

    /* Queued before the connect completes; hiredis sends them first, in order. */
    if (r->cfg->redis_password) {
        if (r->cfg->redis_user)
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", r->cfg->redis_user,
                              r->cfg->redis_password);
        else
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->cfg->redis_password);
    }
    if (r->cfg->redis_db != 0)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", r->cfg->redis_db);
    for (const pb_lua_source *s = pb_lua_sources; s->name; s++)
        redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %b", s->body, s->len);
}

pb_redis *
pb_redis_new(struct event_base *base, const pb_config *cfg, const char *name)
{
    pb_redis *r = pb_xcalloc(1, sizeof(*r));
    r->base = base;
    r->cfg = cfg;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->backoff_ms = REDIS_BACKOFF_MIN_MS;
    r->retry = evtimer_new(base, redis_on_retry_timer, r);
    redis_connect(r);
    return r;
}

void
pb_redis_free(pb_redis *r)
{
    if (r == NULL)
        return;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        ac->data = NULL;
        /* 0.14's setter refuses to replace a set callback, so clear the field itself. */
        ac->onDisconnect = NULL;
        ac->onConnect = NULL;
        redisAsyncFree(ac);
    }
    event_free(r->retry);
    free(r);
}

bool
pb_redis_is_up(const pb_redis *r)
{
    return r->up;
}

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
    redis_deferred *d = pb_xmalloc(sizeof(*d));
    d->fn = fn;
    d->arg = arg;
    event_base_once(r->base, -1, EV_TIMEOUT, redis_on_deferred, d, NULL);
}

/* hiredis callback adapter: the privdata is the pair (fn, arg) packed in a deferred struct. */
static void
redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_deferred *d = privdata;
    if (d->fn)
        d->fn(reply, d->arg);
    free(d);
}

void
pb_redis_command(pb_redis *r, pb_redis_fn fn, void *arg, int argc, const char **argv,
                 const size_t *lens)
{
    if (r->ac == NULL || !r->up) {
        redis_fail_later(r, fn, arg);
        return;
    }
    redis_deferred *d = pb_xmalloc(sizeof(*d));
    d->fn = fn;
    d->arg = arg;
    if (redisAsyncCommandArgv(r->ac, redis_on_reply, d, argc, argv, lens) != REDIS_OK) {
        free(d);
        redis_fail_later(r, fn, arg);
    }
}

static void
redis_script_call_free(redis_script_call *sc)
{
    for (int i = 0; i < sc->argc; i++)
        free(sc->argv[i]);
    free(sc->argv);
    free(sc->view);
    free(sc->lens);
    free(sc);
}

static bool
redis_is_noscript(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
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
    if (!redis_is_noscript(reply)) {
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

void
pb_redis_script(pb_redis *r, const char *script, pb_redis_fn fn, void *arg, int numkeys, int argc,
                const char **argv, const size_t *lens)
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
    pb_redis_command(r, redis_on_evalsha_reply, sc, sc->argc, sc->view, sc->lens);
}
