/* test_cache.c -- the cache key (what changes it and what must not) and the cache.redis config.
 *
 * Jobs are parsed with the real job parser against tests/fixtures/config/full.json,
 * so the key is tested on requests exactly as the chain sees them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/cache.h"
#include "planb/job.h"

static pb_config *cfg;

static void
setup(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/config/full.json", PB_SRC_DIR);
    pb_error err = {0};
    cfg = pb_config_load(path, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
}

static void
teardown(void)
{
    pb_config_free(cfg);
}

/* The key of a job given as JSON (must parse), for a chain of provider types (a bit set). */
static void
key_of_types(const char *job, unsigned types, char out[PB_CACHE_KEY_LEN + 1])
{
    pb_request *req = NULL;
    char *bad_id = NULL;
    pb_error err = {0};
    cr_assert_eq(pb_job_parse(job, strlen(job), cfg, &req, &bad_id, &err), PB_OK, "%s: %s", job,
                 err.msg);
    pb_cache_key(req, types, out);
    pb_request_free(req);
}

/* The key of a job on an OpenAI-compatible chain. */
static void
key_of(const char *job, char out[PB_CACHE_KEY_LEN + 1])
{
    key_of_types(job, 1u << PB_PROVIDER_OPENAI, out);
}

static void
expect_same(const char *a, const char *b)
{
    char ka[PB_CACHE_KEY_LEN + 1], kb[PB_CACHE_KEY_LEN + 1];
    key_of(a, ka);
    key_of(b, kb);
    cr_expect_str_eq(ka, kb, "keys differ:\n %s\n %s", a, b);
}

static void
expect_different(const char *a, const char *b)
{
    char ka[PB_CACHE_KEY_LEN + 1], kb[PB_CACHE_KEY_LEN + 1];
    key_of(a, ka);
    key_of(b, kb);
    cr_expect_str_neq(ka, kb, "keys equal:\n %s\n %s", a, b);
}

#define USER_HI "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

TestSuite(cache, .init = setup, .fini = teardown);

Test(cache, key_is_64_lowercase_hex)
{
    char k[PB_CACHE_KEY_LEN + 1];
    key_of("{" USER_HI "}", k);
    cr_expect_eq(strlen(k), 64);
    cr_expect_eq(strspn(k, "0123456789abcdef"), 64);
}

Test(cache, delivery_fields_do_not_change_the_key)
{
    const char *base = "{" USER_HI "}";
    expect_same(base, "{\"id\":\"a\"," USER_HI "}");
    expect_same("{\"id\":\"a\"," USER_HI "}", "{\"id\":\"b\"," USER_HI "}");
    expect_same(base, "{" USER_HI ",\"meta\":{\"trace\":\"x\"}}");
    expect_same(base, "{" USER_HI ",\"route\":\"cheap\"}");
    expect_same(base, "{" USER_HI ",\"models\":[\"claude-sonnet\"]}");
    expect_same(base, "{" USER_HI ",\"critical\":true,\"reply\":true,\"deadline_ms\":5000}");
    expect_same(base, "{" USER_HI ",\"cache\":\"refresh\"}");
    expect_same(base, "{" USER_HI ",\"params\":{\"max_tokens\":null}}");
}

Test(cache, tenant_changes_the_key)
{
    expect_different("{" USER_HI "}", "{" USER_HI ",\"tenant\":\"acme\"}");
    expect_different("{" USER_HI ",\"tenant\":\"acme\"}", "{" USER_HI ",\"tenant\":\"globex\"}");
    expect_same("{" USER_HI ",\"tenant\":\"acme\"}", "{\"tenant\":\"acme\"," USER_HI "}");
}

Test(cache, provider_types_of_the_chain_change_the_key)
{
    char openai[PB_CACHE_KEY_LEN + 1], bedrock[PB_CACHE_KEY_LEN + 1], both[PB_CACHE_KEY_LEN + 1],
        again[PB_CACHE_KEY_LEN + 1];
    key_of_types("{" USER_HI "}", 1u << PB_PROVIDER_OPENAI, openai);
    key_of_types("{" USER_HI "}", 1u << PB_PROVIDER_BEDROCK, bedrock);
    key_of_types("{" USER_HI "}", 1u << PB_PROVIDER_OPENAI | 1u << PB_PROVIDER_BEDROCK, both);
    key_of_types("{\"id\":\"z\"," USER_HI "}", 1u << PB_PROVIDER_BEDROCK | 1u << PB_PROVIDER_OPENAI,
                 again);
    cr_expect_str_neq(openai, bedrock);
    cr_expect_str_neq(openai, both);
    cr_expect_str_neq(bedrock, both);
    cr_expect_str_eq(both, again, "the same set of types, whatever the job id");
}

Test(cache, params_change_the_key)
{
    const char *base = "{" USER_HI "}";
    expect_different(base, "{" USER_HI ",\"params\":{\"max_tokens\":10}}");
    expect_different("{" USER_HI ",\"params\":{\"max_tokens\":10}}",
                     "{" USER_HI ",\"params\":{\"max_tokens\":11}}");
    expect_different(base, "{" USER_HI ",\"params\":{\"temperature\":0}}");
    expect_different("{" USER_HI ",\"params\":{\"temperature\":0.2}}",
                     "{" USER_HI ",\"params\":{\"temperature\":0.3}}");
    expect_different(base, "{" USER_HI ",\"params\":{\"top_p\":0.5}}");
    /* a value moved from one parameter to another is another request */
    expect_different("{" USER_HI ",\"params\":{\"temperature\":0.5}}",
                     "{" USER_HI ",\"params\":{\"top_p\":0.5}}");
    expect_same("{" USER_HI ",\"params\":{\"temperature\":0.5,\"max_tokens\":7}}",
                "{" USER_HI ",\"params\":{\"max_tokens\":7,\"temperature\":0.5}}");
}

Test(cache, messages_roles_and_boundaries_change_the_key)
{
    expect_different("{" USER_HI "}", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi!\"}]}");
    expect_different(
        "{\"messages\":[{\"role\":\"system\",\"content\":\"x\"},{\"role\":\"user\",\"content\":"
        "\"hi\"}]}",
        "{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"},{\"role\":\"user\","
        "\"content\":\"hi\"}]}");
    /* the same text split differently across messages */
    expect_different("{\"messages\":[{\"role\":\"user\",\"content\":\"ab\"},{\"role\":\"user\","
                     "\"content\":\"c\"}]}",
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
                     "\"content\":\"bc\"}]}");
    /* order matters */
    expect_different("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
                     "\"content\":\"b\"}]}",
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"b\"},{\"role\":\"user\","
                     "\"content\":\"a\"}]}");
    /* a tenant cannot be forged into the conversation */
    expect_different("{\"tenant\":\"a\"," USER_HI "}",
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"t1:a\"},{\"role\":\"user\","
                     "\"content\":\"hi\"}]}");
}

Test(cache, cache_redis_defaults_to_the_queue_url_and_rejects_prefix)
{
    pb_error err = {0};
    pb_config *c = pb_config_parse(
        "{\"redis\":{\"url\":\"redis://10.0.0.1:6380/2\"},"
        "\"providers\":{\"p\":{\"type\":\"openai\",\"base_url\":\"http://x/v1\"}},"
        "\"models\":{\"m\":{\"provider\":\"p\"}},\"routes\":{\"default\":{\"chain\":[\"m\"]}},"
        "\"cache\":{\"redis\":{}}}",
        &err);
    cr_assert_not_null(c, "%s", err.msg);
    cr_assert_not_null(c->cache_redis);
    cr_expect_str_eq(c->cache_redis->redis_host, "10.0.0.1");
    cr_expect_eq(c->cache_redis->redis_port, 6380);
    cr_expect_eq(c->cache_redis->redis_db, 2);
    pb_config_free(c);

    c = pb_config_parse(
        "{\"providers\":{\"p\":{\"type\":\"openai\",\"base_url\":\"http://x/v1\"}},"
        "\"models\":{\"m\":{\"provider\":\"p\"}},\"routes\":{\"default\":{\"chain\":[\"m\"]}},"
        "\"cache\":{\"redis\":{\"url\":\"redis://cachehost:7000\"}}}",
        &err);
    cr_assert_not_null(c, "%s", err.msg);
    cr_expect_str_eq(c->cache_redis->redis_host, "cachehost");
    cr_expect_eq(c->cache_redis->redis_port, 7000);
    cr_expect_str_eq(c->redis_host, "127.0.0.1");
    pb_config_free(c);

    cr_expect_null(pb_config_parse(
        "{\"providers\":{\"p\":{\"type\":\"openai\",\"base_url\":\"http://x/v1\"}},"
        "\"models\":{\"m\":{\"provider\":\"p\"}},\"routes\":{\"default\":{\"chain\":[\"m\"]}},"
        "\"cache\":{\"redis\":{\"prefix\":\"x\"}}}",
        &err));
    cr_expect_str_eq(err.msg, "CONFIG cache.redis.prefix: unknown key");
    cr_expect_null(pb_config_parse(
        "{\"providers\":{\"p\":{\"type\":\"openai\",\"base_url\":\"http://x/v1\"}},"
        "\"models\":{\"m\":{\"provider\":\"p\"}},\"routes\":{\"default\":{\"chain\":[\"m\"]}},"
        "\"cache\":{\"redis\":{\"url\":\"http://x\"}}}",
        &err));
    cr_expect(strncmp(err.msg, "CONFIG cache.redis.url:", 23) == 0, "%s", err.msg);

    c = pb_config_parse(
        "{\"providers\":{\"p\":{\"type\":\"openai\",\"base_url\":\"http://x/v1\"}},"
        "\"models\":{\"m\":{\"provider\":\"p\"}},\"routes\":{\"default\":{\"chain\":[\"m\"]}}}",
        &err);
    cr_assert_not_null(c, "%s", err.msg);
    cr_expect_null(c->cache_redis);
    pb_config_free(c);
}

/* The key covers the whole canonical request: tools, response_format, stop, seed, images,
 * tool calls and their ids (LiteLLM #42400: parameters left out of the key serve answers made
 * under other settings). */
Test(cache, every_param_and_message_field_changes_the_key)
{
    const char *base = "{" USER_HI "}";
    const char *params[] = {
        "\"seed\":1",
        "\"stop\":[\"x\"]",
        "\"response_format\":{\"type\":\"json_object\"}",
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]",
        "\"frequency_penalty\":1",
        "\"reasoning_effort\":\"low\"",
        "\"anthropic\":{\"top_k\":3}",
    };
    char a[512], b[512];
    for (size_t i = 0; i < sizeof(params) / sizeof(*params); i++) {
        snprintf(a, sizeof(a), "{" USER_HI ",\"params\":{%s}}", params[i]);
        expect_different(base, a);
    }
    expect_different("{" USER_HI ",\"params\":{\"max_tokens\":5}}",
                     "{" USER_HI ",\"params\":{\"max_completion_tokens\":5}}");
    snprintf(a, sizeof(a),
             "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
             "\"text\":\"hi\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
             "\"https://a.b/1.png\"}}]}]}");
    snprintf(b, sizeof(b),
             "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
             "\"text\":\"hi\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
             "\"https://a.b/2.png\"}}]}]}");
    expect_different(a, b);
    expect_different(base, a);
#define CONVO(id, result)                                                                          \
    "{\"messages\":[{\"role\":\"user\",\"content\":\"w?\"},{\"role\":\"assistant\",\"content\":"   \
    "null,\"tool_calls\":[{\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"f\","  \
    "\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"" id                           \
    "\",\"content\":\"" result "\"}]}"
    expect_different(CONVO("c1", "sun"), CONVO("c1", "rain"));
    expect_different(CONVO("c1", "sun"), CONVO("c2", "sun"));
    expect_same(CONVO("c1", "sun"), CONVO("c1", "sun"));
    expect_same("{" USER_HI ",\"params\":{\"seed\":1,\"stop\":\"x\"}}",
                "{" USER_HI ",\"params\":{\"stop\":\"x\",\"seed\":1}}");
}
