/* fixture.h -- provider reply fixtures for the unit tests of the dialect adapters (no network).
 *
 * A fixture is tests/fixtures/replies/<dialect>/<name>, loaded into a buffer of
 * exactly its size (no NUL after it) so an adapter reading past len shows up
 * under ASan. The dialect directory is the adapter's type_name. */
#ifndef PLANB_TEST_FIXTURE_H
#define PLANB_TEST_FIXTURE_H

#include <stddef.h>

#include "planb/provider.h"

typedef struct th_fixture {
    char *data; /* exactly len bytes, not NUL-terminated (caller frees) */
    size_t len; /* file size */
} th_fixture;

/* Loads tests/fixtures/replies/<dialect>/<name>; asserts it can be read. */
th_fixture th_fixture_load(const char *dialect, const char *name);
/* ops->parse_response on fixture name; returns its PB_OK/PB_ERR and fills out/err. */
int th_fixture_parse(const pb_provider_ops *ops, const char *name, pb_completion *out,
                     pb_error *err);
/* ops->classify on fixture name as the body of an HTTP status reply. */
pb_class th_fixture_classify(const pb_provider_ops *ops, long status, const char *name);
/* Expects fixture name to be refused as PB_PROVIDER_BAD_REPLY with an error "BAD_REPLY ..."
 * that mentions why (unless why is NULL), and no content. */
void th_expect_bad_reply(const pb_provider_ops *ops, const char *name, const char *why);
/* The value of header name ("Name: value" lines of r, name matched exactly), or NULL. */
const char *th_header(const pb_http_request *r, const char *name);
/* o at a path of keys and [indices], e.g. "contents[0].parts[1].text"; NULL when absent. */
json_object *th_at(json_object *o, const char *path);
/* th_at's string, "(absent)" when absent. */
const char *th_at_str(json_object *o, const char *path);

#endif
