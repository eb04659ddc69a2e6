/* test_adminauth.c -- admin keys by SHA-256, signed session tokens and CSRF tokens (adminauth.c).
 *
 * Every way a token can be wrong must be refused: another secret, a changed byte, an expired
 * time, a key removed or replaced in the config; and the CSRF token must be tied to its
 * session. Pure: no Redis, no HTTP. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "planb/adminauth.h"
#include "th_config.h"

/* Two keys, given as their SHA-256 (%s, %s: from sha256sum, the reference outside planb). */
#define AUTH_CFG                                                                                   \
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://a\"}},"                 \
    " \"models\": {\"m\": {\"provider\": \"p\"}},"                                                 \
    " \"routes\": {\"default\": {\"chain\": [\"m\"]}},"                                            \
    " \"admin\": {\"listen\": \"127.0.0.1:9470\", \"keys\": ["                                     \
    "  {\"name\": \"ops\", \"role\": \"admin\","                                                   \
    "   \"sha256\": \"%s\"},"                                                                      \
    "  {\"name\": \"on-call\", \"sha256\": \"%s\"}]}}"

static pb_config *cfg;
static const unsigned char secret[PB_ADMINAUTH_SECRET_BYTES] = "0123456789abcdef0123456789abcde";
static const unsigned char nonce[16] = "fedcba987654321";

static char ops_sha[65], viewer_sha[65];

/* Fills buf with the hex SHA-256 of text, by running sha256sum (the reference outside planb). */
static void
sha256sum(const char *text, char buf[65])
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha256sum", text);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_eq(fscanf(p, "%64s", buf), 1);
    pclose(p);
}

static pb_config *
parse_with(const char *ops, const char *viewer)
{
    char json[2048];
    snprintf(json, sizeof(json), AUTH_CFG, ops, viewer);
    return th_config_parse(json);
}

static void
setup(void)
{
    sha256sum("ops-key", ops_sha);
    sha256sum("viewer-key", viewer_sha);
    cfg = parse_with(ops_sha, viewer_sha);
}

static void
teardown(void)
{
    pb_config_free(cfg);
}

TestSuite(adminauth, .init = setup, .fini = teardown);

Test(adminauth, keys_are_found_by_their_sha256_only)
{
    const pb_admin_key *k = pb_adminauth_key(&cfg->admin, "ops-key", 7);
    cr_assert_not_null(k);
    cr_expect_str_eq(k->name, "ops");
    cr_expect_eq(k->role, PB_ADMIN_ADMIN);
    k = pb_adminauth_key(&cfg->admin, "viewer-key", 10);
    cr_assert_not_null(k);
    cr_expect_str_eq(k->name, "on-call");
    cr_expect_eq(k->role, PB_ADMIN_VIEWER, "the default role is viewer");
    cr_expect_null(pb_adminauth_key(&cfg->admin, "ops-ke", 6));
    cr_expect_null(pb_adminauth_key(&cfg->admin, "ops-keyx", 8));
    cr_expect_null(pb_adminauth_key(&cfg->admin, ops_sha, strlen(ops_sha)),
                   "the hash itself is not a key");
    cr_expect_null(pb_adminauth_key(&cfg->admin, "", 0));
}

Test(adminauth, a_session_speaks_for_its_key_until_it_expires)
{
    const pb_admin_key *ops = pb_adminauth_key(&cfg->admin, "ops-key", 7);
    char token[PB_ADMINAUTH_TOKEN_MAX], csrf[PB_ADMINAUTH_CSRF_MAX];
    pb_adminauth_session(secret, ops, 1000000, 60, nonce, token);
    cr_expect_eq(strncmp(token, "v1.", 3), 0, "%s", token);
    cr_expect_null(strstr(token, "ops-key"), "the key is never in the token: %s", token);
    cr_expect_eq(pb_adminauth_check(secret, &cfg->admin, token, 1000000, csrf), ops);
    cr_expect_eq(strlen(csrf), 64);
    cr_expect_eq(pb_adminauth_check(secret, &cfg->admin, token, 1000059, NULL), ops);
    cr_expect_null(pb_adminauth_check(secret, &cfg->admin, token, 1000060, NULL), "expired");
}

Test(adminauth, a_forged_or_foreign_token_is_refused)
{
    const pb_admin_key *ops = pb_adminauth_key(&cfg->admin, "ops-key", 7);
    const pb_admin_key *viewer = pb_adminauth_key(&cfg->admin, "viewer-key", 10);
    char token[PB_ADMINAUTH_TOKEN_MAX];
    pb_adminauth_session(secret, viewer, 1000000, 60, nonce, token);

    unsigned char other[PB_ADMINAUTH_SECRET_BYTES];
    memcpy(other, secret, sizeof(other));
    other[0] ^= 1;
    cr_expect_null(pb_adminauth_check(other, &cfg->admin, token, 1000000, NULL), "other secret");

    /* Every single-character change is refused (name, expiry, nonce, MAC). */
    for (size_t i = 0; token[i]; i++) {
        char bad[PB_ADMINAUTH_TOKEN_MAX];
        memcpy(bad, token, sizeof(bad));
        bad[i] = bad[i] == '0' ? '1' : '0';
        cr_expect_null(pb_adminauth_check(secret, &cfg->admin, bad, 1000000, NULL),
                       "byte %zu changed: %s", i, bad);
    }
    /* A viewer's token rewritten to name "ops" (hex of the name) does not verify. */
    char renamed[PB_ADMINAUTH_TOKEN_MAX];
    const char *rest = strchr(token + 3, '.');
    snprintf(renamed, sizeof(renamed), "v1.%s%s", "6f7073", rest);
    cr_expect_null(pb_adminauth_check(secret, &cfg->admin, renamed, 1000000, NULL));
    cr_expect_null(pb_adminauth_check(secret, &cfg->admin, "", 1000000, NULL));
    cr_expect_null(pb_adminauth_check(secret, &cfg->admin, "v1....", 1000000, NULL));
    cr_expect_null(pb_adminauth_check(secret, &cfg->admin, "v1.6f7073.99999999999999999999.00.00",
                                      1000000, NULL));
    (void)ops;
}

Test(adminauth, a_session_ends_when_its_key_is_replaced_or_removed)
{
    const pb_admin_key *ops = pb_adminauth_key(&cfg->admin, "ops-key", 7);
    char token[PB_ADMINAUTH_TOKEN_MAX];
    pb_adminauth_session(secret, ops, 1000000, 60, nonce, token);

    char new_sha[65];
    sha256sum("new-ops-key", new_sha);
    pb_config *rotated = parse_with(new_sha, viewer_sha);
    cr_expect_null(pb_adminauth_check(secret, &rotated->admin, token, 1000000, NULL),
                   "the key of ops was replaced");
    pb_config_free(rotated);

    pb_config *same = parse_with(ops_sha, viewer_sha);
    cr_expect_not_null(pb_adminauth_check(secret, &same->admin, token, 1000000, NULL),
                       "a reload with the same keys keeps the session");
    pb_config_free(same);
}

Test(adminauth, csrf_tokens_belong_to_their_session)
{
    const pb_admin_key *ops = pb_adminauth_key(&cfg->admin, "ops-key", 7);
    char a[PB_ADMINAUTH_TOKEN_MAX], b[PB_ADMINAUTH_TOKEN_MAX];
    char csrf_a[PB_ADMINAUTH_CSRF_MAX], csrf_b[PB_ADMINAUTH_CSRF_MAX];
    char csrf_a2[PB_ADMINAUTH_CSRF_MAX], local[PB_ADMINAUTH_CSRF_MAX];
    unsigned char nonce_b[16];
    memcpy(nonce_b, nonce, sizeof(nonce_b));
    nonce_b[3] ^= 0x40;
    pb_adminauth_session(secret, ops, 1000000, 60, nonce, a);
    pb_adminauth_session(secret, ops, 1000000, 60, nonce_b, b);
    cr_assert_not_null(pb_adminauth_check(secret, &cfg->admin, a, 1000000, csrf_a));
    cr_assert_not_null(pb_adminauth_check(secret, &cfg->admin, a, 1000030, csrf_a2));
    cr_assert_not_null(pb_adminauth_check(secret, &cfg->admin, b, 1000000, csrf_b));
    cr_expect(pb_adminauth_csrf_ok(csrf_a, csrf_a2), "one session, one token");
    cr_expect(!pb_adminauth_csrf_ok(csrf_a, csrf_b), "another session's token");
    cr_expect(!pb_adminauth_csrf_ok(csrf_a, ""));
    cr_expect(!pb_adminauth_csrf_ok(csrf_a, NULL));
    char shorter[PB_ADMINAUTH_CSRF_MAX];
    snprintf(shorter, sizeof(shorter), "%.63s", csrf_a);
    cr_expect(!pb_adminauth_csrf_ok(csrf_a, shorter));
    pb_adminauth_local_csrf(secret, local);
    cr_expect_eq(strlen(local), 64);
    cr_expect(!pb_adminauth_csrf_ok(local, csrf_a));
}
