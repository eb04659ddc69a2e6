/* front.c (bench_front) -- the front door (OpenAI-compatible HTTP) at load: the latency it adds,
 * its throughput, and 10,000 requests waiting at once.
 *
 * Starts its own redis-server, planb-mock and planb (2 workers, concurrency 6000 each, the
 * front on a free loopback port, http.max_connections 20000, no metrics listener). The client
 * is the bench's own: HTTP/1.1 on libevent bufferevents, keep-alive connections, one request
 * in flight per connection; each request is POST /v1/chat/completions with a distinct question
 * and `x-planb-cache: skip`, so the cache never answers; its latency is client-side, from the
 * write being queued to the whole answer parsed (us). The direct baseline is the same
 * jobs LPUSHed on planb:q:default from the same loop (hiredis async), each job's latency taken
 * from the push to its result arriving on a subscription to planb:results: the channel the
 * front itself waits on, so front - direct is what HTTP and the front add.
 *   1. added latency at 1,000 requests/s (zero-latency upstream): open loop, a 1 ms timer
 *      sends the requests due (so the rate holds when a tick is late) on free connections
 *      of a pool of 200, for 10 s (2 s with --quick); then the same number of direct jobs at
 *      the same rate. Prints p50/p99/max of both and front - direct at p50 and p99 (target:
 *      p99 added <= 2 ms). A warm-up of 500 requests comes first, not measured.
 *   2. maximum requests/s (zero-latency upstream): closed loop, C connections (64 and 256)
 *      each sending its next request as soon as its answer is in, for 10 s (2 s); then C jobs
 *      kept in flight directly, the same way. Prints both rates and p50/p99, and the rate of a
 *      pipelined push of N jobs (bench_jobs' way: until planb:stats jobs has grown by N).
 *   3. 10,000 concurrent slow requests (1,000 with --quick; the primary answers after 2 s),
 *      on a freshly started planb so its peaks are this run's: opens one connection per
 *      request (at most 256 connecting at once) and sends its request when connected; prints
 *      how many came back 200 with the mock's "echo:" content, the time until all were
 *      answered, the peak in progress, and the peak RSS (VmHWM) of the front process (its pid
 *      from its heartbeat channel planb:front:beat:<host:pid>; checked to be the master's
 *      child) and of the workers (planb:workers' host:pid).
 * A benchmark: prints figures, fails only when it cannot run (a server does not start, or
 * a request got no answer: a lost connection or no answer in time).
 *   bench_front [--quick] [--seconds S] [--slow N] */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "th_bench.h"

#define POOL_OPEN       200  /* connections of run 1's pool */
#define MAX_CONNECTING  256  /* connects in progress at once (below the front's backlog) */
#define OPEN_RATE       1000 /* requests (jobs) per second in run 1 */
#define WARMUP_REQUESTS 500
#define MAX_HEAD_BYTES  8192

static th_proc redis_p, mock_p, planb_p;
static struct event_base *base;
static struct sockaddr_in front_addr;
static int front_port;
static redisAsyncContext *push_ac; /* direct pushes */
static const char *skip = "skip";  /* the direct jobs' cache mode */

static int64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ one run's bookkeeping */

typedef enum {
    RUN_IDLE,
    FRONT_OPEN,    /* run 1: OPEN_RATE requests/s through the front */
    FRONT_CLOSED,  /* run 2: each connection sends again when answered */
    FRONT_SLOW,    /* run 3: one request per connection, sent when connected */
    DIRECT_OPEN,   /* run 1's baseline */
    DIRECT_CLOSED, /* run 2's baseline */
} run_mode;

static struct {
    run_mode mode;
    const char *tag;     /* in the questions (front) and job ids (direct) */
    long target;         /* open and slow: requests to send */
    long sent, answered; /* answered: complete answers (any status) */
    long ok, non200, noecho, lost, closed_by_server, stalls;
    long in_progress, peak;
    int64_t start_us, stop_at_us, last_answer_us, all_sent_us;
    bool stopping; /* closed: no new requests */
    long *lat;     /* us, one per answer */
    size_t n_lat, cap_lat;
    int64_t *push_us; /* direct: job i's push time, -1 once its result came */
    size_t cap_push;
    bool subscribed;
} R;

static void
lat_add(long us)
{
    if (R.n_lat == R.cap_lat) {
        R.cap_lat = R.cap_lat ? 2 * R.cap_lat : 16384;
        R.lat = realloc(R.lat, R.cap_lat * sizeof(long));
    }
    R.lat[R.n_lat++] = us;
}

static void
run_begin(run_mode mode, const char *tag, long target)
{
    free(R.lat);
    free(R.push_us);
    memset(&R, 0, sizeof(R));
    R.mode = mode;
    R.tag = tag;
    R.target = target;
    R.start_us = now_us();
}

/* Sorts the latencies; p in permille. */
static double
pct_ms(int permille)
{
    if (R.n_lat == 0)
        return -1;
    size_t i = R.n_lat * (size_t)permille / 1000;
    return R.lat[i < R.n_lat ? i : R.n_lat - 1] / 1000.0;
}

static void
lat_sort(void)
{
    qsort(R.lat, R.n_lat, sizeof(long), cmp_long);
}

/* ------------------------------------------------------------------ the HTTP client */

typedef struct conn {
    struct bufferevent *bev; /* NULL once closed */
    bool connected, busy;
    int64_t sent_us;
    size_t head_len, body_len; /* of the answer being read; head_len 0 before its head */
    int status;
    bool close_after;
    struct conn *next_free;
} conn;

static struct {
    conn *conns;
    long n, opened, connecting, connected, failed;
    bool send_on_connect; /* run 3 */
    conn *free_list;
    long seq; /* distinct questions */
} P;

static void front_pump(void);
static void pool_pump(void);

static void
conn_kill(conn *c)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->connected)
        P.connected--;
    c->connected = false;
    if (c->busy) {
        c->busy = false;
        R.lost++;
        R.in_progress--;
    }
}

static void
conn_send(conn *c)
{
    char body[256], req[768];
    int bl = snprintf(body, sizeof(body),
                      "{\"messages\":[{\"role\":\"user\",\"content\":\"front %s question %ld\"}]}",
                      R.tag, P.seq++);
    int rl = snprintf(req, sizeof(req),
                      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nx-planb-cache: skip\r\n"
                      "Content-Length: %d\r\n\r\n%s",
                      front_port, bl, body);
    c->busy = true;
    c->sent_us = now_us();
    bufferevent_write(c->bev, req, (size_t)rl);
    R.sent++;
    if (++R.in_progress > R.peak)
        R.peak = R.in_progress;
    if (R.sent == R.target)
        R.all_sent_us = c->sent_us;
}

static void
conn_free_push(conn *c)
{
    c->next_free = P.free_list;
    P.free_list = c;
}

static conn *
conn_free_pop(void)
{
    while (P.free_list) {
        conn *c = P.free_list;
        P.free_list = c->next_free;
        if (c->bev && c->connected && !c->busy)
            return c;
    }
    return NULL;
}

/* An answer is in: counts it and gives the connection its next request, if any. */
static void
conn_answered(conn *c, bool echo)
{
    int64_t t = now_us();
    c->busy = false;
    lat_add((long)(t - c->sent_us));
    R.answered++;
    R.in_progress--;
    R.last_answer_us = t;
    if (c->status != 200)
        R.non200++;
    else if (!echo)
        R.noecho++;
    else
        R.ok++;
    if (c->close_after) {
        R.closed_by_server++;
        conn_kill(c);
        return;
    }
    if (R.mode == FRONT_CLOSED && !R.stopping)
        conn_send(c);
    else if (R.mode != FRONT_SLOW)
        conn_free_push(c);
    if (R.mode == FRONT_OPEN)
        front_pump();
}

/* Parses the head of an answer (status, Content-Length, Connection: close); false when it is
 * not one this client can read. */
static bool
conn_head(conn *c, const unsigned char *h, size_t n)
{
    char buf[MAX_HEAD_BYTES + 1];
    if (n > MAX_HEAD_BYTES)
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &c->status) != 1)
        return false;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl == NULL)
        return false;
    c->body_len = (size_t)strtoul(cl + 17, NULL, 10);
    c->close_after = strcasestr(buf, "\r\nConnection: close") != NULL;
    c->head_len = n;
    return true;
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->bev) {
        if (c->head_len == 0) {
            struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (p.pos < 0) {
                if (evbuffer_get_length(in) > MAX_HEAD_BYTES)
                    conn_kill(c);
                return;
            }
            size_t n = (size_t)p.pos + 4;
            if (!c->busy || !conn_head(c, evbuffer_pullup(in, (ev_ssize_t)n), n)) {
                conn_kill(c); /* an answer nobody asked for, or unreadable */
                return;
            }
        }
        size_t total = c->head_len + c->body_len;
        if (evbuffer_get_length(in) < total)
            return;
        const unsigned char *all = evbuffer_pullup(in, (ev_ssize_t)total);
        bool echo = memmem(all + c->head_len, c->body_len, "\"content\":\"echo: ", 17) != NULL;
        evbuffer_drain(in, total);
        c->head_len = 0;
        conn_answered(c, echo);
    }
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
    conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        P.connecting--;
        P.connected++;
        c->connected = true;
        if (P.send_on_connect)
            conn_send(c);
        else
            conn_free_push(c);
        pool_pump();
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (!c->connected) {
            P.connecting--;
            P.failed++;
        }
        conn_kill(c);
        pool_pump();
    }
}

/* Starts connects until P.n are opened, MAX_CONNECTING at a time. */
static void
pool_pump(void)
{
    while (P.opened < P.n && P.connecting < MAX_CONNECTING) {
        conn *c = &P.conns[P.opened++];
        c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (c->bev == NULL) {
            P.failed++;
            continue;
        }
        bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        P.connecting++;
        if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&front_addr,
                                       sizeof(front_addr)) != 0) {
            P.connecting--;
            P.failed++;
            bufferevent_free(c->bev);
            c->bev = NULL;
        }
    }
}

static void
pool_close(void)
{
    for (long i = 0; i < P.opened; i++)
        conn_kill(&P.conns[i]);
    free(P.conns);
    long seq = P.seq;
    memset(&P, 0, sizeof(P));
    P.seq = seq;
}

/* Run 1: sends the requests due by now (rate from the run's start). */
static void
front_pump(void)
{
    long due = (long)((now_us() - R.start_us) * OPEN_RATE / 1000000);
    if (due > R.target)
        due = R.target;
    while (R.sent < due) {
        conn *c = conn_free_pop();
        if (c == NULL) {
            R.stalls++; /* none free: the request goes out late, when one is */
            return;
        }
        conn_send(c);
    }
}

/* ------------------------------------------------------------------ direct jobs */

static void
direct_push(void)
{
    long i = R.sent++;
    if ((size_t)i >= R.cap_push) {
        R.cap_push = R.cap_push ? 2 * R.cap_push : 16384;
        R.push_us = realloc(R.push_us, R.cap_push * sizeof(int64_t));
    }
    char job[512];
    th_plain_job(job, sizeof(job), R.tag, (int)i, &skip);
    R.push_us[i] = now_us();
    redisAsyncCommand(push_ac, NULL, NULL, "LPUSH planb:q:default %s", job);
    if (++R.in_progress > R.peak)
        R.peak = R.in_progress;
}

static void
direct_pump(void)
{
    long due = (long)((now_us() - R.start_us) * OPEN_RATE / 1000000);
    if (due > R.target)
        due = R.target;
    while (R.sent < due)
        direct_push();
}

/* A message on planb:results: one of this run's jobs is done. */
static void
direct_result(const char *msg)
{
    const char *p = strstr(msg, "\"id\":\"");
    size_t tl = strlen(R.tag);
    if (p == NULL || strncmp(p + 6, R.tag, tl) != 0 || p[6 + tl] != '-')
        return;
    long i = strtol(p + 7 + tl, NULL, 10);
    if (i < 0 || i >= R.sent || R.push_us[i] < 0)
        return; /* not ours, or a duplicate */
    int64_t t = now_us();
    lat_add((long)(t - R.push_us[i]));
    R.push_us[i] = -1;
    R.answered++;
    R.ok++;
    R.in_progress--;
    R.last_answer_us = t;
    if (R.mode == DIRECT_CLOSED && !R.stopping)
        direct_push();
}

static void
on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)priv;
    redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0)
        R.subscribed = true;
    else if (strcmp(r->element[0]->str, "message") == 0 &&
             r->element[2]->type == REDIS_REPLY_STRING &&
             (R.mode == DIRECT_OPEN || R.mode == DIRECT_CLOSED))
        direct_result(r->element[2]->str);
}

/* ------------------------------------------------------------------ the loop */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pool_pump();
    if (R.mode == FRONT_OPEN)
        front_pump();
    else if (R.mode == DIRECT_OPEN)
        direct_pump();
    if ((R.mode == FRONT_CLOSED || R.mode == DIRECT_CLOSED) && now_us() >= R.stop_at_us)
        R.stopping = true;
}

static bool
run_done(void)
{
    switch (R.mode) {
    case FRONT_OPEN:
    case DIRECT_OPEN:
        return R.sent == R.target && R.in_progress == 0;
    case FRONT_CLOSED:
    case DIRECT_CLOSED:
        return R.stopping && R.in_progress == 0;
    case FRONT_SLOW:
        return R.answered + R.lost + P.failed >= R.target;
    default:
        return true;
    }
}

static bool
pool_ready(void)
{
    return P.connected + P.failed >= P.n;
}

static bool
subscribed(void)
{
    return R.subscribed;
}

/* Runs the loop (the 1 ms tick keeps it turning) until done() or timeout_ms. */
static bool
loop_until(bool (*done)(void), int timeout_ms)
{
    int64_t end = now_us() + (int64_t)timeout_ms * 1000;
    while (!done()) {
        if (now_us() > end)
            return false;
        event_base_loop(base, EVLOOP_ONCE);
    }
    return true;
}

static void
fail(const char *what)
{
    fprintf(stderr, "bench_front: %s\n", what);
    th_proc_stop(&planb_p, 5000);
    th_proc_stop(&mock_p, 5000);
    th_proc_stop(&redis_p, 5000);
    exit(1);
}

static void
pool_open(long n, bool send_on_connect)
{
    P.conns = calloc((size_t)n, sizeof(conn));
    P.n = n;
    P.send_on_connect = send_on_connect;
    pool_pump();
    if (!send_on_connect && (!loop_until(pool_ready, 30000) || P.failed > 0))
        fail("cannot connect to the front");
}

/* Ends the run (its figures stay in R) and checks that every request got its answer. */
static void
run_check(const char *name, bool in_time)
{
    R.mode = RUN_IDLE;
    if (in_time && R.lost == 0 && P.failed == 0)
        return;
    char msg[256];
    snprintf(msg, sizeof(msg),
             "%s: not every request was answered (sent=%ld answered=%ld lost=%ld "
             "connect_failures=%ld in_time=%s)",
             name, R.sent, R.answered, R.lost, P.failed, in_time ? "yes" : "no");
    fail(msg);
}

/* Run 1 through the front (n requests at OPEN_RATE/s on a pool of POOL_OPEN). */
static void
front_open(const char *tag, long n)
{
    pool_open(POOL_OPEN, false);
    run_begin(FRONT_OPEN, tag, n);
    bool in_time = loop_until(run_done, (int)(n * 1000 / OPEN_RATE) + 30000);
    run_check("front at 1000/s", in_time);
    pool_close();
}

static redisAsyncContext *
sub_open(void)
{
    redisAsyncContext *s = redisAsyncConnect("127.0.0.1", redis_p.port);
    if (s == NULL || s->err)
        fail("cannot connect the subscriber");
    redisLibeventAttach(s, base);
    redisAsyncCommand(s, on_sub, NULL, "SUBSCRIBE planb:results");
    if (!loop_until(subscribed, 5000))
        fail("cannot subscribe to planb:results");
    return s;
}

/* Run 1's baseline: n jobs at OPEN_RATE/s straight to Redis. */
static void
direct_open(const char *tag, long n)
{
    run_begin(RUN_IDLE, tag, n);
    redisAsyncContext *s = sub_open();
    run_begin(DIRECT_OPEN, tag, n);
    R.subscribed = true;
    bool in_time = loop_until(run_done, (int)(n * 1000 / OPEN_RATE) + 30000);
    run_check("direct at 1000/s", in_time);
    redisAsyncDisconnect(s);
}

/* Run 2 through the front: c connections, closed loop, for seconds. */
static void
front_closed(const char *tag, long c, double seconds)
{
    pool_open(c, false);
    run_begin(FRONT_CLOSED, tag, 0);
    R.stop_at_us = R.start_us + (int64_t)(seconds * 1e6);
    for (conn *k; (k = conn_free_pop()) != NULL;)
        conn_send(k);
    bool in_time = loop_until(run_done, (int)(seconds * 1000) + 30000);
    run_check("front closed loop", in_time);
    pool_close();
}

/* Run 2's baseline: c jobs kept in flight straight on Redis, for seconds. */
static void
direct_closed(const char *tag, long c, double seconds)
{
    run_begin(RUN_IDLE, tag, 0);
    redisAsyncContext *s = sub_open();
    run_begin(DIRECT_CLOSED, tag, 0);
    R.subscribed = true;
    R.stop_at_us = R.start_us + (int64_t)(seconds * 1e6);
    for (long i = 0; i < c; i++)
        direct_push();
    bool in_time = loop_until(run_done, (int)(seconds * 1000) + 30000);
    run_check("direct closed loop", in_time);
    redisAsyncDisconnect(s);
}

/* ------------------------------------------------------------------ processes */

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail("cannot find a free port");
    close(fd);
    return ntohs(a.sin_port);
}

static bool
front_healthy(void *arg)
{
    (void)arg;
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", front_port);
    long status = 0;
    free(th_http("GET", url, NULL, &status));
    return status == 200;
}

/* A line's value (KiB) from /proc/<pid>/status, e.g. "VmHWM:"; -1 when unreadable. */
static long
status_kib(long pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, fl) == 0)
            v = atol(line + fl);
    if (f)
        fclose(f);
    return v;
}

typedef struct front_find {
    redisContext *rc;
    long pid;
} front_find;

/* The front's pid: the host:pid of its heartbeat channel, a child of the master. */
static bool
front_found(void *arg)
{
    front_find *ff = arg;
    redisReply *r = redisCommand(ff->rc, "PUBSUB CHANNELS planb:front:beat:*");
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *colon = strrchr(r->element[i]->str, ':');
        long pid = colon ? atol(colon + 1) : 0;
        if (pid > 0 && status_kib(pid, "PPid:") == planb_p.pid)
            ff->pid = pid;
    }
    freeReplyObject(r);
    return ff->pid > 0;
}

/* Summed over planb:workers' host:pid members. */
static long
workers_kib(redisContext *rc, const char *field)
{
    long total = 0;
    redisReply *r = redisCommand(rc, "ZRANGE planb:workers 0 -1");
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *colon = strrchr(r->element[i]->str, ':');
        long v = colon ? status_kib(atol(colon + 1), field) : -1;
        total += v > 0 ? v : 0;
    }
    freeReplyObject(r);
    return total;
}

/* Starts planb with its front on a fresh port; returns the front's pid once it is healthy. */
static long
start_planb(redisContext *rc)
{
    front_port = free_port();
    front_addr = (struct sockaddr_in){.sin_family = AF_INET,
                                      .sin_port = htons((uint16_t)front_port),
                                      .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"redis\": {\"url\": \"redis://127.0.0.1:%d/0\"}, \"workers\": 2,"
             " \"concurrency\": 6000, \"claim_batch\": 256,"
             " \"monitor\": {\"metrics_listen\": \"\"},"
             " \"http\": {\"listen\": \"127.0.0.1:%d\", \"max_connections\": 20000},"
             " \"providers\": {\"mock\": {\"type\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key_env\": \"PB_BENCH_KEY\"}},"
             " \"models\": {\"m1\": {\"provider\": \"mock\", \"timeout_ms\": 10000}},"
             " \"routes\": {\"default\": {\"chain\": [\"m1\"], \"deadline_ms\": 30000}}}",
             redis_p.port, front_port, mock_p.port);
    const char *args[] = {"serve", "-c", "%CONFIG%", "--log-level", "warn", NULL};
    if (th_planb_start(&planb_p, cfg, args) != 0)
        fail("cannot start planb");
    wait_workers(rc, 2);
    if (!th_wait_for(front_healthy, NULL, 500, 20))
        fail("the front did not answer /healthz");
    front_find ff = {rc, 0};
    if (!th_wait_for(front_found, &ff, 250, 20))
        fail("cannot find the front process");
    return ff.pid;
}

/* WARN and ERROR lines of the front in planb's log (front_fd_limit apart: expected when the
 * hard limit is at http.max_connections). */
static void
front_log_counts(long *warn, long *err)
{
    char *log = th_proc_log(&planb_p);
    *warn = *err = 0;
    for (char *l = log; l && *l;) {
        char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), l);
        if (strstr(line, " WARN front ") && !strstr(line, "event=front_fd_limit"))
            (*warn)++;
        else if (strstr(line, " ERROR front "))
            (*err)++;
        l = nl ? nl + 1 : l + n;
    }
    free(log);
}

int
main(int argc, char **argv)
{
    double seconds = 10;
    long slow = 10000, burst = 40000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            seconds = 2;
            slow = 1000;
            burst = 5000;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--slow") == 0 && i + 1 < argc) {
            slow = atol(argv[++i]);
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rlim_t)slow + 512 > rl.rlim_cur)
        fprintf(stderr, "bench_front: open-file limit %lu is low for %ld connections\n",
                (unsigned long)rl.rlim_cur, slow);
    signal(SIGPIPE, SIG_IGN);
    setenv("PB_BENCH_KEY", "bench-key", 1);
    if (th_redis_start(&redis_p, NULL) != 0 || th_mock_start(&mock_p, NULL) != 0)
        fail("cannot start redis/mock");
    redisContext *rc = th_redis(redis_p.port);
    th_mock_set(&mock_p, "m1", "{\"mode\":\"ok\"}");

    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER); /* 1 ms ticks that are 1 ms */
    base = event_base_new_with_config(ec);
    event_config_free(ec);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 1000};
    event_add(tick, &tv);
    push_ac = redisAsyncConnect("127.0.0.1", redis_p.port);
    if (push_ac == NULL || push_ac->err)
        fail("cannot connect to redis");
    redisLibeventAttach(push_ac, base);

    start_planb(rc);

    /* 1. added latency at 1,000 requests/s */
    long n1 = (long)(seconds * OPEN_RATE);
    front_open("w", WARMUP_REQUESTS);
    front_open("o", n1);
    lat_sort();
    double f50 = pct_ms(500), f99 = pct_ms(990), fmax = pct_ms(1000);
    long non200 = R.non200 + R.noecho, stalls = R.stalls;
    direct_open("d", n1);
    lat_sort();
    double d50 = pct_ms(500), d99 = pct_ms(990), dmax = pct_ms(1000);
    printf("bench_front: added_latency rate_per_s=%d requests=%ld front_p50_ms=%.2f "
           "front_p99_ms=%.2f front_max_ms=%.2f direct_p50_ms=%.2f direct_p99_ms=%.2f "
           "direct_max_ms=%.2f added_p50_ms=%.2f added_p99_ms=%.2f target_added_p99_ms=2 "
           "front_non_ok=%ld front_stalls=%ld\n",
           OPEN_RATE, n1, f50, f99, fmax, d50, d99, dmax, f50 - d50, f99 - d99, non200, stalls);
    fflush(stdout);

    /* 2. maximum requests/s, closed loop */
    const long conns[] = {64, 256};
    for (size_t k = 0; k < sizeof(conns) / sizeof(conns[0]); k++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "c%ld", conns[k]);
        front_closed(tag, conns[k], seconds);
        lat_sort();
        double frate = R.answered * 1e6 / (double)(R.last_answer_us - R.start_us);
        double c50 = pct_ms(500), c99 = pct_ms(990);
        long fanswered = R.answered, fnon = R.non200 + R.noecho;
        snprintf(tag, sizeof(tag), "dc%ld", conns[k]);
        direct_closed(tag, conns[k], seconds);
        lat_sort();
        double drate = R.answered * 1e6 / (double)(R.last_answer_us - R.start_us);
        printf("bench_front: max_rps workers=2 connections=%ld seconds=%.0f requests=%ld "
               "front_req_per_s=%.0f front_p50_ms=%.2f front_p99_ms=%.2f direct_jobs_per_s=%.0f "
               "direct_p50_ms=%.2f direct_p99_ms=%.2f front_to_direct=%.2f front_non_ok=%ld\n",
               conns[k], seconds, fanswered, frate, c50, c99, drate, pct_ms(500), pct_ms(990),
               frate / drate, fnon);
        fflush(stdout);
    }
    long base_jobs = stat_jobs(rc);
    int64_t t0 = now_ms();
    push_jobs(rc, "burst", (int)burst, th_plain_job, &skip);
    bool done = wait_jobs(rc, base_jobs + burst, 120000);
    int64_t t1 = now_ms();
    printf("bench_front: direct_burst workers=2 jobs=%ld done=%s seconds=%.2f jobs_per_s=%.0f\n",
           burst, done ? "yes" : "NO", (t1 - t0) / 1000.0, burst / ((t1 - t0) / 1000.0));
    fflush(stdout);
    if (!done)
        fail("the pipelined jobs did not finish");
    long warn, err;
    front_log_counts(&warn, &err);
    long warn_total = warn, err_total = err;

    /* 3. concurrent slow requests, on a fresh planb */
    th_proc_stop(&planb_p, 10000);
    th_mock_set(&mock_p, "m1", "{\"mode\":\"ok\",\"latency_ms\":2000}");
    long front_pid = start_planb(rc);
    long idle_kib = status_kib(front_pid, "VmRSS:");
    run_begin(FRONT_SLOW, "s", slow);
    pool_open(slow, true);
    bool in_time = loop_until(run_done, 120000);
    long front_hwm = status_kib(front_pid, "VmHWM:"), front_rss = status_kib(front_pid, "VmRSS:");
    long workers_hwm = workers_kib(rc, "VmHWM:");
    run_check("slow requests", in_time);
    lat_sort();
    printf("bench_front: slow_2s requests=%ld ok=%ld non_200=%ld no_echo=%ld "
           "all_sent_s=%.2f all_answered_s=%.2f p50_ms=%.0f p99_ms=%.0f max_ms=%.0f "
           "peak_in_progress=%ld front_rss_idle_mib=%.1f front_peak_rss_mib=%.1f "
           "front_rss_after_mib=%.1f front_kib_per_request=%.1f workers_peak_rss_mib=%.1f\n",
           slow, R.ok, R.non200, R.noecho, (R.all_sent_us - R.start_us) / 1e6,
           (R.last_answer_us - R.start_us) / 1e6, pct_ms(500), pct_ms(990), pct_ms(1000), R.peak,
           idle_kib / 1024.0, front_hwm / 1024.0, front_rss / 1024.0,
           (double)(front_hwm - idle_kib) / (double)slow, workers_hwm / 1024.0);
    fflush(stdout);
    pool_close();
    front_log_counts(&warn, &err);
    printf("bench_front: front_log warnings=%ld errors=%ld (see %s)\n", warn_total + warn,
           err_total + err, planb_p.log_path);

    free(R.lat);
    free(R.push_us);
    redisAsyncDisconnect(push_ac);
    event_free(tick);
    th_proc_stop(&planb_p, 10000);
    event_base_free(base);
    redisFree(rc);
    th_proc_stop(&mock_p, 5000);
    th_proc_stop(&redis_p, 5000);
    return 0;
}
