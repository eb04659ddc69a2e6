/* test_stream_scripts.c -- stream_add.lua and finish.lua on one streamed job run twice.
 *
 * A real redis-server runs the embedded scripts; the test plays two live runs of one job
 * (their workers both in planb:workers), the case a worker woken past its lease makes. The
 * run that owns the stream may be one whose claim was handed back, so nothing would reap it
 * if it died: the other run's finish must store the one result, not leave the job to it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "planb/scripts.h"

static th_proc redis_p;
static redisContext *rc;

static void
setup(void)
{
    cr_assert_eq(th_redis_start(&redis_p, NULL), 0, "redis-server did not start");
    rc = th_redis(redis_p.port);
}

static void
teardown(void)
{
    if (rc)
        redisFree(rc);
    th_proc_stop(&redis_p, 5000);
}

TestSuite(stream_scripts, .init = setup, .fini = teardown, .timeout = 60);

static long long
eval(const char *script, int argc, const char **argv)
{
    const pb_lua_source *src = pb_scripts_find(script);
    const char *full[32] = {"EVAL", src->body};
    for (int i = 0; i < argc; i++)
        full[i + 2] = argv[i];
    redisReply *r = redisCommandArgv(rc, argc + 2, full, NULL);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "%s: %s", script,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "not an integer");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* One entry of run `run` (its seq-th), as src/stream.c sends it. */
static long long
add_entry(const char *run, const char *seq, const char *type, const char *text)
{
    const char *argv[] = {"4",
                          "planb:stream:j1",
                          "planb:streamrun:j1",
                          "planb:result:j1",
                          "planb:workers",
                          run,
                          seq,
                          "1000",
                          "300",
                          "1",
                          "type",
                          type,
                          "text",
                          text};
    return eval("stream_add", 14, argv);
}

/* finish.lua for run `run`, with the result JSON. */
static long long
finish(const char *inflight, const char *run, const char *result)
{
    const char *argv[] = {"11",
                          inflight,
                          "planb:result:j1",
                          "planb:reply:j1",
                          "planb:stats",
                          "planb:dead",
                          "planb:events",
                          "planb:deliveries",
                          "planb:suspect:x",
                          "planb:stats:m:1",
                          "planb:stream:j1",
                          "planb:streamrun:j1",
                          "{\"id\":\"j1\",\"stream\":true}",
                          result,
                          "3600",
                          "0",
                          "planb:results",
                          "",
                          "0",
                          "100",
                          "1000",
                          "300",
                          run,
                          "jobs",
                          "1"};
    return eval("finish", 25, argv);
}

static long long
stream_len(void)
{
    redisReply *r = redisCommand(rc, "XLEN planb:stream:j1");
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

Test(stream_scripts, a_run_that_does_not_own_the_stream_still_stores_the_one_result)
{
    redisReply *r = redisCommand(rc, "ZADD planb:workers 1 wa 1 wb");
    freeReplyObject(r);
    cr_assert_eq(add_entry("wa|1", "1", "start", ""), 1, "run a owns the stream");
    cr_assert_eq(add_entry("wa|1", "2", "delta", "one "), 1);
    cr_expect_eq(add_entry("wb|1", "1", "start", ""), 0, "run b's pieces are refused");
    cr_expect_eq(finish("planb:inflight:wb", "wb|1", "{\"id\":\"j1\",\"content\":\"one two\"}"), 1,
                 "b's finish stores the result though a owns the stream");
    r = redisCommand(rc, "GET planb:result:j1");
    cr_expect(r->type == REDIS_REPLY_STRING && strstr(r->str, "one two"), "the result is b's");
    freeReplyObject(r);
    cr_expect_eq(stream_len(), 1, "the stream holds b's end alone (a's pieces emptied)");
    cr_expect_eq(add_entry("wa|1", "3", "delta", "two"), 0, "nothing of a after the result");
    cr_expect_eq(finish("planb:inflight:wa", "wa|1", "{\"id\":\"j1\",\"content\":\"x\"}"), 0,
                 "a's finish is the duplicate");
    cr_expect_eq(stream_len(), 1, "one end, last");
}

Test(stream_scripts, the_owning_run_finishes_with_its_pieces_kept)
{
    redisReply *r = redisCommand(rc, "ZADD planb:workers 1 wa");
    freeReplyObject(r);
    cr_assert_eq(add_entry("wa|1", "1", "start", ""), 1);
    cr_assert_eq(add_entry("wa|1", "2", "delta", "one"), 1);
    cr_expect_eq(add_entry("wa|1", "2", "delta", "one"), 2, "a re-send is not added twice");
    cr_expect_eq(finish("planb:inflight:wa", "wa|1", "{\"id\":\"j1\",\"content\":\"one\"}"), 1);
    cr_expect_eq(stream_len(), 3, "start, delta, end");
}
