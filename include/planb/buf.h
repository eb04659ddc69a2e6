/* buf.h -- a growable byte buffer with a hard size limit, for bodies that come from outside.
 *
 * Appending past the limit fails and sets `overflow`; the data stays NUL-terminated. */
#ifndef PLANB_BUF_H
#define PLANB_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pb_buf {
    char *data;    /* NUL-terminated contents (NULL until the first append) */
    size_t len;    /* bytes used, excluding the NUL */
    size_t cap;    /* bytes allocated */
    size_t limit;  /* appends that would exceed this fail */
    bool overflow; /* an append was refused because of limit */
} pb_buf;

/* Starts an empty buffer that will hold at most limit bytes. */
void pb_buf_init(pb_buf *b, size_t limit);
/* Appends n bytes; PB_ERR (and overflow set) when the limit would be passed. */
int pb_buf_append(pb_buf *b, const void *p, size_t n);
/* Empties the buffer but keeps its memory. */
void pb_buf_reset(pb_buf *b);
/* Frees the contents; the struct itself is the caller's. */
void pb_buf_free(pb_buf *b);

#endif
