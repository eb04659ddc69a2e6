/* test_scripts.c -- the Lua scripts are embedded whole and addressed by Redis's SHA-1. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/scripts.h"

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return s;
}

Test(scripts, every_lua_file_is_embedded_byte_for_byte)
{
    const char *names[] = {"claim", "finish", "handback", "heartbeat", "stream_add"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const pb_lua_source *s = pb_scripts_find(names[i]);
        cr_assert_not_null(s, "%s embedded", names[i]);
        char path[512];
        snprintf(path, sizeof(path), "%s/lua/%s.lua", PB_SRC_DIR, names[i]);
        size_t len;
        char *disk = read_file(path, &len);
        cr_expect_eq(s->len, len);
        cr_expect_eq(memcmp(s->body, disk, len), 0);
        cr_expect_eq(strlen(s->body), len, "NUL-terminated");
        free(disk);
    }
    cr_expect_null(pb_scripts_find("nope"));
}

Test(scripts, sha_is_the_sha1_of_the_file)
{
    /* Redis names a script by the SHA-1 of its body: sha1sum of the file must agree. */
    const pb_lua_source *s = pb_scripts_find("finish");
    const char *sha = pb_scripts_sha(s);
    cr_assert_eq(strlen(sha), 40);
    cr_expect_eq(pb_scripts_sha(s), sha, "computed once and cached");
    char cmd[600], out[64] = "";
    snprintf(cmd, sizeof(cmd), "sha1sum %s/lua/finish.lua", PB_SRC_DIR);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert(fgets(out, sizeof(out), p) != NULL);
    pclose(p);
    cr_expect_eq(strncmp(out, sha, 40), 0, "sha1sum %.40s vs %s", out, sha);
}
