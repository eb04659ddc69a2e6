/* jobs.c (bench_jobs) -- end-to-end throughput, latency and memory of planb serve.
 *
 * Starts its own redis-server, planb-mock and planb (2 workers), then:
 *   1. zero latency: pushes N jobs (pipelined LPUSH) and times first push ->
 *      last result (planb:stats "jobs" reaching N); prints jobs/s and p50/p99
 *      of each job's queued_ms + latency_ms.
 *   1b. tool-calling mix against plain text, same planb right after run 1, in alternating
 *      rounds (3; 2 with --quick) of N jobs each: a tools round has the primary answer with
 *      tool calls and alternates a first turn (params.tools, tool_choice) with a second turn
 *      (the assistant's tool_calls and the tool result, answered with text); a plain round
 *      is run 1's jobs again. Prints each round's jobs/s and the ratio of the best tools
 *      round to the best plain round (best of, so a neighbour's CPU burst on a shared
 *      machine does not decide it): the price of parsing, translating and answering tools.
 *      Each round also prints the CPU time per job of planb's processes, of the mock and of
 *      Redis (/proc); planb_cpu_ratio = planb's plain CPU per job / its tools CPU per job, and
 *      all_cpu_ratio the same over all three (what the machine spends, whoever spends it).
 *   2. primary down: the primary answers 500 to every call (breaker on, default
 *      config); the same N jobs, timed the same way; prints jobs/s and its ratio
 *      to run 1 (after the first few jobs the breaker skips the primary).
 *   3. slow upstream: the mock answers after 2 s; pushes M jobs at once and
 *      prints the completion time and the peak RSS (VmHWM) summed over workers.
 * A benchmark: prints figures, fails only when it cannot run.
 * Jobs are distinct questions with "cache": "skip" unless --cache use, which adds the
 * cache lookup (a miss and a store per job) to the measured path.
 *   bench_jobs [--quick] [--jobs N] [--slow-jobs M] [--workers W] [--cache use|skip]
 *   (M = 0 skips run 3) */
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

/* CPU time (user + system, ms) of process pid, or of its children too when children. */
static double
cpu_ms(pid_t pid, bool children)
{
    double total = 0;
    long tick = sysconf(_SC_CLK_TCK);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], buf[1024];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* pid (comm) state ppid ... utime(14) stime(15): comm may hold spaces, so from ')' */
        char *rp = strrchr(buf, ')');
        long self = atol(e->d_name), ppid = 0;
        unsigned long ut = 0, st = 0;
        if (rp == NULL || sscanf(rp + 2, "%*c %ld %*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %lu",
                                 &ppid, &ut, &st) != 3)
            continue;
        if (self == pid || (children && ppid == pid))
            total += (double)(ut + st) * 1000.0 / (double)tick;
    }
    if (d)
        closedir(d);
    return total;
}

static void
start_planb(int workers, int concurrency, int timeout_ms)
{
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": %d,"
             " \"concurrency\": %d, \"claim_batch\": 256,"
             " \"providers\": {\"mock\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_BENCH_KEY\"}},"
             " \"models\": {\"m1\": {\"provider\": \"mock\", \"timeout_ms\": %d},"
             " \"m2\": {\"provider\": \"mock\", \"tier\": 2}},"
             " \"routes\": {\"default\": {\"chain\": [\"m1\", \"m2\"], \"deadline_ms\": 30000}}}",
             redis_p.port, workers, concurrency, mock_p.port, timeout_ms);
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-level", "warn", NULL};
    if (th_planb_start(&planb_p, cfg, args) != 0) {
        fprintf(stderr, "bench_jobs: cannot start planb\n");
        exit(1);
    }
}

int
main(int argc, char **argv)
{
    int jobs = 100000, slow_jobs = 10000, workers = 2, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            jobs = 5000;
            slow_jobs = 1000;
            rounds = 2;
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            jobs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--slow-jobs") == 0 && i + 1 < argc) {
            slow_jobs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
            cache_mode = argv[++i];
        }
    }
    setenv("PB_BENCH_KEY", "bench-key", 1);
    if (th_redis_start(&redis_p, NULL) != 0 || th_mock_start(&mock_p, NULL) != 0) {
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
    double ok_rate = jobs / ((t1 - t0) / 1000.0);

    /* 1b. the tool-calling mix against plain text on the same planb, alternating rounds */
    double best_tools = 0, best_plain = 0, cpu_tools = 0, cpu_plain = 0, all_tools = 0,
           all_plain = 0;
    long target = jobs;
    for (int round = 0; round < rounds; round++) {
        for (int kind = 0; kind < 2; kind++) {
            char tag[16];
            snprintf(tag, sizeof(tag), "%c%d", kind ? 'p' : 't', round);
            th_mock_set(&mock_p, "m1",
                        kind ? "{\"mode\":\"ok\"}"
                             : "{\"mode\":\"ok\",\"tool_calls\":[{\"name\":\"get_weather\","
                               "\"arguments\":{\"city\":\"Paris\"}}]}");
            tools_mix = kind == 0;
            target += jobs;
            double c0 = cpu_ms(planb_p.pid, true), m0 = cpu_ms(mock_p.pid, false),
                   r0 = cpu_ms(redis_p.pid, false);
            t0 = now_ms();
            push_jobs(rc, tag, jobs, bench_job, NULL);
            done = wait_jobs(rc, target, 300000);
            t1 = now_ms();
            double rate = jobs / ((t1 - t0) / 1000.0);
            double planb_us = (cpu_ms(planb_p.pid, true) - c0) * 1000.0 / jobs;
            double mock_us = (cpu_ms(mock_p.pid, false) - m0) * 1000.0 / jobs;
            double redis_us = (cpu_ms(redis_p.pid, false) - r0) * 1000.0 / jobs;
            *(kind ? &cpu_plain : &cpu_tools) += planb_us / rounds;
            *(kind ? &all_plain : &all_tools) += (planb_us + mock_us + redis_us) / rounds;
            printf(
                "bench_jobs %s round=%d jobs=%d done=%s jobs_per_s=%.0f planb_cpu_us_per_job=%.1f "
                "mock_cpu_us_per_job=%.1f redis_cpu_us_per_job=%.1f\n",
                kind ? "plain_text" : "tool_calling_mix", round, jobs, done ? "yes" : "NO", rate,
                planb_us, mock_us, redis_us);
            if (kind == 0 && rate > best_tools)
                best_tools = rate;
            if (kind == 1 && rate > best_plain)
                best_plain = rate;
        }
    }
    tools_mix = false;
    latency_percentiles(rc, "t0", jobs, jobs > 10000 ? 10 : 1, true, &p50, &p99);
    printf("bench_jobs tool_calling_mix workers=%d jobs=%d rounds=%d best_jobs_per_s=%.0f "
           "best_plain_jobs_per_s=%.0f ratio_to_plain_text=%.2f planb_cpu_ratio=%.2f "
           "all_cpu_ratio=%.2f p50_ms=%ld p99_ms=%ld\n",
           workers, jobs, rounds, best_tools, best_plain, best_tools / best_plain,
           cpu_plain / cpu_tools, all_plain / all_tools, p50, p99);
    fflush(stdout);
    th_proc_stop(&planb_p, 10000);

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
