#!/usr/bin/env bash
# test_docs_first_job.sh -- the README's "Your first job in five minutes" works as written.
#
# Runs every ```sh block of that section, in order, in one shell in a scratch folder, against
# the demo's world (tests/support/world.sh: a redis-server and a planb-mock on free ports),
# with only what a test must change:
#   - the setup lines the harness does itself are skipped: installing packages, building,
#     starting redis-server and planb-mock (world_redis, world_mock did);
#   - `build/planb` is this build's planb; redis-cli and redis.Redis() talk to the test's Redis;
#   - the mock's and the front door's ports (8000, 8080) become free ones;
#   - `build/planb serve -c first.json &` starts planb on the README's first.json (plus the
#     test's redis.url) and waits until its workers beat and its front door answers.
# Then checks what the README says comes back: the redis-cli result (status ok, the echo,
# source primary), the same through `planb result`, the Python producer's line, and the
# front door's 200 with its x-planb-* headers. The README's smallest useful config must pass
# `planb check`.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/front.sh"
README=$PB_SRC_DIR/README.md
section=$(sed -n '/^## Your first job in five minutes/,/^## /p' "$README")
[ -n "$section" ] || fail "README has no section 'Your first job in five minutes'"

world_redis
world_mock
FRONT_PORT=$(free_port)

# harness_serve CONFIG: the README's `planb serve -c CONFIG &`, on the test's Redis.
harness_serve() {
  /usr/bin/python3 - "$1" "redis://127.0.0.1:$REDIS_PORT/0" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["redis"] = {"url": sys.argv[2]}
json.dump(cfg, open(sys.argv[1], "w"), indent=1)
PY
  start_front "$PWD/$1" "$FRONT_PORT"
}
redis-cli() { command redis-cli -p "$REDIS_PORT" "$@"; }

cd "$WORK"
awk '/^```sh$/ { on = 1; n++; next } /^```$/ { on = 0; next } on { print > ("block" n ".sh") }' \
  <<<"$section"
ls block*.sh >/dev/null 2>&1 || fail "the section has no sh blocks"
for b in $(ls block*.sh | sort -V); do
  sed -i -E \
    -e 's#^\./deploy/install-deps\.sh.*#: installed already#' \
    -e 's#^cmake .*#: built already#' \
    -e 's#^redis-cli ping \|\| redis-server .*#: world_redis started it#' \
    -e 's#^build/planb-mock .*&.*#: world_mock started it#' \
    -e 's#^build/planb serve -c ([^ ]+) &.*#harness_serve \1#' \
    -e "s#build/planb #$PLANB #g" \
    -e "s#http://127\.0\.0\.1:8000#$MOCK_URL#g" \
    -e "s#127\.0\.0\.1:8080#127.0.0.1:$FRONT_PORT#g" \
    -e "s#redis\.Redis\(\)#redis.Redis(port=$REDIS_PORT)#g" "$b"
  # a setup line these patterns no longer match must not run here (apt-get, a build)
  ! grep -nE 'install-deps|apt-get|cmake|redis-server|planb-mock|^build/' "$b" ||
    fail "$b: a setup line the test does not know how to replace (update its patterns)"
  echo "== $b"
  cat "$b"
  # shellcheck disable=SC1090
  source "$b" >"${b%.sh}.out" 2>&1 || fail "$b failed: $(cat "${b%.sh}.out")"
  cat "${b%.sh}.out"
done

out=$(cat block*.out)
for want in '"id":"first-1"' '"status":"ok"' '"content":"echo: Hello, planb"' '"source":"primary"'; do
  grep -qF "$want" <<<"$out" || fail "the redis-cli part's result lacks $want"
done
[ "$(grep -cF '"content":"echo: Hello, planb"' <<<"$out")" -ge 3 ] ||
  fail "BLPOP, GET and planb result should each print the result"
grep -qxF 'ok primary echo: Where is my order?' <<<"$out" || fail "the Python part did not print its answer"
grep -qE '^HTTP/1\.1 200' <<<"$out" || fail "the front door did not answer 200"
grep -qiE '^x-planb-source: primary' <<<"$out" || fail "the front door's answer lacks x-planb-source"
grep -qF '"object":"chat.completion"' <<<"$out" || fail "the front door's body is not a chat.completion"

# The smallest useful config is valid as printed.
sed -n '/^## The smallest useful config/,/^## /p' "$README" |
  awk '/^```json$/ { on = 1; next } /^```$/ { on = 0 } on' >smallest.json
[ -s smallest.json ] || fail "README's smallest useful config has no json block"
"$PLANB" check -c smallest.json || fail "README's smallest useful config does not pass planb check"
echo "PASS"
