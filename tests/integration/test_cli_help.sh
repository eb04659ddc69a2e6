#!/usr/bin/env bash
# test_cli_help.sh -- `planb --help` and each subcommand's --help match the README's "Command line".
#
# Every usage line of the README block must appear (whitespace-normalised) in the
# --help of its subcommand or, for serve and submit, in `planb --help` as a
# command; and every command `planb --help` lists must be in the README block.
. "$(dirname "$0")/../support/world.sh"
norm() { tr -s ' \t' ' ' | sed 's/^ //; s/ $//'; }
block=$(sed -n '/^## Command line/,/^## /p' "$PB_SRC_DIR/README.md" | sed -n '/^```$/,/^```$/p' |
  grep -v '^```' | sed 's/^ *//')
[ -n "$block" ] || fail "README has no Command line block"
top=$("$PLANB" --help) || fail "planb --help exited non-zero"
for cmd in $(grep -oE '^  [a-z]+ ' <<<"$top" | tr -d ' '); do
  grep -qE "^planb $cmd( |$)" <<<"$block" || fail "planb --help lists '$cmd', the README does not"
done
for cmd in $(grep -oE '^planb [a-z]+' <<<"$block" | cut -d' ' -f2 | sort -u); do
  grep -qE "^  $cmd( |$)" <<<"$top" || fail "README lists 'planb $cmd', planb --help does not"
  help=$("$PLANB" "$cmd" --help 2>&1) || fail "planb $cmd --help exited non-zero"
  case $cmd in serve | submit | version) continue ;; esac # they print the top-level usage
  help=$(sed 's/^usage: //; s/^ *//' <<<"$help" | norm)
  while IFS= read -r line; do
    grep -qF -- "$(norm <<<"$line")" <<<"$help" || fail "planb $cmd --help lacks: $line"
  done < <(grep -E "^planb $cmd( |$)" <<<"$block")
done
echo "PASS"
