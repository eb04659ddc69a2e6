/* resultwait.c -- one subscriber connection demultiplexing planb:results by job id.
 *
 * Waits live in a json-c linkhash keyed by id (the entry owns its key). The subscription
 * also listens on <p>:front:beat:<name>, where cmd publishes a beat every second: a
 * subscriber that heard none for RESULTWAIT_BEAT_DEAD_MS is reset, since a pub/sub
 * connection cannot be pinged like the others. Each subscription confirmation of the
 * results channel (the first one apart) re-checks every wait with a GET, which covers
 * whatever was published while the subscriber was away. */
#include "planb/resultwait.h"

#include <json-c/linkhash.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"
#include "planb/wire.h"

#define RESULTWAIT_BEAT_MS      1000
#define RESULTWAIT_BEAT_DEAD_MS 3500 /* three beats missed */
#define RESULTWAIT_ID_MAX       256

typedef struct resultwait_entry {
    char *id; /* the table's key */
    pb_resultwait_fn fn;
    void *arg;
} resultwait_entry;

struct pb_resultwait {
    struct event_base *base;
    const pb_config *cfg;
    pb_redis *cmd; /* borrowed */
    pb_redis *sub; /* the subscriber */
    struct lh_table *waits;
    char *results_channel;
    char *beat_channel;
    struct event *beat;    /* persistent, every RESULTWAIT_BEAT_MS */
    int64_t heard_mono_ms; /* last beat (or subscription) heard */
    bool subscribed;       /* the results channel is confirmed on the current connection */
    unsigned long sub_ups; /* pb_redis_ups of sub at the last confirmation */
};

static void
resultwait_entry_free(struct lh_entry *e)
{
    resultwait_entry *w = (resultwait_entry *)lh_entry_v(e);
    free(w->id);
    free(w);
}

/* Ends the wait of id with result (NULL: none found): removed first, then told. */
static void
resultwait_deliver(pb_resultwait *w, const char *id, const char *result, size_t len)
{
    void *v = NULL;
    if (!lh_table_lookup_ex(w->waits, id, &v))
        return;
    resultwait_entry *e = v;
    pb_resultwait_fn fn = e->fn;
    void *arg = e->arg;
    lh_table_delete(w->waits, id); /* frees e */
    fn(result, len, arg);
}

typedef struct resultwait_get {
    pb_resultwait *w;
    bool report_missing; /* a bounded wait asked: tell it "none" too */
    char id[];
} resultwait_get;

static void
resultwait_on_get(redisReply *reply, void *arg)
{
    resultwait_get *g = arg;
    if (reply && reply->type == REDIS_REPLY_STRING)
        resultwait_deliver(g->w, g->id, reply->str, reply->len);
    else if (g->report_missing)
        resultwait_deliver(g->w, g->id, NULL, 0);
    free(g);
}

static void
resultwait_fetch(pb_resultwait *w, const char *id, bool report_missing)
{
    size_t n = strlen(id);
    resultwait_get *g = pb_xmalloc(sizeof(*g) + n + 1);
    g->w = w;
    g->report_missing = report_missing;
    memcpy(g->id, id, n + 1);
    char *key = pb_key_result(w->cfg->prefix, id);
    const char *argv[] = {"GET", key};
    pb_redis_command(w->cmd, resultwait_on_get, g, 2, argv, NULL);
    free(key);
}

/* After a resubscription: whatever finished while nobody listened is read from its key. */
static void
resultwait_recheck_all(pb_resultwait *w)
{
    struct lh_entry *e;
    lh_foreach(w->waits, e)
    {
        resultwait_fetch(w, ((resultwait_entry *)lh_entry_v(e))->id, false);
    }
}

static void
resultwait_on_message(redisReply *reply, void *arg)
{
    pb_resultwait *w = arg;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str, *channel = reply->element[1]->str;
    bool results = strcmp(channel, w->results_channel) == 0;
    w->heard_mono_ms = pb_mono_ms();
    if (strcmp(kind, "subscribe") == 0) {
        if (!results)
            return;
        bool again = w->sub_ups != 0;
        w->subscribed = true;
        w->sub_ups = pb_redis_ups(w->sub);
        if (again)
            resultwait_recheck_all(w);
        return;
    }
    if (strcmp(kind, "message") != 0 || !results || reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *msg = reply->element[2];
    char id[RESULTWAIT_ID_MAX];
    pb_wire_result_id(msg->str, msg->len, id, sizeof(id));
    if (id[0])
        resultwait_deliver(w, id, msg->str, msg->len);
}

/* Every second: publish a beat to ourselves, and replace a subscriber that stopped hearing. */
static void
resultwait_on_beat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pb_resultwait *w = arg;
    if (w->subscribed && !pb_redis_is_up(w->sub))
        w->subscribed = false;
    if (!w->subscribed) {
        w->heard_mono_ms = pb_mono_ms();
        return;
    }
    if (pb_mono_ms() - w->heard_mono_ms > RESULTWAIT_BEAT_DEAD_MS) {
        w->subscribed = false;
        pb_redis_reset(w->sub, "no heartbeat heard on the subscription");
        return;
    }
    const char *argv[] = {"PUBLISH", w->beat_channel, "beat"};
    pb_redis_command(w->cmd, NULL, NULL, 3, argv, NULL);
}

pb_resultwait *
pb_resultwait_new(struct event_base *base, const pb_config *cfg, pb_redis *cmd, const char *name)
{
    pb_resultwait *w = pb_xcalloc(1, sizeof(*w));
    w->base = base;
    w->cfg = cfg;
    w->cmd = cmd;
    w->waits = lh_kchar_table_new(1024, resultwait_entry_free);
    w->results_channel = pb_key_channel_results(cfg->prefix);
    w->beat_channel = pb_key_channel_front_beat(cfg->prefix, name);
    w->sub = pb_redis_new(base, cfg, "sub");
    const char *channels[] = {w->results_channel, w->beat_channel};
    pb_redis_subscribe(w->sub, 2, channels, resultwait_on_message, w);
    w->heard_mono_ms = pb_mono_ms();
    w->beat = event_new(base, -1, EV_PERSIST, resultwait_on_beat, w);
    struct timeval tv = {RESULTWAIT_BEAT_MS / 1000, (RESULTWAIT_BEAT_MS % 1000) * 1000};
    event_add(w->beat, &tv);
    return w;
}

void
pb_resultwait_free(pb_resultwait *w)
{
    if (w == NULL)
        return;
    event_free(w->beat);
    pb_redis_free(w->sub);
    lh_table_free(w->waits);
    free(w->results_channel);
    free(w->beat_channel);
    free(w);
}

bool
pb_resultwait_ready(const pb_resultwait *w)
{
    return w->subscribed && pb_redis_is_up(w->sub);
}

void
pb_resultwait_add(pb_resultwait *w, const char *id, pb_resultwait_fn fn, void *arg)
{
    resultwait_entry *e = pb_xcalloc(1, sizeof(*e));
    e->id = pb_xstrdup(id);
    e->fn = fn;
    e->arg = arg;
    lh_table_delete(w->waits, id); /* ids are unique; a repeat replaces */
    lh_table_insert(w->waits, e->id, e);
}

void
pb_resultwait_remove(pb_resultwait *w, const char *id)
{
    lh_table_delete(w->waits, id);
}

void
pb_resultwait_check(pb_resultwait *w, const char *id)
{
    resultwait_fetch(w, id, true);
}

size_t
pb_resultwait_count(const pb_resultwait *w)
{
    return (size_t)lh_table_length(w->waits);
}
