/* stream.h -- one streamed job's Redis Stream planb:stream:<id>: what its reader sees.
 *
 * Entries, each with a field `type`: `start` (model, source: whose answer follows),
 * `delta` (text), `tool` (index, id, name, arguments: a piece of a tool call), and one
 * `end` (result), added by finish.lua with the stored result. Text and tool pieces are
 * buffered and written with pb_stream_flush: one entry per network read of the upstream,
 * so a chunk is visible as soon as planb has it. Entries go through stream_add.lua: only
 * the run of the job that owns the stream writes there (a job run twice leaves one run),
 * and an entry lost to a reconnect is sent again at the next flush. Every XADD is
 * MAXLEN ~ stream_maxlen, and the key's TTL (stream_ttl_s) is renewed at most once a
 * second; a reader XREAD BLOCKs from 0 or its last id. */
#ifndef PLANB_STREAM_H
#define PLANB_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "planb/config.h"
#include "planb/redis.h"

typedef struct pb_stream pb_stream;

/* A writer for one run of job id on worker worker_id, on r (borrowed: it must outlive the
 * writer's sends). */
pb_stream *pb_stream_new(pb_redis *r, const pb_config *cfg, const char *id, const char *worker_id);
/* Accepts NULL; with replies outstanding the writer is freed at the last of them. */
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
/* Sends entries lost to an outage again (once the connection is back), then what is buffered
 * as one entry (none when nothing is). Called before the finish too, so `end` stays last. */
void pb_stream_flush(pb_stream *s);
/* True once any text or tool piece was flushed: the reader has seen the answer begin. */
bool pb_stream_has_content(const pb_stream *s);
/* The key (for finish.lua's `end` entry); borrowed. */
const char *pb_stream_key(const pb_stream *s);
/* This run's token (for finish.lua: the run that owns the stream stores the result); borrowed. */
const char *pb_stream_run(const pb_stream *s);

#endif
