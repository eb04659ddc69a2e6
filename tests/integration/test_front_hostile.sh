#!/usr/bin/env bash
# test_front_hostile.sh -- the front door's connections against hostile clients (front_hostile.py).
#
# One worker; models that may pause 1.6 s between stream pieces; http limits set small so each
# can be reached: client_timeout_ms 1000, request_read_timeout_ms 3000, max_connections 80,
# max_body_bytes 1 MiB, max_bodies_bytes 4 MiB, one key; drain_timeout_ms 1500 for the reload.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/front.sh"
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
world_redis
world_mock
PORT=$(free_port)
front_config "$PORT" "{\"max_header_bytes\": 2048, \"max_body_bytes\": 1048576,
  \"client_timeout_ms\": 1000, \"request_read_timeout_ms\": 3000, \"max_connections\": 80,
  \"max_bodies_bytes\": 4194304, \"keys\": [{\"name\": \"k\", \"sha256\": \"$(sha sk-hostile)\"}]}" \
  "{\"workers\": 1, \"drain_timeout_ms\": 1500,
  \"models\": {\"primary\": {\"provider\": \"mock\", \"tier\": 1, \"timeout_ms\": 60000},
               \"backup\": {\"provider\": \"mock\", \"tier\": 2, \"timeout_ms\": 60000}},
  \"routes\": {\"default\": {\"chain\": [\"primary\", \"backup\"], \"deadline_ms\": 60000}}}" \
  >"$WORK/front.json"
start_front "$WORK/front.json" "$PORT"
# PB_HOSTILE_CHECKS picks checks by name (all by default; the reload goes last).
CHECKS=${PB_HOSTILE_CHECKS:-keepalive junk slowloris keyless budget framing pipeline drain}
# shellcheck disable=SC2086 # one word per check
timeout 240 /usr/bin/python3 "$PB_SRC_DIR/tests/integration/front_hostile.py" "$PORT" "$PLANB_PID" \
  "$MOCK_URL" "$WORK/planb.log" $CHECKS || fail "hostile clients"
case " $CHECKS " in
*" drain "*)
  grep -q "event=front_stream_cut.*why=drain_timeout" "$WORK/planb.log" ||
    fail "the drain's cut was not logged" ;;
esac
! grep '^\[warn\]' "$WORK"/planb*.log || fail "libevent warned (above)"
echo "PASS"
