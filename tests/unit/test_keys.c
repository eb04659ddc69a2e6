/* test_keys.c -- the Redis key and channel names are the docs/redis.md contract: pin them, and the
 * worker id that several of them embed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    expect_name(pb_key_stream("planb", "job-1"), "planb:stream:job-1");
    expect_name(pb_key_stream_run("planb", "job-1"), "planb:streamrun:job-1");
    expect_name(pb_key_cache("planb", "ab12"), "planb:cache:ab12");
    expect_name(pb_key_dead("planb"), "planb:dead");
    expect_name(pb_key_stats("planb"), "planb:stats");
    expect_name(pb_key_breaker("planb", "gpt-4o"), "planb:breaker:gpt-4o");
    expect_name(pb_key_paused("planb"), "planb:paused");
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

Test(keys, worker_id_is_host_colon_pid)
{
    char host[64], want[PB_KEY_WORKER_ID_MAX], got[PB_KEY_WORKER_ID_MAX];
    cr_assert_eq(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    snprintf(want, sizeof(want), "%s:%d", host, 4242);
    pb_key_worker_id(got, sizeof(got), 4242);
    cr_expect_str_eq(got, want);
    snprintf(want, sizeof(want), "%s:%d", host, (int)getpid());
    pb_key_worker_id(got, sizeof(got), getpid());
    cr_expect_str_eq(got, want);
}

Test(keys, worker_id_is_cut_to_the_buffer)
{
    char buf[6];
    memset(buf, 'x', sizeof(buf));
    pb_key_worker_id(buf, 4, 4242);
    cr_expect_eq(strlen(buf), 3, "NUL-terminated within size");
    cr_expect_eq(buf[4], 'x', "nothing written past size");
}
