/* th_fleet.h -- many-job helpers for fault tests (header-only): push n, count results.
 *
 * Jobs are "<tag>-<i>" with reply:true, pushed in one pipeline; the counters
 * read what a producer would see: planb:result:<id>, planb:reply:<id> (exactly
 * one entry each) and planb:events (one entry per stored result, so XLEN - n
 * is the number of results stored twice). Each returns -1 when Redis is away,
 * so a wait loop can keep polling through an outage. */
#ifndef PLANB_TEST_TH_FLEET_H
#define PLANB_TEST_TH_FLEET_H

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pushes n jobs "<tag>-<i>" (reply:true; extra: more JSON fields or NULL); 0 or -1. */
static inline int
th_fleet_push(redisContext *rc, const char *tag, int n, const char *extra)
{
    for (int i = 0; i < n; i++) {
        char job[1024]; /* one argument: hiredis splits a format string at its spaces */
        snprintf(job, sizeof(job),
                 "{\"id\":\"%s-%d\",\"reply\":true,\"messages\":[{\"role\":\"user\","
                 "\"content\":\"fleet %s %d\"}]%s%s}",
                 tag, i, tag, i, extra ? "," : "", extra ? extra : "");
        redisAppendCommand(rc, "LPUSH planb:q:default %s", job);
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK)
            return -1;
        bad += r == NULL || r->type != REDIS_REPLY_INTEGER;
        freeReplyObject(r);
    }
    return bad ? -1 : 0;
}

/* How many of "<tag>-0".."<tag>-<n-1>" answer the integer want to fmt ("EXISTS ...%s-%d")
 * or want to a counting command (LLEN ...); -1 when Redis is away. */
static inline int
th_fleet_count(redisContext *rc, const char *fmt, const char *tag, int n, long want)
{
    for (int i = 0; i < n; i++)
        redisAppendCommand(rc, fmt, tag, i);
    int found = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK)
            return -1;
        found += r && r->type == REDIS_REPLY_INTEGER && r->integer == want;
        freeReplyObject(r);
    }
    return found;
}

/* Stored results of the fleet. */
static inline int
th_fleet_results(redisContext *rc, const char *tag, int n)
{
    return th_fleet_count(rc, "EXISTS planb:result:%s-%d", tag, n, 1);
}

/* Jobs whose reply list holds exactly one entry. */
static inline int
th_fleet_replies_once(redisContext *rc, const char *tag, int n)
{
    return th_fleet_count(rc, "LLEN planb:reply:%s-%d", tag, n, 1);
}

/* An integer reply of a one-argument command ("XLEN %s", "planb:events"); -1 on error. */
static inline long long
th_fleet_int(redisContext *rc, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

/* Jobs in the in-flight lists of the workers in planb:workers (never KEYS: the dataset may
 * be millions of keys). */
static inline long long
th_fleet_inflight(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "ZRANGE planb:workers 0 -1");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    long long n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *l = redisCommand(rc, "LLEN planb:inflight:%s", r->element[i]->str);
        n += l && l->type == REDIS_REPLY_INTEGER ? l->integer : 0;
        freeReplyObject(l);
    }
    freeReplyObject(r);
    return n;
}

#endif
