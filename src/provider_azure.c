/* provider_azure.c -- Azure OpenAI: OpenAI's Chat Completions at Azure's URLs, with its key.
 *
 * The body, the reply, the stream events and what is dropped are OpenAI's
 * (provider_openai.c); what differs is where a call goes and how it is
 * authenticated (docs/providers.md "Azure OpenAI"):
 *   v1 API          <base_url>/chat/completions, base_url ending in /openai/v1,
 *                   the deployment name as "model"
 *   deployment API  <base_url>/openai/deployments/<model>/chat/completions
 *                   ?api-version=<api_version>, base_url the resource's address
 * with the key in api-key (api_key_env) or an Entra ID token as Bearer
 * (bearer_token_env). And one outcome differs: Azure's content filter refuses
 * a prompt with a 400 whose error.code is content_filter (innererror /
 * inner_error holding content_filter_result). That is the provider's answer to
 * the job, as a 200 stopped with finish_reason content_filter is, so it is an
 * answer (finish_reason content_filter, no text) rather than a retry or a
 * fallback: another model behind the same policy would refuse it too, and the
 * producer is owed the reason. */
#include "planb/provider.h"
#include "planb/provider_openai.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static int
azure_build_request(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                    pb_http_request *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    if (p->api_version == NULL) {
        out->url = pb_xasprintf("%s/chat/completions", p->base_url);
    } else {
        /* The deployment name percent-encoded as one path segment: names are [A-Za-z0-9._-] on
         * Azure, but a "/" or "?" in a config must not change the URL's shape. api_version is
         * [A-Za-z0-9.-] (config.c). */
        char *dep = curl_easy_escape(NULL, m->upstream ? m->upstream : m->name, 0);
        pb_assert(dep != NULL);
        out->url = pb_xasprintf("%s/openai/deployments/%s/chat/completions?api-version=%s",
                                p->base_url, dep, p->api_version);
        curl_free(dep);
    }
    bool has_key = p->api_key != NULL && p->api_key[0] != '\0';
    bool has_token = p->bearer_token != NULL && p->bearer_token[0] != '\0';
    if (pb_provider_add_header(out, err, "Content-Type: application/json") != PB_OK ||
        (has_key && pb_provider_add_header(out, err, "api-key: %s", p->api_key) != PB_OK) ||
        (has_token &&
         pb_provider_add_header(out, err, "Authorization: Bearer %s", p->bearer_token) != PB_OK) ||
        pb_provider_add_conn(p, out, err) != PB_OK)
        return PB_ERR;
    pb_provider_openai_body(m, req, out);
    return PB_OK;
}

/* obj[key] when it is a string, else NULL. */
static const char *
azure_string(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* True when body is Azure's content-filter refusal: {"error": {"code": "content_filter", ...}}
 * or an error whose innererror / inner_error code is ResponsibleAIPolicyViolation. */
static bool
azure_is_content_filter(const char *body, size_t len)
{
    static const char *const hint[] = {"content_filter", "responsibleaipolicyviolation", NULL};
    if (!pb_provider_body_mentions(body, len, hint))
        return false; /* most error bodies: no JSON parse */
    json_object *root = pb_provider_parse_object(body, len, NULL), *e, *inner;
    bool yes = false;
    if (root != NULL && json_object_object_get_ex(root, "error", &e) &&
        json_object_is_type(e, json_type_object)) {
        const char *code = azure_string(e, "code");
        yes = code != NULL && strcmp(code, "content_filter") == 0;
        if (!yes && (json_object_object_get_ex(e, "innererror", &inner) ||
                     json_object_object_get_ex(e, "inner_error", &inner))) {
            code = azure_string(inner, "code");
            yes = code != NULL && strcmp(code, "ResponsibleAIPolicyViolation") == 0;
        }
    }
    json_object_put(root);
    return yes;
}

/* A 400 content-filter refusal is an answer (parse_response turns its body into one); every
 * other status means what it means for any provider. */
static pb_class
azure_classify(long status, const char *body, size_t len)
{
    if (status == 400 && azure_is_content_filter(body, len))
        return PB_CLASS_OK;
    return pb_provider_classify_status(status, body, len);
}

/* OpenAI's reply, or Azure's content-filter error body (what azure_classify passed on), as a
 * completion stopped by the filter with no text. */
static int
azure_parse_response(const char *body, size_t len, const pb_request *req, pb_completion *out,
                     pb_error *err)
{
    if (pb_provider_openai.parse_response(body, len, req, out, err) == PB_OK)
        return PB_OK;
    if (!azure_is_content_filter(body, len))
        return PB_ERR;
    memset(out, 0, sizeof(*out));
    out->content = pb_xstrdup("");
    out->finish_reason = "content_filter";
    out->prompt_tokens = out->completion_tokens = out->cached_tokens = out->reasoning_tokens = -1;
    return PB_OK;
}

/* What OpenAI refuses, drops and streams, Azure does the same way (the ops are OpenAI's). */
static const char *
azure_refuses(const pb_request *req)
{
    return pb_provider_openai.refuses(req);
}

static size_t
azure_dropped(const pb_request *req, char (*names)[PB_PROVIDER_PARAM_LEN], size_t max)
{
    return pb_provider_openai.dropped(req, names, max);
}

static int
azure_stream_event(pb_delta *d, const char *event, const char *data, size_t len, pb_error *err)
{
    return pb_provider_openai.stream_event(d, event, data, len, err);
}

const pb_provider_ops pb_provider_azure = {
    .type_name = "azure",
    .build_request = azure_build_request,
    .parse_response = azure_parse_response,
    .classify = azure_classify,
    .refuses = azure_refuses,
    .dropped = azure_dropped,
    .stream_event = azure_stream_event,
};
