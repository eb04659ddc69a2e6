/* hash.c -- FNV-1a 64 and splitmix64 (see hash.h). */
#include "planb/hash.h"

uint64_t
pb_hash_fnv1a64(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= PB_HASH_FNV1A64_PRIME;
    }
    return h;
}

uint64_t
pb_hash_fnv1a64_str(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= PB_HASH_FNV1A64_PRIME;
    }
    return h;
}

/* Steele, Lea and Flood's splitmix64 (the seeding generator of xoshiro). */
uint64_t
pb_hash_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
