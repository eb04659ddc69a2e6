#!/usr/bin/env bash
# test_layers.sh -- the layer order of docs/contributing.md "Layout", checked on the include lines.
#
# Every module has a rank (its layer); a file may include planb headers of its own rank
# or lower, never higher. On top of that: the master's whole include closure (what the
# compiler reads for src/master.c) has no libevent, hiredis or curl header; mock/
# includes only the base layer; and the planb-mock binary links neither hiredis nor
# libcurl (when PB_BIN_DIR names a build). Exit 0 and "PASS", or 1 naming each offence.
set -uo pipefail
src=${PB_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src" || exit 1

declare -A rank=(
  [core]=0 [log]=0 [buf]=0 [hash]=0 [utf8]=0 [sse]=0 [sigv4]=0 [eventstream]=0
  [config]=1 [trace]=1 [otlp]=1 [adminauth]=1 [keys]=1 [request]=1 [job]=1 [retry]=1 [scripts]=1 [testhook]=1 [wire]=1
  [redis]=2 [sentinel]=2 [http]=2 [tls]=2 [redisconn]=2 [redissync]=2
  [provider]=3 [provider_openai]=3 [provider_anthropic]=3 [provider_azure]=3 [provider_gemini]=3 [provider_bedrock]=3
  [embed]=3 [cache]=3 [semcache]=3
  [breaker]=3 [queue]=3 [stats]=3 [duty]=3 [metrics]=3 [reaper]=3 [promote]=3 [stream]=3 [delta]=3
  [resultwait]=3 [cancel]=3 [streamread]=3 [deadletter]=3 [overview]=3 [telemetry]=3 [jobtrace]=3
  [chain]=4
  [worker]=5 [monitor]=5 [front]=5 [admin]=5
  [master]=6
)
names=(base model io services chain process master)
bad=0
fail() { echo "FAIL: $*"; bad=1; }

for f in src/*.c include/planb/*.h; do
  mod=$(basename "$f"); mod=${mod%.*}
  r=${rank[$mod]:-}
  [ -n "$r" ] || { fail "$f: module '$mod' has no layer in tests/unit/test_layers.sh (add it)"; continue; }
  while read -r inc; do
    dep=${inc#planb/}; dep=${dep%.h}
    d=${rank[$dep]:-}
    [ -n "$d" ] || { fail "$f includes unknown module $inc"; continue; }
    ((d <= r)) || fail "$f (${names[$r]}) includes $inc (${names[$d]}): a lower layer includes a higher one"
  done < <(sed -n 's/^#include "\(planb\/[a-z_0-9]*\.h\)".*/\1/p' "$f")
  # The event loop and Redis stay in the io layer and above (retry.c may use curl's pure
  # date parser).
  if ((r < 2)) && grep -qE '^#include <(event2|hiredis)/' "$f"; then
    fail "$f (${names[$r]}) includes a libevent or hiredis header"
  fi
done

cc=${CC:-cc}
if command -v "$cc" >/dev/null; then
  closure=$("$cc" -std=c11 -D_GNU_SOURCE -Iinclude -MM src/master.c 2>&1) || fail "cc -MM src/master.c: $closure"
  leaked=$(tr ' \\' '\n\n' <<<"$closure" | grep -E '/(event2|hiredis|curl)/' | sort -u)
  [ -z "$leaked" ] || fail "src/master.c's include closure has loop/Redis/curl headers: $(echo $leaked)"
fi

for f in mock/*.c mock/*.h; do
  while read -r inc; do
    case $inc in planb/core.h | planb/log.h | planb/buf.h | planb/hash.h | planb/utf8.h | planb/sigv4.h | planb/eventstream.h) ;;
    *) fail "$f includes $inc: the mock links only the base layer" ;;
    esac
  done < <(sed -n 's/^#include "\(planb\/[a-z_0-9]*\.h\)".*/\1/p' "$f")
done

if [ -n "${PB_BIN_DIR:-}" ] && [ -x "$PB_BIN_DIR/planb-mock" ]; then
  libs=$(ldd "$PB_BIN_DIR/planb-mock" | grep -E 'hiredis|curl')
  [ -z "$libs" ] || fail "planb-mock links $(echo $libs)"
fi

((bad == 0)) && echo "PASS"
exit $bad
