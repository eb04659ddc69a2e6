/* telemetry.h -- one worker's trace exporter: a bounded queue of encoded spans, sent to the
 * collector over OTLP/HTTP in batches, never in a job's way.
 *
 * Spans are added already encoded (otlp.h); a batch leaves when batch_spans are queued or
 * batch_interval_ms after the first, one request at a time through its own curl multi. A
 * collector that answers 429/5xx or cannot be reached gets the batch again after Retry-After
 * or a growing backoff (a few tries, then it is dropped); what does not fit the queue is
 * dropped at once. Drops and exports are counted for planb_telemetry_spans_*_total. */
#ifndef PLANB_TELEMETRY_H
#define PLANB_TELEMETRY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "planb/config.h"

typedef struct pb_telemetry pb_telemetry;

/* The exporter of a worker (worker_id: service.instance.id), NULL when tracing is off. */
pb_telemetry *pb_telemetry_new(struct event_base *base, const pb_config *cfg,
                               const char *worker_id);
/* Cancels what is in flight and frees the queue (its spans counted as dropped); accepts NULL. */
void pb_telemetry_free(pb_telemetry *t);
/* True when n more spans fit the queue: a job's spans are only built when they do. */
bool pb_telemetry_has_room(const pb_telemetry *t, size_t n);
/* Queues one encoded span; takes data (malloc'd). */
void pb_telemetry_add(pb_telemetry *t, char *data, size_t len);
/* Counts n spans dropped without being built (no room). */
void pb_telemetry_drop(pb_telemetry *t, size_t n);
/* Spans exported and dropped since the last call (the finish counters carry them), and
 * counts given back when a finish had no room for them. */
void pb_telemetry_take_counts(pb_telemetry *t, int64_t *exported, int64_t *dropped);
void pb_telemetry_return_counts(pb_telemetry *t, int64_t exported, int64_t dropped);
/* Sends what is queued now, whatever the batch timer says (drain). */
void pb_telemetry_flush(pb_telemetry *t);
/* Requests outstanding or spans queued: the drain waits for none (bounded by its timeout). */
bool pb_telemetry_busy(const pb_telemetry *t);

#endif
