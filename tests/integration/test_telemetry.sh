#!/usr/bin/env bash
# test_telemetry.sh -- planb's traces as a real OTLP/HTTP collector receives them.
#
# redis-server, planb-mock, `planb serve` with telemetry on, and tests/support/otlp's receiver,
# which decodes every export with the official OTLP definitions and refuses anything
# malformed. telemetry_checks.py then checks, per job: one trace, one planb.job span with its
# cache lookups and attempts under it (ids and times consistent), the incoming traceparent's
# trace id and parent kept, the GenAI and planb attributes with their types, for a primary
# answer, a fallback after retries, a cache hit, a degraded reply and a streamed answer; a
# malformed traceparent (ignored, counted), sampling (unsampled parents dropped, fallbacks
# kept), captured content, the protobuf encoding. Then a collector that answers 503, one
# that answers after 5 s, and one that is gone: jobs answer as fast as ever, the spans come
# late or are counted as dropped, and the worker's memory stays bounded.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/otlp.sh"
. "$(dirname "$0")/../support/front.sh"
CHECKS="$PB_SRC_DIR/tests/integration/telemetry_checks.py"
otlp_install
world_redis
world_mock
otlp_start

# telemetry_config EXTRA: one worker, a primary and a backup on the mock, telemetry EXTRA.
telemetry_config() {
  cat <<JSON
{"redis": {"url": "redis://127.0.0.1:$REDIS_PORT/0"},
 "workers": 1, "concurrency": 64, "queues": ["default"], "drain_timeout_ms": 3000,
 "providers": {"mock": {"type": "openai", "base_url": "$MOCK_URL/v1", "api_key_env": "PB_TEST_KEY"}},
 "models": {"primary": {"provider": "mock", "tier": 1, "timeout_ms": 2000,
                        "price_in_per_mtok": 1, "price_out_per_mtok": 2},
            "backup": {"provider": "mock", "tier": 2, "timeout_ms": 2000}},
 "routes": {"default": {"chain": ["primary", "backup"], "retries": 1, "backoff_ms": 10,
            "backoff_max_ms": 50, "deadline_ms": 8000, "degraded_reply": "Sorry, try later."}},
 "monitor": {"metrics_listen": ""},
 "telemetry": {"otlp_endpoint": "$OTLP_URL", "batch_interval_ms": 100,
               "service_name": "planb-test"$1}}
JSON
}

# push ID EXTRA_FIELDS QUESTION: a job waiting for its result (printed).
push() {
  local now
  now=$(date +%s%3N)
  R LPUSH planb:q:default "{\"id\":\"$1\",\"submitted_at_ms\":$now,\"messages\":[{\"role\":\"user\",\"content\":\"${3:-hello}\"}]$2}" >/dev/null
}
has_result() { [ -n "$(R GET "planb:result:$1")" ]; }
result_of() {
  wait_for 100 0.1 has_result "$1" || fail "no result for $1"
  R GET "planb:result:$1"
}
# spans_of ID...: waits until each job's planb.job span arrived, then saves every span.
spans_of() {
  local id
  for id in "$@"; do
    wait_for 100 0.1 sh -c "curl -sf '$OTLP_URL/_otlp/spans' | grep -q '\"$id\"'" ||
      fail "no span for $id: $(otlp_stats)"
  done
  otlp_spans >"$WORK/spans.json"
}
check() { python3 "$CHECKS" "$WORK/spans.json" "$@" || fail "check $*"; }
stat() { R HGET planb:stats "$1"; }

telemetry_config '' >"$WORK/planb.json"
world_planb "$WORK/planb.json"

TRACE=4bf92f3577b34da6a3ce929d0e0e4736
PARENT=00f067aa0ba902b7
push p1 ",\"tenant\":\"acme\",\"traceparent\":\"00-$TRACE-$PARENT-01\",\"tracestate\":\"vendor=1\",\"params\":{\"max_tokens\":50,\"temperature\":0.5}" "alpha"
r=$(result_of p1)
[ "$(json_get "$r" trace_id)" = "$TRACE" ] || fail "result trace_id: $r"
spans_of p1
check primary p1 "$TRACE" "$PARENT"
check count p1 1

# A fallback after a retry: two 503s on primary, then backup.
mock_set primary '{"mode":"status","status":503}'
push f1 "" "beta"
result_of f1 >/dev/null
# A cache hit: the same question as p1 (same tenant and params).
mock_set primary '{"mode":"ok"}'
push c1 ",\"tenant\":\"acme\",\"params\":{\"max_tokens\":50,\"temperature\":0.5}" "alpha"
[ "$(json_get "$(result_of c1)" source)" = cache ] || fail "c1 was not a cache hit"
# Degraded: both models down.
mock_set primary '{"mode":"status","status":503}'
mock_set backup '{"mode":"status","status":503}'
push d1 "" "gamma"
[ "$(json_get "$(result_of d1)" status)" = degraded ] || fail "d1 did not degrade"
mock_set primary '{"mode":"ok"}'
mock_set backup '{"mode":"ok"}'
# Streamed.
push s1 ",\"stream\":true" "delta epsilon"
result_of s1 >/dev/null
# A malformed traceparent: ignored, counted, a new trace.
push m1 ",\"traceparent\":\"00-NOTHEX-$PARENT-01\"" "zeta"
[ "$(json_get "$(result_of m1)" status)" = ok ] || fail "a malformed traceparent refused the job"
# An unsampled parent: not kept; unless the job fell back (keep_fallbacks).
push u1 ",\"traceparent\":\"00-11111111111111111111111111111111-$PARENT-00\"" "eta"
result_of u1 >/dev/null
mock_set primary '{"mode":"status","status":503}'
push u2 ",\"traceparent\":\"00-22222222222222222222222222222222-$PARENT-00\"" "theta"
result_of u2 >/dev/null
mock_set primary '{"mode":"ok"}'
spans_of f1 c1 d1 s1 m1 u2
check fallback f1
check cache_hit c1
check degraded d1
check stream s1
check new_trace m1
check count u1 0
check count u2 1
check encoding p1 json
bad_context_counted() { [ "$(stat telemetry:bad_context)" = 1 ]; }
wait_for 50 0.1 bad_context_counted || fail "bad_context: $(stat telemetry:bad_context)"
[ "$(stat telemetry:exported)" -gt 0 ] || fail "no exported count"

# sample 0: new traces are dropped, fallbacks kept; capture_content and protobuf.
kill -TERM "${WORLD_PIDS[-1]}"
wait "${WORLD_PIDS[-1]}" 2>/dev/null || true
unset 'WORLD_PIDS[-1]'
telemetry_config ', "sample": 0, "capture_content": true, "encoding": "protobuf",
  "max_queue_spans": 256, "batch_spans": 64' >"$WORK/planb2.json"
FRONT_PORT=$(free_port)
python3 - "$WORK/planb2.json" "$FRONT_PORT" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["http"] = {"listen": "127.0.0.1:" + sys.argv[2]}
json.dump(cfg, open(sys.argv[1], "w"))
PY
start_front "$WORK/planb2.json" "$FRONT_PORT"
# The front door's traceparent header: the job continues that trace (sampled: kept at 0).
FT=5ce0e9a56015fec5aadfa328ae398115
FP=ab30a9ec1fe0d2f3
curl -s -m 20 -D "$WORK/front.head" -o "$WORK/front.body" -H 'Content-Type: application/json' \
  -H "traceparent: 00-$FT-$FP-01" -H "tracestate: congo=t61rcWkgMzE" \
  -d '{"model":"default","messages":[{"role":"user","content":"via the front door"}]}' \
  "http://127.0.0.1:$FRONT_PORT/v1/chat/completions"
rid=$(sed -n 's/^x-request-id: *\([^\r]*\).*/\1/Ip' "$WORK/front.head")
[ -n "$rid" ] || fail "no x-request-id: $(cat "$WORK/front.head")"
spans_of "$rid"
check parent "$rid" "$FT" "$FP" "congo=t61rcWkgMzE"
push z1 "" "not kept"
result_of z1 >/dev/null
mock_set primary '{"mode":"status","status":503}'
push k1 ",\"cache\":\"skip\"" "capture me"
result_of k1 >/dev/null
mock_set primary '{"mode":"ok"}'
spans_of k1
check count z1 0
check capture k1
check encoding k1 protobuf

# A collector that answers 503 (Retry-After: 1): jobs unaffected, the spans come after.
otlp_reset
otlp_mode '{"mode": "fail", "status": 503, "retry_after": "1"}'
mock_set primary '{"mode":"status","status":503}' # every job falls back: all kept
t0=$(date +%s%3N)
for i in $(seq 1 20); do push "r$i" ",\"cache\":\"skip\"" "retry $i"; done
for i in $(seq 1 20); do result_of "r$i" >/dev/null; done
mock_set primary '{"mode":"ok"}'
t1=$(date +%s%3N)
[ $((t1 - t0)) -lt 5000 ] || fail "jobs took $((t1 - t0)) ms with the collector answering 503"
sleep 1.5
otlp_mode '{"mode": "ok"}'
spans_of r20
python3 - "$WORK/spans.json" <<'PY' || fail "spans after 503s"
import json, sys
spans = json.load(open(sys.argv[1]))
jobs = {s["attributes"]["planb.job.id"]["value"] for s in spans if s["name"] == "planb.job"}
missing = [f"r{i}" for i in range(1, 21) if f"r{i}" not in jobs]
assert not missing, missing
PY
[ "$(otlp_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["failed"])')" -ge 1 ] ||
  fail "the receiver never answered 503: $(otlp_stats)"

# A collector that answers after 5 s: jobs unaffected.
otlp_mode '{"mode": "slow", "delay_ms": 5000}'
t0=$(date +%s%3N)
for i in $(seq 1 20); do push "w$i" ",\"cache\":\"skip\"" "slow $i"; done
for i in $(seq 1 20); do result_of "w$i" >/dev/null; done
t1=$(date +%s%3N)
[ $((t1 - t0)) -lt 3000 ] || fail "jobs took $((t1 - t0)) ms with a slow collector"
otlp_mode '{"mode": "ok"}'

# The collector gone: jobs unaffected, spans dropped and counted, memory bounded.
otlp_stop
worker=
for m in $(R ZRANGE planb:workers 0 -1); do [ -d "/proc/${m##*:}" ] && worker=${m##*:}; done
[ -n "$worker" ] || fail "no live worker in planb:workers"
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$worker/status")
dropped0=$(stat telemetry:dropped)
mock_set primary '{"mode":"status","status":503}' # all fall back: every job builds spans
for batch in $(seq 1 6); do
  for i in $(seq 1 100); do push "g$batch-$i" ",\"cache\":\"skip\"" "gone $batch $i"; done
  for i in $(seq 1 100); do result_of "g$batch-$i" >/dev/null; done
done
mock_set primary '{"mode":"ok"}'
rss1=$(awk '/VmRSS/ {print $2}' "/proc/$worker/status")
wait_for 100 0.2 sh -c "[ \"\$(redis-cli -p $REDIS_PORT HGET planb:stats telemetry:dropped)\" -gt \"${dropped0:-0}\" ]" ||
  fail "no dropped spans counted with the collector gone"
echo "telemetry: worker rss ${rss0} KiB -> ${rss1} KiB after 600 jobs with the collector gone; dropped $(stat telemetry:dropped)"
# ASan's quarantine keeps freed memory for reuse checks: RSS says nothing about planb there.
if ldd "$PLANB" | grep -q libasan; then
  echo "telemetry: RSS bound not checked under AddressSanitizer"
else
  [ $((rss1 - rss0)) -lt 65536 ] || fail "worker RSS grew by $((rss1 - rss0)) KiB"
fi
grep -q "event=telemetry_export_failed\|event=telemetry_retry" "$WORK/planb.log" || true
echo PASS
