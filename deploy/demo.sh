#!/usr/bin/env bash
# deploy/demo.sh -- the README's main command: see planb keep answering while models fail.
#
# Installs what is missing, builds, starts a private redis-server and planb-mock
# on free loopback ports (or uses real providers when OPENAI_API_KEY /
# ANTHROPIC_API_KEY are set), starts `planb serve`, and tells a story:
#   1. normal traffic          -> answers from the primary
#   2. the primary goes down   -> retries, then answers from the backup
#   3. everything goes down    -> the polite degraded reply
#   4. recovery                -> the primary answers again
# then prints a summary table. Everything it started is stopped on exit or Ctrl-C.
#   deploy/demo.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PER_PHASE=40
[ "${1:-}" = "--quick" ] && PER_PHASE=10

"$ROOT/deploy/install-deps.sh"
echo "== building"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$ROOT/build" -j"$(nproc)" --target planb planb-mock >/dev/null

WORK=$(mktemp -d /tmp/planb-demo-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port" >&2; exit 1
}

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" --logfile "$WORK/redis.log" &
PIDS+=($!)
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "== redis-server on 127.0.0.1:$REDIS_PORT"
R() { redis-cli -p "$REDIS_PORT" "$@"; }

MOCK=0
if [ -n "${OPENAI_API_KEY:-}" ] || [ -n "${ANTHROPIC_API_KEY:-}" ]; then
  echo "== real providers (keys found in the environment)"
  sed "s|redis://127.0.0.1:6379/0|redis://127.0.0.1:$REDIS_PORT/0|" "$ROOT/deploy/planb.json" >"$WORK/planb.json"
else
  MOCK=1
  "$ROOT/build/planb-mock" --quiet >"$WORK/mock.port" 2>"$WORK/mock.log" &
  PIDS+=($!)
  for _ in $(seq 1 50); do grep -q port= "$WORK/mock.port" 2>/dev/null && break; sleep 0.1; done
  MOCK_PORT=$(sed -n 's/^port=//p' "$WORK/mock.port")
  MOCK_URL="http://127.0.0.1:$MOCK_PORT"
  echo "== planb-mock (no API key set) on 127.0.0.1:$MOCK_PORT"
  sed -e "s|@REDIS_PORT@|$REDIS_PORT|; s|@MOCK_URL@|$MOCK_URL|g" "$ROOT/deploy/demo.json" >"$WORK/planb.json"
  export DEMO_KEY=demo-key-not-secret
fi

"$ROOT/build/planb" serve -c "$WORK/planb.json" --log-level warn 2>"$WORK/planb.log" &
PIDS+=($!)
echo "== planb serve (2 workers), log in $WORK/planb.log"

mock_set() { [ "$MOCK" = 1 ] && curl -s -X POST "$MOCK_URL/_mock/models/$1" -d "$2" >/dev/null || true; }

QUESTIONS=("What are your opening hours?" "How do I reset my password?" "Where is my order?"
           "Can I change my delivery address?" "Do you ship abroad?")
N=0
run_phase() {
  local title=$1 count=$2 ids=()
  echo
  echo "-- $title"
  for i in $(seq 1 "$count"); do
    N=$((N + 1))
    local q=${QUESTIONS[$((N % ${#QUESTIONS[@]}))]}
    local id="demo-$N"
    ids+=("$id")
    R LPUSH planb:q:default "{\"id\":\"$id\",\"reply\":true,\"submitted_at_ms\":$(date +%s%3N),\"messages\":[{\"role\":\"user\",\"content\":\"$q\"}]}" >/dev/null
  done
  local done=0 line="" src
  for id in "${ids[@]}"; do
    res=$(R --raw BLPOP "planb:reply:$id" 30 | tail -n 1)
    src=$(grep -o '"source":"[a-z_]*"' <<<"$res" | cut -d'"' -f4)
    done=$((done + 1))
    line="$line${src:0:1}"
    printf '\r   %3d/%d answered  [%s]' "$done" "$count" "$line"
    echo "$res" >>"$WORK/results.jsonl"
  done
  echo
  echo "   last answer: $(grep -o '"content":"[^"]*"' <<<"$res" | cut -d'"' -f4 | cut -c1-80)  (source: $src)"
}

echo
echo "Legend: p = primary, f = fallback, c = cache, d = degraded"
run_phase "1. normal traffic: the primary answers" "$PER_PHASE"
mock_set gpt-4o '{"mode":"status","status":503}'
run_phase "2. the primary returns 503: retries, then the backup answers" "$PER_PHASE"
mock_set claude-sonnet '{"mode":"status","status":529}'
mock_set gpt-4o-mini '{"mode":"hang"}'
run_phase "3. every model is down: the polite degraded reply, before the deadline" "$((PER_PHASE / 2))"
mock_set gpt-4o '{"mode":"ok"}'
mock_set claude-sonnet '{"mode":"ok"}'
mock_set gpt-4o-mini '{"mode":"ok"}'
run_phase "4. recovery: the primary answers again" "$PER_PHASE"

echo
echo "== summary"
total=$(wc -l <"$WORK/results.jsonl")
printf '   %-12s %6s\n' source jobs
for s in primary fallback cache stale_cache degraded; do
  c=$(grep -c "\"source\":\"$s\"" "$WORK/results.jsonl" || true)
  printf '   %-12s %6d\n' "$s" "$c"
done
fb=$(grep -c '"source":"fallback"' "$WORK/results.jsonl" || true)
lat=$(grep -o '"latency_ms":[0-9]*' "$WORK/results.jsonl" | cut -d: -f2 | sort -n)
p50=$(sed -n "$(( (total + 1) / 2 ))p" <<<"$lat")
p99=$(sed -n "$(( (total * 99 + 99) / 100 ))p" <<<"$lat")
printf '   %-12s %6d\n' total "$total"
printf '   fallback rate %.1f%%   latency p50 %s ms   p99 %s ms\n' "$(echo "$fb $total" | awk '{print 100*$1/$2}')" "$p50" "$p99"
echo "   counters: $(R HGETALL planb:stats | paste -sd' ' | cut -c1-300)"
