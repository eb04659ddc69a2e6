#!/usr/bin/env bash
# test_deploy_configs.sh -- every example config in deploy/ passes `planb check` and holds no secret.
#
# Secrets must come from the environment (api_key_env, password_env): a config
# with an inline key, a password in the Redis URL or an unknown key fails.
. "$(dirname "$0")/../support/world.sh"
n=0
for f in "$PB_SRC_DIR"/deploy/*.json "$PB_SRC_DIR"/deploy/configs/*.json; do
  cfg=$WORK/$(basename "$f")
  # demo.json has placeholders that deploy/demo.sh fills in
  sed -e 's|@REDIS_PORT@|6379|; s|@MOCK_URL@|http://127.0.0.1:8000|g' "$f" >"$cfg"
  out=$("$PLANB" check -c "$cfg" 2>&1) || fail "$(basename "$f"): $out"
  echo "$(basename "$f"): $out"
  if grep -nE '"(api_key|password|token|secret)"|sk-[A-Za-z0-9]{8}|redis://[^"@/]*:[^"@/]+@' "$f"; then
    fail "$(basename "$f") holds a secret: use api_key_env / password_env"
  fi
  n=$((n + 1))
done
[ "$n" -ge 5 ] || fail "expected at least 5 example configs, found $n"
# the check must be able to fail: a typo'd key is refused
echo '{"redis": {"url": "redis://127.0.0.1:6379/0"}, "wokers": 2}' >"$WORK/typo.json"
"$PLANB" check -c "$WORK/typo.json" >/dev/null 2>&1 && fail "planb check accepted an unknown key"
echo "PASS"
