#!/usr/bin/env bash
# test_front_sdk.sh -- the official `openai` npm SDK against planb's OpenAI-compatible front door.
#
# tests/integration/front_sdk holds a package.json pinning `openai` at an exact version, its
# package-lock.json and sdk_checks.mjs (chat, stream, tool calls, fallback, degraded, error
# shapes, models; see its header). They are copied into a temp folder and the SDK installed
# there (npm ci), so the source tree stays clean. Two rounds against one planb-mock:
#   1. "http": {"listen"} without keys: any key is taken;
#   2. "http" with one key (only its SHA-256 in the config): a wrong key and a missing
#      Authorization header get OpenAI's 401, and the key text is never stored in Redis nor
#      written to planb's log.
# Round 2 has its own Redis, so nothing round 1 left there (breaker counts, cache entries)
# can change its answers. Without node or the npm registry the test is skipped, saying so.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/front.sh"
command -v node >/dev/null || skip "node is not installed (deploy/install-deps.sh installs nodejs)"
command -v npm >/dev/null || skip "npm is not installed (deploy/install-deps.sh installs npm)"
DIR=$WORK/sdk
mkdir -p "$DIR"
cp "$PB_SRC_DIR"/tests/integration/front_sdk/{package.json,package-lock.json,sdk_checks.mjs} "$DIR/"
if ! (cd "$DIR" && timeout 180 npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1); then
  cat "$WORK/npm.log"
  skip "npm ci failed (is the npm registry reachable?)"
fi
KEY=sk-planb-test-1
KEY_SHA=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)

sdk_checks() { (cd "$DIR" && timeout 120 node sdk_checks.mjs "$@"); }

world_redis
world_mock

# Round 1: no keys.
PORT=$(free_port)
front_config "$PORT" >"$WORK/front.json"
start_front "$WORK/front.json" "$PORT"
sdk_checks "http://127.0.0.1:$PORT/v1" unused-key "$MOCK_URL" || fail "sdk checks without keys"
stop_front
mv "$WORK/planb.log" "$WORK/planb-round1.log"

# Round 2: one key, on a fresh Redis.
world_redis
PORT2=$(free_port)
front_config "$PORT2" "{\"keys\": [{\"name\": \"web\", \"tenant\": \"acme\", \"sha256\": \"$KEY_SHA\"}]}" \
  >"$WORK/front-keys.json"
grep -q "$KEY_SHA" "$WORK/front-keys.json" || fail "the keyed config lacks the key's sha256"
! grep -q "$KEY" "$WORK/front-keys.json" || fail "the config must hold only the key's hash"
start_front "$WORK/front-keys.json" "$PORT2"
sdk_checks "http://127.0.0.1:$PORT2/v1" "$KEY" "$MOCK_URL" keys || fail "sdk checks with keys"

# No Authorization header at all: OpenAI's 401 body.
code=$(curl -s -m 10 -o "$WORK/nokey.body" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' "http://127.0.0.1:$PORT2/v1/chat/completions" \
  -d '{"model": "default", "messages": [{"role": "user", "content": "no key"}]}')
[ "$code" = 401 ] || fail "no Authorization header: HTTP $code $(cat "$WORK/nokey.body")"
/usr/bin/python3 - "$WORK/nokey.body" <<'PY' || fail "no Authorization header: body $(cat "$WORK/nokey.body")"
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert isinstance(e, dict), e
assert e.get("type") == "invalid_request_error", e
assert e.get("code") == "invalid_api_key", e
assert isinstance(e.get("message"), str) and e["message"], e
PY

# The key text is in no Redis key or value, and not in planb's log.
names=$(R KEYS '*')
! grep -qF "$KEY" <<<"$names" || fail "a Redis key name holds the API key: $(grep -F "$KEY" <<<"$names")"
n_keys=0
while IFS= read -r k; do
  [ -n "$k" ] || continue
  n_keys=$((n_keys + 1))
  case $(R TYPE "$k") in
    string) R GET "$k" ;;
    hash) R HGETALL "$k" ;;
    list) R LRANGE "$k" 0 -1 ;;
    set) R SMEMBERS "$k" ;;
    zset) R ZRANGE "$k" 0 -1 ;;
    stream) R XRANGE "$k" - + ;;
  esac >"$WORK/value" || true
  ! grep -qF "$KEY" "$WORK/value" || fail "Redis key $k holds the API key text"
done < <(R --scan)
[ "$n_keys" -gt 0 ] || fail "Redis holds no keys after the keyed round (wrong Redis?)"
! grep -qF "$KEY" "$WORK/planb.log" || fail "planb's log holds the API key text"
# libevent's own warnings (a descriptor closed under an event, a bufferevent freed twice)
# are bugs of ours.
! grep '^\[warn\]' "$WORK"/planb*.log || fail "libevent warned (above)"
echo "PASS"
