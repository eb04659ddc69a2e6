/* check.c -- `planb check`: validate a config file and say what it holds.
 *
 * The config may also be named without -c (`planb check FILE`). It never
 * connects to Redis, so a config can be checked before Redis is up (as
 * deploy/planb.service's ExecStartPre does). */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

int
pb_cli_check(pb_cli_ctx *ctx, int argc, char **argv)
{
    int code = pb_cli_no_options(ctx, argc, argv);
    if (code != PB_CLI_EXIT_OK)
        return code;
    if (ctx->config_path == NULL && optind < argc)
        ctx->config_path = argv[optind];
    code = pb_cli_ready(ctx);
    if (code != PB_CLI_EXIT_OK)
        return code;
    const pb_config *cfg = ctx->cfg;
    printf("ok: %zu providers, %zu models, %zu routes, %d workers x %d concurrency\n",
           cfg->n_providers, cfg->n_models, cfg->n_routes, cfg->workers, cfg->concurrency);
    if (cfg->http.listen)
        printf("front door: http://%s/v1 (%zu keys)\n", cfg->http.listen, cfg->http.n_keys);
    return PB_CLI_EXIT_OK;
}
