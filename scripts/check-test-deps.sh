#!/usr/bin/env bash
# The preflight of `make check` and `make system-test`: every program and file the build and the
# tests use (Makefile, tests/*.sh, scripts/*.sh, image/build-image.sh, deploy.sh), checked in
# about a second, before any long step. Whatever is missing is listed in ONE message with the
# Debian package that provides it; scripts/install-deps.sh, install-cross-deps.sh and
# install-test-deps.sh (`make deps cross-deps test-deps`) install every package named here.
# Essential packages (coreutils, tar, grep, sed, mawk, dpkg, apt) are taken as given.
#
#   scripts/check-test-deps.sh           exit 0, or exit 1 with the list of what is missing
#   scripts/check-test-deps.sh --owners  also confirm with `dpkg -S` that each program or file
#                                        present belongs to the package named for it
#
# Programs are looked up on PATH, as the tests run them (so a test can hide one).
set -euo pipefail

owners=no
case "${1:-}" in
  '') ;;
  --owners) owners=yes ;;
  *) echo "usage: $0 [--owners]" >&2; exit 2 ;;
esac

host_multiarch="$(uname -m)-linux-gnu"

# KIND|NAME|PACKAGE|OWNER|WHAT FOR. KIND: cmd (a program on PATH) or file. PACKAGE is what to
# install; OWNER, where it differs, is the package `dpkg -S` names (PACKAGE depends on it; a
# glob). Keep it in step with the three install scripts.
needs="\
cmd|cc|build-essential|gcc-*|the C compiler (libopus, ring)
cmd|cmake|cmake||building the bundled libopus
cmd|pkg-config|pkgconf||finding the ALSA library
file|/usr/lib/$host_multiarch/pkgconfig/alsa.pc|libasound2-dev||the ALSA library to link against
cmd|aarch64-linux-gnu-gcc|gcc-aarch64-linux-gnu||linking the Raspberry Pi (aarch64) binary
file|/usr/aarch64-linux-gnu/lib/crt1.o|libc6-dev-arm64-cross||the aarch64 C library to link against
file|/usr/lib/aarch64-linux-gnu/pkgconfig/alsa.pc|libasound2-dev:arm64||the arm64 ALSA library to link against
file|/lib/ld-linux-aarch64.so.1|libc6:arm64||running the aarch64 binary under qemu-user
file|/lib/aarch64-linux-gnu/libgcc_s.so.1|libgcc-s1:arm64||running the aarch64 binary under qemu-user
file|/usr/lib/aarch64-linux-gnu/libasound.so.2|libasound2:arm64||running the aarch64 binary under qemu-user
cmd|qemu-aarch64-static|qemu-user-static||running the aarch64 binary (make aarch64-check, tests/deploy.sh)
cmd|file|file||scripts/aarch64-check.sh's architecture check
cmd|shellcheck|shellcheck||linting the shell scripts
cmd|sfdisk|fdisk||partition tables (image recipe, tests)
cmd|mcopy|mtools||the FAT boot partition
cmd|mtype|mtools||the FAT boot partition
cmd|mdir|mtools||the FAT boot partition
cmd|mkfs.vfat|dosfstools||the test images' boot partition
cmd|fsck.fat|dosfstools||checking the boot partition (tests/image.sh)
cmd|mke2fs|e2fsprogs||the test images' root file system
cmd|e2fsck|e2fsprogs||checking the root file system
cmd|debugfs|e2fsprogs||editing the root file system (image recipe)
cmd|fakeroot|fakeroot||root-owned files without root (tests)
cmd|xz|xz-utils||compressed base images
cmd|openssl|openssl||password hashes (tests/image.sh)
cmd|ssh-keygen|openssh-client||test SSH keys
cmd|ssh|openssh-client||deploy.sh and the boot test's login
cmd|sshd|openssh-server||tests/deploy.sh's SSH server
cmd|udevadm|udev||checking the udev rules (tests/image.sh)
cmd|systemd-analyze|systemd||rating pivox.service's sandbox (tests/image.sh)
cmd|unshare|util-linux||the udev rules check as root (tests/image.sh)
cmd|mmdebstrap|mmdebstrap||the boot test's arm64 root file system
cmd|arch-test|arch-test||mmdebstrap's check that arm64 programs run
file|/usr/share/keyrings/debian-archive-keyring.gpg|debian-archive-keyring||mmdebstrap's download check
cmd|qemu-system-aarch64|qemu-system-arm||the boot test's virtual machine
cmd|espeak-ng|espeak-ng||the HA rig's test utterance and speech double
cmd|sox|sox||the HA rig's utterance; the HA test's microphone; the boot test's reply level
cmd|ffmpeg|ffmpeg||Home Assistant's reply conversion (HA test)
cmd|curl|curl||Home Assistant's REST API (tests/ha-esphome.sh)
cmd|ip|iproute2||the mDNS test's network namespace (daemon/tests/mdns.rs)
file|/usr/bin/python3|python3|python3-minimal|Ansible's Python (fleet/, tests/fleet.sh); the boot test's QMP client"

missing=() packages=() hints=() mismatches=()
# note WHAT PACKAGE-OR-HINT: one line of the message; apt packages are also gathered for a
# single install command.
note() {
  missing+=("$1")
  case "$2" in
    *' '*) hints+=("$2") ;;
    *) [[ " ${packages[*]} " == *" $2 "* ]] || packages+=("$2") ;;
  esac
}

# `dpkg -S` names the owner of the path a package installed, which on a merged-/usr system
# may be the /bin or /sbin spelling, or the target of an alternatives link.
candidates() {
  local real
  real=$(readlink -f -- "$1" 2>/dev/null || echo "$1")
  printf '%s\n' "$1" "$real" "${1#/usr}" "${real#/usr}" "/usr${1#/usr}" | sort -u
}
declare -A found_at=() owner_of=() package_of=()

while IFS='|' read -r kind name package owner why; do
  case "$kind" in
    cmd)
      if path=$(command -v -- "$name"); then
        found_at[$name]=$path
      elif [ -x "/usr/sbin/$name" ] || [ -x "/sbin/$name" ]; then
        # Installed, but a non-root user's PATH on Debian lacks the sbin folders.
        note "$(printf '%-44s %s' "$name" "is in /usr/sbin, which is not on PATH")" "export PATH=\"\$PATH:/usr/sbin:/sbin\""
        continue
      else
        note "$(printf '%-44s %-48s package %s' "$name" "$why" "$package")" "$package"
        continue
      fi
      ;;
    file)
      if [ -e "$name" ]; then found_at[$name]=$name; else
        note "$(printf '%-44s %-48s package %s' "$name" "$why" "$package")" "$package"
        continue
      fi
      ;;
  esac
  owner_of[$name]=${owner:-$package}
  package_of[$name]=$package
done <<<"$needs"

# The real Home Assistant of `make ha-test` (../shared/ha-rig) needs a Python 3.13, which Debian 12
# does not package; the build machines have pyenv's (the rig's common.sh finds it).
if rig=$("$(dirname "$0")/ha-rig.sh" 2>/dev/null); then
  rig_common=$rig/common.sh
  # shellcheck source=/dev/null
  if ! (source "$rig_common" && find_python313 >/dev/null); then
    note "$(printf '%-44s %s' python3.13 "Home Assistant 2026.2 for make ha-test (none on PATH or in pyenv)")" "install Python 3.13 (pyenv install 3.13), or set PYTHON="
  fi
else
  note "$(printf '%-44s %s' ../shared/ha-rig "the Home Assistant rig for make ha-test")" "put the shared folder beside this repository, or set PIVOX_HA_RIG"
fi

# Ansible for the fleet playbooks comes from PyPI, in an environment of its own.
if ! "${PIVOX_FLEET_VENV:-$HOME/.cache/pivox/ansible}/bin/ansible-playbook" --version >/dev/null 2>&1; then
  note "$(printf '%-44s %s' ansible-core "the fleet playbooks (tests/fleet.sh)")" "make test-deps (scripts/install-fleet-deps.sh installs it from PyPI)"
fi

# The Rust toolchain comes from rustup, not apt.
if ! command -v cargo >/dev/null; then
  note "$(printf '%-44s %s' cargo "Rust 1.87 or newer")" "install Rust with rustup: https://rustup.rs"
else
  cargo clippy --version >/dev/null 2>&1 || note "cargo clippy" "rustup component add clippy"
  cargo fmt --version >/dev/null 2>&1 || note "cargo fmt" "rustup component add rustfmt"
  if ! command -v rustup >/dev/null; then
    note "$(printf '%-44s %s' rustup "adds the aarch64 target")" "install Rust with rustup: https://rustup.rs"
  elif ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    note "$(printf '%-44s %s' "Rust target aarch64-unknown-linux-gnu" "the Raspberry Pi build")" \
      "rustup target add aarch64-unknown-linux-gnu"
  fi
fi

# aarch64 programs run through qemu when executed: mmdebstrap's arm64 maintainer scripts (in a
# chroot, so the kernel must hold the interpreter open: flag F) and the deploy test's service.
binfmt=/proc/sys/fs/binfmt_misc/qemu-aarch64
if [ ! -r "$binfmt" ]; then
  note "$(printf '%-44s %s' "binfmt_misc entry qemu-aarch64" "running arm64 programs (mmdebstrap, tests/deploy.sh)")" \
    "make test-deps (qemu-user-static and binfmt-support register it)"
elif [ "$(head -1 "$binfmt")" != enabled ] || ! grep -qE '^flags: [A-Z]*F' "$binfmt"; then
  note "$(printf '%-44s %s' "binfmt_misc entry qemu-aarch64" "disabled or without the F flag: $(grep -E '^(enabled|disabled|flags)' "$binfmt" | tr '\n' ' ')")" \
    "update-binfmts --enable qemu-aarch64 (as root)"
fi

if [ "$owners" = yes ] && command -v dpkg >/dev/null && ((${#found_at[@]})); then
  declare -A owner_by_path=()
  paths=()
  for name in "${!found_at[@]}"; do mapfile -t -O "${#paths[@]}" paths < <(candidates "${found_at[$name]}"); done
  while IFS= read -r line; do
    # "pkg[:arch][, pkg2]: /path"
    owner_by_path[${line#*: }]=${line%%: *}
  done < <(dpkg -S "${paths[@]}" 2>/dev/null || true)
  native=$(dpkg --print-architecture)
  for name in "${!found_at[@]}"; do
    owner=''
    while IFS= read -r p; do owner=${owner:-${owner_by_path[$p]:-}}; done < <(candidates "${found_at[$name]}")
    expected=${owner_of[$name]}
    # A foreign package is named with its architecture (libc6:arm64), a native one may be too.
    # shellcheck disable=SC2053 # $expected may be a glob
    if [ -z "$owner" ]; then
      mismatches+=("$name (${found_at[$name]}): dpkg -S knows no package for it; expected ${package_of[$name]}")
    elif [[ "$owner" != $expected && "${owner%:"$native"}" != $expected ]]; then
      mismatches+=("$name (${found_at[$name]}): dpkg -S names $owner, expected $expected")
    fi
  done
fi

if ((${#missing[@]})); then
  {
    echo "check-test-deps: error: ${#missing[@]} thing(s) the build and tests need are missing:"
    printf '  %s\n' "${missing[@]}"
    echo "Install them with: make deps cross-deps test-deps   (installs only what is missing)"
    ((${#packages[@]})) && echo "  or by hand: sudo apt-get install --no-install-recommends ${packages[*]}"
    ((${#hints[@]})) && printf '  and: %s\n' "${hints[@]}" | sort -u
  } >&2
  exit 1
fi
if ((${#mismatches[@]})); then
  { echo "check-test-deps: error: the package table is out of date:"; printf '  %s\n' "${mismatches[@]}"; } >&2
  exit 1
fi
echo "check-test-deps: every program and file the build and tests need is here"
