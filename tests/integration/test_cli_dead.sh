#!/usr/bin/env bash
# test_cli_dead.sh -- `planb dead` (list, show, retry, purge) and `planb result` against a real planb.
#
# A real invalid job produces a real dead letter; entries shaped like the
# lease reaper's (too many deliveries, a valid job inside) prove that retry
# pushes the job back, clears its old result and gets a fresh one.
. "$(dirname "$0")/../support/world.sh"
world_redis
world_mock
world_planb
P() { "$PLANB" "$@" -c "$CONFIG"; }
job() { echo "{\"id\":\"$1\",\"reply\":true,\"messages\":[{\"role\":\"user\",\"content\":\"q $1\"}]${2:-}}"; }
dead_entry() { # id, job JSON -> a dead-letter entry as the reaper writes it
  /usr/bin/python3 -c 'import json,sys; print(json.dumps({"id":sys.argv[1],"error":"TOO_MANY_DELIVERIES handed back 5 times","worker":"h:1","at_ms":1700000000000,"job":sys.argv[2]}))' "$1" "$2"
}

# usage and help
"$PLANB" dead --help | grep -q 'planb dead -c FILE list' || fail "dead --help"
"$PLANB" result --help | grep -q 'planb result -c FILE ID' || fail "result --help"
set +e
"$PLANB" dead -c "$CONFIG" frobnicate 2>/dev/null; [ $? -eq 2 ] || fail "unknown dead subcommand must exit 2"
"$PLANB" result -c "$CONFIG" 2>/dev/null; [ $? -eq 2 ] || fail "result without an id must exit 2"
P result no-such-id 2>/dev/null; [ $? -eq 1 ] || fail "result of an unknown id must exit 1"
P dead show no-such-id 2>/dev/null; [ $? -eq 1 ] || fail "show of an unknown id must exit 1"
set -e

# a real dead letter: an unknown route
R LPUSH planb:q:default "$(job bad-1 ',"route":"nope"')" >/dev/null
res=$(R --raw BLPOP planb:reply:bad-1 10 | tail -n 1)
[ "$(json_get "$res" status)" = invalid ] || fail "bad-1 should be invalid: $res"
out=$(P result bad-1)
[ "$(json_get "$out" status)" = invalid ] || fail "planb result bad-1: $out"
P dead list | grep -E '^0 .*bad-1 .*UNKNOWN_ROUTE' || fail "dead list: $(P dead list)"
P dead show bad-1 | grep -q '"error": "UNKNOWN_ROUTE' || fail "dead show by id"
P dead show 0 | grep -q '"id": "bad-1"' || fail "dead show by position"

# retry by id: the old (invalid) result is replaced by a fresh ok one
R SET planb:result:re-1 '{"id":"re-1","status":"invalid"}' >/dev/null
R LPUSH planb:dead "$(dead_entry re-1 "$(job re-1)")" >/dev/null
P dead retry re-1 | grep -q 'retried: re-1' || fail "retry re-1"
res=$(R --raw BLPOP planb:reply:re-1 10 | tail -n 1)
[ "$(json_get "$res" status)" = ok ] || fail "re-1 after retry: $res"
[ "$(json_get "$(P result re-1)" status)" = ok ] || fail "result re-1 after retry"
P dead show re-1 >/dev/null 2>&1 && fail "re-1 must leave the dead list"
set +e
P dead retry re-1 >/dev/null 2>&1; [ $? -eq 1 ] || fail "a second retry of re-1 must exit 1"
set -e

# retry by position, then --all (oldest first), with a non-text entry left in place
R LPUSH planb:dead "$(dead_entry re-2 "$(job re-2)")" >/dev/null
P dead retry 0 | grep -q 'retried: re-2' || fail "retry 0"
R LPUSH planb:dead "$(dead_entry re-3 "$(job re-3)")" >/dev/null
R LPUSH planb:dead '{"id":"bin-1","error":"BAD_JSON x","job_base64":"/w=="}' >/dev/null
R LPUSH planb:dead "$(dead_entry re-4 "$(job re-4)")" >/dev/null
out=$(P dead retry --all)
# bad-1 is text, so it is pushed again (and dead-lettered again); bin-1 stays
echo "$out" | grep -q '3 retried, 1 left' || fail "retry --all: $out"
for id in re-2 re-3 re-4 bad-1; do
  res=$(R --raw BLPOP "planb:reply:$id" 10 | tail -n 1)
  want=ok; [ "$id" = bad-1 ] && want=invalid
  [ "$(json_get "$res" status)" = "$want" ] || fail "$id after retry: $res"
done
P dead list | grep -q '2 of 2 dead letters shown' || fail "after retry --all: $(P dead list)"

# purge
P dead purge | grep -q 'purged 2 dead letters' || fail "purge"
[ "$(R LLEN planb:dead)" = 0 ] || fail "dead list not empty after purge"
echo "PASS"
