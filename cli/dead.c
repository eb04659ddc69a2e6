/* dead.c -- `planb dead`: the operator's view of the dead-letter list.
 *
 *   planb dead -c FILE list [--limit N]           newest first, one line per entry
 *   planb dead -c FILE show (N | ID)              one entry as pretty JSON
 *   planb dead -c FILE retry (N | ID | --all) [--queue Q]
 *   planb dead -c FILE purge                      delete every entry
 *
 * An entry is selected by its position in `list` (0 = newest) or by its job id
 * (--id ID forces an id that is all digits). The operations are deadletter.c's, which the
 * admin API uses too; this file only prints. */
#include <ctype.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "planb/deadletter.h"

#define DEAD_LIST_DEFAULT 20     /* entries `list` shows without --limit */
#define DEAD_LIST_MAX     100000 /* --limit bound: one LRANGE reply stays a few MB */
#define DEAD_ERROR_SHOWN  100    /* chars of an entry's error on a `list` line */

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

/* The exit code of a deadletter.c outcome, its failure printed. */
static int
dead_exit(const pb_dead *d, pb_dead_rc rc)
{
    if (rc == PB_DEAD_FAILED) {
        fprintf(stderr, "planb: Redis error: %s\n", d->why);
        return PB_CLI_EXIT_REDIS;
    }
    return rc == PB_DEAD_DONE ? PB_CLI_EXIT_OK : PB_CLI_EXIT_NOT_FOUND;
}

static int
dead_list(pb_dead *d, long limit)
{
    long long total;
    if (pb_dead_count(d, &total) != PB_DEAD_DONE)
        return dead_exit(d, PB_DEAD_FAILED);
    redisReply *r = pb_dead_range(d, 0, limit);
    if (r == NULL)
        return dead_exit(d, PB_DEAD_FAILED);
    for (size_t i = 0; i < r->elements; i++) {
        json_object *e = json_tokener_parse(r->element[i]->str);
        const char *id = pb_dead_field(e, "id"), *err = pb_dead_field(e, "error");
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

/* pb_dead_find, with an absent entry reported. */
static int
dead_find_existing(pb_dead *d, const char *sel, bool by_id, char **out)
{
    pb_dead_rc rc = pb_dead_find(d, sel, by_id, out);
    if (rc == PB_DEAD_ABSENT)
        fprintf(stderr, "planb: no dead letter %s\n", sel);
    return dead_exit(d, rc);
}

static int
dead_show(pb_dead *d, const char *sel, bool by_id)
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

/* One line per entry a retry looked at. */
static void
dead_print_retry(void *arg, const char *id, const char *queue_key, pb_dead_rc rc)
{
    (void)arg;
    if (rc == PB_DEAD_DONE)
        printf("retried: %s -> %s\n", id, queue_key);
    else if (rc == PB_DEAD_NOT_TEXT)
        printf("skipped: %s (its bytes are not text; see `planb dead show`)\n", id);
    else
        printf("skipped: %s (already retried or purged)\n", id);
}

/* Dispatches the subcommand once the connection is up. */
static int
dead_run(pb_dead *d, const char *sub, const char *sel, bool by_id, bool all, long limit,
         const char *queue)
{
    if (strcmp(sub, "list") == 0)
        return dead_list(d, limit);
    if (strcmp(sub, "purge") == 0) {
        long long n = 0;
        pb_dead_rc rc = pb_dead_purge(d, &n);
        if (rc == PB_DEAD_DONE)
            printf("purged %lld dead letters\n", n);
        return dead_exit(d, rc);
    }
    if (strcmp(sub, "retry") == 0 && all) {
        long long done, kept;
        pb_dead_rc rc = pb_dead_retry_all(d, NULL, queue, dead_print_retry, NULL, &done, &kept);
        if (rc != PB_DEAD_FAILED)
            printf("%lld retried, %lld left\n", done, kept);
        return dead_exit(d, rc);
    }
    if (strcmp(sub, "show") == 0)
        return dead_show(d, sel, by_id);
    char *entry;
    int rc = dead_find_existing(d, sel, by_id, &entry);
    if (rc != PB_CLI_EXIT_OK)
        return rc;
    rc = dead_exit(d, pb_dead_retry_entry(d, entry, queue, dead_print_retry, NULL));
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
    const char *sel = NULL, *queue = NULL;
    bool by_id = false, all = false;
    long limit = DEAD_LIST_DEFAULT;
    int c;
    while ((c = getopt_long(argc, argv, "n:q:", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            limit = strtol(optarg, NULL, 10);
            break;
        case 'q':
            queue = optarg;
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
    pb_dead d;
    pb_dead_init(&d, ctx->rc, ctx->cfg);
    code = dead_run(&d, sub, sel, by_id, all, limit, queue);
    pb_dead_fini(&d);
    return code;
}
