/* fuzz_provider.c -- libFuzzer target: any bytes as an upstream reply to one provider adapter.
 *
 * Built once per adapter (FUZZ_PROVIDER = PB_PROVIDER_OPENAI or _ANTHROPIC). An
 * upstream (or anything between us and it) can answer anything: parse_response
 * and classify must turn every body into an answer or an error. The first two
 * input bytes pick the HTTP status for classify. Seed corpus:
 * tests/fixtures/replies/<provider>. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "planb/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const pb_provider_ops *ops = pb_provider_for(FUZZ_PROVIDER);
    char *body = malloc(size ? size : 1);
    if (size)
        memcpy(body, data, size);
    pb_completion c = {0};
    pb_error err = {0};
    if (ops->parse_response(body, size, NULL, &c, &err) == PB_OK && (c.content == NULL || !c.content[0]))
        abort(); /* the contract: an accepted reply has a non-empty answer */
    pb_provider_completion_free(&c);
    long status = size >= 2 ? 100 + (((long)data[0] << 8 | data[1]) % 500) : 500;
    (void)ops->classify(status, body, size);
    free(body);
    return 0;
}
