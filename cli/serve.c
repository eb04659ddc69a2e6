/* serve.c -- `planb serve`: run the master, its workers and the monitor until drained.
 *
 * Only the log options are its own: the master (master.c) does the rest and
 * its exit code is the command's (0 drained, PB_EXIT_FATAL for a worker's
 * fatal start-up error). The config is loaded here first, so a bad one exits
 * 2 before any process is forked. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "planb/log.h"
#include "planb/master.h"

int
pb_cli_serve(pb_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"log-level", required_argument, NULL, 'l'},
                                         {"log-format", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l': {
            int lvl = pb_log_parse_level(optarg);
            if (lvl < 0) {
                fprintf(stderr, "planb: --log-level must be debug, info, warn or error\n");
                return PB_CLI_EXIT_USAGE;
            }
            pb_log_min_level = (pb_log_level)lvl;
            break;
        }
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "plain") != 0) {
                fprintf(stderr, "planb: --log-format must be plain or json\n");
                return PB_CLI_EXIT_USAGE;
            }
            pb_log_json = strcmp(optarg, "json") == 0;
            break;
        default:
            return pb_cli_usage_error(ctx);
        }
    }
    int code = pb_cli_ready(ctx);
    if (code != PB_CLI_EXIT_OK)
        return code;
    pb_config *cfg = ctx->cfg;
    ctx->cfg = NULL; /* the master takes it */
    return pb_master_run(ctx->config_path, cfg);
}
