/* test_job.c -- job parsing (every accepted and refused input), result JSON and the
 * dead-letter entry.
 *
 * Jobs come from tests/fixtures/jobs/ where a file can hold them, inline
 * otherwise (NUL bytes, generated sizes). Configs are the fixtures in
 * tests/fixtures/config/: full.json (small limits: 64-byte ids, 64 messages,
 * 4 KiB meta) and minimal.json (default limits). */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/job.h"

static pb_config *
load_config(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/config/%s", PB_SRC_DIR, name);
    pb_error err = {0};
    pb_config *cfg = pb_config_load(path, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    return cfg;
}

/* Whole fixture file; caller frees. */
static char *
load_job(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/jobs/%s", PB_SRC_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

/* Parses len bytes expecting failure with code and msg, and bad_id (NULL: none). */
static void
expect_bad(const pb_config *cfg, const char *raw, size_t len, int code, const char *msg,
           const char *want_id)
{
    pb_request *req = (pb_request *)&req; /* must be reset to NULL */
    char *bad_id = (char *)&bad_id;
    pb_error err = {0};
    cr_expect_eq(pb_job_parse(raw, len, cfg, &req, &bad_id, &err), PB_ERR, "accepted: %.*s",
                 (int)len, raw);
    cr_expect_null(req);
    cr_expect_eq(err.code, code, "code %d for: %.*s", err.code, (int)len, raw);
    cr_expect_str_eq(err.msg, msg, "got \"%s\" for: %.*s", err.msg, (int)len, raw);
    if (want_id)
        cr_expect(bad_id && strcmp(bad_id, want_id) == 0, "bad_id %s, want %s", bad_id, want_id);
    else
        cr_expect_null(bad_id, "bad_id %s for: %.*s", bad_id, (int)len, raw);
    free(bad_id);
}

static void
expect_bad_str(const pb_config *cfg, const char *raw, int code, const char *msg)
{
    expect_bad(cfg, raw, strlen(raw), code, msg, "j");
}

static pb_request *
must_parse(const pb_config *cfg, const char *raw, size_t len)
{
    pb_request *req = NULL;
    char *bad_id = NULL;
    pb_error err = {0};
    cr_assert_eq(pb_job_parse(raw, len, cfg, &req, &bad_id, &err), PB_OK, "%s for: %.*s", err.msg,
                 (int)len, raw);
    cr_assert_not_null(req);
    cr_expect_null(bad_id);
    return req;
}

Test(job, minimal_gets_defaults)
{
    pb_config *cfg = load_config("full.json");
    size_t len;
    char *raw = load_job("good_minimal.json", &len);
    pb_request *req = must_parse(cfg, raw, len);
    cr_expect(req->id_generated);
    cr_expect_eq(strlen(req->id), 27);
    cr_expect_eq(strncmp(req->id, "pb-", 3), 0);
    cr_expect_eq(strspn(req->id + 3, "0123456789abcdef"), 24, "%s", req->id);
    cr_assert_eq(req->n_messages, 1);
    cr_expect_eq(req->messages[0].role, PB_ROLE_USER);
    cr_expect_str_eq(req->messages[0].content, "Hello");
    cr_expect_eq(req->route, cfg->default_route);
    cr_assert_eq(req->n_models, 3, "the route's chain");
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(req->models[i], cfg->routes[cfg->default_route].chain[i]);
    cr_expect_null(req->tenant);
    cr_expect_eq(req->max_tokens, -1);
    cr_expect(isnan(req->temperature));
    cr_expect(isnan(req->top_p));
    cr_expect_eq(req->deadline_ms, 30000);
    cr_expect_not(req->critical);
    cr_expect_not(req->reply);
    cr_expect_eq(req->cache, PB_CACHE_USE);
    cr_expect_null(req->meta);
    cr_expect_eq(req->submitted_at_ms, 0);

    pb_request *again = must_parse(cfg, raw, len);
    cr_expect_str_neq(again->id, req->id, "generated ids differ");
    pb_request_free(again);
    pb_request_free(req);
    pb_request_free(NULL);
    free(raw);
    pb_config_free(cfg);
}

Test(job, full_job)
{
    pb_config *cfg = load_config("full.json");
    size_t len;
    char *raw = load_job("good_full.json", &len);
    pb_request *req = must_parse(cfg, raw, len);
    cr_expect_str_eq(req->id, "order-42:chat/7+a=b@x_y.z");
    cr_expect_not(req->id_generated);
    cr_assert_eq(req->n_messages, 4);
    cr_expect_eq(req->messages[0].role, PB_ROLE_SYSTEM);
    cr_expect_eq(req->messages[2].role, PB_ROLE_ASSISTANT);
    cr_expect_str_eq(req->messages[1].content,
                     "Say \"hi\"\nin two languages: h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80");
    cr_expect_eq(req->route, pb_config_route_index(cfg, "cheap"));
    cr_expect_str_eq(req->tenant, "acme");
    cr_assert_eq(req->n_models, 2);
    cr_expect_eq(req->models[0], pb_config_model_index(cfg, "claude-sonnet"));
    cr_expect_eq(req->models[1], pb_config_model_index(cfg, "gpt-4o"));
    cr_expect_eq(req->max_tokens, 256);
    cr_expect_float_eq(req->temperature, 0.2, 1e-12);
    cr_expect_float_eq(req->top_p, 1.0, 1e-12);
    cr_expect_eq(req->deadline_ms, 12000);
    cr_expect(req->critical);
    cr_expect(req->reply);
    cr_expect_eq(req->cache, PB_CACHE_REFRESH);
    cr_assert_not_null(req->meta);
    cr_expect_str_eq(json_object_to_json_string_ext(req->meta, JSON_C_TO_STRING_PLAIN),
                     "{\"user\":7,\"tags\":[\"a\",\"b\"],\"nested\":{\"x\":null}}");
    cr_expect_eq(req->submitted_at_ms, 1700000000000LL);
    pb_request_free(req);
    free(raw);
    pb_config_free(cfg);
}

Test(job, nulls_mean_absent_and_route_deadline)
{
    pb_config *cfg = load_config("full.json");
    size_t len;
    char *raw = load_job("good_nulls.json", &len);
    pb_request *req = must_parse(cfg, raw, len);
    cr_expect_str_eq(req->id, "n1");
    cr_expect_eq(req->route, cfg->default_route);
    cr_expect_null(req->tenant);
    cr_expect_null(req->meta);
    cr_expect_eq(req->n_models, 3);
    pb_request_free(req);
    free(raw);

    static const char cheap[] =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"route\": \"cheap\", "
        "\"cache\": \"skip\", \"params\": {\"temperature\": 0, \"top_p\": 0.5}}";
    req = must_parse(cfg, cheap, strlen(cheap));
    cr_expect_eq(req->deadline_ms, 5000, "the route's deadline");
    cr_assert_eq(req->n_models, 1);
    cr_expect_eq(req->models[0], pb_config_model_index(cfg, "gpt-4o-mini"));
    cr_expect_eq(req->cache, PB_CACHE_SKIP);
    cr_expect_float_eq(req->temperature, 0.0, 1e-12);
    cr_expect_float_eq(req->top_p, 0.5, 1e-12);
    cr_expect_eq(req->max_tokens, -1);
    pb_request_free(req);
    pb_config_free(cfg);
}

Test(job, malformed_fixtures)
{
    static const struct {
        const char *file;
        int code;
        const char *msg;
        const char *bad_id;
    } cases[] = {
        {"bad_not_json.txt", PB_JOB_BAD_JSON,
         "BAD_JSON job is not valid JSON (boolean expected at byte 1)", NULL},
        {"bad_array.json", PB_JOB_BAD_JSON, "BAD_JSON job must be a JSON object", NULL},
        {"bad_truncated.json", PB_JOB_BAD_JSON, "BAD_JSON job is not valid JSON (truncated)", NULL},
        {"bad_trailing.json", PB_JOB_BAD_JSON,
         "BAD_JSON job is not valid JSON (unexpected character at byte 65)", NULL},
        {"bad_utf8.json", PB_JOB_BAD_JSON,
         "BAD_JSON job is not valid JSON (invalid utf-8 string at byte 55)", NULL},
        {"bad_deep.json", PB_JOB_BAD_JSON,
         "BAD_JSON job is not valid JSON (nested deeper than 32 levels)", NULL},
        {"bad_role.json", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages[2].role must be one of system, developer, user, assistant, tool",
         "r1"},
        {"bad_content_type.json", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages[0].content[0] must be an object with a \"type\"", "c1"},
        {"bad_no_user.json", PB_JOB_BAD_FIELD, "BAD_FIELD messages must contain a user message",
         "s1"},
        {"bad_empty_messages.json", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages must be a non-empty array", "e1"},
        {"bad_unknown_route.json", PB_JOB_UNKNOWN_ROUTE,
         "UNKNOWN_ROUTE route \"x\" is not configured", "u1"},
        {"bad_unknown_model.json", PB_JOB_UNKNOWN_MODEL,
         "UNKNOWN_MODEL models[1]: \"claude\" is not configured", "u2"},
        {"bad_params_key.json", PB_JOB_BAD_FIELD,
         "BAD_FIELD params.foo is not an OpenAI Chat Completions parameter", "p1"},
        {"bad_params_temperature.json", PB_JOB_BAD_FIELD,
         "BAD_FIELD params.temperature must be a number from 0 to 2", "p2"},
        {"bad_id_chars.json", PB_JOB_BAD_FIELD,
         "BAD_FIELD id must be a string of 1..64 characters [A-Za-z0-9_.:@/+=-]", NULL},
    };
    pb_config *cfg = load_config("full.json");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *raw = load_job(cases[i].file, &len);
        expect_bad(cfg, raw, len, cases[i].code, cases[i].msg, cases[i].bad_id);
        free(raw);
    }
    pb_config_free(cfg);
}

Test(job, nul_bytes_and_empty_input)
{
    pb_config *cfg = load_config("full.json");
    static const char nul_in_string[] =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a\0b\"}]}";
    expect_bad(cfg, nul_in_string, sizeof(nul_in_string) - 1, PB_JOB_BAD_JSON,
               "BAD_JSON job is not valid JSON (NUL byte at byte 44)", NULL);
    static const char nul_after[] =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"ab\"}]}\0x";
    expect_bad(cfg, nul_after, sizeof(nul_after) - 1, PB_JOB_BAD_JSON,
               "BAD_JSON job is not valid JSON (NUL byte at byte 49)", NULL);
    static const char nul_start[] = "\0{}";
    expect_bad(cfg, nul_start, sizeof(nul_start) - 1, PB_JOB_BAD_JSON,
               "BAD_JSON job is not valid JSON (NUL byte at byte 0)", NULL);
    expect_bad(cfg, "", 0, PB_JOB_BAD_JSON, "BAD_JSON job is not valid JSON (truncated)", NULL);
    expect_bad(cfg, "   \n", 4, PB_JOB_BAD_JSON, "BAD_JSON job is not valid JSON (truncated)",
               NULL);
    expect_bad(cfg, "\"str\"", 5, PB_JOB_BAD_JSON, "BAD_JSON job must be a JSON object", NULL);
    expect_bad(cfg, "null", 4, PB_JOB_BAD_JSON, "BAD_JSON job must be a JSON object", NULL);
    expect_bad(cfg, "12", 2, PB_JOB_BAD_JSON, "BAD_JSON job must be a JSON object", NULL);
    expect_bad(cfg, "{} ", 3, PB_JOB_BAD_FIELD, "BAD_FIELD messages must be a non-empty array",
               NULL);
    /* Parsing stops at len: the valid object's tail is not seen. */
    static const char cut[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"ab\"}]}";
    expect_bad(cfg, cut, sizeof(cut) - 2, PB_JOB_BAD_JSON,
               "BAD_JSON job is not valid JSON (truncated)", NULL);
    /* An escaped NUL is valid JSON but cannot live in a C string. */
    expect_bad_str(
        cfg, "{\"id\": \"j\", \"messages\": [{\"role\": \"user\", \"content\": \"a\\u0000b\"}]}",
        PB_JOB_BAD_FIELD, "BAD_FIELD messages[0].content must be a string without NUL characters");
    pb_config_free(cfg);
}

Test(job, size_limits)
{
    pb_config *cfg = load_config("full.json");
    size_t limit = cfg->limits.job_max_bytes;
    char *big = malloc(limit + 1);
    memset(big, '[', limit + 1);
    expect_bad(cfg, big, limit + 1, PB_JOB_TOO_LARGE, "TOO_LARGE job is 262145 bytes, limit 262144",
               NULL);
    /* At the limit the job is parsed (and here refused for its nesting, not its size). */
    expect_bad(cfg, big, limit, PB_JOB_BAD_JSON,
               "BAD_JSON job is not valid JSON (nested deeper than 32 levels)", NULL);
    free(big);

    /* meta over meta_max_bytes (4096 here). */
    char *job = malloc(8192);
    char *pad = malloc(4200);
    memset(pad, 'm', 4100);
    pad[4100] = '\0';
    snprintf(job, 8192,
             "{\"id\": \"j\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"meta\": "
             "{\"pad\": \"%s\"}}",
             pad);
    expect_bad_str(cfg, job, PB_JOB_TOO_LARGE, "TOO_LARGE meta is 4110 bytes, limit 4096");
    pad[4096 - 10] = '\0'; /* {"pad":"..."} is 10 bytes plus the padding: exactly the limit */
    snprintf(job, 8192,
             "{\"id\": \"j\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"meta\": "
             "{\"pad\": \"%s\"}}",
             pad);
    pb_request *req = must_parse(cfg, job, strlen(job));
    pb_request_free(req);
    free(pad);
    free(job);

    /* Too many messages, with the default limit of 256. */
    pb_config *def = load_config("minimal.json");
    size_t cap = 64 + 300 * 40;
    job = malloc(cap);
    size_t n = (size_t)snprintf(job, cap, "{\"id\": \"j\", \"messages\": [");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(job + n, cap - n, "%s{\"role\": \"user\", \"content\": \"m\"}",
                              i ? "," : "");
    snprintf(job + n, cap - n, "]}");
    expect_bad_str(def, job, PB_JOB_TOO_LARGE, "TOO_LARGE job has 300 messages, limit 256");
    free(job);
    pb_config_free(def);
    pb_config_free(cfg);
}

/* {"id":"j","messages":[{"role":"user","content":"x"}], <extra>} */
#define JOB_WITH(extra)                                                                            \
    "{\"id\": \"j\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], " extra "}"

Test(job, wrong_types_and_ranges)
{
    static const struct {
        const char *raw;
        int code;
        const char *msg;
    } cases[] = {
        {"{\"id\": \"j\"}", PB_JOB_BAD_FIELD, "BAD_FIELD messages must be a non-empty array"},
        {"{\"id\": \"j\", \"messages\": null}", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages must be a non-empty array"},
        {"{\"id\": \"j\", \"messages\": \"hi\"}", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages must be a non-empty array"},
        {"{\"id\": \"j\", \"messages\": {\"role\": \"user\"}}", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages must be a non-empty array"},
        {"{\"id\": \"j\", \"messages\": [1]}", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages[0] must be an object"},
        {"{\"id\": \"j\", \"messages\": [{\"content\": \"x\"}]}", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages[0].role must be one of system, developer, user, assistant, tool"},
        {"{\"id\": \"j\", \"messages\": [{\"role\": 1, \"content\": \"x\"}]}", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages[0].role must be one of system, developer, user, assistant, tool"},
        {"{\"id\": \"j\", \"messages\": [{\"role\": \"User\", \"content\": \"x\"}]}",
         PB_JOB_BAD_FIELD,
         "BAD_FIELD messages[0].role must be one of system, developer, user, assistant, tool"},
        {"{\"id\": \"j\", \"messages\": [{\"role\": \"user\"}]}", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages[0].content must be a string or an array of parts"},
        {"{\"id\": \"j\", \"messages\": [{\"role\": \"user\", \"content\": null}]}",
         PB_JOB_BAD_FIELD, "BAD_FIELD messages[0].content must be a string or an array of parts"},
        {"{\"id\": \"j\", \"messages\": [{\"role\": \"user\", \"content\": 5}]}", PB_JOB_BAD_FIELD,
         "BAD_FIELD messages[0].content must be a string or an array of parts"},
        {JOB_WITH("\"route\": 5"), PB_JOB_BAD_FIELD, "BAD_FIELD route must be a string"},
        {JOB_WITH("\"route\": \"\""), PB_JOB_UNKNOWN_ROUTE,
         "UNKNOWN_ROUTE route \"\" is not configured"},
        {JOB_WITH("\"tenant\": 5"), PB_JOB_BAD_FIELD,
         "BAD_FIELD tenant must be a string of 1..128 bytes"},
        {JOB_WITH("\"tenant\": \"\""), PB_JOB_BAD_FIELD,
         "BAD_FIELD tenant must be a string of 1..128 bytes"},
        {JOB_WITH("\"models\": \"gpt-4o\""), PB_JOB_BAD_FIELD,
         "BAD_FIELD models must be an array of 1..16 model names"},
        {JOB_WITH("\"models\": []"), PB_JOB_BAD_FIELD,
         "BAD_FIELD models must be an array of 1..16 model names"},
        {JOB_WITH("\"models\": [\"gpt-4o\", 1]"), PB_JOB_BAD_FIELD,
         "BAD_FIELD models[1] must be a string"},
        {JOB_WITH("\"models\": [\"gpt-4o\", \"gpt-4o\", \"gpt-4o\", \"gpt-4o\", \"gpt-4o\", "
                  "\"gpt-4o\", \"gpt-4o\", \"gpt-4o\", \"gpt-4o\", \"gpt-4o\", \"gpt-4o\", "
                  "\"gpt-4o\", \"gpt-4o\", \"gpt-4o\", \"gpt-4o\", \"gpt-4o\", \"gpt-4o\"]"),
         PB_JOB_BAD_FIELD, "BAD_FIELD models must be an array of 1..16 model names"},
        {JOB_WITH("\"params\": []"), PB_JOB_BAD_FIELD, "BAD_FIELD params must be an object"},
        {JOB_WITH("\"params\": {\"max_tokens\": 0}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.max_tokens must be an integer from 1 to 1000000"},
        {JOB_WITH("\"params\": {\"max_tokens\": 1000001}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.max_tokens must be an integer from 1 to 1000000"},
        {JOB_WITH("\"params\": {\"max_tokens\": 10.5}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.max_tokens must be an integer from 1 to 1000000"},
        {JOB_WITH("\"params\": {\"max_tokens\": \"10\"}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.max_tokens must be an integer from 1 to 1000000"},
        {JOB_WITH("\"params\": {\"max_tokens\": 99999999999999999999}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.max_tokens must be an integer from 1 to 1000000"},
        {JOB_WITH("\"params\": {\"temperature\": \"0.5\"}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.temperature must be a number from 0 to 2"},
        {JOB_WITH("\"params\": {\"temperature\": -0.1}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.temperature must be a number from 0 to 2"},
        {JOB_WITH("\"params\": {\"temperature\": 1e400}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.temperature must be a number from 0 to 2"},
        {JOB_WITH("\"params\": {\"top_p\": 1.01}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.top_p must be a number from 0 to 1"},
        {JOB_WITH("\"params\": {\"top_p\": true}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.top_p must be a number from 0 to 1"},
        {JOB_WITH("\"params\": {\"stop\": [\"x\", \"\"]}"), PB_JOB_BAD_FIELD,
         "BAD_FIELD params.stop must be a string or an array of 1..4 strings of 1..256 bytes"},
        {JOB_WITH("\"deadline_ms\": 99"), PB_JOB_BAD_FIELD,
         "BAD_FIELD deadline_ms must be an integer from 100 to 3600000"},
        {JOB_WITH("\"deadline_ms\": 3600001"), PB_JOB_BAD_FIELD,
         "BAD_FIELD deadline_ms must be an integer from 100 to 3600000"},
        {JOB_WITH("\"deadline_ms\": \"1000\""), PB_JOB_BAD_FIELD,
         "BAD_FIELD deadline_ms must be an integer from 100 to 3600000"},
        {JOB_WITH("\"critical\": \"yes\""), PB_JOB_BAD_FIELD,
         "BAD_FIELD critical must be true or false"},
        {JOB_WITH("\"critical\": 1"), PB_JOB_BAD_FIELD, "BAD_FIELD critical must be true or false"},
        {JOB_WITH("\"reply\": 0"), PB_JOB_BAD_FIELD, "BAD_FIELD reply must be true or false"},
        {JOB_WITH("\"cache\": \"sometimes\""), PB_JOB_BAD_FIELD,
         "BAD_FIELD cache must be one of use, skip, refresh"},
        {JOB_WITH("\"cache\": false"), PB_JOB_BAD_FIELD,
         "BAD_FIELD cache must be one of use, skip, refresh"},
        {JOB_WITH("\"submitted_at_ms\": -1"), PB_JOB_BAD_FIELD,
         "BAD_FIELD submitted_at_ms must be a non-negative integer"},
        {JOB_WITH("\"submitted_at_ms\": 1.5"), PB_JOB_BAD_FIELD,
         "BAD_FIELD submitted_at_ms must be a non-negative integer"},
        {JOB_WITH("\"submitted_at_ms\": \"now\""), PB_JOB_BAD_FIELD,
         "BAD_FIELD submitted_at_ms must be a non-negative integer"},
        {JOB_WITH("\"route\": \"0123456789012345678901234567890123456789012345678901234567890123"
                  "456789\""),
         PB_JOB_UNKNOWN_ROUTE,
         "UNKNOWN_ROUTE route "
         "\"0123456789012345678901234567890123456789012345678901234567890123...\" "
         "is not configured"},
        /* A quoted value is cut on a character boundary: the 3-byte char at 63..65 is dropped. */
        {JOB_WITH("\"route\": \"012345678901234567890123456789012345678901234567890123456789012"
                  "\xe2\x9c\x93xyz\""),
         PB_JOB_UNKNOWN_ROUTE,
         "UNKNOWN_ROUTE route "
         "\"012345678901234567890123456789012345678901234567890123456789012...\" "
         "is not configured"},
        {"{\"id\": \"j\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"messages\": "
         "[]}",
         PB_JOB_BAD_FIELD, "BAD_FIELD messages must be a non-empty array"},
    };
    pb_config *cfg = load_config("full.json");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_bad(cfg, cases[i].raw, strlen(cases[i].raw), cases[i].code, cases[i].msg, "j");
    pb_config_free(cfg);
}

Test(job, ids_and_bad_id)
{
    pb_config *cfg = load_config("full.json"); /* id_max_bytes 64 */
    static const char *const bad_ids[] = {
        "{\"id\": 5, \"messages\": []}",
        "{\"id\": \"\", \"messages\": []}",
        "{\"id\": \"has space\", \"messages\": []}",
        "{\"id\": \"new\\nline\", \"messages\": []}",
        "{\"id\": \"caf\xc3\xa9\", \"messages\": []}",
        "{\"id\": \"a\\u0000b\", \"messages\": []}",
        "{\"id\": \"x*\", \"messages\": []}",
        "{\"id\": [\"x\"], \"messages\": []}",
        ("{\"id\": \"0123456789012345678901234567890123456789012345678901234567890123X\", "
         "\"messages\": []}"),
    };
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++)
        expect_bad(cfg, bad_ids[i], strlen(bad_ids[i]), PB_JOB_BAD_FIELD,
                   "BAD_FIELD id must be a string of 1..64 characters [A-Za-z0-9_.:@/+=-]", NULL);

    /* Exactly 64 characters, every allowed character class. */
    static const char max_id[] =
        "{\"id\": \"Az09_.:@/+=-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
        "\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}";
    pb_request *req = must_parse(cfg, max_id, strlen(max_id));
    cr_expect_eq(strlen(req->id), 64);
    cr_expect_not(req->id_generated);
    pb_request_free(req);

    /* A valid id read before a later error is handed back; a NULL bad_id is allowed. */
    static const char late[] = "{\"id\": \"keep-me\", \"messages\": [], \"route\": 1}";
    expect_bad(cfg, late, strlen(late), PB_JOB_BAD_FIELD,
               "BAD_FIELD messages must be a non-empty array", "keep-me");
    pb_error err = {0};
    cr_expect_eq(pb_job_parse(late, strlen(late), cfg, &req, NULL, &err), PB_ERR);
    cr_expect_null(req);
    cr_expect_eq(err.code, PB_JOB_BAD_FIELD);
    /* No id: nothing to hand back. */
    static const char no_id[] = "{\"messages\": []}";
    expect_bad(cfg, no_id, strlen(no_id), PB_JOB_BAD_FIELD,
               "BAD_FIELD messages must be a non-empty array", NULL);
    pb_config_free(cfg);
}

/* Every prefix and many random corruptions of a good job either parse or give a coded
 * error; under ASan this is the "never crashes on any input" check. */
Test(job, prefixes_and_corruptions_never_crash)
{
    pb_config *cfg = load_config("full.json");
    size_t len;
    char *raw = load_job("good_full.json", &len);
    for (size_t n = 0; n <= len; n++) {
        pb_request *req = NULL;
        char *bad_id = NULL;
        pb_error err = {0};
        int rc = pb_job_parse(raw, n, cfg, &req, &bad_id, &err);
        if (n >= len - 1)
            cr_expect_eq(rc, PB_OK, "%s", err.msg);
        else
            cr_expect(rc == PB_ERR && err.code == PB_JOB_BAD_JSON, "prefix %zu: %s", n, err.msg);
        pb_request_free(req);
        free(bad_id);
    }
    char *mut = malloc(len);
    srand(42);
    for (int round = 0; round < 5000; round++) {
        memcpy(mut, raw, len);
        int flips = 1 + rand() % 4;
        for (int f = 0; f < flips; f++)
            mut[rand() % (int)len] = (char)(rand() % 256);
        pb_request *req = NULL;
        char *bad_id = NULL;
        pb_error err = {0};
        int rc = pb_job_parse(mut, len, cfg, &req, &bad_id, &err);
        if (rc == PB_OK)
            cr_expect_not_null(req);
        else
            cr_expect(err.code >= PB_JOB_BAD_JSON && err.code <= PB_JOB_UNKNOWN_MODEL &&
                          strchr(err.msg, ' ') != NULL,
                      "%s", err.msg);
        pb_request_free(req);
        free(bad_id);
    }
    free(mut);
    free(raw);
    pb_config_free(cfg);
}

/* ---------------------------------------------------------------- results */

/* Parses result JSON strictly (valid UTF-8 required); caller puts. */
static json_object *
parse_result(const char *json, size_t len)
{
    cr_assert_eq(strlen(json), len);
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, json, (int)len);
    cr_assert_not_null(o, "not valid JSON (%s): %s",
                       json_tokener_error_desc(json_tokener_get_error(tok)), json);
    cr_assert_eq(json_tokener_get_parse_end(tok), len);
    json_tokener_free(tok);
    cr_assert(json_object_is_type(o, json_type_object));
    return o;
}

static const char *
get_str(json_object *o, const char *key)
{
    json_object *v;
    cr_assert(json_object_object_get_ex(o, key, &v), "no %s", key);
    return json_object_get_string(v);
}

static int64_t
get_int(json_object *o, const char *key)
{
    json_object *v;
    cr_assert(json_object_object_get_ex(o, key, &v), "no %s", key);
    cr_assert(json_object_is_type(v, json_type_int), "%s not an int", key);
    return json_object_get_int64(v);
}

static bool
has(json_object *o, const char *key)
{
    return json_object_object_get_ex(o, key, NULL);
}

Test(result, full_round_trip)
{
    pb_config *cfg = load_config("full.json");
    json_object *meta = json_tokener_parse("{\"user\": 7, \"path\": \"a/b\", \"s\": \"\\u00e9\"}");
    pb_attempt attempts[2] = {
        {.model = 0, .try_no = 1, .outcome = "http_503", .elapsed_ms = 41},
        {.model = 1, .try_no = 1, .outcome = "ok", .elapsed_ms = 230},
    };
    pb_result res = {
        .id = "job-1",
        .status = PB_STATUS_OK,
        .source = PB_SOURCE_FALLBACK,
        .content = "Hello \"world\"\nline2\ttab \\ back/slash \x01 h\xc3\xa9llo \xe2\x9c\x93 "
                   "\xf0\x9f\x98\x80 \xe2\x80\xa8",
        .model = 1,
        .attempts = attempts,
        .n_attempts = 2,
        .prompt_tokens = 12,
        .completion_tokens = 30,
        .queued_ms = 3,
        .latency_ms = 275,
        .worker = "host:123",
        .meta = meta,
        .cache_age_s = -1,
    };
    size_t len = 0;
    char *json = pb_job_result_to_json(&res, cfg, &len);
    json_object *o = parse_result(json, len);
    cr_expect_str_eq(get_str(o, "id"), "job-1");
    cr_expect_str_eq(get_str(o, "status"), "ok");
    cr_expect_str_eq(get_str(o, "content"), res.content);
    cr_expect_str_eq(get_str(o, "model"), "claude-sonnet");
    cr_expect_str_eq(get_str(o, "provider"), "anthropic");
    cr_expect_str_eq(get_str(o, "source"), "fallback");
    cr_expect_not(has(o, "error"));
    cr_expect_not(has(o, "cache_age_s"));
    json_object *a;
    cr_assert(json_object_object_get_ex(o, "attempts", &a));
    cr_assert_eq(json_object_array_length(a), 2);
    json_object *a0 = json_object_array_get_idx(a, 0);
    cr_expect_str_eq(get_str(a0, "model"), "gpt-4o");
    cr_expect_eq(get_int(a0, "try"), 1);
    cr_expect_str_eq(get_str(a0, "outcome"), "http_503");
    cr_expect_eq(get_int(a0, "ms"), 41);
    cr_expect_str_eq(get_str(json_object_array_get_idx(a, 1), "outcome"), "ok");
    json_object *u;
    cr_assert(json_object_object_get_ex(o, "usage", &u));
    cr_expect_eq(get_int(u, "prompt_tokens"), 12);
    cr_expect_eq(get_int(u, "completion_tokens"), 30);
    cr_expect_eq(get_int(o, "queued_ms"), 3);
    cr_expect_eq(get_int(o, "latency_ms"), 275);
    cr_expect_str_eq(get_str(o, "worker"), "host:123");
    json_object *m;
    cr_assert(json_object_object_get_ex(o, "meta", &m));
    cr_expect(json_object_equal(m, meta));
    /* No "\/" escaping, control characters escaped, UTF-8 passed through. */
    cr_expect_not_null(strstr(json, "back/slash"), "%s", json);
    cr_expect_not_null(strstr(json, "\"a/b\""), "%s", json);
    cr_expect_not_null(strstr(json, "\\\"world\\\"\\nline2\\ttab \\\\ "), "%s", json);
    cr_expect_not_null(strstr(json, "\\u0001"), "%s", json);
    cr_expect_not_null(strstr(json, "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80"), "%s", json);
    json_object_put(o);
    free(json);
    json_object_put(meta);
    pb_config_free(cfg);
}

Test(result, exact_invalid_result)
{
    pb_config *cfg = load_config("full.json");
    pb_result res = {
        .id = "j1",
        .status = PB_STATUS_INVALID,
        .source = PB_SOURCE_NONE,
        .error = "BAD_FIELD messages must contain a user message",
        .model = -1,
        .prompt_tokens = -1,
        .completion_tokens = -1,
        .queued_ms = -1,
        .latency_ms = 0,
        .worker = "h:1",
        .cache_age_s = -1,
    };
    size_t len;
    char *json = pb_job_result_to_json(&res, cfg, &len);
    cr_expect_str_eq(json, "{\"id\":\"j1\",\"status\":\"invalid\",\"error\":\"BAD_FIELD messages "
                           "must contain a user message\",\"attempts\":[],\"latency_ms\":0,"
                           "\"worker\":\"h:1\"}");
    cr_expect_eq(len, strlen(json));
    free(json);

    /* An unreadable id is null, and a result without worker omits it. */
    res.id = NULL;
    res.worker = NULL;
    json = pb_job_result_to_json(&res, cfg, &len);
    cr_expect_str_eq(json, "{\"id\":null,\"status\":\"invalid\",\"error\":\"BAD_FIELD messages "
                           "must contain a user message\",\"attempts\":[],\"latency_ms\":0}");
    free(json);
    pb_config_free(cfg);
}

Test(result, omission_rules)
{
    pb_config *cfg = load_config("full.json");
    pb_attempt att = {.model = 2, .try_no = 3, .outcome = "timeout", .elapsed_ms = 1000};
    pb_result res = {
        .id = "j2",
        .status = PB_STATUS_DEGRADED,
        .source = PB_SOURCE_STALE_CACHE,
        .content = "old answer",
        .model = 2,
        .attempts = &att,
        .n_attempts = 1,
        .prompt_tokens = -1,
        .completion_tokens = 9,
        .queued_ms = -1,
        .latency_ms = 1500,
        .worker = "h:2",
        .cache_age_s = 0,
    };
    size_t len;
    char *json = pb_job_result_to_json(&res, cfg, &len);
    json_object *o = parse_result(json, len);
    cr_expect_str_eq(get_str(o, "status"), "degraded");
    cr_expect_str_eq(get_str(o, "source"), "stale_cache");
    cr_expect_str_eq(get_str(o, "model"), "gpt-4o-mini");
    cr_expect_str_eq(get_str(o, "provider"), "openai");
    cr_expect_eq(get_int(o, "cache_age_s"), 0, "0 s old is still shown");
    cr_expect_not(has(o, "queued_ms"));
    cr_expect_not(has(o, "meta"));
    json_object *u;
    cr_assert(json_object_object_get_ex(o, "usage", &u));
    cr_expect_not(has(u, "prompt_tokens"));
    cr_expect_eq(get_int(u, "completion_tokens"), 9);
    json_object_put(o);
    free(json);

    res.prompt_tokens = 4;
    res.completion_tokens = -1;
    json = pb_job_result_to_json(&res, cfg, &len);
    cr_expect_not_null(strstr(json, "\"usage\":{\"prompt_tokens\":4}"), "%s", json);
    free(json);

    res.prompt_tokens = -1;
    res.model = -1;
    res.source = PB_SOURCE_DEGRADED;
    res.cache_age_s = -1;
    json = pb_job_result_to_json(&res, cfg, &len);
    o = parse_result(json, len);
    cr_expect_not(has(o, "usage"));
    cr_expect_not(has(o, "model"));
    cr_expect_not(has(o, "provider"));
    cr_expect_not(has(o, "cache_age_s"));
    cr_expect_str_eq(get_str(o, "source"), "degraded");
    json_object_put(o);
    free(json);
    pb_config_free(cfg);
}

Test(result, invalid_utf8_replaced)
{
    pb_config *cfg = load_config("full.json");
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"},
        {"cut \xe2\x9c", "cut \xef\xbf\xbd\xef\xbf\xbd"},
        {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"},
        {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"too big \xf4\x90\x80\x80", "too big \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"ok \xf4\x8f\xbf\xbf \x7f \x1f", "ok \xf4\x8f\xbf\xbf \x7f \x1f"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pb_result res = {.id = "u",
                         .content = cases[i].in,
                         .model = -1,
                         .source = PB_SOURCE_CACHE,
                         .prompt_tokens = -1,
                         .completion_tokens = -1,
                         .queued_ms = -1,
                         .cache_age_s = -1};
        size_t len;
        char *json = pb_job_result_to_json(&res, cfg, &len);
        json_object *o = parse_result(json, len);
        cr_expect_str_eq(get_str(o, "content"), cases[i].out, "case %zu: %s", i, json);
        json_object_put(o);
        free(json);
    }
    pb_config_free(cfg);
}

Test(result, meta_from_a_parsed_job)
{
    pb_config *cfg = load_config("full.json");
    size_t len;
    char *raw = load_job("good_full.json", &len);
    pb_request *req = must_parse(cfg, raw, len);
    pb_result res = {.id = req->id,
                     .content = "x",
                     .model = 0,
                     .meta = req->meta,
                     .prompt_tokens = -1,
                     .completion_tokens = -1,
                     .queued_ms = -1,
                     .cache_age_s = -1};
    char *json = pb_job_result_to_json(&res, cfg, &len);
    cr_expect_not_null(
        strstr(json, ",\"meta\":{\"user\":7,\"tags\":[\"a\",\"b\"],\"nested\":{\"x\":null}}}"),
        "%s", json);
    cr_expect_not_null(strstr(json, "\"id\":\"order-42:chat/7+a=b@x_y.z\""), "%s", json);
    free(json);
    pb_request_free(req);
    free(raw);
    pb_config_free(cfg);
}

Test(result, names)
{
    cr_expect_str_eq(pb_job_status_name(PB_STATUS_OK), "ok");
    cr_expect_str_eq(pb_job_status_name(PB_STATUS_DEGRADED), "degraded");
    cr_expect_str_eq(pb_job_status_name(PB_STATUS_INVALID), "invalid");
    cr_expect_str_eq(pb_job_source_name(PB_SOURCE_PRIMARY), "primary");
    cr_expect_str_eq(pb_job_source_name(PB_SOURCE_FALLBACK), "fallback");
    cr_expect_str_eq(pb_job_source_name(PB_SOURCE_CACHE), "cache");
    cr_expect_str_eq(pb_job_source_name(PB_SOURCE_SEMANTIC_CACHE), "semantic_cache");
    cr_expect_str_eq(pb_job_source_name(PB_SOURCE_STALE_CACHE), "stale_cache");
    cr_expect_str_eq(pb_job_source_name(PB_SOURCE_DEGRADED), "degraded");
    cr_expect_str_eq(pb_job_source_name(PB_SOURCE_NONE), "none");
}

/* ---------------------------------------------------------------- dead-letter entries */

/* Decodes standard base64 (as EVP_EncodeBlock writes it); *len set. Caller frees. */
static unsigned char *
unbase64(const char *b64, size_t *len)
{
    size_t n = strlen(b64);
    cr_assert_eq(n % 4, 0, "base64 length %zu", n);
    unsigned char *out = malloc(n / 4 * 3 + 1);
    int got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    cr_assert_geq(got, 0, "not base64: %s", b64);
    size_t pad = (n > 0 && b64[n - 1] == '=') + (n > 1 && b64[n - 2] == '=');
    *len = (size_t)got - pad;
    return out;
}

/* The dead entry of raw, parsed strictly; caller puts. */
static json_object *
dead_entry(const char *raw, size_t len, const char *id)
{
    char *s = pb_job_dead_entry(raw, len, len, id, "BAD_JSON job is not valid JSON", "host:7",
                                1718000000123LL);
    cr_assert_not_null(s);
    json_object *o = parse_result(s, strlen(s));
    free(s);
    return o;
}

Test(dead, a_text_job_is_kept_as_text)
{
    static const char *const raws[] = {"{\"id\": \"j1\", \"messages\": [", "",
                                       "h\xc3\xa9llo \"quoted\" \\ \xf0\x9f\x98\x80\n\x01"};
    for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
        json_object *o = dead_entry(raws[i], strlen(raws[i]), "j1");
        cr_expect_str_eq(get_str(o, "job"), raws[i], "raw %zu", i);
        cr_expect_not(has(o, "job_base64"), "raw %zu", i);
        json_object_put(o);
    }
}

/* A string literal with its length (it may hold NULs). */
#define RAW(s) (s), sizeof(s) - 1

Test(dead, invalid_utf8_or_a_nul_goes_as_base64)
{
    static const struct {
        const char *raw;
        size_t len;
    } cases[] = {
        {RAW("\xff\xfe{\"id\":1}")},
        {RAW("{\"content\": \"caf\xe9\"}")},      /* Latin-1, not UTF-8 */
        {RAW("{\"content\": \"\xed\xa0\x80\"}")}, /* a surrogate */
        {RAW("{\"a\":\0}")},                      /* a NUL byte */
        {RAW("\0")},
        {RAW("ab\xe2\x9c")}, /* cut in a sequence */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_object *o = dead_entry(cases[i].raw, cases[i].len, NULL);
        cr_expect_not(has(o, "job"), "case %zu", i);
        size_t len;
        unsigned char *back = unbase64(get_str(o, "job_base64"), &len);
        cr_expect_eq(len, cases[i].len, "case %zu", i);
        cr_expect_eq(memcmp(back, cases[i].raw, cases[i].len), 0, "case %zu", i);
        free(back);
        json_object_put(o);
    }
}

Test(dead, fields_and_an_absent_id)
{
    json_object *o = dead_entry("x", 1, "order-42");
    cr_expect_str_eq(get_str(o, "id"), "order-42");
    cr_expect_str_eq(get_str(o, "error"), "BAD_JSON job is not valid JSON");
    cr_expect_str_eq(get_str(o, "worker"), "host:7");
    cr_expect_eq(get_int(o, "at_ms"), 1718000000123LL);
    cr_expect_str_eq(get_str(o, "job"), "x");
    json_object_put(o);

    o = dead_entry("x", 1, NULL);
    cr_expect_not(has(o, "id"), "no id when none could be read");
    cr_expect_str_eq(get_str(o, "error"), "BAD_JSON job is not valid JSON");
    cr_expect_str_eq(get_str(o, "worker"), "host:7");
    cr_expect_eq(get_int(o, "at_ms"), 1718000000123LL);
    json_object_put(o);
}

/* ---------------------------------------------------------------- the OpenAI request */

#define PARAMS_JOB(params)                                                                         \
    "{\"id\": \"j\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"params\": "       \
    "{" params "}}"
#define TOOL                                                                                       \
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": "       \
    "\"d\", "                                                                                      \
    "\"parameters\": {\"type\": \"object\", \"properties\": {}}, \"strict\": true}}]"

/* Every OpenAI Chat Completions request field planb takes, each with a valid value. */
Test(request, every_accepted_openai_param_parses)
{
    pb_config *cfg = load_config("full.json");
    static const char *const ok[] = {
        PARAMS_JOB("\"frequency_penalty\": -2"),
        PARAMS_JOB("\"presence_penalty\": 1.5"),
        PARAMS_JOB("\"logit_bias\": {\"50256\": -100, \"13\": 5.5}"),
        PARAMS_JOB("\"logprobs\": true, \"top_logprobs\": 20"),
        PARAMS_JOB("\"max_completion_tokens\": 100"),
        PARAMS_JOB("\"max_tokens\": 1000000"),
        PARAMS_JOB("\"metadata\": {\"order\": \"42\"}"),
        PARAMS_JOB("\"modalities\": [\"text\"]"),
        PARAMS_JOB("\"n\": 1"),
        PARAMS_JOB(TOOL ", \"parallel_tool_calls\": false"),
        PARAMS_JOB("\"prediction\": {\"type\": \"content\", \"content\": \"draft\"}"),
        PARAMS_JOB("\"prompt_cache_key\": \"k1\""),
        PARAMS_JOB("\"reasoning_effort\": \"minimal\""),
        PARAMS_JOB("\"response_format\": {\"type\": \"text\"}"),
        PARAMS_JOB("\"response_format\": {\"type\": \"json_object\"}"),
        PARAMS_JOB("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": "
                   "\"a\", \"strict\": true, \"schema\": {\"type\": \"object\"}}}"),
        PARAMS_JOB("\"safety_identifier\": \"user-hash\""),
        PARAMS_JOB("\"seed\": -5"),
        PARAMS_JOB("\"service_tier\": \"flex\""),
        PARAMS_JOB("\"stop\": \"END\""),
        PARAMS_JOB("\"stop\": [\"a\", \"b\", \"c\", \" \"]"),
        PARAMS_JOB("\"store\": false"),
        PARAMS_JOB("\"stream\": false"),
        PARAMS_JOB("\"temperature\": 2"),
        PARAMS_JOB(TOOL ", \"tool_choice\": \"required\""),
        PARAMS_JOB(TOOL ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": "
                        "\"f\"}}"),
        PARAMS_JOB("\"top_p\": 0"),
        PARAMS_JOB("\"user\": \"u-1\""),
        PARAMS_JOB("\"verbosity\": \"low\""),
        PARAMS_JOB("\"anthropic\": {\"top_k\": 40, \"thinking\": {\"type\": \"enabled\", "
                   "\"budget_tokens\": 2048}}"),
        PARAMS_JOB("\"temperature\": null"),
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        pb_request *req = NULL;
        pb_error err = {0};
        cr_expect_eq(pb_job_parse(ok[i], strlen(ok[i]), cfg, &req, NULL, &err), PB_OK, "%s: %s",
                     ok[i], err.msg);
        pb_request_free(req);
    }
    pb_config_free(cfg);
}

/* Every field planb does not take, or a value out of range, is refused with a clear error. */
Test(request, refused_openai_params_name_the_field)
{
    pb_config *cfg = load_config("full.json");
    static const struct {
        const char *job;
        const char *msg;
    } bad[] = {
        {PARAMS_JOB("\"n\": 2"), "BAD_FIELD params.n must be 1: planb returns one answer per job "
                                 "(push one job per answer)"},
        {PARAMS_JOB("\"stream\": true"),
         "BAD_FIELD params.stream is a job field: put \"stream\": true at the job's top level "
         "(the answer then streams on planb:stream:<id>)"},
        {PARAMS_JOB("\"stream_options\": {\"include_usage\": true}"),
         "BAD_FIELD params.stream_options is planb's to set: a streamed job always asks for "
         "usage"},
        {PARAMS_JOB("\"audio\": {\"voice\": \"alloy\", \"format\": \"wav\"}"),
         "BAD_FIELD params.audio planb returns text answers (no audio output)"},
        {PARAMS_JOB("\"modalities\": [\"text\", \"audio\"]"),
         "BAD_FIELD params.modalities: only [\"text\"] is supported (planb returns text "
         "answers)"},
        {PARAMS_JOB("\"functions\": []"), "BAD_FIELD params.functions is deprecated: use tools"},
        {PARAMS_JOB("\"function_call\": \"auto\""),
         "BAD_FIELD params.function_call is deprecated: use tool_choice"},
        {PARAMS_JOB("\"web_search_options\": {}"),
         "BAD_FIELD params.web_search_options is not supported: planb calls no search tool"},
        {PARAMS_JOB("\"frequency_penalty\": 2.5"),
         "BAD_FIELD params.frequency_penalty must be a number from -2 to 2"},
        {PARAMS_JOB("\"top_logprobs\": 3"), "BAD_FIELD params.top_logprobs needs params.logprobs: "
                                            "true"},
        {PARAMS_JOB("\"max_tokens\": 5, \"max_completion_tokens\": 5"),
         "BAD_FIELD params.max_tokens and params.max_completion_tokens: give one of them"},
        {PARAMS_JOB("\"reasoning_effort\": \"max\""),
         "BAD_FIELD params.reasoning_effort must be one of none minimal low medium high"},
        {PARAMS_JOB("\"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]"),
         "BAD_FIELD params.stop must be a string or an array of 1..4 strings of 1..256 bytes"},
        {PARAMS_JOB("\"tool_choice\": \"auto\""),
         "BAD_FIELD params.tool_choice is only allowed when params.tools is given"},
        {PARAMS_JOB(TOOL ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": "
                         "\"g\"}}"),
         "BAD_FIELD params.tool_choice names a function that is not in params.tools"},
        {PARAMS_JOB(
             "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"bad name\"}}]"),
         "BAD_FIELD params.tools[0].function.name must be 1..64 characters [A-Za-z0-9_-]"},
        {PARAMS_JOB("\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", "
                    "\"parameters\": {\"type\": \"string\"}}}]"),
         "BAD_FIELD params.tools[0].function.parameters must be a JSON Schema object with "
         "\"type\": \"object\""},
        {PARAMS_JOB("\"tools\": [{\"type\": \"custom\", \"custom\": {\"name\": \"f\"}}]"),
         "BAD_FIELD params.tools[0].type must be \"function\" (custom tools are not "
         "supported)"},
        {PARAMS_JOB("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {}}"),
         "BAD_FIELD params.response_format.json_schema.name must be 1..64 characters "
         "[A-Za-z0-9_-]"},
        {PARAMS_JOB("\"metadata\": {\"k\": 5}"), "BAD_FIELD params.metadata keys must be 1..64 "
                                                 "bytes and values strings of at most 512 bytes"},
        {PARAMS_JOB("\"anthropic\": {\"top_p\": 1}"),
         "BAD_FIELD params.anthropic.top_p is not a known field"},
        {PARAMS_JOB("\"frobnicate\": 1"),
         "BAD_FIELD params.frobnicate is not an OpenAI Chat Completions parameter"},
        {"{\"id\": \"j\", \"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", "
         "\"content\": \"x\"}]}",
         "BAD_FIELD model is not a job field: name configured models in \"models\", or let the "
         "route choose"},
        {"{\"id\": \"j\", \"tools\": [], \"messages\": [{\"role\": \"user\", \"content\": "
         "\"x\"}]}",
         "BAD_FIELD tools is not a job field: OpenAI request parameters go in \"params\""},
        {"{\"id\": \"j\", \"temperature\": 1, \"messages\": [{\"role\": \"user\", "
         "\"content\": \"x\"}]}",
         "BAD_FIELD temperature is not a job field: OpenAI request parameters go in \"params\""},
        {"{\"id\": \"j\", \"stream\": 1, \"messages\": [{\"role\": \"user\", \"content\": "
         "\"x\"}]}",
         "BAD_FIELD stream must be true or false"},
        {"{\"id\": \"j\", \"future\": 1, \"messages\": [{\"role\": \"user\", \"content\": "
         "\"x\"}]}",
         "BAD_FIELD future is not a job field"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        expect_bad(cfg, bad[i].job, strlen(bad[i].job), PB_JOB_BAD_FIELD, bad[i].msg, "j");
    pb_config_free(cfg);
}

#define MSGS_JOB(msgs) "{\"id\": \"j\", \"messages\": [" msgs "]}"
#define CALL(id)                                                                                   \
    "{\"id\": \"" id "\", \"type\": \"function\", \"function\": {\"name\": \"f\", "                \
    "\"arguments\": \"{\\\"a\\\": 1}\"}}"

Test(request, message_shapes_parse_into_the_canonical_request)
{
    pb_config *cfg = load_config("full.json");
    const char *raw = MSGS_JOB(
        "{\"role\": \"developer\", \"content\": [{\"type\": \"text\", \"text\": \"Be "
        "brief.\"}]},"
        "{\"role\": \"user\", \"name\": \"ann\", \"content\": [{\"type\": \"text\", \"text\": "
        "\"a\"}, {\"type\": \"image_url\", \"image_url\": {\"url\": "
        "\"data:image/png;base64,AAAA\", \"detail\": \"high\"}}, {\"type\": \"text\", "
        "\"text\": "
        "\"b\"}]},"
        "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [" CALL("c1") "," CALL(
            "c2") "]},"
                  "{\"role\": \"tool\", \"tool_call_id\": \"c2\", \"content\": \"two\"},"
                  "{\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"one\"}");
    pb_request *req = NULL;
    pb_error err = {0};
    cr_assert_eq(pb_job_parse(raw, strlen(raw), cfg, &req, NULL, &err), PB_OK, "%s", err.msg);
    cr_assert_eq(req->n_messages, 5);
    cr_expect_eq(req->messages[0].role, PB_ROLE_DEVELOPER);
    cr_expect_str_eq(req->messages[0].content, "Be brief.");
    cr_expect_str_eq(req->messages[1].content, "a\nb", "text parts joined");
    cr_expect_str_eq(req->messages[1].name, "ann");
    cr_expect_not_null(req->messages[1].parts);
    cr_expect_str_eq(req->messages[2].content, "");
    cr_expect_eq(json_object_array_length(req->messages[2].tool_calls), 2);
    cr_expect_str_eq(req->messages[3].tool_call_id, "c2");
    cr_expect_eq(req->needs, PB_CAP_TOOLS | PB_CAP_VISION);
    pb_request_free(req);
    pb_config_free(cfg);
}

Test(request, malformed_messages_are_refused_by_field)
{
    pb_config *cfg = load_config("full.json");
    static const struct {
        const char *job;
        const char *msg;
    } bad[] = {
        {MSGS_JOB("{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"tool\", "
                  "\"tool_call_id\": \"c1\", \"content\": \"r\"}"),
         "BAD_FIELD messages[1]: a tool message must answer a tool_call_id of the assistant "
         "message before it"},
        {MSGS_JOB("{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", "
                  "\"tool_calls\": [" CALL("c1") "]}, {\"role\": \"user\", \"content\": \"y\"}"),
         "BAD_FIELD messages[1]: an assistant message with tool_calls must be followed by a "
         "tool "
         "message for each tool_call_id"},
        {MSGS_JOB("{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", "
                  "\"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\": "
                  "{\"name\": \"f\", \"arguments\": \"{oops\"}}]}"),
         "BAD_FIELD messages[1].tool_calls[0].function.arguments must be a string holding a "
         "JSON "
         "object"},
        {MSGS_JOB("{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": "
                  "{\"url\": \"http://example.com/a.png\"}}]}"),
         "BAD_FIELD messages[0].content[0].image_url.url must be an https URL (at most 8192 "
         "bytes) or a data:image/(png|jpeg|gif|webp);base64 URL"},
        {MSGS_JOB("{\"role\": \"user\", \"content\": [{\"type\": \"input_audio\"}]}"),
         "BAD_FIELD messages[0].content[0].type \"input_audio\" is not supported (text, "
         "image_url)"},
        {MSGS_JOB("{\"role\": \"system\", \"content\": [{\"type\": \"image_url\", \"image_url\": "
                  "{\"url\": \"https://a.b/c\"}}]}, {\"role\": \"user\", \"content\": \"x\"}"),
         "BAD_FIELD messages[0].content[0]: image_url parts are allowed in user messages only"},
        {MSGS_JOB("{\"role\": \"user\", \"content\": \"x\", \"tool_calls\": []}"),
         "BAD_FIELD messages[0].tool_calls is allowed on assistant messages only"},
        {MSGS_JOB("{\"role\": \"user\", \"content\": \"x\", \"weight\": 1}"),
         "BAD_FIELD messages[0].weight is not a known field"},
        {MSGS_JOB("{\"role\": \"function\", \"content\": \"x\"}"),
         "BAD_FIELD messages[0].role must be one of system, developer, user, assistant, tool"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        expect_bad(cfg, bad[i].job, strlen(bad[i].job), PB_JOB_BAD_FIELD, bad[i].msg, "j");
    pb_config_free(cfg);
}

/* Bounds on sizes from outside: parts per message, tools. */
Test(request, sizes_are_bounded)
{
    pb_config *cfg = load_config("full.json");
    char *raw = pb_xmalloc(65536);
    size_t n = (size_t)snprintf(raw, 65536,
                                "{\"id\": \"j\", \"messages\": [{\"role\": \"user\", "
                                "\"content\": [");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(raw + n, 65536 - n, "%s{\"type\": \"text\", \"text\": \"t\"}",
                              i ? "," : "");
    n += (size_t)snprintf(raw + n, 65536 - n, "]}]}");
    expect_bad(cfg, raw, n, PB_JOB_TOO_LARGE,
               "TOO_LARGE messages[0].content has 65 parts, limit 64", "j");
    n = (size_t)snprintf(raw, 65536,
                         "{\"id\": \"j\", \"messages\": [{\"role\": \"user\", "
                         "\"content\": \"x\"}], \"params\": {\"tools\": [");
    for (int i = 0; i < 129; i++)
        n += (size_t)snprintf(raw + n, 65536 - n,
                              "%s{\"type\": \"function\", \"function\": {\"name\": \"f%d\"}}",
                              i ? "," : "", i);
    n += (size_t)snprintf(raw + n, 65536 - n, "]}}");
    expect_bad(cfg, raw, n, PB_JOB_TOO_LARGE, "TOO_LARGE params.tools has 129 tools, limit 128",
               "j");
    free(raw);
    pb_config_free(cfg);
}

/* The tool and schema fixtures the fuzzer starts from are valid jobs. */
Test(request, tool_and_schema_fixtures_parse)
{
    pb_config *cfg = load_config("full.json");
    const char *names[] = {"good_tools.json", "good_json_schema.json"};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *raw = load_job(names[i], &len);
        pb_request *req = NULL;
        pb_error err = {0};
        cr_assert_eq(pb_job_parse(raw, len, cfg, &req, NULL, &err), PB_OK, "%s: %s", names[i],
                     err.msg);
        free(raw);
        pb_request_free(req);
    }
    pb_config_free(cfg);
}

/* Tool-call arguments: strict JSON text of one object, checked without building a tree. */
Test(request, arguments_json_check)
{
    static const char *const good[] = {"{}", " {\"a\": [1, -2.5e3, true, false, null]} ",
                                       "{\"s\": \"\\u00e9\\n\\\"\", \"o\": {\"p\": {}}}"};
    static const char *const bad[] = {
        "",      "[]",         "{",       "{\"a\":}",         "{\"a\" 1}",       "{\"a\":1,}",
        "{} {}", "{\"a\":01}", "{'a':1}", "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":tru}"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        cr_expect(pb_request_is_json_object(good[i], strlen(good[i])), "%s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_expect(!pb_request_is_json_object(bad[i], strlen(bad[i])), "%s", bad[i]);
    char deep[512] = {0};
    for (int i = 0; i < 40; i++)
        strcat(deep, "{\"a\":");
    strcat(deep, "1");
    for (int i = 0; i < 40; i++)
        strcat(deep, "}");
    cr_expect(!pb_request_is_json_object(deep, strlen(deep)), "nesting is bounded");
}

Test(job, stream_is_a_job_field)
{
    pb_config *cfg = load_config("full.json");
    const char *job = "{\"id\": \"s\", \"stream\": true, \"messages\": [{\"role\": \"user\", "
                      "\"content\": \"x\"}]}";
    pb_request *req = NULL;
    char *bad_id = NULL;
    pb_error err = {0};
    cr_assert_eq(pb_job_parse(job, strlen(job), cfg, &req, &bad_id, &err), PB_OK, "%s", err.msg);
    cr_expect(req->stream);
    pb_request_free(req);
    const char *plain = "{\"id\": \"p\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}";
    cr_assert_eq(pb_job_parse(plain, strlen(plain), cfg, &req, &bad_id, &err), PB_OK);
    cr_expect(!req->stream, "not streamed unless asked");
    pb_request_free(req);
    pb_config_free(cfg);
}
/* traceparent and tracestate: kept when valid; a malformed traceparent is ignored and flagged,
 * never a refused job; a tracestate goes only with a valid traceparent. */
Test(job, trace_context_fields)
{
    pb_config *cfg = load_config("full.json");
    pb_request *req = NULL;
    char *bad_id = NULL;
    pb_error err = {0};
    size_t len;
    char *raw = load_job("good_traceparent.json", &len);
    cr_assert_eq(pb_job_parse(raw, len, cfg, &req, &bad_id, &err), PB_OK, "%s", err.msg);
    cr_expect(req->has_trace && req->parent_trace.sampled && !req->bad_traceparent);
    cr_expect_eq(req->parent_trace.trace_id[0], 0x4b);
    cr_expect_str_eq(req->tracestate, "congo=t61rcWkgMzE");
    pb_request_free(req);
    free(raw);
    raw = load_job("good_bad_traceparent.json", &len);
    cr_assert_eq(pb_job_parse(raw, len, cfg, &req, &bad_id, &err), PB_OK, "%s", err.msg);
    cr_expect(!req->has_trace && req->bad_traceparent && req->tracestate == NULL);
    pb_request_free(req);
    free(raw);
    const char *no_parent = "{\"id\": \"t\", \"tracestate\": \"a=b\", \"messages\": "
                            "[{\"role\": \"user\", \"content\": \"x\"}]}";
    cr_assert_eq(pb_job_parse(no_parent, strlen(no_parent), cfg, &req, &bad_id, &err), PB_OK);
    cr_expect(!req->has_trace && !req->bad_traceparent && req->tracestate == NULL);
    pb_request_free(req);
    pb_config_free(cfg);
}

/* An oversized job of limit + 1 bytes: head, then padding inside a string, then "}". */
static char *
oversized(size_t limit, const char *head)
{
    char *big = malloc(limit + 2);
    size_t h = strlen(head);
    memcpy(big, head, h);
    memset(big + h, 'x', limit + 1 - h);
    big[limit - 1] = '"';
    big[limit] = '}';
    big[limit + 1] = '\0';
    return big;
}

Test(job, oversized_job_keeps_its_id_from_the_head)
{
    pb_config *cfg = load_config("full.json");
    size_t limit = cfg->limits.job_max_bytes;
    const char *msg = "TOO_LARGE job is 262145 bytes, limit 262144";
    static const struct {
        const char *head;
        const char *id; /* NULL: not readable */
    } cases[] = {
        {"{\"id\":\"big-1\",\"messages\":[{\"content\":\"", "big-1"},
        {"{ \"reply\" : true , \"meta\": {\"id\": \"inner\"}, \"id\" : \"outer\", \"pad\":\"",
         "outer"},
        {"{\"messages\":[{\"id\":\"nested\",\"content\":\"", NULL},
        {"{\"id\":\"bad id\",\"pad\":\"", NULL},
        {"{\"id\":\"esc\\u0041\",\"pad\":\"", NULL},
        {"{\"i\\u0064\":\"x\",\"pad\":\"", NULL},
        {"[\"id\",\"pad\",\"", NULL},
        {"{\"pad\":\"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *big = oversized(limit, cases[i].head);
        expect_bad(cfg, big, limit + 1, PB_JOB_TOO_LARGE, msg, cases[i].id);
        free(big);
    }
    pb_config_free(cfg);
}

Test(job, oversized_dead_entry_keeps_head_length_and_hash)
{
    size_t len = 10000;
    char *raw = malloc(len);
    memset(raw, 'a', len);
    memcpy(raw + 4095, "\xc3\xa9", 2); /* a 4096-byte cut would split this character */
    char *e = pb_job_dead_entry(raw, len, 1024, "big-2", "TOO_LARGE x", "h:1", 7);
    json_object *o = json_tokener_parse(e);
    cr_assert_not_null(o, "%s", e);
    json_object *v;
    cr_expect(!json_object_object_get_ex(o, "job", &v));
    cr_assert(json_object_object_get_ex(o, "job_head", &v));
    cr_expect_eq(json_object_get_string_len(v), 4095, "cut before the character");
    cr_assert(json_object_object_get_ex(o, "job_bytes", &v));
    cr_expect_eq(json_object_get_int64(v), 10000);
    cr_assert(json_object_object_get_ex(o, "job_sha256", &v));
    cr_expect_eq(json_object_get_string_len(v), 64);
    json_object_put(o);
    free(e);
    /* Within keep_max the whole job is kept, as before. */
    e = pb_job_dead_entry(raw, 100, 1024, NULL, "BAD_JSON x", "h:1", 7);
    o = json_tokener_parse(e);
    cr_expect(json_object_object_get_ex(o, "job", &v));
    cr_expect(!json_object_object_get_ex(o, "job_sha256", &v));
    json_object_put(o);
    free(e);
    free(raw);
}

Test(job, an_invalid_job_that_asks_to_stream_is_recognised)
{
    pb_config *cfg = load_config("full.json");
    const char *yes = "{\"id\":\"a\",\"stream\":true,\"messages\":\"not a list\"}";
    const char *no[] = {"{\"id\":\"a\",\"stream\":false}",
                        "{\"id\":\"a\",\"stream\":\"true\"}",
                        "{\"id\":\"a\"}",
                        "[{\"stream\":true}]",
                        "{\"stream\":true",
                        "null"};
    cr_expect(pb_job_asks_stream(yes, strlen(yes), cfg));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_expect(!pb_job_asks_stream(no[i], strlen(no[i]), cfg), "%s", no[i]);
    size_t big = cfg->limits.job_max_bytes + 1;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, yes, strlen(yes));
    huge[big] = '\0';
    cr_expect(!pb_job_asks_stream(huge, big, cfg), "past job_max_bytes it is never tokenized");
    free(huge);
    pb_config_free(cfg);
}

#define DELAY_MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

Test(job, delay_fields_are_parsed_and_checked)
{
    pb_config *cfg = load_config("full.json");
    const char *raw = "{\"id\":\"j\"," DELAY_MSGS ",\"run_at_ms\":1800000000000}";
    pb_request *req = must_parse(cfg, raw, strlen(raw));
    cr_expect_eq(req->run_at_ms, 1800000000000LL);
    cr_expect_eq(req->delay_ms, -1);
    pb_request_free(req);
    raw = "{\"id\":\"j\"," DELAY_MSGS ",\"delay_ms\":0,\"submitted_at_ms\":5}";
    req = must_parse(cfg, raw, strlen(raw));
    cr_expect_eq(req->run_at_ms, 0);
    cr_expect_eq(req->delay_ms, 0);
    pb_request_free(req);
    raw = "{\"id\":\"j\"," DELAY_MSGS ",\"delay_ms\":31536000000}";
    req = must_parse(cfg, raw, strlen(raw));
    cr_expect_eq(req->delay_ms, 31536000000LL, "a year is the limit, inclusive");
    pb_request_free(req);
    raw = "{\"id\":\"j\"," DELAY_MSGS "}";
    req = must_parse(cfg, raw, strlen(raw));
    cr_expect_eq(req->run_at_ms, 0, "absent: run now");
    cr_expect_eq(req->delay_ms, -1);
    pb_request_free(req);

    const char *both = "BAD_FIELD run_at_ms and delay_ms exclude each other";
    const char *bad_at = "BAD_FIELD run_at_ms must be an integer from 0 to 9007199254740991 "
                         "(epoch ms)";
    const char *bad_delay = "BAD_FIELD delay_ms must be an integer from 0 to 31536000000";
    expect_bad_str(cfg, "{\"id\":\"j\"," DELAY_MSGS ",\"run_at_ms\":1,\"delay_ms\":1}",
                   PB_JOB_BAD_FIELD, both);
    expect_bad_str(cfg, "{\"id\":\"j\"," DELAY_MSGS ",\"run_at_ms\":-1}", PB_JOB_BAD_FIELD, bad_at);
    expect_bad_str(cfg, "{\"id\":\"j\"," DELAY_MSGS ",\"run_at_ms\":1.5}", PB_JOB_BAD_FIELD,
                   bad_at);
    expect_bad_str(cfg, "{\"id\":\"j\"," DELAY_MSGS ",\"run_at_ms\":\"1800000000000\"}",
                   PB_JOB_BAD_FIELD, bad_at);
    expect_bad_str(cfg, "{\"id\":\"j\"," DELAY_MSGS ",\"run_at_ms\":9007199254740992}",
                   PB_JOB_BAD_FIELD, bad_at);
    expect_bad_str(cfg, "{\"id\":\"j\"," DELAY_MSGS ",\"delay_ms\":31536000001}", PB_JOB_BAD_FIELD,
                   bad_delay);
    expect_bad_str(cfg, "{\"id\":\"j\"," DELAY_MSGS ",\"delay_ms\":-5}", PB_JOB_BAD_FIELD,
                   bad_delay);
    expect_bad_str(cfg, "{\"id\":\"j\"," DELAY_MSGS ",\"delay_ms\":true}", PB_JOB_BAD_FIELD,
                   bad_delay);
    pb_config_free(cfg);
}

Test(job, queued_ms_does_not_count_the_delay)
{
    pb_request req = {.submitted_at_ms = 1000, .run_at_ms = 0};
    cr_expect_eq(pb_job_queued_ms(&req, 1500), 500, "plain job: push to claim");
    req.run_at_ms = 3000;
    cr_expect_eq(pb_job_queued_ms(&req, 3040), 40, "delayed: from run_at to the claim");
    cr_expect_eq(pb_job_queued_ms(&req, 2900), 0, "never negative");
    req.run_at_ms = 500;
    cr_expect_eq(pb_job_queued_ms(&req, 1500), 500, "run_at in the past: from the push");
    req.submitted_at_ms = 0;
    cr_expect_eq(pb_job_queued_ms(&req, 1500), 1000, "run_at alone");
    req.run_at_ms = 0;
    cr_expect_eq(pb_job_queued_ms(&req, 1500), -1, "neither: absent");
    cr_expect_eq(pb_job_queued_ms(NULL, 1500), -1);
}
