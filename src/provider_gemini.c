/* provider_gemini.c -- Google's native Gemini API (generateContent).
 *
 * Jobs arrive in the OpenAI shape; Gemini wants "contents" of "parts" with the roles user and
 * model, the system prompt apart (systemInstruction), the knobs in generationConfig, tools as
 * functionDeclarations, tool calls as functionCall parts and their results as
 * functionResponse parts of the next user turn, matched by the function's name (Gemini has no
 * call ids: the ids of the tool calls we return are made up, stably, from the call itself,
 * and a tool message finds its function's name through the assistant message that holds its
 * id). build_request converts (docs/translation.md has the table), gemini_dropped lists what
 * has no equivalent, gemini_refuses what cannot go without a change of meaning. The model is
 * in the URL (<base_url>/models/<model>:generateContent, :streamGenerateContent?alt=sse),
 * the key in x-goog-api-key, never in the URL. Errors are {"error": {code, message, status}}
 * with a google.rpc status name, which classify reads before the shared status table. */
#include "planb/provider.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/delta.h"
#include "planb/hash.h"
#include "planb/utf8.h"

/* Stands in for the user turn when a job holds only system messages (contents must not be
 * empty). */
#define GEMINI_CONTINUED  "(continued)"
#define GEMINI_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* google.rpc status names whose meaning does not depend on the HTTP status they came with. */
static const struct {
    const char *status; /* error.status in the body */
    pb_class cls;       /* what it means for the chain */
} gemini_error_statuses[] = {
    {"RESOURCE_EXHAUSTED", PB_CLASS_RETRY}, /* quota or rate: 429 */
    {"UNAVAILABLE", PB_CLASS_RETRY},        /* overloaded: 503 */
    {"INTERNAL", PB_CLASS_RETRY},           /* 500 */
    {"DEADLINE_EXCEEDED", PB_CLASS_RETRY},  /* 504 */
    {"PERMISSION_DENIED", PB_CLASS_FALLBACK},
    {"UNAUTHENTICATED", PB_CLASS_FALLBACK},
    {"NOT_FOUND", PB_CLASS_FALLBACK},
    {"FAILED_PRECONDITION", PB_CLASS_FALLBACK}, /* e.g. the API is not offered in the region */
};

/* An INVALID_ARGUMENT about the key or this model's limits, not about the job. */
static const char *const gemini_not_the_job[] = {
    "api key not valid", "api_key_invalid", "exceeds the maximum number of tokens",
    "input token count", "context",         NULL};

/* finishReason -> the normalized finish_reason (NULL: no usable answer by itself). */
static const struct {
    const char *reason;
    const char *finish;
} gemini_finish_reasons[] = {
    {"STOP", "stop"},
    {"MAX_TOKENS", "length"},
    {"SAFETY", "content_filter"},
    {"RECITATION", "content_filter"},
    {"BLOCKLIST", "content_filter"},
    {"PROHIBITED_CONTENT", "content_filter"},
    {"SPII", "content_filter"},
    {"IMAGE_SAFETY", "content_filter"},
    {"LANGUAGE", "content_filter"},
};

/* obj[key] as a string, or NULL. */
static const char *
gemini_str(json_object *obj, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* What the Gemini API cannot take without a change of meaning. */
static const char *
gemini_refuses(const pb_request *req)
{
    json_object *rf = pb_request_param(req, "response_format"), *type;
    bool json = json_object_object_get_ex(rf, "type", &type) &&
                strcmp(json_object_get_string(type), "text") != 0;
    if (json && pb_request_param(req, "tools") != NULL)
        return "response_format together with tools (Gemini refuses function calling with a "
               "JSON response type)";
    for (size_t i = 0; i < req->n_messages; i++) {
        json_object *parts = req->messages[i].parts;
        for (size_t k = 0; parts != NULL && k < json_object_array_length(parts); k++) {
            json_object *img, *url;
            if (json_object_object_get_ex(json_object_array_get_idx(parts, k), "image_url", &img) &&
                json_object_object_get_ex(img, "url", &url) &&
                strncmp(json_object_get_string(url), "data:", 5) != 0)
                return "an image by URL (Gemini takes images as inline data only)";
        }
    }
    return NULL;
}

static json_object *
gemini_text_part(const char *text, size_t len)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "text", json_object_new_string_len(text, (int)len));
    return p;
}

/* data:image/<type>;base64,<data> (validated by request.c) -> inlineData. */
static json_object *
gemini_image_part(const char *url)
{
    const char *semi = strchr(url, ';'), *comma = strchr(url, ',');
    json_object *d = json_object_new_object();
    json_object_object_add(d, "mimeType",
                           json_object_new_string_len(url + 5, (int)(semi - url - 5)));
    json_object_object_add(d, "data", json_object_new_string(comma + 1));
    json_object *p = json_object_new_object();
    json_object_object_add(p, "inlineData", d);
    return p;
}

/* A functionCall part (Gemini has no call ids). */
static json_object *
gemini_call_part(json_object *id, json_object *name, json_object *input)
{
    (void)id;
    json_object *fc = json_object_new_object();
    json_object_object_add(fc, "name", json_object_get(name));
    json_object_object_add(fc, "args", input);
    json_object *p = json_object_new_object();
    json_object_object_add(p, "functionCall", fc);
    return p;
}

static const pb_provider_blocks gemini_parts = {gemini_text_part, gemini_image_part,
                                                gemini_call_part};

/* The function name of the tool call with id in an assistant message before message `before`
 * (the latest one wins), or NULL. */
static const char *
gemini_call_name(const pb_request *req, size_t before, const char *id)
{
    for (size_t i = before; id != NULL && i-- > 0;) {
        json_object *calls = req->messages[i].tool_calls;
        for (size_t k = 0; calls != NULL && k < json_object_array_length(calls); k++) {
            json_object *c = json_object_array_get_idx(calls, k), *fn;
            const char *cid = gemini_str(c, "id");
            if (cid != NULL && strcmp(cid, id) == 0 &&
                json_object_object_get_ex(c, "function", &fn))
                return gemini_str(fn, "name");
        }
    }
    return NULL;
}

/* Tool message i -> a functionResponse part: its content when that is a JSON object, else
 * {"result": content}. The name is the answered call's (request.c checked the id answers
 * one); "tool" only if it cannot be found. */
static json_object *
gemini_function_response(const pb_request *req, size_t i)
{
    const pb_message *m = &req->messages[i];
    const char *name = gemini_call_name(req, i, m->tool_call_id);
    json_object *resp = NULL;
    if (pb_request_is_json_object(m->content, strlen(m->content)))
        resp = json_tokener_parse(m->content);
    if (!json_object_is_type(resp, json_type_object)) {
        json_object_put(resp);
        resp = json_object_new_object();
        json_object_object_add(resp, "result", json_object_new_string(m->content));
    }
    json_object *fr = json_object_new_object();
    json_object_object_add(fr, "name", json_object_new_string(name ? name : "tool"));
    json_object_object_add(fr, "response", resp);
    json_object *p = json_object_new_object();
    json_object_object_add(p, "functionResponse", fr);
    return p;
}

/* Where gemini_add_turn builds the contents array. */
typedef struct gemini_turns {
    const pb_request *req;
    json_object *contents; /* the turns */
    json_object *parts;    /* the parts of the turn being merged (the last one's) */
} gemini_turns;

static void
gemini_new_turn(gemini_turns *t, const char *role)
{
    json_object *c = json_object_new_object();
    t->parts = json_object_new_array();
    json_object_object_add(c, "role", json_object_new_string(role));
    json_object_object_add(c, "parts", t->parts);
    json_object_array_add(t->contents, c);
}

/* pb_provider_walk_turns's callback: message i into the current turn, or a new one; tool
 * messages are functionResponse parts of a user turn. */
static void
gemini_add_turn(void *arg, size_t i, bool assistant, bool new_turn)
{
    gemini_turns *t = arg;
    const pb_message *m = &t->req->messages[i];
    if (new_turn)
        gemini_new_turn(t, assistant ? "model" : "user");
    if (m->role == PB_ROLE_TOOL)
        json_object_array_add(t->parts, gemini_function_response(t->req, i));
    else
        pb_provider_add_blocks(t->parts, m, &gemini_parts);
}

/* Adds "systemInstruction" (system and developer messages, joined) and "contents": the rest as
 * turns of parts (pb_provider_walk_turns: the roles alternate), tool calls functionCall parts
 * of the model's. A turn whose messages gave no parts is left out. */
static void
gemini_add_conversation(json_object *root, const pb_request *req)
{
    pb_buf sys;
    pb_buf_init(&sys, SIZE_MAX);
    gemini_turns t = {.req = req, .contents = json_object_new_array()};
    pb_provider_walk_turns(req, &sys, gemini_add_turn, &t);
    for (size_t i = json_object_array_length(t.contents); i-- > 0;) {
        json_object *parts;
        json_object_object_get_ex(json_object_array_get_idx(t.contents, i), "parts", &parts);
        if (json_object_array_length(parts) == 0)
            json_object_array_del_idx(t.contents, i, 1);
    }
    if (json_object_array_length(t.contents) == 0) {
        gemini_new_turn(&t, "user");
        json_object_array_add(t.parts,
                              gemini_text_part(GEMINI_CONTINUED, strlen(GEMINI_CONTINUED)));
    }
    if (sys.len > 0) {
        json_object *si = json_object_new_object(), *p = json_object_new_array();
        json_object_array_add(p, gemini_text_part(sys.data, sys.len));
        json_object_object_add(si, "parts", p);
        json_object_object_add(root, "systemInstruction", si);
    }
    json_object_object_add(root, "contents", t.contents);
    pb_buf_free(&sys);
}

/* OpenAI function tools -> one tools entry of functionDeclarations; tool_choice ->
 * toolConfig.functionCallingConfig (none NONE, auto AUTO, required ANY, a named function ANY
 * limited to it). */
static void
gemini_add_tools(json_object *root, const pb_request *req)
{
    json_object *tools = pb_request_param(req, "tools"),
                *choice = pb_request_param(req, "tool_choice");
    if (tools != NULL && json_object_array_length(tools) > 0) {
        json_object *decls = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(tools); i++) {
            json_object *fn, *v, *d = json_object_new_object();
            json_object_object_get_ex(json_object_array_get_idx(tools, i), "function", &fn);
            json_object_object_get_ex(fn, "name", &v);
            json_object_object_add(d, "name", json_object_get(v));
            if (json_object_object_get_ex(fn, "description", &v) && v != NULL)
                json_object_object_add(d, "description", json_object_get(v));
            if (json_object_object_get_ex(fn, "parameters", &v) && v != NULL)
                json_object_object_add(d, "parameters", json_object_get(v));
            json_object_array_add(decls, d);
        }
        json_object *entry = json_object_new_object(), *list = json_object_new_array();
        json_object_object_add(entry, "functionDeclarations", decls);
        json_object_array_add(list, entry);
        json_object_object_add(root, "tools", list);
    }
    if (choice == NULL)
        return;
    json_object *fcc = json_object_new_object();
    if (json_object_is_type(choice, json_type_string)) {
        const char *c = json_object_get_string(choice);
        json_object_object_add(fcc, "mode",
                               json_object_new_string(strcmp(c, "none") == 0       ? "NONE"
                                                      : strcmp(c, "required") == 0 ? "ANY"
                                                                                   : "AUTO"));
    } else {
        json_object *fn, *name, *names = json_object_new_array();
        json_object_object_get_ex(choice, "function", &fn);
        json_object_object_get_ex(fn, "name", &name);
        json_object_array_add(names, json_object_get(name));
        json_object_object_add(fcc, "mode", json_object_new_string("ANY"));
        json_object_object_add(fcc, "allowedFunctionNames", names);
    }
    json_object *tc = json_object_new_object();
    json_object_object_add(tc, "functionCallingConfig", fcc);
    json_object_object_add(root, "toolConfig", tc);
}

/* generationConfig: temperature, topP, maxOutputTokens, stopSequences, seed (when it fits
 * Gemini's int32), candidateCount 1, and a response_format as responseMimeType (+
 * responseSchema). */
static void
gemini_add_generation(json_object *root, const pb_request *req)
{
    json_object *g = json_object_new_object(), *v, *js, *schema;
    json_object_object_add(g, "candidateCount", json_object_new_int(1));
    if (isfinite(req->temperature))
        json_object_object_add(g, "temperature", pb_provider_new_double(req->temperature));
    if (isfinite(req->top_p))
        json_object_object_add(g, "topP", pb_provider_new_double(req->top_p));
    if (req->max_tokens >= 0)
        json_object_object_add(g, "maxOutputTokens", json_object_new_int(req->max_tokens));
    json_object *stop = pb_request_param(req, "stop");
    if (stop != NULL) {
        json_object *out = json_object_new_array();
        size_t n = json_object_is_type(stop, json_type_array) ? json_object_array_length(stop) : 1;
        for (size_t i = 0; i < n; i++)
            json_object_array_add(out, json_object_get(json_object_is_type(stop, json_type_array)
                                                           ? json_object_array_get_idx(stop, i)
                                                           : stop));
        json_object_object_add(g, "stopSequences", out);
    }
    if ((v = pb_request_param(req, "seed")) != NULL && json_object_get_int64(v) >= INT32_MIN &&
        json_object_get_int64(v) <= INT32_MAX)
        json_object_object_add(g, "seed", json_object_get(v));
    json_object *rf = pb_request_param(req, "response_format");
    const char *type = gemini_str(rf, "type");
    if (type != NULL && strcmp(type, "text") != 0) {
        json_object_object_add(g, "responseMimeType", json_object_new_string("application/json"));
        if (json_object_object_get_ex(rf, "json_schema", &js) &&
            json_object_object_get_ex(js, "schema", &schema) && schema != NULL)
            json_object_object_add(g, "responseSchema", json_object_get(schema));
    }
    json_object_object_add(root, "generationConfig", g);
}

/* Appends s to b with every byte outside [A-Za-z0-9._-] percent-encoded (a model name goes
 * into the URL's path). */
static void
gemini_url_escape(pb_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-') {
            pb_buf_append(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            pb_buf_append(b, e, 3);
        }
    }
}

static int
gemini_build_request(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                     pb_http_request *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *model = m->upstream ? m->upstream : m->name;
    if (strncmp(model, "models/", 7) == 0)
        model += 7; /* the API's own resource name */
    pb_buf url;
    pb_buf_init(&url, SIZE_MAX);
    pb_buf_append(&url, p->base_url, strlen(p->base_url));
    pb_buf_append(&url, "/models/", 8);
    gemini_url_escape(&url, model);
    const char *method = req->stream ? ":streamGenerateContent?alt=sse" : ":generateContent";
    pb_buf_append(&url, method, strlen(method));
    out->url = url.data;
    bool has_key = p->api_key != NULL && p->api_key[0] != '\0';
    if (pb_provider_add_header(out, err, "Content-Type: application/json") != PB_OK ||
        (has_key && pb_provider_add_header(out, err, "x-goog-api-key: %s", p->api_key) != PB_OK) ||
        pb_provider_add_conn(p, out, err) != PB_OK)
        return PB_ERR;
    const char *why = gemini_refuses(req);
    if (why != NULL) {
        pb_error_set(err, PB_PROVIDER_UNSUPPORTED, "UNSUPPORTED %s", why);
        return PB_ERR;
    }
    json_object *root = json_object_new_object();
    gemini_add_conversation(root, req);
    gemini_add_generation(root, req);
    gemini_add_tools(root, req);
    pb_provider_set_json_body(out, root);
    return PB_OK;
}

static const char *
gemini_finish_reason(const char *reason, bool has_tool_calls)
{
    if (has_tool_calls)
        return "tool_calls";
    for (size_t i = 0;
         reason != NULL && i < sizeof(gemini_finish_reasons) / sizeof(*gemini_finish_reasons); i++)
        if (strcmp(reason, gemini_finish_reasons[i].reason) == 0)
            return gemini_finish_reasons[i].finish;
    /* OTHER, FINISH_REASON_UNSPECIFIED, MALFORMED_FUNCTION_CALL: the content decides. */
    return "stop";
}

/* A stable id for tool call k of a reply: Gemini sends none, and the same reply (a cached
 * one, a stream and its plain twin) must give the same ids. */
static void
gemini_call_id(char *out, size_t cap, size_t k, const char *name, const char *args)
{
    char index[24];
    snprintf(index, sizeof(index), "%zu:", k);
    uint64_t h = pb_hash_fnv1a64_str(index, PB_HASH_FNV1A64_OFFSET);
    h = pb_hash_fnv1a64_str(name, h);
    h = pb_hash_fnv1a64_str(args, h);
    snprintf(out, cap, "call_%016" PRIx64, h);
}

/* A functionCall part's name and arguments (as JSON text, borrowed from fc until it is put),
 * or NULL name when malformed (no name, args not an object, either not UTF-8). */
static const char *
gemini_call_parts(json_object *fc, const char **args)
{
    json_object *name, *a;
    *args = NULL;
    if (!json_object_object_get_ex(fc, "name", &name) ||
        !json_object_is_type(name, json_type_string) || json_object_get_string_len(name) == 0)
        return NULL;
    if (!json_object_object_get_ex(fc, "args", &a) || a == NULL)
        *args = "{}";
    else if (json_object_is_type(a, json_type_object))
        *args = json_object_to_json_string_ext(a, GEMINI_JSON_FLAGS);
    else
        return NULL;
    /* json-c takes any bytes in a string; a result must be UTF-8 text. */
    const char *n = json_object_get_string(name);
    return pb_utf8_is_text(n, strlen(n)) && pb_utf8_is_text(*args, strlen(*args)) ? n : NULL;
}

/* Whether a part is a thought summary (thinking models with includeThoughts): not the answer. */
static bool
gemini_is_thought(json_object *part)
{
    json_object *t;
    return json_object_object_get_ex(part, "thought", &t) &&
           json_object_is_type(t, json_type_boolean) && json_object_get_boolean(t);
}

/* usageMetadata as OpenAI counts it: prompt includes the cached tokens (as Gemini's does),
 * completion includes the thinking (Gemini counts thoughtsTokenCount apart). */
static void
gemini_usage(json_object *usage, long *prompt, long *completion, long *cached, long *reasoning)
{
    long cand = pb_provider_tokens(usage, "candidatesTokenCount");
    long thoughts = pb_provider_tokens(usage, "thoughtsTokenCount");
    *prompt = pb_provider_tokens(usage, "promptTokenCount");
    *cached = pb_provider_tokens(usage, "cachedContentTokenCount");
    *reasoning = thoughts;
    *completion =
        cand < 0 && thoughts < 0 ? -1 : (cand > 0 ? cand : 0) + (thoughts > 0 ? thoughts : 0);
}

/* promptFeedback.blockReason: the prompt itself was blocked (no candidates come). */
static bool
gemini_prompt_blocked(json_object *root)
{
    json_object *pf;
    return json_object_object_get_ex(root, "promptFeedback", &pf) &&
           gemini_str(pf, "blockReason") != NULL;
}

/* candidates[0], or NULL. */
static json_object *
gemini_candidate(json_object *root)
{
    json_object *cands;
    if (!json_object_object_get_ex(root, "candidates", &cands) ||
        !json_object_is_type(cands, json_type_array) || json_object_array_length(cands) == 0)
        return NULL;
    json_object *c = json_object_array_get_idx(cands, 0);
    return json_object_is_type(c, json_type_object) ? c : NULL;
}

/* Whether d holds a tool call: every functionCall starts block 0 anew (gemini_read), so it
 * has one once block 0 has started. */
static bool
gemini_has_calls(pb_delta *d)
{
    int index;
    return pb_delta_block_tool(d, 0, false, &index) == PB_OK;
}

/* Reads one GenerateContentResponse into d: a whole reply, or one chunk of a stream (alt=sse:
 * each event is a whole response holding the next parts). Text parts (not thought summaries)
 * are text, each functionCall part a tool call of its own with a made-up stable id; the usage
 * is cumulative; a finishReason ends the answer (a stream has no terminator), as does a
 * blocked prompt (content_filter). NULL, or why the response is malformed. */
static const char *
gemini_read(pb_delta *d, json_object *root)
{
    json_object *error, *usage, *cand = gemini_candidate(root), *content, *parts = NULL;
    if (json_object_object_get_ex(root, "error", &error) && error != NULL)
        return "an error object in the reply";
    if (json_object_object_get_ex(root, "usageMetadata", &usage) &&
        json_object_is_type(usage, json_type_object)) {
        long prompt, completion, cached, reasoning;
        gemini_usage(usage, &prompt, &completion, &cached, &reasoning);
        pb_delta_usage(d, prompt, completion, cached, reasoning);
    }
    if (cand == NULL) {
        if (gemini_prompt_blocked(root)) {
            pb_delta_finish_reason(d, "content_filter");
            pb_delta_end(d);
        }
        return NULL;
    }
    if (json_object_object_get_ex(cand, "content", &content))
        json_object_object_get_ex(content, "parts", &parts);
    for (size_t i = 0;
         json_object_is_type(parts, json_type_array) && i < json_object_array_length(parts); i++) {
        json_object *part = json_object_array_get_idx(parts, i), *v, *fc;
        if (gemini_is_thought(part))
            continue;
        if (json_object_object_get_ex(part, "text", &v) &&
            json_object_is_type(v, json_type_string)) {
            pb_delta_text(d, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        } else if (json_object_object_get_ex(part, "functionCall", &fc)) {
            const char *args, *name = gemini_call_parts(fc, &args);
            int index;
            char id[32];
            if (name == NULL)
                return "a functionCall without a UTF-8 name or object args";
            /* Block 0 started anew per call: the next free tool index. */
            if (pb_delta_block_tool(d, 0, true, &index) != PB_OK)
                return "more than 128 functionCall parts";
            gemini_call_id(id, sizeof(id), (size_t)index, name, args);
            if (pb_delta_tool(d, index, id, name, args, strlen(args)) != PB_OK)
                return "more than 128 functionCall parts";
        }
    }
    const char *fr = gemini_str(cand, "finishReason");
    if (fr != NULL) {
        pb_delta_finish_reason(d, gemini_finish_reason(fr, gemini_has_calls(d)));
        pb_delta_end(d);
    }
    return NULL;
}

/* A whole reply is read as a stream of one chunk, so both give the same answer. */
static int
gemini_parse_response(const char *body, size_t len, const pb_request *req, pb_completion *out,
                      pb_error *err)
{
    (void)req;
    memset(out, 0, sizeof(*out));
    json_object *root = pb_provider_parse_object(body, len, err);
    if (root == NULL)
        return PB_ERR;
    pb_delta *d = pb_delta_new(NULL, SIZE_MAX);
    const char *why = gemini_read(d, root);
    pb_delta_response_id(d, pb_provider_response_id(root, "responseId"));
    if (why == NULL && gemini_candidate(root) == NULL && !gemini_prompt_blocked(root))
        why = "no candidates";
    if (why == NULL && !pb_delta_ended(d)) {
        pb_delta_finish_reason(d, gemini_finish_reason(NULL, gemini_has_calls(d)));
        pb_delta_end(d);
    }
    /* Checked as a C string too: a text that starts with \u0000 is empty to every reader. */
    if (why == NULL && (pb_delta_complete(d, out, NULL) != PB_OK ||
                        (out->content[0] == '\0' && out->tool_calls == NULL &&
                         strcmp(out->finish_reason, "content_filter") != 0)))
        why = "no text or functionCall in candidates[0]";
    if (why != NULL) {
        pb_provider_completion_free(out);
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
    }
    pb_delta_free(d);
    json_object_put(root);
    return why == NULL ? PB_OK : PB_ERR;
}

/* The google.rpc status decides where it is unambiguous; INVALID_ARGUMENT is the job's fault
 * (the status table's 400) unless it is about the key or this model's limits. */
static pb_class
gemini_classify(long status, const char *body, size_t len)
{
    json_object *root = pb_provider_parse_object(body, len, NULL), *error = NULL;
    pb_class cls = pb_provider_classify_status(status, body, len);
    const char *st = NULL, *message = NULL;
    if (root != NULL && json_object_object_get_ex(root, "error", &error)) {
        st = gemini_str(error, "status");
        message = gemini_str(error, "message");
    }
    for (size_t i = 0;
         st != NULL && i < sizeof(gemini_error_statuses) / sizeof(*gemini_error_statuses); i++)
        if (strcmp(st, gemini_error_statuses[i].status) == 0)
            cls = gemini_error_statuses[i].cls;
    if (st != NULL && strcmp(st, "INVALID_ARGUMENT") == 0 &&
        ((message != NULL &&
          pb_provider_body_mentions(message, strlen(message), gemini_not_the_job)) ||
         pb_provider_body_mentions(body, len, gemini_not_the_job)))
        cls = PB_CLASS_FALLBACK;
    json_object_put(root);
    return cls;
}

/* Params Gemini has no equivalent for (or none planb sends): listed in dropped_params. */
static const char *const gemini_drops[] = {"frequency_penalty",
                                           "presence_penalty",
                                           "logit_bias",
                                           "logprobs",
                                           "top_logprobs",
                                           "store",
                                           "metadata",
                                           "prediction",
                                           "service_tier",
                                           "prompt_cache_key",
                                           "reasoning_effort",
                                           "verbosity",
                                           "user",
                                           "safety_identifier",
                                           "parallel_tool_calls",
                                           "modalities",
                                           NULL};

static size_t
gemini_dropped(const pb_request *req, char (*names)[PB_PROVIDER_PARAM_LEN], size_t max)
{
    size_t n = 0;
    for (const char *const *d = gemini_drops; *d; d++)
        if (pb_request_param(req, *d) != NULL)
            pb_provider_drop(names, &n, max, *d);
    json_object *seed = pb_request_param(req, "seed");
    if (seed != NULL &&
        (json_object_get_int64(seed) < INT32_MIN || json_object_get_int64(seed) > INT32_MAX))
        pb_provider_drop(names, &n, max, "seed");
    json_object *a = pb_request_param(req, "anthropic");
    if (a != NULL) {
        json_object_object_foreach(a, key, val)
        {
            (void)val;
            char name[PB_PROVIDER_PARAM_LEN];
            snprintf(name, sizeof(name), "anthropic.%s", key);
            pb_provider_drop(names, &n, max, name);
        }
    }
    pb_provider_drop_unsendable(req, names, &n, max);
    return n;
}

/* One streamed chunk (gemini_read); an error object fails the attempt. */
static int
gemini_stream_event(pb_delta *d, const char *event, const char *data, size_t len, pb_error *err)
{
    (void)event;
    json_object *root = pb_provider_parse_object(data, len, err);
    if (root == NULL)
        return PB_ERR;
    const char *why = gemini_read(d, root);
    pb_delta_response_id(d, pb_provider_response_id(root, "responseId"));
    if (why != NULL)
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
    json_object_put(root);
    return why == NULL ? PB_OK : PB_ERR;
}

const pb_provider_ops pb_provider_gemini = {
    .type_name = "gemini",
    .build_request = gemini_build_request,
    .parse_response = gemini_parse_response,
    .classify = gemini_classify,
    .refuses = gemini_refuses,
    .dropped = gemini_dropped,
    .stream_event = gemini_stream_event,
};
