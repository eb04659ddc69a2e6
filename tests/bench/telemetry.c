/* telemetry.c (bench_telemetry) -- what tracing costs planb's throughput and memory.
 *
 * Starts its own redis-server and planb-mock; planb (2 workers, concurrency 512) runs
 * zero-latency jobs on one model, every job traced (sample 1, 2 spans a job).
 *   1. Rounds of three runs of N jobs (10,000; the order rotated every round, planb restarted
 *      for each): tracing off; on, exporting to planb-mock's /v1/traces (a collector that
 *      answers at once); on, to a closed port (the collector gone). Prints each round's
 *      jobs/s, then the medians of the rounds' ratios to tracing off: on_ratio (the issue's
 *      floor is 0.9) and gone_ratio (0.95), the export requests the mock took, and planb's CPU
 *      us per job in each mode (steadier than jobs/s on a machine whose speed drifts).
 *   2. The collector black-holed: a socket that listens but never accepts, so every export
 *      waits out telemetry.timeout_ms; B jobs (50,000) pushed at once, the hole kept for S
 *      seconds (60) in all; prints whether every job was answered, the jobs/s, and the growth
 *      of the workers' memory: peak RSS (VmHWM) at the end minus their RSS before, summed and
 *      per worker (the bound is 64 MiB a worker; the burst of 512 jobs in flight a
 *      worker is part of it), and the spans dropped (planb:stats telemetry:dropped).
 *   bench_telemetry [--quick] [--jobs N] [--rounds R] [--hole-jobs B] [--hole-s S]
 * --quick: N 1,000, R 2, B 5,000, S 5. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "th_bench.h"

#define ROUNDS_MAX 100

static th_proc redis_p, mock_p, planb_p;
static const char *cache_mode = "skip";

/* A loopback socket bound to a free port: listening (the black hole) or closed at once (a
 * port nobody answers on: connection refused). Returns the port; *fd the socket or -1. */
static int
bench_port(bool listening, int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0 || (listening && listen(s, 64) != 0)) {
        fprintf(stderr, "bench_telemetry: no loopback port\n");
        exit(1);
    }
    if (!listening) {
        close(s);
        s = -1;
    }
    *fd = s;
    return ntohs(a.sin_port);
}

/* planb with tracing to port (0: tracing off). */
static void
start_planb(int port)
{
    char cfg[2048], tel[256] = "";
    if (port > 0)
        snprintf(tel, sizeof(tel),
                 ", \"telemetry\": {\"otlp_endpoint\": \"http://127.0.0.1:%d\", \"sample\": 1,"
                 " \"timeout_ms\": 10000}",
                 port);
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 2,"
             " \"concurrency\": 512, \"claim_batch\": 256,"
             " \"providers\": {\"mock\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_BENCH_KEY\"}},"
             " \"models\": {\"m1\": {\"provider\": \"mock\"}},"
             " \"routes\": {\"default\": {\"chain\": [\"m1\"], \"deadline_ms\": 60000}},"
             " \"monitor\": {\"metrics_listen\": \"\"}%s}",
             redis_p.port, mock_p.port, tel);
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-level", "warn", NULL};
    if (th_planb_start(&planb_p, cfg, args) != 0) {
        fprintf(stderr, "bench_telemetry: cannot start planb\n");
        exit(1);
    }
}

static long
stat_field(redisContext *rc, const char *field)
{
    redisReply *r = redisCommand(rc, "HGET planb:stats %s", field);
    long n = r && r->type == REDIS_REPLY_STRING ? atol(r->str) : 0;
    freeReplyObject(r);
    return n;
}

static long
mock_trace_requests(void)
{
    char url[128];
    long status = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/stats", mock_p.port);
    char *body = th_http("GET", url, NULL, &status);
    json_object *o = body ? json_tokener_parse(body) : NULL, *v;
    long n = json_object_object_get_ex(o, "trace_requests", &v) ? json_object_get_int64(v) : -1;
    json_object_put(o);
    free(body);
    return n;
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
overhead_rounds(redisContext *rc, int rounds, int n, long *target)
{
    static const char *const names[3] = {"off", "on", "gone"};
    double ratio[2][ROUNDS_MAX], cpu[3] = {0};
    bool done = true;
    long traces0 = mock_trace_requests();
    for (int round = 0; round < rounds; round++) {
        double rate[3] = {0};
        for (int step = 0; step < 3; step++) {
            int kind = (round + step) % 3, fd = -1;
            start_planb(kind == 0 ? 0 : kind == 1 ? mock_p.port : bench_port(false, &fd));
            wait_workers(rc, 2);
            char tag[16];
            snprintf(tag, sizeof(tag), "%c%d", names[kind][0], round);
            th_jobs batch = th_jobs_write(tag, n, th_plain_job, &cache_mode);
            *target += n;
            double c0 = cpu_ms(planb_p.pid, true);
            int64_t t0 = now_ms();
            th_jobs_push(rc, &batch);
            done = wait_jobs(rc, *target, 300000) && done;
            rate[kind] = n / ((now_ms() - t0) / 1000.0);
            cpu[kind] += (cpu_ms(planb_p.pid, true) - c0) * 1000.0 / n / rounds;
            drop_results(rc, tag, n);
            th_proc_stop(&planb_p, 15000);
        }
        ratio[0][round] = rate[1] / rate[0];
        ratio[1][round] = rate[2] / rate[0];
        printf("bench_telemetry round=%d off_jobs_per_s=%.0f on_jobs_per_s=%.0f "
               "gone_jobs_per_s=%.0f on_ratio=%.2f gone_ratio=%.2f\n",
               round, rate[0], rate[1], rate[2], ratio[0][round], ratio[1][round]);
        fflush(stdout);
    }
    printf("bench_telemetry overhead jobs_per_run=%d rounds=%d done=%s on_ratio=%.2f "
           "target_on=0.90 gone_ratio=%.2f target_gone=0.95 mock_trace_requests=%ld "
           "planb_cpu_us_per_job off=%.1f on=%.1f gone=%.1f\n",
           n, rounds, done ? "yes" : "NO", median(ratio[0], rounds), median(ratio[1], rounds),
           mock_trace_requests() - traces0, cpu[0], cpu[1], cpu[2]);
    fflush(stdout);
}

static void
black_hole(redisContext *rc, int n, int hole_s, long *target)
{
    int fd;
    int port = bench_port(true, &fd);
    start_planb(port);
    wait_workers(rc, 2);
    long rss0 = workers_status_kib(planb_p.pid, "VmRSS"),
         dropped0 = stat_field(rc, "telemetry:dropped");
    th_jobs batch = th_jobs_write("h", n, th_plain_job, &cache_mode);
    *target += n;
    int64_t t0 = now_ms();
    th_jobs_push(rc, &batch);
    bool done = wait_jobs(rc, *target, 600000);
    int64_t t1 = now_ms();
    /* Keep the hole for hole_s in all, a job a second carrying the drop counts to Redis. */
    for (int i = 0; now_ms() - t0 < (int64_t)hole_s * 1000; i++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "hh%d", i);
        push_jobs(rc, tag, 1, th_plain_job, &cache_mode);
        (*target)++;
        usleep(1000000);
    }
    wait_jobs(rc, *target, 30000);
    long peak = workers_peak_rss_kib(planb_p.pid);
    printf("bench_telemetry black_hole jobs=%d hole_s=%d done=%s jobs_per_s=%.0f "
           "rss_before_mib=%.1f peak_rss_mib=%.1f rss_growth_mib=%.1f target_mib=64 "
           "spans_dropped=%ld\n",
           n, hole_s, done ? "yes" : "NO", n / ((t1 - t0) / 1000.0), rss0 / 1024.0, peak / 1024.0,
           (peak - rss0) / 1024.0, stat_field(rc, "telemetry:dropped") - dropped0);
    fflush(stdout);
    drop_results(rc, "h", n);
    th_proc_stop(&planb_p, 15000);
    close(fd);
}

int
main(int argc, char **argv)
{
    int n = 10000, rounds = 6, hole_n = 50000, hole_s = 60;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            n = 1000;
            rounds = 2;
            hole_n = 5000;
            hole_s = 5;
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--hole-jobs") == 0 && i + 1 < argc) {
            hole_n = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--hole-s") == 0 && i + 1 < argc) {
            hole_s = atoi(argv[++i]);
        }
    }
    rounds = rounds < 1 ? 1 : rounds > ROUNDS_MAX ? ROUNDS_MAX : rounds;
    n = n < 100 ? 100 : n;
    setenv("PB_BENCH_KEY", "bench-key", 1);
    if (th_redis_start(&redis_p, NULL) != 0 || th_mock_start(&mock_p, NULL) != 0) {
        fprintf(stderr, "bench_telemetry: cannot start redis/mock\n");
        return 1;
    }
    redisContext *rc = th_redis(redis_p.port);
    long target = 0;
    overhead_rounds(rc, rounds, n, &target);
    if (hole_n > 0)
        black_hole(rc, hole_n, hole_s, &target);
    redisFree(rc);
    th_proc_stop(&mock_p, 5000);
    th_proc_stop(&redis_p, 5000);
    return 0;
}
