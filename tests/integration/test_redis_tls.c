/* test_redis_tls.c -- planb on a Redis that only speaks TLS, as managed services do.
 *
 * World: Debian's redis-server with --tls-port and a throwaway CA (tests/support/make_certs.sh;
 * the plaintext port is the test's own probe), planb-mock, and the real planb binary. Jobs
 * flow over TLS with every connection of every process on the TLS port; mutual TLS; each
 * bad case (wrong CA, host-name mismatch, expired certificate, missing client certificate,
 * plaintext behind rediss://, TLS behind redis://) logs its named reason within 2 s and
 * planb keeps retrying until the server is fixed; a rotated server CA is taken on SIGHUP
 * without losing a job, and a CA file that does not load refuses the reload; the answer cache
 * on a Redis of its own (cache.redis) over TLS. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "planb/core.h"
#include "th_jobs.h"

#define TLS_REASON_WITHIN_MS 2000 /* the bound on naming a TLS failure */

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc; /* plaintext probe of redis_p */

static void
setup(void)
{
    setenv("PB_TEST_KEY", "sk-test-not-a-real-key", 1);
    /* AOF on: the tests restart the server with new certificates and keep its jobs */
    cr_assert_eq(th_redis_start_tls(&redis_p, "appendonly yes"), 0,
                 "redis-server with TLS did not start");
    cr_assert_eq(th_mock_start(&mock_p, NULL), 0);
    rc = th_redis(redis_p.port);
}

static void
teardown(void)
{
    th_planb_stop(&planb_p, 10000);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 120);

static int front_port; /* http.listen of serve_front, 0 none */

/* Starts planb on url with redis.tls = tls_json (NULL: none), and the front door when
 * front_port is set; returns the start time. */
static int64_t
serve(const char *url, const char *tls_json)
{
    char cfg[4096], http[128] = "";
    if (front_port)
        snprintf(http, sizeof(http), "\"http\": {\"listen\": \"127.0.0.1:%d\"},", front_port);
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"%s\"%s%s}, %s \"workers\": 1, \"drain_timeout_ms\": 2000,\n"
             " \"providers\": {\"oai\": {\"type\": \"openai\", \"base_url\":"
             " \"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},\n"
             " \"models\": {\"gpt\": {\"provider\": \"oai\", \"timeout_ms\": 3000}},\n"
             " \"routes\": {\"default\": {\"chain\": [\"gpt\"], \"retries\": 0}}}\n",
             url, tls_json ? ", \"tls\": " : "", tls_json ? tls_json : "", http, mock_p.port);
    int64_t t0 = pb_mono_ms();
    th_serve(&planb_p, cfg);
    return t0;
}

/* ms from t0 until planb's log holds needle or other (NULL: only needle), -1 when it did not
 * within limit_ms of t0. */
static int64_t
log_shows_either_within(int64_t t0, const char *needle, const char *other, int limit_ms)
{
    for (;;) {
        char *log = th_proc_log(&planb_p);
        bool found = log && (strstr(log, needle) != NULL || (other && strstr(log, other)));
        free(log);
        int64_t now = pb_mono_ms();
        if (found)
            return now - t0;
        if (now - t0 > limit_ms)
            return -1;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static int64_t
log_shows_within(int64_t t0, const char *needle, int limit_ms)
{
    return log_shows_either_within(t0, needle, NULL, limit_ms);
}

static void
dump_log(void)
{
    char *log = th_proc_log(&planb_p);
    fprintf(stderr, "---- planb log\n%s\n----\n", log ? log : "(none)");
    free(log);
}

/* Pushes n jobs "<prefix>-<i>" on probe and expects each answered ok within timeout_s. */
static void
expect_jobs_answered(redisContext *probe, const char *prefix, int n, double timeout_s)
{
    char id[64];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        cr_assert_eq(th_push_job(probe, id, NULL), 0);
    }
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        json_object *res = th_wait_result(probe, id, timeout_s);
        if (res == NULL)
            dump_log();
        cr_assert_not_null(res, "no result for %s", id);
        cr_expect_str_eq(th_field(res, "status"), "ok", "%s", id);
        json_object_put(res);
    }
}

/* Clients of the probe's server connected to port (CLIENT LIST's laddr). */
static int
clients_on_port(redisContext *probe, int port)
{
    redisReply *r = redisCommand(probe, "CLIENT LIST");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    char needle[64];
    snprintf(needle, sizeof(needle), "laddr=127.0.0.1:%d ", port);
    int n = 0;
    for (const char *p = r->str; (p = strstr(p, needle)) != NULL; p++)
        n++;
    freeReplyObject(r);
    return n;
}

Test(tls, jobs_flow_and_every_connection_is_on_the_tls_port)
{
    char url[128], tls[512];
    snprintf(url, sizeof(url), "rediss://localhost:%d/0", redis_p.tls_port);
    snprintf(tls, sizeof(tls), "{\"ca_file\": \"%s/ca.crt\"}", th_certs());
    front_port = th_free_port();
    serve(url, tls);
    expect_jobs_answered(rc, "tls", 20, 10);
    /* and one through the front door, which reaches Redis over TLS too */
    char front[128];
    snprintf(front, sizeof(front), "http://127.0.0.1:%d/v1/chat/completions", front_port);
    long status = 0;
    char *body = NULL;
    for (int i = 0; i < 100 && status != 200; i++) { /* the front may still be starting */
        free(body);
        body = th_http("POST", front,
                       "{\"model\": \"default\", \"messages\": [{\"role\": \"user\", "
                       "\"content\": \"hi over tls\"}]}",
                       &status);
        if (status != 200) {
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    cr_expect_eq(status, 200, "front door: %ld %s", status, body ? body : "");
    free(body);
    front_port = 0;
    /* Workers (claim, command), the monitor, the reaper, the front: all TLS; only the probe is
     * on the plaintext port. */
    cr_expect_geq(clients_on_port(rc, redis_p.tls_port), 4);
    cr_expect_eq(clients_on_port(rc, redis_p.port), 1, "a planb connection used plaintext");
    char *log = th_proc_log(&planb_p);
    cr_expect(strstr(log, "redis_tls_failed") == NULL && strstr(log, "redis_down") == NULL);
    cr_expect(strstr(log, "redis_tls_unverified") == NULL);
    free(log);
    th_planb_stop_clean(&planb_p);

    /* An address in the URL is checked against the certificate's IP SANs. */
    snprintf(url, sizeof(url), "rediss://127.0.0.1:%d/0", redis_p.tls_port);
    serve(url, tls);
    expect_jobs_answered(rc, "tls-ip", 3, 10);
    th_planb_stop_clean(&planb_p);

    /* verify: false connects (to nothing it could check) and says so. */
    snprintf(url, sizeof(url), "rediss://localhost:%d/0", redis_p.tls_port);
    int64_t t0 = serve(url, "{\"verify\": false}");
    expect_jobs_answered(rc, "tls-unverified", 3, 10);
    cr_expect_geq(log_shows_within(t0, "event=redis_tls_unverified", 2000), 0);
}

/* Each bad case: the reason (or, with also != NULL, that one) appears within 2 s, and planb is
 * still retrying after it. */
static void
expect_reason_or(const char *url, const char *tls_json, const char *reason, const char *also)
{
    int64_t t0 = serve(url, tls_json);
    char needle[256], other[256];
    snprintf(needle, sizeof(needle), "reason=\"%s", reason);
    snprintf(other, sizeof(other), "reason=\"%s", also ? also : reason);
    int64_t ms = log_shows_either_within(t0, needle, also ? other : NULL, 5000);
    if (ms < 0)
        dump_log();
    cr_expect_geq(ms, 0, "%s: no redis_tls_failed naming \"%s\"", url, reason);
    cr_expect_leq(ms, TLS_REASON_WITHIN_MS, "%s: the reason took %lld ms", url, (long long)ms);
    /* still alive and still trying (one line per outage: the retries are quiet) */
    cr_expect_eq(th_proc_wait(&planb_p, 300), -1, "planb exited on a TLS failure");
    th_planb_stop(&planb_p, 10000);
}

static void
expect_reason(const char *url, const char *tls_json, const char *reason)
{
    expect_reason_or(url, tls_json, reason, NULL);
}

Test(tls, each_bad_case_names_its_reason_within_2s)
{
    char url[128], tls[512];
    const char *d = th_certs();
    snprintf(url, sizeof(url), "rediss://localhost:%d/0", redis_p.tls_port);
    snprintf(tls, sizeof(tls), "{\"ca_file\": \"%s/other-ca.crt\"}", d);
    /* the server sends its CA along (OpenSSL builds the chain), so the root is the stranger */
    expect_reason(url, tls,
                  "certificate verify failed: self-signed certificate in certificate chain");
    snprintf(tls, sizeof(tls), "{\"ca_file\": \"%s/ca.crt\", \"server_name\": \"db.example\"}", d);
    expect_reason(url, tls, "certificate verify failed: hostname mismatch");
    snprintf(url, sizeof(url), "rediss://localhost:%d/0", redis_p.port);
    snprintf(tls, sizeof(tls), "{\"ca_file\": \"%s/ca.crt\"}", d);
    expect_reason(url, tls, "no TLS handshake reply within 1500 ms: the server speaks plaintext");
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_p.tls_port);
    expect_reason(url, NULL, "connection reset before any reply: the server speaks TLS");
}

Test(tls, mutual_tls_needs_the_client_certificate)
{
    th_proc strict;
    cr_assert_eq(th_redis_start_tls(&strict, "tls-auth-clients yes"), 0);
    redisContext *probe = th_redis(strict.port);
    char url[128], tls[1024];
    const char *d = th_certs();
    snprintf(url, sizeof(url), "rediss://localhost:%d/0", strict.tls_port);
    snprintf(tls, sizeof(tls), "{\"ca_file\": \"%s/ca.crt\"}", d);
    /* the alert, or the close or reset that can overtake it (redisconn.c) */
    expect_reason_or(url, tls, "tlsv13 alert certificate required",
                     "connection ended right after the TLS handshake: the server wants a client");
    snprintf(tls, sizeof(tls),
             "{\"ca_file\": \"%s/ca.crt\", \"cert_file\": \"%s/client.crt\", \"key_file\": "
             "\"%s/client.key\"}",
             d, d, d);
    serve(url, tls);
    expect_jobs_answered(probe, "mtls", 5, 10);
    th_planb_stop_clean(&planb_p);
    redisFree(probe);
    th_proc_stop(&strict, 5000);
}

/* Rewrites a stopped server's redis.conf: every "from" becomes "to". */
static void
redis_conf_replace(const th_proc *p, const char *from, const char *to)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/redis.conf", p->dir);
    char *conf = th_read_file(path);
    size_t n = strlen(conf);
    cr_assert_gt(n, 0);
    char *out = pb_xcalloc(1, n * 2 + 1024);
    const char *s = conf;
    for (const char *hit; (hit = strstr(s, from)) != NULL; s = hit + strlen(from)) {
        strncat(out, s, (size_t)(hit - s));
        strcat(out, to);
    }
    strcat(out, s);
    cr_assert_not_null(th_write_file(p->dir, "redis.conf", out));
    free(out);
    free(conf);
}

Test(tls, an_expired_certificate_is_retried_until_the_server_is_fixed)
{
    th_proc r2;
    const char *d = th_certs();
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "appendonly yes\ntls-cert-file %s/expired.crt\ntls-key-file %s/expired.key", d, d);
    cr_assert_eq(th_redis_start_tls(&r2, extra), 0);
    redisContext *probe = th_redis(r2.port);
    char url[128], tls[512];
    snprintf(url, sizeof(url), "rediss://localhost:%d/0", r2.tls_port);
    snprintf(tls, sizeof(tls), "{\"ca_file\": \"%s/ca.crt\"}", d);
    int64_t t0 = serve(url, tls);
    int64_t ms =
        log_shows_within(t0, "reason=\"certificate verify failed: certificate has expired", 5000);
    cr_expect(ms >= 0 && ms <= TLS_REASON_WITHIN_MS, "expired: %lld ms", (long long)ms);
    cr_assert_eq(th_push_job(probe, "while-expired", "\"deadline_ms\": 30000"), 0);
    redisFree(probe);
    /* The operator renews the certificate: the same server, the same port, a good one. */
    th_proc_stop(&r2, 5000);
    redis_conf_replace(&r2, "/expired.", "/server.");
    cr_assert_eq(th_redis_restart(&r2), 0);
    probe = th_redis(r2.port);
    json_object *res = th_wait_result(probe, "while-expired", 15);
    if (res == NULL)
        dump_log();
    cr_assert_not_null(res, "planb stopped retrying after the TLS failure");
    cr_expect_str_eq(th_field(res, "status"), "ok");
    json_object_put(res);
    th_planb_stop_clean(&planb_p);
    redisFree(probe);
    th_proc_stop(&r2, 5000);
}

Test(tls, a_new_server_ca_is_taken_on_sighup_without_losing_a_job)
{
    const char *d = th_certs();
    char path[600], url[128], tls[1024];
    snprintf(path, sizeof(path), "%s/ca.crt", d);
    char *ca = th_read_file(path);
    snprintf(path, sizeof(path), "%s/other-ca.crt", d);
    char *other = th_read_file(path);
    cr_assert(ca[0] && other[0]);
    /* planb's own copy of the CA file, as an operator would deploy it */
    char *ca_path = pb_xstrdup(th_write_file(redis_p.dir, "planb-ca.pem", ca));
    snprintf(url, sizeof(url), "rediss://localhost:%d/0", redis_p.tls_port);
    snprintf(tls, sizeof(tls), "{\"ca_file\": \"%s\"}", ca_path);
    serve(url, tls);
    expect_jobs_answered(rc, "before", 5, 10);

    /* The provider announces the new CA: it goes beside the old one, then SIGHUP. */
    char *both = pb_xasprintf("%s%s", ca, other);
    th_write_file(redis_p.dir, "planb-ca.pem", both);
    int64_t t0 = pb_mono_ms();
    th_proc_signal(&planb_p, SIGHUP);
    cr_assert_geq(log_shows_within(t0, "event=reloaded", 5000), 0);
    /* Jobs pushed across the switch: the server moves to a certificate of the new CA. */
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof(id), "across-%d", i);
        cr_assert_eq(th_push_job(rc, id, "\"deadline_ms\": 30000"), 0);
    }
    redisFree(rc);
    rc = NULL;
    th_proc_stop(&redis_p, 5000);
    redis_conf_replace(&redis_p, "/server.", "/rotated.");
    cr_assert_eq(th_redis_restart(&redis_p), 0);
    rc = th_redis(redis_p.port);
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof(id), "across-%d", i);
        json_object *res = th_wait_result(rc, id, 15);
        if (res == NULL)
            dump_log();
        cr_assert_not_null(res, "%s was lost across the CA rotation", id);
        cr_expect_str_eq(th_field(res, "status"), "ok");
        json_object_put(res);
    }
    expect_jobs_answered(rc, "after", 5, 10);

    /* A CA file that no longer loads refuses the reload; the running processes keep going. */
    th_write_file(redis_p.dir, "planb-ca.pem", "not a certificate\n");
    t0 = pb_mono_ms();
    th_proc_signal(&planb_p, SIGHUP);
    cr_expect_geq(log_shows_within(t0, "event=reload_refused", 5000), 0);
    char *log = th_proc_log(&planb_p);
    cr_expect(strstr(log, "no usable PEM certificate") != NULL);
    free(log);
    expect_jobs_answered(rc, "refused", 3, 10);
    free(both);
    free(ca_path);
    free(ca);
    free(other);
}

Test(tls, the_cache_on_its_own_tls_redis)
{
    /* The queue on the plaintext port, the cache (cache.redis) on the TLS one. */
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,\n"
             " \"cache\": {\"ttl_s\": 60, \"redis\": {\"url\": \"rediss://localhost:%d/1\","
             " \"tls\": {\"ca_file\": \"%s/ca.crt\"}}},\n"
             " \"providers\": {\"oai\": {\"type\": \"openai\", \"base_url\":"
             " \"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},\n"
             " \"models\": {\"gpt\": {\"provider\": \"oai\", \"timeout_ms\": 3000}},\n"
             " \"routes\": {\"default\": {\"chain\": [\"gpt\"], \"retries\": 0}}}\n",
             redis_p.port, redis_p.tls_port, th_certs(), mock_p.port);
    th_serve(&planb_p, cfg);
    const char *ids[2] = {"cache-a", "cache-b"};
    const char *want[2] = {"primary", "cache"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(th_push_job_text(rc, ids[i], "the same question", NULL), 0);
        json_object *res = th_wait_result(rc, ids[i], 10);
        if (res == NULL)
            dump_log();
        cr_assert_not_null(res);
        cr_expect_str_eq(th_field(res, "source"), want[i], "%s", ids[i]);
        json_object_put(res);
    }
    redisReply *r = redisCommand(rc, "SELECT 1");
    freeReplyObject(r);
    r = redisCommand(rc, "DBSIZE");
    cr_expect(r && r->type == REDIS_REPLY_INTEGER && r->integer > 0, "nothing cached in db 1");
    freeReplyObject(r);
    r = redisCommand(rc, "SELECT 0");
    freeReplyObject(r);
}
