#!/usr/bin/env bash
# deploy/demo.sh -- the README's first command: watch planb keep answering while models fail.
#
# Installs what is missing (deploy/install-deps.sh), builds, starts a private
# redis-server and planb-mock on free loopback ports (or uses real providers when
# OPENAI_API_KEY / ANTHROPIC_API_KEY / AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT /
# GEMINI_API_KEY / AWS credentials or AWS_BEARER_TOKEN_BEDROCK are set, simulating the outage
# per job),
# starts `planb serve`, and tells a story with a live progress line per phase:
#   1. normal traffic          -> answers from the primary; asked again, from the exact cache;
#                                 in other words, from the semantic cache
#   2. the primary goes down   -> retries, then answers from the backup (its breaker opens)
#   3. everything goes down    -> stale cached answers for questions asked before, else the
#                                 polite degraded reply, always before the deadline
#   4. recovery                -> the primary answers again
# then prints a summary table: jobs per source and phase, fallback rate, p50/p99 latency.
# Everything it started is stopped, and its temp dir removed, on exit or Ctrl-C.
#   deploy/demo.sh [--quick] [--bin DIR] [--tls]
# --quick: a shorter story (the test suite runs it); --bin DIR: use the planb and planb-mock
# already built in DIR (skips installing and building); --tls: the Redis serves TLS only, with
# a throwaway CA (tests/support/make_certs.sh), and planb (serve, stats, check) reaches it over
# rediss://. Exit 0 when every job got its result.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=0
TLS=0
BIN=""
usage() { echo "usage: deploy/demo.sh [--quick] [--bin DIR] [--tls]"; }
while [ $# -gt 0 ]; do
  case $1 in
  --quick) QUICK=1 ;;
  --tls) TLS=1 ;;
  --bin) BIN=${2:?--bin needs a directory}; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$BIN" ]; then
  "$ROOT/deploy/install-deps.sh"
  echo "== building (build/, a minute on a fresh clone)"
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build" -j"$(nproc)" --target planb planb-mock >/dev/null
  BIN=$ROOT/build
fi

WORK=$(mktemp -d /tmp/planb-demo-XXXXXX)
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do # planb drains in well under drain_timeout_ms (5 s) here
    for _ in $(seq 1 80); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  # a sanitizer build (the test suite runs the demo with one) must not hide its reports
  grep -h -A20 -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$WORK"/*.log >&2
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "== interrupted, cleaning up"; exit 130' INT TERM

wait_for() { # TRIES DELAY_S CMD...: bounded polling
  local tries=$1 delay=$2
  shift 2
  for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep "$delay"; done
  return 1
}

REDIS_ARGS=() # --tls: TLS only, on the same port variable
CLI_TLS=()
if [ "$TLS" = 1 ]; then
  bash "$ROOT/tests/support/make_certs.sh" "$WORK/certs"
  REDIS_ARGS=(--tls-cert-file "$WORK/certs/server.crt" --tls-key-file "$WORK/certs/server.key"
    --tls-ca-cert-file "$WORK/certs/ca.crt" --tls-auth-clients no)
  CLI_TLS=(--tls --cacert "$WORK/certs/ca.crt")
fi
R() { redis-cli "${CLI_TLS[@]}" -p "$REDIS_PORT" "$@"; }
for _ in $(seq 1 20); do # a random free port; retried if taken meanwhile
  REDIS_PORT=$((20000 + RANDOM % 30000))
  if [ "$TLS" = 1 ]; then
    redis-server --port 0 --tls-port "$REDIS_PORT" "${REDIS_ARGS[@]}" --bind 127.0.0.1 --save '' \
      --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" &
  else
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$WORK" --logfile "$WORK/redis.log" &
  fi
  PIDS+=($!)
  wait_for 30 0.1 R ping && break
done
R ping >/dev/null || { echo "redis-server did not start" >&2; exit 1; }
echo "== redis-server on 127.0.0.1:$REDIS_PORT"
[ "$TLS" = 1 ] && echo "== TLS only (rediss://127.0.0.1:$REDIS_PORT, a throwaway CA in $WORK/certs)"

MOCK=0
AZURE_ON=
[ -n "${AZURE_OPENAI_API_KEY:-}" ] && [ -n "${AZURE_OPENAI_ENDPOINT:-}" ] && AZURE_ON=1
AWS_ON=
[ -n "${AWS_ACCESS_KEY_ID:-}" ] || [ -n "${AWS_BEARER_TOKEN_BEDROCK:-}" ] && AWS_ON=1
if [ -n "${OPENAI_API_KEY:-}" ] || [ -n "${ANTHROPIC_API_KEY:-}" ] || [ -n "$AZURE_ON" ] ||
  [ -n "${GEMINI_API_KEY:-}" ] || [ -n "$AWS_ON" ]; then
  echo "== real providers (API keys found in the environment); the outage is simulated per job"
  sed "s|@REDIS_PORT@|$REDIS_PORT|" "$ROOT/deploy/demo-real.json" >"$WORK/planb.json"
  if [ -n "$AZURE_ON" ]; then # the v1 API at the resource's address, the deployment as model
    az_url=${AZURE_OPENAI_ENDPOINT%/}/openai/v1
    az_dep=${AZURE_OPENAI_DEPLOYMENT:-gpt-4o-mini}
    case "$az_url$az_dep" in *['|"\&']*) echo "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT must not hold | \" \\ or &" >&2; exit 1 ;; esac
    sed -i -e "s|\"http://127.0.0.1:9/openai/v1\"|\"$az_url\"|" \
      -e "s|\"provider\": \"azure\", \"model\": \"gpt-4o-mini\"|\"provider\": \"azure\", \"model\": \"$az_dep\"|" "$WORK/planb.json"
  fi
  # Bedrock: the region and model from the environment; a Bedrock API key instead of SigV4.
  aws_region=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
  br_model=${BEDROCK_MODEL:-amazon.nova-micro-v1:0}
  case "$aws_region" in *[!a-z0-9-]* | "") echo "AWS_REGION must be [a-z0-9-]" >&2; exit 1 ;; esac
  case "$br_model" in *['|"\&']*) echo "BEDROCK_MODEL must not hold | \" \\ or &" >&2; exit 1 ;; esac
  br_auth=
  [ -n "${AWS_BEARER_TOKEN_BEDROCK:-}" ] && br_auth=', "bearer_token_env": "AWS_BEARER_TOKEN_BEDROCK"'
  sed -i -e "s|\"type\": \"bedrock\", \"region\": \"us-east-1\"|\"type\": \"bedrock\", \"region\": \"$aws_region\"$br_auth|" \
    -e "s|\"model\": \"amazon.nova-micro-v1:0\"|\"model\": \"$br_model\"|" "$WORK/planb.json"
  PER_PHASE=6
  [ "$QUICK" = 1 ] && PER_PHASE=3
else
  MOCK=1
  "$BIN/planb-mock" --quiet >"$WORK/mock.port" 2>"$WORK/mock.log" &
  PIDS+=($!)
  wait_for 50 0.1 grep -q port= "$WORK/mock.port" || { echo "planb-mock did not start" >&2; exit 1; }
  MOCK_URL="http://127.0.0.1:$(sed -n 's/^port=//p' "$WORK/mock.port")"
  echo "== planb-mock (no API key set) on $MOCK_URL, playing gpt-4o, claude-sonnet, gpt-4o-mini"
  sed -e "s|@REDIS_PORT@|$REDIS_PORT|; s|@MOCK_URL@|$MOCK_URL|g" "$ROOT/deploy/demo.json" >"$WORK/planb.json"
  export DEMO_KEY=demo-key-not-secret
  PER_PHASE=40
  [ "$QUICK" = 1 ] && PER_PHASE=10
fi
if [ "$TLS" = 1 ]; then # rediss:// with the throwaway CA; the certificate names 127.0.0.1
  sed -i "s|\"redis://127.0.0.1:$REDIS_PORT/0\"|\"rediss://127.0.0.1:$REDIS_PORT/0\", \"tls\": {\"ca_file\": \"$WORK/certs/ca.crt\"}|" \
    "$WORK/planb.json"
  grep -q rediss:// "$WORK/planb.json" || { echo "demo config has no redis url to make rediss://" >&2; exit 1; }
fi

# Shared circuit breakers: open after 5 failures in a row, probe again after 2 s (max_open_s
# keeps it 2 s even after failed probes), so the short story shows them opening in phase 2 and
# closing in phase 4.
BREAKER_OPEN_S=2
sed "s|^  \"cache\":|  \"breaker\": {\"failures\": 5, \"window_s\": 10, \"open_s\": $BREAKER_OPEN_S, \"max_open_s\": $BREAKER_OPEN_S},\n  \"cache\":|" \
  "$WORK/planb.json" >"$WORK/planb-breaker.json"
if "$BIN/planb" check -c "$WORK/planb-breaker.json" >/dev/null 2>&1; then
  mv "$WORK/planb-breaker.json" "$WORK/planb.json"
fi

# The OpenAI-compatible front door on a free loopback port (no keys: local use).
HTTP_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 0)
if [ "$HTTP_PORT" != 0 ]; then
  sed "s|^  \"cache\":|  \"http\": {\"listen\": \"127.0.0.1:$HTTP_PORT\"},\n  \"cache\":|" \
    "$WORK/planb.json" >"$WORK/planb-http.json"
  if "$BIN/planb" check -c "$WORK/planb-http.json" >/dev/null 2>&1; then
    mv "$WORK/planb-http.json" "$WORK/planb.json"
  else
    HTTP_PORT=0
  fi
fi

"$BIN/planb" serve -c "$WORK/planb.json" --log-level warn 2>"$WORK/planb.log" &
PIDS+=($!)
workers_up() { [ "$(R ZCARD planb:workers)" -gt 0 ]; }
if ! wait_for 100 0.1 workers_up; then
  echo "planb serve did not start:" >&2
  cat "$WORK/planb.log" >&2
  exit 1
fi
echo "== planb serve: 2 workers (log: $WORK/planb.log while the demo runs)"
if [ "$TLS" = 1 ]; then
  "$BIN/planb" check --connect -c "$WORK/planb.json" | grep '^ok redis\|^FAILED' | sed 's/^/   /'
fi

mock_set() { [ "$MOCK" = 0 ] || curl -sf -X POST "$MOCK_URL/_mock/models/$1" -d "$2" >/dev/null; }
# A top-level JSON string / number field of a result (bash regex: no process per job).
field() { if [[ $1 =~ \"$2\":\"([^\"]*)\" ]]; then echo "${BASH_REMATCH[1]}"; fi; }
num() { if [[ $1 =~ \"$2\":([0-9]+) ]]; then echo "${BASH_REMATCH[1]}"; fi; }
symbol() {
  case $1 in
  primary) echo p ;; fallback) echo f ;; cache) echo c ;; stale_cache) echo s ;;
  semantic_cache) echo S ;; degraded) echo d ;; *) echo x ;;
  esac
}

FAQ=("What are your opening hours?" "How do I reset my password?" "Do you ship abroad?"
  "Can I change my delivery address?" "How do I return an item?")
# The same questions in other words, for the semantic cache.
PARA=("What are your opening hours, please?" "How can I reset my password?" "Do you ship orders abroad?"
  "Can I change the delivery address?" "How can I return an item?")
N=0
MISSING=0
PHASE_END_S=()
# run_phase NUM TITLE COUNT QUESTIONS [MODELS-JSON] [FIRST]: push COUNT jobs, then follow their
# results live (one symbol per job, and counts per source). QUESTIONS: faq (the five FAQs, then
# repeats and paraphrases of them), new (unique), mixed (FAQ repeats and unique ones). With FIRST
# > 0 the first FIRST jobs go alone and the rest follow their results (answers cached first; a
# half-open breaker lets one probe through).
run_phase() {
  local num=$1 title=$2 count=$3 kind=$4 models=${5:-} first=${6:-0} ids=() seq="" res src q i
  local n_faq=${#FAQ[@]} done_n=0
  declare -A per=()
  echo
  echo "-- $num. $title"
  : >"$WORK/push"
  for i in $(seq 1 "$count"); do
    N=$((N + 1))
    case $kind in
    faq)
      if ((i <= n_faq || i % 2)); then q=${FAQ[$(((i - 1) % n_faq))]}; else q=${PARA[$(((i - 1) % n_faq))]}; fi ;;
    new) q="Where is my order #$((1000 + N))?" ;;
    mixed) if ((i % 2)); then q=${FAQ[$((i / 2 % n_faq))]}; else q="Where is my order #$((1000 + N))?"; fi ;;
    esac
    ids+=("demo-$N")
    printf "LPUSH planb:q:default '%s'\n" "{\"id\":\"demo-$N\",\"reply\":true,\"submitted_at_ms\":$(date +%s%3N)${models:+,\"models\":$models},\"messages\":[{\"role\":\"user\",\"content\":\"$q\"}]}" >>"$WORK/push"
  done
  if [ "$first" -gt 0 ]; then
    head -n "$first" "$WORK/push" | R >/dev/null
  else
    R <"$WORK/push" >/dev/null # one connection for the whole batch
  fi
  for id in "${ids[@]}"; do
    res=$(R --raw BLPOP "planb:reply:$id" 30 | tail -n +2)
    if [ -z "$res" ]; then
      MISSING=$((MISSING + 1))
      src=missing
    else
      src=$(field "$res" source)
      printf '%s\t%s\t%s\n' "$num" "$src" "$(num "$res" latency_ms)" >>"$WORK/results.tsv"
    fi
    seq="$seq$(symbol "$src")"
    per[$src]=$((${per[$src]:-0} + 1))
    local counts=""
    for s in primary fallback cache stale_cache semantic_cache degraded missing; do
      [ -n "${per[$s]:-}" ] && counts="$counts $s ${per[$s]}"
    done
    printf '\r   [%-*s] %d/%d %s' "$count" "$seq" "${#seq}" "$count" "$counts"
    done_n=$((done_n + 1))
    if [ "$done_n" -eq "$first" ]; then
      tail -n +$((first + 1)) "$WORK/push" | R >/dev/null
    fi
  done
  echo
  [ -n "$res" ] && echo "   last answer: \"$(field "$res" content | cut -c1-70)\" (source $src, $(num "$res" latency_ms) ms)"
  PHASE_END_S[$num]=$(date +%s)
}

# Shows shared circuit breakers and cached answers when this build has them (other issues).
show_state() {
  local k
  for k in $(R --scan --pattern 'planb:breaker:*' | sort); do
    echo "   breaker ${k#planb:breaker:}: $(R HGETALL "$k" | paste -sd' ' | cut -c1-80)"
  done
  local n
  n=$(R --scan --pattern 'planb:cache:*' | grep -vc ':lock$' || true)
  [ "$n" -gt 0 ] && echo "   answer cache: $n entries"
  true
}

echo
echo "Each job is one symbol: p primary, f fallback (backup model), c cache, s stale cache,"
echo "S semantic cache, d degraded reply, x no result."
if [ "$MOCK" = 1 ]; then
  run_phase 1 "normal traffic: the primary (gpt-4o) answers; asked again, the caches do" "$PER_PHASE" faq "" 5
  mock_set gpt-4o '{"mode":"status","status":503}'
  run_phase 2 "gpt-4o returns 503: retries with backoff, then the backup (claude-sonnet) answers" "$PER_PHASE" new
  show_state
  mock_set claude-sonnet '{"mode":"status","status":529}'
  mock_set gpt-4o-mini '{"mode":"hang"}'
  P3="every model is down (503, 529, hanging): stale cached answers, else the degraded reply"
else
  run_phase 1 "normal traffic: the primary answers; asked again, the caches do" "$PER_PHASE" faq "" 5
  run_phase 2 "the primary is unreachable: retries, then the backup answers" "$PER_PHASE" new \
    '["outage","claude-haiku","gpt-4o-mini","azure-gpt","bedrock-nova","gemini-flash"]'
  show_state
  P3="every model is unreachable: stale cached answers, else the degraded reply"
fi
# Cached answers stay fresh for cache.ttl_s (5 s in the demo configs): let phase 1's go stale.
if R --scan --pattern 'planb:cache:*' | grep -q .; then
  left=$((PHASE_END_S[1] + 6 - $(date +%s)))
  if [ "$left" -gt 0 ]; then
    echo "   (waiting ${left}s so phase 1's cached answers pass their 5 s TTL and become stale)"
    sleep "$left"
  fi
fi
if [ "$MOCK" = 1 ]; then
  run_phase 3 "$P3" "$((PER_PHASE / 2))" mixed
  mock_set gpt-4o '{"mode":"ok"}'
  mock_set claude-sonnet '{"mode":"ok"}'
  mock_set gpt-4o-mini '{"mode":"ok"}'
else
  run_phase 3 "$P3" "$((PER_PHASE / 2 + 1))" mixed '["outage"]'
fi
PROBE=0
if R --scan --pattern 'planb:breaker:*' | grep -q .; then
  echo "   (waiting ${BREAKER_OPEN_S}s, the breakers' open time; then the first job probes and closes them)"
  sleep "$BREAKER_OPEN_S"
  PROBE=1
fi
run_phase 4 "recovery: the primary answers again" "$PER_PHASE" new "" "$PROBE"
show_state

if [ "$HTTP_PORT" != 0 ] && command -v curl >/dev/null; then
  echo
  echo "-- 5. the same chain through the OpenAI-compatible front door (http://127.0.0.1:$HTTP_PORT/v1)"
  mock_set gpt-4o '{"mode":"status","status":503}'
  front_up() { curl -sf -m 2 "http://127.0.0.1:$HTTP_PORT/healthz"; }
  wait_for 50 0.1 front_up || true
  curl -s -m 20 -D "$WORK/front.headers" -o "$WORK/front.body" \
    "http://127.0.0.1:$HTTP_PORT/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model":"default","messages":[{"role":"user","content":"Hello through the front door"}]}' || true
  mock_set gpt-4o '{"mode":"ok"}'
  echo "   POST /v1/chat/completions with the primary down (any OpenAI SDK: baseURL .../v1):"
  echo "   $(head -n 1 "$WORK/front.headers" | tr -d '\r')  $(grep -i '^x-planb-\(source\|model\|attempts\)' "$WORK/front.headers" | tr -d '\r' | paste -sd' ')"
  echo "   $(cut -c1-150 "$WORK/front.body")"
fi

echo
echo "== summary"
awk -F'\t' -v missing="$MISSING" '
  { n[$1]++; c[$1, $2]++; tot[$2]++; all++; lat[$1, n[$1]] = $3; alat[all] = $3; seen[$2] = 1 }
  function pct(arr, k, len, p,   i, j, t, v) {      # p-th percentile (nearest rank) of arr[k, 1..len]
    for (i = 1; i <= len; i++) v[i] = arr[k, i] + 0
    for (i = 2; i <= len; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    i = int((len * p + 99) / 100); if (i < 1) i = 1
    return v[i]
  }
  END {
    split("primary fallback cache stale_cache semantic_cache degraded", order, " ")
    printf "   %-16s %8s %8s %8s %8s %8s\n", "source", "phase 1", "phase 2", "phase 3", "phase 4", "total"
    for (o = 1; o <= 6; o++) {
      s = order[o]; if (!(s in seen)) continue
      printf "   %-16s", s
      for (p = 1; p <= 4; p++) printf " %8d", c[p, s]
      printf " %8d\n", tot[s]
    }
    printf "   %-16s", "jobs"; for (p = 1; p <= 4; p++) printf " %8d", n[p]; printf " %8d\n", all
    printf "   %-16s", "p50 latency ms"; for (p = 1; p <= 4; p++) printf " %8d", pct(lat, p, n[p], 50)
    for (i = 1; i <= all; i++) a[0, i] = alat[i]
    printf " %8d\n", pct(a, 0, all, 50)
    printf "   %-16s", "p99 latency ms"; for (p = 1; p <= 4; p++) printf " %8d", pct(lat, p, n[p], 99)
    printf " %8d\n", pct(a, 0, all, 99)
    printf "   fallback rate %.1f%% (answered by a backup model), degraded %.1f%%, no result %d\n",
      100 * tot["fallback"] / all, 100 * tot["degraded"] / all, missing
  }' "$WORK/results.tsv"
echo "   counters (HGETALL planb:stats): $(R HGETALL planb:stats | paste -sd' ' | cut -c1-240)"
if "$BIN/planb" stats --help >/dev/null 2>&1; then
  echo
  echo "== planb stats"
  "$BIN/planb" stats -c "$WORK/planb.json" 2>&1 | head -n 30 || true
fi
[ "$MISSING" -eq 0 ]
