#!/usr/bin/env bash
# test_scaleout.sh -- planb on two "hosts" sharing one Redis on a third, and one host dying.
#
# Three network namespaces joined by veth pairs (A is the hub): A runs
# redis-server and planb-mock and is where jobs are pushed from; B and C each
# run `planb serve` in their own UTS namespace (hostnames hostb, hostc, so a
# result's `worker` field names its host). The test checks that both hosts take
# work, then SIGKILLs every process of host B mid-run (what a power cut does)
# and checks that host C finishes every job, with exactly one result per id:
# B's claimed jobs come back through the lease reaper (issue 5). Skips, saying
# why, only where namespaces are refused; namespaces are removed even on failure.
. "$(dirname "$0")/../support/world.sh"
NS=pb$$
A=${NS}a B=${NS}b C=${NS}c
JOBS=300
LEASE_MS=2000

netns_cleanup() {
  for ns in $A $B $C; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  for ns in $A $B $C; do ip netns del "$ns" 2>/dev/null; done
}
WORLD_CLEANUPS+=(netns_cleanup)

[ "$(id -u)" = 0 ] || skip "network namespaces need root (ip netns); running as uid $(id -u)"
if ! err=$(ip netns add "$A" 2>&1); then
  skip "network namespaces are not permitted here: ip netns add: $err"
fi
ip netns add "$B" && ip netns add "$C" || fail "ip netns add failed after the first one worked"
ip netns exec "$B" unshare --uts true 2>/dev/null || skip "UTS namespaces are not permitted (unshare --uts)"
for ns in $A $B $C; do ip -n "$ns" link set lo up; done
# A <-> B on 10.77.1.0/24, A <-> C on 10.77.2.0/24
ip link add "${NS}ab" netns "$A" type veth peer name "${NS}ba" netns "$B" || fail "veth A-B"
ip link add "${NS}ac" netns "$A" type veth peer name "${NS}ca" netns "$C" || fail "veth A-C"
ip -n "$A" addr add 10.77.1.1/24 dev "${NS}ab" && ip -n "$A" link set "${NS}ab" up
ip -n "$B" addr add 10.77.1.2/24 dev "${NS}ba" && ip -n "$B" link set "${NS}ba" up
ip -n "$A" addr add 10.77.2.1/24 dev "${NS}ac" && ip -n "$A" link set "${NS}ac" up
ip -n "$C" addr add 10.77.2.2/24 dev "${NS}ca" && ip -n "$C" link set "${NS}ca" up

# host A: Redis and the mock (every answer takes 500 ms, so jobs are in flight when B dies)
ip netns exec "$A" redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save '' \
  --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" &
WORLD_PIDS+=($!)
R() { ip netns exec "$A" redis-cli -p 6379 "$@"; }
wait_for 50 0.1 R ping || fail "redis-server did not start in $A"
ip netns exec "$A" "$PB_BIN_DIR/planb-mock" --quiet --listen 0.0.0.0:8000 >"$WORK/mock.port" \
  2>"$WORK/mock.log" &
WORLD_PIDS+=($!)
wait_for 50 0.1 grep -q port= "$WORK/mock.port" || fail "planb-mock did not start in $A"
ip netns exec "$A" curl -sf -X POST http://127.0.0.1:8000/_mock/models/m \
  -d '{"mode":"ok","latency_ms":500}' >/dev/null || fail "mock control"
ip netns exec "$B" redis-cli -h 10.77.1.1 ping >/dev/null || fail "host B cannot reach Redis on A"

host_config() { # $1 = the hub address this host reaches A by
  cat <<JSON
{"redis": {"url": "redis://$1:6379/0"}, "workers": 2, "concurrency": 8,
 "lease_ms": $LEASE_MS, "drain_timeout_ms": 2000,
 "providers": {"mock": {"type": "openai", "base_url": "http://$1:8000/v1", "api_key_env": "PB_TEST_KEY"}},
 "models": {"m": {"provider": "mock", "timeout_ms": 5000}},
 "routes": {"default": {"chain": ["m"], "retries": 1, "deadline_ms": 20000}}}
JSON
}
export PB_TEST_KEY=sk-test-not-a-real-key
start_host() { # ns hostname hub
  host_config "$3" >"$WORK/$2.json"
  ip netns exec "$1" unshare --uts sh -c "hostname $2 && exec \"\$0\" serve -c \"\$1\"" \
    "$PLANB" "$WORK/$2.json" >"$WORK/planb-$2.log" 2>&1 &
  WORLD_PIDS+=($!)
}
start_host "$B" hostb 10.77.1.1
start_host "$C" hostc 10.77.2.1
both_up() { [ "$(R ZCOUNT planb:workers -inf +inf)" -ge 4 ]; }
wait_for 100 0.1 both_up || fail "the 4 workers of hostb and hostc did not register"

# watch every published result from A (one line per result)
ip netns exec "$A" redis-cli -p 6379 --raw SUBSCRIBE planb:results >"$WORK/published" &
WORLD_PIDS+=($!)
wait_for 50 0.1 grep -q '^subscribe$' "$WORK/published" || fail "subscriber did not start"

ids=$(seq -f 'so-%g' 1 "$JOBS")
for id in $ids; do
  echo "LPUSH planb:q:default '{\"id\":\"$id\",\"messages\":[{\"role\":\"user\",\"content\":\"$id\"}]}'"
done | R >/dev/null
results() { grep -c '^{' "$WORK/published"; }
some_done() { [ "$(results)" -ge $((JOBS / 4)) ]; }
wait_for 150 0.2 some_done || fail "no progress: $(results) results"

by_host() { # counts of published results per host so far
  grep '^{' "$WORK/published" | grep -o '"worker":"[a-z]*' | cut -d'"' -f4 | sort | uniq -c |
    paste -sd' '
}
stranded_b() { # jobs sitting in the in-flight lists of host B's workers
  R --scan --pattern 'planb:inflight:hostb:*' | while read -r k; do R LLEN "$k"; done |
    awk '{s += $1} END {print s + 0}'
}
shared=$(by_host)
echo "before the kill: $shared"
grep -q hostb <<<"$shared" && grep -q hostc <<<"$shared" || fail "both hosts must take work: $shared"

# host B loses power: every one of its processes, at once
pids_b=$(ip netns pids "$B")
[ -n "$pids_b" ] || fail "no processes in $B"
kill -KILL $pids_b
inflight_b=$(stranded_b)
echo "killed host B (pids $(echo $pids_b)): $inflight_b jobs stranded in flight, $(results) results so far"
[ "$inflight_b" -gt 0 ] || fail "host B had no job in flight when killed: the hand-back was not exercised"

all_done() { [ "$(results)" -ge "$JOBS" ]; }
if ! wait_for 250 0.1 all_done; then
  stuck=$(stranded_b)
  fail "host C finished only $(results)/$JOBS jobs; $stuck are still in planb:inflight:hostb:* \
(the lease reaper of issue 5 must hand a dead host's jobs back within lease_ms=$LEASE_MS)"
fi
# exactly one result per id: every id has its key, each was published once, counted once
for id in $ids; do echo "EXISTS planb:result:$id"; done | R | grep -c '^1$' | grep -qx "$JOBS" ||
  fail "some ids have no result"
dups=$(grep '^{' "$WORK/published" | grep -o '"id":"[^"]*"' | sort | uniq -d | head -5)
[ -z "$dups" ] || fail "ids published more than once: $dups"
n_pub=$(grep '^{' "$WORK/published" | grep -o '"id":"[^"]*"' | sort -u | wc -l)
[ "$n_pub" -eq "$JOBS" ] || fail "$n_pub distinct ids published, want $JOBS"
[ "$(R HGET planb:stats jobs)" -eq "$JOBS" ] || fail "stats count $(R HGET planb:stats jobs) jobs, want $JOBS"
echo "after the kill: $(by_host)"
echo "PASS"
