/* deadletter.h -- the dead-letter list's operations, shared by `planb dead` and the admin API.
 *
 * One code path for both, so the page and the command line find, retry and purge entries the
 * same way (docs/redis.md has the entry's fields). Blocking calls on a redissync connection:
 * the command line runs once, the admin process serves few operators. */
#ifndef PLANB_DEADLETTER_H
#define PLANB_DEADLETTER_H

#include <json-c/json.h>
#include <stdbool.h>

#include "planb/config.h"
#include "planb/redissync.h"

typedef enum {
    PB_DEAD_DONE,     /* found, pushed, purged */
    PB_DEAD_ABSENT,   /* no such entry (or someone else retried or purged it first) */
    PB_DEAD_NOT_TEXT, /* its job is not text (job_base64, job_head): it cannot be retried */
    PB_DEAD_FAILED    /* Redis failed or refused: why says so */
} pb_dead_rc;

typedef struct pb_dead {
    pb_redissync *c;      /* borrowed */
    const pb_config *cfg; /* prefix and queues */
    char *key;            /* <p>:dead */
    char why[256];        /* the last PB_DEAD_FAILED's reason */
} pb_dead;

/* Called once per entry a retry looked at: its id ("?" when none), the queue key it went to. */
typedef void (*pb_dead_each_fn)(void *arg, const char *id, const char *queue_key, pb_dead_rc rc);

void pb_dead_init(pb_dead *d, pb_redissync *c, const pb_config *cfg);
void pb_dead_fini(pb_dead *d);
/* A string field of an entry, or NULL (borrowed from e). */
const char *pb_dead_field(json_object *e, const char *name);
/* "0".."999999999": a position in the list, newest first. */
bool pb_dead_is_position(const char *s);
/* Entries in the list. */
pb_dead_rc pb_dead_count(pb_dead *d, long long *n);
/* Entries start .. start+count-1, newest first: an array reply (caller frees) or NULL. */
redisReply *pb_dead_range(pb_dead *d, long long start, long long count);
/* An entry by position or id (by_id: sel is an id even when all digits); *out a copy (caller
 * frees). An id is searched chunk by chunk, newest first. */
pb_dead_rc pb_dead_find(pb_dead *d, const char *sel, bool by_id, char **out);
/* Pushes one entry's job back onto queue (NULL: the entry's queue, else the first one) with
 * dead_retry.lua: entry removed, old result and reply deleted, job pushed, all or nothing. */
pb_dead_rc pb_dead_retry_entry(pb_dead *d, const char *entry, const char *queue,
                               pb_dead_each_fn each, void *arg);
/* Retries every entry whose error or reason holds match (NULL: all), oldest first so the
 * queue keeps their order, bounded by the length seen at the start. */
pb_dead_rc pb_dead_retry_all(pb_dead *d, const char *match, const char *queue, pb_dead_each_fn each,
                             void *arg, long long *done, long long *kept);
/* Deletes every entry (MULTI/EXEC: *purged is what was deleted). */
pb_dead_rc pb_dead_purge(pb_dead *d, long long *purged);

#endif
