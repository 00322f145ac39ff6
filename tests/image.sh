#!/usr/bin/env bash
# The image recipe (image/build-image.sh) on synthetic images with Raspberry Pi OS's layout,
# once in each first-boot style: every installed file is read back (content, mode, owner,
# symlink target), both file systems still pass fsck, and bad input is refused in one line.
# Also: the unit's sandbox rating, the udev rules' syntax and the sysctl keys.
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

binary=${1:-$repo/target/aarch64-unknown-linux-gnu/release/pivox}
[ -f "$binary" ] || fail "no aarch64 binary at $binary (make aarch64)"

# ext4 inside an image: FILE's "TYPE MODE UID GID", its content, a symlink's target.
ext_stat() {
  debugfs -R "stat \"$2\"" "$1" 2>/dev/null | awk '
    /^Inode:/ { for (i = 1; i <= NF; i++) { if ($i == "Type:") t = $(i + 1); if ($i == "Mode:") m = $(i + 1) } }
    /^User:/ { u = $2; g = $4 }
    END { print t, m, u, g }'
}
ext_cat() { debugfs -R "cat \"$2\"" "$1" 2>/dev/null; }
ext_link() { debugfs -R "stat \"$2\"" "$1" 2>/dev/null | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p'; }

# check_file IMAGE_EXT PATH "TYPE MODE UID GID" [EXPECTED_CONTENT_FILE]
check_file() {
  check_eq "$2: type, mode, owner" "$3" "$(ext_stat "$1" "$2")"
  if [ -n "${4:-}" ]; then
    ext_cat "$1" "$2" >"$scratch/readback"
    check "$2: content equals $4" cmp -s "$4" "$scratch/readback"
  fi
}

ssh-keygen -q -t ed25519 -N '' -C 'maker@pivox-test' -f "$scratch/key"
echo 'correct horse battery' >"$scratch/wifi-password"
hash=$(openssl passwd -6 -salt pivoxsalt 'a password')

for style in bookworm cloud-init; do
  base="$scratch/base-$style.img" out="$scratch/pivox-$style.img"
  make_base_image "$base" "$style" 2>/dev/null
  base_sum=$(sha256sum <"$base")
  extra=()
  [ "$style" = bookworm ] && extra=(--password-hash "$hash")
  # The base image arrives compressed, as downloaded.
  xz -T0 -1 -k "$base"
  image/build-image.sh --base "$base.xz" --out "$out" --binary "$binary" --ssh-key "$scratch/key.pub" \
    --hostname kitchen --user maker --wifi-ssid 'Home Net' --wifi-password-file "$scratch/wifi-password" \
    --wifi-country gb --hat respeaker-2mic "${extra[@]}" >"$scratch/build.log"
  check_contains "$style: style detected" "first-boot style: $style (detected)" "$(cat "$scratch/build.log")"
  check_eq "$style: the base image is untouched" "$base_sum" "$(sha256sum <"$base")"
  check "$style: no partial image left" test ! -e "$out.partial"

  read -r boot_off root_off <<<"$(partition_offsets "$out")"
  ext="$out?offset=$root_off" fat="$out@@$boot_off"
  check_eq "$style: partition table kept" "$(sfdisk --dump "$base" | sed 's/.*: start/start/' | grep start)" \
    "$(sfdisk --dump "$out" | sed 's/.*: start/start/' | grep start)"

  # The daemon and its system files.
  check_file "$ext" /usr/local/bin/pivox "regular 0755 0 0" "$binary"
  check_file "$ext" /etc/systemd/system/pivox.service "regular 0644 0 0" image/rootfs/etc/systemd/system/pivox.service
  check_file "$ext" /etc/systemd/system/multi-user.target.wants/pivox.service "symlink 0777 0 0"
  check_eq "$style: pivox.service enabled" /etc/systemd/system/pivox.service \
    "$(ext_link "$ext" /etc/systemd/system/multi-user.target.wants/pivox.service)"
  check_file "$ext" /usr/lib/sysusers.d/pivox.conf "regular 0644 0 0" image/rootfs/usr/lib/sysusers.d/pivox.conf
  check_file "$ext" /usr/lib/tmpfiles.d/pivox.conf "regular 0644 0 0" image/rootfs/usr/lib/tmpfiles.d/pivox.conf
  check_file "$ext" /etc/modules-load.d/pivox.conf "regular 0644 0 0" image/rootfs/etc/modules-load.d/pivox.conf
  check_file "$ext" /etc/sysctl.d/90-pivox.conf "regular 0644 0 0" sysctl.d/90-pivox.conf
  for rules in udev/*.rules; do
    check_file "$ext" "/etc/udev/rules.d/$(basename "$rules")" "regular 0644 0 0" "$rules"
  done
  mtype -i "$fat" ::/pivox.toml | tr -d '\r' >"$scratch/readback"
  check "$style: pivox.toml on the boot partition" cmp -s image/pivox.toml "$scratch/readback"

  # Hostname and SSH.
  check_eq "$style: hostname" kitchen "$(ext_cat "$ext" /etc/hostname)"
  check_contains "$style: hosts names it" $'127.0.1.1\tkitchen' "$(ext_cat "$ext" /etc/hosts)"
  check "$style: the old name is gone from hosts" test -z "$(ext_cat "$ext" /etc/hosts | grep raspberrypi || true)"
  check_contains "$style: localhost kept" $'127.0.0.1\tlocalhost' "$(ext_cat "$ext" /etc/hosts)"
  check_eq "$style: ssh enabled" /lib/systemd/system/ssh.service \
    "$(ext_link "$ext" /etc/systemd/system/multi-user.target.wants/ssh.service)"
  check_file "$ext" /etc/ssh/authorized_keys/maker "regular 0644 0 0" "$scratch/key.pub"
  check_file "$ext" /etc/ssh/sshd_config.d/50-pivox.conf "regular 0644 0 0"
  check_contains "$style: sshd reads the key file" 'AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys/%u' \
    "$(ext_cat "$ext" /etc/ssh/sshd_config.d/50-pivox.conf)"

  # First boot: the user, in the image's own style.
  case "$style" in
    bookworm)
      check_eq "userconf.txt" "maker:$hash" "$(mtype -i "$fat" ::/userconf.txt | tr -d '\r')"
      check "ssh file" mdir -b -i "$fat" ::/ssh >/dev/null
      check_file "$ext" /etc/sudoers.d/020_pivox-maker "regular 0440 0 0"
      check_eq "sudo rule" "maker ALL=(ALL) NOPASSWD: ALL" "$(ext_cat "$ext" /etc/sudoers.d/020_pivox-maker)"
      check "a password given: password login stays on" \
        test -z "$(ext_cat "$ext" /etc/ssh/sshd_config.d/50-pivox.conf | grep PasswordAuthentication || true)"
      check_refused "no user-data in the bookworm style" "" mtype -i "$fat" ::/user-data
      ;;
    cloud-init)
      user_data=$(mtype -i "$fat" ::/user-data | tr -d '\r')
      check_eq "user-data header" "#cloud-config" "$(head -1 <<<"$user_data")"
      check_contains "user-data: user" $'user:\n  name: maker\n  shell: /bin/bash\n  lock_passwd: true' "$user_data"
      check_contains "user-data: key" "    - \"$(cat "$scratch/key.pub")\"" "$user_data"
      check_contains "user-data: sudo" '  sudo: "ALL=(ALL) NOPASSWD:ALL"' "$user_data"
      check_contains "user-data: hostname" "hostname: kitchen" "$user_data"
      check_contains "user-data: ssh on" "  - [systemctl, enable, --now, ssh]" "$user_data"
      check_contains "user-data: no password login" "ssh_pwauth: false" "$user_data"
      check_contains "meta-data: a new instance" "instance-id: pivox-" "$(mtype -i "$fat" ::/meta-data)"
      check "key only: password login off" test -n "$(ext_cat "$ext" /etc/ssh/sshd_config.d/50-pivox.conf | grep -x 'PasswordAuthentication no')"
      check_refused "no userconf.txt in the cloud-init style" "" mtype -i "$fat" ::/userconf.txt
      if python3 -c 'import yaml' 2>/dev/null; then
        check "user-data is YAML with the user" python3 -c 'import sys, yaml; d = yaml.safe_load(sys.stdin); assert d["user"]["name"] == "maker" and len(d["user"]["ssh_authorized_keys"]) == 1' <<<"$user_data"
      fi
      ;;
  esac

  # Wi-Fi: NetworkManager file (root, 0600, power save off), country, radio unblocked.
  nm=/etc/NetworkManager/system-connections/pivox-wifi.nmconnection
  check_file "$ext" "$nm" "regular 0600 0 0"
  connection=$(ext_cat "$ext" "$nm")
  check_contains "$style: SSID" $'\nssid=Home Net\n' "$connection"
  check_contains "$style: passphrase" $'\npsk=correct horse battery\n' "$connection"
  check_contains "$style: Wi-Fi power save off" $'\npowersave=2\n' "$connection"
  cmdline=$(mtype -i "$fat" ::/cmdline.txt | tr -d '\r')
  check_eq "$style: cmdline.txt one line, country appended" 1 "$(wc -l <<<"$cmdline")"
  check_contains "$style: regulatory domain" " rootwait quiet cfg80211.ieee80211_regdom=GB" "$cmdline"
  check_contains "$style: radio enabled" "WirelessEnabled=true" "$(ext_cat "$ext" /var/lib/NetworkManager/NetworkManager.state)"
  check_eq "$style: rfkill state unblocked" 0 "$(ext_cat "$ext" '/var/lib/systemd/rfkill/platform-3f300000.mmcnr:wlan')"

  # Voice HAT.
  config_txt=$(mtype -i "$fat" ::/config.txt | tr -d '\r')
  check_contains "$style: HAT overlay" $'dtparam=i2s=on\ndtoverlay=wm8960-soundcard' "$config_txt"
  check_contains "$style: config.txt kept" "dtparam=audio=on" "$config_txt"

  # Both file systems are sound.
  check "$style: e2fsck -fn" e2fsck -fn "$ext" >/dev/null 2>&1
  dd if="$out" of="$scratch/boot.part" bs=512 skip=$((boot_off / 512)) count=$((48 * 2048)) status=none
  check "$style: fsck.fat -n" fsck.fat -n "$scratch/boot.part" >/dev/null

  rm -f "$base.xz"
done

# Running it again on its own output changes nothing it should not: no duplicate overlay, country.
again="$scratch/again.img"
image/build-image.sh --base "$scratch/pivox-bookworm.img" --out "$again" --binary "$binary" --ssh-key "$scratch/key.pub" \
  --wifi-country DE --hat respeaker-2mic >/dev/null
read -r boot_off root_off <<<"$(partition_offsets "$again")"
check_eq "rebuilt: one overlay line" 1 "$(mtype -i "$again@@$boot_off" ::/config.txt | grep -c wm8960)"
cmdline=$(mtype -i "$again@@$boot_off" ::/cmdline.txt)
check_contains "rebuilt: country replaced" "cfg80211.ieee80211_regdom=DE" "$cmdline"
check_eq "rebuilt: only one country" 1 "$(grep -o regdom <<<"$cmdline" | wc -l)"
check "rebuilt: e2fsck -fn" e2fsck -fn "$again?offset=$root_off" >/dev/null 2>&1

# Refusals: one line each, and no image written.
base="$scratch/base-bookworm.img" out="$scratch/refused.img"
build() { image/build-image.sh --base "$base" --out "$out" --binary "$binary" "$@"; }
check_refused "no login method" "no way to log in" build
check_refused "a private key" "is a private key" build --ssh-key "$scratch/key"
check_refused "a password instead of a hash" "must be a crypt hash" build --password-hash 'hunter2'
check_refused "an x86 binary" "is x86_64, not aarch64" build --ssh-key "$scratch/key.pub" --binary "$repo/target/debug/pivox"
check_refused "Wi-Fi without a country" "needs --wifi-country" build --ssh-key "$scratch/key.pub" --wifi-ssid x
echo short >"$scratch/short"
check_refused "a short passphrase" "8 to 63 characters" build --ssh-key "$scratch/key.pub" --wifi-ssid x --wifi-country GB --wifi-password-file "$scratch/short"
check_refused "an unknown HAT" "known are respeaker-2mic, voicehat" build --ssh-key "$scratch/key.pub" --hat seeed
check_refused "a bad hostname" "--hostname" build --ssh-key "$scratch/key.pub" --hostname -bad-
check_refused "root as the user" "--user 'root'" build --ssh-key "$scratch/key.pub" --user root
printf '[audio]\nframe_ms = 33\n' >"$scratch/bad.toml"
check_refused "a config pivox rejects" "not accepted by pivox check-config" build --ssh-key "$scratch/key.pub" --config "$scratch/bad.toml"
check_refused "an unknown option" "unknown argument '--colour'" build --colour
head -c 1M /dev/urandom >"$scratch/not-an-image.img"
check_refused "not a disk image" "no partition table" image/build-image.sh --base "$scratch/not-an-image.img" --out "$out" --binary "$binary" --ssh-key "$scratch/key.pub"
check "nothing written on refusal" test ! -e "$out" -a ! -e "$out.partial"

# pivox.service's sandbox: `systemd-analyze security` rates it 2.0 or better.
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
  rating=$(systemd-analyze security --offline=true image/rootfs/etc/systemd/system/pivox.service 2>&1 |
    sed -n 's/.*Overall exposure level for pivox.service: \([0-9.]*\).*/\1/p')
  check "sandbox exposure $rating <= 2.0" awk -v r="$rating" 'BEGIN { exit !(r != "" && r <= 2.0) }'
  echo "pivox.service exposure: $rating"
else
  echo "skipped: this systemd-analyze has no --offline (the boot test checks the unit under systemd)"
fi

# udev rules: no complaint from udev's own parser. `udevadm verify` where systemd has it (254+);
# otherwise `udevadm test` in a private mount namespace where the rules are all it sees.
if udevadm verify --help >/dev/null 2>&1; then
  check "udevadm verify" udevadm verify --resolve-names=never udev/*.rules
elif [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && [ -d /sys/class/net/lo ]; then
  mkdir "$scratch/rules.d" && cp udev/*.rules "$scratch/rules.d/"
  printf 'SUBSYSTEM=="sound", BOGUS{x}=="1"\n' >"$scratch/rules.d/99-known-bad.rules"
  parsed=$(unshare -m sh -c "mount --bind '$scratch/rules.d' /etc/udev/rules.d && udevadm test --resolve-names=never --action=add /sys/class/net/lo" 2>&1)
  check_contains "the checker sees a broken rule" "99-known-bad.rules:1 Invalid key" "$parsed"
  for rules in udev/*.rules; do
    check_contains "udev read $rules" "Reading rules file: /etc/udev/rules.d/$(basename "$rules")" "$parsed"
  done
  problems=$(grep -E 'pivox[^ ]*\.rules:[0-9]+' <<<"$parsed" | grep -v 'Resolving group name is disabled' || true)
  check_eq "udev: no problem in pivox's rules" "" "$problems"
else
  echo "skipped: udev syntax check needs udevadm verify or root (the boot test loads the rules)"
fi

# sysctl.d: every setting names a key this kernel knows, each with its reason above it.
while read -r key _ value; do
  check "sysctl key $key exists" test -e "/proc/sys/${key//.//}"
  check "sysctl $key has a value" test -n "$value"
done < <(grep -E '^[a-z]' sysctl.d/90-pivox.conf)
check "sysctl: no big buffers" test -z "$(grep -E '^net\.core\.[rw]mem_max' sysctl.d/90-pivox.conf || true)"
check "sysctl: a reason above each setting" awk '/^[a-z]/ && prev !~ /^(#|[a-z])/ { exit 1 } { prev = $0 }' sysctl.d/90-pivox.conf

echo "tests/image.sh: $checks checks passed"
