#!/usr/bin/env bash
# test_front_limits.sh -- the front door's limits and hostile clients (front_limits.py).
#
# One worker, and the http limits set small so each can be reached: headers 2048 bytes,
# body 4096, client_timeout_ms 1000, max_connections 20, max_queue 25, wait_grace_ms 300,
# and three keys (only their SHA-256 in the config): rpm 3, concurrency 1, none.
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
echo "PASS"
