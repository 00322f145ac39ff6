#!/usr/bin/env bash
# What `make bench` needs beyond scripts/install-deps.sh, installed only where missing:
#   valgrind   callgrind counts the instructions of a turn (a figure that does not move with
#              the machine's load; devtools/src/bin/pivox-bench/instructions.rs)
set -euo pipefail

# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install_missing valgrind
