/* fuzz_wire.c -- libFuzzer target: any bytes as a front-door request body, and as a result.
 *
 * Bodies come from anyone who can reach http.listen, so pb_wire_job_from_body must answer
 * every malformed or hostile body with an OpenAI error, never crash; an accepted body's job
 * must parse again as a job. The same bytes also go through the answer side (a result made
 * into a chat.completion and into a stream's end), which must survive a result that is not
 * one. Seed corpus: tests/fixtures/jobs (job bodies are close to request bodies). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_config.h"
#include "planb/buf.h"
#include "planb/config.h"
#include "planb/job.h"
#include "planb/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const pb_config *cfg = fuzz_config();
    /* The body as evhttp hands it over: exact size, no terminator. */
    char *raw = malloc(size ? size : 1);
    if (size)
        memcpy(raw, data, size);
    pb_wire_opts opts = {.id = "pb-fuzz", .critical = -1, .cache = "skip", .tenant = "t"};
    pb_wire_job job;
    pb_wire_error werr;
    if (pb_wire_job_from_body(raw, size, cfg, &opts, &job, &werr) == PB_OK) {
        pb_request *req = NULL;
        char *bad_id = NULL;
        pb_error err = {0};
        if (pb_job_parse(job.json, job.len, cfg, &req, &bad_id, &err) != PB_OK)
            abort(); /* the front accepted what a worker would refuse */
        pb_request_free(req);
        pb_wire_job_free(&job);
    } else {
        size_t n = 0;
        free(pb_wire_error_json(&werr, &n));
    }
    free(raw);

    /* Results are NUL-terminated strings from Redis. */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    pb_wire_meta meta;
    if (pb_wire_completion(text, size, "m1", 0, &status, &body, &len, &meta) == PB_OK)
        free(body);
    char id[64];
    pb_wire_result_id(text, size, id, sizeof(id));
    pb_wire_chunker c = {.created = 0};
    pb_buf out;
    pb_buf_init(&out, 1u << 20);
    pb_wire_chunk_text(&c, text, size, &out);
    pb_wire_chunk_tool(&c, 0, text, "n", text, &out);
    pb_wire_chunk_end(&c, text, size, true, &out);
    pb_buf_free(&out);
    free(text);
    return 0;
}
