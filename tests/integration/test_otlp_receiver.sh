#!/usr/bin/env bash
# test_otlp_receiver.sh -- the OTLP/HTTP receiver of tests/support/otlp.sh is strict and right.
#
# planb's trace exporter (issue 26) is tested against tests/support/otlp/receiver.mjs; this
# test proves the receiver itself, without planb, so a later failure means planb's encoder:
#   1. a hand-written OTLP/HTTP JSON request (one resource with service.name, one scope, a
#      parent and a child span with attributes of every AnyValue kind and an event) is taken
#      and read back through /_otlp/spans exactly;
#   2. the same request encoded as protobuf by the package's own definitions is taken too;
#   3. malformed requests get 400 and are not stored (base64 ids, a 15-byte traceId, an all-zero
#      spanId, an unknown field, an AnyValue with two kinds, kind 9, end before start, duplicate
#      attribute keys, and a few more);
#   4. mode fail answers 503 with Retry-After and stores nothing; mode slow delays its answer
#      and survives a client that leaves early; reset empties it; SIGTERM stops it with exit 0.
# Without node or the npm registry the test is skipped, saying so.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/otlp.sh"
otlp_install
otlp_start

GOOD=$WORK/good.json
cat >"$GOOD" <<'JSON'
{"resourceSpans": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "planb"}}]},
  "scopeSpans": [{
    "scope": {"name": "planb.worker", "version": "1.2.3"},
    "spans": [
      {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b173",
       "name": "job", "kind": 2,
       "startTimeUnixNano": "1765152000000000000", "endTimeUnixNano": "1765152000250000000",
       "attributes": [
         {"key": "planb.queue", "value": {"stringValue": "default"}},
         {"key": "planb.attempts", "value": {"intValue": "3"}},
         {"key": "planb.big", "value": {"intValue": "9007199254740993"}},
         {"key": "planb.small", "value": {"intValue": -7}},
         {"key": "planb.ratio", "value": {"doubleValue": 0.25}},
         {"key": "planb.cached", "value": {"boolValue": false}},
         {"key": "planb.chain", "value": {"arrayValue": {"values": [
           {"stringValue": "primary"}, {"intValue": 2}, {"boolValue": true}]}}},
         {"key": "planb.limits", "value": {"kvlistValue": {"values": [
           {"key": "deadline_ms", "value": {"intValue": 8000}},
           {"key": "tier", "value": {"stringValue": "gold"}}]}}},
         {"key": "planb.digest", "value": {"bytesValue": "3q2+7w=="}}],
       "events": [{"name": "fallback", "timeUnixNano": "1765152000100000000",
                   "attributes": [{"key": "planb.model", "value": {"stringValue": "backup"}}]}],
       "status": {"code": 2, "message": "primary failed"}},
      {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0102030405060708",
       "parentSpanId": "eee19b7ec3c1b173", "name": "attempt backup", "kind": 3,
       "startTimeUnixNano": 1765152000, "endTimeUnixNano": "1765152000",
       "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}],
       "status": {"code": 1}}]}]}]}
JSON

# What /_otlp/spans must list for $GOOD, in order; $1 = the encoding.
expected() {
  cat <<JSON
[{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b173", "parentSpanId": "",
  "traceState": "", "name": "job", "kind": 2, "startTimeUnixNano": "1765152000000000000",
  "endTimeUnixNano": "1765152000250000000", "status": {"code": 2, "message": "primary failed"},
  "attributes": {
    "planb.queue": {"type": "string", "value": "default"},
    "planb.attempts": {"type": "int", "value": 3},
    "planb.big": {"type": "int", "value": "9007199254740993"},
    "planb.small": {"type": "int", "value": -7},
    "planb.ratio": {"type": "double", "value": 0.25},
    "planb.cached": {"type": "bool", "value": false},
    "planb.chain": {"type": "array", "value": [{"type": "string", "value": "primary"},
                    {"type": "int", "value": 2}, {"type": "bool", "value": true}]},
    "planb.limits": {"type": "kvlist", "value": {"deadline_ms": {"type": "int", "value": 8000},
                     "tier": {"type": "string", "value": "gold"}}},
    "planb.digest": {"type": "bytes", "value": "3q2+7w=="}},
  "events": [{"name": "fallback", "timeUnixNano": "1765152000100000000",
              "attributes": {"planb.model": {"type": "string", "value": "backup"}}}],
  "resource": {"service.name": {"type": "string", "value": "planb"}},
  "scope": {"name": "planb.worker", "version": "1.2.3"}, "encoding": "$1"},
 {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0102030405060708",
  "parentSpanId": "eee19b7ec3c1b173", "traceState": "", "name": "attempt backup", "kind": 3,
  "startTimeUnixNano": "1765152000", "endTimeUnixNano": "1765152000",
  "status": {"code": 1, "message": ""},
  "attributes": {"http.response.status_code": {"type": "int", "value": 200}}, "events": [],
  "resource": {"service.name": {"type": "string", "value": "planb"}},
  "scope": {"name": "planb.worker", "version": "1.2.3"}, "encoding": "$1"}]
JSON
}

# same_json A B: the two JSON texts are equal as values (key order aside).
same_json() {
  /usr/bin/python3 -c 'import json,sys; a,b=(json.loads(x) for x in sys.argv[1:3]); sys.exit(a!=b)' "$1" "$2"
}
# stat_of FIELD: one field of /_otlp/stats.
stat_of() { json_get "$(otlp_stats)" "$1"; }

# post TYPE FILE: POST FILE to /v1/traces; prints the HTTP status, the body lands in $WORK/resp.
post() {
  curl -s -m 20 -o "$WORK/resp" -D "$WORK/resp.headers" -w '%{http_code}' -X POST \
    -H "Content-Type: $1" --data-binary "@$2" "$OTLP_URL/v1/traces"
}

# 1. JSON: accepted, read back exactly.
code=$(post application/json "$GOOD")
[ "$code" = 200 ] || fail "good JSON request: HTTP $code $(cat "$WORK/resp")"
same_json "$(cat "$WORK/resp")" '{}' || fail "good JSON request: body $(cat "$WORK/resp"), {} expected"
got=$(otlp_spans)
same_json "$got" "$(expected json)" || fail "spans read back differ: $got"

# 2. The same request as protobuf, encoded by the package's own definitions.
(cd "$OTLP_DIR" && node --input-type=module - "$GOOD" "$WORK/good.pb") <<'JS' || fail "encoding the protobuf request"
import fs from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(`${process.cwd()}/`);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const Req = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
for (const rs of req.resourceSpans)
  for (const ss of rs.scopeSpans)
    for (const s of ss.spans)
      for (const k of ['traceId', 'spanId', 'parentSpanId']) if (k in s) s[k] = Buffer.from(s[k], 'hex');
const msg = Req.fromObject(req);
const why = Req.verify(msg);
if (why) throw new Error(why);
fs.writeFileSync(process.argv[3], Req.encode(msg).finish());
// The same with a 15-byte traceId, schema-valid: the receiver's own checks must catch it.
const span = msg.resourceSpans[0].scopeSpans[0].spans[0];
span.traceId = span.traceId.subarray(0, 15);
fs.writeFileSync(process.argv[3].replace(/\.pb$/, '-short-id.pb'), Req.encode(msg).finish());
JS
otlp_reset
code=$(post application/x-protobuf "$WORK/good.pb")
[ "$code" = 200 ] || fail "good protobuf request: HTTP $code $(cat "$WORK/resp")"
[ ! -s "$WORK/resp" ] || fail "good protobuf request: the empty ExportTraceServiceResponse is 0 bytes, got $(wc -c <"$WORK/resp")"
grep -qi '^content-type: application/x-protobuf' "$WORK/resp.headers" || fail "protobuf answer: $(cat "$WORK/resp.headers")"
got=$(otlp_spans)
same_json "$got" "$(expected protobuf)" || fail "protobuf spans read back differ: $got"
[ "$(stat_of accepted)" = 1 ] && [ "$(stat_of spans)" = 2 ] || fail "stats after protobuf: $(otlp_stats)"

# 3. Malformed requests: 400 with {"error": ...}, counted, nothing stored. Each case is a
#    python statement on `r` (the good request) and `s`, `c` (its first and second span).
otlp_reset
n=0
while IFS='|' read -r name change; do
  [ -n "$name" ] || continue
  /usr/bin/python3 - "$GOOD" "$WORK/bad.json" "$change" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, c = r["resourceSpans"][0]["scopeSpans"][0]["spans"]
exec(sys.argv[3])
json.dump(r, open(sys.argv[2], "w"))
PY
  code=$(post application/json "$WORK/bad.json")
  [ "$code" = 400 ] || fail "$name: HTTP $code $(cat "$WORK/resp"), 400 expected"
  err=$(json_get "$(cat "$WORK/resp")" error)
  [ -n "$err" ] || fail "$name: no error text in $(cat "$WORK/resp")"
  echo "refused as expected: $name: $err"
  n=$((n + 1))
done <<'CASES'
base64 traceId|s["traceId"] = "W47/95gDgQPSabYzgT/GDA=="
base64 spanId|c["spanId"] = "AQIDBAUGBwg="
15-byte traceId|s["traceId"] = s["traceId"][:30]
all-zero spanId|s["spanId"] = "0" * 16
all-zero traceId|c["traceId"] = "0" * 32
7-byte parentSpanId|c["parentSpanId"] = c["parentSpanId"][:14]
unknown span field|s["colour"] = "red"
snake_case field name|s["start_time_unix_nano"] = s.pop("startTimeUnixNano")
unknown top-level field|r["extra"] = []
AnyValue with two kinds|s["attributes"][0]["value"]["intValue"] = "1"
AnyValue with no kind|s["attributes"][0]["value"] = {}
AnyValue with two kinds in an array|s["attributes"][6]["value"]["arrayValue"]["values"][0]["boolValue"] = True
kind 9|s["kind"] = 9
kind 0|c["kind"] = 0
kind as a name|s["kind"] = "SPAN_KIND_SERVER"
end before start|s["endTimeUnixNano"] = "1765151999999999999"
zero start time|c["startTimeUnixNano"] = "0"
negative start time|c["startTimeUnixNano"] = "-5"
negative event time|s["events"][0]["timeUnixNano"] = -1
time not an integer|s["startTimeUnixNano"] = "1.5e18"
duplicate attribute keys|s["attributes"].append({"key": "planb.queue", "value": {"stringValue": "again"}})
empty attribute key|c["attributes"][0]["key"] = ""
status code 3|s["status"]["code"] = 3
string where an int is due|s["attributes"][1]["value"]["intValue"] = "three"
number where a string is due|s["name"] = 5
resourceSpans not a list|r["resourceSpans"] = {"a": 1}
null in a list|r["resourceSpans"][0]["scopeSpans"][0]["spans"].append(None)
CASES
[ "$(otlp_spans)" = "[]" ] || fail "a refused request was stored: $(otlp_spans)"
[ "$(stat_of rejected)" = "$n" ] && [ "$(stat_of accepted)" = 0 ] || fail "stats after $n refusals: $(otlp_stats)"
[ -n "$(stat_of last_error)" ] || fail "last_error not set: $(otlp_stats)"

printf '[]' >"$WORK/array.json"
code=$(post application/json "$WORK/array.json")
[ "$code" = 400 ] || fail "a JSON array as the request: HTTP $code"
printf '{"resourceSpans": [' >"$WORK/broken.json"
code=$(post application/json "$WORK/broken.json")
[ "$code" = 400 ] || fail "truncated JSON: HTTP $code"
head -c 40 "$WORK/good.pb" >"$WORK/broken.pb"
code=$(post application/x-protobuf "$WORK/broken.pb")
[ "$code" = 400 ] || fail "truncated protobuf: HTTP $code $(cat "$WORK/resp")"
code=$(post application/x-protobuf "$WORK/good-short-id.pb")
[ "$code" = 400 ] || fail "protobuf with a 15-byte traceId: HTTP $code $(cat "$WORK/resp")"
grep -q '16 bytes expected' "$WORK/resp" || fail "protobuf with a 15-byte traceId: $(cat "$WORK/resp")"
{ cat "$WORK/good.pb"; printf '\xa8\x06\x01'; } >"$WORK/unknown.pb" # field 101, varint 1
code=$(post application/x-protobuf "$WORK/unknown.pb")
[ "$code" = 400 ] || fail "protobuf with an unknown field: HTTP $code $(cat "$WORK/resp")"
code=$(post text/plain "$GOOD")
[ "$code" = 415 ] || fail "text/plain: HTTP $code, 415 expected"
head -c $((8 * 1024 * 1024 + 1)) /dev/zero >"$WORK/huge.bin"
code=$(post application/x-protobuf "$WORK/huge.bin")
[ "$code" = 413 ] || fail "a body over 8 MiB: HTTP $code, 413 expected"
gzip -c "$GOOD" >"$WORK/good.json.gz"
code=$(curl -s -m 20 -o "$WORK/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -H 'Content-Encoding: gzip' -H 'X-Planb-Test: yes' --data-binary "@$WORK/good.json.gz" "$OTLP_URL/v1/traces")
[ "$code" = 200 ] || fail "gzip JSON: HTTP $code $(cat "$WORK/resp")"
/usr/bin/python3 - "$(otlp_stats)" <<'PY' || fail "stats: $(otlp_stats)"
import json, sys
st = json.loads(sys.argv[1])
assert st["headers"].get("x-planb-test") == "yes", st["headers"]
assert st["headers"].get("content-encoding") == "gzip", st["headers"]
assert st["content_types"] == {"application/json": st["content_types"]["application/json"],
                               "application/x-protobuf": 4, "text/plain": 1}, st["content_types"]
assert st["accepted"] == 1 and st["spans"] == 2, st
PY

# 4. Misbehaving on purpose.
otlp_reset
otlp_mode '{"mode": "fail", "status": 503, "retry_after": "1"}'
code=$(post application/json "$GOOD")
[ "$code" = 503 ] || fail "mode fail: HTTP $code, 503 expected"
grep -qi '^retry-after: 1' "$WORK/resp.headers" || fail "mode fail: no Retry-After: $(cat "$WORK/resp.headers")"
[ "$(otlp_spans)" = "[]" ] || fail "mode fail stored spans"
[ "$(stat_of requests)" = 1 ] || fail "mode fail: requests not counted: $(otlp_stats)"

otlp_mode '{"mode": "slow", "delay_ms": 1500}'
t0=$(date +%s%N)
code=$(post application/json "$GOOD")
dt_ms=$((($(date +%s%N) - t0) / 1000000))
[ "$code" = 200 ] || fail "mode slow: HTTP $code"
[ "$dt_ms" -ge 1400 ] || fail "mode slow answered after $dt_ms ms, 1500 expected"
[ "$(stat_of spans)" = 2 ] || fail "mode slow: spans not stored: $(otlp_stats)"
# A client that leaves before the slow answer must not take the receiver down.
curl -s -m 0.3 -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "@$GOOD" \
  "$OTLP_URL/v1/traces" && fail "mode slow: the early-leaving client got an answer"
sleep 1.5
kill -0 "$OTLP_PID" 2>/dev/null || fail "the receiver died when a slow-mode client left early"
[ "$(stat_of spans)" = 4 ] || fail "mode slow: the early-leaving client's spans: $(otlp_stats)"

otlp_mode '{"mode": "hang"}'
curl -s -m 1 -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "@$GOOD" \
  "$OTLP_URL/v1/traces" && fail "mode hang answered"
otlp_mode '{"mode": "sideways"}' && fail "an unknown mode was taken"

otlp_reset
/usr/bin/python3 - "$(otlp_stats)" <<'PY' || fail "stats after reset: $(otlp_stats)"
import json, sys
st = json.loads(sys.argv[1])
assert (st["requests"], st["accepted"], st["rejected"], st["spans"], st["last_error"]) == (0, 0, 0, 0, None), st
PY
code=$(post application/json "$GOOD")
[ "$code" = 200 ] || fail "after reset the mode is not ok: HTTP $code"

# SIGTERM: a clean exit, even with a request hanging.
otlp_mode '{"mode": "hang"}'
curl -s -m 20 -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "@$GOOD" \
  "$OTLP_URL/v1/traces" &
hung=$!
has_two_requests() { [ "$(stat_of requests)" = 2 ]; }
wait_for 50 0.1 has_two_requests || fail "the hanging request never arrived"
kill -TERM "$OTLP_PID"
rc=0
wait "$OTLP_PID" || rc=$?
[ "$rc" = 0 ] || fail "the receiver exited $rc on SIGTERM"
wait "$hung" || true
otlp_stop

# A second receiver starts empty; otlp_stop stops it.
otlp_start
[ "$(otlp_spans)" = "[]" ] || fail "a new receiver is not empty"
pid=$OTLP_PID
otlp_stop
! kill -0 "$pid" 2>/dev/null || fail "otlp_stop left the receiver running"
echo "PASS"
