// tls_checks.mjs -- the official `openai` Node SDK against planb's front door over HTTPS.
//
//   node tls_checks.mjs <https baseURL> <apiKey> [untrusted]
//
// Run by tests/integration/test_front_tls.sh against a planb with http.tls set (its
// certificate chains to a test CA, which the test passes in NODE_EXTRA_CA_CERTS: Node's
// fetch, which the SDK uses, trusts it then). Checks: a chat completion, a streamed one, and
// a large answer (hundreds of KiB, more than one TLS record and more than the socket takes
// at once), each with a per-run nonce so the exact cache cannot answer. With "untrusted" (the
// test then gives no CA) the one check is that the SDK refuses the certificate: an
// APIConnectionError, never an answer. One line per passed check; a failure exits 1.
import OpenAI from "openai";

const [baseURL, apiKey, mode] = process.argv.slice(2);
if (!baseURL?.startsWith("https://") || !apiKey || (mode !== undefined && mode !== "untrusted")) {
  console.error("usage: node tls_checks.mjs <https baseURL> <apiKey> [untrusted]");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const nonce = `${process.pid}-${Date.now()}`;
const user = (content) => [{ role: "user", content }];

function check(cond, what, got) {
  if (!cond) {
    console.error(`FAIL: ${what}${got === undefined ? "" : `; got ${JSON.stringify(got)?.slice(0, 300)}`}`);
    process.exit(1);
  }
}

if (mode === "untrusted") {
  try {
    const r = await client.chat.completions.create({ model: "default", messages: user(`untrusted ${nonce}`) });
    check(false, "without the test CA the certificate must be refused", r);
  } catch (e) {
    check(e instanceof OpenAI.APIConnectionError, "without the test CA: an APIConnectionError",
      `${e?.constructor?.name}: ${e?.message} (${e?.cause?.code ?? e?.cause?.message})`);
    const why = `${e?.cause?.code ?? ""} ${e?.cause?.message ?? ""} ${e?.cause?.cause?.code ?? ""}`;
    check(/CERT|certificate|VERIFY|ISSUER|SELF_SIGNED/i.test(why),
      "without the test CA: the cause is the certificate", why);
  }
  console.log("ok untrusted: the SDK refuses the certificate without the test CA");
  process.exit(0);
}

// A chat completion.
{
  const { data, response } = await client.chat.completions
    .create({ model: "default", messages: user(`hello tls ${nonce}`) })
    .withResponse();
  check(response.status === 200, "chat: HTTP 200", response.status);
  check(data.object === "chat.completion", "chat: object", data.object);
  check(data.choices?.[0]?.message?.content === `echo: hello tls ${nonce}`, "chat: content",
    data.choices?.[0]?.message);
  check(response.headers.get("x-planb-source") === "primary", "chat: x-planb-source",
    response.headers.get("x-planb-source"));
  console.log("ok chat over https");
}

// A streamed one, with include_usage.
{
  const stream = await client.chat.completions.create({
    model: "default",
    messages: user(`stream over tls ${nonce}`),
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  check(chunks.length > 2, "stream: several chunks", chunks.length);
  const text = chunks.map((ch) => ch.choices[0]?.delta?.content ?? "").join("");
  check(text === `echo: stream over tls ${nonce}`, "stream: text", text);
  const withChoices = chunks.filter((ch) => ch.choices.length > 0);
  check(withChoices.at(-1).choices[0].finish_reason === "stop", "stream: finish_reason",
    withChoices.at(-1).choices[0]);
  check(chunks.some((ch) => ch.choices.length === 0 && ch.usage?.completion_tokens > 0),
    "stream: a usage chunk");
  console.log(`ok stream over https (${chunks.length} chunks)`);
}

// A large answer: written in many TLS records, across several socket writes.
{
  const big = `${nonce} ${"0123456789abcdef".repeat(24 * 1024)}`; // ~384 KiB
  const data = await client.chat.completions.create({ model: "default", messages: user(big) });
  const got = data.choices?.[0]?.message?.content ?? "";
  check(got.length === big.length + 6 && got === `echo: ${big}`, "large answer: whole and intact",
    `${got.length} bytes, want ${big.length + 6}`);
  console.log(`ok large answer over https (${got.length} bytes)`);
}
