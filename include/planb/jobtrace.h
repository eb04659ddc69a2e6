/* jobtrace.h -- one job's trace: what the chain did, as OpenTelemetry spans at its finish.
 *
 * While a job runs the chain records only times (cache lookups, events); its attempts are the
 * chain's own pb_attempt list. At the finish the keep decision is made (the head sample, or
 * keep_fallbacks for a job that fell back or degraded), and only a kept job whose spans fit
 * the exporter's queue has them built: a planb.job span (CONSUMER) with a child per lookup
 * (INTERNAL) and per attempt (CLIENT, "chat <model>"), named and attributed after the GenAI
 * semantic conventions (docs/telemetry.md). Every function accepts a NULL trace. */
#ifndef PLANB_JOBTRACE_H
#define PLANB_JOBTRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/config.h"
#include "planb/job.h"
#include "planb/telemetry.h"

typedef struct pb_jobtrace pb_jobtrace;

/* The trace of req (continuing its traceparent, else a new one); NULL when tel is NULL. */
pb_jobtrace *pb_jobtrace_new(pb_telemetry *tel, const pb_request *req);
void pb_jobtrace_free(pb_jobtrace *jt);
/* The trace id as 32 hex characters into out (the result's trace_id); false without a trace. */
bool pb_jobtrace_id(const pb_jobtrace *jt, char out[33]);
/* A cache lookup of kind ("exact", "semantic") from start_us (wall) to now, and its result. */
void pb_jobtrace_lookup(pb_jobtrace *jt, const char *kind, int64_t start_us, const char *result);
/* An event on the job span now: name, and one attribute (key NULL: none) of value or text. */
void pb_jobtrace_event(pb_jobtrace *jt, const char *name, const char *key, int64_t value,
                       const char *text);

/* What the finished job was (borrowed for the call). */
typedef struct pb_jobtrace_facts {
    const pb_config *cfg;
    const pb_request *req;
    int64_t claimed_wall_ms;    /* when a worker took it */
    const pb_attempt *attempts; /* the chain's attempts, in order */
    size_t n_attempts;
    int model;                 /* the answering model, -1 none */
    const char *status;        /* "ok", "degraded", "invalid" */
    const char *source;        /* primary, fallback, cache, ... */
    const char *finish_reason; /* NULL: none */
    long prompt_tokens;        /* -1 unknown */
    long completion_tokens;    /* -1 unknown */
    bool has_cost;             /* cost_usd is known */
    double cost_usd;           /* the answer's cost */
    const char *cache;         /* "hit", "miss", "coalesced", "skip", ... */
    bool hedged;               /* a hedge ran */
    const char *content;       /* the answer (telemetry.capture_content), NULL: none */
    const char *response_id;   /* the provider\'s id of the answer, NULL: none */
} pb_jobtrace_facts;

/* Decides, builds the spans (when kept and they fit), queues them; frees jt. */
void pb_jobtrace_finish(pb_jobtrace *jt, const pb_jobtrace_facts *f);

#endif
