/* model.h -- planb-mock's behaviours and per-model table (private to the mock).
 *
 * A behaviour says how the mock answers requests naming a model; the table
 * maps model names to their behaviour, counters and last request. */
#ifndef PLANB_MOCK_MODEL_H
#define PLANB_MOCK_MODEL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "planb/core.h"

typedef enum {
    PB_MOCK_OK,        /* a valid reply (streamed when the request asks) */
    PB_MOCK_STATUS,    /* an HTTP error status with a provider-style error body */
    PB_MOCK_HANG,      /* never answers; held until the client goes away */
    PB_MOCK_DRIP,      /* a valid reply (or stream) trickled out as a chunked body */
    PB_MOCK_RESET,     /* TCP reset without any response */
    PB_MOCK_TRUNCATED, /* 200 with the first half of a valid reply (or stream) */
    PB_MOCK_HTML,      /* 200 text/html proxy error page */
    PB_MOCK_MISSING,   /* 200 valid JSON without the answer */
    PB_MOCK_EMPTY,     /* 200 well-formed reply whose answer is "" (a stream without deltas) */
    PB_MOCK_OVERSIZED  /* 200 valid reply padded to `bytes` */
} pb_mock_mode;

/* What goes wrong in a streamed answer ("stream": true in modes ok and empty). The fault
 * comes after fault_after content events (text deltas, tool-call pieces), or just after
 * the last one when the answer has fewer; the events before it are the normal stream. */
typedef enum {
    PB_MOCK_STREAM_NONE,         /* the whole stream */
    PB_MOCK_STREAM_ERROR_BEFORE, /* 200 and headers, then an error event first of all, close */
    PB_MOCK_STREAM_ERROR_MID,    /* the dialect's error event, then close */
    PB_MOCK_STREAM_RESET_MID,    /* abortive TCP close (RST) */
    PB_MOCK_STREAM_STALL,        /* nothing more (Anthropic: pings if stall_pings), kept open */
    PB_MOCK_STREAM_MALFORMED,    /* one event whose data is not JSON, then the rest */
    PB_MOCK_STREAM_NO_DONE       /* the whole stream but its [DONE] / message_stop */
} pb_mock_stream_fault;

typedef struct pb_mock_behaviour {
    pb_mock_mode mode;       /* what to answer once fail_first is spent */
    int status;              /* HTTP status for PB_MOCK_STATUS (default 500) */
    char *error_type;        /* error body type; NULL = the status's default */
    char *error_message;     /* error body message; NULL = a generic one */
    char *error_code;        /* OpenAI error.code; NULL = null */
    char *retry_after;       /* Retry-After header on error answers; NULL = none */
    char *reply;             /* answer text; NULL = "echo: <last user message>" */
    int latency_ms;          /* delay before answering (all modes but hang; a stream's first
                                byte) */
    int drip_bytes;          /* PB_MOCK_DRIP: bytes per tick (default 1) */
    int drip_interval_ms;    /* PB_MOCK_DRIP: tick period (default 100) */
    size_t bytes;            /* PB_MOCK_OVERSIZED: body size (default 8 MiB) */
    long fail_first;         /* this many requests answer fail_status first */
    int fail_status;         /* status of those answers (default 503) */
    double fail_rate;        /* then this share of requests, drawn at random, answers fail_status */
    double slow_rate;        /* this share of answers, drawn at random, waits slow_ms ... */
    int slow_ms;             /* ... instead of latency_ms (a latency distribution with a tail) */
    json_object *tool_calls; /* [{"name", "arguments": {...}}]: answer with these tool calls
                                unless the request ends with tool results; NULL = text */
    bool bad_tool_args;      /* tool-call arguments that are not JSON (OpenAI dialect) */
    char *finish_reason;     /* "length" or "content_filter" reported on ok answers; NULL = the
                                natural one (stop, or tool_calls) */
    char *refusal;           /* OpenAI answers refuse with this text (message.refusal, streamed as
                                delta.refusal pieces) instead of answering; NULL = none */
    int chunk_interval_ms;   /* streams: delay between events after the first (default 0) */
    pb_mock_stream_fault stream_fault; /* streams: the fault (default none) */
    long fault_after;                  /* streams: content events before it (default 2) */
    bool stall_pings;                  /* stall: Anthropic pings every chunk_interval_ms (1 s if
                                          that is 0) while stalled; OpenAI has no pings */
} pb_mock_behaviour;

/* Parses a behaviour object (borrowed); NULL with err set on an unknown mode or a bad field. */
pb_mock_behaviour *pb_mock_behaviour_parse(json_object *obj, pb_error *err);
void pb_mock_behaviour_free(pb_mock_behaviour *b);

typedef struct pb_mock_model {
    char *name;                   /* model name as sent in requests */
    pb_mock_behaviour *behaviour; /* owned; NULL = the table's default */
    long fail_seen;               /* fail_first answers given since the behaviour was set */
    long requests;                /* every request naming this model */
    long ok;                      /* answered with a good 200 reply */
    long failed;                  /* any other answer (faults, injected errors) */
    long invalid;                 /* rejected by validation */
    json_object *last;            /* {"path","headers","body"} of the latest request, or NULL */
    struct pb_mock_model *next;   /* hash chain */
} pb_mock_model;

typedef struct pb_mock_table pb_mock_table;

/* Builds the table from a config {"default": {...}, "models": {...}} (borrowed, may be NULL). */
pb_mock_table *pb_mock_table_new(json_object *config, pb_error *err);
void pb_mock_table_free(pb_mock_table *t);
/* The entry for name; created when create is set (NULL if the table is full). */
pb_mock_model *pb_mock_table_get(pb_mock_table *t, const char *name, bool create);
/* The behaviour that applies to m (its own or the default). Borrowed. */
const pb_mock_behaviour *pb_mock_table_behaviour(const pb_mock_table *t, const pb_mock_model *m);
/* Replaces name's behaviour (NULL name = the default), resetting fail_first; takes b. */
void pb_mock_table_set(pb_mock_table *t, const char *name, pb_mock_behaviour *b);
/* Counters to zero, last requests dropped, behaviours back to the config's. */
void pb_mock_table_reset(pb_mock_table *t);
/* Counts one request on any API endpoint. */
void pb_mock_table_count(pb_mock_table *t);
/* {"total":N,"pending":P,"models":{...}}; caller puts. */
json_object *pb_mock_table_stats(const pb_mock_table *t, long pending);

#endif
