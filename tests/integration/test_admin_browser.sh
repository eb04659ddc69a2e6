#!/usr/bin/env bash
# test_admin_browser.sh -- the admin page (web/) in Debian's headless Chromium, driven by
# playwright-core from tests/browser (admin_checks.mjs: what it checks is in its comments).
#
# One Redis, planb-mock and planb with one worker and an "admin" section holding an admin key
# and a viewer key (only their SHA-256). tests/browser's package.json and lock are copied into
# a temp folder and installed there (npm ci), as test_front_sdk.sh does, so the source tree
# stays clean. The screenshots go to $PB_SHOTS_DIR when set (docs/img: see
# docs/admin-page.md), else into the temp folder. Skipped, saying why, only when chromium,
# node or the npm registry is missing (deploy/install-deps.sh installs chromium and node).
. "$(dirname "$0")/../support/world.sh"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || skip "chromium is not installed (deploy/install-deps.sh installs Debian's chromium)"
command -v node >/dev/null || skip "node is not installed (deploy/install-deps.sh installs nodejs)"
command -v npm >/dev/null || skip "npm is not installed (deploy/install-deps.sh installs npm)"
DIR=$WORK/browser
mkdir -p "$DIR"
cp "$PB_SRC_DIR"/tests/browser/{package.json,package-lock.json,admin_checks.mjs} "$DIR/"
if ! (cd "$DIR" && timeout 180 npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1); then
  cat "$WORK/npm.log"
  skip "npm ci failed (is the npm registry reachable?)"
fi

ADMIN_KEY=pb-admin-test-key-1
VIEWER_KEY=pb-viewer-test-key-1
world_redis
world_mock
ADMIN_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
world_config 1 | /usr/bin/python3 -c '
import json, sys
c = json.load(sys.stdin)
c["lease_ms"] = 60000  # the worker is stopped a while: its jobs stay its own
c["admin"] = {"listen": "127.0.0.1:" + sys.argv[1], "refresh_ms": 500, "keys": [
    {"name": "ops", "role": "admin", "sha256": sys.argv[2]},
    {"name": "oncall", "role": "viewer", "sha256": sys.argv[3]}]}
print(json.dumps(c))' "$ADMIN_PORT" "$(printf %s "$ADMIN_KEY" | sha256sum | cut -d' ' -f1)" \
  "$(printf %s "$VIEWER_KEY" | sha256sum | cut -d' ' -f1)" >"$WORK/planb.json"
! grep -qF "$ADMIN_KEY" "$WORK/planb.json" || fail "the config must hold only the keys' hashes"
world_planb "$WORK/planb.json"
wait_for 100 0.1 curl -sf -o /dev/null -H "Authorization: Bearer $ADMIN_KEY" \
  "http://127.0.0.1:$ADMIN_PORT/api/session" || fail "the admin server did not answer"

# The worker pids (planb:workers holds host:pid); a stopped one is continued whatever happens.
WORKER_PIDS=$(R ZRANGE planb:workers 0 -1 | sed 's/.*://' | tr '\n' ' ')
[ -n "${WORKER_PIDS// /}" ] || fail "no worker in planb:workers"
continue_workers() { for p in $WORKER_PIDS; do kill -CONT "$p" 2>/dev/null; done; }
WORLD_CLEANUPS+=(continue_workers)

SHOTS=${PB_SHOTS_DIR:-$WORK/shots}
mkdir -p "$SHOTS"
(cd "$DIR" && ADMIN_URL="http://127.0.0.1:$ADMIN_PORT" ADMIN_KEY=$ADMIN_KEY VIEWER_KEY=$VIEWER_KEY \
  REDIS_PORT=$REDIS_PORT MOCK_URL=$MOCK_URL WORKER_PIDS=$WORKER_PIDS SHOTS=$SHOTS CHROMIUM=$CHROMIUM \
  timeout 240 node admin_checks.mjs) || fail "admin page checks"
for f in admin-overview.png admin-job.png admin-overview-phone-dark.png; do
  [ -s "$SHOTS/$f" ] || fail "no screenshot $f"
done
# The admin key's text is never logged; each action is, with who did it.
! grep -qF "$ADMIN_KEY" "$WORK/planb.log" || fail "planb's log holds the admin key"
grep -q 'event=admin_action who=ops action=queue_pause target=default' "$WORK/planb.log" ||
  fail "the pause was not logged"
grep -q 'event=admin_action who=ops action=dead_retry id=dl-1' "$WORK/planb.log" ||
  fail "the retry was not logged"
echo "PASS"
