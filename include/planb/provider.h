/* provider.h -- the seam between the chain and one upstream API dialect.
 *
 * An adapter builds the HTTP request for a job, parses a 2xx body into a
 * completion, and classifies a failed reply. Adapters know nothing of retries,
 * deadlines or Redis: adding a provider is one new provider_<name>.c. */
#ifndef PLANB_PROVIDER_H
#define PLANB_PROVIDER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "planb/config.h"
#include "planb/core.h"
#include "planb/http.h"
#include "planb/request.h"
#include "planb/retry.h"

typedef struct pb_completion {
    char *content;          /* the answer text, non-empty (owned) */
    long prompt_tokens;     /* -1 when the reply has no usage */
    long completion_tokens; /* -1 when the reply has no usage */
} pb_completion;

typedef struct pb_provider_ops {
    const char *type_name; /* "openai", "anthropic" */
    /* Fills *out (caller-allocated) with a request for req on model m (key from p). On PB_ERR
     * (err "BAD_CONF why") out may be partly filled: pb_http_request_free it either way. */
    int (*build_request)(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                         pb_http_request *out, pb_error *err);
    /* Parses a 2xx body of exactly len bytes (any bytes). PB_ERR (err: "BAD_REPLY why", out
     * left empty) when it holds no usable answer. Free with pb_provider_completion_free. */
    int (*parse_response)(const char *body, size_t len, pb_completion *out, pb_error *err);
    /* Classifies a non-2xx HTTP status with its (maybe empty) body. */
    pb_class (*classify)(long status, const char *body, size_t len);
} pb_provider_ops;

/* The adapters (provider_openai.c, provider_anthropic.c). */
extern const pb_provider_ops pb_provider_openai;
extern const pb_provider_ops pb_provider_anthropic;

/* Error codes set in pb_error.code by build_request / parse_response. */
enum { PB_PROVIDER_BAD_REPLY = 1, PB_PROVIDER_BAD_CONF };

/* The adapter for a provider type, NULL for an unknown one. */
const pb_provider_ops *pb_provider_for(pb_provider_type type);

/* The common status table shared by adapters (408/429/5xx retry, 401/403/404
 * fall back, 400 -> invalid unless body says context length / content filter). */
pb_class pb_provider_classify_status(long status, const char *body, size_t len);

/* Frees what c owns, not c (completions live on the caller's stack); accepts NULL. */
void pb_provider_completion_free(pb_completion *c);

/* Helpers shared by the adapters (provider.c). */
/* Parses exactly len bytes as one JSON object; NULL with err "BAD_REPLY why" otherwise.
 * Caller puts. */
json_object *pb_provider_parse_object(const char *body, size_t len, pb_error *err);
/* The "text" of an array of {"type":"text","text":...} parts, concatenated; NULL when that is
 * empty. Caller frees. */
char *pb_provider_join_text(json_object *parts);
/* usage[key] when it is a non-negative integer, else -1. usage may be NULL. */
long pb_provider_tokens(json_object *usage, const char *key);
/* True when the first 4 KiB of body contain one of needles (lowercase, NULL-terminated list),
 * ignoring ASCII case. body may hold NULs. */
bool pb_provider_body_mentions(const char *body, size_t len, const char *const *needles);
/* Appends a printf-formatted "Name: value" line to r->headers. PB_ERR (err BAD_CONF, which
 * never quotes the line: it may hold a key) when the line contains CR or LF. */
int pb_provider_add_header(pb_http_request *r, pb_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Serializes body (taken: it is put here) into r->body / r->body_len. */
void pb_provider_set_json_body(pb_http_request *r, json_object *body);
/* A JSON number for a double that prints as written ("0.2", not "0.20000000000000001"). */
json_object *pb_provider_new_double(double d);

#endif
