/* utf8.h -- strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
 *
 * The one check for every module that takes text from outside (jobs, upstream
 * replies, dead-letter entries) and the one decoder (the local embedder). */
#ifndef PLANB_UTF8_H
#define PLANB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 sequence at s (n >= 1 bytes left), 0 when it is not one. */
size_t pb_utf8_seq_len(const unsigned char *s, size_t n);
/* True when all n bytes at p are valid UTF-8 without a NUL (safe as a JSON string). */
bool pb_utf8_is_text(const char *p, size_t n);
/* Decodes the sequence at s (n >= 1) into *cp and returns its length; an invalid sequence
 * gives U+FFFD and length 1, so a caller always advances. */
size_t pb_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

#endif
