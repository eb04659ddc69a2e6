#!/usr/bin/env bash
# test_cli_tls.sh -- the command line over rediss:// and `planb check --connect`'s verdicts.
#
# Debian's redis-server serves TLS (--port 0 --tls-port) with certificates from
# tests/support/make_certs.sh. A real `planb serve` runs jobs over TLS while
# submit, result, stats and dead talk to the same Redis through the CLI's own
# blocking client (src/redissync.c); then `planb check --connect` must pass the
# good config and name the cause of each bad one: wrong CA, expired
# certificate, host-name mismatch, a client certificate required and not
# given, a plaintext server behind rediss://, a TLS server behind redis://, an
# unreachable provider, a wrong password, a bad cache.redis, an HTTPS provider
# wanting a client certificate or signed by another CA, a TLS sentinel with a
# wrong password or spoken to in plaintext; never printing a secret.
. "$(dirname "$0")/../support/world.sh"
command -v openssl >/dev/null || skip "openssl(1) is not installed"
redis-server --version | grep -q 'v=[6-9]' || skip "this redis-server predates TLS (6.0)"
CERTS=$WORK/certs
bash "$PB_SRC_DIR/tests/support/make_certs.sh" "$CERTS"
world_redis # the plaintext server: REDIS_PORT
PLAIN_PORT=$REDIS_PORT
world_mock
export PB_TEST_KEY=sk-test-not-a-real-key
export PB_TLS_PASS=tls-test-secret-password

# tls_redis NAME CERT AUTH_CLIENTS [redis-server args...]: a TLS-only redis-server on a free port,
# its port in ${NAME}_PORT (tried on another port when that one was taken meanwhile). Readiness is
# asked with --insecure: redis-cli would refuse the expired certificate.
tls_redis() {
  local name=$1 cert=$2 auth=$3 port pid
  shift 3
  for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 30000))
    redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --tls-cert-file "$CERTS/$cert.crt" --tls-key-file "$CERTS/$cert.key" \
      --tls-ca-cert-file "$CERTS/ca.crt" --tls-auth-clients "$auth" "$@" \
      --dir "$WORK" --logfile "$WORK/redis-$name.log" &
    pid=$!
    WORLD_PIDS+=("$pid")
    if wait_for 30 0.1 sh -c "redis-cli --tls --insecure --cert '$CERTS/client.crt' \
        --key '$CERTS/client.key' -p $port ping 2>&1 | grep -qE 'PONG|NOAUTH'"; then
      printf -v "${name}_PORT" %s "$port"
      return 0
    fi
    kill "$pid" 2>/dev/null || true
  done
  fail "TLS redis-server $name did not start"
}
tls_redis GOOD server optional --requirepass "$PB_TLS_PASS"
tls_redis EXPIRED expired optional
tls_redis MTLS server yes
R() { redis-cli --tls --cacert "$CERTS/ca.crt" -p "$GOOD_PORT" --no-auth-warning -a "$PB_TLS_PASS" "$@"; }

# config URL TLS-JSON [BASE_URL] [PASSWORD_ENV]: a config for one Redis and the mock provider.
config() {
  local tls=""
  [ -n "$2" ] && tls=", \"tls\": $2"
  cat <<JSON
{"redis": {"url": "$1"$tls${4:+, \"password_env\": \"$4\"}},
 "workers": 1, "concurrency": 16, "queues": ["default"], "drain_timeout_ms": 2000,
 "providers": {"mock": {"type": "openai", "base_url": "${3:-$MOCK_URL/v1}", "api_key_env": "PB_TEST_KEY"}},
 "models": {"primary": {"provider": "mock", "tier": 1, "timeout_ms": 2000}},
 "routes": {"default": {"chain": ["primary"], "retries": 0, "deadline_ms": 5000}}}
JSON
}
CA="{\"ca_file\": \"$CERTS/ca.crt\"}"
CONFIG=$WORK/good.json
config "rediss://localhost:$GOOD_PORT/0" "$CA" "" PB_TLS_PASS >"$CONFIG"

# --- the commands over TLS, with a real planb serve on the same Redis
world_planb "$CONFIG"
P() { "$PLANB" "$@" -c "$CONFIG"; }
out=$(P submit --wait --timeout 10 --id tls-1 "hello over TLS") || fail "submit --wait over TLS: $out"
[ "$(json_get "$out" status)" = ok ] || fail "submit --wait over TLS: $out"
[ "$(json_get "$(P result tls-1)" status)" = ok ] || fail "result over TLS"
P stats | grep -q '^queues .*default=0' || fail "stats over TLS: $(P stats 2>&1)"
P stats --json | grep -q '"queues"' || fail "stats --json over TLS"
id=$(P submit --route nope "to the dead letters") || fail "submit over TLS"
wait_for 50 0.1 sh -c "\"$PLANB\" dead -c \"$CONFIG\" list | grep -q \"$id\"" ||
  fail "dead list over TLS: $(P dead list 2>&1)"
P dead show "$id" | grep -q '"error": "UNKNOWN_ROUTE' || fail "dead show over TLS"
P dead purge | grep -q 'purged 1 dead letters' || fail "dead purge over TLS"
[ "$(R LLEN planb:dead)" = 0 ] || fail "the dead list is not empty after purge"

# --- check: a warning for verify false, no connection without --connect
config "rediss://localhost:$GOOD_PORT" '{"verify": false}' >"$WORK/unverified.json"
out=$("$PLANB" check -c "$WORK/unverified.json") || fail "check of verify false: $out"
grep -q '^warning: redis.tls.verify is false' <<<"$out" || fail "no verify-false warning: $out"
grep -q '^ok redis' <<<"$out" && fail "check without --connect connected: $out"

# --- check --connect: the good config, then each bad one names its cause and exits 2
out=$("$PLANB" check --connect -c "$CONFIG") || fail "check --connect of the good config: $out"
grep -qx "ok redis rediss://localhost:$GOOD_PORT" <<<"$out" || fail "check --connect: $out"
grep -q "^ok provider mock $MOCK_URL (HTTP [0-9]*)" <<<"$out" || fail "check --connect provider: $out"
# expect_failed NAME WANT CONFIG-ARGS...: check --connect exits 2 with a FAILED line holding WANT
expect_failed() {
  local name=$1 want=$2 rc=0
  shift 2
  config "$@" >"$WORK/$name.json"
  out=$(timeout 20 "$PLANB" check --connect -c "$WORK/$name.json" 2>&1) || rc=$?
  [ "$rc" -eq 2 ] || fail "$name: exit $rc, want 2: $out"
  grep -q "^FAILED .*$want" <<<"$out" || fail "$name: no FAILED line with '$want': $out"
  if grep -q -e "$PB_TLS_PASS" -e "$PB_TEST_KEY" <<<"$out"; then fail "$name printed a secret"; fi
  echo "$name: $(grep '^FAILED' <<<"$out" | head -n 1)"
}
expect_failed wrong-ca "redis localhost:$GOOD_PORT: certificate verify failed" \
  "rediss://localhost:$GOOD_PORT" "{\"ca_file\": \"$CERTS/other-ca.crt\"}" "" PB_TLS_PASS
expect_failed expired "certificate verify failed: certificate has expired" \
  "rediss://localhost:$EXPIRED_PORT" "$CA"
expect_failed mismatch "certificate verify failed: hostname mismatch" \
  "rediss://localhost:$GOOD_PORT" "{\"ca_file\": \"$CERTS/ca.crt\", \"server_name\": \"wrong.example\"}" \
  "" PB_TLS_PASS
expect_failed no-client-cert "certificate required" "rediss://localhost:$MTLS_PORT" "$CA"
expect_failed plaintext-server "the server speaks plaintext: use redis://" \
  "rediss://localhost:$PLAIN_PORT" "$CA"
expect_failed tls-server "the server speaks TLS: use rediss://" "redis://localhost:$GOOD_PORT" ""
expect_failed bad-provider "provider mock http://127.0.0.1:1: " \
  "rediss://localhost:$GOOD_PORT" "$CA" "http://127.0.0.1:1/v1" PB_TLS_PASS
grep -q "^ok redis rediss://localhost:$GOOD_PORT" <<<"$out" || fail "bad-provider: Redis was fine: $out"
PB_TLS_PASS=wrong-password expect_failed wrong-password "AUTH failed: WRONGPASS" \
  "rediss://localhost:$GOOD_PORT" "$CA" "" PB_TLS_PASS
expect_failed no-redis "redis 127.0.0.1:1: Connection refused" "redis://127.0.0.1:1" ""

# the client certificate makes the mutual-TLS server fine
MTLS="{\"ca_file\": \"$CERTS/ca.crt\", \"cert_file\": \"$CERTS/client.crt\", \"key_file\": \"$CERTS/client.key\"}"
config "rediss://localhost:$MTLS_PORT" "$MTLS" >"$WORK/mtls.json"
out=$("$PLANB" check --connect -c "$WORK/mtls.json") || fail "mutual TLS with a client certificate: $out"
grep -qx "ok redis rediss://localhost:$MTLS_PORT" <<<"$out" || fail "mutual TLS: $out"

# cache.redis, a Redis of its own, is tried too
sed 's|"workers": 1,|"cache": {"redis": {"url": "rediss://localhost:'"$EXPIRED_PORT"'", "tls": '"$CA"'}}, "workers": 1,|' \
  "$WORK/mtls.json" >"$WORK/cache.json"
set +e
out=$("$PLANB" check --connect -c "$WORK/cache.json")
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a bad cache.redis: exit $rc: $out"
grep -qx "ok redis rediss://localhost:$MTLS_PORT" <<<"$out" || fail "cache.redis case, redis: $out"
grep -q "^FAILED cache.redis localhost:$EXPIRED_PORT: certificate verify failed: certificate has expired" <<<"$out" ||
  fail "a bad cache.redis: $out"

# --- a provider behind HTTPS with mutual TLS: its ca_file, cert_file and key_file are used
/usr/bin/python3 -c '
import http.server, ssl, sys
s = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1] + "/server.crt", sys.argv[1] + "/server.key")
ctx.load_verify_locations(sys.argv[1] + "/ca.crt")
ctx.verify_mode = ssl.CERT_REQUIRED
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("port=%d" % s.server_port, flush=True)
s.serve_forever()' "$CERTS" >"$WORK/https.port" 2>"$WORK/https.log" &
WORLD_PIDS+=($!)
wait_for 50 0.1 grep -q port= "$WORK/https.port" || fail "the HTTPS server did not start"
HTTPS_URL="https://localhost:$(sed -n 's/^port=//p' "$WORK/https.port")"
# provider_config EXTRA-JSON: the good Redis, the provider on HTTPS_URL with EXTRA options
provider_config() {
  config "rediss://localhost:$GOOD_PORT" "$CA" "$HTTPS_URL/v1" PB_TLS_PASS |
    sed "s|\"api_key_env\": \"PB_TEST_KEY\"|\"api_key_env\": \"PB_TEST_KEY\", $1|"
}
provider_config "\"ca_file\": \"$CERTS/ca.crt\", \"cert_file\": \"$CERTS/client.crt\", \"key_file\": \"$CERTS/client.key\"" >"$WORK/https.json"
out=$("$PLANB" check --connect -c "$WORK/https.json") || fail "HTTPS provider with mutual TLS: $out"
grep -q "^ok provider mock $HTTPS_URL (HTTP 501)" <<<"$out" || fail "HTTPS provider: $out"
provider_config "\"ca_file\": \"$CERTS/other-ca.crt\", \"cert_file\": \"$CERTS/client.crt\", \"key_file\": \"$CERTS/client.key\"" >"$WORK/https-ca.json"
out=$("$PLANB" check --connect -c "$WORK/https-ca.json") && fail "HTTPS provider, wrong CA, passed: $out"
grep -q "^FAILED provider mock $HTTPS_URL: SSL certificate problem" <<<"$out" || fail "HTTPS provider, wrong CA: $out"
provider_config "\"ca_file\": \"$CERTS/ca.crt\"" >"$WORK/https-nocert.json"
out=$("$PLANB" check --connect -c "$WORK/https-nocert.json") && fail "HTTPS provider, no client certificate, passed: $out"
# TLS 1.3 sends "certificate required" after the handshake, and libcurl may meet the reset
# that follows first (slow builds: ASan): "Send failure", "Recv failure", getpeername's ENOTCONN.
# The refusal is what is checked; the wording is libcurl's race.
grep -q "^FAILED provider mock $HTTPS_URL: " <<<"$out" ||
  fail "HTTPS provider, no client certificate: $out"

# --- through a TLS sentinel with an ACL user (pb_sentinel_resolve_sync): the master it names is
# checked against its announced address (an IP SAN of server.crt)
if command -v redis-sentinel >/dev/null; then
  S_PORT=$((20000 + RANDOM % 30000))
  cat >"$WORK/sentinel.conf" <<CONF
port 0
tls-port $S_PORT
bind 127.0.0.1
tls-cert-file $CERTS/server.crt
tls-key-file $CERTS/server.key
tls-ca-cert-file $CERTS/ca.crt
tls-auth-clients optional
tls-replication yes
dir $WORK
logfile $WORK/sentinel.log
user planb-cli on >sentinel-secret allcommands allchannels
sentinel monitor mymaster 127.0.0.1 $GOOD_PORT 1
sentinel auth-pass mymaster $PB_TLS_PASS
CONF
  redis-sentinel "$WORK/sentinel.conf" &
  WORLD_PIDS+=($!)
  wait_for 50 0.1 sh -c "redis-cli --tls --cacert '$CERTS/ca.crt' -h localhost -p $S_PORT \
      --user planb-cli --pass sentinel-secret --no-auth-warning ping | grep -q PONG" ||
    fail "the TLS sentinel did not start"
  # sentinel_config SENTINEL_TLS: the good Redis through the sentinel
  sentinel_config() {
    cat <<JSON
{"redis": {"url": "rediss://ignored/0", "tls": $CA, "password_env": "PB_TLS_PASS",
           "sentinels": ["localhost:$S_PORT"], "master_name": "mymaster", "sentinel_tls": $1,
           "sentinel_user": "planb-cli", "sentinel_password_env": "PB_SENTINEL_PASS"},
 "workers": 1, "queues": ["default"],
 "providers": {"mock": {"type": "openai", "base_url": "$MOCK_URL/v1"}},
 "models": {"primary": {"provider": "mock", "tier": 1}}, "routes": {"default": {"chain": ["primary"]}}}
JSON
  }
  sentinel_config true >"$WORK/sentinel.json"
  export PB_SENTINEL_PASS=sentinel-secret
  out=$("$PLANB" check --connect -c "$WORK/sentinel.json") || fail "check via the sentinel: $out"
  grep -qx "ok redis rediss://127.0.0.1:$GOOD_PORT (master \"mymaster\", from the sentinels)" <<<"$out" ||
    fail "check via the sentinel: $out"
  [ "$(json_get "$("$PLANB" result -c "$WORK/sentinel.json" tls-1)" status)" = ok ] ||
    fail "result via the sentinel"
  out=$(PB_SENTINEL_PASS=wrong "$PLANB" check --connect -c "$WORK/sentinel.json") &&
    fail "a wrong sentinel password passed: $out"
  grep -q "^FAILED redis master \"mymaster\": no sentinel named a master (sentinel localhost:$S_PORT: AUTH failed: WRONGPASS" <<<"$out" ||
    fail "wrong sentinel password: $out"
  if grep -q "wrong\|sentinel-secret" <<<"${out//WRONGPASS/}"; then fail "a sentinel password was printed: $out"; fi
  sentinel_config false >"$WORK/sentinel-plain.json"
  out=$("$PLANB" check --connect -c "$WORK/sentinel-plain.json") && fail "plain to a TLS sentinel passed"
  grep -q "sentinel localhost:$S_PORT: the server speaks TLS: use rediss://" <<<"$out" ||
    fail "plain to a TLS sentinel: $out"
fi

# a command (not check) names the cause too and exits 5
set +e
out=$("$PLANB" stats -c "$WORK/expired.json" 2>&1)
rc=$?
set -e
[ "$rc" -eq 5 ] || fail "stats against the expired certificate: exit $rc: $out"
grep -q 'certificate has expired' <<<"$out" || fail "stats names no cause: $out"
echo "PASS"
