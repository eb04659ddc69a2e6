/* admin.c -- the admin process: the operators' page (web/) and JSON API (/api/) on admin.listen.
 *
 * One libevent loop with evhttp and one blocking Redis connection (redissync.c, TLS and
 * Sentinel as the workers'): an operator's request is a few bounded commands, and the
 * overview is read once per admin.refresh_ms by a timer and served from memory to every
 * viewer, so ten dashboards cost Redis what one does. When Redis is away the timer retries
 * every refresh, the page keeps its last figures and says "redis": "down"; requests that
 * need Redis answer 503. Dead letters go through deadletter.c, the code `planb dead` runs.
 *
 * Auth (adminauth.c): "Authorization: Bearer <key>" (scripts) or the planb_session cookie a
 * login sets (HttpOnly, SameSite=Strict). A cookie-authenticated POST also needs the session's
 * X-CSRF-Token header and, when the browser sends one, an Origin naming this host. Every
 * response carries a strict Content-Security-Policy. */
#include "planb/admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "planb/core.h"
#include "planb/deadletter.h"
#include "planb/keys.h"
#include "planb/log.h"
#include "planb/overview.h"
#include "planb/sentinel.h"

#define ADMIN_REDIS_MS        1000       /* connect and each command */
#define ADMIN_BODY_MAX        65536      /* a request body (login, actions) */
#define ADMIN_HEADERS_MAX     16384      /* request line and headers */
#define ADMIN_TIMEOUT_S       30         /* reading a request, writing a reply */
#define ADMIN_FILE_MAX        (4u << 20) /* a file of the page */
#define ADMIN_DEAD_PAGE_MAX   200        /* entries of one GET /api/dead */
#define ADMIN_QUEUE_SCAN      1000       /* a job is looked for among each end's this many */
#define ADMIN_LOGIN_FAILS_MAX 20         /* failed logins per 10 s before 429 */
#define ADMIN_COOKIE          "planb_session"
#define ADMIN_CSP                                                                                  \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

typedef struct admin {
    const pb_config *cfg;
    const unsigned char *secret;
    struct event_base *base;
    struct evhttp *http;
    struct event *tick;
    struct event *sig_term;
    struct event *sig_int;
    pb_redissync *rc; /* NULL while Redis is away */
    char redis_why[320];
    pb_overview *ov;
    char *overview; /* the last overview JSON, served to every viewer */
    char web_dir[PATH_MAX + 64];
    int login_fails;
    int64_t login_window_ms;
} admin;

/* Who a request speaks for. */
typedef struct admin_who {
    const char *name;
    pb_admin_role role;
    bool by_cookie; /* a browser: its POSTs need the CSRF token */
    char csrf[PB_ADMINAUTH_CSRF_MAX];
} admin_who;

/* ------------------------------------------------------------------------- Redis */

/* The connection, opened again when it was lost (bounded: this runs in the loop). */
static pb_redissync *
admin_redis(admin *a)
{
    if (a->rc != NULL)
        return a->rc;
    char where[300], why[300];
    a->rc = pb_sentinel_open_sync(a->cfg, ADMIN_REDIS_MS, where, sizeof(where), why, sizeof(why));
    if (a->rc == NULL) {
        if (strcmp(a->redis_why, why) != 0)
            pb_log(PB_LOG_WARN, "event=admin_redis_down at=%s why=\"%s\"", where, why);
        snprintf(a->redis_why, sizeof(a->redis_why), "%s", why);
    } else if (a->redis_why[0]) {
        pb_log(PB_LOG_INFO, "event=admin_redis_up at=%s", where);
        a->redis_why[0] = '\0';
    }
    return a->rc;
}

/* Drops a connection that failed a command (pb_redissync: it is dead after a failure). */
static void
admin_redis_check(admin *a)
{
    if (a->rc != NULL && pb_redissync_error(a->rc)[0] != '\0') {
        snprintf(a->redis_why, sizeof(a->redis_why), "%s", pb_redissync_error(a->rc));
        pb_log(PB_LOG_WARN, "event=admin_redis_down why=\"%s\"", a->redis_why);
        pb_redissync_free(a->rc);
        a->rc = NULL;
    }
}

static void
admin_rebuild_overview(admin *a)
{
    json_object *j = pb_overview_json(a->ov, a->rc != NULL, pb_wall_ms());
    free(a->overview);
    a->overview = pb_xstrdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
    json_object_put(j);
}

static void
admin_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    admin *a = arg;
    pb_redissync *c = admin_redis(a);
    char why[256];
    if (c != NULL && pb_overview_refresh(a->ov, c, why, sizeof(why)) != PB_OK) {
        admin_redis_check(a);
        pb_log(PB_LOG_WARN, "event=admin_overview_failed why=\"%s\"", why);
    }
    admin_rebuild_overview(a);
}

/* ------------------------------------------------------------------------- replies */

static void
admin_header(struct evhttp_request *req, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), name, value);
}

static void
admin_send(struct evhttp_request *req, int code, const char *type, const char *body, size_t len)
{
    admin_header(req, "Content-Type", type);
    admin_header(req, "Content-Security-Policy", ADMIN_CSP);
    admin_header(req, "X-Content-Type-Options", "nosniff");
    admin_header(req, "X-Frame-Options", "DENY");
    admin_header(req, "Referrer-Policy", "no-referrer");
    admin_header(req, "Cache-Control", "no-store");
    /* The headers and a body past the first segment leave in two writes: without TCP_NODELAY
     * the second waits for the client's delayed ACK (40 ms each overview, bench_admin). */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    const char *reason = code == 200   ? "OK"
                         : code == 204 ? "No Content"
                         : code == 302 ? "Found"
                         : code < 500  ? "Client Error"
                                       : "Server Error";
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

/* Sends j (and puts it). */
static void
admin_json(struct evhttp_request *req, int code, json_object *j)
{
    const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
    admin_send(req, code, "application/json", s, strlen(s));
    json_object_put(j);
}

/* {"error": {"code", "message"}} */
static void
admin_error(struct evhttp_request *req, int code, const char *err, const char *msg)
{
    json_object *e = json_object_new_object(), *o = json_object_new_object();
    json_object_object_add(o, "code", json_object_new_string(err));
    json_object_object_add(o, "message", json_object_new_string(msg));
    json_object_object_add(e, "error", o);
    admin_json(req, code, e);
}

static void
admin_redis_unavailable(admin *a, struct evhttp_request *req)
{
    char msg[400];
    snprintf(msg, sizeof(msg), "Redis is unreachable: %s",
             a->redis_why[0] ? a->redis_why : "a command failed");
    admin_error(req, 503, "redis_unavailable", msg);
}

/* ------------------------------------------------------------------------- auth */

/* The value of cookie name in the Cookie header, copied into out; false when absent. */
static bool
admin_cookie(struct evhttp_request *req, const char *name, char *out, size_t size)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
    size_t nlen = strlen(name);
    for (const char *p = h; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=' && len - nlen - 1 < size) {
            snprintf(out, size, "%.*s", (int)(len - nlen - 1), p + nlen + 1);
            return true;
        }
        p = end;
    }
    return false;
}

/* Fills w for a request that proves a key; false when it proves none. */
static bool
admin_auth(admin *a, struct evhttp_request *req, admin_who *w)
{
    const pb_admin_conf *ac = &a->cfg->admin;
    memset(w, 0, sizeof(*w));
    if (ac->n_keys == 0) { /* loopback only (config.c): the local operator */
        w->name = "local";
        w->role = PB_ADMIN_ADMIN;
        w->by_cookie = true;
        pb_adminauth_local_csrf(a->secret, w->csrf);
        return true;
    }
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        const pb_admin_key *k = pb_adminauth_key(ac, h + 7, strlen(h + 7));
        if (k == NULL)
            return false;
        w->name = k->name;
        w->role = k->role;
        return true;
    }
    char token[PB_ADMINAUTH_TOKEN_MAX];
    if (!admin_cookie(req, ADMIN_COOKIE, token, sizeof(token)))
        return false;
    const pb_admin_key *k = pb_adminauth_check(a->secret, ac, token, pb_wall_ms() / 1000, w->csrf);
    if (k == NULL)
        return false;
    w->name = k->name;
    w->role = k->role;
    w->by_cookie = true;
    return true;
}

/* A browser's POST came from this page: its CSRF token, and its Origin (when sent) names the
 * Host it was sent to. */
static bool
admin_same_origin(struct evhttp_request *req, const admin_who *w)
{
    if (!w->by_cookie)
        return true;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    if (!pb_adminauth_csrf_ok(w->csrf, evhttp_find_header(in, "X-CSRF-Token")))
        return false;
    const char *origin = evhttp_find_header(in, "Origin"), *host = evhttp_find_header(in, "Host");
    if (origin == NULL)
        return true;
    const char *rest = strncmp(origin, "http://", 7) == 0    ? origin + 7
                       : strncmp(origin, "https://", 8) == 0 ? origin + 8
                                                             : NULL;
    return rest != NULL && host != NULL && strcmp(rest, host) == 0;
}

/* {"name", "role", "csrf", "refresh_ms"}: the page polls the overview every refresh_ms. */
static json_object *
admin_session_json(const admin *a, const admin_who *w)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "name", json_object_new_string(w->name));
    json_object_object_add(j, "role",
                           json_object_new_string(w->role == PB_ADMIN_ADMIN ? "admin" : "viewer"));
    json_object_object_add(j, "csrf", w->by_cookie ? json_object_new_string(w->csrf) : NULL);
    json_object_object_add(j, "refresh_ms", json_object_new_int(a->cfg->admin.refresh_ms));
    return j;
}

/* The request body as JSON (an object), or NULL. */
static json_object *
admin_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0 || len > ADMIN_BODY_MAX)
        return NULL;
    char *body = pb_xstrndup((const char *)evbuffer_pullup(in, -1), len);
    json_object *j = json_tokener_parse(body);
    free(body);
    if (j != NULL && !json_object_is_type(j, json_type_object)) {
        json_object_put(j);
        return NULL;
    }
    return j;
}

static const char *
admin_str(json_object *o, const char *name)
{
    json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, name, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static void
admin_login(admin *a, struct evhttp_request *req)
{
    const pb_admin_conf *ac = &a->cfg->admin;
    int64_t now = pb_wall_ms();
    if (now - a->login_window_ms > 10000) {
        a->login_window_ms = now;
        a->login_fails = 0;
    }
    if (a->login_fails >= ADMIN_LOGIN_FAILS_MAX) {
        admin_header(req, "Retry-After", "10");
        admin_error(req, 429, "too_many_logins", "too many failed logins: wait 10 s");
        return;
    }
    json_object *body = admin_body(req);
    const char *key = admin_str(body, "key");
    const pb_admin_key *k = key && ac->n_keys ? pb_adminauth_key(ac, key, strlen(key)) : NULL;
    if (k == NULL) {
        json_object_put(body);
        if (ac->n_keys == 0) {
            admin_error(req, 400, "no_keys", "admin.keys is empty: no login is needed");
            return;
        }
        a->login_fails++;
        pb_log(PB_LOG_WARN, "event=admin_login_refused");
        admin_error(req, 401, "bad_key", "that key is not one of admin.keys");
        return;
    }
    json_object_put(body);
    unsigned char nonce[16];
    if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
        admin_error(req, 500, "no_random", "OpenSSL could not draw a session nonce");
        return;
    }
    char token[PB_ADMINAUTH_TOKEN_MAX], cookie[PB_ADMINAUTH_TOKEN_MAX + 128];
    pb_adminauth_session(a->secret, k, now / 1000, ac->session_ttl_s, nonce, token);
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict",
             ADMIN_COOKIE, token, ac->session_ttl_s);
    admin_header(req, "Set-Cookie", cookie);
    admin_who w = {.name = k->name, .role = k->role, .by_cookie = true};
    pb_adminauth_check(a->secret, ac, token, now / 1000, w.csrf);
    pb_log(PB_LOG_INFO, "event=admin_login who=%s role=%s", k->name,
           k->role == PB_ADMIN_ADMIN ? "admin" : "viewer");
    admin_json(req, 200, admin_session_json(a, &w));
}

/* ------------------------------------------------------------------------- actions */

/* Logs an operator's action and announces it on planb:alerts. */
static void
admin_announce(admin *a, const admin_who *w, json_object *alert, const char *what,
               const char *target)
{
    pb_log(PB_LOG_INFO, "event=admin_action who=%s action=%s target=%s", w->name, what, target);
    json_object_object_add(alert, "by", json_object_new_string(w->name));
    json_object_object_add(alert, "at_ms", json_object_new_int64(pb_wall_ms()));
    char *ch = pb_key_channel_alerts(a->cfg->prefix);
    redisReply *r = pb_redissync_command(
        a->rc, "PUBLISH %s %s", ch, json_object_to_json_string_ext(alert, JSON_C_TO_STRING_PLAIN));
    freeReplyObject(r);
    free(ch);
    json_object_put(alert);
}

static int
admin_queue_index(const admin *a, const char *name)
{
    for (size_t i = 0; i < a->cfg->n_queues; i++)
        if (strcmp(a->cfg->queues[i], name) == 0)
            return (int)i;
    return -1;
}

/* POST /api/queues/<q>/pause and /resume: <p>:paused, which workers and fronts poll. */
static void
admin_pause(admin *a, struct evhttp_request *req, const admin_who *w, const char *queue, bool pause)
{
    if (admin_queue_index(a, queue) < 0) {
        admin_error(req, 404, "unknown_queue", "no such queue in the config");
        return;
    }
    char *key = pb_xasprintf("%s:paused", a->cfg->prefix);
    json_object *state = json_object_new_object();
    json_object_object_add(state, "by", json_object_new_string(w->name));
    json_object_object_add(state, "at_ms", json_object_new_int64(pb_wall_ms()));
    redisReply *r =
        pause ? pb_redissync_command(a->rc, "HSET %s %s %s", key, queue,
                                     json_object_to_json_string_ext(state, JSON_C_TO_STRING_PLAIN))
              : pb_redissync_command(a->rc, "HDEL %s %s", key, queue);
    json_object_put(state);
    free(key);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        admin_redis_check(a);
        admin_redis_unavailable(a, req);
        return;
    }
    freeReplyObject(r);
    json_object *alert = json_object_new_object();
    json_object_object_add(alert, "type", json_object_new_string("queue"));
    json_object_object_add(alert, "queue", json_object_new_string(queue));
    json_object_object_add(alert, "state", json_object_new_string(pause ? "paused" : "resumed"));
    admin_announce(a, w, alert, pause ? "queue_pause" : "queue_resume", queue);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "queue", json_object_new_string(queue));
    json_object_object_add(j, "paused", json_object_new_boolean(pause));
    admin_on_tick(-1, 0, a); /* the next overview shows it at once */
    admin_json(req, 200, j);
}

/* POST /api/models/<m>/breaker {"state": "open"|"closed"|"auto"}: forced in the breaker hash. */
static void
admin_breaker(admin *a, struct evhttp_request *req, const admin_who *w, const char *model)
{
    if (pb_config_model_index(a->cfg, model) < 0) {
        admin_error(req, 404, "unknown_model", "no such model in the config");
        return;
    }
    json_object *body = admin_body(req);
    const char *state = admin_str(body, "state");
    if (state == NULL || (strcmp(state, "open") != 0 && strcmp(state, "closed") != 0 &&
                          strcmp(state, "auto") != 0)) {
        json_object_put(body);
        admin_error(req, 400, "bad_state",
                    "the body must be {\"state\": \"open\"|\"closed\"|\"auto\"}");
        return;
    }
    bool clear = strcmp(state, "auto") == 0;
    char *key = pb_key_breaker(a->cfg->prefix, model);
    char at[32];
    snprintf(at, sizeof(at), "%lld", (long long)pb_wall_ms());
    redisReply *r = clear
                        ? pb_redissync_command(a->rc, "HDEL %s forced forced_by forced_at", key)
                        : pb_redissync_command(a->rc, "HSET %s forced %s forced_by %s forced_at %s",
                                               key, state, w->name, at);
    free(key);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        json_object_put(body);
        admin_redis_check(a);
        admin_redis_unavailable(a, req);
        return;
    }
    freeReplyObject(r);
    json_object *alert = json_object_new_object();
    json_object_object_add(alert, "type", json_object_new_string("breaker_forced"));
    json_object_object_add(alert, "model", json_object_new_string(model));
    json_object_object_add(alert, "forced", clear ? NULL : json_object_new_string(state));
    admin_announce(a, w, alert,
                   clear                        ? "breaker_auto"
                   : strcmp(state, "open") == 0 ? "breaker_open"
                                                : "breaker_closed",
                   model);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "model", json_object_new_string(model));
    json_object_object_add(j, "forced", clear ? NULL : json_object_new_string(state));
    json_object_put(body);
    admin_on_tick(-1, 0, a);
    admin_json(req, 200, j);
}

/* ------------------------------------------------------------------------- dead letters */

/* The query parameter name as a non-negative integer, def when absent. */
static long long
admin_query_int(const struct evhttp_uri *uri, const char *name, long long def)
{
    const char *q = evhttp_uri_get_query(uri);
    struct evkeyvalq params;
    long long v = def;
    if (q != NULL && evhttp_parse_query_str(q, &params) == 0) {
        const char *s = evhttp_find_header(&params, name);
        char *end = NULL;
        if (s != NULL) {
            long long n = strtoll(s, &end, 10);
            v = end != s && *end == '\0' && n >= 0 ? n : -1;
        }
        evhttp_clear_headers(&params);
    }
    return v;
}

static json_object *
admin_dead_summary(json_object *e, long long n, int64_t now)
{
    json_object *s = json_object_new_object(), *at;
    json_object_object_add(s, "n", json_object_new_int64(n));
    const char *fields[] = {"id", "error", "reason", "worker"};
    for (size_t i = 0; i < 4; i++) {
        const char *v = pb_dead_field(e, fields[i]);
        json_object_object_add(s, fields[i], v ? json_object_new_string(v) : NULL);
    }
    json_object_object_add(s, "age_ms",
                           e && json_object_object_get_ex(e, "at_ms", &at)
                               ? json_object_new_int64(now - json_object_get_int64(at))
                               : NULL);
    return s;
}

static void
admin_dead_list(admin *a, struct evhttp_request *req, const struct evhttp_uri *uri)
{
    long long offset = admin_query_int(uri, "offset", 0), limit = admin_query_int(uri, "limit", 50);
    if (offset < 0 || limit < 1 || limit > ADMIN_DEAD_PAGE_MAX) {
        admin_error(req, 400, "bad_page", "offset >= 0 and limit 1..200");
        return;
    }
    pb_dead d;
    pb_dead_init(&d, a->rc, a->cfg);
    long long total;
    redisReply *r = NULL;
    if (pb_dead_count(&d, &total) != PB_DEAD_DONE ||
        (r = pb_dead_range(&d, offset, limit)) == NULL) {
        pb_dead_fini(&d);
        admin_redis_check(a);
        admin_redis_unavailable(a, req);
        return;
    }
    json_object *j = json_object_new_object(), *list = json_object_new_array();
    int64_t now = pb_wall_ms();
    for (size_t i = 0; i < r->elements; i++) {
        json_object *e = json_tokener_parse(r->element[i]->str);
        json_object_array_add(list, admin_dead_summary(e, offset + (long long)i, now));
        json_object_put(e);
    }
    freeReplyObject(r);
    pb_dead_fini(&d);
    json_object_object_add(j, "total", json_object_new_int64(total));
    json_object_object_add(j, "offset", json_object_new_int64(offset));
    json_object_object_add(j, "entries", list);
    admin_json(req, 200, j);
}

/* The outcome of a retry, kept for the reply. */
typedef struct admin_retry {
    char id[PB_KEY_WORKER_ID_MAX + 128];
    char queue[256];
} admin_retry;

static void
admin_note_retry(void *arg, const char *id, const char *queue_key, pb_dead_rc rc)
{
    admin_retry *r = arg;
    if (rc != PB_DEAD_DONE)
        return;
    snprintf(r->id, sizeof(r->id), "%s", id);
    /* The reply names the queue as the config does: "default", not "planb:q:default". */
    const char *name = strstr(queue_key, ":q:");
    snprintf(r->queue, sizeof(r->queue), "%s", name ? name + 3 : queue_key);
}

/* GET /api/dead/<sel>, POST /api/dead/<sel>/retry, POST /api/dead/retry, POST /api/dead/purge. */
static void
admin_dead(admin *a, struct evhttp_request *req, const admin_who *w, const char *sel,
           const char *verb)
{
    bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
    pb_dead d;
    pb_dead_init(&d, a->rc, a->cfg);
    pb_dead_rc rc;
    json_object *j = json_object_new_object();
    if (post && strcmp(sel, "purge") == 0 && verb == NULL) {
        long long n = 0;
        if ((rc = pb_dead_purge(&d, &n)) == PB_DEAD_DONE) {
            json_object_object_add(j, "purged", json_object_new_int64(n));
            pb_log(PB_LOG_INFO, "event=admin_action who=%s action=dead_purge purged=%lld", w->name,
                   n);
        }
    } else if (post && strcmp(sel, "retry") == 0 && verb == NULL) {
        json_object *body = admin_body(req);
        const char *reason = admin_str(body, "reason");
        long long done = 0, kept = 0;
        admin_retry last = {0};
        rc = pb_dead_retry_all(&d, reason && *reason ? reason : NULL, NULL, admin_note_retry, &last,
                               &done, &kept);
        if (rc != PB_DEAD_FAILED) {
            rc = PB_DEAD_DONE;
            json_object_object_add(j, "retried", json_object_new_int64(done));
            json_object_object_add(j, "left", json_object_new_int64(kept));
            pb_log(PB_LOG_INFO,
                   "event=admin_action who=%s action=dead_retry_all retried=%lld left=%lld",
                   w->name, done, kept);
        }
        json_object_put(body);
    } else {
        char *entry = NULL;
        rc = pb_dead_find(&d, sel, false, &entry);
        if (rc == PB_DEAD_DONE && post) {
            admin_retry done = {0};
            rc = pb_dead_retry_entry(&d, entry, NULL, admin_note_retry, &done);
            if (rc == PB_DEAD_DONE) {
                json_object_object_add(j, "retried", json_object_new_int(1));
                json_object_object_add(j, "id", json_object_new_string(done.id));
                json_object_object_add(j, "queue", json_object_new_string(done.queue));
                pb_log(PB_LOG_INFO, "event=admin_action who=%s action=dead_retry id=%s", w->name,
                       done.id);
            }
        } else if (rc == PB_DEAD_DONE) {
            json_object_put(j);
            j = json_tokener_parse(entry);
            if (j == NULL) {
                j = json_object_new_object();
                json_object_object_add(j, "raw", json_object_new_string(entry));
            }
        }
        free(entry);
    }
    pb_dead_fini(&d);
    if (rc == PB_DEAD_FAILED) {
        json_object_put(j);
        admin_redis_check(a);
        admin_redis_unavailable(a, req);
    } else if (rc == PB_DEAD_ABSENT) {
        json_object_put(j);
        admin_error(req, 404, "no_dead_letter", "no such dead letter (retried or purged?)");
    } else if (rc == PB_DEAD_NOT_TEXT) {
        json_object_put(j);
        admin_error(req, 409, "not_retryable", "its job is not text: see the entry");
    } else {
        admin_json(req, 200, j);
    }
}

/* ------------------------------------------------------------------------- jobs */

/* The job of list key whose id is id among entries [start, stop], parsed (caller puts), or NULL;
 * *failed on a Redis failure. */
static json_object *
admin_scan_list(admin *a, const char *key, long long start, long long stop, const char *id,
                bool *failed)
{
    redisReply *r = pb_redissync_command(a->rc, "LRANGE %s %lld %lld", key, start, stop);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        *failed = r == NULL;
        freeReplyObject(r);
        return NULL;
    }
    json_object *hit = NULL;
    for (size_t i = 0; i < r->elements && hit == NULL; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING || strstr(r->element[i]->str, id) == NULL)
            continue;
        json_object *j = json_tokener_parse(r->element[i]->str);
        const char *jid = admin_str(j, "id");
        if (jid && strcmp(jid, id) == 0)
            hit = j;
        else
            json_object_put(j);
    }
    freeReplyObject(r);
    return hit;
}

/* GET /api/jobs/<id>: its result, and where it is: in a worker's in-flight list, among the
 * ADMIN_QUEUE_SCAN oldest or newest of a queue, in the dead letters. */
static void
admin_job(admin *a, struct evhttp_request *req, const char *id)
{
    bool failed = false;
    json_object *j = json_object_new_object(), *result = NULL, *job = NULL;
    const char *state = "unknown", *where = NULL;
    char *rkey = pb_key_result(a->cfg->prefix, id);
    redisReply *r = pb_redissync_command(a->rc, "GET %s", rkey);
    free(rkey);
    failed = r == NULL;
    if (r && r->type == REDIS_REPLY_STRING)
        result = json_tokener_parse(r->str);
    freeReplyObject(r);
    char *wkey = pb_key_workers(a->cfg->prefix);
    redisReply *ws = failed ? NULL : pb_redissync_command(a->rc, "ZRANGE %s 0 1023", wkey);
    free(wkey);
    failed = failed || ws == NULL;
    for (size_t i = 0; ws && ws->type == REDIS_REPLY_ARRAY && i < ws->elements && !job; i++) {
        char *ikey = pb_key_inflight(a->cfg->prefix, ws->element[i]->str);
        job = admin_scan_list(a, ikey, 0, -1, id, &failed);
        free(ikey);
        if (job) {
            state = "in_flight";
            json_object_object_add(j, "worker", json_object_new_string(ws->element[i]->str));
        }
    }
    freeReplyObject(ws);
    for (size_t q = 0; q < a->cfg->n_queues && !job && !failed; q++) {
        char *qkey = pb_key_queue(a->cfg->prefix, a->cfg->queues[q]);
        job = admin_scan_list(a, qkey, -ADMIN_QUEUE_SCAN, -1, id, &failed);
        if (!job && !failed)
            job = admin_scan_list(a, qkey, 0, ADMIN_QUEUE_SCAN - 1, id, &failed);
        free(qkey);
        if (job) {
            state = "queued";
            where = a->cfg->queues[q];
        }
    }
    json_object *dead = NULL;
    if (!job && !failed) {
        pb_dead d;
        pb_dead_init(&d, a->rc, a->cfg);
        char *entry = NULL;
        pb_dead_rc rc = pb_dead_find(&d, id, true, &entry);
        failed = rc == PB_DEAD_FAILED;
        if (entry) {
            dead = json_tokener_parse(entry);
            state = "dead";
        }
        free(entry);
        pb_dead_fini(&d);
    }
    if (failed) {
        json_object_put(j);
        json_object_put(result);
        json_object_put(job);
        json_object_put(dead);
        admin_redis_check(a);
        admin_redis_unavailable(a, req);
        return;
    }
    if (!job && !dead && result)
        state = "finished";
    json_object_object_add(j, "id", json_object_new_string(id));
    json_object_object_add(j, "state", json_object_new_string(state));
    json_object_object_add(j, "queue", where ? json_object_new_string(where) : NULL);
    json_object_object_add(j, "result", result);
    json_object_object_add(j, "dead", dead);
    json_object_object_add(j, "job", job);
    if (strcmp(state, "unknown") == 0) {
        json_object_put(j);
        admin_error(req, 404, "unknown_job",
                    "no result, not in flight, not among the oldest or newest 1000 of a queue, "
                    "not a dead letter");
        return;
    }
    admin_json(req, 200, j);
}

/* ------------------------------------------------------------------------- static files */

static const char *
admin_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"},
                 {".json", "application/json"},
                 {".txt", "text/plain; charset=utf-8"}};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* Serves web_dir/rel: names of [A-Za-z0-9._/-] only, no "..", known types only. */
static void
admin_file(admin *a, struct evhttp_request *req, const char *rel)
{
    const char *type = admin_content_type(rel);
    if (type == NULL || strstr(rel, "..") || strstr(rel, "//") ||
        strspn(rel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") !=
            strlen(rel)) {
        admin_error(req, 404, "not_found", "no such page");
        return;
    }
    char path[PATH_MAX + 256];
    snprintf(path, sizeof(path), "%s/%s", a->web_dir, rel);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size > ADMIN_FILE_MAX) {
        if (f)
            fclose(f);
        admin_error(req, 404, "not_found", "no such page");
        return;
    }
    char *buf = pb_xmalloc((size_t)st.st_size + 1);
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    admin_send(req, 200, type, buf, n);
    free(buf);
}

/* ------------------------------------------------------------------------- routing */

/* Splits "/api/<a>/<b>/<c>" into up to 3 decoded segments (owned; caller frees). */
static int
admin_segments(const char *path, char *seg[3])
{
    int n = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p && n < 4) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *raw = pb_xstrndup(p, len);
        if (n < 3)
            seg[n] = evhttp_uridecode(raw, 0, NULL);
        free(raw);
        n++;
        p = end ? end + 1 : p + len;
    }
    return n;
}

static void
admin_api(admin *a, struct evhttp_request *req, const struct evhttp_uri *uri, const char *path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool post = cmd == EVHTTP_REQ_POST;
    if (strcmp(path, "/api/login") == 0 && post) {
        admin_login(a, req);
        return;
    }
    admin_who w;
    if (!admin_auth(a, req, &w)) {
        admin_error(req, 401, "unauthorized", "log in, or send Authorization: Bearer <key>");
        return;
    }
    if (strcmp(path, "/api/logout") == 0 && post) {
        admin_header(req, "Set-Cookie",
                     ADMIN_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
        admin_send(req, 204, "application/json", "", 0);
        return;
    }
    if (strcmp(path, "/api/session") == 0 && !post) {
        admin_json(req, 200, admin_session_json(a, &w));
        return;
    }
    if (strcmp(path, "/api/overview") == 0 && !post) {
        if (a->overview == NULL)
            admin_rebuild_overview(a);
        admin_send(req, 200, "application/json", a->overview, strlen(a->overview));
        return;
    }
    if (post && w.role != PB_ADMIN_ADMIN) {
        admin_error(req, 403, "forbidden", "this key is a viewer's: actions need an admin key");
        return;
    }
    if (post && !admin_same_origin(req, &w)) {
        admin_error(req, 403, "csrf", "missing or wrong X-CSRF-Token (or a foreign Origin)");
        return;
    }
    char *seg[3] = {NULL, NULL, NULL};
    int n = admin_segments(path + 4, seg); /* after "/api" */
    bool known = true;
    if (admin_redis(a) == NULL) {
        admin_redis_unavailable(a, req);
    } else if (n == 2 && strcmp(seg[0], "jobs") == 0 && !post) {
        admin_job(a, req, seg[1]);
    } else if (n == 1 && strcmp(seg[0], "dead") == 0 && !post) {
        admin_dead_list(a, req, uri);
    } else if (n == 2 && strcmp(seg[0], "dead") == 0 &&
               (post == (strcmp(seg[1], "retry") == 0 || strcmp(seg[1], "purge") == 0))) {
        admin_dead(a, req, &w, seg[1], NULL);
    } else if (n == 3 && strcmp(seg[0], "dead") == 0 && strcmp(seg[2], "retry") == 0 && post) {
        admin_dead(a, req, &w, seg[1], "retry");
    } else if (n == 3 && strcmp(seg[0], "queues") == 0 && post &&
               (strcmp(seg[2], "pause") == 0 || strcmp(seg[2], "resume") == 0)) {
        admin_pause(a, req, &w, seg[1], strcmp(seg[2], "pause") == 0);
    } else if (n == 3 && strcmp(seg[0], "models") == 0 && strcmp(seg[2], "breaker") == 0 && post) {
        admin_breaker(a, req, &w, seg[1]);
    } else {
        known = false;
    }
    if (!known)
        admin_error(req, 404, "not_found", "no such API endpoint (see docs/admin.md)");
    for (int i = 0; i < 3; i++)
        free(seg[i]);
}

static void
admin_on_request(struct evhttp_request *req, void *arg)
{
    admin *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || *path == '\0')
        path = "/";
    if (strncmp(path, "/api/", 5) == 0) {
        admin_api(a, req, uri, path);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        admin_error(req, 405, "method_not_allowed", "the page is read with GET");
        return;
    }
    if (strcmp(path, "/") == 0)
        admin_file(a, req, "index.html");
    else if (strcmp(path, "/login") == 0)
        admin_file(a, req, "login.html");
    else if (strncmp(path, "/static/", 8) == 0)
        admin_file(a, req, path + 1);
    else
        admin_error(req, 404, "not_found", "no such page");
}

/* ------------------------------------------------------------------------- process */

/* admin.web_dir, else share/planb/web beside the binary (an install), else the source tree. */
static void
admin_find_web_dir(admin *a)
{
    if (a->cfg->admin.web_dir) {
        snprintf(a->web_dir, sizeof(a->web_dir), "%s", a->cfg->admin.web_dir);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        char probe[PATH_MAX + 64];
        snprintf(probe, sizeof(probe), "%s/../share/planb/web/index.html", exe);
        if (access(probe, R_OK) == 0) {
            snprintf(a->web_dir, sizeof(a->web_dir), "%s/../share/planb/web", exe);
            return;
        }
    }
    snprintf(a->web_dir, sizeof(a->web_dir), "%s", PB_SOURCE_WEB_DIR);
}

static void
admin_on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(((admin *)arg)->base, NULL);
}

/* Binds admin.listen with SO_REUSEPORT, so a reload's new admin binds while the old one
 * lets go. */
static int
admin_bind(admin *a)
{
    const char *addr = a->cfg->admin.listen, *colon = strrchr(addr, ':');
    char host[256];
    int hl = (int)(colon - addr);
    if (addr[0] == '[')
        snprintf(host, sizeof(host), "%.*s", hl - 2, addr + 1);
    else
        snprintf(host, sizeof(host), "%.*s", hl, addr);
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICSERV;
    if (evutil_getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
        pb_log(PB_LOG_ERROR, "event=admin_listen_failed listen=%s why=\"cannot resolve\"", addr);
        return PB_ERR;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        pb_log_errno("event=admin_listen_failed listen=%s", addr);
        if (fd >= 0)
            close(fd);
        evutil_freeaddrinfo(ai);
        return PB_ERR;
    }
    evutil_freeaddrinfo(ai);
    if (evhttp_accept_socket(a->http, fd) != 0) {
        close(fd);
        return PB_ERR;
    }
    pb_log(PB_LOG_INFO, "event=admin_listen listen=%s keys=%zu web_dir=%s", addr,
           a->cfg->admin.n_keys, a->web_dir);
    return PB_OK;
}

int
pb_admin_run(const pb_config *cfg, const unsigned char *secret)
{
    pb_log_set_role("admin");
    if (!pb_core_child_start())
        return 0;
    admin *a = pb_xcalloc(1, sizeof(*a));
    a->cfg = cfg;
    a->secret = secret;
    a->base = event_base_new();
    a->http = evhttp_new(a->base);
    a->ov = pb_overview_new(cfg);
    pb_assert(a->base && a->http);
    admin_find_web_dir(a);
    evhttp_set_max_body_size(a->http, ADMIN_BODY_MAX);
    evhttp_set_max_headers_size(a->http, ADMIN_HEADERS_MAX);
    evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(a->http, admin_on_request, a);
    int code = 1; /* a port in use: respawned later; the service runs on without its page */
    if (admin_bind(a) == PB_OK) {
        a->sig_term = evsignal_new(a->base, SIGTERM, admin_on_signal, a);
        a->sig_int = evsignal_new(a->base, SIGINT, admin_on_signal, a);
        event_add(a->sig_term, NULL);
        event_add(a->sig_int, NULL);
        a->tick = event_new(a->base, -1, EV_PERSIST, admin_on_tick, a);
        struct timeval tv = {cfg->admin.refresh_ms / 1000, (cfg->admin.refresh_ms % 1000) * 1000};
        event_add(a->tick, &tv);
        admin_on_tick(-1, 0, a);
        event_base_dispatch(a->base);
        code = 0;
    }
    if (a->tick)
        event_free(a->tick);
    if (a->sig_term)
        event_free(a->sig_term);
    if (a->sig_int)
        event_free(a->sig_int);
    evhttp_free(a->http);
    event_base_free(a->base);
    pb_redissync_free(a->rc);
    pb_overview_free(a->ov);
    free(a->overview);
    free(a);
    return code;
}
