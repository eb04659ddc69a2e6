/* test_utf8.c -- the strict RFC 3629 check and decoder: every valid length, and every way a
 * sequence can be wrong (overlong, surrogate, past U+10FFFF, bad lead, cut short). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "planb/utf8.h"

typedef struct seq {
    const char *bytes; /* the sequence (plus whatever follows it) */
    size_t n;          /* bytes available at bytes */
    size_t len;        /* pb_utf8_seq_len: 1..4, 0 when invalid */
    uint32_t cp;       /* pb_utf8_decode's code point (U+FFFD when invalid) */
} seq;

/* A string literal and its length (it may hold NULs), for seq.bytes and seq.n. */
#define BYTES(s) (s), sizeof(s) - 1

static const seq valid[] = {
    {BYTES("A"), 1, 0x41},
    {BYTES("\x7f"), 1, 0x7F},
    {BYTES("\xc2\x80"), 2, 0x80},             /* smallest 2-byte */
    {BYTES("\xc3\xa9"), 2, 0xE9},             /* e acute */
    {BYTES("\xdf\xbf"), 2, 0x7FF},            /* largest 2-byte */
    {BYTES("\xe0\xa0\x80"), 3, 0x800},        /* smallest 3-byte */
    {BYTES("\xe2\x9c\x93"), 3, 0x2713},       /* check mark */
    {BYTES("\xed\x9f\xbf"), 3, 0xD7FF},       /* just below the surrogates */
    {BYTES("\xee\x80\x80"), 3, 0xE000},       /* just above them */
    {BYTES("\xef\xbf\xbd"), 3, 0xFFFD},       /* the replacement character itself */
    {BYTES("\xef\xbf\xbf"), 3, 0xFFFF},       /* largest 3-byte */
    {BYTES("\xf0\x90\x80\x80"), 4, 0x10000},  /* smallest 4-byte */
    {BYTES("\xf0\x9f\x98\x80"), 4, 0x1F600},  /* grinning face */
    {BYTES("\xf4\x8f\xbf\xbf"), 4, 0x10FFFF}, /* the last code point */
    {BYTES("\xc3\xa9xyz"), 2, 0xE9},          /* followed by more text */
};

static const seq invalid[] = {
    {BYTES("\x80"), 0, 0xFFFD}, /* a continuation byte cannot lead */
    {BYTES("\xbf"), 0, 0xFFFD},
    {BYTES("\xc0\x80"), 0, 0xFFFD},         /* overlong NUL */
    {BYTES("\xc0\xaf"), 0, 0xFFFD},         /* overlong '/' */
    {BYTES("\xc1\xbf"), 0, 0xFFFD},         /* overlong U+7F */
    {BYTES("\xe0\x80\x80"), 0, 0xFFFD},     /* overlong 3-byte */
    {BYTES("\xe0\x9f\xbf"), 0, 0xFFFD},     /* overlong U+7FF */
    {BYTES("\xed\xa0\x80"), 0, 0xFFFD},     /* surrogate U+D800 */
    {BYTES("\xed\xbf\xbf"), 0, 0xFFFD},     /* surrogate U+DFFF */
    {BYTES("\xf0\x80\x80\x80"), 0, 0xFFFD}, /* overlong 4-byte */
    {BYTES("\xf0\x8f\xbf\xbf"), 0, 0xFFFD}, /* overlong U+FFFF */
    {BYTES("\xf4\x90\x80\x80"), 0, 0xFFFD}, /* U+110000 */
    {BYTES("\xf5\x80\x80\x80"), 0, 0xFFFD}, /* F5..FF never lead */
    {BYTES("\xf7\xbf\xbf\xbf"), 0, 0xFFFD},
    {BYTES("\xf8\x88\x80\x80\x80"), 0, 0xFFFD}, /* old 5-byte form */
    {BYTES("\xfe"), 0, 0xFFFD},
    {BYTES("\xff"), 0, 0xFFFD},
    {BYTES("\xc3"), 0, 0xFFFD},     /* cut short: 2-byte with 1 */
    {BYTES("\xe2\x9c"), 0, 0xFFFD}, /* 3-byte with 2 */
    {BYTES("\xe2"), 0, 0xFFFD},
    {BYTES("\xf0\x9f\x98"), 0, 0xFFFD}, /* 4-byte with 3 */
    {BYTES("\xc3!"), 0, 0xFFFD},        /* a non-continuation where one must be */
    {BYTES("\xe2\x9c!"), 0, 0xFFFD},
    {BYTES("\xf0\x9f\x98!"), 0, 0xFFFD},
    {BYTES("\xe2\xc3\xa9"), 0, 0xFFFD},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(utf8, seq_len_of_valid_sequences)
{
    for (size_t i = 0; i < N(valid); i++)
        cr_expect_eq(pb_utf8_seq_len((const unsigned char *)valid[i].bytes, valid[i].n),
                     valid[i].len, "valid[%zu]", i);
}

Test(utf8, seq_len_of_invalid_sequences_is_zero)
{
    for (size_t i = 0; i < N(invalid); i++)
        cr_expect_eq(pb_utf8_seq_len((const unsigned char *)invalid[i].bytes, invalid[i].n), 0,
                     "invalid[%zu]", i);
}

Test(utf8, n_bounds_the_sequence)
{
    /* A whole sequence in memory is still cut short when n says fewer bytes are left. */
    const unsigned char *s = (const unsigned char *)"\xf0\x9f\x98\x80";
    for (size_t n = 1; n < 4; n++)
        cr_expect_eq(pb_utf8_seq_len(s, n), 0, "n=%zu", n);
    cr_expect_eq(pb_utf8_seq_len(s, 4), 4);
}

Test(utf8, decode_gives_the_code_point)
{
    for (size_t i = 0; i < N(valid); i++) {
        uint32_t cp = 0;
        cr_expect_eq(pb_utf8_decode((const unsigned char *)valid[i].bytes, valid[i].n, &cp),
                     valid[i].len, "valid[%zu]", i);
        cr_expect_eq(cp, valid[i].cp, "valid[%zu]: U+%04X", i, (unsigned)cp);
    }
}

Test(utf8, decode_of_bad_input_gives_fffd_and_length_1)
{
    for (size_t i = 0; i < N(invalid); i++) {
        uint32_t cp = 0;
        cr_expect_eq(pb_utf8_decode((const unsigned char *)invalid[i].bytes, invalid[i].n, &cp), 1,
                     "invalid[%zu]", i);
        cr_expect_eq(cp, 0xFFFD, "invalid[%zu]: U+%04X", i, (unsigned)cp);
    }
}

Test(utf8, decode_walks_mixed_text)
{
    static const char text[] = "a\xc3\xa9\xff\xe2\x9c\x93\xed\xa0\x80z";
    static const uint32_t want[] = {'a', 0xE9, 0xFFFD, 0x2713, 0xFFFD, 0xFFFD, 0xFFFD, 'z'};
    const unsigned char *s = (const unsigned char *)text;
    size_t n = sizeof(text) - 1, k = 0;
    while (n > 0) {
        uint32_t cp;
        size_t len = pb_utf8_decode(s, n, &cp);
        cr_assert(len >= 1 && len <= n);
        cr_assert_lt(k, N(want));
        cr_expect_eq(cp, want[k], "code point %zu: U+%04X", k, (unsigned)cp);
        k++;
        s += len;
        n -= len;
    }
    cr_expect_eq(k, N(want));
}

Test(utf8, is_text)
{
    for (size_t i = 0; i < N(valid); i++)
        cr_expect(pb_utf8_is_text(valid[i].bytes, valid[i].n), "valid[%zu]", i);
    for (size_t i = 0; i < N(invalid); i++)
        cr_expect_not(pb_utf8_is_text(invalid[i].bytes, invalid[i].n), "invalid[%zu]", i);
    cr_expect(pb_utf8_is_text("", 0));
    static const char mixed[] = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \x7f\x01";
    cr_expect(pb_utf8_is_text(mixed, sizeof(mixed) - 1));
    /* One bad byte anywhere, or a sequence cut by the end, spoils the whole text. */
    cr_expect_not(pb_utf8_is_text("abc\xff", 4));
    cr_expect_not(pb_utf8_is_text("abc\xe2\x9c\x93", 5));
    cr_expect(pb_utf8_is_text("abc\xe2\x9c\x93", 6));
}

Test(utf8, is_text_rejects_nul)
{
    cr_expect_not(pb_utf8_is_text("\0", 1));
    cr_expect_not(pb_utf8_is_text("ab\0cd", 5));
    cr_expect_not(pb_utf8_is_text("\xc3\xa9\0", 3));
    cr_expect(pb_utf8_is_text("ab\0cd", 2), "only n bytes are looked at");
    /* The NUL is not valid text, but it is a valid 1-byte sequence. */
    cr_expect_eq(pb_utf8_seq_len((const unsigned char *)"\0", 1), 1);
}
