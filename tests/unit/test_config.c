/* test_config.c -- planb.json parsing: values, defaults, every error path, env secrets.
 *
 * Errors are compared as whole strings: the message is the operator's only
 * clue, so a change to it should be a deliberate test change. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "planb/config.h"

/* Smallest valid config; error cases splice one field into it. */
#define MIN_PROVIDERS "\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\"}}"
#define MIN_MODELS    "\"models\": {\"m\": {\"provider\": \"p\"}, \"n\": {\"provider\": \"p\"}}"
#define MIN_ROUTES    "\"routes\": {\"default\": {\"chain\": [\"m\"]}}"
#define MIN_SECTIONS  MIN_PROVIDERS ", " MIN_MODELS ", " MIN_ROUTES

static const char *
fixture_path(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/config/%s", PB_SRC_DIR, name);
    return path;
}

/* Parses json expecting failure with exactly msg. */
static void
expect_error(const char *json, const char *msg)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(json, &err);
    cr_expect_null(cfg, "accepted: %s", json);
    cr_expect_str_eq(err.msg, msg, "got \"%s\" for: %s", err.msg, json);
    cr_expect_neq(err.code, 0);
    pb_config_free(cfg);
}

/* Parses json expecting success. */
static pb_config *
must_parse(const char *json)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(json, &err);
    cr_assert_not_null(cfg, "rejected (%s): %s", err.msg, json);
    return cfg;
}

Test(config, full_fixture)
{
    setenv("PB_TEST_OPENAI_KEY", "sk-openai-test", 1);
    unsetenv("PB_TEST_ANTHROPIC_KEY");
    setenv("PB_TEST_REDIS_PASSWORD", "redis-pass", 1);
    pb_error err = {0};
    pb_config *cfg = pb_config_load(fixture_path("full.json"), &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_expect_str_eq(cfg->path, fixture_path("full.json"));
    cr_expect_str_eq(cfg->redis_host, "127.0.0.1");
    cr_expect_eq(cfg->redis_port, 6379);
    cr_expect_eq(cfg->redis_db, 0);
    cr_expect_null(cfg->redis_user);
    cr_expect_str_eq(cfg->redis_password, "redis-pass");
    cr_expect_str_eq(cfg->prefix, "planb");
    cr_expect_eq(cfg->workers, 2);
    cr_expect_eq(cfg->concurrency, 512);
    cr_assert_eq(cfg->n_queues, 2);
    cr_expect_str_eq(cfg->queues[1], "bulk");
    cr_expect_eq(cfg->result_ttl_s, 3600);
    cr_expect_eq(cfg->reply_ttl_s, 120);
    cr_expect_eq(cfg->claim_batch, 32);
    cr_expect_eq(cfg->drain_timeout_ms, 20000);
    cr_expect_eq(cfg->lease_ms, 15000);
    cr_expect_eq(cfg->max_deliveries, 3);
    cr_expect_eq(cfg->limits.job_max_bytes, 262144);
    cr_expect_eq(cfg->limits.max_messages, 64);
    cr_expect_eq(cfg->limits.reply_max_bytes, 1048576);
    cr_expect_eq(cfg->limits.meta_max_bytes, 4096);
    cr_expect_eq(cfg->limits.id_max_bytes, 64);

    cr_assert_eq(cfg->n_providers, 2);
    const pb_provider_conf *oa = &cfg->providers[0], *an = &cfg->providers[1];
    cr_expect_str_eq(oa->name, "openai");
    cr_expect_eq(oa->type, PB_PROVIDER_OPENAI);
    cr_expect_str_eq(oa->base_url, "https://api.openai.com/v1", "trailing slash stripped");
    cr_expect_str_eq(oa->api_key_env, "PB_TEST_OPENAI_KEY");
    cr_expect_str_eq(oa->api_key, "sk-openai-test");
    cr_expect_str_eq(oa->anthropic_version, "2023-06-01");
    cr_expect_eq(an->type, PB_PROVIDER_ANTHROPIC);
    cr_expect_null(an->api_key, "unset env var gives no key");
    cr_expect_str_eq(an->anthropic_version, "2024-01-01");

    cr_assert_eq(cfg->n_models, 3);
    int sonnet = pb_config_model_index(cfg, "claude-sonnet");
    int mini = pb_config_model_index(cfg, "gpt-4o-mini");
    cr_assert_eq(sonnet, 1);
    cr_assert_eq(mini, 2);
    cr_expect_eq(pb_config_model_index(cfg, "claude"), -1);
    const pb_model_conf *m0 = &cfg->models[0], *m1 = &cfg->models[sonnet], *m2 = &cfg->models[mini];
    cr_expect_str_eq(m0->upstream, "gpt-4o", "upstream defaults to the name");
    cr_expect_eq(m0->provider, 0);
    cr_expect_eq(m0->tier, 1);
    cr_expect_eq(m0->timeout_ms, 10000);
    cr_expect_eq(m0->connect_timeout_ms, 2000);
    cr_expect_eq(m0->max_tokens_default, 1024);
    cr_expect_str_eq(m1->upstream, "claude-3-5-sonnet-latest");
    cr_expect_eq(m1->provider, 1);
    cr_expect_eq(m1->connect_timeout_ms, 500);
    cr_expect_eq(m1->max_tokens_default, 2048);
    cr_expect_eq(m2->tier, 2);
    cr_expect_eq(m2->connect_timeout_ms, 1000, "default connect timeout clamped to timeout_ms");

    cr_assert_eq(cfg->n_routes, 2);
    cr_expect_eq(pb_config_route_index(cfg, "cheap"), 0);
    cr_expect_eq(pb_config_route_index(cfg, "nope"), -1);
    cr_expect_eq(cfg->default_route, 1, "\"default\" is found even when not first");
    const pb_route_conf *cheap = &cfg->routes[0], *def = &cfg->routes[1];
    cr_assert_eq(def->chain_len, 3);
    cr_expect_eq(def->chain[0], 0);
    cr_expect_eq(def->chain[1], sonnet);
    cr_expect_eq(def->chain[2], mini);
    cr_expect_eq(def->retries, 2);
    cr_expect_eq(def->backoff_ms, 250);
    cr_expect_eq(def->backoff_max_ms, 4000);
    cr_expect_eq(def->deadline_ms, 30000);
    cr_expect_eq(def->critical_min_tier, 1);
    cr_expect_str_eq(def->degraded_reply, "Sorry, try again later.");
    cr_assert_eq(cheap->chain_len, 1);
    cr_expect_eq(cheap->retries, 0);
    cr_expect_eq(cheap->deadline_ms, 5000);
    cr_expect_eq(cheap->critical_min_tier, 0);

    cr_expect_eq(cfg->cache_ttl_s, 600);
    cr_expect_eq(cfg->cache_stale_if_error_s, 86400);
    pb_config_free(cfg);
}

Test(config, minimal_fixture_defaults)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_load(fixture_path("minimal.json"), &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_str_eq(cfg->redis_url, "redis://127.0.0.1:6379/0");
    cr_expect_str_eq(cfg->redis_host, "127.0.0.1");
    cr_expect_eq(cfg->redis_port, 6379);
    cr_expect_eq(cfg->redis_db, 0);
    cr_expect_null(cfg->redis_user);
    cr_expect_null(cfg->redis_password);
    cr_expect_str_eq(cfg->prefix, "planb");
    cr_expect_eq(cfg->workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    cr_expect_eq(cfg->concurrency, 512);
    cr_assert_eq(cfg->n_queues, 1);
    cr_expect_str_eq(cfg->queues[0], "default");
    cr_expect_eq(cfg->result_ttl_s, 86400);
    cr_expect_eq(cfg->reply_ttl_s, 300);
    cr_expect_eq(cfg->claim_batch, 64);
    cr_expect_eq(cfg->drain_timeout_ms, 30000);
    cr_expect_eq(cfg->lease_ms, 10000);
    cr_expect_eq(cfg->max_deliveries, 5);
    cr_expect_eq(cfg->limits.job_max_bytes, 1048576);
    cr_expect_eq(cfg->limits.max_messages, 256);
    cr_expect_eq(cfg->limits.reply_max_bytes, 4194304);
    cr_expect_eq(cfg->limits.meta_max_bytes, 16384);
    cr_expect_eq(cfg->limits.id_max_bytes, 128);
    cr_expect_null(cfg->providers[0].api_key_env);
    cr_expect_null(cfg->providers[0].api_key);
    cr_expect_str_eq(cfg->providers[0].base_url, "http://127.0.0.1:8080/v1");
    const pb_route_conf *r = &cfg->routes[0];
    cr_expect_eq(cfg->default_route, 0, "no \"default\" route: the first one");
    cr_expect_eq(r->retries, 2);
    cr_expect_eq(r->backoff_ms, 250);
    cr_expect_eq(r->backoff_max_ms, 4000);
    cr_expect_eq(r->deadline_ms, 30000);
    cr_expect_eq(r->critical_min_tier, 0);
    cr_expect_str_eq(r->degraded_reply,
                     "The AI assistant is temporarily unavailable. Please try again later or "
                     "contact customer support.");
    cr_expect_eq(cfg->cache_ttl_s, 86400);
    cr_expect_eq(cfg->cache_stale_if_error_s, 604800);
    pb_config_free(cfg);
}

Test(config, errors_name_the_field)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {\"chain\": [\"m\", "
         "\"claude\"]}}}",
         "CONFIG routes.default.chain[1]: unknown model \"claude\""},
        {"{" MIN_PROVIDERS ", \"models\": {\"m\": {\"provider\": \"p\", \"tier\": 0}}, " MIN_ROUTES
         "}",
         "CONFIG models.m.tier: must be an integer from 1 to 9"},
        {"{" MIN_PROVIDERS
         ", \"models\": {\"m\": {\"provider\": \"p\", \"tier\": \"1\"}}, " MIN_ROUTES "}",
         "CONFIG models.m.tier: must be an integer from 1 to 9"},
        {"{\"workers\": 0, " MIN_SECTIONS "}", "CONFIG workers: must be an integer from 1 to 256"},
        {"{\"workers\": 1.5, " MIN_SECTIONS "}",
         "CONFIG workers: must be an integer from 1 to 256"},
        {"{\"workers\": null, " MIN_SECTIONS "}",
         "CONFIG workers: must be an integer from 1 to 256"},
        {"{\"concurrency\": 100001, " MIN_SECTIONS "}",
         "CONFIG concurrency: must be an integer from 1 to 100000"},
        {"{\"lease_ms\": 999, " MIN_SECTIONS "}",
         "CONFIG lease_ms: must be an integer from 1000 to 600000"},
        {"{\"result_ttl_s\": 2592001, " MIN_SECTIONS "}",
         "CONFIG result_ttl_s: must be an integer from 1 to 2592000"},
        {"{\"worker\": 2, " MIN_SECTIONS "}", "CONFIG worker: unknown key"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS
         ", \"routes\": {\"default\": {\"chain\": [\"m\"], \"retires\": 3}}}",
         "CONFIG routes.default.retires: unknown key"},
        {"{\"redis\": {\"prefx\": \"x\"}, " MIN_SECTIONS "}", "CONFIG redis.prefx: unknown key"},
        {"{\"limits\": {\"job_bytes\": 1}, " MIN_SECTIONS "}",
         "CONFIG limits.job_bytes: unknown key"},
        {"{\"cache\": {\"ttl\": 1}, " MIN_SECTIONS "}", "CONFIG cache.ttl: unknown key"},
        {"{" MIN_MODELS ", " MIN_ROUTES "}",
         "CONFIG providers: must be an object with at least one provider"},
        {"{\"providers\": {}, " MIN_MODELS ", " MIN_ROUTES "}",
         "CONFIG providers: must be an object with at least one provider"},
        {"{\"providers\": [], " MIN_MODELS ", " MIN_ROUTES "}",
         "CONFIG providers: must be an object"},
        {"{" MIN_PROVIDERS ", " MIN_ROUTES "}",
         "CONFIG models: must be an object with at least one model"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS "}",
         "CONFIG routes: must be an object with at least one route"},
        {"{\"providers\": {\"p\": {\"type\": \"mistral\", \"base_url\": \"http://x\"}}, " MIN_MODELS
         ", " MIN_ROUTES "}",
         "CONFIG providers.p.type: must be \"openai\", \"anthropic\", \"azure\", \"gemini\" or "
         "\"bedrock\""},
        {"{\"providers\": {\"p\": {\"base_url\": \"http://x\"}}, " MIN_MODELS ", " MIN_ROUTES "}",
         "CONFIG providers.p.type: must be \"openai\", \"anthropic\", \"azure\", \"gemini\" or "
         "\"bedrock\""},
        {"{\"providers\": {\"p\": {\"type\": \"openai\"}}, " MIN_MODELS ", " MIN_ROUTES "}",
         "CONFIG providers.p.base_url: must be an http:// or https:// URL"},
        {"{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"ftp://x\"}}, " MIN_MODELS
         ", " MIN_ROUTES "}",
         "CONFIG providers.p.base_url: must be an http:// or https:// URL"},
        {"{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": 7}}, " MIN_MODELS
         ", " MIN_ROUTES "}",
         "CONFIG providers.p.base_url: must be a string"},
        {"{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\", "
         "\"api_key_env\": \"1BAD\"}}, " MIN_MODELS ", " MIN_ROUTES "}",
         "CONFIG providers.p.api_key_env: must be an environment variable name"},
        {"{\"providers\": {\"p\": 1}, " MIN_MODELS ", " MIN_ROUTES "}",
         "CONFIG providers.p: must be an object"},
        {"{" MIN_PROVIDERS ", \"models\": {\"m\": {}}, " MIN_ROUTES "}",
         "CONFIG models.m.provider: is required"},
        {"{" MIN_PROVIDERS ", \"models\": {\"m\": {\"provider\": \"q\"}}, " MIN_ROUTES "}",
         "CONFIG models.m.provider: unknown provider \"q\""},
        {"{" MIN_PROVIDERS ", \"models\": {\"bad name\": {\"provider\": \"p\"}}, " MIN_ROUTES "}",
         "CONFIG models.bad name: name must be 1 to 64 characters [A-Za-z0-9_.:@/+=-]"},
        {"{" MIN_PROVIDERS ", \"models\": {\"m\": {\"provider\": \"p\", \"timeout_ms\": 1000, "
         "\"connect_timeout_ms\": 1500}}, " MIN_ROUTES "}",
         "CONFIG models.m.connect_timeout_ms: must be an integer from 50 to 1000"},
        {"{" MIN_PROVIDERS
         ", \"models\": {\"m\": {\"provider\": \"p\", \"timeout_ms\": 99}}, " MIN_ROUTES "}",
         "CONFIG models.m.timeout_ms: must be an integer from 100 to 600000"},
        {"{" MIN_PROVIDERS
         ", \"models\": {\"m\": {\"provider\": \"p\", \"model\": \"\"}}, " MIN_ROUTES "}",
         "CONFIG models.m.model: must be a string of 1 to 256 bytes"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {}}}",
         "CONFIG routes.default.chain: must be an array of 1 to 16 model names"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {\"chain\": []}}}",
         "CONFIG routes.default.chain: must be an array of 1 to 16 model names"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {\"chain\": \"m\"}}}",
         "CONFIG routes.default.chain: must be an array of 1 to 16 model names"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {\"chain\": [1]}}}",
         "CONFIG routes.default.chain[0]: must be a model name"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {\"chain\": [\"m\"], "
         "\"backoff_ms\": 500, \"backoff_max_ms\": 400}}}",
         "CONFIG routes.default.backoff_max_ms: must be an integer from 500 to 600000"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {\"chain\": [\"m\"], "
         "\"critical_min_tier\": 10}}}",
         "CONFIG routes.default.critical_min_tier: must be an integer from 0 to 9"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {\"chain\": [\"m\"], "
         "\"retries\": -1}}}",
         "CONFIG routes.default.retries: must be an integer from 0 to 10"},
        {"{" MIN_PROVIDERS ", " MIN_MODELS ", \"routes\": {\"default\": {\"chain\": [\"m\"], "
         "\"degraded_reply\": false}}}",
         "CONFIG routes.default.degraded_reply: must be a string"},
        {"{\"redis\": null, " MIN_SECTIONS "}", "CONFIG redis: must be an object"},
        {"{\"redis\": {\"prefix\": \"a b\"}, " MIN_SECTIONS "}",
         "CONFIG redis.prefix: must be 1 to 64 characters [A-Za-z0-9_.:-]"},
        {"{\"redis\": {\"url\": \"http://x\"}, " MIN_SECTIONS "}",
         "CONFIG redis.url: must look like redis[s]://[user[:password]@]host[:port][/db]"},
        {"{\"redis\": {\"url\": \"redis://\"}, " MIN_SECTIONS "}", "CONFIG redis.url: has no host"},
        {"{\"redis\": {\"url\": \"redis://h:0\"}, " MIN_SECTIONS "}",
         "CONFIG redis.url: port must be a number from 1 to 65535"},
        {"{\"redis\": {\"url\": \"redis://h:65536\"}, " MIN_SECTIONS "}",
         "CONFIG redis.url: port must be a number from 1 to 65535"},
        {"{\"redis\": {\"url\": \"redis://h:63x9\"}, " MIN_SECTIONS "}",
         "CONFIG redis.url: port must be a number from 1 to 65535"},
        {"{\"redis\": {\"url\": \"redis://h/x\"}, " MIN_SECTIONS "}",
         "CONFIG redis.url: database must be a non-negative number"},
        {"{\"redis\": {\"url\": \"redis://[::1\"}, " MIN_SECTIONS "}",
         "CONFIG redis.url: unterminated [IPv6] host"},
        {"{\"redis\": {\"url\": \"redis://[::1]x\"}, " MIN_SECTIONS "}",
         "CONFIG redis.url: has unexpected text after the host"},
        {"{\"queues\": [], " MIN_SECTIONS "}",
         "CONFIG queues: must be an array of 1 to 64 queue names"},
        {"{\"queues\": \"default\", " MIN_SECTIONS "}",
         "CONFIG queues: must be an array of 1 to 64 queue names"},
        {"{\"queues\": [\"a\", \"b c\"], " MIN_SECTIONS "}",
         "CONFIG queues[1]: must be 1 to 64 characters [A-Za-z0-9_.:-]"},
        {"{\"queues\": [\"a\", \"a\"], " MIN_SECTIONS "}",
         "CONFIG queues[1]: duplicate queue \"a\""},
        {"{\"limits\": {\"job_max_bytes\": 10}, " MIN_SECTIONS "}",
         "CONFIG limits.job_max_bytes: must be an integer from 1024 to 67108864"},
        {"{\"limits\": {\"id_max_bytes\": 513}, " MIN_SECTIONS "}",
         "CONFIG limits.id_max_bytes: must be an integer from 8 to 512"},
        {"{\"limits\": 5, " MIN_SECTIONS "}", "CONFIG limits: must be an object"},
        {"{\"cache\": {\"ttl_s\": 0}, " MIN_SECTIONS "}",
         "CONFIG cache.ttl_s: must be an integer from 1 to 2592000"},
        {"{\"cache\": {\"stale_if_error_s\": 7776001}, " MIN_SECTIONS "}",
         "CONFIG cache.stale_if_error_s: must be an integer from 0 to 7776000"},
        {"{\"cache\": {\"semantic\": true}, " MIN_SECTIONS "}",
         "CONFIG cache.semantic: must be an object"},
        {"{\"cache\": {\"redis\": \"redis://x\"}, " MIN_SECTIONS "}",
         "CONFIG cache.redis: must be an object"},
        {"{\"breaker\": 1, " MIN_SECTIONS "}", "CONFIG breaker: must be an object"},
        {"{\"monitor\": [], " MIN_SECTIONS "}", "CONFIG monitor: must be an object"},
        {"[]", "CONFIG: must be a JSON object"},
        {"", "CONFIG: not valid JSON (line 1: unexpected end of file)"},
        {"{\"workers\": 2", "CONFIG: not valid JSON (line 1: unexpected end of file)"},
        {"{\n  \"workers\": 2,\n  \"x\" 3\n}",
         "CONFIG: not valid JSON (line 3: object property name separator ':' expected)"},
        {"{\"a\": 1} {}", "CONFIG: not valid JSON (line 1: unexpected text after the end)"},
        {"{\"a\": \"\xff\"}", "CONFIG: not valid JSON (line 1: invalid utf-8 string)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].json, cases[i].msg);
}

Test(config, comments_and_unvalidated_sections_accepted)
{
    pb_config *cfg = must_parse("/* header */ {\n // line comment\n " MIN_SECTIONS ",\n"
                                "\"cache\": {\"semantic\": {\"enabled\": false}, \"redis\": {}},\n"
                                "\"breaker\": {\"failures\": 5}, \"monitor\": {}}");
    pb_config_free(cfg);
}

Test(config, degraded_reply_bound)
{
    size_t n = 64 * 1024 + 1;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    char *json = malloc(n + 512);
    snprintf(json, n + 512,
             "{" MIN_PROVIDERS ", " MIN_MODELS
             ", \"routes\": {\"default\": {\"chain\": [\"m\"], \"degraded_reply\": \"%s\"}}}",
             big);
    expect_error(json,
                 "CONFIG routes.default.degraded_reply: must be a string of 1 to 65536 bytes");
    big[n - 1] = '\0';
    snprintf(json, n + 512,
             "{" MIN_PROVIDERS ", " MIN_MODELS
             ", \"routes\": {\"default\": {\"chain\": [\"m\"], \"degraded_reply\": \"%s\"}}}",
             big);
    pb_config *cfg = must_parse(json);
    cr_expect_eq(strlen(cfg->routes[0].degraded_reply), n - 1);
    pb_config_free(cfg);
    free(big);
    free(json);
}

Test(config, chain_limit_and_route_order)
{
    pb_config *cfg = must_parse("{" MIN_PROVIDERS ", " MIN_MODELS
                                ", \"routes\": {\"a\": {\"chain\": [\"n\", \"m\", \"n\"]}, "
                                "\"default\": {\"chain\": [\"n\"], \"backoff_ms\": 5000}}}");
    cr_expect_eq(cfg->default_route, 1);
    cr_assert_eq(cfg->routes[0].chain_len, 3);
    cr_expect_eq(cfg->routes[0].chain[0], 1);
    cr_expect_eq(cfg->routes[0].chain[1], 0);
    cr_expect_eq(cfg->routes[1].backoff_max_ms, 5000, "default cap rises to backoff_ms");
    pb_config_free(cfg);
    expect_error("{" MIN_PROVIDERS ", " MIN_MODELS
                 ", \"routes\": {\"default\": {\"chain\": [\"m\", \"m\", \"m\", \"m\", \"m\", "
                 "\"m\", \"m\", \"m\", \"m\", \"m\", \"m\", \"m\", \"m\", \"m\", \"m\", \"m\", "
                 "\"m\"]}}}",
                 "CONFIG routes.default.chain: must be an array of 1 to 16 model names");
}

Test(config, env_keys_read_and_never_echoed)
{
    static const char secret[] = "sk-very-secret-value";
    setenv("PB_TEST_KEY", secret, 1);
    pb_config *cfg =
        must_parse("{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\", "
                   "\"api_key_env\": \"PB_TEST_KEY\"}}, " MIN_MODELS ", " MIN_ROUTES "}");
    cr_expect_str_eq(cfg->providers[0].api_key, secret);
    cr_expect_str_eq(cfg->providers[0].api_key_env, "PB_TEST_KEY");
    pb_config_free(cfg);

    /* An error elsewhere in the same provider never shows the key. */
    pb_error err = {0};
    cfg = pb_config_parse("{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": "
                          "\"http://x\", \"api_key_env\": \"PB_TEST_KEY\", \"anthropic_version\": "
                          "1}}, " MIN_MODELS ", " MIN_ROUTES "}",
                          &err);
    cr_expect_null(cfg);
    cr_expect_str_eq(err.msg, "CONFIG providers.p.anthropic_version: must be a string");
    cr_expect_null(strstr(err.msg, secret));

    /* A key with a newline would split the HTTP header: refused, without quoting it. */
    setenv("PB_TEST_KEY", "sk-secret\r\nX-Evil: 1", 1);
    cfg = pb_config_parse("{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": "
                          "\"http://x\", \"api_key_env\": \"PB_TEST_KEY\"}}, " MIN_MODELS
                          ", " MIN_ROUTES "}",
                          &err);
    cr_expect_null(cfg);
    cr_expect_str_eq(err.msg, "CONFIG providers.p.api_key_env: the value of PB_TEST_KEY contains "
                              "control characters");
    cr_expect_null(strstr(err.msg, "sk-secret"));

    setenv("PB_TEST_KEY", "", 1);
    cfg = must_parse("{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\", "
                     "\"api_key_env\": \"PB_TEST_KEY\"}}, " MIN_MODELS ", " MIN_ROUTES "}");
    cr_expect_null(cfg->providers[0].api_key, "empty env var means no key");
    pb_config_free(cfg);
}

Test(config, redis_url_variants)
{
    static const struct {
        const char *url;
        const char *host, *user, *password;
        int port, db;
    } cases[] = {
        {"redis://localhost", "localhost", NULL, NULL, 6379, 0},
        {"redis://localhost/", "localhost", NULL, NULL, 6379, 0},
        {"redis://10.0.0.5:7000", "10.0.0.5", NULL, NULL, 7000, 0},
        {"redis://h:6380/3", "h", NULL, NULL, 6380, 3},
        {"redis://u:p%40ss@h:6380/3", "h", "u", "p@ss", 6380, 3},
        {"redis://:secret@h/2", "h", NULL, "secret", 6379, 2},
        {"redis://alice@h", "h", "alice", NULL, 6379, 0},
        {"redis://u:pa@ss/w:rd@h:1/15", "h", "u", "pa@ss/w:rd", 1, 15},
        {"redis://u:100%zz@h", "h", "u", "100%zz", 6379, 0},
        {"redis://[::1]:7001/1", "::1", NULL, NULL, 7001, 1},
        {"redis://[::1]", "::1", NULL, NULL, 6379, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[1024];
        snprintf(json, sizeof(json), "{\"redis\": {\"url\": \"%s\"}, " MIN_SECTIONS "}",
                 cases[i].url);
        pb_config *cfg = must_parse(json);
        cr_expect_str_eq(cfg->redis_url, cases[i].url);
        cr_expect_str_eq(cfg->redis_host, cases[i].host, "%s", cases[i].url);
        cr_expect_eq(cfg->redis_port, cases[i].port, "%s", cases[i].url);
        cr_expect_eq(cfg->redis_db, cases[i].db, "%s", cases[i].url);
        if (cases[i].user)
            cr_expect_str_eq(cfg->redis_user, cases[i].user, "%s", cases[i].url);
        else
            cr_expect_null(cfg->redis_user, "%s", cases[i].url);
        if (cases[i].password)
            cr_expect_str_eq(cfg->redis_password, cases[i].password, "%s", cases[i].url);
        else
            cr_expect_null(cfg->redis_password, "%s", cases[i].url);
        pb_config_free(cfg);
    }
}

Test(config, redis_user_and_password_env_win)
{
    setenv("PB_TEST_RPASS", "from-env", 1);
    pb_config *cfg =
        must_parse("{\"redis\": {\"url\": \"redis://u:from-url@h\", \"user\": "
                   "\"acl-user\", \"password_env\": \"PB_TEST_RPASS\"}, " MIN_SECTIONS "}");
    cr_expect_str_eq(cfg->redis_user, "acl-user");
    cr_expect_str_eq(cfg->redis_password, "from-env");
    pb_config_free(cfg);

    unsetenv("PB_TEST_RPASS");
    cfg = must_parse("{\"redis\": {\"url\": \"redis://u:from-url@h\", \"password_env\": "
                     "\"PB_TEST_RPASS\"}, " MIN_SECTIONS "}");
    cr_expect_str_eq(cfg->redis_user, "u");
    cr_expect_str_eq(cfg->redis_password, "from-url", "unset env var keeps the URL's password");
    pb_config_free(cfg);

    /* A bad port in a URL holding a password must not echo the password. */
    pb_error err = {0};
    cfg = pb_config_parse("{\"redis\": {\"url\": \"redis://u:hunter2@h:99999\"}, " MIN_SECTIONS "}",
                          &err);
    cr_expect_null(cfg);
    cr_expect_null(strstr(err.msg, "hunter2"), "%s", err.msg);
}

Test(config, load_errors)
{
    pb_error err = {0};
    cr_expect_null(pb_config_load("/nonexistent/planb.json", &err));
    cr_expect_str_eq(err.msg, "CONFIG: cannot open /nonexistent/planb.json: No such file or "
                              "directory");

    char path[] = "/tmp/pb_test_config_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    size_t n = 1024 * 1024 + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    cr_assert_eq(write(fd, big, n), (ssize_t)n);
    close(fd);
    free(big);
    cr_expect_null(pb_config_load(path, &err));
    char want[256];
    snprintf(want, sizeof(want), "CONFIG: %s is larger than 1048576 bytes", path);
    cr_expect_str_eq(err.msg, want);
    unlink(path);

    cr_expect_null(pb_config_load("/", &err), "a directory");
    cr_expect_str_eq(err.msg, "CONFIG: cannot read /: Is a directory");
    pb_config_free(NULL);
}

#define SEM_BASE                                                                                   \
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\"}, \"a\": "          \
    "{\"type\": \"anthropic\", \"base_url\": \"http://y\"}}, \"models\": {\"m\": {\"provider\": "  \
    "\"p\"}}, \"routes\": {\"default\": {\"chain\": [\"m\"]}}, \"cache\": {\"semantic\": "

Test(config, semantic_defaults_and_values)
{
    pb_config *cfg = must_parse(SEM_BASE "{}}}");
    cr_expect_not(cfg->semantic.enabled);
    cr_expect_float_eq(cfg->semantic.threshold, PB_SEMANTIC_LOCAL_THRESHOLD, 1e-9);
    cr_expect_eq(cfg->semantic.embedder, PB_EMBEDDER_LOCAL);
    cr_expect_eq(cfg->semantic.mode, PB_SEMANTIC_FALLBACK);
    cr_expect_eq(cfg->semantic.max_entries, 100000);
    cr_expect_eq(cfg->semantic.timeout_ms, 1000);
    cr_expect_not(cfg->routes[0].semantic_critical);
    pb_config_free(cfg);
    cfg = must_parse(SEM_BASE "{\"enabled\": true, \"embedder\": \"http\", \"provider\": \"p\", "
                              "\"model\": \"emb\", \"mode\": \"shadow\", \"max_entries\": 5, "
                              "\"shadow_sample\": 0.5}}}");
    cr_expect(cfg->semantic.enabled);
    cr_expect_eq(cfg->semantic.embedder, PB_EMBEDDER_HTTP);
    cr_expect_eq(cfg->semantic.provider, 0);
    cr_expect_str_eq(cfg->semantic.model, "emb");
    cr_expect_float_eq(cfg->semantic.threshold, 0.9, 1e-9);
    cr_expect_eq(cfg->semantic.mode, PB_SEMANTIC_SHADOW);
    cr_expect_eq(cfg->semantic.max_entries, 5);
    cr_expect_float_eq(cfg->semantic.shadow_sample, 0.5, 1e-9);
    pb_config_free(cfg);
}

Test(config, semantic_errors_name_the_field)
{
    expect_error(SEM_BASE "{\"mode\": \"always\"}}}",
                 "CONFIG cache.semantic.mode: must be one of fallback|first|shadow");
    expect_error(SEM_BASE "{\"threshold\": 1.5}}}",
                 "CONFIG cache.semantic.threshold: must be a number from 0.5 to 1");
    expect_error(SEM_BASE "{\"enabled\": 1}}}",
                 "CONFIG cache.semantic.enabled: must be true or false");
    expect_error(SEM_BASE "{\"embedder\": \"http\", \"provider\": \"a\", \"model\": \"e\"}}}",
                 "CONFIG cache.semantic.provider: must name a provider of type openai");
    expect_error(SEM_BASE "{\"embedder\": \"http\", \"provider\": \"p\"}}}",
                 "CONFIG cache.semantic.model: is required with embedder http");
    expect_error(SEM_BASE "{\"max_entries\": 0}}}",
                 "CONFIG cache.semantic.max_entries: must be an integer from 1 to 100000000");
    expect_error(SEM_BASE "{\"typo\": 0}}}", "CONFIG cache.semantic.typo: unknown key");
}

/* The breaker and monitor sections: their defaults, and every out-of-range value refused. */
static const char *test_cfg =
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\"}},"
    " \"models\": {\"m:1\": {\"provider\": \"p\"}, \"b\": {\"provider\": \"p\"}},"
    " \"routes\": {\"default\": {\"chain\": [\"m:1\", \"b\"]}}}";

Test(config, breaker_monitor_and_limits)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(test_cfg, &err);
    cr_assert_eq(cfg->breaker_failures, 5);
    cr_assert_eq(cfg->breaker_window_s, 30);
    cr_assert_eq(cfg->breaker_open_s, 30);
    cr_assert_eq(cfg->stats_interval_s, 10);
    cr_assert_float_eq(cfg->alert_fallback_rate, 0.2, 1e-9);
    cr_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
    cr_assert_eq(cfg->models[0].rpm, 0);
    pb_config_free(cfg);
    static const char *bad[] = {"\"breaker\": {\"failures\": -1}",
                                "\"breaker\": {\"open_s\": 0}",
                                "\"breaker\": {\"typo\": 1}",
                                "\"monitor\": {\"alert_fallback_rate\": 1.5}",
                                "\"monitor\": {\"metrics_listen\": \"nohost\"}",
                                "\"monitor\": {\"stats_interval_s\": 0}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[1024];
        snprintf(json, sizeof(json), "%.*s, %s}", (int)strlen(test_cfg) - 1, test_cfg, bad[i]);
        cr_expect_null(pb_config_parse(json, &err), "%s accepted", bad[i]);
    }
    char json[1024];
    snprintf(json, sizeof(json),
             "%.*s, \"monitor\": {\"metrics_listen\": \"\", \"alert_fallback_rate\": 0.5}}",
             (int)strlen(test_cfg) - 1, test_cfg);
    cfg = pb_config_parse(json, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_null(cfg->metrics_listen);
    cr_assert_float_eq(cfg->alert_fallback_rate, 0.5, 1e-9);
    pb_config_free(cfg);
}

Test(config, breaker_rate_keys_defaults_and_ranges)
{
    pb_error err = {0};
    pb_config *cfg = pb_config_parse(test_cfg, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_float_eq(cfg->breaker_failure_rate, 0.5, 1e-9);
    cr_assert_eq(cfg->breaker_min_calls, 20);
    cr_assert_eq(cfg->breaker_consecutive, 5, "defaults to failures");
    cr_assert_eq(cfg->breaker_slow_call_ms, 10000);
    cr_assert_float_eq(cfg->breaker_slow_call_rate, 0.5, 1e-9);
    cr_assert_eq(cfg->breaker_half_open_calls, 1);
    cr_assert_eq(cfg->breaker_max_open_s, 300);
    cr_assert_eq(cfg->breaker_max_hold_s, 60);
    cr_assert_eq(cfg->breaker_refused_hold_s, 60);
    cr_assert_eq(cfg->routes[0].hedge_after_ms, 0);
    cr_assert(!cfg->routes[0].hedge_adaptive);
    pb_config_free(cfg);

    char json[2048];
    snprintf(json, sizeof(json),
             "%.*s, \"breaker\": {\"failures\": 3, \"open_s\": 600, \"failure_rate\": 0.25, "
             "\"half_open_calls\": 4}}",
             (int)strlen(test_cfg) - 1, test_cfg);
    cfg = pb_config_parse(json, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_eq(cfg->breaker_consecutive, 3, "an old config's failures keep their meaning");
    cr_assert_eq(cfg->breaker_max_open_s, 600, "never below open_s");
    cr_assert_float_eq(cfg->breaker_failure_rate, 0.25, 1e-9);
    cr_assert_eq(cfg->breaker_half_open_calls, 4);
    pb_config_free(cfg);

    static const char *bad[] = {"\"breaker\": {\"failure_rate\": 0}",
                                "\"breaker\": {\"failure_rate\": 1.5}",
                                "\"breaker\": {\"min_calls\": 0}",
                                "\"breaker\": {\"slow_call_rate\": 2}",
                                "\"breaker\": {\"half_open_calls\": 0}",
                                "\"breaker\": {\"open_s\": 60, \"max_open_s\": 30}",
                                "\"breaker\": {\"max_hold_s\": 0}",
                                "\"breaker\": {\"consecutive\": -1}",
                                "\"breaker\": {\"consecutive\": 1001}",
                                "\"breaker\": {\"failures\": 1001}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "%.*s, %s}", (int)strlen(test_cfg) - 1, test_cfg, bad[i]);
        cr_expect_null(pb_config_parse(json, &err), "%s accepted", bad[i]);
    }
}

#define HEDGE_CFG(route_keys)                                                                      \
    "{\"providers\": {\"p\": {\"type\": \"openai\", \"base_url\": \"http://x\"}},"                 \
    " \"models\": {\"a\": {\"provider\": \"p\"}, \"b\": {\"provider\": \"p\"}},"                   \
    " \"routes\": {\"default\": {\"chain\": [\"a\", \"b\"], " route_keys "}}}"

Test(config, hedge_keys)
{
    pb_error err = {0};
    pb_config *cfg =
        pb_config_parse(HEDGE_CFG("\"hedge_after_ms\": 300, \"hedge_adaptive\": true"), &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_eq(cfg->routes[0].hedge_after_ms, 300);
    cr_assert(cfg->routes[0].hedge_adaptive);
    pb_config_free(cfg);
    cr_assert_null(pb_config_parse(HEDGE_CFG("\"hedge_adaptive\": true"), &err));
    cr_assert(strstr(err.msg, "hedge_adaptive") != NULL, "%s", err.msg);
    cr_assert_null(pb_config_parse(HEDGE_CFG("\"hedge_after_ms\": -1"), &err));
}

Test(config, capabilities_prices_and_semantic_tools)
{
    pb_config *cfg =
        must_parse("{\"providers\": {\"o\": {\"type\": \"openai\", \"base_url\": \"http://x\"},"
                   " \"a\": {\"type\": \"anthropic\", \"base_url\": \"http://y\"}},"
                   " \"models\": {\"g\": {\"provider\": \"o\", \"price_in_per_mtok\": 2.5,"
                   " \"price_out_per_mtok\": 10}, \"c\": {\"provider\": \"a\"},"
                   " \"local\": {\"provider\": \"o\", \"capabilities\": [\"tools\"]}},"
                   " \"routes\": {\"default\": {\"chain\": [\"g\"], \"semantic_tools\": true}}}");
    cr_expect_eq(cfg->models[0].capabilities, PB_CAP_ALL);
    cr_expect_eq(cfg->models[1].capabilities, PB_CAP_ALL & ~(unsigned)PB_CAP_LOGPROBS);
    cr_expect_eq(cfg->models[2].capabilities, PB_CAP_TOOLS);
    cr_expect_float_eq(cfg->models[0].price_in_per_mtok, 2.5, 1e-12);
    cr_expect_lt(cfg->models[1].price_in_per_mtok, 0, "no prices: no cost");
    cr_expect(cfg->routes[0].semantic_tools);
    pb_config_free(cfg);
    expect_error("{" MIN_PROVIDERS ", \"models\": {\"m\": {\"provider\": \"p\", \"capabilities\":"
                 " [\"telepathy\"]}}, " MIN_ROUTES "}",
                 "CONFIG models.m.capabilities: entry 0 is not one of tools, vision, json_schema, "
                 "json_object, logprobs");
    expect_error("{" MIN_PROVIDERS ", \"models\": {\"m\": {\"provider\": \"p\", "
                 "\"price_in_per_mtok\": 1}}, " MIN_ROUTES "}",
                 "CONFIG models.m.price_in_per_mtok: and price_out_per_mtok must be given "
                 "together");
}

Test(config, redis_sentinels_and_bounds)
{
    setenv("PB_TEST_SENTINEL_PASSWORD", "sentinel-pass", 1);
    pb_config *cfg =
        must_parse("{\"redis\": {\"sentinels\": [\"10.0.0.1:26379\", \"sentinel-b:26380\"], "
                   "\"master_name\": \"mymaster\", \"sentinel_password_env\": "
                   "\"PB_TEST_SENTINEL_PASSWORD\", "
                   "\"timeout_ms\": 250, \"wait_replicas\": 1, \"wait_timeout_ms\": 500}, "
                   "\"limits\": {\"dead_max_entries\": 50}, "
                   "\"cache\": {\"redis\": {\"sentinels\": [\"10.0.0.2:26379\"], \"master_name\": "
                   "\"cache\"}}, " MIN_SECTIONS "}");
    cr_assert_eq(cfg->n_sentinels, 2);
    cr_expect_str_eq(cfg->sentinel_hosts[1], "sentinel-b");
    cr_expect_eq(cfg->sentinel_ports[1], 26380);
    cr_expect_str_eq(cfg->master_name, "mymaster");
    cr_expect_str_eq(cfg->sentinel_password, "sentinel-pass");
    cr_expect_eq(cfg->redis_timeout_ms, 250);
    cr_expect_eq(cfg->wait_replicas, 1);
    cr_expect_eq(cfg->wait_timeout_ms, 500);
    cr_expect_eq(cfg->limits.dead_max_entries, 50);
    cr_assert_not_null(cfg->cache_redis);
    cr_expect_eq(cfg->cache_redis->n_sentinels, 1);
    cr_expect_str_eq(cfg->cache_redis->master_name, "cache");
    cr_expect_eq(cfg->cache_redis->redis_timeout_ms, 1000);
    pb_config_free(cfg);
    cfg = must_parse("{" MIN_SECTIONS "}");
    cr_expect_eq(cfg->n_sentinels, 0);
    cr_expect_eq(cfg->limits.dead_max_entries, 10000);
    cr_expect_eq(cfg->wait_replicas, 0);
    pb_config_free(cfg);
    expect_error("{\"redis\": {\"sentinels\": [\"10.0.0.1:26379\"]}, " MIN_SECTIONS "}",
                 "CONFIG redis.master_name: is required with sentinels");
    expect_error("{\"redis\": {\"sentinels\": [\"nohost\"], \"master_name\": \"m\"}, " MIN_SECTIONS
                 "}",
                 "CONFIG redis.sentinels[0]: must look like \"host:port\"");
    expect_error("{\"redis\": {\"sentinels\": [], \"master_name\": \"m\"}, " MIN_SECTIONS "}",
                 "CONFIG redis.sentinels: must be an array of 1 to 16 \"host:port\"");
    expect_error("{\"cache\": {\"redis\": {\"wait_replicas\": 1}}, " MIN_SECTIONS "}",
                 "CONFIG cache.redis.wait_replicas: unknown key");
    expect_error("{\"limits\": {\"dead_max_entries\": 0}, " MIN_SECTIONS "}",
                 "CONFIG limits.dead_max_entries: must be an integer from 1 to 10000000");
}

Test(config, stream_raw_max_bytes_defaults_to_64_times_the_reply_limit)
{
    pb_config *cfg = must_parse("{" MIN_SECTIONS "}");
    cr_expect_eq(cfg->limits.stream_raw_max_bytes, 64u * 4194304);
    pb_config_free(cfg);
    cfg = must_parse("{\"limits\": {\"reply_max_bytes\": 16384}, " MIN_SECTIONS "}");
    cr_expect_eq(cfg->limits.stream_raw_max_bytes, 64u * 16384, "follows reply_max_bytes");
    pb_config_free(cfg);
    cfg = must_parse("{\"limits\": {\"reply_max_bytes\": 16384, \"stream_raw_max_bytes\": "
                     "65536}, " MIN_SECTIONS "}");
    cr_expect_eq(cfg->limits.stream_raw_max_bytes, 65536);
    pb_config_free(cfg);
    expect_error(
        "{\"limits\": {\"reply_max_bytes\": 16384, \"stream_raw_max_bytes\": 16383}, " MIN_SECTIONS
        "}",
        "CONFIG limits.stream_raw_max_bytes: must be an integer from 16384 to 4294967296");
}

/* ---------------------------------------------------------------- providers' connections */

/* A provider "g" of the given type with the given extra keys, in an otherwise minimal config. */
static char *
typed_config(const char *type, const char *base_url, const char *extra)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf),
             "{\"providers\": {\"g\": {\"type\": \"%s\", \"base_url\": \"%s\"%s%s}}, "
             "\"models\": {\"m\": {\"provider\": \"g\"}}, " MIN_ROUTES "}",
             type, base_url, extra ? ", " : "", extra ? extra : "");
    return buf;
}

static char *
conn_config(const char *base_url, const char *extra)
{
    return typed_config("openai", base_url, extra);
}

/* tests/support/make_certs.sh's PKI in a fresh temp dir (static buffer). */
static const char *
conn_certs(void)
{
    static char dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/planb-conf-certs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/support/make_certs.sh %s", PB_SRC_DIR, dir);
    cr_assert_eq(system(cmd), 0);
    return dir;
}

/* <dir>/garbage.pem: a file that is no certificate; its path into path. */
static void
garbage_pem(const char *dir, char *path, size_t size)
{
    snprintf(path, size, "%s/garbage.pem", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
}

Test(config, provider_tls_proxy_and_headers_parsed)
{
    const char *d = conn_certs();
    char extra[4096];
    setenv("PB_TEST_GW_KEY", "gw-secret-value", 1);
    snprintf(extra, sizeof(extra),
             "\"ca_file\": \"%s/ca.crt\", \"cert_file\": \"%s/client.crt\", \"key_file\": "
             "\"%s/client.key\", \"proxy\": \"http://u:p%%40ss@127.0.0.1:3128\", \"headers\": "
             "{\"X-Org\": \"acme\", \"X-Gateway-Key\": {\"value_env\": \"PB_TEST_GW_KEY\"}}",
             d, d, d);
    pb_config *cfg = must_parse(conn_config("https://gw.example/v1", extra));
    const pb_provider_conf *p = &cfg->providers[0];
    cr_expect(strstr(p->ca_file, "/ca.crt") != NULL);
    cr_expect(strstr(p->cert_file, "/client.crt") != NULL);
    cr_expect(strstr(p->key_file, "/client.key") != NULL);
    cr_expect_str_eq(p->proxy, "http://u:p%40ss@127.0.0.1:3128");
    cr_assert_eq(p->n_headers, 2);
    cr_expect_str_eq(p->headers[0], "X-Org: acme");
    cr_expect_str_eq(p->headers[1], "X-Gateway-Key: gw-secret-value");
    cr_expect_null(p->headers[2]);
    pb_config_free(cfg);
    /* Defaults: nothing set. */
    cfg = must_parse(conn_config("https://gw.example/v1", NULL));
    p = &cfg->providers[0];
    cr_expect(p->ca_file == NULL && p->cert_file == NULL && p->proxy == NULL);
    cr_expect(p->n_headers == 0 && p->headers == NULL);
    pb_config_free(cfg);
}

Test(config, provider_conn_errors_name_the_field)
{
    const char *d = conn_certs();
    char extra[4096], msg[1024], garbage[600];
    garbage_pem(d, garbage, sizeof(garbage));
    /* A CA file that is not PEM: found at load, with OpenSSL's reason. */
    snprintf(extra, sizeof(extra), "\"ca_file\": \"%s\"", garbage);
    snprintf(msg, sizeof(msg),
             "CONFIG providers.g.ca_file: %s holds no usable PEM certificate: no certificate or "
             "crl found",
             garbage);
    expect_error(conn_config("https://gw/v1", extra), msg);
    expect_error(conn_config("https://gw/v1", "\"ca_file\": \"/nonexistent/ca.pem\""),
                 "CONFIG providers.g.ca_file: cannot read /nonexistent/ca.pem: No such file or "
                 "directory");
    snprintf(extra, sizeof(extra), "\"ca_file\": \"%s/ca.crt\"", d);
    expect_error(conn_config("http://gw/v1", extra),
                 "CONFIG providers.g.ca_file: needs an https:// base_url");
    snprintf(extra, sizeof(extra), "\"cert_file\": \"%s/client.crt\"", d);
    expect_error(conn_config("https://gw/v1", extra),
                 "CONFIG providers.g.key_file: is required with cert_file (a client certificate "
                 "needs both)");
    snprintf(extra, sizeof(extra), "\"cert_file\": \"%s/client.crt\", \"key_file\": \"%s\"", d,
             garbage);
    snprintf(msg, sizeof(msg),
             "CONFIG providers.g.key_file: %s is no usable PEM private key of cert_file "
             "(encrypted keys are not supported): ",
             garbage);
    pb_error err = {0};
    cr_expect_null(pb_config_parse(conn_config("https://gw/v1", extra), &err));
    cr_expect(strncmp(err.msg, msg, strlen(msg)) == 0, "got %s", err.msg);
    snprintf(extra, sizeof(extra),
             "\"cert_file\": \"%s/client.crt\", \"key_file\": \"%s/server.key\"", d, d);
    snprintf(msg, sizeof(msg),
             "CONFIG providers.g.key_file: %s/server.key is no usable PEM private key of "
             "cert_file (encrypted keys are not supported): key values mismatch",
             d);
    expect_error(conn_config("https://gw/v1", extra), msg);

    /* Proxy URLs: never quoted (they may hold a password). */
    const char *bad_proxy[] = {"socks5://h:1", "http://",        "http://u:secretpw@:3128",
                               "http://h:0",   "http://h:99999", "http://h:3128/path",
                               "http://h :1",  "http://h:x"};
    for (size_t i = 0; i < sizeof(bad_proxy) / sizeof(bad_proxy[0]); i++) {
        snprintf(extra, sizeof(extra), "\"proxy\": \"%s\"", bad_proxy[i]);
        pb_error e = {0};
        cr_expect_null(pb_config_parse(conn_config("https://gw/v1", extra), &e), "%s",
                       bad_proxy[i]);
        cr_expect(strncmp(e.msg, "CONFIG providers.g.proxy: ", 26) == 0, "%s: %s", bad_proxy[i],
                  e.msg);
        cr_expect_null(strstr(e.msg, "secretpw"), "%s", e.msg);
    }
    pb_config_free(must_parse(conn_config("https://gw/v1", "\"proxy\": \"https://[::1]:8443/\"")));

    /* Headers. */
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"Authorization\": \"x\"}"),
                 "CONFIG providers.g.headers.Authorization: is set by planb itself");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"X-Api-Key\": \"x\"}"),
                 "CONFIG providers.g.headers.X-Api-Key: is set by planb itself");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"X Org\": \"x\"}"),
                 "CONFIG providers.g.headers.X Org: a header name is 1 to 64 token characters "
                 "[A-Za-z0-9!#$%&'*+.^_`|~-]");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"X-A\": \"a\\r\\nX-Evil: 1\"}"),
                 "CONFIG providers.g.headers.X-A: must be 1 to 4096 bytes without control "
                 "characters or blanks at either end");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"X-A\": \"\"}"),
                 "CONFIG providers.g.headers.X-A: must be 1 to 4096 bytes without control "
                 "characters or blanks at either end");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"X-A\": \"a\", \"x-a\": \"b\"}"),
                 "CONFIG providers.g.headers.x-a: is given twice (names ignore case)");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"X-A\": 1}"),
                 "CONFIG providers.g.headers.X-A: must be a string or {\"env\": NAME}");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"X-A\": {\"value\": \"v\"}}"),
                 "CONFIG providers.g.headers.X-A.value: unknown key");
    unsetenv("PB_TEST_UNSET_VAR");
    expect_error(conn_config("https://gw/v1",
                             "\"headers\": {\"X-A\": {\"value_env\": \"PB_TEST_UNSET_VAR\"}}"),
                 "CONFIG providers.g.headers.X-A.value_env: PB_TEST_UNSET_VAR is not set");
    setenv("PB_TEST_BAD_VAR", "secret\nX-Evil: 1", 1);
    expect_error(conn_config("https://gw/v1",
                             "\"headers\": {\"X-A\": {\"value_env\": \"PB_TEST_BAD_VAR\"}}"),
                 "CONFIG providers.g.headers.X-A.value_env: the value of PB_TEST_BAD_VAR must be "
                 "1 to 4096 bytes without control characters or blanks at either end");
    /* 32 headers pass, 33 do not. */
    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof(many), "\"headers\": {");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"X-H%d\": \"v\"", i ? ", " : "", i);
    snprintf(many + n, sizeof(many) - n, "}");
    expect_error(conn_config("https://gw/v1", many),
                 "CONFIG providers.g.headers: at most 32 headers");
    char *cut = strstr(many, ", \"X-H32\"");
    cr_assert_not_null(cut);
    strcpy(cut, "}");
    pb_config *cfg = must_parse(conn_config("https://gw/v1", many));
    cr_expect_eq(cfg->providers[0].n_headers, 32);
    pb_config_free(cfg);
}

/* {"redis": <redis>, ...minimal sections} (static buffer). */
static const char *
redis_config(const char *redis)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf), "{\"redis\": %s, " MIN_SECTIONS "}", redis);
    return buf;
}

Test(config, redis_tls_parsed_with_safe_defaults)
{
    const char *d = conn_certs();
    char redis[4096];
    /* rediss:// alone: TLS on, the system CA store, verified, TLS 1.2 minimum. */
    pb_config *cfg = must_parse(redis_config("{\"url\": \"rediss://cache.example:6380/0\"}"));
    cr_expect(cfg->redis_tls.on);
    cr_expect(cfg->redis_tls.verify);
    cr_expect_eq(cfg->redis_tls.min_version, 12);
    cr_expect_null(cfg->redis_tls.ca_file);
    cr_expect_eq(cfg->redis_port, 6380);
    cr_expect_not(cfg->sentinel_tls.on);
    pb_config_free(cfg);
    snprintf(redis, sizeof(redis),
             "{\"url\": \"rediss://localhost:6380\", \"tls\": {\"ca_file\": \"%s/ca.crt\", "
             "\"cert_file\": \"%s/client.crt\", \"key_file\": \"%s/client.key\", "
             "\"server_name\": \"db.internal\", \"min_version\": \"1.3\"}, \"sentinels\": "
             "[\"127.0.0.1:26379\"], \"master_name\": \"m\", \"sentinel_user\": \"watcher\", "
             "\"sentinel_tls\": true}",
             d, d, d);
    cfg = must_parse(redis_config(redis));
    cr_expect(strstr(cfg->redis_tls.ca_file, "/ca.crt") != NULL);
    cr_expect_str_eq(cfg->redis_tls.server_name, "db.internal");
    cr_expect_eq(cfg->redis_tls.min_version, 13);
    cr_expect_str_eq(cfg->sentinel_user, "watcher");
    /* sentinel_tls: true reuses the files, never the name (each sentinel has its own host). */
    cr_expect(cfg->sentinel_tls.on);
    cr_expect(strstr(cfg->sentinel_tls.cert_file, "/client.crt") != NULL);
    cr_expect_null(cfg->sentinel_tls.server_name);
    cr_expect_eq(cfg->sentinel_tls.min_version, 13);
    pb_config_free(cfg);
}

Test(config, redis_tls_errors_name_the_field)
{
    const char *d = conn_certs();
    char redis[4096], msg[1024], garbage[600];
    garbage_pem(d, garbage, sizeof(garbage));
    expect_error(redis_config("{\"url\": \"redis://h:6379\", \"tls\": {\"verify\": false}}"),
                 "CONFIG redis.tls: needs a rediss:// url");
    snprintf(redis, sizeof(redis), "{\"url\": \"rediss://h\", \"tls\": {\"ca_file\": \"%s\"}}",
             garbage);
    snprintf(msg, sizeof(msg),
             "CONFIG redis.tls.ca_file: %s holds no usable PEM certificate: no certificate or "
             "crl found",
             garbage);
    expect_error(redis_config(redis), msg);
    snprintf(redis, sizeof(redis),
             "{\"url\": \"rediss://h\", \"tls\": {\"cert_file\": \"%s/client.crt\", "
             "\"key_file\": \"%s/server.key\"}}",
             d, d);
    snprintf(msg, sizeof(msg),
             "CONFIG redis.tls.key_file: %s/server.key is no usable PEM private key of cert_file "
             "(encrypted keys are not supported): key values mismatch",
             d);
    expect_error(redis_config(redis), msg);
    snprintf(redis, sizeof(redis),
             "{\"url\": \"rediss://h\", \"tls\": {\"cert_file\": \"%s/client.crt\"}}", d);
    expect_error(redis_config(redis),
                 "CONFIG redis.tls.key_file: is required with cert_file (a client certificate "
                 "needs both)");
    expect_error(redis_config("{\"url\": \"rediss://h\", \"tls\": {\"min_version\": \"1.1\"}}"),
                 "CONFIG redis.tls.min_version: must be \"1.2\" or \"1.3\"");
    expect_error(redis_config("{\"url\": \"rediss://h\", \"tls\": {\"server_name\": \"a b\"}}"),
                 "CONFIG redis.tls.server_name: must be a host name or an address");
    expect_error(redis_config("{\"url\": \"rediss://h\", \"sentinel_tls\": true}"),
                 "CONFIG redis.sentinel_tls: needs sentinels");
    expect_error(
        redis_config("{\"url\": \"rediss://h\", \"tls\": {\"ca_file\": \"/nonexistent\"}}"),
        "CONFIG redis.tls.ca_file: cannot read /nonexistent: No such file or directory");
}

/* ---------------------------------------------------------------- the front door's HTTPS */

/* A minimal config whose http section holds http_extra after its listen (NULL: no listen). */
static char *
https_config(const char *http_extra)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "{" MIN_SECTIONS ", \"http\": {%s}}", http_extra);
    return buf;
}

Test(config, http_tls_files_checked_at_load)
{
    const char *d = conn_certs();
    char extra[2048], msg[1024], garbage[600];
    snprintf(extra, sizeof(extra),
             "\"listen\": \"127.0.0.1:8443\", \"tls\": {\"cert_file\": \"%s/server.crt\", "
             "\"key_file\": \"%s/server.key\"}",
             d, d);
    pb_config *cfg = must_parse(https_config(extra));
    cr_expect(strstr(cfg->http.tls_cert_file, "/server.crt") != NULL);
    cr_expect(strstr(cfg->http.tls_key_file, "/server.key") != NULL);
    pb_config_free(cfg);
    /* Plain HTTP is the default, and an empty tls object is plain HTTP too. */
    cfg = must_parse(https_config("\"listen\": \"127.0.0.1:8080\""));
    cr_expect(cfg->http.tls_cert_file == NULL && cfg->http.tls_key_file == NULL);
    pb_config_free(cfg);
    cfg = must_parse(https_config("\"listen\": \"127.0.0.1:8080\", \"tls\": {}"));
    cr_expect(cfg->http.tls_cert_file == NULL);
    pb_config_free(cfg);

    /* Both or neither. */
    snprintf(extra, sizeof(extra),
             "\"listen\": \"127.0.0.1:8443\", \"tls\": {\"cert_file\": \"%s/server.crt\"}", d);
    expect_error(https_config(extra),
                 "CONFIG http.tls.key_file: is required with cert_file (HTTPS needs both)");
    snprintf(extra, sizeof(extra),
             "\"listen\": \"127.0.0.1:8443\", \"tls\": {\"key_file\": \"%s/server.key\"}", d);
    expect_error(https_config(extra),
                 "CONFIG http.tls.cert_file: is required with key_file (HTTPS needs both)");
    /* Without a front door there is nothing to serve it. */
    snprintf(extra, sizeof(extra),
             "\"tls\": {\"cert_file\": \"%s/server.crt\", \"key_file\": \"%s/server.key\"}", d, d);
    expect_error(https_config(extra), "CONFIG http.tls: needs http.listen");
    expect_error(https_config("\"listen\": \"127.0.0.1:8443\", \"tls\": {\"ca_file\": \"x\"}"),
                 "CONFIG http.tls.ca_file: unknown key");
    expect_error(https_config("\"listen\": \"127.0.0.1:8443\", \"tls\": true"),
                 "CONFIG http.tls: must be an object");
    snprintf(extra, sizeof(extra),
             "\"listen\": \"127.0.0.1:8443\", \"tls\": {\"cert_file\": \"/nonexistent/c.pem\", "
             "\"key_file\": \"%s/server.key\"}",
             d);
    expect_error(https_config(extra), "CONFIG http.tls.cert_file: cannot read /nonexistent/c.pem: "
                                      "No such file or directory");

    /* Files OpenSSL cannot use: not PEM, a key of another certificate. */
    snprintf(garbage, sizeof(garbage), "%s/garbage.pem", d);
    FILE *f = fopen(garbage, "w");
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    snprintf(extra, sizeof(extra),
             "\"listen\": \"127.0.0.1:8443\", \"tls\": {\"cert_file\": \"%s\", \"key_file\": "
             "\"%s/server.key\"}",
             garbage, d);
    snprintf(msg, sizeof(msg),
             "CONFIG http.tls.cert_file: %s holds no usable PEM certificate: PEM lib", garbage);
    expect_error(https_config(extra), msg);
    snprintf(extra, sizeof(extra),
             "\"listen\": \"127.0.0.1:8443\", \"tls\": {\"cert_file\": \"%s/server.crt\", "
             "\"key_file\": \"%s/server2.key\"}",
             d, d);
    snprintf(msg, sizeof(msg),
             "CONFIG http.tls.key_file: %s/server2.key is no usable PEM private key of cert_file "
             "(encrypted keys are not supported): key values mismatch",
             d);
    expect_error(https_config(extra), msg);
}

static char *
azure_config(const char *base_url, const char *extra)
{
    return typed_config("azure", base_url, extra);
}

Test(config, azure_keys_parsed_and_checked)
{
    setenv("PB_TEST_AZ_KEY", "az-key-value", 1);
    setenv("PB_TEST_AZ_TOKEN", "az-token-value", 1);
    pb_config *cfg = must_parse(azure_config("https://acme.openai.azure.com/openai/v1/",
                                             "\"api_key_env\": \"PB_TEST_AZ_KEY\""));
    const pb_provider_conf *p = &cfg->providers[0];
    cr_expect_eq(p->type, PB_PROVIDER_AZURE);
    cr_expect_str_eq(p->base_url, "https://acme.openai.azure.com/openai/v1");
    cr_expect_null(p->api_version);
    cr_expect_str_eq(p->api_key, "az-key-value");
    cr_expect_eq(cfg->models[0].capabilities, pb_config_default_capabilities(PB_PROVIDER_OPENAI),
                 "azure models have openai's capabilities");
    pb_config_free(cfg);
    cfg = must_parse(azure_config("https://acme.openai.azure.com",
                                  "\"api_version\": \"2024-10-21\", \"bearer_token_env\": "
                                  "\"PB_TEST_AZ_TOKEN\""));
    p = &cfg->providers[0];
    cr_expect_str_eq(p->api_version, "2024-10-21");
    cr_expect_str_eq(p->bearer_token, "az-token-value");
    cr_expect_null(p->api_key);
    pb_config_free(cfg);

    expect_error(azure_config("https://acme.openai.azure.com", NULL),
                 "CONFIG providers.g.base_url: must end in /openai/v1 (the v1 API), or set "
                 "api_version for the deployment API");
    expect_error(
        azure_config("https://acme.openai.azure.com/openai/v1", "\"api_version\": \"2024-10-21\""),
        "CONFIG providers.g.base_url: with api_version is the resource's address "
        "(https://<resource>.openai.azure.com), without /openai");
    expect_error(azure_config("https://acme.openai.azure.com", "\"api_version\": \"2024 10\""),
                 "CONFIG providers.g.api_version: must be 1 to 32 characters [A-Za-z0-9.-] "
                 "(e.g. 2024-10-21)");
    expect_error(azure_config("https://acme.openai.azure.com", "\"api_version\": \"\""),
                 "CONFIG providers.g.api_version: must be a string of 1 to 32 bytes");
    expect_error(azure_config("https://x/openai/v1", "\"api_key_env\": \"PB_TEST_AZ_KEY\", "
                                                     "\"bearer_token_env\": \"PB_TEST_AZ_TOKEN\""),
                 "CONFIG providers.g.bearer_token_env: and api_key_env: give one of them");
    setenv("PB_TEST_AZ_BAD", "tok\r\nX-Evil: 1", 1);
    expect_error(azure_config("https://x/openai/v1", "\"bearer_token_env\": \"PB_TEST_AZ_BAD\""),
                 "CONFIG providers.g.bearer_token_env: the value of PB_TEST_AZ_BAD contains "
                 "control characters");
    expect_error(conn_config("https://gw/v1", "\"api_version\": \"2024-10-21\""),
                 "CONFIG providers.g.api_version: is only for type \"azure\"");
    expect_error(
        conn_config("https://gw/v1", "\"bearer_token_env\": \"PB_TEST_AZ_TOKEN\""),
        "CONFIG providers.g.bearer_token_env: is only for types \"azure\" and \"bedrock\"");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"api-key\": \"x\"}"),
                 "CONFIG providers.g.headers.api-key: is set by planb itself");
}

Test(config, bedrock_keys_parsed_and_checked)
{
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    unsetenv("AWS_SESSION_TOKEN");
    setenv("PB_TEST_BR_ID", "AKIDOTHER", 1);
    setenv("PB_TEST_BR_SECRET", "other-secret", 1);
    setenv("PB_TEST_BR_TOKEN", "session-token", 1);
    setenv("PB_TEST_BR_KEY", "bedrock-api-key", 1);
    /* No base_url: the region's public endpoint; credentials from AWS's usual variables. */
    pb_config *cfg =
        must_parse("{\"providers\": {\"b\": {\"type\": \"bedrock\", \"region\": "
                   "\"eu-west-3\"}}, \"models\": {\"m\": {\"provider\": \"b\"}}, " MIN_ROUTES "}");
    const pb_provider_conf *p = &cfg->providers[0];
    cr_expect_eq(p->type, PB_PROVIDER_BEDROCK);
    cr_expect_str_eq(p->base_url, "https://bedrock-runtime.eu-west-3.amazonaws.com");
    cr_expect_str_eq(p->region, "eu-west-3");
    cr_expect_str_eq(p->aws_access_key_id_env, "AWS_ACCESS_KEY_ID");
    cr_expect_str_eq(p->aws_access_key_id, "AKIDEXAMPLE");
    cr_expect_str_eq(p->aws_secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    cr_expect_null(p->aws_session_token);
    cr_expect_null(p->bearer_token_env);
    cr_expect_eq(cfg->models[0].capabilities & (PB_CAP_JSON_SCHEMA | PB_CAP_LOGPROBS), 0u,
                 "Converse has no JSON mode and no logprobs");
    cr_expect_neq(cfg->models[0].capabilities & PB_CAP_TOOLS, 0u);
    pb_config_free(cfg);
    cfg = must_parse(typed_config("bedrock",
                                  "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com",
                                  "\"region\": \"us-east-1\", \"aws_access_key_id_env\": "
                                  "\"PB_TEST_BR_ID\", \"aws_secret_access_key_env\": "
                                  "\"PB_TEST_BR_SECRET\", \"aws_session_token_env\": "
                                  "\"PB_TEST_BR_TOKEN\""));
    p = &cfg->providers[0];
    cr_expect_str_eq(p->base_url, "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com");
    cr_expect_str_eq(p->aws_access_key_id, "AKIDOTHER");
    cr_expect_str_eq(p->aws_session_token, "session-token");
    pb_config_free(cfg);
    cfg = must_parse(typed_config("bedrock", "https://b.example",
                                  "\"region\": \"us-east-1\", \"bearer_token_env\": "
                                  "\"PB_TEST_BR_KEY\""));
    cr_expect_str_eq(cfg->providers[0].bearer_token, "bedrock-api-key");
    cr_expect_null(cfg->providers[0].aws_access_key_id);
    pb_config_free(cfg);

    expect_error(typed_config("bedrock", "https://b.example", NULL),
                 "CONFIG providers.g.region: must be an AWS region, 1 to 32 characters [a-z0-9-] "
                 "(e.g. us-east-1)");
    expect_error(typed_config("bedrock", "https://b.example", "\"region\": \"US East\""),
                 "CONFIG providers.g.region: must be an AWS region, 1 to 32 characters [a-z0-9-] "
                 "(e.g. us-east-1)");
    expect_error(typed_config("bedrock", "https://b.example",
                              "\"region\": \"us-east-1\", \"api_key_env\": \"PB_TEST_BR_KEY\""),
                 "CONFIG providers.g.api_key_env: is not for type \"bedrock\": use "
                 "bearer_token_env (a Bedrock API key) or AWS credentials "
                 "(aws_access_key_id_env, ...)");
    expect_error(
        typed_config("bedrock", "https://b.example",
                     "\"region\": \"us-east-1\", \"bearer_token_env\": "
                     "\"PB_TEST_BR_KEY\", \"aws_session_token_env\": \"PB_TEST_BR_TOKEN\""),
        "CONFIG providers.g.aws_session_token_env: and bearer_token_env: give one way to "
        "sign in");
    setenv("PB_TEST_BR_BAD", "AKID\r\nX-Evil: 1", 1);
    expect_error(typed_config("bedrock", "https://b.example",
                              "\"region\": \"us-east-1\", \"aws_access_key_id_env\": "
                              "\"PB_TEST_BR_BAD\""),
                 "CONFIG providers.g.aws_access_key_id_env: the value of PB_TEST_BR_BAD contains "
                 "control characters");
    expect_error(conn_config("https://gw/v1", "\"region\": \"us-east-1\""),
                 "CONFIG providers.g.region: is only for type \"bedrock\"");
    expect_error(conn_config("https://gw/v1", "\"aws_access_key_id_env\": \"PB_TEST_BR_ID\""),
                 "CONFIG providers.g.aws_access_key_id_env: is only for type \"bedrock\"");
}

Test(config, query_parsed_encoded_and_bounded)
{
    pb_config *cfg = must_parse(conn_config(
        "https://gw/v1", "\"query\": {\"team\": \"search\", \"route\": \"eu west&x=1\", "
                         "\"e\": \"\", \"u\": \"caf\\u00e9\"}"));
    cr_expect_str_eq(cfg->providers[0].query, "team=search&route=eu%20west%26x%3D1&e=&u=caf%C3%A9");
    pb_config_free(cfg);
    cfg = must_parse(conn_config("https://gw/v1", "\"query\": {}"));
    cr_expect_null(cfg->providers[0].query);
    pb_config_free(cfg);
    cfg = must_parse(conn_config("https://gw/v1", NULL));
    cr_expect_null(cfg->providers[0].query);
    pb_config_free(cfg);
    /* Azure's api-version is planb's when api_version sets it; on the v1 API it is free. */
    expect_error(azure_config("https://x", "\"api_version\": \"2024-10-21\", \"query\": "
                                           "{\"api-version\": \"1\"}"),
                 "CONFIG providers.g.query.api-version: is set by planb itself (api_version)");
    cfg = must_parse(
        azure_config("https://x/openai/v1", "\"query\": {\"api-version\": \"preview\"}"));
    cr_expect_str_eq(cfg->providers[0].query, "api-version=preview");
    pb_config_free(cfg);
    expect_error(conn_config("https://gw/v1", "\"query\": {\"a b\": \"1\"}"),
                 "CONFIG providers.g.query.a b: a parameter name is 1 to 64 characters "
                 "[A-Za-z0-9._~-]");
    expect_error(conn_config("https://gw/v1", "\"query\": {\"a\": 1}"),
                 "CONFIG providers.g.query.a: must be a string of at most 4096 bytes of text "
                 "without control characters");
    expect_error(conn_config("https://gw/v1", "\"query\": {\"a\": \"x\\ny\"}"),
                 "CONFIG providers.g.query.a: must be a string of at most 4096 bytes of text "
                 "without control characters");
    expect_error(conn_config("https://gw/v1", "\"query\": []"),
                 "CONFIG providers.g.query: must be an object");
    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof(many), "\"query\": {");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"q%d\": \"v\"", i ? ", " : "", i);
    snprintf(many + n, sizeof(many) - n, "}");
    expect_error(conn_config("https://gw/v1", many),
                 "CONFIG providers.g.query: at most 32 parameters");
}

Test(config, header_values_from_env_in_either_spelling)
{
    setenv("PB_TEST_GW_KEY", "gw-secret-value", 1);
    pb_config *cfg = must_parse(conn_config(
        "https://gw/v1", "\"headers\": {\"X-A\": {\"env\": \"PB_TEST_GW_KEY\"}, \"X-B\": "
                         "{\"value_env\": \"PB_TEST_GW_KEY\"}}"));
    cr_assert_eq(cfg->providers[0].n_headers, 2);
    cr_expect_str_eq(cfg->providers[0].headers[0], "X-A: gw-secret-value");
    cr_expect_str_eq(cfg->providers[0].headers[1], "X-B: gw-secret-value");
    pb_config_free(cfg);
    unsetenv("PB_TEST_UNSET_VAR");
    expect_error(
        conn_config("https://gw/v1", "\"headers\": {\"X-A\": {\"env\": \"PB_TEST_UNSET_VAR\"}}"),
        "CONFIG providers.g.headers.X-A.env: PB_TEST_UNSET_VAR is not set");
    expect_error(conn_config("https://gw/v1",
                             "\"headers\": {\"X-A\": {\"env\": \"PB_TEST_GW_KEY\", "
                             "\"value_env\": \"PB_TEST_GW_KEY\"}}"),
                 "CONFIG providers.g.headers.X-A.env: give env or value_env, not both");
    expect_error(conn_config("https://gw/v1", "\"headers\": {\"X-A\": {}}"),
                 "CONFIG providers.g.headers.X-A.env: is required");
}

Test(config, gemini_provider_defaults)
{
    setenv("PB_TEST_GEMINI_KEY", "AIzaTest", 1);
    pb_config *cfg = must_parse(
        "{\"providers\": {\"g\": {\"type\": \"gemini\", \"api_key_env\": \"PB_TEST_GEMINI_KEY\"},"
        " \"h\": {\"type\": \"gemini\", \"base_url\": \"http://127.0.0.1:9/v1beta/\"}},"
        " \"models\": {\"flash\": {\"provider\": \"g\", \"model\": \"gemini-2.5-flash\","
        " \"price_in_per_mtok\": 0.3, \"price_out_per_mtok\": 2.5}, \"m\": {\"provider\": \"h\"}},"
        " \"routes\": {\"default\": {\"chain\": [\"flash\", \"m\"]}}}");
    cr_expect_eq(cfg->providers[0].type, PB_PROVIDER_GEMINI);
    cr_expect_str_eq(cfg->providers[0].base_url,
                     "https://generativelanguage.googleapis.com/v1beta");
    cr_expect_str_eq(cfg->providers[0].api_key, "AIzaTest");
    cr_expect_str_eq(cfg->providers[1].base_url, "http://127.0.0.1:9/v1beta");
    cr_expect_eq(cfg->models[0].capabilities, PB_CAP_ALL & ~(unsigned)PB_CAP_LOGPROBS);
    cr_expect_float_eq(cfg->models[0].price_out_per_mtok, 2.5, 1e-12);
    pb_config_free(cfg);
    expect_error("{\"providers\": {\"g\": {\"type\": \"gemini\", \"headers\": {\"X-Goog-Api-Key\":"
                 " \"k\"}}}, \"models\": {\"m\": {\"provider\": \"g\"}}, " MIN_ROUTES "}",
                 "CONFIG providers.g.headers.X-Goog-Api-Key: is set by planb itself");
}

Test(config, telemetry_section)
{
    pb_config *cfg = must_parse("{" MIN_SECTIONS "}");
    cr_expect_null(cfg->telemetry.traces_url, "off without an endpoint");
    cr_expect_str_eq(cfg->telemetry.service_name, "planb");
    cr_expect(!cfg->telemetry.protobuf && cfg->telemetry.keep_fallbacks);
    cr_expect_eq(cfg->telemetry.max_queue_spans, 8192);
    pb_config_free(cfg);
    setenv("PB_TEST_OTLP_AUTH", "Basic c2VjcmV0", 1);
    cfg = must_parse("{" MIN_SECTIONS ", \"telemetry\": {\"otlp_endpoint\": "
                     "\"https://otlp.example:4318/\", \"encoding\": \"protobuf\", \"sample\": 0.25,"
                     " \"headers\": {\"Authorization\": {\"env\": \"PB_TEST_OTLP_AUTH\"},"
                     " \"x-tenant\": \"acme\"}, \"max_queue_spans\": 100, \"batch_spans\": 500}}");
    cr_expect_str_eq(cfg->telemetry.traces_url, "https://otlp.example:4318/v1/traces");
    cr_expect(cfg->telemetry.protobuf);
    cr_expect(cfg->telemetry.sample == 0.25);
    cr_expect_eq(cfg->telemetry.n_headers, 2);
    cr_expect_str_eq(cfg->telemetry.headers[0], "Authorization: Basic c2VjcmV0",
                     "a collector's Authorization is allowed, from the environment");
    cr_expect_eq(cfg->telemetry.batch_spans, 100, "a batch never exceeds the queue");
    pb_config_free(cfg);
    expect_error("{" MIN_SECTIONS ", \"telemetry\": {\"otlp_endpoint\": \"collector:4318\"}}",
                 "CONFIG telemetry.otlp_endpoint: must be an http:// or https:// address without "
                 "a query (\"http://collector:4318\")");
    expect_error("{" MIN_SECTIONS ", \"telemetry\": {\"otlp_endpoint\": \"http://c\", "
                 "\"encoding\": \"grpc\"}}",
                 "CONFIG telemetry.encoding: must be \"json\" or \"protobuf\"");
    expect_error("{" MIN_SECTIONS ", \"telemetry\": {\"headers\": {\"Content-Type\": \"x\"}}}",
                 "CONFIG telemetry.headers.Content-Type: is set by planb itself");
    expect_error("{" MIN_SECTIONS ", \"telemetry\": {\"sample\": 2}}",
                 "CONFIG telemetry.sample: must be a number from 0 to 1");
    expect_error("{" MIN_SECTIONS ", \"telemetry\": {\"exporter\": \"x\"}}",
                 "CONFIG telemetry.exporter: unknown key");
}
