/* cli.h -- the private header of the planb command line (cli/ only).
 *
 * main.c holds the table of commands and dispatches `planb <command>` to one
 * handler, after taking the options every command shares (-c FILE, --help) out
 * of argv; preamble.c loads the config and opens the blocking Redis connection
 * once the handler has checked its own arguments; main.c frees both after the
 * handler returns. One .c per command implements its handler. */
#ifndef PLANB_CLI_H
#define PLANB_CLI_H

#include "planb/config.h"
#include "planb/core.h"
#include "planb/redissync.h"

/* The exit codes of every command (docs/cli.md); each uses those it documents. */
typedef enum pb_cli_exit {
    PB_CLI_EXIT_OK = 0,        /* done: drained, pushed or ok, valid, printed */
    PB_CLI_EXIT_DEGRADED = 1,  /* submit --wait: the result is degraded */
    PB_CLI_EXIT_NOT_FOUND = 1, /* dead, result, cancel: no such entry, result or job */
    PB_CLI_EXIT_USAGE = 2,     /* bad arguments or config; serve: a worker's fatal start-up error */
    PB_CLI_EXIT_INVALID = 3,   /* submit --wait: the result is invalid */
    PB_CLI_EXIT_TIMEOUT = 4,   /* submit --wait: no result within --timeout */
    PB_CLI_EXIT_REDIS = 5,     /* Redis unreachable or refused a command */
    PB_CLI_EXIT_FINISHED = 6,  /* cancel: the job had finished already (its result is kept) */
    PB_CLI_EXIT_CANCELLED = 7  /* submit --wait: the job was cancelled */
} pb_cli_exit;

/* serve returns the master's exit code, whose fatal one is a usage/config error to the caller. */
_Static_assert(PB_CLI_EXIT_USAGE == PB_EXIT_FATAL, "PB_CLI_EXIT_USAGE must be PB_EXIT_FATAL");

/* What pb_cli_ready prepares for a command (pb_cli_command.needs). */
enum {
    PB_CLI_NEEDS_CONFIG = 1 << 0, /* load the -c FILE config into ctx->cfg */
    PB_CLI_NEEDS_REDIS = 1 << 1   /* and connect ctx->rc to its Redis */
};

typedef struct pb_cli_command pb_cli_command;

/* What a command runs with; main.c frees cfg and rc after the handler returns. */
typedef struct pb_cli_ctx {
    const pb_cli_command *cmd; /* the command being run */
    const char *config_path;   /* -c/--config FILE (check: or its argument), borrowed, or NULL */
    pb_config *cfg;            /* loaded by pb_cli_ready, else NULL; a handler may take it */
    pb_redissync *rc;          /* connected by pb_cli_ready for PB_CLI_NEEDS_REDIS, else NULL */
} pb_cli_ctx;

/* A command: argv[0] is its name, -c FILE and --help are already taken out. Parses its own
 * options, calls pb_cli_ready once they are good, does the work; returns a pb_cli_exit. */
typedef int pb_cli_handler(pb_cli_ctx *ctx, int argc, char **argv);

/* One row of main.c's table of commands; `planb --help` and `planb <name> --help` print it. */
struct pb_cli_command {
    const char *name;    /* argv[1] */
    pb_cli_handler *run; /* the handler */
    const char *usage;   /* the arguments after `planb <name>`: a form per line, ' ' continues */
    const char *about;   /* one line: what the command does */
    const char *exits;   /* its exit codes, one line, or NULL (version) */
    unsigned needs;      /* PB_CLI_NEEDS_* */
};

/* For PB_CLI_NEEDS_CONFIG, loads ctx->config_path into ctx->cfg unless loaded already; a missing
 * -c or a bad file is printed and returns PB_CLI_EXIT_USAGE. */
int pb_cli_load_config(pb_cli_ctx *ctx);
/* pb_cli_load_config, then for PB_CLI_NEEDS_REDIS connects ctx->rc with AUTH and SELECT (a
 * failure is printed and returns PB_CLI_EXIT_REDIS). Call it once the arguments are good. */
int pb_cli_ready(pb_cli_ctx *ctx);
/* Returns r, or NULL after printing the connection's or the command's error (r is freed). */
redisReply *pb_cli_reply(const pb_cli_ctx *ctx, redisReply *r);
/* Prints the command's usage to stderr; returns PB_CLI_EXIT_USAGE (for bad arguments). */
int pb_cli_usage_error(const pb_cli_ctx *ctx);
/* For a command with no options of its own: PB_CLI_EXIT_OK with optind at the first argument,
 * or the usage error for any option. */
int pb_cli_no_options(const pb_cli_ctx *ctx, int argc, char **argv);

/* The handlers, one .c each (docs/cli.md). */
int pb_cli_serve(pb_cli_ctx *ctx, int argc, char **argv);
int pb_cli_submit(pb_cli_ctx *ctx, int argc, char **argv);
int pb_cli_check(pb_cli_ctx *ctx, int argc, char **argv);
int pb_cli_stats(pb_cli_ctx *ctx, int argc, char **argv);
int pb_cli_dead(pb_cli_ctx *ctx, int argc, char **argv);
int pb_cli_result(pb_cli_ctx *ctx, int argc, char **argv);
int pb_cli_cancel(pb_cli_ctx *ctx, int argc, char **argv);

#endif
