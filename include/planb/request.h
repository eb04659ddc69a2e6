/* request.h -- the canonical chat request: what a job asks, as the chain, the caches and the
 * providers see it. job.c reads the job's top level and hands "messages" and "params" to the
 * parsers here, which check every shape and bound (no I/O).
 *
 * A pb_request owns all its strings and JSON nodes; pb_request_free releases them. */
#ifndef PLANB_REQUEST_H
#define PLANB_REQUEST_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/core.h"
#include "planb/trace.h"

typedef enum {
    PB_ROLE_SYSTEM,
    PB_ROLE_USER,
    PB_ROLE_ASSISTANT,
    PB_ROLE_DEVELOPER,
    PB_ROLE_TOOL,
    PB_ROLE_COUNT
} pb_role;
typedef enum { PB_CACHE_USE, PB_CACHE_SKIP, PB_CACHE_REFRESH } pb_cache_mode;

/* What a job needs of a model (bits of pb_request.needs and pb_model_conf.capabilities). */
enum {
    PB_CAP_TOOLS = 1 << 0,       /* tools, tool_calls or tool messages */
    PB_CAP_VISION = 1 << 1,      /* image_url parts */
    PB_CAP_JSON_SCHEMA = 1 << 2, /* response_format json_schema */
    PB_CAP_JSON_OBJECT = 1 << 3, /* response_format json_object */
    PB_CAP_LOGPROBS = 1 << 4,    /* logprobs: true */
    PB_CAP_ALL = (1 << 5) - 1
};

/* Error codes set by the parsers (the same numbers as job.h's PB_JOB_*). */
enum { PB_REQUEST_TOO_LARGE = 2, PB_REQUEST_BAD_FIELD = 3 };

typedef struct pb_message {
    pb_role role;            /* who speaks */
    char *content;           /* the text (a string content, or the text parts joined), maybe "" */
    json_object *parts;      /* the content array as validated, NULL for a string or null content */
    json_object *tool_calls; /* assistant: [{id, type, function{name, arguments}}], else NULL */
    char *tool_call_id;      /* tool: the call it answers, else NULL */
    char *name;              /* participant name, NULL when absent */
} pb_message;

typedef struct pb_request {
    char *id;                  /* producer's id, or generated when absent */
    bool id_generated;         /* true when the job had no id */
    pb_message *messages;      /* the conversation, in order */
    size_t n_messages;         /* 1..limits.max_messages */
    int route;                 /* index into cfg->routes */
    char *tenant;              /* NULL when absent */
    int *models;               /* the chain to run: job override or the route's, indices */
    size_t n_models;           /* 1..PB_CONFIG_MAX_CHAIN */
    json_object *params;       /* every given param, validated, by its OpenAI name (owned) */
    int max_tokens;            /* max_tokens or max_completion_tokens; -1 when not given */
    double temperature;        /* NAN when not given */
    double top_p;              /* NAN when not given */
    unsigned needs;            /* PB_CAP_* bits the job needs of a model */
    int64_t deadline_ms;       /* from the job, else the route's */
    bool critical;             /* never answer below the route's quality floor */
    pb_cache_mode cache;       /* use (default) | skip | refresh */
    bool reply;                /* also push the result to planb:reply:<id> */
    bool stream;               /* deliver the answer as it comes on planb:stream:<id> */
    json_object *meta;         /* echoed back untouched; NULL when absent (owned) */
    int64_t submitted_at_ms;   /* producer's wall-clock stamp, 0 when absent (for queued_ms) */
    int64_t run_at_ms;         /* delayed job: run at (epoch ms), 0 when absent (claim.lua) */
    int64_t delay_ms;          /* delayed job: run this long after submitted_at_ms, -1 absent */
    bool has_trace;            /* traceparent was given and valid: parent_trace is the caller's */
    pb_trace_ctx parent_trace; /* the caller's trace context (has_trace) */
    char *tracestate;          /* passed on with parent_trace; NULL when absent or invalid */
    bool bad_traceparent;      /* a traceparent was given but malformed (ignored, counted) */
} pb_request;

/* The wire name of a role ("system", "user", "assistant", "developer", "tool"): the one table
 * the job parser, the cache key and the OpenAI dialect share (the cache key depends on it). */
const char *pb_request_role_name(pb_role role);
/* The role named s, or -1. */
int pb_request_role_parse(const char *s);
/* The name of one PB_CAP_* bit ("tools", "vision", ...), "?" for anything else. */
const char *pb_request_cap_name(unsigned cap);
/* The PB_CAP_* bit named s, or 0. */
unsigned pb_request_cap_parse(const char *s);

/* Fills req->messages from the job's "messages" (borrowed; at most max_messages) and sets the
 * needs they imply. PB_ERR with err "CODE sentence" naming the field. */
int pb_request_parse_messages(pb_request *req, json_object *msgs, size_t max_messages,
                              pb_error *err);
/* Fills req->params (and the typed fields) from the job's "params" (borrowed, may be NULL);
 * job_bytes is the raw job's size (no part of it serializes to more). */
int pb_request_parse_params(pb_request *req, json_object *params, size_t job_bytes, pb_error *err);
/* True when name is a field of an OpenAI Chat Completions request (for the BAD_FIELD hint). */
bool pb_request_is_openai_field(const char *name);
/* True when s (len bytes) is valid UTF-8 JSON text of one object (tool-call arguments). */
bool pb_request_is_json_object(const char *s, size_t len);
/* req->params[name], NULL when absent. Borrowed. */
json_object *pb_request_param(const pb_request *req, const char *name);
/* Calls feed(tag, bytes, len) over a canonical form of everything that shapes the answer:
 * every message (role, text, parts, tool calls, ids, name) and every param. */
void pb_request_canon(const pb_request *req,
                      void (*feed)(void *arg, char tag, const char *s, size_t len), void *arg);
/* Frees req and everything it owns; accepts NULL. */
void pb_request_free(pb_request *req);

#endif
