/* main.c -- the planb command line: serve, submit, check.
 *
 *   planb serve -c planb.json      run the master and its workers
 *   planb submit [opts] TEXT|-     push a job (and with --wait, print its result)
 *   planb check -c planb.json      validate a config and exit
 *
 * Exit codes are part of the README contract. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "stats.h"
#include "dead.h"
#include "redis.h"
#include "result.h"
#include "planb/config.h"
#include "planb/core.h"
#include "planb/keys.h"
#include "planb/log.h"
#include "planb/master.h"

#define PLANB_VERSION "0.1.0"

/* submit's exit codes (README "planb submit"). */
enum {
    SUBMIT_OK = 0,                   /* result status ok (or pushed, without --wait) */
    SUBMIT_DEGRADED = 1,             /* result status degraded */
    SUBMIT_USAGE = 2,                /* bad arguments or config */
    SUBMIT_INVALID = 3,              /* result status invalid */
    SUBMIT_TIMEOUT = 4,              /* no result within --timeout */
    SUBMIT_REDIS = PB_CLI_EXIT_REDIS /* Redis unreachable or refused the command */
};

#define SUBMIT_INPUT_MAX (64u << 20) /* bytes read from stdin, above any job limit */

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: planb <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve  -c FILE [--log-level L] [--log-format plain|json]\n"
            "         run the master and its worker processes\n"
            "  submit -c FILE [--queue Q] [--route R] [--id ID] [--deadline-ms N]\n"
            "         [--critical] [--wait] [--timeout S] (TEXT | -)\n"
            "         push a question (or a job JSON object) and, with --wait, print its result\n"
            "  check  -c FILE    validate a config file\n"
            "  stats  -c FILE [--watch [S]] [--json]\n"
            "         queue depths, in-flight jobs, rates, breakers and errors of the cluster\n"
            "  dead   -c FILE (list | show N|ID | retry N|ID|--all | purge)\n"
            "         inspect dead-lettered jobs and push them back onto their queue\n"
            "  result -c FILE ID print a job's stored result\n"
            "  version           print the version\n"
            "\n"
            "every command takes --help\n"
            "\n"
            "exit codes: serve 0 drained, 2 bad config or fatal worker error;\n"
            "            submit 0 ok, 1 degraded, 2 usage, 3 invalid, 4 timeout, 5 redis error;\n"
            "            check 0 valid, 2 invalid; dead/result 0 ok, 1 not found, 2 usage,\n"
            "            5 redis error;\n"
            "            stats 0 ok, 2 usage or bad config, 5 redis error\n");
}

static int
cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"log-format", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'l': {
            int lvl = pb_log_parse_level(optarg);
            if (lvl < 0) {
                fprintf(stderr, "planb: --log-level must be debug, info, warn or error\n");
                return PB_EXIT_FATAL;
            }
            pb_log_min_level = (pb_log_level)lvl;
            break;
        }
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "plain") != 0) {
                fprintf(stderr, "planb: --log-format must be plain or json\n");
                return PB_EXIT_FATAL;
            }
            pb_log_json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return PB_EXIT_FATAL;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "planb: serve needs -c CONFIG\n");
        return PB_EXIT_FATAL;
    }
    pb_config *cfg = pb_cli_load_config(path);
    if (cfg == NULL)
        return PB_EXIT_FATAL;
    return pb_master_run(path, cfg);
}

static int
cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c') {
            path = optarg;
        } else {
            fputs("usage: planb check -c FILE\n"
                  "  validate a config file: exit 0, or 2 with the field and why\n",
                  c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : PB_EXIT_FATAL;
        }
    }
    if (path == NULL && optind < argc)
        path = argv[optind];
    if (path == NULL) {
        fprintf(stderr, "planb: check needs -c CONFIG\n");
        return PB_EXIT_FATAL;
    }
    pb_config *cfg = pb_cli_load_config(path);
    if (cfg == NULL)
        return PB_EXIT_FATAL;
    printf("ok: %zu providers, %zu models, %zu routes, %d workers x %d concurrency\n",
           cfg->n_providers, cfg->n_models, cfg->n_routes, cfg->workers, cfg->concurrency);
    pb_config_free(cfg);
    return 0;
}

/* Reads all of stdin (bounded); caller frees. */
static char *
read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = pb_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= SUBMIT_INPUT_MAX)
                break;
            cap *= 2;
            buf = pb_xrealloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        if (r == 0)
            break;
        n += r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

typedef struct submit_opts {
    const char *queue;
    const char *route;
    const char *id;
    long deadline_ms;
    bool critical;
    bool wait;
    double timeout_s;
} submit_opts;

/* Turns a question or a job object into the job to push, filling id/reply/stamp. Caller frees. */
static char *
submit_build_job(const char *input, size_t len, const submit_opts *o, char **id_out)
{
    json_object *job = NULL;
    const char *p = input;
    while (p < input + len && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    if (p < input + len && *p == '{') {
        job = json_tokener_parse(input);
        if (job == NULL || !json_object_is_type(job, json_type_object)) {
            json_object_put(job);
            return NULL;
        }
    } else {
        job = json_object_new_object();
        json_object *msgs = json_object_new_array();
        json_object *m = json_object_new_object();
        json_object_object_add(m, "role", json_object_new_string("user"));
        json_object_object_add(m, "content", json_object_new_string_len(input, (int)len));
        json_object_array_add(msgs, m);
        json_object_object_add(job, "messages", msgs);
    }
    if (o->id)
        json_object_object_add(job, "id", json_object_new_string(o->id));
    json_object *idv;
    if (!json_object_object_get_ex(job, "id", &idv) ||
        !json_object_is_type(idv, json_type_string)) {
        unsigned char rnd[12];
        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
            memset(rnd, 0, sizeof(rnd));
        char id[32] = "sub-";
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(id + 4 + 2 * i, 3, "%02x", rnd[i]);
        json_object_object_add(job, "id", json_object_new_string(id));
        json_object_object_get_ex(job, "id", &idv);
    }
    *id_out = pb_xstrdup(json_object_get_string(idv));
    if (o->route)
        json_object_object_add(job, "route", json_object_new_string(o->route));
    if (o->deadline_ms > 0)
        json_object_object_add(job, "deadline_ms", json_object_new_int64(o->deadline_ms));
    if (o->critical)
        json_object_object_add(job, "critical", json_object_new_boolean(1));
    if (o->wait)
        json_object_object_add(job, "reply", json_object_new_boolean(1));
    json_object_object_add(job, "submitted_at_ms", json_object_new_int64(pb_wall_ms()));
    char *s = pb_xstrdup(json_object_to_json_string_ext(job, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(job);
    return s;
}

static int
submit_exit_for(const char *result)
{
    json_object *r = json_tokener_parse(result);
    json_object *st;
    int code = SUBMIT_INVALID;
    if (r && json_object_object_get_ex(r, "status", &st)) {
        const char *s = json_object_get_string(st);
        code = strcmp(s, "ok") == 0         ? SUBMIT_OK
               : strcmp(s, "degraded") == 0 ? SUBMIT_DEGRADED
                                            : SUBMIT_INVALID;
    }
    json_object_put(r);
    return code;
}

static int
cmd_submit(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"route", required_argument, NULL, 'r'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"deadline-ms", required_argument, NULL, 'd'},
                                         {"critical", no_argument, NULL, 'C'},
                                         {"wait", no_argument, NULL, 'w'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    submit_opts o = {.timeout_s = 60};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:q:r:wt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'q':
            o.queue = optarg;
            break;
        case 'r':
            o.route = optarg;
            break;
        case 'i':
            o.id = optarg;
            break;
        case 'd':
            o.deadline_ms = strtol(optarg, NULL, 10);
            break;
        case 'C':
            o.critical = true;
            break;
        case 'w':
            o.wait = true;
            break;
        case 't':
            o.timeout_s = strtod(optarg, NULL);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return SUBMIT_USAGE;
        }
    }
    if (optind >= argc || path == NULL) {
        fprintf(stderr, "planb: submit needs -c CONFIG and a question (or - for stdin)\n");
        return SUBMIT_USAGE;
    }
    pb_config *cfg = pb_cli_load_config(path);
    if (cfg == NULL)
        return SUBMIT_USAGE;
    size_t len;
    char *input;
    if (strcmp(argv[optind], "-") == 0) {
        input = read_stdin(&len);
    } else {
        input = pb_xstrdup(argv[optind]);
        len = strlen(input);
    }
    char *id = NULL;
    char *job = submit_build_job(input, len, &o, &id);
    free(input);
    if (job == NULL) {
        fprintf(stderr, "planb: input starts with '{' but is not a JSON object\n");
        pb_config_free(cfg);
        return SUBMIT_USAGE;
    }
    int code = SUBMIT_REDIS;
    redisContext *rc = pb_cli_redis_connect(cfg);
    if (rc == NULL)
        goto out;
    char *qkey = pb_key_queue(cfg->prefix, o.queue ? o.queue : cfg->queues[0]);
    redisReply *r = redisCommand(rc, "LPUSH %s %s", qkey, job);
    free(qkey);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "planb: LPUSH failed: %s\n", r ? r->str : rc->errstr);
        freeReplyObject(r);
        goto out;
    }
    freeReplyObject(r);
    if (!o.wait) {
        printf("%s\n", id);
        code = SUBMIT_OK;
        goto out;
    }
    char *rkey = pb_key_reply(cfg->prefix, id);
    r = redisCommand(rc, "BLPOP %s %.3f", rkey, o.timeout_s);
    free(rkey);
    if (r == NULL) {
        fprintf(stderr, "planb: BLPOP failed: %s\n", rc->errstr);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        printf("%s\n", r->element[1]->str);
        code = submit_exit_for(r->element[1]->str);
    } else if (r->type == REDIS_REPLY_NIL) {
        fprintf(stderr, "planb: no result for %s within %.1f s\n", id, o.timeout_s);
        code = SUBMIT_TIMEOUT;
    } else {
        fprintf(stderr, "planb: BLPOP failed: %s\n", r->type == REDIS_REPLY_ERROR ? r->str : "?");
    }
    freeReplyObject(r);
out:
    redisFree(rc);
    free(job);
    free(id);
    pb_config_free(cfg);
    return code;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return PB_EXIT_FATAL;
    }
    const char *cmd = argv[1];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int code;
    if (strcmp(cmd, "serve") == 0) {
        code = cmd_serve(argc - 1, argv + 1);
    } else if (strcmp(cmd, "submit") == 0) {
        pb_log_set_role("submit");
        code = cmd_submit(argc - 1, argv + 1);
    } else if (strcmp(cmd, "check") == 0) {
        code = cmd_check(argc - 1, argv + 1);
    } else if (strcmp(cmd, "stats") == 0) {
        code = pb_cli_stats(argc - 1, argv + 1);
    } else if (strcmp(cmd, "dead") == 0) {
        code = pb_cli_dead(argc - 1, argv + 1);
    } else if (strcmp(cmd, "result") == 0) {
        code = pb_cli_result(argc - 1, argv + 1);
    } else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("planb %s\n", PLANB_VERSION);
        code = 0;
    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        code = 0;
    } else {
        fprintf(stderr, "planb: unknown command \"%s\"\n", cmd);
        usage(stderr);
        code = PB_EXIT_FATAL;
    }
    curl_global_cleanup();
    return code;
}
