/* core.h -- return codes, error reports, aborting allocators, clocks and size limits.
 *
 * Every module includes this. Functions return PB_OK/PB_ERR; when the caller
 * needs the reason they pass a pb_error, which may be NULL. */
#ifndef PLANB_CORE_H
#define PLANB_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PB_VERSION "0.1.0" /* `planb version`, and service.version on traces */

#define PB_OK  0
#define PB_ERR -1

#define PB_EXIT_OK    0 /* clean exit (including a finished drain) */
#define PB_EXIT_FATAL 2 /* start-up error (bad config, Lua load); the master never respawns it */

#define PB_ERROR_MSG_LEN 256

/* An error a caller can show: a stable uppercase code word then a sentence,
 * e.g. "BAD_JSON job is not valid JSON". code is the numeric class (0 = none). */
typedef struct pb_error {
    int code;                   /* module-specific class, 0 when unset */
    char msg[PB_ERROR_MSG_LEN]; /* "CODE sentence", CR/LF mapped to spaces */
} pb_error;

/* Fills err (ignored when NULL) with code and a printf-formatted message. */
void pb_error_set(pb_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Allocators that abort on OOM, so callers never test for NULL. */
void *pb_xmalloc(size_t n);
void *pb_xcalloc(size_t count, size_t size);
void *pb_xrealloc(void *p, size_t n);
char *pb_xstrdup(const char *s);
char *pb_xstrndup(const char *s, size_t n);
/* printf into a new string; caller frees. */
char *pb_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* What every process the master forks does first: dies with the master (PR_SET_PDEATHSIG),
 * takes signals again (the master blocks them before forking) and ignores SIGPIPE. false
 * when the master is already gone (the child must not start serving as an orphan). */
bool pb_core_child_start(void);

/* Milliseconds on the monotonic clock (durations) and the wall clock (stamps). */
int64_t pb_mono_ms(void);
int64_t pb_wall_ms(void);
/* Microseconds on the monotonic clock (short bounds inside one loop turn), and on the wall
 * clock (span times). */
int64_t pb_mono_us(void);
int64_t pb_wall_us(void);

/* Aborts with file:line even in release builds. */
#define pb_assert(cond) ((cond) ? (void)0 : pb_assert_fail(#cond, __FILE__, __LINE__))
_Noreturn void pb_assert_fail(const char *what, const char *file, int line);

#endif
