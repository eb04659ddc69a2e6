/* scripts.c -- lookup of the embedded Lua scripts and their SHA-1 (the EVALSHA handle).
 *
 * The SHA-1 is computed locally with libcrypto, the same digest Redis uses for
 * SCRIPT LOAD, so EVALSHA can be sent before any reply to SCRIPT LOAD arrives. */
#include "planb/scripts.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "planb/core.h"

const pb_lua_source *
pb_scripts_find(const char *name)
{
    for (const pb_lua_source *s = pb_lua_sources; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

#define SCRIPTS_MAX 32 /* more than lua/ will ever hold */

const char *
pb_scripts_sha(const pb_lua_source *src)
{
    static char shas[SCRIPTS_MAX][41];
    size_t idx = (size_t)(src - pb_lua_sources);
    pb_assert(idx < SCRIPTS_MAX);
    if (shas[idx][0] == '\0') {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)src->body, src->len, md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(shas[idx] + 2 * i, 3, "%02x", md[i]);
    }
    return shas[idx];
}
