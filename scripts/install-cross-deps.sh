#!/usr/bin/env bash
# Installs what the aarch64 (Raspberry Pi OS) build and its qemu check need on Debian 12,
# and only what is missing: the arm64 architecture in dpkg, Debian's aarch64 cross gcc, the
# arm64 ALSA headers (multiarch), qemu-user-static, and the Rust target. Needs root or sudo
# for apt; the Rust target comes from rustup.
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else sudo=(false); fi
apt() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "adding the arm64 architecture to dpkg"
  "${sudo[@]}" dpkg --add-architecture arm64 || { echo "error: need root or sudo to add arm64 to dpkg" >&2; exit 1; }
  apt update -qq
fi

packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libasound2-dev:arm64 qemu-user-static cmake pkg-config file)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt update -qq
  apt install -y -qq "${missing[@]}" >/dev/null || { echo "error: could not install ${missing[*]}" >&2; exit 1; }
fi

if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  command -v rustup >/dev/null || { echo "error: rustup is needed to add the aarch64-unknown-linux-gnu target" >&2; exit 1; }
  rustup target add aarch64-unknown-linux-gnu
fi
