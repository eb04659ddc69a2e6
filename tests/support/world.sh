# tests/support/world.sh -- a shell test's world: redis-server, planb-mock and `planb serve`.
#
# Sourced by tests/integration/test_*.sh (the shell twin of harness.[ch], for tests
# that drive CLIs, other languages or network namespaces). Every process it starts
# is stopped and every temp file removed by the EXIT trap, pass or fail; a
# sanitizer report in any log is printed, so ctest's FAIL_REGULAR_EXPRESSION fails
# the test. PB_BIN_DIR (set by ctest) names the build tree whose binaries are used.
#   world_redis; world_mock; world_planb [CONFIG]; R <redis-cli args>; wait_for N DELAY_S CMD...
set -euo pipefail
PB_SRC_DIR=${PB_SRC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PB_BIN_DIR=${PB_BIN_DIR:-$PB_SRC_DIR/build}
PLANB=$PB_BIN_DIR/planb
WORK=$(mktemp -d /tmp/planb-test-XXXXXX)
WORLD_PIDS=()
WORLD_CLEANUPS=()

fail() { echo "FAIL: $*" >&2; exit 1; }
# ctest maps exit 77 to "skipped" (SKIP_RETURN_CODE); the reason is printed.
skip() { echo "SKIP: $*"; exit 77; }

world_cleanup() {
  local rc=$?
  set +e
  for f in "${WORLD_CLEANUPS[@]}"; do "$f"; done
  for p in "${WORLD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${WORLD_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  grep -h -A30 -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$WORK"/*.log 2>/dev/null
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for f in "$WORK"/*.log; do [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap world_cleanup EXIT
trap 'exit 130' INT TERM

# wait_for TRIES DELAY_S CMD...: runs CMD until it succeeds, at most TRIES times.
wait_for() {
  local tries=$1 delay=$2
  shift 2
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep "$delay"
  done
  return 1
}

# redis-server on a free loopback port (retried when the random port was taken).
world_redis() {
  for _ in $(seq 1 20); do
    REDIS_PORT=$((20000 + RANDOM % 30000))
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$WORK" --logfile "$WORK/redis.log" &
    WORLD_PIDS+=($!)
    if wait_for 30 0.1 redis-cli -p "$REDIS_PORT" ping; then return 0; fi
  done
  fail "redis-server did not start"
}
R() { redis-cli -p "$REDIS_PORT" "$@"; }

# planb-mock on a free port (it prints port=N); MOCK_URL is its base URL.
world_mock() {
  "$PB_BIN_DIR/planb-mock" --quiet >"$WORK/mock.port" 2>"$WORK/mock.log" &
  WORLD_PIDS+=($!)
  wait_for 50 0.1 grep -q port= "$WORK/mock.port" || fail "planb-mock did not start"
  MOCK_PORT=$(sed -n 's/^port=//p' "$WORK/mock.port")
  MOCK_URL="http://127.0.0.1:$MOCK_PORT"
}
mock_set() { curl -sf -X POST "$MOCK_URL/_mock/models/$1" -d "$2" >/dev/null; }

# A config with a primary and a backup on the mock; $1 = workers (default 2).
world_config() {
  cat <<JSON
{"redis": {"url": "redis://127.0.0.1:$REDIS_PORT/0"},
 "workers": ${1:-2}, "concurrency": 64, "queues": ["default"], "drain_timeout_ms": 3000,
 "providers": {"mock": {"type": "openai", "base_url": "$MOCK_URL/v1", "api_key_env": "PB_TEST_KEY"}},
 "models": {"primary": {"provider": "mock", "tier": 1, "timeout_ms": 2000},
            "backup": {"provider": "mock", "tier": 2, "timeout_ms": 2000}},
 "routes": {"default": {"chain": ["primary", "backup"], "retries": 1, "backoff_ms": 10,
            "backoff_max_ms": 50, "deadline_ms": 8000, "degraded_reply": "Sorry, try later."}}}
JSON
}

# planb serve on $1 (default: world_config written to $WORK/planb.json); waits for a heartbeat.
world_planb() {
  CONFIG=${1:-$WORK/planb.json}
  [ -n "${1:-}" ] || world_config >"$CONFIG"
  export PB_TEST_KEY=sk-test-not-a-real-key
  "$PLANB" serve -c "$CONFIG" >"$WORK/planb.log" 2>&1 &
  WORLD_PIDS+=($!)
  wait_for 100 0.1 world_has_workers || fail "planb serve did not start"
}
world_has_workers() { [ "$(R ZCARD planb:workers)" -gt 0 ]; }

# json_get JSON FIELD: a top-level string/number field (python3 is in every Debian install).
json_get() { /usr/bin/python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }
