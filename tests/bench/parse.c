/* parse.c (bench_parse) -- a worker's CPU per job outside I/O, plain text against tool calls.
 *
 * In one process, no servers: for bench_jobs' plain jobs and its tool-calling mix (a first
 * turn with params.tools, a second with the assistant's tool_calls and the tool's result),
 * times each stage a worker runs per job: pb_job_parse (tokenize + validate), the OpenAI
 * adapter's build_request (the body serialized), its parse_response (a text reply for plain
 * jobs and second turns, a tool_calls reply for first turns) and the frees. Prints the mean
 * microseconds of each stage per kind and the ratio of the totals: where bench_jobs'
 * tool-calling mix spends its extra CPU, without the mock, Redis or the scheduler in it.
 *   bench_parse [--quick] [--jobs N]   (N per kind, default 200000; 20000 with --quick) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "planb/config.h"
#include "planb/http.h"
#include "planb/job.h"
#include "planb/provider.h"
#include "planb/request.h"
#include "th_bench.h"

#define PARSE_CONFIG                                                                               \
    "{\"redis\": {\"url\": \"redis://127.0.0.1:6379/0\"},"                                         \
    " \"providers\": {\"mock\": {\"type\": \"openai\", \"base_url\": \"http://127.0.0.1:9/v1\"}}," \
    " \"models\": {\"m1\": {\"provider\": \"mock\"}},"                                             \
    " \"routes\": {\"default\": {\"chain\": [\"m1\"]}}}"

#define PARSE_REPLY_HEAD                                                                           \
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m1\","        \
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
#define PARSE_REPLY_USAGE                                                                          \
    "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17}}"

static const char parse_text_reply[] =
    PARSE_REPLY_HEAD "\"content\":\"echo: the answer to the question\"},\"finish_reason\":"
                     "\"stop\"}]," PARSE_REPLY_USAGE;
static const char parse_tool_reply[] =
    PARSE_REPLY_HEAD "\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
                     "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":"
                     "\\\"Paris\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]," PARSE_REPLY_USAGE;

static double
parse_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

typedef struct parse_stages {
    double parse, build, reply, free, bytes;
} parse_stages;

/* Runs n jobs of one kind through the stages; false when a stage fails (a bug). */
static bool
parse_run(const pb_config *cfg, bool tools, int n, parse_stages *out)
{
    const pb_provider_ops *ops = pb_provider_for(PB_PROVIDER_OPENAI);
    const char *cache_mode = "skip";
    char job[4096];
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < n; i++) {
        (tools ? th_tool_job : th_plain_job)(job, sizeof(job), tools ? "t" : "p", i, &cache_mode);
        size_t len = strlen(job);
        const char *reply = tools && i % 2 == 0 ? parse_tool_reply : parse_text_reply;
        pb_error err = {0};
        pb_request *req = NULL;
        char *bad_id = NULL;
        pb_completion c;
        pb_http_request *hr = pb_xcalloc(1, sizeof(*hr));
        double t0 = parse_now_us();
        int rc = pb_job_parse(job, len, cfg, &req, &bad_id, &err);
        double t1 = parse_now_us();
        rc = rc == PB_OK ? ops->build_request(&cfg->providers[0], &cfg->models[0], req, hr, &err)
                         : rc;
        double t2 = parse_now_us();
        rc = rc == PB_OK ? ops->parse_response(reply, strlen(reply), req, &c, &err) : rc;
        double t3 = parse_now_us();
        if (rc != PB_OK) {
            fprintf(stderr, "bench_parse: %s job %d: %s\n", tools ? "tools" : "plain", i, err.msg);
            free(bad_id);
            pb_request_free(req);
            pb_http_request_free(hr);
            return false;
        }
        pb_provider_completion_free(&c);
        pb_http_request_free(hr);
        pb_request_free(req);
        double t4 = parse_now_us();
        out->parse += t1 - t0;
        out->build += t2 - t1;
        out->reply += t3 - t2;
        out->free += t4 - t3;
        out->bytes += (double)len;
    }
    out->parse /= n;
    out->build /= n;
    out->reply /= n;
    out->free /= n;
    out->bytes /= n;
    return true;
}

static double
parse_total(const parse_stages *s)
{
    return s->parse + s->build + s->reply + s->free;
}

int
main(int argc, char **argv)
{
    int n = 200000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            n = 20000;
        else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
    }
    if (n < 2)
        n = 2;
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(PARSE_CONFIG, &err);
    if (cfg == NULL) {
        fprintf(stderr, "bench_parse: config: %s\n", err.msg);
        return 1;
    }
    parse_stages plain, tools;
    /* A warm-up round of each, then the measured ones. */
    if (!parse_run(cfg, false, n / 10 + 1, &plain) || !parse_run(cfg, true, n / 10 + 1, &tools) ||
        !parse_run(cfg, false, n, &plain) || !parse_run(cfg, true, n, &tools)) {
        pb_config_free(cfg);
        return 1;
    }
    const parse_stages *kinds[] = {&plain, &tools};
    for (int k = 0; k < 2; k++)
        printf("bench_parse kind=%s jobs=%d job_bytes=%.0f parse_us=%.2f build_us=%.2f "
               "reply_us=%.2f free_us=%.2f total_us=%.2f\n",
               k ? "tool_calling_mix" : "plain_text", n, kinds[k]->bytes, kinds[k]->parse,
               kinds[k]->build, kinds[k]->reply, kinds[k]->free, parse_total(kinds[k]));
    printf("bench_parse plain_to_tools_cpu=%.2f extra_us_per_tool_job=%.2f\n",
           parse_total(&plain) / parse_total(&tools), parse_total(&tools) - parse_total(&plain));
    pb_config_free(cfg);
    return 0;
}
