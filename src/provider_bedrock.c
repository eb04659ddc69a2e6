/* provider_bedrock.c -- Amazon Bedrock's Converse API, for every model Bedrock serves.
 *
 * Jobs arrive in the OpenAI shape; Converse wants "messages" of content blocks ({text},
 * {image}, {toolUse}, {toolResult}) with the roles user and assistant alternating, user
 * first, the system prompt apart, the knobs in inferenceConfig and the tools in toolConfig
 * (which Bedrock requires whenever the conversation holds tool blocks). The model id is in
 * the URL (<base_url>/model/<id>/converse, /converse-stream), percent-encoded: ids hold ':'
 * and inference-profile ARNs '/'. Authentication is a Bedrock API key as Bearer, or AWS
 * Signature V4 computed here with OpenSSL (sigv4.c) over the request exactly as curl sends
 * it: curl 7.88's own CURLOPT_AWS_SIGV4 signs such paths wrongly. Errors are {"message"}
 * with the exception's name in a header the adapter does not see, so classify goes by the
 * status, as Bedrock documents each: 429 and 408 are retried, 500/503 and a 400
 * ValidationException (a limit of this model) fall back. A streamed answer comes as AWS
 * event-stream frames; the chain decodes the framing (eventstream.c) and hands each
 * message's :event-type and JSON payload to bedrock_stream_event. The table of what maps to
 * what is in docs/translation.md. */
#include "planb/provider.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"
#include "planb/delta.h"
#include "planb/sigv4.h"
#include "planb/utf8.h"

/* Stands in for the user turn when a job has none before the assistant's (Converse requires
 * a user message first), and for a tool result with no text (a blank text block is refused). */
#define BEDROCK_CONTINUED  "(continued)"
#define BEDROCK_NO_OUTPUT  "(no output)"
#define BEDROCK_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define BEDROCK_HOST_MAX   256

/* stopReason -> the normalized finish_reason. */
static const struct {
    const char *reason;
    const char *finish;
} bedrock_stop_reasons[] = {
    {"end_turn", "stop"},
    {"stop_sequence", "stop"},
    {"tool_use", "tool_calls"},
    {"max_tokens", "length"},
    {"model_context_window_exceeded", "length"},
    {"guardrail_intervened", "content_filter"},
    {"content_filtered", "content_filter"},
};

/* obj[key] as a string, or NULL. */
static const char *
bedrock_str(json_object *obj, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* The Converse image format of a data: URL's media type, or NULL when Bedrock takes none. */
static const char *
bedrock_image_format(const char *url)
{
    static const char *const formats[][2] = {{"image/png", "png"},
                                             {"image/jpeg", "jpeg"},
                                             {"image/jpg", "jpeg"},
                                             {"image/gif", "gif"},
                                             {"image/webp", "webp"}};
    const char *semi = strchr(url, ';');
    size_t n = semi != NULL ? (size_t)(semi - url) - 5 : 0;
    for (size_t i = 0; semi != NULL && i < sizeof(formats) / sizeof(*formats); i++)
        if (strlen(formats[i][0]) == n && strncmp(url + 5, formats[i][0], n) == 0)
            return formats[i][1];
    return NULL;
}

/* What Converse cannot take without a change of meaning: images by URL or of other types. */
static const char *
bedrock_refuses(const pb_request *req)
{
    for (size_t i = 0; i < req->n_messages; i++) {
        json_object *parts = req->messages[i].parts;
        for (size_t k = 0; parts != NULL && k < json_object_array_length(parts); k++) {
            json_object *img, *url;
            if (!json_object_object_get_ex(json_object_array_get_idx(parts, k), "image_url",
                                           &img) ||
                !json_object_object_get_ex(img, "url", &url))
                continue;
            const char *u = json_object_get_string(url);
            if (strncmp(u, "data:", 5) != 0)
                return "an image by URL (Bedrock's Converse takes images as bytes only)";
            if (bedrock_image_format(u) == NULL)
                return "an image that is not PNG, JPEG, GIF or WebP";
        }
    }
    return NULL;
}

static json_object *
bedrock_text_block(const char *text, size_t len)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "text", json_object_new_string_len(text, (int)len));
    return b;
}

/* data:image/<type>;base64,<data> (validated by request.c and bedrock_refuses) -> image. */
static json_object *
bedrock_image_block(const char *url)
{
    json_object *src = json_object_new_object(), *img = json_object_new_object();
    json_object_object_add(src, "bytes", json_object_new_string(strchr(url, ',') + 1));
    json_object_object_add(img, "format", json_object_new_string(bedrock_image_format(url)));
    json_object_object_add(img, "source", src);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "image", img);
    return b;
}

/* A toolUse block: the same id, input = the parsed arguments. */
static json_object *
bedrock_tool_use_block(json_object *id, json_object *name, json_object *input)
{
    json_object *use = json_object_new_object();
    json_object_object_add(use, "toolUseId", json_object_get(id));
    json_object_object_add(use, "name", json_object_get(name));
    json_object_object_add(use, "input", input);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "toolUse", use);
    return b;
}

static const pb_provider_blocks bedrock_blocks = {bedrock_text_block, bedrock_image_block,
                                                  bedrock_tool_use_block};

/* A tool message -> a toolResult block: its content as {json} when that is a JSON object,
 * else as {text}. */
static json_object *
bedrock_tool_result(const pb_message *m)
{
    json_object *content = json_object_new_array(), *item = json_object_new_object();
    json_object *obj = pb_request_is_json_object(m->content, strlen(m->content))
                           ? json_tokener_parse(m->content)
                           : NULL;
    if (json_object_is_type(obj, json_type_object)) {
        json_object_object_add(item, "json", obj);
    } else {
        json_object_put(obj);
        const char *text = pb_provider_is_blank(m->content) ? BEDROCK_NO_OUTPUT : m->content;
        json_object_object_add(item, "text", json_object_new_string(text));
    }
    json_object_array_add(content, item);
    json_object *r = json_object_new_object();
    json_object_object_add(r, "toolUseId", json_object_new_string(m->tool_call_id));
    json_object_object_add(r, "content", content);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "toolResult", r);
    return b;
}

/* Where bedrock_add_turn builds the messages array. */
typedef struct bedrock_turns {
    const pb_request *req;
    json_object *msgs;   /* the messages */
    json_object *blocks; /* the content of the turn being merged (the last message's) */
} bedrock_turns;

static void
bedrock_new_message(bedrock_turns *t, const char *role)
{
    json_object *msg = json_object_new_object();
    t->blocks = json_object_new_array();
    json_object_object_add(msg, "role", json_object_new_string(role));
    json_object_object_add(msg, "content", t->blocks);
    json_object_array_add(t->msgs, msg);
}

/* pb_provider_walk_turns's callback: message i into the current turn, or a new one. */
static void
bedrock_add_turn(void *arg, size_t i, bool assistant, bool new_turn)
{
    bedrock_turns *t = arg;
    const pb_message *m = &t->req->messages[i];
    if (new_turn) {
        if (assistant && json_object_array_length(t->msgs) == 0) {
            bedrock_new_message(t, "user");
            json_object_array_add(t->blocks,
                                  bedrock_text_block(BEDROCK_CONTINUED, strlen(BEDROCK_CONTINUED)));
        }
        bedrock_new_message(t, assistant ? "assistant" : "user");
    }
    if (m->role == PB_ROLE_TOOL) {
        json_object_array_add(t->blocks, bedrock_tool_result(m));
        return;
    }
    pb_provider_add_blocks(t->blocks, m, &bedrock_blocks);
}

/* The final assistant turn (a prefill) must not end in white space, and no turn may be
 * empty: Bedrock refuses both. */
static void
bedrock_tidy_last(json_object *msgs)
{
    size_t n = json_object_array_length(msgs);
    json_object *last = n ? json_object_array_get_idx(msgs, n - 1) : NULL, *content, *text;
    if (last == NULL || !json_object_object_get_ex(last, "content", &content))
        return;
    size_t nb = json_object_array_length(content);
    json_object *b = nb ? json_object_array_get_idx(content, nb - 1) : NULL;
    const char *role = bedrock_str(last, "role");
    if (role == NULL || strcmp(role, "assistant") != 0 || b == NULL ||
        !json_object_object_get_ex(b, "text", &text))
        return;
    const char *s = json_object_get_string(text);
    size_t len = (size_t)json_object_get_string_len(text);
    while (len > 0 &&
           (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        len--;
    json_object_object_add(b, "text", json_object_new_string_len(s, (int)len));
}

/* Adds "system" and "messages" (pb_provider_walk_turns: the roles alternate, user first). */
static void
bedrock_add_conversation(json_object *root, const pb_request *req)
{
    pb_buf sys;
    pb_buf_init(&sys, SIZE_MAX);
    bedrock_turns t = {.req = req, .msgs = json_object_new_array()};
    pb_provider_walk_turns(req, &sys, bedrock_add_turn, &t);
    if (json_object_array_length(t.msgs) == 0) {
        bedrock_new_message(&t, "user");
        json_object_array_add(t.blocks,
                              bedrock_text_block(BEDROCK_CONTINUED, strlen(BEDROCK_CONTINUED)));
    }
    bedrock_tidy_last(t.msgs);
    if (sys.len > 0) {
        json_object *s = json_object_new_array();
        json_object_array_add(s, bedrock_text_block(sys.data, sys.len));
        json_object_object_add(root, "system", s);
    }
    json_object_object_add(root, "messages", t.msgs);
    pb_buf_free(&sys);
}

/* inferenceConfig: maxTokens (the job's, else the model's default: Claude needs one),
 * temperature, topP, stopSequences. */
static void
bedrock_add_inference(json_object *root, const pb_model_conf *m, const pb_request *req)
{
    json_object *ic = json_object_new_object();
    json_object_object_add(
        ic, "maxTokens",
        json_object_new_int(req->max_tokens >= 0 ? req->max_tokens : m->max_tokens_default));
    if (isfinite(req->temperature))
        json_object_object_add(ic, "temperature", pb_provider_new_double(req->temperature));
    if (isfinite(req->top_p))
        json_object_object_add(ic, "topP", pb_provider_new_double(req->top_p));
    json_object *stop = pb_request_param(req, "stop");
    if (stop != NULL) {
        json_object *out = json_object_new_array();
        bool many = json_object_is_type(stop, json_type_array);
        for (size_t i = 0; i < (many ? json_object_array_length(stop) : 1); i++)
            json_object_array_add(
                out, json_object_get(many ? json_object_array_get_idx(stop, i) : stop));
        json_object_object_add(ic, "stopSequences", out);
    }
    json_object_object_add(root, "inferenceConfig", ic);
}

/* A toolSpec: name, description, the parameters as inputSchema.json (an empty object schema
 * when the tool takes none). */
static json_object *
bedrock_tool_spec(json_object *name, json_object *desc, json_object *params)
{
    json_object *spec = json_object_new_object(), *schema = json_object_new_object();
    json_object_object_add(spec, "name", json_object_get(name));
    if (desc != NULL)
        json_object_object_add(spec, "description", json_object_get(desc));
    if (params != NULL) {
        json_object_object_add(schema, "json", json_object_get(params));
    } else {
        json_object *empty = json_object_new_object();
        json_object_object_add(empty, "type", json_object_new_string("object"));
        json_object_object_add(schema, "json", empty);
    }
    json_object_object_add(spec, "inputSchema", schema);
    json_object *t = json_object_new_object();
    json_object_object_add(t, "toolSpec", spec);
    return t;
}

/* True when a tool named name is in list (of toolSpec entries). */
static bool
bedrock_has_tool(json_object *list, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *spec;
        json_object_object_get_ex(json_object_array_get_idx(list, i), "toolSpec", &spec);
        const char *n = bedrock_str(spec, "name");
        if (n != NULL && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

/* Bedrock refuses toolUse and toolResult blocks without a toolConfig: a job that answers
 * tool calls but offers no tools (any more) gets a spec per function called, schema-less. */
static void
bedrock_add_history_tools(json_object *list, const pb_request *req)
{
    for (size_t i = 0; i < req->n_messages; i++) {
        json_object *calls = req->messages[i].tool_calls;
        for (size_t k = 0; calls != NULL && k < json_object_array_length(calls); k++) {
            json_object *fn, *name;
            if (json_object_object_get_ex(json_object_array_get_idx(calls, k), "function", &fn) &&
                json_object_object_get_ex(fn, "name", &name) &&
                !bedrock_has_tool(list, json_object_get_string(name)))
                json_object_array_add(list, bedrock_tool_spec(name, NULL, NULL));
        }
    }
}

/* True when the conversation holds tool calls or tool results. */
static bool
bedrock_has_tool_history(const pb_request *req)
{
    for (size_t i = 0; i < req->n_messages; i++)
        if (req->messages[i].tool_calls != NULL || req->messages[i].role == PB_ROLE_TOOL)
            return true;
    return false;
}

/* OpenAI function tools -> toolConfig.tools; tool_choice -> toolChoice (auto, required any,
 * a named function tool). "none" has no equivalent: without tool history the tools are left
 * out (the same meaning); with it they must be sent, and tool_choice is dropped. */
static void
bedrock_add_tools(json_object *root, const pb_request *req)
{
    json_object *tools = pb_request_param(req, "tools"),
                *choice = pb_request_param(req, "tool_choice");
    bool none = json_object_is_type(choice, json_type_string) &&
                strcmp(json_object_get_string(choice), "none") == 0;
    bool history = bedrock_has_tool_history(req);
    if ((tools == NULL || json_object_array_length(tools) == 0 || none) && !history)
        return;
    json_object *list = json_object_new_array();
    for (size_t i = 0; tools != NULL && i < json_object_array_length(tools); i++) {
        json_object *fn, *name, *desc = NULL, *params = NULL;
        json_object_object_get_ex(json_object_array_get_idx(tools, i), "function", &fn);
        json_object_object_get_ex(fn, "name", &name);
        json_object_object_get_ex(fn, "description", &desc);
        json_object_object_get_ex(fn, "parameters", &params);
        json_object_array_add(list, bedrock_tool_spec(name, desc, params));
    }
    bedrock_add_history_tools(list, req);
    json_object *tc = json_object_new_object();
    json_object_object_add(tc, "tools", list);
    if (choice != NULL && !none) {
        json_object *c = json_object_new_object();
        if (json_object_is_type(choice, json_type_string)) {
            bool any = strcmp(json_object_get_string(choice), "required") == 0;
            json_object_object_add(c, any ? "any" : "auto", json_object_new_object());
        } else {
            json_object *fn, *name, *t = json_object_new_object();
            json_object_object_get_ex(choice, "function", &fn);
            json_object_object_get_ex(fn, "name", &name);
            json_object_object_add(t, "name", json_object_get(name));
            json_object_object_add(c, "tool", t);
        }
        json_object_object_add(tc, "toolChoice", c);
    }
    json_object_object_add(root, "toolConfig", tc);
}

/* Splits url ("https://host[:port]/path?query") into the Host header curl sends (the default
 * port left out), the path and the query (NULL when none), both as sent. */
static int
bedrock_split_url(const char *url, char *host, size_t cap, const char **path, char **query)
{
    const char *a = strstr(url, "://");
    if (a == NULL)
        return PB_ERR;
    bool https = strncmp(url, "https", 5) == 0;
    a += 3;
    size_t n = strcspn(a, "/?");
    if (n == 0 || n >= cap)
        return PB_ERR;
    memcpy(host, a, n);
    host[n] = '\0';
    const char *port = strrchr(host, ':');
    if (port != NULL && strchr(port, ']') == NULL && strcmp(port + 1, https ? "443" : "80") == 0)
        host[port - host] = '\0';
    *path = a + n;
    const char *q = strchr(*path, '?');
    *query = q != NULL ? pb_xstrdup(q + 1) : NULL;
    return PB_OK;
}

/* Adds the SigV4 headers (Host, x-amz-date, x-amz-content-sha256, x-amz-security-token,
 * Authorization) for the request as built: call it last, once the URL and body are final. */
static int
bedrock_sign(const pb_provider_conf *p, pb_http_request *out, pb_error *err)
{
    if (p->aws_access_key_id == NULL || p->aws_secret_access_key == NULL) {
        pb_error_set(err, PB_PROVIDER_BAD_CONF,
                     "BAD_CONF no AWS credentials: %s and %s are not set (or give "
                     "bearer_token_env)",
                     p->aws_access_key_id_env, p->aws_secret_access_key_env);
        return PB_ERR;
    }
    char host[BEDROCK_HOST_MAX], date[17], *query = NULL;
    const char *path;
    if (bedrock_split_url(out->url, host, sizeof(host), &path, &query) != PB_OK) {
        pb_error_set(err, PB_PROVIDER_BAD_CONF, "BAD_CONF base_url has no host to sign");
        return PB_ERR;
    }
    char *path_only = pb_xstrndup(path, strcspn(path, "?"));
    pb_sigv4_amz_date(pb_wall_ms(), date);
    const pb_sigv4_header signed_headers[] = {{"content-type", "application/json"}};
    pb_sigv4_request sr = {.method = "POST",
                           .host = host,
                           .path = path_only[0] != '\0' ? path_only : "/",
                           .query = query,
                           .headers = signed_headers,
                           .n_headers = 1,
                           .body = out->body,
                           .body_len = out->body_len,
                           .sign_content_sha256 = true,
                           .region = p->region,
                           .service = "bedrock",
                           .access_key_id = p->aws_access_key_id,
                           .secret_access_key = p->aws_secret_access_key,
                           .session_token = p->aws_session_token,
                           .amz_date = date};
    pb_sigv4_signed sig = {0};
    int rc = pb_sigv4_sign(&sr, &sig, err);
    if (rc == PB_OK)
        rc = pb_provider_add_header(out, err, "Host: %s", host) != PB_OK ||
                     pb_provider_add_header(out, err, "x-amz-date: %s", sig.amz_date) != PB_OK ||
                     pb_provider_add_header(out, err, "x-amz-content-sha256: %s",
                                            sig.content_sha256) != PB_OK ||
                     (sig.security_token != NULL &&
                      pb_provider_add_header(out, err, "x-amz-security-token: %s",
                                             sig.security_token) != PB_OK) ||
                     pb_provider_add_header(out, err, "Authorization: %s", sig.authorization) !=
                         PB_OK
                 ? PB_ERR
                 : PB_OK;
    else
        err->code = PB_PROVIDER_BAD_CONF;
    pb_sigv4_signed_free(&sig);
    free(path_only);
    free(query);
    return rc;
}

static int
bedrock_build_request(const pb_provider_conf *p, const pb_model_conf *m, const pb_request *req,
                      pb_http_request *out, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *model = m->upstream ? m->upstream : m->name;
    char *id = pb_sigv4_uri_encode(model, strlen(model));
    const char *method = req->stream ? "/converse-stream" : "/converse";
    pb_buf url;
    pb_buf_init(&url, SIZE_MAX);
    pb_buf_append(&url, p->base_url, strlen(p->base_url));
    pb_buf_append(&url, "/model/", 7);
    pb_buf_append(&url, id, strlen(id));
    pb_buf_append(&url, method, strlen(method));
    free(id);
    out->url = url.data;
    const char *why = bedrock_refuses(req);
    if (why != NULL) {
        pb_error_set(err, PB_PROVIDER_UNSUPPORTED, "UNSUPPORTED %s", why);
        return PB_ERR;
    }
    json_object *root = json_object_new_object();
    bedrock_add_conversation(root, req);
    bedrock_add_inference(root, m, req);
    bedrock_add_tools(root, req);
    pb_provider_set_json_body(out, root);
    if (pb_provider_add_header(out, err, "Content-Type: application/json") != PB_OK ||
        pb_provider_add_conn(p, out, err) != PB_OK)
        return PB_ERR;
    if (p->bearer_token_env != NULL)
        return p->bearer_token == NULL ||
                       pb_provider_add_header(out, err, "Authorization: Bearer %s",
                                              p->bearer_token) == PB_OK
                   ? PB_OK
                   : PB_ERR;
    return bedrock_sign(p, out, err);
}

static const char *
bedrock_finish_reason(const char *reason, bool has_tool_calls)
{
    if (has_tool_calls)
        return "tool_calls";
    for (size_t i = 0;
         reason != NULL && i < sizeof(bedrock_stop_reasons) / sizeof(*bedrock_stop_reasons); i++)
        if (strcmp(reason, bedrock_stop_reasons[i].reason) == 0)
            return bedrock_stop_reasons[i].finish;
    return "stop";
}

/* Whether d holds a tool call (block tool indices start at 0). */
static bool
bedrock_has_calls(pb_delta *d)
{
    return pb_delta_tool_count(d) > 0;
}

/* usage as OpenAI counts it: prompt includes the prompt-cache reads and writes (Converse,
 * like Anthropic, counts them apart). */
static void
bedrock_usage(pb_delta *d, json_object *usage)
{
    long in = pb_provider_tokens(usage, "inputTokens");
    long read = pb_provider_tokens(usage, "cacheReadInputTokens");
    long made = pb_provider_tokens(usage, "cacheWriteInputTokens");
    long prompt = in < 0 ? -1 : in + (read > 0 ? read : 0) + (made > 0 ? made : 0);
    pb_delta_usage(d, prompt, pb_provider_tokens(usage, "outputTokens"), prompt >= 0 ? read : -1,
                   -1);
}

/* A toolUse's id, name and input (as JSON text, borrowed from use until it is put), or NULL
 * when malformed (no id or name, input not an object, any of them not UTF-8). */
static const char *
bedrock_tool_use(json_object *use, const char **id, const char **args)
{
    json_object *input;
    const char *name = bedrock_str(use, "name");
    *id = bedrock_str(use, "toolUseId");
    *args = NULL;
    if (name == NULL || name[0] == '\0' || *id == NULL || (*id)[0] == '\0' ||
        !json_object_object_get_ex(use, "input", &input) ||
        !json_object_is_type(input, json_type_object))
        return NULL;
    *args = json_object_to_json_string_ext(input, BEDROCK_JSON_FLAGS);
    return pb_utf8_is_text(name, strlen(name)) && pb_utf8_is_text(*id, strlen(*id)) &&
                   pb_utf8_is_text(*args, strlen(*args))
               ? name
               : NULL;
}

/* output.message.content of a whole reply into d: text blocks, toolUse blocks (each a tool
 * call of its own); reasoning and other blocks are not the answer. NULL, or why malformed. */
static const char *
bedrock_read_content(pb_delta *d, json_object *content)
{
    for (size_t i = 0; i < json_object_array_length(content); i++) {
        json_object *b = json_object_array_get_idx(content, i), *v, *use;
        if (json_object_object_get_ex(b, "text", &v) && json_object_is_type(v, json_type_string)) {
            pb_delta_text(d, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        } else if (json_object_object_get_ex(b, "toolUse", &use)) {
            const char *id, *args, *name = bedrock_tool_use(use, &id, &args);
            int index;
            if (name == NULL)
                return "a toolUse without a UTF-8 toolUseId and name, or with input that is not "
                       "an object";
            if (pb_delta_block_tool(d, (int)i, true, &index) != PB_OK ||
                pb_delta_tool(d, index, id, name, args, strlen(args)) != PB_OK)
                return "more than 128 toolUse blocks";
        }
    }
    return NULL;
}

/* A whole reply is put together like a stream, so both give the same answer. */
static int
bedrock_parse_response(const char *body, size_t len, const pb_request *req, pb_completion *out,
                       pb_error *err)
{
    (void)req;
    memset(out, 0, sizeof(*out));
    json_object *root = pb_provider_parse_object(body, len, err), *output, *msg, *content = NULL,
                *usage;
    if (root == NULL)
        return PB_ERR;
    pb_delta *d = pb_delta_new(NULL, SIZE_MAX);
    const char *why = NULL;
    if (json_object_object_get_ex(root, "output", &output) &&
        json_object_object_get_ex(output, "message", &msg))
        json_object_object_get_ex(msg, "content", &content);
    if (!json_object_is_type(content, json_type_array))
        why = "no output.message.content";
    else
        why = bedrock_read_content(d, content);
    if (json_object_object_get_ex(root, "usage", &usage) &&
        json_object_is_type(usage, json_type_object))
        bedrock_usage(d, usage);
    if (why == NULL) {
        pb_delta_finish_reason(
            d, bedrock_finish_reason(bedrock_str(root, "stopReason"), bedrock_has_calls(d)));
        pb_delta_end(d);
    }
    /* Checked as a C string too: a text that starts with \u0000 is empty to every reader. */
    if (why == NULL && (pb_delta_complete(d, out, NULL) != PB_OK ||
                        (out->content[0] == '\0' && out->tool_calls == NULL &&
                         strcmp(out->finish_reason, "content_filter") != 0)))
        why = "no text or toolUse in output.message.content";
    if (why != NULL) {
        pb_provider_completion_free(out);
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
    }
    pb_delta_free(d);
    json_object_put(root);
    return why == NULL ? PB_OK : PB_ERR;
}

/* By status, as Bedrock documents its exceptions: ThrottlingException and ModelNotReady
 * (429), ModelTimeout (408) and ModelError (424) are retried; InternalServer (500) and
 * ServiceUnavailable (503) fall back at once; ValidationException (400) is a limit of this
 * model (context, a parameter it lacks), so the next one may serve the job; AccessDenied
 * (403), ResourceNotFound (404) and the rest of the table fall back. */
static pb_class
bedrock_classify(long status, const char *body, size_t len)
{
    switch (status) {
    case 400:
    case 500:
    case 503:
        return PB_CLASS_FALLBACK;
    case 424:
        return PB_CLASS_RETRY;
    default:
        return pb_provider_classify_status(status, body, len);
    }
}

/* Params Converse has no equivalent for (or none planb sends): listed in dropped_params. */
static const char *const bedrock_drops[] = {"frequency_penalty",
                                            "presence_penalty",
                                            "logit_bias",
                                            "seed",
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
                                            "anthropic",
                                            NULL};

static size_t
bedrock_dropped(const pb_request *req, char (*names)[PB_PROVIDER_PARAM_LEN], size_t max)
{
    size_t n = 0;
    for (const char *const *d = bedrock_drops; *d; d++)
        if (pb_request_param(req, *d) != NULL)
            pb_provider_drop(names, &n, max, *d);
    json_object *choice = pb_request_param(req, "tool_choice");
    if (json_object_is_type(choice, json_type_string) &&
        strcmp(json_object_get_string(choice), "none") == 0 && bedrock_has_tool_history(req))
        pb_provider_drop(names, &n, max, "tool_choice");
    pb_provider_drop_unsendable(req, names, &n, max);
    return n;
}

/* contentBlockIndex of a stream event, -1 when absent. */
static int
bedrock_block(json_object *root)
{
    json_object *v;
    return json_object_object_get_ex(root, "contentBlockIndex", &v) &&
                   json_object_is_type(v, json_type_int) && json_object_get_int(v) >= 0
               ? json_object_get_int(v)
               : -1;
}

/* contentBlockStart: a toolUse block starts (a text block starts with its first delta). */
static const char *
bedrock_block_start(pb_delta *d, json_object *root)
{
    json_object *start, *use;
    if (!json_object_object_get_ex(root, "start", &start) ||
        !json_object_object_get_ex(start, "toolUse", &use))
        return NULL;
    const char *id = bedrock_str(use, "toolUseId"), *name = bedrock_str(use, "name");
    int index;
    if (id == NULL || name == NULL || name[0] == '\0' || !pb_utf8_is_text(id, strlen(id)) ||
        !pb_utf8_is_text(name, strlen(name)))
        return "a toolUse start without a UTF-8 toolUseId and name";
    if (pb_delta_block_tool(d, bedrock_block(root), true, &index) != PB_OK ||
        pb_delta_tool(d, index, id, name, "", 0) != PB_OK)
        return "too many toolUse blocks";
    return NULL;
}

/* contentBlockDelta: a piece of text, or of a toolUse's input (JSON text in pieces). */
static const char *
bedrock_block_delta(pb_delta *d, json_object *root)
{
    json_object *delta, *use;
    if (!json_object_object_get_ex(root, "delta", &delta))
        return "a contentBlockDelta without delta";
    const char *t = bedrock_str(delta, "text");
    if (t != NULL) {
        pb_delta_text(d, t, strlen(t));
        return NULL;
    }
    if (!json_object_object_get_ex(delta, "toolUse", &use))
        return NULL; /* reasoningContent and the like: not the answer */
    const char *input = bedrock_str(use, "input");
    int index;
    if (input == NULL || pb_delta_block_tool(d, bedrock_block(root), false, &index) != PB_OK ||
        pb_delta_tool(d, index, NULL, NULL, input, strlen(input)) != PB_OK)
        return "a toolUse input delta for a block that is not a toolUse";
    return NULL;
}

/* One event-stream message: event is its :event-type, or its :exception-type when it is an
 * exception (throttlingException, modelStreamErrorException, ...), which fails the attempt. */
static int
bedrock_stream_event(pb_delta *d, const char *event, const char *data, size_t len, pb_error *err)
{
    static const char *const events[] = {"messageStart",      "contentBlockStart",
                                         "contentBlockDelta", "contentBlockStop",
                                         "messageStop",       "metadata"};
    bool known = false;
    for (size_t i = 0; i < sizeof(events) / sizeof(*events); i++)
        known |= strcmp(event, events[i]) == 0;
    if (!known) {
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY the stream sent %.64s", event);
        return PB_ERR;
    }
    json_object *root = pb_provider_parse_object(data, len, err), *usage;
    if (root == NULL)
        return PB_ERR;
    const char *why = NULL;
    if (strcmp(event, "contentBlockStart") == 0) {
        why = bedrock_block_start(d, root);
    } else if (strcmp(event, "contentBlockDelta") == 0) {
        why = bedrock_block_delta(d, root);
    } else if (strcmp(event, "messageStop") == 0) {
        pb_delta_finish_reason(
            d, bedrock_finish_reason(bedrock_str(root, "stopReason"), bedrock_has_calls(d)));
        pb_delta_end(d);
    } else if (strcmp(event, "metadata") == 0 && json_object_object_get_ex(root, "usage", &usage)) {
        bedrock_usage(d, usage);
    }
    json_object_put(root);
    if (why) {
        pb_error_set(err, PB_PROVIDER_BAD_REPLY, "BAD_REPLY %s", why);
        return PB_ERR;
    }
    return PB_OK;
}

const pb_provider_ops pb_provider_bedrock = {
    .type_name = "bedrock",
    .build_request = bedrock_build_request,
    .parse_response = bedrock_parse_response,
    .classify = bedrock_classify,
    .refuses = bedrock_refuses,
    .dropped = bedrock_dropped,
    .stream_event = bedrock_stream_event,
    .eventstream = true,
};
