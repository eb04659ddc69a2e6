#!/usr/bin/env bash
# test_admin_api.sh -- the admin API (docs/admin.md) against a real planb, Redis and planb-mock.
#
# curl plays both clients: a script with `Authorization: Bearer` and a browser with the
# session cookie, its CSRF token and an Origin. Each action is checked where it lands (Redis
# keys, planb:alerts, the job's result), not only in the reply.
. "$(dirname "$0")/../support/world.sh"
world_redis
world_mock

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
ADMIN_KEY=adm-$RANDOM$RANDOM
VIEW_KEY=view-$RANDOM$RANDOM
ADMIN_PORT=$(free_port)
A="http://127.0.0.1:$ADMIN_PORT"
world_config 2 | /usr/bin/python3 -c '
import json, sys
c = json.load(sys.stdin)
c["queues"] = ["default", "batch"]
c["admin"] = {"listen": "127.0.0.1:" + sys.argv[1], "refresh_ms": 500,
              "keys": [{"name": "ops", "role": "admin", "sha256": sys.argv[2]},
                       {"name": "watcher", "sha256": sys.argv[3]}]}
json.dump(c, sys.stdout)' "$ADMIN_PORT" "$(sha "$ADMIN_KEY")" "$(sha "$VIEW_KEY")" >"$WORK/planb.json"
world_planb "$WORK/planb.json"
wait_for 100 0.1 curl -sf -o /dev/null -H "Authorization: Bearer $VIEW_KEY" "$A/api/session" ||
  fail "the admin listener did not start"

# code METHOD PATH [curl args...]: the HTTP status only; the body goes to $WORK/body.
code() {
  local m=$1 p=$2
  shift 2
  curl -s -o "$WORK/body" -w '%{http_code}' -X "$m" "$@" "$A$p"
}
body() { cat "$WORK/body"; }
jq_() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$WORK/body" "$1"; }
ADM=(-H "Authorization: Bearer $ADMIN_KEY")
VIEW=(-H "Authorization: Bearer $VIEW_KEY")

# --- who may ask
[ "$(code GET /api/overview)" = 401 ] || fail "no credentials: $(body)"
[ "$(code GET /api/overview -H 'Authorization: Bearer nope')" = 401 ] || fail "a wrong key"
[ "$(code GET /api/overview "${VIEW[@]}")" = 200 ] || fail "viewer overview: $(body)"
[ "$(code POST /api/queues/default/pause "${VIEW[@]}")" = 403 ] || fail "a viewer acted: $(body)"
[ "$(jq_ 'd["error"]["code"]')" = forbidden ] || fail "viewer refusal: $(body)"
[ "$(R HEXISTS planb:paused default)" = 0 ] || fail "the viewer's pause was written"
curl -s -D "$WORK/headers" -o /dev/null "${VIEW[@]}" "$A/api/overview"
grep -qi "^content-security-policy: default-src 'self'; script-src 'self'" "$WORK/headers" ||
  fail "no CSP: $(cat "$WORK/headers")"
grep -qi '^x-frame-options: DENY' "$WORK/headers" || fail "no X-Frame-Options"

# --- a browser's session: login sets an HttpOnly SameSite=Strict cookie; acting needs the token
[ "$(code POST /api/login -d '{"key":"wrong"}')" = 401 ] || fail "a wrong login: $(body)"
[ "$(code POST /api/login -c "$WORK/jar" -D "$WORK/headers" -d "{\"key\":\"$ADMIN_KEY\"}")" = 200 ] ||
  fail "login: $(body)"
grep -i '^set-cookie: planb_session=' "$WORK/headers" | grep -qi 'HttpOnly' || fail "cookie not HttpOnly"
grep -i '^set-cookie: planb_session=' "$WORK/headers" | grep -qi 'SameSite=Strict' || fail "cookie not Strict"
grep -q "$ADMIN_KEY" "$WORK/headers" "$WORK/jar" && fail "the key is in the cookie"
CSRF=$(jq_ 'd["csrf"]')
[ "$(jq_ 'd["role"]')" = admin ] && [ ${#CSRF} -eq 64 ] || fail "login reply: $(body)"
[ "$(code GET /api/session -b "$WORK/jar")" = 200 ] && [ "$(jq_ 'd["csrf"]')" = "$CSRF" ] ||
  fail "session: $(body)"
[ "$(code POST /api/queues/batch/pause -b "$WORK/jar")" = 403 ] || fail "no CSRF token: $(body)"
[ "$(jq_ 'd["error"]["code"]')" = csrf ] || fail "CSRF refusal: $(body)"
# A wrong token: the real one with its last character changed (never equal to it).
case "${CSRF: -1}" in 0) WRONG="${CSRF%?}1" ;; *) WRONG="${CSRF%?}0" ;; esac
[ "$(code POST /api/queues/batch/pause -b "$WORK/jar" -H "X-CSRF-Token: $WRONG")" = 403 ] ||
  fail "a wrong CSRF token"
[ "$(code POST /api/queues/batch/pause -b "$WORK/jar" -H "X-CSRF-Token: $CSRF" \
  -H 'Origin: http://evil.example')" = 403 ] || fail "a foreign Origin"
[ "$(R HEXISTS planb:paused batch)" = 0 ] || fail "a refused pause was written"

# pause through the cookie: the hash, the alert, the overview
R SUBSCRIBE planb:alerts >"$WORK/alerts" 2>/dev/null &
SUB=$!
WORLD_PIDS+=($SUB)
sleep 0.3
[ "$(code POST /api/queues/batch/pause -b "$WORK/jar" -H "X-CSRF-Token: $CSRF" \
  -H "Origin: http://127.0.0.1:$ADMIN_PORT")" = 200 ] || fail "pause: $(body)"
[ "$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["by"])' \
  "$(R HGET planb:paused batch)")" = ops ] || fail "pause hash: $(R HGETALL planb:paused)"
wait_for 30 0.1 grep -q '"type":"queue","queue":"batch","state":"paused"' "$WORK/alerts" ||
  fail "no pause alert: $(cat "$WORK/alerts")"
grep -q 'event=admin_action who=ops action=queue_pause target=batch' "$WORK/planb.log" ||
  fail "the pause is not logged"
[ "$(code GET /api/overview "${VIEW[@]}")" = 200 ] || fail "overview"
[ "$(jq_ '[q["paused_by"] for q in d["queues"] if q["name"]=="batch"][0]')" = ops ] ||
  fail "overview does not show the pause: $(body)"
[ "$(code POST /api/queues/batch/resume "${ADM[@]}")" = 200 ] || fail "resume: $(body)"
[ "$(R HEXISTS planb:paused batch)" = 0 ] || fail "resume left the hash"
[ "$(code POST /api/queues/nope/pause "${ADM[@]}")" = 404 ] || fail "an unknown queue"
[ "$(code POST /api/logout -b "$WORK/jar" -c "$WORK/jar")" = 204 ] || fail "logout: $(body)"

# --- forced breakers
[ "$(code POST /api/models/backup/breaker "${ADM[@]}" -d '{"state":"sideways"}')" = 400 ] ||
  fail "a bad state"
[ "$(code POST /api/models/backup/breaker "${ADM[@]}" -d '{"state":"open"}')" = 200 ] ||
  fail "force open: $(body)"
[ "$(R HGET planb:breaker:backup forced)" = open ] && [ "$(R HGET planb:breaker:backup forced_by)" = ops ] ||
  fail "forced fields: $(R HGETALL planb:breaker:backup)"
wait_for 30 0.1 grep -q '"type":"breaker_forced","model":"backup","forced":"open"' "$WORK/alerts" ||
  fail "no breaker_forced alert: $(cat "$WORK/alerts")"
sleep 0.7 # the next refresh
code GET /api/overview "${VIEW[@]}" >/dev/null
[ "$(jq_ '[m["forced"] for m in d["models"] if m["name"]=="backup"][0]')" = open ] ||
  fail "overview does not show the forced breaker: $(body)"
[ "$(code POST /api/models/backup/breaker "${ADM[@]}" -d '{"state":"auto"}')" = 200 ] || fail "auto"
[ "$(R HEXISTS planb:breaker:backup forced)" = 0 ] || fail "auto left the forced field"

# --- the overview counts real jobs; a job is found by id wherever it is
job() { echo "{\"id\":\"$1\",\"reply\":true,\"submitted_at_ms\":$(date +%s%3N),\"messages\":[{\"role\":\"user\",\"content\":\"q $1\"}]${2:-}}"; }
for i in 1 2 3 4 5; do R LPUSH planb:q:default "$(job ok-$i)" >/dev/null; done
for i in 1 2 3 4 5; do R BLPOP planb:reply:ok-$i 10 >/dev/null || fail "ok-$i unanswered"; done
R LPUSH planb:q:default "$(job bad-1 ',"route":"nope"')" >/dev/null
R BLPOP planb:reply:bad-1 10 >/dev/null || fail "bad-1 unanswered"
ok_overview() {
  code GET /api/overview "${VIEW[@]}" >/dev/null
  [ "$(jq_ 'd["totals"]["jobs"] >= 6 and d["dead"]["count"] >= 1 and d["redis"] == "up"')" = True ]
}
wait_for 30 0.2 ok_overview || fail "overview totals: $(body)"
[ "$(jq_ 'len(d["workers"]) == 2 and d["hosts"][0]["workers"] == 2')" = True ] || fail "workers: $(body)"
[ "$(jq_ 'sorted(q["name"] for q in d["queues"])')" = "['batch', 'default']" ] || fail "queues: $(body)"
[ "$(jq_ 'len(d["history"]["minute"]) == 60 and len(d["history"]["five_min"]) == 288')" = True ] ||
  fail "history: $(body)"
[ "$(jq_ 'd["history"]["minute"][-1]["jobs"] + d["history"]["minute"][-2]["jobs"] >= 6')" = True ] ||
  fail "the current minute has no jobs: $(jq_ 'd["history"]["minute"][-2:]')"
[ "$(jq_ 'd["latency_ms"]["p50"] is not None and d["wait_ms"]["p99"] is not None')" = True ] ||
  fail "latency/wait: $(body)"

[ "$(code GET /api/jobs/ok-3 "${VIEW[@]}")" = 200 ] || fail "job ok-3: $(body)"
[ "$(jq_ 'd["state"]')" = finished ] && [ "$(jq_ 'd["result"]["status"]')" = ok ] ||
  fail "ok-3: $(body)"
[ "$(jq_ 'len(d["result"]["attempts"]) >= 1')" = True ] || fail "ok-3 attempts: $(body)"
[ "$(code GET /api/jobs/bad-1 "${VIEW[@]}")" = 200 ] && [ "$(jq_ 'd["dead"]["id"]')" = bad-1 ] ||
  fail "bad-1: $(body)"
[ "$(code GET /api/jobs/no-such-job "${VIEW[@]}")" = 404 ] || fail "an unknown job: $(body)"
# a paused queue keeps its job, which the lookup finds there; resumed, it runs
[ "$(code POST /api/queues/batch/pause "${ADM[@]}")" = 200 ] || fail "pause batch: $(body)"
R LPUSH planb:q:batch "$(job waiting-1)" >/dev/null
sleep 1.5
[ "$(code GET /api/jobs/waiting-1 "${VIEW[@]}")" = 200 ] || fail "waiting-1: $(body)"
[ "$(jq_ 'd["state"], d["queue"]')" = "('queued', 'batch')" ] || fail "waiting-1 not queued: $(body)"
[ "$(code POST /api/queues/batch/resume "${ADM[@]}")" = 200 ] || fail "resume batch: $(body)"
R BLPOP planb:reply:waiting-1 10 >/dev/null || fail "waiting-1 did not run after the resume"

# --- dead letters: list, one entry, retry through the API with the result appearing, purge
[ "$(code GET '/api/dead?limit=10' "${VIEW[@]}")" = 200 ] || fail "dead list"
[ "$(jq_ 'd["total"] >= 1 and d["entries"][0]["id"] == "bad-1"')" = True ] || fail "dead: $(body)"
[ "$(code GET '/api/dead?limit=0' "${VIEW[@]}")" = 400 ] || fail "limit 0"
R SET planb:result:re-1 '{"id":"re-1","status":"invalid"}' >/dev/null
R LPUSH planb:dead "{\"id\":\"re-1\",\"error\":\"TOO_MANY_DELIVERIES handed back 5 times\",\"worker\":\"h:1\",\"at_ms\":1,\"job\":$(job re-1 | /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')}" >/dev/null
[ "$(code GET /api/dead/re-1 "${VIEW[@]}")" = 200 ] && [ "$(jq_ 'd["worker"]')" = h:1 ] || fail "dead re-1: $(body)"
[ "$(code POST /api/dead/re-1/retry "${VIEW[@]}")" = 403 ] || fail "a viewer retried"
[ "$(code POST /api/dead/re-1/retry "${ADM[@]}")" = 200 ] || fail "retry re-1: $(body)"
[ "$(jq_ 'd["retried"], d["queue"]')" = "(1, 'default')" ] || fail "retry reply: $(body)"
res=$(R --raw BLPOP planb:reply:re-1 10 | tail -n 1)
[ "$(json_get "$res" status)" = ok ] || fail "re-1 after the retry: $res"
[ "$(code POST /api/dead/re-1/retry "${ADM[@]}")" = 404 ] || fail "a second retry: $(body)"
[ "$(code POST /api/dead/purge "${ADM[@]}")" = 200 ] || fail "purge: $(body)"
[ "$(R LLEN planb:dead)" = 0 ] || fail "purge left entries"

# --- Redis away: the overview keeps its figures and says so; the rest is 503
R SHUTDOWN NOSAVE >/dev/null 2>&1 || true
down() { code GET /api/overview "${VIEW[@]}" >/dev/null; [ "$(jq_ 'd["redis"]')" = down ]; }
wait_for 50 0.2 down || fail "overview with Redis down: $(body)"
[ "$(jq_ 'd["totals"]["jobs"] >= 6')" = True ] || fail "the last figures are gone: $(body)"
[ "$(code GET /api/dead "${VIEW[@]}")" = 503 ] || fail "dead with Redis down: $(body)"

# --- a listener without keys must be on loopback
/usr/bin/python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
c["admin"] = {"listen": "0.0.0.0:9470"}
json.dump(c, open(sys.argv[2], "w"))' "$WORK/planb.json" "$WORK/open.json"
set +e
out=$("$PLANB" check -c "$WORK/open.json" 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] && echo "$out" | grep -q 'admin' || fail "a keyless non-loopback admin was accepted: $out"
grep -q "$ADMIN_KEY\|$VIEW_KEY" "$WORK/planb.log" && fail "a key is in the log"
echo "ok"
