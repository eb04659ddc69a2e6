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

#include "planb/buf.h"
#include "planb/config.h"
#include "planb/core.h"
#include "planb/http.h"
#include "planb/request.h"
#include "planb/retry.h"

/* An answer. Usable when content is non-empty, or there are tool calls, or a refusal, or the
 * provider stopped it for its content filter. */
typedef struct pb_completion {
    char *content;             /* the answer text, "" when there is none (owned) */
    char *tool_calls;          /* JSON array of OpenAI-shaped tool calls, NULL when none (owned) */
    char *refusal;             /* the model's refusal, NULL when none (owned) */
    char *logprobs;            /* choices[0].logprobs as JSON, NULL when none (owned) */
    const char *finish_reason; /* "stop", "length", "tool_calls" or "content_filter" (static) */
    long prompt_tokens;        /* -1 when the reply has no usage */
    long completion_tokens;    /* -1 when the reply has no usage */
    long cached_tokens;        /* prompt tokens read from the provider's prompt cache, or -1 */
    long reasoning_tokens;     /* completion tokens spent reasoning, or -1 */
    char *response_id;         /* the provider's id of the reply (traces), NULL: none (owned) */
} pb_completion;

#define PB_PROVIDER_PARAM_LEN   48 /* "response_format.json_schema.strict" and the like */
#define PB_PROVIDER_DROPPED_MAX 40 /* every param plus the per-message fields */

/* An answer being streamed (delta.h). */
typedef struct pb_delta pb_delta;

typedef struct pb_provider_ops {
    const char *type_name; /* "openai", "anthropic" */
    /* Fills *out (caller-allocated) with a request for req on model m (key from p). On PB_ERR
     * (err "BAD_CONF why") out may be partly filled: pb_http_request_free it either way. */
    int (*build_request)(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                         pb_http_request *out, pb_error *err);
    /* Parses a 2xx body of exactly len bytes (any bytes) answering req (NULL: a plain text
     * request). PB_ERR (err: "BAD_REPLY why", out left empty) when it holds no usable answer,
     * or tool calls whose arguments are not JSON. Free with pb_provider_completion_free. */
    int (*parse_response)(const char *body, size_t len, const pb_request *req, pb_completion *out,
                          pb_error *err);
    /* Classifies a non-2xx HTTP status with its (maybe empty) body. */
    pb_class (*classify)(long status, const char *body, size_t len);
    /* Why this dialect cannot send req without changing its meaning (a static sentence), or
     * NULL: the chain then skips the model (attempt outcome "unsupported"). */
    const char *(*refuses)(const pb_request *req);
    /* Fills names with what req asks that this dialect leaves out (the result's
     * dropped_params), at most max; returns the count. */
    size_t (*dropped)(const pb_request *req, char (*names)[PB_PROVIDER_PARAM_LEN], size_t max);
    /* One event of a streamed 2xx reply (event: its SSE type; data: len bytes, any bytes) into
     * d. PB_ERR (err "BAD_REPLY why") for an error event or a malformed one. */
    int (*stream_event)(pb_delta *d, const char *event, const char *data, size_t len,
                        pb_error *err);
    /* A streamed 2xx body is AWS event-stream frames (eventstream.h), not SSE: each message
     * goes to stream_event with its :event-type (an exception: its :exception-type). */
    bool eventstream;
} pb_provider_ops;

/* The adapters (provider_openai.c, provider_anthropic.c, provider_azure.c, provider_gemini.c,
 * provider_bedrock.c). */
extern const pb_provider_ops pb_provider_openai;
extern const pb_provider_ops pb_provider_anthropic;
extern const pb_provider_ops pb_provider_azure;
extern const pb_provider_ops pb_provider_gemini;
extern const pb_provider_ops pb_provider_bedrock;

/* Error codes set in pb_error.code by build_request / parse_response. */
enum { PB_PROVIDER_BAD_REPLY = 1, PB_PROVIDER_BAD_CONF, PB_PROVIDER_UNSUPPORTED };

/* The adapter for a provider type, NULL for an unknown one. */
const pb_provider_ops *pb_provider_for(pb_provider_type type);

/* The common status table shared by adapters (408/429/5xx retry, 401/403/404
 * fall back, 400 -> invalid unless body says context length / content filter). */
pb_class pb_provider_classify_status(long status, const char *body, size_t len);

/* The missing capability (PB_CAP_* name) or dialect refusal that keeps model m (of provider
 * type t) from serving req, NULL when it can. Pure. */
const char *pb_provider_unsupported(const pb_model_conf *m, pb_provider_type t,
                                    const pb_request *req);
/* The upstream's error message in an error body (OpenAI, Anthropic or AWS shape), made safe for a
 * result: CR/LF and controls to spaces, cut to cap - 1 bytes on a UTF-8 boundary, anything
 * that looks like a key replaced. "" when there is none. */
void pb_provider_error_message(const char *body, size_t len, char *out, size_t cap);

/* Frees what c owns, not c (completions live on the caller's stack); accepts NULL. */
void pb_provider_completion_free(pb_completion *c);

/* Helpers shared by the adapters (provider.c). */
/* Parses exactly len bytes as one JSON object; NULL with err "BAD_REPLY why" otherwise.
 * Caller puts. */
json_object *pb_provider_parse_object(const char *body, size_t len, pb_error *err);
/* The "text" of an array of {"type":"text","text":...} parts, concatenated; NULL when that is
 * empty. Caller frees. */
char *pb_provider_join_text(json_object *parts);
/* usage[key] when it is a non-negative integer, saturated at PB_PROVIDER_TOKENS_MAX, else -1
 * (unknown): a count from outside, bounded so that sums of counts (prompt + cached, stats)
 * cannot overflow. usage may be NULL. */
#define PB_PROVIDER_TOKENS_MAX 1000000000000LL /* 10^12: no reply has this many */
long pb_provider_tokens(json_object *usage, const char *key);
/* obj[key] as the reply's id when it is one: 1..PB_PROVIDER_RESPONSE_ID_MAX printable
 * ASCII bytes; NULL otherwise (borrowed). */
#define PB_PROVIDER_RESPONSE_ID_MAX 128
const char *pb_provider_response_id(json_object *obj, const char *key);
/* True when the first 4 KiB of body contain one of needles (lowercase, NULL-terminated list),
 * ignoring ASCII case. body may hold NULs. */
bool pb_provider_body_mentions(const char *body, size_t len, const char *const *needles);
/* Appends a printf-formatted "Name: value" line to r->headers. PB_ERR (err BAD_CONF, which
 * never quotes the line: it may hold a key) when the line contains CR or LF. */
int pb_provider_add_header(pb_http_request *r, pb_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Gives r provider p's way there: its extra headers (after the adapter's own), its query
 * (appended to r->url, so call it after setting the URL) and its TLS files and proxy
 * (borrowed from p). PB_ERR as pb_provider_add_header. */
int pb_provider_add_conn(const pb_provider_conf *p, pb_http_request *r, pb_error *err);
/* Appends s (len bytes, UTF-8) to b as a JSON string: quotes, backslashes and controls
 * escaped. */
void pb_provider_json_string(pb_buf *b, const char *s, size_t len);
/* Appends name to names (cut to PB_PROVIDER_PARAM_LEN - 1 bytes) when *n < max. */
void pb_provider_drop(char (*names)[PB_PROVIDER_PARAM_LEN], size_t *n, size_t max,
                      const char *name);
/* Appends to names what a translated dialect (Anthropic, Gemini) cannot send: strict tools
 * and JSON schemas, message names, image detail. */
void pb_provider_drop_unsendable(const pb_request *req, char (*names)[PB_PROVIDER_PARAM_LEN],
                                 size_t *n, size_t max);
/* The turns of a translated dialect (Anthropic-like: Gemini, Bedrock). System and developer
 * messages are joined with blank lines into *system (initialised by the caller); the others,
 * in order and blank ones skipped, go to add(arg, i, assistant, new_turn), where new_turn
 * says message i starts a turn: consecutive messages of one side (the assistant's, or the
 * user's and tool results) make one turn, so the roles alternate. */
typedef void (*pb_provider_turn_fn)(void *arg, size_t i, bool assistant, bool new_turn);
void pb_provider_walk_turns(const pb_request *req, pb_buf *system, pb_provider_turn_fn add,
                            void *arg);
/* How a translated dialect writes the blocks (parts) of one message. */
typedef struct pb_provider_blocks {
    json_object *(*text)(const char *s, size_t len); /* a text block */
    json_object *(*image)(const char *url);          /* an image_url part's (request.c-checked) */
    /* a tool call: id and name borrowed, input (the parsed arguments, an object) taken */
    json_object *(*call)(json_object *id, json_object *name, json_object *input);
} pb_provider_blocks;
/* Appends m's content to blocks as b writes it: non-blank text (the whole content, or each
 * text part), images, in order; then its tool calls. */
void pb_provider_add_blocks(json_object *blocks, const pb_message *m, const pb_provider_blocks *b);
/* Appends the tool calls of an assistant message (request.c checked their arguments are JSON
 * objects) as b->call writes them. */
void pb_provider_add_calls(json_object *blocks, json_object *tool_calls,
                           const pb_provider_blocks *b);
/* True when s holds only ASCII white space (a message that says nothing). */
bool pb_provider_is_blank(const char *s);
/* Serializes body (taken: it is put here) into r->body / r->body_len. */
void pb_provider_set_json_body(pb_http_request *r, json_object *body);
/* A JSON number for a double that prints as written ("0.2", not "0.20000000000000001"). */
json_object *pb_provider_new_double(double d);

#endif
