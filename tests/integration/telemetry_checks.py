#!/usr/bin/env python3
"""telemetry_checks.py -- assertions on the spans tests/support/otlp/receiver.mjs decoded.

Used by test_telemetry.sh: `telemetry_checks.py SPANS.json CHECK ARGS...` exits 0 when the
check holds, else prints why and exits 1. SPANS.json is GET /_otlp/spans: every span the
receiver accepted (already checked well-formed against the OTLP definitions), with its
attributes as {key: {"type", "value"}}.
"""
import json
import sys


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def attr(span, key, typ=None):
    a = span["attributes"].get(key)
    if a is None:
        fail("%s: no attribute %s (has %s)" % (span["name"], key, sorted(span["attributes"])))
    if typ is not None and a["type"] != typ:
        fail("%s: %s is %s, want %s" % (span["name"], key, a["type"], typ))
    return a["value"]


def trace_of(spans, job_id):
    """The spans of the job's trace: its planb.job span and everything under it."""
    jobs = [s for s in spans if s["name"] == "planb.job"
            and s["attributes"].get("planb.job.id", {}).get("value") == job_id]
    if len(jobs) != 1:
        fail("%d planb.job spans for job %s (want exactly one)" % (len(jobs), job_id))
    job = jobs[0]
    kids = [s for s in spans if s["traceId"] == job["traceId"] and s["spanId"] != job["spanId"]
            and s["parentSpanId"] == job["spanId"]]
    strays = [s for s in spans if s["traceId"] == job["traceId"] and s is not job
              and s["parentSpanId"] != job["spanId"]]
    if strays:
        fail("job %s: spans of its trace not under planb.job: %s" %
             (job_id, [s["name"] for s in strays]))
    for k in kids:
        if not (int(job["startTimeUnixNano"]) <= int(k["startTimeUnixNano"])
                <= int(k["endTimeUnixNano"]) <= int(job["endTimeUnixNano"])):
            fail("job %s: %s is not within planb.job's time" % (job_id, k["name"]))
    return job, kids


def attempts(kids):
    return [k for k in kids if k["name"].startswith("chat ")]


def lookups(kids):
    return [k for k in kids if k["name"] == "planb.cache.lookup"]


def check_primary(spans, job_id, trace_id, parent_span):
    job, kids = trace_of(spans, job_id)
    if job["traceId"] != trace_id or job["parentSpanId"] != parent_span:
        fail("primary: trace %s parent %s, want %s %s" %
             (job["traceId"], job["parentSpanId"], trace_id, parent_span))
    if job["kind"] != 5 or job["status"]["code"] != 1:
        fail("primary: planb.job kind %s status %s" % (job["kind"], job["status"]))
    for key, typ, want in [("gen_ai.operation.name", "string", "chat"),
                           ("gen_ai.provider.name", "string", "openai"),
                           ("gen_ai.request.model", "string", "primary"),
                           ("gen_ai.response.model", "string", "primary"),
                           ("planb.job.id", "string", job_id),
                           ("planb.route", "string", "default"),
                           ("planb.queue", "string", "default"),
                           ("planb.tenant", "string", "acme"),
                           ("planb.status", "string", "ok"),
                           ("planb.source", "string", "primary"),
                           ("planb.cache", "string", "miss"),
                           ("planb.attempts", "int", 1),
                           ("planb.degraded", "bool", False),
                           ("gen_ai.request.max_tokens", "int", 50)]:
        got = attr(job, key, typ)
        if got != want:
            fail("primary: %s = %r, want %r" % (key, got, want))
    if attr(job, "gen_ai.request.temperature", "double") != 0.5:
        fail("primary: temperature")
    if attr(job, "gen_ai.usage.input_tokens", "int") <= 0 or \
            attr(job, "gen_ai.usage.output_tokens", "int") <= 0:
        fail("primary: usage")
    reasons = attr(job, "gen_ai.response.finish_reasons", "array")
    if [r["value"] for r in reasons] != ["stop"]:
        fail("primary: finish_reasons %r" % reasons)
    if attr(job, "planb.queue_wait_ms", "int") < 0:
        fail("primary: queue wait")
    if attr(job, "planb.cost_usd", "double") <= 0:
        fail("primary: cost")
    if not attr(job, "gen_ai.response.id", "string").startswith("chatcmpl-mock-"):
        fail("primary: gen_ai.response.id %r" % attr(job, "gen_ai.response.id"))
    if "gen_ai.input.messages" in job["attributes"]:
        fail("primary: message contents recorded without capture_content")
    ats = attempts(kids)
    if len(ats) != 1 or ats[0]["name"] != "chat primary" or ats[0]["kind"] != 3:
        fail("primary: attempts %r" % [(a["name"], a["kind"]) for a in ats])
    a = ats[0]
    for key, typ, want in [("planb.outcome", "string", "ok"), ("planb.attempt", "int", 1),
                           ("http.response.status_code", "int", 200),
                           ("gen_ai.provider.name", "string", "openai")]:
        if attr(a, key, typ) != want:
            fail("primary attempt: %s" % key)
    if attr(a, "gen_ai.response.id") != attr(job, "gen_ai.response.id"):
        fail("primary attempt: gen_ai.response.id differs from the job's")
    if a["status"]["code"] != 1 or "error.type" in a["attributes"]:
        fail("primary attempt: status %r" % a["status"])
    lk = lookups(kids)
    if len(lk) != 1 or attr(lk[0], "planb.cache.kind") != "exact" or \
            attr(lk[0], "planb.cache.result") != "miss" or lk[0]["kind"] != 1:
        fail("primary: cache lookup spans %r" % lk)
    res = job["resource"]
    for key in ["service.name", "service.version", "service.instance.id", "host.name"]:
        if key not in res:
            fail("resource lacks %s" % key)
    if res["service.name"]["value"] != "planb-test":
        fail("service.name %r" % res["service.name"])


def check_fallback(spans, job_id):
    job, kids = trace_of(spans, job_id)
    ats = attempts(kids)
    names = [(a["name"], attr(a, "planb.outcome"), attr(a, "planb.attempt")) for a in ats]
    if names != [("chat primary", "http_503", 1), ("chat primary", "http_503", 2),
                 ("chat backup", "ok", 1)]:
        fail("fallback: attempts %r" % names)
    for a in ats[:2]:
        if a["status"]["code"] != 2 or attr(a, "error.type") != "http_503" or \
                attr(a, "http.response.status_code", "int") != 503:
            fail("fallback: a failed attempt's status or error.type")
    if attr(job, "planb.source") != "fallback" or attr(job, "planb.model") != "backup":
        fail("fallback: source/model")
    if "gen_ai.usage.input_tokens" not in ats[2]["attributes"]:
        fail("fallback: the answering attempt has no usage")
    if "gen_ai.usage.input_tokens" in ats[0]["attributes"]:
        fail("fallback: a failed attempt carries usage")
    backoffs = [e for e in job["events"] if e["name"] == "planb.backoff"]
    if len(backoffs) != 1 or backoffs[0]["attributes"]["planb.backoff_ms"]["type"] != "int":
        fail("fallback: backoff events %r" % job["events"])
    starts = [int(a["startTimeUnixNano"]) for a in ats]
    if starts != sorted(starts):
        fail("fallback: attempts out of order")


def check_cache_hit(spans, job_id):
    job, kids = trace_of(spans, job_id)
    if attr(job, "planb.source") != "cache" or attr(job, "planb.cache") != "hit":
        fail("cache hit: source %s cache %s" % (attr(job, "planb.source"), attr(job, "planb.cache")))
    if attempts(kids):
        fail("cache hit: attempt spans on a cached answer")
    if "gen_ai.response.id" in job["attributes"]:
        fail("cache hit: a response id on a cached answer")
    lk = lookups(kids)
    if len(lk) != 1 or attr(lk[0], "planb.cache.result") != "hit":
        fail("cache hit: lookup %r" % lk)


def check_degraded(spans, job_id):
    job, kids = trace_of(spans, job_id)
    if job["status"]["code"] != 2 or attr(job, "planb.degraded", "bool") is not True or \
            attr(job, "planb.status") != "degraded":
        fail("degraded: status %r" % job["status"])
    if not any(e["name"] == "planb.degraded" for e in job["events"]):
        fail("degraded: no planb.degraded event")
    if len(attempts(kids)) != 4 or any(a["status"]["code"] != 2 for a in attempts(kids)):
        fail("degraded: attempts")
    if "gen_ai.response.model" in job["attributes"]:
        fail("degraded: a response model without an answer")


def check_stream(spans, job_id):
    job, kids = trace_of(spans, job_id)
    first = [e for e in job["events"] if e["name"] == "planb.first_token"]
    if len(first) != 1 or first[0]["attributes"]["planb.model"]["value"] != "primary":
        fail("stream: first token event %r" % job["events"])
    t = int(first[0]["timeUnixNano"])
    if not int(job["startTimeUnixNano"]) <= t <= int(job["endTimeUnixNano"]):
        fail("stream: first token outside the job")


def check_capture(spans, job_id):
    job, _ = trace_of(spans, job_id)
    msgs = json.loads(attr(job, "gen_ai.input.messages", "string"))
    if msgs[-1]["role"] != "user" or msgs[-1]["parts"][0]["content"] != "capture me":
        fail("capture: input messages %r" % msgs)
    if attr(job, "gen_ai.output.messages", "string") != "echo: capture me":
        fail("capture: output")


def check_parent(spans, job_id, trace_id, parent_span, tracestate):
    job, _ = trace_of(spans, job_id)
    if job["traceId"] != trace_id or job["parentSpanId"] != parent_span:
        fail("%s: trace %s parent %s, want %s %s" %
             (job_id, job["traceId"], job["parentSpanId"], trace_id, parent_span))
    if job.get("traceState", "") != tracestate:
        fail("%s: traceState %r, want %r" % (job_id, job.get("traceState"), tracestate))


def check_new_trace(spans, job_id):
    job, _ = trace_of(spans, job_id)
    if job["parentSpanId"] != "":
        fail("a job without (valid) traceparent has a parent span")


def check_encoding(spans, job_id, enc):
    job, kids = trace_of(spans, job_id)
    for s in [job] + kids:
        if s["encoding"] != enc:
            fail("%s came as %s, want %s" % (s["name"], s["encoding"], enc))


def check_count(spans, job_id, n):
    jobs = [s for s in spans if s["name"] == "planb.job"
            and s["attributes"].get("planb.job.id", {}).get("value") == job_id]
    if len(jobs) != int(n):
        fail("%d planb.job spans for %s, want %s" % (len(jobs), job_id, n))


def check_prefix_count(spans, prefix, n_min, n_max):
    jobs = {s["attributes"]["planb.job.id"]["value"] for s in spans if s["name"] == "planb.job"
            and s["attributes"]["planb.job.id"]["value"].startswith(prefix)}
    if not int(n_min) <= len(jobs) <= int(n_max):
        fail("%d traced jobs %s*, want %s..%s" % (len(jobs), prefix, n_min, n_max))


CHECKS = {
    "primary": check_primary,
    "fallback": check_fallback,
    "cache_hit": check_cache_hit,
    "degraded": check_degraded,
    "stream": check_stream,
    "capture": check_capture,
    "new_trace": check_new_trace,
    "parent": check_parent,
    "encoding": check_encoding,
    "count": check_count,
    "prefix_count": check_prefix_count,
}

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        all_spans = json.load(f)
    CHECKS[sys.argv[2]](all_spans, *sys.argv[3:])
