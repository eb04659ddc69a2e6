#!/usr/bin/env bash
# test_front_soak.sh -- the front door under hostile clients and chaos for SOAK_SECONDS (600).
#
# front_soak.py says what runs and what is checked. Run it against the ASan build for the
# issue's promise (`ctest --test-dir build-asan -L slow -R front_soak`); RSS_LIMIT_MIB is the
# bound on the front's memory it checks (64 MiB; 640 under ASan, whose quarantine keeps up
# to 256 MiB of freed blocks and whose shadow memory adds more), SOAK_SEED picks the clients'
# choices.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/front.sh"
world_redis
REDIS_PID=${WORLD_PIDS[-1]}
world_mock
mock_set primary '{"mode":"ok","latency_ms":20,"chunk_interval_ms":30}'
mock_set backup '{"mode":"ok","latency_ms":20,"chunk_interval_ms":30}'
if ldd "$PLANB" | grep -q libasan; then export RSS_LIMIT_MIB=${RSS_LIMIT_MIB:-640}; fi
PORT=$(free_port)
KEY_SHA=$(printf %s sk-soak-key | sha256sum | cut -d' ' -f1)
front_config "$PORT" "{\"keys\": [{\"name\": \"soak\", \"sha256\": \"$KEY_SHA\"}]}" >"$WORK/front.json"
start_front "$WORK/front.json" "$PORT"
/usr/bin/python3 "$(dirname "$0")/front_soak.py" "$PORT" "$REDIS_PORT" "$WORK/planb.log" "$REDIS_PID"
