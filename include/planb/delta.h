/* delta.h -- an answer being streamed: the pieces either dialect sends, put back together.
 *
 * An adapter's stream_event turns each upstream event into calls here (text, a tool-call
 * piece, the finish reason, usage, the end); the accumulator keeps the whole answer for the
 * result and tells the sink of each piece as it comes, so the chain can put it on the job's
 * Redis Stream at once. pb_delta_complete then makes the same pb_completion a non-streamed
 * reply would have given (tool-call arguments must be JSON). No I/O. */
#ifndef PLANB_DELTA_H
#define PLANB_DELTA_H

#include <stdbool.h>
#include <stddef.h>

#include "planb/provider.h"

#define PB_DELTA_MAX_TOOL_CALLS 128 /* tool calls one answer may make (request.c's bound) */
#define PB_DELTA_MAX_BLOCKS     256 /* Anthropic content blocks tracked per answer */

/* Where pieces go as they arrive (any member may be NULL). */
typedef struct pb_delta_sink {
    void (*text)(void *arg, const char *p, size_t n);
    void (*tool)(void *arg, int index, const char *id, const char *name, const char *args,
                 size_t args_len);
    void (*refusal)(void *arg, const char *p, size_t n); /* a piece of a refusal */
    void *arg;
} pb_delta_sink;

/* max_bytes bounds the answer's content (text, refusal, tool ids, names and arguments
 * together): a piece that would pass it is dropped and pb_delta_too_large turns true. */
pb_delta *pb_delta_new(const pb_delta_sink *sink, size_t max_bytes);
void pb_delta_free(pb_delta *d);

/* For the adapters. */
void pb_delta_text(pb_delta *d, const char *p, size_t n);
/* A piece of the model's refusal (OpenAI delta.refusal): kept for the result's message, not
 * a piece of the answer's text (has_content stays false). */
void pb_delta_refusal(pb_delta *d, const char *p, size_t n);
/* A piece of tool call index (id and name with its first piece, else NULL). PB_ERR past
 * PB_DELTA_MAX_TOOL_CALLS. */
int pb_delta_tool(pb_delta *d, int index, const char *id, const char *name, const char *args,
                  size_t args_len);
/* Anthropic: content block `block` is tool call number *index (a new one when it starts). */
int pb_delta_block_tool(pb_delta *d, int block, bool starts, int *index);
/* Tool calls begun so far. */
int pb_delta_tool_count(const pb_delta *d);
void pb_delta_finish_reason(pb_delta *d, const char *normalized);
/* Usage figures; -1 leaves a figure as it was. */
void pb_delta_usage(pb_delta *d, long prompt, long completion, long cached, long reasoning);
void pb_delta_end(pb_delta *d);
/* The reply's id (the first one given is kept; NULL ignored). */
void pb_delta_response_id(pb_delta *d, const char *id);

/* For the chain. */
bool pb_delta_has_content(const pb_delta *d); /* a text or tool piece arrived */
bool pb_delta_ended(const pb_delta *d);       /* the stream said it was complete */
bool pb_delta_too_large(const pb_delta *d);   /* a piece passed max_bytes (and was dropped) */
/* The text so far (NUL-terminated, borrowed), *len its bytes. */
const char *pb_delta_text_so_far(const pb_delta *d, size_t *len);
/* True while the last piece was part of a tool call (a cut there cannot be continued). */
bool pb_delta_in_tool(const pb_delta *d);
/* Moves the whole answer into *out (free with pb_provider_completion_free). PB_ERR (err
 * "BAD_REPLY why") when the stream did not end, a tool call's arguments are not JSON, or it
 * holds no answer: no text, tool call or refusal, and no content_filter stop. */
int pb_delta_complete(pb_delta *d, pb_completion *out, pb_error *err);

#endif
