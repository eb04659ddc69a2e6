/* test_monitoring.c -- planb:stats snapshots, fallback-rate alerts, /metrics, `planb stats`
 * and JSON logs, against real redis-server, planb-mock and `planb serve`.
 *
 * A second connection subscribes to planb:stats and planb:alerts; messages
 * are read with poll() so a missing message fails the test instead of
 * hanging it. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "th_jobs.h"
#include "th_promtext.h"

static th_proc redis_p, mock_p, planb_p, planb2_p;
static redisContext *rc, *sub;
static int metrics_port;

static const char *
config(void)
{
    static char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 1,"
             " \"concurrency\": 64, \"drain_timeout_ms\": 2000,"
             " \"providers\": {\"a\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"primary\": {\"provider\": \"a\"}, \"backup\": {\"provider\": \"a\","
             " \"tier\": 2}},"
             " \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"retries\": 0}},"
             " \"breaker\": {\"failures\": 0},"
             " \"monitor\": {\"stats_interval_s\": 1, \"alert_fallback_rate\": 0.3,"
             " \"metrics_listen\": \"127.0.0.1:%d\"}}",
             redis_p.port, mock_p.port, metrics_port);
    return cfg;
}

static void
setup(void)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    setenv("PB_TEST_KEY", "sk-test-secret-value", 1); /* a key the log test looks for */
    sub = th_redis(redis_p.port);
    redisReply *r = redisCommand(sub, "SUBSCRIBE planb:stats planb:alerts");
    freeReplyObject(r);
    for (int i = 0; i < 1; i++) { /* the second subscribe confirmation */
        void *c = NULL;
        redisGetReply(sub, &c);
        freeReplyObject(c);
    }
    metrics_port = th_free_port();
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-format", "json", NULL};
    cr_assert_eq(th_planb_start(&planb_p, config(), args), 0);
}

static void
teardown(void)
{
    th_planb_stop_clean(&planb_p);
    th_planb_stop_clean(&planb2_p);
    if (sub)
        redisFree(sub);
    sub = NULL;
    th_world_stop(&mock_p, &redis_p, &rc);
}

/* Next pub/sub message within timeout_ms: its channel in chan, its JSON parsed (caller puts). */
static json_object *
next_message(int timeout_ms, char *chan, size_t cap)
{
    void *r = NULL;
    if (redisGetReplyFromReader(sub, &r) != REDIS_OK)
        return NULL;
    if (r == NULL) {
        struct pollfd p = {.fd = sub->fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0 || redisGetReply(sub, &r) != REDIS_OK)
            return NULL;
    }
    redisReply *m = r;
    json_object *o = NULL;
    if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
        m->element[2]->type == REDIS_REPLY_STRING) {
        snprintf(chan, cap, "%s", m->element[1]->str);
        o = json_tokener_parse(m->element[2]->str);
    }
    freeReplyObject(m);
    return o;
}

static double
window_num(json_object *snap, const char *win, const char *name)
{
    json_object *ws, *w, *v;
    if (!json_object_object_get_ex(snap, "windows", &ws) ||
        !json_object_object_get_ex(ws, win, &w) || !json_object_object_get_ex(w, name, &v))
        return -1;
    return json_object_get_double(v);
}

/* Runs n jobs (ids prefix0..) to completion; returns how many came from a fallback. */
static int
run_jobs(const char *prefix, int n)
{
    int fallbacks = 0;
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%d", prefix, i);
        cr_assert_eq(th_push_job(rc, id, NULL), 0);
    }
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%d", prefix, i);
        json_object *r = th_wait_result(rc, id, 20);
        cr_assert_not_null(r);
        fallbacks += strcmp(th_field(r, "source"), "fallback") == 0;
        json_object_put(r);
    }
    return fallbacks;
}

/* Reads messages until a stats snapshot whose 5m window counts jobs5 jobs (or timeout);
 * counts fallback_rate alerts seen on the way by state. */
static json_object *
await_snapshot(int jobs5, int *alerts_high, int *alerts_ok)
{
    for (int i = 0; i < 40; i++) {
        char chan[64] = "";
        json_object *o = next_message(3000, chan, sizeof(chan));
        if (o == NULL)
            return NULL;
        if (strcmp(chan, "planb:alerts") == 0 &&
            strcmp(th_field(o, "type"), "fallback_rate") == 0) {
            *alerts_high += strcmp(th_field(o, "state"), "high") == 0;
            *alerts_ok += strcmp(th_field(o, "state"), "ok") == 0;
        }
        if (strcmp(chan, "planb:stats") == 0 && window_num(o, "5m", "jobs") == jobs5)
            return o;
        json_object_put(o);
    }
    return NULL;
}

TestSuite(monitoring, .init = setup, .fini = teardown, .timeout = 120);

/* For th_wait_for: the wall clock is at least 20 s from the next minute. The "1m" window is
 * the current UTC minute, so jobs run just before a minute turns would be counted in the
 * minute before the snapshot's. */
static bool
early_in_the_minute(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec % 60 < 40;
}

Test(monitoring, snapshots_match_results_and_alerts_fire_once_each_way)
{
    cr_assert(th_wait_for(early_in_the_minute, NULL, 250, 100));
    th_mock_set(&mock_p, "primary", "{\"mode\":\"status\",\"status\":500}");
    int fb = run_jobs("down", 10);
    cr_assert_eq(fb, 10);
    int high = 0, ok = 0;
    json_object *s = await_snapshot(10, &high, &ok);
    cr_assert_not_null(s, "a snapshot with the 10 jobs");
    cr_expect_float_eq(window_num(s, "5m", "fallback_rate"), fb / 10.0, 1e-9);
    cr_expect_float_eq(window_num(s, "1m", "fallback"), 10, 1e-9);
    cr_expect_float_eq(window_num(s, "60m", "degraded_rate"), 0, 1e-9);
    json_object_put(s);
    /* The alert is published right after the snapshot that crossed the threshold. */
    for (int i = 0; i < 5 && high == 0; i++) {
        s = await_snapshot(10, &high, &ok);
        json_object_put(s);
    }
    cr_expect_eq(high, 1, "one alert when the fallback rate crossed 0.3");

    /* Snapshots keep coming every interval; a second host does not double them. */
    th_serve(&planb2_p, config());
    int64_t first = -1, last = -1;
    int n = 0;
    while (n < 5) {
        char chan[64] = "";
        json_object *o = next_message(3000, chan, sizeof(chan));
        cr_assert_not_null(o, "a snapshot every interval");
        if (strcmp(chan, "planb:stats") == 0) {
            last = th_field_int(o, "at_ms");
            first = first < 0 ? last : first;
            n++;
        }
        json_object_put(o);
    }
    double per_s = (n - 1) / ((last - first) / 1000.0);
    cr_expect(per_s > 0.5 && per_s < 1.6, "%.2f snapshots per second with 2 hosts", per_s);

    /* Recovery: enough primary answers bring the 5-minute rate under 0.3. */
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\"}");
    cr_assert_eq(run_jobs("up", 30), 0);
    s = await_snapshot(40, &high, &ok);
    cr_assert_not_null(s);
    cr_expect_float_eq(window_num(s, "5m", "fallback_rate"), 0.25, 1e-9);
    json_object_put(s);
    for (int i = 0; i < 5 && ok == 0; i++) {
        s = await_snapshot(40, &high, &ok);
        json_object_put(s);
    }
    cr_expect_eq(ok, 1, "one recovery message");
    cr_expect_eq(high, 1, "no repeated alert");
}

Test(monitoring, metrics_parse_and_stats_cli_and_json_logs)
{
    th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"fail_first\":2,\"fail_status\":500}");
    cr_assert_eq(run_jobs("m", 5), 2);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
    cr_assert(th_wait_for(th_http_up, url, 100, 50));
    long status = 0;
    char *body = th_http("GET", url, NULL, &status);
    cr_assert_eq(status, 200);
    const char *why = th_prom_check(body);
    cr_expect_null(why, "%s", why);
    cr_expect_not_null(strstr(body, "planb_jobs_total{route=\"default\",source=\"primary\"} 3\n"));
    cr_expect_not_null(strstr(body, "planb_jobs_total{route=\"default\",source=\"fallback\"} 2\n"));
    cr_expect_not_null(
        strstr(body, "planb_attempts_total{model=\"primary\",outcome=\"http_500\"} 2\n"));
    cr_expect_not_null(strstr(body, "planb_job_latency_seconds_count 5\n"));
    cr_expect_not_null(strstr(body, "planb_fallback_ratio{window=\"5m\"} 0.400000\n"));
    cr_expect_not_null(strstr(body, "planb_queue_depth{queue=\"default\"} 0\n"));
    free(body);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/other", metrics_port);
    body = th_http("GET", url, NULL, &status);
    cr_expect_eq(status, 404);
    free(body);

    /* planb stats --json and the table. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s stats -c %s/planb.json --json", th_bin("planb"), planb_p.dir);
    FILE *f = popen(cmd, "r");
    char out[16384] = "";
    size_t got = fread(out, 1, sizeof(out) - 1, f);
    out[got] = '\0';
    cr_expect_eq(pclose(f), 0);
    json_object *o = json_tokener_parse(out), *t;
    cr_assert_not_null(o, "%s", out);
    cr_assert(json_object_object_get_ex(o, "totals", &t));
    cr_expect_eq(th_field_int(t, "jobs"), 5);
    cr_expect_float_eq(window_num(o, "1m", "fallback_rate"), 0.4, 1e-9);
    json_object_put(o);
    snprintf(cmd, sizeof(cmd), "%s stats -c %s/planb.json", th_bin("planb"), planb_p.dir);
    f = popen(cmd, "r");
    got = fread(out, 1, sizeof(out) - 1, f);
    out[got] = '\0';
    cr_expect_eq(pclose(f), 0);
    cr_expect_not_null(strstr(out, "http_500=2"), "%s", out);
    snprintf(cmd, sizeof(cmd), "%s stats -c /nonexistent.json 2>/dev/null", th_bin("planb"));
    f = popen(cmd, "r");
    cr_expect_eq(WEXITSTATUS(pclose(f)), 2);

    /* JSON logs: one job_done line per job, no message text, no key. */
    char *log = th_proc_log(&planb_p);
    int done = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "event=job_done"))
            continue;
        json_object *l = json_tokener_parse(line);
        cr_expect_not_null(l, "a JSON line: %s", line);
        cr_expect_str_eq(th_field(l, "level"), "INFO");
        cr_expect_not_null(strstr(th_field(l, "msg"), "route=default"));
        done++;
        json_object_put(l);
    }
    cr_expect_eq(done, 5);
    th_proc_stop(&planb_p, 10000);
    free(log);
    log = th_proc_log(&planb_p);
    cr_expect_null(strstr(log, "hi m0"), "no message bodies in logs");
    cr_expect_null(strstr(log, "sk-test-secret-value"), "no keys in logs");
    free(log);
}
