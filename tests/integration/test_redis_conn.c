/* test_redis_conn.c -- the worker's async Redis connection (redis.c) against a real
 * redis-server, in process: what it sends, and when.
 *
 * hiredis writes queued commands when the loop next polls. A loop turn busy with hundreds of
 * stream chunks queues an XADD for each; the connection writes a buffer older than 200 us at
 * the next command instead of holding every XADD until the turn ends. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "planb/config.h"
#include "planb/core.h"
#include "planb/redis.h"

static th_proc redis_p;
static struct event_base *base;
static pb_config *cfg;
static pb_redis *conn;
static redisContext *probe;

static void
setup(void)
{
    cr_assert_eq(th_redis_start(&redis_p, NULL), 0, "redis-server did not start");
    char json[512];
    snprintf(json, sizeof(json),
             "{\"redis\":{\"url\":\"redis://127.0.0.1:%d/0\"},\"providers\":{\"p\":{\"type\":"
             "\"openai\",\"base_url\":\"http://127.0.0.1:1/v1\"}},\"models\":{\"m\":{\"provider\":"
             "\"p\"}},\"routes\":{\"default\":{\"chain\":[\"m\"]}}}",
             redis_p.port);
    pb_error err = {0};
    cfg = pb_config_parse(json, &err);
    cr_assert_not_null(cfg, "config: %s", err.msg);
    base = event_base_new();
    conn = pb_redis_new(base, cfg, "test");
    int64_t until = pb_mono_ms() + 5000;
    while (!pb_redis_is_up(conn) && pb_mono_ms() < until)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert(pb_redis_is_up(conn), "the connection did not come up");
    probe = th_redis(redis_p.port);
}

static void
teardown(void)
{
    if (probe)
        redisFree(probe);
    pb_redis_free(conn);
    event_base_free(base);
    pb_config_free(cfg);
    th_proc_stop(&redis_p, 5000);
}

TestSuite(redis_conn, .init = setup, .fini = teardown, .timeout = 60);

static void
set_key(const char *key)
{
    const char *argv[] = {"SET", key, "1"};
    pb_redis_command(conn, NULL, NULL, 3, argv, NULL);
}

static bool
key_exists(const char *key)
{
    redisReply *r = redisCommand(probe, "EXISTS %s", key);
    bool yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return yes;
}

/* Polls the probe for up to ms for key, without running the connection's loop. */
static bool
key_appears_within(const char *key, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (key_exists(key))
            return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return key_exists(key);
}

/* Spins for us microseconds: a loop turn busy with other work. */
static void
busy_for_us(int64_t us)
{
    int64_t until = pb_mono_us() + us;
    while (pb_mono_us() < until) {
    }
}

Test(redis_conn, a_command_queued_early_in_a_long_turn_is_written_before_the_turn_ends)
{
    set_key("flush:first");
    busy_for_us(2000);
    set_key("flush:second"); /* the buffer is 2 ms old: both go out now */
    /* Still inside the turn: the loop has not run since the first command was queued. */
    cr_assert(key_appears_within("flush:first", 1000),
              "a command queued 2 ms ago waited for the loop turn to end");
    cr_assert(key_exists("flush:second"));
}

Test(redis_conn, a_command_queued_alone_goes_out_when_the_loop_runs)
{
    set_key("flush:alone");
    busy_for_us(500);
    cr_assert_not(key_appears_within("flush:alone", 20),
                  "nothing later in the turn wrote it: it waits for the loop, as hiredis does");
    int64_t until = pb_mono_ms() + 2000;
    while (!key_exists("flush:alone") && pb_mono_ms() < until)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    cr_assert(key_exists("flush:alone"), "the loop did not write the queued command");
}
