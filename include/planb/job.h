/* job.h -- job JSON -> pb_request (validated, bounded); pb_result -> result JSON; the
 * dead-letter entry. No I/O.
 *
 * A pb_result borrows everything it points at (the chain keeps the storage alive while it
 * builds the JSON). */
#ifndef PLANB_JOB_H
#define PLANB_JOB_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "planb/config.h"
#include "planb/core.h"
#include "planb/request.h"

/* Error codes set in pb_error.code by pb_job_parse. */
enum {
    PB_JOB_BAD_JSON = 1,
    PB_JOB_TOO_LARGE,
    PB_JOB_BAD_FIELD,
    PB_JOB_UNKNOWN_ROUTE,
    PB_JOB_UNKNOWN_MODEL,
    PB_JOB_UNSUPPORTED
};

/* Tokenizes exactly len bytes (strict JSON, valid UTF-8, bounded depth) into an object; NULL
 * with err "BAD_JSON job ..." when it is not one. The front door parses bodies with it too. */
json_object *pb_job_tokenize(const char *raw, size_t len, pb_error *err);

/* A new job id, "pb-" + 24 hex chars from getrandom(2) (what a job without one gets, and what
 * the front door gives its requests). Caller frees. */
char *pb_job_new_id(void);

/* Parses and validates raw job bytes against cfg. On success *out is set (caller
 * frees with pb_request_free). On failure err holds "CODE sentence" and, when an id
 * could be read, *bad_id is set to a copy of it (caller frees), else NULL. */
int pb_job_parse(const char *raw, size_t len, const pb_config *cfg, pb_request **out, char **bad_id,
                 pb_error *err);
/* Whether raw job bytes ask to stream (a top-level "stream": true), for an invalid job whose
 * reader still needs its stream's `end`; false for bytes over cfg's job_max_bytes (never
 * tokenized) or that are not a JSON object. */
bool pb_job_asks_stream(const char *raw, size_t len, const pb_config *cfg);
/* The same checks on a job already tokenized (root is borrowed; len: its serialized size, which
 * the params bounds count): the front door validates the job it built without parsing its
 * text again. The size limit is the caller's (pb_job_parse checks it before tokenizing). */
int pb_job_parse_object(json_object *root, size_t len, const pb_config *cfg, pb_request **out,
                        char **bad_id, pb_error *err);

typedef enum {
    PB_STATUS_OK,
    PB_STATUS_DEGRADED,
    PB_STATUS_INVALID,
    PB_STATUS_CANCELLED /* cancelled by cancel.lua while it ran (a queued one: cancel.lua's own) */
} pb_status;
typedef enum {
    PB_SOURCE_PRIMARY,
    PB_SOURCE_FALLBACK,
    PB_SOURCE_CACHE,
    PB_SOURCE_SEMANTIC_CACHE,
    PB_SOURCE_STALE_CACHE,
    PB_SOURCE_DEGRADED,
    PB_SOURCE_NONE
} pb_source;

/* Pure: a result's queued_ms, claim minus the later of submitted_at_ms and run_at_ms (a delayed
 * job's deliberate wait is not queueing); -1 when the job had neither; never negative. */
int64_t pb_job_queued_ms(const pb_request *req, int64_t claimed_wall_ms);
const char *pb_job_status_name(pb_status s);
const char *pb_job_source_name(pb_source s);

typedef struct pb_attempt {
    int model;          /* index into cfg->models */
    int try_no;         /* 1-based per model */
    char outcome[32];   /* "ok", "http_503", "timeout", "connect_error", "bad_reply", ... */
    int64_t elapsed_ms; /* wall time of this attempt (result field "ms") */
    bool reached; /* its request went out and came back (not refused before: breaker, limit) */
    int64_t start_wall_us;  /* when its call started (traces), 0: elapsed_ms before the end */
    int64_t end_wall_us;    /* when it ended (traces) */
    long status;            /* HTTP status of its answer, 0 none */
    int64_t retry_after_ms; /* the answer's Retry-After, -1 none */
} pb_attempt;

typedef struct pb_result {
    const char *id;
    pb_status status;
    pb_source source;
    const char *content; /* answer, degraded reply, or NULL for invalid */
    const char *error;   /* "CODE sentence" for invalid results, else NULL */
    int model;           /* model index that answered, -1 for none */
    const pb_attempt *attempts;
    size_t n_attempts;
    long prompt_tokens;           /* -1 when unknown */
    long completion_tokens;       /* -1 when unknown */
    int64_t queued_ms;            /* -1 when unknown */
    int64_t latency_ms;           /* claim -> finish */
    const char *worker;           /* "host:pid" */
    const char *trace_id;         /* 32 hex of the job's trace (tracing on), or NULL */
    const json_object *meta;      /* borrowed, may be NULL */
    int64_t cache_age_s;          /* cache, stale_cache and semantic_cache results; -1 otherwise */
    double similarity;            /* semantic_cache: cosine of the match; < 0 otherwise */
    const char *matched_question; /* semantic_cache: the question the answer was for */
    const char *finish_reason;    /* stop, length, tool_calls, content_filter; NULL: none */
    const char *tool_calls;       /* JSON array of OpenAI-shaped tool calls, NULL: none */
    const char *refusal;          /* the model's refusal, NULL: none */
    const char *logprobs;         /* the model's logprobs JSON, NULL: none */
    long cached_tokens;           /* prompt tokens from the provider's cache; 0: none or unknown */
    long reasoning_tokens;        /* completion tokens spent reasoning; 0: none or unknown */
    bool has_cost;                /* the answering model has prices: cost_usd is set */
    double cost_usd;              /* prompt and completion tokens at the model's prices */
    const char *const *dropped;   /* params the answering model did not get (dropped_params) */
    size_t n_dropped;             /* entries of dropped */
    bool cut;                     /* streamed: the answer broke off after its first token */
    const char *cut_reason;       /* the attempt outcome that cut it (with cut) */
    bool continued;               /* streamed: a later model continued a cut answer */
} pb_result;

/* Serializes a result; returns a new string (caller frees) and its length in *len. */
char *pb_job_result_to_json(const pb_result *res, const pb_config *cfg, size_t *len);
/* The planb:dead entry of a job: {id (when known), error, worker, at_ms, job | job_base64}.
 * raw is kept as text when it is valid UTF-8 without NUL, else as base64. A raw longer than
 * keep_max (an oversized job) keeps only its first 4 KiB (job_head or job_head_base64), with
 * job_bytes and job_sha256. Caller frees. */
char *pb_job_dead_entry(const char *raw, size_t raw_len, size_t keep_max, const char *id,
                        const char *error, const char *worker, int64_t at_wall_ms);

#endif
