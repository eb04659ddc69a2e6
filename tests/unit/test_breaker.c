/* test_breaker.c -- the pure breaker decisions (pb_breaker_decide) and the parsing of
 * breaker.lua's reply into a worker's view (pb_breaker_apply). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "planb/breaker.h"
#include "th_replies.h"

Test(decide, closed_passes_and_a_hold_waits)
{
    pb_breaker_view v = {PB_BREAKER_CLOSED, 0, 0, 0, false};
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
    pb_breaker_view v = {PB_BREAKER_OPEN, 2000, 0, 0, false};
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
    long long ok[] = {1, 300, 50, 1, 0};
    redisReply *r = th_reply_int_array(ok, 5);
    cr_assert_eq(pb_breaker_apply(&v, r, 1000), 1);
    cr_assert_eq(v.state, PB_BREAKER_OPEN);
    cr_assert_eq(v.open_until_mono_ms, 1300);
    cr_assert_eq(v.not_before_mono_ms, 1050);
    freeReplyObject(r);
}

Test(apply, rejects_malformed_replies)
{
    pb_breaker_view v = {PB_BREAKER_CLOSED, 7, 7, 7, false};
    long long bad_state[] = {3, 0, 0, 0, 0}, negative[] = {0, -1, 0, 0, 0};
    redisReply *r1 = th_reply_int_array(bad_state, 5), *r2 = th_reply_int_array(negative, 5),
               *r3 = th_reply_int_array(bad_state, 4);
    cr_assert_eq(pb_breaker_apply(&v, r1, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, r2, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, r3, 0), -1);
    cr_assert_eq(pb_breaker_apply(&v, NULL, 0), -1);
    cr_assert_eq(v.open_until_mono_ms, 7, "untouched");
    freeReplyObject(r1);
    freeReplyObject(r2);
    freeReplyObject(r3);
}

Test(decide, a_refused_key_skips_before_anything_else)
{
    pb_breaker_view v = {PB_BREAKER_CLOSED, 0, 0, 5000, false};
    int64_t wait;
    cr_assert_eq(pb_breaker_decide(&v, 1000, &wait), PB_GATE_REFUSED);
    v.state = PB_BREAKER_OPEN;
    cr_assert_eq(pb_breaker_decide(&v, 4999, &wait), PB_GATE_REFUSED);
    cr_assert_eq(pb_breaker_decide(&v, 5000, &wait), PB_GATE_PROBE, "the hold ended");
}

Test(apply, takes_the_refused_hold)
{
    pb_breaker_view v = {0};
    long long vals[] = {0, 0, 0, 0, 60000};
    redisReply *r = th_reply_int_array(vals, 5);
    cr_assert_eq(pb_breaker_apply(&v, r, 1000), 0);
    cr_assert_eq(v.refused_until_mono_ms, 61000);
    freeReplyObject(r);
}

Test(verdict, outcomes_map_to_health)
{
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_OK, 200), PB_VERDICT_OK);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_RETRY, 0), PB_VERDICT_FAIL, "no response");
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_RETRY, 200), PB_VERDICT_FAIL, "bad reply");
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_RETRY, 500), PB_VERDICT_FAIL);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_RETRY, 529), PB_VERDICT_FAIL);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_RETRY, 408), PB_VERDICT_FAIL);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_FALLBACK, 404), PB_VERDICT_FAIL);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_RETRY, 429), PB_VERDICT_NEUTRAL);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_INVALID, 400), PB_VERDICT_NEUTRAL);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_FALLBACK, 413), PB_VERDICT_NEUTRAL);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_FALLBACK, 401), PB_VERDICT_REFUSED);
    cr_assert_eq(pb_breaker_verdict_of(PB_CLASS_FALLBACK, 403), PB_VERDICT_REFUSED);
}
