/* jobs.c (bench_jobs) -- end-to-end throughput, latency and memory of planb serve.
 *
 * Starts its own redis-server, planb-mock and planb (2 workers), then:
 *   1. zero latency: pushes N jobs (pipelined LPUSH) and times first push ->
 *      last result (planb:stats "jobs" reaching N); prints jobs/s and p50/p99
 *      of each job's queued_ms + latency_ms.
 *   1b. tool-calling mix against plain text, same planb right after run 1, in R rounds (30;
 *      6 with --quick) of one run of M jobs (3000; 1000 with --quick) of each kind, the order
 *      flipped every round: a tools run has the primary answer with tool calls and alternates
 *      a first turn (params.tools, tool_choice) with a second turn (the assistant's tool_calls
 *      and the tool result, answered with text); a plain run is run 1's jobs again. A run's
 *      jobs are written before its clock starts, and its results deleted after it
 *      (drop_results). Prints each round's two jobs/s and their ratio, then
 *      ratio_to_plain_text: the median of the rounds' ratios (the price of parsing,
 *      translating and answering tools), their spread and the best-of figures, and the CPU
 *      time per job of planb's processes + the mock + Redis (/proc) for each kind;
 *      planb_cpu_ratio = planb's plain CPU per job / its tools CPU per job, and all_cpu_ratio
 *      the same over all three (what the machine spends, whoever spends it).
 *   1c. TLS: zero-latency runs of T jobs (20000; 2000 with --quick) with planb on Redis's TLS
 *      port against its plaintext port, in K rounds (6; 2 with --quick) of one run each, the
 *      order flipped every round; prints each round's jobs/s and ratio, then ratio_to_plain:
 *      their median (the floor is 0.8). Redis serves both ports throughout.
 *   1d. dialects: the same zero-latency jobs on a Bedrock model (Converse, SigV4-signed) and on
 *      a Gemini model (generateContent) against an OpenAI-compatible model, all on planb-mock
 *      and one planb, in D rounds (6; 2 with --quick) of one run of D jobs (5000; 1000 with
 *      --quick) per dialect, the order rotated every round; prints each round's jobs/s, then
 *      bedrock_ratio and gemini_ratio: the medians of the rounds' ratios to OpenAI's (the
 *      issue's floor is 0.8), and the CPU us per job of planb for each dialect.
 *   2. primary down: the primary answers 500 to every call (breaker on, default
 *      config); the same N jobs, timed the same way; prints jobs/s and its ratio
 *      to run 1 (after the first few jobs the breaker skips the primary).
 *   3. slow upstream: the mock answers after 2 s; pushes S jobs at once and
 *      prints the completion time and the peak RSS (VmHWM) summed over workers.
 * A benchmark: prints figures, fails only when it cannot run.
 * Jobs are distinct questions with "cache": "skip" unless --cache use, which adds the
 * cache lookup (a miss and a store per job) to the measured path.
 *   bench_jobs [--quick] [--jobs N] [--rounds R] [--mix-jobs M] [--slow-jobs S]
 *              [--workers W] [--cache use|skip] [--tls-jobs T] [--tls-rounds K]
 *              [--dialect-jobs D] [--dialect-rounds E]
 *   (S = 0 skips run 3, K = 0 run 1c, E = 0 run 1d) */
#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "th_bench.h"

static th_proc redis_p, mock_p, planb_p;
static const char *cache_mode = "skip"; /* the jobs' "cache" field */

#define MIX_ROUNDS_MAX 200

static bool tools_mix; /* push_jobs writes the tool-calling mix of run 1b */

/* Job i of run (text, or one turn of a tool-calling conversation) into buf. */
static void
bench_job(char *buf, size_t cap, const char *run, int i, void *arg)
{
    (void)arg;
    if (tools_mix)
        th_tool_job(buf, cap, run, i, &cache_mode);
    else
        th_plain_job(buf, cap, run, i, &cache_mode);
}

/* planb on Redis's plaintext port, or its TLS port (run 1c) */
static void
start_planb_on(bool tls, int workers, int concurrency, int timeout_ms)
{
    char cfg[2048], redis[1024];
    if (tls)
        snprintf(redis, sizeof(redis),
                 "\"url\": \"rediss://localhost:%d/0\", \"tls\": {\"ca_file\": \"%s/ca.crt\"}",
                 redis_p.tls_port, th_certs());
    else
        snprintf(redis, sizeof(redis), "\"url\": \"redis://127.0.0.1:%d/0\"", redis_p.port);
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {%s}, \"workers\": %d,"
             " \"concurrency\": %d, \"claim_batch\": 256,"
             " \"providers\": {\"mock\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_BENCH_KEY\"}},"
             " \"models\": {\"m1\": {\"provider\": \"mock\", \"timeout_ms\": %d},"
             " \"m2\": {\"provider\": \"mock\", \"tier\": 2}},"
             " \"routes\": {\"default\": {\"chain\": [\"m1\", \"m2\"], \"deadline_ms\": 30000}}}",
             redis, workers, concurrency, mock_p.port, timeout_ms);
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-level", "warn", NULL};
    if (th_planb_start(&planb_p, cfg, args) != 0) {
        fprintf(stderr, "bench_jobs: cannot start planb\n");
        exit(1);
    }
}

static void
start_planb(int workers, int concurrency, int timeout_ms)
{
    start_planb_on(false, workers, concurrency, timeout_ms);
}

/* Job i of a dialect run: a plain question on the route named by arg. */
static void
bench_route_job(char *buf, size_t cap, const char *run, int i, void *arg)
{
    snprintf(buf, cap,
             "{\"id\":\"%s-%d\",\"submitted_at_ms\":%lld,\"cache\":\"skip\",\"route\":\"%s\","
             "\"messages\":[{\"role\":\"user\",\"content\":\"%s question %d\"}]}",
             run, i, (long long)wall_ms(), (const char *)arg, run, i);
}

/* 1d. Bedrock and Gemini against OpenAI-compatible: one planb with a route per dialect, all
 * on planb-mock, in rounds of one run per dialect (the order rotated every round, results
 * deleted after), and the medians of the rounds' ratios. *target follows planb:stats' "jobs". */
static void
dialect_rounds(redisContext *rc, int workers, int rounds, int n, long *target)
{
    static char names[3][8] = {"openai", "bedrock", "gemini"};
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": %d,"
             " \"concurrency\": 512, \"claim_batch\": 256,"
             " \"providers\": {\"mock\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_BENCH_KEY\"},"
             " \"aws\": " TH_BEDROCK_PROVIDER ","
             " \"google\": {\"type\": \"gemini\", \"base_url\": \"http://127.0.0.1:%d/v1beta\","
             " \"api_key_env\": \"PB_BENCH_KEY\"}},"
             " \"models\": {\"m1\": {\"provider\": \"mock\"},"
             " \"b1\": {\"provider\": \"aws\", \"model\": \"" TH_BEDROCK_MODEL_ID "\"},"
             " \"g1\": {\"provider\": \"google\", \"model\": \"gemini-2.5-flash\"}},"
             " \"routes\": {\"openai\": {\"chain\": [\"m1\"]}, \"bedrock\": {\"chain\": [\"b1\"]},"
             " \"gemini\": {\"chain\": [\"g1\"]}}}",
             redis_p.port, workers, mock_p.port, mock_p.port, mock_p.port);
    th_bedrock_env();
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-level", "warn", NULL};
    if (th_planb_start(&planb_p, cfg, args) != 0) {
        fprintf(stderr, "bench_jobs: cannot start planb\n");
        exit(1);
    }
    wait_workers(rc, workers);
    double ratios[2][MIX_ROUNDS_MAX], cpu[3] = {0};
    bool done = true;
    for (int round = 0; round < rounds; round++) {
        double rates[3] = {0};
        for (int step = 0; step < 3; step++) {
            int kind = (round + step) % 3;
            char tag[16];
            snprintf(tag, sizeof(tag), "%c%d", names[kind][0], round);
            th_jobs batch = th_jobs_write(tag, n, bench_route_job, names[kind]);
            *target += n;
            double c0 = cpu_ms(planb_p.pid, true);
            int64_t t0 = now_ms();
            th_jobs_push(rc, &batch);
            done = wait_jobs(rc, *target, 300000) && done;
            rates[kind] = n / ((now_ms() - t0) / 1000.0);
            cpu[kind] += (cpu_ms(planb_p.pid, true) - c0) * 1000.0 / n / rounds;
            drop_results(rc, tag, n);
        }
        ratios[0][round] = rates[1] / rates[0];
        ratios[1][round] = rates[2] / rates[0];
        printf("bench_jobs dialect_round=%d openai_jobs_per_s=%.0f bedrock_jobs_per_s=%.0f "
               "gemini_jobs_per_s=%.0f bedrock_ratio=%.2f gemini_ratio=%.2f\n",
               round, rates[0], rates[1], rates[2], ratios[0][round], ratios[1][round]);
        fflush(stdout);
    }
    double median[2];
    for (int k = 0; k < 2; k++) {
        qsort(ratios[k], (size_t)rounds, sizeof(double), cmp_double);
        median[k] = rounds % 2 ? ratios[k][rounds / 2]
                               : (ratios[k][rounds / 2 - 1] + ratios[k][rounds / 2]) / 2;
    }
    printf("bench_jobs dialects workers=%d jobs_per_run=%d rounds=%d done=%s bedrock_ratio=%.2f "
           "gemini_ratio=%.2f target=0.80 planb_cpu_us_per_job openai=%.1f bedrock=%.1f "
           "gemini=%.1f\n",
           workers, n, rounds, done ? "yes" : "NO", median[0], median[1], cpu[0], cpu[1], cpu[2]);
    fflush(stdout);
    th_proc_stop(&planb_p, 10000);
}

/* 1c. TLS against plaintext: the same zero-latency jobs with planb on Redis's TLS port and on
 * its plaintext port, in rounds of one run of each (planb restarted for each, the order
 * flipped every round, results deleted after), and the median of the rounds' ratios (the
 * drift that 1b describes). *target follows planb:stats' cumulative "jobs". */
static void
tls_rounds(redisContext *rc, int workers, int rounds, int n, long *target)
{
    double ratios[MIX_ROUNDS_MAX], mean[2] = {0, 0};
    bool done = true;
    long p50 = 0, p99 = 0;
    for (int round = 0; round < rounds; round++) {
        double rates[2] = {0, 0};
        for (int step = 0; step < 2; step++) {
            int tls = round % 2 == 0 ? step : 1 - step;
            start_planb_on(tls, workers, 512, 10000);
            wait_workers(rc, workers);
            char tag[16];
            snprintf(tag, sizeof(tag), "%c%d", tls ? 'S' : 'P', round);
            th_jobs batch = th_jobs_write(tag, n, bench_job, NULL);
            *target += n;
            int64_t t0 = now_ms();
            th_jobs_push(rc, &batch);
            done = wait_jobs(rc, *target, 300000) && done;
            int64_t t1 = now_ms();
            rates[tls] = n / ((t1 - t0) / 1000.0);
            mean[tls] += rates[tls] / rounds;
            if (round == 0 && tls)
                latency_percentiles(rc, tag, n, 1, true, &p50, &p99);
            drop_results(rc, tag, n);
            th_proc_stop(&planb_p, 10000);
        }
        ratios[round] = rates[1] / rates[0];
        printf("bench_jobs tls_round=%d tls_jobs_per_s=%.0f plain_jobs_per_s=%.0f ratio=%.2f\n",
               round, rates[1], rates[0], ratios[round]);
    }
    qsort(ratios, (size_t)rounds, sizeof(double), cmp_double);
    double median =
        rounds % 2 ? ratios[rounds / 2] : (ratios[rounds / 2 - 1] + ratios[rounds / 2]) / 2;
    printf("bench_jobs tls workers=%d jobs_per_run=%d rounds=%d done=%s tls_jobs_per_s=%.0f "
           "plain_jobs_per_s=%.0f ratio_to_plain=%.2f target=0.80 round_ratios=%.2f..%.2f "
           "tls_p50_ms=%ld tls_p99_ms=%ld\n",
           workers, n, rounds, done ? "yes" : "NO", mean[1], mean[0], median, ratios[0],
           ratios[rounds - 1], p50, p99);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    int jobs = 100000, slow_jobs = 10000, workers = 2, rounds = 30, mix_jobs = 3000;
    int tls_n = 20000, tls_r = 6, dialect_n = 5000, dialect_r = 6;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            jobs = 5000;
            slow_jobs = 1000;
            rounds = 6;
            mix_jobs = 1000;
            tls_n = 2000;
            tls_r = 2;
            dialect_n = 1000;
            dialect_r = 2;
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            jobs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--slow-jobs") == 0 && i + 1 < argc) {
            slow_jobs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--mix-jobs") == 0 && i + 1 < argc) {
            mix_jobs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--tls-jobs") == 0 && i + 1 < argc) {
            tls_n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--tls-rounds") == 0 && i + 1 < argc) {
            tls_r = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--dialect-jobs") == 0 && i + 1 < argc) {
            dialect_n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--dialect-rounds") == 0 && i + 1 < argc) {
            dialect_r = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
            cache_mode = argv[++i];
        }
    }
    rounds = rounds < 1 ? 1 : rounds > MIX_ROUNDS_MAX ? MIX_ROUNDS_MAX : rounds;
    tls_r = tls_r < 0 ? 0 : tls_r > MIX_ROUNDS_MAX ? MIX_ROUNDS_MAX : tls_r;
    dialect_r = dialect_r < 0 ? 0 : dialect_r > MIX_ROUNDS_MAX ? MIX_ROUNDS_MAX : dialect_r;
    dialect_n = dialect_n < 100 ? 100 : dialect_n;
    mix_jobs = mix_jobs < 100 ? 100 : mix_jobs;
    setenv("PB_BENCH_KEY", "bench-key", 1);
    if (th_redis_start_tls(&redis_p, NULL) != 0 || th_mock_start(&mock_p, NULL) != 0) {
        fprintf(stderr, "bench_jobs: cannot start redis/mock\n");
        return 1;
    }
    redisContext *rc = th_redis(redis_p.port);

    /* 1. zero latency */
    start_planb(workers, 512, 10000);
    wait_workers(rc, workers);
    int64_t t0 = now_ms();
    push_jobs(rc, "z", jobs, bench_job, NULL);
    bool done = wait_jobs(rc, jobs, 300000);
    int64_t t1 = now_ms();
    long p50, p99;
    latency_percentiles(rc, "z", jobs, jobs > 10000 ? 10 : 1, true, &p50, &p99);
    printf("bench_jobs zero_latency workers=%d jobs=%d done=%s seconds=%.2f jobs_per_s=%.0f "
           "p50_ms=%ld p99_ms=%ld\n",
           workers, jobs, done ? "yes" : "NO", (t1 - t0) / 1000.0, jobs / ((t1 - t0) / 1000.0), p50,
           p99);
    fflush(stdout);
    drop_results(rc, "z", jobs);
    double ok_rate = jobs / ((t1 - t0) / 1000.0);

    /* 1b. the tool-calling mix against plain text on the same planb, in short rounds of one
     * run of each kind, the order flipped every round, and the median of the rounds' ratios.
     * This machine's speed drifts by up to 2x within a minute (bench_parse, pure CPU: 7.5 to
     * 13 us for the same jobs in six runs back to back): a ratio of two long runs, or of the
     * best of each kind, measures the drift as much as planb (0.51 to 1.15 for one build). */
    double cpu[2][3] = {{0}}, best[2] = {0}, ratios[MIX_ROUNDS_MAX];
    long target = jobs;
    for (int round = 0; round < rounds; round++) {
        double rates[2] = {0, 0};
        for (int step = 0; step < 2; step++) {
            int kind = round % 2 == 0 ? step : 1 - step; /* 0 tools, 1 plain */
            char tag[16];
            snprintf(tag, sizeof(tag), "%c%d", kind ? 'p' : 't', round);
            th_mock_set(&mock_p, "m1",
                        kind ? "{\"mode\":\"ok\"}"
                             : "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\","
                               "\"arguments\":{\"city\":\"Paris\"}}]}");
            tools_mix = kind == 0;
            th_jobs batch = th_jobs_write(tag, mix_jobs, bench_job, NULL);
            target += mix_jobs;
            double c0 = cpu_ms(planb_p.pid, true), m0 = cpu_ms(mock_p.pid, false),
                   r0 = cpu_ms(redis_p.pid, false);
            t0 = now_ms();
            th_jobs_push(rc, &batch);
            done = wait_jobs(rc, target, 300000) && done;
            t1 = now_ms();
            rates[kind] = mix_jobs / ((t1 - t0) / 1000.0);
            cpu[kind][0] += (cpu_ms(planb_p.pid, true) - c0) * 1000.0 / mix_jobs / rounds;
            cpu[kind][1] += (cpu_ms(mock_p.pid, false) - m0) * 1000.0 / mix_jobs / rounds;
            cpu[kind][2] += (cpu_ms(redis_p.pid, false) - r0) * 1000.0 / mix_jobs / rounds;
            if (rates[kind] > best[kind])
                best[kind] = rates[kind];
            if (round == 0 && kind == 0)
                latency_percentiles(rc, tag, mix_jobs, 1, true, &p50, &p99);
            drop_results(rc, tag, mix_jobs);
        }
        ratios[round] = rates[0] / rates[1];
        printf("bench_jobs mix_round=%d tools_jobs_per_s=%.0f plain_jobs_per_s=%.0f ratio=%.2f\n",
               round, rates[0], rates[1], ratios[round]);
    }
    tools_mix = false;
    qsort(ratios, (size_t)rounds, sizeof(double), cmp_double);
    double median =
        rounds % 2 ? ratios[rounds / 2] : (ratios[rounds / 2 - 1] + ratios[rounds / 2]) / 2;
    double all_tools = cpu[0][0] + cpu[0][1] + cpu[0][2],
           all_plain = cpu[1][0] + cpu[1][1] + cpu[1][2];
    printf("bench_jobs tool_calling_mix workers=%d jobs_per_run=%d rounds=%d done=%s "
           "ratio_to_plain_text=%.2f target=0.85 round_ratios=%.2f..%.2f best_jobs_per_s=%.0f "
           "best_plain_jobs_per_s=%.0f tools_cpu_us_per_job=%.1f+%.1f+%.1f "
           "plain_cpu_us_per_job=%.1f+%.1f+%.1f planb_cpu_ratio=%.2f all_cpu_ratio=%.2f "
           "p50_ms=%ld p99_ms=%ld\n",
           workers, mix_jobs, rounds, done ? "yes" : "NO", median, ratios[0], ratios[rounds - 1],
           best[0], best[1], cpu[0][0], cpu[0][1], cpu[0][2], cpu[1][0], cpu[1][1], cpu[1][2],
           cpu[1][0] / cpu[0][0], all_plain / all_tools, p50, p99);
    fflush(stdout);
    th_proc_stop(&planb_p, 10000);
    th_mock_set(&mock_p, "m1", "{\"mode\":\"ok\"}");
    if (tls_r > 0)
        tls_rounds(rc, workers, tls_r, tls_n, &target);
    if (dialect_r > 0)
        dialect_rounds(rc, workers, dialect_r, dialect_n, &target);

    /* 2. primary failing 100%, breaker on */
    redisReply *r = redisCommand(rc, "DEL planb:stats");
    freeReplyObject(r);
    th_mock_reset(&mock_p);
    th_mock_set(&mock_p, "m1", "{\"mode\":\"status\",\"status\":500}");
    start_planb(workers, 512, 10000);
    wait_workers(rc, workers);
    t0 = now_ms();
    push_jobs(rc, "f", jobs, bench_job, NULL);
    done = wait_jobs(rc, jobs, 300000);
    t1 = now_ms();
    latency_percentiles(rc, "f", jobs, jobs > 10000 ? 10 : 1, true, &p50, &p99);
    double fail_rate = jobs / ((t1 - t0) / 1000.0);
    printf("bench_jobs primary_down_breaker workers=%d jobs=%d done=%s seconds=%.2f "
           "jobs_per_s=%.0f ratio_to_all_ok=%.2f p50_ms=%ld p99_ms=%ld primary_calls=%ld\n",
           workers, jobs, done ? "yes" : "NO", (t1 - t0) / 1000.0, fail_rate, fail_rate / ok_rate,
           p50, p99, th_mock_requests(&mock_p, "m1"));
    fflush(stdout);
    th_proc_stop(&planb_p, 10000);
    if (slow_jobs <= 0)
        goto out;

    /* 3. slow upstream: 2 s per call, everything in flight at once. FLUSHALL: run 2 left m1's
     * breaker open, which would send every job to m2 without waiting on m1. */
    r = redisCommand(rc, "FLUSHALL");
    freeReplyObject(r);
    th_mock_set(&mock_p, "m1", "{\"mode\":\"ok\",\"latency_ms\":2000}");
    int per_worker = slow_jobs / workers + 64;
    start_planb(workers, per_worker, 10000);
    wait_workers(rc, workers);
    t0 = now_ms();
    push_jobs(rc, "s", slow_jobs, bench_job, NULL);
    done = wait_jobs(rc, slow_jobs, 120000);
    t1 = now_ms();
    long rss = workers_peak_rss_kib(planb_p.pid);
    latency_percentiles(rc, "s", slow_jobs, slow_jobs > 10000 ? 10 : 1, true, &p50, &p99);
    printf("bench_jobs slow_2s workers=%d jobs=%d done=%s seconds=%.2f p50_ms=%ld p99_ms=%ld "
           "peak_rss_all_workers_mib=%.1f\n",
           workers, slow_jobs, done ? "yes" : "NO", (t1 - t0) / 1000.0, p50, p99, rss / 1024.0);
    fflush(stdout);
    th_proc_stop(&planb_p, 10000);
out:
    if (getenv("PB_BENCH_KEEP")) {
        printf("redis port %d\n", redis_p.port);
        fflush(stdout);
        sleep(120); /* deliberate: two minutes to inspect Redis by hand, then clean up */
    }
    redisFree(rc);
    th_proc_stop(&mock_p, 5000);
    th_proc_stop(&redis_p, 5000);
    return 0;
}
