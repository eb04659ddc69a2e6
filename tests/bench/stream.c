/* stream.c (bench_stream) -- streamed jobs at load: planb's added delay per chunk and memory.
 *
 * Starts its own redis-server, planb-mock and planb (2 workers), pushes N streamed jobs
 * (1,000 by default) spread over half a stream's length, so they are all in flight together
 * at the peak without starting in lockstep, whose answers are W words (40) sent one per
 * chunk_interval_ms (50). Each word is a run of 16 '@', which planb-mock
 * replaces with its send time (wall clock, us) as the chunk leaves. Once every job has its
 * result, each stream is read back (XRANGE): a delta entry's id is Redis's clock (ms) when
 * planb's XADD ran, so entry time - the earliest send time in its text is the delay planb
 * (parse, batch, XADD) added to that chunk, at 1 ms resolution. This is repeated R times (3;
 * 1 with --quick) on the same planb, each repetition printing p50/p99/max of its chunks;
 * the summary gives them over every chunk of every repetition, the median and range of the
 * repetitions' p99 (this machine's speed drifts by up to 2x within a minute, so one
 * repetition's p99 says as much about the host as about planb), the jobs' completion, and
 * the peak RSS (VmHWM) summed over the workers. Each repetition runs the jobs twice, on an
 * OpenAI-compatible model (SSE) and on a Bedrock model (AWS event-stream frames, SigV4), the
 * order flipped every repetition; the summary also gives each dialect's p50 and p99 and
 * bedrock_p50_minus_openai_us, the median over the repetitions of the difference of their
 * p50s (the issue's bound is 1 ms).
 *   bench_stream [--quick] [--jobs N] [--reps R] [--words W] [--interval-ms I] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "th_bench.h"

#define REPS_MAX 50

static th_proc redis_p, mock_p, planb_p;

/* Pushes n streamed jobs, one every spread_us: streams that start together would send their
 * chunks in lockstep bursts, which real traffic does not (and which would measure the burst,
 * not planb). A deliberate pacing pause, not a wait for a condition. */
static void
push_streamed(redisContext *rc, int rep, int n, long spread_us, const char *route)
{
    for (int i = 0; i < n; i++) {
        char job[256];
        snprintf(job, sizeof(job),
                 "{\"id\":\"st%d-%d\",\"stream\":true,\"cache\":\"skip\",\"route\":\"%s\","
                 "\"messages\":[{\"role\":\"user\",\"content\":\"stream question %d\"}]}",
                 rep, i, route, i);
        redisReply *r = redisCommand(rc, "LPUSH planb:q:default %s", job);
        freeReplyObject(r);
        struct timespec ts = {0, spread_us * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Delays (us) of every delta of job i's stream in repetition rep, appended to d (grows). */
static void
collect_delays(redisContext *rc, int rep, int i, long **d, size_t *n, size_t *cap)
{
    redisReply *r = redisCommand(rc, "XRANGE planb:stream:st%d-%d - +", rep, i);
    for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
        redisReply *e = r->element[k], *kv = e->element[1];
        long long entry_ms = atoll(e->element[0]->str);
        char *text = NULL;
        bool delta = false;
        for (size_t f = 0; f + 1 < kv->elements; f += 2) {
            if (strcmp(kv->element[f]->str, "type") == 0)
                delta = strcmp(kv->element[f + 1]->str, "delta") == 0;
            else if (strcmp(kv->element[f]->str, "text") == 0)
                text = kv->element[f + 1]->str;
        }
        if (!delta || text == NULL)
            continue;
        long long first_us = 0; /* the earliest send stamp batched into this entry */
        for (char *p = (char *)text; *p;) {
            long long us = strtoll(p, &p, 10);
            if (us > 0 && (first_us == 0 || us < first_us))
                first_us = us;
            while (*p && (*p < '0' || *p > '9'))
                p++;
        }
        if (first_us == 0)
            continue;
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 4096;
            *d = realloc(*d, *cap * sizeof(long));
        }
        /* The entry's ms is a floor: add half a ms so the figure is not biased low. */
        long delay = (long)(entry_ms * 1000 + 500 - first_us);
        (*d)[(*n)++] = delay < 0 ? 0 : delay;
    }
    freeReplyObject(r);
}

int
main(int argc, char **argv)
{
    int jobs = 1000, words = 40, interval = 50, reps = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            jobs = 200;
            reps = 1;
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--words") == 0 && i + 1 < argc)
            words = atoi(argv[++i]);
        else if (strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc)
            interval = atoi(argv[++i]);
    }
    reps = reps < 1 ? 1 : reps > REPS_MAX ? REPS_MAX : reps;
    setenv("PB_BENCH_KEY", "bench-key", 1);
    if (th_redis_start(&redis_p, NULL) != 0 || th_mock_start(&mock_p, NULL) != 0) {
        fprintf(stderr, "bench_stream: cannot start redis/mock\n");
        return 1;
    }
    redisContext *rc = th_redis(redis_p.port);
    char reply[4096] = "";
    for (int w = 0; w < words && strlen(reply) + 18 < sizeof(reply); w++)
        strcat(reply, w ? " @@@@@@@@@@@@@@@@" : "@@@@@@@@@@@@@@@@");
    char beh[4400];
    snprintf(beh, sizeof(beh), "{\"mode\":\"ok\",\"reply\":\"%s\",\"chunk_interval_ms\":%d}", reply,
             interval);
    th_mock_set(&mock_p, "m1", beh);
    th_mock_set(&mock_p, TH_BEDROCK_MODEL_ID, beh);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 2,"
             " \"concurrency\": %d, \"claim_batch\": 256,"
             " \"providers\": {\"mock\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_BENCH_KEY\"}, "
             "\"aws\": " TH_BEDROCK_PROVIDER "},"
             " \"models\": {\"m1\": {\"provider\": \"mock\", \"timeout_ms\": 60000},"
             " \"b1\": {\"provider\": \"aws\", \"model\": \"" TH_BEDROCK_MODEL_ID "\","
             " \"timeout_ms\": 60000}},"
             " \"routes\": {\"default\": {\"chain\": [\"m1\"], \"deadline_ms\": 120000},"
             " \"bedrock\": {\"chain\": [\"b1\"], \"deadline_ms\": 120000}}}",
             redis_p.port, jobs / 2 + 64, mock_p.port, mock_p.port);
    th_bedrock_env();
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-level", "warn", NULL};
    if (th_planb_start(&planb_p, cfg, args) != 0) {
        fprintf(stderr, "bench_stream: cannot start planb\n");
        return 1;
    }
    wait_workers(rc, 2);
    long *all = NULL, p99s[REPS_MAX], dialect_p50[2][REPS_MAX], dialect_p99[2][REPS_MAX];
    long p50_diffs[REPS_MAX];
    size_t n_all = 0, cap_all = 0, chunks = 0;
    bool done = true;
    double seconds = 0;
    static const char *const routes[2] = {"default", "bedrock"}; /* openai, bedrock */
    for (int rep = 0; rep < reps; rep++) {
        for (int step = 0; step < 2; step++) {
            int kind = rep % 2 == 0 ? step : 1 - step, run = rep * 2 + step;
            int64_t t0 = now_ms();
            /* Spread over one stream's length, so all of them are in flight together at the
             * peak. */
            push_streamed(rc, run, jobs, (long)words * interval * 1000 / jobs / 2, routes[kind]);
            done = wait_jobs(rc, (long)jobs * (run + 1), 300000) && done;
            seconds += (now_ms() - t0) / 1000.0;
            long *d = NULL;
            size_t n = 0, cap = 0;
            for (int i = 0; i < jobs; i++)
                collect_delays(rc, run, i, &d, &n, &cap);
            qsort(d, n, sizeof(long), cmp_long);
            dialect_p50[kind][rep] = pct_long(d, n, 50);
            dialect_p99[kind][rep] = pct_long(d, n, 99);
            printf("bench_stream rep=%d dialect=%s chunks=%zu added_delay_us_p50=%ld p99=%ld "
                   "max=%ld\n",
                   rep, kind ? "bedrock" : "openai", n, dialect_p50[kind][rep],
                   dialect_p99[kind][rep], n ? d[n - 1] : -1);
            fflush(stdout);
            if (n_all + n > cap_all) {
                cap_all = 2 * (n_all + n);
                all = realloc(all, cap_all * sizeof(long));
            }
            memcpy(all + n_all, d, n * sizeof(long));
            n_all += n;
            chunks += n;
            free(d);
        }
        p99s[rep] =
            dialect_p99[0][rep] > dialect_p99[1][rep] ? dialect_p99[0][rep] : dialect_p99[1][rep];
        p50_diffs[rep] = dialect_p50[1][rep] - dialect_p50[0][rep];
    }
    long rss = workers_peak_rss_kib(planb_p.pid);
    qsort(all, n_all, sizeof(long), cmp_long);
    qsort(p99s, (size_t)reps, sizeof(long), cmp_long);
    for (int k = 0; k < 2; k++) {
        qsort(dialect_p50[k], (size_t)reps, sizeof(long), cmp_long);
        qsort(dialect_p99[k], (size_t)reps, sizeof(long), cmp_long);
    }
    qsort(p50_diffs, (size_t)reps, sizeof(long), cmp_long);
    printf("bench_stream jobs=%d words=%d interval_ms=%d reps=%d done=%s seconds=%.2f chunks=%zu "
           "added_delay_us_p50=%ld p99=%ld max=%ld rep_p99_median=%ld rep_p99=%ld..%ld "
           "target_p99_us=2000 openai_p50_us=%ld openai_p99_us=%ld bedrock_p50_us=%ld "
           "bedrock_p99_us=%ld bedrock_p50_minus_openai_us=%ld target_us=1000 "
           "peak_rss_all_workers_mib=%.1f\n",
           jobs, words, interval, reps, done ? "yes" : "NO", seconds, chunks,
           pct_long(all, n_all, 50), pct_long(all, n_all, 99), n_all ? all[n_all - 1] : -1,
           p99s[reps / 2], p99s[0], p99s[reps - 1], dialect_p50[0][reps / 2],
           dialect_p99[0][reps / 2], dialect_p50[1][reps / 2], dialect_p99[1][reps / 2],
           p50_diffs[reps / 2], rss / 1024.0);
    free(all);
    th_proc_stop(&planb_p, 10000);
    redisFree(rc);
    th_proc_stop(&mock_p, 5000);
    th_proc_stop(&redis_p, 5000);
    return 0;
}
