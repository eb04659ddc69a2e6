#!/usr/bin/env bash
# test_deploy_compose.sh -- `docker compose config` validates deploy/compose.yaml, where available.
#
# Needs docker's client with the compose plugin (no daemon: `config` only parses
# and resolves). Before that, always: the Dockerfile's COPY sources exist, and
# (with python3-yaml) the file's structure, paths and secret handling are checked.
. "$(dirname "$0")/../support/world.sh"
for src in $(sed -n 's/^COPY \([^-][^ ]*\) .*/\1/p' "$PB_SRC_DIR/deploy/Dockerfile"); do
  [ -e "$PB_SRC_DIR/$src" ] || fail "Dockerfile copies $src, which does not exist"
done
[ -e "$PB_SRC_DIR/deploy/configs/compose.json" ] || fail "compose.yaml mounts configs/compose.json"
# Structure, without docker (python3-yaml, when present): the three services, relative paths
# that exist, and no secret written into the file (keys are passed through as ${VAR}).
if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
  /usr/bin/python3 - "$PB_SRC_DIR/deploy/compose.yaml" <<'PY' || fail "compose.yaml structure"
import os, sys, yaml
path = sys.argv[1]
base = os.path.dirname(path)
doc = yaml.safe_load(open(path))
svc = doc["services"]
assert {"redis", "planb", "mock"} <= set(svc), "services redis, planb, mock"
assert "redis" in svc["planb"]["depends_on"], "planb depends on redis"
for name, s in svc.items():
    b = s.get("build")
    if b:
        ctx = os.path.join(base, b["context"])
        assert os.path.isfile(os.path.join(ctx, b["dockerfile"])), f"{name}: Dockerfile"
    for v in s.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            assert os.path.exists(os.path.join(base, src)), f"{name}: volume {src}"
    for k, v in (s.get("environment") or {}).items():
        if k.endswith("_API_KEY"):
            assert str(v).startswith("${"), f"{name}: {k} must come from the environment"
print("compose.yaml structure ok")
PY
fi
command -v docker >/dev/null || skip "docker is not installed: compose file not validated"
docker compose version >/dev/null 2>&1 || skip "docker has no compose plugin: compose file not validated"
out=$(docker compose -f "$PB_SRC_DIR/deploy/compose.yaml" config 2>&1) || fail "docker compose config: $out"
for svc in redis planb mock; do
  grep -q "^  $svc:" <<<"$out" || fail "compose config lacks service $svc"
done
echo "PASS"
