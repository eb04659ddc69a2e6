#!/usr/bin/env bash
# test_sentinel.sh -- planb behind Redis Sentinel: failover mid-run, both ways of forcing it.
#
# Label "slow". Debian's redis-sentinel with a master, a replica and three
# sentinels on loopback; `planb serve` knows only redis.sentinels and
# redis.master_name. Two runs of 2000 jobs (0.3-s upstream, reply: true): the
# first forces a failover with SENTINEL FAILOVER, the second SIGKILLs the
# master. Each run subscribes to planb:results on the replica about to be
# promoted (PUBLISH is replicated, so it hears what the new master keeps;
# Sentinel kills pub/sub clients on promotion, so it resubscribes, and
# messages in that gap are what planb:events is for) and checks that every job
# has exactly one result, one reply-list entry, one planb:events entry and is
# never published twice; the upstream calls beyond 2000 are the duplicate runs
# (docs/redis.md "When Redis misbehaves": writes the old master took after the replica
# was promoted, until +switch-master). A third run repeats the SIGKILL with
# redis.wait_replicas: 1. Prints one "figures:" line per run.
# PB_TEST_TLS=1 (ctest's slow.test_sentinel_tls): everything over TLS only (plaintext ports
# off, tls-replication yes, sentinels on TLS), planb with rediss:// and redis.sentinel_tls.
. "$(dirname "$0")/../support/world.sh"
JOBS=${PB_SENTINEL_JOBS:-2000}
command -v redis-sentinel >/dev/null || skip "redis-sentinel is not installed (Debian package redis-sentinel)"
SERVER_TLS=() CLI_TLS=()
if [ -n "${PB_TEST_TLS:-}" ]; then
  C=$WORK/certs
  bash "$PB_SRC_DIR/tests/support/make_certs.sh" "$C"
  SERVER_TLS=(--tls-cert-file "$C/server.crt" --tls-key-file "$C/server.key"
    --tls-ca-cert-file "$C/ca.crt" --tls-auth-clients no --tls-replication yes)
  CLI_TLS=(--tls --cacert "$C/ca.crt")
fi
rcli() { redis-cli "${CLI_TLS[@]}" "$@"; }
R() { rcli -p "$REDIS_PORT" "$@"; } # world.sh's, over TLS in TLS mode

free_port() { echo $((20000 + RANDOM % 30000)); }
start_redis() { # name port [args...]
  local name=$1 port=$2
  shift 2
  local ports=(--port "$port")
  [ -z "${PB_TEST_TLS:-}" ] || ports=(--port 0 --tls-port "$port" "${SERVER_TLS[@]}")
  redis-server "${ports[@]}" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    --dbfilename "$name.rdb" --logfile "$WORK/$name.log" "$@" &
  WORLD_PIDS+=($!)
  eval "PID_$name=$!"
  wait_for 50 0.1 rcli -p "$port" ping || fail "redis $name did not start on $port"
}
M_PORT=$(free_port)
S_PORT=$(free_port)
start_redis m "$M_PORT"
start_redis s "$S_PORT" --replicaof 127.0.0.1 "$M_PORT"
synced() { rcli -p "$S_PORT" INFO replication | grep -q 'master_link_status:up'; }
wait_for 100 0.1 synced || fail "replica did not sync"

SENTINELS=()
for i in 1 2 3; do
  p=$(free_port)
  if [ -n "${PB_TEST_TLS:-}" ]; then
    printf 'port 0\ntls-port %s\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\ntls-replication yes\n' \
      "$p" "$C/server.crt" "$C/server.key" "$C/ca.crt" >"$WORK/sentinel$i.conf"
  else
    echo "port $p" >"$WORK/sentinel$i.conf"
  fi
  cat >>"$WORK/sentinel$i.conf" <<CONF
bind 127.0.0.1
daemonize no
dir $WORK
logfile $WORK/sentinel$i.log
sentinel monitor mymaster 127.0.0.1 $M_PORT 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 10000
sentinel parallel-syncs mymaster 1
CONF
  redis-sentinel "$WORK/sentinel$i.conf" &
  WORLD_PIDS+=($!)
  SENTINELS+=("$p")
done
for p in "${SENTINELS[@]}"; do
  wait_for 50 0.1 rcli -p "$p" ping || fail "sentinel on $p did not start"
done
sees_all() { [ "$(rcli -p "${SENTINELS[0]}" SENTINEL master mymaster | grep -A1 '^num-other-sentinels$' | tail -1)" = 2 ]; }
wait_for 100 0.2 sees_all || fail "the sentinels did not find each other"
master_port() { rcli -p "${SENTINELS[0]}" SENTINEL get-master-addr-by-name mymaster | tail -1; }

world_mock
mock_set primary '{"mode":"ok","latency_ms":300}'
SCHEME=redis TLS_JSON=""
[ -z "${PB_TEST_TLS:-}" ] || { SCHEME=rediss; TLS_JSON="\"tls\": {\"ca_file\": \"$C/ca.crt\"}, \"sentinel_tls\": true,"; }
cat >"$WORK/planb.json" <<JSON
{"redis": {"url": "$SCHEME://127.0.0.1/0", "master_name": "mymaster", $TLS_JSON
           "sentinels": ["127.0.0.1:${SENTINELS[0]}", "127.0.0.1:${SENTINELS[1]}", "127.0.0.1:${SENTINELS[2]}"]},
 "workers": 2, "concurrency": 50, "lease_ms": 10000,
 "providers": {"mock": {"type": "openai", "base_url": "$MOCK_URL/v1", "api_key_env": "PB_TEST_KEY"}},
 "models": {"primary": {"provider": "mock", "timeout_ms": 5000}},
 "routes": {"default": {"chain": ["primary"], "retries": 0, "deadline_ms": 30000}}}
JSON
REDIS_PORT=$M_PORT
world_planb "$WORK/planb.json"
PLANB_PID=${WORLD_PIDS[-1]}
calls() { curl -sf "$MOCK_URL/_mock/stats" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"].get("primary", {}).get("requests", 0))'; }

secs() { /usr/bin/python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }

# run NAME TAG TRIGGER [AFTER]: one run of $JOBS jobs with a failover forced by TRIGGER mid-run;
# AFTER (optional) runs once the sentinels have switched
run() {
  local name=$1 tag=$2 trigger=$3 after=${4:-true}
  local old new replica calls0 t0
  old=$(master_port)
  replica=$([ "$old" = "$M_PORT" ] && echo "$S_PORT" || echo "$M_PORT")
  wait_for 100 0.1 rcli -p "$replica" ping || fail "replica $replica is not up"
  (while rcli -p "$replica" ping >/dev/null 2>&1; do
    rcli -p "$replica" --raw SUBSCRIBE planb:results
  done) >"$WORK/pub-$tag" 2>/dev/null &
  WORLD_PIDS+=($!)
  wait_for 50 0.1 grep -q '^subscribe$' "$WORK/pub-$tag" || fail "subscriber did not start"
  calls0=$(calls)
  local ev0
  ev0=$(rcli -p "$old" XLEN planb:events)
  seq -f "$tag-%g" 1 "$JOBS" | while read -r id; do
    echo "LPUSH planb:q:default '{\"id\":\"$id\",\"reply\":true,\"messages\":[{\"role\":\"user\",\"content\":\"$id\"}]}'"
  done | rcli -p "$old" >/dev/null
  some() { [ "$(grep -c '^{' "$WORK/pub-$tag")" -ge $((JOBS / 5)) ]; }
  wait_for 300 0.1 some || fail "$name: no progress before the failover"
  local before
  before=$(grep -c '^{' "$WORK/pub-$tag")
  t0=$(date +%s.%N)
  $trigger "$old"
  moved() { [ "$(master_port)" != "$old" ]; }
  wait_for 300 0.1 moved || fail "$name: the sentinels did not fail over"
  new=$(master_port)
  $after "$old"
  local t_moved
  t_moved=$(date +%s.%N)
  done_all() {
    [ "$(seq -f "EXISTS planb:result:$tag-%g" 1 "$JOBS" | rcli -p "$new" | grep -c '^1$')" -eq "$JOBS" ]
  }
  wait_for 600 0.1 done_all || true
  local t_done results replies pub distinct dupids events extra
  t_done=$(date +%s.%N)
  results=$(seq -f "EXISTS planb:result:$tag-%g" 1 "$JOBS" | rcli -p "$new" | grep -c '^1$')
  replies=$(seq -f "LLEN planb:reply:$tag-%g" 1 "$JOBS" | rcli -p "$new" | grep -c '^1$')
  pub=$(grep -c "^{\"id\":\"$tag-" "$WORK/pub-$tag")
  distinct=$(grep -o "^{\"id\":\"$tag-[0-9]*\"" "$WORK/pub-$tag" | sort -u | wc -l)
  dupids=$(grep -o "^{\"id\":\"$tag-[0-9]*\"" "$WORK/pub-$tag" | sort | uniq -d | wc -l)
  events=$(($(rcli -p "$new" XLEN planb:events) - ev0))
  local ev_distinct
  ev_distinct=$(rcli -p "$new" --raw XRANGE planb:events - + | grep -o "^{\"id\":\"$tag-[0-9]*\"" | sort -u | wc -l)
  extra=$(($(calls) - calls0 - JOBS))
  echo "figures: sentinel_$name pushed=$JOBS results=$results replies_once=$replies published=$pub" \
    "published_distinct=$distinct published_twice=$dupids events=$events events_distinct=$ev_distinct duplicate_runs=$extra" \
    "before_failover=$before failover_s=$(secs "$t0" "$t_moved") all_done_after_switch_s=$(secs "$t_moved" "$t_done")" \
    "orphans=$(rcli -p "$new" HGET planb:stats orphans) handbacks=$(rcli -p "$new" HGET planb:stats handbacks)" \
    "acked_duplicates=$(rcli -p "$new" HGET planb:stats duplicates)"
  grep -h "event=switch_master\|event=reconciled\|READONLY\|not a writable master" "$WORK/planb.log" | tail -n 4 | sed 's/^/  log: /' || true
  echo "  jobs done per second: $(grep "event=job_done job=$tag-" "$WORK/planb.log" | cut -c12-19 | uniq -c | awk '{printf "%s:%s ", $2, $1}')"
  [ -z "${PB_SENTINEL_KEEP:-}" ] || cp "$WORK"/*.log "$PB_SENTINEL_KEEP"/
  echo "  subscriber: $(grep -c '^subscribe$' "$WORK/pub-$tag") subscriptions, last: $(tail -n 1 "$WORK/pub-$tag" | cut -c1-60)"
  [ "$results" -eq "$JOBS" ] || fail "$name: $results of $JOBS results on the new master"
  [ "$replies" -eq "$JOBS" ] || fail "$name: $replies of $JOBS reply lists hold exactly one result"
  [ "$ev_distinct" -eq "$JOBS" ] || fail "$name: $ev_distinct of $JOBS ids in planb:events"
  [ "$dupids" -eq 0 ] || fail "$name: $dupids ids published twice"
  [ "$events" -eq "$JOBS" ] || fail "$name: $events planb:events entries for $JOBS jobs"
}

sentinel_failover() { rcli -p "${SENTINELS[0]}" SENTINEL FAILOVER mymaster >/dev/null; }
kill_master() {
  local pid
  if [ "$1" = "$M_PORT" ]; then pid=$PID_m; else pid=$PID_s; fi
  kill -KILL "$pid"
}
RUNS=" ${PB_SENTINEL_RUNS:-failover kill9 wait} " # a subset while debugging
wants() { [[ $RUNS == *" $1 "* ]]; }
if wants failover; then run failover sf sentinel_failover; fi
demoted_synced() { rcli -p "$(master_port)" INFO replication | grep -q 'connected_slaves:1'; }
wait_for 300 0.1 demoted_synced || fail "the old master did not rejoin as a replica"
if wants kill9; then run kill9 sk kill_master; fi
wants wait || { echo "PASS"; exit 0; }

# The killed node comes back as a replica; planb restarts with redis.wait_replicas: 1.
if [ "$(master_port)" = "$M_PORT" ]; then start_redis s "$S_PORT" --replicaof 127.0.0.1 "$M_PORT"; else start_redis m "$M_PORT" --replicaof 127.0.0.1 "$S_PORT"; fi
wait_for 300 0.1 demoted_synced || fail "the restarted node did not sync"
/usr/bin/python3 - "$WORK/planb.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["redis"]["wait_replicas"] = 1
json.dump(c, open(sys.argv[1], "w"))
PY
kill -TERM "$PLANB_PID"
wait_for 150 0.1 sh -c "! kill -0 $PLANB_PID 2>/dev/null" || fail "planb did not drain"
REDIS_PORT=$(master_port)
world_planb "$WORK/planb.json"
PLANB_PID=${WORLD_PIDS[-1]}
rejoin() { # the killed node comes back as a replica of the new master, so WAIT 1 can be met
  if [ "$1" = "$M_PORT" ]; then start_redis m "$M_PORT" --replicaof 127.0.0.1 "$S_PORT"; else start_redis s "$S_PORT" --replicaof 127.0.0.1 "$M_PORT"; fi
}
run kill9_wait_replicas sw kill_master rejoin
echo "PASS"
