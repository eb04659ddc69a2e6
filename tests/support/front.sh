# tests/support/front.sh -- the front door's test helpers (sourced after world.sh).
#   free_port; front_config PORT [HTTP_JSON [TOP_JSON]]; start_front CONFIG PORT; stop_front
# free_port: a loopback TCP port nobody listens on right now.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# front_config PORT [HTTP_JSON [TOP_JSON]]: world_config with a top-level "http" section
# listening on PORT, plus the fields of HTTP_JSON in it and those of TOP_JSON at the top.
front_config() {
  world_config | /usr/bin/python3 -c '
import json, sys
cfg = json.load(sys.stdin)
cfg["http"] = {"listen": "127.0.0.1:" + sys.argv[1]}
if len(sys.argv) > 2:
    cfg["http"].update(json.loads(sys.argv[2]))
if len(sys.argv) > 3:
    cfg.update(json.loads(sys.argv[3]))
json.dump(cfg, sys.stdout, indent=1)' "$@"
}
healthz_ok() { [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz")" = 200 ]; }
# start_front CONFIG PORT: planb serve on CONFIG, waiting until its front door takes requests.
start_front() {
  world_planb "$1"
  PLANB_PID=${WORLD_PIDS[-1]}
  wait_for 100 0.1 healthz_ok "$2" ||
    fail "GET /healthz on 127.0.0.1:$2 did not answer 200: $(curl -s -m 2 -i "http://127.0.0.1:$2/healthz")"
}
pid_gone() { ! kill -0 "$1" 2>/dev/null; }
# stop_front: SIGTERM the planb started last and wait until it has exited.
stop_front() {
  kill -TERM "$PLANB_PID"
  wait_for 150 0.1 pid_gone "$PLANB_PID" || fail "planb (pid $PLANB_PID) did not exit on SIGTERM"
  wait "$PLANB_PID" 2>/dev/null || true
}
