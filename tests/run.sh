#!/usr/bin/env bash
# tests/run.sh -- the README's test command: installs what is missing, builds, runs everything.
#
# 1. Debian packages (apt-get, as root) for the build, the tests and the tools.
# 2. build/ (RelWithDebInfo): unit, integration, then the benchmarks in quick mode.
# 3. build-asan/ (-DPB_SANITIZE=address,undefined): unit and integration again; any
#    sanitizer report fails the test (CTest FAIL_REGULAR_EXPRESSION).
# 4. libFuzzer targets (clang, ASan+UBSan), FUZZ_SECONDS each (default 15): tests/fuzz/run.sh.
# 5. clang-format check of every C file.
# Every test starts its own redis-server and planb-mock on free loopback ports. Their temp
# dirs (logs kept for reading after a failure) go under build/test-tmp/, emptied each run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

"$ROOT/deploy/install-deps.sh"

JOBS=$(nproc)
status=0
export TMPDIR=$ROOT/build/test-tmp
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"

echo "== build (RelWithDebInfo)"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$ROOT/build" -j"$JOBS"
echo "== tests"
ctest --test-dir "$ROOT/build" --output-on-failure -L unit -j"$JOBS" || status=1
ctest --test-dir "$ROOT/build" --output-on-failure -L integration || status=1
echo "== benchmarks (quick mode; figures only)"
ctest --test-dir "$ROOT/build" --output-on-failure -L bench -V 2>&1 | grep -E "^[0-9]+: (bench|  )" || true

echo "== build (ASan+UBSan)"
cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DPB_SANITIZE=address,undefined >/dev/null
cmake --build "$ROOT/build-asan" -j"$JOBS"
echo "== tests under sanitizers"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$ROOT/build-asan" --output-on-failure -L unit -j"$JOBS" || status=1
ctest --test-dir "$ROOT/build-asan" --output-on-failure -L integration || status=1

echo "== fuzz"
FUZZ_SECONDS=${FUZZ_SECONDS:-15} "$ROOT/tests/fuzz/run.sh" || status=1

echo "== format"
if ! clang-format --dry-run --Werror $(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests -name '*.[ch]'); then
  echo "clang-format: files above need formatting (clang-format -i)"
  status=1
fi

if [ "$status" -ne 0 ]; then
  echo "== FAILED"
else
  echo "== all passed"
fi
exit "$status"
