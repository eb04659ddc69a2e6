/* mock_load.c -- HTTP load generator for planb-mock (or any chat endpoint): libcurl multi.
 *
 * bench_mock_load --url URL --requests N --concurrency C [--model M]
 *                 [--dialect openai|anthropic] [--warmup-model W]
 *
 * Keeps C requests in flight on C keep-alive connections until N are done,
 * then prints one line: requests= ok= errors= seconds= req_per_s= p50_ms=
 * p99_ms= max_ms=. It drives curl's socket API from epoll rather than
 * curl_multi_poll, so ten thousand slow requests cost nothing while they
 * wait, and spreads them over several multi handles (LOAD_SHARD_HANDLES).
 * --warmup-model first sends one untimed request per connection naming W (a
 * fast model), so the timed run starts on established connections. A URL
 * without "/v1/" gets the dialect's path appended. It is a benchmark:
 * it exits 0 whatever the figures, non-zero only when it cannot run. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "planb/core.h"

#define LOAD_TIMEOUT_MS          120000 /* one request; far above any latency the mock is given */
#define LOAD_EVENTS              512
#define LOAD_BUFFER_BYTES        4096L  /* receive buffer per handle (curl allows 1 KiB..) */
#define LOAD_UPLOAD_BUFFER_BYTES 16384L /* send buffer per handle (curl's minimum) */
/* Handles per multi: every new transfer scans its multi's connection cache, so
 * ten thousand connections in one multi made the tool, not the server, the
 * bottleneck. A few hundred per multi keep that scan short. */
#define LOAD_SHARD_HANDLES 500

typedef struct load load;

typedef struct load_shard {
    load *l;          /* owner */
    CURLM *multi;     /* this shard's transfers and connection cache */
    uint32_t index;   /* position in load.shards, tagged onto its epoll events */
    int64_t timer_at; /* when curl wants CURL_SOCKET_TIMEOUT (mono ms), -1 = none */
} load_shard;

struct load {
    load_shard *shards;    /* nshards multis */
    uint32_t nshards;      /* ceil(concurrency / LOAD_SHARD_HANDLES) */
    int epfd;              /* sockets curl asked us to watch */
    long total;            /* requests to make */
    long started;          /* handed to curl */
    long done;             /* finished, either way */
    long ok;               /* finished with HTTP 200 */
    double *lat_ms;        /* per finished request */
    int64_t *start_us;     /* per handle: when its current request began */
    char first_error[160]; /* first failure, for the log line */
};

static int64_t
load_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t
load_discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket into epoll, tagged with
 * the shard so the event goes back to the right multi. */
static int
load_on_socket(CURL *e, curl_socket_t s, int what, void *arg, void *socketp)
{
    load_shard *sh = arg;
    (void)e;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(sh->l->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {.data.u64 = (uint64_t)sh->index << 32 | (uint32_t)s};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (epoll_ctl(sh->l->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
        epoll_ctl(sh->l->epfd, EPOLL_CTL_ADD, s, &ev);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: remember when curl wants to be called back. */
static int
load_on_timer(CURLM *m, long timeout_ms, void *arg)
{
    load_shard *sh = arg;
    (void)m;
    sh->timer_at = timeout_ms < 0 ? -1 : pb_mono_ms() + timeout_ms;
    return 0;
}

static void
load_start(load *l, CURL *h, long slot)
{
    l->start_us[slot] = load_now_us();
    l->started++;
    curl_multi_add_handle(l->shards[slot / LOAD_SHARD_HANDLES].multi, h);
}

/* Records finished transfers and reuses their handles (and connections) for the next. */
static void
load_reap(load *l, load_shard *sh)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(sh->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *h = msg->easy_handle;
        CURLcode rc = msg->data.result;
        long slot = 0, status = 0;
        curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&slot);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        l->lat_ms[l->done++] = (double)(load_now_us() - l->start_us[slot]) / 1000.0;
        if (rc == CURLE_OK && status == 200)
            l->ok++;
        else if (l->first_error[0] == '\0')
            snprintf(l->first_error, sizeof(l->first_error), "curl=\"%s\" status=%ld",
                     curl_easy_strerror(rc), status);
        curl_multi_remove_handle(sh->multi, h);
        if (l->started < l->total)
            load_start(l, h, slot);
    }
}

static void
load_run(load *l)
{
    struct epoll_event evs[LOAD_EVENTS];
    int running;
    while (l->done < l->total) {
        int64_t now = pb_mono_ms(), next = now + 1000;
        for (uint32_t i = 0; i < l->nshards; i++)
            if (l->shards[i].timer_at >= 0 && l->shards[i].timer_at < next)
                next = l->shards[i].timer_at;
        int n = epoll_wait(l->epfd, evs, LOAD_EVENTS, next > now ? (int)(next - now) : 0);
        for (int i = 0; i < n; i++) {
            int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                        ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                        ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            load_shard *sh = &l->shards[evs[i].data.u64 >> 32];
            curl_multi_socket_action(sh->multi, (curl_socket_t)(uint32_t)evs[i].data.u64, flags,
                                     &running);
        }
        now = pb_mono_ms();
        for (uint32_t i = 0; i < l->nshards; i++) {
            load_shard *sh = &l->shards[i];
            if (sh->timer_at >= 0 && now >= sh->timer_at) {
                sh->timer_at = -1;
                curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            }
            load_reap(l, sh);
        }
    }
}

/* Runs total requests (body, borrowed until done) on the first conc handles; seconds taken. */
static double
load_phase(load *l, CURL **handles, long conc, long total, const char *body)
{
    l->total = total;
    l->started = l->done = 0;
    for (long i = 0; i < conc; i++)
        curl_easy_setopt(handles[i], CURLOPT_POSTFIELDS, body);
    int64_t t0 = load_now_us();
    for (long i = 0; i < conc; i++)
        load_start(l, handles[i], i);
    load_run(l);
    return (double)(load_now_us() - t0) / 1e6;
}

/* A one-message chat body for model; caller frees. */
static char *
load_body(const char *model)
{
    return pb_xasprintf("{\"model\":\"%s\",\"max_tokens\":64,\"messages\":"
                        "[{\"role\":\"user\",\"content\":\"hello from the load tool\"}]}",
                        model);
}

static int
load_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void
load_usage(FILE *out)
{
    fputs("usage: bench_mock_load --url URL --requests N --concurrency C [--model M]\n"
          "                       [--dialect openai|anthropic] [--warmup-model W]\n",
          out);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"requests", required_argument, NULL, 'n'},
        {"concurrency", required_argument, NULL, 'c'},
        {"model", required_argument, NULL, 'm'},
        {"dialect", required_argument, NULL, 'd'},
        {"warmup-model", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *model = "bench", *dialect = "openai", *warm_model = NULL;
    long total = 0, conc = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "u:n:c:m:d:w:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'n':
            total = strtol(optarg, NULL, 10);
            break;
        case 'c':
            conc = strtol(optarg, NULL, 10);
            break;
        case 'm':
            model = optarg;
            break;
        case 'd':
            dialect = optarg;
            break;
        case 'w':
            warm_model = optarg;
            break;
        case 'h':
            load_usage(stdout);
            return 0;
        default:
            load_usage(stderr);
            return 2;
        }
    }
    bool anthropic = strcmp(dialect, "anthropic") == 0;
    if (url == NULL || total <= 0 || conc <= 0 || (!anthropic && strcmp(dialect, "openai") != 0)) {
        load_usage(stderr);
        return 2;
    }
    if (conc > total)
        conc = total;

    /* Each connection is a descriptor; take all the kernel allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)conc + 64)
            fprintf(stderr, "bench_mock_load: warning: RLIMIT_NOFILE %lu < concurrency %ld\n",
                    (unsigned long)rl.rlim_cur, conc);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;

    char *full =
        strstr(url, "/v1/") != NULL
            ? pb_xstrdup(url)
            : pb_xasprintf("%s%s", url, anthropic ? "/v1/messages" : "/v1/chat/completions");
    char *body = load_body(model);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, anthropic ? "x-api-key: bench" : "Authorization: Bearer bench");
    if (anthropic)
        hdrs = curl_slist_append(hdrs, "anthropic-version: 2023-06-01");

    load l = {.total = total};
    l.lat_ms = pb_xcalloc((size_t)total, sizeof(*l.lat_ms));
    l.start_us = pb_xcalloc((size_t)conc, sizeof(*l.start_us));
    l.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l.epfd < 0)
        return 1;
    l.nshards = (uint32_t)((conc + LOAD_SHARD_HANDLES - 1) / LOAD_SHARD_HANDLES);
    l.shards = pb_xcalloc(l.nshards, sizeof(*l.shards));
    for (uint32_t i = 0; i < l.nshards; i++) {
        load_shard *sh = &l.shards[i];
        long size = conc - (long)i * LOAD_SHARD_HANDLES;
        if (size > LOAD_SHARD_HANDLES)
            size = LOAD_SHARD_HANDLES;
        *sh = (load_shard){.l = &l, .index = i, .timer_at = -1, .multi = curl_multi_init()};
        if (sh->multi == NULL)
            return 1;
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, load_on_socket);
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, load_on_timer);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, size);
        curl_multi_setopt(sh->multi, CURLMOPT_MAX_HOST_CONNECTIONS, size);
        curl_multi_setopt(sh->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, size);
    }

    CURL **handles = pb_xcalloc((size_t)conc, sizeof(*handles));
    for (long i = 0; i < conc; i++) {
        CURL *h = handles[i] = curl_easy_init();
        if (h == NULL)
            return 1;
        curl_easy_setopt(h, CURLOPT_URL, full);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, load_discard);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)LOAD_TIMEOUT_MS);
        /* Replies are small; curl's default 16 KiB + 64 KiB buffers per handle add up to
         * most of a gigabyte touched at ten thousand handles. */
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, LOAD_BUFFER_BYTES);
        curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, LOAD_UPLOAD_BUFFER_BYTES);
        curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)(intptr_t)i);
    }
    char *warm_body = NULL;
    if (warm_model != NULL) {
        /* One untimed request per connection, so the timed run measures the server
         * on established keep-alive connections rather than the client connecting. */
        warm_body = load_body(warm_model);
        load_phase(&l, handles, conc, conc, warm_body);
        if (l.ok != conc)
            fprintf(stderr, "bench_mock_load: warm-up: %ld of %ld failed: %s\n", conc - l.ok, conc,
                    l.first_error);
        l.ok = 0;
        l.first_error[0] = '\0';
    }
    double secs = load_phase(&l, handles, conc, total, body);

    qsort(l.lat_ms, (size_t)total, sizeof(*l.lat_ms), load_cmp);
    printf("requests=%ld ok=%ld errors=%ld seconds=%.3f req_per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f\n",
           total, l.ok, total - l.ok, secs, (double)total / secs, l.lat_ms[(total - 1) / 2],
           l.lat_ms[(long)((double)(total - 1) * 0.99)], l.lat_ms[total - 1]);
    if (l.first_error[0] != '\0')
        fprintf(stderr, "bench_mock_load: first error: %s\n", l.first_error);

    for (long i = 0; i < conc; i++)
        curl_easy_cleanup(handles[i]);
    for (uint32_t i = 0; i < l.nshards; i++)
        curl_multi_cleanup(l.shards[i].multi);
    free(l.shards);
    close(l.epfd);
    curl_slist_free_all(hdrs);
    curl_global_cleanup();
    free(handles);
    free(l.lat_ms);
    free(l.start_us);
    free(full);
    free(body);
    free(warm_body);
    return 0;
}
