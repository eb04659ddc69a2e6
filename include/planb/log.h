/* log.h -- leveled one-line log events on stderr: time, level, role, key=value fields.
 *
 * pb_log checks the level before evaluating its arguments (Redis serverLog). */
#ifndef PLANB_LOG_H
#define PLANB_LOG_H

typedef enum { PB_LOG_DEBUG, PB_LOG_INFO, PB_LOG_WARN, PB_LOG_ERROR } pb_log_level;

extern pb_log_level pb_log_min_level; /* events below this are dropped */
extern int pb_log_json;               /* 1: one JSON object per line */

/* Sets the role shown on every line ("master", "w3", "submit"). Borrowed: keep it alive. */
void pb_log_set_role(const char *role);
/* Parses "debug|info|warn|error"; returns -1 when unknown. */
int pb_log_parse_level(const char *name);

void pb_log_write(pb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pb_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= pb_log_min_level)                                                           \
            pb_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

/* Like pb_log at WARN with " errno=<strerror>" appended; captures errno first. */
#define pb_log_errno(...)                                                                          \
    do {                                                                                           \
        int pb_log_saved_errno_ = errno;                                                           \
        if (PB_LOG_WARN >= pb_log_min_level)                                                       \
            pb_log_errno_write(pb_log_saved_errno_, __VA_ARGS__);                                  \
    } while (0)
void pb_log_errno_write(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
