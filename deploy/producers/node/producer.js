#!/usr/bin/env node
// producer.js -- ask planb from Node.js: push a job, wait on its reply list.
//
// The whole contract is JSON in, JSON out over Redis (docs/jobs.md, the producer contract):
// LPUSH the job onto planb:q:<queue> with "reply": true, then BLPOP
// planb:reply:<id> for the one result. Uses the npm `redis` client (v4).
//
//   const { ask } = require('./producer');
//   const result = await ask(client, [{ role: 'user', content: 'Where is my order?' }]);
//
// Tool calling is the same OpenAI shape: askWithTools() sends params.tools, runs each tool
// call the answer asks for, sends the results back as tool messages and returns the final
// answer (call -> tool result -> answer), whichever provider answered.
//
// Streaming: askStream() pushes a job with "stream": true and yields each entry of
// planb:stream:<id> as it comes (XREAD BLOCK from the last id read, so a reader that
// reconnects resumes without losing a piece): {type: 'start'|'delta'|'tool', ...fields},
// then {type: 'end', result}.
//
// Trace context: give the caller's W3C Trace Context with the traceparent (and tracestate)
// option, or traceContext: true to take the active OpenTelemetry context, and the job's spans
// continue that trace (the result's trace_id is the caller's; docs/telemetry.md).
//
// As a command:  node producer.js [--redis URL] [--timeout S] [--tools] [--stream]
//                [--traceparent TP [--tracestate TS]] QUESTION
// (--tools: offer the example get_weather tool; --stream: print the answer to stderr as it
// comes) prints the result JSON and exits 0 ok, 1 degraded, 3 invalid, 4 no result in time
// (the same codes as `planb submit --wait`).
'use strict';
const crypto = require('crypto');
const { createClient, commandOptions } = require('redis');

// Bounds on the trace context passed on; planb itself validates the values (a malformed one is
// ignored, never a refused job), so these only keep a job from carrying a huge header.
const MAX_TRACEPARENT_BYTES = 256; // version 00 is 55 bytes; room for a later version's fields
const MAX_TRACESTATE_BYTES = 512; // planb's own tracestate limit (docs/jobs.md)

const bounded = (v, limit) => (typeof v === 'string' && v !== '' && Buffer.byteLength(v) <= limit ? v : undefined);

// The job's traceparent/tracestate fields (an object, maybe empty). Explicit values win; with
// traceContext and none given, the active OpenTelemetry context is injected. OpenTelemetry is
// optional and loaded lazily: without @opentelemetry/api installed nothing is added and
// nothing fails. Values over the length bounds are dropped; nothing is logged.
function traceFields({ traceparent, tracestate, traceContext = false } = {}) {
  if (traceparent === undefined && traceContext) {
    let otel = null;
    try {
      otel = require('@opentelemetry/api');
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
    if (otel) {
      const carrier = {};
      otel.propagation.inject(otel.context.active(), carrier);
      ({ traceparent, tracestate } = carrier);
    }
  }
  const out = {};
  traceparent = bounded(traceparent, MAX_TRACEPARENT_BYTES);
  if (traceparent !== undefined) {
    out.traceparent = traceparent;
    tracestate = bounded(tracestate, MAX_TRACESTATE_BYTES);
    if (tracestate !== undefined) out.tracestate = tracestate;
  }
  return out;
}

// Pushes one job and resolves to its result object; rejects with a TimeoutError-named Error
// when none arrives. fields are other job fields (route, tenant, params, deadline_ms, critical,
// meta, id). traceparent/tracestate/traceContext pass the caller's trace context (traceFields).
// The BLPOP runs on an isolated connection, so one client serves many waiters.
async function ask(client, messages, { queue = 'default', prefix = 'planb', timeoutS = 60, traceparent, tracestate, traceContext, ...fields } = {}) {
  const id = fields.id || 'js-' + crypto.randomBytes(12).toString('hex');
  const trace = traceFields({ traceparent, tracestate, traceContext });
  const job = { ...fields, ...trace, id, messages, reply: true, submitted_at_ms: Date.now() };
  await client.lPush(`${prefix}:q:${queue}`, JSON.stringify(job));
  const got = await client.blPop(commandOptions({ isolated: true }), `${prefix}:reply:${id}`, timeoutS);
  if (got === null) {
    // The job may still finish later: its result stays readable at planb:result:<id>.
    const e = new Error(`no result for ${id} within ${timeoutS} s`);
    e.name = 'TimeoutError';
    throw e;
  }
  return JSON.parse(got.element);
}

// Pushes one streamed job and yields its stream entries until the end entry (an async
// generator); throws a TimeoutError-named Error when the stream stays quiet for timeoutS.
// traceparent/tracestate/traceContext as for ask().
async function* askStream(client, messages, { queue = 'default', prefix = 'planb', timeoutS = 60, traceparent, tracestate, traceContext, ...fields } = {}) {
  const id = fields.id || 'js-' + crypto.randomBytes(12).toString('hex');
  const trace = traceFields({ traceparent, tracestate, traceContext });
  const job = { ...fields, ...trace, id, messages, stream: true, submitted_at_ms: Date.now() };
  await client.lPush(`${prefix}:q:${queue}`, JSON.stringify(job));
  const key = `${prefix}:stream:${id}`;
  let last = '0';
  for (;;) {
    const got = await client.xRead(commandOptions({ isolated: true }), { key, id: last },
      { COUNT: 64, BLOCK: Math.round(timeoutS * 1000) });
    if (!got) {
      const e = new Error(`${key} quiet for ${timeoutS} s`);
      e.name = 'TimeoutError';
      throw e;
    }
    for (const { id: entryId, message } of got[0].messages) {
      last = entryId;
      if (message.type === 'end') {
        yield { type: 'end', result: JSON.parse(message.result) };
        return;
      }
      yield message;
    }
  }
}

// An example tool in OpenAI's shape: planb translates it for Anthropic models.
const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const getWeather = ({ city }) => `18C and sunny in ${city}`;

// A tool-calling conversation: asks with tools; while the answer holds tool_calls, runs each
// with functions[name](arguments) and asks again with the assistant's calls and one tool
// message per call id. Resolves to the last result.
async function askWithTools(client, messages, tools, functions, { maxRounds = 5, params = {}, ...opts } = {}) {
  const convo = [...messages];
  let res = null;
  for (let round = 0; round < maxRounds; round++) {
    res = await ask(client, convo, { ...opts, params: { ...params, tools } });
    const calls = res.message && res.message.tool_calls;
    if (res.status !== 'ok' || !calls) return res;
    convo.push({ role: 'assistant', content: res.message.content, tool_calls: calls });
    for (const call of calls) {
      const out = await functions[call.function.name](JSON.parse(call.function.arguments));
      convo.push({ role: 'tool', tool_call_id: call.id, content: String(out) });
    }
  }
  return res;
}

const EXIT_FOR_STATUS = { ok: 0, degraded: 1, invalid: 3 };

// Tiny flag parser: --name value pairs, the rest is the question.
function parseArgs(argv, defaults) {
  const opts = { ...defaults, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z]+)$/.exec(argv[i]);
    if (m && typeof defaults[m[1]] === 'boolean') opts[m[1]] = true;
    else if (m && m[1] in defaults && i + 1 < argv.length) opts[m[1]] = argv[++i];
    else opts.rest.push(argv[i]);
  }
  return opts;
}

async function main() {
  const a = parseArgs(process.argv.slice(2), { redis: 'redis://127.0.0.1:6379/0', queue: 'default', route: '', timeout: '60', tools: false, stream: false, traceparent: '', tracestate: '' });
  if (a.rest.length !== 1) {
    console.error('usage: node producer.js [--redis URL] [--queue Q] [--route R] [--timeout S] [--tools] [--stream] [--traceparent TP [--tracestate TS]] QUESTION');
    return 2;
  }
  const client = createClient({ url: a.redis });
  client.on('error', (e) => console.error('redis:', e.message));
  await client.connect();
  try {
    const messages = [{ role: 'user', content: a.rest[0] }];
    const opts = { queue: a.queue, timeoutS: Number(a.timeout), ...(a.route ? { route: a.route } : {}),
      ...traceFields({ traceparent: a.traceparent, tracestate: a.tracestate }) };
    let res = null;
    if (a.stream) {
      for await (const entry of askStream(client, messages, opts)) {
        if (entry.type === 'delta') process.stderr.write(entry.text);
        else if (entry.type === 'end') res = entry.result;
      }
      process.stderr.write('\n');
    } else {
      res = a.tools
        ? await askWithTools(client, messages, [WEATHER_TOOL], { get_weather: getWeather }, opts)
        : await ask(client, messages, opts);
    }
    console.log(JSON.stringify(res));
    return EXIT_FOR_STATUS[res.status] ?? 3;
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
    console.error(e.message);
    return 4;
  } finally {
    await client.quit();
  }
}

module.exports = { ask, askStream, askWithTools, parseArgs, traceFields, WEATHER_TOOL };

if (require.main === module) {
  main().then((code) => { process.exitCode = code; }, (e) => { console.error(e.message); process.exitCode = 5; });
}
