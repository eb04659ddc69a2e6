/* test_breaker_script.c -- lua/breaker.lua on its own: "failures in a row" across workers, and
 * the operator's forced states (the breaker hash's `forced`, written by the admin API).
 *
 * A real redis-server runs the embedded script; the test plays the workers: each keeps a
 * timeline of calls that complete in real time, and sends "report" ops the way
 * src/breaker.c builds them (calls, fails, slow, age of the batch's last success, ages of
 * the failures after it). Batches are of any size and arrive in any interleaving, so what
 * is tested is the merge across workers, not one worker's batching. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "planb/scripts.h"

#define CONSECUTIVE 5 /* the default breaker.consecutive */
/* on window_s failure_rate min_calls consecutive slow_rate half_open_calls open_ms max_open_ms */
static const char settings[] = "1 30 0.5 20 5 0 1 30000 300000";

static th_proc redis_p;
static redisContext *rc;
static char sha[41];

static void
setup(void)
{
    cr_assert_eq(th_redis_start(&redis_p, NULL), 0, "redis-server did not start");
    rc = th_redis(redis_p.port);
    const pb_lua_source *src = pb_scripts_find("breaker");
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %b", src->body, src->len);
    cr_assert(r && r->type == REDIS_REPLY_STRING, "SCRIPT LOAD");
    snprintf(sha, sizeof(sha), "%s", r->str);
    freeReplyObject(r);
}

static void
teardown(void)
{
    if (rc)
        redisFree(rc);
    th_proc_stop(&redis_p, 5000);
}

TestSuite(breaker_script, .init = setup, .fini = teardown, .timeout = 120);

static double
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* Sends one report; returns the breaker state code (0 closed, 1 open). */
static long long
report(const char *args)
{
    redisReply *r = redisCommand(rc,
                                 "EVALSHA %s 2 planb:breaker:m planb:stats report m "
                                 "planb:alerts %s %s 0",
                                 sha, settings, args);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "report %s: %s", args,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no array");
    long long st = r->element[0]->integer;
    freeReplyObject(r);
    return st;
}

static long long
opened(void)
{
    redisReply *r = redisCommand(rc, "HGET planb:stats breaker:m:open");
    long long n = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return n;
}

/* One simulated worker: the calls it completed since its last report. */
typedef struct sim_worker {
    double last_ok_ms;           /* this batch's last success, 0 none */
    double fail_ms[CONSECUTIVE]; /* ring of the failures since then */
    int n_fail, next;
    long calls, fails;
} sim_worker;

static void
sim_call(sim_worker *w, double at_ms, bool ok)
{
    w->calls++;
    if (ok) {
        w->last_ok_ms = at_ms;
        w->n_fail = 0;
        return;
    }
    w->fails++;
    w->fail_ms[w->next] = at_ms;
    w->next = (w->next + 1) % CONSECUTIVE;
    if (w->n_fail < CONSECUTIVE)
        w->n_fail++;
}

/* Sends w's batch as src/breaker.c would, and empties it. */
static long long
sim_flush(sim_worker *w)
{
    double now = mono_ms();
    char args[512];
    int n = snprintf(args, sizeof(args), "%ld %ld 0 %lld", w->calls, w->fails,
                     w->last_ok_ms > 0 ? (long long)(now - w->last_ok_ms) : -1LL);
    for (int i = 0; i < w->n_fail; i++) {
        int slot = ((w->next - w->n_fail + i) % CONSECUTIVE + CONSECUTIVE) % CONSECUTIVE;
        n += snprintf(args + n, sizeof(args) - (size_t)n, " %lld",
                      (long long)(now - w->fail_ms[slot]));
    }
    w->calls = w->fails = 0;
    w->last_ok_ms = 0;
    w->n_fail = 0;
    return report(args);
}

/* Plays n workers for ms of real time: calls complete at random moments, each failing with
 * probability fail_rate; a random worker reports after each step, its batch holding 0 calls,
 * a few, or hundreds. Returns the calls made. */
static long
simulate(int n, int ms, double fail_rate, unsigned seed)
{
    sim_worker w[8] = {0};
    srand(seed);
    double t0 = mono_ms(), prev = t0;
    long calls = 0;
    while (mono_ms() - t0 < ms) {
        double now = mono_ms();
        /* Calls that completed in (prev, now], ~10 per ms across the workers. */
        int k = 1 + rand() % 20;
        for (int i = 0; i < k; i++) {
            double at = prev + (now - prev) * (i + 1) / k;
            sim_call(&w[rand() % n], at, (double)rand() / RAND_MAX >= fail_rate);
        }
        calls += k;
        prev = now;
        sim_flush(&w[rand() % n]);
        if (rand() % 8 == 0)
            sim_flush(&w[rand() % n]); /* often an empty batch right after */
        struct timespec ts = {0, (rand() % 3) * 100000L};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n; i++)
        sim_flush(&w[i]);
    return calls;
}

/* After a healthy warm-up: lets 60 ms pass, so the failures a test places in the last 50 ms
 * come after its last success. */
static void
warm_up(int workers, unsigned seed)
{
    simulate(workers, 200, 0.0, seed);
    cr_assert_eq(opened(), 0);
    struct timespec ts = {0, 60 * 1000000L};
    nanosleep(&ts, NULL);
}

Test(breaker_script, noise_of_two_workers_never_opens_it)
{
    long calls = simulate(2, 3000, 0.01, 7);
    printf("figures: breaker_script workers=2 calls=%ld opened=%lld\n", calls, opened());
    cr_expect_gt(calls, 5000);
    cr_expect_eq(opened(), 0, "1%% noise opened the breaker");
}

Test(breaker_script, noise_of_eight_workers_never_opens_it)
{
    long calls = simulate(8, 3000, 0.01, 11);
    printf("figures: breaker_script workers=8 calls=%ld opened=%lld\n", calls, opened());
    cr_expect_gt(calls, 5000);
    cr_expect_eq(opened(), 0, "1%% noise opened the breaker");
}

Test(breaker_script, an_outage_opens_it_within_consecutive_failures)
{
    /* Healthy traffic first, then every call fails; eight workers report one failure each in
     * turn: the fifth failure reported after the last success opens it, none earlier. */
    warm_up(8, 3);
    sim_worker w[8] = {0};
    for (int i = 0; i < CONSECUTIVE; i++) {
        sim_call(&w[i], mono_ms(), false);
        long long st = sim_flush(&w[i]);
        cr_expect_eq(st, i + 1 < CONSECUTIVE ? 0 : 1, "state after failure %d", i + 1);
    }
    cr_expect_eq(opened(), 1);
}

Test(breaker_script, an_outage_seen_by_two_workers_in_big_batches_opens_it)
{
    warm_up(2, 5);
    double t = mono_ms();
    sim_worker a = {0}, b = {0};
    sim_call(&a, t - 30, true);
    for (int i = 0; i < 3; i++) /* each worker saw only 3 of the 6 failures */
        sim_call(&a, t - 20 + i, false), sim_call(&b, t - 19 + i, false);
    cr_expect_eq(sim_flush(&a), 0, "3 in a row so far");
    cr_expect_eq(sim_flush(&b), 1, "6 in a row with b's");
}

Test(breaker_script, a_success_reported_late_splits_the_run)
{
    /* Worker a reports 4 failures; b's success completed between the second and the third but
     * arrives after them: only 2 follow it, and 2 more failures make 4, still closed; a fifth
     * after the success opens it. */
    warm_up(2, 9);
    double t = mono_ms();
    sim_worker a = {0}, b = {0};
    for (int i = 0; i < 4; i++)
        sim_call(&a, t - 40 + 10 * i, false); /* at t-40, t-30, t-20, t-10 */
    cr_expect_eq(sim_flush(&a), 0);
    sim_call(&b, t - 25, true);
    cr_expect_eq(sim_flush(&b), 0);
    sim_worker c = {0};
    sim_call(&c, mono_ms(), false);
    sim_call(&c, mono_ms(), false);
    cr_expect_eq(sim_flush(&c), 0, "2 + 2 after the late success");
    sim_call(&c, mono_ms(), false);
    cr_expect_eq(sim_flush(&c), 1, "the fifth after it");
}

Test(breaker_script, failures_reported_in_tiny_batches_among_successes_do_not_add_up)
{
    /* The old merge added failure-only batches to the shared count: eight workers each
     * reporting a lone failure, while the others report successes that completed after
     * those failures, must not open it. */
    warm_up(8, 13);
    for (int round = 0; round < 50; round++) {
        sim_worker lone = {0}, busy = {0};
        double t = mono_ms();
        sim_call(&lone, t - 2, false);
        sim_call(&busy, t - 3, true);
        sim_call(&busy, t - 1, true);
        sim_flush(&lone);
        sim_flush(&busy);
    }
    cr_expect_eq(opened(), 0);
}

Test(breaker_script, failure_only_batches_after_a_later_success_do_not_add_up)
{
    /* Five workers with little traffic each report one lone failure, late: a busy worker's
     * success completed after all of them and reached Redis first. None of them
     * is in a run, so it stays closed; the old merge added them up to 5. */
    warm_up(8, 17);
    double t = mono_ms();
    sim_worker busy = {0};
    sim_call(&busy, t - 1, true);
    cr_expect_eq(sim_flush(&busy), 0);
    for (int i = 0; i < CONSECUTIVE; i++) {
        sim_worker lone = {0};
        sim_call(&lone, t - 10 + i, false);
        cr_expect_eq(sim_flush(&lone), 0, "lone failure %d", i + 1);
    }
    cr_expect_eq(opened(), 0);
}

/* One op with its ARGV[5] (the reply's array, caller frees). */
static redisReply *
op(const char *name, const char *arg5)
{
    redisReply *r =
        redisCommand(rc, "EVALSHA %s 2 planb:breaker:m planb:stats %s m planb:alerts %s %s 0", sha,
                     name, settings, arg5);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 5, "%s %s: %s", name, arg5,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "no array");
    return r;
}

static long long
op_field(const char *name, const char *arg5, size_t i)
{
    redisReply *r = op(name, arg5);
    long long v = r->element[i]->integer;
    freeReplyObject(r);
    return v;
}

/* What the admin API writes: forced (and who, when) set to v, or removed (v NULL). */
static void
force(const char *v)
{
    redisReply *r =
        v ? redisCommand(rc, "HSET planb:breaker:m forced %s forced_by ops forced_at 1", v)
          : redisCommand(rc, "HDEL planb:breaker:m forced forced_by forced_at");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

static bool
has_field(const char *field)
{
    redisReply *r = redisCommand(rc, "HEXISTS planb:breaker:m %s", field);
    bool has = r && r->integer == 1;
    freeReplyObject(r);
    return has;
}

static long long
breaker_pttl(void)
{
    redisReply *r = redisCommand(rc, "PTTL planb:breaker:m");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

Test(breaker_script, forced_open_refuses_whatever_the_counts_and_auto_resumes_as_it_was)
{
    cr_expect_eq(op_field("report", "10 0 0 5", 0), 0, "closed and counting");
    cr_assert_gt(breaker_pttl(), 0);
    force("open");
    redisReply *r = op("report", "0 0 0 -1");
    cr_expect_eq(r->element[0]->integer, 1, "shown open");
    cr_expect_eq(r->element[1]->integer, 1000, "longer than a report period");
    freeReplyObject(r);
    cr_expect_eq(breaker_pttl(), -1, "an operator's switch does not expire");
    freeReplyObject(redisCommand(rc, "HDEL planb:breaker:m w_calls"));
    cr_expect_eq(op_field("report", "100 0 0 1", 0), 1);
    cr_expect(!has_field("w_calls"), "calls while forced are not counted");
    cr_expect_eq(op_field("probe", "2000", 3), 0, "no probe granted");
    cr_expect_eq(op_field("probe_ok", "0", 0), 1);
    force(NULL);
    cr_expect_eq(op_field("report", "0 0 0 -1", 0), 0, "closed, as it was");
    cr_expect_eq(opened(), 0, "no transition");
}

Test(breaker_script, forced_closed_never_trips_and_auto_resumes_as_it_was)
{
    /* open it the usual way: 5 failures in a row */
    cr_expect_eq(op_field("report", "5 5 0 -1 5 4 3 2 1", 0), 1);
    cr_assert_eq(opened(), 1);
    force("closed");
    cr_expect_eq(op_field("report", "0 0 0 -1", 0), 0, "shown closed");
    cr_expect_eq(op_field("report", "100 100 0 -1 5 4 3 2 1", 0), 0, "failures never trip it");
    cr_expect_eq(op_field("probe", "2000", 3), 1, "every call allowed");
    cr_expect_eq(op_field("probe_fail", "0", 0), 0);
    cr_expect_gt(op_field("hold", "5000", 2), 0, "a Retry-After hold still holds");
    redisReply *r = redisCommand(rc, "HGET planb:breaker:m state");
    cr_expect_str_eq(r->str, "open", "the state underneath is untouched");
    freeReplyObject(r);
    cr_expect_eq(opened(), 1, "no transition while forced");
    r = redisCommand(rc, "HGET planb:stats breaker:m:half_open");
    cr_expect_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    force(NULL);
    r = op("report", "0 0 0 -1");
    cr_expect_eq(r->element[0]->integer, 1, "open again, as it was");
    cr_expect_gt(r->element[1]->integer, 20000, "with most of its 30 s left");
    freeReplyObject(r);
}

Test(breaker_script, a_forced_value_other_than_open_or_closed_is_ignored)
{
    force("sideways");
    cr_expect_eq(op_field("report", "5 5 0 -1 5 4 3 2 1", 0), 1, "the rules apply");
    cr_expect_eq(opened(), 1);
}
