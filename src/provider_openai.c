/* provider_openai.c -- the OpenAI chat-completions dialect.
 *
 * Spoken by OpenAI itself and by most self-hosted and routing servers (vLLM,
 * Ollama, llama.cpp server, OpenRouter), so it asks for nothing beyond the
 * common subset: model, messages and the sampling params the job set. A reply
 * is usable only when choices[0].message.content holds text; anything else a
 * server may send with a 200 is a BAD_REPLY, which the chain retries. */
#include "planb/provider.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int
openai_build_request(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                     pb_http_request *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    out->url = pb_xasprintf("%s/chat/completions", p->base_url);
    /* Local servers run without a key; an empty variable means the same. */
    bool has_key = p->api_key != NULL && p->api_key[0] != '\0';
    if (pb_provider_add_header(out, err, "Content-Type: application/json") != PB_OK ||
        (has_key &&
         pb_provider_add_header(out, err, "Authorization: Bearer %s", p->api_key) != PB_OK))
        return PB_ERR;

    json_object *root = json_object_new_object();
    json_object_object_add(root, "model",
                           json_object_new_string(m->upstream ? m->upstream : m->name));
    json_object *msgs = json_object_new_array();
    for (size_t i = 0; i < req->n_messages; i++) {
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "role",
                               json_object_new_string(pb_request_role_name(req->messages[i].role)));
        json_object_object_add(msg, "content", json_object_new_string(req->messages[i].content));
        json_object_array_add(msgs, msg);
    }
    json_object_object_add(root, "messages", msgs);
    if (req->max_tokens >= 0)
        json_object_object_add(root, "max_tokens", json_object_new_int(req->max_tokens));
    if (isfinite(req->temperature))
        json_object_object_add(root, "temperature", pb_provider_new_double(req->temperature));
    if (isfinite(req->top_p))
        json_object_object_add(root, "top_p", pb_provider_new_double(req->top_p));
    pb_provider_set_json_body(out, root);
    return PB_OK;
}

/* The choices[0].message.content node, or NULL with *why set. */
static json_object *
openai_find_content(json_object *root, const char **why)
{
    json_object *error, *choices, *message, *content;
    /* Some routers (OpenRouter) report upstream failures as a 200 with an error object. */
    if (json_object_object_get_ex(root, "error", &error) && error != NULL)
        *why = "error object in a 200 reply";
    else if (!json_object_object_get_ex(root, "choices", &choices) ||
             !json_object_is_type(choices, json_type_array) ||
             json_object_array_length(choices) == 0)
        *why = "no choices";
    else if (!json_object_object_get_ex(json_object_array_get_idx(choices, 0), "message",
                                        &message) ||
             !json_object_is_type(message, json_type_object))
        *why = "choices[0] has no message";
    else if (!json_object_object_get_ex(message, "content", &content) || content == NULL)
        *why = "content is null or missing";
    else if (!json_object_is_type(content, json_type_string) &&
             !json_object_is_type(content, json_type_array))
        *why = "content is not text";
    else
        return content;
    return NULL;
}

/* content is a string, or (newer servers, multimodal replies) an array of typed parts. */
static char *
openai_content_text(json_object *content)
{
    if (json_object_is_type(content, json_type_array))
        return pb_provider_join_text(content);
    const char *s = json_object_get_string(content);
    return s[0] != '\0' ? pb_xstrdup(s) : NULL;
}

static int
openai_parse_response(const char *body, size_t len, pb_completion *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    json_object *root = pb_provider_parse_object(body, len, err);
    if (root == NULL)
        return PB_ERR;
    const char *why = NULL;
    json_object *content = openai_find_content(root, &why);
    if (content != NULL && (out->content = openai_content_text(content)) == NULL)
        why = "empty content";
    if (why != NULL) {
        json_object_put(root);
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
        return PB_ERR;
    }
    json_object *usage = NULL;
    json_object_object_get_ex(root, "usage", &usage);
    out->prompt_tokens = pb_provider_tokens(usage, "prompt_tokens");
    out->completion_tokens = pb_provider_tokens(usage, "completion_tokens");
    json_object_put(root);
    return PB_OK;
}

const pb_provider_ops pb_provider_openai = {
    .type_name = "openai",
    .build_request = openai_build_request,
    .parse_response = openai_parse_response,
    .classify = pb_provider_classify_status,
};
