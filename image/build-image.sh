#!/usr/bin/env bash
# Turns an official Raspberry Pi OS Lite (arm64) image into a pivox appliance image: offline,
# without root, loop mounts or Docker. The partitions are edited in place inside a copy of the
# image: the ext4 root with debugfs, the FAT boot partition with mtools. What it changes is
# listed in image/README.md.
#
#   image/build-image.sh --base 2026-10-06-raspios-trixie-arm64-lite.img.xz --out pivox.img \
#       --ssh-key ~/.ssh/id_ed25519.pub [options]
#
# Run with --help for every option.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/elf.sh
source "$repo/scripts/elf.sh"

usage() {
  cat <<'EOF'
usage: image/build-image.sh --base IMAGE --out IMAGE (--ssh-key FILE | --password-hash HASH) [options]

  --base IMAGE            Raspberry Pi OS Lite arm64 .img or .img.xz (image/fetch-base.sh gets one)
  --out IMAGE             the image to write (flash it with Raspberry Pi Imager "use custom", or dd)
  --binary FILE           the aarch64 pivox binary (default: target/aarch64-unknown-linux-gnu/release/pivox;
                          `make aarch64` builds it)
  --ssh-key FILE          an SSH public key allowed to log in as --user (deploy.sh needs this)
  --password-hash HASH    a password for --user, as `openssl passwd -6` prints it (console and SSH)
  --user NAME             the login user (default: pi); gets passwordless sudo for deploy.sh
  --hostname NAME         the Pi's name on the network (default: pivox, so pivox.local)
  --config FILE           pivox.toml for the boot partition (default: image/pivox.toml); checked
                          with `pivox check-config --elsewhere` (files it names are on the Pi)
  --wifi-ssid SSID        join this Wi-Fi network (with --wifi-country; power save off)
  --wifi-password-file F  the Wi-Fi passphrase, first line of F (not on the command line)
  --wifi-country CC       two-letter country code for the Wi-Fi regulatory domain, e.g. GB, DE, US
  --hat NAME              voice HAT overlay in config.txt: respeaker-2mic (WM8960) or voicehat
                          (Google voiceHAT and generic I2S microphones)
  --style STYLE           first-boot style: auto (default), bookworm (userconf.txt + ssh file),
                          cloud-init (user-data, Trixie-based images)
EOF
}

die() { echo "build-image: error: $*" >&2; exit 1; }
say() { echo "build-image: $*"; }

base='' out='' binary="$repo/target/aarch64-unknown-linux-gnu/release/pivox" ssh_key='' password_hash=''
user=pi hostname=pivox config="$here/pivox.toml" wifi_ssid='' wifi_password_file='' wifi_country='' hat=''
style=auto
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --base | --out | --binary | --ssh-key | --password-hash | --user | --hostname | --config | \
      --wifi-ssid | --wifi-password-file | --wifi-country | --hat | --style)
      (($# >= 2)) || die "$1 needs a value"
      opt=${1#--}; opt=${opt//-/_}; printf -v "$opt" '%s' "$2"; shift 2 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# ---- Check everything the user gave before touching anything ----------------------------------
[ -n "$base" ] || die "--base IMAGE is required (the Raspberry Pi OS Lite arm64 image)"
[ -n "$out" ] || die "--out IMAGE is required"
[ -f "$base" ] || die "--base $base: no such file"
[ "$(cd "$(dirname "$base")" && pwd)/$(basename "$base")" != "$(cd "$(dirname "$out")" 2>/dev/null && pwd)/$(basename "$out")" ] ||
  die "--out must not be the --base image (the base is never changed)"
if [ -z "$ssh_key" ] && [ -z "$password_hash" ]; then
  die "no way to log in: give --ssh-key FILE.pub and/or --password-hash (from \`openssl passwd -6\`); the image has no default password"
fi
if [ -n "$ssh_key" ]; then
  [ -f "$ssh_key" ] || die "--ssh-key $ssh_key: no such file"
  grep -q 'PRIVATE KEY' "$ssh_key" && die "--ssh-key $ssh_key is a private key: give the .pub file"
  ssh-keygen -l -f "$ssh_key" >/dev/null 2>&1 || die "--ssh-key $ssh_key: not an SSH public key"
  ssh_key_lines=$(grep -v '^[[:space:]]*\(#\|$\)' "$ssh_key")
fi
if [ -n "$password_hash" ]; then
  [[ "$password_hash" =~ ^\$(6|5|y|gy|7)\$[./A-Za-z0-9$=]+$ ]] ||
    die "--password-hash must be a crypt hash such as \`openssl passwd -6\` prints (\$6\$…), not the password itself"
fi
[[ "$user" =~ ^[a-z][a-z0-9-]{0,31}$ ]] && [ "$user" != root ] ||
  die "--user '$user': lower-case letters, digits and '-', starting with a letter, at most 32, not root"
[[ "$hostname" =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$ ]] ||
  die "--hostname '$hostname': letters, digits and '-', at most 63, not starting or ending with '-'"
[ -f "$binary" ] || die "--binary $binary: no such file (build it with \`make aarch64\`)"
arch=$(elf_machine "$binary")
[ "$arch" = aarch64 ] || die "--binary $binary is $arch, not aarch64 (build it with \`make aarch64\`)"
[ -f "$config" ] || die "--config $config: no such file"
# The config is checked by the binary going into the image (through qemu-user on a PC), else by
# a host build. --elsewhere: the files it names (token file, CA) are on the Pi, not here.
checker=()
runs() { "$@" --version >/dev/null 2>&1 && checker=("$@"); }
runs "$binary" || runs qemu-aarch64-static "$binary" || runs "$repo/target/release/pivox" ||
  runs "$repo/target/debug/pivox" || true
if ((${#checker[@]})); then
  "${checker[@]}" check-config --elsewhere "$config" >/dev/null ||
    die "--config $config is not accepted by pivox check-config (above)"
else
  say "note: no way to run pivox here (qemu-user or a host build), so --config was not checked"
fi
wifi_password=''
if [ -n "$wifi_ssid" ]; then
  [ -n "$wifi_country" ] || die "--wifi-ssid needs --wifi-country (the radio stays off without a regulatory domain)"
  [[ "$wifi_ssid" != *$'\n'* ]] && ((${#wifi_ssid} <= 32)) || die "--wifi-ssid: at most 32 bytes, one line"
  if [ -n "$wifi_password_file" ]; then
    [ -f "$wifi_password_file" ] || die "--wifi-password-file $wifi_password_file: no such file"
    IFS= read -r wifi_password <"$wifi_password_file" || true
    ((${#wifi_password} >= 8 && ${#wifi_password} <= 63)) ||
      die "--wifi-password-file: a WPA passphrase has 8 to 63 characters (this one has ${#wifi_password})"
  fi
elif [ -n "$wifi_password_file" ]; then
  die "--wifi-password-file without --wifi-ssid"
fi
if [ -n "$wifi_country" ]; then
  [[ "$wifi_country" =~ ^[A-Za-z]{2}$ ]] || die "--wifi-country '$wifi_country': two letters, e.g. GB"
  wifi_country=${wifi_country^^}
fi
case "$hat" in
  '') hat_lines='' ;;
  respeaker-2mic) hat_lines=$'dtparam=i2s=on\ndtoverlay=wm8960-soundcard' ;;
  voicehat) hat_lines=$'dtparam=i2s=on\ndtoverlay=googlevoicehat-soundcard' ;;
  *) die "--hat '$hat': known are respeaker-2mic, voicehat" ;;
esac
case "$style" in auto | bookworm | cloud-init) ;; *) die "--style '$style': auto, bookworm or cloud-init" ;; esac
for tool in sfdisk debugfs e2fsck mcopy mtype mdir xz; do
  command -v "$tool" >/dev/null || die "$tool not found (apt install fdisk e2fsprogs mtools xz-utils)"
done

# ---- A working copy of the base image -----------------------------------------------------------
work=$(mktemp -d)
partial="$out.partial"
# On any failure the half-made image goes too; the base is never written to.
trap 'rm -rf "$work" "$partial"' EXIT
say "copying $base"
case "$base" in
  *.xz) xz -dc -- "$base" >"$partial" || die "$base: not a readable .xz file" ;;
  *) cp --sparse=always -- "$base" "$partial" ;;
esac

# Partition offsets from the MBR: p1 FAT (bootfs), p2 ext4 (rootfs).
table=$(sfdisk --dump -- "$partial" 2>/dev/null) || die "$base: no partition table (not a disk image?)"
part_field() { awk -v n="$1" -v f="$2" '$1 ~ ("[^0-9]" n "$") { if (match($0, f "= *[0-9a-fx]+")) { v = substr($0, RSTART, RLENGTH); sub(/.*= */, "", v); print v } }' <<<"$table"; }
sector=$(awk '/^sector-size:/ {print $2}' <<<"$table"); sector=${sector:-512}
boot_type=$(part_field 1 type) root_type=$(part_field 2 type)
[[ "$boot_type" =~ ^(c|b|e)$ ]] && [ "$root_type" = 83 ] ||
  die "$base: not the Raspberry Pi OS layout (want p1 FAT type c, p2 Linux type 83; found '${boot_type:-none}', '${root_type:-none}')"
boot_off=$(($(part_field 1 start) * sector))
root_off=$(($(part_field 2 start) * sector))
fat="$partial@@$boot_off"
ext="$partial?offset=$root_off"
mdir -i "$fat" ::/ >/dev/null 2>&1 || die "$base: partition 1 is not a FAT file system"

# ---- ext4 through debugfs -----------------------------------------------------------------------
# debugfs exits 0 even when a command fails, so every run's stderr is checked: anything but its
# version banner is an error. It also never overwrites (write) and corrupts on mkdir/symlink over
# an existing name, so callers check first.
debugfs_run() {
  local errors
  errors=$(debugfs -w -f - "$ext" 2>&1 >/dev/null <<<"$1" | grep -v '^debugfs [0-9.]* (' || true)
  [ -z "$errors" ] || die "debugfs on $base's rootfs: $errors (commands: ${1//$'\n'/; })"
}
ext_exists() { debugfs -R "stat \"$1\"" "$ext" 2>&1 | grep -q '^Inode:'; }
ext_cat() { debugfs -R "cat \"$1\"" "$ext" 2>/dev/null; }
ext_mkdir_p() {
  local path='' part
  for part in ${1//\// }; do
    path="$path/$part"
    ext_exists "$path" || debugfs_run "mkdir \"$path\""$'\n'"sif \"$path\" mode 040755"$'\n'"sif \"$path\" uid 0"$'\n'"sif \"$path\" gid 0"
  done
}
# ext_put SOURCE DEST MODE [UID GID]: replaces DEST.
ext_put() {
  local mode=$((8#$3)) uid=${4:-0} gid=${5:-0}
  ext_mkdir_p "$(dirname "$2")"
  local commands=''
  ext_exists "$2" && commands="rm \"$2\""$'\n'
  commands+="write \"$1\" \"$2\""$'\n'"sif \"$2\" mode 0$(printf '%o' $((8#100000 | mode)))"
  commands+=$'\n'"sif \"$2\" uid $uid"$'\n'"sif \"$2\" gid $gid"
  debugfs_run "$commands"
}
# ext_put_text DEST MODE TEXT
ext_put_text() { printf '%s' "$3" >"$work/text"; ext_put "$work/text" "$1" "$2"; }
# ext_symlink LINK TARGET: replaces LINK.
ext_symlink() {
  ext_mkdir_p "$(dirname "$1")"
  local commands=''
  ext_exists "$1" && commands="rm \"$1\""$'\n'
  debugfs_run "${commands}symlink \"$1\" \"$2\""
}

ext_exists /etc/os-release || ext_exists /usr/lib/os-release || die "$base: partition 2 is not a Linux root file system"

# ---- FAT through mtools -------------------------------------------------------------------------
fat_exists() { mdir -i "$fat" "::/$1" >/dev/null 2>&1; }
fat_put_text() { printf '%s' "$2" >"$work/fat"; mcopy -o -i "$fat" "$work/fat" "::/$1" || die "cannot write $1 to the boot partition"; }
fat_cat() { mtype -i "$fat" "::/$1" 2>/dev/null | tr -d '\r'; }

# ---- First-boot style -----------------------------------------------------------------------------
if [ "$style" = auto ]; then
  if fat_exists user-data || fat_exists meta-data || ext_exists /etc/cloud/cloud.cfg; then style=cloud-init; else style=bookworm; fi
  say "first-boot style: $style (detected)"
fi

# ---- The daemon and its system files ----------------------------------------------------------------
say "installing pivox ($(stat -c %s "$binary") bytes) and its system files"
ext_put "$binary" /usr/local/bin/pivox 755
ext_put "$here/rootfs/etc/systemd/system/pivox.service" /etc/systemd/system/pivox.service 644
ext_symlink /etc/systemd/system/multi-user.target.wants/pivox.service /etc/systemd/system/pivox.service
ext_put "$here/rootfs/usr/lib/sysusers.d/pivox.conf" /usr/lib/sysusers.d/pivox.conf 644
ext_put "$here/rootfs/usr/lib/tmpfiles.d/pivox.conf" /usr/lib/tmpfiles.d/pivox.conf 644
ext_put "$here/rootfs/etc/modules-load.d/pivox.conf" /etc/modules-load.d/pivox.conf 644
for f in "$repo"/sysctl.d/*.conf; do ext_put "$f" "/etc/sysctl.d/$(basename "$f")" 644; done
for f in "$repo"/udev/*.rules; do ext_put "$f" "/etc/udev/rules.d/$(basename "$f")" 644; done
# /etc/pivox (root:pivox 0750) is made at boot by tmpfiles.d, once sysusers.d has made the user.

# The config the daemon reads first, where the user can edit it from any computer.
mcopy -o -i "$fat" "$config" ::/pivox.toml || die "cannot write pivox.toml to the boot partition"

# ---- Hostname -------------------------------------------------------------------------------------------
ext_put_text /etc/hostname 644 "$hostname"$'\n'
hosts=$(ext_cat /etc/hosts | grep -v '^127\.0\.1\.1[[:space:]]' || true)
ext_put_text /etc/hosts 644 "$hosts"$'\n'"127.0.1.1	$hostname"$'\n'

# ---- SSH on, for the user's key ---------------------------------------------------------------------
ssh_unit=''
for candidate in /usr/lib/systemd/system/ssh.service /lib/systemd/system/ssh.service; do
  ext_exists "$candidate" && { ssh_unit=$candidate; break; }
done
[ -n "$ssh_unit" ] || die "$base has no OpenSSH server (ssh.service); it is part of Raspberry Pi OS Lite"
ext_symlink /etc/systemd/system/multi-user.target.wants/ssh.service "$ssh_unit"
if [ -n "$ssh_key" ]; then
  # Keys in a root-owned file sshd reads for this user whatever happens to the home directory at
  # first boot (userconf renames the first user and moves its home).
  ext_put "$ssh_key" "/etc/ssh/authorized_keys/$user" 644
  ext_put_text /etc/ssh/sshd_config.d/50-pivox.conf 644 "# pivox image: keys for each user in /etc/ssh/authorized_keys/USER too.
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys/%u
$([ -n "$password_hash" ] || echo 'PasswordAuthentication no')
"
fi

# ---- The login user ---------------------------------------------------------------------------------
# deploy.sh runs its remote steps with `sudo -n`: the user gets passwordless sudo, as the first
# user of Raspberry Pi OS had until 2026.
sudo_rule="$user ALL=(ALL) NOPASSWD: ALL"
case "$style" in
  bookworm)
    # userconfig.service renames the image's first user (uid 1000) to $user and sets the password
    # at first boot; `!` means no password (locked), key login only.
    fat_put_text userconf.txt "$user:${password_hash:-!}"$'\n'
    fat_put_text ssh ''
    ext_put_text "/etc/sudoers.d/020_pivox-$user" 440 "$sudo_rule"$'\n'
    ;;
  cloud-init)
    yaml_quote() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
    user_data="#cloud-config
# Written by pivox image/build-image.sh.
hostname: $hostname
manage_etc_hosts: true
user:
  name: $user
  shell: /bin/bash
  lock_passwd: $([ -n "$password_hash" ] && echo false || echo true)
$([ -z "$password_hash" ] || echo "  passwd: $(yaml_quote "$password_hash")")
  sudo: $(yaml_quote "ALL=(ALL) NOPASSWD:ALL")
"
    if [ -n "$ssh_key" ]; then
      user_data+="  ssh_authorized_keys:"$'\n'
      while IFS= read -r key; do user_data+="    - $(yaml_quote "$key")"$'\n'; done <<<"$ssh_key_lines"
    fi
    user_data+="ssh_pwauth: $([ -n "$password_hash" ] && echo true || echo false)
runcmd:
  - [systemctl, enable, --now, ssh]
"
    [ -z "$wifi_country" ] || user_data+="  - [rfkill, unblock, wifi]"$'\n'
    fat_put_text user-data "$user_data"
    fat_put_text meta-data "instance-id: pivox-$(date +%s)"$'\n'
    ;;
esac

# ---- Wi-Fi --------------------------------------------------------------------------------------------
if [ -n "$wifi_country" ]; then
  # The regulatory domain on the kernel command line (one line; append once).
  cmdline=$(fat_cat cmdline.txt | tr -d '\n')
  cmdline=$(sed -E 's/ ?cfg80211\.ieee80211_regdom=[A-Za-z]+//g' <<<"$cmdline")
  fat_put_text cmdline.txt "$cmdline cfg80211.ieee80211_regdom=$wifi_country"$'\n'
  # Raspberry Pi OS keeps Wi-Fi soft-blocked until a country is set: unblock it.
  if ext_exists /var/lib/NetworkManager/NetworkManager.state; then
    state=$(ext_cat /var/lib/NetworkManager/NetworkManager.state | sed 's/^WirelessEnabled=.*/WirelessEnabled=true/')
    ext_put_text /var/lib/NetworkManager/NetworkManager.state 644 "$state"$'\n'
  fi
  if ext_exists /var/lib/systemd/rfkill; then
    for f in $(debugfs -R "ls -p /var/lib/systemd/rfkill" "$ext" 2>/dev/null | awk -F/ '$6 ~ /:wlan$/ {print $6}'); do
      ext_put_text "/var/lib/systemd/rfkill/$f" 644 $'0\n'
    done
  fi
fi
if [ -n "$wifi_ssid" ]; then
  uuid=$(cat /proc/sys/kernel/random/uuid)
  security=''
  [ -z "$wifi_password" ] || security=$'\n[wifi-security]\nkey-mgmt=wpa-psk\npsk='"$wifi_password"$'\n'
  # NetworkManager ignores a connection file unless it is root's and mode 0600.
  # powersave=2 turns Wi-Fi power save off: with it on, a Pi answers pings 50-130 ms later
  # (p99 up to 2 s) than without, the largest latency source on a Pi Zero.
  ext_put_text /etc/NetworkManager/system-connections/pivox-wifi.nmconnection 600 "[connection]
id=pivox-wifi
uuid=$uuid
type=wifi
autoconnect=true

[wifi]
mode=infrastructure
ssid=$wifi_ssid
powersave=2
${security}
[ipv4]
method=auto

[ipv6]
addr-gen-mode=default
method=auto
"
fi

# ---- Voice HAT ------------------------------------------------------------------------------------
if [ -n "$hat_lines" ]; then
  config_txt=$(fat_cat config.txt)
  if ! grep -qx "${hat_lines##*$'\n'}" <<<"$config_txt"; then
    fat_put_text config.txt "$config_txt"$'\n\n'"[all]"$'\n'"# pivox: voice HAT ($hat)"$'\n'"$hat_lines"$'\n'
  fi
fi

# ---- Done: check both file systems, then put the image in place ------------------------------------
e2fsck -fn "$ext" >"$work/fsck" 2>&1 || die "the root file system fails e2fsck after editing: $(tail -3 "$work/fsck")"
mv -f -- "$partial" "$out"
say "wrote $out ($style style, user $user, hostname $hostname${wifi_ssid:+, Wi-Fi $wifi_ssid}${hat:+, HAT $hat})"
