/* semcache.c -- semantic cache benchmark: insert cost, lookup latency p50/p99 and Redis bytes
 * per entry with N indexed entries (default 100,000; --quick: 5,000), on a private
 * redis-server, through the real pb_semcache (local embedder, one scope: the worst case for
 * bucket sizes). Questions are synthetic ("How do I <w1> my <w2> <w3>?" over pseudo-words);
 * each lookup asks an indexed one in other words ("How can I ..."). Prints figures only. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "planb/config.h"
#include "planb/job.h"
#include "planb/redis.h"
#include "planb/semcache.h"

#define BENCH_LOOKUPS 2000
#define BENCH_WINDOW  512 /* inserts in flight before waiting for Redis */

static struct event_base *bench_base;
static bool bench_done;
static int bench_hits;

static void
bench_on_pong(redisReply *reply, void *arg)
{
    (void)reply;
    (void)arg;
    bench_done = true;
    event_base_loopbreak(bench_base);
}

/* Waits until every command sent on r so far has been answered. */
static void
bench_sync(pb_redis *r)
{
    const char *argv[1] = {"PING"};
    bench_done = false;
    pb_redis_command(r, bench_on_pong, NULL, 1, argv, NULL);
    while (!bench_done)
        event_base_loop(bench_base, EVLOOP_ONCE);
}

static void
bench_on_lookup(const pb_semcache_hit *hit, void *arg)
{
    (void)arg;
    bench_hits += hit != NULL;
    bench_done = true;
    event_base_loopbreak(bench_base);
}

/* A pronounceable pseudo-word from n (distinct n give distinct words). */
static void
bench_word(unsigned n, char *out)
{
    static const char *syl[] = {"ka", "lo", "mi", "ne", "pu", "ra", "si", "to",
                                "ve", "zu", "ba", "de", "fi", "go", "hu", "ja"};
    int o = 0;
    for (int i = 0; i < 3; i++) {
        o += sprintf(out + o, "%s", syl[n % 16]);
        n /= 16;
    }
}

static void
bench_question(unsigned i, const char *lead, char *out, size_t cap)
{
    char a[8], b[8], c[8];
    bench_word(i % 4096, a);
    bench_word((i / 4096 + i * 7) % 4096, b);
    bench_word((i * 2654435761u >> 20) % 4096, c);
    snprintf(out, cap, "%s %s my %s %s?", lead, a, b, c);
}

static pb_request *
bench_request(const pb_config *cfg, const char *question)
{
    char job[512];
    snprintf(job, sizeof(job), "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", question);
    pb_request *req = NULL;
    pb_assert(pb_job_parse(job, strlen(job), cfg, &req, NULL, NULL) == PB_OK);
    return req;
}

static long long
bench_used_memory(int port)
{
    redisContext *c = th_redis(port);
    redisReply *r = redisCommand(c, "INFO memory");
    const char *p = r && r->str ? strstr(r->str, "used_memory:") : NULL;
    long long v = p ? atoll(p + 12) : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static int
bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    unsigned n = 100000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            n = 5000;
        else if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc)
            n = (unsigned)atoi(argv[++i]);
    }
    th_proc redis_p = {0};
    if (th_redis_start(&redis_p, NULL) != 0) {
        fprintf(stderr, "redis-server did not start\n");
        return 1;
    }
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"redis\":{\"url\":\"redis://127.0.0.1:%d/0\"},\"providers\":{\"p\":{\"type\":"
             "\"openai\",\"base_url\":\"http://127.0.0.1:1/v1\"}},\"models\":{\"m\":{\"provider\":"
             "\"p\"}},\"routes\":{\"default\":{\"chain\":[\"m\"]}},\"cache\":{\"semantic\":{"
             "\"enabled\":true,\"max_entries\":%u}}}",
             redis_p.port, n + 1000);
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(json, &err);
    pb_assert(cfg != NULL);
    bench_base = event_base_new();
    pb_redis *r = pb_redis_new(bench_base, cfg, "bench");
    while (!pb_redis_is_up(r))
        event_base_loop(bench_base, EVLOOP_ONCE);
    pb_semcache *sc = pb_semcache_new(cfg, bench_base, r, NULL);
    const char *answer = "To do that, open Settings, choose the item and confirm. It takes effect "
                         "at once and you get an e-mail.";

    long long mem0 = bench_used_memory(redis_p.port);
    int64_t t0 = pb_mono_ms();
    char q[256];
    for (unsigned i = 0; i < n; i++) {
        bench_question(i, "How do I", q, sizeof(q));
        pb_request *req = bench_request(cfg, q);
        pb_semcache_query *sq = pb_semcache_query_new(sc, req);
        pb_semcache_insert(sq, answer);
        pb_semcache_query_free(sq);
        pb_request_free(req);
        if (i % BENCH_WINDOW == BENCH_WINDOW - 1)
            bench_sync(r);
    }
    bench_sync(r);
    int64_t insert_ms = pb_mono_ms() - t0;
    long long mem1 = bench_used_memory(redis_p.port);

    double *lat = pb_xmalloc(BENCH_LOOKUPS * sizeof(double));
    for (unsigned k = 0; k < BENCH_LOOKUPS; k++) {
        unsigned i = (k * 7919u) % n;
        bench_question(i, "How can I", q, sizeof(q));
        pb_request *req = bench_request(cfg, q);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pb_semcache_query *sq = pb_semcache_query_new(sc, req);
        bench_done = false;
        pb_semcache_lookup(sq, 1000, 1000000, bench_on_lookup, NULL);
        while (!bench_done)
            event_base_loop(bench_base, EVLOOP_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &b);
        lat[k] = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        pb_semcache_query_free(sq);
        pb_request_free(req);
    }
    qsort(lat, BENCH_LOOKUPS, sizeof(double), bench_cmp);
    printf("entries=%u insert_total_ms=%lld insert_us_per_entry=%.1f (pipelined, %d in flight)\n",
           n, (long long)insert_ms, 1000.0 * (double)insert_ms / n, BENCH_WINDOW);
    printf("redis_used_memory_before=%lld after=%lld bytes_per_entry=%.0f (answer %zu bytes, "
           "question ~30)\n",
           mem0, mem1, (double)(mem1 - mem0) / n, strlen(answer));
    printf("lookups=%d hits=%d (paraphrase of an indexed question) latency_ms p50=%.3f p90=%.3f "
           "p99=%.3f max=%.3f\n",
           BENCH_LOOKUPS, bench_hits, lat[BENCH_LOOKUPS / 2], lat[BENCH_LOOKUPS * 9 / 10],
           lat[BENCH_LOOKUPS * 99 / 100], lat[BENCH_LOOKUPS - 1]);
    free(lat);
    pb_semcache_free(sc);
    pb_redis_free(r);
    event_base_free(bench_base);
    pb_config_free(cfg);
    th_proc_stop(&redis_p, 5000);
    return 0;
}
