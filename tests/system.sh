#!/usr/bin/env bash
# The boot test: a Debian bookworm arm64 image with Raspberry Pi OS's partition layout, the
# image recipe applied to it, booted in qemu-system-aarch64. Under real systemd it checks that
# pivox.service reaches READY as the pivox user, the sysctl values and udev rules are in
# effect, the watchdog restarts a hung daemon, and the daemon completes a simulated turn against
# a reference server on the host (10.0.2.2 from the guest). A turn is started and ended through
# the kernel's GPIO driver (QMP pulses on the virt machine's PL061, the gpiocdev backend), and one
# through real ALSA capture and playback on the kernel's loopback sound card (snd-aloop). Then
# deploy.sh updates it over the forwarded SSH port, and a broken binary is rolled back.
#
# The base image (mmdebstrap, ~6 min) is cached in $PIVOX_CACHE_DIR (default
# ~/.cache/pivox/system-test), keyed by how it is built; everything after is redone each run.
#
#   tests/system.sh [AARCH64_BINARY]
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

binary=${1:-$repo/target/aarch64-unknown-linux-gnu/release/pivox}
[ -f "$binary" ] || fail "no aarch64 binary at $binary (make aarch64)"
host_devtools=$repo/target/debug/pivox-devtools
[ -x "$host_devtools" ] || fail "no host pivox-devtools at $host_devtools (cargo build -p pivox-devtools)"
cache=${PIVOX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pivox}/system-test
mkdir -p "$cache"
started=$SECONDS
step() { echo "system-test [$((SECONDS - started)) s]: $*"; }

# ---- The base image: what an official image looks like before the recipe ------------------------
disk_id=4e639091
# Debian's generic arm64 kernel (not the cloud one): it has the sound drivers (snd-aloop) as
# well as the PL061 GPIO driver; alsa-utils plays into and records from the loopback card.
packages=systemd-sysv,udev,openssh-server,linux-image-arm64,sudo,libasound2,alsa-utils,procps,iproute2,kmod,dbus
build_base() {
  local tar="$scratch/rootfs.tar" dir="$scratch/rootfs"
  step "building a Debian bookworm arm64 root file system with mmdebstrap (about 6 minutes, cached after)"
  # Like Raspberry Pi OS: a first user `pi` (uid 1000) with passwordless sudo and no password,
  # SSH installed but off, the boot partition at /boot/firmware, PARTUUID mounts. The network
  # comes from systemd-networkd here (Raspberry Pi OS uses NetworkManager for Wi-Fi).
  # The initramfs holds only what the virt machine needs to mount / (virtio and ext4,
  # MODULES=list): with Debian's default of most modules, building it under qemu-user takes
  # over 25 minutes.
  mmdebstrap --quiet --architectures=arm64 --variant=minbase --include="$packages" \
    --customize-hook='chroot "$1" useradd -m -u 1000 -G sudo,audio,video,plugdev -s /bin/bash pi' \
    --customize-hook='chroot "$1" passwd -q -l pi' \
    --customize-hook='echo "pi ALL=(ALL) NOPASSWD: ALL" >"$1/etc/sudoers.d/010_pi-nopasswd" && chmod 0440 "$1/etc/sudoers.d/010_pi-nopasswd"' \
    --customize-hook='chroot "$1" systemctl disable ssh.service' \
    --customize-hook="printf 'proc /proc proc defaults 0 0\nPARTUUID=$disk_id-01 /boot/firmware vfat defaults 0 2\nPARTUUID=$disk_id-02 / ext4 defaults,noatime 0 1\n' >\"\$1/etc/fstab\"" \
    --customize-hook='mkdir -p "$1/boot/firmware" && echo raspberrypi >"$1/etc/hostname" && printf "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n" >"$1/etc/hosts"' \
    --customize-hook='printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" >"$1/etc/systemd/network/50-wired.network" && chroot "$1" systemctl enable systemd-networkd.service' \
    --customize-hook='printf "vfat\nnls_cp437\nnls_ascii\n" >"$1/etc/modules-load.d/boot-partition.conf"' \
    --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"' \
    --setup-hook='echo MODULES=list >"$1/etc/initramfs-tools/conf.d/pivox-test.conf"' \
    --setup-hook='printf "#!/bin/sh\n[ \"\$1\" = prereqs ] && exit 0\n. /usr/share/initramfs-tools/hook-functions\nmanual_add_modules virtio_blk virtio_pci virtio_mmio ext4\n" >"$1/etc/initramfs-tools/hooks/pivox-test" && chmod 755 "$1/etc/initramfs-tools/hooks/pivox-test"' \
    bookworm "$tar"
  step "laying it out as Raspberry Pi OS does: MBR, FAT32 bootfs (0x0c), ext4 rootfs"
  mkdir -p "$dir"
  truncate -s 1536M "$scratch/root.img"
  fakeroot sh -c "tar -xpf '$tar' -C '$dir' --numeric-owner && mke2fs -q -t ext4 -L rootfs -d '$dir' '$scratch/root.img'"
  rm -rf "$dir" "$tar"
  truncate -s 128M "$scratch/boot.img"
  mkfs.vfat -F 32 -n bootfs "$scratch/boot.img" >/dev/null 2>&1
  echo "console=serial0,115200 console=tty1 root=PARTUUID=$disk_id-02 rootfstype=ext4 fsck.repair=yes rootwait quiet" >"$scratch/cmdline.txt"
  printf '# For more options and information see\n# http://rptl.io/configtxt\ndtparam=audio=on\narm_64bit=1\n\n[all]\n' >"$scratch/config.txt"
  mcopy -i "$scratch/boot.img" "$scratch/cmdline.txt" "$scratch/config.txt" ::/
  local image="$cache/base-$key.img"
  truncate -s $((4 + 128 + 1536))M "$image.partial"
  printf 'label: dos\nlabel-id: 0x%s\nstart=8192, size=%d, type=c\nstart=%d, size=%d, type=83\n' \
    "$disk_id" $((128 * 2048)) $(((4 + 128) * 2048)) $((1536 * 2048)) | sfdisk -q "$image.partial"
  dd if="$scratch/boot.img" of="$image.partial" bs=1M seek=4 conv=notrunc,sparse status=none
  dd if="$scratch/root.img" of="$image.partial" bs=1M seek=$((4 + 128)) conv=notrunc,sparse status=none
  rm -f "$scratch/boot.img" "$scratch/root.img"
  mv "$image.partial" "$image"
  # Older bases are of no further use.
  find "$cache" -name 'base-*.img' ! -name "base-$key.img" -delete
}
key=$(declare -f build_base | cat - <(echo "$packages $disk_id") | sha256sum | cut -c1-16)
base="$cache/base-$key.img"
if [ -f "$base" ]; then step "base image from the cache: $base"; else build_base; fi

# ---- The recipe ------------------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C pivox-system-test -f "$scratch/key"
server_log="$scratch/server.log"
"$host_devtools" serve --listen 127.0.0.1:0 2>"$server_log" &
cleanups+=("kill $! 2>/dev/null")
for _ in $(seq 1 100); do grep -q 'listening on' "$server_log" && break; sleep 0.1; done
server_port=$(sed -n 's/.*listening on ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$server_log" | head -1)
[ -n "$server_port" ] || fail "the reference server did not start: $(cat "$server_log")"
# The guest's config: simulated microphone (a WAV on the boot partition) and button (a press
# 8 s after start), a WAV file as the speaker, and the server on the host.
cat >"$scratch/pivox.toml" <<EOF
[server]
url = "ws://10.0.2.2:$server_port/"

[microphone]
backend = "sim"
device = "/boot/firmware/speech.wav"

[speaker]
backend = "sim"
device = "/var/lib/pivox/reply.wav"

[button]
backend = "sim"
device = "press 8, release 10.5"
EOF
image="$scratch/pivox.img"
step "applying image/build-image.sh"
cp --sparse=always "$base" "$scratch/base.img"
image/build-image.sh --base "$scratch/base.img" --out "$image" --binary "$binary" --ssh-key "$scratch/key.pub" \
  --user pi --hostname pivox-test --config "$scratch/pivox.toml" | sed 's/^/  /'
rm -f "$scratch/base.img"
read -r boot_off root_off <<<"$(partition_offsets "$image")"
mcopy -i "$image@@$boot_off" daemon/assets/speech.wav ::/speech.wav

# ---- Boot it -------------------------------------------------------------------------------------
# The kernel and initrd come out of the image itself; the kernel command line from its
# cmdline.txt (what the recipe left there), with the serial console of the virt machine.
kernel=$(debugfs -R 'ls -p /boot' "$image?offset=$root_off" 2>/dev/null | awk -F/ '$6 ~ /^vmlinuz-/ {print $6}' | sort | tail -1)
[ -n "$kernel" ] || fail "no kernel in the image's /boot"
debugfs -R "dump /boot/$kernel $scratch/vmlinuz" "$image?offset=$root_off" 2>/dev/null
debugfs -R "dump /boot/initrd.img-${kernel#vmlinuz-} $scratch/initrd" "$image?offset=$root_off" 2>/dev/null
cmdline=$(mtype -i "$image@@$boot_off" ::/cmdline.txt | tr -d '\r\n' | sed -E 's/console=[^ ]+ ?//g; s/ quiet//')
ssh_port=$(free_port)
step "booting in qemu-system-aarch64 (cortex-a53, 2 cores, TCG); console in $scratch/console.log"
qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 1024 -display none -no-reboot \
  -kernel "$scratch/vmlinuz" -initrd "$scratch/initrd" -append "$cmdline console=ttyAMA0 panic=-1 modprobe.blacklist=gpio_keys" \
  -drive file="$image",format=raw,if=virtio \
  -netdev user,id=net0,hostfwd=tcp:127.0.0.1:$ssh_port-:22 -device virtio-net-pci,netdev=net0,romfile= \
  -device qemu-xhci,id=usb -audiodev none,id=snd0 -device usb-audio,audiodev=snd0,bus=usb.0 \
  -serial file:"$scratch/console.log" -qmp unix:"$scratch/qmp.sock",server=on,wait=off &
qemu_pid=$!
cleanups+=("kill $qemu_pid 2>/dev/null; cp $scratch/console.log ${TMPDIR:-/tmp}/pivox-system-test-console.log 2>/dev/null")

ssh_opts=(-p "$ssh_port" -i "$scratch/key" -o IdentitiesOnly=yes -o UserKnownHostsFile="$scratch/known_hosts"
  -o StrictHostKeyChecking=accept-new -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR)
guest() { ssh "${ssh_opts[@]}" pi@127.0.0.1 "$@"; }
booted=no
for _ in $(seq 1 120); do
  kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited; console: $(tail -20 "$scratch/console.log")"
  if guest true 2>/dev/null; then booted=yes; break; fi
  sleep 2
done
[ "$booted" = yes ] || fail "no SSH login within 240 s; console: $(tail -30 "$scratch/console.log")"
step "logged in as pi with the image's key"

# ---- pivox.service under systemd ----------------------------------------------------------------
wait_for() { # wait_for SECONDS DESCRIPTION REMOTE_COMMAND: until it succeeds
  local limit=$1 what=$2; shift 2
  for _ in $(seq 1 "$limit"); do guest "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "$what within $limit s; pivox log: $(guest sudo journalctl -u pivox --no-pager -n 30 2>&1)"
}
wait_for 60 "pivox.service active" systemctl is-active --quiet pivox.service
show() { guest systemctl show -p "$1" --value pivox.service; }
check_eq "unit type" notify "$(show Type)"
check_eq "active and running" "active running" "$(show ActiveState) $(show SubState)"
main_pid=$(show MainPID)
check_eq "runs as the pivox user" pivox "$(guest ps -o user= -p "$main_pid" | tr -d ' ')"
groups=$(guest "id -nG pivox")
for g in audio gpio spi; do check_contains "pivox user's groups from the unit: $g" "$g" "$(guest "ps -o supgrp= -p $main_pid")"; done
check_contains "pivox is a system user" pivox "$groups"
wait_for 30 "READY, then the server connected" "systemctl show -p StatusText --value pivox.service | grep -q '^connected to pivox reference server'"
check_contains "the daemon's log names the host's server" "server ws://10.0.2.2:$server_port/" "$(guest sudo journalctl -u pivox.service --no-pager -o cat)"
check_eq "watchdog armed" 10s "$(show WatchdogUSec)"
exposure=$(guest "systemd-analyze security pivox.service 2>/dev/null" | sed -n 's/.*Overall exposure level for pivox.service: \([0-9.]*\).*/\1/p')
check "sandbox exposure under systemd $exposure <= 2.0" awk -v r="$exposure" 'BEGIN { exit !(r != "" && r <= 2.0) }'
step "pivox.service: READY as pivox, $(show StatusText), exposure $exposure"

# A simulated turn, pressed 8 s after start: the reply reaches the speaker file.
wait_for 60 "a completed turn" "sudo journalctl -u pivox.service --no-pager -o cat | grep -q 'Completed'"
check "the reference server received the turn's audio" grep -qE 'turn [0-9]+: [0-9.]+ s of' "$server_log"
reply_bytes=$(guest "sudo stat -c %s /var/lib/pivox/reply.wav")
check "the reply was played ($reply_bytes bytes)" test "$reply_bytes" -gt 10000
step "a turn completed against the host's reference server; reply $reply_bytes bytes"

# ---- sysctl and udev ---------------------------------------------------------------------------------
while read -r name _ value; do
  check_eq "sysctl $name" "$value" "$(guest cat "/proc/sys/${name//.//}")"
done < <(grep -E '^[a-z]' sysctl.d/90-pivox.conf)
check_eq "gpiochip0 (the virt machine's PL061) belongs to gpio" "gpio 660" "$(guest "stat -c '%G %a' /dev/gpiochip0")"
udev_errors=$(guest "sudo journalctl -b -u systemd-udevd --no-pager -o cat | grep -i pivox" || true)
check_eq "udevd: no complaint about pivox's rules" "" "$udev_errors"
rules_read=$(guest "sudo udevadm test --action=add /sys/class/net/lo 2>&1 | grep -c 'Reading rules file: /etc/udev/rules.d/[0-9]*-pivox'")
check_eq "udev reads both pivox rule files" 2 "$rules_read"
# qemu's USB audio device (a USB sound card, snd-usb-audio in the guest) is the first USB card:
# the USB-microphone rule names it, so pivox.toml's plughw:CARD=pivoxusb,DEV=0 finds it.
wait_for 30 "the USB sound card named by the udev rule" "grep -q '\\[pivoxusb' /proc/asound/cards"
check_contains "udev: the USB card's ALSA id is pivoxusb" "pivoxusb" "$(guest cat /proc/asound/cards)"
check_contains "pivox devices names it as the config does" "CARD=pivoxusb" "$(guest pivox devices)"
step "sysctl values and udev rules in effect; the USB sound card is pivoxusb"

# ---- The watchdog: a hung main loop is restarted ---------------------------------------------
restarts=$(show NRestarts)
guest sudo kill -STOP "$main_pid"
wait_for 40 "a restart after the watchdog fired" "[ \$(systemctl show -p NRestarts --value pivox.service) -gt $restarts ] && systemctl is-active --quiet pivox.service"
check "a new main process" test "$(show MainPID)" != "$main_pid"
check_contains "systemd says why" "Watchdog timeout" "$(guest sudo journalctl -u pivox.service --no-pager -o cat)"
step "a stopped (hung) daemon was restarted by the watchdog"

# ---- The button through the kernel's GPIO driver (the gpiocdev backend) ---------------------------
# The virt machine wires its power button to line 3 of its PL061 GPIO controller: a QMP
# system_powerdown drives the line high for 100 ms. The kernel command line keeps the gpio-keys
# driver from taking the line (it would, and a pulse would then power the VM off), so the line
# is pivox's: active high, in tap mode, one pulse starts a turn and the next ends it.
qmp() { # qmp COMMAND: one QMP command to the VM, through its control socket
  python3 - "$scratch/qmp.sock" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
f = s.makefile("rw")
json.loads(f.readline())  # the greeting
for command in ("qmp_capabilities", sys.argv[2]):
    f.write(json.dumps({"execute": command}) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "return" in reply or "error" in reply:
            break
    if "error" in reply:
        sys.exit(f"QMP {command}: {reply['error']}")
PY
}
sed '/^\[button\]/,$d' "$scratch/pivox.toml" >"$scratch/pivox-gpiocdev.toml"
printf '[button]\nbackend = "gpiocdev"\ndevice = "gpiochip0:3"\npull = "off"\nactive_low = false\nmode = "tap"\n' >>"$scratch/pivox-gpiocdev.toml"
devices=$(guest sudo pivox devices)
check_contains "pivox devices lists the PL061" "/dev/gpiochip0" "$devices"
check_contains "pivox devices says how to name its lines" "gpiochip0:OFFSET" "$devices"
guest "sudo tee /boot/firmware/pivox.toml >/dev/null" <"$scratch/pivox-gpiocdev.toml"
guest sudo systemctl stop pivox.service
# pivox test-button sees both taps, as a press and a release.
guest "sudo timeout 20 pivox test-button --config /boot/firmware/pivox.toml --count 2 </dev/null >/tmp/test-button.log 2>&1 &"
wait_for 10 "pivox test-button listening" "grep -q 'press it' /tmp/test-button.log"
qmp system_powerdown
sleep 1
qmp system_powerdown
wait_for 10 "test-button printing two edges" "grep -q released /tmp/test-button.log"
tapped=$(guest cat /tmp/test-button.log)
check_contains "test-button: the first tap is a press" "pressed" "$tapped"
check_contains "test-button: the second ends it" "released (held 1." "$tapped"
# Then a whole turn under systemd, started and ended by the taps 2 s apart.
completed=$(guest "sudo journalctl -u pivox.service --no-pager -o cat | grep -c Completed" || true)
server_turns=$(grep -cE 'turn [0-9]+: [0-9.]+ s of' "$server_log" || true)
guest sudo systemctl start pivox.service
wait_for 30 "READY with the gpiocdev button, connected" "systemctl show -p StatusText --value pivox.service | grep -q '^connected to pivox reference server'"
qmp system_powerdown
sleep 2
qmp system_powerdown
wait_for 30 "a turn completed from the GPIO taps" "[ \$(sudo journalctl -u pivox.service --no-pager -o cat | grep -c Completed) -gt $completed ]"
check "the reference server received the tapped turn" test "$(grep -cE 'turn [0-9]+: [0-9.]+ s of' "$server_log")" -gt "$server_turns"
seconds=$(grep -oE 'turn [0-9]+: [0-9.]+ s of' "$server_log" | tail -1 | awk '{print $3}')
check "the tapped turn lasted the 2 s between the taps, with the pre-roll ($seconds s)" awk -v s="$seconds" 'BEGIN { exit !(s >= 1.8 && s <= 3.5) }'
step "a turn started and ended by QMP pulses on PL061 line 3 (gpiocdev, tap mode): $seconds s of audio"

# ---- Sound through a kernel driver: snd-aloop ---------------------------------------------------------
# The ALSA loopback card: what is played into its device 0 is captured from device 1 (the same
# subdevice), and back. pivox's real ALSA capture and playback run on it: the microphone is
# Loopback 1,0, into which the speech sample is played through 0,0; the speaker is Loopback 0,1,
# which arecord records from 1,1. The reply (the reference server's echo of the turn) must come
# out the other side.
guest sudo modprobe snd-aloop
wait_for 10 "the loopback sound card" "grep -q Loopback /proc/asound/cards"
check_contains "pivox devices lists the loopback card" "CARD=Loopback" "$(guest pivox devices)"
sed '/^\[microphone\]/,$d' "$scratch/pivox.toml" >"$scratch/pivox-alsa.toml"
cat >>"$scratch/pivox-alsa.toml" <<'EOT'
[microphone]
backend = "alsa"
device = "plughw:CARD=Loopback,DEV=1,SUBDEV=0"

[speaker]
backend = "alsa"
device = "plughw:CARD=Loopback,DEV=0,SUBDEV=1"

[button]
backend = "sim"
device = "press 1.5, release 4.5"
EOT
guest "cat >/tmp/pivox-alsa.toml" <"$scratch/pivox-alsa.toml"
guest sudo systemctl stop pivox.service
server_turns=$(grep -cE 'turn [0-9]+: [0-9.]+ s of' "$server_log" || true)
# As pi, in the audio group, as a hobbyist trying a sound card would.
guest "arecord -q -D hw:CARD=Loopback,DEV=1,SUBDEV=1 -f S16_LE -r 16000 -c 1 -d 12 /tmp/reply.wav </dev/null >/dev/null 2>/tmp/arecord.log &"
guest "pivox run --config /tmp/pivox-alsa.toml --turns 1 </dev/null >/tmp/pivox-alsa.log 2>&1 & echo \$! >/tmp/pivox-alsa.pid"
sleep 1
guest aplay -q -D hw:CARD=Loopback,DEV=0,SUBDEV=0 /boot/firmware/speech.wav
for _ in $(seq 1 30); do guest "! kill -0 \$(cat /tmp/pivox-alsa.pid) 2>/dev/null" && break; sleep 1; done
alsa_log=$(guest cat /tmp/pivox-alsa.log)
guest "! kill -0 \$(cat /tmp/pivox-alsa.pid) 2>/dev/null" || fail "pivox run did not end within 30 s of its one turn: $alsa_log"
check_contains "ALSA turn: completed" "Completed" "$alsa_log"
check "ALSA turn: the reference server received it" test "$(grep -cE 'turn [0-9]+: [0-9.]+ s of' "$server_log")" -gt "$server_turns"
wait_for 15 "arecord finishing" "! pgrep arecord"
guest cat /tmp/reply.wav >"$scratch/alsa-reply.wav"
peak=$(sox "$scratch/alsa-reply.wav" -n stat 2>&1 | awk '/^Maximum amplitude/ { print $3 }')
rms=$(sox "$scratch/alsa-reply.wav" -n stat 2>&1 | awk '/^RMS +amplitude/ { print $3 }')
check "ALSA turn: the reply came out of the loopback (peak $peak, RMS $rms)" awk -v p="$peak" -v r="$rms" 'BEGIN { exit !(p >= 0.1 && r >= 0.005) }'
step "a turn through snd-aloop: speech in through ALSA capture, the reply out through ALSA playback (peak $peak, RMS $rms)"
guest sudo systemctl start pivox.service
wait_for 30 "pivox.service active again" systemctl is-active --quiet pivox.service

# ---- deploy.sh over the forwarded port ---------------------------------------------------------------
export PIVOX_SSH_OPTS="${ssh_opts[*]}"
make_deploy_binaries "$binary" "$scratch"
new="$scratch/pivox-new" broken="$scratch/pivox-broken"
out=$(./deploy.sh --binary "$new" pi@127.0.0.1 2>&1) || fail "deploy to the VM failed: $out"
check_contains "deploy: done" "done: pi@127.0.0.1 runs the new version" "$out"
check_eq "deploy: the new binary runs" "$(sum "$new")" "$(guest sha256sum /usr/local/bin/pivox | cut -d' ' -f1)"
check_eq "deploy: active" active "$(show ActiveState)"
step "deploy.sh: new binary in place and READY"

status=0
out=$(./deploy.sh --binary "$broken" --timeout 30 pi@127.0.0.1 2>&1) || status=$?
check_eq "broken binary: deploy fails" 1 "$status"
check_contains "broken binary: rolled back" "it runs the previous one again" "$out"
check_eq "broken binary: the previous runs again" "$(sum "$new")" "$(guest sha256sum /usr/local/bin/pivox | cut -d' ' -f1)"
wait_for 30 "pivox.service active after the rollback" systemctl is-active --quiet pivox.service
step "deploy.sh: a broken binary was rolled back"

guest sudo systemctl poweroff >/dev/null 2>&1 || true
for _ in $(seq 1 30); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 1; done
echo "tests/system.sh: $checks checks passed in $((SECONDS - started)) s"
