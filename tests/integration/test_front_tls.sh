#!/usr/bin/env bash
# test_front_tls.sh -- the front door over HTTPS (http.tls): the official `openai` npm SDK,
# clients that fail their handshake, and certificate rotation by SIGHUP.
#
# A throwaway PKI (tests/support/make_certs.sh); planb serves front.crt/front.key, copies of
# server.crt/.key, with one key in http.keys. Checks, against one redis-server and planb-mock:
#   1. `planb check` names the https:// URL; a key that does not match its certificate is
#      `planb check`'s error;
#   2. plain HTTP to the HTTPS port, junk, and hang-ups mid-handshake fail at once (no hang),
#      a stalled handshake is closed at http.client_timeout_ms, the front keeps serving (same processes, no respawn) and logs them in one rate-limited
#      line naming the first reason;
#   3. the SDK (tests/integration/front_sdk/tls_checks.mjs): a chat completion, a stream and
#      a ~384 KiB answer over https:// trusting the test CA (NODE_EXTRA_CA_CERTS); without the
#      CA it refuses the certificate;
#   4. a body with a wrong key is refused at its headers over TLS too (401, then the close);
#   5. rotation: server2's certificate and key copied over the files, SIGHUP: a new
#      connection sees server2's serial and the SDK checks pass again;
#   6. a SIGHUP onto a key that does not match the certificate is refused (reload_refused)
#      and the old front keeps serving server2's certificate.
# Without node or the npm registry the test is skipped, saying so.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/front.sh"
command -v node >/dev/null || skip "node is not installed (deploy/install-deps.sh installs nodejs)"
command -v npm >/dev/null || skip "npm is not installed (deploy/install-deps.sh installs npm)"
DIR=$WORK/sdk
mkdir -p "$DIR"
cp "$PB_SRC_DIR"/tests/integration/front_sdk/{package.json,package-lock.json,tls_checks.mjs} "$DIR/"
if ! (cd "$DIR" && timeout 180 npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1); then
  cat "$WORK/npm.log"
  skip "npm ci failed (is the npm registry reachable?)"
fi

CERTS=$WORK/certs
bash "$PB_SRC_DIR/tests/support/make_certs.sh" "$CERTS"
cp "$CERTS/server.crt" "$WORK/front.crt"
cp "$CERTS/server.key" "$WORK/front.key"
KEY=sk-planb-tls-1
KEY_SHA=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)

world_redis
world_mock
PORT=$(free_port)
TLS="\"tls\": {\"cert_file\": \"$WORK/front.crt\", \"key_file\": \"$WORK/front.key\"}"
front_config "$PORT" "{$TLS, \"client_timeout_ms\": 2000, \"keys\": [{\"name\": \"web\", \"sha256\": \"$KEY_SHA\"}]}" \
  >"$WORK/front.json"
URL=https://localhost:$PORT

# 1. planb check.
out=$("$PLANB" check -c "$WORK/front.json") || fail "planb check refused the https config: $out"
grep -qF "front door: https://127.0.0.1:$PORT/v1" <<<"$out" || fail "planb check: $out"
sed "s|$WORK/front.key|$CERTS/server2.key|" "$WORK/front.json" >"$WORK/mismatch.json"
if out=$("$PLANB" check -c "$WORK/mismatch.json" 2>&1); then fail "planb check took a key of another certificate"; fi
grep -qF "http.tls.key_file: $CERTS/server2.key is no usable PEM private key of cert_file" <<<"$out" ||
  fail "planb check on a mismatched key: $out"

https_healthz() { [ "$(curl -s -m 2 --cacert "$CERTS/ca.crt" -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]; }
world_planb "$WORK/front.json"
PLANB_PID=${WORLD_PIDS[-1]}
wait_for 100 0.1 https_healthz || fail "GET $URL/healthz did not answer 200: $(curl -s -m 2 -i --cacert "$CERTS/ca.crt" "$URL/healthz" 2>&1)"
grep -q 'event=front_listen .*scheme=https' "$WORK/planb.log" || fail "front_listen does not say scheme=https"
children() { pgrep -P "$PLANB_PID" | sort | tr '\n' ' '; }

# 2. Clients that fail their handshake (first, so the one line they get is theirs).
sdk() { (cd "$DIR" && NODE_EXTRA_CA_CERTS=$CERTS/ca.crt timeout 60 node tls_checks.mjs "$URL/v1" "$KEY" "$@"); }
KIDS=$(children)
rc=0
curl -s -m 5 -o /dev/null "http://127.0.0.1:$PORT/healthz" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 28 ] || fail "plain HTTP to the HTTPS port: curl exit $rc (0: answered in clear, 28: hung)"
/usr/bin/python3 - "$PORT" <<'PY' || fail "junk and hang-ups mid-handshake"
import socket, sys, time
port = int(sys.argv[1])
t0 = time.monotonic()
# A handshake that stalls (half a ClientHello, then silence) is closed at http.client_timeout_ms.
stalled = socket.create_connection(("127.0.0.1", port), timeout=8)
stalled.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
for i in range(40):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if i % 4 == 0:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")   # plain HTTP
    elif i % 4 == 1:
        s.sendall(b"\x16\x03\x01\x00\x05junk!" * 3)              # a broken TLS record
    elif i % 4 == 2:
        s.sendall(b"\x16\x03\x01\x02\x00\x01")                   # a hello cut short, then a hang-up
        s.close()
        continue
    else:
        s.close()                                                 # a TCP check: connect, close
        continue
    try:
        while s.recv(4096):
            pass                                                  # the front closes it
    except (ConnectionResetError, socket.timeout) as e:
        if isinstance(e, socket.timeout):
            sys.exit(f"connection {i}: the front did not close a failed handshake within 5 s")
    s.close()
try:
    rest = stalled.recv(4096)  # the front's close: b"" (or a reset)
except ConnectionResetError:
    rest = b""
except socket.timeout:
    sys.exit("a stalled handshake was still open after 8 s (http.client_timeout_ms is 2000)")
took = time.monotonic() - t0
assert rest == b"" and 1.5 < took < 8, f"the stalled handshake: {rest!r} after {took:.1f} s"
PY
https_healthz || fail "the front stopped serving after failed handshakes"
[ "$(children)" = "$KIDS" ] || fail "planb's processes changed (${KIDS}-> $(children))"
! grep -q 'event=worker_died' "$WORK/planb.log" || fail "a process died: $(grep 'event=worker_died' "$WORK/planb.log")"
[ "$(grep -c 'event=front_listen' "$WORK/planb.log")" = 1 ] || fail "the front started again"
n=$(grep -c 'event=front_tls_failed' "$WORK/planb.log" || true)
[ "$n" -eq 1 ] || fail "41 failed handshakes within seconds: $n front_tls_failed lines, want 1 (rate-limited)"
grep -q 'event=front_tls_failed reason="http request"' "$WORK/planb.log" ||
  fail "the first failed handshake (plain HTTP) is not named: $(grep front_tls_failed "$WORK/planb.log")"

# 3. The SDK over https (on the front that saw the failed handshakes).
sdk || fail "the SDK over https"
(cd "$DIR" && timeout 60 node tls_checks.mjs "$URL/v1" "$KEY" untrusted) || fail "the SDK without the test CA"

# 4. A wrong key with a body: refused at its headers, and the connection ends (no hang).
code=$(curl -s -m 5 --cacert "$CERTS/ca.crt" -o "$WORK/badkey.body" -w '%{http_code}' -X POST \
  -H 'Authorization: Bearer sk-wrong' -H 'Content-Type: application/json' \
  "$URL/v1/chat/completions" -d '{"model": "default", "messages": [{"role": "user", "content": "x"}]}') ||
  fail "a wrong key over TLS: curl exit $? (code $code)"
[ "$code" = 401 ] && grep -q invalid_api_key "$WORK/badkey.body" || fail "a wrong key over TLS: $code $(cat "$WORK/badkey.body")"

# 5. Rotation: server2's files, SIGHUP, a new connection sees them.
serial() { openssl x509 -noout -serial -in "$1"; }
served_serial() {
  openssl s_client -connect "127.0.0.1:$PORT" -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial
}
OLD=$(serial "$CERTS/server.crt")
NEW=$(serial "$CERTS/server2.crt")
[ "$OLD" != "$NEW" ] || fail "server.crt and server2.crt share a serial"
[ "$(served_serial)" = "$OLD" ] || fail "served serial $(served_serial), want server.crt's $OLD"
cp "$CERTS/server2.crt" "$WORK/front.crt"
cp "$CERTS/server2.key" "$WORK/front.key"
kill -HUP "$PLANB_PID"
served_is_new() { [ "$(served_serial)" = "$NEW" ]; }
wait_for 100 0.1 served_is_new || fail "after SIGHUP the front still serves $(served_serial), want $NEW"
grep -q 'event=reloaded' "$WORK/planb.log" || fail "no reloaded line"
wait_for 50 0.1 https_healthz || fail "no /healthz over https after the rotation"
sdk || fail "the SDK after the rotation"

# 6. A reload onto a key of another certificate is refused; server2 keeps being served.
cp "$CERTS/server.key" "$WORK/front.key"
kill -HUP "$PLANB_PID"
refused() { grep -q 'event=reload_refused .*http.tls.key_file' "$WORK/planb.log"; }
wait_for 50 0.1 refused || fail "a reload onto a mismatched key was not refused: $(grep -E 'reload' "$WORK/planb.log")"
[ "$(served_serial)" = "$NEW" ] || fail "after the refused reload the front serves $(served_serial), want $NEW"
sdk || fail "the SDK after the refused reload"

stop_front
# libevent's own warnings (a descriptor closed under an event, a bufferevent freed twice)
# are bugs of ours.
! grep '^\[warn\]' "$WORK/planb.log" || fail "libevent warned (above)"
echo "PASS"
