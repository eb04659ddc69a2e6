/* duty.h -- what a monitor duty (reaper, stats publisher, metrics endpoint) is handed.
 *
 * The monitor process (monitor.c) owns the loop and the connection; each duty
 * borrows them through this struct, so the duties sit below the monitor and
 * monitor.h itself needs no libevent or hiredis type (the master includes it). */
#ifndef PLANB_DUTY_H
#define PLANB_DUTY_H

#include <event2/event.h>

#include "planb/config.h"
#include "planb/redis.h"

typedef struct pb_duty_ctx {
    struct event_base *base; /* the monitor's loop */
    pb_redis *cmd;           /* its command connection */
    const pb_config *cfg;    /* the config it runs */
    const char *host;        /* this host's name (as in worker ids "host:pid") */
} pb_duty_ctx;

#endif
