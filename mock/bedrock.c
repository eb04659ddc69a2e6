/* bedrock.c -- Amazon Bedrock's Converse API (POST /model/<id>/converse and /converse-stream)
 * in planb-mock.
 *
 * Authentication comes first, as at AWS: a Bedrock API key (Bearer) or a SigV4 signature,
 * checked with planb's own verifier (sigv4.c) against the mock's credentials over the request
 * exactly as it arrived, so a signature over a different path, body or header is a 403
 * InvalidSignatureException the tests see. Then the body as Bedrock validates it: known
 * fields only, messages alternating user and assistant from a user turn, content blocks of one
 * kind each and never blank, toolUse only in assistant turns and each answered by a toolResult
 * of the same id in the next user turn, a toolConfig whenever tool blocks appear, a final
 * assistant turn not ending in white space, inferenceConfig ranges, tool names and
 * toolChoice. Answers are the other dialects' (an echo of the last user text, "tool said: ..."
 * after tool results, the behaviour's tool calls or text) in Converse's shapes; usage counts
 * words. Streams are application/vnd.amazon.eventstream frames (eventstream.c's encoder),
 * each carrying the "p" padding field the real service adds; errors are {"message"} with the
 * exception's name in x-amzn-ErrorType (main.c sends the header). */
#include "bedrock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "planb/buf.h"
#include "planb/eventstream.h"

#define BEDROCK_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define BEDROCK_STOP_MAX   2500 /* stopSequences the API takes */
#define BEDROCK_ID_MAX     64   /* toolUseId and tool name length */
#define BEDROCK_SCOPE_MAX  256  /* longest Credential= value read */

/* Sets err's message (printf-style) and is status: `return bedrock_fail(err, 400, ...)`. */
#define bedrock_fail(err, status, ...) (pb_error_set((err), 1, __VA_ARGS__), (status))

/* The credential scope of "AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request,
 * ...": the key id and the region into key and region; false when malformed. */
static bool
bedrock_scope(const char *authorization, char *key, char *region, size_t cap)
{
    const char *c = strstr(authorization, "Credential=");
    if (c == NULL)
        return false;
    c += strlen("Credential=");
    size_t n = strcspn(c, ", ");
    char scope[BEDROCK_SCOPE_MAX];
    if (n == 0 || n >= sizeof(scope))
        return false;
    memcpy(scope, c, n);
    scope[n] = '\0';
    char *parts[5], *save = NULL;
    size_t k = 0;
    for (char *t = strtok_r(scope, "/", &save); t != NULL && k < 5; t = strtok_r(NULL, "/", &save))
        parts[k++] = t;
    if (k != 5 || strlen(parts[0]) >= cap || strlen(parts[2]) >= cap)
        return false;
    snprintf(key, cap, "%s", parts[0]);
    snprintf(region, cap, "%s", parts[2]);
    return true;
}

int
pb_mock_bedrock_authorize(const pb_sigv4_received *rcv, const char *authorization,
                          const char *key_id, const char *secret, const char **type, pb_error *err)
{
    if (authorization != NULL && strncmp(authorization, "Bearer ", 7) == 0 &&
        authorization[7] != '\0')
        return 0;
    char key[BEDROCK_SCOPE_MAX / 2], region[BEDROCK_SCOPE_MAX / 2];
    if (authorization == NULL || strncmp(authorization, "AWS4-HMAC-SHA256 ", 17) != 0) {
        *type = "MissingAuthenticationTokenException";
        pb_error_set(err, 1, "Missing Authentication Token");
        return 403;
    }
    if (!bedrock_scope(authorization, key, region, sizeof(key)) || strcmp(key, key_id) != 0) {
        *type = "UnrecognizedClientException";
        pb_error_set(err, 1, "The security token included in the request is invalid.");
        return 403;
    }
    pb_error why;
    if (pb_sigv4_verify(rcv, region, "bedrock", key_id, secret, NULL, &why) != PB_OK) {
        *type = "InvalidSignatureException";
        pb_error_set(err, 1,
                     "The request signature we calculated does not match the signature you "
                     "provided. Check your AWS Secret Access Key and signing method. (%s)",
                     why.msg);
        return 403;
    }
    return 0;
}

/* Elements of a, 0 when a is no array (json-c asserts on the type). */
static size_t
bedrock_len(json_object *a)
{
    return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* Keys of o, 0 when o is no object. */
static int
bedrock_keys(json_object *o)
{
    return json_object_is_type(o, json_type_object) ? json_object_object_length(o) : 0;
}

/* A tool name or toolUseId as the API takes them: [a-zA-Z0-9_-], 1 to 64. */
static bool
bedrock_name_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    return n > 0 && n <= BEDROCK_ID_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static bool
bedrock_blank(const char *s)
{
    return s[strspn(s, " \t\r\n\f\v")] == '\0';
}

/* One content block (of a user message when user): exactly one kind, well-formed; NULL or
 * why not. */
static const char *
bedrock_block_why(json_object *b, bool user)
{
    static const char *const kinds[] = {
        "text",         "image",      "document",         "video", "toolUse", "toolResult",
        "guardContent", "cachePoint", "reasoningContent", NULL};
    const char *unknown;
    if (!json_object_is_type(b, json_type_object) || bedrock_keys(b) != 1 ||
        !pb_mock_only_keys(b, kinds, &unknown))
        return "must hold exactly one of text, image, document, toolUse, toolResult";
    json_object_object_foreach(b, k, v)
    {
        if (strcmp(k, "text") == 0 &&
            (!json_object_is_type(v, json_type_string) || bedrock_blank(json_object_get_string(v))))
            return "is blank. Add text to the text field, and try again";
        if (strcmp(k, "image") == 0) {
            const char *fmt = pb_mock_str(v, "format"),
                       *bytes = pb_mock_str(pb_mock_get(v, "source"), "bytes");
            if (fmt == NULL ||
                (strcmp(fmt, "png") != 0 && strcmp(fmt, "jpeg") != 0 && strcmp(fmt, "gif") != 0 &&
                 strcmp(fmt, "webp") != 0) ||
                bytes == NULL || bytes[0] == '\0')
                return "image: needs format png|jpeg|gif|webp and source.bytes";
        }
        if (strcmp(k, "toolUse") == 0) {
            static const char *const known[] = {"toolUseId", "name", "input", NULL};
            if (user)
                return "toolUse: only in an assistant message";
            if (!pb_mock_only_keys(v, known, &unknown) ||
                !bedrock_name_ok(pb_mock_str(v, "toolUseId")) ||
                !bedrock_name_ok(pb_mock_str(v, "name")) ||
                !json_object_is_type(pb_mock_get(v, "input"), json_type_object))
                return "toolUse: needs toolUseId, name and an object input";
        }
        if (strcmp(k, "toolResult") == 0) {
            static const char *const known[] = {"toolUseId", "content", "status", NULL};
            json_object *c = pb_mock_get(v, "content");
            const char *st = pb_mock_str(v, "status");
            if (!user)
                return "toolResult: only in a user message";
            if (!pb_mock_only_keys(v, known, &unknown) ||
                !bedrock_name_ok(pb_mock_str(v, "toolUseId")) ||
                !json_object_is_type(c, json_type_array) || bedrock_len(c) == 0 ||
                (pb_mock_get(v, "status") != NULL &&
                 (st == NULL || (strcmp(st, "success") != 0 && strcmp(st, "error") != 0))))
                return "toolResult: needs toolUseId and non-empty content";
            for (size_t i = 0; i < bedrock_len(c); i++) {
                json_object *item = json_object_array_get_idx(c, i), *t = pb_mock_get(item, "text"),
                            *j = pb_mock_get(item, "json");
                if (bedrock_keys(item) != 1 ||
                    (t == NULL && j == NULL && pb_mock_get(item, "image") == NULL &&
                     pb_mock_get(item, "document") == NULL) ||
                    (t != NULL && (!json_object_is_type(t, json_type_string) ||
                                   bedrock_blank(json_object_get_string(t)))) ||
                    (j != NULL && !json_object_is_type(j, json_type_object)))
                    return "toolResult.content: each item is one non-blank text, json object, "
                           "image or document";
            }
        }
    }
    return NULL;
}

/* Whether content holds a block of kind whose key is id (toolUse / toolResult ids). */
static bool
bedrock_has_id(json_object *msg, const char *kind, const char *id)
{
    json_object *content = pb_mock_get(msg, "content");
    for (size_t i = 0; msg != NULL && i < bedrock_len(content); i++) {
        const char *other =
            pb_mock_str(pb_mock_get(json_object_array_get_idx(content, i), kind), "toolUseId");
        if (other != NULL && strcmp(other, id) == 0)
            return true;
    }
    return false;
}

/* Each toolResult answers a toolUse of the assistant turn before it; each toolUse is
 * answered in the user turn after it (when there is one). */
static int
bedrock_tool_pairs(json_object *msgs, size_t i, bool *tools, pb_error *err)
{
    json_object *m = json_object_array_get_idx(msgs, i), *content = pb_mock_get(m, "content");
    json_object *prev = i > 0 ? json_object_array_get_idx(msgs, i - 1) : NULL;
    json_object *next = i + 1 < bedrock_len(msgs) ? json_object_array_get_idx(msgs, i + 1) : NULL;
    for (size_t k = 0; k < bedrock_len(content); k++) {
        json_object *b = json_object_array_get_idx(content, k), *v;
        if ((v = pb_mock_get(b, "toolResult")) != NULL) {
            *tools = true;
            if (!bedrock_has_id(prev, "toolUse", pb_mock_str(v, "toolUseId")))
                return bedrock_fail(err, 400,
                                    "The toolResult blocks at messages.%zu.content contain "
                                    "toolUseIds (block %zu) that don't match the previous turn's "
                                    "toolUse blocks.",
                                    i, k);
        }
        if ((v = pb_mock_get(b, "toolUse")) != NULL) {
            *tools = true;
            if (next != NULL && !bedrock_has_id(next, "toolResult", pb_mock_str(v, "toolUseId")))
                return bedrock_fail(err, 400,
                                    "Expected toolResult blocks at messages.%zu.content for the "
                                    "toolUse in messages.%zu.",
                                    i + 1, i);
        }
    }
    return 0;
}

static int
bedrock_validate_messages(json_object *msgs, bool *tools, pb_error *err)
{
    static const char *const known[] = {"role", "content", NULL};
    size_t n = json_object_is_type(msgs, json_type_array) ? bedrock_len(msgs) : 0;
    if (n == 0)
        return bedrock_fail(err, 400, "messages: must be a non-empty array ");
    const char *unknown;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(msgs, i), *content = pb_mock_get(m, "content");
        const char *role = pb_mock_str(m, "role");
        if (!json_object_is_type(m, json_type_object) || !pb_mock_only_keys(m, known, &unknown) ||
            role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            return bedrock_fail(err, 400, "messages.%zu: needs role user or assistant", i);
        if (strcmp(role, i % 2 == 0 ? "user" : "assistant") != 0)
            return bedrock_fail(err, 400, "%s",
                                i == 0 ? "A conversation must start with a user message. Try "
                                         "again with a conversation that starts with a user "
                                         "message."
                                       : "A conversation must alternate between user and "
                                         "assistant roles. Make sure the conversation alternates "
                                         "between user and assistant roles and try again.");
        if (!json_object_is_type(content, json_type_array) || bedrock_len(content) == 0)
            return bedrock_fail(err, 400, "messages.%zu.content: must not be empty", i);
        for (size_t k = 0; k < bedrock_len(content); k++) {
            const char *why = bedrock_block_why(json_object_array_get_idx(content, k), i % 2 == 0);
            if (why != NULL) {
                pb_error_set(err, 1, "The ContentBlock object at messages.%zu.content.%zu %s.", i,
                             k, why);
                return 400;
            }
        }
        int bad = bedrock_tool_pairs(msgs, i, tools, err);
        if (bad != 0)
            return bad;
    }
    json_object *last = json_object_array_get_idx(msgs, n - 1),
                *content = pb_mock_get(last, "content");
    const char *tail =
        pb_mock_str(json_object_array_get_idx(content, bedrock_len(content) - 1), "text");
    if (n % 2 == 0 && tail != NULL && tail[0] != '\0' &&
        strchr(" \t\r\n", tail[strlen(tail) - 1]) != NULL)
        return bedrock_fail(err, 400,
                            "The final assistant content cannot end with trailing whitespace "
                            "(messages.%zu)",
                            n - 1);
    return 0;
}

static int
bedrock_validate_inference(json_object *ic, pb_error *err)
{
    static const char *const known[] = {"maxTokens", "temperature", "topP", "stopSequences", NULL};
    const char *unknown;
    json_object *v;
    if (ic == NULL)
        return 0;
    if (!json_object_is_type(ic, json_type_object) || !pb_mock_only_keys(ic, known, &unknown))
        return bedrock_fail(err, 400,
                            "inferenceConfig: an object of maxTokens, temperature, topP and "
                            "stopSequences");
    if ((v = pb_mock_get(ic, "maxTokens")) != NULL &&
        (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1))
        return bedrock_fail(err, 400, "inferenceConfig.maxTokens: must be at least 1");
    if (!pb_mock_number_in(pb_mock_get(ic, "temperature"), 0, 1))
        return bedrock_fail(err, 400, "inferenceConfig.temperature: must be 0 to 1");
    if (!pb_mock_number_in(pb_mock_get(ic, "topP"), 0, 1))
        return bedrock_fail(err, 400, "inferenceConfig.topP: must be 0 to 1");
    if ((v = pb_mock_get(ic, "stopSequences")) != NULL) {
        bool ok = json_object_is_type(v, json_type_array) && bedrock_len(v) <= BEDROCK_STOP_MAX;
        for (size_t i = 0; ok && i < bedrock_len(v); i++) {
            json_object *s = json_object_array_get_idx(v, i);
            ok = json_object_is_type(s, json_type_string) && json_object_get_string_len(s) > 0;
        }
        if (!ok)
            return bedrock_fail(err, 400, "inferenceConfig.stopSequences: non-empty strings");
    }
    return 0;
}

/* toolConfig: tools of toolSpec {name, description, inputSchema.json (type object)}, and a
 * toolChoice of auto, any or a tool it names; required when the conversation has tool blocks. */
static int
bedrock_validate_tools(json_object *tc, bool tool_blocks, pb_error *err)
{
    static const char *const known[] = {"tools", "toolChoice", NULL};
    const char *unknown;
    if (tc == NULL)
        return tool_blocks ? bedrock_fail(err, 400,
                                          "The toolConfig field must be defined when using "
                                          "toolUse and toolResult content blocks.")
                           : 0;
    json_object *tools = pb_mock_get(tc, "tools"), *choice = pb_mock_get(tc, "toolChoice");
    if (!json_object_is_type(tc, json_type_object) || !pb_mock_only_keys(tc, known, &unknown) ||
        !json_object_is_type(tools, json_type_array) || bedrock_len(tools) == 0)
        return bedrock_fail(err, 400, "toolConfig.tools: must be a non-empty array");
    for (size_t i = 0; i < bedrock_len(tools); i++) {
        json_object *spec = pb_mock_get(json_object_array_get_idx(tools, i), "toolSpec");
        json_object *schema = pb_mock_get(pb_mock_get(spec, "inputSchema"), "json");
        const char *type = pb_mock_str(schema, "type"), *desc = pb_mock_str(spec, "description");
        if (!bedrock_name_ok(pb_mock_str(spec, "name")) ||
            !json_object_is_type(schema, json_type_object) ||
            (type != NULL && strcmp(type, "object") != 0) ||
            (pb_mock_get(spec, "description") != NULL && (desc == NULL || desc[0] == '\0')))
            return bedrock_fail(err, 400,
                                "toolConfig.tools.%zu.toolSpec: needs a valid name and an "
                                "inputSchema.json of type object",
                                i);
    }
    if (choice == NULL)
        return 0;
    json_object *named = pb_mock_get(choice, "tool");
    const char *name = pb_mock_str(named, "name");
    bool found = false;
    for (size_t i = 0; name != NULL && i < bedrock_len(tools); i++) {
        const char *n =
            pb_mock_str(pb_mock_get(json_object_array_get_idx(tools, i), "toolSpec"), "name");
        found |= n != NULL && strcmp(n, name) == 0;
    }
    if (bedrock_keys(choice) != 1 ||
        (named == NULL && pb_mock_get(choice, "auto") == NULL &&
         pb_mock_get(choice, "any") == NULL) ||
        (named != NULL && !found))
        return bedrock_fail(err, 400,
                            "toolConfig.toolChoice: one of auto, any or a tool named in "
                            "toolConfig.tools");
    return 0;
}

int
pb_mock_bedrock_validate(const pb_mock_request *r, pb_error *err)
{
    static const char *const known[] = {"messages",
                                        "system",
                                        "inferenceConfig",
                                        "toolConfig",
                                        "guardrailConfig",
                                        "additionalModelRequestFields",
                                        "additionalModelResponseFieldPaths",
                                        "promptVariables",
                                        "requestMetadata",
                                        "performanceConfig",
                                        NULL};
    const char *unknown;
    if (!pb_mock_only_keys(r->body, known, &unknown)) {
        pb_error_set(err, 1, "Malformed input request: extraneous key [%s] is not permitted",
                     unknown);
        return 400;
    }
    json_object *sys = pb_mock_get(r->body, "system");
    for (size_t i = 0; sys != NULL && i < bedrock_len(sys); i++) {
        const char *t = pb_mock_str(json_object_array_get_idx(sys, i), "text");
        if (t == NULL || bedrock_blank(t))
            return bedrock_fail(err, 400, "system.%zu: a text block that is not blank", i);
    }
    if (sys != NULL && !json_object_is_type(sys, json_type_array))
        return bedrock_fail(err, 400, "system: must be an array of blocks");
    bool tools = false;
    int bad = bedrock_validate_messages(pb_mock_get(r->body, "messages"), &tools, err);
    if (bad == 0)
        bad = bedrock_validate_inference(pb_mock_get(r->body, "inferenceConfig"), err);
    if (bad == 0)
        bad = bedrock_validate_tools(pb_mock_get(r->body, "toolConfig"), tools, err);
    return bad;
}

/* The first toolResult of the last message, or NULL. */
static json_object *
bedrock_last_result(json_object *msgs)
{
    size_t n = bedrock_len(msgs);
    json_object *content = pb_mock_get(json_object_array_get_idx(msgs, n - 1), "content");
    for (size_t i = 0; i < bedrock_len(content); i++) {
        json_object *res = pb_mock_get(json_object_array_get_idx(content, i), "toolResult");
        if (res != NULL)
            return res;
    }
    return NULL;
}

static void
bedrock_answer_make(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                    pb_mock_answer *a)
{
    json_object *msgs = pb_mock_get(r->body, "messages"), *last_user = NULL;
    pb_buf_init(&a->text, SIZE_MAX);
    pb_buf_append(&a->text, "", 0);
    a->calls = NULL;
    a->prompt = pb_mock_texts(pb_mock_get(r->body, "system"), NULL);
    for (size_t i = 0; i < bedrock_len(msgs); i++) {
        json_object *m = json_object_array_get_idx(msgs, i);
        a->prompt += pb_mock_texts(pb_mock_get(m, "content"), NULL);
        if (strcmp(pb_mock_str(m, "role"), "user") == 0)
            last_user = m;
    }
    if (kind == PB_MOCK_BODY_EMPTY)
        return;
    if (text != NULL) {
        pb_buf_append(&a->text, text, strlen(text));
        return;
    }
    json_object *result = bedrock_last_result(msgs);
    if (r->tool_calls != NULL && result == NULL) {
        a->calls = json_object_get(r->tool_calls);
        return;
    }
    if (result == NULL) {
        pb_buf_append(&a->text, "echo: ", 6);
        pb_mock_texts(pb_mock_get(last_user, "content"), &a->text);
        return;
    }
    json_object *item = json_object_array_get_idx(pb_mock_get(result, "content"), 0);
    json_object *json = pb_mock_get(item, "json");
    const char *said = json != NULL ? json_object_to_json_string_ext(json, BEDROCK_JSON_FLAGS)
                                    : pb_mock_str(item, "text");
    pb_buf_append(&a->text, "tool said: ", 11);
    if (said != NULL)
        pb_buf_append(&a->text, said, strlen(said));
}

/* stopReason after the behaviour's finish_reason, else the natural one. */
static const char *
bedrock_stop_reason(const pb_mock_request *r, bool calls)
{
    if (r->finish_reason != NULL && strcmp(r->finish_reason, "length") == 0)
        return "max_tokens";
    if (r->finish_reason != NULL && strcmp(r->finish_reason, "content_filter") == 0)
        return "content_filtered";
    return calls ? "tool_use" : "end_turn";
}

static json_object *
bedrock_usage(long prompt, long out)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "inputTokens", json_object_new_int64(prompt));
    json_object_object_add(u, "outputTokens", json_object_new_int64(out));
    json_object_object_add(u, "totalTokens", json_object_new_int64(prompt + out));
    return u;
}

static json_object *
bedrock_metrics(void)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "latencyMs", json_object_new_int(1));
    return m;
}

/* The toolUseId of call k of reply id (the same streamed or not). */
static void
bedrock_call_id(char *out, size_t cap, unsigned long id, size_t k)
{
    snprintf(out, cap, "tooluse_mock_%lu_%zu", id, k);
}

/* The call's input: its arguments, or broken JSON text when the behaviour asks. */
static const char *
bedrock_args_text(const pb_mock_request *r, json_object *call)
{
    return r->bad_tool_args
               ? "{\"city\": \"Par"
               : json_object_to_json_string_ext(pb_mock_get(call, "arguments"), BEDROCK_JSON_FLAGS);
}

char *
pb_mock_bedrock_reply(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                      unsigned long id, size_t pad_to, size_t *len)
{
    json_object *o = json_object_new_object();
    if (kind == PB_MOCK_BODY_MISSING) {
        json_object_object_add(o, "metrics", bedrock_metrics());
        return pb_mock_dialect_take_json(o, len);
    }
    pb_mock_answer a;
    bedrock_answer_make(r, kind, text, &a);
    const char *stop = bedrock_stop_reason(r, a.calls != NULL);
    json_object *content = json_object_new_array();
    long out = 1;
    for (size_t k = 0; a.calls != NULL && k < bedrock_len(a.calls); k++) {
        json_object *call = json_object_array_get_idx(a.calls, k), *use = json_object_new_object(),
                    *b = json_object_new_object();
        char cid[64];
        bedrock_call_id(cid, sizeof(cid), id, k);
        json_object_object_add(use, "toolUseId", json_object_new_string(cid));
        json_object_object_add(use, "name", json_object_get(pb_mock_get(call, "name")));
        json_object_object_add(use, "input",
                               r->bad_tool_args ? json_object_new_string(bedrock_args_text(r, call))
                                                : json_object_get(pb_mock_get(call, "arguments")));
        json_object_object_add(b, "toolUse", use);
        json_object_array_add(content, b);
    }
    if (a.calls == NULL && strcmp(stop, "content_filtered") != 0) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "text", json_object_new_string_len(a.text.data, (int)a.text.len));
        json_object_array_add(content, b);
        out = pb_mock_dialect_words(a.text.data, a.text.len);
    }
    json_object *msg = json_object_new_object(), *output = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string("assistant"));
    json_object_object_add(msg, "content", content);
    json_object_object_add(output, "message", msg);
    json_object_object_add(o, "output", output);
    json_object_object_add(o, "stopReason", json_object_new_string(stop));
    json_object_object_add(o, "usage", bedrock_usage(a.prompt, out));
    json_object_object_add(o, "metrics", bedrock_metrics());
    json_object_put(a.calls);
    pb_buf_free(&a.text);
    char *body = pb_mock_dialect_take_json(o, len);
    return pb_mock_pad_json(body, len, pad_to);
}

/* Appends one frame of kind: headers :event-type (or :exception-type), :content-type and
 * :message-type, and o (taken) with the "p" padding field as the payload. */
static void
bedrock_frame(pb_buf *out, bool exception, const char *type, json_object *o)
{
    pb_eventstream_header h[3] = {
        {exception ? ":exception-type" : ":event-type", PB_ES_STRING, type, strlen(type), 0},
        {":content-type", PB_ES_STRING, "application/json", 16, 0},
        {":message-type", PB_ES_STRING, exception ? "exception" : "event", exception ? 9 : 5, 0},
    };
    if (!exception)
        json_object_object_add(o, "p", json_object_new_string("abcdefghijklmnopqrstuvwxyzABCDEF"));
    size_t n;
    const char *js = json_object_to_json_string_length(o, BEDROCK_JSON_FLAGS, &n);
    int rc = pb_eventstream_encode(out, h, 3, js, n);
    pb_assert(rc == PB_OK);
    json_object_put(o);
}

static void
bedrock_event(pb_mock_stream *s, pb_mock_event_kind kind, const char *type, json_object *o)
{
    pb_mock_event *e = pb_mock_stream_add(s, kind);
    bedrock_frame(&s->data, false, type, o);
    e->len = s->data.len - e->off;
}

/* {"contentBlockIndex": i} plus key: value (taken) when key is set. */
static json_object *
bedrock_block_event(int i, const char *key, json_object *value)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "contentBlockIndex", json_object_new_int(i));
    if (key != NULL)
        json_object_object_add(o, key, value);
    return o;
}

/* delta {key: {...}} holding field: the n bytes at p. */
static json_object *
bedrock_delta(const char *kind, const char *field, const char *p, size_t n)
{
    json_object *d = json_object_new_object();
    if (kind == NULL) {
        json_object_object_add(d, field, json_object_new_string_len(p, (int)n));
        return d;
    }
    json_object *inner = json_object_new_object();
    json_object_object_add(inner, field, json_object_new_string_len(p, (int)n));
    json_object_object_add(d, kind, inner);
    return d;
}

/* A toolUse block k: its start (id and name), then its input in two pieces. */
static void
bedrock_stream_call(pb_mock_stream *s, const pb_mock_request *r, json_object *call, int k,
                    unsigned long id)
{
    char cid[64];
    bedrock_call_id(cid, sizeof(cid), id, (size_t)k);
    json_object *use = json_object_new_object(), *start = json_object_new_object();
    json_object_object_add(use, "toolUseId", json_object_new_string(cid));
    json_object_object_add(use, "name", json_object_get(pb_mock_get(call, "name")));
    json_object_object_add(start, "toolUse", use);
    bedrock_event(s, PB_MOCK_EVENT_CONTENT, "contentBlockStart",
                  bedrock_block_event(k, "start", start));
    char *args = pb_xstrdup(bedrock_args_text(r, call));
    size_t n = strlen(args), half = n / 2;
    bedrock_event(s, PB_MOCK_EVENT_CONTENT, "contentBlockDelta",
                  bedrock_block_event(k, "delta", bedrock_delta("toolUse", "input", args, half)));
    bedrock_event(
        s, PB_MOCK_EVENT_CONTENT, "contentBlockDelta",
        bedrock_block_event(k, "delta", bedrock_delta("toolUse", "input", args + half, n - half)));
    bedrock_event(s, PB_MOCK_EVENT_FRAME, "contentBlockStop", bedrock_block_event(k, NULL, NULL));
    free(args);
}

void
pb_mock_bedrock_stream(pb_mock_stream *s, const pb_mock_request *r, pb_mock_body_kind kind,
                       const char *text, unsigned long id)
{
    pb_mock_answer a;
    bedrock_answer_make(r, kind, text, &a);
    json_object *role = json_object_new_object();
    json_object_object_add(role, "role", json_object_new_string("assistant"));
    bedrock_event(s, PB_MOCK_EVENT_HEAD, "messageStart", role);
    long words = a.calls != NULL ? 1 : pb_mock_dialect_words(a.text.data, a.text.len);
    long per = pb_mock_dialect_words_per_piece(words);
    for (size_t i = 0, j; a.calls == NULL && i < a.text.len; i = j) {
        j = pb_mock_dialect_word_end(a.text.data, a.text.len, i, per);
        bedrock_event(
            s, PB_MOCK_EVENT_CONTENT, "contentBlockDelta",
            bedrock_block_event(0, "delta", bedrock_delta(NULL, "text", a.text.data + i, j - i)));
    }
    if (a.calls == NULL)
        bedrock_event(s, PB_MOCK_EVENT_FRAME, "contentBlockStop",
                      bedrock_block_event(0, NULL, NULL));
    for (size_t k = 0; a.calls != NULL && k < bedrock_len(a.calls); k++)
        bedrock_stream_call(s, r, json_object_array_get_idx(a.calls, k), (int)k, id);
    json_object *stop = json_object_new_object(), *meta = json_object_new_object();
    json_object_object_add(stop, "stopReason",
                           json_object_new_string(bedrock_stop_reason(r, a.calls != NULL)));
    bedrock_event(s, PB_MOCK_EVENT_END, "messageStop", stop);
    json_object_object_add(meta, "usage", bedrock_usage(a.prompt, words));
    json_object_object_add(meta, "metrics", bedrock_metrics());
    bedrock_event(s, PB_MOCK_EVENT_FRAME, "metadata", meta);
    json_object_put(a.calls);
    pb_buf_free(&a.text);
}

const char *
pb_mock_bedrock_error_type(int status, const char *type)
{
    if (type != NULL)
        return type;
    switch (status) {
    case 400:
        return "ValidationException";
    case 401:
    case 403:
        return "AccessDeniedException";
    case 404:
        return "ResourceNotFoundException";
    case 408:
        return "ModelTimeoutException";
    case 413:
        return "ValidationException";
    case 424:
        return "ModelErrorException";
    case 429:
        return "ThrottlingException";
    case 503:
        return "ServiceUnavailableException";
    default:
        return status >= 500 ? "InternalServerException" : "ValidationException";
    }
}

char *
pb_mock_bedrock_error(int status, const char *type, const char *message, size_t *len)
{
    char dflt[128];
    if (message == NULL) {
        snprintf(dflt, sizeof(dflt), "planb-mock: injected HTTP %d (%s)", status,
                 pb_mock_bedrock_error_type(status, type));
        message = dflt;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "message", json_object_new_string(message));
    return pb_mock_dialect_take_json(o, len);
}

char *
pb_mock_bedrock_stream_error(const char *type, const char *message, size_t *len)
{
    pb_buf out;
    pb_buf_init(&out, SIZE_MAX);
    json_object *o = json_object_new_object();
    json_object_object_add(
        o, "message",
        json_object_new_string(message != NULL ? message : "planb-mock: injected stream error"));
    bedrock_frame(&out, true, type != NULL ? type : "modelStreamErrorException", o);
    *len = out.len;
    return out.data;
}

const char *
pb_mock_bedrock_stream_malformed(size_t *len)
{
    static pb_buf bad; /* built once: planb-mock is one thread */
    if (bad.data == NULL) {
        pb_buf_init(&bad, SIZE_MAX);
        bedrock_frame(&bad, false, "contentBlockDelta",
                      bedrock_block_event(0, "delta", bedrock_delta(NULL, "text", "bad crc", 7)));
        bad.data[bad.len - 1] ^= 0x5a;
    }
    *len = bad.len;
    return bad.data;
}

void
pb_mock_bedrock_reseal(char *p, size_t n)
{
    if (n < 16)
        return;
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)p, (uInt)(n - 4));
    p[n - 4] = (char)(crc >> 24);
    p[n - 3] = (char)(crc >> 16);
    p[n - 2] = (char)(crc >> 8);
    p[n - 1] = (char)crc;
}
