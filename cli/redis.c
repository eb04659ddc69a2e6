/* cli_redis.c -- config loading and the blocking Redis connection for one-shot CLI commands.
 *
 * Shared by `planb submit`, `planb dead` and `planb result`, so the AUTH and
 * SELECT steps (and their error messages) are written once. The password
 * comes from the config (password_env or URL) and is never printed. */
#include "redis.h"

#include <stdio.h>

pb_config *
pb_cli_load_config(const char *path)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_load(path, &err);
    if (cfg == NULL)
        fprintf(stderr, "planb: %s\n", err.msg);
    return cfg;
}

redisContext *
pb_cli_redis_connect(const pb_config *cfg)
{
    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "planb: cannot connect to Redis at %s:%d: %s\n", cfg->redis_host,
                cfg->redis_port, rc ? rc->errstr : "out of memory");
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
