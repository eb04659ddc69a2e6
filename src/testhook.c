/* testhook.c -- test-only faults (see testhook.h): a poison job that kills its worker.
 *
 * Integration tests need a job that crashes every worker that runs it, to
 * prove it ends in planb:dead after max_deliveries instead of looping. The
 * trigger lives in the job's meta, so tests push it like any other job. */
#include "planb/testhook.h"

#ifdef PB_TEST_HOOKS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "planb/log.h"

void
pb_testhook_job_started(const pb_request *req)
{
    static int armed = -1;
    if (armed < 0) {
        const char *v = getenv("PLANB_TEST_HOOKS");
        armed = v != NULL && strcmp(v, "1") == 0;
    }
    json_object *crash;
    if (!armed || req->meta == NULL ||
        !json_object_object_get_ex(req->meta, "pb_test_crash", &crash) ||
        !json_object_get_boolean(crash))
        return;
    pb_log(PB_LOG_WARN, "event=test_crash job=%s", req->id);
    kill(getpid(), SIGKILL);
}
#else
typedef int pb_testhook_unused; /* ISO C forbids an empty translation unit */
#endif
