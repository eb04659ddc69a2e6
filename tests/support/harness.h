/* harness.h -- integration-test world: a real redis-server, planb-mock and planb on free ports.
 *
 * Every spawned child gets PR_SET_PDEATHSIG(SIGKILL), so a crashing test
 * never leaves servers behind; th_proc_stop in .fini stops them cleanly.
 * All waits are bounded (th_wait_for), never bare sleeps. */
#ifndef PLANB_TEST_HARNESS_H
#define PLANB_TEST_HARNESS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct th_proc {
    pid_t pid;          /* 0 when not running */
    int port;           /* TCP port it listens on (0 for planb) */
    int tls_port;       /* redis-server's TLS port (th_redis_start_tls), 0 none */
    char dir[256];      /* its private temp dir (config, logs, data) */
    char log_path[300]; /* stdout+stderr of the process */
} th_proc;

/* A loopback port the kernel just handed out; nothing else holds it right now. */
int th_free_port(void);
/* Path of a built binary ("planb", "planb-mock") and of the source tree. */
const char *th_bin(const char *name);
const char *th_src_dir(void);

/* redis-server on a free loopback port (save '', appendonly no unless extra_conf
 * says otherwise; extra_conf is appended to the config, may be NULL). Waits for PING. */
int th_redis_start(th_proc *p, const char *extra_conf);
/* The same serving TLS too: tls_port with th_certs()'s server.crt, clients' certificates
 * checked against its ca.crt when given (tls-auth-clients optional); port stays plaintext
 * for the test's own probes. extra_conf may override any of it (e.g. "tls-auth-clients yes"). */
int th_redis_start_tls(th_proc *p, const char *extra_conf);
/* PB_TEST_TLS set (ctest's *_tls twins of the Redis-fault tests): th_world_start's Redis serves
 * TLS and th_redis_json points planb at its TLS port. */
bool th_tls_mode(void);
/* The inside of a config's "redis" object for p: "url": "redis://127.0.0.1:<port>/0", or in TLS
 * mode (p started by th_redis_start_tls) "url": "rediss://localhost:<tls_port>/0", "tls": {...}.
 * Static buffer, overwritten per call. */
const char *th_redis_json(const th_proc *p);
/* The throwaway PKI of tests/support/make_certs.sh, made once under TMPDIR; its directory. */
const char *th_certs(void);
/* Restarts a stopped redis-server on the same port and dir (for AOF tests). */
int th_redis_restart(th_proc *p);
/* The same, returning as soon as it answers at all: LOADING counts when loading_ok. */
int th_redis_restart_loading(th_proc *p, bool loading_ok);
/* planb-mock on port 0 (it prints its port); config_json may be NULL. Waits until it answers. */
int th_mock_start(th_proc *p, const char *config_json);
/* tests/support/upstream_relay.py in mode "proxy" or "tls" with args (NULL-terminated, may be
 * NULL), logging what it relayed to <p->dir>/requests.log; p->port is where it listens. */
int th_relay_start(th_proc *p, const char *mode, const char *const *args);
/* planb with args, e.g. {"serve", "-c", path, NULL}; config_json (if non-NULL) is written to
 * <dir>/planb.json first and "%CONFIG%" in args is replaced by that path. Does not wait. */
int th_planb_start(th_proc *p, const char *config_json, const char *const *args);
/* Sends sig and returns at once. */
void th_proc_signal(th_proc *p, int sig);
/* SIGTERM, waits up to timeout_ms, then SIGKILL; returns the exit status (waitpid form) or -1. */
int th_proc_stop(th_proc *p, int timeout_ms);
/* Waits up to timeout_ms for the process to exit on its own; exit status or -1 on timeout. */
int th_proc_wait(th_proc *p, int timeout_ms);
/* Whole contents of the process's log (caller frees). */
char *th_proc_log(const th_proc *p);

/* A blocking hiredis connection to 127.0.0.1:port (asserts on failure). */
redisContext *th_redis(int port);

/* The usual world, for tests that keep redis_p/mock_p/planb_p/rc in statics: sets PB_TEST_KEY
 * to a fake key, starts redis-server (redis_conf may be NULL) and planb-mock, connects *rc. */
void th_world_start(th_proc *redis, th_proc *mock, const char *redis_conf, redisContext **rc);
/* `planb serve -c <config_json>`; asserts it started (does not wait). */
void th_serve(th_proc *planb, const char *config_json);
/* Stops planb (SIGTERM, up to timeout_ms), echoing its log to stderr when it holds a sanitizer
 * report; returns its exit status (waitpid form), or -1 when it was not running. */
int th_planb_stop(th_proc *planb, int timeout_ms);
/* th_planb_stop with 10 s to drain, expecting exit 0; nothing when planb is not running. */
void th_planb_stop_clean(th_proc *planb);
/* Undoes th_world_start: stops the mock, frees *rc (then NULL), stops redis. */
void th_world_stop(th_proc *mock, th_proc *redis, redisContext **rc);

/* Polls cond(arg) up to max_tries times, delay_ms apart; true once it holds. */
bool th_wait_for(bool (*cond)(void *arg), void *arg, int max_tries, int delay_ms);

/* One HTTP request with libcurl; returns the body (caller frees), *status set. */
char *th_http(const char *method, const char *url, const char *body, long *status);
/* A th_wait_for condition: GET url (a char *) answers 200. */
bool th_http_up(void *url);
/* The same with one more request header (e.g. "Authorization: Bearer k", NULL none); head (may
 * be NULL) gets the response's status line and headers as received (caller frees). */
char *th_http_with(const char *method, const char *url, const char *body, const char *header,
                   char **head, long *status);
/* libcurl helpers: a CURLOPT_WRITEFUNCTION appending to the pb_buf in its arg; and, for a
 * CURLOPT_HEADERFUNCTION, copies the value of header line "Name: value" (n bytes) into out
 * when it is the header name (any case), trimmed. */
size_t th_http_write(char *data, size_t size, size_t n, void *arg);
void th_take_header(const char *line, size_t n, const char *name, char *out, size_t cap);
/* Mock control: set a model's behaviour (JSON object), read its request count, reset counters. */
int th_mock_set(const th_proc *mock, const char *model, const char *behaviour_json);
long th_mock_requests(const th_proc *mock, const char *model);
int th_mock_reset(const th_proc *mock);

/* A Bedrock provider on planb-mock (a printf format taking the mock's port), signing with
 * the mock's default credentials from the env vars th_bedrock_env sets; and a model id with
 * ':' as Bedrock's have (the mock's behaviours are keyed by the decoded id). */
#define TH_BEDROCK_PROVIDER                                                                        \
    "{\"type\": \"bedrock\", \"region\": \"us-east-1\", \"base_url\": \"http://127.0.0.1:%d\", "   \
    "\"aws_access_key_id_env\": \"PB_TEST_AWS_KEY_ID\", \"aws_secret_access_key_env\": "           \
    "\"PB_TEST_AWS_SECRET\"}"
#define TH_BEDROCK_MODEL_ID "anthropic.claude-3-5-sonnet-20240620-v1:0"
/* Sets PB_TEST_AWS_KEY_ID / PB_TEST_AWS_SECRET to planb-mock's default credentials. */
void th_bedrock_env(void);

/* Whole contents of a file ("" when it cannot be read; caller frees). */
char *th_read_file(const char *path);
/* Writes s to <dir>/<name>; returns the path (static buffer, overwritten per call). */
const char *th_write_file(const char *dir, const char *name, const char *s);

#endif
