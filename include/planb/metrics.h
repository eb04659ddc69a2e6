/* metrics.h -- GET /metrics in the Prometheus text exposition format (monitor duty).
 *
 * Served by libevent's evhttp in the monitor process on monitor.metrics_listen;
 * every scrape reads one snapshot from Redis (snapshot.lua), so the figures are
 * the cluster's, whichever host is scraped. */
#ifndef PLANB_METRICS_H
#define PLANB_METRICS_H

#include "planb/buf.h"
#include "planb/duty.h"
#include "planb/stats.h"

typedef struct pb_metrics pb_metrics;

/* Listens on cfg->metrics_listen; NULL when it is disabled or cannot bind (logged). */
pb_metrics *pb_metrics_start(const pb_duty_ctx *ctx);
void pb_metrics_stop(pb_metrics *m);

/* Appends snap as exposition text (HELP/TYPE for each family) to out. */
void pb_metrics_format(const pb_config *cfg, const pb_stats_snapshot *snap, pb_buf *out);

#endif
