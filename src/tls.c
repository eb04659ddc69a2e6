/* tls.c -- OpenSSL 3 contexts from planb's TLS options; handshake failures put in words.
 *
 * Nothing here is cryptography of our own: OpenSSL verifies the chain
 * (SSL_VERIFY_PEER against the configured or system CAs) and the peer's name
 * (X509_VERIFY_PARAM host or IP check, which neither hiredis nor redis-cli do).
 * SSL_OP_IGNORE_UNEXPECTED_EOF makes a peer that closes without close_notify
 * an ordinary EOF, as OpenSSL 1.1 had it: Redis and many proxies do close so,
 * and libevent 2.1.12 would otherwise report every such close as an error. */
#include "planb/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"

struct pb_tls {
    SSL_CTX *ctx;
    char *server_name; /* the name peers must prove; NULL: the host connected to */
    bool verify;
};

/* "what: OpenSSL's reason" from the error queue, which is cleared. */
static void
tls_why(char *why, size_t size, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    snprintf(why, size, "%s %s: %s", what, file, reason ? reason : "unusable");
    ERR_clear_error();
}

/* Refuses a passphrase prompt: OpenSSL's default asks on the terminal, which would block a
 * process reading an encrypted key (config.c refuses those; a file swapped since is one). */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static SSL_CTX *
tls_ctx_new(const SSL_METHOD *method, int min_version)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    pb_assert(ctx != NULL); /* only out of memory fails here */
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
    SSL_CTX_set_min_proto_version(ctx, min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    return ctx;
}

/* The certificate chain and its key, checked to belong together. */
static bool
tls_load_pair(SSL_CTX *ctx, const char *cert_file, const char *key_file, char *why, size_t size)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        tls_why(why, size, "certificate", cert_file);
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        tls_why(why, size, "key", key_file);
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_why(why, size, "key", key_file);
        return false;
    }
    return true;
}

pb_tls *
pb_tls_client_new(const pb_tls_conf *conf, char *why, size_t why_size)
{
    SSL_CTX *ctx = tls_ctx_new(TLS_client_method(), conf->min_version);
    if (conf->ca_file || conf->ca_dir) {
        if (SSL_CTX_load_verify_locations(ctx, conf->ca_file, conf->ca_dir) != 1) {
            tls_why(why, why_size, "CA", conf->ca_file ? conf->ca_file : conf->ca_dir);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        tls_why(why, why_size, "CA", "(system store)");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (conf->cert_file && !tls_load_pair(ctx, conf->cert_file, conf->key_file, why, why_size)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, conf->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    pb_tls *t = pb_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    t->server_name = conf->server_name ? pb_xstrdup(conf->server_name) : NULL;
    t->verify = conf->verify;
    return t;
}

pb_tls *
pb_tls_server_new(const char *cert_file, const char *key_file, char *why, size_t why_size)
{
    SSL_CTX *ctx = tls_ctx_new(TLS_server_method(), 12);
    if (!tls_load_pair(ctx, cert_file, key_file, why, why_size)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    pb_tls *t = pb_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    return t;
}

void
pb_tls_free(pb_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t->server_name);
    free(t);
}

bool
pb_tls_unverified(const pb_tls *t)
{
    return !t->verify;
}

static bool
tls_is_address(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

SSL *
pb_tls_client_ssl(const pb_tls *t, const char *host)
{
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL)
        return NULL;
    const char *name = t->server_name ? t->server_name : host;
    bool address = tls_is_address(name);
    if (!address) {    /* SNI never carries an address (RFC 6066) */
        char sni[256]; /* the macro casts away const: hand it a copy (DNS names are <= 253) */
        snprintf(sni, sizeof sni, "%s", name);
        SSL_set_tlsext_host_name(ssl, sni);
    }
    if (t->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = address ? X509_VERIFY_PARAM_set1_ip_asc(vp, name)
                         : X509_VERIFY_PARAM_set1_host(vp, name, 0);
        if (ok != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}

SSL *
pb_tls_server_ssl(const pb_tls *t)
{
    return SSL_new(t->ctx);
}

bool
pb_tls_error_is_eof(unsigned long err)
{
    return ERR_GET_LIB(err) == ERR_LIB_SSL &&
           ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/* A hint for the reasons a wrong URL scheme produces, which OpenSSL words for its own kind. */
static const char *
tls_hint(unsigned long err)
{
    if (ERR_GET_LIB(err) != ERR_LIB_SSL)
        return "";
    switch (ERR_GET_REASON(err)) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
        return " (the server speaks plaintext: use redis://)";
    default:
        return "";
    }
}

void
pb_tls_reason(SSL *ssl, unsigned long err, char *buf, size_t size)
{
    if (err == 0)
        err = ERR_get_error();
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
        vr != X509_V_OK)
        snprintf(buf, size, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    else if (err != 0) {
        const char *r = ERR_reason_error_string(err);
        snprintf(buf, size, "%s%s", r ? r : "TLS error", tls_hint(err));
    } else
        snprintf(buf, size, "TLS handshake failed");
    ERR_clear_error();
}
