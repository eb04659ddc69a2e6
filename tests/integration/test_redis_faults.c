/* test_redis_faults.c -- Redis as production runs it: BUSY, OOM, a stall past the lease,
 * lost claim replies, dead-letter floods, oversized jobs.
 *
 * Each Test builds its own redis-server, planb-mock and `planb serve`, breaks
 * Redis on purpose while jobs are in flight and checks that every job gets
 * exactly one result and ran upstream once. Each prints one "figures:" line on
 * stderr (pushed, results, duplicates = results stored twice, upstream calls,
 * and what the scenario measures) for the closing note. The slow
 * scenarios (a big dataset's LOADING, Sentinel failovers, a black-holed
 * connection) are in tests/slow/. slow.test_redis_faults_tls runs them all again with
 * PB_TEST_TLS=1: planb on the server's TLS port (the test's own probes stay plaintext). */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "planb/core.h"
#include "planb/scripts.h"
#include "th_fleet.h"
#include "th_jobs.h"

static th_proc redis_p, mock_p, planb_p;
static redisContext *rc;

/* One route on the mock's "primary" (2 s answers unless a Test says otherwise). */
static char *
faults_config(int workers, int concurrency, const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "{\"redis\": {%s},\n"
             " \"workers\": %d, \"concurrency\": %d, \"queues\": [\"default\"],\n"
             " \"providers\": {\"mockai\": {\"type\": \"openai\", \"base_url\":"
             " \"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},\n"
             " \"models\": {\"primary\": {\"provider\": \"mockai\", \"timeout_ms\": 8000}},\n"
             " \"routes\": {\"default\": {\"chain\": [\"primary\"], \"retries\": 0,"
             " \"deadline_ms\": 20000}}%s%s}\n",
             th_redis_json(&redis_p), workers, concurrency, mock_p.port, extra ? ",\n" : "",
             extra ? extra : "");
    return buf;
}

static void
teardown(void)
{
    if (redis_p.pid > 0)
        kill(redis_p.pid, SIGCONT); /* a failed Test may leave it stopped */
    th_planb_stop(&planb_p, 15000);
    th_world_stop(&mock_p, &redis_p, &rc);
}

TestSuite(faults, .fini = teardown, .timeout = 240);

/* planb's log on stderr without the per-job lines, for a Test about to fail. */
static void
dump_planb_log(void)
{
    char *log = th_proc_log(&planb_p);
    fprintf(stderr, "--- planb log (no per-job lines)\n");
    for (char *line = log, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (!strstr(line, "event=job_done") && !strstr(line, "event=finish_"))
            fprintf(stderr, "%s\n", line);
    }
    free(log);
}

typedef struct fleet_want {
    const char *tag;
    int n;
} fleet_want;

static bool
fleet_done(void *arg)
{
    const fleet_want *w = arg;
    return th_fleet_results(rc, w->tag, w->n) == w->n;
}

static bool
fleet_in_flight(void *arg)
{
    const fleet_want *w = arg;
    return th_fleet_inflight(rc) >= w->n;
}

/* Starts the world, pushes n jobs "<tag>-i" and waits until want of them are in flight. */
static void
fleet_start(const char *redis_conf, const char *planb_extra, int concurrency, const char *tag,
            int n, int want_in_flight, int latency_ms)
{
    th_world_start(&redis_p, &mock_p, redis_conf, &rc);
    char behaviour[96];
    snprintf(behaviour, sizeof(behaviour), "{\"mode\":\"ok\",\"latency_ms\":%d}", latency_ms);
    cr_assert_eq(th_mock_set(&mock_p, "primary", behaviour), 0);
    th_serve(&planb_p, faults_config(2, concurrency, planb_extra));
    cr_assert_eq(th_fleet_push(rc, tag, n, NULL), 0);
    fleet_want w = {tag, want_in_flight};
    if (!th_wait_for(fleet_in_flight, &w, 400, 25))
        dump_planb_log();
    cr_assert(th_wait_for(fleet_in_flight, &w, 400, 25),
              "%d jobs never got in flight (%lld are, %d done)", want_in_flight,
              th_fleet_inflight(rc), th_fleet_results(rc, tag, n));
}

/* Waits up to timeout_ms for every result of the fleet; returns how many there are. */
static int
fleet_wait(const char *tag, int n, int timeout_ms)
{
    fleet_want w = {tag, n};
    th_wait_for(fleet_done, &w, timeout_ms / 50, 50);
    return th_fleet_results(rc, tag, n);
}

static long long
stat_of(const char *field)
{
    char buf[32];
    th_hget(rc, "planb:stats", field, buf, sizeof(buf));
    return atoll(buf);
}

/* Prints and checks what every scenario promises: one result, one reply entry, one call each. */
static void
fleet_check(const char *name, const char *tag, int n, int got, const char *more)
{
    long long dups = th_fleet_int(rc, "XLEN %s", "planb:events") - got;
    int replies = th_fleet_replies_once(rc, tag, n);
    long calls = th_mock_requests(&mock_p, "primary");
    fprintf(stderr,
            "figures: %s pushed=%d results=%d replies_once=%d duplicates=%lld upstream_calls=%ld "
            "held=%lld resends=%lld handbacks=%lld orphans=%lld reaper_graces=%lld %s\n",
            name, n, got, replies, dups, calls, stat_of("finish:held"), stat_of("finish:resends"),
            stat_of("handbacks"), stat_of("orphans"), stat_of("reaper:graces"), more ? more : "");
    if (got != n || replies != n || dups != 0 || calls != n)
        dump_planb_log();
    cr_expect_eq(got, n, "every job has a result");
    cr_expect_eq(replies, n, "every reply list holds exactly one result");
    cr_expect_eq(dups, 0, "no result stored twice");
    cr_expect_eq(calls, n, "every job ran upstream once");
}

/* Sends a command (argv) without waiting for its reply (read it later with redisGetReply). */
static void
send_only(redisContext *c, int argc, const char **argv)
{
    redisAppendCommandArgv(c, argc, argv, NULL);
    int done = 0;
    while (!done)
        cr_assert_eq(redisBufferWrite(c, &done), REDIS_OK);
}

Test(faults, busy_script_holds_finishes_then_delivers)
{
    const int n = 500;
    fleet_start("busy-reply-threshold 1000\n", NULL, 512, "b", n, n, 2000);
    /* A script that keeps Redis busy for 6 s: past 1 s everything else gets -BUSY. */
    redisContext *busy = th_redis(redis_p.port);
    int64_t t0 = pb_mono_ms();
    const char *eval[] = {"EVAL",
                          "local s = tonumber(redis.call('TIME')[1]) "
                          "while tonumber(redis.call('TIME')[1]) - s < 6 do end return 1",
                          "0"};
    send_only(busy, 3, eval);
    redisReply *r = NULL;
    cr_assert_eq(redisGetReply(busy, (void **)&r), REDIS_OK);
    double busy_s = (double)(pb_mono_ms() - t0) / 1000.0;
    freeReplyObject(r);
    redisFree(busy);
    int got = fleet_wait("b", n, 20000);
    double done_s = (double)(pb_mono_ms() - t0) / 1000.0;
    char more[96];
    snprintf(more, sizeof(more), "busy_s=%.2f all_done_s=%.2f", busy_s, done_s);
    fleet_check("busy", "b", n, got, more);
    cr_expect_gt(stat_of("finish:held"), 0, "finishes met BUSY and were held");
    cr_expect_lt(done_s, busy_s + 5.0);
}

/* Fills a noeviction Redis with filler:<i> keys (1 MiB each) until writes are refused with
 * OOM; returns how many were stored. */
static int
fill_to_oom(void)
{
    size_t len = 1 << 20;
    char *chunk = memset(pb_xmalloc(len), 'x', len);
    int i;
    for (i = 0; i < 10000; i++) {
        redisReply *r = redisCommand(rc, "SET filler:%d %b", i, chunk, len);
        bool oom = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "OOM", 3) == 0;
        freeReplyObject(r);
        if (oom)
            break;
    }
    free(chunk);
    return i;
}

static void
unfill(int filler)
{
    for (int i = 0; i < filler; i++)
        redisAppendCommand(rc, "DEL filler:%d", i);
    for (int i = 0; i < filler; i++) {
        redisReply *r = NULL;
        cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
}

Test(faults, oom_claims_wait_then_everything_is_delivered)
{
    const int n = 500;
    fleet_start("maxmemory 64mb\nmaxmemory-policy noeviction\n", NULL, 50, "o", n, 100, 2000);
    int filler = fill_to_oom();
    cr_assert_gt(filler, 0);
    /* Full for 5 s: claims (and heartbeats) are refused with OOM, so the rest wait in the
     * queue; in-flight finishes either land (finish.lua's first write is the ack, and Redis
     * lets a script that has written go on) or are held and re-sent. */
    th_wait_for(fleet_done, &(fleet_want){"o", n}, 100, 50);
    int during = th_fleet_results(rc, "o", n);
    long long queued = th_fleet_int(rc, "LLEN %s", "planb:q:default");
    int64_t t0 = pb_mono_ms();
    unfill(filler);
    int got = fleet_wait("o", n, 60000);
    char more[160];
    snprintf(more, sizeof(more),
             "filler_mib=%d results_while_full=%d queued_while_full=%lld done_after_free_s=%.2f",
             filler, during, queued, (double)(pb_mono_ms() - t0) / 1000.0);
    fleet_check("oom", "o", n, got, more);
    cr_expect_lt(during, n, "nothing new was claimed while Redis was full");
    cr_expect_gt(queued, 0);
}

static bool
time_reached(void *arg)
{
    return pb_mono_ms() >= *(int64_t *)arg;
}

static bool
worker_registered(void *arg)
{
    (void)arg;
    return th_fleet_int(rc, "ZCARD %s", "planb:workers") >= 1;
}

Test(faults, redis_stalled_15s_past_the_lease_hands_nothing_back)
{
    const int n = 500;
    /* lease 10 s (the default): the stall outlasts it */
    fleet_start(NULL, NULL, 512, "u", n, n, 2000);
    int64_t t0 = pb_mono_ms();
    th_proc_signal(&redis_p, SIGSTOP); /* unreachable: connections stay open, nothing answers */
    int64_t until = t0 + 15000;
    th_wait_for(time_reached, &until, 100, 200);
    th_proc_signal(&redis_p, SIGCONT);
    int64_t t1 = pb_mono_ms();
    int got = fleet_wait("u", n, 30000);
    char more[96];
    snprintf(more, sizeof(more), "stalled_s=%.1f done_after_resume_s=%.2f",
             (double)(t1 - t0) / 1000.0, (double)(pb_mono_ms() - t1) / 1000.0);
    fleet_check("stall15", "u", n, got, more);
    cr_expect_eq(stat_of("handbacks"), 0, "no live worker was taken for dead");
}

Test(faults, lost_claim_reply_is_reconciled_on_reconnect)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":50}"), 0);
    th_serve(&planb_p, faults_config(1, 16, NULL));
    cr_assert(th_wait_for(worker_registered, NULL, 200, 50), "no worker registered");
    redisReply *w = redisCommand(rc, "ZRANGE planb:workers 0 0");
    cr_assert(w && w->type == REDIS_REPLY_ARRAY && w->elements == 1);
    /* What a claim whose reply was lost leaves behind: a job in the worker's list that it does
     * not run. A dropped connection makes the worker look. */
    redisReply *r = redisCommand(rc,
                                 "LPUSH planb:inflight:%s {\"id\":\"orphan-0\",\"reply\":true,"
                                 "\"messages\":[{\"role\":\"user\",\"content\":\"lost\"}]}",
                                 w->element[0]->str);
    freeReplyObject(r);
    freeReplyObject(w);
    r = redisCommand(rc, "CLIENT KILL TYPE normal");
    freeReplyObject(r);
    int got = fleet_wait("orphan", 1, 10000);
    fleet_check("orphan", "orphan", 1, got, NULL);
    cr_expect_eq(stat_of("orphans"), 1);
}

static bool
flood_done(void *arg)
{
    return stat_of("jobs") >= *(long *)arg;
}

Test(faults, flood_of_100k_invalid_jobs_keeps_planb_dead_at_its_bound)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    th_serve(&planb_p, faults_config(2, 512, "\"limits\": {\"dead_max_entries\": 1000}"));
    long n = 100000;
    int64_t t0 = pb_mono_ms();
    for (long done = 0; done < n; done += 1000) {
        for (int i = 0; i < 1000; i++) {
            char bad[32];
            snprintf(bad, sizeof(bad), "{not json %ld", done + i);
            redisAppendCommand(rc, "LPUSH planb:q:default %s", bad);
        }
        for (int i = 0; i < 1000; i++) {
            redisReply *r = NULL;
            cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
            freeReplyObject(r);
        }
    }
    cr_assert(th_wait_for(flood_done, &n, 2400, 50), "only %lld of %ld jobs finished",
              stat_of("jobs"), n);
    long long dead = th_fleet_int(rc, "LLEN %s", "planb:dead");
    long long trimmed = stat_of("dead:trimmed");
    fprintf(stderr,
            "figures: dead_flood pushed=%ld finished=%lld dead_len=%lld trimmed=%lld s=%.2f\n", n,
            stat_of("jobs"), dead, trimmed, (double)(pb_mono_ms() - t0) / 1000.0);
    cr_expect_eq(dead, 1000);
    cr_expect_eq(trimmed, n - 1000);
}

Test(faults, oversized_job_with_a_readable_id_gets_its_too_large_result)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    th_serve(&planb_p, faults_config(1, 16, "\"limits\": {\"job_max_bytes\": 1024}"));
    size_t big = 8000;
    char *text = memset(pb_xmalloc(big + 1), 'y', big);
    text[big] = '\0';
    char *job = pb_xasprintf("{\"id\":\"big-1\",\"reply\":true,\"messages\":[{\"role\":\"user\","
                             "\"content\":\"%s\"}]}",
                             text);
    long job_len = (long)strlen(job);
    cr_assert_eq(th_push_raw(rc, job), 0);
    free(job);
    free(text);
    json_object *res = th_wait_result(rc, "big-1", 10.0);
    cr_assert(res != NULL, "no result on planb:reply:big-1");
    cr_expect_str_eq(th_field(res, "status"), "invalid");
    cr_expect(strncmp(th_field(res, "error"), "TOO_LARGE", 9) == 0, "error: %s",
              th_field(res, "error"));
    json_object_put(res);
    redisReply *d = redisCommand(rc, "LINDEX planb:dead 0");
    cr_assert(d && d->type == REDIS_REPLY_STRING);
    json_object *e = json_tokener_parse(d->str);
    size_t entry_len = d->len;
    freeReplyObject(d);
    fprintf(stderr, "figures: too_large job_bytes=%ld dead_entry_bytes=%zu head=%zu\n",
            th_field_int(e, "job_bytes"), entry_len, strlen(th_field(e, "job_head")));
    cr_expect_str_eq(th_field(e, "id"), "big-1");
    cr_expect_eq(th_field_int(e, "job_bytes"), job_len);
    cr_expect_eq(strlen(th_field(e, "job_sha256")), 64);
    cr_expect_eq(strlen(th_field(e, "job_head")), 4096);
    cr_expect_str_eq(th_field(e, "job"), "", "the whole job is not kept");
    json_object_put(e);
}

static th_proc replica_p;

static bool
replica_in_sync(void *arg)
{
    (void)arg;
    redisReply *r = redisCommand(rc, "INFO replication");
    bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "connected_slaves:1") &&
              strstr(r->str, "state=online");
    freeReplyObject(r);
    return ok;
}

static bool
job_in_flight(void *arg)
{
    (void)arg;
    return th_mock_requests(&mock_p, "primary") >= 1;
}

/* The [db addr] client field of a MONITOR line, into out. */
static void
monitor_client(const char *line, char *out, size_t size)
{
    const char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
    snprintf(out, size, "%.*s", a && b ? (int)(b - a) : 0, a ? a : "");
}

Test(faults, a_finish_sent_again_after_noscript_is_confirmed_by_a_wait_after_it)
{
    th_world_start(&redis_p, &mock_p, NULL, &rc);
    char conf[64];
    snprintf(conf, sizeof(conf), "replicaof 127.0.0.1 %d", redis_p.port);
    cr_assert_eq(th_redis_start(&replica_p, conf), 0);
    bool synced = th_wait_for(replica_in_sync, NULL, 200, 50);
    if (!synced)
        th_proc_stop(&replica_p, 2000);
    cr_assert(synced, "the replica never came online");
    cr_assert_eq(th_mock_set(&mock_p, "primary", "{\"mode\":\"ok\",\"latency_ms\":800}"), 0);
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {%s, \"wait_replicas\": 1,"
             " \"wait_timeout_ms\": 2000}, \"workers\": 1, \"concurrency\": 4,"
             " \"providers\": {\"mockai\": {\"type\": \"openai\", \"base_url\":"
             " \"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_TEST_KEY\"}},"
             " \"models\": {\"primary\": {\"provider\": \"mockai\"}},"
             " \"routes\": {\"default\": {\"chain\": [\"primary\"], \"deadline_ms\": 10000}}}",
             th_redis_json(&redis_p), mock_p.port);
    th_serve(&planb_p, cfg);
    redisContext *mon = th_redis(redis_p.port);
    redisReply *r = redisCommand(mon, "MONITOR");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    cr_assert_eq(th_push_job(rc, "ns1", NULL), 0);
    cr_assert(th_wait_for(job_in_flight, NULL, 200, 20));
    /* The finish's EVALSHA now meets NOSCRIPT and is sent again as EVAL. */
    r = redisCommand(rc, "SCRIPT FLUSH");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    json_object *res = th_wait_result(rc, "ns1", 10.0);
    cr_assert(res != NULL, "no result");
    json_object_put(res);
    /* What planb's command connection sent after the finish's EVAL, up to 1 s of it. */
    struct timeval tv = {0, 200 * 1000};
    redisSetTimeout(mon, tv);
    char client[64] = "";
    const char *claim_sha = pb_scripts_sha(pb_scripts_find("claim"));
    int after = 0;
    bool evalsha_seen = false, confirmed = false, claimed = false;
    int64_t until = pb_mono_ms() + 1000;
    while (pb_mono_ms() < until && !confirmed && !claimed) {
        redisReply *line = NULL;
        if (redisGetReply(mon, (void **)&line) != REDIS_OK || line == NULL)
            break;
        if (line->type == REDIS_REPLY_STATUS) {
            char who[64];
            monitor_client(line->str, who, sizeof(who));
            if (client[0] == '\0' && strstr(line->str, "\"EVALSHA\"") &&
                strstr(line->str, "\"planb:result:ns1\""))
                evalsha_seen = true;
            if (client[0] == '\0' && strstr(line->str, "\"EVAL\"") &&
                strstr(line->str, "finish.lua")) {
                snprintf(client, sizeof(client), "%s", who);
            } else if (client[0] && strcmp(who, client) == 0) {
                /* the first WAIT after it confirms it, unless a claim (and its own WAIT)
                 * came first */
                after++;
                confirmed = strstr(line->str, "\"WAIT\"") != NULL;
                claimed = strstr(line->str, claim_sha) || strstr(line->str, "-- claim.lua");
            }
        }
        freeReplyObject(line);
    }
    redisFree(mon);
    th_proc_stop(&replica_p, 2000);
    fprintf(stderr, "figures: noscript_wait commands_after_eval=%d confirmed=%d\n", after,
            confirmed);
    cr_assert(evalsha_seen, "the finish went out as EVALSHA first");
    cr_assert(client[0] != '\0', "the finish was never sent again as EVAL");
    cr_expect(confirmed, "no WAIT after the re-sent finish: it counted unconfirmed");
}
