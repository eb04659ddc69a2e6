// receiver.mjs -- a strict OTLP/HTTP trace receiver for planb's tests (issue 26).
//
// planb exports its traces over OTLP/HTTP (POST <endpoint>/v1/traces, protobuf or JSON). The
// tests need a receiver that decodes them with the official OTLP definitions and refuses
// anything malformed, so that a broken encoder fails a test instead of being waved through.
// The definitions are the protobufjs root generated from the opentelemetry-proto repository
// that @opentelemetry/otlp-transformer ships (build/src/generated/root.js, pinned in
// package.json: 0.216.0 is the last release whose generated root still holds the trace
// types, later ones serialize traces by hand); nothing here restates the schema except which
// id fields OTLP/JSON writes in hex. The receiver can also misbehave (fail with a status and Retry-After, answer
// slowly, never answer) so the exporter's retry and drop paths can be tested.
//
//   node receiver.mjs [--port N]     listens on 127.0.0.1:N (0, the default, = a free port)
//                                    and prints port=<N> on stdout once listening.
//
//   POST /v1/traces      application/x-protobuf | application/json (gzip allowed), at most
//                        8 MiB: 200 + empty ExportTraceServiceResponse / {} and the spans
//                        stored; 400 {"error": "..."} when malformed, 413 when too large,
//                        415 for another content type (all three counted as rejected).
//   GET  /_otlp/spans    the stored spans in arrival order (shape: see spanView below).
//   GET  /_otlp/stats    {requests, accepted, rejected, failed, spans, last_error,
//                         content_types, headers (the last request's)}.
//   POST /_otlp/mode     {"mode": "ok"} | {"mode": "fail", "status": 503, "retry_after": "1"}
//                        | {"mode": "slow", "delay_ms": 5000} | {"mode": "hang"}.
//                        fail answers the status and stores nothing (counted as failed);
//                        slow checks and stores, then answers after the delay; hang reads
//                        the body, stores nothing and never answers.
//   POST /_otlp/reset    spans and counters dropped, mode back to ok.
//
// OTLP/JSON as https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding says:
// lowerCamelCase keys, traceId/spanId/parentSpanId in hex, enums as integers, 64-bit ints
// as decimal strings or numbers, other bytes in base64. Stricter than the spec on purpose:
// unknown JSON fields are refused (the spec lets receivers ignore them), and so is a
// protobuf body that does not re-encode to its own length (unknown or repeated fields), a
// 64-bit int as a JSON number above 2^53 (it may have lost digits), a double as a string
// ("NaN"), a span without a name or kind 0, and any all-zero id.
// SIGTERM/SIGINT: close every connection and exit 0.
import http from 'node:http';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const Long = require('protobufjs/minimal').util.Long;

const P = root.opentelemetry.proto;
const ExportRequest = P.collector.trace.v1.ExportTraceServiceRequest;
const ExportResponse = P.collector.trace.v1.ExportTraceServiceResponse;
const Span = P.trace.v1.Span;
const Link = P.trace.v1.Span.Link;

const MAX_BODY_BYTES = 8 * 1024 * 1024; // the brief's bound; planb batches far below it
const MAX_DEPTH = 64; // JSON nesting (AnyValue in AnyValue...) before we call it hostile
const HEX_ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']); // OTLP/JSON: hex, not base64

let spans = [];
let stats;
let mode = { mode: 'ok' };
resetStats();

function resetStats() {
  stats = {
    requests: 0,
    accepted: 0,
    rejected: 0,
    failed: 0,
    spans: 0,
    last_error: null,
    content_types: {},
    headers: {},
  };
}

class Malformed extends Error {}
const bad = (msg) => {
  throw new Malformed(msg);
};

/* ---- JSON → message: the package's definitions, with OTLP/JSON's conversions ---- */

const isMessage = (v) =>
  v != null && typeof v === 'object' && typeof v.constructor?.verify === 'function' &&
  typeof v.constructor?.fromObject === 'function';

// What a field of a generated type is, learnt from the generated code itself: null when the
// type has no such field, else {msg: nested type or null, repeated, long: 64-bit integer}.
const fieldCache = new Map();
function fieldOf(Type, key) {
  let byType = fieldCache.get(Type);
  if (!byType) fieldCache.set(Type, (byType = new Map()));
  if (byType.has(key)) return byType.get(key);
  let info = null;
  const d = Object.getOwnPropertyDescriptor(Type.prototype, key);
  if (d && !d.get && typeof d.value !== 'function' && key !== 'constructor') {
    info = { msg: null, repeated: false, long: false };
    const probe = (v) => {
      try {
        return Type.fromObject({ [key]: v })[key];
      } catch {
        return undefined;
      }
    };
    const asList = probe([{}]);
    const asObj = probe({});
    if (Array.isArray(asList) && asList.length === 1 && isMessage(asList[0])) {
      info.msg = asList[0].constructor;
      info.repeated = true;
    } else if (isMessage(asObj)) info.msg = asObj.constructor;
    else info.long = Long.isLong(probe('1'));
  }
  byType.set(key, info);
  return info;
}

function hexId(v, where) {
  if (typeof v !== 'string') bad(`${where}: hex string expected`);
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(v))
    bad(`${where}: not a hex string (OTLP/JSON ids are hex, not base64): ${JSON.stringify(v.slice(0, 40))}`);
  return Buffer.from(v, 'hex');
}

function longOf(v, where) {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) bad(`${where}: ${v} is not an integer JavaScript can hold exactly (above 2^53 send a decimal string)`);
    return Long.fromNumber(v);
  }
  if (typeof v !== 'string' || !/^-?\d{1,20}$/.test(v)) bad(`${where}: 64-bit integer (decimal string or number) expected`);
  const b = BigInt(v);
  if (b < -(2n ** 63n) || b >= 2n ** 64n) bad(`${where}: out of 64-bit range`);
  return Long.fromString(v, b >= 2n ** 63n);
}

// A copy of OTLP/JSON object `obj` of generated type `Type` in the shape protobufjs takes:
// ids from hex, 64-bit ints as Long; refuses keys the type does not have.
function fromJson(Type, obj, where, depth) {
  if (depth > MAX_DEPTH) bad(`${where}: nested deeper than ${MAX_DEPTH}`);
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) bad(`${where || 'request'}: object expected`);
  const out = {};
  for (const [key, v] of Object.entries(obj)) {
    const at = where ? `${where}.${key}` : key;
    const f = fieldOf(Type, key);
    if (!f) bad(`${at}: unknown field (OTLP/JSON keys are the lowerCamelCase field names)`);
    if (v === null) continue;
    if ((Type === Span || Type === Link) && HEX_ID_FIELDS.has(key)) out[key] = hexId(v, at);
    else if (f.msg && f.repeated) {
      if (!Array.isArray(v)) bad(`${at}: list expected`);
      out[key] = v.map((e, i) => fromJson(f.msg, e, `${at}[${i}]`, depth + 1));
    } else if (f.msg) out[key] = fromJson(f.msg, v, at, depth + 1);
    else if (f.long) out[key] = longOf(v, at);
    else out[key] = v;
  }
  return out;
}

// Where protobufjs's verify failed: the deepest message of `obj` (plain or decoded) whose own
// verify fails, with its indexed path (verify itself says "spans.kind", not "spans[3].kind").
function verifyAt(Type, obj, where) {
  for (const [key, v] of Object.entries(obj)) {
    const f = v != null && fieldOf(Type, key);
    if (!f || !f.msg || typeof v !== 'object') continue;
    const at = where ? `${where}.${key}` : key;
    const list = f.repeated && Array.isArray(v) ? v.map((e, i) => [e, `${at}[${i}]`]) : [[v, at]];
    for (const [e, eAt] of list) {
      const why = e != null && typeof e === 'object' ? verifyAt(f.msg, e, eAt) : null;
      if (why) return why;
    }
  }
  const why = Type.verify(obj);
  return why ? `${where || 'request'}: ${why.replace(/^.*\.(?=[^.]+:)/, '')}` : null;
}

function decodeJson(buf) {
  let obj;
  try {
    obj = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    bad(`body is not JSON: ${e.message}`);
  }
  const plain = fromJson(ExportRequest, obj, '', 0);
  if (ExportRequest.verify(plain)) bad(verifyAt(ExportRequest, plain, ''));
  try {
    return ExportRequest.fromObject(plain);
  } catch (e) {
    bad(e.message);
  }
}

function decodeProtobuf(buf) {
  let msg;
  try {
    msg = ExportRequest.decode(buf);
  } catch (e) {
    bad(`protobuf does not decode as ExportTraceServiceRequest: ${e.message}`);
  }
  if (ExportRequest.verify(msg)) bad(verifyAt(ExportRequest, msg, ''));
  const again = ExportRequest.encode(msg).finish().length;
  if (again !== buf.length)
    bad(`protobuf re-encodes to ${again} bytes, not ${buf.length}: unknown or repeated singular fields`);
  return msg;
}

/* ---- well-formedness beyond the schema ---- */

const has = (m, k) => m != null && Object.prototype.hasOwnProperty.call(m, k) && m[k] != null;
const ANY_KINDS = ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'arrayValue', 'kvlistValue', 'bytesValue'];
const TIME_LIMIT = 2n ** 63n; // ns since 1970: year 2262; anything above is a sign error
const isZero = (b) => b.every((x) => x === 0);
const u64 = (v) => (v == null ? 0n : BigInt(Long.fromValue(v).toUnsigned().toString()));

function checkAny(v, where) {
  if (v == null) bad(`${where}: value missing`);
  const kinds = ANY_KINDS.filter((k) => has(v, k));
  if (kinds.length !== 1) bad(`${where}: AnyValue must hold exactly one kind, holds ${kinds.length} (${kinds.join(', ')})`);
  if (kinds[0] === 'arrayValue') (v.arrayValue.values || []).forEach((e, i) => checkAny(e, `${where}.arrayValue.values[${i}]`));
  if (kinds[0] === 'kvlistValue') checkAttrs(v.kvlistValue.values, `${where}.kvlistValue.values`);
}

function checkAttrs(list, where) {
  const seen = new Set();
  (list || []).forEach((kv, i) => {
    const at = `${where}[${i}]`;
    if (!kv.key) bad(`${at}: attribute key is empty`);
    if (seen.has(kv.key)) bad(`${at}: duplicate attribute key ${JSON.stringify(kv.key)}`);
    seen.add(kv.key);
    checkAny(kv.value, `${at}.value`);
  });
}

function checkId(b, len, where, optional) {
  const n = b ? b.length : 0;
  if (optional && n === 0) return;
  if (n !== len) bad(`${where}: ${len} bytes expected, got ${n}`);
  if (isZero(b)) bad(`${where}: all zero`);
}

function checkRequest(req) {
  (req.resourceSpans || []).forEach((rs, i) => {
    const at = `resourceSpans[${i}]`;
    if (rs.resource) checkAttrs(rs.resource.attributes, `${at}.resource.attributes`);
    (rs.scopeSpans || []).forEach((ss, j) => {
      const at2 = `${at}.scopeSpans[${j}]`;
      if (ss.scope) checkAttrs(ss.scope.attributes, `${at2}.scope.attributes`);
      (ss.spans || []).forEach((s, k) => {
        const sp = `${at2}.spans[${k}]`;
        checkId(s.traceId, 16, `${sp}.traceId`);
        checkId(s.spanId, 8, `${sp}.spanId`);
        checkId(s.parentSpanId, 8, `${sp}.parentSpanId`, true);
        if (!s.name) bad(`${sp}.name: empty (a span name is required)`);
        if (!(s.kind >= 1 && s.kind <= 5)) bad(`${sp}.kind: ${s.kind ?? 0}, must be 1..5`);
        const start = u64(s.startTimeUnixNano);
        const end = u64(s.endTimeUnixNano);
        if (start === 0n || end === 0n) bad(`${sp}: startTimeUnixNano and endTimeUnixNano must both be > 0`);
        // fixed64 on the wire; from JSON a negative number lands here as 2^64 - n.
        if (start >= TIME_LIMIT || end >= TIME_LIMIT) bad(`${sp}: a time is negative or past the year 2262`);
        if (start > end) bad(`${sp}: endTimeUnixNano ${end} is before startTimeUnixNano ${start}`);
        checkAttrs(s.attributes, `${sp}.attributes`);
        (s.events || []).forEach((e, n) => {
          if (!e.name) bad(`${sp}.events[${n}].name: empty`);
          const t = u64(e.timeUnixNano);
          if (t === 0n || t >= TIME_LIMIT) bad(`${sp}.events[${n}].timeUnixNano: ${t}, must be > 0 and < 2^63`);
          checkAttrs(e.attributes, `${sp}.events[${n}].attributes`);
        });
        (s.links || []).forEach((l, n) => {
          checkId(l.traceId, 16, `${sp}.links[${n}].traceId`);
          checkId(l.spanId, 8, `${sp}.links[${n}].spanId`);
          checkAttrs(l.attributes, `${sp}.links[${n}].attributes`);
        });
        const code = s.status?.code ?? 0;
        if (!(code >= 0 && code <= 2)) bad(`${sp}.status.code: ${code}, must be 0..2`);
      });
    });
  });
}

/* ---- stored view ---- */

const hex = (b) => (b ? Buffer.from(b).toString('hex') : '');
function intView(v) {
  const l = Long.fromValue(v);
  const n = l.toNumber();
  return Number.isSafeInteger(n) ? n : l.toString();
}
function anyView(v) {
  if (has(v, 'stringValue')) return { type: 'string', value: v.stringValue };
  if (has(v, 'boolValue')) return { type: 'bool', value: v.boolValue };
  if (has(v, 'intValue')) return { type: 'int', value: intView(v.intValue) };
  if (has(v, 'doubleValue'))
    return { type: 'double', value: Number.isFinite(v.doubleValue) ? v.doubleValue : String(v.doubleValue) };
  if (has(v, 'arrayValue')) return { type: 'array', value: (v.arrayValue.values || []).map(anyView) };
  if (has(v, 'kvlistValue')) return { type: 'kvlist', value: attrsView(v.kvlistValue.values) };
  return { type: 'bytes', value: Buffer.from(v.bytesValue).toString('base64') };
}
function attrsView(list) {
  const out = {};
  for (const kv of list || []) out[kv.key] = anyView(kv.value);
  return out;
}
// One stored span, as GET /_otlp/spans lists it.
function spanView(s, rs, ss, encoding) {
  return {
    traceId: hex(s.traceId),
    spanId: hex(s.spanId),
    parentSpanId: hex(s.parentSpanId),
    traceState: s.traceState ?? '',
    name: s.name,
    kind: s.kind,
    startTimeUnixNano: u64(s.startTimeUnixNano).toString(),
    endTimeUnixNano: u64(s.endTimeUnixNano).toString(),
    status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
    attributes: attrsView(s.attributes),
    events: (s.events || []).map((e) => ({
      name: e.name,
      timeUnixNano: u64(e.timeUnixNano).toString(),
      attributes: attrsView(e.attributes),
    })),
    resource: attrsView(rs.resource?.attributes),
    scope: { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '' },
    encoding,
  };
}
function store(req, encoding) {
  for (const rs of req.resourceSpans || [])
    for (const ss of rs.scopeSpans || []) for (const s of ss.spans || []) spans.push(spanView(s, rs, ss, encoding));
  stats.spans = spans.length;
}

/* ---- HTTP ---- */

function reply(res, status, body, type = 'application/json', extra = {}) {
  if (res.destroyed || res.writableEnded) return; // the client left (slow mode): nothing to do
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(data), ...extra });
  res.end(data);
}
function reject(res, status, msg) {
  stats.rejected++;
  stats.last_error = msg;
  reply(res, status, { error: msg });
}

// Reads the whole body; past MAX_BODY_BYTES it keeps draining but returns null.
function readBody(req) {
  return new Promise((resolve, reject_) => {
    const parts = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n <= MAX_BODY_BYTES) parts.push(c);
    });
    req.on('end', () => resolve(n > MAX_BODY_BYTES ? null : Buffer.concat(parts)));
    req.on('error', reject_);
    req.on('aborted', () => reject_(new Error('client aborted')));
  });
}

async function onTraces(req, res) {
  stats.requests++;
  stats.headers = { ...req.headers };
  const type = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  stats.content_types[type] = (stats.content_types[type] || 0) + 1;
  let body = await readBody(req);
  if (body === null) return reject(res, 413, `body larger than ${MAX_BODY_BYTES} bytes`);
  if (mode.mode === 'hang') return; // never answered; closed at reset or exit
  if (mode.mode === 'fail') {
    stats.failed++;
    const extra = mode.retry_after != null ? { 'Retry-After': String(mode.retry_after) } : {};
    return reply(res, mode.status || 503, { error: `failing on purpose (mode fail ${mode.status || 503})` },
      'application/json', extra);
  }
  const enc = (req.headers['content-encoding'] || 'identity').toLowerCase();
  if (enc === 'gzip') {
    try {
      body = zlib.gunzipSync(body, { maxOutputLength: MAX_BODY_BYTES });
    } catch (e) {
      return reject(res, 400, `gzip body does not inflate within ${MAX_BODY_BYTES} bytes: ${e.message}`);
    }
  } else if (enc !== 'identity') return reject(res, 415, `content-encoding ${enc} not supported`);
  let msg;
  let encoding;
  try {
    if (type === 'application/x-protobuf') {
      encoding = 'protobuf';
      msg = decodeProtobuf(body);
    } else if (type === 'application/json') {
      encoding = 'json';
      msg = decodeJson(body);
    } else return reject(res, 415, `content-type ${JSON.stringify(type)}: application/x-protobuf or application/json expected`);
    checkRequest(msg);
  } catch (e) {
    if (e instanceof Malformed || e instanceof RangeError || e instanceof TypeError) return reject(res, 400, e.message);
    throw e;
  }
  store(msg, encoding);
  stats.accepted++;
  const send = () =>
    encoding === 'protobuf'
      ? reply(res, 200, Buffer.from(ExportResponse.encode({}).finish()), 'application/x-protobuf')
      : reply(res, 200, {});
  if (mode.mode === 'slow') setTimeout(send, mode.delay_ms ?? 5000);
  else send();
}

async function onMode(req, res) {
  const body = await readBody(req);
  let m;
  try {
    m = JSON.parse((body || '').toString('utf8'));
  } catch {
    return reply(res, 400, { error: 'mode: JSON expected' });
  }
  if (!m || !['ok', 'fail', 'slow', 'hang'].includes(m.mode))
    return reply(res, 400, { error: 'mode: "ok", "fail", "slow" or "hang" expected' });
  if (m.mode === 'fail' && m.status != null && !(Number.isInteger(m.status) && m.status >= 400 && m.status <= 599))
    return reply(res, 400, { error: 'mode fail: status must be 400..599' });
  if (m.mode === 'slow' && m.delay_ms != null && !(Number.isInteger(m.delay_ms) && m.delay_ms >= 0))
    return reply(res, 400, { error: 'mode slow: delay_ms must be a non-negative integer' });
  mode = m;
  reply(res, 200, mode);
}

const server = http.createServer((req, res) => {
  const path = (req.url || '').split('?')[0];
  const route = `${req.method} ${path}`;
  let work;
  if (path === '/v1/traces') {
    if (req.method !== 'POST') return reply(res, 405, { error: 'POST expected' }, 'application/json', { Allow: 'POST' });
    work = onTraces(req, res);
  } else if (route === 'GET /_otlp/spans') return reply(res, 200, spans);
  else if (route === 'GET /_otlp/stats') return reply(res, 200, stats);
  else if (route === 'POST /_otlp/mode') work = onMode(req, res);
  else if (route === 'POST /_otlp/reset') {
    spans = [];
    resetStats();
    mode = { mode: 'ok' };
    return reply(res, 200, {});
  } else return reply(res, 404, { error: `no route ${route}` });
  // A client that leaves mid-body (or early in slow mode) must not take the receiver down.
  work.catch((e) => {
    if (!res.headersSent && !res.destroyed) reply(res, 500, { error: String(e?.message || e) });
  });
});
server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  else socket.destroy();
});

let port = 0;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port' && i + 1 < argv.length) port = Number(argv[++i]);
  else {
    process.stderr.write(`usage: node receiver.mjs [--port N]\n`);
    process.exit(2);
  }
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`receiver: bad port ${port}\n`);
  process.exit(2);
}

// Nothing is kept on disk, so a clean exit is: stop listening, drop every connection (hanging
// and slow requests too), exit 0.
function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`port=${server.address().port}\n`);
});
