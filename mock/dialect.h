/* dialect.h -- request checks and reply bodies of the APIs planb-mock imitates (private).
 *
 * Pure functions: no I/O, so the server decides when and how a body is sent. */
#ifndef PLANB_MOCK_DIALECT_H
#define PLANB_MOCK_DIALECT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "planb/core.h"

typedef enum {
    PB_MOCK_API_OPENAI,    /* POST /v1/chat/completions */
    PB_MOCK_API_ANTHROPIC, /* POST /v1/messages */
    PB_MOCK_API_EMBEDDINGS /* POST /v1/embeddings (OpenAI) */
} pb_mock_api;

typedef struct pb_mock_request {
    pb_mock_api api;           /* which endpoint it came to */
    json_object *body;         /* the parsed body, a JSON object (borrowed) */
    const char *model;         /* body.model, non-empty */
    const char *authorization; /* Authorization header or NULL */
    const char *api_key;       /* x-api-key header or NULL */
    const char *version;       /* anthropic-version header or NULL */
    json_object *tool_calls;   /* behaviour: answer with [{name, arguments}] (borrowed) or NULL */
    bool bad_tool_args;        /* behaviour: tool-call arguments that are not JSON */
    const char *finish_reason; /* behaviour: "length" / "content_filter", NULL = natural */
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
/* The provider's error body for status; type, message and code may be NULL (defaults). */
char *pb_mock_dialect_error(pb_mock_api api, int status, const char *type, const char *message,
                            const char *code, size_t *len);

#endif
