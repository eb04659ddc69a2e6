/* dead.c -- `planb dead`: the operator's view of the dead-letter list.
 *
 *   planb dead -c FILE list [--limit N]           newest first, one line per entry
 *   planb dead -c FILE show (N | ID)              one entry as pretty JSON
 *   planb dead -c FILE retry (N | ID | --all) [--queue Q]
 *   planb dead -c FILE purge                      delete every entry
 *
 * An entry is selected by its position in `list` (0 = newest) or by its job id
 * (--id ID forces an id that is all digits). Retry runs lua/dead_retry.lua:
 * remove exactly that entry, delete the job's old result and reply list, push
 * the raw job onto its queue, all or nothing, so two operators retrying at once
 * push a job once. The list can be long, so an id is searched chunk by chunk. */
#include <ctype.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "planb/keys.h"
#include "planb/scripts.h"

#define DEAD_SCAN_CHUNK   500    /* entries fetched per LRANGE while searching an id */
#define DEAD_LIST_DEFAULT 20     /* entries `list` shows without --limit */
#define DEAD_LIST_MAX     100000 /* --limit bound: one LRANGE reply stays a few MB */
#define DEAD_ERROR_SHOWN  100    /* chars of an entry's error on a `list` line */

typedef struct dead_cli {
    const pb_cli_ctx *ctx; /* its config (prefix, queues) and blocking connection */
    char *key;             /* <p>:dead */
    const char *queue;     /* --queue override for retry, or NULL */
} dead_cli;

/* A string field of an entry, or NULL (borrowed from e). */
static const char *
dead_field(json_object *e, const char *name)
{
    json_object *v;
    if (e == NULL || !json_object_object_get_ex(e, name, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Prints s up to max chars, control characters as '?', so a hostile error cannot move the cursor.
 */
static void
dead_print_clean(const char *s, size_t max)
{
    size_t i;
    for (i = 0; s[i] && i < max; i++)
        putchar(iscntrl((unsigned char)s[i]) ? '?' : s[i]);
    if (s[i])
        fputs("...", stdout);
}

static int
dead_list(dead_cli *d, long limit)
{
    redisReply *n = pb_cli_reply(d->ctx, redisCommand(d->ctx->rc, "LLEN %s", d->key));
    if (n == NULL)
        return PB_CLI_EXIT_REDIS;
    long long total = n->integer;
    freeReplyObject(n);
    redisReply *r =
        pb_cli_reply(d->ctx, redisCommand(d->ctx->rc, "LRANGE %s 0 %ld", d->key, limit - 1));
    if (r == NULL)
        return PB_CLI_EXIT_REDIS;
    for (size_t i = 0; i < r->elements; i++) {
        json_object *e = json_tokener_parse(r->element[i]->str);
        const char *id = dead_field(e, "id"), *err = dead_field(e, "error");
        json_object *at;
        char when[32] = "-";
        if (e && json_object_object_get_ex(e, "at_ms", &at)) {
            time_t t = (time_t)(json_object_get_int64(at) / 1000);
            struct tm tm;
            if (gmtime_r(&t, &tm))
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        printf("%-4zu %-20s  ", i, when);
        dead_print_clean(id ? id : "-", 64);
        fputs("  ", stdout);
        dead_print_clean(err ? err : (e ? "-" : "(entry is not JSON)"), DEAD_ERROR_SHOWN);
        putchar('\n');
        json_object_put(e);
    }
    printf("%zu of %lld dead letters shown\n", r->elements, total);
    freeReplyObject(r);
    return PB_CLI_EXIT_OK;
}

static bool
dead_is_position(const char *s)
{
    if (*s == '\0' || strlen(s) > 9)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* Finds an entry by position or id; *out is a copy of it (caller frees), NULL when absent. */
static int
dead_find(dead_cli *d, const char *sel, bool by_id, char **out)
{
    *out = NULL;
    if (!by_id && dead_is_position(sel)) {
        redisReply *r = pb_cli_reply(d->ctx, redisCommand(d->ctx->rc, "LINDEX %s %s", d->key, sel));
        if (r == NULL)
            return PB_CLI_EXIT_REDIS;
        if (r->type == REDIS_REPLY_STRING)
            *out = pb_xstrndup(r->str, r->len);
        freeReplyObject(r);
        return PB_CLI_EXIT_OK;
    }
    for (long start = 0;; start += DEAD_SCAN_CHUNK) {
        redisReply *r = pb_cli_reply(d->ctx, redisCommand(d->ctx->rc, "LRANGE %s %ld %ld", d->key,
                                                          start, start + DEAD_SCAN_CHUNK - 1));
        if (r == NULL)
            return PB_CLI_EXIT_REDIS;
        size_t n = r->elements;
        for (size_t i = 0; i < n && *out == NULL; i++) {
            json_object *e = json_tokener_parse(r->element[i]->str);
            const char *id = dead_field(e, "id");
            if (id && strcmp(id, sel) == 0)
                *out = pb_xstrndup(r->element[i]->str, r->element[i]->len);
            json_object_put(e);
        }
        freeReplyObject(r);
        if (*out || n < DEAD_SCAN_CHUNK)
            return PB_CLI_EXIT_OK;
    }
}

/* dead_find, with an absent entry reported (PB_CLI_EXIT_NOT_FOUND) rather than returned as NULL. */
static int
dead_find_existing(dead_cli *d, const char *sel, bool by_id, char **out)
{
    int rc = dead_find(d, sel, by_id, out);
    if (rc == PB_CLI_EXIT_OK && *out == NULL) {
        fprintf(stderr, "planb: no dead letter %s\n", sel);
        return PB_CLI_EXIT_NOT_FOUND;
    }
    return rc;
}

static int
dead_show(dead_cli *d, const char *sel, bool by_id)
{
    char *entry;
    int rc = dead_find_existing(d, sel, by_id, &entry);
    if (rc != PB_CLI_EXIT_OK)
        return rc;
    json_object *e = json_tokener_parse(entry);
    printf("%s\n",
           e ? json_object_to_json_string_ext(e, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE)
             : entry);
    json_object_put(e);
    free(entry);
    return PB_CLI_EXIT_OK;
}

/* Pushes one entry's job back (dead_retry.lua). PB_CLI_EXIT_OK pushed, PB_CLI_EXIT_NOT_FOUND not
 * retryable. */
static int
dead_retry_entry(dead_cli *d, const char *entry)
{
    json_object *e = json_tokener_parse(entry);
    const char *job = dead_field(e, "job"), *id = dead_field(e, "id");
    const char *queue = d->queue ? d->queue : dead_field(e, "queue");
    if (job == NULL) {
        printf("skipped: %s (its bytes are not text; see `planb dead show`)\n", id ? id : "?");
        json_object_put(e);
        return PB_CLI_EXIT_NOT_FOUND;
    }
    const pb_lua_source *src = pb_scripts_find("dead_retry");
    pb_assert(src != NULL);
    char *qkey = pb_key_queue(d->ctx->cfg->prefix, queue ? queue : d->ctx->cfg->queues[0]);
    char *rkey = pb_key_result(d->ctx->cfg->prefix, id ? id : "");
    char *pkey = pb_key_reply(d->ctx->cfg->prefix, id ? id : "");
    redisReply *r =
        pb_cli_reply(d->ctx, redisCommand(d->ctx->rc, "EVAL %s 4 %s %s %s %s %s %s", src->body,
                                          d->key, qkey, rkey, pkey, entry, job));
    int rc = r == NULL         ? PB_CLI_EXIT_REDIS
             : r->integer == 1 ? PB_CLI_EXIT_OK
                               : PB_CLI_EXIT_NOT_FOUND;
    if (rc == PB_CLI_EXIT_OK)
        printf("retried: %s -> %s\n", id ? id : "(no id)", qkey);
    else if (rc == PB_CLI_EXIT_NOT_FOUND)
        printf("skipped: %s (already retried or purged)\n", id ? id : "?");
    freeReplyObject(r);
    free(qkey);
    free(rkey);
    free(pkey);
    json_object_put(e);
    return rc;
}

/* Retries every entry, oldest first (so the queue keeps their order); entries that cannot be
 * retried stay. Bounded by the length seen at the start: new dead letters wait for the next run. */
static int
dead_retry_all(dead_cli *d)
{
    redisReply *n = pb_cli_reply(d->ctx, redisCommand(d->ctx->rc, "LLEN %s", d->key));
    if (n == NULL)
        return PB_CLI_EXIT_REDIS;
    long long total = n->integer, kept = 0, done = 0;
    freeReplyObject(n);
    for (long long i = 0; i < total; i++) {
        redisReply *r =
            pb_cli_reply(d->ctx, redisCommand(d->ctx->rc, "LINDEX %s %lld", d->key, -(kept + 1)));
        if (r == NULL)
            return PB_CLI_EXIT_REDIS;
        if (r->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            break;
        }
        int rc = dead_retry_entry(d, r->str);
        freeReplyObject(r);
        if (rc == PB_CLI_EXIT_REDIS)
            return rc;
        if (rc == PB_CLI_EXIT_OK)
            done++;
        else
            kept++;
    }
    printf("%lld retried, %lld left\n", done, kept);
    return done > 0 || total == 0 ? PB_CLI_EXIT_OK : PB_CLI_EXIT_NOT_FOUND;
}

static int
dead_purge(dead_cli *d)
{
    redisAppendCommand(d->ctx->rc, "MULTI");
    redisAppendCommand(d->ctx->rc, "LLEN %s", d->key);
    redisAppendCommand(d->ctx->rc, "DEL %s", d->key);
    redisAppendCommand(d->ctx->rc, "EXEC");
    redisReply *replies[4] = {0};
    int rc = PB_CLI_EXIT_OK;
    for (int i = 0; i < 4; i++) {
        void *p = NULL;
        if (redisGetReply(d->ctx->rc, &p) != REDIS_OK || p == NULL) {
            fprintf(stderr, "planb: Redis error: %s\n", d->ctx->rc->errstr);
            rc = PB_CLI_EXIT_REDIS;
            break;
        }
        replies[i] = p;
    }
    redisReply *ex = replies[3];
    if (rc == PB_CLI_EXIT_OK && ex->type == REDIS_REPLY_ARRAY && ex->elements == 2)
        printf("purged %lld dead letters\n", ex->element[0]->integer);
    else if (rc == PB_CLI_EXIT_OK)
        rc = PB_CLI_EXIT_REDIS;
    for (int i = 0; i < 4; i++)
        freeReplyObject(replies[i]);
    return rc;
}

/* Dispatches the subcommand once the connection is up. */
static int
dead_run(dead_cli *d, const char *sub, const char *sel, bool by_id, bool all, long limit)
{
    if (strcmp(sub, "list") == 0)
        return dead_list(d, limit);
    if (strcmp(sub, "purge") == 0)
        return dead_purge(d);
    if (strcmp(sub, "retry") == 0 && all)
        return dead_retry_all(d);
    if (strcmp(sub, "show") == 0)
        return dead_show(d, sel, by_id);
    char *entry;
    int rc = dead_find_existing(d, sel, by_id, &entry);
    if (rc != PB_CLI_EXIT_OK)
        return rc;
    rc = dead_retry_entry(d, entry);
    free(entry);
    return rc;
}

int
pb_cli_dead(pb_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"limit", required_argument, NULL, 'n'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"all", no_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const char *sel = NULL;
    dead_cli d = {.ctx = ctx};
    bool by_id = false, all = false;
    long limit = DEAD_LIST_DEFAULT;
    int c;
    while ((c = getopt_long(argc, argv, "n:q:", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            limit = strtol(optarg, NULL, 10);
            break;
        case 'q':
            d.queue = optarg;
            break;
        case 'i':
            sel = optarg;
            by_id = true;
            break;
        case 'a':
            all = true;
            break;
        default:
            return pb_cli_usage_error(ctx);
        }
    }
    const char *sub = optind < argc ? argv[optind++] : NULL;
    if (sel == NULL && optind < argc)
        sel = argv[optind++];
    bool needs_sel = sub && (strcmp(sub, "show") == 0 || (strcmp(sub, "retry") == 0 && !all));
    bool known = sub && (strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0 ||
                         strcmp(sub, "retry") == 0 || strcmp(sub, "purge") == 0);
    if (!known || (needs_sel && sel == NULL) || optind < argc || limit < 1 || limit > DEAD_LIST_MAX)
        return pb_cli_usage_error(ctx);
    int code = pb_cli_ready(ctx);
    if (code != PB_CLI_EXIT_OK)
        return code;
    d.key = pb_key_dead(ctx->cfg->prefix);
    code = dead_run(&d, sub, sel, by_id, all, limit);
    free(d.key);
    return code;
}
