/* th_jobs.h -- small job/result helpers shared by integration tests (header-only).
 *
 * Pushing a job, waiting for its reply list, reading result fields; kept
 * static so each test binary takes only what it uses. */
#ifndef PLANB_TEST_TH_JOBS_H
#define PLANB_TEST_TH_JOBS_H

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* LPUSHes job (any text, valid or not) on planb:q:default; 0 once Redis took it, else -1. */
static inline int
th_push_raw(redisContext *rc, const char *job)
{
    redisReply *r = redisCommand(rc, "LPUSH planb:q:default %s", job);
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* LPUSHes a job with reply:true, one user message text (extra: more JSON fields or NULL). */
static inline int
th_push_job_text(redisContext *rc, const char *id, const char *text, const char *extra)
{
    char job[4096];
    snprintf(job, sizeof(job),
             "{\"id\":\"%s\",\"reply\":true,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]"
             "%s%s}",
             id, text, extra ? "," : "", extra ? extra : "");
    return th_push_raw(rc, job);
}

/* th_push_job_text asking "hi <id>". */
static inline int
th_push_job(redisContext *rc, const char *id, const char *extra)
{
    char text[512];
    snprintf(text, sizeof(text), "hi %s", id);
    return th_push_job_text(rc, id, text, extra);
}

/* The result of id from planb:reply:<id>, NULL after timeout_s. Caller puts. */
static inline json_object *
th_wait_result(redisContext *rc, const char *id, double timeout_s)
{
    redisReply *r = redisCommand(rc, "BLPOP planb:reply:%s %.2f", id, timeout_s);
    json_object *o = NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        o = json_tokener_parse(r->element[1]->str);
    freeReplyObject(r);
    return o;
}

/* o[name] as a string ("" when absent, so assertions never get NULL). */
static inline const char *
th_field(json_object *o, const char *name)
{
    json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, name, &v))
        return "";
    return json_object_get_string(v);
}

static inline long
th_field_int(json_object *o, const char *name)
{
    json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, name, &v))
        return -1;
    return (long)json_object_get_int64(v);
}

/* Field name of attempt i ("" when there is no such attempt). */
static inline const char *
th_attempt(json_object *o, size_t i, const char *name)
{
    json_object *a;
    if (o == NULL || !json_object_object_get_ex(o, "attempts", &a))
        return "";
    return th_field(json_object_array_get_idx(a, i), name);
}

/* A hash field as a string in buf ("" when absent). */
static inline const char *
th_hget(redisContext *rc, const char *key, const char *field, char *buf, size_t cap)
{
    redisReply *r = redisCommand(rc, "HGET %s %s", key, field);
    snprintf(buf, cap, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return buf;
}

#endif
