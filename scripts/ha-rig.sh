#!/usr/bin/env bash
# Prints where the Home Assistant rig (the shared ha-rig folder, beside this repository) is:
# $PIVOX_HA_RIG if set, else ../shared/ha-rig beside this checkout, else beside the checkout
# this one was cloned from (a fresh clone in a temporary folder, as CI makes). Exit 1 if none.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
candidates=("${PIVOX_HA_RIG:-}" "$repo/../shared/ha-rig")
origin=$(git -C "$repo" config --get remote.origin.url 2>/dev/null || true)
# Only a local origin (a path) has a folder beside it.
case "$origin" in
  /*) candidates+=("$origin/../shared/ha-rig") ;;
  file://*) candidates+=("${origin#file://}/../shared/ha-rig") ;;
esac
for rig in "${candidates[@]}"; do
  if [ -n "$rig" ] && [ -x "$rig/setup.sh" ]; then
    (cd "$rig" && pwd)
    exit 0
  fi
done
echo "no Home Assistant rig (ha-rig) beside this repository or its origin; set PIVOX_HA_RIG" >&2
exit 1
