/* result.c -- `planb result -c FILE ID`: print a job's stored result.
 *
 * Reads planb:result:<id> (kept result_ttl_s), so an operator or a script can
 * look up what happened to a job without knowing the key layout. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "planb/keys.h"

int
pb_cli_result(pb_cli_ctx *ctx, int argc, char **argv)
{
    int code = pb_cli_no_options(ctx, argc, argv);
    if (code != PB_CLI_EXIT_OK)
        return code;
    if (optind + 1 != argc)
        return pb_cli_usage_error(ctx);
    code = pb_cli_ready(ctx);
    if (code != PB_CLI_EXIT_OK)
        return code;
    const char *id = argv[optind];
    char *key = pb_key_result(ctx->cfg->prefix, id);
    redisReply *r = pb_cli_reply(ctx, pb_redissync_command(ctx->rc, "GET %s", key));
    free(key);
    if (r == NULL)
        return PB_CLI_EXIT_REDIS;
    if (r->type == REDIS_REPLY_STRING) {
        printf("%s\n", r->str);
        code = PB_CLI_EXIT_OK;
    } else {
        fprintf(stderr, "planb: no result for %s (unknown, not finished yet, or expired)\n", id);
        code = PB_CLI_EXIT_NOT_FOUND;
    }
    freeReplyObject(r);
    return code;
}
