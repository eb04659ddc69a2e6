/* th_replies.h -- hand-made hiredis replies for the unit tests of reply parsers (header-only).
 *
 * Built with calloc/strdup the way hiredis 0.14 builds its own, so freeReplyObject
 * frees them. th_snapshot_reply is one snapshot.lua reply for TH_SNAPSHOT_CFG,
 * shared by test_stats.c (parsing) and test_metrics.c (the /metrics text of it).
 * Kept static inline so each test binary takes only what it uses. */
#ifndef PLANB_TEST_TH_REPLIES_H
#define PLANB_TEST_TH_REPLIES_H

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

/* An integer reply. */
static inline redisReply *
th_reply_int(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

/* An array of n integer replies. */
static inline redisReply *
th_reply_int_array(const long long *vals, size_t n)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof(redisReply *));
    for (size_t i = 0; i < n; i++)
        r->element[i] = th_reply_int(vals[i]);
    return r;
}

/* A bulk string reply holding a copy of s. */
static inline redisReply *
th_reply_str(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

/* The config th_snapshot_reply is for: one queue, two models (m:1 and b), one route. */
#define TH_SNAPSHOT_CFG                                                                            \
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\"}},"                 \
    " \"models\": {\"m:1\": {\"provider\": \"p\"}, \"b\": {\"provider\": \"p\"}},"                 \
    " \"routes\": {\"default\": {\"chain\": [\"m:1\", \"b\"]}}}"

/* A snapshot.lua reply with a few counters, one queue (oldest job 42.5 s old), two models (m:1
 * open, 7 requests and 1200 tokens in its last minute), 5 dead letters, 2 live workers. */
static inline redisReply *
th_snapshot_reply(void)
{
    static const char *const hash[] = {"jobs",
                                       "10",
                                       "jobs:default:primary",
                                       "6",
                                       "jobs:default:fallback",
                                       "4",
                                       "attempts:m:1",
                                       "9",
                                       "errors:m:1:http_500",
                                       "3",
                                       "attempts:b",
                                       "4",
                                       "breaker:m:1:open",
                                       "1",
                                       "latency_le:50",
                                       "7",
                                       "latency_le:1000",
                                       "2",
                                       "latency_le:inf",
                                       "1",
                                       "latency_sum_ms",
                                       "40123",
                                       "dead:added",
                                       "6",
                                       "finish:held",
                                       "2",
                                       "finish:resends",
                                       "5",
                                       "cost_micro_usd:m:1",
                                       "1234567"};
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = 10;
    r->element = calloc(10, sizeof(redisReply *));
    redisReply *h = calloc(1, sizeof(*h));
    h->type = REDIS_REPLY_ARRAY;
    h->elements = sizeof(hash) / sizeof(hash[0]);
    h->element = calloc(h->elements, sizeof(redisReply *));
    for (size_t i = 0; i < h->elements; i++)
        h->element[i] = th_reply_str(hash[i]);
    r->element[0] = h;
    long long depth[] = {3}, breakers[] = {1, 2500, 0, 0, 0, 0, 0, 0, 0, 0},
              w[] = {10, 6, 4, 0, 0, 0, 0};
    r->element[1] = th_reply_int_array(depth, 1);
    r->element[2] = th_reply_int(2);
    r->element[3] = th_reply_int_array(breakers, 10);
    redisReply *ws = calloc(1, sizeof(*ws));
    ws->type = REDIS_REPLY_ARRAY;
    ws->elements = 3;
    ws->element = calloc(3, sizeof(redisReply *));
    for (int i = 0; i < 3; i++)
        ws->element[i] = th_reply_int_array(w, 7);
    r->element[4] = ws;
    long long age[] = {42500}, usage[] = {7, 1200, 0, 0};
    r->element[5] = th_reply_int(5);
    r->element[6] = th_reply_int(2);
    r->element[7] = th_reply_int_array(age, 1);
    r->element[8] = th_reply_int_array(usage, 4);
    long long scheduled[] = {4};
    r->element[9] = th_reply_int_array(scheduled, 1);
    return r;
}

#endif
