#!/usr/bin/env bash
# test_blackhole.sh -- a black-holed cache Redis: jobs are still answered from upstream in time.
#
# Label "slow". Two network namespaces joined by a veth pair: A runs the queue
# Redis, planb-mock and `planb serve`; C runs the cache Redis (cache.redis.url).
# After a warm-up (answers cached, then served from the cache), C's route back
# to A becomes a blackhole: every packet from A reaches C and nothing comes
# back, so open connections stall and new ones hang in SYN-SENT, nothing is
# refused. Each job must still be answered from upstream within its deadline
# (the cache lookup is bounded by redis.timeout_ms); once the route is back the
# stalled connection is replaced (ping) and the cache answers again. Skips,
# saying why, where namespaces are refused. Prints one "figures:" line.
. "$(dirname "$0")/../support/world.sh"
NS=pbbh$$
A=${NS}a C=${NS}c
NET=10.79.$((RANDOM % 200 + 20))
DEADLINE_MS=3000

netns_cleanup() {
  for ns in $A $C; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  for ns in $A $C; do ip netns del "$ns" 2>/dev/null; done
}
WORLD_CLEANUPS+=(netns_cleanup)
[ "$(id -u)" = 0 ] || skip "network namespaces need root (ip netns); running as uid $(id -u)"
if ! err=$(ip netns add "$A" 2>&1); then
  skip "network namespaces are not permitted here: ip netns add: $err"
fi
ip netns add "$C" || fail "ip netns add $C"
for ns in $A $C; do ip -n "$ns" link set lo up; done
ip link add "${NS}x" netns "$A" type veth peer name "${NS}y" netns "$C" || fail "veth A-C"
ip -n "$A" addr add "$NET.1/24" dev "${NS}x" && ip -n "$A" link set "${NS}x" up
ip -n "$C" addr add "$NET.2/24" dev "${NS}y" && ip -n "$C" link set "${NS}y" up

ip netns exec "$A" redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" --dbfilename q.rdb --logfile "$WORK/redis.log" &
WORLD_PIDS+=($!)
ip netns exec "$C" redis-server --port 6379 --bind "$NET.2" --protected-mode no --save '' \
  --appendonly no --dir "$WORK" --dbfilename c.rdb --logfile "$WORK/cache.log" &
WORLD_PIDS+=($!)
R() { ip netns exec "$A" redis-cli -p 6379 "$@"; }
RC() { ip netns exec "$A" redis-cli -h "$NET.2" -p 6379 "$@"; }
wait_for 50 0.1 R ping || fail "queue Redis did not start"
wait_for 50 0.1 RC ping || fail "cache Redis did not start (or A cannot reach C)"
ip netns exec "$A" "$PB_BIN_DIR/planb-mock" --quiet --listen 127.0.0.1:8000 >"$WORK/mock.port" \
  2>"$WORK/mock.log" &
WORLD_PIDS+=($!)
wait_for 50 0.1 grep -q port= "$WORK/mock.port" || fail "planb-mock did not start"
ip netns exec "$A" curl -sf -X POST http://127.0.0.1:8000/_mock/models/primary \
  -d '{"mode":"ok","latency_ms":100}' >/dev/null || fail "mock control"

cat >"$WORK/planb.json" <<JSON
{"redis": {"url": "redis://127.0.0.1:6379/0"}, "workers": 2, "concurrency": 64,
 "cache": {"redis": {"url": "redis://$NET.2:6379/0", "timeout_ms": 200}},
 "providers": {"mock": {"type": "openai", "base_url": "http://127.0.0.1:8000/v1", "api_key_env": "PB_TEST_KEY"}},
 "models": {"primary": {"provider": "mock", "timeout_ms": 2000}},
 "routes": {"default": {"chain": ["primary"], "retries": 0, "deadline_ms": $DEADLINE_MS}}}
JSON
export PB_TEST_KEY=sk-test-not-a-real-key
ip netns exec "$A" "$PLANB" serve -c "$WORK/planb.json" >"$WORK/planb.log" 2>&1 &
WORLD_PIDS+=($!)
wait_for 100 0.1 sh -c "[ \$(ip netns exec $A redis-cli -p 6379 ZCARD planb:workers) -gt 0 ]" ||
  fail "planb serve did not start"

push() { # TAG FIRST LAST QUESTION-PREFIX: jobs TAG-i asking "QUESTION-PREFIX i"
  seq "$2" "$3" | while read -r i; do
    echo "LPUSH planb:q:default '{\"id\":\"$1-$i\",\"reply\":true,\"messages\":[{\"role\":\"user\",\"content\":\"$4 $i\"}]}'"
  done | R >/dev/null
}
# summary TAG FIRST LAST: "answered sources max_latency_ms" of those jobs' results
summary() {
  seq -f "GET planb:result:$1-%g" "$2" "$3" | R | /usr/bin/python3 -c '
import json, sys, collections
rs = [json.loads(l) for l in sys.stdin if l.startswith("{")]
src = collections.Counter(r.get("source") for r in rs)
print(len(rs), ",".join("%s:%d" % kv for kv in sorted(src.items())), max([r["latency_ms"] for r in rs] or [0]))'
}
secs() { /usr/bin/python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
answered() { [ "$(summary "$1" "$2" "$3" | cut -d' ' -f1)" -eq $(($3 - $2 + 1)) ]; }

push w 1 50 "question"
wait_for 100 0.1 answered w 1 50 || fail "warm-up: $(summary w 1 50)"
push r 1 50 "question" # the same questions: from the cache
wait_for 100 0.1 answered r 1 50 || fail "cache round: $(summary r 1 50)"
warm=$(summary r 1 50)
grep -q "cache:50" <<<"$warm" || fail "the cache did not answer the repeats: $warm"

ip -n "$C" route add blackhole "$NET.1/32" || fail "blackhole route"
t0=$(date +%s.%N)
push b 1 200 "other question" # new questions: the lookup stalls, upstream answers
push c 1 50 "question"        # cached questions: the cache is unreachable, upstream answers
answered_all() { answered b 1 200 && answered c 1 50; }
wait_for 200 0.1 answered_all || fail "black hole: $(summary b 1 200) / $(summary c 1 50)"
t1=$(date +%s.%N)
hole_new=$(summary b 1 200)
hole_cached=$(summary c 1 50)
max_new=$(cut -d' ' -f3 <<<"$hole_new")
max_cached=$(cut -d' ' -f3 <<<"$hole_cached")
# Held until the ping gives up on the stalled connection (6 s); jobs meanwhile meet a cache
# connection that is down or hanging in its connect: a miss at once.
stalled_seen() { grep -q "event=redis_down conn=cache" "$WORK/planb.log"; }
wait_for 150 0.1 stalled_seen || fail "the stalled cache connection was not detected"
t_seen=$(date +%s.%N)
push d 1 100 "third question"
wait_for 200 0.1 answered d 1 100 || fail "while reconnecting: $(summary d 1 100)"
hole_down=$(summary d 1 100)
max_down=$(cut -d' ' -f3 <<<"$hole_down")

ip -n "$C" route del blackhole "$NET.1/32"
t2=$(date +%s.%N)
back=0
for round in $(seq 1 40); do # the stalled connection is replaced, then the cache answers again
  push "a$round" 1 5 "question"
  wait_for 50 0.1 answered "a$round" 1 5 || fail "after the black hole: $(summary "a$round" 1 5)"
  if grep -q "cache:5" <<<"$(summary "a$round" 1 5)"; then back=1; break; fi
  sleep 0.5
done
t3=$(date +%s.%N)
echo "figures: blackhole warm=[$warm] new=[$hole_new] cached_questions=[$hole_cached]" \
  "while_reconnecting=[$hole_down] stall_detected_after_s=$(secs "$t0" "$t_seen")" \
  "deadline_ms=$DEADLINE_MS answered_in_s=$(secs "$t0" "$t1") cache_back=$back cache_back_after_s=$(secs "$t2" "$t3")" \
  "upstream_calls=$(ip netns exec "$A" curl -sf http://127.0.0.1:8000/_mock/stats | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"]["primary"]["requests"])')"
grep -h "conn=cache" "$WORK/planb.log" | head -n 4 | sed 's/^/  log: /' || true
[ "$max_new" -lt "$DEADLINE_MS" ] || fail "a job took $max_new ms, deadline $DEADLINE_MS"
[ "$max_cached" -lt "$DEADLINE_MS" ] || fail "a job took $max_cached ms, deadline $DEADLINE_MS"
[ "$max_down" -lt "$DEADLINE_MS" ] || fail "a job took $max_down ms, deadline $DEADLINE_MS"
grep -q "primary:200" <<<"$hole_new" || fail "new questions not answered by the primary: $hole_new"
[ "$back" = 1 ] || fail "the cache did not answer again after the black hole was lifted"
echo "PASS"
