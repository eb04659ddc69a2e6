/* buf.c -- bounded growable byte buffer (reply bodies, request bodies).
 *
 * Every size that comes from outside goes through one of these, so one limit
 * check covers upstream replies of any length. */
#include "planb/buf.h"

#include <stdlib.h>
#include <string.h>

#include "planb/core.h"

void
pb_buf_init(pb_buf *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

int
pb_buf_append(pb_buf *b, const void *p, size_t n)
{
    if (n > b->limit || b->len > b->limit - n) {
        b->overflow = true;
        return PB_ERR;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = pb_xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PB_OK;
}

void
pb_buf_reset(pb_buf *b)
{
    b->len = 0;
    b->overflow = false;
    if (b->data)
        b->data[0] = '\0';
}

void
pb_buf_free(pb_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
