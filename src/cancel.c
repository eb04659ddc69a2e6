/* cancel.c -- cancelling a job by id: cancel.lua's arguments and its answer.
 *
 * cancel.lua (lua/) does the work in one script: a queued or delayed job is removed and gets
 * its `cancelled` result there, a running one is announced on <p>:cancel for its worker, a
 * finished one keeps its result. This module only builds the script's keys and arguments
 * from the config, so the CLI, the front door and tests call it the same way. */
#include "planb/cancel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/keys.h"

#define CANCEL_FIXED_KEYS 9  /* KEYS[1..9] of cancel.lua */
#define CANCEL_FIXED_ARGV 13 /* ARGV[1..13] of cancel.lua */

int
pb_cancel_args(const pb_config *cfg, const char *id, const char *who, char ***owned,
               const char ***view, int *numkeys)
{
    const char *p = cfg->prefix;
    int nk = CANCEL_FIXED_KEYS + 2 * (int)cfg->n_queues;
    int argc = nk + CANCEL_FIXED_ARGV;
    char **v = pb_xcalloc((size_t)argc, sizeof(char *));
    int n = 0;
    v[n++] = pb_key_result(p, id);
    v[n++] = pb_key_reply(p, id);
    v[n++] = pb_key_cancelled(p, id);
    v[n++] = pb_key_stats(p);
    v[n++] = pb_key_stats_minute(p, (long long)(pb_wall_ms() / 60000));
    v[n++] = pb_key_events(p);
    v[n++] = pb_key_stream(p, id);
    v[n++] = pb_key_workers(p);
    v[n++] = pb_key_cancels(p);
    for (size_t i = 0; i < cfg->n_queues; i++) {
        v[n++] = pb_key_queue(p, cfg->queues[i]);
        v[n++] = pb_key_delayed(p, cfg->queues[i]);
    }
    v[n++] = pb_xstrdup(id);
    v[n++] = pb_xasprintf("%d", cfg->result_ttl_s);
    v[n++] = pb_xasprintf("%d", cfg->reply_ttl_s);
    v[n++] = pb_key_channel_results(p);
    v[n++] = pb_key_channel_cancel(p);
    v[n++] = pb_xasprintf("%d", cfg->events_maxlen);
    v[n++] = pb_xasprintf("%d", cfg->stream_maxlen);
    v[n++] = pb_xasprintf("%d", cfg->stream_ttl_s);
    v[n++] = pb_xasprintf("%d", PB_CANCEL_SCAN_MAX);
    v[n++] = pb_xstrdup(cfg->n_routes > 0 ? cfg->routes[cfg->default_route].name : "default");
    size_t len = 1;
    for (size_t i = 0; i < cfg->n_routes; i++)
        len += strlen(cfg->routes[i].name) + 1;
    char *names = pb_xcalloc(1, len);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (i > 0)
            strcat(names, " ");
        strcat(names, cfg->routes[i].name);
    }
    v[n++] = names;
    v[n++] = pb_key_inflight(p, ""); /* the prefix of every worker's list */
    v[n++] = pb_xstrdup(who);
    pb_assert(n == argc);
    const char **cv = pb_xcalloc((size_t)argc, sizeof(char *));
    for (int i = 0; i < argc; i++)
        cv[i] = v[i];
    *owned = v;
    *view = cv;
    *numkeys = nk;
    return argc;
}

void
pb_cancel_args_free(char **owned, const char **view, int argc)
{
    for (int i = 0; i < argc; i++)
        free(owned[i]);
    free(owned);
    free(view);
}

pb_cancel_outcome
pb_cancel_outcome_of(const char *reply)
{
    static const char *const names[] = {"removed", "running", "unknown", "finished"};
    for (int i = 0; i < 4; i++)
        if (reply != NULL && strcmp(reply, names[i]) == 0)
            return (pb_cancel_outcome)i;
    return PB_CANCEL_ERROR;
}
