/* deadletter.c -- find, retry and purge dead letters: `planb dead` and the admin API share it.
 *
 * The list can be long (limits.dead_max_entries), so an id is searched chunk by chunk and a
 * retry-all walks from the oldest end one entry at a time; a retry is dead_retry.lua, so two
 * operators retrying the same entry at once push its job once. */
#include "planb/deadletter.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/keys.h"
#include "planb/scripts.h"

#define DEAD_SCAN_CHUNK 500 /* entries fetched per LRANGE while searching an id */

void
pb_dead_init(pb_dead *d, pb_redissync *c, const pb_config *cfg)
{
    memset(d, 0, sizeof(*d));
    d->c = c;
    d->cfg = cfg;
    d->key = pb_key_dead(cfg->prefix);
}

void
pb_dead_fini(pb_dead *d)
{
    free(d->key);
    d->key = NULL;
}

const char *
pb_dead_field(json_object *e, const char *name)
{
    json_object *v;
    if (e == NULL || !json_object_object_get_ex(e, name, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

bool
pb_dead_is_position(const char *s)
{
    if (*s == '\0' || strlen(s) > 9)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* r, or NULL with d->why set when the connection failed or Redis answered an error. */
static redisReply *
dead_reply(pb_dead *d, redisReply *r)
{
    if (r == NULL) {
        snprintf(d->why, sizeof(d->why), "%s", pb_redissync_error(d->c));
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(d->why, sizeof(d->why), "%s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

pb_dead_rc
pb_dead_count(pb_dead *d, long long *n)
{
    redisReply *r = dead_reply(d, pb_redissync_command(d->c, "LLEN %s", d->key));
    if (r == NULL)
        return PB_DEAD_FAILED;
    *n = r->integer;
    freeReplyObject(r);
    return PB_DEAD_DONE;
}

redisReply *
pb_dead_range(pb_dead *d, long long start, long long count)
{
    return dead_reply(
        d, pb_redissync_command(d->c, "LRANGE %s %lld %lld", d->key, start, start + count - 1));
}

pb_dead_rc
pb_dead_find(pb_dead *d, const char *sel, bool by_id, char **out)
{
    *out = NULL;
    if (!by_id && pb_dead_is_position(sel)) {
        redisReply *r = dead_reply(d, pb_redissync_command(d->c, "LINDEX %s %s", d->key, sel));
        if (r == NULL)
            return PB_DEAD_FAILED;
        if (r->type == REDIS_REPLY_STRING)
            *out = pb_xstrndup(r->str, r->len);
        freeReplyObject(r);
        return *out ? PB_DEAD_DONE : PB_DEAD_ABSENT;
    }
    for (long long start = 0;; start += DEAD_SCAN_CHUNK) {
        redisReply *r = pb_dead_range(d, start, DEAD_SCAN_CHUNK);
        if (r == NULL)
            return PB_DEAD_FAILED;
        size_t n = r->elements;
        for (size_t i = 0; i < n && *out == NULL; i++) {
            json_object *e = json_tokener_parse(r->element[i]->str);
            const char *id = pb_dead_field(e, "id");
            if (id && strcmp(id, sel) == 0)
                *out = pb_xstrndup(r->element[i]->str, r->element[i]->len);
            json_object_put(e);
        }
        freeReplyObject(r);
        if (*out)
            return PB_DEAD_DONE;
        if (n < DEAD_SCAN_CHUNK)
            return PB_DEAD_ABSENT;
    }
}

pb_dead_rc
pb_dead_retry_entry(pb_dead *d, const char *entry, const char *queue, pb_dead_each_fn each,
                    void *arg)
{
    json_object *e = json_tokener_parse(entry);
    const char *job = pb_dead_field(e, "job"), *id = pb_dead_field(e, "id");
    const char *q = queue ? queue : pb_dead_field(e, "queue");
    char *qkey = pb_key_queue(d->cfg->prefix, q ? q : d->cfg->queues[0]);
    pb_dead_rc rc = PB_DEAD_NOT_TEXT;
    if (job != NULL) {
        const pb_lua_source *src = pb_scripts_find("dead_retry");
        pb_assert(src != NULL);
        char *rkey = pb_key_result(d->cfg->prefix, id ? id : "");
        char *pkey = pb_key_reply(d->cfg->prefix, id ? id : "");
        redisReply *r =
            dead_reply(d, pb_redissync_command(d->c, "EVAL %s 4 %s %s %s %s %s %s", src->body,
                                               d->key, qkey, rkey, pkey, entry, job));
        rc = r == NULL ? PB_DEAD_FAILED : r->integer == 1 ? PB_DEAD_DONE : PB_DEAD_ABSENT;
        freeReplyObject(r);
        free(rkey);
        free(pkey);
    }
    if (each != NULL && rc != PB_DEAD_FAILED)
        each(arg, id ? id : "?", qkey, rc);
    free(qkey);
    json_object_put(e);
    return rc;
}

/* The entry's error or reason holds match. */
static bool
dead_matches(const char *entry, const char *match)
{
    if (match == NULL)
        return true;
    json_object *e = json_tokener_parse(entry);
    const char *err = pb_dead_field(e, "error"), *reason = pb_dead_field(e, "reason");
    bool hit = (err && strstr(err, match)) || (reason && strstr(reason, match));
    json_object_put(e);
    return hit;
}

pb_dead_rc
pb_dead_retry_all(pb_dead *d, const char *match, const char *queue, pb_dead_each_fn each, void *arg,
                  long long *done, long long *kept)
{
    long long total;
    *done = *kept = 0;
    if (pb_dead_count(d, &total) != PB_DEAD_DONE)
        return PB_DEAD_FAILED;
    for (long long i = 0; i < total; i++) {
        redisReply *r =
            dead_reply(d, pb_redissync_command(d->c, "LINDEX %s %lld", d->key, -(*kept + 1)));
        if (r == NULL)
            return PB_DEAD_FAILED;
        if (r->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            break;
        }
        pb_dead_rc rc = dead_matches(r->str, match)
                            ? pb_dead_retry_entry(d, r->str, queue, each, arg)
                            : PB_DEAD_ABSENT;
        freeReplyObject(r);
        if (rc == PB_DEAD_FAILED)
            return rc;
        if (rc == PB_DEAD_DONE)
            (*done)++;
        else
            (*kept)++;
    }
    return *done > 0 || total == 0 ? PB_DEAD_DONE : PB_DEAD_ABSENT;
}

pb_dead_rc
pb_dead_purge(pb_dead *d, long long *purged)
{
    const char *steps[] = {"MULTI", "LLEN", "DEL"};
    for (size_t i = 0; i < 3; i++) {
        redisReply *r =
            dead_reply(d, i == 0 ? pb_redissync_command(d->c, "MULTI")
                                 : pb_redissync_command(d->c, "%s %s", steps[i], d->key));
        if (r == NULL)
            return PB_DEAD_FAILED;
        freeReplyObject(r);
    }
    redisReply *ex = dead_reply(d, pb_redissync_command(d->c, "EXEC"));
    pb_dead_rc rc = PB_DEAD_FAILED;
    if (ex && ex->type == REDIS_REPLY_ARRAY && ex->elements == 2) {
        *purged = ex->element[0]->integer;
        rc = PB_DEAD_DONE;
    } else if (ex)
        snprintf(d->why, sizeof(d->why), "EXEC did not run the purge");
    freeReplyObject(ex);
    return rc;
}
