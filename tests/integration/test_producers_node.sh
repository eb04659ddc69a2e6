#!/usr/bin/env bash
# test_producers_node.sh -- the Node.js producer examples (deploy/producers/node) against a real planb.
#
# The npm `redis` client is installed from the committed package-lock.json
# (npm ci) into a temp copy of the folder, so the source tree stays clean. Without
# node or the npm registry the test is skipped, saying so.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/producers.sh"
command -v node >/dev/null || skip "node is not installed (deploy/install-deps.sh installs nodejs)"
command -v npm >/dev/null || skip "npm is not installed (deploy/install-deps.sh installs npm)"
DIR=$WORK/node
mkdir -p "$DIR"
cp "$PB_SRC_DIR"/deploy/producers/node/{package.json,package-lock.json,producer.js,web.js} "$DIR/"
if ! (cd "$DIR" && timeout 180 npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1); then
  cat "$WORK/npm.log"
  skip "npm ci failed (is the npm registry reachable?)"
fi
world_redis
world_mock
producers_planb
producer_checks node "$DIR/producer.js"
web_checks "$DIR" node web.js
echo "PASS"
