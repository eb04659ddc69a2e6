#!/usr/bin/env bash
# test_deploy_compose.sh -- `docker compose config` validates deploy/compose.yaml, where available.
#
# Needs docker's client with the compose plugin (no daemon: `config` only parses
# and resolves). The Dockerfile's COPY sources must exist in the repository.
. "$(dirname "$0")/../support/world.sh"
for src in $(sed -n 's/^COPY \([^-][^ ]*\) .*/\1/p' "$PB_SRC_DIR/deploy/Dockerfile"); do
  [ -e "$PB_SRC_DIR/$src" ] || fail "Dockerfile copies $src, which does not exist"
done
[ -e "$PB_SRC_DIR/deploy/configs/compose.json" ] || fail "compose.yaml mounts configs/compose.json"
command -v docker >/dev/null || skip "docker is not installed: compose file not validated"
docker compose version >/dev/null 2>&1 || skip "docker has no compose plugin: compose file not validated"
out=$(docker compose -f "$PB_SRC_DIR/deploy/compose.yaml" config 2>&1) || fail "docker compose config: $out"
for svc in redis planb mock; do
  grep -q "^  $svc:" <<<"$out" || fail "compose config lacks service $svc"
done
echo "PASS"
