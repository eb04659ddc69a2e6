#!/usr/bin/env bash
# test_alerts.sh -- deploy/prometheus/alerts.yml and deploy/grafana/planb.json hold together.
#
# Without Prometheus: the dashboard is JSON, takes its datasource from the `datasource`
# variable, rates over $__rate_interval (or $__range), and names only metrics documented in
# docs/operations.md; every alert names only documented metrics, carries summary,
# description and a runbook that is a heading of docs/operations.md, has a line in the
# README's "Alerts" and a test in alerts_test.yml. With promtool: `check rules`, `test rules`,
# and mutants: alerts.yml with one threshold or one `for:` moved must make a test of that
# alert fail, so the tests cannot pass whatever the rules say. Exit 77 (skipped) only when promtool is
# not installed, after the checks that need no promtool.
set -uo pipefail
src=${PB_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src" || exit 1

/usr/bin/python3 - <<'PY' || exit 1
import json, re, sys

bad = []
ops = open("docs/operations.md", encoding="utf-8").read()
documented = set()
for line in ops.split("\n"):
    if line.startswith("| `planb_"):
        documented |= set(re.findall(r"`(planb_\w+)`", line.split("|")[1]))

def metrics(expr):
    names = set(re.findall(r"\bplanb_\w+", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if re.sub(r"_(bucket|sum|count)$", "", n)
            in documented else n for n in names}

def anchor(heading):
    a = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return a.replace(" ", "-")

headings = {anchor(h) for h in re.findall(r"^#+ (.*)$", ops, re.M)}

# The dashboard.
try:
    dash = json.load(open("deploy/grafana/planb.json", encoding="utf-8"))
except ValueError as e:
    sys.exit("FAIL: deploy/grafana/planb.json is not JSON: %s" % e)
var = [v for v in dash.get("templating", {}).get("list", []) if v.get("name") == "datasource"]
if not var or var[0].get("type") != "datasource" or var[0].get("query") != "prometheus":
    bad.append("planb.json: no `datasource` variable of type datasource (prometheus)")
exprs = 0
for p in dash.get("panels", []):
    if p.get("type") == "row":
        continue
    title = p.get("title", "?")
    for t in [p] + p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${datasource}":
            bad.append("planb.json: panel %r does not use ${datasource}" % title)
    if not p.get("targets"):
        bad.append("planb.json: panel %r has no query" % title)
    for t in p.get("targets", []):
        e = t.get("expr", "")
        exprs += 1
        for fixed in re.findall(r"\[([^\]]+)\]", e):
            if fixed not in ("$__rate_interval", "$__range"):
                bad.append("planb.json: %r uses a fixed range [%s]" % (title, fixed))
        for m in metrics(e):
            if m not in documented:
                bad.append("planb.json: %r uses %s, not in docs/operations.md" % (title, m))
        if not metrics(e):
            bad.append("planb.json: %r queries no planb metric: %s" % (title, e))
if exprs < 20:
    bad.append("planb.json: only %d queries" % exprs)

# The rules: one block per "- alert:", fields read from its lines.
rules = open("deploy/prometheus/alerts.yml", encoding="utf-8").read()
tests = open("deploy/prometheus/alerts_test.yml", encoding="utf-8").read()
readme = open("README.md", encoding="utf-8").read()
alerts_part = readme.split("\n## Alerts\n", 1)
if len(alerts_part) < 2:
    bad.append("README.md has no \"## Alerts\" section")
    alerts_part = ["", ""]
alerts_part = alerts_part[1].split("\n## ", 1)[0]
blocks = re.split(r"\n\s*- alert: ", rules)[1:]
if len(blocks) < 8:
    bad.append("alerts.yml: only %d alerts" % len(blocks))
for b in blocks:
    name = b.split("\n", 1)[0].strip()
    expr = re.search(r"^\s*expr: (.*)$", b, re.M)
    for m in metrics(expr.group(1) if expr else ""):
        if m not in documented:
            bad.append("%s uses %s, not in docs/operations.md" % (name, m))
    for field in ("summary", "description", "runbook"):
        if not re.search(r"^\s*%s: \S" % field, b, re.M):
            bad.append("%s has no %s annotation" % (name, field))
    if not re.search(r"^\s*for: \d+m$", b, re.M):
        bad.append("%s has no for: in minutes" % name)
    rb = re.search(r'runbook: "docs/operations.md#([\w-]+)"', b)
    if not rb or rb.group(1) not in headings:
        bad.append("%s: runbook is not a heading of docs/operations.md" % name)
    if "`%s`" % name not in alerts_part:
        bad.append("%s is not in the README's Alerts" % name)
    if "alertname: %s\n" % name not in tests:
        bad.append("%s has no test in alerts_test.yml" % name)
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

command -v promtool >/dev/null || { echo "SKIP: promtool not installed (Debian package prometheus)"; exit 77; }
dir=deploy/prometheus
promtool check rules "$dir/alerts.yml" || { echo "FAIL: promtool check rules"; exit 1; }
promtool test rules "$dir/alerts_test.yml" || { echo "FAIL: promtool test rules"; exit 1; }

# Mutants: "ALERT|FROM|TO" replaces FROM by TO inside that alert's rule only.
mutants=(
  "PlanbFallbackRateHigh|> 0.2|>= 0.2" "PlanbFallbackRateHigh|> 0.2|> 0.21"
  "PlanbFallbackRateHigh|for: 5m|for: 4m" "PlanbFallbackRateHigh|for: 5m|for: 6m"
  "PlanbDegradedReplies|> 0.01|>= 0.01" "PlanbDegradedReplies|> 0.01|> 0.011"
  "PlanbDegradedReplies|for: 5m|for: 4m" "PlanbDegradedReplies|for: 5m|for: 6m"
  "PlanbBreakerOpen|> 0|>= 0" "PlanbBreakerOpen|> 0|> 1"
  "PlanbBreakerOpen|for: 10m|for: 9m" "PlanbBreakerOpen|for: 10m|for: 11m"
  "PlanbQueueStale|> 60|>= 60" "PlanbQueueStale|> 60|> 61"
  "PlanbQueueStale|for: 2m|for: 1m" "PlanbQueueStale|for: 2m|for: 3m"
  "PlanbNoWorkers|< 1|<= 1" "PlanbNoWorkers|< 1|< 0"
  "PlanbNoWorkers|for: 1m|for: 0m" "PlanbNoWorkers|for: 1m|for: 2m"
  "PlanbDeadLettersGrowing|> 0|>= 0" "PlanbDeadLettersGrowing|> 0|> 1.2"
  "PlanbDeadLettersGrowing|for: 1m|for: 0m" "PlanbDeadLettersGrowing|for: 1m|for: 2m"
  "PlanbRedisDown|== 0|<= 1" "PlanbRedisDown|== 0|< 0"
  "PlanbRedisDown|for: 1m|for: 0m" "PlanbRedisDown|for: 1m|for: 2m"
  "PlanbResultsHeld|> 10|>= 10" "PlanbResultsHeld|> 10|> 11"
  "PlanbResultsHeld|for: 5m|for: 4m" "PlanbResultsHeld|for: 5m|for: 6m"
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$dir/alerts_test.yml" "$tmp/"
bad=0
for m in "${mutants[@]}"; do
  IFS='|' read -r alert from to <<<"$m"
  if ! /usr/bin/python3 - "$dir/alerts.yml" "$tmp/alerts.yml" "$alert" "$from" "$to" <<'PY'; then
import re, sys
text = open(sys.argv[1]).read()
alert, frm, to = sys.argv[3:6]
start = text.index("- alert: %s\n" % alert)
nxt = text.find("- alert: ", start + 1)
end = nxt if nxt >= 0 else len(text)
block = text[start:end]
if block.count(frm) != 1:
    sys.exit("mutant %s: %r is not once in its rule" % (alert, frm))
open(sys.argv[2], "w").write(text[:start] + block.replace(frm, to) + text[end:])
PY
    echo "FAIL: mutant $m could not be made"
    bad=1
    continue
  fi
  # Caught = a test of that very alert saw other alerts than it expected (a rule file that
  # does not load fails without naming an alertname, and does not count).
  out=$(promtool test rules "$tmp/alerts_test.yml" 2>&1)
  if ! grep -q "alertname: $alert," <<<"$out"; then
    echo "FAIL: no test of $alert fails with its '$from' made '$to'"
    echo "$out" | head -5
    bad=1
  fi
done
[ "$bad" = 0 ] || exit 1
echo "PASS: rules checked, tests pass, ${#mutants[@]} mutants caught"
