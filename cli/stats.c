/* cli_stats.c -- `planb stats`: queue depths, in-flight jobs, 1/5/60-minute rates, breaker
 * states and per-model errors, read from Redis in one snapshot.lua call.
 *
 * The same snapshot feeds the planb:stats publisher and /metrics, so the
 * three never disagree. --json prints the planb:stats message format;
 * --watch redraws every S seconds (default 2) until interrupted. */
#include "stats.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "planb/breaker.h"
#include "redis.h"
#include "planb/config.h"
#include "planb/core.h"
#include "planb/scripts.h"
#include "planb/stats.h"

#define CLI_STATS_USAGE     2
#define CLI_STATS_REDIS     PB_CLI_EXIT_REDIS
#define CLI_STATS_WATCH_S   2
#define CLI_STATS_WATCH_MAX 3600

/* Runs snapshot.lua (EVAL: a one-shot client need not care whether it is loaded). */
static redisReply *
cli_stats_read(redisContext *rc, const pb_config *cfg)
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
    redisReply *r = redisCommandArgv(rc, argc + 3, argv, NULL);
    free(argv);
    pb_stats_args_free(owned, view, argc);
    return r;
}

static void
cli_stats_table(const pb_config *cfg, const pb_stats_snapshot *s)
{
    static const char *const states[] = {"closed", "open", "half_open"};
    printf("queues   ");
    for (size_t q = 0; q < cfg->n_queues; q++)
        printf("  %s=%lld", cfg->queues[q], s->queue_depth[q]);
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
cli_stats_once(redisContext *rc, const pb_config *cfg, bool json)
{
    redisReply *r = cli_stats_read(rc, cfg);
    pb_stats_snapshot snap;
    if (r == NULL || pb_stats_parse(cfg, r, &snap) != PB_OK) {
        fprintf(stderr, "planb: cannot read the figures: %s\n",
                r == NULL                      ? rc->errstr
                : r->type == REDIS_REPLY_ERROR ? r->str
                                               : "bad reply");
        freeReplyObject(r);
        return CLI_STATS_REDIS;
    }
    freeReplyObject(r);
    if (json) {
        json_object *o = pb_stats_to_json(cfg, &snap);
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    } else {
        cli_stats_table(cfg, &snap);
    }
    pb_stats_snapshot_free(&snap);
    fflush(stdout);
    return 0;
}

int
pb_cli_stats(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    int watch_s = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--watch") == 0) {
            watch_s = CLI_STATS_WATCH_S;
            char *end;
            long s = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 < argc && *end == '\0' && end != argv[i + 1]) {
                if (s < 1 || s > CLI_STATS_WATCH_MAX) {
                    fprintf(stderr, "planb: --watch takes 1 to %d seconds\n", CLI_STATS_WATCH_MAX);
                    return CLI_STATS_USAGE;
                }
                watch_s = (int)s;
                i++;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: planb stats -c FILE [--watch [S]] [--json]\n");
            return 0;
        } else {
            fprintf(stderr, "usage: planb stats -c FILE [--watch [S]] [--json]\n");
            return CLI_STATS_USAGE;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "planb: stats needs -c CONFIG\n");
        return CLI_STATS_USAGE;
    }
    pb_config *cfg = pb_cli_load_config(path);
    if (cfg == NULL)
        return CLI_STATS_USAGE;
    redisContext *rc = pb_cli_redis_connect(cfg);
    int code = rc ? 0 : CLI_STATS_REDIS;
    while (rc) {
        if (watch_s && !json)
            printf("\033[H\033[2J");
        code = cli_stats_once(rc, cfg, json);
        if (code != 0 || watch_s == 0)
            break;
        sleep((unsigned)watch_s);
    }
    redisFree(rc);
    pb_config_free(cfg);
    return code;
}
