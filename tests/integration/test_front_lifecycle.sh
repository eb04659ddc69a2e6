#!/usr/bin/env bash
# test_front_lifecycle.sh -- a front-door request's life through stopped workers, a stopped
# Redis, a lost queue, a killed worker and clients that leave (front_lifecycle.py).
#
# One worker, lease_ms 15000, http.wait_grace_ms 300, and three keys (only their SHA-256 in
# the config): "plain" with tenant t1, "conc" with concurrency 1, "open" with neither.
# FRONT_LIFECYCLE_CHECKS (names with _ for spaces) runs only those checks.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/front.sh"
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
world_redis
world_mock
PORT=$(free_port)
front_config "$PORT" "{\"wait_grace_ms\": 300,
  \"keys\": [{\"name\": \"plain\", \"tenant\": \"t1\", \"sha256\": \"$(sha sk-life-plain)\"},
             {\"name\": \"conc\", \"sha256\": \"$(sha sk-life-conc)\", \"concurrency\": 1},
             {\"name\": \"open\", \"sha256\": \"$(sha sk-life-open)\"}]}" \
  '{"workers": 1, "lease_ms": 15000}' >"$WORK/front.json"
start_front "$WORK/front.json" "$PORT"
# shellcheck disable=SC2086 # the check names are separate words
timeout 240 /usr/bin/python3 "$PB_SRC_DIR/tests/integration/front_lifecycle.py" "$PORT" \
  "$REDIS_PORT" "$MOCK_URL" "$WORK/planb.log" "$PLANB_PID" ${FRONT_LIFECYCLE_CHECKS:-} ||
  fail "front lifecycle"
! grep '^\[warn\]' "$WORK"/planb*.log || fail "libevent warned (above)"
echo "PASS"
