/* eventstream.h -- AWS application/vnd.amazon.eventstream frames: an incremental, bounded
 * decoder (Bedrock's streamed answers) and an encoder (planb-mock, tests).
 *
 * A frame: total length, headers length and a CRC32 of those 8 bytes (the prelude); the
 * headers (name length byte, name, type byte, typed value); the payload; a CRC32 of all that
 * precedes it. Pure: bytes in, messages out to a callback; no I/O. */
#ifndef PLANB_EVENTSTREAM_H
#define PLANB_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "planb/buf.h"
#include "planb/core.h"

#define PB_EVENTSTREAM_MAX_MESSAGE_BYTES (16u << 20)  /* AWS's own limit on a message */
#define PB_EVENTSTREAM_MAX_HEADERS_BYTES (128u << 10) /* AWS's own limit on its headers */

/* Header value types, as numbered on the wire. */
enum {
    PB_ES_TRUE = 0,      /* no value bytes */
    PB_ES_FALSE = 1,     /* no value bytes */
    PB_ES_BYTE = 2,      /* int_value, 1 byte */
    PB_ES_SHORT = 3,     /* int_value, 2 bytes */
    PB_ES_INT = 4,       /* int_value, 4 bytes */
    PB_ES_LONG = 5,      /* int_value, 8 bytes */
    PB_ES_BYTES = 6,     /* value/value_len, 2-byte length */
    PB_ES_STRING = 7,    /* value/value_len (UTF-8), 2-byte length */
    PB_ES_TIMESTAMP = 8, /* int_value, ms since the epoch, 8 bytes */
    PB_ES_UUID = 9,      /* value, 16 bytes */
};

typedef struct pb_eventstream_header {
    const char *name;  /* NUL-terminated */
    uint8_t type;      /* PB_ES_* */
    const char *value; /* BYTES/STRING/UUID: the bytes, NUL-terminated when decoded */
    size_t value_len;  /* their length */
    int64_t int_value; /* the integer types, the timestamp; 1/0 for TRUE/FALSE */
} pb_eventstream_header;

typedef struct pb_eventstream_message {
    const pb_eventstream_header *headers; /* all headers, in frame order */
    size_t n_headers;                     /* their count */
    const char *message_type;     /* ":message-type" string ("event", "exception"), or NULL */
    const char *event_type;       /* ":event-type" string, or NULL */
    const char *exception_type;   /* ":exception-type" string, or NULL */
    const char *content_type;     /* ":content-type" string, or NULL */
    const unsigned char *payload; /* the payload bytes (not NUL-terminated) */
    size_t payload_len;           /* their count */
} pb_eventstream_message;

/* Called once per complete, checked message; everything in m is borrowed for the call only.
 * Return PB_OK to go on, PB_ERR to stop the decoder (pb_eventstream_feed then fails). */
typedef int (*pb_eventstream_on_message)(void *ud, const pb_eventstream_message *m);

typedef struct pb_eventstream_decoder pb_eventstream_decoder;

/* A decoder taking messages up to max_message_bytes (0 or over the AWS limit = that limit). */
pb_eventstream_decoder *pb_eventstream_decoder_new(size_t max_message_bytes,
                                                   pb_eventstream_on_message on_message, void *ud);
void pb_eventstream_decoder_free(pb_eventstream_decoder *d);
/* Feeds n bytes (any split); calls on_message for each message they complete. PB_ERR with err
 * ("BAD_EVENTSTREAM ...": a CRC, a length over a bound, malformed headers) or when the
 * callback stopped; the decoder then refuses all further input. */
int pb_eventstream_feed(pb_eventstream_decoder *d, const void *p, size_t n, pb_error *err);
/* Bytes held of an incomplete message (non-zero at the end of a body = a truncated stream). */
size_t pb_eventstream_pending(const pb_eventstream_decoder *d);

/* Appends one frame to out. PB_ERR (nothing appended) when a name is empty or over 255
 * bytes, a value over 65535, a type unknown, the frame over the bounds above, or out's limit
 * would be passed. */
int pb_eventstream_encode(pb_buf *out, const pb_eventstream_header *headers, size_t n_headers,
                          const void *payload, size_t payload_len);

#endif
