/* scripts.h -- the embedded Lua scripts of lua/: loaded once per connection, run by EVALSHA.
 *
 * On a NOSCRIPT reply (Redis restarted or SCRIPT FLUSH) the script is loaded
 * again and the call retried once. */
#ifndef PLANB_SCRIPTS_H
#define PLANB_SCRIPTS_H

#include <stddef.h>

typedef struct pb_lua_source {
    const char *name; /* file name without .lua */
    const char *body; /* script text, NUL-terminated */
    size_t len;       /* bytes of body */
} pb_lua_source;

/* Generated from lua/ at build time; ends with a {NULL, NULL, 0} entry. */
extern const pb_lua_source pb_lua_sources[];

/* The embedded script called name, or NULL. */
const pb_lua_source *pb_scripts_find(const char *name);
/* SHA-1 hex of a script body as Redis computes it (the EVALSHA handle); computed once. */
const char *pb_scripts_sha(const pb_lua_source *src);

#endif
