/* testhook.h -- test-only faults, compiled in only with PB_TEST_HOOKS and armed only by the
 * environment (PLANB_TEST_HOOKS=1), so a production build or run can never trigger them. */
#ifndef PLANB_TESTHOOK_H
#define PLANB_TESTHOOK_H

#include "planb/job.h"

#ifdef PB_TEST_HOOKS
/* Kills the worker (SIGKILL, like the OOM killer) when the job's meta has "pb_test_crash": true:
 * the poison job of the crash-recovery tests. */
void pb_testhook_job_started(const pb_request *req);
#else
#define pb_testhook_job_started(req) ((void)(req))
#endif

#endif
