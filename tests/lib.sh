# shellcheck shell=bash
# Sourced by the shell tests (tests/*.sh): checks that say what differed, a scratch directory
# removed at exit, and a synthetic Raspberry Pi OS image with the official layout.

set -euo pipefail

# Used by the tests that source this file.
# shellcheck disable=SC2034
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/pivox-test.XXXXXX")
cleanups=()
cleanup() {
  local c
  for c in "${cleanups[@]}"; do eval "$c" || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT
checks=0

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { checks=$((checks + 1)); }
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  "$@" || fail "$what"
  ok
}
check_eq() { # check_eq DESCRIPTION EXPECTED ACTUAL
  [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
  ok
}
check_contains() { # check_contains DESCRIPTION NEEDLE HAYSTACK
  [[ "$3" == *"$2"* ]] || fail "$1: '$2' not in: $3"
  ok
}
# Runs a command that must fail, and checks its one-line error.
check_refused() { # check_refused DESCRIPTION NEEDLE COMMAND...
  local what=$1 needle=$2 output status=0; shift 2
  output=$("$@" 2>&1 >/dev/null) || status=$?
  [ "$status" -ne 0 ] || fail "$what: the command succeeded"
  [[ "$output" == *"$needle"* ]] || fail "$what: '$needle' not in: $output"
  ok
}

# make_base_image OUT STYLE(bookworm|cloud-init): an MBR image laid out as Raspberry Pi OS's:
# p1 FAT32 `bootfs` (type 0x0c) with cmdline.txt and config.txt, p2 ext4 `rootfs` with the
# files the recipe reads or changes, made without root (mkfs.vfat + mcopy, mke2fs -d under
# fakeroot).
make_base_image() {
  local out=$1 style=$2 dir="$scratch/base-$2"
  rm -rf "$dir" && mkdir -p "$dir/boot" "$dir/root"
  local root="$dir/root"
  mkdir -p "$root"/etc/{systemd/system,ssh/sshd_config.d,sudoers.d,NetworkManager/system-connections} \
    "$root"/lib/systemd/system "$root"/var/lib/NetworkManager "$root"/var/lib/systemd/rfkill \
    "$root"/usr/local/bin "$root"/home/pi
  printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n' >"$root/etc/os-release"
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\traspberrypi\n' >"$root/etc/hosts"
  echo raspberrypi >"$root/etc/hostname"
  printf '[Unit]\nDescription=OpenBSD Secure Shell server\n' >"$root/lib/systemd/system/ssh.service"
  printf '[main]\nNetworkingEnabled=true\nWirelessEnabled=false\nWWANEnabled=true\n' >"$root/var/lib/NetworkManager/NetworkManager.state"
  echo 1 >"$root/var/lib/systemd/rfkill/platform-3f300000.mmcnr:wlan"
  echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/010_pi-nopasswd"
  echo 'console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet' >"$dir/boot/cmdline.txt"
  printf '# For more options and information see\n# http://rptl.io/configtxt\ndtparam=audio=on\n\n[all]\n' >"$dir/boot/config.txt"
  if [ "$style" = cloud-init ]; then
    mkdir -p "$root/etc/cloud"
    echo 'datasource_list: [ NoCloud, None ]' >"$root/etc/cloud/cloud.cfg"
    printf 'dsmode: local\ninstance_id: rpios-image\n' >"$dir/boot/meta-data"
    printf '#cloud-config\n# hostname: raspberrypi\n' >"$dir/boot/user-data"
    printf '# network:\n#   version: 2\n' >"$dir/boot/network-config"
  fi

  truncate -s 48M "$dir/boot.img"
  mkfs.vfat -F 32 -n bootfs "$dir/boot.img" >/dev/null
  mcopy -i "$dir/boot.img" "$dir"/boot/* ::/
  truncate -s 32M "$dir/root.img"
  fakeroot sh -c "chown -R 0:0 '$root' && chown 1000:1000 '$root/home/pi' && chmod 0440 '$root/etc/sudoers.d/010_pi-nopasswd' && mke2fs -q -t ext4 -L rootfs -d '$root' '$dir/root.img'"

  # 4 MiB of space before p1, as the official images have.
  truncate -s $((4 + 48 + 32))M "$out"
  printf 'label: dos\nlabel-id: 0x4e639091\nstart=8192, size=%d, type=c\nstart=%d, size=%d, type=83\n' \
    $((48 * 2048)) $(((4 + 48) * 2048)) $((32 * 2048)) | sfdisk -q "$out"
  dd if="$dir/boot.img" of="$out" bs=1M seek=4 conv=notrunc,sparse status=none
  dd if="$dir/root.img" of="$out" bs=1M seek=$((4 + 48)) conv=notrunc,sparse status=none
}

# Byte offsets of an image's two partitions: "BOOT ROOT".
partition_offsets() {
  sfdisk --dump "$1" | awk '/start=/ { match($0, /start= *[0-9]+/); s = substr($0, RSTART, RLENGTH); sub(/.*= */, "", s); printf "%d ", s * 512 }'
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  local candidate
  for _ in $(seq 1 20); do
    candidate=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then echo "$candidate"; return; fi
  done
  fail "no free port found in 20 tries"
}

sum() { sha256sum <"$1" | cut -d' ' -f1; }

# Two binaries made from a good aarch64 one, for deploy tests: DIR/pivox-new differs but runs
# (a trailing byte, which ELF loaders ignore); DIR/pivox-broken has the ELF header, then garbage,
# so it passes the architecture check and cannot start.
make_deploy_binaries() { # make_deploy_binaries GOOD_BINARY DIR
  cp "$1" "$2/pivox-new" && printf 'v2' >>"$2/pivox-new"
  head -c 4096 "$1" >"$2/pivox-broken" && head -c 65536 /dev/urandom >>"$2/pivox-broken"
}
