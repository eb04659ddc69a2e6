/* core.c -- error reports, aborting allocators, clocks and the start of every child process.
 *
 * Allocation failure aborts (Redis zmalloc): every outside size is bounded,
 * the master respawns a dead worker and the lease hands its jobs back, which
 * is safer than NULL paths nobody tests. */
#include "planb/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

void
pb_error_set(pb_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->code = code;
    for (char *p = err->msg; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
}

static _Noreturn void
core_oom(size_t n)
{
    fprintf(stderr, "planb: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
pb_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        core_oom(n);
    return p;
}

void *
pb_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        core_oom(count * size);
    return p;
}

void *
pb_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        core_oom(n);
    return q;
}

char *
pb_xstrdup(const char *s)
{
    return pb_xstrndup(s, strlen(s));
}

char *
pb_xstrndup(const char *s, size_t n)
{
    char *p = pb_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
pb_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    pb_assert(n >= 0);
    char *s = pb_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static int64_t
core_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
pb_mono_ms(void)
{
    return core_clock_ms(CLOCK_MONOTONIC);
}

int64_t
pb_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
pb_wall_ms(void)
{
    return core_clock_ms(CLOCK_REALTIME);
}

int64_t
pb_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
pb_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "planb: assertion failed: %s (%s:%d)\n", what, file, line);
    abort();
}

bool
pb_core_child_start(void)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN);
    return getppid() != 1;
}
