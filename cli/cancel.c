/* cancel.c -- `planb cancel -c FILE ID`: cancel a job (cancel.lua, docs/redis.md).
 *
 * A queued or delayed job is removed and answered `cancelled` at once; a running one is
 * announced on planb:cancel, and its worker aborts it and answers `cancelled`; a finished
 * job keeps its result. One line on stdout says which. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "planb/cancel.h"
#include "planb/core.h"
#include "planb/scripts.h"

int
pb_cli_cancel(pb_cli_ctx *ctx, int argc, char **argv)
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
    char **owned;
    const char **view;
    int numkeys;
    int n = pb_cancel_args(ctx->cfg, id, "cancel", &owned, &view, &numkeys);
    const pb_lua_source *src = pb_scripts_find("cancel");
    const char **av = pb_xcalloc((size_t)n + 3, sizeof(char *));
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", numkeys);
    av[0] = "EVAL"; /* a one-shot client need not care whether the script is loaded */
    av[1] = src->body;
    av[2] = nk;
    for (int i = 0; i < n; i++)
        av[3 + i] = view[i];
    redisReply *r = pb_cli_reply(ctx, pb_redissync_command_argv(ctx->rc, n + 3, av, NULL));
    free(av);
    pb_cancel_args_free(owned, view, n);
    if (r == NULL)
        return PB_CLI_EXIT_REDIS;
    pb_cancel_outcome o = pb_cancel_outcome_of(
        r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ? r->str : NULL);
    switch (o) {
    case PB_CANCEL_REMOVED:
        printf("cancelled %s (removed before it ran)\n", id);
        code = PB_CLI_EXIT_OK;
        break;
    case PB_CANCEL_RUNNING:
        printf("cancelled %s (its worker was told to stop it)\n", id);
        code = PB_CLI_EXIT_OK;
        break;
    case PB_CANCEL_FINISHED:
        printf("%s already finished: its result is kept\n", id);
        code = PB_CLI_EXIT_FINISHED;
        break;
    case PB_CANCEL_UNKNOWN:
        printf("%s not found (unknown, or not pushed yet: marked cancelled)\n", id);
        code = PB_CLI_EXIT_NOT_FOUND;
        break;
    default:
        fprintf(stderr, "planb: unexpected reply from cancel.lua\n");
        code = PB_CLI_EXIT_REDIS;
        break;
    }
    freeReplyObject(r);
    return code;
}
