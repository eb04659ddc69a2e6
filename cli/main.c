/* main.c -- the planb command line: the table of commands and their dispatch.
 *
 *   planb <command> [options]     one row of cli_commands; `planb --help` lists them all
 *
 * Every command shares one preamble: main takes -c FILE (also -cFILE, --config
 * FILE, --config=FILE) and --help/-h out of argv, the handler checks the rest
 * of its arguments and calls pb_cli_ready (preamble.c: config, Redis), and
 * main frees the config and the connection after the handler returns. The
 * usage texts, `planb --help` and each `planb <command> --help`, are printed
 * from the table, so they cannot drift from the commands. Exit codes are the
 * docs/cli.md contract (pb_cli_exit in cli.h). */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cli_version(pb_cli_ctx *ctx, int argc, char **argv);

/* The commands, in docs/cli.md's order. */
static const pb_cli_command cli_commands[] = {
    {"serve", pb_cli_serve, "-c FILE [--log-level debug|info|warn|error] [--log-format plain|json]",
     "run the master, its worker processes and the monitor",
     "0 drained, 2 bad config or a worker's fatal start-up error", PB_CLI_NEEDS_CONFIG},
    {"submit", pb_cli_submit,
     "-c FILE [--queue Q] [--route R] [--id ID] [--deadline-ms N] [--critical]\n"
     " [--delay-ms N | --run-at-ms T] [--wait] [--timeout S] (TEXT | -)",
     "push a question (or a job JSON object) and, with --wait, print its result",
     "0 ok, 1 degraded, 2 usage or config, 3 invalid, 4 timeout, 5 redis error, 7 cancelled",
     PB_CLI_NEEDS_CONFIG | PB_CLI_NEEDS_REDIS},
    {"check", pb_cli_check, "-c FILE [--connect]",
     "validate a config file (FILE may also come without -c); --connect: reach each Redis, "
     "provider",
     "0 valid, 2 invalid (the field and why are printed) or, with --connect, a target unreachable",
     PB_CLI_NEEDS_CONFIG},
    {"stats", pb_cli_stats, "-c FILE [--watch [S]] [--json]",
     "queue depths, in-flight jobs, rates, breakers and errors; --watch redraws every S s",
     "0 ok, 2 usage or bad config, 5 redis error", PB_CLI_NEEDS_CONFIG | PB_CLI_NEEDS_REDIS},
    {"dead", pb_cli_dead,
     "-c FILE list [--limit N]\n"
     "-c FILE show (N | ID | --id ID)\n"
     "-c FILE retry (N | ID | --id ID | --all) [--queue Q]\n"
     "-c FILE purge",
     "inspect dead letters (N = position in list, 0 = newest) and push them back onto a queue",
     "0 ok, 1 no such entry (or nothing retried), 2 usage, 5 redis error",
     PB_CLI_NEEDS_CONFIG | PB_CLI_NEEDS_REDIS},
    {"result", pb_cli_result, "-c FILE ID", "print the stored result JSON of job ID",
     "0 printed, 1 no result (unknown, unfinished or expired), 2 usage, 5 redis error",
     PB_CLI_NEEDS_CONFIG | PB_CLI_NEEDS_REDIS},
    {"cancel", pb_cli_cancel, "-c FILE ID",
     "cancel job ID: a queued or delayed one is removed, a running one aborted; "
     "either way its one result is `cancelled`",
     "0 cancelled, 1 not found (marked cancelled all the same), 2 usage, 5 redis error, "
     "6 already finished (its result is kept)",
     PB_CLI_NEEDS_CONFIG | PB_CLI_NEEDS_REDIS},
    {"version", cli_version, "", "print the version", NULL, 0},
};

#define CLI_N_COMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

static int
cli_version(pb_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    (void)argc;
    (void)argv;
    printf("planb %s\n", PB_VERSION);
    return PB_CLI_EXIT_OK;
}

/* Width of the name column in `planb --help`: the longest name. */
static int
cli_name_width(void)
{
    size_t w = 0;
    for (size_t i = 0; i < CLI_N_COMMANDS; i++)
        if (strlen(cli_commands[i].name) > w)
            w = strlen(cli_commands[i].name);
    return (int)w;
}

/* Prints cmd's usage, one form per line: with width > 0 as rows of `planb --help` (the name
 * padded to width), else as the usage lines of `planb <name> --help`. A line that starts with a
 * space continues the form above it and is printed under that form's first argument. */
static void
cli_print_forms(FILE *out, const pb_cli_command *cmd, int width)
{
    const char *line = cmd->usage;
    int lead = width > 0 ? width + 4 : (int)strlen("usage: planb  ") + (int)strlen(cmd->name);
    for (bool first = true;; first = false) {
        size_t len = strcspn(line, "\n");
        if (line[0] == ' ')
            fprintf(out, "%*s%.*s\n", lead, "", (int)len - 1, line + 1);
        else if (width > 0)
            fprintf(out, "  %-*s%s%.*s\n", width, cmd->name, len ? "  " : "", (int)len, line);
        else
            fprintf(out, "%s %s%s%.*s\n", first ? "usage: planb" : "       planb", cmd->name,
                    len ? " " : "", (int)len, line);
        if (line[len] == '\0')
            return;
        line += len + 1;
    }
}

/* `planb --help`: every command's usage and what it does, then their exit codes. */
static void
cli_usage(FILE *out)
{
    int w = cli_name_width();
    fputs("usage: planb <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < CLI_N_COMMANDS; i++) {
        cli_print_forms(out, &cli_commands[i], w);
        fprintf(out, "  %*s  %s\n", w, "", cli_commands[i].about);
    }
    fputs("\nevery command takes --help\n\nexit codes:\n", out);
    for (size_t i = 0; i < CLI_N_COMMANDS; i++)
        if (cli_commands[i].exits)
            fprintf(out, "  %-*s  %s\n", w, cli_commands[i].name, cli_commands[i].exits);
}

/* `planb <command> --help`: its usage forms, what it does and its exit codes. */
static void
cli_help(FILE *out, const pb_cli_command *cmd)
{
    cli_print_forms(out, cmd, 0);
    fprintf(out, "  %s\n", cmd->about);
    if (cmd->exits)
        fprintf(out, "exit codes: %s\n", cmd->exits);
}

int
pb_cli_usage_error(const pb_cli_ctx *ctx)
{
    cli_help(stderr, ctx->cmd);
    return PB_CLI_EXIT_USAGE;
}

int
pb_cli_no_options(const pb_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}}; /* so getopt names a bad --x */
    return getopt_long(argc, argv, "", none, NULL) == -1 ? PB_CLI_EXIT_OK : pb_cli_usage_error(ctx);
}

/* Takes the options every command shares out of argv, up to a "--": -c FILE, -cFILE,
 * --config FILE and --config=FILE into ctx->config_path (the last one wins); *help says whether
 * --help or -h was among them. PB_CLI_EXIT_OK, or PB_CLI_EXIT_USAGE (printed) for a -c without
 * FILE. Keeps argv NULL-terminated. */
static int
cli_take_shared(pb_cli_ctx *ctx, int *argc, char **argv, bool *help)
{
    int kept = 1;
    bool options = true;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (!options || strcmp(a, "--") == 0) {
            options = false;
            argv[kept++] = argv[i];
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 == *argc) {
                fprintf(stderr, "planb: %s needs a FILE\n", a);
                return PB_CLI_EXIT_USAGE;
            }
            ctx->config_path = argv[++i];
        } else if (strncmp(a, "--config=", strlen("--config=")) == 0) {
            ctx->config_path = a + strlen("--config=");
        } else if (strncmp(a, "-c", 2) == 0) {
            ctx->config_path = a + 2;
        } else {
            argv[kept++] = argv[i];
        }
    }
    argv[kept] = NULL;
    *argc = kept;
    return PB_CLI_EXIT_OK;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage(stderr);
        return PB_CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        cli_usage(stdout);
        return PB_CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0)
        name = "version";
    pb_cli_ctx ctx = {0};
    for (size_t i = 0; i < CLI_N_COMMANDS && ctx.cmd == NULL; i++)
        if (strcmp(cli_commands[i].name, name) == 0)
            ctx.cmd = &cli_commands[i];
    if (ctx.cmd == NULL) {
        fprintf(stderr, "planb: unknown command \"%s\"\n", name);
        cli_usage(stderr);
        return PB_CLI_EXIT_USAGE;
    }
    int cargc = argc - 1;
    char **cargv = argv + 1;
    bool help = false;
    if (cli_take_shared(&ctx, &cargc, cargv, &help) != PB_CLI_EXIT_OK)
        return pb_cli_usage_error(&ctx);
    if (help) {
        cli_help(stdout, ctx.cmd);
        return PB_CLI_EXIT_OK;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int code = ctx.cmd->run(&ctx, cargc, cargv);
    pb_redissync_free(ctx.rc);
    pb_config_free(ctx.cfg);
    curl_global_cleanup();
    return code;
}
