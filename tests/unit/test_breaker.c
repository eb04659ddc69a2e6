/* test_breaker.c -- the pure breaker decisions (pb_breaker_decide) and the parsing of
 * breaker.lua's reply into a worker's view (pb_breaker_apply). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "planb/breaker.h"
#include "th_replies.h"

Test(decide, closed_passes_and_a_hold_waits)
{
    pb_breaker_view v = {PB_BREAKER_CLOSED, 0, 0, false};
    int64_t wait = -1;
    cr_assert_eq(pb_breaker_decide(&v, 1000, &wait), PB_GATE_PASS);
    cr_assert_eq(wait, 0);
    v.not_before_mono_ms = 1500;
    cr_assert_eq(pb_breaker_decide(&v, 1000, &wait), PB_GATE_HOLD);
    cr_assert_eq(wait, 500);
    cr_assert_eq(pb_breaker_decide(&v, 1500, &wait), PB_GATE_PASS);
}

Test(decide, open_skips_until_its_time_then_probes)
{
    pb_breaker_view v = {PB_BREAKER_OPEN, 2000, 0, false};
    int64_t wait;
    cr_assert_eq(pb_breaker_decide(&v, 1999, &wait), PB_GATE_OPEN);
    cr_assert_eq(pb_breaker_decide(&v, 2000, &wait), PB_GATE_PROBE);
    /* Half open: someone else probes until the lease ends. */
    v.state = PB_BREAKER_HALF_OPEN;
    cr_assert_eq(pb_breaker_decide(&v, 1999, &wait), PB_GATE_OPEN);
    cr_assert_eq(pb_breaker_decide(&v, 2001, &wait), PB_GATE_PROBE);
    /* Open wins over a hold. */
    v.not_before_mono_ms = 10000;
    cr_assert_eq(pb_breaker_decide(&v, 1000, &wait), PB_GATE_OPEN);
}

Test(apply, updates_the_view_from_a_reply)
{
    pb_breaker_view v = {0};
    long long ok[] = {1, 300, 50, 1};
    redisReply *r = th_reply_int_array(ok, 4);
    cr_assert_eq(pb_breaker_apply(&v, r, 1000), 1);
    cr_assert_eq(v.state, PB_BREAKER_OPEN);
    cr_assert_eq(v.open_until_mono_ms, 1300);
    cr_assert_eq(v.not_before_mono_ms, 1050);
    freeReplyObject(r);
}

Test(apply, rejects_malformed_replies)
{
    pb_breaker_view v = {PB_BREAKER_CLOSED, 7, 7, false};
    long long bad_state[] = {3, 0, 0, 0}, negative[] = {0, -1, 0, 0};
    redisReply *r1 = th_reply_int_array(bad_state, 4), *r2 = th_reply_int_array(negative, 4),
               *r3 = th_reply_int_array(bad_state, 3);
    cr_assert_eq(pb_breaker_apply(&v, r1, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, r2, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, r3, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, NULL, 0), -1);
    cr_assert_eq(v.open_until_mono_ms, 7, "untouched");
    freeReplyObject(r1);
    freeReplyObject(r2);
    freeReplyObject(r3);
}
