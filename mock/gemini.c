/* gemini.c -- Google's Gemini API (generateContent, streamGenerateContent?alt=sse) in
 * planb-mock.
 *
 * Validation follows the real API on what planb sends (the key in x-goog-api-key and never in
 * the URL, known fields only, contents of user and model turns with parts of one kind each,
 * no two model turns in a row, a functionResponse turn answering the functionCall turn before
 * it name for name, generationConfig ranges, function names), so a wrong translation shows up
 * as a 400 the tests see. Answers are the other dialects' (an echo of the last user text,
 * "tool said: ..." after function responses, the behaviour's tool calls or text,
 * {"answer": ...} for a JSON response type) in Gemini's shapes; usage counts words. */
#include "gemini.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/buf.h"

#define GEMINI_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define GEMINI_STOP_MAX   5 /* stopSequences the API takes */

static int
gemini_fail(pb_error *err, int status, const char *msg)
{
    pb_error_set(err, 1, "%s", msg);
    return status;
}

/* A function name as the API takes it: a letter or _, then [A-Za-z0-9_.-], 64 at most. */
static bool
gemini_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64 ||
        !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* One part: exactly one of text, inlineData, functionCall (model turns), functionResponse (user
 * turns), fileData; NULL or why not. *kind gets which. */
static const char *
gemini_part_why(json_object *p, bool model, const char **kind)
{
    static const char *const kinds[] = {
        "text", "inlineData", "functionCall", "functionResponse", "fileData", NULL};
    static const char *const known[] = {
        "text", "inlineData", "functionCall", "functionResponse", "fileData", "thought", NULL};
    const char *unknown;
    if (!json_object_is_type(p, json_type_object))
        return "contents.parts: each part must be an object";
    if (!pb_mock_only_keys(p, known, &unknown))
        return "contents.parts: unknown field in a part";
    *kind = NULL;
    for (const char *const *k = kinds; *k; k++)
        if (pb_mock_get(p, *k) != NULL) {
            if (*kind != NULL)
                return "contents.parts: a part holds one kind of data (oneof)";
            *kind = *k;
        }
    if (*kind == NULL)
        return "contents.parts: a part must hold text, inlineData, functionCall or "
               "functionResponse";
    json_object *v = pb_mock_get(p, *kind);
    if (strcmp(*kind, "text") == 0 &&
        (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0))
        return "contents.parts.text: must be a non-empty string";
    if (strcmp(*kind, "inlineData") == 0 &&
        (pb_mock_str(v, "mimeType") == NULL || pb_mock_str(v, "data") == NULL))
        return "contents.parts.inlineData: needs mimeType and data";
    if (strcmp(*kind, "functionCall") == 0) {
        if (!model)
            return "contents.parts.functionCall: only in a model turn";
        json_object *a = pb_mock_get(v, "args");
        if (!gemini_name_ok(pb_mock_str(v, "name")) ||
            (a != NULL && !json_object_is_type(a, json_type_object)))
            return "contents.parts.functionCall: needs a valid name and object args";
    }
    if (strcmp(*kind, "functionResponse") == 0) {
        if (model)
            return "contents.parts.functionResponse: only in a user turn";
        if (!gemini_name_ok(pb_mock_str(v, "name")) ||
            !json_object_is_type(pb_mock_get(v, "response"), json_type_object))
            return "contents.parts.functionResponse: needs a name and an object response";
    }
    return NULL;
}

/* The names of the parts of kind (functionCall, functionResponse) in parts, as an array
 * (caller puts). */
static json_object *
gemini_names(json_object *parts, const char *kind)
{
    json_object *names = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(parts); i++) {
        json_object *v = pb_mock_get(json_object_array_get_idx(parts, i), kind);
        if (pb_mock_str(v, "name") != NULL)
            json_object_array_add(names, json_object_get(pb_mock_get(v, "name")));
    }
    return names;
}

static size_t
gemini_count(json_object *names, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < json_object_array_length(names); i++)
        n += strcmp(json_object_get_string(json_object_array_get_idx(names, i)), name) == 0;
    return n;
}

/* The responses answer the calls name for name, as many of each: the API's "the number of
 * function response parts is equal to the number of function call parts". */
static bool
gemini_same_names(json_object *calls, json_object *answers)
{
    size_t n = json_object_array_length(answers);
    if (calls == NULL || n == 0 || n != json_object_array_length(calls))
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(answers, i));
        if (gemini_count(answers, name) != gemini_count(calls, name))
            return false;
    }
    return true;
}

static int
gemini_validate_contents(json_object *contents, pb_error *err)
{
    if (!json_object_is_type(contents, json_type_array) || json_object_array_length(contents) == 0)
        return gemini_fail(err, 400, "contents: must be a non-empty array");
    const char *prev = NULL;
    json_object *calls = NULL; /* names called by the model turn before, not yet answered */
    int bad = 0;
    for (size_t i = 0; bad == 0 && i < json_object_array_length(contents); i++) {
        json_object *c = json_object_array_get_idx(contents, i), *parts = pb_mock_get(c, "parts");
        const char *role = pb_mock_str(c, "role"), *unknown;
        static const char *const known[] = {"role", "parts", NULL};
        if (!json_object_is_type(c, json_type_object) || !pb_mock_only_keys(c, known, &unknown))
            bad = gemini_fail(err, 400, "contents: each entry is {role, parts}");
        else if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "model") != 0))
            bad = gemini_fail(err, 400, "contents.role: must be \"user\" or \"model\"");
        else if (!json_object_is_type(parts, json_type_array) ||
                 json_object_array_length(parts) == 0)
            bad = gemini_fail(err, 400, "contents.parts: must not be empty");
        else if (prev != NULL && strcmp(prev, "model") == 0 && strcmp(role, "model") == 0)
            bad = gemini_fail(err, 400,
                              "Please ensure that multiturn requests alternate between user "
                              "and model.");
        bool model = role != NULL && strcmp(role, "model") == 0;
        for (size_t k = 0; bad == 0 && k < json_object_array_length(parts); k++) {
            const char *kind,
                *why = gemini_part_why(json_object_array_get_idx(parts, k), model, &kind);
            if (why != NULL)
                bad = gemini_fail(err, 400, why);
        }
        if (bad != 0)
            break;
        json_object *answers = gemini_names(parts, "functionResponse");
        if (json_object_array_length(answers) > 0 && !gemini_same_names(calls, answers))
            bad = gemini_fail(err, 400,
                              "Please ensure that function response turn comes right after a "
                              "function call turn, answering each of its calls by name.");
        else if (json_object_array_length(answers) == 0 && calls != NULL)
            bad = gemini_fail(err, 400,
                              "Please ensure that function call turn comes immediately before a "
                              "function response turn.");
        json_object_put(answers);
        json_object_put(calls);
        calls = model ? gemini_names(parts, "functionCall") : NULL;
        if (calls != NULL && json_object_array_length(calls) == 0) {
            json_object_put(calls);
            calls = NULL;
        }
        prev = role;
    }
    json_object_put(calls);
    return bad;
}

static int
gemini_validate_generation(json_object *g, pb_error *err)
{
    static const char *const known[] = {"temperature",
                                        "topP",
                                        "topK",
                                        "maxOutputTokens",
                                        "stopSequences",
                                        "candidateCount",
                                        "seed",
                                        "responseMimeType",
                                        "responseSchema",
                                        "presencePenalty",
                                        "frequencyPenalty",
                                        "thinkingConfig",
                                        NULL};
    const char *unknown;
    if (g == NULL)
        return 0;
    if (!json_object_is_type(g, json_type_object))
        return gemini_fail(err, 400, "generationConfig: must be an object");
    if (!pb_mock_only_keys(g, known, &unknown))
        return gemini_fail(err, 400,
                           "generationConfig: Invalid JSON payload received. Unknown name");
    json_object *v;
    if (!pb_mock_number_in(pb_mock_get(g, "temperature"), 0, 2))
        return gemini_fail(err, 400, "generationConfig.temperature: must be 0 to 2");
    if (!pb_mock_number_in(pb_mock_get(g, "topP"), 0, 1))
        return gemini_fail(err, 400, "generationConfig.topP: must be 0 to 1");
    if ((v = pb_mock_get(g, "maxOutputTokens")) != NULL &&
        (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1))
        return gemini_fail(err, 400,
                           "generationConfig.maxOutputTokens: must be a positive integer");
    if ((v = pb_mock_get(g, "candidateCount")) != NULL &&
        (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1))
        return gemini_fail(err, 400, "generationConfig.candidateCount: planb-mock answers 1");
    if ((v = pb_mock_get(g, "stopSequences")) != NULL &&
        (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > GEMINI_STOP_MAX))
        return gemini_fail(err, 400, "generationConfig.stopSequences: at most 5 strings");
    const char *mime = pb_mock_str(g, "responseMimeType");
    if (mime != NULL && strcmp(mime, "text/plain") != 0 && strcmp(mime, "application/json") != 0)
        return gemini_fail(err, 400, "generationConfig.responseMimeType: unsupported");
    if (pb_mock_get(g, "responseSchema") != NULL &&
        (mime == NULL || strcmp(mime, "application/json") != 0))
        return gemini_fail(
            err, 400, "generationConfig.responseSchema: needs responseMimeType application/json");
    return 0;
}

static int
gemini_validate_tools(json_object *body, pb_error *err)
{
    json_object *tools = pb_mock_get(body, "tools"), *tc = pb_mock_get(body, "toolConfig");
    for (size_t i = 0; tools != NULL && i < json_object_array_length(tools); i++) {
        json_object *decls =
            pb_mock_get(json_object_array_get_idx(tools, i), "functionDeclarations");
        if (!json_object_is_type(decls, json_type_array))
            return gemini_fail(err, 400, "tools: each entry needs functionDeclarations");
        for (size_t k = 0; k < json_object_array_length(decls); k++) {
            json_object *d = json_object_array_get_idx(decls, k),
                        *params = pb_mock_get(d, "parameters");
            if (!gemini_name_ok(pb_mock_str(d, "name")))
                return gemini_fail(err, 400, "tools.functionDeclarations.name: invalid");
            if (params != NULL && !json_object_is_type(params, json_type_object))
                return gemini_fail(err, 400,
                                   "tools.functionDeclarations.parameters: must be an object");
        }
    }
    if (tools != NULL && !json_object_is_type(tools, json_type_array))
        return gemini_fail(err, 400, "tools: must be an array");
    json_object *fcc = pb_mock_get(tc, "functionCallingConfig");
    const char *mode = pb_mock_str(fcc, "mode");
    if (tc != NULL && (mode == NULL || (strcmp(mode, "AUTO") != 0 && strcmp(mode, "ANY") != 0 &&
                                        strcmp(mode, "NONE") != 0)))
        return gemini_fail(err, 400, "toolConfig.functionCallingConfig.mode: AUTO, ANY or NONE");
    if (pb_mock_get(fcc, "allowedFunctionNames") != NULL && strcmp(mode, "ANY") != 0)
        return gemini_fail(err, 400, "toolConfig: allowedFunctionNames needs mode ANY");
    return 0;
}

int
pb_mock_gemini_validate(const pb_mock_request *r, pb_error *err)
{
    static const char *const known[] = {
        "contents",   "systemInstruction", "generationConfig", "tools",
        "toolConfig", "safetySettings",    "cachedContent",    NULL};
    const char *unknown;
    if (r->key_in_url)
        return gemini_fail(err, 400,
                           "key: planb-mock wants the key in x-goog-api-key, never in "
                           "the URL (it ends up in logs)");
    if (r->api_key == NULL || r->api_key[0] == '\0')
        return gemini_fail(err, 403,
                           "Method doesn't allow unregistered callers (callers without "
                           "established identity). Please use API Key.");
    if (!pb_mock_only_keys(r->body, known, &unknown))
        return gemini_fail(err, 400,
                           "Invalid JSON payload received. Unknown name at the top level");
    json_object *si = pb_mock_get(r->body, "systemInstruction");
    if (si != NULL) {
        json_object *parts = pb_mock_get(si, "parts");
        const char *kind;
        if (!json_object_is_type(parts, json_type_array) || json_object_array_length(parts) == 0)
            return gemini_fail(err, 400, "systemInstruction.parts: must not be empty");
        for (size_t i = 0; i < json_object_array_length(parts); i++)
            if (gemini_part_why(json_object_array_get_idx(parts, i), false, &kind) != NULL ||
                strcmp(kind, "text") != 0)
                return gemini_fail(err, 400, "systemInstruction.parts: text parts only");
    }
    int bad = gemini_validate_contents(pb_mock_get(r->body, "contents"), err);
    if (bad == 0)
        bad = gemini_validate_generation(pb_mock_get(r->body, "generationConfig"), err);
    if (bad == 0)
        bad = gemini_validate_tools(r->body, err);
    return bad;
}

static void
gemini_answer_make(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                   pb_mock_answer *a)
{
    json_object *contents = pb_mock_get(r->body, "contents"), *last = NULL;
    pb_buf_init(&a->text, SIZE_MAX);
    pb_buf_append(&a->text, "", 0);
    a->calls = NULL;
    a->prompt =
        pb_mock_texts(pb_mock_get(pb_mock_get(r->body, "systemInstruction"), "parts"), NULL);
    for (size_t i = 0; i < json_object_array_length(contents); i++) {
        json_object *c = json_object_array_get_idx(contents, i);
        a->prompt += pb_mock_texts(pb_mock_get(c, "parts"), NULL);
        if (strcmp(pb_mock_str(c, "role"), "user") == 0)
            last = c;
    }
    if (kind == PB_MOCK_BODY_EMPTY)
        return;
    if (text != NULL) {
        pb_buf_append(&a->text, text, strlen(text));
        return;
    }
    json_object *tail = json_object_array_get_idx(contents, json_object_array_length(contents) - 1);
    json_object *fr =
        pb_mock_get(json_object_array_get_idx(pb_mock_get(tail, "parts"), 0), "functionResponse");
    if (r->tool_calls != NULL && fr == NULL) {
        a->calls = json_object_get(r->tool_calls);
        return;
    }
    pb_buf echo;
    pb_buf_init(&echo, SIZE_MAX);
    if (fr != NULL) {
        json_object *resp = pb_mock_get(fr, "response"), *res = pb_mock_get(resp, "result");
        const char *s = json_object_is_type(res, json_type_string)
                            ? json_object_get_string(res)
                            : json_object_to_json_string_ext(resp, GEMINI_JSON_FLAGS);
        pb_buf_append(&echo, "tool said: ", 11);
        pb_buf_append(&echo, s, strlen(s));
    } else {
        pb_buf_append(&echo, "echo: ", 6);
        pb_mock_texts(pb_mock_get(last, "parts"), &echo);
    }
    json_object *g = pb_mock_get(r->body, "generationConfig");
    const char *mime = pb_mock_str(g, "responseMimeType");
    if (mime != NULL && strcmp(mime, "application/json") == 0) {
        json_object *o = json_object_new_object();
        json_object_object_add(
            o, "answer", json_object_new_string_len(echo.data ? echo.data : "", (int)echo.len));
        const char *s = json_object_to_json_string_ext(o, GEMINI_JSON_FLAGS);
        pb_buf_append(&a->text, s, strlen(s));
        json_object_put(o);
    } else {
        pb_buf_append(&a->text, echo.data ? echo.data : "", echo.len);
    }
    pb_buf_free(&echo);
}

/* A functionCall part for call {name, arguments}: args an object, or broken text when the
 * behaviour asks for bad arguments. */
static json_object *
gemini_call_part(const pb_mock_request *r, json_object *call)
{
    json_object *fc = json_object_new_object(), *p = json_object_new_object();
    json_object_object_add(fc, "name", json_object_get(pb_mock_get(call, "name")));
    json_object_object_add(fc, "args",
                           r->bad_tool_args ? json_object_new_string("{\"city\": \"Par")
                                            : json_object_get(pb_mock_get(call, "arguments")));
    json_object_object_add(p, "functionCall", fc);
    return p;
}

static json_object *
gemini_text_part(const char *s, size_t n)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "text", json_object_new_string_len(s, (int)n));
    return p;
}

/* One GenerateContentResponse: parts (taken; NULL: no content), finishReason (NULL: none yet)
 * and usage. */
static json_object *
gemini_response(const pb_mock_request *r, unsigned long id, json_object *parts, const char *finish,
                long prompt, long out)
{
    json_object *cand = json_object_new_object(), *cands = json_object_new_array();
    if (parts != NULL) {
        json_object *content = json_object_new_object();
        json_object_object_add(content, "parts", parts);
        json_object_object_add(content, "role", json_object_new_string("model"));
        json_object_object_add(cand, "content", content);
    }
    if (finish != NULL)
        json_object_object_add(cand, "finishReason", json_object_new_string(finish));
    json_object_object_add(cand, "index", json_object_new_int(0));
    json_object_array_add(cands, cand);
    json_object *u = json_object_new_object(), *o = json_object_new_object();
    json_object_object_add(u, "promptTokenCount", json_object_new_int64(prompt));
    if (out >= 0) {
        json_object_object_add(u, "candidatesTokenCount", json_object_new_int64(out));
        json_object_object_add(u, "totalTokenCount", json_object_new_int64(prompt + out));
    }
    char rid[48];
    snprintf(rid, sizeof(rid), "mock-%lu", id);
    json_object_object_add(o, "candidates", cands);
    json_object_object_add(o, "usageMetadata", u);
    json_object_object_add(o, "modelVersion", json_object_new_string(r->model));
    json_object_object_add(o, "responseId", json_object_new_string(rid));
    return o;
}

/* The finishReason the behaviour asks for, else natural. */
static const char *
gemini_finish(const pb_mock_request *r)
{
    if (r->finish_reason != NULL && strcmp(r->finish_reason, "length") == 0)
        return "MAX_TOKENS";
    if (r->finish_reason != NULL && strcmp(r->finish_reason, "content_filter") == 0)
        return "SAFETY";
    return "STOP";
}

char *
pb_mock_gemini_reply(const pb_mock_request *r, pb_mock_body_kind kind, const char *text,
                     unsigned long id, size_t pad_to, size_t *len)
{
    if (kind == PB_MOCK_BODY_MISSING) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "modelVersion", json_object_new_string(r->model));
        return pb_mock_dialect_take_json(o, len);
    }
    pb_mock_answer a;
    gemini_answer_make(r, kind, text, &a);
    json_object *parts = json_object_new_array();
    long out = 1;
    const char *finish = gemini_finish(r);
    for (size_t i = 0; a.calls != NULL && i < json_object_array_length(a.calls); i++)
        json_object_array_add(parts, gemini_call_part(r, json_object_array_get_idx(a.calls, i)));
    if (a.calls == NULL) {
        out = pb_mock_dialect_words(a.text.data, a.text.len);
        json_object_array_add(parts, gemini_text_part(a.text.data, a.text.len));
    }
    if (strcmp(finish, "SAFETY") == 0) {
        json_object_put(parts); /* a blocked answer carries no content */
        parts = NULL;
        out = 0;
    }
    char *body =
        pb_mock_dialect_take_json(gemini_response(r, id, parts, finish, a.prompt, out), len);
    json_object_put(a.calls);
    pb_buf_free(&a.text);
    return pb_mock_pad_json(body, len, pad_to);
}

/* Appends one "data: <o>\n\n" event of kind; takes o. */
static void
gemini_event(pb_mock_stream *s, pb_mock_event_kind kind, json_object *o)
{
    pb_mock_event *e = pb_mock_stream_add(s, kind);
    size_t n;
    const char *js = json_object_to_json_string_length(o, GEMINI_JSON_FLAGS, &n);
    pb_buf_append(&s->data, "data: ", 6);
    pb_buf_append(&s->data, js, n);
    pb_buf_append(&s->data, "\r\n\r\n", 4); /* the real API's line ends */
    e->len = s->data.len - e->off;
    json_object_put(o);
}

void
pb_mock_gemini_stream(pb_mock_stream *s, const pb_mock_request *r, pb_mock_body_kind kind,
                      const char *text, unsigned long id)
{
    pb_mock_answer a;
    gemini_answer_make(r, kind, text, &a);
    long words = a.calls != NULL ? 1 : pb_mock_dialect_words(a.text.data, a.text.len);
    long per = pb_mock_dialect_words_per_piece(words);
    for (size_t i = 0, j; a.calls == NULL && i < a.text.len; i = j) {
        j = pb_mock_dialect_word_end(a.text.data, a.text.len, i, per);
        json_object *parts = json_object_new_array();
        json_object_array_add(parts, gemini_text_part(a.text.data + i, j - i));
        gemini_event(s, PB_MOCK_EVENT_CONTENT, gemini_response(r, id, parts, NULL, a.prompt, -1));
    }
    for (size_t k = 0; a.calls != NULL && k < json_object_array_length(a.calls); k++) {
        json_object *parts = json_object_new_array();
        json_object_array_add(parts, gemini_call_part(r, json_object_array_get_idx(a.calls, k)));
        gemini_event(s, PB_MOCK_EVENT_CONTENT, gemini_response(r, id, parts, NULL, a.prompt, -1));
    }
    json_object *last = json_object_new_array();
    json_object_array_add(last, gemini_text_part("", 0));
    gemini_event(s, PB_MOCK_EVENT_END,
                 gemini_response(r, id, last, gemini_finish(r), a.prompt, words));
    json_object_put(a.calls);
    pb_buf_free(&a.text);
}

/* The google.rpc status name of an HTTP status. */
static const char *
gemini_status_name(int status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 503:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT";
    }
}

char *
pb_mock_gemini_error(int status, const char *status_name, const char *message, bool sse,
                     size_t *len)
{
    char dflt[96];
    if (status_name == NULL)
        status_name = gemini_status_name(status);
    if (message == NULL) {
        snprintf(dflt, sizeof(dflt), "planb-mock: injected HTTP %d (%s)", status, status_name);
        message = dflt;
    }
    json_object *e = json_object_new_object(), *o = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_int(status));
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(e, "status", json_object_new_string(status_name));
    json_object_object_add(o, "error", e);
    if (!sse)
        return pb_mock_dialect_take_json(o, len);
    pb_mock_stream s = {0};
    pb_buf_init(&s.data, SIZE_MAX);
    gemini_event(&s, PB_MOCK_EVENT_FRAME, o);
    free(s.events);
    *len = s.data.len;
    return s.data.data;
}
