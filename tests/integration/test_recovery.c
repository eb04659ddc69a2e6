/* test_recovery.c -- never lose a job: crashes, drain, Redis restarts, poison jobs, reloads.
 *
 * Each Test starts its own redis-server, planb-mock and `planb serve`, breaks
 * something on purpose and then checks that every pushed job ends with exactly
 * one result: planb:result:<id> exists for each id, and planb:events (one entry
 * per stored result) holds exactly as many entries as there are ids. Each Test
 * prints its figures (jobs pushed, results, duplicates, recovery seconds) on
 * stderr as one "figures:" line, for the closing note. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "planb/core.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

/* A config: one route whose primary is the mock; extra is spliced in at the top level. */
static char *
recovery_config(int workers, int concurrency, const char *model, const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"},\n"
             " \"workers\": %d, \"concurrency\": %d, \"queues\": [\"default\"],\n"
             " \"providers\": {\"mockai\": {\"type\": \"openai\", \"base_url\":"
             " \"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},\n"
             " \"models\": {\"primary\": {\"provider\": \"mockai\", \"timeout_ms\": 8000},\n"
             "              \"backup\": {\"provider\": \"mockai\", \"timeout_ms\": 8000}},\n"
             " \"routes\": {\"default\": {\"chain\": [\"%s\"], \"retries\": 1,"
             " \"backoff_ms\": 10, \"deadline_ms\": 10000}}%s%s}\n",
             redis_p.port, workers, concurrency, mock_p.port, model, extra ? ",\n" : "",
             extra ? extra : "");
    return buf;
}

static void
start_servers(const char *redis_conf)
{
    th_world_start(&redis_p, &mock_p, redis_conf, &rc);
}

static void
start_planb(const char *config_json)
{
    th_serve(&planb_p, config_json);
}

static void
teardown(void)
{
    th_planb_stop(&planb_p, 15000);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(recovery, .fini = teardown, .timeout = 180);

static long long
redis_int(const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    cr_assert(r != NULL, "redis: %s", rc->errstr);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* Pushes n jobs "<tag>-<i>"; extra (may be NULL) adds fields to each. */
static void
push_jobs(const char *tag, int n, const char *extra)
{
    for (int i = 0; i < n; i++) {
        char job[512];
        snprintf(
            job, sizeof(job),
            "{\"id\":\"%s-%d\",\"messages\":[{\"role\":\"user\",\"content\":\"job %s %d\"}]%s%s}",
            tag, i, tag, i, extra ? "," : "", extra ? extra : "");
        redisAppendCommand(rc, "LPUSH planb:q:default %s", job);
    }
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
}

/* How many of the ids "<tag>-0".."<tag>-<n-1>" have a stored result. */
static int
count_results(const char *tag, int n)
{
    for (int i = 0; i < n; i++)
        redisAppendCommand(rc, "EXISTS planb:result:%s-%d", tag, i);
    int found = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        found += r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
    }
    return found;
}

typedef struct want {
    const char *tag;
    int n;
} want;

static bool
all_results(void *arg)
{
    const want *w = arg;
    return count_results(w->tag, w->n) == w->n;
}

static bool
at_least_results(void *arg)
{
    const want *w = arg;
    redisReply *r = redisCommand(rc, "HGET planb:stats jobs");
    cr_assert(r != NULL);
    int n = r->type == REDIS_REPLY_STRING ? atoi(r->str) : 0;
    freeReplyObject(r);
    return n >= w->n;
}

/* Waits up to timeout_ms for every result; returns how many there are. */
static int
wait_results(const char *tag, int n, int timeout_ms)
{
    want w = {tag, n};
    th_wait_for(all_results, &w, timeout_ms / 50, 50);
    return count_results(tag, n);
}

/* Stored results beyond one per id: planb:events gets one entry per stored result. */
static long long
duplicates(int expected_results)
{
    return redis_int("XLEN %s", "planb:events") - expected_results;
}

/* Number of occurrences of needle in the planb log. */
static int
log_count(const char *needle)
{
    char *log = th_proc_log(&planb_p);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

static bool
reloaded(void *arg)
{
    return log_count(arg) >= 1;
}

typedef struct busy {
    pid_t pid;   /* out: the worker with the most jobs in flight */
    long long n; /* out: how many */
    long long min;
} busy;

static bool
worker_is_busy(void *arg)
{
    busy *b = arg;
    redisReply *r = redisCommand(rc, "ZRANGE planb:workers 0 -1");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    b->n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const char *id = r->element[i]->str;
        long long n = redis_int("LLEN planb:inflight:%s", id);
        const char *colon = strrchr(id, ':');
        if (n > b->n && colon) {
            b->n = n;
            b->pid = (pid_t)atoi(colon + 1);
        }
    }
    freeReplyObject(r);
    return b->n >= b->min;
}

Test(recovery, kill9_worker_with_200_in_flight)
{
    start_servers(NULL);
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":2000}"), 0);
    start_planb(recovery_config(2, 512, "primary", NULL));
    const int n = 500;
    push_jobs("k", n, NULL);
    busy b = {.min = 200};
    cr_assert(th_wait_for(worker_is_busy, &b, 200, 20), "no worker reached 200 jobs in flight");
    int64_t t0 = pb_mono_ms();
    cr_assert_eq(kill(b.pid, SIGKILL), 0);
    int got = wait_results("k", n, 20000);
    double secs = (double)(pb_mono_ms() - t0) / 1000.0;
    long long dups = duplicates(got);
    fprintf(stderr,
            "figures: kill9 pushed=%d killed_in_flight=%lld results=%d duplicates=%lld "
            "recovery_s=%.2f\n",
            n, b.n, got, dups, secs);
    cr_expect_eq(got, n, "every job has a result");
    cr_expect_eq(dups, 0, "no job has two results");
    cr_expect_lt(secs, 10.0 + 10.0, "recovered under lease + deadline");
    cr_expect_geq(log_count("event=reaped why=exit"), 1,
                  "the dead worker's jobs went back at once");
}

Test(recovery, sigterm_under_load_loses_nothing)
{
    start_servers(NULL);
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":1000}"), 0);
    const char *cfg = recovery_config(2, 50, "primary", "\"drain_timeout_ms\": 500");
    start_planb(cfg);
    const int n = 300;
    push_jobs("t", n, NULL);
    /* The first wave is done and the second just claimed: it cannot finish within the grace. */
    want first = {"t", 100};
    cr_assert(th_wait_for(at_least_results, &first, 200, 20));
    int64_t t0 = pb_mono_ms();
    th_proc_signal(&planb_p, SIGTERM);
    int st = th_proc_wait(&planb_p, 10000);
    double secs = (double)(pb_mono_ms() - t0) / 1000.0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "planb exited 0 (status %d)", st);
    /* Within the grace: the drain timeout plus the master's kill margin. */
    cr_expect_lt(secs, 0.5 + 5.0);
    int done = count_results("t", n);
    long long queued = redis_int("LLEN %s", "planb:q:default");
    long long workers = redis_int("ZCARD %s", "planb:workers");
    cr_expect_eq(done + queued, n, "every job is finished or back on the queue (%d + %lld)", done,
                 queued);
    cr_expect_eq(workers, 0, "drained workers left planb:workers");
    cr_expect_geq(log_count("event=handback jobs="), 1, "unfinished jobs were handed back");

    /* A new planb finishes what was handed back. */
    planb_p.pid = 0;
    start_planb(cfg);
    int got = wait_results("t", n, 20000);
    long long dups = duplicates(got);
    fprintf(stderr,
            "figures: sigterm pushed=%d exit_s=%.2f finished_before_exit=%d handed_back=%lld "
            "results=%d duplicates=%lld\n",
            n, secs, done, queued, got, dups);
    cr_expect_eq(got, n);
    cr_expect_eq(dups, 0);
}

Test(recovery, redis_restart_with_aof_mid_run)
{
    start_servers("appendonly yes\nappendfsync everysec\n");
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":700}"), 0);
    start_planb(recovery_config(1, 100, "primary", NULL));
    const int n = 400;
    push_jobs("r", n, NULL);
    busy b = {.min = 90};
    cr_assert(th_wait_for(worker_is_busy, &b, 200, 20));
    redisFree(rc);
    rc = NULL;
    int64_t t0 = pb_mono_ms();
    th_proc_stop(&redis_p, 5000);
    cr_assert_eq(th_redis_restart(&redis_p), 0);
    rc = th_redis(redis_p.port);
    int got = wait_results("r", n, 30000);
    double secs = (double)(pb_mono_ms() - t0) / 1000.0;
    long long dups = duplicates(got);
    int down_cmd = log_count("w0 event=redis_down conn=cmd");
    int up_cmd = log_count("w0 event=redis_up conn=cmd");
    int down_claim = log_count("w0 event=redis_down conn=claim");
    int up_claim = log_count("w0 event=redis_up conn=claim");
    fprintf(stderr,
            "figures: redis_restart pushed=%d results=%d duplicates=%lld all_done_s=%.2f "
            "w0_cmd_down=%d w0_cmd_up=%d w0_claim_down=%d w0_claim_up=%d\n",
            n, got, dups, secs, down_cmd, up_cmd, down_claim, up_claim);
    cr_expect_eq(got, n);
    cr_expect_eq(dups, 0);
    cr_expect_eq(down_cmd, 1, "one disconnect logged on the command connection");
    cr_expect_eq(up_cmd, 1, "one reconnect logged on the command connection");
    cr_expect_eq(down_claim, 1);
    cr_expect_eq(up_claim, 1);
}

static bool
poison_is_dead(void *arg)
{
    (void)arg;
    return redis_int("LLEN %s", "planb:dead") >= 1;
}

Test(recovery, poison_job_is_dead_lettered_after_max_deliveries)
{
    setenv("PLANB_TEST_HOOKS", "1", 1);
    start_servers(NULL);
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":200}"), 0);
    start_planb(recovery_config(2, 64, "primary", "\"max_deliveries\": 3"));
    push_jobs("p", 1, "\"reply\":true,\"meta\":{\"pb_test_crash\":true}");
    const int n = 60;
    push_jobs("ok", n, NULL);
    int64_t t0 = pb_mono_ms();
    cr_assert(th_wait_for(poison_is_dead, NULL, 300, 50), "the poison job reached planb:dead");
    double secs = (double)(pb_mono_ms() - t0) / 1000.0;
    redisReply *r = redisCommand(rc, "LINDEX planb:dead 0");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    cr_expect(strstr(r->str, "\"reason\":\"max_deliveries\"") != NULL, "%s", r->str);
    cr_expect(strstr(r->str, "\"id\":\"p-0\"") != NULL, "%s", r->str);
    freeReplyObject(r);
    /* A producer waiting on the poison job is answered. */
    r = redisCommand(rc, "BLPOP planb:reply:p-0 5");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    cr_expect(strstr(r->element[1]->str, "TOO_MANY_DELIVERIES") != NULL, "%s", r->element[1]->str);
    freeReplyObject(r);
    /* The pool keeps serving: every other job finishes, and new ones too. */
    push_jobs("after", 20, NULL);
    int got = wait_results("ok", n, 20000);
    int after = wait_results("after", 20, 20000);
    int crashes = log_count("event=test_crash");
    long long dead = redis_int("LLEN %s", "planb:dead");
    fprintf(stderr,
            "figures: poison pushed=%d+1 results=%d+%d crashes=%d dead=%lld duplicates=%lld "
            "dead_after_s=%.2f\n",
            n, got, after, crashes, dead, duplicates(got + after + 1), secs);
    cr_expect_eq(got, n);
    cr_expect_eq(after, 20);
    cr_expect_eq(crashes, 3, "delivered exactly max_deliveries times");
    cr_expect_eq(dead, 1, "only the poison job is dead");
    /* HINCRBY by 0 reads the field as an integer (planb_dead_lettered_total on /metrics) */
    cr_expect_eq(redis_int("HINCRBY planb:stats %s 0", "dead:added"), 1, "counted in dead:added");
    cr_expect_eq(duplicates(got + after + 1), 0);
}

Test(recovery, sighup_refuses_a_broken_config_and_applies_a_good_one)
{
    start_servers(NULL);
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":300}"), 0);
    cr_assert_eq(th_mock_set(&mock_p, "backup", "{\"mode\":\"ok\",\"latency_ms\":300}"), 0);
    start_planb(recovery_config(2, 64, "primary", NULL));
    push_jobs("h1", 100, NULL);
    /* The master must have read its config and blocked SIGHUP before we touch either. */
    char started[] = "event=worker_start";
    cr_assert(th_wait_for(reloaded, started, 100, 50));
    th_write_file(planb_p.dir, "planb.json", "{\"workers\": 2, broken");
    th_proc_signal(&planb_p, SIGHUP);
    char refused[] = "event=reload_refused";
    cr_assert(th_wait_for(reloaded, refused, 100, 50));
    int got1 = wait_results("h1", 100, 20000);
    cr_expect_eq(got1, 100, "the old config keeps serving");
    cr_expect_eq(th_mock_requests(&mock_p, "backup"), 0);

    push_jobs("h2", 200, NULL);
    th_write_file(planb_p.dir, "planb.json", recovery_config(2, 64, "backup", NULL));
    th_proc_signal(&planb_p, SIGHUP);
    char applied[] = "event=reloaded";
    cr_assert(th_wait_for(reloaded, applied, 100, 50));
    push_jobs("h3", 50, NULL);
    int got2 = wait_results("h2", 200, 30000);
    int got3 = wait_results("h3", 50, 30000);
    long long dups = duplicates(got1 + got2 + got3);
    redisReply *r = redisCommand(rc, "GET planb:result:h3-49");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    cr_expect(strstr(r->str, "\"model\":\"backup\"") != NULL, "new chain in effect: %s", r->str);
    freeReplyObject(r);
    fprintf(stderr, "figures: sighup pushed=%d results=%d duplicates=%lld refused=%d\n", 350,
            got1 + got2 + got3, dups, log_count("event=reload_refused"));
    cr_expect_eq(got2, 200, "no job lost across the reload");
    cr_expect_eq(got3, 50);
    cr_expect_eq(dups, 0);
}

Test(recovery, stopped_worker_is_reaped_after_the_lease_and_its_late_finish_is_refused)
{
    start_servers(NULL);
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":1500}"), 0);
    start_planb(recovery_config(2, 200, "primary", "\"lease_ms\": 1500"));
    const int n = 150;
    push_jobs("s", n, NULL);
    busy b = {.min = 50};
    cr_assert(th_wait_for(worker_is_busy, &b, 200, 20));
    /* A frozen worker is not dead to the master (no SIGCHLD): only its lease can tell. */
    int64_t t0 = pb_mono_ms();
    cr_assert_eq(kill(b.pid, SIGSTOP), 0);
    int got = wait_results("s", n, 20000);
    double secs = (double)(pb_mono_ms() - t0) / 1000.0;
    kill(b.pid, SIGCONT);
    /* Its late finishes find the results stored and are refused. */
    char needle[64];
    snprintf(needle, sizeof(needle), "event=duplicate");
    th_wait_for(reloaded, needle, 100, 50);
    long long dups = duplicates(got);
    fprintf(stderr,
            "figures: stopped_worker pushed=%d frozen_in_flight=%lld results=%d "
            "duplicates=%lld recovery_s=%.2f lease_s=1.5\n",
            n, b.n, got, dups, secs);
    cr_expect_eq(got, n);
    cr_expect_eq(dups, 0);
    cr_expect_lt(secs, 1.5 + 0.5 + 2.0, "reaped within the lease plus a sweep and one call");
    cr_expect_geq(log_count("event=reaped why=lease"), 1);
}

/* Locks the test's Redis with a password for the default user and an ACL user of planb's. */
static void
lock_redis(void)
{
    redisReply *r = redisCommand(rc, "ACL SETUSER planbu on >acl-Secret-77 ~* &* +@all");
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "ACL SETUSER");
    freeReplyObject(r);
    r = redisCommand(rc, "CONFIG SET requirepass pw-Secret-42");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(rc, "AUTH pw-Secret-42");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* Runs a few jobs through planb configured with redis_extra; the secret must not be logged. */
static void
auth_run(const char *redis_section, const char *secret)
{
    char *cfg = recovery_config(1, 16, "primary", NULL);
    /* Replace the redis section with one that authenticates. */
    char *end = strstr(cfg, "},\n");
    cr_assert_not_null(end);
    char buf[4096];
    snprintf(buf, sizeof(buf), "{\"redis\": {%s}%s", redis_section, end + 1);
    start_planb(buf);
    push_jobs("a", 20, NULL);
    int got = wait_results("a", 20, 15000);
    cr_expect_eq(got, 20, "jobs run over an authenticated connection");
    char *log = th_proc_log(&planb_p);
    cr_expect(log && strstr(log, secret) == NULL, "the password never reaches the log");
    cr_expect(log && strstr(log, "event=redis_down") == NULL, "no auth failure: %s", log);
    free(log);
    fprintf(stderr, "figures: auth pushed=20 results=%d\n", got);
}

Test(recovery, redis_auth_with_a_password)
{
    start_servers(NULL);
    lock_redis();
    setenv("PB_TEST_REDIS_PW", "pw-Secret-42", 1);
    char section[256];
    snprintf(section, sizeof(section),
             "\"url\": \"redis://127.0.0.1:%d/0\", \"password_env\": \"PB_TEST_REDIS_PW\"",
             redis_p.port);
    auth_run(section, "pw-Secret-42");
}

Test(recovery, redis_auth_with_an_acl_user)
{
    start_servers(NULL);
    lock_redis();
    setenv("PB_TEST_REDIS_PW", "acl-Secret-77", 1);
    char section[256];
    snprintf(section, sizeof(section),
             "\"url\": \"redis://127.0.0.1:%d/0\", \"user\": \"planbu\","
             " \"password_env\": \"PB_TEST_REDIS_PW\"",
             redis_p.port);
    auth_run(section, "acl-Secret-77");
}
