/* streamread.c -- one parked XREAD BLOCK relaying every answer stream of the front door.
 *
 * Subs live in a json-c linkhash keyed by stream key. The XREAD's argv is copied by hiredis
 * when sent, so a sub can be freed at any time: entries of a stream whose sub is gone are
 * skipped. New subs are batched per loop turn (the kick event) and wake a parked read with
 * CLIENT UNBLOCK <reader's id> on the command connection; without CLIENT (an ACL may deny
 * it) the read blocks only 50 ms, so a new stream waits at most that. */
#include "planb/streamread.h"

#include <json-c/linkhash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"

#define STREAMREAD_BLOCK_MS     1000
#define STREAMREAD_BLOCK_NOWAKE "50"  /* ms, while CLIENT UNBLOCK is not known to work */
#define STREAMREAD_COUNT        "256" /* entries per stream per read */
#define STREAMREAD_STALL_MS     6000  /* a read this far past its block: the link is dead */
#define STREAMREAD_RETRY_MS     100   /* while the reader is down */
#define STREAMREAD_ID_MAX       48    /* "<ms>-<seq>" */

struct pb_streamread_sub {
    char *key; /* planb:stream:<id>: the table's key */
    char last_id[STREAMREAD_ID_MAX];
    pb_streamread_fn fn;
    void *arg;
};

struct pb_streamread {
    struct event_base *base;
    const pb_config *cfg;
    pb_redis *cmd;    /* borrowed: CLIENT UNBLOCK */
    pb_redis *reader; /* parks the XREAD */
    struct lh_table *subs;
    bool reading;   /* an XREAD is outstanding */
    bool wake_sent; /* ... and a CLIENT UNBLOCK for it */
    int64_t read_sent_mono_ms;
    long long client_id;  /* the reader's CLIENT ID; -1 unknown or refused */
    unsigned long id_ups; /* pb_redis_ups when it was asked */
    struct event *kick;   /* issue a read on the next loop turn */
    struct event *tick;   /* persistent: retries and the stall watchdog */
};

static void streamread_issue(pb_streamread *sr);

static void
streamread_sub_free(struct lh_entry *e)
{
    pb_streamread_sub *s = (pb_streamread_sub *)lh_entry_v(e);
    free(s->key);
    free(s);
}

static void
streamread_on_client_id(redisReply *reply, void *arg)
{
    pb_streamread *sr = arg;
    sr->client_id = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
}

/* Hands each entry of an XREAD reply [[key, [[id, [f, v, ...]], ...]], ...] to its sub. */
static void
streamread_dispatch(pb_streamread *sr, const redisReply *reply)
{
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *s = reply->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING || s->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const char *key = s->element[0]->str;
        const redisReply *entries = s->element[1];
        for (size_t j = 0; j < entries->elements; j++) {
            const redisReply *e = entries->element[j];
            void *v = NULL;
            if (!lh_table_lookup_ex(sr->subs, key, &v))
                break; /* removed, maybe by the previous entry's fn */
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            pb_streamread_sub *sub = v;
            snprintf(sub->last_id, sizeof(sub->last_id), "%s", e->element[0]->str);
            sub->fn(e->element[1], sub->arg);
        }
    }
}

static void
streamread_on_read(redisReply *reply, void *arg)
{
    pb_streamread *sr = arg;
    sr->reading = false;
    sr->wake_sent = false;
    if (reply == NULL)
        return; /* the reader is down: the tick issues again once it is up */
    if (reply->type == REDIS_REPLY_ARRAY)
        streamread_dispatch(sr, reply);
    else if (reply->type == REDIS_REPLY_ERROR && !pb_redis_is_transient(reply))
        pb_log(PB_LOG_WARN, "event=stream_read_refused error=\"%.120s\"", reply->str);
    streamread_issue(sr);
}

/* XREAD COUNT n BLOCK ms STREAMS k1..kn id1..idn over every sub. */
static void
streamread_issue(pb_streamread *sr)
{
    int n = lh_table_length(sr->subs);
    if (sr->reading || n == 0 || !pb_redis_is_up(sr->reader))
        return;
    if (sr->id_ups != pb_redis_ups(sr->reader)) {
        sr->id_ups = pb_redis_ups(sr->reader);
        sr->client_id = -1;
        const char *argv[] = {"CLIENT", "ID"};
        pb_redis_command(sr->reader, streamread_on_client_id, sr, 2, argv, NULL);
    }
    const char **argv = pb_xmalloc(sizeof(char *) * (size_t)(6 + 2 * n));
    char block[16];
    snprintf(block, sizeof(block), "%d", STREAMREAD_BLOCK_MS);
    int argc = 0;
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = STREAMREAD_COUNT;
    argv[argc++] = "BLOCK";
    /* The CLIENT ID reply is read before this one's block starts, but its value is only
     * known afterwards: until it is, block briefly. */
    argv[argc++] = sr->client_id >= 0 ? block : STREAMREAD_BLOCK_NOWAKE;
    argv[argc++] = "STREAMS";
    struct lh_entry *e;
    lh_foreach(sr->subs, e)
    {
        argv[argc++] = ((pb_streamread_sub *)lh_entry_v(e))->key;
    }
    lh_foreach(sr->subs, e)
    {
        argv[argc++] = ((pb_streamread_sub *)lh_entry_v(e))->last_id;
    }
    sr->reading = true;
    sr->read_sent_mono_ms = pb_mono_ms();
    pb_redis_command(sr->reader, streamread_on_read, sr, argc, argv, NULL);
    free(argv);
}

static void
streamread_on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_streamread *sr = arg;
    if (!sr->reading) {
        streamread_issue(sr);
        return;
    }
    if (sr->wake_sent || sr->client_id < 0)
        return;
    char id[24];
    snprintf(id, sizeof(id), "%lld", sr->client_id);
    const char *argv[] = {"CLIENT", "UNBLOCK", id};
    pb_redis_command(sr->cmd, NULL, NULL, 3, argv, NULL);
    sr->wake_sent = true;
}

static void
streamread_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_streamread *sr = arg;
    if (sr->reading &&
        pb_mono_ms() - sr->read_sent_mono_ms > STREAMREAD_BLOCK_MS + STREAMREAD_STALL_MS) {
        pb_redis_reset(sr->reader, "XREAD BLOCK outlived its block: connection stalled");
        return;
    }
    streamread_issue(sr);
}

pb_streamread *
pb_streamread_new(struct event_base *base, const pb_config *cfg, pb_redis *cmd)
{
    pb_streamread *sr = pb_xcalloc(1, sizeof(*sr));
    sr->base = base;
    sr->cfg = cfg;
    sr->cmd = cmd;
    sr->client_id = -1;
    sr->reader = pb_redis_new(base, cfg, "xread");
    pb_redis_no_ping(sr->reader); /* it parks a blocking read; the tick watches it instead */
    sr->subs = lh_kchar_table_new(256, streamread_sub_free);
    sr->kick = event_new(base, -1, 0, streamread_on_kick, sr);
    sr->tick = event_new(base, -1, EV_PERSIST, streamread_on_tick, sr);
    struct timeval tv = {0, STREAMREAD_RETRY_MS * 1000};
    event_add(sr->tick, &tv);
    return sr;
}

void
pb_streamread_free(pb_streamread *sr)
{
    if (sr == NULL)
        return;
    pb_redis_free(sr->reader); /* its pending read gets NULL first */
    event_free(sr->kick);
    event_free(sr->tick);
    lh_table_free(sr->subs);
    free(sr);
}

pb_streamread_sub *
pb_streamread_add(pb_streamread *sr, const char *id, pb_streamread_fn fn, void *arg)
{
    pb_streamread_sub *s = pb_xcalloc(1, sizeof(*s));
    s->key = pb_key_stream(sr->cfg->prefix, id);
    snprintf(s->last_id, sizeof(s->last_id), "0-0");
    s->fn = fn;
    s->arg = arg;
    lh_table_delete(sr->subs, s->key);
    lh_table_insert(sr->subs, s->key, s);
    event_active(sr->kick, EV_TIMEOUT, 0);
    return s;
}

void
pb_streamread_remove(pb_streamread *sr, pb_streamread_sub *sub)
{
    if (sub != NULL)
        lh_table_delete(sr->subs, sub->key);
}
