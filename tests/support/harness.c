/* harness.c -- the integration-test world: real redis-server, planb-mock and planb processes.
 *
 * Each server runs as a child of the test process in its own temp dir
 * ($TMPDIR or /tmp, planb-test-<kind>-XXXXXX, kept after the test so its log
 * can be read after a failure; tests/run.sh sets TMPDIR to build/test-tmp/, which it
 * empties at each run). Children get PR_SET_PDEATHSIG(SIGKILL) and
 * lose every inherited descriptor but stdio, so a crashed test leaves no
 * servers and no stray pipe ends behind. Ports never race: redis gets a port
 * the kernel just handed out (and is retried on another one if it cannot
 * bind), the mock binds port 0 itself and reports the port on stdout. */
#include "harness.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "planb/buf.h"
#include "planb/core.h"

#define TH_START_TIMEOUT_MS 10000 /* a server that needs longer to start is broken */
#define TH_HTTP_TIMEOUT_MS  10000
#define TH_HTTP_MAX_BYTES   ((size_t)256 << 20) /* above the mock's largest oversized body */
#define TH_REDIS_TRIES      5                   /* fresh ports to try when redis cannot bind */
#define TH_POLL_MS          10
#define TH_RELAY_ARGS_MAX   16 /* th_relay_start's own arguments: a few options */
/* Debian's, as the Python-driven shell tests use: stdlib only, and it starts fast. */
#define TH_PYTHON "/usr/bin/python3"

const char *
th_bin(const char *name)
{
    /* A few rotating buffers so two paths can be used in one expression. */
    static char paths[4][512];
    static unsigned next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/%s", PB_BIN_DIR, name);
    return p;
}

const char *
th_src_dir(void)
{
    return PB_SRC_DIR;
}

static void
th_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Resets p and gives it a fresh temp dir and log path named after kind. */
static int
th_proc_init(th_proc *p, const char *kind)
{
    memset(p, 0, sizeof(*p));
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    snprintf(p->dir, sizeof(p->dir), "%s/planb-test-%s-XXXXXX", tmp, kind);
    if (mkdtemp(p->dir) == NULL) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", p->dir, strerror(errno));
        return PB_ERR;
    }
    snprintf(p->log_path, sizeof(p->log_path), "%s/%s.log", p->dir, kind);
    return PB_OK;
}

/* Forks and execs argv (argv[0] looked up in PATH) with stdout to stdout_fd (or the
 * log when -1) and stderr appended to log_path. Returns the pid or -1. */
static pid_t
th_spawn(const char *const *argv, const char *log_path, int stdout_fd)
{
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
        fprintf(stderr, "harness: open %s: %s\n", log_path, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(stdout_fd >= 0 ? stdout_fd : log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
        /* Criterion's pipes must not stay open in a server that outlives a test. */
        if (close_range(3, ~0U, 0) != 0)
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(log);
    if (pid < 0)
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
    return pid < 0 ? -1 : pid;
}

void
th_proc_signal(th_proc *p, int sig)
{
    if (p->pid > 0)
        kill(p->pid, sig);
}

int
th_proc_wait(th_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    int64_t deadline = pb_mono_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return status;
        }
        if (r < 0 && errno != EINTR) {
            p->pid = 0; /* not our child any more: nothing left to wait for */
            return -1;
        }
        if (pb_mono_ms() >= deadline)
            return -1;
        th_sleep_ms(TH_POLL_MS / 2);
    }
}

int
th_proc_stop(th_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    int status = th_proc_wait(p, timeout_ms);
    if (status != -1 || p->pid <= 0)
        return status;
    kill(p->pid, SIGKILL);
    pid_t r;
    while ((r = waitpid(p->pid, &status, 0)) < 0 && errno == EINTR)
        ;
    p->pid = 0;
    return r < 0 ? -1 : status;
}

char *
th_proc_log(const th_proc *p)
{
    return th_read_file(p->log_path);
}

char *
th_read_file(const char *path)
{
    pb_buf b;
    pb_buf_init(&b, TH_HTTP_MAX_BYTES);
    pb_buf_append(&b, "", 0);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            pb_buf_append(&b, chunk, n);
        fclose(f);
    }
    return b.data;
}

const char *
th_write_file(const char *dir, const char *name, const char *s)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "harness: open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    bool ok = fputs(s, f) >= 0;
    ok = fclose(f) == 0 && ok;
    return ok ? path : NULL;
}

int
th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool
th_redis_pong(int port, bool loading_ok)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c != NULL && c->err == 0) {
        redisReply *r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        ok = ok || (loading_ok && r != NULL && r->type == REDIS_REPLY_ERROR &&
                    strncmp(r->str, "LOADING", 7) == 0);
        if (r != NULL)
            freeReplyObject(r);
    }
    if (c != NULL)
        redisFree(c);
    return ok;
}

/* Starts redis-server on p's config and waits for PONG; PB_ERR if it exits (bind failed). */
static int
th_redis_launch(th_proc *p, bool loading_ok)
{
    char conf[300];
    snprintf(conf, sizeof(conf), "%s/redis.conf", p->dir);
    const char *argv[] = {"redis-server", conf, NULL};
    p->pid = th_spawn(argv, p->log_path, -1);
    if (p->pid < 0) {
        p->pid = 0;
        return PB_ERR;
    }
    for (int waited = 0; waited < TH_START_TIMEOUT_MS; waited += TH_POLL_MS) {
        if (th_redis_pong(p->port, loading_ok))
            return PB_OK;
        if (th_proc_wait(p, 0) != -1 || p->pid == 0)
            return PB_ERR;
        th_sleep_ms(TH_POLL_MS);
    }
    th_proc_stop(p, 1000);
    return PB_ERR;
}

int
th_redis_start(th_proc *p, const char *extra_conf)
{
    if (th_proc_init(p, "redis") != PB_OK)
        return PB_ERR;
    for (int attempt = 0; attempt < TH_REDIS_TRIES; attempt++) {
        p->port = th_free_port();
        if (p->port <= 0)
            continue;
        char *conf = pb_xasprintf("port %d\n"
                                  "bind 127.0.0.1\n"
                                  "save \"\"\n"
                                  "appendonly no\n"
                                  "dir %s\n"
                                  "daemonize no\n"
                                  "protected-mode no\n"
                                  "logfile %s\n"
                                  "%s\n",
                                  p->port, p->dir, p->log_path, extra_conf ? extra_conf : "");
        const char *path = th_write_file(p->dir, "redis.conf", conf);
        free(conf);
        if (path == NULL)
            return PB_ERR;
        if (th_redis_launch(p, false) == PB_OK)
            return PB_OK;
    }
    fprintf(stderr, "harness: redis-server did not start, see %s\n", p->log_path);
    return PB_ERR;
}

const char *
th_certs(void)
{
    static char dir[512];
    if (dir[0])
        return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/certs", tmp && tmp[0] ? tmp : "/tmp");
    /* Tests run in parallel share the directory: flock makes one of them make it. */
    char *cmd = pb_xasprintf("flock '%s.lock' bash '%s/tests/support/make_certs.sh' '%s'", dir,
                             th_src_dir(), dir);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "harness: make_certs.sh failed (%d)\n", rc);
        dir[0] = '\0';
        return NULL;
    }
    return dir;
}

bool
th_tls_mode(void)
{
    const char *v = getenv("PB_TEST_TLS");
    return v && v[0] && strcmp(v, "0") != 0;
}

const char *
th_redis_json(const th_proc *p)
{
    static char buf[1024];
    if (p->tls_port > 0)
        snprintf(buf, sizeof(buf),
                 "\"url\": \"rediss://localhost:%d/0\", \"tls\": {\"ca_file\": \"%s/ca.crt\"}",
                 p->tls_port, th_certs());
    else
        snprintf(buf, sizeof(buf), "\"url\": \"redis://127.0.0.1:%d/0\"", p->port);
    return buf;
}

int
th_redis_start_tls(th_proc *p, const char *extra_conf)
{
    const char *certs = th_certs();
    if (certs == NULL)
        return PB_ERR;
    int tls_port = th_free_port();
    char *conf = pb_xasprintf("tls-port %d\n"
                              "tls-cert-file %s/server.crt\n"
                              "tls-key-file %s/server.key\n"
                              "tls-ca-cert-file %s/ca.crt\n"
                              "tls-auth-clients optional\n"
                              "%s\n",
                              tls_port, certs, certs, certs, extra_conf ? extra_conf : "");
    int rc = th_redis_start(p, conf); /* clears p first */
    free(conf);
    p->tls_port = tls_port;
    return rc;
}

int
th_redis_restart(th_proc *p)
{
    return th_redis_restart_loading(p, false);
}

int
th_redis_restart_loading(th_proc *p, bool loading_ok)
{
    if (p->pid > 0)
        return PB_ERR;
    /* The old socket may linger for a moment; the port is ours, so try again. */
    for (int attempt = 0; attempt < TH_REDIS_TRIES; attempt++) {
        if (th_redis_launch(p, loading_ok) == PB_OK)
            return PB_OK;
        th_sleep_ms(100);
    }
    fprintf(stderr, "harness: redis-server did not restart, see %s\n", p->log_path);
    return PB_ERR;
}

/* Reads the "port=<N>" line the mock (or a relay) prints once it listens. */
static int
th_read_port(int fd)
{
    char line[64];
    size_t n = 0;
    int64_t deadline = pb_mono_ms() + TH_START_TIMEOUT_MS;
    while (n < sizeof(line) - 1 && memchr(line, '\n', n) == NULL) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - pb_mono_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return -1;
        ssize_t r = read(fd, line + n, sizeof(line) - 1 - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
    }
    line[n] = '\0';
    int port;
    return sscanf(line, "port=%d", &port) == 1 ? port : -1;
}

/* Spawns argv in p (initialised by the caller) and reads the port it prints; what names it in
 * the error. */
static int
th_spawn_listening(th_proc *p, const char *const *argv, const char *what)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return PB_ERR;
    p->pid = th_spawn(argv, p->log_path, fds[1]);
    close(fds[1]);
    p->port = p->pid > 0 ? th_read_port(fds[0]) : -1;
    close(fds[0]);
    if (p->pid <= 0 || p->port <= 0) {
        fprintf(stderr, "harness: %s did not start, see %s\n", what, p->log_path);
        if (p->pid > 0)
            th_proc_stop(p, 1000);
        p->pid = 0;
        return PB_ERR;
    }
    return PB_OK;
}

int
th_mock_start(th_proc *p, const char *config_json)
{
    if (th_proc_init(p, "mock") != PB_OK)
        return PB_ERR;
    char cfg[300];
    const char *argv[6] = {th_bin("planb-mock"), "--listen", "127.0.0.1:0", NULL, NULL, NULL};
    if (config_json != NULL) {
        const char *path = th_write_file(p->dir, "mock.json", config_json);
        if (path == NULL)
            return PB_ERR;
        snprintf(cfg, sizeof(cfg), "%s", path);
        argv[3] = "--config";
        argv[4] = cfg;
    }
    if (th_spawn_listening(p, argv, "planb-mock") != PB_OK)
        return PB_ERR;
    /* It printed the port after listen(2), so the first request is answered. */
    return th_mock_requests(p, "") >= 0 ? PB_OK : PB_ERR;
}

int
th_relay_start(th_proc *p, const char *mode, const char *const *args)
{
    if (th_proc_init(p, "relay") != PB_OK)
        return PB_ERR;
    char script[512], log[320];
    snprintf(script, sizeof(script), "%s/tests/support/upstream_relay.py", th_src_dir());
    snprintf(log, sizeof(log), "%s/requests.log", p->dir);
    const char *argv[TH_RELAY_ARGS_MAX + 6] = {TH_PYTHON, script, mode, "--log", log};
    size_t n = 5;
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        pb_assert(i < TH_RELAY_ARGS_MAX);
        argv[n++] = args[i];
    }
    return th_spawn_listening(p, argv, "upstream_relay.py");
}

int
th_planb_start(th_proc *p, const char *config_json, const char *const *args)
{
    if (th_proc_init(p, "planb") != PB_OK)
        return PB_ERR;
    char config_path[300];
    snprintf(config_path, sizeof(config_path), "%s/planb.json", p->dir);
    if (config_json != NULL && th_write_file(p->dir, "planb.json", config_json) == NULL)
        return PB_ERR;
    size_t argc = 0;
    while (args != NULL && args[argc] != NULL)
        argc++;
    char **argv = pb_xcalloc(argc + 2, sizeof(*argv));
    argv[0] = pb_xstrdup(th_bin("planb"));
    for (size_t i = 0; i < argc; i++) {
        const char *at = strstr(args[i], "%CONFIG%");
        argv[i + 1] = at == NULL ? pb_xstrdup(args[i])
                                 : pb_xasprintf("%.*s%s%s", (int)(at - args[i]), args[i],
                                                config_path, at + strlen("%CONFIG%"));
    }
    p->pid = th_spawn((const char *const *)argv, p->log_path, -1);
    for (size_t i = 0; i <= argc; i++)
        free(argv[i]);
    free(argv);
    if (p->pid < 0) {
        p->pid = 0;
        return PB_ERR;
    }
    return PB_OK;
}

redisContext *
th_redis(int port)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    cr_assert(c != NULL && c->err == 0, "redis connect to port %d: %s", port,
              c != NULL ? c->errstr : "out of memory");
    return c;
}

bool
th_wait_for(bool (*cond)(void *arg), void *arg, int max_tries, int delay_ms)
{
    for (int i = 0; i < max_tries; i++) {
        if (cond(arg))
            return true;
        if (i + 1 < max_tries)
            th_sleep_ms(delay_ms);
    }
    return false;
}

size_t
th_http_write(char *data, size_t size, size_t n, void *arg)
{
    return pb_buf_append(arg, data, size * n) == PB_OK ? size * n : 0;
}

void
th_take_header(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vl = n - nl - 1;
    while (vl > 0 && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
        vl--;
    snprintf(out, cap, "%.*s", (int)vl, v);
}

bool
th_http_up(void *url)
{
    long status = 0;
    char *body = th_http("GET", url, NULL, &status);
    free(body);
    return status == 200;
}

char *
th_http(const char *method, const char *url, const char *body, long *status)
{
    return th_http_with(method, url, body, NULL, NULL, status);
}

char *
th_http_with(const char *method, const char *url, const char *body, const char *header, char **head,
             long *status)
{
    *status = 0;
    if (head)
        *head = NULL;
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    pb_buf b, hb;
    pb_buf_init(&b, TH_HTTP_MAX_BYTES);
    pb_buf_append(&b, "", 0);
    pb_buf_init(&hb, TH_HTTP_MAX_BYTES);
    pb_buf_append(&hb, "", 0);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (header)
        hdrs = curl_slist_append(hdrs, header);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)TH_HTTP_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, th_http_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, th_http_write);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hb);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        pb_buf_free(&b);
        pb_buf_free(&hb);
        return NULL;
    }
    if (head)
        *head = hb.data;
    else
        pb_buf_free(&hb);
    return b.data;
}

/* Appends s to out with everything but RFC 3986 unreserved characters %-escaped. */
static void
th_url_escape(pb_buf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            pb_buf_append(out, s, 1);
        } else {
            char hex[4];
            snprintf(hex, sizeof(hex), "%%%02X", c);
            pb_buf_append(out, hex, 3);
        }
    }
}

/* model NULL sets the default behaviour (POST /_mock/default). */
int
th_mock_set(const th_proc *mock, const char *model, const char *behaviour_json)
{
    pb_buf url;
    pb_buf_init(&url, 4096);
    char base[96];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/_mock/", mock->port);
    pb_buf_append(&url, base, strlen(base));
    if (model == NULL) {
        pb_buf_append(&url, "default", 7);
    } else {
        pb_buf_append(&url, "models/", 7);
        th_url_escape(&url, model);
    }
    long status;
    char *body = th_http("POST", url.data, behaviour_json, &status);
    if (status != 200)
        fprintf(stderr, "harness: mock set %s: HTTP %ld %s\n", model ? model : "default", status,
                body ? body : "");
    free(body);
    pb_buf_free(&url);
    return status == 200 ? PB_OK : PB_ERR;
}

long
th_mock_requests(const th_proc *mock, const char *model)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/stats", mock->port);
    long status;
    char *body = th_http("GET", url, NULL, &status);
    json_object *o = body != NULL && status == 200 ? json_tokener_parse(body) : NULL;
    free(body);
    if (o == NULL)
        return -1;
    json_object *models, *m, *n;
    long count = 0;
    if (json_object_object_get_ex(o, "models", &models) &&
        json_object_object_get_ex(models, model, &m) &&
        json_object_object_get_ex(m, "requests", &n))
        count = (long)json_object_get_int64(n);
    json_object_put(o);
    return count;
}

int
th_mock_reset(const th_proc *mock)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_mock/reset", mock->port);
    long status;
    free(th_http("POST", url, "{}", &status));
    return status == 200 ? PB_OK : PB_ERR;
}

void
th_world_start(th_proc *redis, th_proc *mock, const char *redis_conf, redisContext **rc)
{
    setenv("PB_TEST_KEY", "sk-test-not-a-real-key", 1);
    if (th_tls_mode())
        cr_assert_eq(th_redis_start_tls(redis, redis_conf), 0);
    else
        cr_assert_eq(th_redis_start(redis, redis_conf), 0);
    cr_assert_eq(th_mock_start(mock, NULL), 0);
    *rc = th_redis(redis->port);
}

void
th_serve(th_proc *planb, const char *config_json)
{
    const char *args[] = {"serve", "-c", "%CONFIG%", NULL};
    cr_assert_eq(th_planb_start(planb, config_json, args), 0);
}

int
th_planb_stop(th_proc *planb, int timeout_ms)
{
    if (planb->pid == 0)
        return -1;
    int st = th_proc_stop(planb, timeout_ms);
    char *log = th_proc_log(planb);
    if (log && (strstr(log, "Sanitizer") || strstr(log, "runtime error:")))
        fprintf(stderr, "planb log:\n%s\n", log);
    free(log);
    return st;
}

void
th_planb_stop_clean(th_proc *planb)
{
    if (planb->pid == 0)
        return;
    int st = th_planb_stop(planb, 10000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "planb drained and exited 0 (status %d)", st);
}

void
th_world_stop(th_proc *mock, th_proc *redis, redisContext **rc)
{
    th_proc_stop(mock, 5000);
    if (*rc)
        redisFree(*rc);
    *rc = NULL;
    th_proc_stop(redis, 5000);
}

void
th_bedrock_env(void)
{
    setenv("PB_TEST_AWS_KEY_ID", "AKIAPLANBMOCK0000000", 1);
    setenv("PB_TEST_AWS_SECRET", "planb-mock-secret-access-key", 1);
}
