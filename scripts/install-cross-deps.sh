#!/usr/bin/env bash
# Installs what the aarch64 (Raspberry Pi OS) build and its qemu check need on Debian 12,
# and only what is missing: the arm64 architecture in dpkg, Debian's aarch64 cross gcc, the
# arm64 ALSA headers (multiarch), the arm64 libraries the binary loads under qemu-user (libc6,
# libgcc-s1, libasound2: dependencies of the headers, named because they are what runs),
# qemu-user-static, and the Rust target. Needs root or sudo for apt; the Rust target comes from
# rustup. scripts/check-test-deps.sh checks the result.
set -euo pipefail

# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "adding the arm64 architecture to dpkg"
  "${as_root[@]}" dpkg --add-architecture arm64 || { echo "error: need root or sudo to add arm64 to dpkg" >&2; exit 1; }
fi
apt_install_missing gcc-aarch64-linux-gnu libc6-dev-arm64-cross libasound2-dev:arm64 libc6:arm64 libgcc-s1:arm64 \
  libasound2:arm64 qemu-user-static cmake pkgconf file

if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  command -v rustup >/dev/null || { echo "error: rustup is needed to add the aarch64-unknown-linux-gnu target" >&2; exit 1; }
  rustup target add aarch64-unknown-linux-gnu
fi
