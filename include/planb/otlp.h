/* otlp.h -- OpenTelemetry spans and their OTLP/HTTP encodings (JSON and protobuf).
 *
 * Pure: a span is built as its OTLP JSON form (json-c), then encoded once, as JSON text or as
 * a protobuf Span message, so the exporter's queue holds bytes, not objects; a batch wraps
 * encoded spans in one ExportTraceServiceRequest. Field names and numbers are those of
 * opentelemetry-proto's trace/v1 and common/v1 messages. */
#ifndef PLANB_OTLP_H
#define PLANB_OTLP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { PB_SPAN_INTERNAL = 1, PB_SPAN_SERVER = 2, PB_SPAN_CLIENT = 3, PB_SPAN_CONSUMER = 5 };

typedef struct pb_span pb_span;

/* A span of trace_id, with span_id and parent (NULL: a root), kind PB_SPAN_*, times in ns
 * since the epoch. */
pb_span *pb_span_new(const uint8_t trace_id[16], const uint8_t span_id[8], const uint8_t *parent,
                     const char *name, int kind, int64_t start_ns, int64_t end_ns);
void pb_span_free(pb_span *s);
/* The span's attribute list, and a new event's (name at t_ns), for the pb_otlp_* setters. */
json_object *pb_span_attrs(pb_span *s);
json_object *pb_span_event(pb_span *s, const char *name, int64_t t_ns);
/* Status ERROR with message (or OK when !error: set only when an outcome is known). */
void pb_span_status(pb_span *s, bool error, const char *message);
void pb_span_tracestate(pb_span *s, const char *tracestate);

/* Attribute setters on a list from pb_span_attrs / pb_span_event; NULL values are skipped. */
void pb_otlp_str(json_object *attrs, const char *key, const char *v);
void pb_otlp_strn(json_object *attrs, const char *key, const char *v, size_t n);
void pb_otlp_int(json_object *attrs, const char *key, int64_t v);
void pb_otlp_double(json_object *attrs, const char *key, double v);
void pb_otlp_bool(json_object *attrs, const char *key, bool v);
void pb_otlp_strs(json_object *attrs, const char *key, const char *const *v, size_t n);

/* The span encoded as one OTLP JSON span object or protobuf Span message; caller frees. */
char *pb_span_encode(const pb_span *s, bool protobuf, size_t *len);

typedef struct pb_otlp_piece {
    const char *data; /* one pb_span_encode result */
    size_t len;
} pb_otlp_piece;

/* An ExportTraceServiceRequest of n encoded spans under one resource (attrs: a list built
 * with the pb_otlp_* setters) and scope (name, version). Caller frees. */
char *pb_otlp_request(bool protobuf, json_object *resource_attrs, const char *scope_name,
                      const char *scope_version, const pb_otlp_piece *spans, size_t n, size_t *len);

#endif
