#!/usr/bin/env node
// web.js -- a tiny web backend that asks planb once per request (node:http + the npm redis client).
//
//   node web.js [--redis URL] [--port 8080]
//   curl -s localhost:8080/ask -d '{"question": "Where is my order?"}'
//   -> {"answer": "...", "status": "ok", "source": "primary", "model": "gpt-4o", "id": "js-..."}
//   curl -sN 'localhost:8080/ask/stream?question=Where+is+my+order%3F'
//   -> server-sent events: "data: {"text": "..."}" per piece as planb streams it, then
//      "event: end" with the result JSON as its data (a browser's EventSource reads them)
//
// Requests share one client; each wait runs on an isolated connection (see producer.js).
// The HTTP status says what the user got: 200 an answer (even a degraded one: it is a polite
// reply), 400 a bad request, 504 no result in time. Prints "port=N" once listening (--port 0 = any).
// A request's traceparent/tracestate headers (the backend is already inside a trace) go on as
// the job's fields, so planb's spans continue that trace; planb validates them.
'use strict';
const http = require('http');
const { createClient } = require('redis');
const { ask, askStream, parseArgs } = require('./producer');

const MAX_BODY = 64 * 1024; // bytes of request body read; a question is far smaller

// The incoming request's W3C Trace Context headers, as ask()'s options (node lower-cases names).
const traceOf = (req) => ({ traceparent: req.headers.traceparent, tracestate: req.headers.tracestate });

function send(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

async function handle(client, timeoutS, req, res, body) {
  let question;
  try {
    question = JSON.parse(body).question;
  } catch (e) {
    question = undefined;
  }
  if (typeof question !== 'string' || question === '') return send(res, 400, { error: 'expected {"question": "..."}' });
  let r;
  try {
    r = await ask(client, [{ role: 'user', content: question }], { timeoutS, ...traceOf(req) });
  } catch (e) {
    if (e.name === 'TimeoutError') return send(res, 504, { error: 'no answer in time' });
    return send(res, 502, { error: 'queue unavailable' });
  }
  if (r.status === 'invalid') return send(res, 400, { error: r.error, id: r.id });
  send(res, 200, { answer: r.content, status: r.status, source: r.source, model: r.model, id: r.id });
}

// GET /ask/stream?question=...: relays the job's planb:stream:<id> as server-sent events.
async function relay(client, timeoutS, req, res) {
  const question = new URL(req.url, 'http://x').searchParams.get('question');
  if (!question || question.length > MAX_BODY) return send(res, 400, { error: 'GET /ask/stream?question=...' });
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  let gone = false;
  req.on('close', () => { gone = true; }); // the browser left: stop relaying (planb still stores the result)
  try {
    for await (const entry of askStream(client, [{ role: 'user', content: question }], { timeoutS, ...traceOf(req) })) {
      if (gone) break;
      if (entry.type === 'delta') res.write(`data: ${JSON.stringify({ text: entry.text })}\n\n`);
      else if (entry.type === 'end') res.write(`event: end\ndata: ${JSON.stringify(entry.result)}\n\n`);
    }
  } catch (e) {
    res.write(`event: error\ndata: ${JSON.stringify({ error: e.name === 'TimeoutError' ? 'no answer in time' : 'queue unavailable' })}\n\n`);
  }
  res.end();
}

async function main() {
  const a = parseArgs(process.argv.slice(2), { redis: 'redis://127.0.0.1:6379/0', host: '127.0.0.1', port: '8080', timeout: '30' });
  const client = createClient({ url: a.redis });
  client.on('error', (e) => console.error('redis:', e.message));
  await client.connect();
  const srv = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url.startsWith('/ask/stream')) return relay(client, Number(a.timeout), req, res);
    if (req.method !== 'POST' || req.url !== '/ask') return send(res, 404, { error: 'POST /ask' });
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > MAX_BODY) {
        send(res, 400, { error: `body over ${MAX_BODY} bytes` });
        req.destroy();
      }
    });
    req.on('end', () => { if (!res.writableEnded) handle(client, Number(a.timeout), req, res, body); });
  });
  srv.listen(Number(a.port), a.host, () => console.log(`port=${srv.address().port}`));
  // Stop at once: drop idle keep-alive connections, then the Redis client.
  const stop = () => {
    srv.close();
    srv.closeAllConnections();
    client.quit().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => { console.error(e.message); process.exit(5); });
