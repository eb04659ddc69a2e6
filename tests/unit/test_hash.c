/* test_hash.c -- FNV-1a 64 and splitmix64 against their published values, so the embedder,
 * the semantic index and planb-mock keep hashing alike. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "planb/hash.h"

Test(fnv1a64, known_vectors)
{
    static const struct {
        const char *s;
        uint64_t h;
    } cases[] = {{"", 0xcbf29ce484222325ULL},
                 {"a", 0xaf63dc4c8601ec8cULL},
                 {"foobar", 0x85944171f73967e8ULL}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].s;
        cr_expect_eq(pb_hash_fnv1a64(s, strlen(s), PB_HASH_FNV1A64_OFFSET), cases[i].h, "\"%s\"",
                     s);
        cr_expect_eq(pb_hash_fnv1a64_str(s, PB_HASH_FNV1A64_OFFSET), cases[i].h, "\"%s\"", s);
    }
    cr_expect_eq(PB_HASH_FNV1A64_OFFSET, 0xcbf29ce484222325ULL);
}

Test(fnv1a64, continuing_equals_hashing_the_concatenation)
{
    uint64_t whole = pb_hash_fnv1a64("foobar", 6, PB_HASH_FNV1A64_OFFSET);
    uint64_t h = pb_hash_fnv1a64("foo", 3, PB_HASH_FNV1A64_OFFSET);
    cr_expect_eq(pb_hash_fnv1a64("bar", 3, h), whole);
    h = pb_hash_fnv1a64_str("fo", PB_HASH_FNV1A64_OFFSET);
    h = pb_hash_fnv1a64("ob", 2, h);
    cr_expect_eq(pb_hash_fnv1a64_str("ar", h), whole);
    /* Nothing more leaves the hash as it was. */
    cr_expect_eq(pb_hash_fnv1a64("", 0, h), h);
    cr_expect_eq(pb_hash_fnv1a64_str("", h), h);
}

Test(fnv1a64, bytes_past_a_nul_count)
{
    uint64_t with_nul = pb_hash_fnv1a64("a\0b", 3, PB_HASH_FNV1A64_OFFSET);
    cr_expect_neq(with_nul, pb_hash_fnv1a64("a", 1, PB_HASH_FNV1A64_OFFSET));
    cr_expect_eq(pb_hash_fnv1a64_str("a\0b", PB_HASH_FNV1A64_OFFSET),
                 pb_hash_fnv1a64("a", 1, PB_HASH_FNV1A64_OFFSET), "the _str form stops at NUL");
    /* High bytes are hashed as unsigned. */
    cr_expect_eq(pb_hash_fnv1a64_str("\xff\x80", PB_HASH_FNV1A64_OFFSET),
                 pb_hash_fnv1a64("\xff\x80", 2, PB_HASH_FNV1A64_OFFSET));
}

Test(splitmix64, from_state_zero)
{
    uint64_t state = 0;
    cr_expect_eq(pb_hash_splitmix64(&state), 0xe220a8397b1dcdafULL);
    cr_expect_eq(state, 0x9E3779B97F4A7C15ULL, "the state advances by the golden gamma");
    cr_expect_eq(pb_hash_splitmix64(&state), 0x6e789e6aa1b965f4ULL);
    cr_expect_eq(pb_hash_splitmix64(&state), 0x06c45d188009454fULL);
}

Test(splitmix64, same_state_same_stream)
{
    uint64_t a = 42, b = 42;
    for (int i = 0; i < 100; i++)
        cr_assert_eq(pb_hash_splitmix64(&a), pb_hash_splitmix64(&b), "output %d", i);
    cr_expect_eq(a, b);
}
