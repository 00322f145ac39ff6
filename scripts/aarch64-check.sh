#!/usr/bin/env bash
# Proves the aarch64 build works, under qemu-user: `--version`, `check-config` on the
# shipped example, and one whole simulated turn (speech WAV as the microphone, a scripted
# press, the reply written to a WAV) against the reference server on loopback, then one
# against the stand-in Home Assistant (MP3 reply fetched over HTTP and decoded), then one as
# an ESPHome-API device that the stand-in HA client connects to (Noise encryption). The servers
# are the host's pivox-devtools: development tools are not in the Pi binary, and this checks
# that they stayed out. Usage: scripts/aarch64-check.sh [BINARY [PIVOX_DEVTOOLS]]
set -euo pipefail

bin=${1:-target/aarch64-unknown-linux-gnu/release/pivox}
devtools=${2:-target/debug/pivox-devtools}
# The multiarch arm64 libs (libc6:arm64, libasound2:arm64) are found at their usual paths.
# No `-L /usr/aarch64-linux-gnu`: that ld.so with the multiarch libc hangs at the first thread.
qemu=(qemu-aarch64-static)
[ -x "$bin" ] || { echo "error: $bin not found; run make aarch64 first" >&2; exit 1; }
file -b "$bin" | grep -q 'ARM aarch64' || { echo "error: $bin is not an aarch64 ELF: $(file -b "$bin")" >&2; exit 1; }
[ -x "$devtools" ] || { echo "error: $devtools not found; run cargo build -p pivox-devtools first" >&2; exit 1; }
# Issue 12: the reference server and the stand-in Home Assistant (their own messages) are not in it.
for message in 'pivox reference server' 'fake HA: client broke a rule'; do
  if grep -qaF "$message" "$bin"; then
    echo "error: $bin holds development code (\"$message\"): the Pi binary is built without pivox-devtools" >&2
    exit 1
  fi
done

work=$(mktemp -d)
server_pid=
ha_pid=
esphome_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  [ -n "$ha_pid" ] && kill "$ha_pid" 2>/dev/null
  [ -n "$esphome_pid" ] && kill "$esphome_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "== $bin: $(stat -c %s "$bin") bytes, $(file -b "$bin" | cut -d, -f1-2)"
"${qemu[@]}" "$bin" --version
"${qemu[@]}" "$bin" check-config pivox.example.toml

# Waits (bounded) until LOG names a URL matching PATTERN, and prints it.
url_from_log() {
  local log=$1 pattern=$2 url=
  for _ in $(seq 100); do
    url=$(grep -o "$pattern" "$log" | head -1 || true)
    [ -n "$url" ] && { echo "$url"; return 0; }
    sleep 0.1
  done
  echo "error: the server did not start:" >&2; cat "$log" >&2; return 1
}

# A turn with the config on stdin; checks it completed and the reply WAV is at least
# MIN_BYTES long. Usage: turn NAME MIN_BYTES
turn() {
  local name=$1 min_bytes=$2
  cat >"$work/$name.toml"
  if ! timeout 60 "${qemu[@]}" "$bin" run --turns 1 --config "$work/$name.toml" 2>"$work/$name.log"; then
    echo "error: the aarch64 $name turn failed:" >&2; cat "$work/$name.log" >&2; exit 1
  fi
  grep -q 'Completed' "$work/$name.log" || { echo "error: no completed $name turn:" >&2; cat "$work/$name.log" >&2; exit 1; }
  grep 'Completed' "$work/$name.log"
  local bytes
  bytes=$(stat -c %s "$work/$name.wav")
  [ "$bytes" -gt "$min_bytes" ] || { echo "error: the $name reply WAV holds only $bytes bytes" >&2; exit 1; }
  echo "== aarch64 $name turn OK: $name.wav $bytes bytes"
}

# The reference server on a port the kernel picks; its log names the port.
"$devtools" serve --listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
url=$(url_from_log "$work/server.log" 'ws://127.0.0.1:[0-9]*/')

devices="[microphone]
backend = \"sim\"
device = \"$PWD/daemon/assets/speech.wav\"
[button]
backend = \"sim\"
device = \"press 0.3, release 1.9\"
[led]
backend = \"sim\""

# 1.6 s of speech echoed at 16 kHz mono 16-bit is ~51 kB; earcons add a little.
turn pivox 40000 <<TOML
[server]
url = "$url"
[speaker]
backend = "sim"
device = "$work/pivox.wav"
$devices
TOML

# The stand-in Home Assistant, answering with the 1.76 s MP3 fixture (~56 kB at 16 kHz).
echo "aarch64-check-token" >"$work/ha-token"
"$devtools" serve-homeassistant --listen 127.0.0.1:0 --token-file "$work/ha-token" \
  --reply daemon/tests/fixtures/reply.mp3 2>"$work/ha.log" &
ha_pid=$!
ha_url=$(url_from_log "$work/ha.log" 'http://127.0.0.1:[0-9]*')
turn homeassistant 50000 <<TOML
[server]
kind = "homeassistant"
url = "$ha_url"
token_file = "$work/ha-token"
[speaker]
backend = "sim"
device = "$work/homeassistant.wav"
$devices
TOML

# The ESPHome link: pivox listens (Noise-encrypted), the stand-in HA client connects to it and
# answers the run with the MP3 fixture. The press comes at 2 s, once the client has connected
# (qemu-user starts the binary in well under that); the turn's audio is what the microphone
# has then, which is all this check needs (the audio path is the one checked above).
port=$((20000 + $$ % 20000))
key=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
"$devtools" esphome-client --device "127.0.0.1:$port" --key "$key" --wait 30 \
  --reply daemon/tests/fixtures/reply.mp3 2>"$work/esphome-client.log" &
esphome_pid=$!
turn esphome 50000 <<TOML
[server]
kind = "esphome"
listen = "127.0.0.1:$port"
name = "pivox-aarch64"
mac = "02:00:00:00:00:64"
encryption_key = "$key"
mdns = false
state_dir = "$work"
[speaker]
backend = "sim"
device = "$work/esphome.wav"
${devices/press 0.3, release 1.9/press 2.0, release 3.2}
TOML
wait "$esphome_pid" || { echo "error: the stand-in HA client failed:" >&2; cat "$work/esphome-client.log" >&2; exit 1; }
esphome_pid=
