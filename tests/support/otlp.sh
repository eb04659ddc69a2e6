# tests/support/otlp.sh -- a strict OTLP/HTTP trace receiver for shell tests (issue 26).
#
# Sourced after tests/support/world.sh (fail, skip, wait_for, $WORK, $PB_SRC_DIR, $PB_BIN_DIR,
# WORLD_PIDS). tests/support/otlp/receiver.mjs decodes what an exporter sends with the official
# OTLP definitions and refuses anything malformed (see its header); its npm packages are pinned
# in tests/support/otlp/package-lock.json and installed once per build tree, into
# $PB_BIN_DIR/otlp-receiver, so the source tree stays clean. The receiver is stopped by
# world.sh's EXIT trap like every other process of the world.
#   otlp_install; otlp_start (exports OTLP_PORT OTLP_URL OTLP_PID); otlp_stop;
#   otlp_spans; otlp_stats; otlp_mode JSON; otlp_reset

OTLP_DIR=$PB_BIN_DIR/otlp-receiver

# npm ci of tests/support/otlp into $OTLP_DIR, again only when package-lock.json changed (the
# copy of the lock kept there says what is installed); skips the test without node/npm or when
# npm ci fails. Under flock, so tests run in parallel (ctest -j) never install over each other.
otlp_install() {
  command -v node >/dev/null || skip "node is not installed (deploy/install-deps.sh installs nodejs)"
  command -v npm >/dev/null || skip "npm is not installed (deploy/install-deps.sh installs npm)"
  local lock_fd
  exec {lock_fd}>"$PB_BIN_DIR/otlp-receiver.lock"
  flock -w 300 "$lock_fd" || fail "another test held $PB_BIN_DIR/otlp-receiver.lock for 300 s"
  otlp_install_locked
  exec {lock_fd}>&-
}
otlp_install_locked() {
  local src=$PB_SRC_DIR/tests/support/otlp
  if [ -d "$OTLP_DIR/node_modules" ] && cmp -s "$src/package-lock.json" "$OTLP_DIR/installed-lock.json"; then
    cp "$src/receiver.mjs" "$OTLP_DIR/"
    return 0
  fi
  rm -rf "$OTLP_DIR"
  mkdir -p "$OTLP_DIR"
  cp "$src"/{package.json,package-lock.json,receiver.mjs} "$OTLP_DIR/"
  if ! (cd "$OTLP_DIR" && timeout 180 npm ci --no-audit --no-fund --loglevel=error >"$WORK/otlp-npm.log" 2>&1); then
    cat "$WORK/otlp-npm.log"
    rm -rf "$OTLP_DIR"
    skip "npm ci of tests/support/otlp failed (is the npm registry reachable?)"
  fi
  cp "$src/package-lock.json" "$OTLP_DIR/installed-lock.json"
}

# The receiver on a free loopback port, its log in $WORK/otlp.log.
otlp_start() {
  [ -f "$OTLP_DIR/receiver.mjs" ] || otlp_install
  : >"$WORK/otlp.port"
  node "$OTLP_DIR/receiver.mjs" --port 0 >"$WORK/otlp.port" 2>"$WORK/otlp.log" &
  OTLP_PID=$!
  WORLD_PIDS+=("$OTLP_PID")
  wait_for 100 0.1 grep -q '^port=' "$WORK/otlp.port" || fail "the OTLP receiver did not start"
  OTLP_PORT=$(sed -n 's/^port=//p' "$WORK/otlp.port")
  OTLP_URL="http://127.0.0.1:$OTLP_PORT"
  export OTLP_PORT OTLP_URL OTLP_PID
}

# SIGTERM, then wait (bounded) for it to exit; its pid leaves WORLD_PIDS, so world.sh's cleanup
# never signals a process that reused it.
otlp_stop() {
  [ -n "${OTLP_PID:-}" ] || return 0
  kill -TERM "$OTLP_PID" 2>/dev/null || true
  wait_for 50 0.1 otlp_is_gone || kill -KILL "$OTLP_PID" 2>/dev/null || true
  wait "$OTLP_PID" 2>/dev/null || true
  local keep=() p
  for p in "${WORLD_PIDS[@]}"; do [ "$p" = "$OTLP_PID" ] || keep+=("$p"); done
  WORLD_PIDS=("${keep[@]}")
  unset OTLP_PID
}
otlp_is_gone() { ! kill -0 "$OTLP_PID" 2>/dev/null; }

otlp_spans() { curl -sf -m 10 "$OTLP_URL/_otlp/spans"; }
otlp_stats() { curl -sf -m 10 "$OTLP_URL/_otlp/stats"; }
# otlp_mode '{"mode": "fail", "status": 503, "retry_after": "1"}'
otlp_mode() { curl -sf -m 10 -X POST -H 'Content-Type: application/json' -d "$1" "$OTLP_URL/_otlp/mode" >/dev/null; }
otlp_reset() { curl -sf -m 10 -X POST "$OTLP_URL/_otlp/reset" >/dev/null; }
