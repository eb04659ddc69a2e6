/* retry.c -- pure retry arithmetic: full-jitter backoff, Retry-After, what to do next.
 *
 * The chain owns the clock, the RNG and the timers; this file only turns
 * numbers into a decision, so every branch is tested exactly. Backoff is AWS
 * "full jitter": a uniform draw from [0, min(cap, base * 2^n)], which spreads
 * a burst of failed jobs evenly instead of retrying them in waves. */
#include "planb/retry.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <time.h>

/* A Retry-After of more than a day is a misconfigured server; the deadline cut in
 * pb_retry_decide turns it into a fallback long before this matters. */
#define RETRY_AFTER_MAX_S 86400

int64_t
pb_retry_backoff_ms(int base_ms, int cap_ms, int retry_no, uint64_t rnd)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    if (retry_no < 0)
        retry_no = 0;
    /* base < 2^31, so base << 31 still fits an int64; past that the cap wins anyway. */
    int64_t ceiling = cap_ms;
    if (retry_no < 32 && ((int64_t)base_ms << retry_no) < ceiling)
        ceiling = (int64_t)base_ms << retry_no;
    return (int64_t)(rnd % (uint64_t)(ceiling + 1));
}

static bool
retry_is_space(char c)
{
    return c == ' ' || c == '\t';
}

int64_t
pb_retry_after_ms(const char *value, int64_t now_wall_ms)
{
    if (value == NULL)
        return -1;
    while (retry_is_space(*value))
        value++;
    if (*value >= '0' && *value <= '9') {
        int64_t s = 0;
        for (; *value >= '0' && *value <= '9'; value++)
            if (s <= RETRY_AFTER_MAX_S)
                s = s * 10 + (*value - '0');
        while (retry_is_space(*value))
            value++;
        if (*value != '\0')
            return -1;
        return (s < RETRY_AFTER_MAX_S ? s : RETRY_AFTER_MAX_S) * 1000;
    }
    /* All three HTTP-date forms start with a day name; requiring a letter keeps
     * curl_getdate's many other formats ("12:00", "2015") from being accepted. */
    if (!((*value >= 'A' && *value <= 'Z') || (*value >= 'a' && *value <= 'z')))
        return -1;
    time_t at = curl_getdate(value, NULL);
    if (at == -1)
        return -1;
    int64_t delay_ms = (int64_t)at * 1000 - now_wall_ms;
    if (delay_ms < 0)
        return 0;
    return delay_ms < (int64_t)RETRY_AFTER_MAX_S * 1000 ? delay_ms
                                                        : (int64_t)RETRY_AFTER_MAX_S * 1000;
}

pb_retry_plan
pb_retry_decide(pb_class cls, int tries_done, int retries, int64_t backoff_ms,
                int64_t retry_after_ms, int64_t remaining_ms, int64_t min_attempt_ms)
{
    pb_retry_plan plan = {PB_NEXT_FALLBACK, 0};
    switch (cls) {
    case PB_CLASS_OK:
        plan.next = PB_NEXT_DONE;
        break;
    case PB_CLASS_INVALID:
        plan.next = PB_NEXT_INVALID;
        break;
    case PB_CLASS_FALLBACK:
        break;
    case PB_CLASS_RETRY: {
        if (tries_done > retries)
            break;
        /* The server's own Retry-After beats our guess, even when it says 0. */
        int64_t wait_ms = retry_after_ms >= 0 ? retry_after_ms : backoff_ms;
        if (wait_ms < 0)
            wait_ms = 0;
        /* Sleeping into the deadline would waste the job's last chance on this model:
         * the next model can start now. */
        if (wait_ms + min_attempt_ms > remaining_ms)
            break;
        plan.next = PB_NEXT_RETRY;
        plan.delay_ms = wait_ms;
        break;
    }
    }
    return plan;
}
