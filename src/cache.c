/* cache.c -- exact-match answer cache in Redis, shared by every worker and host.
 *
 * Owns the cache key (SHA-256 of a canonical request), the entry format
 * (cache_put.lua) and the herd lock that keeps identical jobs from calling
 * upstream more than once at a time (cache_get.lua, cache_unlock.lua).
 *
 * API / life of an op (one per job that does not skip the cache):
 *   pb_cache_begin   one cache_get call: a fresh entry is a hit; otherwise the
 *                    job takes the key's lock (PX = its remaining deadline)
 *                    and leads, or finds it held and waits.
 *   waiting          the op polls cache_get (20 ms doubling to 320 ms, never
 *                    past the deadline): the holder's stored answer is a hit
 *                    ("coalesced"); a freed lock makes this job the leader; a
 *                    "failed:" marker left by the job it waited on, naming
 *                    every model this job may use, means that chain was just
 *                    spent (verdict failed: stale or degraded, no upstream
 *                    call); a marker that does not cover our chain (another
 *                    route or floor) lets the job run without the lock. Jobs
 *                    that did not wait ignore markers and take the lock. At the deadline it reports
 * "lead" with whatever stale entry it saw; the chain then has no time left and answers stale or
 * degraded. pb_cache_end     the leader stores its answer and drops the lock in one script, or
 * leaves the failed marker; fire-and-forget. A Redis outage during a lookup is a plain miss: the
 * cache never blocks a job. Ops hold no pointer into the job; the job holds the op and ends it. */
#include "planb/cache.h"

#include <json-c/json.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

#define CACHE_POLL_MIN_MS 20   /* first wait for a lock holder: most answers take longer */
#define CACHE_POLL_MAX_MS 320  /* later polls: bounds both latency and Redis load */
#define CACHE_FAILED_MS   1000 /* a spent chain's marker outlives the longest poll interval */
#define CACHE_LOCK_SLACK  100  /* ms past the leader's deadline before its lock expires */
#define CACHE_ENTRY_MAX   (16 * 1024 * 1024) /* an entry larger than this is ignored */
#define CACHE_CANON_TAG   "planb-cache-v3"   /* bump when the canonical form changes */
#define CACHE_MARKER_MAX  2048               /* "failed:" + 16 names of <= 64 chars + commas */

struct pb_cache {
    struct event_base *base;
    const pb_config *cfg;
    pb_redis *r;       /* where entries live */
    bool own_conn;     /* r is ours (cache.redis set) */
    bool closing;      /* pending replies end silently */
    char *worker_id;   /* lock tokens start with it */
    char *workers_key; /* <p>:workers when entries share the queue's Redis, else NULL */
    uint64_t next_tok; /* makes each token unique in this process */
};

struct pb_cache_op {
    pb_cache *c;
    char *key, *lock_key; /* owned */
    char token[192];      /* "<worker>:<connection ups>:<n>" */
    char *chain;          /* ",model,model," of the models this job may use */
    bool refresh;
    int max_tier;
    int64_t deadline_mono_ms;
    bool pending;           /* a cache_get reply is outstanding */
    bool ended;             /* pb_cache_end ran while pending: the reply frees the op */
    bool done;              /* fn was called */
    bool leader;            /* holds the lock */
    bool waited;            /* polled at least once (a hit is then coalesced) */
    int poll_ms;            /* next poll interval */
    int64_t since_redis_ms; /* Redis time when the wait began (0: not waiting) */
    struct event *timer;
    pb_cache_entry stale; /* best stale entry seen */
    pb_cache_fn fn;
    void *arg;
};

/* --------------------------------------------------------------- the key */

/* Feeds one tagged, length-prefixed field: no two different requests serialise alike. */
static void
cache_feed(EVP_MD_CTX *md, char tag, const char *s, size_t n)
{
    char head[32];
    int h = snprintf(head, sizeof(head), "%c%zu:", tag, n);
    EVP_DigestUpdate(md, head, (size_t)h);
    EVP_DigestUpdate(md, s, n);
}

static void
cache_canon_feed(void *arg, char tag, const char *s, size_t len)
{
    cache_feed(arg, tag, s, len);
}

/* The canonical form: a version tag, the tenant (or "absent"), the provider types the job's
 * chain spans (an answer through Bedrock, which drops what Converse lacks, must not serve a
 * job whose chain only speaks OpenAI's dialect), then pb_request_canon: every message's role,
 * text, parts, tool calls, tool_call_id and name in order, and every param (tools,
 * response_format, stop, seed, images, ...) in a fixed order. Not the id, meta, route,
 * models, deadline, critical or reply as such: they change who may answer or how the result
 * is delivered, not what the answer is. */
void
pb_cache_key(const pb_request *req, unsigned provider_types, char out[PB_CACHE_KEY_LEN + 1])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    pb_assert(md != NULL);
    pb_assert(EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
    cache_feed(md, 'v', CACHE_CANON_TAG, strlen(CACHE_CANON_TAG));
    if (req->tenant)
        cache_feed(md, 't', req->tenant, strlen(req->tenant));
    else
        cache_feed(md, 'n', "", 0);
    char types[16];
    int nt = snprintf(types, sizeof(types), "%x", provider_types);
    cache_feed(md, 'p', types, (size_t)nt);
    pb_request_canon(req, cache_canon_feed, md);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    pb_assert(EVP_DigestFinal_ex(md, d, &n) == 1 && n * 2 == PB_CACHE_KEY_LEN);
    EVP_MD_CTX_free(md);
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ------------------------------------------------------------- the object */

pb_cache *
pb_cache_new(struct event_base *base, const pb_config *cfg, pb_redis *queue_conn,
             const char *worker_id)
{
    pb_cache *c = pb_xcalloc(1, sizeof(*c));
    c->base = base;
    c->cfg = cfg;
    c->worker_id = pb_xstrdup(worker_id);
    if (cfg->cache_redis) {
        c->r = pb_redis_new(base, cfg->cache_redis, "cache");
        c->own_conn = true;
    } else {
        c->r = queue_conn;
        c->workers_key = pb_key_workers(cfg->prefix);
    }
    return c;
}

void
pb_cache_close(pb_cache *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    if (c->own_conn)
        pb_redis_free(c->r);
    c->r = NULL;
}

pb_redis *
pb_cache_conn(pb_cache *c)
{
    return c->r;
}

void
pb_cache_free(pb_cache *c)
{
    if (c == NULL)
        return;
    pb_cache_close(c);
    free(c->worker_id);
    free(c->workers_key);
    free(c);
}

void
pb_cache_entry_free(pb_cache_entry *e)
{
    if (e == NULL)
        return;
    free(e->content);
    free(e->model);
    free(e->tool_calls);
    free(e->refusal);
    memset(e, 0, sizeof(*e));
}

/* The answer's "message" extras {tool_calls, refusal, finish_reason} (a JSON text field,
 * absent in entries of plain text answers). */
static void
cache_parse_message(json_object *o, pb_cache_entry *e)
{
    static const char *const reasons[] = {"stop", "tool_calls", "content_filter"};
    json_object *v, *m = NULL, *f;
    e->finish_reason = "stop";
    if (!json_object_object_get_ex(o, "message", &v) || !json_object_is_type(v, json_type_string))
        return;
    m = json_tokener_parse(json_object_get_string(v));
    if (json_object_object_get_ex(m, "tool_calls", &f) && json_object_is_type(f, json_type_array))
        e->tool_calls = pb_xstrdup(json_object_to_json_string_ext(
            f, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    if (json_object_object_get_ex(m, "refusal", &f) && json_object_is_type(f, json_type_string))
        e->refusal = pb_xstrdup(json_object_get_string(f));
    if (json_object_object_get_ex(m, "finish_reason", &f) &&
        json_object_is_type(f, json_type_string))
        for (size_t i = 0; i < sizeof(reasons) / sizeof(*reasons); i++)
            if (strcmp(json_object_get_string(f), reasons[i]) == 0)
                e->finish_reason = reasons[i];
    json_object_put(m);
}

/* Reads an entry's JSON (any bytes); false when it is not one planb wrote. */
static bool
cache_parse_entry(const char *s, size_t len, int64_t age_s, pb_cache_entry *e)
{
    memset(e, 0, sizeof(*e));
    if (len == 0 || len > CACHE_ENTRY_MAX)
        return false;
    json_tokener *tok = json_tokener_new();
    pb_assert(tok != NULL);
    json_object *o = json_tokener_parse_ex(tok, s, (int)len), *v, *usage = NULL;
    json_tokener_free(tok);
    bool ok = json_object_is_type(o, json_type_object) &&
              json_object_object_get_ex(o, "content", &v) &&
              json_object_is_type(v, json_type_string);
    if (ok) {
        e->content = pb_xstrdup(json_object_get_string(v));
        e->model = pb_xstrdup(json_object_object_get_ex(o, "model", &v) &&
                                      json_object_is_type(v, json_type_string)
                                  ? json_object_get_string(v)
                                  : "");
        e->tier = json_object_object_get_ex(o, "tier", &v) ? json_object_get_int(v) : 0;
        json_object_object_get_ex(o, "usage", &usage);
        e->prompt_tokens = e->completion_tokens = -1;
        if (json_object_object_get_ex(usage, "prompt_tokens", &v) &&
            json_object_is_type(v, json_type_int))
            e->prompt_tokens = (long)json_object_get_int64(v);
        if (json_object_object_get_ex(usage, "completion_tokens", &v) &&
            json_object_is_type(v, json_type_int))
            e->completion_tokens = (long)json_object_get_int64(v);
        e->age_s = age_s;
        cache_parse_message(o, e);
        if (e->content[0] == '\0' && e->tool_calls == NULL && e->refusal == NULL) {
            pb_cache_entry_free(e);
            ok = false;
        }
    }
    json_object_put(o);
    return ok;
}

/* ---------------------------------------------------------------- the op */

static void cache_send(pb_cache_op *op);

static void
cache_op_free(pb_cache_op *op)
{
    if (op->timer)
        event_free(op->timer);
    pb_cache_entry_free(&op->stale);
    free(op->key);
    free(op->lock_key);
    free(op->chain);
    free(op);
}

/* Hands the outcome to the job; the op stays until pb_cache_end (it holds the lock). */
static void
cache_report(pb_cache_op *op, pb_cache_verdict v, pb_cache_entry *hit)
{
    pb_cache_outcome o = {.verdict = v, .coalesced = op->waited && v == PB_CACHE_HIT};
    if (hit)
        o.hit = *hit;
    o.stale = op->stale;
    memset(&op->stale, 0, sizeof(op->stale));
    op->done = true;
    op->fn(&o, op->arg);
}

/* True when the failed marker ("failed:<ms>:,a,b,") names every model in our chain. */
static bool
cache_marker_covers(const char *marker, const char *chain)
{
    const char *p = chain; /* ",a,b," */
    while (p[0] == ',' && p[1] != '\0') {
        const char *end = strchr(p + 1, ',');
        if (end == NULL)
            break;
        char name[CACHE_MARKER_MAX];
        int n = snprintf(name, sizeof(name), "%.*s", (int)(end - p + 1), p);
        if (n <= 0 || strstr(marker, name) == NULL)
            return false;
        p = end;
    }
    return true;
}

static void
cache_on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cache_send(arg);
}

/* Waits for the lock holder, or reports "lead" once the deadline leaves no time to wait. */
static void
cache_wait(pb_cache_op *op)
{
    int64_t left = op->deadline_mono_ms - pb_mono_ms();
    if (left <= CACHE_POLL_MIN_MS) {
        cache_report(op, PB_CACHE_LEAD, NULL);
        return;
    }
    int64_t ms = op->poll_ms < left - CACHE_POLL_MIN_MS ? op->poll_ms : left - CACHE_POLL_MIN_MS;
    op->poll_ms = op->poll_ms * 2 > CACHE_POLL_MAX_MS ? CACHE_POLL_MAX_MS : op->poll_ms * 2;
    op->waited = true;
    if (op->timer == NULL)
        op->timer = evtimer_new(op->c->base, cache_on_poll, op);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(op->timer, &tv);
}

static const char *
cache_elem_str(const redisReply *r, size_t i, size_t *len)
{
    const redisReply *e = r->element[i];
    *len = e->type == REDIS_REPLY_STRING ? e->len : 0;
    return e->type == REDIS_REPLY_STRING ? e->str : "";
}

static void
cache_on_get(redisReply *reply, void *arg)
{
    pb_cache_op *op = arg;
    op->pending = false;
    if (op->ended || op->c->closing) {
        if (op->ended)
            cache_op_free(op);
        return;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5 ||
        reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[4]->type != REDIS_REPLY_INTEGER) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            pb_log(PB_LOG_ERROR, "event=cache_error error=\"%s\"", reply->str);
        /* The cache is unreachable: a miss, without the lock. */
        cache_report(op, PB_CACHE_LEAD, NULL);
        return;
    }
    size_t vlen, elen, mlen;
    const char *verdict = cache_elem_str(reply, 0, &vlen);
    const char *entry = cache_elem_str(reply, 2, &elen);
    const char *marker = cache_elem_str(reply, 3, &mlen);
    int64_t age = (int64_t)reply->element[1]->integer;
    if (strcmp(verdict, "hit") == 0) {
        pb_cache_entry hit;
        if (cache_parse_entry(entry, elen, age, &hit)) {
            cache_report(op, PB_CACHE_HIT, &hit);
            return;
        }
        cache_report(op, PB_CACHE_LEAD, NULL); /* unreadable entry: run and overwrite it */
        return;
    }
    if (elen > 0 && op->stale.content == NULL)
        cache_parse_entry(entry, elen, age, &op->stale);
    else if (op->stale.content != NULL && age >= 0)
        op->stale.age_s = age;
    if (strcmp(verdict, "lead") == 0) {
        op->leader = true;
        cache_report(op, PB_CACHE_LEAD, NULL);
    } else if (strcmp(verdict, "failed") == 0) {
        cache_report(op, cache_marker_covers(marker, op->chain) ? PB_CACHE_FAILED : PB_CACHE_LEAD,
                     NULL);
    } else if (strcmp(verdict, "wait") == 0) {
        if (op->since_redis_ms == 0)
            op->since_redis_ms = (int64_t)reply->element[4]->integer;
        cache_wait(op);
    } else {
        cache_report(op, PB_CACHE_LEAD, NULL); /* "run": refresh while another job holds it */
    }
}

static void
cache_send(pb_cache_op *op)
{
    pb_cache *c = op->c;
    int64_t left = op->deadline_mono_ms - pb_mono_ms();
    char ttl[16], tier[16], lock_ms[24], since[24];
    snprintf(ttl, sizeof(ttl), "%d", c->cfg->cache_ttl_s);
    snprintf(tier, sizeof(tier), "%d", op->max_tier);
    snprintf(lock_ms, sizeof(lock_ms), "%lld",
             (long long)((left > 0 ? left : 0) + CACHE_LOCK_SLACK));
    snprintf(since, sizeof(since), "%lld", (long long)op->since_redis_ms);
    /* With the queue's Redis at hand, a lock whose holder was reaped (gone from the workers
     * zset) is taken over at once instead of blocking its re-delivered job until it expires. */
    const char *argv[10];
    int n = 0;
    argv[n++] = op->key;
    argv[n++] = op->lock_key;
    if (c->workers_key)
        argv[n++] = c->workers_key;
    int nkeys = n;
    argv[n++] = op->refresh ? "refresh" : "use";
    argv[n++] = ttl;
    argv[n++] = tier;
    argv[n++] = op->token;
    argv[n++] = lock_ms;
    argv[n++] = op->stale.content ? "0" : "1";
    argv[n++] = since;
    op->pending = true;
    /* A stalled cache Redis must not eat the deadline: no reply in time is a miss. */
    int bound =
        c->cfg->cache_redis ? c->cfg->cache_redis->redis_timeout_ms : c->cfg->redis_timeout_ms;
    if (left / 2 < bound)
        bound = left / 2 > 1 ? (int)(left / 2) : 1;
    pb_redis_script_within(c->r, bound, "cache_get", cache_on_get, op, nkeys, n, argv, NULL);
}

pb_cache_op *
pb_cache_begin(pb_cache *c, const pb_request *req, const char *const *chain, size_t n_chain,
               unsigned provider_types, int max_tier, int64_t deadline_mono_ms, pb_cache_fn fn,
               void *arg)
{
    pb_cache_op *op = pb_xcalloc(1, sizeof(*op));
    op->c = c;
    char hex[PB_CACHE_KEY_LEN + 1];
    pb_cache_key(req, provider_types, hex);
    op->key = pb_key_cache(c->cfg->prefix, hex);
    op->lock_key = pb_key_cache_lock(c->cfg->prefix, hex);
    /* The connection's up count marks locks taken before an outage (cache_get.lua). */
    snprintf(op->token, sizeof(op->token), "%s:%llu:%llu", c->worker_id,
             (unsigned long long)pb_redis_ups(c->r), (unsigned long long)++c->next_tok);
    pb_buf b;
    pb_buf_init(&b, CACHE_MARKER_MAX);
    pb_buf_append(&b, ",", 1);
    for (size_t i = 0; i < n_chain; i++) {
        pb_buf_append(&b, chain[i], strlen(chain[i]));
        pb_buf_append(&b, ",", 1);
    }
    op->chain = b.data ? b.data : pb_xstrdup(",");
    op->refresh = req->cache == PB_CACHE_REFRESH;
    op->max_tier = max_tier;
    op->deadline_mono_ms = deadline_mono_ms;
    op->poll_ms = CACHE_POLL_MIN_MS;
    op->fn = fn;
    op->arg = arg;
    cache_send(op);
    return op;
}

/* The answer's extras as JSON text for cache_put.lua, "" for a plain text answer (caller
 * frees). Only planb-written JSON goes in (tool_calls is the adapter's text). */
static char *
cache_message_json(const pb_cache_entry *a)
{
    if (a->tool_calls == NULL && a->refusal == NULL &&
        (a->finish_reason == NULL || strcmp(a->finish_reason, "stop") == 0))
        return pb_xstrdup("");
    json_object *m = json_object_new_object();
    if (a->tool_calls != NULL)
        json_object_object_add(m, "tool_calls", json_tokener_parse(a->tool_calls));
    if (a->refusal != NULL)
        json_object_object_add(m, "refusal", json_object_new_string(a->refusal));
    if (a->finish_reason != NULL)
        json_object_object_add(m, "finish_reason", json_object_new_string(a->finish_reason));
    char *s = pb_xstrdup(
        json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(m);
    return s;
}

void
pb_cache_end(pb_cache_op *op, const pb_cache_entry *answer, bool failed)
{
    if (op == NULL)
        return;
    pb_cache *c = op->c;
    if (!c->closing && answer != NULL && answer->content != NULL) {
        char tier[16], pt[24], ct[24], life[24];
        snprintf(tier, sizeof(tier), "%d", answer->tier);
        snprintf(pt, sizeof(pt), "%ld", answer->prompt_tokens);
        snprintf(ct, sizeof(ct), "%ld", answer->completion_tokens);
        snprintf(life, sizeof(life), "%lld",
                 (long long)c->cfg->cache_ttl_s + c->cfg->cache_stale_if_error_s);
        char *message = cache_message_json(answer);
        const char *argv[] = {op->key,
                              op->lock_key,
                              answer->content,
                              answer->model,
                              tier,
                              pt,
                              ct,
                              life,
                              op->leader ? op->token : "",
                              message};
        pb_redis_script(c->r, "cache_put", NULL, NULL, 2, 10, argv, NULL);
        free(message);
    } else if (!c->closing && op->leader) {
        char ms[16];
        snprintf(ms, sizeof(ms), "%d", CACHE_FAILED_MS);
        const char *argv[] = {op->lock_key, op->token, failed ? op->chain : "", ms};
        pb_redis_script(c->r, "cache_unlock", NULL, NULL, 1, 4, argv, NULL);
    }
    if (op->pending) {
        op->ended = true; /* the reply callback frees it */
        return;
    }
    cache_op_free(op);
}
