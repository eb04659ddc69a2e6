/* test_keys.c -- the Redis key and channel names are the README contract: pin them. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "planb/keys.h"

/* Compares a new name with want and frees it. */
static void
expect_name(char *got, const char *want)
{
    cr_expect_str_eq(got, want);
    free(got);
}

Test(keys, names_with_default_prefix)
{
    expect_name(pb_key_queue("planb", "default"), "planb:q:default");
    expect_name(pb_key_inflight("planb", "host:42"), "planb:inflight:host:42");
    expect_name(pb_key_workers("planb"), "planb:workers");
    expect_name(pb_key_result("planb", "job-1"), "planb:result:job-1");
    expect_name(pb_key_reply("planb", "job-1"), "planb:reply:job-1");
    expect_name(pb_key_cache("planb", "ab12"), "planb:cache:ab12");
    expect_name(pb_key_dead("planb"), "planb:dead");
    expect_name(pb_key_stats("planb"), "planb:stats");
    expect_name(pb_key_breaker("planb", "gpt-4o"), "planb:breaker:gpt-4o");
    expect_name(pb_key_channel_results("planb"), "planb:results");
    expect_name(pb_key_channel_stats("planb"), "planb:stats");
    expect_name(pb_key_channel_alerts("planb"), "planb:alerts");
}

Test(keys, custom_prefix)
{
    expect_name(pb_key_queue("app.prod:llm", "bulk"), "app.prod:llm:q:bulk");
    expect_name(pb_key_dead("t-1"), "t-1:dead");
    expect_name(pb_key_result("p", "a/b+c=d@e"), "p:result:a/b+c=d@e");
}
