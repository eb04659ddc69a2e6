/* preamble.c -- what every command does once its arguments are good: config, then Redis.
 *
 * A handler checks its own arguments first (so a usage error exits 2 even when
 * Redis is down), then calls pb_cli_ready, which loads the -c config and, for
 * the one-shot commands that talk to Redis (submit, stats, dead, result), opens
 * a blocking hiredis connection: they run once and exit, so they need none of
 * the workers' async machinery. submit loads the config on its own first
 * (pb_cli_load_config), so it reads stdin only once the config is good. AUTH and SELECT, and their
 * error messages, are written once here. The password comes from the config (password_env or the
 * URL) and is never printed. With redis.sentinels the master's address is asked of the
 * sentinels first (blocking is fine in a one-shot command). */
#include "cli.h"

#include <stdio.h>

#include "planb/sentinel.h"

#define PREAMBLE_SENTINEL_MS 1000 /* one sentinel's answer */

/* Connects to cfg's Redis (AUTH, SELECT); NULL after printing why. Caller redisFree()s. */
static redisContext *
preamble_connect(const pb_config *cfg)
{
    struct timeval tv = {5, 0};
    char host[256];
    int port = cfg->redis_port;
    snprintf(host, sizeof(host), "%s", cfg->redis_host);
    if (cfg->n_sentinels > 0 &&
        pb_sentinel_resolve_sync(cfg, PREAMBLE_SENTINEL_MS, host, sizeof(host), &port) != PB_OK) {
        fprintf(stderr, "planb: no sentinel named a master for \"%s\"\n", cfg->master_name);
        return NULL;
    }
    redisContext *rc = redisConnectWithTimeout(host, port, tv);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "planb: cannot connect to Redis at %s:%d: %s\n", host, port,
                rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    redisReply *r = NULL;
    if (cfg->redis_password)
        r = cfg->redis_user ? redisCommand(rc, "AUTH %s %s", cfg->redis_user, cfg->redis_password)
                            : redisCommand(rc, "AUTH %s", cfg->redis_password);
    if (r && r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "planb: Redis AUTH failed: %s\n", r->str);
        freeReplyObject(r);
        redisFree(rc);
        return NULL;
    }
    freeReplyObject(r);
    if (cfg->redis_db) {
        r = redisCommand(rc, "SELECT %d", cfg->redis_db);
        bool bad = r == NULL || r->type == REDIS_REPLY_ERROR;
        if (bad)
            fprintf(stderr, "planb: Redis SELECT %d failed: %s\n", cfg->redis_db,
                    r ? r->str : rc->errstr);
        freeReplyObject(r);
        if (bad) {
            redisFree(rc);
            return NULL;
        }
    }
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
        fprintf(stderr, "planb: Redis error: %s\n", ctx->rc->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "planb: Redis error: %s\n", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}
