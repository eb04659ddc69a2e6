/* test_stats.c -- the planb:stats fields one finished job bumps (pb_stats_count_job), the
 * latency buckets, and the parsing of snapshot.lua's reply (no Redis: replies are hand-made).
 *
 * Tallies are checked as whole sets: every expected field with its count, each once, and
 * nothing else, since each field becomes a Redis hash field and a /metrics series. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "planb/breaker.h"
#include "planb/stats.h"
#include "th_config.h"
#include "th_replies.h"

/* Two models on two providers of two dialects, one route over both. */
static const char *const tally_cfg =
    "{\"providers\": {\"pa\": {\"type\": \"openai\", \"base_url\": \"http://a\"},"
    " \"pb\": {\"type\": \"anthropic\", \"base_url\": \"http://b\"}},"
    " \"models\": {\"ma\": {\"provider\": \"pa\"}, \"mb\": {\"provider\": \"pb\", \"tier\": 2}},"
    " \"routes\": {\"default\": {\"chain\": [\"ma\", \"mb\"]}}}";

/* The count of field in t, -1 when t has no such field. */
static long
tally_get(const pb_stats_tally *t, const char *field)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->fields[i], field) == 0)
            return t->counts[i];
    return -1;
}

/* "field=count ..." of t, for failure messages (static buffer). */
static const char *
tally_list(const pb_stats_tally *t)
{
    static char buf[16384];
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n && used < sizeof(buf); i++)
        used +=
            (size_t)snprintf(buf + used, sizeof(buf) - used, "%s=%ld ", t->fields[i], t->counts[i]);
    return buf;
}

typedef struct want {
    const char *field; /* planb:stats field */
    long count;        /* what it gains */
} want;

/* Expects t to hold exactly the n fields of w, each once, with its count. */
static void
expect_tally(const pb_stats_tally *t, const want *w, size_t n)
{
    for (size_t i = 0; i < t->n; i++)
        for (size_t k = i + 1; k < t->n; k++)
            cr_expect_str_neq(t->fields[i], t->fields[k], "%s twice in: %s", t->fields[i],
                              tally_list(t));
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(tally_get(t, w[i].field), w[i].count, "%s: %ld, want %ld in: %s", w[i].field,
                     tally_get(t, w[i].field), w[i].count, tally_list(t));
    cr_expect_eq(t->n, n, "%zu fields, want %zu: %s", t->n, n, tally_list(t));
}

#define EXPECT_TALLY(t, ...)                                                                       \
    do {                                                                                           \
        const want w_[] = {__VA_ARGS__};                                                           \
        expect_tally((t), w_, sizeof(w_) / sizeof(w_[0]));                                         \
    } while (0)

/* An attempt of model m with outcome. */
static pb_attempt
attempt(int m, int try_no, const char *outcome, int64_t ms)
{
    pb_attempt a = {.model = m, .try_no = try_no, .elapsed_ms = ms, .reached = true};
    snprintf(a.outcome, sizeof(a.outcome), "%s", outcome);
    return a;
}

static pb_config *cfg;       /* tally_cfg, for every count_job test */
static int ma, mb;           /* its models */
static pb_stats_tally tally; /* what count() fills */

static void
tally_setup(void)
{
    cfg = th_config_parse(tally_cfg);
    ma = th_config_model(cfg, "ma");
    mb = th_config_model(cfg, "mb");
}

static void
tally_teardown(void)
{
    pb_config_free(cfg);
}

/* A job of the route "default" with n attempts at att, pushed without submitted_at_ms. */
static pb_stats_job
job_of(pb_status status, pb_source source, int model, int64_t latency_ms, const pb_attempt *att,
       size_t n)
{
    return (pb_stats_job){.status = status,
                          .source = source,
                          .route = th_config_route(cfg, "default"),
                          .model = model,
                          .latency_ms = latency_ms,
                          .queued_ms = -1,
                          .attempts = att,
                          .n_attempts = n};
}

/* The tally of job (in the file's one tally, which each count starts afresh). */
static const pb_stats_tally *
count(const pb_stats_job *job)
{
    pb_stats_count_job(cfg, job, &tally);
    return &tally;
}

TestSuite(count_job, .init = tally_setup, .fini = tally_teardown);

Test(count_job, ok_primary_with_one_attempt)
{
    pb_attempt att[] = {attempt(ma, 1, "ok", 100)};
    pb_stats_job job = job_of(PB_STATUS_OK, PB_SOURCE_PRIMARY, ma, 120, att, 1);
    EXPECT_TALLY(count(&job), {"jobs", 1}, {"ok", 1}, {"source:primary", 1},
                 {"jobs:default:primary", 1}, {"latency_le:250", 1}, {"latency_sum_ms", 120},
                 {"attempts:ma", 1}, {"provider_attempts:pa", 1}, {"mlat_le:ma:100", 1});
}

Test(count_job, fallback_after_a_failed_attempt)
{
    pb_attempt att[] = {attempt(ma, 1, "http_503", 40), attempt(mb, 1, "ok", 200)};
    pb_stats_job job = job_of(PB_STATUS_OK, PB_SOURCE_FALLBACK, mb, 260, att, 2);
    job.cache_missed = true;
    EXPECT_TALLY(count(&job), {"jobs", 1}, {"ok", 1}, {"source:fallback", 1},
                 {"jobs:default:fallback", 1}, {"latency_le:500", 1}, {"latency_sum_ms", 260},
                 {"attempts:ma", 1}, {"provider_attempts:pa", 1}, {"errors:ma:http_503", 1},
                 {"provider_errors:pa", 1}, {"attempts:mb", 1}, {"provider_attempts:pb", 1},
                 {"cache:misses", 1}, {"mlat_le:ma:50", 1}, {"mlat_le:mb:250", 1});
}

Test(count_job, identical_outcomes_merge_into_one_field)
{
    pb_attempt att[] = {attempt(ma, 1, "timeout", 1000), attempt(ma, 2, "timeout", 1000),
                        attempt(mb, 1, "http_429", 5), attempt(mb, 2, "ok", 300)};
    pb_stats_job job = job_of(PB_STATUS_OK, PB_SOURCE_FALLBACK, mb, 2400, att, 4);
    EXPECT_TALLY(count(&job), {"jobs", 1}, {"ok", 1}, {"source:fallback", 1},
                 {"jobs:default:fallback", 1}, {"latency_le:2500", 1}, {"latency_sum_ms", 2400},
                 {"attempts:ma", 2}, {"provider_attempts:pa", 2}, {"errors:ma:timeout", 2},
                 {"provider_errors:pa", 2}, {"attempts:mb", 2}, {"provider_attempts:pb", 2},
                 {"errors:mb:http_429", 1}, {"provider_errors:pb", 1}, {"mlat_le:ma:1000", 2},
                 {"mlat_le:mb:50", 1}, {"mlat_le:mb:500", 1});
}

Test(count_job, latency_sum_is_the_latency)
{
    static const struct {
        int64_t ms;
        const char *bucket;
    } cases[] = {{0, "latency_le:50"},
                 {50, "latency_le:50"},
                 {30000, "latency_le:30000"},
                 {30001, "latency_le:inf"},
                 {7200000, "latency_le:inf"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pb_stats_job job = job_of(PB_STATUS_DEGRADED, PB_SOURCE_DEGRADED, -1, cases[i].ms, NULL, 0);
        EXPECT_TALLY(count(&job), {"jobs", 1}, {"degraded", 1}, {"source:degraded", 1},
                     {"jobs:default:degraded", 1}, {cases[i].bucket, 1},
                     {"latency_sum_ms", (long)cases[i].ms});
    }
}

Test(count_job, cache_hits_count_per_provider)
{
    pb_stats_job hit = job_of(PB_STATUS_OK, PB_SOURCE_CACHE, mb, 5, NULL, 0);
    EXPECT_TALLY(count(&hit), {"jobs", 1}, {"ok", 1}, {"source:cache", 1},
                 {"jobs:default:cache", 1}, {"latency_le:50", 1}, {"latency_sum_ms", 5},
                 {"cache:hits:pb", 1});

    /* A hit whose answering model is unknown counts no provider. */
    hit.model = -1;
    EXPECT_TALLY(count(&hit), {"jobs", 1}, {"ok", 1}, {"source:cache", 1},
                 {"jobs:default:cache", 1}, {"latency_le:50", 1}, {"latency_sum_ms", 5});

    /* Every model failed, the stale entry answered. */
    pb_attempt att[] = {attempt(ma, 1, "timeout", 1000), attempt(mb, 1, "http_500", 20)};
    pb_stats_job stale = job_of(PB_STATUS_DEGRADED, PB_SOURCE_STALE_CACHE, ma, 1100, att, 2);
    stale.cache_missed = true;
    EXPECT_TALLY(count(&stale), {"jobs", 1}, {"degraded", 1}, {"source:stale_cache", 1},
                 {"jobs:default:stale_cache", 1}, {"latency_le:2500", 1}, {"latency_sum_ms", 1100},
                 {"attempts:ma", 1}, {"provider_attempts:pa", 1}, {"errors:ma:timeout", 1},
                 {"provider_errors:pa", 1}, {"attempts:mb", 1}, {"provider_attempts:pb", 1},
                 {"errors:mb:http_500", 1}, {"provider_errors:pb", 1}, {"cache:misses", 1},
                 {"cache:stale_hits:pa", 1}, {"mlat_le:ma:1000", 1}, {"mlat_le:mb:50", 1});

    /* Answered from another job's call. */
    pb_stats_job waited = job_of(PB_STATUS_OK, PB_SOURCE_PRIMARY, ma, 300, NULL, 0);
    waited.cache_missed = true;
    waited.coalesced = true;
    EXPECT_TALLY(count(&waited), {"jobs", 1}, {"ok", 1}, {"source:primary", 1},
                 {"jobs:default:primary", 1}, {"latency_le:500", 1}, {"latency_sum_ms", 300},
                 {"cache:misses", 1}, {"cache:coalesced", 1});
}

Test(count_job, an_unparsed_job_has_no_source_or_route)
{
    pb_stats_job job = job_of(PB_STATUS_INVALID, PB_SOURCE_NONE, -1, 2, NULL, 0);
    job.route = -1;
    const pb_stats_tally *t = count(&job);
    EXPECT_TALLY(t, {"jobs", 1}, {"invalid", 1}, {"latency_le:50", 1}, {"latency_sum_ms", 2});
    for (size_t i = 0; i < t->n; i++) {
        cr_expect_neq(strncmp(t->fields[i], "source:", 7), 0, "%s", t->fields[i]);
        cr_expect_neq(strncmp(t->fields[i], "jobs:", 5), 0, "%s", t->fields[i]);
    }
}

Test(count_job, a_reused_tally_starts_empty)
{
    pb_attempt att[] = {attempt(ma, 1, "http_500", 10), attempt(ma, 2, "ok", 10)};
    pb_stats_job job = job_of(PB_STATUS_OK, PB_SOURCE_PRIMARY, ma, 20, att, 2);
    count(&job);
    EXPECT_TALLY(count(&job), {"jobs", 1}, {"ok", 1}, {"source:primary", 1},
                 {"jobs:default:primary", 1}, {"latency_le:50", 1}, {"latency_sum_ms", 20},
                 {"attempts:ma", 2}, {"provider_attempts:pa", 2}, {"errors:ma:http_500", 1},
                 {"provider_errors:pa", 1}, {"mlat_le:ma:50", 2});
}

/* The queue wait counts in its own buckets when the job said when it was pushed; an attempt
 * refused before any call (breaker open, held off) has no latency to count, a 0-ms call has. */
Test(count_job, wait_buckets_and_attempt_latency)
{
    pb_attempt att[] = {attempt(ma, 1, "breaker_open", 0), attempt(mb, 1, "ok", 30001),
                        attempt(mb, 2, "ok", 0)};
    att[0].reached = false;
    pb_stats_job job = job_of(PB_STATUS_OK, PB_SOURCE_FALLBACK, mb, 30010, att, 3);
    job.queued_ms = 2600;
    EXPECT_TALLY(count(&job), {"jobs", 1}, {"ok", 1}, {"source:fallback", 1},
                 {"jobs:default:fallback", 1}, {"latency_le:inf", 1}, {"latency_sum_ms", 30010},
                 {"wait_le:5000", 1}, {"attempts:ma", 1}, {"provider_attempts:pa", 1},
                 {"errors:ma:breaker_open", 1}, {"provider_errors:pa", 1}, {"attempts:mb", 2},
                 {"provider_attempts:pb", 2}, {"mlat_le:mb:inf", 1}, {"mlat_le:mb:50", 1});

    job.queued_ms = 0;
    cr_expect_eq(tally_get(count(&job), "wait_le:50"), 1, "%s", tally_list(&tally));
}

/* 100 distinct outcomes on one model whose names are as long as config allows: the tally
 * keeps PB_QUEUE_MAX_COUNTERS fields, drops the rest, and never writes past names[]. */
Test(count_job, more_fields_than_the_cap_never_overflow)
{
    char model[65], prov[65], json[1024];
    memset(model, 'm', 64);
    model[64] = '\0';
    memset(prov, 'p', 64);
    prov[64] = '\0';
    snprintf(json, sizeof(json),
             "{\"providers\": {\"%s\": {\"type\": \"openai\", \"base_url\": \"http://a\"}},"
             " \"models\": {\"%s\": {\"provider\": \"%s\"}},"
             " \"routes\": {\"default\": {\"chain\": [\"%s\"]}}}",
             prov, model, prov, model);
    pb_config *big = th_config_parse(json);
    enum { N = 100 };
    pb_attempt att[N];
    for (int i = 0; i < N; i++) {
        att[i] = (pb_attempt){.model = 0, .try_no = i + 1, .elapsed_ms = 1};
        snprintf(att[i].outcome, sizeof(att[i].outcome), "x%030d", i); /* 31 bytes: the most */
    }
    pb_stats_job job = {.status = PB_STATUS_DEGRADED,
                        .source = PB_SOURCE_DEGRADED,
                        .route = 0,
                        .model = -1,
                        .latency_ms = 9,
                        .attempts = att,
                        .n_attempts = N,
                        .cache_missed = true};
    pb_stats_tally t;
    memset(&t, 0xa5, sizeof(t));
    pb_stats_count_job(big, &job, &t);
    cr_assert_eq(t.n, PB_QUEUE_MAX_COUNTERS, "%s", tally_list(&t));
    cr_assert_leq(t.names_used, sizeof(t.names));
    for (size_t i = 0; i < t.n; i++) {
        cr_assert_lt(strlen(t.fields[i]), 160, "%s", t.fields[i]);
        for (size_t k = i + 1; k < t.n; k++)
            cr_assert_str_neq(t.fields[i], t.fields[k]);
    }
    char name[256];
    cr_expect_eq(tally_get(&t, "jobs"), 1);
    cr_expect_eq(tally_get(&t, "latency_sum_ms"), 9);
    /* Fields that were already in keep counting past the cap. */
    snprintf(name, sizeof(name), "attempts:%s", model);
    cr_expect_eq(tally_get(&t, name), N);
    snprintf(name, sizeof(name), "provider_errors:%s", prov);
    cr_expect_eq(tally_get(&t, name), N);
    snprintf(name, sizeof(name), "errors:%s:x%030d", model, 0);
    cr_expect_eq(tally_get(&t, name), 1);
    snprintf(name, sizeof(name), "errors:%s:x%030d", model, N - 1);
    cr_expect_eq(tally_get(&t, name), -1, "past the cap: dropped");
    cr_expect_eq(tally_get(&t, "cache:misses"), -1, "past the cap: dropped");
    pb_config_free(big);
}

Test(latency, buckets)
{
    cr_assert_str_eq(pb_stats_latency_field(0), "latency_le:50");
    cr_assert_str_eq(pb_stats_latency_field(50), "latency_le:50");
    cr_assert_str_eq(pb_stats_latency_field(51), "latency_le:100");
    cr_assert_str_eq(pb_stats_latency_field(30000), "latency_le:30000");
    cr_assert_str_eq(pb_stats_latency_field(30001), "latency_le:inf");
}

Test(snapshot, parses_a_reply_and_refuses_a_malformed_one)
{
    pb_config *snap_cfg = th_config_parse(TH_SNAPSHOT_CFG);
    redisReply *r = th_snapshot_reply();
    pb_stats_snapshot snap;
    cr_assert_eq(pb_stats_parse(snap_cfg, r, &snap), PB_OK);
    cr_assert_eq(snap.queue_depth[0], 3);
    cr_assert_eq(snap.inflight, 2);
    cr_assert_eq(snap.queue_age_ms[0], 42500);
    cr_assert_eq(snap.queue_scheduled[0], 4);
    cr_assert_eq(snap.dead_letters, 5);
    cr_assert_eq(snap.workers_alive, 2);
    cr_assert_eq(snap.usage[0][0], 7);
    cr_assert_eq(snap.usage[0][1], 1200);
    cr_assert_eq(snap.breaker_state[0], PB_BREAKER_OPEN);
    cr_assert_eq(pb_stats_get(&snap, "jobs"), 10);
    cr_assert_float_eq(pb_stats_fallback_rate(snap.win[1]), 0.4, 1e-9);

    json_object *o = pb_stats_to_json(snap_cfg, &snap);
    cr_assert_not_null(strstr(json_object_to_json_string(o), "\"fallback_rate\": 0.4"), "%s",
                       json_object_to_json_string(o));
    json_object_put(o);
    pb_stats_snapshot_free(&snap);
    /* A malformed reply is refused, not crashed on. */
    r->element[2]->type = REDIS_REPLY_NIL;
    cr_assert_eq(pb_stats_parse(snap_cfg, r, &snap), PB_ERR);
    r->element[2]->type = REDIS_REPLY_INTEGER;
    cr_assert_eq(pb_stats_parse(snap_cfg, r, &snap), PB_OK);
    pb_stats_snapshot_free(&snap);
    r->element[6]->type = REDIS_REPLY_NIL; /* workers alive */
    cr_assert_eq(pb_stats_parse(snap_cfg, r, &snap), PB_ERR);
    freeReplyObject(r);
    pb_config_free(snap_cfg);
}
