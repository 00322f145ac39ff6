#!/usr/bin/env bash
# What the shell tests need beyond scripts/install-deps.sh, installed only where missing:
#   tests/image.sh   sfdisk, mtools, dosfstools, e2fsprogs, fakeroot, xz, openssl, ssh-keygen
#   tests/deploy.sh  a real sshd and ssh client, qemu-aarch64 (the stand-in service runs the binary)
#   tests/system.sh  mmdebstrap, qemu-system-aarch64, and binfmt_misc for aarch64 (mmdebstrap
#                    runs the arm64 packages' scripts through it)
#   make check      shellcheck on every shell script
# Runs apt-get as root or through sudo.
set -euo pipefail

packages=(fdisk mtools dosfstools e2fsprogs fakeroot xz-utils openssl openssh-client openssh-server
  udev mmdebstrap qemu-system-arm qemu-user-static binfmt-support arch-test shellcheck)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else sudo=(false); fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    { echo "error: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  # --no-install-recommends: openssh-server and udev without the rest of a desktop's services.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# aarch64 programs run through qemu when executed (mmdebstrap's arm64 maintainer scripts, the
# deploy test's stand-in service). In a container binfmt_misc may need mounting first.
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || "${sudo[@]}" mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    { echo "error: cannot mount binfmt_misc (needed to run aarch64 programs)" >&2; exit 1; }
  "${sudo[@]}" update-binfmts --enable qemu-aarch64 ||
    { echo "error: cannot register qemu-aarch64 with binfmt_misc" >&2; exit 1; }
fi
