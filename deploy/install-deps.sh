#!/usr/bin/env bash
# deploy/install-deps.sh -- installs the Debian packages planb builds, tests and demos with.
# Idempotent: only missing packages are installed (apt-get, as root or via sudo).
# prometheus is there for promtool (tests/unit/test_alerts.sh); on a systemd host the package
# also enables a Prometheus server on :9090 (`systemctl disable --now prometheus` if unwanted).
set -euo pipefail
# chromium: Debian's, headless, for the admin page's browser test (tests/browser: playwright-core,
# installed by the test itself with npm ci, as test_front_sdk.sh installs the openai SDK).
PKGS="build-essential cmake pkg-config clang-format curl libhiredis-dev libevent-dev
      libcurl4-openssl-dev libjson-c-dev libssl-dev zlib1g-dev libstemmer-dev libjemalloc-dev libcriterion-dev redis-server
      redis-tools redis-sentinel clang libclang-rt-14-dev
      python3-redis iproute2 procps chromium prometheus"
missing=()
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The Node.js producer example: any node + npm will do (e.g. NodeSource's, which bundles npm).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
