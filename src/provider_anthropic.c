/* provider_anthropic.c -- the Anthropic Messages dialect.
 *
 * Jobs arrive in the OpenAI shape (system messages anywhere, any role order).
 * The Messages API is stricter: the system prompt is a separate field, turns
 * must alternate starting with the user, text blocks must not be blank, a
 * final assistant turn (a prefill) must not end in whitespace, and max_tokens
 * is required. build_request converts, so the shape of a job that OpenAI
 * would take is never why Anthropic rejects it. Error replies carry a typed
 * {"type":"error","error":{"type":...}} body, which classify reads before
 * falling back to the shared status table. */
#include "planb/provider.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "planb/buf.h"

#define ANTHROPIC_VERSION_DEFAULT "2023-06-01"
/* Stands in for the user turn the API requires first when a job starts elsewhere. */
#define ANTHROPIC_CONTINUED "(continued)"

/* Error types whose meaning does not depend on the status they came with. */
static const struct {
    const char *type; /* error.type in the body */
    pb_class cls;     /* what it means for the chain */
} anthropic_error_types[] = {
    {"overloaded_error", PB_CLASS_RETRY},
    {"rate_limit_error", PB_CLASS_RETRY},
    {"api_error", PB_CLASS_RETRY},
    {"timeout_error", PB_CLASS_RETRY},
    {"authentication_error", PB_CLASS_FALLBACK},
    {"permission_error", PB_CLASS_FALLBACK},
    {"not_found_error", PB_CLASS_FALLBACK},
    {"request_too_large", PB_CLASS_FALLBACK},
    {"billing_error", PB_CLASS_FALLBACK},
};

/* An invalid_request_error saying one of these is about this model's limits or this
 * account (the API reports an empty balance this way), not about the job. */
static const char *const anthropic_not_the_job[] = {"prompt is too long", "context", "too long",
                                                    "credit balance", NULL};

static bool
anthropic_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool
anthropic_is_blank(const char *s)
{
    while (anthropic_is_space(*s))
        s++;
    return *s == '\0';
}

static void
anthropic_add_message(json_object *msgs, pb_role role, const char *text, size_t len)
{
    json_object *msg = json_object_new_object();
    json_object_object_add(
        msg, "role", json_object_new_string(role == PB_ROLE_ASSISTANT ? "assistant" : "user"));
    json_object_object_add(msg, "content", json_object_new_string_len(text, (int)len));
    json_object_array_add(msgs, msg);
}

/* Emits the merged turn held in turn (if any) and empties it. */
static void
anthropic_flush_turn(json_object *msgs, pb_role role, pb_buf *turn, bool is_last)
{
    size_t len = turn->len;
    if (is_last && role == PB_ROLE_ASSISTANT)
        while (len > 0 && anthropic_is_space(turn->data[len - 1]))
            len--;
    if (len > 0) {
        if (role == PB_ROLE_ASSISTANT && json_object_array_length(msgs) == 0)
            anthropic_add_message(msgs, PB_ROLE_USER, ANTHROPIC_CONTINUED,
                                  strlen(ANTHROPIC_CONTINUED));
        anthropic_add_message(msgs, role, turn->data, len);
    }
    pb_buf_reset(turn);
}

/* Adds "system" (all system messages, joined) and "messages" (the rest, consecutive
 * same-role messages joined so roles alternate, user first) to root. */
static void
anthropic_add_conversation(json_object *root, const pb_request *req)
{
    pb_buf sys, turn;
    pb_buf_init(&sys, SIZE_MAX);
    pb_buf_init(&turn, SIZE_MAX);
    json_object *msgs = json_object_new_array();
    pb_role role = PB_ROLE_SYSTEM; /* role of the turn being merged; SYSTEM: none yet */
    for (size_t i = 0; i < req->n_messages; i++) {
        const pb_message *msg = &req->messages[i];
        if (anthropic_is_blank(msg->content))
            continue;
        pb_buf *dst = &sys;
        if (msg->role != PB_ROLE_SYSTEM) {
            if (msg->role != role)
                anthropic_flush_turn(msgs, role, &turn, false);
            role = msg->role;
            dst = &turn;
        }
        if (dst->len > 0)
            pb_buf_append(dst, "\n\n", 2);
        pb_buf_append(dst, msg->content, strlen(msg->content));
    }
    anthropic_flush_turn(msgs, role, &turn, true);
    if (json_object_array_length(msgs) == 0)
        anthropic_add_message(msgs, PB_ROLE_USER, ANTHROPIC_CONTINUED, strlen(ANTHROPIC_CONTINUED));
    if (sys.len > 0)
        json_object_object_add(root, "system", json_object_new_string_len(sys.data, (int)sys.len));
    json_object_object_add(root, "messages", msgs);
    pb_buf_free(&sys);
    pb_buf_free(&turn);
}

static int
anthropic_build_request(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                        pb_http_request *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    out->url = pb_xasprintf("%s/messages", p->base_url);
    bool has_key = p->api_key != NULL && p->api_key[0] != '\0';
    const char *version = p->anthropic_version ? p->anthropic_version : ANTHROPIC_VERSION_DEFAULT;
    if (pb_provider_add_header(out, err, "Content-Type: application/json") != PB_OK ||
        (has_key && pb_provider_add_header(out, err, "x-api-key: %s", p->api_key) != PB_OK) ||
        pb_provider_add_header(out, err, "anthropic-version: %s", version) != PB_OK)
        return PB_ERR;

    json_object *root = json_object_new_object();
    json_object_object_add(root, "model",
                           json_object_new_string(m->upstream ? m->upstream : m->name));
    json_object_object_add(
        root, "max_tokens",
        json_object_new_int(req->max_tokens >= 0 ? req->max_tokens : m->max_tokens_default));
    anthropic_add_conversation(root, req);
    /* OpenAI allows temperature up to 2; Anthropic rejects anything outside 0..1. */
    if (isfinite(req->temperature))
        json_object_object_add(root, "temperature",
                               pb_provider_new_double(fmin(fmax(req->temperature, 0.0), 1.0)));
    if (isfinite(req->top_p))
        json_object_object_add(root, "top_p", pb_provider_new_double(req->top_p));
    pb_provider_set_json_body(out, root);
    return PB_OK;
}

static int
anthropic_parse_response(const char *body, size_t len, pb_completion *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    json_object *root = pb_provider_parse_object(body, len, err);
    if (root == NULL)
        return PB_ERR;
    json_object *type, *error, *content, *usage = NULL;
    const char *why = NULL;
    if ((json_object_object_get_ex(root, "type", &type) &&
         json_object_is_type(type, json_type_string) &&
         strcmp(json_object_get_string(type), "error") == 0) ||
        (json_object_object_get_ex(root, "error", &error) && error != NULL))
        why = "error object in a 200 reply";
    else if (!json_object_object_get_ex(root, "content", &content) ||
             !json_object_is_type(content, json_type_array))
        why = "no content";
    else if ((out->content = pb_provider_join_text(content)) == NULL)
        why = "no text in content";
    if (why != NULL) {
        json_object_put(root);
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
        return PB_ERR;
    }
    json_object_object_get_ex(root, "usage", &usage);
    out->prompt_tokens = pb_provider_tokens(usage, "input_tokens");
    out->completion_tokens = pb_provider_tokens(usage, "output_tokens");
    json_object_put(root);
    return PB_OK;
}

/* error.type of a typed error body, and error.message (NULL when absent). Borrowed from root. */
static const char *
anthropic_error_type(json_object *root, const char **message)
{
    json_object *error, *type, *msg;
    *message = NULL;
    if (!json_object_object_get_ex(root, "error", &error) ||
        !json_object_object_get_ex(error, "type", &type) ||
        !json_object_is_type(type, json_type_string))
        return NULL;
    if (json_object_object_get_ex(error, "message", &msg) &&
        json_object_is_type(msg, json_type_string))
        *message = json_object_get_string(msg);
    return json_object_get_string(type);
}

/* The typed error decides where it is unambiguous; an invalid_request_error not about
 * length or credit is left to the status table, which makes it INVALID at 400 (the job is wrong)
 * but retries it at 5xx and falls back at other 4xx (then it is not the job's fault). */
static pb_class
anthropic_classify(long status, const char *body, size_t len)
{
    json_object *root = pb_provider_parse_object(body, len, NULL);
    const char *message = NULL;
    const char *type = root ? anthropic_error_type(root, &message) : NULL;
    pb_class cls = pb_provider_classify_status(status, body, len);
    for (size_t i = 0;
         type != NULL && i < sizeof(anthropic_error_types) / sizeof(*anthropic_error_types); i++)
        if (strcmp(type, anthropic_error_types[i].type) == 0)
            cls = anthropic_error_types[i].cls;
    if (type != NULL && message != NULL && strcmp(type, "invalid_request_error") == 0 &&
        pb_provider_body_mentions(message, strlen(message), anthropic_not_the_job))
        cls = PB_CLASS_FALLBACK;
    json_object_put(root);
    return cls;
}

const pb_provider_ops pb_provider_anthropic = {
    .type_name = "anthropic",
    .build_request = anthropic_build_request,
    .parse_response = anthropic_parse_response,
    .classify = anthropic_classify,
};
