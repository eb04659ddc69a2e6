/* log.c -- one line per event on stderr, so systemd/journald or a log shipper can take it.
 *
 * Plain format: "2026-11-25T09:00:00.123Z WARN w1 event=... key=value".
 * JSON format (pb_log_json): {"ts":..., "level":..., "role":..., "msg":"..."}.
 * Writers format the whole line first and emit it with one write(2), so lines
 * from several processes sharing stderr never interleave. */
#include "planb/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

pb_log_level pb_log_min_level = PB_LOG_INFO;
int pb_log_json = 0;
static const char *log_role = "planb";

static const char *const log_level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void
pb_log_set_role(const char *role)
{
    log_role = role;
}

int
pb_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, log_level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return PB_LOG_WARN;
    return -1;
}

/* Appends s to out as the body of a JSON string (quotes and controls escaped). */
static size_t
log_json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

static void
log_emit(pb_log_level level, const char *msg)
{
    char ts[40];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03ldZ", (long)(tv.tv_usec / 1000));

    char line[4096];
    int n;
    if (pb_log_json) {
        char esc[3000];
        log_json_escape(esc, sizeof(esc), msg);
        n = snprintf(line, sizeof(line),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":\"%s\",\"msg\":\"%s\"}\n", ts,
                     log_level_names[level], log_role, esc);
    } else {
        n = snprintf(line, sizeof(line), "%s %s %s %s\n", ts, log_level_names[level], log_role,
                     msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void
pb_log_write(pb_log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    log_emit(level, msg);
}

void
pb_log_errno_write(int errnum, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, " errno=\"%s\"", strerror(errnum));
    log_emit(PB_LOG_WARN, msg);
}
