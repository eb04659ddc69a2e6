#!/usr/bin/env bash
# test_deploy_systemd.sh -- `systemd-analyze verify` on deploy/planb.service, where available.
#
# verify exits 0 even on unknown keys, so any output fails the test too. The
# unit's paths are pointed at the built binary and the example config, which
# verify requires to exist. The unit must keep its contract: dedicated user,
# restart policy, reload by SIGHUP, drain-friendly stop.
. "$(dirname "$0")/../support/world.sh"
UNIT=$PB_SRC_DIR/deploy/planb.service
for want in '^User=planb$' '^Restart=on-failure$' '^ExecReload=/bin/kill -HUP \$MAINPID$' \
  '^KillMode=mixed$' '^NoNewPrivileges=yes$' '^ProtectSystem=strict$' '^EnvironmentFile=' \
  '^RestartPreventExitStatus=2$'; do
  grep -qE "$want" "$UNIT" || fail "planb.service lacks $want"
done
command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed: unit not verified"
sed -e "s|/usr/local/bin/planb|$PLANB|g; s|/etc/planb/planb.json|$PB_SRC_DIR/deploy/planb.json|g" \
  "$UNIT" >"$WORK/planb.service"
out=$(systemd-analyze verify "$WORK/planb.service" 2>&1) || fail "systemd-analyze verify: $out"
# a unit that cannot be loaded at all (no systemd as PID 1 in a container) says so: skip then
if grep -qiE 'Failed to (initialize|connect|create)|System has not been booted' <<<"$out"; then
  skip "systemd-analyze cannot run here: $out"
fi
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"
echo "PASS"
