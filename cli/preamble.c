/* preamble.c -- what every command does once its arguments are good: config, then Redis.
 *
 * A handler checks its own arguments first (so a usage error exits 2 even when
 * Redis is down), then calls pb_cli_ready, which loads the -c config and, for
 * the one-shot commands that talk to Redis (submit, stats, dead, result), opens
 * a blocking connection (redissync.c: TCP or TLS as the URL says): they run
 * once and exit, so they need none of the workers' async machinery. submit loads the config on its
 * own first (pb_cli_load_config), so it reads stdin only once the config is good. AUTH and SELECT,
 * and their error messages, are written once here. The password comes from the config (password_env
 * or the URL) and is never printed. With redis.sentinels the master's address is asked of the
 * sentinels first (blocking is fine in a one-shot command). */
#include "cli.h"

#include <stdio.h>

#include "planb/sentinel.h"

#define PREAMBLE_REDIS_MS 5000 /* connect, handshake, and each command of a one-shot command */

/* Connects to cfg's Redis (AUTH, SELECT); NULL after printing why. */
static pb_redissync *
preamble_connect(const pb_config *cfg)
{
    char where[300], why[300];
    pb_redissync *rc =
        pb_sentinel_open_sync(cfg, PREAMBLE_REDIS_MS, where, sizeof(where), why, sizeof(why));
    if (rc == NULL)
        fprintf(stderr, "planb: cannot connect to Redis at %s: %s\n", where, why);
    return rc;
}

int
pb_cli_load_config(pb_cli_ctx *ctx)
{
    if (ctx->cfg != NULL || !(ctx->cmd->needs & PB_CLI_NEEDS_CONFIG))
        return PB_CLI_EXIT_OK;
    if (ctx->config_path == NULL) {
        fprintf(stderr, "planb: %s needs -c CONFIG\n", ctx->cmd->name);
        return PB_CLI_EXIT_USAGE;
    }
    pb_error err = {0};
    ctx->cfg = pb_config_load(ctx->config_path, &err);
    if (ctx->cfg == NULL) {
        fprintf(stderr, "planb: %s\n", err.msg);
        return PB_CLI_EXIT_USAGE;
    }
    return PB_CLI_EXIT_OK;
}

int
pb_cli_ready(pb_cli_ctx *ctx)
{
    int code = pb_cli_load_config(ctx);
    if (code != PB_CLI_EXIT_OK || !(ctx->cmd->needs & PB_CLI_NEEDS_REDIS) || ctx->rc != NULL)
        return code;
    ctx->rc = preamble_connect(ctx->cfg);
    return ctx->rc ? PB_CLI_EXIT_OK : PB_CLI_EXIT_REDIS;
}

redisReply *
pb_cli_reply(const pb_cli_ctx *ctx, redisReply *r)
{
    if (r == NULL) {
        fprintf(stderr, "planb: Redis error: %s\n", pb_redissync_error(ctx->rc));
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "planb: Redis error: %s\n", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}
