# tests/support/producers.sh -- the checks every producer example must pass (sourced after world.sh).
#
# Each language's test starts the world (producers_planb: planb with tracing on),
# then calls producer_checks with its one-shot command and web_checks with its web
# server command; both check the result JSON itself, so a producer that drops or
# rewrites fields fails.

# A caller's trace context as a producer passes it on (docs/telemetry.md, "Trace context in").
TRACE_ID=4bf92f3577b34da6a3ce929d0e0e4736
TRACEPARENT=00-$TRACE_ID-00f067aa0ba902b7-01

# producers_planb: planb serve on world_config plus a telemetry section, so every result
# carries trace_id. The collector is a free loopback port nobody listens on: the spans are
# dropped and counted, trace_id is there all the same.
producers_planb() {
  local otlp_port
  otlp_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  world_config | /usr/bin/python3 -c 'import json,sys; c=json.load(sys.stdin)
c["telemetry"] = {"otlp_endpoint": "http://127.0.0.1:" + sys.argv[1], "timeout_ms": 500}
json.dump(c, sys.stdout)' "$otlp_port" >"$WORK/planb.json"
  world_planb "$WORK/planb.json"
}

# is_other_trace_id ID: 32 lower-case hex digits, not the caller's TRACE_ID.
is_other_trace_id() { [[ $1 =~ ^[0-9a-f]{32}$ ]] && [ "$1" != "$TRACE_ID" ]; }

# producer_checks CMD...: CMD [--redis URL] [--route R] [--timeout S] QUESTION prints the result.
producer_checks() {
  local url=redis://127.0.0.1:$REDIS_PORT/0 out stored rc
  out=$("$@" --redis "$url" --timeout 20 "hello from a producer")
  [ "$(json_get "$out" status)" = ok ] || fail "producer: $out"
  [ "$(json_get "$out" source)" = primary ] || fail "producer source: $out"
  [ "$(json_get "$out" content)" = "echo: hello from a producer" ] || fail "producer content: $out"
  stored=$(R GET "planb:result:$(json_get "$out" id)")
  [ "$(json_get "$stored" content)" = "echo: hello from a producer" ] || fail "stored: $stored"
  is_other_trace_id "$(json_get "$out" trace_id)" || fail "no traceparent, a new trace: $out"

  # The caller's trace context: the job continues its trace; a malformed one is ignored.
  out=$("$@" --redis "$url" --timeout 20 --traceparent "$TRACEPARENT" --tracestate "vendor=abc" "traced")
  [ "$(json_get "$out" status)" = ok ] || fail "traced: $out"
  [ "$(json_get "$out" trace_id)" = "$TRACE_ID" ] || fail "traced: trace_id $out"
  out=$("$@" --redis "$url" --timeout 20 --traceparent "00-not-a-trace-01" "badly traced")
  [ "$(json_get "$out" status)" = ok ] || fail "malformed traceparent: $out"
  is_other_trace_id "$(json_get "$out" trace_id)" || fail "malformed traceparent: trace_id $out"

  mock_set primary '{"mode":"status","status":503}'
  out=$("$@" --redis "$url" --timeout 20 "primary is down")
  [ "$(json_get "$out" source)" = fallback ] || fail "producer with primary down: $out"
  [ "$(json_get "$out" model)" = backup ] || fail "producer with primary down: $out"
  mock_set primary '{"mode":"ok"}'

  # A tool-calling round trip: the model calls get_weather, the producer runs it and sends the
  # result back, the model answers from it.
  mock_set primary '{"mode":"ok","tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]}'
  out=$("$@" --redis "$url" --timeout 20 --tools "Weather in Paris?")
  [ "$(json_get "$out" status)" = ok ] || fail "tools: $out"
  [ "$(json_get "$out" content)" = "tool said: 18C and sunny in Paris" ] || fail "tools: $out"
  mock_set primary '{"mode":"ok"}'

  # A streamed answer: the pieces on stderr as they come, the result on stdout.
  out=$("$@" --redis "$url" --timeout 20 --stream "stream me" 2>"$WORK/stream.err")
  [ "$(json_get "$out" content)" = "echo: stream me" ] || fail "stream result: $out"
  grep -q "echo: stream me" "$WORK/stream.err" || fail "stream pieces: $(cat "$WORK/stream.err")"

  set +e
  "$@" --redis "$url" --route nope "bad route" >/dev/null
  rc=$?
  set -e
  [ "$rc" -eq 3 ] || fail "an invalid job must exit 3, got $rc"
}

# web_checks DIR CMD...: CMD --redis URL --port 0 serves POST /ask and prints port=N.
web_checks() {
  local dir=$1 url=redis://127.0.0.1:$REDIS_PORT/0 web code i curls=()
  shift
  (cd "$dir" && exec "$@" --redis "$url" --port 0 >"$WORK/web.port" 2>"$WORK/web.log") &
  WORLD_PIDS+=($!)
  wait_for 100 0.1 grep -q port= "$WORK/web.port" || fail "web server did not start"
  web="http://127.0.0.1:$(sed -n 's/^port=//p' "$WORK/web.port")"
  for i in 1 2 3 4 5 6; do
    curl -s -m 30 -o "$WORK/web.$i" -w '%{http_code}' "$web/ask" -d "{\"question\":\"web $i\"}" \
      >"$WORK/code.$i" &
    curls+=($!)
  done
  wait "${curls[@]}" # each bounded by curl -m
  for i in 1 2 3 4 5 6; do
    [ "$(cat "$WORK/code.$i")" = 200 ] || fail "web $i: HTTP $(cat "$WORK/code.$i") $(cat "$WORK/web.$i")"
    [ "$(json_get "$(cat "$WORK/web.$i")" answer)" = "echo: web $i" ] || fail "web $i: $(cat "$WORK/web.$i")"
    [ "$(json_get "$(cat "$WORK/web.$i")" source)" = primary ] || fail "web $i: $(cat "$WORK/web.$i")"
  done
  web_trace_checks "$web"
  curl -sN -m 20 "$web/ask/stream?question=web+stream" >"$WORK/web.sse" || fail "web stream: curl failed"
  grep -q '^data: {"text": *"echo' "$WORK/web.sse" || fail "web stream pieces: $(cat "$WORK/web.sse")"
  grep -q '^event: end' "$WORK/web.sse" || fail "web stream end: $(cat "$WORK/web.sse")"
  code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$web/ask" -d '{"nope":1}')
  [ "$code" = 400 ] || fail "a bad request must get 400, got $code"
}

# web_trace_checks URL: the request's traceparent header goes on to the job (the stored result's
# trace_id is the caller's); without one, or with a malformed one, the job starts its own trace.
web_trace_checks() {
  local web=$1 out stored tp
  for tp in "$TRACEPARENT" "" "00-$TRACE_ID-0000000000000000-01"; do
    out=$(curl -s -m 30 "$web/ask" ${tp:+-H "traceparent: $tp"} -H "tracestate: vendor=abc" \
      -d '{"question":"web traced"}') || fail "web traced: curl failed"
    [ "$(json_get "$out" status)" = ok ] || fail "web traced ($tp): $out"
    stored=$(R GET "planb:result:$(json_get "$out" id)")
    if [ "$tp" = "$TRACEPARENT" ]; then
      [ "$(json_get "$stored" trace_id)" = "$TRACE_ID" ] || fail "web traced: stored $stored"
    else
      is_other_trace_id "$(json_get "$stored" trace_id)" || fail "web untraced ($tp): stored $stored"
    fi
  done
}
