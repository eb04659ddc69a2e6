/* job.h -- job JSON -> pb_request (validated, bounded) and pb_result -> result JSON. No I/O.
 *
 * A pb_request owns all its strings and its meta object. A pb_result borrows
 * everything it points at (the chain keeps the storage alive while it builds the JSON). */
#ifndef PLANB_JOB_H
#define PLANB_JOB_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "planb/config.h"
#include "planb/core.h"

typedef enum { PB_ROLE_SYSTEM, PB_ROLE_USER, PB_ROLE_ASSISTANT } pb_role;
typedef enum { PB_CACHE_USE, PB_CACHE_SKIP, PB_CACHE_REFRESH } pb_cache_mode;

typedef struct pb_message {
    pb_role role;
    char *content; /* UTF-8 text as sent by the producer */
} pb_message;

typedef struct pb_request {
    char *id;          /* producer's id, or generated when absent */
    bool id_generated; /* true when the job had no id */
    pb_message *messages;
    size_t n_messages; /* 1..limits.max_messages */
    int route;         /* index into cfg->routes */
    char *tenant;      /* NULL when absent */
    int *models;       /* the chain to run: job override or the route's, indices */
    size_t n_models;
    int max_tokens;          /* -1 when not given */
    double temperature;      /* NAN when not given */
    double top_p;            /* NAN when not given */
    int64_t deadline_ms;     /* from the job, else the route's */
    bool critical;           /* never answer below the route's quality floor */
    pb_cache_mode cache;     /* use (default) | skip | refresh */
    bool reply;              /* also push the result to planb:reply:<id> */
    json_object *meta;       /* echoed back untouched; NULL when absent (owned) */
    int64_t submitted_at_ms; /* producer's wall-clock stamp, 0 when absent (for queued_ms) */
} pb_request;

/* Error codes set in pb_error.code by pb_job_parse. */
enum {
    PB_JOB_BAD_JSON = 1,
    PB_JOB_TOO_LARGE,
    PB_JOB_BAD_FIELD,
    PB_JOB_UNKNOWN_ROUTE,
    PB_JOB_UNKNOWN_MODEL
};

/* Parses and validates raw job bytes against cfg. On success *out is set (caller
 * frees with pb_job_free). On failure err holds "CODE sentence" and, when an id
 * could be read, *bad_id is set to a copy of it (caller frees), else NULL. */
int pb_job_parse(const char *raw, size_t len, const pb_config *cfg, pb_request **out, char **bad_id,
                 pb_error *err);
void pb_job_free(pb_request *req);

typedef enum { PB_STATUS_OK, PB_STATUS_DEGRADED, PB_STATUS_INVALID } pb_status;
typedef enum {
    PB_SOURCE_PRIMARY,
    PB_SOURCE_FALLBACK,
    PB_SOURCE_CACHE,
    PB_SOURCE_SEMANTIC_CACHE,
    PB_SOURCE_STALE_CACHE,
    PB_SOURCE_DEGRADED,
    PB_SOURCE_NONE
} pb_source;

const char *pb_status_name(pb_status s);
const char *pb_source_name(pb_source s);

typedef struct pb_attempt {
    int model;        /* index into cfg->models */
    int try_no;       /* 1-based per model */
    char outcome[32]; /* "ok", "http_503", "timeout", "connect_error", "bad_reply", ... */
    int64_t ms;       /* wall time of this attempt */
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
    const json_object *meta;      /* borrowed, may be NULL */
    int64_t cache_age_s;          /* cache, stale_cache and semantic_cache results; -1 otherwise */
    double similarity;            /* semantic_cache: cosine of the match; < 0 otherwise */
    const char *matched_question; /* semantic_cache: the question the answer was for */
} pb_result;

/* Serializes a result; returns a new string (caller frees) and its length in *len. */
char *pb_result_to_json(const pb_result *res, const pb_config *cfg, size_t *len);

#endif
