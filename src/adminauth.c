/* adminauth.c -- admin keys, signed session tokens and CSRF tokens (see adminauth.h). */
#include "planb/adminauth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_NAME_HEX_MAX 129 /* a name is at most 64 bytes */

static void
auth_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* HMAC-SHA256(secret, a || b[0..blen)) as 64 hex digits. */
static void
auth_mac(const unsigned char *secret, const char *a, const unsigned char *b, size_t blen,
         char out[65])
{
    unsigned char msg[PB_ADMINAUTH_TOKEN_MAX + 64], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t alen = strlen(a);
    if (alen + blen > sizeof(msg))
        alen = sizeof(msg) - blen;
    memcpy(msg, a, alen);
    memcpy(msg + alen, b, blen);
    HMAC(EVP_sha256(), secret, PB_ADMINAUTH_SECRET_BYTES, msg, alen + blen, mac, &mac_len);
    auth_hex(mac, 32, out);
}

const pb_admin_key *
pb_adminauth_key(const pb_admin_conf *ac, const char *key, size_t len)
{
    unsigned char sum[32];
    SHA256((const unsigned char *)key, len, sum);
    const pb_admin_key *hit = NULL;
    for (size_t i = 0; i < ac->n_keys; i++)
        if (CRYPTO_memcmp(sum, ac->keys[i].sha256, 32) == 0)
            hit = &ac->keys[i];
    return hit;
}

void
pb_adminauth_session(const unsigned char *secret, const pb_admin_key *k, int64_t now_s, int ttl_s,
                     const unsigned char nonce[16], char out[PB_ADMINAUTH_TOKEN_MAX])
{
    char name_hex[AUTH_NAME_HEX_MAX], nonce_hex[33], mac[65];
    size_t nlen = strlen(k->name);
    auth_hex((const unsigned char *)k->name, nlen > 64 ? 64 : nlen, name_hex);
    auth_hex(nonce, 16, nonce_hex);
    char body[256];
    snprintf(body, sizeof(body), "v1.%s.%lld.%s", name_hex, (long long)(now_s + ttl_s), nonce_hex);
    auth_mac(secret, body, k->sha256, 32, mac);
    snprintf(out, PB_ADMINAUTH_TOKEN_MAX, "%s.%s", body, mac);
}

/* Decodes 2n hex digits into out (n bytes); -1 unless they all are hex. */
static int
auth_unhex(const char *s, size_t n2, char *out)
{
    for (size_t i = 0; i < n2; i += 2) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[i + j];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i / 2] = (char)v;
    }
    return 0;
}

const pb_admin_key *
pb_adminauth_check(const unsigned char *secret, const pb_admin_conf *ac, const char *token,
                   int64_t now_s, char csrf[PB_ADMINAUTH_CSRF_MAX])
{
    size_t len = token ? strlen(token) : 0;
    if (len < 10 || len >= PB_ADMINAUTH_TOKEN_MAX || strncmp(token, "v1.", 3) != 0)
        return NULL;
    const char *name_hex = token + 3, *dot1 = strchr(name_hex, '.');
    const char *exp = dot1 ? dot1 + 1 : NULL, *dot2 = exp ? strchr(exp, '.') : NULL;
    const char *nonce = dot2 ? dot2 + 1 : NULL, *dot3 = nonce ? strchr(nonce, '.') : NULL;
    if (dot3 == NULL || dot3 - nonce != 32 || strlen(dot3 + 1) != 64)
        return NULL;
    size_t nh = (size_t)(dot1 - name_hex);
    char name[65];
    if (nh == 0 || nh % 2 || nh > 128 || auth_unhex(name_hex, nh, name) != 0)
        return NULL;
    name[nh / 2] = '\0';
    char *end = NULL;
    long long expiry = strtoll(exp, &end, 10);
    if (end != dot2 || expiry <= now_s)
        return NULL;
    const pb_admin_key *k = NULL;
    for (size_t i = 0; i < ac->n_keys && k == NULL; i++)
        if (strcmp(ac->keys[i].name, name) == 0)
            k = &ac->keys[i];
    if (k == NULL)
        return NULL;
    char body[PB_ADMINAUTH_TOKEN_MAX], mac[65];
    snprintf(body, sizeof(body), "%.*s", (int)(dot3 - token), token);
    auth_mac(secret, body, k->sha256, 32, mac);
    if (CRYPTO_memcmp(mac, dot3 + 1, 64) != 0)
        return NULL;
    if (csrf != NULL)
        auth_mac(secret, "csrf.", (const unsigned char *)nonce, 32, csrf);
    return k;
}

void
pb_adminauth_local_csrf(const unsigned char *secret, char csrf[PB_ADMINAUTH_CSRF_MAX])
{
    auth_mac(secret, "csrf.local", (const unsigned char *)"", 0, csrf);
}

int
pb_adminauth_csrf_ok(const char *want, const char *got)
{
    return got != NULL && strlen(got) == 64 && strlen(want) == 64 &&
           CRYPTO_memcmp(want, got, 64) == 0;
}
