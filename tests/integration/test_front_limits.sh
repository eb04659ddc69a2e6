#!/usr/bin/env bash
# test_front_limits.sh -- the front door's limits and hostile clients (front_limits.py).
#
# One worker, and the http limits set small so each can be reached: headers 2048 bytes,
# body 4096, client_timeout_ms 1000, max_connections 20, max_queue 25, wait_grace_ms 300,
# and three keys (only their SHA-256 in the config): rpm 3, concurrency 1, none. Then two
# reloads while requests flow. The Redis connections of the front are killed under it too
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
  '{"workers": 1}' >"$WORK/front.json"
start_front "$WORK/front.json" "$PORT"
timeout 240 /usr/bin/python3 "$PB_SRC_DIR/tests/integration/front_limits.py" "$PORT" "$REDIS_PORT" \
  "$MOCK_URL" "$WORK/planb.log" || fail "front limits"
! grep -q "sk-limit-" "$WORK/planb.log" || fail "a key's text is in planb's log"

# SIGHUP while requests flow: the new front binds beside the draining one (SO_REUSEPORT) and
# holds requests until its connections and the new workers are up, so every one is a 200.
reload_requests() {
  for i in $(seq 1 40); do
    curl -s -m 20 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/v1/chat/completions" \
      -H "Authorization: Bearer sk-limit-plain" -H 'x-planb-cache: skip' \
      -d "{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":\"reload $i\"}]}"
    sleep 0.05
  done
}
reload_requests >"$WORK/reload.codes" &
LOOP=$!
sleep 0.5
kill -HUP "$PLANB_PID"
sleep 0.8
kill -HUP "$PLANB_PID"
wait "$LOOP"
[ "$(grep -c '^200$' "$WORK/reload.codes")" = 40 ] ||
  fail "requests during reloads: $(sort "$WORK/reload.codes" | uniq -c | tr '\n' ' ')"
[ "$(grep -c event=front_listen "$WORK/planb.log")" = 3 ] || fail "two reloads, not three fronts"
echo "PASS"
