/* stats.h -- cluster-wide figures: one snapshot read, rates over 1/5/60 minutes, the
 * planb:stats publisher and fallback-rate alerts of the monitor process.
 *
 * Counters are bumped by finish.lua (planb:stats since start and
 * planb:stats:m:<minute> for 25 hours); snapshot.lua reads them all at once.
 * `planb stats`, the publisher and /metrics all format the same snapshot. */
#ifndef PLANB_STATS_H
#define PLANB_STATS_H

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <stdint.h>

#include "planb/config.h"
#include "planb/duty.h"
#include "planb/job.h"
#include "planb/queue.h"

/* What a finished job contributes to the planb:stats fields (borrowed by pb_stats_count_job). */
typedef struct pb_stats_job {
    pb_status status;           /* ok, degraded, invalid */
    pb_source source;           /* PB_SOURCE_NONE for an invalid job */
    int route;                  /* index into cfg->routes, -1 when the job could not be parsed */
    int model;                  /* the answering model (cache hits count per provider), or -1 */
    int64_t latency_ms;         /* claim -> finish */
    int64_t queued_ms;          /* push -> claim, -1 when the job had no submitted_at_ms */
    const pb_attempt *attempts; /* every attempt, in order */
    size_t n_attempts;          /* entries of attempts */
    bool cache_missed;          /* looked the cache up and had to run the chain */
    bool coalesced;             /* answered from another job's call it waited on */
    bool hedged;                /* a hedge was started, on hedge_model */
    int hedge_model;            /* index into cfg->models (when hedged) */
    bool hedge_won;             /* the hedge's answer was used */
    bool cancelled;             /* one transfer was cancelled by the other's answer ... */
    int cancelled_model;        /* ... on this model */
    double cost_usd;            /* the answer's cost at the model's prices (0: none) */
    const char *tenant;         /* the job's tenant, NULL when none (cost per tenant) */
} pb_stats_job;

/* The fields and increments one job sends to finish.lua. The names live in the struct itself
 * (fields point at constants or into names[]), so counting a job allocates nothing. */
typedef struct pb_stats_tally {
    const char *fields[PB_QUEUE_MAX_COUNTERS]; /* distinct planb:stats fields */
    long counts[PB_QUEUE_MAX_COUNTERS];        /* what each gains */
    size_t n;                                  /* entries used */
    char names[PB_QUEUE_MAX_COUNTERS * 160];   /* formatted names: 2 config names (<= 64) + words */
    size_t names_used;                         /* bytes of names[] taken */
} pb_stats_tally;

/* Pure: fills t with job's fields (jobs, status, source, route x source, latency bucket and sum,
 * wait bucket, per-model and per-provider attempts and errors, per-model attempt latency buckets,
 * cache misses, coalesced and hits, hedges started, won and cancelled per model). A field past
 * PB_QUEUE_MAX_COUNTERS distinct ones is dropped. */
void pb_stats_count_job(const pb_config *cfg, const pb_stats_job *job, pb_stats_tally *t);

/* Job latency histogram bucket bounds (ms); the last bucket is "inf". */
#define PB_STATS_N_BUCKETS 10
extern const int pb_stats_bucket_ms[PB_STATS_N_BUCKETS - 1];
/* The stats field of a job latency: "latency_le:<bound ms>" or "latency_le:inf" (static). */
const char *pb_stats_latency_field(int64_t ms);
/* The bucket bound of ms as a field suffix: "50" .. "30000" or "inf" (static). */
const char *pb_stats_bucket_name(int64_t ms);

typedef enum {
    PB_WIN_JOBS,
    PB_WIN_PRIMARY,
    PB_WIN_FALLBACK,
    PB_WIN_CACHE,
    PB_WIN_SEMANTIC,
    PB_WIN_STALE,
    PB_WIN_DEGRADED,
    PB_WIN_NFIELDS
} pb_win_field;
#define PB_STATS_N_WINDOWS 3 /* 1, 5 and 60 minutes */
extern const int pb_stats_window_min[PB_STATS_N_WINDOWS];

#define PB_STATS_BREAKER_INTS 5 /* snapshot.lua's per-model breaker entry */

typedef struct pb_stats_field {
    char *name; /* planb:stats field, e.g. "errors:gpt-4o:http_503" */
    long long value;
} pb_stats_field;

typedef struct pb_stats_snapshot {
    pb_stats_field *fields; /* the planb:stats hash */
    size_t n_fields;
    long long *queue_depth;         /* per cfg->queues */
    long long *queue_age_ms;        /* per cfg->queues: oldest job's age, 0 empty, -1 unknown */
    long long *queue_scheduled;     /* per cfg->queues: delayed jobs waiting (ZCARD) */
    long long inflight;             /* jobs in all workers' in-flight lists */
    long long dead_letters;         /* entries of planb:dead */
    long long workers_alive;        /* workers whose heartbeat is younger than lease_ms */
    long long (*usage)[2];          /* per model: requests, tokens in the last 60 s */
    int *breaker_state;             /* pb_breaker_state per cfg->models */
    long long *breaker_left_ms;     /* open: until a probe; half_open: probe lease left */
    long long (*breaker_window)[3]; /* per model: calls, failed, slow in the breaker's window */
    long long win[PB_STATS_N_WINDOWS][PB_WIN_NFIELDS]; /* sums over 1, 5, 60 minutes */
} pb_stats_snapshot;

/* argv (keys then args) of snapshot.lua for the current minute, owned strings and a const
 * view of them; free both with pb_stats_args_free. Returns argc; *numkeys set. */
int pb_stats_args(const pb_config *cfg, char ***owned, const char ***view, int *numkeys);
void pb_stats_args_free(char **owned, const char **view, int argc);
/* Runs snapshot.lua on r for cfg's keys; fn gets the reply (NULL on outage). */
void pb_stats_request_snapshot(pb_redis *r, const pb_config *cfg, pb_redis_fn fn, void *arg);
/* Parses snapshot.lua's reply into snap (zeroed first); PB_ERR on a malformed reply. */
int pb_stats_parse(const pb_config *cfg, const redisReply *reply, pb_stats_snapshot *snap);
void pb_stats_snapshot_free(pb_stats_snapshot *snap);
/* A field's value, 0 when absent. */
long long pb_stats_get(const pb_stats_snapshot *snap, const char *name);
/* Fallback (fallback + stale_cache), degraded and cache (cache + semantic) share of jobs. */
double pb_stats_fallback_rate(const long long *win);
double pb_stats_degraded_rate(const long long *win);
double pb_stats_cache_rate(const long long *win);
/* The snapshot as the JSON published on planb:stats (type "stats"); caller puts. */
json_object *pb_stats_to_json(const pb_config *cfg, const pb_stats_snapshot *snap);

/* Monitor duty: every stats_interval_s, the host holding the short lock publishes the
 * snapshot on planb:stats and fallback-rate alerts on planb:alerts. */
typedef struct pb_stats_publisher pb_stats_publisher;
pb_stats_publisher *pb_stats_publisher_start(const pb_duty_ctx *ctx);
void pb_stats_publisher_stop(pb_stats_publisher *p);

#endif
