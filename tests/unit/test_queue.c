/* test_queue.c -- the pure side of claiming around paused queues: reading which queues
 * claim.lua says are paused, and the round robin that skips them. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <string.h>

#include "planb/queue.h"

static char text[] = "{}"; /* a job's bytes */

static redisReply
integer(long long v)
{
    return (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v};
}

Test(queue, a_claim_reply_without_a_paused_array_pauses_nothing)
{
    bool paused[3] = {true, true, true}; /* left from an earlier reply */
    redisReply job = {.type = REDIS_REPLY_STRING, .str = text, .len = 2};
    redisReply nil = {.type = REDIS_REPLY_NIL};
    redisReply *els[] = {&job, &nil};
    redisReply reply = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = els};
    cr_expect_eq(pb_queue_read_paused(&reply, paused, 3), 0);
    cr_expect(!paused[0] && !paused[1] && !paused[2]);
    paused[1] = true;
    cr_expect_eq(pb_queue_read_paused(NULL, paused, 3), 0, "no reply: nothing known paused");
    cr_expect(!paused[1]);
}

Test(queue, the_paused_array_names_queues_by_position_from_one)
{
    bool paused[3];
    redisReply p1 = integer(1), p3 = integer(3), p9 = integer(9), p0 = integer(0),
               again = integer(3);
    redisReply *pos[] = {&p1, &p3, &p9, &p0, &again};
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 5, .element = pos};
    redisReply job = {.type = REDIS_REPLY_STRING, .str = text, .len = 2};
    redisReply *els[] = {&job, &arr};
    redisReply reply = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = els};
    cr_expect_eq(pb_queue_read_paused(&reply, paused, 3), 2, "out-of-range and repeats ignored");
    cr_expect(paused[0]);
    cr_expect(!paused[1]);
    cr_expect(paused[2]);
}

Test(queue, the_round_robin_skips_paused_queues_and_says_when_all_are)
{
    bool paused[4] = {false, true, true, false};
    cr_expect_eq(pb_queue_next_open(paused, 4, 0), 0);
    cr_expect_eq(pb_queue_next_open(paused, 4, 1), 3);
    cr_expect_eq(pb_queue_next_open(paused, 4, 2), 3);
    cr_expect_eq(pb_queue_next_open(paused, 4, 3), 3);
    paused[3] = true;
    cr_expect_eq(pb_queue_next_open(paused, 4, 1), 0, "wraps round");
    paused[0] = true;
    cr_expect_eq(pb_queue_next_open(paused, 4, 2), 4, "all paused");
    bool one[1] = {false};
    cr_expect_eq(pb_queue_next_open(one, 1, 0), 0);
}
