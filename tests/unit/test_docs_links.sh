#!/usr/bin/env bash
# test_docs_links.sh -- README.md and docs/*.md hold together: every relative link resolves.
#
# For each [text](target) outside code blocks and inline code: a relative target's file or
# folder exists (from the linking file's folder), and a #anchor names a heading of the target
# (GitHub's rule: lower-cased, punctuation but '-' and '_' dropped, spaces to '-', repeats
# numbered -1, -2). Also: every docs/*.md page opens with a sentence (after its title) and is
# in the README's map of the docs, and every page the map names exists. http(s) links are not
# fetched.
set -euo pipefail
PB_SRC_DIR=${PB_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$PB_SRC_DIR"
/usr/bin/python3 - README.md docs/*.md <<'PY'
import os, re, sys

def strip_code(text):
    out, fence = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
            out.append("")
            continue
        out.append("" if fence else re.sub(r"`[^`]*`", "", line))
    return out

def anchors(path):
    seen, result = {}, set()
    fence = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        if fence or not re.match(r"#{1,6} ", line):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    return result

bad = []
for path in sys.argv[1:]:
    lines = strip_code(open(path, encoding="utf-8").read())
    for no, line in enumerate(lines, 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(dest):
                bad.append(f"{path}:{no}: {target}: {dest} does not exist")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                bad.append(f"{path}:{no}: {target}: no heading #{anchor} in {dest}")

pages = sorted(p for p in sys.argv[1:] if p.startswith("docs/"))
readme = open("README.md", encoding="utf-8").read()
mapped = set(re.findall(r"\]\((docs/[a-z-]+\.md)\)", readme[readme.index("\n## Documentation"):]))
for p in pages:
    if p not in mapped:
        bad.append(f"README.md: the map of the docs (## Documentation) lacks {p}")
    text = open(p, encoding="utf-8").read().split("\n")
    if not (text[0].startswith("# ") and text[1] == "" and re.match(r"[A-Z`\[]", text[2] or "")):
        bad.append(f"{p}: must open with '# Title', a blank line and a sentence on what it covers")
for p in sorted(mapped):
    if not os.path.exists(p):
        bad.append(f"README.md: the map of the docs names {p}, which does not exist")

for b in bad:
    print("FAIL:", b)
if bad:
    sys.exit(1)
print(f"PASS: {len(sys.argv) - 1} files")
PY
