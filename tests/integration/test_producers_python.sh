#!/usr/bin/env bash
# test_producers_python.sh -- the Python producer examples (deploy/producers/python) against a real planb.
#
# Debian's python3-redis under /usr/bin/python3 (not a pyenv one): the one-shot
# producer and the web handler, checked by tests/support/producers.sh.
. "$(dirname "$0")/../support/world.sh"
. "$(dirname "$0")/../support/producers.sh"
DIR=$PB_SRC_DIR/deploy/producers/python
/usr/bin/python3 -c 'import redis' 2>/dev/null ||
  fail "python3-redis is missing (deploy/install-deps.sh installs it)"
world_redis
world_mock
producers_planb
producer_checks /usr/bin/python3 "$DIR/planb_producer.py"
web_checks "$DIR" /usr/bin/python3 web.py
echo "PASS"
