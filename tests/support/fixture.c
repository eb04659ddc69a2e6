/* fixture.c -- loads provider reply fixtures and runs an adapter on them, for unit tests.
 *
 * Shared by test_provider_openai.c and test_provider_anthropic.c so both
 * dialects are checked the same way. */
#include "fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

th_fixture
th_fixture_load(const char *dialect, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/fixtures/replies/%s/%s", PB_SRC_DIR, dialect, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    th_fixture fx = {malloc(n > 0 ? (size_t)n : 1), (size_t)n};
    cr_assert_eq(fread(fx.data, 1, fx.len, f), fx.len);
    fclose(f);
    return fx;
}

int
th_fixture_parse(const pb_provider_ops *ops, const char *name, pb_completion *out, pb_error *err)
{
    th_fixture fx = th_fixture_load(ops->type_name, name);
    int rc = ops->parse_response(fx.data, fx.len, NULL, out, err);
    free(fx.data);
    return rc;
}

pb_class
th_fixture_classify(const pb_provider_ops *ops, long status, const char *name)
{
    th_fixture fx = th_fixture_load(ops->type_name, name);
    pb_class cls = ops->classify(status, fx.data, fx.len);
    free(fx.data);
    return cls;
}

void
th_expect_bad_reply(const pb_provider_ops *ops, const char *name, const char *why)
{
    pb_completion c;
    pb_error err = {0};
    cr_expect_eq(th_fixture_parse(ops, name, &c, &err), PB_ERR, "%s parsed", name);
    cr_expect_null(c.content, "%s", name);
    cr_expect_eq(err.code, PB_PROVIDER_BAD_REPLY, "%s", name);
    cr_expect(strncmp(err.msg, "BAD_REPLY ", 10) == 0, "%s: %s", name, err.msg);
    if (why != NULL)
        cr_expect(strstr(err.msg, why) != NULL, "%s: %s lacks %s", name, err.msg, why);
}

const char *
th_header(const pb_http_request *r, const char *name)
{
    size_t n = strlen(name);
    for (char **h = r->headers; *h; h++)
        if (strncmp(*h, name, n) == 0 && (*h)[n] == ':' && (*h)[n + 1] == ' ')
            return *h + n + 2;
    return NULL;
}

/* o at a path of keys and [indices], e.g. "contents[0].parts[1].text"; NULL when absent. */
json_object *
th_at(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok(buf, "."); tok != NULL && o != NULL; tok = strtok(NULL, ".")) {
        char *br = strchr(tok, '[');
        if (br != NULL)
            *br = '\0';
        if (*tok && !json_object_object_get_ex(o, tok, &o))
            return NULL;
        while (br != NULL && o != NULL) {
            size_t i = strtoul(br + 1, &br, 10);
            o = json_object_is_type(o, json_type_array) && i < json_object_array_length(o)
                    ? json_object_array_get_idx(o, i)
                    : NULL;
            br = strchr(br, '[');
        }
    }
    return o;
}

const char *
th_at_str(json_object *o, const char *path)
{
    json_object *v = th_at(o, path);
    return v != NULL ? json_object_get_string(v) : "(absent)";
}
