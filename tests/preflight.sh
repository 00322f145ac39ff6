#!/usr/bin/env bash
# scripts/check-test-deps.sh, the preflight of `make check` and `make system-test`: on this
# machine (after the install steps) it passes and `dpkg -S` agrees with every package it names;
# every package it names is one the install scripts install; and with programs hidden from
# PATH it fails in one message that names each with its package. PATH-based: nothing is
# uninstalled.
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$repo"

preflight=scripts/check-test-deps.sh

out=$("$preflight" --owners 2>&1) || fail "the preflight fails here (run make deps cross-deps test-deps): $out"
check_contains "passes when everything is installed" "is here" "$out"

# Every package in its table is installed by one of the install scripts.
named=$(cat scripts/install-deps.sh scripts/install-cross-deps.sh scripts/install-test-deps.sh | tr -s ' \t\\' '\n\n\n')
while IFS='|' read -r _ name package _; do
  check "$name: its package $package is in an install script" grep -qxF -- "$package" <<<"$named"
done < <(grep -E '^(cmd|file)\|' "$preflight")

# without NAME...: a PATH folder with a link to every program on PATH but NAME...
without() {
  local bin dir i dirs
  bin=$(mktemp -d "$scratch/bin.XXXXXX")
  IFS=: read -ra dirs <<<"$PATH"
  # From the last folder to the first, replacing: the first on PATH wins, as in a lookup.
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    dir=${dirs[i]}
    if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then ln -sf "$dir"/* "$bin"/ 2>/dev/null || true; fi
  done
  for name in "$@"; do rm -f "$bin/$name"; done
  echo "$bin"
}

# Two programs missing: one message, both named with their package, one install command.
bin=$(without qemu-system-aarch64 mcopy)
check "the test PATH still has the rest" test -e "$bin/mmdebstrap"
status=0
message=$(PATH=$bin "$preflight" 2>&1) || status=$?
check_eq "missing programs: exit status" 1 "$status"
check_eq "one message" 1 "$(grep -c 'error:' <<<"$message")"
check_contains "names the count" "2 thing(s)" "$message"
check_contains "qemu-system-aarch64 and its package" "qemu-system-aarch64" "$message"
check_contains "qemu-system-aarch64's package" "package qemu-system-arm" \
  "$(grep '^  qemu-system-aarch64 ' <<<"$message")"
check_contains "mcopy's package" "package mtools" "$(grep '^  mcopy ' <<<"$message")"
check_contains "one apt-get line with both" "apt-get install --no-install-recommends mtools qemu-system-arm" "$message"
check_contains "says how to install" "make deps cross-deps test-deps" "$message"

# Installed in /usr/sbin but not on PATH (a non-root user's PATH on Debian): said so.
if [ -x /usr/sbin/sfdisk ]; then
  status=0
  message=$(PATH=$(without sfdisk) "$preflight" 2>&1) || status=$?
  check_eq "sfdisk off PATH: exit status" 1 "$status"
  check_contains "sfdisk off PATH: says where it is" "sfdisk" "$(grep 'not on PATH' <<<"$message")"
  check_contains "sfdisk off PATH: how to fix" 'export PATH="$PATH:/usr/sbin:/sbin"' "$message"
fi

echo "tests/preflight.sh: $checks checks passed"
