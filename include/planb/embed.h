/* embed.h -- question text -> unit vector (local hashed features or an HTTP embeddings API),
 * and the guard that rejects near-miss pairs a cosine cannot tell apart.
 *
 * The local embedder is pure and deterministic across hosts (integer hashing,
 * fixed feature order), so every worker puts the same question in the same place. */
#ifndef PLANB_EMBED_H
#define PLANB_EMBED_H

#include <stdbool.h>
#include <stddef.h>

#include "planb/config.h"
#include "planb/http.h"

#define PB_EMBED_LOCAL_DIM 512  /* local vectors: int8-quantised in Redis, so 512 bytes each */
#define PB_EMBED_MAX_DIM   4096 /* http vectors longer than this are refused (OpenAI max 3072) */

typedef struct pb_embedder pb_embedder;
typedef struct pb_embed_call pb_embed_call;

/* vec is a unit vector of dim floats, borrowed for the call; NULL when embedding failed. */
typedef void (*pb_embed_fn)(const float *vec, size_t dim, void *arg);

/* The embedder cfg->semantic names; http calls go through http (borrowed, may be NULL for
 * local). */
pb_embedder *pb_embed_new(const pb_config *cfg, pb_http *http);
void pb_embed_free(pb_embedder *e);
/* Names the vector space ("local-v1-512", "http:<model>"): part of every index scope. */
const char *pb_embed_space_id(const pb_embedder *e);
/* Embeds text. Local: done runs before this returns, which returns NULL. Http: done runs
 * later from the loop (after at most timeout_ms); the result is a cancel handle. */
pb_embed_call *pb_embed_start(pb_embedder *e, const char *text, int timeout_ms, pb_embed_fn done,
                              void *arg);
/* Stops a pending http embed; its callback never runs. */
void pb_embed_cancel(pb_embed_call *c);

/* The local embedding of text into out[PB_EMBED_LOCAL_DIM] (unit length, or all zero when
 * text has no words). */
void pb_embed_local(const char *text, float *out);
/* Parses an OpenAI /v1/embeddings reply into a new unit vector (caller frees); NULL when the
 * body holds no usable vector. */
float *pb_embed_parse_reply(const char *body, size_t len, size_t *dim);
/* True when a and b may share an answer; false (with *why "negation", "number", "entity",
 * "opposite" or "order") when they differ in a way cosine similarity misses. */
bool pb_embed_guard(const char *a, const char *b, const char **why);

#endif
