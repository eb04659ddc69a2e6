/* otlp.h -- OpenTelemetry spans written straight into their OTLP/HTTP encoding (JSON or
 * protobuf).
 *
 * Pure. A span is written as it is built, in the encoding the exporter sends (no object
 * tree: building one per attribute cost more than the job), then taken as bytes into the
 * exporter's queue; a batch wraps encoded spans in one ExportTraceServiceRequest. Field
 * names and numbers are those of opentelemetry-proto's trace/v1 and common/v1 messages. */
#ifndef PLANB_OTLP_H
#define PLANB_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/buf.h"

enum { PB_SPAN_INTERNAL = 1, PB_SPAN_SERVER = 2, PB_SPAN_CLIENT = 3, PB_SPAN_CONSUMER = 5 };

/* A list of attributes (a span's, or the resource's) being written. */
typedef struct pb_otlp_attrs {
    pb_buf buf;    /* the encoded KeyValues */
    bool protobuf; /* the encoding */
    size_t n;      /* attributes written */
} pb_otlp_attrs;

void pb_otlp_attrs_init(pb_otlp_attrs *a, bool protobuf);
void pb_otlp_attrs_free(pb_otlp_attrs *a);
/* Attribute setters; a NULL string value is skipped. */
void pb_otlp_str(pb_otlp_attrs *a, const char *key, const char *v);
void pb_otlp_strn(pb_otlp_attrs *a, const char *key, const char *v, size_t n);
void pb_otlp_int(pb_otlp_attrs *a, const char *key, int64_t v);
void pb_otlp_double(pb_otlp_attrs *a, const char *key, double v);
void pb_otlp_bool(pb_otlp_attrs *a, const char *key, bool v);
void pb_otlp_strs(pb_otlp_attrs *a, const char *key, const char *const *v, size_t n);

typedef struct pb_span pb_span;

/* A span of trace_id, with span_id and parent (NULL: a root), kind PB_SPAN_*, times in ns
 * since the epoch, encoded as protobuf or JSON. */
pb_span *pb_span_new(bool protobuf, const uint8_t trace_id[16], const uint8_t span_id[8],
                     const uint8_t *parent, const char *name, int kind, int64_t start_ns,
                     int64_t end_ns);
void pb_span_free(pb_span *s);
/* The span's attributes, for the pb_otlp_* setters. */
pb_otlp_attrs *pb_span_attrs(pb_span *s);
/* An event name at t_ns with one attribute (key NULL: none): text, or value when text is
 * NULL. */
void pb_span_event(pb_span *s, const char *name, int64_t t_ns, const char *key, const char *text,
                   int64_t value);
/* Status ERROR with message, or OK (set only when an outcome is known). */
void pb_span_status(pb_span *s, bool error, const char *message);
void pb_span_tracestate(pb_span *s, const char *tracestate);
/* The whole span: a JSON span object or a protobuf Span message. Frees s; caller frees. */
char *pb_span_finish(pb_span *s, size_t *len);

typedef struct pb_otlp_piece {
    const char *data; /* one pb_span_finish result */
    size_t len;
} pb_otlp_piece;

/* An ExportTraceServiceRequest of n encoded spans under one resource (its attributes in the
 * same encoding) and scope (name, version). Caller frees. */
char *pb_otlp_request(bool protobuf, const pb_otlp_attrs *resource, const char *scope_name,
                      const char *scope_version, const pb_otlp_piece *spans, size_t n, size_t *len);

#endif
