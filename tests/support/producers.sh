# tests/support/producers.sh -- the checks every producer example must pass (sourced after world.sh).
#
# Each language's test starts the world, then calls producer_checks with its
# one-shot command and web_checks with its web server command; both check the
# result JSON itself, so a producer that drops or rewrites fields fails.

# producer_checks CMD...: CMD [--redis URL] [--route R] [--timeout S] QUESTION prints the result.
producer_checks() {
  local url=redis://127.0.0.1:$REDIS_PORT/0 out stored rc
  out=$("$@" --redis "$url" --timeout 20 "hello from a producer")
  [ "$(json_get "$out" status)" = ok ] || fail "producer: $out"
  [ "$(json_get "$out" source)" = primary ] || fail "producer source: $out"
  [ "$(json_get "$out" content)" = "echo: hello from a producer" ] || fail "producer content: $out"
  stored=$(R GET "planb:result:$(json_get "$out" id)")
  [ "$(json_get "$stored" content)" = "echo: hello from a producer" ] || fail "stored: $stored"

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
  curl -sN -m 20 "$web/ask/stream?question=web+stream" >"$WORK/web.sse" || fail "web stream: curl failed"
  grep -q '^data: {"text": *"echo' "$WORK/web.sse" || fail "web stream pieces: $(cat "$WORK/web.sse")"
  grep -q '^event: end' "$WORK/web.sse" || fail "web stream end: $(cat "$WORK/web.sse")"
  code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$web/ask" -d '{"nope":1}')
  [ "$code" = 400 ] || fail "a bad request must get 400, got $code"
}
