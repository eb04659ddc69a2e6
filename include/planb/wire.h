/* wire.h -- the OpenAI Chat Completions wire shapes of the front door, and nothing else.
 *
 * A request body becomes a job (docs/front-door.md: model names a route or a model,
 * stream and stream_options are the front's, every other field is a param); a stored
 * result becomes a chat.completion, a stream entry becomes chat.completion.chunk events,
 * and every refusal is OpenAI's error object. Pure functions, no I/O: front.c does the
 * HTTP and Redis, this module decides the bytes. */
#ifndef PLANB_WIRE_H
#define PLANB_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/buf.h"
#include "planb/config.h"

/* A refusal: the HTTP status and OpenAI's error fields. */
typedef struct pb_wire_error {
    int status;        /* 400, 401, 404, 429, 503, 504 */
    char type[32];     /* invalid_request_error, authentication_error, ... */
    char code[32];     /* invalid_api_key, model_not_found, bad_field, ... ("" = null) */
    char message[512]; /* one line */
} pb_wire_error;

/* What the front adds to a body to make its job: from the key and the x-planb-* headers. */
typedef struct pb_wire_opts {
    const char *id;          /* the job id (the front makes one per request) */
    const char *tenant;      /* NULL: none */
    int deadline_ms;         /* 0: the route's */
    const char *cache;       /* "use", "skip", "refresh"; NULL: use */
    int critical;            /* -1: unset, else 0 or 1 */
    int64_t submitted_at_ms; /* wall clock of the request */
    const char *traceparent; /* the traceparent header (passed on as the job's), NULL: none */
    const char *tracestate;  /* the tracestate header, NULL: none */
} pb_wire_opts;

/* A body made into a job. */
typedef struct pb_wire_job {
    char *json; /* the job, as pushed */
    size_t len;
    bool stream;        /* the client asked for SSE */
    bool include_usage; /* stream_options.include_usage */
    char *model;        /* the body's model ("" when it gave none) */
    int deadline_ms;    /* the job's deadline (its own or its route's) */
} pb_wire_job;

/* Builds and validates the job of a body (the worker's own parser checks it, so a job the
 * front accepts is never refused as malformed later). PB_OK, or PB_ERR with err filled. */
int pb_wire_job_from_body(const char *body, size_t len, const pb_config *cfg,
                          const pb_wire_opts *opts, pb_wire_job *out, pb_wire_error *err);
void pb_wire_job_free(pb_wire_job *job);

/* What a result says, for the x-planb-* headers. */
typedef struct pb_wire_meta {
    char status[16];   /* ok, degraded, invalid */
    char source[24];   /* primary, fallback, cache, semantic_cache, stale_cache, degraded */
    char model[72];    /* config name of the answering model ("" none) */
    char provider[72]; /* its provider ("" none) */
    char cache[16];    /* hit, semantic_hit, stale, miss */
    int attempts;      /* upstream calls */
    long latency_ms;   /* claim -> finish */
} pb_wire_meta;

/* x-planb-cache of a result's source: hit, semantic_hit, stale or miss. */
const char *pb_wire_cache_status(const char *source);

/* A stored result as the answer to a non-streamed request: status 200 with a
 * chat.completion, or (an invalid job) 400 with an error object. *body is new (caller
 * frees). model: the body's model, used when no model answered. PB_ERR when the result is
 * not a result (never expected: the workers wrote it). */
int pb_wire_completion(const char *result, size_t len, const char *model, int64_t created_s,
                       int *status, char **body, size_t *body_len, pb_wire_meta *meta);

/* The id of a result ("" when it has none); fast for front-made ids, which need no escapes. */
void pb_wire_result_id(const char *result, size_t len, char *id, size_t size);

/* One SSE event "data: <chunk>\n\n" of a chat.completion.chunk, appended to out. */
typedef struct pb_wire_chunker {
    char id[160];    /* chatcmpl-<job id> */
    char model[72];  /* the model named in chunks */
    int64_t created; /* unix seconds */
    bool role_sent;  /* the first chunk carries role "assistant" */
    bool finished;   /* the finish chunk went out */
} pb_wire_chunker;

void pb_wire_chunk_text(pb_wire_chunker *c, const char *text, size_t len, pb_buf *out);
void pb_wire_chunk_tool(pb_wire_chunker *c, int index, const char *call_id, const char *name,
                        const char *arguments, pb_buf *out);
/* The end of a stream from its result: the finish chunk, the usage chunk when asked, then
 * "data: [DONE]". An invalid result becomes an error event before [DONE]. */
void pb_wire_chunk_end(pb_wire_chunker *c, const char *result, size_t len, bool include_usage,
                       pb_buf *out);

/* OpenAI's error body {"error":{"message","type","param":null,"code"}}; caller frees. */
char *pb_wire_error_json(const pb_wire_error *err, size_t *len);
/* Fills err (message formatted). */
void pb_wire_error_set(pb_wire_error *err, int status, const char *type, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* What the front door judges of a request's head (request line and headers, up to the blank
 * line) before its body is read: RFC 9112 framing, and the key of a request with a body. */
typedef enum { PB_WIRE_BODY_NONE, PB_WIRE_BODY_LENGTH, PB_WIRE_BODY_CHUNKED } pb_wire_body;
typedef struct pb_wire_head {
    bool other;        /* not a request line of a method we frame: evhttp judges it alone */
    bool healthz;      /* the path is /healthz (asks for no key) */
    const char *auth;  /* the first Authorization value, inside the head (NULL: none) */
    size_t auth_len;   /* its bytes */
    pb_wire_body body; /* how the body is delimited */
    uint64_t length;   /* PB_WIRE_BODY_LENGTH: its Content-Length */
} pb_wire_head;

/* Parses the head's len bytes (lines end in LF or CRLF). PB_ERR with a 400 in err when its
 * framing is ambiguous: Content-Length repeated, not only digits, folded, or beside a
 * Transfer-Encoding; a Transfer-Encoding other than chunked. */
int pb_wire_head_parse(const char *head, size_t len, pb_wire_head *h, pb_wire_error *err);
/* The size of a chunk-size line (without its LF; a CR is allowed), chunk extensions
 * skipped: PB_OK, or PB_ERR when it is not 1..15 hex digits and optional extensions. */
int pb_wire_chunk_size(const char *line, size_t len, uint64_t *size);

/* GET /v1/models: every route, then every model, as {"object":"list","data":[...]}. */
char *pb_wire_models(const pb_config *cfg, size_t *len);
/* GET /v1/models/<id>: one of them, or NULL when id names neither. */
char *pb_wire_model(const pb_config *cfg, const char *id, size_t *len);

#endif
