/* master.c -- supervisor of the worker processes and the monitor (nginx's master, simpler).
 *
 * Slots 0..workers-1 run pb_worker_run; the next runs pb_monitor_run (reaper, stats
 * publisher, metrics) and, when http.listen is set, the last runs pb_front_run (the
 * OpenAI-compatible front door). All are respawned the same way.
 *
 * States of a slot: empty -> running (pid) -> exited -> (respawn timer) -> running.
 *
 * Signals are blocked before the first fork and taken synchronously with
 * sigtimedwait(), so all the work happens in this loop, never in a handler:
 *   SIGCHLD      reap; a dead worker's id goes down a pipe to the monitor, which
 *                hands its jobs back at once (the master never talks to Redis);
 *                the worker is respawned into its slot after a
 *                backoff that doubles while it keeps dying young; one that exits
 *                PB_EXIT_FATAL (bad config, Lua load) stops the whole service.
 *   SIGTERM/INT  drain: SIGTERM every worker, wait drain_timeout_ms + a margin,
 *                then SIGKILL; exit 0 when all are gone.
 *   SIGHUP       re-read and validate the config; a bad one is refused and the old
 *                workers keep serving; a good one starts new workers and drains
 *                the old ones (their SIGCHLD is not respawned).
 *
 * The master also holds the front door's listening socket (pb_front_bind): bound once at
 * start, kept across reloads (rebound only when http.listen changes) and front respawns,
 * closed at drain. A front accepts from it while it runs; between an old front and its
 * successor, connections wait in the kernel's queue instead of being refused. */
#include "planb/master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "planb/core.h"
#include "planb/admin.h"
#include "planb/front.h"
#include "planb/log.h"
#include "planb/monitor.h"
#include "planb/keys.h"
#include "planb/worker.h"

#define MASTER_MAX_SLOTS      259  /* config caps workers at 256, plus monitor, front, admin */
#define MASTER_MAX_RETIRING   1024 /* old workers draining after reloads */
#define MASTER_RESPAWN_MIN_MS 100
#define MASTER_RESPAWN_MAX_MS 10000
#define MASTER_YOUNG_DEATH_MS 5000 /* a worker dying sooner than this raises the backoff */
#define MASTER_KILL_MARGIN_MS 5000 /* past the drain timeout, drain stragglers get SIGKILL */

typedef struct master_slot {
    pid_t pid; /* 0 when not running */
    int64_t started_mono_ms;
    int64_t respawn_at_mono_ms; /* 0 when no respawn is due */
    int failures;               /* consecutive young deaths */
} master_slot;

typedef struct master {
    const char *config_path;
    pb_config *cfg;
    master_slot slots[MASTER_MAX_SLOTS]; /* workers, the monitor, the front door, the admin */
    int n_slots;
    int n_workers;                       /* slots below this are workers */
    pid_t retiring[MASTER_MAX_RETIRING]; /* old workers draining after a reload */
    int n_retiring;
    bool draining;
    int64_t kill_at_mono_ms; /* drain: SIGKILL stragglers at this time */
    int exit_code;
    int listen_fd;                                         /* http.listen's socket, or -1 */
    unsigned char admin_secret[PB_ADMINAUTH_SECRET_BYTES]; /* signs admin sessions: drawn at
                                                              start, kept across reloads */
    int reap_pipe[2]; /* dead worker ids to the monitor; the master keeps both ends open, so
                         ids written while the monitor restarts wait for the next one */
} master;

static void master_size_slots(master *m);

/* Announces a dead worker to the monitor's reaper (reaper.h): "host:pid\n" down the pipe,
 * non-blocking; a full pipe drops it and the lease sweep catches the worker later. */
static void
master_notify_reaper(int fd, pid_t pid)
{
    char line[PB_KEY_WORKER_ID_MAX + 1];
    pb_key_worker_id(line, sizeof(line) - 1, pid);
    size_t len = strlen(line);
    line[len++] = '\n';
    if (fd >= 0 && write(fd, line, len) != (ssize_t)len)
        pb_log(PB_LOG_WARN, "event=reaper_notify_dropped pid=%d note=\"the lease will catch it\"",
               (int)pid);
}

static void
master_spawn(master *m, int slot)
{
    pid_t pid = fork();
    if (pid < 0) {
        pb_log_errno("event=fork_failed slot=%d", slot);
        m->slots[slot].respawn_at_mono_ms = pb_mono_ms() + MASTER_RESPAWN_MAX_MS;
        return;
    }
    if (pid == 0) {
        bool is_monitor = slot == m->n_workers;
        bool is_admin = m->cfg->admin.listen != NULL && slot == m->n_slots - 1;
        bool is_front = slot > m->n_workers && !is_admin;
        close(m->reap_pipe[1]);
        if (!is_monitor)
            close(m->reap_pipe[0]);
        if (!is_front && m->listen_fd >= 0)
            close(m->listen_fd);
        int code = is_monitor ? pb_monitor_run(m->cfg, m->reap_pipe[0])
                   : is_front ? pb_front_run(m->cfg, m->listen_fd)
                   : is_admin ? pb_admin_run(m->cfg, m->admin_secret)
                              : pb_worker_run(m->cfg, slot);
        _exit(code);
    }
    m->slots[slot].pid = pid;
    m->slots[slot].started_mono_ms = pb_mono_ms();
    m->slots[slot].respawn_at_mono_ms = 0;
}

static void
master_signal_all(master *m, int sig)
{
    for (int i = 0; i < m->n_slots; i++)
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, sig);
    for (int i = 0; i < m->n_retiring; i++)
        kill(m->retiring[i], sig);
}

static int
master_alive(const master *m)
{
    int n = m->n_retiring;
    for (int i = 0; i < m->n_slots; i++)
        if (m->slots[i].pid > 0)
            n++;
    return n;
}

static void
master_close_listener(master *m)
{
    if (m->listen_fd >= 0)
        close(m->listen_fd);
    m->listen_fd = -1;
}

static void
master_start_drain(master *m, const char *why)
{
    if (m->draining)
        return;
    m->draining = true;
    m->kill_at_mono_ms = pb_mono_ms() + m->cfg->drain_timeout_ms + MASTER_KILL_MARGIN_MS;
    pb_log(PB_LOG_INFO, "event=drain why=%s workers=%d", why, master_alive(m));
    master_signal_all(m, SIGTERM);
    master_close_listener(m); /* new connections are refused once the front let go too */
}

static bool
master_forget_retiring(master *m, pid_t pid)
{
    for (int i = 0; i < m->n_retiring; i++) {
        if (m->retiring[i] == pid) {
            m->retiring[i] = m->retiring[--m->n_retiring];
            return true;
        }
    }
    return false;
}

static void
master_on_exit(master *m, pid_t pid, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (master_forget_retiring(m, pid)) {
        master_notify_reaper(m->reap_pipe[1], pid);
        return;
    }
    int slot = -1;
    for (int i = 0; i < m->n_slots; i++)
        if (m->slots[i].pid == pid)
            slot = i;
    if (slot < 0)
        return;
    if (slot < m->n_workers)
        master_notify_reaper(m->reap_pipe[1], pid);
    master_slot *s = &m->slots[slot];
    s->pid = 0;
    if (m->draining)
        return;
    if (code == PB_EXIT_FATAL) {
        pb_log(PB_LOG_ERROR, "event=worker_fatal slot=%d pid=%d note=\"not respawning\"", slot,
               (int)pid);
        m->exit_code = PB_EXIT_FATAL;
        master_start_drain(m, "worker_fatal");
        return;
    }
    int64_t now = pb_mono_ms();
    if (now - s->started_mono_ms < MASTER_YOUNG_DEATH_MS)
        s->failures++;
    else
        s->failures = 0;
    int64_t delay = MASTER_RESPAWN_MIN_MS;
    for (int i = 0; i < s->failures && delay < MASTER_RESPAWN_MAX_MS; i++)
        delay *= 2;
    if (delay > MASTER_RESPAWN_MAX_MS)
        delay = MASTER_RESPAWN_MAX_MS;
    s->respawn_at_mono_ms = now + delay;
    pb_log(PB_LOG_WARN, "event=worker_died slot=%d pid=%d code=%d signal=%d respawn_ms=%lld", slot,
           (int)pid, code, sig, (long long)delay);
}

static void
master_reap(master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        master_on_exit(m, pid, status);
}

static void
master_reload(master *m)
{
    pb_error err = {0};
    pb_config *next = pb_config_load(m->config_path, &err);
    if (next == NULL) {
        pb_log(PB_LOG_ERROR, "event=reload_refused error=\"%s\" note=\"old config keeps serving\"",
               err.msg);
        return;
    }
    /* A new http.listen is bound before anything stops, so a port in use refuses the reload. */
    const char *was = m->cfg->http.listen, *now = next->http.listen;
    bool moved = (was == NULL) != (now == NULL) || (was && strcmp(was, now) != 0);
    int listen_fd = !moved ? m->listen_fd : now ? pb_front_bind(&next->http) : -1;
    if (now && listen_fd < 0) {
        pb_log(PB_LOG_ERROR,
               "event=reload_refused error=\"cannot listen on http.listen %s\" note=\"old config "
               "keeps serving\"",
               now);
        pb_config_free(next);
        return;
    }
    if (moved)
        master_close_listener(m);
    m->listen_fd = listen_fd;

    /* Old workers drain (they finish or hand back their jobs) while new ones start. */
    for (int i = 0; i < m->n_slots; i++) {
        if (m->slots[i].pid > 0 && m->n_retiring < MASTER_MAX_RETIRING) {
            kill(m->slots[i].pid, SIGTERM);
            m->retiring[m->n_retiring++] = m->slots[i].pid;
        }
        memset(&m->slots[i], 0, sizeof(m->slots[i]));
    }
    pb_config_free(m->cfg);
    m->cfg = next;
    master_size_slots(m);
    for (int i = 0; i < m->n_slots; i++)
        master_spawn(m, i);
    pb_log(PB_LOG_INFO, "event=reloaded workers=%d", next->workers);
}

/* Workers, the monitor, (with http.listen) the front door and (with admin.listen) the admin. */
static void
master_size_slots(master *m)
{
    m->n_workers = m->cfg->workers < MASTER_MAX_SLOTS - 3 ? m->cfg->workers : MASTER_MAX_SLOTS - 3;
    m->n_slots = m->n_workers + 1 + (m->cfg->http.listen != NULL) + (m->cfg->admin.listen != NULL);
}

/* Milliseconds until the next thing the loop must do on its own (max 1 s). */
static int64_t
master_next_wake_ms(const master *m)
{
    int64_t now = pb_mono_ms(), wake = now + 1000;
    for (int i = 0; i < m->n_slots; i++)
        if (m->slots[i].respawn_at_mono_ms && m->slots[i].respawn_at_mono_ms < wake)
            wake = m->slots[i].respawn_at_mono_ms;
    if (m->draining && m->kill_at_mono_ms < wake)
        wake = m->kill_at_mono_ms;
    return wake > now ? wake - now : 0;
}

int
pb_master_run(const char *config_path, pb_config *cfg)
{
    master *m = pb_xcalloc(1, sizeof(*m));
    m->config_path = config_path;
    m->cfg = cfg;
    master_size_slots(m);
    pb_log_set_role("master");
    m->listen_fd = cfg->http.listen ? pb_front_bind(&cfg->http) : -1;
    if (cfg->http.listen && m->listen_fd < 0) {
        pb_config_free(cfg);
        free(m);
        return PB_EXIT_FATAL;
    }
    /* The admin's session key: the kernel's randomness, no crypto here (adminauth.c MACs). */
    if (getrandom(m->admin_secret, sizeof(m->admin_secret), 0) !=
        (ssize_t)sizeof(m->admin_secret)) {
        pb_log_errno("event=admin_secret_failed");
        pb_config_free(cfg);
        free(m);
        return PB_EXIT_FATAL;
    }
    if (pipe2(m->reap_pipe, O_CLOEXEC) != 0) {
        pb_log_errno("event=pipe_failed");
        m->reap_pipe[0] = m->reap_pipe[1] = -1;
    } else {
        fcntl(m->reap_pipe[0], F_SETFL, O_NONBLOCK);
        fcntl(m->reap_pipe[1], F_SETFL, O_NONBLOCK);
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    pb_log(PB_LOG_INFO, "event=master_start pid=%d workers=%d config=%s", (int)getpid(),
           m->n_workers, config_path ? config_path : "-");
    for (int i = 0; i < m->n_slots; i++)
        master_spawn(m, i);

    for (;;) {
        if (m->draining && master_alive(m) == 0)
            break;
        int64_t wait_ms = master_next_wake_ms(m);
        struct timespec ts = {(time_t)(wait_ms / 1000), (long)(wait_ms % 1000) * 1000000L};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        if (sig == SIGCHLD) {
            master_reap(m);
        } else if (sig == SIGTERM || sig == SIGINT) {
            master_start_drain(m, sig == SIGTERM ? "SIGTERM" : "SIGINT");
        } else if (sig == SIGHUP) {
            if (!m->draining)
                master_reload(m);
        }
        master_reap(m); /* SIGCHLDs coalesce: reap whatever is there */
        int64_t now = pb_mono_ms();
        if (m->draining) {
            if (now >= m->kill_at_mono_ms && master_alive(m) > 0) {
                pb_log(PB_LOG_WARN, "event=drain_kill workers=%d", master_alive(m));
                master_signal_all(m, SIGKILL);
                m->kill_at_mono_ms = now + 1000;
            }
            continue;
        }
        for (int i = 0; i < m->n_slots; i++)
            if (m->slots[i].pid == 0 && m->slots[i].respawn_at_mono_ms &&
                m->slots[i].respawn_at_mono_ms <= now)
                master_spawn(m, i);
    }
    int code = m->exit_code;
    pb_log(PB_LOG_INFO, "event=master_exit code=%d", code);
    pb_config_free(m->cfg);
    master_close_listener(m);
    close(m->reap_pipe[0]);
    close(m->reap_pipe[1]);
    free(m);
    return code;
}
