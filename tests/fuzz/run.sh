#!/usr/bin/env bash
# tests/fuzz/run.sh -- builds the libFuzzer targets (job parser, front-door bodies and results,
# every provider's replies, AWS event-stream frames, SigV4 checks; clang, ASan+UBSan) in
# build-fuzz/ and runs each for FUZZ_SECONDS (default 15) from its seed corpus; any crash, leak
# or sanitizer report fails. New inputs the fuzzer finds go to build-fuzz/corpus/<target>/ (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECS=${FUZZ_SECONDS:-15}
CC=clang cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DCMAKE_BUILD_TYPE=Debug -DPB_FUZZ=ON \
  -DPB_BUILD_TESTS=OFF >/dev/null
cmake --build "$ROOT/build-fuzz" -j"$(nproc)" --target fuzz_job fuzz_wire fuzz_openai fuzz_anthropic \
  fuzz_gemini fuzz_bedrock fuzz_eventstream fuzz_sigv4
status=0
run() {
  local target=$1 seeds=$2
  mkdir -p "$ROOT/build-fuzz/corpus/$target"
  echo "== fuzz $target (${SECS}s)"
  if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$ROOT/build-fuzz/tests/fuzz/$target" \
      -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$ROOT/build-fuzz/$target-" \
      "$ROOT/build-fuzz/corpus/$target" "$seeds" 2>"$ROOT/build-fuzz/$target.log"; then
    tail -40 "$ROOT/build-fuzz/$target.log"
    status=1
  else
    grep -E "^stat::number_of_executed_units|^Done" "$ROOT/build-fuzz/$target.log" || true
  fi
}
run fuzz_job "$ROOT/tests/fixtures/jobs"
run fuzz_wire "$ROOT/tests/fixtures/jobs"
run fuzz_openai "$ROOT/tests/fixtures/replies/openai"
run fuzz_anthropic "$ROOT/tests/fixtures/replies/anthropic"
run fuzz_gemini "$ROOT/tests/fixtures/replies/gemini"
run fuzz_bedrock "$ROOT/tests/fixtures/replies/bedrock"
run fuzz_eventstream "$ROOT/tests/fixtures/eventstream"
run fuzz_sigv4 "$ROOT/tests/fixtures/sigv4"
exit "$status"
