/* test_buf.c -- the bounded buffer that holds every body from outside. */
#include <criterion/criterion.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/core.h"

Test(buf, appends_and_terminates)
{
    pb_buf b;
    pb_buf_init(&b, 100);
    cr_assert_eq(pb_buf_append(&b, "abc", 3), PB_OK);
    cr_assert_eq(pb_buf_append(&b, "def", 3), PB_OK);
    cr_assert_str_eq(b.data, "abcdef");
    cr_assert_eq(b.len, 6);
    pb_buf_free(&b);
}

Test(buf, refuses_past_the_limit_and_keeps_what_it_had)
{
    pb_buf b;
    pb_buf_init(&b, 8);
    cr_assert_eq(pb_buf_append(&b, "12345678", 8), PB_OK);
    cr_assert_eq(pb_buf_append(&b, "9", 1), PB_ERR);
    cr_assert(b.overflow);
    cr_assert_str_eq(b.data, "12345678");
    pb_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert(!b.overflow);
    cr_assert_eq(pb_buf_append(&b, "x", 1), PB_OK);
    pb_buf_free(&b);
}

Test(buf, huge_append_does_not_overflow_size_arithmetic)
{
    pb_buf b;
    pb_buf_init(&b, 16);
    cr_assert_eq(pb_buf_append(&b, "a", 1), PB_OK);
    cr_assert_eq(pb_buf_append(&b, "b", (size_t)-1), PB_ERR);
    pb_buf_free(&b);
}

Test(buf, grows_across_many_appends)
{
    pb_buf b;
    pb_buf_init(&b, 1 << 20);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(pb_buf_append(&b, "0123456789", 10), PB_OK);
    cr_assert_eq(b.len, 100000);
    cr_assert_eq(b.data[b.len], '\0');
    pb_buf_free(&b);
}
