#!/usr/bin/env bash
# Installs what building and testing pivox needs on Debian 12 / Raspberry Pi OS, and only
# what is missing: a C toolchain and cmake (libopus is built from source and linked
# statically), pkg-config, and the ALSA headers. Runs apt-get as root or through sudo.
set -euo pipefail

packages=(build-essential cmake pkg-config libasound2-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "error: need root or sudo to install ${missing[*]}" >&2; exit 1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

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
