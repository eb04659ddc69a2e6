/* submit.c -- `planb submit`: push one job and, with --wait, print its result.
 *
 * TEXT (or stdin with `-`) becomes a one-message job; input that starts with
 * '{' is taken as a job JSON object and pushed as given, with `id`,
 * `submitted_at_ms` and (for --wait) `reply` filled in. It checks its
 * arguments, loads the config, reads and builds the job (bad input exits 2
 * even when Redis is down) and only then connects. With --wait the exit code
 * follows the result's status (docs/cli.md). */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli.h"
#include "planb/keys.h"
#include "planb/log.h"

#define SUBMIT_INPUT_MAX      (64u << 20)   /* bytes read from stdin, above any job limit */
#define SUBMIT_BLPOP_SLACK_MS 5000          /* BLPOP's reply may come this long after --timeout */
#define SUBMIT_TIMEOUT_MAX_S  86400         /* --timeout bound: a day (its ms fit an int) */
#define SUBMIT_DELAY_MAX_MS   31536000000LL /* --delay-ms: a year, the job field's bound */
#define SUBMIT_RUN_AT_MAX_MS  9007199254740991LL /* --run-at-ms: 2^53 - 1, the field's bound */

/* Reads all of stdin (bounded); caller frees. */
static char *
submit_read_stdin(size_t *len)
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

/* A whole decimal number of 0..max ms. */
static bool
submit_parse_ms(const char *s, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max)
        return false;
    *out = v;
    return true;
}

static int
submit_bad_ms(const char *flag, long long max)
{
    fprintf(stderr, "planb: %s takes an integer from 0 to %lld\n", flag, max);
    return PB_CLI_EXIT_USAGE;
}

typedef struct submit_opts {
    const char *queue;   /* --queue, or NULL for the first configured queue */
    const char *route;   /* --route, or NULL (the job's own, else the default route) */
    const char *id;      /* --id, or NULL (the job's own, else a random sub-<hex>) */
    long deadline_ms;    /* --deadline-ms, 0 = the route's */
    bool critical;       /* --critical */
    bool wait;           /* --wait: ask for a reply and print it */
    double timeout_s;    /* --timeout: how long --wait waits (default 60) */
    long long delay_ms;  /* --delay-ms, -1 = none */
    long long run_at_ms; /* --run-at-ms, -1 = none */
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
    if (o->delay_ms >= 0)
        json_object_object_add(job, "delay_ms", json_object_new_int64(o->delay_ms));
    if (o->run_at_ms >= 0)
        json_object_object_add(job, "run_at_ms", json_object_new_int64(o->run_at_ms));
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
    int code = PB_CLI_EXIT_INVALID;
    if (r && json_object_object_get_ex(r, "status", &st)) {
        const char *s = json_object_get_string(st);
        code = strcmp(s, "ok") == 0          ? PB_CLI_EXIT_OK
               : strcmp(s, "degraded") == 0  ? PB_CLI_EXIT_DEGRADED
               : strcmp(s, "cancelled") == 0 ? PB_CLI_EXIT_CANCELLED
                                             : PB_CLI_EXIT_INVALID;
    }
    json_object_put(r);
    return code;
}

/* Pushes job and, with o->wait, waits for its reply and prints it; returns the exit code. */
static int
submit_push(const pb_cli_ctx *ctx, const char *job, const char *id, const submit_opts *o)
{
    pb_redissync *rc = ctx->rc;
    char *qkey = pb_key_queue(ctx->cfg->prefix, o->queue ? o->queue : ctx->cfg->queues[0]);
    redisReply *r = pb_redissync_command(rc, "LPUSH %s %s", qkey, job);
    free(qkey);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "planb: LPUSH failed: %s\n", r ? r->str : pb_redissync_error(rc));
        freeReplyObject(r);
        return PB_CLI_EXIT_REDIS;
    }
    freeReplyObject(r);
    if (!o->wait) {
        printf("%s\n", id);
        return PB_CLI_EXIT_OK;
    }
    char *rkey = pb_key_reply(ctx->cfg->prefix, id);
    pb_redissync_set_timeout(rc, (int)(o->timeout_s * 1000) + SUBMIT_BLPOP_SLACK_MS);
    r = pb_redissync_command(rc, "BLPOP %s %.3f", rkey, o->timeout_s);
    free(rkey);
    int code = PB_CLI_EXIT_REDIS;
    if (r == NULL) {
        fprintf(stderr, "planb: BLPOP failed: %s\n", pb_redissync_error(rc));
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        printf("%s\n", r->element[1]->str);
        code = submit_exit_for(r->element[1]->str);
    } else if (r->type == REDIS_REPLY_NIL) {
        fprintf(stderr, "planb: no result for %s within %.1f s\n", id, o->timeout_s);
        code = PB_CLI_EXIT_TIMEOUT;
    } else {
        fprintf(stderr, "planb: BLPOP failed: %s\n", r->type == REDIS_REPLY_ERROR ? r->str : "?");
    }
    freeReplyObject(r);
    return code;
}

int
pb_cli_submit(pb_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'},     {"route", required_argument, NULL, 'r'},
        {"id", required_argument, NULL, 'i'},        {"deadline-ms", required_argument, NULL, 'd'},
        {"critical", no_argument, NULL, 'C'},        {"wait", no_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 't'},   {"delay-ms", required_argument, NULL, 'D'},
        {"run-at-ms", required_argument, NULL, 'A'}, {NULL, 0, NULL, 0}};
    submit_opts o = {.timeout_s = 60, .delay_ms = -1, .run_at_ms = -1};
    int c;
    pb_log_set_role("submit");
    while ((c = getopt_long(argc, argv, "q:r:wt:", opts, NULL)) != -1) {
        switch (c) {
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
        case 'D':
            if (!submit_parse_ms(optarg, SUBMIT_DELAY_MAX_MS, &o.delay_ms))
                return submit_bad_ms("--delay-ms", SUBMIT_DELAY_MAX_MS);
            break;
        case 'A':
            if (!submit_parse_ms(optarg, SUBMIT_RUN_AT_MAX_MS, &o.run_at_ms))
                return submit_bad_ms("--run-at-ms", SUBMIT_RUN_AT_MAX_MS);
            break;
        default:
            return pb_cli_usage_error(ctx);
        }
    }
    if (o.delay_ms >= 0 && o.run_at_ms >= 0) {
        fprintf(stderr, "planb: --delay-ms and --run-at-ms exclude each other\n");
        return PB_CLI_EXIT_USAGE;
    }
    if (optind >= argc) {
        fprintf(stderr, "planb: submit needs -c CONFIG and a question (or - for stdin)\n");
        return PB_CLI_EXIT_USAGE;
    }
    if (!(o.timeout_s > 0 && o.timeout_s <= SUBMIT_TIMEOUT_MAX_S)) {
        fprintf(stderr, "planb: --timeout takes more than 0 and at most %d seconds\n",
                SUBMIT_TIMEOUT_MAX_S);
        return PB_CLI_EXIT_USAGE;
    }
    int code = pb_cli_load_config(ctx);
    if (code != PB_CLI_EXIT_OK)
        return code;
    size_t len;
    char *input;
    if (strcmp(argv[optind], "-") == 0) {
        input = submit_read_stdin(&len);
    } else {
        input = pb_xstrdup(argv[optind]);
        len = strlen(input);
    }
    char *id = NULL;
    char *job = submit_build_job(input, len, &o, &id);
    free(input);
    if (job == NULL) {
        fprintf(stderr, "planb: input starts with '{' but is not a JSON object\n");
        return PB_CLI_EXIT_USAGE;
    }
    code = pb_cli_ready(ctx);
    if (code == PB_CLI_EXIT_OK)
        code = submit_push(ctx, job, id, &o);
    free(job);
    free(id);
    return code;
}
