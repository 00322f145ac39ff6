#!/usr/bin/env bash
# Installs what building and testing pivox needs on Debian 12 / Raspberry Pi OS, and only
# what is missing: a C toolchain and cmake (libopus is built from source and linked
# statically), pkg-config (Debian's is pkgconf), and the ALSA headers. Runs apt-get as root or
# through sudo. scripts/check-test-deps.sh checks the result.
set -euo pipefail

# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install_missing build-essential cmake pkgconf libasound2-dev

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found. Install Rust 1.87 or newer with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi
for component in clippy rustfmt; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then rustup component add "$component"; else
      echo "error: cargo $component is missing (rustup component add $component)" >&2; exit 1
    fi
  fi
done
