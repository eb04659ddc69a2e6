/* request.h -- the canonical chat request: what a job asks, as the chain, the caches and the
 * providers see it (job.c builds it from job JSON; nothing here parses or does I/O).
 *
 * A pb_request owns all its strings and its meta object; pb_request_free releases them. */
#ifndef PLANB_REQUEST_H
#define PLANB_REQUEST_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { PB_ROLE_SYSTEM, PB_ROLE_USER, PB_ROLE_ASSISTANT, PB_ROLE_COUNT } pb_role;
typedef enum { PB_CACHE_USE, PB_CACHE_SKIP, PB_CACHE_REFRESH } pb_cache_mode;

typedef struct pb_message {
    pb_role role;  /* who speaks */
    char *content; /* UTF-8 text as sent by the producer */
} pb_message;

typedef struct pb_request {
    char *id;                /* producer's id, or generated when absent */
    bool id_generated;       /* true when the job had no id */
    pb_message *messages;    /* the conversation, in order */
    size_t n_messages;       /* 1..limits.max_messages */
    int route;               /* index into cfg->routes */
    char *tenant;            /* NULL when absent */
    int *models;             /* the chain to run: job override or the route's, indices */
    size_t n_models;         /* 1..PB_CONFIG_MAX_CHAIN */
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

/* The wire name of a role ("system", "user", "assistant"): the one table the job parser, the
 * cache key and the OpenAI dialect share (the cache key depends on it). */
const char *pb_request_role_name(pb_role role);
/* The role named s, or -1. */
int pb_request_role_parse(const char *s);
/* Frees req and everything it owns; accepts NULL. */
void pb_request_free(pb_request *req);

#endif
