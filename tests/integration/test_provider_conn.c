/* test_provider_conn.c -- the way planb's calls reach a provider: a forward proxy, mutual TLS
 * to a private gateway, extra headers, and `planb check` on a bad ca_file.
 *
 * World: redis-server, planb-mock, and two tests/support/upstream_relay.py in front of the
 * mock: a TLS terminator (make_certs.sh's server.crt, client certificates required against
 * ca.crt) standing for the gateway, and a forward proxy that wants a Basic credential and logs
 * each CONNECT and absolute-URI request; then the real `planb serve` (one worker, debug log)
 * with one provider per way there, each model's route falling back to "backup" (the mock,
 * direct). One retry per model, so a failing way shows two attempts before the fallback.
 * The mTLS provider's job runs before the ones without a client certificate or with another
 * CA on the same host and port, so the checks that those fail also check that curl never
 * lends them the mutual-TLS connection it keeps (http.c). `planb check --connect` on the same
 * config names each way that fails; `planb check` names a ca_file that is missing or not PEM. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "th_jobs.h"

#define PROXY_USER     "planb"
#define PROXY_PASSWORD "proxy-pass-7f3a"
#define WRONG_PASSWORD "wrong-pass-c41d"
#define GW_KEY         "gw-secret-5d1e9b07c2" /* X-Gateway-Key, from PB_TEST_GW_KEY */

static th_proc redis_p, mock_p, gw_p, proxy_p, planb_p;
static redisContext *rc;

/* The config: providers by way there, model m_<way> on each (its own upstream name, so the
 * mock keeps its last request apart), route r_<way> = [m_<way>, backup]. */
static const char *
conn_config(void)
{
    static char cfg[16384];
    const char *certs = th_certs();
    cr_assert_not_null(certs);
    char gw[128], tls[1024], proxy[256], wrong[256], dead[128];
    snprintf(gw, sizeof(gw),
             "\"type\": \"openai\", \"api_key_env\": \"PB_TEST_KEY\", "
             "\"base_url\": \"https://localhost:%d/v1\"",
             gw_p.port);
    snprintf(tls, sizeof(tls),
             "\"ca_file\": \"%s/ca.crt\", \"cert_file\": \"%s/client.crt\", "
             "\"key_file\": \"%s/client.key\"",
             certs, certs, certs);
    snprintf(proxy, sizeof(proxy),
             "\"proxy\": \"http://" PROXY_USER ":" PROXY_PASSWORD "@127.0.0.1:%d\"", proxy_p.port);
    snprintf(wrong, sizeof(wrong),
             "\"proxy\": \"http://" PROXY_USER ":" WRONG_PASSWORD "@127.0.0.1:%d\"", proxy_p.port);
    snprintf(dead, sizeof(dead), "\"proxy\": \"http://127.0.0.1:%d\"", th_free_port());
    char direct[128];
    snprintf(direct, sizeof(direct),
             "\"type\": \"openai\", \"api_key_env\": \"PB_TEST_KEY\", "
             "\"base_url\": \"http://127.0.0.1:%d/v1\"",
             mock_p.port);
    static const char *const ways[] = {
        "gw",      "nocert",         "wrongca",   "gw_proxied", "plain_proxied",
        "badcred", "badcred_tunnel", "deadproxy", "hdr"};
    char models[2048] = "", routes[2048] = "";
    for (size_t i = 0; i < sizeof(ways) / sizeof(*ways); i++) {
        size_t ml = strlen(models), rl = strlen(routes);
        snprintf(models + ml, sizeof(models) - ml,
                 "\"m_%s\": {\"provider\": \"%s\", \"timeout_ms\": 3000},\n", ways[i], ways[i]);
        snprintf(routes + rl, sizeof(routes) - rl,
                 "\"r_%s\": {\"chain\": [\"m_%s\", \"backup\"], \"retries\": 1, \"backoff_ms\": 10,"
                 " \"backoff_max_ms\": 20},\n",
                 ways[i], ways[i]);
    }
    int n = snprintf(
        cfg, sizeof(cfg),
        "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"},\n"
        " \"workers\": 1, \"drain_timeout_ms\": 2000,\n"
        " \"breaker\": {\"failures\": 0, \"refused_hold_s\": 0}, \"monitor\": "
        "{\"metrics_listen\": \"\"},\n"
        " \"providers\": {\n"
        "   \"direct\": {%s},\n"
        "   \"gw\": {%s, %s},\n"
        "   \"nocert\": {%s, \"ca_file\": \"%s/ca.crt\"},\n"
        "   \"wrongca\": {%s, \"ca_file\": \"%s/other-ca.crt\", \"cert_file\": "
        "\"%s/client.crt\", \"key_file\": \"%s/client.key\"},\n"
        "   \"gw_proxied\": {%s, %s, %s},\n"
        "   \"plain_proxied\": {%s, %s},\n"
        "   \"badcred\": {%s, %s},\n"
        "   \"badcred_tunnel\": {%s, %s, %s},\n"
        "   \"deadproxy\": {%s, %s},\n"
        "   \"hdr\": {%s, \"headers\": {\"X-Org\": \"acme\","
        " \"X-Gateway-Key\": {\"value_env\": \"PB_TEST_GW_KEY\"}}}},\n"
        " \"models\": {%s \"backup\": {\"provider\": \"direct\", \"timeout_ms\": 3000}},\n"
        " \"routes\": {%s \"default\": {\"chain\": [\"backup\"]}}}\n",
        redis_p.port, direct, gw, tls, gw, certs, gw, certs, certs, certs, gw, tls, proxy, direct,
        proxy, direct, wrong, gw, tls, wrong, direct, dead, direct, models, routes);
    cr_assert(n > 0 && (size_t)n < sizeof(cfg) && strlen(routes) + 1 < sizeof(routes),
              "the config did not fit");
    return cfg;
}

static void
setup(void)
{
    setenv("PB_TEST_GW_KEY", GW_KEY, 1);
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    const char *certs = th_certs();
    cr_assert_not_null(certs, "make_certs.sh failed");
    char cert[512], key[512], ca[512], up[64];
    snprintf(cert, sizeof(cert), "%s/server.crt", certs);
    snprintf(key, sizeof(key), "%s/server.key", certs);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    snprintf(up, sizeof(up), "127.0.0.1:%d", mock_p.port);
    const char *tls_args[] = {"--cert", cert,          "--key", key, "--upstream",
                              up,       "--client-ca", ca,      NULL};
    cr_assert_eq(th_relay_start(&gw_p, "tls", tls_args), 0, "the TLS terminator did not start");
    const char *proxy_args[] = {"--auth", PROXY_USER ":" PROXY_PASSWORD, NULL};
    cr_assert_eq(th_relay_start(&proxy_p, "proxy", proxy_args), 0, "the proxy did not start");
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-level", "debug", NULL};
    cr_assert_eq(th_planb_start(&planb_p, conn_config(), args), 0);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_proc_stop(&proxy_p, 2000);
    th_proc_stop(&gw_p, 2000);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(conn, .init = setup, .fini = teardown, .timeout = 60);

/* Runs job id ("hi <id>") on route r_<way>; waits for its result. Caller puts. */
static json_object *
run_on(const char *way, const char *id)
{
    char extra[128];
    snprintf(extra, sizeof(extra), "\"route\":\"r_%s\",\"cache\":\"skip\"", way);
    cr_assert_eq(th_push_job(rc, id, extra), 0);
    json_object *r = th_wait_result(rc, id, 20);
    cr_assert_not_null(r, "no result for %s", id);
    return r;
}

/* The job answered from its route's first model, on the first try. */
static void
expect_primary(json_object *r, const char *way)
{
    char model[64];
    snprintf(model, sizeof(model), "m_%s", way);
    cr_expect_str_eq(th_field(r, "status"), "ok", "%s", way);
    cr_expect_str_eq(th_field(r, "source"), "primary", "%s: %s", way,
                     json_object_to_json_string(r));
    cr_expect_str_eq(th_field(r, "model"), model, "%s", way);
    cr_expect_str_eq(th_attempt(r, 0, "outcome"), "ok", "%s", way);
}

/* The job's first model failed tries times with outcome (2: retried once; 1: fell back at
 * once), and backup answered. */
static void
expect_fallback(json_object *r, const char *way, const char *outcome, size_t tries)
{
    const char *all = json_object_to_json_string(r);
    cr_expect_str_eq(th_field(r, "status"), "ok", "%s: %s", way, all);
    cr_expect_str_eq(th_field(r, "source"), "fallback", "%s: %s", way, all);
    cr_expect_str_eq(th_field(r, "model"), "backup", "%s: %s", way, all);
    for (size_t i = 0; i < tries; i++)
        cr_expect_str_eq(th_attempt(r, i, "outcome"), outcome, "%s: %s", way, all);
    cr_expect_str_eq(th_attempt(r, tries, "outcome"), "ok", "%s: %s", way, all);
    cr_expect_str_eq(th_attempt(r, tries, "model"), "backup", "%s: %s", way, all);
    cr_expect_str_eq(th_attempt(r, tries + 1, "outcome"), "", "%s: no more attempts: %s", way, all);
}

/* Lines of the proxy's request log that are exactly line. */
static int
proxy_saw(const char *line)
{
    char path[320];
    snprintf(path, sizeof(path), "%s/requests.log", proxy_p.dir);
    char *log = th_read_file(path);
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = log; (p = strstr(p, line)) != NULL; p += len)
        if ((p == log || p[-1] == '\n') && p[len] == '\n')
            n++;
    free(log);
    return n;
}

/* planb's log does not hold needle (a secret). */
static void
expect_log_lacks(const char *needle)
{
    char *log = th_proc_log(&planb_p);
    cr_assert(log != NULL && log[0] != '\0', "planb logged nothing");
    cr_expect(strstr(log, needle) == NULL, "planb's log holds \"%s\"", needle);
    free(log);
}

Test(conn, jobs_go_through_the_proxy_and_a_refused_or_dead_one_falls_back)
{
    char connect[64], post[128];
    snprintf(connect, sizeof(connect), "CONNECT localhost:%d 200", gw_p.port);
    snprintf(post, sizeof(post), "POST http://127.0.0.1:%d/v1/chat/completions 200", mock_p.port);

    /* An https:// gateway through a CONNECT tunnel, mutual TLS inside it. */
    json_object *r = run_on("gw_proxied", "px1");
    expect_primary(r, "gw_proxied");
    cr_expect_str_eq(th_field(r, "content"), "echo: hi px1");
    json_object_put(r);
    cr_expect_eq(proxy_saw(connect), 1, "one tunnel to the gateway");
    /* An http:// base_url by absolute URI: one request each, both through the proxy. */
    for (int i = 0; i < 2; i++) {
        char id[16];
        snprintf(id, sizeof(id), "px-plain%d", i);
        r = run_on("plain_proxied", id);
        expect_primary(r, "plain_proxied");
        json_object_put(r);
    }
    cr_expect_eq(proxy_saw(post), 2, "both plain requests went through the proxy");
    cr_expect_eq(th_mock_requests(&mock_p, "m_plain_proxied"), 2);
    cr_expect_eq(th_mock_requests(&mock_p, "m_gw_proxied"), 1);
    /* The direct backup never goes through it. */
    r = run_on("deadproxy", "px-dead");
    expect_fallback(r, "deadproxy", "connect_error", 2);
    json_object_put(r);
    cr_expect_eq(proxy_saw(post), 2, "the backup went direct");
    cr_expect_eq(th_mock_requests(&mock_p, "m_deadproxy"), 0);

    /* A wrong credential: the proxy answers 407 to an absolute-URI request, and refuses the
     * CONNECT with 407 (curl: a failed read of the tunnel's answer). */
    r = run_on("badcred", "px-bad");
    expect_fallback(r, "badcred", "http_407", 1); /* a 4xx: this model will not do */
    json_object_put(r);
    char refused[128];
    snprintf(refused, sizeof(refused), "POST http://127.0.0.1:%d/v1/chat/completions 407",
             mock_p.port);
    cr_expect_eq(proxy_saw(refused), 1);
    r = run_on("badcred_tunnel", "px-badt");
    expect_fallback(r, "badcred_tunnel", "transport_error", 2);
    json_object_put(r);
    snprintf(refused, sizeof(refused), "CONNECT localhost:%d 407", gw_p.port);
    cr_expect_eq(proxy_saw(refused), 2);
    cr_expect_eq(th_mock_requests(&mock_p, "m_badcred"), 0);
    cr_expect_eq(th_mock_requests(&mock_p, "m_badcred_tunnel"), 0);
    cr_expect_eq(th_mock_requests(&mock_p, "backup"), 3);
    expect_log_lacks(PROXY_PASSWORD);
    expect_log_lacks(WRONG_PASSWORD);
}

Test(conn, mutual_tls_to_the_gateway_and_what_a_bad_setup_comes_to)
{
    json_object *r = run_on("gw", "tls-ok");
    expect_primary(r, "gw");
    cr_expect_str_eq(th_field(r, "content"), "echo: hi tls-ok");
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "m_gw"), 1);

    /* No client certificate: the gateway's alert after the TLS 1.3 handshake is a TLS error,
     * though curl reports it as a failed read. */
    r = run_on("nocert", "tls-nocert");
    expect_fallback(r, "nocert", "tls_error", 2);
    json_object_put(r);
    /* A ca_file the gateway's certificate does not chain to. */
    r = run_on("wrongca", "tls-wrongca");
    expect_fallback(r, "wrongca", "tls_error", 2);
    json_object_put(r);
    cr_expect_eq(th_mock_requests(&mock_p, "m_nocert"), 0);
    cr_expect_eq(th_mock_requests(&mock_p, "m_wrongca"), 0);

    /* Each one is logged with its reason; the gateway saw both handshakes fail. */
    char *log = th_proc_log(&planb_p);
    cr_expect(strstr(log, "event=upstream_tls_failed job=tls-nocert model=m_nocert") != NULL &&
                  strstr(log, "alert certificate required") != NULL,
              "%s", log);
    cr_expect(strstr(log, "event=upstream_tls_failed job=tls-wrongca model=m_wrongca") != NULL &&
                  strstr(log, "SSL certificate problem") != NULL,
              "%s", log);
    free(log);
    char path[320];
    snprintf(path, sizeof(path), "%s/requests.log", gw_p.dir);
    char *gw_log = th_read_file(path);
    cr_expect(strstr(gw_log, "PEER_DID_NOT_RETURN_A_CERTIFICATE") != NULL, "%s", gw_log);
    cr_expect(strstr(gw_log, "UNKNOWN_CA") != NULL, "%s", gw_log);
    free(gw_log);

    /* The good provider still answers after its neighbours failed on the same host, on the
     * connection it kept all along: so there was one for them to borrow, and they did not. */
    r = run_on("gw", "tls-ok2");
    expect_primary(r, "gw");
    json_object_put(r);
    gw_log = th_read_file(path);
    int ok = 0;
    for (const char *p = gw_log; (p = strstr(p, "handshake_ok\n")) != NULL; p++)
        ok++;
    cr_expect_eq(ok, 1, "one mutual-TLS handshake for both of m_gw's jobs: %s", gw_log);
    free(gw_log);
}

Test(conn, extra_headers_reach_the_upstream_and_the_secret_is_never_logged)
{
    json_object *r = run_on("hdr", "hdr1");
    expect_primary(r, "hdr");
    cr_expect(strstr(json_object_to_json_string(r), GW_KEY) == NULL, "the result holds the key");
    json_object_put(r);

    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/last/m_hdr", mock_p.port);
    long status = 0;
    char *body = th_http("GET", url, NULL, &status);
    cr_assert(body != NULL && status == 200, "GET %s: %ld", url, status);
    json_object *last = json_tokener_parse(body), *h;
    free(body);
    cr_assert(json_object_object_get_ex(last, "headers", &h));
    cr_expect_str_eq(th_field(h, "x-org"), "acme");
    cr_expect_str_eq(th_field(h, "x-gateway-key"), GW_KEY);
    cr_expect_str_eq(th_field(h, "authorization"), "Bearer sk-test-not-a-real-key",
                     "the adapter's own headers stay");
    json_object_put(last);

    /* Another provider's calls do not carry them. */
    r = run_on("deadproxy", "hdr2");
    json_object_put(r);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/last/backup", mock_p.port);
    body = th_http("GET", url, NULL, &status);
    cr_assert(body != NULL && status == 200);
    last = json_tokener_parse(body);
    free(body);
    cr_assert(json_object_object_get_ex(last, "headers", &h));
    cr_expect_str_eq(th_field(h, "x-org"), "");
    cr_expect_str_eq(th_field(h, "x-gateway-key"), "");
    json_object_put(last);

    /* planb logged at debug level all along, and never the value. */
    expect_log_lacks(GW_KEY);
}

/* The line of out that starts with prefix, copied to line ("" when none). */
static const char *
line_of(const char *out, const char *prefix, char *line, size_t cap)
{
    line[0] = '\0';
    size_t n = strlen(prefix);
    for (const char *p = out; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, n) == 0) {
            snprintf(line, cap, "%.*s", (int)strcspn(p, "\n"), p);
            break;
        }
    return line;
}

Test(conn, check_connect_tries_each_way_there_and_names_what_failed)
{
    th_proc p;
    char path[320];
    snprintf(path, sizeof(path), "%s/planb.json", planb_p.dir);
    const char *args[] = {"check", "--connect", "-c", path, NULL};
    cr_assert_eq(th_planb_start(&p, NULL, args), 0);
    int st = th_proc_wait(&p, 20000);
    if (st == -1)
        th_proc_stop(&p, 1000);
    char *out = th_proc_log(&p);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "some ways fail: status %d: %s", st, out);
    /* Each provider's line: "ok provider <name> " or "FAILED provider <name> ...<why>". */
    static const struct {
        const char *line, *why;
    } want[] = {
        {"ok provider direct ", ""},
        {"ok provider gw ", ""},
        {"ok provider gw_proxied ", ""},
        {"ok provider plain_proxied ", ""},
        {"ok provider hdr ", ""},
        {"FAILED provider nocert ", "alert certificate required"},
        {"FAILED provider wrongca ", "SSL certificate problem"},
        {"FAILED provider badcred ", "the proxy refused its credential (HTTP 407)"},
        {"FAILED provider badcred_tunnel ", "CONNECT tunnel failed, response 407"},
        {"FAILED provider deadproxy ", "Couldn't connect"},
        {"5 of the targets above failed", ""},
    };
    char line[1024];
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        line_of(out, want[i].line, line, sizeof(line));
        cr_expect(line[0] != '\0' && strstr(line, want[i].why) != NULL, "%s...%s: %s", want[i].line,
                  want[i].why, out);
    }
    cr_expect(strstr(out, PROXY_PASSWORD) == NULL && strstr(out, WRONG_PASSWORD) == NULL &&
                  strstr(out, GW_KEY) == NULL,
              "no secret printed: %s", out);
    free(out);
}

/* ---------------------------------------------------------------- planb check */

/* `planb check` on a config whose provider has ca_file path: its exit status, output in *out
 * (caller frees). */
static int
check_with_ca_file(const char *path, char **out)
{
    th_proc p;
    char cfg[1024];
    int n =
        snprintf(cfg, sizeof(cfg),
                 "{\"redis\": {\"url\": \"redis://127.0.0.1:1/0\"},\n"
                 " \"providers\": {\"gw\": {\"type\": \"openai\", \"api_key_env\": \"PB_TEST_KEY\","
                 " \"base_url\": \"https://localhost:1/v1\", \"ca_file\": \"%s\"}},\n"
                 " \"models\": {\"m\": {\"provider\": \"gw\"}},\n"
                 " \"routes\": {\"default\": {\"chain\": [\"m\"]}}}\n",
                 path);
    cr_assert(n > 0 && (size_t)n < sizeof(cfg));
    const char *args[] = {"check", "-c", "%CONFIG%", NULL};
    cr_assert_eq(th_planb_start(&p, cfg, args), 0);
    int st = th_proc_wait(&p, 10000);
    if (st == -1)
        th_proc_stop(&p, 1000);
    *out = th_proc_log(&p);
    return st;
}

static void
check_setup(void)
{
    setenv("PB_TEST_KEY", "sk-test-not-a-real-key", 1);
}

TestSuite(check, .init = check_setup, .timeout = 30);

Test(check, a_ca_file_that_is_missing_or_not_pem_is_an_error_naming_it)
{
    const char *certs = th_certs();
    cr_assert_not_null(certs);
    char good[512], missing[512];
    snprintf(good, sizeof(good), "%s/ca.crt", certs);
    snprintf(missing, sizeof(missing), "%s/no-such-ca.pem", certs);
    char *out;
    int st = check_with_ca_file(good, &out);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a good ca_file: status %d: %s", st, out);
    free(out);

    st = check_with_ca_file(missing, &out);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "a missing ca_file: status %d: %s", st, out);
    cr_expect(strstr(out, "providers.gw.ca_file") != NULL && strstr(out, missing) != NULL,
              "names the key and the file: %s", out);
    free(out);

    /* A file that is there but not PEM; then a PEM file that holds a key, no certificate. */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/planb-test-conn-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    const char *junk = th_write_file(dir, "junk.pem", "this is not a certificate\n");
    cr_assert_not_null(junk);
    char junk_path[512];
    snprintf(junk_path, sizeof(junk_path), "%s", junk);
    st = check_with_ca_file(junk_path, &out);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "a junk ca_file: status %d: %s", st, out);
    cr_expect(strstr(out, "providers.gw.ca_file") != NULL && strstr(out, junk_path) != NULL &&
                  strstr(out, "no usable PEM certificate") != NULL,
              "names the key, the file and why: %s", out);
    free(out);
    snprintf(junk_path, sizeof(junk_path), "%s/client.key", certs);
    st = check_with_ca_file(junk_path, &out);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "a key as ca_file: status %d: %s", st, out);
    cr_expect(strstr(out, junk_path) != NULL, "names the file: %s", out);
    free(out);
}
