#!/usr/bin/env bash
# What the shell tests need beyond scripts/install-deps.sh, installed only where missing:
#   tests/image.sh   sfdisk, mtools, dosfstools, e2fsprogs, fakeroot, xz, openssl, ssh-keygen
#   tests/deploy.sh  a real sshd and ssh client, qemu-aarch64 (the stand-in service runs the binary)
#   tests/system.sh  mmdebstrap, qemu-system-aarch64, and binfmt_misc for aarch64 (mmdebstrap
#                    runs the arm64 packages' scripts through it)
#   make check      shellcheck on every shell script
# Runs apt-get as root or through sudo.
set -euo pipefail

# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"
# --no-install-recommends: openssh-server and udev without the rest of a desktop's services.
apt_install_missing --no-install-recommends fdisk mtools dosfstools e2fsprogs fakeroot xz-utils openssl \
  openssh-client openssh-server udev mmdebstrap qemu-system-arm qemu-user-static binfmt-support arch-test shellcheck

# aarch64 programs run through qemu when executed (mmdebstrap's arm64 maintainer scripts, the
# deploy test's stand-in service). In a container binfmt_misc may need mounting first.
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || "${as_root[@]}" mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    { echo "error: cannot mount binfmt_misc (needed to run aarch64 programs)" >&2; exit 1; }
  "${as_root[@]}" update-binfmts --enable qemu-aarch64 ||
    { echo "error: cannot register qemu-aarch64 with binfmt_misc" >&2; exit 1; }
fi
