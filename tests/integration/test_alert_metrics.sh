#!/usr/bin/env bash
# test_alert_metrics.sh -- the metrics deploy/prometheus/alerts.yml and deploy/grafana/planb.json
# read exist on a real planb's /metrics, and move the way the alerts expect on real events.
#
# A real planb (lease_ms 1000, an rpm/tpm limit and prices on the primary) with redis-server
# and planb-mock: every planb_* name of the rules' expressions has a sample, every family the
# dashboard queries is there; then, in order: an answer from upstream (jobs, cost, rpm/tpm), a failing primary
# (fallback ratio), both models failing (degraded ratio), an invalid job (dead letters), the
# workers stopped (planb_workers 0, the queue's oldest job ageing) and let go again, a busy
# Redis while jobs finish (held results counted when they land), and Redis stopped
# (/metrics still 200, planb_redis_up 0).
. "$(dirname "$0")/../support/world.sh"
world_redis
world_mock
METRICS_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
world_config 2 | /usr/bin/python3 -c '
import json, sys
c = json.load(sys.stdin)
c["lease_ms"] = 1000
c["monitor"] = {"metrics_listen": "127.0.0.1:" + sys.argv[1]}
c["models"]["primary"].update(rpm=1000, tpm=1000000, price_in_per_mtok=2, price_out_per_mtok=8)
c["routes"]["default"]["retries"] = 0
print(json.dumps(c))' "$METRICS_PORT" >"$WORK/planb.json"
world_planb "$WORK/planb.json"
URL="http://127.0.0.1:$METRICS_PORT/metrics"

scrape() { curl -sf --max-time 5 "$URL"; }
# value NAME_AND_LABELS: the sample's value in a fresh scrape ("" when absent).
value() { scrape | awk -v k="$1" '$1 == k { print $2 }'; }
# ge NAME MIN: the sample is at least MIN.
ge() { /usr/bin/python3 -c 'import sys; sys.exit(0 if sys.argv[1] and float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$(value "$1")" "$2"; }
eq() { [ "$(value "$1")" = "$2" ]; }
n=0
job() { n=$((n + 1)); R LPUSH planb:q:default "{\"id\":\"$1\",\"reply\":true,\"submitted_at_ms\":$(date +%s%3N),\"messages\":[{\"role\":\"user\",\"content\":\"q $n\"}]${2:-}}" >/dev/null; }
answer() { R --raw BLPOP "planb:reply:$1" 15 | tail -n 1; }

wait_for 100 0.1 scrape || fail "no /metrics on $URL"
out=$(scrape)

# Every metric the rules and the dashboard name has a sample in the real output.
# Every metric the rules name has a sample in the real output; every family the dashboard
# queries has its TYPE line (counters by label, like planb_hedges_total, have samples only once
# something happened).
names=$(/usr/bin/python3 - "$PB_SRC_DIR" <<'PY'
import json, re, sys
root = sys.argv[1]
rules, dash = set(), set()
for line in open(root + "/deploy/prometheus/alerts.yml"):
    m = re.match(r"\s*expr: (.*)", line)
    if m:
        rules |= set(re.findall(r"\bplanb_\w+", m.group(1)))
for p in json.load(open(root + "/deploy/grafana/planb.json"))["panels"]:
    for t in p.get("targets", []):
        dash |= {re.sub(r"_bucket$", "", n) for n in re.findall(r"\bplanb_\w+", t["expr"])}
print("\n".join(["rule " + n for n in sorted(rules)] + ["dash " + n for n in sorted(dash)]))
PY
)
[ "$(grep -c '^rule ' <<<"$names")" -ge 8 ] || fail "too few metric names in the rules: $names"
[ "$(grep -c '^dash ' <<<"$names")" -ge 20 ] || fail "too few metric names in the dashboard: $names"
while read -r kind m; do
  if [ "$kind" = rule ]; then
    grep -qE "^$m[{ ]" <<<"$out" || fail "$m is in alerts.yml but has no sample on /metrics"
  else
    grep -qE "^# TYPE $m " <<<"$out" || fail "$m is in planb.json but not on /metrics"
  fi
done <<<"$names"
eq planb_redis_up 1 || fail "planb_redis_up should be 1"
eq planb_workers 2 || fail "planb_workers should be 2: $(value planb_workers)"
eq 'planb_queue_oldest_age_seconds{queue="default"}' 0.000 || fail "an empty queue's age is 0"
eq planb_dead_letters 0 || fail "no dead letters yet"

# An answer from upstream: jobs, its cost, the primary's rpm and tpm windows.
job ok-1
[ "$(json_get "$(answer ok-1)" status)" = ok ] || fail "ok-1 not answered"
wait_for 50 0.1 ge 'planb_jobs_total{route="default",source="primary"}' 1 || fail "jobs_total"
ge 'planb_rpm{model="primary"}' 1 || fail "planb_rpm: $(value 'planb_rpm{model="primary"}')"
ge 'planb_tpm{model="primary"}' 1 || fail "planb_tpm: $(value 'planb_tpm{model="primary"}')"
eq 'planb_rpm_limit{model="primary"}' 1000 || fail "planb_rpm_limit"
ge 'planb_cost_usd_total{model="primary"}' 0.000001 || fail "cost: $(value 'planb_cost_usd_total{model="primary"}')"

# A failing primary: the backup answers, the fallback ratio rises (PlanbFallbackRateHigh).
mock_set primary '{"mode": "status", "status": 500}'
job fb-1
[ "$(json_get "$(answer fb-1)" source)" = fallback ] || fail "fb-1 not answered by the backup"
wait_for 50 0.1 ge 'planb_fallback_ratio{window="5m"}' 0.3 || fail "fallback ratio: $(value 'planb_fallback_ratio{window="5m"}')"
ge 'planb_attempts_total{model="primary",outcome="http_500"}' 1 || fail "attempts by outcome"

# Both failing: the degraded reply (PlanbDegradedReplies).
mock_set backup '{"mode": "status", "status": 500}'
job dg-1
[ "$(json_get "$(answer dg-1)" status)" = degraded ] || fail "dg-1 not degraded"
wait_for 50 0.1 ge 'planb_degraded_ratio{window="5m"}' 0.2 || fail "degraded ratio: $(value 'planb_degraded_ratio{window="5m"}')"
mock_set primary '{"mode": "ok"}'
mock_set backup '{"mode": "ok"}'

# An invalid job is dead-lettered (PlanbDeadLettersGrowing).
job bad-1 ',"route":"nope"'
[ "$(json_get "$(answer bad-1)" status)" = invalid ] || fail "bad-1 not invalid"
wait_for 50 0.1 eq planb_dead_letters 1 || fail "planb_dead_letters: $(value planb_dead_letters)"
eq planb_dead_lettered_total 1 || fail "planb_dead_lettered_total: $(value planb_dead_lettered_total)"

# Workers stopped: none alive after lease_ms (PlanbNoWorkers), and a queued job ages
# (PlanbQueueStale); let go, they claim it and the age is back to 0.
pids=$(R ZRANGE planb:workers 0 -1 | sed 's/.*://')
[ -n "$pids" ] || fail "no worker ids"
for p in $pids; do kill -STOP "$p"; done
WORLD_CLEANUPS+=(world_resume)
world_resume() { for p in $pids; do kill -CONT "$p" 2>/dev/null; done; }
wait_for 50 0.1 eq planb_workers 0 || fail "planb_workers with every worker stopped: $(value planb_workers)"
job aged-1
wait_for 50 0.1 ge 'planb_queue_oldest_age_seconds{queue="default"}' 2 || fail "queue age: $(value 'planb_queue_oldest_age_seconds{queue="default"}')"
a1=$(value 'planb_queue_oldest_age_seconds{queue="default"}')
sleep 1.1
ge 'planb_queue_oldest_age_seconds{queue="default"}' "$(/usr/bin/python3 -c "print($a1 + 1)")" || fail "the age does not grow"
eq 'planb_queue_depth{queue="default"}' 1 || fail "queue depth"
world_resume
[ "$(json_get "$(answer aged-1)" status)" = ok ] || fail "aged-1 not answered after the workers came back"
wait_for 50 0.1 eq planb_workers 2 || fail "planb_workers after resuming: $(value planb_workers)"
eq 'planb_queue_oldest_age_seconds{queue="default"}' 0.000 || fail "the queue's age after it drained"

# Jobs finishing while a script keeps Redis busy: their results are held, re-sent and counted
# when they land (PlanbResultsHeld). A scrape meanwhile says Redis is down.
eq planb_finish_held_total 0 || fail "nothing held yet"
R CONFIG SET busy-reply-threshold 500 >/dev/null
mock_set primary '{"mode": "ok", "latency_ms": 1200}'
for i in 1 2 3 4; do job held-$i; done
wait_for 100 0.05 eq planb_inflight 4 || fail "the held-* jobs were not claimed: $(value planb_inflight)"
# Busy for 2 s to the microsecond (whole seconds of TIME made it anywhere from 1 to 2 s, and
# a 1.1 s one could end before the 1.2 s answers finished: nothing held, a flaky test).
R EVAL "local function us() local t = redis.call('TIME') return tonumber(t[1]) * 1e6 + tonumber(t[2]) end local s = us() while us() - s < 2e6 do end return 1" 0 >/dev/null &
busy=$!
sleep 1
page=$(curl -s --max-time 5 -w '\n%{http_code}' "$URL")
[ "$(tail -n 1 <<<"$page")" = 200 ] || fail "/metrics while Redis is busy: $(tail -n 1 <<<"$page")"
grep -qx 'planb_redis_up 0' <<<"$page" || fail "planb_redis_up while Redis is busy: $page"
wait "$busy"
for i in 1 2 3 4; do [ "$(json_get "$(answer held-$i)" status)" = ok ] || fail "held-$i"; done
wait_for 50 0.1 ge planb_finish_held_total 1 || fail "planb_finish_held_total: $(value planb_finish_held_total) $(grep -c finish_held "$WORK/planb.log")"
ge planb_finish_resends_total 1 || fail "planb_finish_resends_total"
eq planb_redis_up 1 || fail "planb_redis_up after the busy script"

# Redis stopped: /metrics still answers 200, with planb_redis_up 0 (PlanbRedisDown).
R SHUTDOWN NOSAVE >/dev/null 2>&1 || true
wait_for 50 0.1 sh -c "! redis-cli -p $REDIS_PORT ping" || fail "redis-server did not stop"
code=$(curl -s --max-time 5 -o "$WORK/down.txt" -w '%{http_code}' "$URL")
[ "$code" = 200 ] || fail "/metrics with Redis stopped: $code"
grep -qx 'planb_redis_up 0' "$WORK/down.txt" || fail "planb_redis_up with Redis stopped: $(cat "$WORK/down.txt")"
grep -q '^# TYPE planb_redis_up gauge$' "$WORK/down.txt" || fail "no TYPE line"
echo "PASS: $(wc -l <<<"$names") metric names present; every alert's condition moved"
