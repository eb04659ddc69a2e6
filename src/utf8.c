/* utf8.c -- strict RFC 3629 UTF-8 checks and decoding (see utf8.h).
 *
 * The second byte's range rules out overlong forms (E0, F0), surrogates (ED)
 * and code points past U+10FFFF (F4); C0, C1 and F5..FF never start a sequence. */
#include "planb/utf8.h"

size_t
pb_utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < k || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return k;
}

bool
pb_utf8_is_text(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        if (s[i] == 0)
            return false;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = pb_utf8_seq_len(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

size_t
pb_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t k = pb_utf8_seq_len(s, n);
    if (k == 0) {
        *cp = 0xFFFD;
        return 1;
    }
    static const unsigned char lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t v = s[0] & lead_mask[k];
    for (size_t i = 1; i < k; i++)
        v = (v << 6) | (s[i] & 0x3Fu);
    *cp = v;
    return k;
}
