/* test_docs_config.c -- docs/config.md tells the truth about the config parser.
 *
 * Every setting the parser accepts (pb_config_each_key walks its own key tables, so this is
 * not a copy) has a row in docs/config.md's table with a default and its limits, and every
 * key a row names is one the parser accepts. A row's first cell names one or more keys in
 * backticks (`models.<name>.price_in_per_mtok`, `models.<name>.price_out_per_mtok`); the
 * second cell is the default, the third the limits and meaning. Then each integer range a
 * row starts its limits with ("1..256 worker processes") is tried on the parser: both ends
 * accepted, one past either end refused (ranges of a string's length or an array's size are
 * left to test_config.c). */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/config.h"

#define DOCS_MAX_KEYS 256 /* the parser has about 120 settings */
#define DOCS_KEY_MAX  128

/* The smallest valid config; a range check sets one key inside it. */
static const char docs_min_config[] =
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\"}},"
    " \"models\": {\"m\": {\"provider\": \"p\"}}, \"routes\": {\"default\": {\"chain\": [\"m\"]}},"
    " \"http\": {\"listen\": \"127.0.0.1:1\", \"keys\": [{\"name\": \"k\", \"sha256\": "
    "\"0000000000000000000000000000000000000000000000000000000000000000\"}]},"
    " \"admin\": {\"listen\": \"127.0.0.1:2\", \"keys\": [{\"name\": \"a\", \"sha256\": "
    "\"1111111111111111111111111111111111111111111111111111111111111111\"}]}}";

typedef struct docs_row {
    char key[DOCS_KEY_MAX];
    char limits[512]; /* the third cell, for the range check */
    int line;         /* in docs/config.md */
} docs_row;

typedef struct docs_keys {
    char names[DOCS_MAX_KEYS][DOCS_KEY_MAX];
    size_t n;
} docs_keys;

static docs_row rows[DOCS_MAX_KEYS];
static size_t n_rows;

/* Collects the walker's names. */
static void
docs_on_key(const char *key, void *arg)
{
    docs_keys *k = arg;
    cr_assert_lt(k->n, DOCS_MAX_KEYS, "more settings than DOCS_MAX_KEYS");
    snprintf(k->names[k->n++], DOCS_KEY_MAX, "%s", key);
}

/* Copies the text of table cell i (0-based) of a "| a | b | c |" line into out, trimmed. */
static bool
docs_cell(const char *line, int i, char *out, size_t cap)
{
    const char *p = line;
    for (int c = 0; c <= i; c++) {
        p = strchr(p, '|');
        if (p == NULL)
            return false;
        p++;
    }
    const char *end = strchr(p, '|');
    if (end == NULL)
        return false;
    while (p < end && *p == ' ')
        p++;
    while (end > p && end[-1] == ' ')
        end--;
    snprintf(out, cap, "%.*s", (int)(end - p), p);
    return true;
}

/* Reads every row of the table in docs/config.md: one docs_row per key a first cell names. */
static void
docs_read_rows(void)
{
    char path[1024], line[4096];
    snprintf(path, sizeof(path), "%s/docs/config.md", PB_SRC_DIR);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    n_rows = 0;
    for (int no = 1; fgets(line, sizeof(line), f) != NULL; no++) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char first[512], def[512], limits[512];
        cr_assert(docs_cell(line, 0, first, sizeof(first)) &&
                      docs_cell(line, 1, def, sizeof(def)) &&
                      docs_cell(line, 2, limits, sizeof(limits)),
                  "docs/config.md:%d: a row needs key, default and limits cells", no);
        cr_expect_neq(def[0], '\0', "docs/config.md:%d: %s has no default", no, first);
        cr_expect_neq(limits[0], '\0', "docs/config.md:%d: %s has no limits", no, first);
        for (char *p = strchr(first, '`'); p != NULL; p = strchr(p, '`')) {
            char *end = strchr(p + 1, '`');
            cr_assert_not_null(end, "docs/config.md:%d: unbalanced backquote", no);
            cr_assert_lt(n_rows, DOCS_MAX_KEYS);
            docs_row *r = &rows[n_rows++];
            snprintf(r->key, sizeof(r->key), "%.*s", (int)(end - p - 1), p + 1);
            snprintf(r->limits, sizeof(r->limits), "%s", limits);
            r->line = no;
            p = end + 1;
        }
    }
    fclose(f);
    cr_assert_gt(n_rows, 50, "docs/config.md has no key table");
}

static bool
docs_in(const char *key, const docs_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->names[i], key) == 0)
            return true;
    return false;
}

Test(docs_config, every_accepted_key_is_documented_and_every_documented_key_accepted)
{
    static docs_keys parser;
    parser.n = 0;
    pb_config_each_key(docs_on_key, &parser);
    cr_assert_gt(parser.n, 50, "the walker found only %zu settings", parser.n);
    cr_expect(docs_in("breaker.consecutive", &parser));
    cr_expect(docs_in("routes.<name>.retries", &parser));
    cr_expect(docs_in("models.<name>.timeout_ms", &parser));
    cr_expect(docs_in("http.keys[].sha256", &parser));
    cr_expect(!docs_in("cache.semantic", &parser), "a section is not a setting");
    docs_read_rows();
    static docs_keys documented;
    documented.n = 0;
    for (size_t i = 0; i < n_rows; i++) {
        cr_expect(!docs_in(rows[i].key, &documented), "docs/config.md:%d: %s has two rows",
                  rows[i].line, rows[i].key);
        memcpy(documented.names[documented.n++], rows[i].key, DOCS_KEY_MAX);
        cr_expect(docs_in(rows[i].key, &parser),
                  "docs/config.md:%d: %s is documented but the parser does not accept it",
                  rows[i].line, rows[i].key);
    }
    for (size_t i = 0; i < parser.n; i++)
        cr_expect(docs_in(parser.names[i], &documented),
                  "%s is accepted by the parser (src/config.c) but has no row in docs/config.md",
                  parser.names[i]);
}

/* The config text of docs_min_config with key (a dotted path; "<name>" is the one provider,
 * model or route there, "[]" the one http key) set to n. Caller frees. */
static char *
docs_config_with(const char *key, long long n)
{
    json_object *root = json_tokener_parse(docs_min_config);
    cr_assert_not_null(root);
    json_object *o = root;
    char buf[DOCS_KEY_MAX];
    snprintf(buf, sizeof(buf), "%s", key);
    char *save = NULL;
    const char *parent = NULL;
    for (char *part = strtok_r(buf, ".", &save); part != NULL; part = strtok_r(NULL, ".", &save)) {
        char *next = save != NULL && *save != '\0' ? save : NULL;
        if (next == NULL) {
            json_object_object_add(o, part, json_object_new_int64(n));
            break;
        }
        json_object *child;
        const char *name = part;
        if (strcmp(part, "<name>") == 0)
            name = strcmp(parent, "providers") == 0 ? "p"
                   : strcmp(parent, "models") == 0  ? "m"
                                                    : "default";
        size_t len = strlen(name);
        if (len > 2 && strcmp(name + len - 2, "[]") == 0) {
            char arr[DOCS_KEY_MAX];
            snprintf(arr, sizeof(arr), "%.*s", (int)(len - 2), name);
            cr_assert(json_object_object_get_ex(o, arr, &child));
            child = json_object_array_get_idx(child, 0);
        } else if (!json_object_object_get_ex(o, name, &child)) {
            child = json_object_new_object();
            json_object_object_add(o, name, child);
        }
        parent = part;
        o = child;
    }
    char *text = strdup(json_object_to_json_string(root));
    json_object_put(root);
    return text;
}

static bool
docs_accepts(const char *key, long long n, char *why, size_t cap)
{
    char *text = docs_config_with(key, n);
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(text, &err);
    snprintf(why, cap, "%s", cfg == NULL ? err.msg : "accepted");
    pb_config_free(cfg);
    free(text);
    return cfg != NULL;
}

/* Reads a bound written as digits or 10^k. */
static bool
docs_bound(const char *s, long long *out, const char **end)
{
    char *e;
    long long n = strtoll(s, &e, 10);
    if (e == s)
        return false;
    if (strncmp(e, "^", 1) == 0 && n == 10) {
        long long k = strtoll(e + 1, &e, 10);
        for (n = 1; k > 0; k--)
            n *= 10;
    }
    *out = n;
    *end = e;
    return true;
}

Test(docs_config, documented_integer_ranges_are_the_parsers)
{
    docs_read_rows();
    int checked = 0;
    for (size_t i = 0; i < n_rows; i++) {
        const docs_row *r = &rows[i];
        long long lo, hi;
        const char *p = r->limits, *e;
        if (!docs_bound(p, &lo, &e) || strncmp(e, "..", 2) != 0 || !docs_bound(e + 2, &hi, &e))
            continue;
        if (*e == '.' || strchr(r->limits, '.') == e) /* 0.5..1: not an integer range */
            continue;
        char why[PB_ERROR_MSG_LEN];
        /* A range of a string's length or an array's size, or a key of a both-or-neither
         * pair, is not an integer setting on its own: the parser says so at the low end. */
        if (!docs_accepts(r->key, lo, why, sizeof(why)) &&
            (strstr(why, "must be a") != NULL || strstr(why, "given together") != NULL))
            continue;
        cr_expect(docs_accepts(r->key, lo, why, sizeof(why)),
                  "docs/config.md:%d: %s = %lld (its documented minimum) is refused: %s", r->line,
                  r->key, lo, why);
        cr_expect(docs_accepts(r->key, hi, why, sizeof(why)),
                  "docs/config.md:%d: %s = %lld (its documented maximum) is refused: %s", r->line,
                  r->key, hi, why);
        cr_expect(!docs_accepts(r->key, lo - 1, why, sizeof(why)),
                  "docs/config.md:%d: %s = %lld (below its documented minimum) is accepted",
                  r->line, r->key, lo - 1);
        cr_expect(!docs_accepts(r->key, hi + 1, why, sizeof(why)),
                  "docs/config.md:%d: %s = %lld (above its documented maximum) is accepted",
                  r->line, r->key, hi + 1);
        checked++;
    }
    cr_expect_gt(checked, 30, "only %d ranges checked", checked);
}

/* pb_config_each_key walks the tables listed in config_sections: a key table added to
 * src/config.c without its row there would be invisible to the test above. */
Test(docs_config, every_key_table_of_the_parser_is_walked)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/src/config.c", PB_SRC_DIR);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    static char src[256 * 1024];
    size_t n = fread(src, 1, sizeof(src) - 1, f);
    fclose(f);
    src[n] = '\0';
    int tables = 0;
    for (const char *p = strstr(src, "static const char *const config_"); p != NULL;
         p = strstr(p + 1, "static const char *const config_")) {
        char name[DOCS_KEY_MAX], row[DOCS_KEY_MAX + 8];
        if (sscanf(p, "static const char *const %127[a-z_][]", name) != 1 || strlen(name) < 5 ||
            strcmp(name + strlen(name) - 5, "_keys") != 0)
            continue;
        snprintf(row, sizeof(row), ", %s}", name);
        cr_expect_not_null(strstr(src, row), "src/config.c: %s is not in config_sections", name);
        tables++;
    }
    cr_expect_geq(tables, 13, "found only %d key tables in src/config.c", tables);
}
