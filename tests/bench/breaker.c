/* breaker.c (bench_breaker) -- the breaker and hedging at full load, figures only.
 *
 * Starts its own redis-server, planb-mock and planb (2 workers, default breaker settings,
 * the primary m1 and the backup m2 on one mock), then:
 *   1. all ok: N jobs, jobs/s (the reference for run 3);
 *   2. noise: the primary fails 1% of calls at random (each cured by the one retry): the
 *      share of jobs the primary answers and whether the breaker ever opened;
 *   3. primary down (every call 500): how long after the first push the shared breaker
 *      opened (polled every 5 ms), calls the primary got, jobs/s as a ratio to run 1;
 *   4. hedging: 10% of the primary's answers take 3 s, the backup takes 50 ms,
 *      hedge_after_ms 300: p50/p99 of latency_ms and upstream calls per job.
 *   With --noise-runs R it runs only the noise case of issue 32 R times instead (retries 1,
 *   backoff_ms 10, backoff_max_ms 50, the primary's timeout_ms 5000, N jobs at once) and prints
 *   each run and the number of runs in which the breaker opened (the target is 0) first, then
 *   the four runs above (3 says how soon a dead primary opens it).
 *   bench_breaker [--quick] [--jobs N] [--hedge-jobs M] [--noise-runs R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "th_bench.h"

static th_proc redis_p, mock_p, planb_p;
static const char *skip = "skip"; /* the jobs' cache mode */

static int m1_timeout_ms = 10000;
static const char *route_retry = "\"retries\": 1, \"backoff_ms\": 0";

static void
start_planb(const char *route_extra)
{
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 2,"
             " \"concurrency\": 512, \"claim_batch\": 256,"
             " \"providers\": {\"mock\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_BENCH_KEY\"}},"
             " \"models\": {\"m1\": {\"provider\": \"mock\", \"timeout_ms\": %d},"
             " \"m2\": {\"provider\": \"mock\", \"tier\": 2}},"
             " \"routes\": {\"default\": {\"chain\": [\"m1\", \"m2\"], \"deadline_ms\": 30000,"
             " %s %s}}}",
             redis_p.port, mock_p.port, m1_timeout_ms, route_retry, route_extra);
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-level", "warn", NULL};
    if (th_planb_start(&planb_p, cfg, args) != 0) {
        fprintf(stderr, "bench_breaker: cannot start planb\n");
        exit(1);
    }
}

/* A fresh world for each run: empty Redis, mock counters at zero, planb started. */
static void
fresh_run(redisContext *rc, const char *m1, const char *m2, const char *route_extra)
{
    redisReply *r = redisCommand(rc, "FLUSHALL");
    freeReplyObject(r);
    th_mock_reset(&mock_p);
    th_mock_set(&mock_p, "m1", m1);
    th_mock_set(&mock_p, "m2", m2);
    start_planb(route_extra);
    wait_workers(rc, 2);
}

static long long
hget_ll(redisContext *rc, const char *key, const char *field)
{
    redisReply *r = redisCommand(rc, "HGET %s %s", key, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

/* For th_wait_for: the jobs are done; notes when m1's breaker was first seen open. */
typedef struct down_wait {
    redisContext *rc;
    long target;
    int64_t t0, opened_ms; /* -1 until seen open */
} down_wait;

static bool
down_done(void *arg)
{
    down_wait *w = arg;
    if (w->opened_ms < 0) {
        redisReply *r = redisCommand(w->rc, "HGET planb:breaker:m1 state");
        if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "open") == 0)
            w->opened_ms = now_ms() - w->t0;
        freeReplyObject(r);
    }
    return stat_jobs(w->rc) >= w->target;
}

/* Issue 32's scenario, runs times over; returns the number of runs in which m1's breaker
 * opened. Each run prints its figures, with the failures by class. */
static int
noise_runs(redisContext *rc, int runs, int jobs)
{
    m1_timeout_ms = 5000;
    route_retry = "\"retries\": 1, \"backoff_ms\": 10, \"backoff_max_ms\": 50";
    int opened_runs = 0;
    for (int run = 1; run <= runs; run++) {
        fresh_run(rc, "{\"mode\":\"ok\",\"fail_rate\":0.01,\"fail_status\":500}",
                  "{\"mode\":\"ok\"}", "");
        int64_t t0 = now_ms();
        push_jobs(rc, "noise", jobs, th_plain_job, &skip);
        bool done = wait_jobs(rc, jobs, 300000);
        long long opened = hget_ll(rc, "planb:stats", "breaker:m1:open");
        long long primary = hget_ll(rc, "planb:stats", "source:primary");
        opened_runs += opened > 0;
        printf("bench_breaker noise_run=%d jobs=%d done=%s jobs_per_s=%.0f primary=%lld "
               "http_500=%lld opened=%lld\n",
               run, jobs, done ? "yes" : "NO", jobs / ((now_ms() - t0) / 1000.0), primary,
               hget_ll(rc, "planb:stats", "errors:m1:http_500"), opened);
        if (opened > 0) {
            redisReply *r = redisCommand(rc, "HGETALL planb:stats");
            for (size_t i = 0; r && i + 1 < r->elements; i += 2)
                if (strncmp(r->element[i]->str, "errors:m1:", 10) == 0)
                    printf("bench_breaker   %s=%s\n", r->element[i]->str, r->element[i + 1]->str);
            freeReplyObject(r);
        }
        fflush(stdout);
        th_proc_stop(&planb_p, 10000);
    }
    printf("bench_breaker noise_runs=%d opened_runs=%d target=0\n", runs, opened_runs);
    m1_timeout_ms = 10000;
    route_retry = "\"retries\": 1, \"backoff_ms\": 0";
    return opened_runs;
}

int
main(int argc, char **argv)
{
    int jobs = 30000, hedge_jobs = 3000, runs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            jobs = 3000;
            hedge_jobs = 500;
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            jobs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--hedge-jobs") == 0 && i + 1 < argc) {
            hedge_jobs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--noise-runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        }
    }
    setenv("PB_BENCH_KEY", "bench-key", 1);
    if (th_redis_start(&redis_p, NULL) != 0 || th_mock_start(&mock_p, NULL) != 0) {
        fprintf(stderr, "bench_breaker: cannot start redis/mock\n");
        return 1;
    }
    redisContext *rc = th_redis(redis_p.port);
    const char *ok = "{\"mode\":\"ok\"}";
    if (runs > 0)
        noise_runs(rc, runs, jobs);

    /* 1. all ok */
    fresh_run(rc, ok, ok, "");
    int64_t t0 = now_ms();
    push_jobs(rc, "ok", jobs, th_plain_job, &skip);
    bool done = wait_jobs(rc, jobs, 300000);
    double ok_rate = jobs / ((now_ms() - t0) / 1000.0);
    printf("bench_breaker all_ok jobs=%d done=%s jobs_per_s=%.0f\n", jobs, done ? "yes" : "NO",
           ok_rate);
    fflush(stdout);
    th_proc_stop(&planb_p, 10000);

    /* 2. 1% random failures */
    fresh_run(rc, "{\"mode\":\"ok\",\"fail_rate\":0.01,\"fail_status\":500}", ok, "");
    t0 = now_ms();
    push_jobs(rc, "noise", jobs, th_plain_job, &skip);
    done = wait_jobs(rc, jobs, 300000);
    double noise_rate = jobs / ((now_ms() - t0) / 1000.0);
    long long primary = hget_ll(rc, "planb:stats", "source:primary");
    printf("bench_breaker noise_1pct jobs=%d done=%s jobs_per_s=%.0f primary_share=%.4f "
           "primary_failures=%lld breaker_opened=%lld\n",
           jobs, done ? "yes" : "NO", noise_rate, (double)primary / jobs,
           hget_ll(rc, "planb:stats", "errors:m1:http_500"),
           hget_ll(rc, "planb:stats", "breaker:m1:open"));
    fflush(stdout);
    th_proc_stop(&planb_p, 10000);

    /* 3. primary down */
    fresh_run(rc, "{\"mode\":\"status\",\"status\":500}", ok, "");
    down_wait w = {rc, jobs, now_ms(), -1};
    push_jobs(rc, "down", jobs, th_plain_job, &skip);
    done = th_wait_for(down_done, &w, 100000, 2);
    double down_rate = jobs / ((now_ms() - w.t0) / 1000.0);
    printf("bench_breaker primary_down jobs=%d done=%s opened_after_ms=%lld primary_calls=%ld "
           "jobs_per_s=%.0f ratio_to_all_ok=%.2f\n",
           jobs, done ? "yes" : "NO", (long long)w.opened_ms, th_mock_requests(&mock_p, "m1"),
           down_rate, down_rate / ok_rate);
    fflush(stdout);
    th_proc_stop(&planb_p, 10000);

    /* 4. hedging a slow tail */
    fresh_run(rc, "{\"mode\":\"ok\",\"slow_rate\":0.1,\"slow_ms\":3000}",
              "{\"mode\":\"ok\",\"latency_ms\":50}", ", \"hedge_after_ms\": 300");
    t0 = now_ms();
    push_jobs(rc, "hedge", hedge_jobs, th_plain_job, &skip);
    done = wait_jobs(rc, hedge_jobs, 300000);
    long p50, p99;
    latency_percentiles(rc, "hedge", hedge_jobs, 1, false, &p50, &p99);
    long calls = th_mock_requests(&mock_p, "m1") + th_mock_requests(&mock_p, "m2");
    printf("bench_breaker hedge jobs=%d done=%s p50_ms=%ld p99_ms=%ld target_p99_ms=450 "
           "upstream_calls=%ld calls_per_job=%.3f hedges_started=%lld won=%lld\n",
           hedge_jobs, done ? "yes" : "NO", p50, p99, calls, (double)calls / hedge_jobs,
           hget_ll(rc, "planb:stats", "hedges:m2:started"),
           hget_ll(rc, "planb:stats", "hedges:m2:won"));
    th_proc_stop(&planb_p, 10000);
    redisFree(rc);
    th_proc_stop(&mock_p, 5000);
    th_proc_stop(&redis_p, 5000);
    return 0;
}
