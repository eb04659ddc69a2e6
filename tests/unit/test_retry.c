/* test_retry.c -- backoff bounds, Retry-After parsing and every branch of pb_retry_decide.
 *
 * The RNG is a seeded splitmix64 and the clock a fixed number, so every
 * draw and date below is the same on every run. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>

#include "planb/retry.h"

/* 2015-10-21 07:28:00 GMT, the example date in RFC 7231. */
#define DATE_S 1445412480LL

static uint64_t
splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

Test(backoff, zero_base_or_cap_is_zero)
{
    cr_assert_eq(pb_retry_backoff_ms(0, 4000, 3, 12345), 0);
    cr_assert_eq(pb_retry_backoff_ms(0, 4000, 0, UINT64_MAX), 0);
    cr_assert_eq(pb_retry_backoff_ms(250, 0, 3, UINT64_MAX), 0);
    cr_assert_eq(pb_retry_backoff_ms(-5, 4000, 3, 99), 0);
    cr_assert_eq(pb_retry_backoff_ms(250, -1, 3, 99), 0);
}

Test(backoff, exact_ends_of_the_range)
{
    /* rnd % (ceiling + 1): rnd = ceiling is the top, ceiling + 1 wraps to 0. */
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, 0, 250), 250);
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, 0, 251), 0);
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, 2, 1000), 1000);
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, 2, 1001), 0);
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, 4, 4000), 4000, "250 * 16 capped at 4000");
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, 4, 4001), 0);
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, 1, 0), 0);
}

Test(backoff, seeded_draws_cover_the_range_and_respect_the_cap)
{
    uint64_t seed = 42;
    const int base = 100, cap = 3000;
    for (int n = 0; n < 12; n++) {
        int64_t ceiling = (int64_t)base << n;
        if (ceiling > cap)
            ceiling = cap;
        int64_t lo = INT64_MAX, hi = -1;
        for (int i = 0; i < 20000; i++) {
            int64_t d = pb_retry_backoff_ms(base, cap, n, splitmix64(&seed));
            cr_assert(d >= 0 && d <= ceiling, "retry %d drew %lld > %lld", n, (long long)d,
                      (long long)ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* Full jitter: both ends of [0, ceiling] are reached. */
        cr_assert_leq(lo, ceiling / 100, "retry %d lowest %lld", n, (long long)lo);
        cr_assert_geq(hi, ceiling - ceiling / 100, "retry %d highest %lld", n, (long long)hi);
    }
}

Test(backoff, big_retry_numbers_do_not_overflow)
{
    int ns[] = {30, 31, 32, 33, 62, 63, 64, 65, 1000, INT_MAX};
    uint64_t seed = 7;
    for (size_t i = 0; i < sizeof(ns) / sizeof(*ns); i++) {
        cr_assert_eq(pb_retry_backoff_ms(INT_MAX, INT_MAX, ns[i], INT_MAX), INT_MAX);
        cr_assert_eq(pb_retry_backoff_ms(250, 4000, ns[i], 4000), 4000);
        for (int k = 0; k < 1000; k++) {
            int64_t d = pb_retry_backoff_ms(250, 4000, ns[i], splitmix64(&seed));
            cr_assert(d >= 0 && d <= 4000);
        }
    }
    cr_assert_leq(pb_retry_backoff_ms(INT_MAX, INT_MAX, 31, UINT64_MAX), INT_MAX);
}

Test(backoff, negative_retry_number_counts_as_first)
{
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, -3, 250), 250);
    cr_assert_eq(pb_retry_backoff_ms(250, 4000, -3, 251), 0);
}

Test(backoff, cap_below_base)
{
    cr_assert_eq(pb_retry_backoff_ms(5000, 1000, 0, 1000), 1000);
    cr_assert_eq(pb_retry_backoff_ms(5000, 1000, 0, 1001), 0);
}

Test(retry_after, delta_seconds)
{
    int64_t now = DATE_S * 1000;
    cr_assert_eq(pb_retry_after_ms("120", now), 120000);
    cr_assert_eq(pb_retry_after_ms("0", now), 0);
    cr_assert_eq(pb_retry_after_ms("  5  ", now), 5000);
    cr_assert_eq(pb_retry_after_ms("\t7", now), 7000);
    cr_assert_eq(pb_retry_after_ms("007", now), 7000);
    cr_assert_eq(pb_retry_after_ms("86400", now), 86400000);
    cr_assert_eq(pb_retry_after_ms("86401", now), 86400000, "capped at a day");
    cr_assert_eq(pb_retry_after_ms("99999999999999999999999999999", now), 86400000);
}

Test(retry_after, garbage_is_minus_one)
{
    const char *bad[] = {"",     "   ", "1.5", "-1",  "+3",       "5s",  "5 s", "1 2",
                         "0x10", "abc", "Sun", "now", "12:00:00", "\n5", "five"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_expect_eq(pb_retry_after_ms(bad[i], DATE_S * 1000), -1, "\"%s\"", bad[i]);
    cr_expect_eq(pb_retry_after_ms(NULL, DATE_S * 1000), -1);
}

Test(retry_after, http_dates_in_all_three_forms)
{
    int64_t now = (DATE_S - 30) * 1000 + 400; /* 29.6 s before the date */
    cr_assert_eq(pb_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", now), 29600);
    cr_assert_eq(pb_retry_after_ms("Wednesday, 21-Oct-15 07:28:00 GMT", now), 29600);
    cr_assert_eq(pb_retry_after_ms("Wed Oct 21 07:28:00 2015", now), 29600);
    cr_assert_eq(pb_retry_after_ms("  Wed, 21 Oct 2015 07:28:00 GMT", now), 29600);
}

Test(retry_after, past_and_far_dates)
{
    cr_assert_eq(pb_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", DATE_S * 1000), 0);
    cr_assert_eq(pb_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", (DATE_S + 3600) * 1000), 0);
    cr_assert_eq(pb_retry_after_ms("Thu, 01 Jan 1970 00:00:00 GMT", DATE_S * 1000), 0);
    cr_assert_eq(pb_retry_after_ms("Fri, 21 Oct 2016 07:28:00 GMT", DATE_S * 1000), 86400000,
                 "a year ahead is capped at a day");
}

Test(decide, ok_invalid_fallback_pass_through)
{
    pb_retry_plan p = pb_retry_decide(PB_CLASS_OK, 1, 2, 100, -1, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_DONE);
    cr_assert_eq(p.delay_ms, 0);
    p = pb_retry_decide(PB_CLASS_INVALID, 1, 2, 100, -1, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_INVALID);
    cr_assert_eq(p.delay_ms, 0);
    p = pb_retry_decide(PB_CLASS_FALLBACK, 1, 2, 100, 50, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_FALLBACK);
    cr_assert_eq(p.delay_ms, 0);
}

Test(decide, retry_uses_backoff_until_retries_are_spent)
{
    pb_retry_plan p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, 180, -1, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_RETRY);
    cr_assert_eq(p.delay_ms, 180);
    p = pb_retry_decide(PB_CLASS_RETRY, 2, 2, 300, -1, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_RETRY, "tries_done == retries: one more");
    cr_assert_eq(p.delay_ms, 300);
    p = pb_retry_decide(PB_CLASS_RETRY, 3, 2, 300, -1, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_FALLBACK, "1 try + 2 retries spent");
    cr_assert_eq(p.delay_ms, 0);
    p = pb_retry_decide(PB_CLASS_RETRY, 1, 0, 0, -1, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_FALLBACK, "retries 0: no retry at all");
}

Test(decide, retry_after_beats_backoff)
{
    pb_retry_plan p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, 180, 2000, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_RETRY);
    cr_assert_eq(p.delay_ms, 2000);
    p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, 180, 0, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_RETRY);
    cr_assert_eq(p.delay_ms, 0, "Retry-After: 0 means now");
}

Test(decide, deadline_cut)
{
    /* wait + min_attempt must fit in what is left. */
    pb_retry_plan p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, 500, -1, 1000, 500);
    cr_assert_eq(p.next, PB_NEXT_RETRY, "exactly fits");
    cr_assert_eq(p.delay_ms, 500);
    p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, 501, -1, 1000, 500);
    cr_assert_eq(p.next, PB_NEXT_FALLBACK, "one ms too long");
    cr_assert_eq(p.delay_ms, 0);
    p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, 100, 30000, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_FALLBACK, "Retry-After past the deadline");
    p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, 0, -1, 0, 500);
    cr_assert_eq(p.next, PB_NEXT_FALLBACK, "deadline reached");
    p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, 0, -1, -50, 0);
    cr_assert_eq(p.next, PB_NEXT_FALLBACK, "deadline passed");
}

Test(decide, negative_backoff_is_no_wait)
{
    pb_retry_plan p = pb_retry_decide(PB_CLASS_RETRY, 1, 2, -7, -1, 10000, 500);
    cr_assert_eq(p.next, PB_NEXT_RETRY);
    cr_assert_eq(p.delay_ms, 0);
}
