#!/usr/bin/env bash
# test_front_limits.sh -- the front door's limits and hostile clients (front_limits.py).
#
# One worker, and the http limits set small so each can be reached: headers 2048 bytes,
# body 4096, client_timeout_ms 1000, max_connections 20, max_queue 25, wait_grace_ms 300,
# and three keys (only their SHA-256 in the config): rpm 3, concurrency 1, none. Then three
# reloads while requests flow, a second planb on the taken port, and reloads that move the port. The Redis connections of the front are killed under it too
# (its subscriber again and again, its stream reader mid-stream).
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/front.sh"
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
world_redis
world_mock
PORT=$(free_port)
front_config "$PORT" "{\"max_header_bytes\": 2048, \"max_body_bytes\": 4096,
  \"client_timeout_ms\": 1000, \"max_connections\": 20, \"max_queue\": 25, \"wait_grace_ms\": 300,
  \"keys\": [{\"name\": \"rpm\", \"sha256\": \"$(sha sk-limit-rpm)\", \"rpm\": 3},
             {\"name\": \"conc\", \"sha256\": \"$(sha sk-limit-conc)\", \"concurrency\": 1},
             {\"name\": \"plain\", \"tenant\": \"t1\", \"sha256\": \"$(sha sk-limit-plain)\"}]}" \
  '{"workers": 1, "limits": {"reply_max_bytes": 16777216}}' >"$WORK/front.json"
start_front "$WORK/front.json" "$PORT"
# A reply on a connection that closes after it (Connection: close, HTTP/1.0) arrives whole.
for v in "-H Connection:close" --http1.0; do
  for i in 1 2 3; do
    # shellcheck disable=SC2086 # $v is two words on purpose
    out=$(curl -s -m 10 $v "http://127.0.0.1:$PORT/v1/chat/completions" \
      -H "Authorization: Bearer sk-limit-plain" \
      -d "{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":\"closing $i\"}]}") ||
      fail "curl $v: exit $?"
    case "$out" in *"echo: closing $i"*) ;; *) fail "curl $v: reply $out" ;; esac
  done
done
timeout 240 /usr/bin/python3 "$PB_SRC_DIR/tests/integration/front_limits.py" "$PORT" "$REDIS_PORT" \
  "$MOCK_URL" "$WORK/planb.log" || fail "front limits"
! grep -q "sk-limit-" "$WORK/planb.log" || fail "a key's text is in planb's log"

# SIGHUP while requests flow: the new front accepts from the socket the master keeps (no
# connection refused or reset between the old front and the new) and holds requests until
# its connections and the new workers are up, so every one of 4 clients' requests is a 200.
reload_requests() { # CLIENT: 40 requests, one after another
  for i in $(seq 1 40); do
    curl -s -m 20 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/v1/chat/completions" \
      -H "Authorization: Bearer sk-limit-plain" -H 'x-planb-cache: skip' \
      -d "{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":\"reload $1 $i\"}]}" ||
      echo "curl exit $?" # a refused or reset connection: counted, not the end of the loop
    sleep 0.02
  done
}
LOOPS=()
for c in 1 2 3 4; do
  reload_requests "$c" >"$WORK/reload.$c.codes" &
  LOOPS+=($!)
done
for _ in 1 2 3; do
  sleep 0.5
  kill -HUP "$PLANB_PID"
done
wait "${LOOPS[@]}"
cat "$WORK"/reload.*.codes >"$WORK/reload.codes"
[ "$(grep -c '^200$' "$WORK/reload.codes")" = 160 ] ||
  fail "requests during reloads: $(sort "$WORK/reload.codes" | uniq -c | tr '\n' ' ')"
[ "$(grep -c event=front_listen "$WORK/planb.log")" = 4 ] || fail "three reloads, not four fronts"
# The master holds the port: a second planb on it cannot start (exit 2, front_listen_failed)...
code=0
PB_TEST_KEY=x timeout 20 "$PLANB" serve -c "$WORK/front.json" >"$WORK/second.log" 2>&1 || code=$?
[ "$code" = 2 ] && grep -q event=front_listen_failed "$WORK/second.log" ||
  fail "a second planb on a taken port: exit $code, $(tail -n 3 "$WORK/second.log")"
# ...a reload onto a port in use is refused (the old front keeps serving), and one onto a free
# port moves the front there.
moved_config() {
  /usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["http"]["listen"]="127.0.0.1:"+sys.argv[2]; json.dump(c,open(sys.argv[1],"w"))' "$WORK/front.json" "$1"
}
REDIS_TAKEN=$REDIS_PORT
moved_config "$REDIS_TAKEN"
kill -HUP "$PLANB_PID"
wait_for 50 0.1 grep -q "event=reload_refused.*cannot listen" "$WORK/planb.log" ||
  fail "a reload onto a port in use was not refused"
healthz_ok "$PORT" || fail "the old front stopped serving after a refused reload"
NEW_PORT=$(free_port)
moved_config "$NEW_PORT"
kill -HUP "$PLANB_PID"
wait_for 50 0.1 healthz_ok "$NEW_PORT" || fail "the front did not move to port $NEW_PORT"
wait_for 50 0.1 eval '! healthz_ok "$PORT"' || fail "the old port $PORT still answers"
# ...and a reload without http.listen stops the front door; the workers serve on, and one
# more reload puts it back on that port.
/usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); del c["http"]["listen"]; json.dump(c,open(sys.argv[1],"w"))' "$WORK/front.json"
kill -HUP "$PLANB_PID"
wait_for 50 0.1 eval '! healthz_ok "$NEW_PORT"' || fail "the front still answers without http.listen"
kill -0 "$PLANB_PID" && wait_for 50 0.1 world_has_workers || fail "planb stopped when the front door was removed"
moved_config "$NEW_PORT"
kill -HUP "$PLANB_PID"
wait_for 50 0.1 healthz_ok "$NEW_PORT" || fail "the front did not come back on port $NEW_PORT"
# libevent's own warnings (a descriptor closed under an event, a bufferevent freed twice)
# are bugs of ours.
! grep '^\[warn\]' "$WORK"/planb*.log || fail "libevent warned (above)"
echo "PASS"
