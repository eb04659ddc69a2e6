/* fuzz_provider.c -- libFuzzer target: any bytes as an upstream reply to one provider adapter.
 *
 * Built once per adapter (FUZZ_PROVIDER = PB_PROVIDER_OPENAI, _ANTHROPIC, _GEMINI or
 * _BEDROCK). An
 * upstream (or anything between us and it) can answer anything: parse_response
 * and classify must turn every body into an answer or an error: text, tool calls
 * (OpenAI tool_calls, Anthropic tool_use blocks) or, for a request with a
 * response_format, the forced tool's input. Each body is parsed twice, for a plain
 * request and for one with tools and a json_schema response_format. The first two
 * input bytes pick the HTTP status for classify. An adapter whose streams are AWS event-stream
 * frames (Bedrock) also gets the bytes as a streamed body: frames decoded, each message to
 * stream_event, the answer completed, as the chain does. Seed corpus:
 * tests/fixtures/replies/<provider>. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "planb/delta.h"
#include "planb/eventstream.h"
#include "planb/provider.h"
#include "planb/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The chain's event-stream callback, minus the Redis stream. */
static int
fuzz_on_message(void *arg, const pb_eventstream_message *m)
{
    pb_error err = {0};
    const char *name = m->exception_type ? m->exception_type : m->event_type ? m->event_type : "";
    return pb_provider_for(FUZZ_PROVIDER)
        ->stream_event(arg, name, (const char *)m->payload, m->payload_len, &err);
}

/* data as a streamed body, in two pieces split by its first byte. */
static void
fuzz_stream(const uint8_t *data, size_t size)
{
    pb_delta *d = pb_delta_new(NULL, 1 << 20);
    pb_eventstream_decoder *dec = pb_eventstream_decoder_new(1 << 20, fuzz_on_message, d);
    size_t cut = size ? data[0] % (size + 1) : 0;
    pb_error err = {0};
    if (pb_eventstream_feed(dec, data, cut, &err) == PB_OK &&
        pb_eventstream_feed(dec, data + cut, size - cut, &err) == PB_OK) {
        pb_completion c = {0};
        if (pb_delta_complete(d, &c, NULL) == PB_OK &&
            (c.content == NULL || c.finish_reason == NULL))
            abort();
        pb_provider_completion_free(&c);
    }
    pb_eventstream_decoder_free(dec);
    pb_delta_free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const pb_provider_ops *ops = pb_provider_for(FUZZ_PROVIDER);
    char *body = malloc(size ? size : 1);
    if (size)
        memcpy(body, data, size);
    static pb_request *structured;
    if (structured == NULL) {
        structured = pb_xcalloc(1, sizeof(*structured));
        structured->params = json_tokener_parse(
            "{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"f\"}}}");
    }
    const pb_request *reqs[] = {NULL, structured};
    for (size_t i = 0; i < 2; i++) {
        pb_completion c = {0};
        pb_error err = {0};
        if (ops->parse_response(body, size, reqs[i], &c, &err) != PB_OK)
            continue;
        /* The contract: an accepted reply has an answer, and tool calls are valid JSON text. */
        if (c.content == NULL || c.finish_reason == NULL ||
            (!c.content[0] && c.tool_calls == NULL && c.refusal == NULL &&
             strcmp(c.finish_reason, "content_filter") != 0) ||
            (c.tool_calls != NULL && !pb_utf8_is_text(c.tool_calls, strlen(c.tool_calls))))
            abort();
        json_object *calls = c.tool_calls ? json_tokener_parse(c.tool_calls) : NULL;
        if (c.tool_calls != NULL && !json_object_is_type(calls, json_type_array))
            abort();
        json_object_put(calls);
        pb_provider_completion_free(&c);
    }
    long status = size >= 2 ? 100 + (((long)data[0] << 8 | data[1]) % 500) : 500;
    (void)ops->classify(status, body, size);
    if (ops->eventstream)
        fuzz_stream(data, size);
    free(body);
    return 0;
}
