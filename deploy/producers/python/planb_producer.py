#!/usr/bin/python3
"""planb_producer.py -- ask planb from Python: push a job, wait on its reply list.

The whole contract is JSON in, JSON out over Redis (docs/jobs.md, the producer contract):
LPUSH the job onto planb:q:<queue> with "reply": true, then BLPOP
planb:reply:<id> for the one result. Needs only Debian's python3-redis.

    from planb_producer import ask
    result = ask(redis.Redis(), [{"role": "user", "content": "Where is my order?"}])
    print(result["content"], result["source"])

Tool calling is the same OpenAI shape: ask_with_tools() sends params.tools, runs
each tool call the answer asks for, sends the results back as tool messages and
returns the final answer (call -> tool result -> answer), whichever provider answered.

Streaming: ask_stream() pushes a job with "stream": true and yields each entry of
planb:stream:<id> as it comes (XREAD BLOCK from the last id read, so a reader that
reconnects resumes without losing a piece): ("start", {model, source}), ("delta",
{text}), ("tool", {index, id, name, arguments}), then ("end", result dict).

Trace context: give the caller's W3C Trace Context with traceparent= (and tracestate=), or
trace_context=True to take the current OpenTelemetry context, and the job's spans continue
that trace (the result's trace_id is the caller's; docs/telemetry.md, "Trace context in").

As a command:  /usr/bin/python3 planb_producer.py [--redis URL] [--timeout S] [--tools] [--stream]
               [--traceparent TP [--tracestate TS]] QUESTION
(--tools: offer the example get_weather tool; --stream: print the answer to stderr as it
comes) prints the result JSON and exits 0 ok, 1 degraded, 3 invalid, 4 no result in time
(the same codes as `planb submit --wait`).
"""
import argparse
import json
import sys
import time
import uuid

import redis

# Bounds on the trace context passed on; planb itself validates the values (a malformed one
# is ignored, never a refused job), so these only keep a job from carrying a huge header.
MAX_TRACEPARENT_BYTES = 256  # version 00 is 55 bytes; room for a later version's extra fields
MAX_TRACESTATE_BYTES = 512   # planb's own tracestate limit (docs/jobs.md)


def _bounded(value, limit):
    return value if isinstance(value, str) and 0 < len(value.encode()) <= limit else None


def trace_fields(traceparent=None, tracestate=None, trace_context=False):
    """The job's traceparent/tracestate fields (a dict, maybe empty). Explicit values win;
    with trace_context=True and none given, the caller's current OpenTelemetry context is
    injected. OpenTelemetry is optional: without the opentelemetry-api package nothing is
    added and nothing fails. Values over the length bounds are dropped; nothing is logged."""
    if traceparent is None and trace_context:
        try:
            from opentelemetry import propagate  # lazy: the producer runs without it
        except ImportError:
            propagate = None
        if propagate is not None:
            carrier = {}
            propagate.inject(carrier)
            traceparent, tracestate = carrier.get("traceparent"), carrier.get("tracestate")
    out = {}
    traceparent = _bounded(traceparent, MAX_TRACEPARENT_BYTES)
    if traceparent is not None:
        out["traceparent"] = traceparent
        tracestate = _bounded(tracestate, MAX_TRACESTATE_BYTES)
        if tracestate is not None:
            out["tracestate"] = tracestate
    return out


def ask(r, messages, *, queue="default", prefix="planb", timeout_s=60.0, traceparent=None,
        tracestate=None, trace_context=False, **fields):
    """Pushes one job and returns its result (a dict); raises TimeoutError when none arrives.

    fields are other job fields (route, tenant, params, deadline_ms, critical, meta, id).
    Give an id of your own to make a retried push idempotent: planb stores one result per id.
    traceparent/tracestate/trace_context pass the caller's trace context (trace_fields()).
    """
    job_id = fields.pop("id", None) or "py-" + uuid.uuid4().hex
    fields.update(trace_fields(traceparent, tracestate, trace_context))
    job = dict(fields, id=job_id, messages=messages, reply=True,
               submitted_at_ms=int(time.time() * 1000))
    r.lpush(f"{prefix}:q:{queue}", json.dumps(job))
    got = r.blpop([f"{prefix}:reply:{job_id}"], timeout=timeout_s)
    if got is None:
        # The job may still finish later: its result stays readable at planb:result:<id>.
        raise TimeoutError(f"no result for {job_id} within {timeout_s} s")
    return json.loads(got[1])


def ask_stream(r, messages, *, queue="default", prefix="planb", timeout_s=60.0, traceparent=None,
               tracestate=None, trace_context=False, **fields):
    """Pushes one streamed job and yields (type, fields) per stream entry, ending with
    ("end", result). Raises TimeoutError when the stream goes quiet for timeout_s.
    traceparent/tracestate/trace_context as for ask()."""
    job_id = fields.pop("id", None) or "py-" + uuid.uuid4().hex
    fields.update(trace_fields(traceparent, tracestate, trace_context))
    job = dict(fields, id=job_id, messages=messages, stream=True,
               submitted_at_ms=int(time.time() * 1000))
    r.lpush(f"{prefix}:q:{queue}", json.dumps(job))
    key, last = f"{prefix}:stream:{job_id}", "0"
    while True:
        got = r.xread({key: last}, count=64, block=int(timeout_s * 1000))
        if not got:
            raise TimeoutError(f"planb:stream:{job_id} quiet for {timeout_s} s")
        for entry_id, raw in got[0][1]:
            last = entry_id
            entry = {k.decode(): v.decode() for k, v in raw.items()}
            kind = entry.pop("type")
            if kind == "end":
                yield "end", json.loads(entry["result"])
                return
            yield kind, entry


# An example tool in OpenAI's shape: planb translates it for Anthropic models.
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def get_weather(city):
    return f"18C and sunny in {city}"


def ask_with_tools(r, messages, tools, functions, *, max_rounds=5, **fields):
    """A tool-calling conversation: asks with tools; while the answer holds tool_calls, runs
    each with functions[name](**arguments) and asks again with the assistant's calls and one
    tool message per call id. Returns the last result (a dict)."""
    messages = list(messages)
    params = dict(fields.pop("params", {}), tools=tools)
    res = None
    for _ in range(max_rounds):
        res = ask(r, messages, params=params, **fields)
        calls = (res.get("message") or {}).get("tool_calls")
        if res.get("status") != "ok" or not calls:
            return res
        messages.append({"role": "assistant", "content": res["message"].get("content"),
                         "tool_calls": calls})
        for call in calls:
            args = json.loads(call["function"]["arguments"])
            out = functions[call["function"]["name"]](**args)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": str(out)})
    return res


EXIT_FOR_STATUS = {"ok": 0, "degraded": 1, "invalid": 3}


def main():
    p = argparse.ArgumentParser(description="Ask planb one question and print the result JSON.")
    p.add_argument("question")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    p.add_argument("--queue", default="default")
    p.add_argument("--route", default=None)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    p.add_argument("--tools", action="store_true", help="offer the get_weather example tool")
    p.add_argument("--stream", action="store_true", help="print the answer to stderr as it comes")
    p.add_argument("--traceparent", default=None, help="the caller's W3C traceparent")
    p.add_argument("--tracestate", default=None, help="the caller's W3C tracestate")
    a = p.parse_args()
    r = redis.Redis.from_url(a.redis)
    fields = {"route": a.route} if a.route else {}
    fields.update(trace_fields(a.traceparent, a.tracestate))
    messages = [{"role": "user", "content": a.question}]
    try:
        if a.stream:
            res = None
            for kind, entry in ask_stream(r, messages, queue=a.queue, timeout_s=a.timeout,
                                          **fields):
                if kind == "delta":
                    print(entry["text"], end="", file=sys.stderr, flush=True)
                elif kind == "end":
                    res = entry
            print(file=sys.stderr)
        elif a.tools:
            res = ask_with_tools(r, messages, [WEATHER_TOOL], {"get_weather": get_weather},
                                 queue=a.queue, timeout_s=a.timeout, **fields)
        else:
            res = ask(r, messages, queue=a.queue, timeout_s=a.timeout, **fields)
    except TimeoutError as e:
        print(e, file=sys.stderr)
        return 4
    print(json.dumps(res))
    return EXIT_FOR_STATUS.get(res.get("status"), 3)


if __name__ == "__main__":
    sys.exit(main())
