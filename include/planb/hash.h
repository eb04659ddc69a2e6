/* hash.h -- the non-cryptographic hashes planb uses: FNV-1a 64 and the splitmix64 stream.
 *
 * One copy of each, so the local embedder, the semantic index and planb-mock
 * cannot drift apart. Cryptographic hashes (cache keys) come from libcrypto. */
#ifndef PLANB_HASH_H
#define PLANB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define PB_HASH_FNV1A64_OFFSET 14695981039346656037ULL /* FNV-1a 64 offset basis */
#define PB_HASH_FNV1A64_PRIME  1099511628211ULL        /* FNV-1a 64 prime */

/* FNV-1a 64 of n bytes at p, continuing from h (start with PB_HASH_FNV1A64_OFFSET). Pure. */
uint64_t pb_hash_fnv1a64(const void *p, size_t n, uint64_t h);
/* FNV-1a 64 of a NUL-terminated string, continuing from h. Pure. */
uint64_t pb_hash_fnv1a64_str(const char *s, uint64_t h);
/* The next value of the splitmix64 stream whose state is *state (advanced). */
uint64_t pb_hash_splitmix64(uint64_t *state);

#endif
