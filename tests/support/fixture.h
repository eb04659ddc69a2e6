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

#endif
