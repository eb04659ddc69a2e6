/* fuzz_eventstream.c -- libFuzzer target: any bytes as a Bedrock event stream.
 *
 * The stream comes from the network, so the decoder must answer every corrupt, truncated or
 * hostile frame with an error, never crash or buffer past its bound. The first byte picks
 * the chunk size the rest is fed in (splits are where incremental decoders break); every
 * message delivered is encoded again and must decode to the same headers and payload. Seed
 * corpus: tests/fixtures/eventstream (AWS's vectors and a ConverseStream-shaped stream). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "planb/eventstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_check {
    const pb_eventstream_message *want; /* the message re-encoded */
    int seen;                           /* messages its decoding delivered */
} fuzz_check;

static int
fuzz_on_again(void *ud, const pb_eventstream_message *m)
{
    fuzz_check *c = ud;
    const pb_eventstream_message *w = c->want;
    c->seen++;
    if (m->n_headers != w->n_headers || m->payload_len != w->payload_len ||
        memcmp(m->payload, w->payload, m->payload_len) != 0)
        abort();
    for (size_t i = 0; i < m->n_headers; i++)
        if (strcmp(m->headers[i].name, w->headers[i].name) != 0 ||
            m->headers[i].type != w->headers[i].type ||
            m->headers[i].int_value != w->headers[i].int_value ||
            m->headers[i].value_len != w->headers[i].value_len)
            abort();
    return PB_OK;
}

static int
fuzz_on_message(void *ud, const pb_eventstream_message *m)
{
    (void)ud;
    if (m->payload_len > PB_EVENTSTREAM_MAX_MESSAGE_BYTES)
        abort();
    pb_buf b;
    pb_buf_init(&b, PB_EVENTSTREAM_MAX_MESSAGE_BYTES);
    if (pb_eventstream_encode(&b, m->headers, m->n_headers, m->payload, m->payload_len) != PB_OK)
        abort(); /* a frame that decoded must encode */
    fuzz_check c = {.want = m};
    pb_eventstream_decoder *d = pb_eventstream_decoder_new(0, fuzz_on_again, &c);
    if (pb_eventstream_feed(d, b.data, b.len, NULL) != PB_OK || c.seen != 1 ||
        pb_eventstream_pending(d) != 0)
        abort();
    pb_eventstream_decoder_free(d);
    pb_buf_free(&b);
    return PB_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] + 1;
    data++;
    size--;
    pb_eventstream_decoder *d = pb_eventstream_decoder_new(1 << 20, fuzz_on_message, NULL);
    for (size_t at = 0; at < size; at += chunk) {
        size_t n = size - at < chunk ? size - at : chunk;
        if (pb_eventstream_feed(d, data + at, n, NULL) != PB_OK)
            break;
        if (pb_eventstream_pending(d) > (1 << 20))
            abort();
    }
    pb_eventstream_decoder_free(d);
    return 0;
}
