/* stats.c -- `planb stats`: queue depths, in-flight jobs, 1/5/60-minute rates, breaker
 * states and per-model errors, read from Redis in one snapshot.lua call.
 *
 * The same snapshot feeds the planb:stats publisher and /metrics, so the
 * three never disagree. --json prints the planb:stats message format;
 * --watch redraws every S seconds (default 2) until interrupted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "planb/breaker.h"
#include "planb/scripts.h"
#include "planb/stats.h"

#define STATS_WATCH_S   2    /* --watch without S: redraw every 2 s */
#define STATS_WATCH_MAX 3600 /* --watch bound: an hour, past that nobody is watching */

/* Runs snapshot.lua (EVAL: a one-shot client need not care whether it is loaded). */
static redisReply *
stats_read(pb_redissync *rc, const pb_config *cfg)
{
    char **owned;
    const char **view;
    int numkeys;
    int argc = pb_stats_args(cfg, &owned, &view, &numkeys);
    const pb_lua_source *src = pb_scripts_find("snapshot");
    const char **argv = pb_xcalloc((size_t)argc + 3, sizeof(char *));
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", numkeys);
    argv[0] = "EVAL";
    argv[1] = src->body;
    argv[2] = nk;
    for (int i = 0; i < argc; i++)
        argv[3 + i] = view[i];
    redisReply *r = pb_redissync_command_argv(rc, argc + 3, argv, NULL);
    free(argv);
    pb_stats_args_free(owned, view, argc);
    return r;
}

static void
stats_table(const pb_config *cfg, const pb_stats_snapshot *s)
{
    static const char *const states[] = {"closed", "open", "half_open"};
    printf("queues   ");
    for (size_t q = 0; q < cfg->n_queues; q++)
        printf("  %s=%lld", cfg->queues[q], s->queue_depth[q]);
    printf("\nscheduled");
    for (size_t q = 0; q < cfg->n_queues; q++)
        printf("  %s=%lld", cfg->queues[q], s->queue_scheduled[q]);
    printf("\nin flight  %lld\n\n", s->inflight);
    printf("%-7s %9s %9s %9s %9s %9s %10s %10s %8s\n", "window", "jobs", "primary", "fallback",
           "cache", "degraded", "fallback%", "degraded%", "cache%");
    for (int w = 0; w < PB_STATS_N_WINDOWS; w++) {
        const long long *v = s->win[w];
        char name[8];
        snprintf(name, sizeof(name), "%dm", pb_stats_window_min[w]);
        printf("%-7s %9lld %9lld %9lld %9lld %9lld %9.1f%% %9.1f%% %7.1f%%\n", name, v[PB_WIN_JOBS],
               v[PB_WIN_PRIMARY], v[PB_WIN_FALLBACK] + v[PB_WIN_STALE],
               v[PB_WIN_CACHE] + v[PB_WIN_SEMANTIC], v[PB_WIN_DEGRADED],
               100 * pb_stats_fallback_rate(v), 100 * pb_stats_degraded_rate(v),
               100 * pb_stats_cache_rate(v));
    }
    printf("\n%-24s %-16s %10s  %s\n", "model", "breaker", "attempts", "errors (since start)");
    for (size_t m = 0; m < cfg->n_models; m++) {
        const char *name = cfg->models[m].name;
        char state[32], key[128];
        if (s->breaker_state[m] == PB_BREAKER_CLOSED)
            snprintf(state, sizeof(state), "closed");
        else
            snprintf(state, sizeof(state), "%s %llds", states[s->breaker_state[m]],
                     (s->breaker_left_ms[m] + 999) / 1000);
        snprintf(key, sizeof(key), "attempts:%s", name);
        printf("%-24s %-16s %10lld ", name, state, pb_stats_get(s, key));
        snprintf(key, sizeof(key), "errors:%s:", name);
        size_t kl = strlen(key);
        int shown = 0;
        for (size_t i = 0; i < s->n_fields; i++) {
            const char *f = s->fields[i].name;
            if (strncmp(f, key, kl) == 0 && strchr(f + kl, ':') == NULL)
                printf(" %s=%lld", f + kl, s->fields[i].value), shown++;
        }
        printf("%s\n", shown ? "" : " -");
    }
}

/* One read and print; returns an exit code. */
static int
stats_once(pb_redissync *rc, const pb_config *cfg, bool json)
{
    redisReply *r = stats_read(rc, cfg);
    pb_stats_snapshot snap;
    if (r == NULL || pb_stats_parse(cfg, r, &snap) != PB_OK) {
        fprintf(stderr, "planb: cannot read the figures: %s\n",
                r == NULL                      ? pb_redissync_error(rc)
                : r->type == REDIS_REPLY_ERROR ? r->str
                                               : "bad reply");
        freeReplyObject(r);
        return PB_CLI_EXIT_REDIS;
    }
    freeReplyObject(r);
    if (json) {
        json_object *o = pb_stats_to_json(cfg, &snap);
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    } else {
        stats_table(cfg, &snap);
    }
    pb_stats_snapshot_free(&snap);
    fflush(stdout);
    return PB_CLI_EXIT_OK;
}

/* The options are parsed by hand: getopt_long cannot take --watch's optional S as a separate
 * argument (`--watch 5`), which is how docs/cli.md writes it. */
int
pb_cli_stats(pb_cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    int watch_s = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--watch") == 0) {
            watch_s = STATS_WATCH_S;
            char *end;
            long s = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 < argc && *end == '\0' && end != argv[i + 1]) {
                if (s < 1 || s > STATS_WATCH_MAX) {
                    fprintf(stderr, "planb: --watch takes 1 to %d seconds\n", STATS_WATCH_MAX);
                    return PB_CLI_EXIT_USAGE;
                }
                watch_s = (int)s;
                i++;
            }
        } else {
            return pb_cli_usage_error(ctx);
        }
    }
    int code = pb_cli_ready(ctx);
    while (code == PB_CLI_EXIT_OK) {
        if (watch_s && !json)
            printf("\033[H\033[2J");
        code = stats_once(ctx->rc, ctx->cfg, json);
        if (watch_s == 0)
            break;
        sleep((unsigned)watch_s);
    }
    return code;
}
