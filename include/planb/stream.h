/* stream.h -- one streamed job's Redis Stream planb:stream:<id>: what its reader sees.
 *
 * Entries, each with a field `type`: `start` (model, source: whose answer follows),
 * `delta` (text), `tool` (index, id, name, arguments: a piece of a tool call), and one
 * `end` (result), added by finish.lua with the stored result. Text and tool pieces are
 * buffered and written with pb_stream_flush: one XADD per network read of the upstream,
 * so a chunk is visible as soon as planb has it. Every XADD is MAXLEN ~ stream_maxlen, and
 * the key's TTL (stream_ttl_s) is renewed at most once a second; a reader XREAD BLOCKs from
 * 0 or its last id. */
#ifndef PLANB_STREAM_H
#define PLANB_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "planb/config.h"
#include "planb/redis.h"

typedef struct pb_stream pb_stream;

/* A writer for job id's stream on r (borrowed: it must outlive the writer's sends). */
pb_stream *pb_stream_new(pb_redis *r, const pb_config *cfg, const char *id);
void pb_stream_free(pb_stream *s);
/* A `start` entry: model (config name, or NULL) and source ("primary", "fallback", "cache",
 * ...) of the answer that follows; continued marks a backup continuing a cut answer. */
void pb_stream_start(pb_stream *s, const char *model, const char *source, bool continued);
/* Buffers answer text for the next flush. */
void pb_stream_text(pb_stream *s, const char *p, size_t n);
/* Buffers a piece of tool call number index (id and name come with its first piece, else
 * NULL; args is a piece of its arguments JSON text). */
void pb_stream_tool(pb_stream *s, int index, const char *id, const char *name, const char *args,
                    size_t args_len);
/* Sends what is buffered as one XADD (no-op when nothing is). */
void pb_stream_flush(pb_stream *s);
/* True once any text or tool piece was flushed: the reader has seen the answer begin. */
bool pb_stream_has_content(const pb_stream *s);
/* The key (for finish.lua's `end` entry); borrowed. */
const char *pb_stream_key(const pb_stream *s);

#endif
