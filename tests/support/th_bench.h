/* th_bench.h -- what the benchmarks share: clocks, pipelined pushes, waiting for planb:stats,
 * latency percentiles from the stored results, and the workers' peak RSS.
 *
 * Header-only like th_jobs.h; benchmarks print figures and fail only when they cannot run. */
#ifndef PLANB_TEST_BENCH_H
#define PLANB_TEST_BENCH_H

#include <dirent.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* CPU time (user + system, ms) of process pid, or of its children too when children. */
static inline double
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

static inline int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline long
stat_jobs(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "HGET planb:stats jobs");
    long n = (r && r->type == REDIS_REPLY_STRING) ? atol(r->str) : 0;
    freeReplyObject(r);
    return n;
}

/* Writes job i of run into buf (cap bytes). arg is the writer's own. */
typedef void (*th_job_writer)(char *buf, size_t cap, const char *run, int i, void *arg);

/* The plain job: a distinct question with "cache": *(const char **)arg (e.g. "skip"). */
static inline void
th_plain_job(char *buf, size_t cap, const char *run, int i, void *arg)
{
    const char *cache_mode = *(const char **)arg;
    snprintf(buf, cap,
             "{\"id\":\"%s-%d\",\"submitted_at_ms\":%lld,\"cache\":\"%s\",\"messages\":"
             "[{\"role\":\"user\",\"content\":\"%s question %d\"}]}",
             run, i, (long long)wall_ms(), cache_mode, run, i);
}

/* A tool the tool-calling jobs offer (OpenAI's shape). */
#define TH_TOOLS                                                                                   \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":"    \
    "\"Weather of a "                                                                              \
    "city\",\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"               \
    "\"string\"}},\"required\":[\"city\"]}}}]"

/* One turn of a tool-calling conversation, "cache": *(const char **)arg: an even i is a
 * first turn (params.tools, tool_choice), an odd i a second (the assistant's tool_calls and
 * the tool's result, with the tools again), as an app sends them. */
static inline void
th_tool_job(char *buf, size_t cap, const char *run, int i, void *arg)
{
    const char *cache_mode = *(const char **)arg;
    if (i % 2 == 0)
        snprintf(buf, cap,
                 "{\"id\":\"%s-%d\",\"submitted_at_ms\":%lld,\"cache\":\"%s\",\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"Weather in city %d?\"}],\"params\":{" TH_TOOLS
                 ",\"tool_choice\":\"auto\"}}",
                 run, i, (long long)wall_ms(), cache_mode, i);
    else
        snprintf(buf, cap,
                 "{\"id\":\"%s-%d\",\"submitted_at_ms\":%lld,\"cache\":\"%s\",\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"Weather in city %d?\"},{\"role\":\"assistant\","
                 "\"content\":null,\"tool_calls\":[{\"id\":\"call_%d\",\"type\":\"function\","
                 "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"c%d\\\"}"
                 "\"}}]},"
                 "{\"role\":\"tool\",\"tool_call_id\":\"call_%d\",\"content\":\"18C\"}],"
                 "\"params\":{" TH_TOOLS "}}",
                 run, i, (long long)wall_ms(), cache_mode, i, i, i, i);
}

/* n jobs "<run>-<i>" written by write, kept for th_jobs_push: a bench that times a run can
 * write its jobs before its clock starts, so the clock holds planb's work, not snprintf's. */
typedef struct th_jobs {
    char **job;
    int n;
} th_jobs;

static inline th_jobs
th_jobs_write(const char *run, int n, th_job_writer write, void *arg)
{
    th_jobs j = {malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1)), n};
    for (int i = 0; i < n; i++) {
        j.job[i] = malloc(1024);
        write(j.job[i], 1024, run, i, arg);
    }
    return j;
}

/* Pushes the jobs, 500 per LPUSH, and frees them. */
static inline void
th_jobs_push(redisContext *rc, th_jobs *j)
{
    const int batch = 500;
    const char **argv = malloc(sizeof(char *) * (batch + 2));
    argv[0] = "LPUSH";
    argv[1] = "planb:q:default";
    for (int i = 0; i < j->n; i += batch) {
        int k = j->n - i < batch ? j->n - i : batch;
        for (int m = 0; m < k; m++)
            argv[2 + m] = j->job[i + m];
        redisReply *r = redisCommandArgv(rc, k + 2, argv, NULL);
        freeReplyObject(r);
    }
    for (int i = 0; i < j->n; i++)
        free(j->job[i]);
    free(j->job);
    free(argv);
    j->job = NULL;
    j->n = 0;
}

/* Writes and pushes n jobs "<run>-<i>". */
static inline void
push_jobs(redisContext *rc, const char *run, int n, th_job_writer write, void *arg)
{
    th_jobs j = th_jobs_write(run, n, write, arg);
    th_jobs_push(rc, &j);
}

static inline int
cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static inline int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The pct-th percentile of the n sorted values (-1 when none). */
static inline long
pct_long(const long *v, size_t n, int pct)
{
    if (n == 0)
        return -1;
    size_t i = n * (size_t)pct / 100;
    return v[i < n ? i : n - 1];
}

/* p50/p99 of latency_ms (plus queued_ms when with_queue) over every step-th result of run. */
static inline void
latency_percentiles(redisContext *rc, const char *run, int n, int step, bool with_queue, long *p50,
                    long *p99)
{
    int m = 0;
    long *v = malloc(sizeof(long) * (size_t)(n / step + 1));
    for (int i = 0; i < n; i += step)
        redisAppendCommand(rc, "GET planb:result:%s-%d", run, i);
    for (int i = 0; i < n; i += step) {
        redisReply *r;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK)
            break;
        if (r->type == REDIS_REPLY_STRING) {
            json_object *o = json_tokener_parse(r->str), *q, *l;
            if (o && json_object_object_get_ex(o, "queued_ms", &q) &&
                json_object_object_get_ex(o, "latency_ms", &l))
                v[m++] =
                    (long)((with_queue ? json_object_get_int64(q) : 0) + json_object_get_int64(l));
            json_object_put(o);
        }
        freeReplyObject(r);
    }
    qsort(v, (size_t)m, sizeof(long), cmp_long);
    *p50 = pct_long(v, (size_t)m, 50);
    *p99 = pct_long(v, (size_t)m, 99);
    free(v);
}

/* Deletes the n results of run (pipelined UNLINK, 500 keys each), so the next timed run finds
 * Redis as this one did: a keyspace that only grows puts Redis's dict rehashes (a doubling
 * when it passes 2^k keys: 5% of Redis's CPU for a run's length) in whichever run crosses the
 * boundary, and its fresh pages in every run. */
static inline void
drop_results(redisContext *rc, const char *run, int n)
{
    const int batch = 500;
    int sent = 0;
    for (int i = 0; i < n; i += batch) {
        int k = n - i < batch ? n - i : batch;
        char(*keys)[96] = malloc(sizeof(*keys) * (size_t)k);
        const char **argv = malloc(sizeof(char *) * (size_t)(k + 1));
        argv[0] = "UNLINK";
        for (int m = 0; m < k; m++) {
            snprintf(keys[m], sizeof(keys[m]), "planb:result:%s-%d", run, i + m);
            argv[1 + m] = keys[m];
        }
        redisAppendCommandArgv(rc, k + 1, argv, NULL);
        free(argv);
        free(keys);
        sent++;
    }
    for (int b = 0; b < sent; b++) {
        redisReply *r;
        if (redisGetReply(rc, (void **)&r) == REDIS_OK)
            freeReplyObject(r);
    }
}

/* A /proc/<pid>/status figure in KiB ("VmHWM", "VmRSS") summed over the master's children
 * (the workers). */
static inline long
workers_status_kib(pid_t master, const char *field)
{
    long total = 0;
    size_t flen = strlen(field);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], line[256];
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        long ppid = -1, kib = 0;
        while (fgets(line, sizeof(line), f)) {
            sscanf(line, "PPid: %ld", &ppid);
            if (strncmp(line, field, flen) == 0 && line[flen] == ':')
                kib = atol(line + flen + 1);
        }
        fclose(f);
        if (ppid == master)
            total += kib;
    }
    if (d)
        closedir(d);
    return total;
}

/* Peak RSS in KiB summed over the workers. */
static inline long
workers_peak_rss_kib(pid_t master)
{
    return workers_status_kib(master, "VmHWM");
}

/* For th_wait_for: planb:stats "jobs" has reached target. */
typedef struct jobs_wait {
    redisContext *rc; /* planb's Redis */
    long target;      /* finished jobs to wait for */
} jobs_wait;

static inline bool
jobs_done(void *arg)
{
    const jobs_wait *w = arg;
    return stat_jobs(w->rc) >= w->target;
}

/* Waits about timeout_ms for target finished jobs, polling every 2 ms so the time measured
 * ends close to the last result. */
static inline bool
wait_jobs(redisContext *rc, long target, int timeout_ms)
{
    jobs_wait w = {rc, target};
    return th_wait_for(jobs_done, &w, timeout_ms / 2, 2);
}

/* For th_wait_for: n workers are in planb:workers (a worker joins it right before its first
 * claim and leaves it when it drains, so planb stopped between runs leaves none behind). */
typedef struct workers_wait {
    redisContext *rc; /* planb's Redis */
    long n;           /* workers planb serve starts */
} workers_wait;

static inline bool
workers_up(void *arg)
{
    const workers_wait *w = arg;
    redisReply *r = redisCommand(w->rc, "ZCARD planb:workers");
    bool up = r && r->type == REDIS_REPLY_INTEGER && r->integer >= w->n;
    freeReplyObject(r);
    return up;
}

/* Waits up to 10 s for planb's workers, so the time measured starts with planb ready. */
static inline void
wait_workers(redisContext *rc, int workers)
{
    workers_wait w = {rc, workers};
    if (!th_wait_for(workers_up, &w, 500, 20)) {
        fprintf(stderr, "bench: planb's workers did not start\n");
        exit(1);
    }
}

#endif
