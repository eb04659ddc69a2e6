#!/usr/bin/env bash
# test_demo.sh -- the README's first command, `deploy/demo.sh --quick`, runs start to end.
#
# Uses this build tree's binaries (--bin), so it checks the story, not the
# installer: every job gets a result, phase 1 shows cache hits, phase 2 fallbacks, phase 3 answers
# without any model (degraded replies, and cached answers for repeated
# questions), phase 4 shows the primary back, the summary table is
# printed, and nothing the demo started is left running. A second run has
# the demo's Redis serve TLS only (--tls); a third is stopped mid-story by a
# signal and must clean up too.
. "$(dirname "$0")/../support/world.sh"
DEMO=$PB_SRC_DIR/deploy/demo.sh
unset OPENAI_API_KEY ANTHROPIC_API_KEY # the mock story; real keys would cost money

"$DEMO" --help | grep -q -- --quick || fail "demo.sh --help"
"$DEMO" --quick --bin "$PB_BIN_DIR" >"$WORK/demo.out" 2>"$WORK/demo.log" ||
  fail "demo.sh --quick exited $?: $(tail -n 30 "$WORK/demo.out" "$WORK/demo.log")"
cat "$WORK/demo.out"
out=$(cat "$WORK/demo.out")
grep -q '^== summary' <<<"$out" || fail "no summary"
row() { grep -E "^   $1 " <<<"$out" | head -n 1 || true; }
col() { row "$1" | awk -v c="$2" '{v = $(c + 1)} END {print v + 0}'; } # col ROW PHASE (5 = total); 0 if absent
[ "$(col jobs 5)" -gt 0 ] || fail "no jobs in the summary"
[ -n "$(row 'p50 latency ms')" ] && [ -n "$(row 'p99 latency ms')" ] || fail "no latency rows"
grep -qE '^   fallback rate [0-9.]+%' <<<"$out" || fail "no fallback rate"
grep -q 'no result 0$' <<<"$out" || fail "some jobs got no result"
[ "$(col cache 1)" -gt 0 ] || fail "phase 1 shows no cache hit for a question asked again"
[ "$(col fallback 2)" -gt 0 ] || fail "phase 2 (primary down) shows no fallback"
# phase 3 (all down): new questions get the degraded reply, repeated ones a cached answer
[ "$(col degraded 3)" -gt 0 ] || fail "phase 3 (all down) shows no degraded reply"
cached=0
for s in cache stale_cache semantic_cache; do cached=$((cached + $(col "$s" 3))); done
[ "$cached" -gt 0 ] || fail "phase 3 (all down) answered no repeated question from a cache"
[ "$(col primary 4)" -gt 0 ] || fail "phase 4 (recovery) shows no primary answer"

# cleanup: the demo's Redis is gone and its temp dir removed
port=$(sed -n 's/^== redis-server on 127.0.0.1:\([0-9]*\)$/\1/p' <<<"$out")
[ -n "$port" ] || fail "demo did not print its Redis port"
redis-cli -p "$port" ping >/dev/null 2>&1 && fail "the demo's redis-server is still running"
dir=$(sed -n 's/.*log: \(\/tmp\/planb-demo-[A-Za-z0-9]*\)\/planb.log.*/\1/p' <<<"$out")
[ -n "$dir" ] && [ ! -e "$dir" ] || fail "the demo's temp dir $dir was not removed"

# --tls: the same story with the demo's Redis TLS-only, planb (serve, check, stats) over rediss://
"$DEMO" --quick --tls --bin "$PB_BIN_DIR" >"$WORK/demo-tls.out" 2>"$WORK/demo-tls.log" ||
  fail "demo.sh --quick --tls exited $?: $(tail -n 30 "$WORK/demo-tls.out" "$WORK/demo-tls.log")"
out=$(cat "$WORK/demo-tls.out")
grep -qE '^   ok redis rediss://127\.0\.0\.1:[0-9]+$' <<<"$out" || fail "--tls: no rediss:// check line"
grep -q 'no result 0$' <<<"$out" || fail "--tls: some jobs got no result"
grep -A1 '^== planb stats' <<<"$out" | grep -q '^queues .*default=0' || fail "--tls: planb stats"

# stopped mid-story (Ctrl-C and kill run the same trap; a background job ignores SIGINT)
"$DEMO" --quick --bin "$PB_BIN_DIR" >"$WORK/demo2.out" 2>&1 &
demo=$!
started() { grep -q '^-- 1\.' "$WORK/demo2.out"; }
wait_for 100 0.1 started || fail "second demo did not start its story"
port=$(sed -n 's/^== redis-server on 127.0.0.1:\([0-9]*\)$/\1/p' "$WORK/demo2.out")
kill -TERM "$demo"
set +e
wait "$demo"
rc=$?
set -e
[ "$rc" -eq 130 ] || fail "interrupted demo exited $rc, want 130"
grep -q 'interrupted, cleaning up' "$WORK/demo2.out" || fail "interrupted demo did not say so"
redis-cli -p "$port" ping >/dev/null 2>&1 && fail "the interrupted demo left redis-server running"
echo "PASS"
