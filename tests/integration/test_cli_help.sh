#!/usr/bin/env bash
# test_cli_help.sh -- `planb --help` and each subcommand's --help match docs/cli.md.
#
# Every usage line of docs/cli.md's usage block must appear (whitespace-normalised) in the
# --help of its subcommand or, for serve and submit, in `planb --help` as a command; and every
# command `planb --help` lists must be in that block. Every flag (--name) of the block is in
# `planb --help` and parsed by cli/ (its name is a string in cli/*.c), and every flag
# `planb --help` shows is in the block; every command and flag docs/cli.md's text names
# (`planb X`, `--flag`) exists too.
. "$(dirname "$0")/../support/world.sh"
DOC=$PB_SRC_DIR/docs/cli.md
norm() { tr -s ' \t' ' ' | sed 's/^ //; s/ $//'; }
block=$(awk '/^```$/ { n++; next } n == 1' "$DOC" | sed 's/^ *//')
[ -n "$block" ] || fail "docs/cli.md has no usage block"
top=$("$PLANB" --help) || fail "planb --help exited non-zero"
for cmd in $(grep -oE '^  [a-z]+ ' <<<"$top" | tr -d ' '); do
  grep -qE "^planb $cmd( |$)" <<<"$block" || fail "planb --help lists '$cmd', docs/cli.md does not"
done
for cmd in $(grep -oE '^planb [a-z]+' <<<"$block" | cut -d' ' -f2 | sort -u); do
  grep -qE "^  $cmd( |$)" <<<"$top" || fail "docs/cli.md lists 'planb $cmd', planb --help does not"
  help=$("$PLANB" "$cmd" --help 2>&1) || fail "planb $cmd --help exited non-zero"
  case $cmd in serve | submit | version) continue ;; esac # they print the top-level usage
  help=$(sed 's/^usage: //; s/^ *//' <<<"$help" | norm)
  while IFS= read -r line; do
    grep -qF -- "$(norm <<<"$line")" <<<"$help" || fail "planb $cmd --help lacks: $line"
  done < <(grep -E "^planb $cmd( |$)" <<<"$block")
done

# Flags, both ways: the block against planb --help's command list (--help itself, which every
# command takes, is in the prose), and each against the parsers in cli/.
doc_flags=$(grep -oE -- '--[a-z][a-z-]*' <<<"$block" | sort -u)
help_flags=$(sed '/^every command takes/,$d' <<<"$top" | grep -oE -- '--[a-z][a-z-]*' | sort -u)
[ -n "$doc_flags" ] || fail "no flags found in docs/cli.md's usage block"
for f in $help_flags; do
  grep -qxF -- "$f" <<<"$doc_flags" || fail "planb --help shows $f, docs/cli.md's usage block does not"
done
for f in $doc_flags; do
  grep -qxF -- "$f" <<<"$help_flags" || fail "docs/cli.md shows $f, planb --help does not"
  grep -qE -- "\"(${f}|${f#--})\"" "$PB_SRC_DIR"/cli/*.c || fail "docs/cli.md shows $f, no command in cli/ parses it"
done
# The prose: every `--flag` it names is a flag some command parses (the shared -c/--help
# handling in main.c included), and every `planb X` is a command planb knows (help included).
for f in $(grep -oE -- '`--[a-z][a-z-]*' "$DOC" | tr -d '`' | sort -u); do
  grep -qE -- "\"(${f}|${f#--})\"" "$PB_SRC_DIR"/cli/*.c || fail "docs/cli.md names $f, cli/ does not parse it"
done
for cmd in $(grep -oE '`planb [a-z]+' "$DOC" | cut -d' ' -f2 | sort -u); do
  "$PLANB" "$cmd" --help >/dev/null 2>&1 || fail "docs/cli.md names 'planb $cmd', planb does not know it"
done
echo "PASS"
