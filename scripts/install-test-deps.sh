#!/usr/bin/env bash
# What the shell tests need beyond scripts/install-deps.sh, installed only where missing:
#   tests/image.sh   sfdisk, mtools, dosfstools, e2fsprogs, fakeroot, xz, openssl, ssh-keygen,
#                    udevadm and systemd-analyze (rules and sandbox checks), unshare
#   tests/deploy.sh  a real sshd and ssh client, qemu-aarch64 (the stand-in service runs the binary)
#   tests/system.sh  mmdebstrap (with arch-test and Debian's archive keyring), qemu-system-aarch64
#                    (its network card without a ROM: ipxe-qemu, a recommendation, is not needed;
#                    its USB controller and USB sound card need none), binfmt_misc for aarch64
#                    (mmdebstrap runs the arm64 packages' scripts through it), python3 (a QMP
#                    client pulses the VM's GPIO line) and sox (the level of the ALSA reply)
#   tests/ha-esphome.sh  the Home Assistant rig (../shared/ha-rig): espeak-ng and sox (its test
#                    utterance and text-to-speech double), ffmpeg (HA converts the reply through
#                    it), curl (HA's REST API); the rig also needs a Python 3.13, which apt
#                    does not have on Debian 12 (pyenv's will do)
#   cargo test      iproute2 (`ip netns`: the mDNS test's network namespace)
#   tests/fleet.sh  ansible-core from PyPI in its own environment (scripts/install-fleet-deps.sh,
#                   with python3 and python3-venv), and tests/deploy.sh's sshd and qemu
#   make check      shellcheck on every shell script
# Runs apt-get as root or through sudo. scripts/check-test-deps.sh checks the result, and names
# the package of anything still missing.
set -euo pipefail

# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"
# --no-install-recommends: openssh-server and udev without the rest of a desktop's services.
apt_install_missing --no-install-recommends fdisk mtools dosfstools e2fsprogs fakeroot xz-utils openssl \
  openssh-client openssh-server udev systemd util-linux mmdebstrap arch-test debian-archive-keyring \
  qemu-system-arm qemu-user-static binfmt-support shellcheck espeak-ng sox ffmpeg curl iproute2 \
  python3 python3-venv

# aarch64 programs run through qemu when executed (mmdebstrap's arm64 maintainer scripts, the
# deploy test's stand-in service). In a container binfmt_misc may need mounting first.
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || "${as_root[@]}" mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    { echo "error: cannot mount binfmt_misc (needed to run aarch64 programs)" >&2; exit 1; }
  "${as_root[@]}" update-binfmts --enable qemu-aarch64 ||
    { echo "error: cannot register qemu-aarch64 with binfmt_misc" >&2; exit 1; }
fi

"$(dirname "$0")/install-fleet-deps.sh"
