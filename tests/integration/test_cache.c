/* test_cache.c -- the shared answer cache end to end: hits, skip/refresh, the quality floor,
 * stale-if-error, the herd lock and the eviction-policy warning.
 *
 * World: cache_world.h. Upstream calls are counted by planb-mock per model; an
 * entry is aged by rewriting its stored_at in Redis (no sleeping past a TTL). */
#include "cache_world.h"

static void
setup(void)
{
    world_start(1, NULL, NULL);
}

TestSuite(cache, .init = setup, .fini = world_stop, .timeout = 120);

/* The one planb:cache:<sha> entry (asserts there is exactly one). Caller frees. */
static char *
only_entry_key(void)
{
    redisReply *r =
        redisCommand(rc, "EVAL %s 0",
                     "local o={} for _,k in ipairs(redis.call('KEYS','planb:cache:*')) do "
                     "if not string.find(k, ':lock$') then o[#o+1]=k end end return o");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1, "cache entries: %zu",
              r ? r->elements : 0);
    char *k = strdup(r->element[0]->str);
    freeReplyObject(r);
    return k;
}

/* Moves the only entry's stored_at back by secs, keeping its TTL. */
static void
age_entry(int secs)
{
    char *key = only_entry_key();
    redisReply *r = redisCommand(rc, "EVAL %s 1 %s %d",
                                 "local e=cjson.decode(redis.call('GET',KEYS[1])) "
                                 "e.stored_at=e.stored_at-tonumber(ARGV[1]) "
                                 "redis.call('SET',KEYS[1],cjson.encode(e),'KEEPTTL') return 1",
                                 key, secs);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "%s", r && r->str ? r->str : "");
    freeReplyObject(r);
    free(key);
}

Test(cache, repeated_question_is_answered_without_upstream_calls)
{
    json_object *a = run_job("a1", "what is planb", "\"meta\":{\"n\":1}");
    cr_expect_str_eq(field(a, "source"), "primary");
    json_object_put(a);

    json_object *b = run_job("a2", "what is planb", "\"meta\":{\"n\":2},\"route\":\"oa\"");
    cr_expect_str_eq(field(b, "status"), "ok");
    cr_expect_str_eq(field(b, "source"), "cache");
    cr_expect_str_eq(field(b, "content"), "echo: what is planb");
    cr_expect_str_eq(field(b, "model"), "top");
    cr_expect_str_eq(field(b, "provider"), "oai");
    cr_expect_geq(field_int(b, "cache_age_s"), 0);
    cr_expect_eq(n_attempts(b), 0);
    json_object *meta;
    cr_expect(json_object_object_get_ex(b, "meta", &meta) && field_int(meta, "n") == 2);
    json_object_put(b);
    cr_expect_eq(th_mock_requests(&mock_p, "top"), 1, "one upstream call for two jobs");

    /* The entry: JSON with the answer, who gave it and when (Redis clock). */
    char *key = only_entry_key();
    cr_expect_eq(strlen(key), strlen("planb:cache:") + 64);
    redisReply *e = redisCommand(rc, "GET %s", key);
    json_object *entry = json_tokener_parse(e->str);
    cr_expect_str_eq(field(entry, "content"), "echo: what is planb");
    cr_expect_str_eq(field(entry, "model"), "top");
    cr_expect_eq(field_int(entry, "tier"), 1);
    cr_expect_gt(field_int(entry, "stored_at"), 1600000000);
    json_object_put(entry);
    freeReplyObject(e);
    redisReply *ttl = redisCommand(rc, "TTL %s", key);
    cr_expect(ttl->integer > 600 && ttl->integer <= 660, "ttl %lld", ttl->integer);
    freeReplyObject(ttl);
    free(key);

    /* Another tenant never shares it. */
    json_object *c = run_job("a3", "what is planb", "\"tenant\":\"acme\"");
    cr_expect_str_eq(field(c, "source"), "primary");
    json_object_put(c);
    cr_expect_eq(th_mock_requests(&mock_p, "top"), 2);
    cr_expect_eq(stat("source:cache"), 1);
    cr_expect_eq(stat("cache:hits:oai"), 1);
    cr_expect_eq(stat("cache:misses"), 2);
}

Test(cache, skip_bypasses_and_refresh_overwrites)
{
    json_object *r = run_job("s1", "q", NULL);
    json_object_put(r);
    th_mock_set(&mock_p, "top", "{\"mode\":\"ok\",\"reply\":\"skip answer\"}");
    r = run_job("s2", "q", "\"cache\":\"skip\"");
    cr_expect_str_eq(field(r, "source"), "primary");
    cr_expect_str_eq(field(r, "content"), "skip answer");
    json_object_put(r);
    r = run_job("s3", "q", NULL);
    cr_expect_str_eq(field(r, "source"), "cache");
    cr_expect_str_eq(field(r, "content"), "echo: q", "skip did not store its answer");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "top"), 2);

    th_mock_set(&mock_p, "top", "{\"mode\":\"ok\",\"reply\":\"fresh answer\"}");
    r = run_job("s4", "q", "\"cache\":\"refresh\"");
    cr_expect_str_eq(field(r, "source"), "primary");
    cr_expect_str_eq(field(r, "content"), "fresh answer");
    json_object_put(r);
    r = run_job("s5", "q", NULL);
    cr_expect_str_eq(field(r, "source"), "cache");
    cr_expect_str_eq(field(r, "content"), "fresh answer");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "top"), 3);
}

Test(cache, critical_job_never_takes_a_low_tier_answer)
{
    /* The tier-2 backup answers and is cached. */
    th_mock_set(&mock_p, "top", "{\"mode\":\"status\",\"status\":500}");
    json_object *r = run_job("c1", "q", NULL);
    cr_expect_str_eq(field(r, "model"), "low");
    json_object_put(r);
    /* Non-critical: served from it. */
    r = run_job("c2", "q", NULL);
    cr_expect_str_eq(field(r, "source"), "cache");
    cr_expect_str_eq(field(r, "model"), "low");
    json_object_put(r);
    /* Critical, top still down: neither fresh nor stale, so degraded. */
    r = run_job("c3", "q", "\"critical\":true");
    cr_expect_str_eq(field(r, "status"), "degraded");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "low"), 1);
    /* Critical, top back: asks upstream and its tier-1 answer replaces the entry. */
    th_mock_set(&mock_p, "top", "{\"mode\":\"ok\"}");
    r = run_job("c4", "q", "\"critical\":true");
    cr_expect_str_eq(field(r, "source"), "primary");
    cr_expect_str_eq(field(r, "model"), "top");
    json_object_put(r);
    r = run_job("c5", "q", "\"critical\":true");
    cr_expect_str_eq(field(r, "source"), "cache");
    cr_expect_str_eq(field(r, "model"), "top");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "top"), 3);
}

Test(cache, all_down_answers_stale_then_degrades_without_entry)
{
    json_object *r = run_job("d1", "popular", NULL);
    json_object_put(r);
    age_entry(120); /* past the 60 s TTL, within stale_if_error_s */
    th_mock_set(&mock_p, "top", "{\"mode\":\"status\",\"status\":503}");
    th_mock_set(&mock_p, "low", "{\"mode\":\"status\",\"status\":529}");
    r = run_job("d2", "popular", NULL);
    cr_expect_str_eq(field(r, "status"), "ok");
    cr_expect_str_eq(field(r, "source"), "stale_cache");
    cr_expect_str_eq(field(r, "content"), "echo: popular");
    cr_expect_geq(field_int(r, "cache_age_s"), 120);
    cr_expect_eq(n_attempts(r), 2, "the chain ran before the stale answer");
    json_object_put(r);
    r = run_job("d3", "never asked", NULL);
    cr_expect_str_eq(field(r, "status"), "degraded");
    cr_expect_str_eq(field(r, "content"), "Sorry, try later.");
    json_object_put(r);
    cr_expect_eq(stat("source:stale_cache"), 1);
    cr_expect_eq(stat("cache:stale_hits:oai"), 1);
    /* An old entry is not a hit once the models are back. */
    th_mock_set(&mock_p, "top", "{\"mode\":\"ok\",\"reply\":\"new\"}");
    r = run_job("d4", "popular", NULL);
    cr_expect_str_eq(field(r, "source"), "primary");
    json_object_put(r);
}

static bool
all_done(void *arg)
{
    return stat("jobs") >= *(long *)arg;
}

/* Pushes n identical jobs "<prefix>-<i>" in one LPUSH. */
static void
push_herd(const char *prefix, const char *text, int n)
{
    const char **argv = malloc(sizeof(char *) * (size_t)(n + 2));
    char **jobs = malloc(sizeof(char *) * (size_t)n);
    argv[0] = "LPUSH";
    argv[1] = "planb:q:default";
    for (int i = 0; i < n; i++) {
        jobs[i] = malloc(256);
        snprintf(jobs[i], 256,
                 "{\"id\":\"%s-%d\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", prefix,
                 i, text);
        argv[2 + i] = jobs[i];
    }
    redisReply *r = redisCommandArgv(rc, n + 2, argv, NULL);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    for (int i = 0; i < n; i++)
        free(jobs[i]);
    free(jobs);
    free(argv);
}

/* Counts the stored results of "<prefix>-0..n-1" by source. */
static void
count_sources(const char *prefix, int n, int *primary, int *cache, int *other)
{
    *primary = *cache = *other = 0;
    for (int i = 0; i < n; i++) {
        redisReply *g = redisCommand(rc, "GET planb:result:%s-%d", prefix, i);
        cr_assert(g && g->type == REDIS_REPLY_STRING, "no result %s-%d", prefix, i);
        json_object *o = json_tokener_parse(g->str);
        const char *src = field(o, "source");
        *primary += strcmp(src, "primary") == 0;
        *cache += strcmp(src, "cache") == 0;
        *other += strcmp(src, "primary") != 0 && strcmp(src, "cache") != 0;
        json_object_put(o);
        freeReplyObject(g);
    }
}

static void
setup_two_workers(void)
{
    world_start(2, NULL, NULL);
}

/* Two workers, so the lock is shared across processes, not just within one loop. */
TestSuite(cache_herd, .init = setup_two_workers, .fini = world_stop, .timeout = 120);

Test(cache_herd, herd_of_200_identical_jobs_makes_one_upstream_call)
{
    th_mock_set(&mock_p, "top", "{\"mode\":\"ok\",\"latency_ms\":1000}");
    long n = 200;
    push_herd("h", "the popular question", (int)n);
    cr_assert(th_wait_for(all_done, &n, 200, 50), "jobs done: %ld", stat("jobs"));
    int primary, cache, other;
    count_sources("h", (int)n, &primary, &cache, &other);
    cr_expect_eq(th_mock_requests(&mock_p, "top"), 1);
    cr_expect_eq(primary, 1);
    cr_expect_eq(cache, n - 1, "cache %d other %d", cache, other);
    cr_expect_eq(stat("cache:coalesced"), n - 1);
    cr_expect_eq(stat("ok"), n);
}

Test(cache, herd_shares_a_spent_chain_and_its_stale_entry)
{
    json_object *r = run_job("f0", "herd question", NULL);
    json_object_put(r);
    age_entry(120);
    th_mock_set(&mock_p, "top", "{\"mode\":\"status\",\"status\":503,\"latency_ms\":300}");
    th_mock_set(&mock_p, "low", "{\"mode\":\"status\",\"status\":503}");
    long n = 1 + 30;
    push_herd("f", "herd question", 30);
    cr_assert(th_wait_for(all_done, &n, 200, 50));
    for (int i = 0; i < 30; i++) {
        char id[32];
        snprintf(id, sizeof(id), "planb:result:f-%d", i);
        redisReply *g = redisCommand(rc, "GET %s", id);
        cr_assert(g && g->type == REDIS_REPLY_STRING);
        json_object *o = json_tokener_parse(g->str);
        cr_expect_str_eq(field(o, "source"), "stale_cache", "%s", id);
        json_object_put(o);
        freeReplyObject(g);
    }
    cr_expect_eq(th_mock_requests(&mock_p, "top"), 2, "one failed call for the whole herd");
    cr_expect_eq(th_mock_requests(&mock_p, "low"), 1);
}

Test(cache, followers_lead_when_the_leader_job_is_malformed_upstream)
{
    /* A 400 from every model of the chain makes the leader invalid and frees the lock
     * without a failure marker: the waiting jobs then ask upstream themselves, one at a
     * time, and all end. */
    th_mock_set(&mock_p, "top", "{\"mode\":\"status\",\"status\":400,\"latency_ms\":200}");
    th_mock_set(&mock_p, "low", "{\"mode\":\"status\",\"status\":400}");
    long n = 5;
    push_herd("i", "rejected", 5);
    cr_assert(th_wait_for(all_done, &n, 200, 50));
    cr_expect_eq(stat("invalid"), 5);
    cr_expect_eq(th_mock_requests(&mock_p, "top"), 5);
    cr_expect_eq(th_mock_requests(&mock_p, "low"), 5);
}

static bool
log_has(void *needle)
{
    char *log = th_proc_log(&planb_p);
    bool found = log && strstr(log, needle) != NULL;
    free(log);
    return found;
}

/* The monitor has asked Redis for the eviction policy. */
static bool
policy_checked(void *arg)
{
    (void)arg;
    redisReply *r = redisCommand(rc, "INFO commandstats");
    bool asked = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cmdstat_config|get:");
    freeReplyObject(r);
    return asked;
}

static void
setup_lru(void)
{
    world_start(1, "maxmemory-policy allkeys-lru\n", NULL);
}

TestSuite(cache_lru, .init = setup_lru, .fini = world_stop, .timeout = 120);

Test(cache_lru, warns_when_the_queue_redis_can_evict)
{
    static char needle[] = "event=eviction_policy policy=allkeys-lru";
    cr_expect(th_wait_for(log_has, needle, 100, 50));
}

Test(cache, no_warning_with_noeviction)
{
    cr_assert(th_wait_for(policy_checked, NULL, 100, 50), "the monitor asked for the policy");
    json_object *r = run_job("w2", "q", NULL); /* a round trip later the answer was logged */
    json_object_put(r);
    static char needle[] = "eviction_policy";
    cr_expect(!log_has(needle));
}

static th_proc cache_p;

static void
setup_cache_redis(void)
{
    cr_assert_eq(th_redis_start(&cache_p, NULL), 0);
    char extra[128];
    snprintf(extra, sizeof(extra), ", \"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}",
             cache_p.port);
    world_start(1, NULL, extra);
}

static void
teardown_cache_redis(void)
{
    world_stop();
    th_proc_stop(&cache_p, 5000);
}

TestSuite(cache_own_redis, .init = setup_cache_redis, .fini = teardown_cache_redis, .timeout = 120);

Test(cache_own_redis, cache_redis_url_keeps_entries_off_the_queue_redis)
{
    json_object *r = run_job("r1", "where", NULL);
    json_object_put(r);
    r = run_job("r2", "where", NULL);
    cr_expect_str_eq(field(r, "source"), "cache");
    json_object_put(r);
    redisReply *k = redisCommand(rc, "KEYS planb:cache:*");
    cr_expect_eq(k->elements, 0, "nothing cached on the queue Redis");
    freeReplyObject(k);
    redisContext *cc = th_redis(cache_p.port);
    k = redisCommand(cc, "KEYS planb:cache:*");
    cr_expect_eq(k->elements, 1);
    freeReplyObject(k);
    redisFree(cc);
}
