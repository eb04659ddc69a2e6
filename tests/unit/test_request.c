/* test_request.c -- the one role table (its names are part of the cache key) and the
 * request destructor (under ASan a leak of anything a request owns fails the test). */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "planb/request.h"

Test(request, role_names)
{
    cr_expect_str_eq(pb_request_role_name(PB_ROLE_SYSTEM), "system");
    cr_expect_str_eq(pb_request_role_name(PB_ROLE_USER), "user");
    cr_expect_str_eq(pb_request_role_name(PB_ROLE_ASSISTANT), "assistant");
    cr_expect_str_eq(pb_request_role_name(PB_ROLE_DEVELOPER), "developer");
    cr_expect_str_eq(pb_request_role_name(PB_ROLE_TOOL), "tool");
}

Test(request, role_names_round_trip)
{
    for (int r = 0; r < PB_ROLE_COUNT; r++)
        cr_expect_eq(pb_request_role_parse(pb_request_role_name((pb_role)r)), r, "role %d", r);
}

Test(request, unknown_role_is_minus_one)
{
    static const char *const unknown[] = {"", "bot", "function", "users", "use", "system "};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        cr_expect_eq(pb_request_role_parse(unknown[i]), -1, "\"%s\"", unknown[i]);
}

Test(request, free_accepts_null)
{
    pb_request_free(NULL);
}

Test(request, free_releases_everything_it_owns)
{
    pb_request *req = calloc(1, sizeof(*req));
    req->id = strdup("job-1");
    req->n_messages = 2;
    req->messages = calloc(2, sizeof(pb_message));
    req->messages[0] = (pb_message){.role = PB_ROLE_SYSTEM, .content = strdup("be brief")};
    req->messages[1] = (pb_message){.role = PB_ROLE_USER, .content = strdup("hi")};
    req->tenant = strdup("acme");
    req->n_models = 1;
    req->models = calloc(1, sizeof(int));
    req->max_tokens = -1;
    req->temperature = NAN;
    req->top_p = NAN;
    req->meta = json_tokener_parse("{\"user\": 7, \"tags\": [\"a\"]}");
    cr_assert_not_null(req->meta);
    pb_request_free(req);

    /* Optional parts absent. */
    req = calloc(1, sizeof(*req));
    req->id = strdup("job-2");
    pb_request_free(req);
}
