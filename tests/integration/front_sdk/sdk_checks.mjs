// sdk_checks.mjs -- the official `openai` Node SDK against planb's OpenAI-compatible front door.
//
//   node sdk_checks.mjs <baseURL> <apiKey> <mockURL> [keys]
//
// Run by tests/integration/test_front_sdk.sh against a planb whose config has a primary and a
// backup model on planb-mock (tests/support/world.sh world_config) and an "http" section.
// The app side is nothing but `new OpenAI({baseURL, apiKey, maxRetries: 0})`, as a real app
// would point it at planb instead of api.openai.com; the mock's control endpoints
// (POST <mockURL>/_mock/models/<name>) inject the faults. With a 4th argument "keys" the
// front door checks keys and a wrong one must be refused. One line per passed check; the
// first failing check exits 1 with what it expected and what it got.
//
// The fault checks (primary down, degraded) run last so the failures they cause upstream
// (breaker counts) cannot change the answers of the other checks. Messages of checks that
// must reach a model carry a per-run nonce where planb's exact cache could otherwise answer.
import OpenAI from "openai";

const [baseURL, apiKey, mockURL, mode] = process.argv.slice(2);
if (!baseURL || !apiKey || !mockURL || (mode !== undefined && mode !== "keys")) {
  console.error("usage: node sdk_checks.mjs <baseURL> <apiKey> <mockURL> [keys]");
  process.exit(2);
}
const withKeys = mode === "keys";
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const nonce = `${process.pid}-${Date.now()}`;

class CheckFailed extends Error {}
let current = "setup";

function check(cond, what, got) {
  if (!cond) {
    const shown = got === undefined ? "" : `; got ${typeof got === "string" ? JSON.stringify(got) : safeJSON(got)}`;
    throw new CheckFailed(`${what}${shown}`);
  }
}
function safeJSON(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}
function eq(got, want, what) {
  check(got === want, `${what}: expected ${safeJSON(want)}`, got);
}
function header(response, name) {
  return response.headers.get(name);
}
function headerEq(response, name, want) {
  eq(header(response, name), want, `header ${name}`);
}

// The call must be refused by the SDK with an error of class cls (and status).
async function expectError(promise, cls, status, what) {
  try {
    const r = await promise;
    throw new CheckFailed(`${what}: expected ${cls.name} (${status}), got a success: ${safeJSON(r).slice(0, 300)}`);
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    check(e instanceof cls, `${what}: expected ${cls.name} (${status})`, `${e?.constructor?.name}: ${e?.message}`);
    eq(e.status, status, `${what}: status`);
    check(e.error && typeof e.error === "object",
      `${what}: the body must be OpenAI's {"error": {"message", "type", "param", "code"}}`, e.error);
    return e;
  }
}

async function mockSet(model, behaviour) {
  const res = await fetch(`${mockURL}/_mock/models/${model}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(behaviour),
  });
  if (!res.ok) throw new Error(`planb-mock refused ${JSON.stringify(behaviour)} for ${model}: ${res.status} ${await res.text()}`);
}

const user = (content) => [{ role: "user", content }];

function firstChoice(data, what) {
  check(data && typeof data === "object", `${what}: the body must be a JSON object (Content-Type: application/json)`, data);
  check(Array.isArray(data.choices) && data.choices.length > 0, `${what}: choices must be a non-empty array`, data);
  return data.choices[0];
}

// a. A plain chat, answered by the primary on the first attempt.
async function checkChat() {
  const { data, response } = await client.chat.completions
    .create({ model: "default", messages: user("hello sdk") })
    .withResponse();
  eq(response.status, 200, "HTTP status");
  const c = firstChoice(data, "chat");
  eq(data.object, "chat.completion", "object");
  eq(c.message?.role, "assistant", "choices[0].message.role");
  eq(c.message?.content, "echo: hello sdk", "choices[0].message.content");
  eq(c.finish_reason, "stop", "choices[0].finish_reason");
  check(typeof data.id === "string" && data.id.length > 0, "id must be a non-empty string", data.id);
  check(typeof data.usage?.prompt_tokens === "number", "usage.prompt_tokens must be a number", data.usage);
  headerEq(response, "x-planb-source", "primary");
  headerEq(response, "x-planb-model", "primary");
  headerEq(response, "x-planb-attempts", "1");
  const rid = header(response, "x-request-id");
  check(typeof rid === "string" && rid.length > 0, "header x-request-id must be non-empty", rid);
}

// Reads a stream, checking the chunk envelope; returns the chunks.
async function readStream(stream, what) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  check(chunks.length > 0, `${what}: the stream carried no chunks`);
  for (const ch of chunks) {
    eq(ch.object, "chat.completion.chunk", `${what}: chunk object`);
    check(Array.isArray(ch.choices), `${what}: every chunk has a choices array`, ch);
  }
  const ids = new Set(chunks.map((ch) => ch.id));
  check(ids.size === 1 && typeof chunks[0].id === "string" && chunks[0].id.length > 0,
    `${what}: all chunks must share one non-empty id`, [...ids]);
  return chunks;
}
function lastFinish(chunks) {
  const withChoices = chunks.filter((ch) => ch.choices.length > 0);
  return withChoices.length > 0 ? withChoices[withChoices.length - 1].choices[0].finish_reason : undefined;
}

// b. A streamed chat with include_usage: text pieces, the finish chunk, then the usage chunk.
async function checkStream() {
  const { data: stream, response } = await client.chat.completions
    .create({
      model: "default",
      messages: user("stream me please"),
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  eq(response.status, 200, "HTTP status");
  const chunks = await readStream(stream, "stream");
  const text = chunks.map((ch) => ch.choices[0]?.delta?.content ?? "").join("");
  eq(text, "echo: stream me please", "streamed text");
  eq(lastFinish(chunks), "stop", "finish_reason of the last chunk with choices");
  const usage = chunks.filter((ch) => ch.choices.length === 0 && ch.usage);
  check(usage.length > 0, "a usage chunk (choices: [] with usage) must arrive with include_usage",
    chunks.map((ch) => ({ choices: ch.choices.length, usage: ch.usage })));
  const u = usage[usage.length - 1].usage;
  check(typeof u.completion_tokens === "number" && u.completion_tokens > 0,
    "usage chunk: completion_tokens must be > 0", u);
}

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "weather of a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

// c. Tool calling: the model asks for get_weather, the app answers, the model uses the answer;
// then the same ask streamed, its tool call assembled from delta.tool_calls pieces.
async function checkTools() {
  await mockSet("primary", { mode: "ok", tool_calls: [{ name: "get_weather", arguments: { city: "Paris" } }] });
  try {
    const ask = { role: "user", content: "Weather in Paris?" };
    const first = await client.chat.completions.create({ model: "default", messages: [ask], tools: [weatherTool] });
    const c = firstChoice(first, "tool call");
    eq(c.finish_reason, "tool_calls", "tool call: finish_reason");
    const calls = c.message?.tool_calls;
    check(Array.isArray(calls) && calls.length === 1, "tool call: message.tool_calls must hold one call", c.message);
    const call = calls[0];
    eq(call.type, "function", "tool call: type");
    eq(call.function?.name, "get_weather", "tool call: function.name");
    check(typeof call.id === "string" && call.id.length > 0, "tool call: id must be non-empty", call.id);
    let args;
    try {
      args = JSON.parse(call.function.arguments);
    } catch {
      throw new CheckFailed(`tool call: function.arguments must be JSON text; got ${safeJSON(call.function.arguments)}`);
    }
    eq(args?.city, "Paris", "tool call: arguments.city");

    const assistant = { role: c.message.role, content: c.message.content, tool_calls: c.message.tool_calls };
    const second = await client.chat.completions.create({
      model: "default",
      messages: [ask, assistant, { role: "tool", tool_call_id: call.id, content: "18C and sunny in Paris" }],
      tools: [weatherTool],
    });
    const c2 = firstChoice(second, "tool result");
    eq(c2.message?.content, "tool said: 18C and sunny in Paris", "tool result: content");
    eq(c2.finish_reason, "stop", "tool result: finish_reason");

    // Streamed (another question, so an exact cache cannot replay the first answer).
    const stream = await client.chat.completions.create({
      model: "default",
      messages: user("Weather in Paris? (streamed)"),
      tools: [weatherTool],
      stream: true,
    });
    const chunks = await readStream(stream, "streamed tool call");
    const acc = [];
    for (const ch of chunks) {
      for (const piece of ch.choices[0]?.delta?.tool_calls ?? []) {
        check(Number.isInteger(piece.index), "streamed tool call: every piece has an index", piece);
        const a = (acc[piece.index] ??= { id: "", name: "", arguments: "" });
        if (piece.id) a.id = piece.id;
        if (piece.function?.name) a.name = piece.function.name;
        a.arguments += piece.function?.arguments ?? "";
      }
    }
    check(acc.length === 1 && acc[0], "streamed tool call: one call assembled", acc);
    check(acc[0].id.length > 0, "streamed tool call: id must be non-empty", acc[0]);
    eq(acc[0].name, "get_weather", "streamed tool call: function.name");
    let sargs;
    try {
      sargs = JSON.parse(acc[0].arguments);
    } catch {
      throw new CheckFailed(`streamed tool call: concatenated arguments must be JSON; got ${safeJSON(acc[0].arguments)}`);
    }
    check(sargs && sargs.city === "Paris" && Object.keys(sargs).length === 1,
      'streamed tool call: arguments must be {"city":"Paris"}', sargs);
    eq(lastFinish(chunks), "tool_calls", "streamed tool call: finish_reason");
  } finally {
    await mockSet("primary", { mode: "ok" });
  }
}

// d. The primary answers 503: planb falls back to the backup, the app still gets its 200.
async function checkPrimaryDown() {
  await mockSet("primary", { mode: "status", status: 503 });
  try {
    const text = `primary down ${nonce}`;
    const { data, response } = await client.chat.completions
      .create({ model: "default", messages: user(text) })
      .withResponse();
    eq(response.status, 200, "HTTP status");
    eq(firstChoice(data, "fallback").message?.content, `echo: ${text}`, "content");
    headerEq(response, "x-planb-source", "fallback");
    headerEq(response, "x-planb-model", "backup");
    const attempts = Number(header(response, "x-planb-attempts"));
    check(Number.isInteger(attempts) && attempts >= 2, "header x-planb-attempts must be >= 2",
      header(response, "x-planb-attempts"));
  } finally {
    await mockSet("primary", { mode: "ok" });
  }
}

// e. Every model down: the route's degraded_reply, marked so a client does not retry it.
async function checkDegraded() {
  await mockSet("primary", { mode: "status", status: 503 });
  await mockSet("backup", { mode: "status", status: 503 });
  try {
    const { data, response } = await client.chat.completions
      .create({ model: "default", messages: user(`everything down ${nonce}`) })
      .withResponse();
    eq(response.status, 200, "HTTP status");
    eq(firstChoice(data, "degraded").message?.content, "Sorry, try later.", "content (the route's degraded_reply)");
    headerEq(response, "x-planb-source", "degraded");
    headerEq(response, "x-planb-degraded", "true");
    headerEq(response, "x-should-retry", "false");
  } finally {
    await mockSet("primary", { mode: "ok" });
    await mockSet("backup", { mode: "ok" });
  }
}

// f. A wrong key is refused as OpenAI refuses it; the right key gets through.
async function checkBadKey() {
  const wrong = new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 });
  const e = await expectError(
    wrong.chat.completions.create({ model: "default", messages: user("who am i") }),
    OpenAI.AuthenticationError, 401, "wrong key");
  check(typeof e.type === "string" && e.type.length > 0, "wrong key: error.type must be present", e.error);
  check(typeof e.code === "string" && e.code.length > 0, "wrong key: error.code must be present", e.error);
  check(typeof e.error.message === "string" && e.error.message.length > 0, "wrong key: error.message must be present", e.error);
  check(!JSON.stringify(e.error).includes("sk-wrong"), "wrong key: the error must not echo the key", e.error);
  const ok = await client.chat.completions.create({ model: "default", messages: user(`right key ${nonce}`) });
  eq(firstChoice(ok, "right key").message?.content, `echo: right key ${nonce}`, "right key: content");
}

// g. Requests OpenAI would refuse are refused the same way, before any model is asked.
async function checkBadBody() {
  const empty = await expectError(client.chat.completions.create({ model: "default", messages: [] }),
    OpenAI.BadRequestError, 400, "messages: []");
  check(typeof empty.error.message === "string" && empty.error.message.length > 0,
    "messages: []: error.message must be present", empty.error);
  const nf = await expectError(
    client.chat.completions.create({ model: "no-such-model", messages: user("x") }),
    OpenAI.NotFoundError, 404, "unknown model");
  eq(nf.code, "model_not_found", "unknown model: error.code");
  const temp = await expectError(
    client.chat.completions.create({ model: "default", messages: user("x"), temperature: 7 }),
    OpenAI.BadRequestError, 400, "temperature 7");
  check(typeof temp.error.message === "string" && temp.error.message.includes("temperature"),
    "temperature 7: error.message must name temperature", temp.error);
}

// h. GET /v1/models lists the routes and the models.
async function checkModels() {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const want of ["default", "primary", "backup"])
    check(ids.includes(want), `models.list() must contain ${JSON.stringify(want)}`, ids);
}

const checks = [
  ["chat", checkChat],
  ["stream", checkStream],
  ["tools", checkTools],
  ...(withKeys ? [["bad key", checkBadKey]] : []),
  ["bad body", checkBadBody],
  ["models", checkModels],
  ["primary down", checkPrimaryDown],
  ["degraded", checkDegraded],
];

try {
  for (const [name, fn] of checks) {
    current = name;
    await fn();
    console.log(`ok ${name}`);
  }
} catch (e) {
  let msg;
  if (e instanceof CheckFailed) msg = e.message;
  else if (e instanceof OpenAI.APIError)
    msg = `unexpected ${e.constructor.name} (status ${e.status}): ${e.message}` +
      (e.error ? ` body.error=${safeJSON(e.error)}` : "") +
      (e.cause ? ` cause=${e.cause?.cause?.message ?? e.cause?.message ?? e.cause}` : "");
  else msg = `unexpected ${e?.stack ?? e}`;
  console.error(`FAIL ${current} (${baseURL}${withKeys ? ", keys" : ""}): ${msg}`);
  process.exit(1);
}
