#!/usr/bin/env bash
# Proves the aarch64 build works, under qemu-user: `--version`, `check-config` on the
# shipped example, and one whole simulated turn (speech WAV as the microphone, a scripted
# press, the reply written to a WAV) against the reference server on loopback — the aarch64
# binary on both ends. Usage: scripts/aarch64-check.sh [BINARY]
set -euo pipefail

bin=${1:-target/aarch64-unknown-linux-gnu/release/pivox}
# The multiarch arm64 libs (libc6:arm64, libasound2:arm64) are found at their usual paths.
# No `-L /usr/aarch64-linux-gnu`: that ld.so with the multiarch libc hangs at the first thread.
qemu=(qemu-aarch64-static)
[ -x "$bin" ] || { echo "error: $bin not found; run make aarch64 first" >&2; exit 1; }
file -b "$bin" | grep -q 'ARM aarch64' || { echo "error: $bin is not an aarch64 ELF: $(file -b "$bin")" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== $bin: $(stat -c %s "$bin") bytes, $(file -b "$bin" | cut -d, -f1-2)"
"${qemu[@]}" "$bin" --version
"${qemu[@]}" "$bin" check-config pivox.example.toml

# The reference server on a port the kernel picks; its log names the port.
"${qemu[@]}" "$bin" serve --listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
url=
for _ in $(seq 100); do
  url=$(grep -o 'ws://127.0.0.1:[0-9]*/' "$work/server.log" | head -1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "error: the reference server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

cat >"$work/pivox.toml" <<TOML
[server]
url = "$url"
[microphone]
backend = "sim"
device = "$PWD/daemon/assets/speech.wav"
[speaker]
backend = "sim"
device = "$work/reply.wav"
[button]
backend = "sim"
device = "press 0.3, release 1.9"
[led]
backend = "sim"
TOML

if ! timeout 60 "${qemu[@]}" "$bin" run --turns 1 --config "$work/pivox.toml" 2>"$work/run.log"; then
  echo "error: the aarch64 turn failed:" >&2; cat "$work/run.log" >&2; exit 1
fi
grep -q 'Completed' "$work/run.log" || { echo "error: no completed turn:" >&2; cat "$work/run.log" >&2; exit 1; }
grep 'Completed' "$work/run.log"
reply_bytes=$(stat -c %s "$work/reply.wav")
# 1.6 s of speech echoed at 16 kHz mono 16-bit is ~51 kB; earcons add a little.
[ "$reply_bytes" -gt 40000 ] || { echo "error: the reply WAV holds only $reply_bytes bytes" >&2; exit 1; }
echo "== aarch64 turn OK: reply.wav $reply_bytes bytes"
