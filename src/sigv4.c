/* sigv4.c -- AWS Signature Version 4 (see sigv4.h).
 *
 * The published algorithm, step by step: (1) the canonical request -- method, canonical URI,
 * canonical query, canonical headers, signed header list, payload hash, one per line; (2) the
 * string to sign -- "AWS4-HMAC-SHA256", the time, the credential scope and the hex SHA-256 of
 * step 1; (3) the signing key -- HMAC-SHA256 chained over date, region, service and
 * "aws4_request" from "AWS4" + secret; (4) the signature, hex HMAC of step 2 under that key.
 * Hashing and HMAC are OpenSSL's; nothing cryptographic is written here.
 *
 * The canonical URI is the one detail clients get wrong: for every service but S3 AWS encodes
 * each segment of the path *as sent* once more. A Bedrock model id holds ':' (almost all end
 * in "-v1:0"), so it is sent as "%3A" and signed as "%253A"; an inference-profile ARN also
 * holds '/', sent as "%2F" and signed as "%252F". curl 7.88 (Debian 12) signs the sent path
 * verbatim (its aws-sigv4 option encodes nothing before curl 8.9), so its signature for such
 * a path never matches what Bedrock computes: planb signs itself, with this module. */
#include "planb/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "planb/buf.h"

#define SIGV4_MAX_PATH_BYTES   8192  /* a Bedrock path is under 300; far above any real one */
#define SIGV4_MAX_QUERY_BYTES  8192  /* Bedrock sends none; Azure-style api-version at most */
#define SIGV4_MAX_QUERY_PARAMS 64    /* same */
#define SIGV4_MAX_FIELD_BYTES  4096  /* one header value, host, region, key id (tokens ~1 KiB) */
#define SIGV4_MAX_CANON_BYTES  65536 /* the whole canonical request under the bounds above */
#define SIGV4_ALGORITHM        "AWS4-HMAC-SHA256"

enum { SIGV4_ERR = 1 };

typedef struct sigv4_kv {
    char *name;  /* lowercased header name, or the encoded query key */
    char *value; /* normalised header value, or the encoded query value */
    size_t seq;  /* input order: duplicates keep it (stable sort) */
} sigv4_kv;

static bool
sigv4_is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

char *
pb_sigv4_uri_encode(const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = pb_xmalloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sigv4_is_unreserved(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

static int
sigv4_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A query part as sent, percent-decoded then encoded the canonical way: the query is encoded
 * once in the canonical request, whether the sender encoded it or not (a '%' not followed by
 * two hex digits is taken literally). Caller frees. */
static char *
sigv4_query_part(const char *s, size_t n)
{
    char *raw = pb_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = sigv4_hexval(s[i + 1])) >= 0 &&
            (lo = sigv4_hexval(s[i + 2])) >= 0) {
            raw[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            raw[o++] = s[i];
        }
    }
    char *enc = pb_sigv4_uri_encode(raw, o);
    free(raw);
    return enc;
}

static void
sigv4_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* OpenSSL 3 looks an algorithm up (locks, a hash table, a property query) every time a
 * legacy EVP_sha256() or the one-shot HMAC() is used: five HMACs and two digests a request
 * paid that seven times, half of a signature's cost. Fetched once per process instead. */
static EVP_MD *sigv4_md;
static EVP_MAC *sigv4_mac;
static pthread_once_t sigv4_once = PTHREAD_ONCE_INIT;

static void
sigv4_fetch(void)
{
    sigv4_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sigv4_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    pb_assert(sigv4_md != NULL && sigv4_mac != NULL);
}

static void
sigv4_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    pthread_once(&sigv4_once, sigv4_fetch);
    pb_assert(EVP_Digest(p, n, md, &md_len, sigv4_md, NULL) == 1 && md_len == 32);
    sigv4_hex(md, 32, out);
}

static void
sigv4_hmac(const void *key, size_t key_len, const char *msg, size_t msg_len, unsigned char out[32])
{
    size_t len = 0;
    pthread_once(&sigv4_once, sigv4_fetch);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(sigv4_mac);
    static char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    pb_assert(ctx != NULL && EVP_MAC_init(ctx, key, key_len, params) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)msg, msg_len) == 1 &&
              EVP_MAC_final(ctx, out, &len, 32) == 1 && len == 32);
    EVP_MAC_CTX_free(ctx);
}

static int
sigv4_kv_cmp(const void *a, const void *b)
{
    const sigv4_kv *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c == 0)
        c = strcmp(x->value, y->value);
    if (c == 0)
        c = x->seq < y->seq ? -1 : x->seq > y->seq;
    return c;
}

/* Header order only: equal names keep their input order, so duplicates join as sent. */
static int
sigv4_header_cmp(const void *a, const void *b)
{
    const sigv4_kv *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

static void
sigv4_kv_free(sigv4_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
}

static bool
sigv4_field_ok(const char *s)
{
    return s && *s && strlen(s) <= SIGV4_MAX_FIELD_BYTES && !strpbrk(s, "\r\n");
}

static bool
sigv4_date_ok(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return false;
    return true;
}

static void
sigv4_put(pb_buf *b, const char *s)
{
    pb_buf_append(b, s, strlen(s));
}

/* The canonical URI: dot segments and empty segments removed (RFC 3986 normalisation, as AWS
 * does for every service but S3), each remaining segment of the sent path encoded again. */
static void
sigv4_canonical_uri(const char *path, pb_buf *b)
{
    size_t len = strlen(path);
    /* Start offsets and lengths of the kept segments (a stack for "..") */
    size_t n = 0, *start = pb_xmalloc(sizeof(size_t) * (len / 2 + 2));
    size_t *slen = pb_xmalloc(sizeof(size_t) * (len / 2 + 2));
    for (size_t i = 0; i < len;) {
        while (i < len && path[i] == '/')
            i++;
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t k = j - i;
        if (k == 0 || (k == 1 && path[i] == '.')) {
            /* empty or "." */
        } else if (k == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (n)
                n--;
        } else {
            start[n] = i;
            slen[n++] = k;
        }
        i = j;
    }
    for (size_t s = 0; s < n; s++) {
        char *enc = pb_sigv4_uri_encode(path + start[s], slen[s]);
        pb_buf_append(b, "/", 1);
        sigv4_put(b, enc);
        free(enc);
    }
    if (n == 0 || (len && path[len - 1] == '/'))
        pb_buf_append(b, "/", 1);
    free(start);
    free(slen);
}

static int
sigv4_canonical_query(const char *q, pb_buf *b, pb_error *err)
{
    if (!q || !*q)
        return PB_OK;
    if (strlen(q) > SIGV4_MAX_QUERY_BYTES) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 query over %d bytes", SIGV4_MAX_QUERY_BYTES);
        return PB_ERR;
    }
    sigv4_kv kv[SIGV4_MAX_QUERY_PARAMS];
    size_t n = 0;
    for (const char *p = q; *p;) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen) {
            if (n == SIGV4_MAX_QUERY_PARAMS) {
                sigv4_kv_free(kv, n);
                pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 over %d query parameters",
                             SIGV4_MAX_QUERY_PARAMS);
                return PB_ERR;
            }
            const char *eq = memchr(p, '=', plen);
            size_t klen = eq ? (size_t)(eq - p) : plen;
            kv[n].name = sigv4_query_part(p, klen);
            kv[n].value = eq ? sigv4_query_part(eq + 1, plen - klen - 1) : pb_xstrdup("");
            kv[n].seq = n;
            n++;
        }
        p += plen + (amp ? 1 : 0);
    }
    qsort(kv, n, sizeof(kv[0]), sigv4_kv_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            pb_buf_append(b, "&", 1);
        sigv4_put(b, kv[i].name);
        pb_buf_append(b, "=", 1);
        sigv4_put(b, kv[i].value);
    }
    sigv4_kv_free(kv, n);
    return PB_OK;
}

/* A header value as signed: leading and trailing blanks dropped, inner runs of blanks one
 * space (AWS's "Trimall"). Caller frees. */
static char *
sigv4_trimall(const char *v)
{
    char *out = pb_xmalloc(strlen(v) + 1);
    size_t o = 0;
    bool blank = false;
    while (*v == ' ' || *v == '\t')
        v++;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            blank = true;
            continue;
        }
        if (blank && o)
            out[o++] = ' ';
        blank = false;
        out[o++] = *v;
    }
    out[o] = '\0';
    return out;
}

static char *
sigv4_lower(const char *s)
{
    char *out = pb_xstrdup(s);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

/* Canonical headers and the signed-header list: names lowercased and sorted, duplicates joined
 * with ',' in the order given. host, x-amz-date and the optional token and payload hash come
 * from the request's fields; passing them among headers too is an error (two values). */
static int
sigv4_canonical_headers(const pb_sigv4_request *req, const char *payload_hex, pb_buf *b,
                        pb_buf *names, pb_error *err)
{
    if (req->n_headers > PB_SIGV4_MAX_HEADERS) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 over %d headers to sign", PB_SIGV4_MAX_HEADERS);
        return PB_ERR;
    }
    sigv4_kv kv[PB_SIGV4_MAX_HEADERS + 4];
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const pb_sigv4_header *h = &req->headers[i];
        if (!sigv4_field_ok(h->name) || !h->value || strlen(h->value) > SIGV4_MAX_FIELD_BYTES ||
            strpbrk(h->value, "\r\n")) {
            sigv4_kv_free(kv, n);
            pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 header %zu is empty, too long or multi-line",
                         i);
            return PB_ERR;
        }
        char *name = sigv4_lower(h->name);
        if (!strcmp(name, "host") || !strcmp(name, "x-amz-date") ||
            !strcmp(name, "x-amz-security-token") || !strcmp(name, "x-amz-content-sha256") ||
            !strcmp(name, "authorization")) {
            pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 header %s is set by the signer", name);
            free(name);
            sigv4_kv_free(kv, n);
            return PB_ERR;
        }
        kv[n] = (sigv4_kv){name, sigv4_trimall(h->value), n};
        n++;
    }
    kv[n] = (sigv4_kv){pb_xstrdup("host"), sigv4_trimall(req->host), n};
    n++;
    kv[n] = (sigv4_kv){pb_xstrdup("x-amz-date"), pb_xstrdup(req->amz_date), n};
    n++;
    if (req->session_token && *req->session_token) {
        kv[n] =
            (sigv4_kv){pb_xstrdup("x-amz-security-token"), sigv4_trimall(req->session_token), n};
        n++;
    }
    if (req->sign_content_sha256) {
        kv[n] = (sigv4_kv){pb_xstrdup("x-amz-content-sha256"), pb_xstrdup(payload_hex), n};
        n++;
    }
    qsort(kv, n, sizeof(kv[0]), sigv4_header_cmp);
    for (size_t i = 0; i < n; i++) {
        bool dup = i && !strcmp(kv[i].name, kv[i - 1].name);
        if (dup) {
            pb_buf_append(b, ",", 1);
        } else {
            if (i) {
                pb_buf_append(b, "\n", 1);
                pb_buf_append(names, ";", 1);
            }
            sigv4_put(b, kv[i].name);
            pb_buf_append(b, ":", 1);
            sigv4_put(names, kv[i].name);
        }
        sigv4_put(b, kv[i].value);
    }
    pb_buf_append(b, "\n", 1);
    sigv4_kv_free(kv, n);
    return PB_OK;
}

static int
sigv4_check(const pb_sigv4_request *req, pb_error *err)
{
    const char *missing = !req->method              ? "method"
                          : !req->host              ? "host"
                          : !req->region            ? "region"
                          : !req->service           ? "service"
                          : !req->access_key_id     ? "access key id"
                          : !req->secret_access_key ? "secret access key"
                                                    : NULL;
    if (missing) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 no %s", missing);
        return PB_ERR;
    }
    if (!sigv4_field_ok(req->method) || !sigv4_field_ok(req->host) ||
        !sigv4_field_ok(req->region) || !sigv4_field_ok(req->service) ||
        !sigv4_field_ok(req->access_key_id) || !sigv4_field_ok(req->secret_access_key) ||
        (req->session_token && *req->session_token && !sigv4_field_ok(req->session_token))) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 a field is empty, multi-line or over %d bytes",
                     SIGV4_MAX_FIELD_BYTES);
        return PB_ERR;
    }
    if (!sigv4_date_ok(req->amz_date)) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 amz_date is not YYYYMMDDTHHMMSSZ");
        return PB_ERR;
    }
    if (req->path && (strlen(req->path) > SIGV4_MAX_PATH_BYTES || strpbrk(req->path, "?#"))) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 path over %d bytes or holding ? or #",
                     SIGV4_MAX_PATH_BYTES);
        return PB_ERR;
    }
    if (req->body_sha256_hex && strlen(req->body_sha256_hex) != 64) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 body_sha256_hex is not 64 hex digits");
        return PB_ERR;
    }
    return PB_OK;
}

int
pb_sigv4_sign(const pb_sigv4_request *req, pb_sigv4_signed *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    if (sigv4_check(req, err) != PB_OK)
        return PB_ERR;
    char payload_hex[65];
    if (req->body_sha256_hex)
        memcpy(payload_hex, req->body_sha256_hex, 65);
    else
        sigv4_sha256_hex(req->body ? req->body : "", req->body_len, payload_hex);

    pb_buf creq, names;
    pb_buf_init(&creq, SIGV4_MAX_CANON_BYTES);
    pb_buf_init(&names, SIGV4_MAX_CANON_BYTES);
    sigv4_put(&creq, req->method);
    pb_buf_append(&creq, "\n", 1);
    sigv4_canonical_uri(req->path && *req->path ? req->path : "/", &creq);
    pb_buf_append(&creq, "\n", 1);
    if (sigv4_canonical_query(req->query, &creq, err) != PB_OK ||
        (pb_buf_append(&creq, "\n", 1),
         sigv4_canonical_headers(req, payload_hex, &creq, &names, err) != PB_OK)) {
        pb_buf_free(&creq);
        pb_buf_free(&names);
        return PB_ERR;
    }
    pb_buf_append(&creq, "\n", 1);
    sigv4_put(&creq, names.data);
    pb_buf_append(&creq, "\n", 1);
    sigv4_put(&creq, payload_hex);
    if (creq.overflow || names.overflow) {
        pb_buf_free(&creq);
        pb_buf_free(&names);
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 canonical request over %d bytes",
                     SIGV4_MAX_CANON_BYTES);
        return PB_ERR;
    }

    char date[9];
    memcpy(date, req->amz_date, 8);
    date[8] = '\0';
    char *scope = pb_xasprintf("%s/%s/%s/aws4_request", date, req->region, req->service);
    char creq_hex[65];
    sigv4_sha256_hex(creq.data, creq.len, creq_hex);
    char *sts = pb_xasprintf(SIGV4_ALGORITHM "\n%s\n%s\n%s", req->amz_date, scope, creq_hex);

    /* The signing key: secret, date, region, service, "aws4_request" chained. The secret's
     * copy is wiped before it is freed. */
    size_t slen = strlen(req->secret_access_key);
    char *k0 = pb_xmalloc(slen + 5);
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, req->secret_access_key, slen + 1);
    unsigned char k[32], sig[32];
    sigv4_hmac(k0, slen + 4, date, 8, k);
    OPENSSL_cleanse(k0, slen + 4);
    free(k0);
    sigv4_hmac(k, 32, req->region, strlen(req->region), k);
    sigv4_hmac(k, 32, req->service, strlen(req->service), k);
    sigv4_hmac(k, 32, "aws4_request", 12, k);
    sigv4_hmac(k, 32, sts, strlen(sts), sig);
    OPENSSL_cleanse(k, sizeof(k));
    char sig_hex[65];
    sigv4_hex(sig, 32, sig_hex);

    out->authorization =
        pb_xasprintf(SIGV4_ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                     req->access_key_id, scope, names.data, sig_hex);
    out->amz_date = pb_xstrdup(req->amz_date);
    out->content_sha256 = pb_xstrdup(payload_hex);
    out->security_token =
        req->session_token && *req->session_token ? pb_xstrdup(req->session_token) : NULL;
    out->canonical_request = pb_xstrndup(creq.data, creq.len);
    out->string_to_sign = sts;
    free(scope);
    pb_buf_free(&creq);
    pb_buf_free(&names);
    return PB_OK;
}

void
pb_sigv4_signed_free(pb_sigv4_signed *out)
{
    if (!out)
        return;
    free(out->authorization);
    free(out->amz_date);
    free(out->content_sha256);
    free(out->security_token);
    free(out->canonical_request);
    free(out->string_to_sign);
    memset(out, 0, sizeof(*out));
}

void
pb_sigv4_amz_date(int64_t wall_ms, char out[17])
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    pb_assert(strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == 16);
}

/* The received header called name (any case), NULL when absent; *count gets how many there
 * are (a signed host or date sent twice is refused). */
static const char *
sigv4_received_header(const pb_sigv4_received *r, const char *name, size_t *count)
{
    const char *v = NULL;
    *count = 0;
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name && !strcasecmp(r->headers[i].name, name)) {
            if (!v)
                v = r->headers[i].value;
            (*count)++;
        }
    return v;
}

/* The pieces of "AWS4-HMAC-SHA256 Credential=K/D/R/S/aws4_request, SignedHeaders=a;b,
 * Signature=hex", copied into buf (which must hold strlen(auth) + 1 bytes). */
typedef struct sigv4_auth {
    char *key_id, *date, *region, *service; /* the credential's parts */
    char *signed_headers;                   /* "a;b;c" */
    char *signature;                        /* 64 hex */
} sigv4_auth;

static int
sigv4_parse_auth(const char *auth, char *buf, sigv4_auth *a)
{
    memset(a, 0, sizeof(*a));
    size_t plen = strlen(SIGV4_ALGORITHM " ");
    if (strncmp(auth, SIGV4_ALGORITHM " ", plen) != 0)
        return PB_ERR;
    strcpy(buf, auth + plen);
    char *save = NULL;
    for (char *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        while (*part == ' ')
            part++;
        char *eq = strchr(part, '=');
        if (!eq)
            return PB_ERR;
        *eq = '\0';
        char *v = eq + 1;
        if (!strcmp(part, "Credential") && !a->key_id) {
            char *f[5], *s2 = NULL;
            int n = 0;
            for (char *x = strtok_r(v, "/", &s2); x && n < 6; x = strtok_r(NULL, "/", &s2))
                if (n < 5)
                    f[n++] = x;
                else
                    n++;
            if (n != 5 || strcmp(f[4], "aws4_request") != 0)
                return PB_ERR;
            a->key_id = f[0];
            a->date = f[1];
            a->region = f[2];
            a->service = f[3];
        } else if (!strcmp(part, "SignedHeaders") && !a->signed_headers) {
            a->signed_headers = v;
        } else if (!strcmp(part, "Signature") && !a->signature) {
            a->signature = v;
        } else {
            return PB_ERR;
        }
    }
    return a->key_id && a->signed_headers && a->signature && strlen(a->signature) == 64 ? PB_OK
                                                                                        : PB_ERR;
}

int
pb_sigv4_verify(const pb_sigv4_received *r, const char *region, const char *service,
                const char *access_key_id, const char *secret_access_key, const char **amz_date,
                pb_error *err)
{
    size_t count;
    const char *auth = sigv4_received_header(r, "authorization", &count);
    if (!auth || count != 1 || strlen(auth) > SIGV4_MAX_FIELD_BYTES) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 no single Authorization header");
        return PB_ERR;
    }
    char *buf = pb_xmalloc(strlen(auth) + 1);
    sigv4_auth a;
    pb_sigv4_header hdrs[PB_SIGV4_MAX_HEADERS];
    pb_sigv4_request req = {.method = r->method,
                            .path = r->path,
                            .query = r->query,
                            .headers = hdrs,
                            .body = r->body,
                            .body_len = r->body_len,
                            .region = region,
                            .service = service,
                            .access_key_id = access_key_id,
                            .secret_access_key = secret_access_key};
    const char *why = NULL;
    if (sigv4_parse_auth(auth, buf, &a) != PB_OK)
        why = "Authorization is not AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=";
    else if (strcmp(a.key_id, access_key_id) != 0)
        why = "unknown access key id";
    else if (strcmp(a.region, region) != 0 || strcmp(a.service, service) != 0)
        why = "credential scope names another region or service";
    char body_hex[65];
    sigv4_sha256_hex(r->body ? r->body : "", r->body_len, body_hex);
    const char *sent_hash = sigv4_received_header(r, "x-amz-content-sha256", &count);
    if (!why && sent_hash && (count != 1 || strcmp(sent_hash, body_hex) != 0))
        why = "x-amz-content-sha256 is not the body's SHA-256";
    bool has_host = false, has_date = false;
    char *save = NULL;
    for (char *name = why ? NULL : strtok_r(a.signed_headers, ";", &save); name && !why;
         name = strtok_r(NULL, ";", &save)) {
        const char *v = sigv4_received_header(r, name, &count);
        if (!v) {
            why = "a signed header was not sent";
        } else if (!strcmp(name, "host")) {
            req.host = v;
            has_host = count == 1;
        } else if (!strcmp(name, "x-amz-date")) {
            req.amz_date = v;
            has_date = count == 1;
        } else if (!strcmp(name, "x-amz-security-token")) {
            req.session_token = v;
        } else if (!strcmp(name, "x-amz-content-sha256")) {
            req.sign_content_sha256 = true;
        } else {
            for (size_t i = 0; i < r->n_headers && !why; i++) {
                if (!r->headers[i].name || strcasecmp(r->headers[i].name, name) != 0)
                    continue;
                if (req.n_headers == PB_SIGV4_MAX_HEADERS)
                    why = "too many signed headers";
                else
                    hdrs[req.n_headers++] = r->headers[i];
            }
        }
    }
    if (!why && (!has_host || !has_date))
        why = "host and x-amz-date must each be signed once";
    else if (!why && strncmp(req.amz_date, a.date, 8) != 0)
        why = "x-amz-date is not the credential's date";
    pb_sigv4_signed s = {0};
    pb_error serr = {0};
    if (!why && pb_sigv4_sign(&req, &s, &serr) != PB_OK)
        why = "the request cannot be signed";
    if (!why && (strlen(s.authorization) != strlen(auth) ||
                 CRYPTO_memcmp(s.authorization, auth, strlen(auth)) != 0))
        why = "signature does not match";
    if (!why && amz_date)
        *amz_date = req.amz_date;
    pb_sigv4_signed_free(&s);
    free(buf);
    if (why) {
        pb_error_set(err, SIGV4_ERR, "BAD_SIGV4 %s", why);
        return PB_ERR;
    }
    return PB_OK;
}
