/* cli_result.c -- `planb result -c FILE ID`: print a job's stored result.
 *
 * Reads planb:result:<id> (kept result_ttl_s), so an operator or a script can
 * look up what happened to a job without knowing the key layout. */
#include "result.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "redis.h"
#include "planb/keys.h"

enum {
    RESULT_OK = 0,                   /* printed */
    RESULT_NONE = 1,                 /* no result: unknown id, not finished yet, or expired */
    RESULT_USAGE = 2,                /* bad arguments or config */
    RESULT_REDIS = PB_CLI_EXIT_REDIS /* Redis unreachable or refused the command */
};

static void
result_usage(FILE *out)
{
    fprintf(out, "usage: planb result -c FILE ID\n"
                 "  print the stored result JSON of job ID\n"
                 "exit codes: 0 printed, 1 no result (unknown, unfinished or expired), 2 usage,\n"
                 "            5 redis error\n");
}

int
pb_cli_result(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c') {
            path = optarg;
        } else if (c == 'h') {
            result_usage(stdout);
            return RESULT_OK;
        } else {
            result_usage(stderr);
            return RESULT_USAGE;
        }
    }
    if (path == NULL || optind + 1 != argc) {
        result_usage(stderr);
        return RESULT_USAGE;
    }
    pb_config *cfg = pb_cli_load_config(path);
    if (cfg == NULL)
        return RESULT_USAGE;
    int code = RESULT_REDIS;
    redisContext *rc = pb_cli_redis_connect(cfg);
    if (rc) {
        char *key = pb_key_result(cfg->prefix, argv[optind]);
        redisReply *r = redisCommand(rc, "GET %s", key);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "planb: Redis error: %s\n", r ? r->str : rc->errstr);
        } else if (r->type == REDIS_REPLY_STRING) {
            printf("%s\n", r->str);
            code = RESULT_OK;
        } else {
            fprintf(stderr, "planb: no result for %s (unknown, not finished yet, or expired)\n",
                    argv[optind]);
            code = RESULT_NONE;
        }
        freeReplyObject(r);
        free(key);
        redisFree(rc);
    }
    pb_config_free(cfg);
    return code;
}
