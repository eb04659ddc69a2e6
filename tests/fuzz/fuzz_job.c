/* fuzz_job.c -- libFuzzer target: any bytes through the job parser/validator and back to JSON.
 *
 * Jobs come from anyone who can LPUSH, so pb_job_parse must reject every
 * malformed, oversized or hostile input with an error, never crash or read out
 * of bounds. A job that parses (content parts, tool calls, every param) is also
 * translated into both dialects' request bodies, hashed into its cache key and
 * rendered as a result, the other paths its strings take. Seed corpus:
 * tests/fixtures/jobs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_config.h"
#include "planb/cache.h"
#include "planb/config.h"
#include "planb/job.h"
#include "planb/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const pb_config *cfg = fuzz_config();
    /* An exact-size copy: a read past the end is an ASan report, not luck. */
    char *raw = malloc(size ? size : 1);
    if (size)
        memcpy(raw, data, size);
    pb_request *req = NULL;
    char *bad_id = NULL;
    pb_error err = {0};
    if (pb_job_parse(raw, size, cfg, &req, &bad_id, &err) == PB_OK) {
        pb_result res = {.id = req->id,
                         .status = PB_STATUS_OK,
                         .source = PB_SOURCE_PRIMARY,
                         .content = req->messages[0].content,
                         .model = req->models[0],
                         .prompt_tokens = -1,
                         .completion_tokens = -1,
                         .queued_ms = -1,
                         .cache_age_s = -1,
                         .meta = req->meta};
        size_t len = 0;
        free(pb_job_result_to_json(&res, cfg, &len));
        const pb_provider_ops *dialects[] = {&pb_provider_openai, &pb_provider_anthropic};
        for (size_t i = 0; i < 2; i++) {
            pb_http_request *hr = calloc(1, sizeof(*hr));
            if (dialects[i]->build_request(&cfg->providers[0], &cfg->models[0], req, hr, &err) ==
                    PB_OK &&
                (hr->body == NULL || strlen(hr->body) != hr->body_len))
                abort(); /* a body is one JSON text */
            pb_http_request_free(hr);
            char names[PB_PROVIDER_DROPPED_MAX][PB_PROVIDER_PARAM_LEN];
            (void)dialects[i]->dropped(req, names, PB_PROVIDER_DROPPED_MAX);
            (void)dialects[i]->refuses(req);
        }
        char key[PB_CACHE_KEY_LEN + 1];
        pb_cache_key(req, 1u << PB_PROVIDER_OPENAI, key);
        pb_request_free(req);
    }
    free(bad_id);
    free(raw);
    return 0;
}
