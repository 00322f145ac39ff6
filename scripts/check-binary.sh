#!/usr/bin/env bash
# The controller's check of a binary before it is sent to any Pi, for deploy.sh and the fleet
# playbooks alike: it must be an aarch64 ELF file (64-bit Raspberry Pi OS). Prints its sha256,
# which the Pi's side (scripts/deploy-remote.sh) checks the upload against.
#
#   scripts/check-binary.sh FILE     sha256 on stdout, or one line on stderr and exit 1
set -euo pipefail

# shellcheck source=scripts/elf.sh
source "$(dirname "$0")/elf.sh"

[ $# = 1 ] || { echo "usage: $0 FILE" >&2; exit 2; }
binary=$1
[ -f "$binary" ] || { echo "$binary: no such file" >&2; exit 1; }
arch=$(elf_machine "$binary")
if [ "$arch" != aarch64 ]; then
  echo "$binary is $arch, not aarch64: the Pi runs 64-bit Raspberry Pi OS (build with \`make aarch64\`)" >&2
  exit 1
fi
sha256sum <"$binary" | cut -d' ' -f1
