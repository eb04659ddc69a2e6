/* dialect.h -- request checks and reply bodies of the APIs planb-mock imitates (private).
 *
 * Pure functions: no I/O, so the server decides when and how a body is sent. */
#ifndef PLANB_MOCK_DIALECT_H
#define PLANB_MOCK_DIALECT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "planb/buf.h"
#include "planb/core.h"

typedef enum {
    PB_MOCK_API_OPENAI,     /* POST /v1/chat/completions */
    PB_MOCK_API_ANTHROPIC,  /* POST /v1/messages */
    PB_MOCK_API_EMBEDDINGS, /* POST /v1/embeddings (OpenAI) */
    PB_MOCK_API_GEMINI,     /* POST /v1beta/models/<m>:generateContent (gemini.c) */
    PB_MOCK_API_BEDROCK     /* POST /model/<id>/converse[-stream] (bedrock.c) */
} pb_mock_api;

typedef struct pb_mock_request {
    pb_mock_api api;           /* which endpoint it came to */
    json_object *body;         /* the parsed body, a JSON object (borrowed) */
    const char *model;         /* body.model, non-empty */
    const char *authorization; /* Authorization header or NULL */
    const char *api_key;       /* x-api-key header or NULL */
    const char *version;       /* anthropic-version header or NULL */
    bool azure;                /* came to an Azure OpenAI path (api OPENAI) */
    bool azure_deployment;     /* ... the deployment one: model is the path's deployment */
    const char *azure_key;     /* Azure: api-key header or NULL */
    const char *api_version;   /* Azure: the api-version query parameter or NULL */
    json_object *tool_calls;   /* behaviour: answer with [{name, arguments}] (borrowed) or NULL */
    bool bad_tool_args;        /* behaviour: tool-call arguments that are not JSON */
    const char *finish_reason; /* behaviour: "length" / "content_filter", NULL = natural */
    const char *refusal;       /* behaviour: an OpenAI answer that is this refusal, or NULL */
    bool stream;               /* Gemini, Bedrock: the method streams (:streamGenerateContent,
                                  /converse-stream) */
    bool key_in_url;           /* Gemini: a key= query parameter came */
} pb_mock_request;

typedef enum {
    PB_MOCK_BODY_OK,     /* the answer (or vectors) */
    PB_MOCK_BODY_EMPTY,  /* well-formed, answer "" (vectors []) */
    PB_MOCK_BODY_MISSING /* valid JSON without the answer */
} pb_mock_body_kind;

/* Checks r against its dialect's rules: 0 when valid, else the status to answer (400 or 401)
 * with err->msg saying what is wrong. */
int pb_mock_dialect_validate(const pb_mock_request *r, pb_error *err);
/* A 200 body for a valid r: text replaces the echoed answer when non-NULL, id numbers the
 * reply, and a body shorter than pad_to bytes is padded to exactly that. Caller frees. */
char *pb_mock_dialect_reply(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                            unsigned long id, size_t pad_to, size_t *len);
/* True when r asks for a streamed answer ("stream": true). */
bool pb_mock_dialect_wants_stream(const pb_mock_request *r);

typedef enum {
    PB_MOCK_EVENT_HEAD,    /* before the answer: role chunk; message_start, block start, ping */
    PB_MOCK_EVENT_CONTENT, /* a piece of the answer (what fault_after counts) */
    PB_MOCK_EVENT_FRAME,   /* the rest: block stop/start, finish, usage, message_delta */
    PB_MOCK_EVENT_END      /* the terminator: data: [DONE] / message_stop */
} pb_mock_event_kind;

typedef struct pb_mock_event {
    pb_mock_event_kind kind; /* its place in the stream */
    size_t off;              /* where it starts in the stream's data */
    size_t len;              /* bytes, "\n\n" included */
} pb_mock_event;

typedef struct pb_mock_stream {
    pb_buf data;           /* every SSE event back to back */
    pb_mock_event *events; /* in order */
    size_t n;              /* events */
    size_t cap;            /* room in events */
} pb_mock_stream;

/* The SSE stream answering a valid chat r the way pb_mock_dialect_reply would (same text or
 * tool calls, same usage; kind OK or EMPTY). Free with pb_mock_stream_free. */
pb_mock_stream *pb_mock_dialect_stream(const pb_mock_request *r, pb_mock_body_kind kind,
                                       const char *text, unsigned long id);
void pb_mock_stream_free(pb_mock_stream *s);
/* The dialect's mid-stream error event; type and message may be NULL. Caller frees. */
char *pb_mock_dialect_stream_error(pb_mock_api api, const char *type, const char *message,
                                   size_t *len);
/* A static event whose data is not JSON (Bedrock: a frame whose CRC is wrong) of *len bytes;
 * and the keep-alive ping (NULL: the dialect has none). */
const char *pb_mock_dialect_stream_malformed(pb_mock_api api, size_t *len);
const char *pb_mock_dialect_stream_ping(pb_mock_api api);
/* The Content-Type of the dialect's streams (text/event-stream, Bedrock's event-stream). */
const char *pb_mock_dialect_stream_type(pb_mock_api api);

/* For gemini.c: the words of n bytes at s (what usage counts), how many words go in one
 * streamed text event of such an answer, and the end of the piece of `per` words from i. */
long pb_mock_dialect_words(const char *s, size_t n);
long pb_mock_dialect_words_per_piece(long words);
size_t pb_mock_dialect_word_end(const char *s, size_t n, size_t i, long per);
/* o serialized into a new string of *len bytes (caller frees); o is put. */
char *pb_mock_dialect_take_json(json_object *o, size_t *len);
/* For gemini.c and bedrock.c: o[key] or NULL; o[key] as a string or NULL; whether every key of
 * o is in the NULL-ended known (else *unknown names the first that is not). */
json_object *pb_mock_get(json_object *o, const char *key);
const char *pb_mock_str(json_object *o, const char *key);
bool pb_mock_only_keys(json_object *o, const char *const *known, const char **unknown);
/* True when v is absent (NULL) or a number from lo to hi. */
bool pb_mock_number_in(json_object *v, double lo, double hi);
/* Appends the "text" strings of the objects in the array blocks to b ("\n" between; b NULL:
 * only count); their words. Gemini's parts, Bedrock's content blocks. */
long pb_mock_texts(json_object *blocks, pb_buf *b);
/* gemini.c's and bedrock.c's answer: text, or calls ([{name, arguments}], owned) when the
 * behaviour asks and the conversation does not end in tool results. */
typedef struct pb_mock_answer {
    pb_buf text;        /* NUL-terminated */
    json_object *calls; /* or NULL */
    long prompt;        /* prompt words */
} pb_mock_answer;
/* A new event of kind starting at the end of s->data: the caller appends its bytes and sets
 * its len. Borrowed from s until the next one. */
pb_mock_event *pb_mock_stream_add(pb_mock_stream *s, pb_mock_event_kind kind);
/* body (a JSON object of *len bytes, realloc'd) padded to pad_to bytes with white space
 * before its closing brace, so the answer stays what it was; returns the new body. */
char *pb_mock_pad_json(char *body, size_t *len, size_t pad_to);

/* The provider's error body for status; type, message and code may be NULL (defaults). */
char *pb_mock_dialect_error(pb_mock_api api, int status, const char *type, const char *message,
                            const char *code, size_t *len);

#endif
