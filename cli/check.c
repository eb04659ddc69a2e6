/* check.c -- `planb check`: validate a config file and say what it holds; with --connect,
 * try every Redis and provider it names.
 *
 * The config may also be named without -c (`planb check FILE`). Without
 * --connect it never connects to anything, so a config can be checked before
 * Redis is up (as deploy/planb.service's ExecStartPre does); it warns about TLS
 * that verifies nothing. --connect then tries, once each and bounded, the
 * queue's Redis (through its sentinels when it has them), cache.redis when it
 * is another one, and each provider's base_url with its TLS and proxy options
 * (any HTTP status is an answer, but for a proxy's 407: only the way there is
 * checked). One line per target says ok or why not; secrets (passwords, API
 * keys, proxy credentials, URL paths) are never printed. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "planb/sentinel.h"

#define CHECK_CONNECT_MS 3000 /* one target: connect, TLS handshake and first reply */

/* A warning for each TLS client config that checks nothing (verify: false). */
static void
check_warn_unverified(const pb_tls_conf *t, const char *key)
{
    if (t->on && !t->verify)
        printf("warning: %s.verify is false: the server's certificate and name are not checked\n",
               key);
}

/* One Redis (cfg's redis_* fields; label "redis" or "cache.redis"): PB_OK when it answered. */
static int
check_redis(const pb_config *cfg, const char *label)
{
    char where[300], why[300];
    pb_redissync *c =
        pb_sentinel_open_sync(cfg, CHECK_CONNECT_MS, where, sizeof(where), why, sizeof(why));
    if (c == NULL) {
        printf("FAILED %s %s: %s\n", label, where, why);
        return PB_ERR;
    }
    pb_redissync_free(c);
    printf("ok %s %s://%s", label, cfg->redis_tls.on ? "rediss" : "redis", where);
    if (cfg->n_sentinels > 0)
        printf(" (master \"%s\", from the sentinels)", cfg->master_name);
    printf("\n");
    return PB_OK;
}

/* scheme://host[:port] of a URL, never its credentials, path or query. */
static void
check_url_origin(const char *url, char *out, size_t size)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    snprintf(out, size, "(unparsable URL)");
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
            snprintf(out, size, "%s://%s:%s", scheme, host, port);
        else
            snprintf(out, size, "%s://%s", scheme, host);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* Discards a reply body (HEAD has none, a server may still send one). */
static size_t
check_discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* One HEAD to p's base_url with its TLS files and proxy, as src/http.c sets them; no API key
 * or extra header is sent. PB_OK when any HTTP status came back (but the proxy's 407). */
static int
check_provider(const pb_provider_conf *p)
{
    char origin[300], error[CURL_ERROR_SIZE] = "";
    check_url_origin(p->base_url, origin, sizeof(origin));
    CURL *e = curl_easy_init();
    pb_assert(e != NULL);
    curl_easy_setopt(e, CURLOPT_URL, p->base_url);
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, check_discard);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CHECK_CONNECT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)CHECK_CONNECT_MS);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "planb/0.1 (check --connect)");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
    if (p->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file);
    if (p->cert_file != NULL) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, p->cert_file);
        curl_easy_setopt(e, CURLOPT_SSLKEY, p->key_file);
    }
    if (p->proxy != NULL) {
        curl_easy_setopt(e, CURLOPT_PROXY, p->proxy);
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        printf("FAILED provider %s %s: %s\n", p->name, origin,
               error[0] ? error : curl_easy_strerror(rc));
        return PB_ERR;
    }
    /* An http:// base_url goes to the proxy by absolute URI, so the proxy's refusal of its
     * credential comes back as the status: the provider was not reached. */
    if (p->proxy != NULL && status == 407) {
        printf("FAILED provider %s %s: the proxy refused its credential (HTTP 407)\n", p->name,
               origin);
        return PB_ERR;
    }
    printf("ok provider %s %s (HTTP %ld)\n", p->name, origin, status);
    return PB_OK;
}

/* Whether cache.redis is a Redis of its own rather than the queue's again. */
static bool
check_cache_is_other(const pb_config *cfg)
{
    const pb_config *c = cfg->cache_redis;
    return c != NULL && (strcmp(c->redis_url, cfg->redis_url) != 0 ||
                         c->redis_db != cfg->redis_db || c->n_sentinels != cfg->n_sentinels);
}

/* --connect: every target once; PB_CLI_EXIT_USAGE (2) when any failed. */
static int
check_connect(const pb_config *cfg)
{
    int failed = 0;
    failed += check_redis(cfg, "redis") != PB_OK;
    if (check_cache_is_other(cfg))
        failed += check_redis(cfg->cache_redis, "cache.redis") != PB_OK;
    for (size_t i = 0; i < cfg->n_providers; i++)
        failed += check_provider(&cfg->providers[i]) != PB_OK;
    if (failed)
        printf("%d of the targets above failed\n", failed);
    return failed ? PB_CLI_EXIT_USAGE : PB_CLI_EXIT_OK;
}

int
pb_cli_check(pb_cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {{"connect", no_argument, NULL, 'C'}, {NULL, 0, NULL, 0}};
    bool connect = false;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'C')
            return pb_cli_usage_error(ctx);
        connect = true;
    }
    if (ctx->config_path == NULL && optind < argc)
        ctx->config_path = argv[optind];
    int code = pb_cli_ready(ctx);
    if (code != PB_CLI_EXIT_OK)
        return code;
    const pb_config *cfg = ctx->cfg;
    printf("ok: %zu providers, %zu models, %zu routes, %d workers x %d concurrency\n",
           cfg->n_providers, cfg->n_models, cfg->n_routes, cfg->workers, cfg->concurrency);
    if (cfg->http.listen)
        printf("front door: %s://%s/v1 (%zu keys)\n", cfg->http.tls_cert_file ? "https" : "http",
               cfg->http.listen, cfg->http.n_keys);
    check_warn_unverified(&cfg->redis_tls, "redis.tls");
    check_warn_unverified(&cfg->sentinel_tls, "redis.sentinel_tls");
    if (cfg->cache_redis != NULL) {
        check_warn_unverified(&cfg->cache_redis->redis_tls, "cache.redis.tls");
        check_warn_unverified(&cfg->cache_redis->sentinel_tls, "cache.redis.sentinel_tls");
    }
    return connect ? check_connect(cfg) : PB_CLI_EXIT_OK;
}
