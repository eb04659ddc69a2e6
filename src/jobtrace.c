/* jobtrace.c -- a job's OpenTelemetry spans, built at its finish from what the chain recorded.
 *
 * Tree: planb.job (CONSUMER; from the push when the job carries submitted_at_ms, else from
 * the claim, to the finish; parent: the caller's span from traceparent) > planb.cache.lookup
 * (INTERNAL, one per exact or semantic lookup) and "chat <model>" (CLIENT, one per attempt,
 * refused ones included with 0 ms). Backoff waits, the degraded reply, a stream's first
 * token and its cut are events on planb.job. Attribute names are the GenAI semantic
 * conventions' (v1.37: gen_ai.provider.name) plus planb.*; messages are recorded only with
 * telemetry.capture_content, each bounded to JOBTRACE_CONTENT_MAX bytes.
 *
 * Keeping: a job that carries a sampled traceparent is kept, one that carries an unsampled
 * one is not (parent-based), a new trace is kept at telemetry.sample by its trace id; with
 * keep_fallbacks every job that fell back or degraded is kept too. The decision is made at
 * the finish, so nothing but a few timestamps is spent on a job whose spans are not kept,
 * and spans that would not fit the exporter's queue are counted as dropped, never built. */
#include "planb/jobtrace.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/core.h"
#include "planb/otlp.h"
#include "planb/provider.h"
#include "planb/trace.h"

#define JOBTRACE_LOOKUPS_MAX 4     /* exact, semantic first, semantic fallback */
#define JOBTRACE_EVENTS_MAX  32    /* backoffs are bounded by retries x models */
#define JOBTRACE_CONTENT_MAX 16384 /* bytes of each captured message list or answer */
#define JOBTRACE_NAME_MAX    320   /* "chat " + a model id (ARNs run to 2048: cut) */

typedef struct jobtrace_lookup {
    const char *kind;   /* static */
    const char *result; /* static */
    int64_t start_us, end_us;
} jobtrace_lookup;

typedef struct jobtrace_event {
    const char *name; /* static */
    const char *key;  /* static, NULL: no attribute */
    int64_t value;
    char text[32]; /* the attribute as text when set */
    int64_t at_us;
} jobtrace_event;

struct pb_jobtrace {
    pb_telemetry *tel;
    uint8_t trace_id[16];
    uint8_t parent[8]; /* the caller's span */
    bool has_parent;
    bool parent_sampled;
    const char *tracestate; /* borrowed from the request */
    jobtrace_lookup lookups[JOBTRACE_LOOKUPS_MAX];
    size_t n_lookups;
    jobtrace_event *events; /* allocated with the first (most jobs have none) */
    size_t n_events;
};

pb_jobtrace *
pb_jobtrace_new(pb_telemetry *tel, const pb_request *req)
{
    if (tel == NULL || req == NULL)
        return NULL;
    pb_jobtrace *jt = pb_xcalloc(1, sizeof(*jt));
    jt->tel = tel;
    if (req->has_trace) {
        memcpy(jt->trace_id, req->parent_trace.trace_id, 16);
        memcpy(jt->parent, req->parent_trace.span_id, 8);
        jt->has_parent = true;
        jt->parent_sampled = req->parent_trace.sampled;
        jt->tracestate = req->tracestate;
    } else {
        pb_trace_random_id(jt->trace_id, 16);
    }
    return jt;
}

void
pb_jobtrace_free(pb_jobtrace *jt)
{
    if (jt == NULL)
        return;
    free(jt->events);
    free(jt);
}

bool
pb_jobtrace_id(const pb_jobtrace *jt, char out[33])
{
    if (jt == NULL)
        return false;
    pb_trace_hex(jt->trace_id, 16, out);
    return true;
}

void
pb_jobtrace_lookup(pb_jobtrace *jt, const char *kind, int64_t start_us, const char *result)
{
    if (jt == NULL || jt->n_lookups == JOBTRACE_LOOKUPS_MAX)
        return;
    jt->lookups[jt->n_lookups++] = (jobtrace_lookup){
        .kind = kind, .result = result, .start_us = start_us, .end_us = pb_wall_us()};
}

void
pb_jobtrace_event(pb_jobtrace *jt, const char *name, const char *key, int64_t value,
                  const char *text)
{
    if (jt == NULL || jt->n_events == JOBTRACE_EVENTS_MAX)
        return;
    if (jt->events == NULL)
        jt->events = pb_xmalloc(JOBTRACE_EVENTS_MAX * sizeof(*jt->events));
    jobtrace_event *e = &jt->events[jt->n_events++];
    *e = (jobtrace_event){.name = name, .key = key, .value = value, .at_us = pb_wall_us()};
    if (text != NULL)
        snprintf(e->text, sizeof(e->text), "%s", text);
}

/* gen_ai.provider.name of a provider type (semantic conventions v1.37's well-known values). */
static const char *
jobtrace_provider_name(pb_provider_type t)
{
    switch (t) {
    case PB_PROVIDER_ANTHROPIC:
        return "anthropic";
    case PB_PROVIDER_AZURE:
        return "azure.ai.openai";
    case PB_PROVIDER_GEMINI:
        return "gcp.gemini";
    case PB_PROVIDER_BEDROCK:
        return "aws.bedrock";
    case PB_PROVIDER_OPENAI:
        break;
    }
    return "openai";
}

static const char *
jobtrace_upstream(const pb_model_conf *m)
{
    return m->upstream ? m->upstream : m->name;
}

static bool
jobtrace_kept(const pb_jobtrace *jt, const pb_jobtrace_facts *f)
{
    const pb_telemetry_conf *c = &f->cfg->telemetry;
    if (c->keep_fallbacks &&
        (strcmp(f->status, "degraded") == 0 || strcmp(f->source, "fallback") == 0 ||
         strcmp(f->source, "stale_cache") == 0))
        return true;
    if (jt->has_parent)
        return jt->parent_sampled;
    return pb_trace_ratio_keeps(jt->trace_id, c->sample);
}

/* The request's knobs shared by the job span and each attempt span. */
static void
jobtrace_request_attrs(pb_otlp_attrs *a, const pb_request *req)
{
    pb_otlp_str(a, "gen_ai.operation.name", "chat");
    if (req->max_tokens >= 0)
        pb_otlp_int(a, "gen_ai.request.max_tokens", req->max_tokens);
    if (isfinite(req->temperature))
        pb_otlp_double(a, "gen_ai.request.temperature", req->temperature);
    if (isfinite(req->top_p))
        pb_otlp_double(a, "gen_ai.request.top_p", req->top_p);
}

/* The answer's model, usage and finish reason. */
static void
jobtrace_answer_attrs(pb_otlp_attrs *a, const pb_jobtrace_facts *f)
{
    if (f->model >= 0)
        pb_otlp_str(a, "gen_ai.response.model", jobtrace_upstream(&f->cfg->models[f->model]));
    if (f->prompt_tokens >= 0)
        pb_otlp_int(a, "gen_ai.usage.input_tokens", f->prompt_tokens);
    if (f->completion_tokens >= 0)
        pb_otlp_int(a, "gen_ai.usage.output_tokens", f->completion_tokens);
    if (f->finish_reason != NULL)
        pb_otlp_strs(a, "gen_ai.response.finish_reasons", &f->finish_reason, 1);
    pb_otlp_str(a, "gen_ai.response.id", f->response_id);
}

/* s cut to at most max bytes on a UTF-8 boundary. */
static size_t
jobtrace_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

/* gen_ai.input.messages / gen_ai.output.messages (opt-in): role and text of each message,
 * as the conventions' JSON, bounded. */
static void
jobtrace_content(pb_otlp_attrs *a, const pb_jobtrace_facts *f)
{
    json_object *msgs = json_object_new_array();
    for (size_t i = 0; i < f->req->n_messages; i++) {
        const pb_message *m = &f->req->messages[i];
        json_object *o = json_object_new_object(), *parts = json_object_new_array(),
                    *p = json_object_new_object();
        json_object_object_add(p, "type", json_object_new_string("text"));
        json_object_object_add(p, "content", json_object_new_string(m->content ? m->content : ""));
        json_object_array_add(parts, p);
        json_object_object_add(o, "role", json_object_new_string(pb_request_role_name(m->role)));
        json_object_object_add(o, "parts", parts);
        json_object_array_add(msgs, o);
    }
    const char *in = json_object_to_json_string_ext(msgs, JSON_C_TO_STRING_PLAIN);
    pb_otlp_strn(a, "gen_ai.input.messages", in, jobtrace_cut(in, JOBTRACE_CONTENT_MAX));
    json_object_put(msgs);
    if (f->content != NULL)
        pb_otlp_strn(a, "gen_ai.output.messages", f->content,
                     jobtrace_cut(f->content, JOBTRACE_CONTENT_MAX));
}

/* Finishes s into the exporter's queue. */
static void
jobtrace_emit(pb_jobtrace *jt, pb_span *s)
{
    size_t len;
    char *data = pb_span_finish(s, &len);
    pb_telemetry_add(jt->tel, data, len);
}

/* One attempt's CLIENT span under job_span. */
static void
jobtrace_attempt(pb_jobtrace *jt, const uint8_t job_span[8], const pb_attempt *at, bool answer,
                 const pb_jobtrace_facts *f)
{
    const pb_model_conf *m = &f->cfg->models[at->model];
    char name[JOBTRACE_NAME_MAX];
    snprintf(name, sizeof(name), "chat %s", jobtrace_upstream(m));
    uint8_t id[8];
    pb_trace_random_id(id, 8);
    int64_t end = at->end_wall_us * 1000;
    int64_t start =
        at->start_wall_us > 0 ? at->start_wall_us * 1000 : end - at->elapsed_ms * 1000000;
    pb_span *s = pb_span_new(f->cfg->telemetry.protobuf, jt->trace_id, id, job_span, name,
                             PB_SPAN_CLIENT, start, end);
    pb_otlp_attrs *a = pb_span_attrs(s);
    jobtrace_request_attrs(a, f->req);
    pb_otlp_str(a, "gen_ai.provider.name",
                jobtrace_provider_name(f->cfg->providers[m->provider].type));
    pb_otlp_str(a, "gen_ai.request.model", jobtrace_upstream(m));
    pb_otlp_str(a, "planb.model", m->name);
    pb_otlp_int(a, "planb.attempt", at->try_no);
    pb_otlp_str(a, "planb.outcome", at->outcome);
    if (at->status > 0)
        pb_otlp_int(a, "http.response.status_code", at->status);
    if (at->retry_after_ms >= 0)
        pb_otlp_int(a, "planb.retry_after_ms", at->retry_after_ms);
    static const char *const gates[] = {"breaker_open", "key_refused", "held_off", "rate_limited",
                                        NULL};
    for (const char *const *g = gates; *g; g++)
        if (strcmp(at->outcome, *g) == 0)
            pb_otlp_str(a, "planb.breaker", *g);
    pb_otlp_bool(a, "planb.hedge", strncmp(at->outcome, "hedge", 5) == 0);
    bool ok = strcmp(at->outcome, "ok") == 0;
    if (answer)
        jobtrace_answer_attrs(a, f);
    if (!ok)
        pb_otlp_str(a, "error.type", at->outcome);
    pb_span_status(s, !ok, ok ? NULL : at->outcome);
    jobtrace_emit(jt, s);
}

/* The planb.job span and its events (the attempts and lookups are its children). */
static void
jobtrace_job_span(pb_jobtrace *jt, const uint8_t id[8], const pb_jobtrace_facts *f)
{
    const pb_request *req = f->req;
    int64_t claimed = f->claimed_wall_ms * 1000000;
    int64_t start = req->submitted_at_ms > 0 && req->submitted_at_ms * 1000000 < claimed
                        ? req->submitted_at_ms * 1000000
                        : claimed;
    pb_span *s = pb_span_new(f->cfg->telemetry.protobuf, jt->trace_id, id,
                             jt->has_parent ? jt->parent : NULL, "planb.job", PB_SPAN_CONSUMER,
                             start, pb_wall_us() * 1000);
    pb_span_tracestate(s, jt->tracestate);
    pb_otlp_attrs *a = pb_span_attrs(s);
    const pb_config *cfg = f->cfg;
    jobtrace_request_attrs(a, req);
    const pb_model_conf *first = &cfg->models[req->models[0]];
    pb_otlp_str(a, "gen_ai.request.model", jobtrace_upstream(first));
    if (f->model >= 0)
        pb_otlp_str(a, "gen_ai.provider.name",
                    jobtrace_provider_name(cfg->providers[cfg->models[f->model].provider].type));
    jobtrace_answer_attrs(a, f);
    pb_otlp_str(a, "planb.job.id", req->id);
    pb_otlp_str(a, "planb.route", cfg->routes[req->route].name);
    if (cfg->n_queues == 1)
        pb_otlp_str(a, "planb.queue", cfg->queues[0]);
    pb_otlp_str(a, "planb.tenant", req->tenant);
    pb_otlp_str(a, "planb.status", f->status);
    pb_otlp_str(a, "planb.source", f->source);
    if (f->model >= 0)
        pb_otlp_str(a, "planb.model", cfg->models[f->model].name);
    pb_otlp_int(a, "planb.attempts", (int64_t)f->n_attempts);
    pb_otlp_str(a, "planb.cache", f->cache);
    pb_otlp_bool(a, "planb.degraded", strcmp(f->status, "degraded") == 0);
    pb_otlp_bool(a, "planb.hedge", f->hedged);
    if (f->has_cost)
        pb_otlp_double(a, "planb.cost_usd", f->cost_usd);
    if (start < claimed)
        pb_otlp_int(a, "planb.queue_wait_ms", (claimed - start) / 1000000);
    if (cfg->telemetry.capture_content)
        jobtrace_content(a, f);
    for (size_t i = 0; i < jt->n_events; i++) {
        const jobtrace_event *e = &jt->events[i];
        pb_span_event(s, e->name, e->at_us * 1000, e->key, e->text[0] != '\0' ? e->text : NULL,
                      e->value);
    }
    bool ok = strcmp(f->status, "ok") == 0;
    pb_span_status(s, !ok, ok ? NULL : f->status);
    jobtrace_emit(jt, s);
}

void
pb_jobtrace_finish(pb_jobtrace *jt, const pb_jobtrace_facts *f)
{
    if (jt == NULL)
        return;
    if (!jobtrace_kept(jt, f)) {
        pb_jobtrace_free(jt);
        return;
    }
    size_t n = 1 + jt->n_lookups + f->n_attempts;
    if (!pb_telemetry_has_room(jt->tel, n)) {
        pb_telemetry_drop(jt->tel, n);
        pb_jobtrace_free(jt);
        return;
    }
    uint8_t job_span[8];
    pb_trace_random_id(job_span, 8);
    for (size_t i = 0; i < jt->n_lookups; i++) {
        const jobtrace_lookup *l = &jt->lookups[i];
        uint8_t id[8];
        pb_trace_random_id(id, 8);
        pb_span *s = pb_span_new(f->cfg->telemetry.protobuf, jt->trace_id, id, job_span,
                                 "planb.cache.lookup", PB_SPAN_INTERNAL, l->start_us * 1000,
                                 l->end_us * 1000);
        pb_otlp_str(pb_span_attrs(s), "planb.cache.kind", l->kind);
        pb_otlp_str(pb_span_attrs(s), "planb.cache.result", l->result);
        jobtrace_emit(jt, s);
    }
    /* The answer is the last attempt that succeeded on the answering model. */
    size_t answer = f->n_attempts;
    for (size_t i = 0; i < f->n_attempts; i++)
        if (f->attempts[i].model == f->model && strcmp(f->attempts[i].outcome, "ok") == 0)
            answer = i;
    for (size_t i = 0; i < f->n_attempts; i++)
        jobtrace_attempt(jt, job_span, &f->attempts[i], i == answer, f);
    jobtrace_job_span(jt, job_span, f);
    pb_jobtrace_free(jt);
}
