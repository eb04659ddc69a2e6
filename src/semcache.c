/* semcache.c -- the semantic cache: a shared LSH index in Redis, exact cosine and guard in C.
 *
 * Index (docs/cache.md "Semantic cache" has the key contract):
 *   <p>:sem:e:<id>                   one entry: "<scope> <ms> <c0>,...,<c15>\n", then dim (u16
 *                                    LE), question length (u16 LE), the int8-quantised vector,
 *                                    the question and the answer
 *   <p>:sem:b:<scope>:<table>:<code> set of ids: random-hyperplane LSH, 16 tables of 12 bits
 *   <p>:sem:index                    zset id -> insert ms: expiry and max_entries eviction
 * Ids are 62-bit integers from SHA-256(scope, question), so the bucket sets are intsets and
 * the same question asked again replaces its entry. The scope is SHA-256 of the embedder id,
 * route, tenant, params and every message but the question (system prompt, earlier turns):
 * a match never crosses contexts.
 *
 * Lookup: embed (local: at once; http: through the curl loop) -> LSH codes, each table's
 * bucket plus one flipped-bit probe -> semcache_lookup.lua ranks ids by shared buckets and
 * returns the heads of the top ones -> here: cosine against the int8 vectors, the threshold,
 * the age limit and pb_embed_guard, best first -> GET of the winner's answer. Every step that
 * fails is a miss; the lookup timer bounds the whole thing.
 *
 * Lifetime: a pb_semcache_query counts its holders (the chain, an embed in flight, each Redis call
 * in flight) and frees itself at zero, so the chain can drop a job at any moment. */
#include "planb/semcache.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/embed.h"
#include "planb/hash.h"
#include "planb/keys.h"
#include "planb/log.h"

#define SEMCACHE_QUESTION_MAX 512           /* bytes; longer questions are not FAQ material */
#define SEMCACHE_CANDIDATES   24            /* heads fetched per lookup (most LSH votes first) */
#define SEMCACHE_BUCKET_READ  128           /* ids read from one bucket at most */
#define SEMCACHE_LINE_MAX     160           /* scope line: 16 + 1 + 13 + 1 + 16 * 5 + 1 */
#define SEMCACHE_ANSWER_MAX   (1024 * 1024) /* answers bigger than this are not indexed */
#define SEMCACHE_SHADOW_KEEP  1000          /* samples kept in <p>:sem:shadow */
#define SEMCACHE_SHADOW_TEXT  300           /* bytes of each text in a sample */
#define SEMCACHE_AGREE_COS    0.8           /* answers at least this similar "agree" (shadow) */
#define SEMCACHE_LSH_SEED     0x5eca17c0ffee1234ULL /* the same on every host: shared buckets */

struct pb_semcache {
    const pb_config *cfg;
    struct event_base *base;
    pb_redis *cmd;
    pb_embedder *embedder;
    char *entry_prefix, *bucket_prefix, *index_key, *shadow_key, *stats_key;
    uint64_t rng; /* shadow sampling */
};

struct pb_semcache_query {
    pb_semcache *sc;
    int refs;        /* chain hold + embed + Redis calls in flight */
    bool chain_gone; /* pb_semcache_query_free was called */
    char *question;  /* the last user message */
    char scope[17];  /* hex of the scope hash */
    char id[24];     /* decimal entry id */
    float *vec;      /* question's unit vector once embedded */
    size_t dim;
    bool embedding;       /* an embed is in flight */
    bool embed_failed;    /* it failed: no lookup, no insert */
    pb_embed_call *embed; /* http embed in flight */
    char *insert_content; /* insert waiting for the vector */
    /* the lookup */
    bool lookup_active; /* fn not yet called */
    pb_semcache_fn fn;
    void *arg;
    struct event *timer; /* lookup bound */
    int64_t max_age_s;
    /* the best hit of the last lookup (owned copies, for shadow mode) */
    char *hit_question, *hit_content;
    double hit_similarity;
    int64_t hit_age_s;
};

/* ---------------------------------------------------------------- pure parts */

#define SEMCACHE_PLANES (PB_SEMCACHE_TABLES * PB_SEMCACHE_BITS)
#define SEMCACHE_WORDS  (PB_EMBED_MAX_DIM / 64)

/* Sign bits of the hyperplanes (bit i of plane p set: +1 on dimension i), made once. */
static uint64_t semcache_planes[SEMCACHE_PLANES][SEMCACHE_WORDS];
static bool semcache_planes_ready;

/* Random-hyperplane LSH with +-1 hyperplanes drawn from a fixed seed: only integer RNG and
 * float additions in a fixed order, so every host gets the same codes for the same vector.
 * dot(v, plane) = 2 * (sum of v[i] where the plane is +1) - sum of v. */
void
pb_semcache_codes(const float *v, size_t dim, unsigned *codes, unsigned *probes)
{
    if (!semcache_planes_ready) {
        for (unsigned p = 0; p < SEMCACHE_PLANES; p++) {
            uint64_t s = SEMCACHE_LSH_SEED ^ ((uint64_t)p << 32);
            for (unsigned w = 0; w < SEMCACHE_WORDS; w++)
                semcache_planes[p][w] = pb_hash_splitmix64(&s);
        }
        semcache_planes_ready = true;
    }
    /* Local vectors are sparse (hashed n-grams): summing only the non-zero components, in
     * index order, gives bit-identical sums (the skipped terms add exactly 0) for a fraction
     * of the work. */
    static unsigned nz[PB_EMBED_MAX_DIM]; /* workers are single-threaded */
    pb_assert(dim <= PB_EMBED_MAX_DIM);
    size_t n_nz = 0;
    float total = 0;
    for (size_t i = 0; i < dim; i++) {
        total += v[i];
        if (v[i] != 0)
            nz[n_nz++] = (unsigned)i;
    }
    for (unsigned t = 0; t < PB_SEMCACHE_TABLES; t++) {
        unsigned code = 0, weakest = 0;
        float weakest_margin = INFINITY;
        for (unsigned b = 0; b < PB_SEMCACHE_BITS; b++) {
            const uint64_t *plane = semcache_planes[t * PB_SEMCACHE_BITS + b];
            float pos = 0;
            for (size_t k = 0; k < n_nz; k++) {
                unsigned i = nz[k];
                if ((plane[i >> 6] >> (i & 63)) & 1)
                    pos += v[i];
            }
            float dot = 2 * pos - total;
            if (dot >= 0)
                code |= 1u << b;
            if (fabsf(dot) < weakest_margin) {
                weakest_margin = fabsf(dot);
                weakest = b;
            }
        }
        codes[t] = code;
        probes[t] = code ^ (1u << weakest);
    }
}

/* Feeds a JSON node (NULL: a marker) into the scope hash. */
static void
semcache_scope_json(EVP_MD_CTX *md, json_object *v)
{
    size_t len = 0;
    const char *s = v ? json_object_to_json_string_length(
                            v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len)
                      : "-";
    EVP_DigestUpdate(md, "\n", 1);
    EVP_DigestUpdate(md, s, v ? len : 1);
}

/* Hex of the first 8 bytes of SHA-256 over the scope parts into out[17]; the entry id into
 * id[24] from the scope and the question. */
static void
semcache_scope(const pb_semcache *sc, const pb_request *req, size_t qi, char *out, char *id)
{
    const pb_config *cfg = sc->cfg;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    pb_assert(md != NULL);
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s\n%s\n%s\n%d\n%.17g\n%.17g\n",
                     pb_embed_space_id(sc->embedder), cfg->routes[req->route].name,
                     req->tenant ? req->tenant : "", req->max_tokens, req->temperature, req->top_p);
    EVP_DigestUpdate(md, buf, (size_t)n);
    for (size_t i = 0; i < req->n_messages; i++) {
        /* Each message as role, length, bytes; the question itself only as a marker. */
        const char *c = i == qi ? "" : req->messages[i].content;
        n = snprintf(buf, sizeof(buf), "%d:%zu:%s:", (int)req->messages[i].role, strlen(c),
                     i == qi ? "Q" : "");
        EVP_DigestUpdate(md, buf, (size_t)n);
        EVP_DigestUpdate(md, c, strlen(c));
        semcache_scope_json(md, i == qi && !(req->needs & PB_CAP_VISION) ? NULL
                                                                         : req->messages[i].parts);
        semcache_scope_json(md, req->messages[i].tool_calls);
        if (req->messages[i].tool_call_id)
            EVP_DigestUpdate(md, req->messages[i].tool_call_id,
                             strlen(req->messages[i].tool_call_id));
    }
    /* Every param is scope: an answer given under other tools or formats never matches. */
    semcache_scope_json(md, req->params);
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    EVP_MD_CTX *md2 = EVP_MD_CTX_new();
    pb_assert(md2 != NULL);
    EVP_MD_CTX_copy_ex(md2, md);
    EVP_DigestFinal_ex(md, h, &hl);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    EVP_DigestUpdate(md2, req->messages[qi].content, strlen(req->messages[qi].content));
    EVP_DigestFinal_ex(md2, h, &hl);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | h[i];
    snprintf(id, 24, "%llu", (unsigned long long)(v >> 2)); /* < 2^62: an intset member */
    EVP_MD_CTX_free(md);
    EVP_MD_CTX_free(md2);
}

/* A parsed entry (pointers into the reply bytes). */
typedef struct semcache_entry {
    char scope[17];
    int64_t at_ms;
    size_t dim;
    const signed char *vec;
    const char *question;
    size_t qlen;
    const char *answer; /* NULL when only the head was fetched */
    size_t alen;
} semcache_entry;

/* Parses the entry bytes (head or whole); PB_ERR for anything malformed or cut short. */
static int
semcache_parse_entry(const char *p, size_t n, bool whole, semcache_entry *e)
{
    const char *nl = memchr(p, '\n', n < SEMCACHE_LINE_MAX ? n : SEMCACHE_LINE_MAX);
    long long at = 0;
    if (nl == NULL || sscanf(p, "%16[0-9a-f] %lld ", e->scope, &at) != 2)
        return PB_ERR;
    e->at_ms = at;
    size_t off = (size_t)(nl - p) + 1;
    if (n < off + 4)
        return PB_ERR;
    const unsigned char *u = (const unsigned char *)p + off;
    e->dim = (size_t)u[0] | ((size_t)u[1] << 8);
    e->qlen = (size_t)u[2] | ((size_t)u[3] << 8);
    off += 4;
    if (e->dim == 0 || e->dim > PB_EMBED_MAX_DIM || e->qlen > SEMCACHE_QUESTION_MAX ||
        n < off + e->dim + e->qlen)
        return PB_ERR;
    e->vec = (const signed char *)p + off;
    e->question = p + off + e->dim;
    e->answer = whole ? p + off + e->dim + e->qlen : NULL;
    e->alen = whole ? n - (off + e->dim + e->qlen) : 0;
    return PB_OK;
}

/* Cosine of the unit query vector with an int8 vector. */
static double
semcache_cosine(const float *v, const signed char *q, size_t dim)
{
    double dot = 0, qq = 0;
    for (size_t i = 0; i < dim; i++) {
        dot += (double)v[i] * q[i];
        qq += (double)q[i] * q[i];
    }
    return qq > 0 ? dot / sqrt(qq) : 0;
}

/* ---------------------------------------------------------------- lifetime */

static void
semq_unref(pb_semcache_query *q)
{
    if (--q->refs > 0)
        return;
    if (q->timer)
        event_free(q->timer);
    free(q->question);
    free(q->vec);
    free(q->insert_content);
    free(q->hit_question);
    free(q->hit_content);
    free(q);
}

pb_semcache *
pb_semcache_new(const pb_config *cfg, struct event_base *base, pb_redis *cmd, pb_http *http)
{
    if (!cfg->semantic.enabled)
        return NULL;
    pb_semcache *sc = pb_xcalloc(1, sizeof(*sc));
    sc->cfg = cfg;
    sc->base = base;
    sc->cmd = cmd;
    sc->embedder = pb_embed_new(cfg, http);
    sc->entry_prefix = pb_key_sem_entry_prefix(cfg->prefix);
    sc->bucket_prefix = pb_key_sem_bucket_prefix(cfg->prefix);
    sc->index_key = pb_key_sem_index(cfg->prefix);
    sc->shadow_key = pb_key_sem_shadow(cfg->prefix);
    sc->stats_key = pb_key_stats(cfg->prefix);
    sc->rng = (uint64_t)pb_mono_ms() ^ ((uint64_t)(uintptr_t)sc << 16);
    return sc;
}

void
pb_semcache_free(pb_semcache *sc)
{
    if (sc == NULL)
        return;
    pb_embed_free(sc->embedder);
    free(sc->entry_prefix);
    free(sc->bucket_prefix);
    free(sc->index_key);
    free(sc->shadow_key);
    free(sc->stats_key);
    free(sc);
}

pb_semcache_query *
pb_semcache_query_new(pb_semcache *sc, const pb_request *req)
{
    const pb_route_conf *route = sc ? &sc->cfg->routes[req->route] : NULL;
    /* Tool calling and structured output answer an app, not a question in other words. */
    bool structured = (req->needs & (PB_CAP_TOOLS | PB_CAP_JSON_SCHEMA | PB_CAP_JSON_OBJECT)) ||
                      pb_request_param(req, "response_format") != NULL;
    if (sc == NULL || req->cache == PB_CACHE_SKIP || (req->critical && !route->semantic_critical) ||
        (structured && !route->semantic_tools))
        return NULL;
    size_t qi = req->n_messages;
    for (size_t i = req->n_messages; i-- > 0;)
        if (req->messages[i].role == PB_ROLE_USER) {
            qi = i;
            break;
        }
    if (qi == req->n_messages)
        return NULL;
    size_t qlen = strlen(req->messages[qi].content);
    if (qlen == 0 || qlen > SEMCACHE_QUESTION_MAX)
        return NULL;
    pb_semcache_query *q = pb_xcalloc(1, sizeof(*q));
    q->sc = sc;
    q->refs = 1;
    q->question = pb_xstrdup(req->messages[qi].content);
    semcache_scope(sc, req, qi, q->scope, q->id);
    return q;
}

static void semq_lookup_send(pb_semcache_query *q);
static void semq_insert_send(pb_semcache_query *q);

/* Ends the lookup: fn runs once (unless the chain let go). */
static void
semq_report(pb_semcache_query *q, const pb_semcache_hit *hit)
{
    if (!q->lookup_active)
        return;
    q->lookup_active = false;
    if (q->timer)
        evtimer_del(q->timer);
    if (!q->chain_gone && q->fn)
        q->fn(hit, q->arg);
}

void
pb_semcache_query_free(pb_semcache_query *q)
{
    if (q == NULL)
        return;
    q->chain_gone = true;
    q->lookup_active = false;
    if (q->timer)
        evtimer_del(q->timer);
    if (q->embed && q->insert_content == NULL) {
        /* Nobody waits for this vector any more. */
        pb_embed_cancel(q->embed);
        q->embed = NULL;
        q->embedding = false;
        q->refs--;
    }
    semq_unref(q);
}

static void
semq_on_embedded(const float *vec, size_t dim, void *arg)
{
    pb_semcache_query *q = arg;
    q->embed = NULL;
    q->embedding = false;
    if (vec == NULL || dim == 0) {
        q->embed_failed = true;
        semq_report(q, NULL);
    } else {
        q->vec = pb_xmalloc(dim * sizeof(float));
        memcpy(q->vec, vec, dim * sizeof(float));
        q->dim = dim;
        if (q->lookup_active)
            semq_lookup_send(q);
        if (q->insert_content)
            semq_insert_send(q);
    }
    semq_unref(q);
}

/* Makes sure a vector is (being) computed; the pending operations run when it is there. */
static void
semq_embed(pb_semcache_query *q, int timeout_ms)
{
    if (q->vec || q->embedding)
        return;
    q->embedding = true;
    q->refs++;
    q->embed = pb_embed_start(q->sc->embedder, q->question, timeout_ms, semq_on_embedded, q);
}

/* ---------------------------------------------------------------- lookup */

static void
semq_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_semcache_query *q = arg;
    pb_log(PB_LOG_DEBUG, "event=semantic_timeout scope=%s", q->scope);
    semq_report(q, NULL);
}

static void
semq_keep_hit(pb_semcache_query *q, const semcache_entry *e, double sim)
{
    free(q->hit_question);
    free(q->hit_content);
    q->hit_question = pb_xstrndup(e->question, e->qlen);
    q->hit_content = pb_xstrndup(e->answer, e->alen);
    q->hit_similarity = sim;
    q->hit_age_s = (pb_wall_ms() - e->at_ms) / 1000;
}

static void
semq_on_answer(redisReply *reply, void *arg)
{
    pb_semcache_query *q = arg;
    semcache_entry e;
    if (q->lookup_active && reply && reply->type == REDIS_REPLY_STRING &&
        semcache_parse_entry(reply->str, reply->len, true, &e) == PB_OK && e.alen > 0 &&
        strcmp(e.scope, q->scope) == 0 && e.dim == q->dim &&
        memchr(e.answer, '\0', e.alen) == NULL) {
        double sim = semcache_cosine(q->vec, e.vec, e.dim);
        semq_keep_hit(q, &e, sim);
        pb_semcache_hit hit = {q->hit_content, q->hit_question, sim, q->hit_age_s};
        semq_report(q, &hit);
    } else {
        semq_report(q, NULL);
    }
    semq_unref(q);
}

/* Picks the most similar candidate that passes the threshold, the age limit and the guard. */
static void
semq_on_candidates(redisReply *reply, void *arg)
{
    pb_semcache_query *q = arg;
    const pb_semcache *sc = q->sc;
    const char *best_id = NULL;
    double best = -1;
    const char *why = NULL;
    if (q->lookup_active && reply && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const redisReply *id = reply->element[i], *head = reply->element[i + 1];
            semcache_entry e;
            if (id->type != REDIS_REPLY_STRING || head->type != REDIS_REPLY_STRING ||
                semcache_parse_entry(head->str, head->len, false, &e) != PB_OK ||
                strcmp(e.scope, q->scope) != 0 || e.dim != q->dim)
                continue;
            double sim = semcache_cosine(q->vec, e.vec, e.dim);
            if (sim < sc->cfg->semantic.threshold || sim <= best ||
                (pb_wall_ms() - e.at_ms) / 1000 > q->max_age_s)
                continue;
            char *cand = pb_xstrndup(e.question, e.qlen);
            bool ok = pb_embed_guard(q->question, cand, &why);
            free(cand);
            if (!ok) {
                pb_log(PB_LOG_DEBUG, "event=semantic_guard scope=%s similarity=%.3f why=%s",
                       q->scope, sim, why);
                continue;
            }
            best = sim;
            best_id = id->str;
        }
    }
    if (best_id != NULL) {
        char *key = pb_xasprintf("%s%s", sc->entry_prefix, best_id);
        const char *argv[2] = {"GET", key};
        q->refs++;
        pb_redis_command(sc->cmd, semq_on_answer, q, 2, argv, NULL);
        free(key);
    } else {
        semq_report(q, NULL);
    }
    semq_unref(q);
}

static void
semq_lookup_send(pb_semcache_query *q)
{
    const pb_semcache *sc = q->sc;
    unsigned codes[PB_SEMCACHE_TABLES], probes[PB_SEMCACHE_TABLES];
    pb_semcache_codes(q->vec, q->dim, codes, probes);
    enum { NKEYS = 2 * PB_SEMCACHE_TABLES, NARGS = NKEYS + 4 };
    char *keys[NKEYS];
    const char *argv[NARGS];
    for (unsigned t = 0; t < PB_SEMCACHE_TABLES; t++) {
        keys[2 * t] = pb_xasprintf("%s%s:%u:%u", sc->bucket_prefix, q->scope, t, codes[t]);
        keys[2 * t + 1] = pb_xasprintf("%s%s:%u:%u", sc->bucket_prefix, q->scope, t, probes[t]);
    }
    for (int i = 0; i < NKEYS; i++)
        argv[i] = keys[i];
    char cands[16], head[16], cap[16];
    snprintf(cands, sizeof(cands), "%d", SEMCACHE_CANDIDATES);
    snprintf(head, sizeof(head), "%zu",
             (size_t)SEMCACHE_LINE_MAX + 4 + q->dim + SEMCACHE_QUESTION_MAX);
    snprintf(cap, sizeof(cap), "%d", SEMCACHE_BUCKET_READ);
    argv[NKEYS] = sc->entry_prefix;
    argv[NKEYS + 1] = cands;
    argv[NKEYS + 2] = head;
    argv[NKEYS + 3] = cap;
    q->refs++;
    pb_redis_script(sc->cmd, "semcache_lookup", semq_on_candidates, q, NKEYS, NARGS, argv, NULL);
    for (int i = 0; i < NKEYS; i++)
        free(keys[i]);
}

void
pb_semcache_lookup(pb_semcache_query *q, int timeout_ms, int64_t max_age_s, pb_semcache_fn fn,
                   void *arg)
{
    q->fn = fn;
    q->arg = arg;
    q->max_age_s = max_age_s;
    q->lookup_active = true;
    if (q->timer == NULL)
        q->timer = evtimer_new(q->sc->base, semq_on_timeout, q);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(q->timer, &tv);
    if (q->embed_failed) {
        semq_report(q, NULL);
        return;
    }
    if (q->vec) {
        semq_lookup_send(q);
        return;
    }
    semq_embed(q, timeout_ms); /* the lookup goes out when the vector arrives */
}

/* ---------------------------------------------------------------- insert */

static void
semq_on_inserted(redisReply *reply, void *arg)
{
    pb_semcache_query *q = arg;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        pb_log(PB_LOG_WARN, "event=semantic_insert_failed scope=%s error=\"%s\"", q->scope,
               reply ? reply->str : "redis unavailable");
    semq_unref(q);
}

static void
semq_insert_send(pb_semcache_query *q)
{
    const pb_semcache *sc = q->sc;
    const pb_config *cfg = sc->cfg;
    char *content = q->insert_content;
    q->insert_content = NULL;
    unsigned codes[PB_SEMCACHE_TABLES], probes[PB_SEMCACHE_TABLES];
    pb_semcache_codes(q->vec, q->dim, codes, probes);

    /* Entry bytes: scope line, dim, question length, int8 vector, question, answer. */
    int64_t now = pb_wall_ms();
    char line[SEMCACHE_LINE_MAX];
    int ll = snprintf(line, sizeof(line), "%s %lld ", q->scope, (long long)now);
    for (unsigned t = 0; t < PB_SEMCACHE_TABLES; t++)
        ll += snprintf(line + ll, sizeof(line) - (size_t)ll, "%s%u", t ? "," : "", codes[t]);
    ll += snprintf(line + ll, sizeof(line) - (size_t)ll, "\n");
    size_t qlen = strlen(q->question), alen = strlen(content);
    size_t n = (size_t)ll + 4 + q->dim + qlen + alen;
    char *entry = pb_xmalloc(n);
    memcpy(entry, line, (size_t)ll);
    unsigned char *u = (unsigned char *)entry + ll;
    u[0] = (unsigned char)(q->dim & 0xFF);
    u[1] = (unsigned char)(q->dim >> 8);
    u[2] = (unsigned char)(qlen & 0xFF);
    u[3] = (unsigned char)(qlen >> 8);
    float maxabs = 0;
    for (size_t i = 0; i < q->dim; i++)
        maxabs = fabsf(q->vec[i]) > maxabs ? fabsf(q->vec[i]) : maxabs;
    signed char *vq = (signed char *)entry + ll + 4;
    for (size_t i = 0; i < q->dim; i++)
        vq[i] = (signed char)lrintf(maxabs > 0 ? q->vec[i] / maxabs * 127.0f : 0);
    memcpy(entry + ll + 4 + q->dim, q->question, qlen);
    memcpy(entry + ll + 4 + q->dim + qlen, content, alen);
    free(content);

    enum { NKEYS = 2 + PB_SEMCACHE_TABLES, NARGS = NKEYS + 7 };
    char *keys[NKEYS];
    const char *argv[NARGS];
    size_t lens[NARGS];
    keys[0] = pb_xasprintf("%s%s", sc->entry_prefix, q->id);
    keys[1] = pb_xstrdup(sc->index_key);
    for (unsigned t = 0; t < PB_SEMCACHE_TABLES; t++)
        keys[2 + t] = pb_xasprintf("%s%s:%u:%u", sc->bucket_prefix, q->scope, t, codes[t]);
    char keep[24], now_s[24], maxe[24];
    snprintf(keep, sizeof(keep), "%lld",
             (long long)cfg->cache_ttl_s + (long long)cfg->cache_stale_if_error_s);
    snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
    snprintf(maxe, sizeof(maxe), "%d", cfg->semantic.max_entries);
    const char *args[7] = {q->id, entry, keep, now_s, maxe, sc->entry_prefix, sc->bucket_prefix};
    for (int i = 0; i < NKEYS; i++) {
        argv[i] = keys[i];
        lens[i] = strlen(keys[i]);
    }
    for (int i = 0; i < 7; i++) {
        argv[NKEYS + i] = args[i];
        lens[NKEYS + i] = i == 1 ? n : strlen(args[i]);
    }
    q->refs++;
    pb_redis_script(sc->cmd, "semcache_insert", semq_on_inserted, q, NKEYS, NARGS, argv, lens);
    for (int i = 0; i < NKEYS; i++)
        free(keys[i]);
    free(entry);
}

void
pb_semcache_insert(pb_semcache_query *q, const char *content)
{
    if (q->embed_failed || content == NULL || strlen(content) > SEMCACHE_ANSWER_MAX)
        return;
    free(q->insert_content);
    q->insert_content = pb_xstrdup(content);
    if (q->vec)
        semq_insert_send(q);
    else
        semq_embed(q, q->sc->cfg->semantic.timeout_ms);
}

/* ---------------------------------------------------------------- shadow */

static void
semq_on_shadow(redisReply *reply, void *arg)
{
    (void)reply;
    semq_unref(arg);
}

void
pb_semcache_shadow_record(pb_semcache_query *q, const char *answer)
{
    pb_semcache *sc = q->sc;
    if (q->hit_content == NULL || answer == NULL)
        return;
    /* Agreement is judged the cheap way: same text, or local embeddings of the two answers
     * close enough; operators read the samples for the real verdict. */
    bool agree = strcmp(q->hit_content, answer) == 0;
    if (!agree) {
        float *a = pb_xmalloc(2 * PB_EMBED_LOCAL_DIM * sizeof(float)), *b = a + PB_EMBED_LOCAL_DIM;
        pb_embed_local(q->hit_content, a);
        pb_embed_local(answer, b);
        double dot = 0;
        for (size_t i = 0; i < PB_EMBED_LOCAL_DIM; i++)
            dot += (double)a[i] * b[i];
        agree = dot >= SEMCACHE_AGREE_COS;
        free(a);
    }
    sc->rng ^= sc->rng << 13;
    sc->rng ^= sc->rng >> 7;
    sc->rng ^= sc->rng << 17;
    bool sample = (double)(sc->rng >> 11) * 0x1.0p-53 < sc->cfg->semantic.shadow_sample;
    char *json = NULL;
    if (sample) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "at_ms", json_object_new_int64(pb_wall_ms()));
        json_object_object_add(o, "agreed", json_object_new_boolean(agree));
        json_object_object_add(o, "similarity", json_object_new_double(q->hit_similarity));
        json_object_object_add(o, "question", json_object_new_string(q->question));
        json_object_object_add(o, "matched_question", json_object_new_string(q->hit_question));
        json_object_object_add(
            o, "cached_answer",
            json_object_new_string_len(q->hit_content,
                                       (int)strnlen(q->hit_content, SEMCACHE_SHADOW_TEXT)));
        json_object_object_add(
            o, "model_answer",
            json_object_new_string_len(answer, (int)strnlen(answer, SEMCACHE_SHADOW_TEXT)));
        json = pb_xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    }
    char keep[16];
    snprintf(keep, sizeof(keep), "%d", SEMCACHE_SHADOW_KEEP);
    const char *argv[5] = {sc->stats_key, sc->shadow_key,
                           agree ? "semantic:shadow_agree" : "semantic:shadow_disagree",
                           json ? json : "", keep};
    q->refs++;
    pb_redis_script(sc->cmd, "semcache_shadow", semq_on_shadow, q, 2, 5, argv, NULL);
    free(json);
    free(q->hit_content);
    q->hit_content = NULL;
}
