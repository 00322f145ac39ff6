#!/usr/bin/env bash
# pivox as an ESPHome native-API voice satellite (`[server] kind = "esphome"`) against a REAL
# Home Assistant 2026.2.3: the rig in ../shared/ha-rig (its README), on loopback only. pivox runs
# with simulated devices: the microphone is a named pipe the test speaks the rig's y.wav into,
# the button is pivox's stdin (each line toggles it), the speaker writes reply.wav. Checks:
#   a. HA adds the device through its esphome config flow and provisions the Noise key: pivox
#      keeps it 0600 and reconnects encrypted;
#   b. a push-to-talk turn: HA's speech-to-text double heard y.wav, the light went on, the
#      reply played, the satellite is idle again;
#   c. an announcement and d. start_conversation, checked by the rig's check.sh;
#   e. a second config flow while idle leaves the voice connection working;
#   f. removal, and pivox exits 0 on SIGTERM.
#
#   tests/ha-esphome.sh [PIVOX_BINARY]   (default target/debug/pivox)
#
# HA lives in $PIVOX_HA_ROOT (default ~/.cache/pivox/ha-test: its config, token, pid file and
# log) but runs from the rig's default venv, ~/.cache/pivox/ha-rig/ha (setup.sh's pip install,
# about 2 minutes the first time, cached after); a separate root keeps an HA someone runs from
# the default root (port 8123) out of this test's way, and this test's HA out of theirs. HA
# listens on 127.0.0.1:$PIVOX_HA_PORT (18123), pivox on 127.0.0.1:$PIVOX_DUT_PORT (16053).
# Both are stopped at exit, whatever happens.
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

binary=${1:-$repo/target/debug/pivox}
[ -x "$binary" ] || fail "no pivox binary at $binary (cargo build -p pivox --bin pivox)"
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
rig=$("$repo/scripts/ha-rig.sh") || fail "no Home Assistant rig (../shared/ha-rig beside this repository or its origin; or set PIVOX_HA_RIG)"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/pivox
# The rig's knobs (common.sh): everything but the venv in this test's own root.
export TESTRIG_ROOT=${PIVOX_HA_ROOT:-$cache/ha-test}
export HA_VENV=$cache/ha-rig/ha
export HA_PORT=${PIVOX_HA_PORT:-18123} DUT_HOST=127.0.0.1 DUT_PORT=${PIVOX_DUT_PORT:-16053}
unset HA_CONF HA_TOKEN_FILE DUT_NOISE_PSK DUT_SPEAK_CMD DUT_CAPTURE_CMD UTTERANCE_WAV MIN_COVERAGE
# shellcheck source=/dev/null
source "$rig/common.sh"

started=$(date +%s.%N) phase_started=$started phase_name='' phase_times=()
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
phase() { # phase NAME [DETAIL]: ends the phase before (its time goes in the summary), starts NAME
  if [ -n "$phase_name" ]; then
    phase_times+=("$(printf '%-28s %5s s' "$phase_name" "$(elapsed "$phase_started")")")
  fi
  phase_name=$1 phase_started=$(date +%s.%N)
  [ -z "$1" ] || echo "ha-test [$(elapsed "$started") s]: $1${2:+ ($2)}"
}
verify() { # verify DESCRIPTION COMMAND...: a numbered check line
  check "$@"
  echo "  check $checks: $1"
}

# ---- What the test needs -------------------------------------------------------------------------
for need in espeak-ng:espeak-ng sox:sox ffmpeg:ffmpeg curl:curl; do
  command -v "${need%%:*}" >/dev/null || fail "${need%%:*} not found (package ${need#*:}; make test-deps)"
done
find_python313 >/dev/null ||
  fail "no Python 3.13 for Home Assistant 2026.2.3: none on PATH (python3.13) or in pyenv (~/.pyenv/versions/3.13.*); install one, or set PYTHON="
for port in "$HA_PORT" "$DUT_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "something already listens on 127.0.0.1:$port (set PIVOX_HA_PORT / PIVOX_DUT_PORT)"
  fi
done

dir=$scratch
pivox_pid='' ha_started=no
finish() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$status" -ne 0 ]; then
    echo "---- tail of pivox's log ($dir/pivox.log)" >&2
    tail -n 60 "$dir/pivox.log" >&2 2>/dev/null || true
    echo "---- tail of Home Assistant's log ($HA_LOG)" >&2
    tail -n 60 "$HA_LOG" >&2 2>/dev/null || true
  fi
  if [ -n "$pivox_pid" ] && kill -0 "$pivox_pid" 2>/dev/null; then
    kill -TERM "$pivox_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pivox_pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pivox_pid" 2>/dev/null || true
  fi
  exec 3>&-
  [ "$ha_started" = no ] || timeout 90 "$rig/stop.sh" >/dev/null 2>&1 || true
  cleanup
  exit "$status"
}
trap finish EXIT
trap 'echo "ha-test: interrupted" >&2; exit 130' INT
trap 'echo "ha-test: terminated" >&2; exit 143' TERM

py() { "$HA_VENV/bin/python" "$@"; }
rig_py() { timeout 150 "$HA_VENV/bin/python" "$rig/rig.py" "$@"; }
# wait_until SECONDS DESCRIPTION COMMAND...: polls every 0.25 s; fails with DESCRIPTION.
wait_until() {
  local limit=$1 what=$2 deadline; shift 2
  deadline=$(($(date +%s) + limit))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what (not within $limit s)"
    if [ -n "$pivox_pid" ] && ! kill -0 "$pivox_pid" 2>/dev/null; then fail "$what: pivox exited"; fi
    sleep 0.25
  done
}
# log_since LINE: pivox's log from line LINE on.
log_since() { tail -n "+$1" "$dir/pivox.log"; }
log_lines() { wc -l <"$dir/pivox.log"; }
logged_since() { log_since "$1" | grep -qE -- "$2"; }
ha() { # ha METHOD PATH [JSON]: HA's REST API with the rig's token
  local body=()
  [ -z "${3:-}" ] || body=(-H 'Content-Type: application/json' --data "$3")
  curl -sf -m 10 -X "$1" -H "Authorization: Bearer $(cat "$HA_TOKEN_FILE")" "${body[@]}" "$HA_URL$2"
}
ha_answers() { ha GET /api/config >/dev/null; }
json() { py -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
state_of() { ha GET "/api/states/$1" | json 'd["state"]'; }
state_is() { [ "$(state_of "$1" 2>/dev/null)" = "$2" ]; }

# Audio figures with the rig's own functions (rig.py: envelope in 10 ms frames, coverage).
cat >"$dir/audio.py" <<'EOF'
import sys, wave
sys.path.insert(0, sys.argv[1])
import rig
cmd = sys.argv[2]
if cmd == "frames":  # frames WAV: its length in samples
    with wave.open(sys.argv[3], "rb") as w:
        print(w.getnframes())
elif cmd == "loud":  # loud WAV FROM: seconds louder than 300 RMS from sample FROM on
    a = rig.read_wav_mono16k(sys.argv[3])[int(sys.argv[4]):]
    print(f"{sum(1 for v in rig.envelope(a) if v > 300) * 0.01:.2f}")
elif cmd == "coverage":  # coverage REF REC: the share of REF's speech found in REC
    c = rig.coverage(rig.envelope(rig.read_wav_mono16k(sys.argv[3])),
                     rig.envelope(rig.read_wav_mono16k(sys.argv[4])))
    print(f"{c['coverage']:.3f}")
EOF
audio() { py "$dir/audio.py" "$rig" "$@"; }

# ---- Home Assistant ------------------------------------------------------------------------------
phase "HA setup" "the rig's setup.sh: about 2 min the first time, seconds after"
mkdir -p "$TESTRIG_ROOT" "$cache/ha-rig/wheels"
# The downloaded homeassistant wheel is shared with the default root too.
[ -e "$TESTRIG_ROOT/wheels" ] || ln -s "$cache/ha-rig/wheels" "$TESTRIG_ROOT/wheels"
# An HA left behind by an interrupted run of this test (only the pid in this root's pid file).
timeout 90 "$rig/stop.sh" >/dev/null
timeout 1800 "$rig/setup.sh" >"$dir/setup.log" 2>&1 || { cat "$dir/setup.log" >&2; fail "the rig's setup.sh failed"; }
[ -s "$TESTRIG_ROOT/y.wav" ] || fail "setup.sh made no $TESTRIG_ROOT/y.wav"
y_wav=$TESTRIG_ROOT/y.wav
y_seconds=$(awk -v n="$(audio frames "$y_wav")" 'BEGIN { print n / 16000 }')

phase "HA start" "127.0.0.1:$HA_PORT"
ha_started=yes
HA_START_TIMEOUT=240 timeout 300 "$rig/start.sh" >"$dir/start.log" 2>&1 ||
  { cat "$dir/start.log" >&2; fail "the rig's start.sh failed"; }
verify "Home Assistant answers on 127.0.0.1:$HA_PORT" ha_answers
remove_device() { rig_py remove-device >>"$dir/remove.log" 2>&1 || { cat "$dir/remove.log" >&2; return 1; }; }
verify "no esphome entry is left from an earlier run" remove_device

# ---- a. pivox, added by HA's config flow, with the key HA provisions -----------------------------
phase "a. adding, key provisioning"
mkfifo "$dir/mic" "$dir/button"
cat >"$dir/pivox.toml" <<EOF
[server]
kind = "esphome"
listen = "127.0.0.1:$DUT_PORT"
name = "pivox-rig"
mac = "02:00:00:00:00:42"
mdns = false
state_dir = "$dir/state"

[microphone]
backend = "sim"
device = "pipe:$dir/mic"

[speaker]
backend = "sim"
device = "$dir/reply.wav"

[button]
backend = "sim"
device = "stdin"

[led]
backend = "sim"
EOF
mkdir -m 0700 "$dir/state"
key_file=$dir/state/esphome-key
"$binary" check-config "$dir/pivox.toml" >"$dir/check-config.log" 2>&1 ||
  { cat "$dir/check-config.log" >&2; fail "pivox check-config refuses the test's config"; }
# A key this pivox does not know would fall back to a default (state_dir: /var/lib/pivox).
if grep -i 'unknown key' "$dir/check-config.log" >&2; then fail "pivox does not know a key of the test's config"; fi
# The button's lines go through a FIFO this shell holds open (read-write: opening it does not
# wait for a reader), so pivox's stdin stays open between presses.
exec 3<>"$dir/button"
RUST_LOG=info "$binary" run --config "$dir/pivox.toml" <"$dir/button" >"$dir/pivox.log" 2>&1 &
pivox_pid=$!
wait_until 15 "pivox listens on 127.0.0.1:$DUT_PORT" logged_since 1 "waiting for Home Assistant on 127.0.0.1:$DUT_PORT"
add_device() { # add_device [rig.py add-device options]: HA's esphome config flow
  rig_py add-device --host "$DUT_HOST" --port "$DUT_PORT" "$@" >"$dir/add-device.json" 2>"$dir/add-device.log" ||
    { cat "$dir/add-device.log" "$dir/add-device.json" >&2; return 1; }
}
verify "HA's esphome config flow adds pivox" add_device
satellite=$(json 'd["satellites"][0]["entity_id"]' <"$dir/add-device.json")
echo "  satellite entity: $satellite"
provisioned() { awk '/set the encryption key/ { k = 1 } k && /ready: connected/ { f = 1 } END { exit !f }' "$dir/pivox.log"; }
wait_until 30 "pivox logs that HA set the key, then 'ready: connected'" provisioned
verify "pivox: HA set the encryption key, then it reconnected (encrypted)" provisioned
verify "the key HA set is in state_dir/esphome-key" test -s "$key_file"
verify "the key file's mode is 0600" test "$(stat -c %a "$key_file")" = 600
wait_until 30 "$satellite is idle" state_is "$satellite" idle
verify "$satellite is idle" state_is "$satellite" idle

# ---- b. a push-to-talk turn -----------------------------------------------------------------------
phase "b. push-to-talk turn"
# y.wav as raw PCM into the microphone's pipe (it fits the pipe's buffer; pivox reads it in real time).
speak_cmd="sox '$y_wav' -t raw -e signed-integer -b 16 -c 1 -r 16000 -L - >'$dir/mic'"
ha POST /api/services/light/turn_off '{"entity_id": "light.kitchen_lights"}' >/dev/null
verify "light.kitchen_lights is off before the turn" state_is light.kitchen_lights off
rm -f "$HA_CONF/testrig_stt_last.json" "$HA_CONF/testrig_stt_last.wav"
reply_from=0
[ ! -s "$dir/reply.wav" ] || reply_from=$(audio frames "$dir/reply.wav")
from=$(($(log_lines) + 1))
echo >&3 # press
timeout 10 sh -c "$speak_cmd" || fail "writing y.wav into the microphone's pipe failed"
sleep "$(awk -v s="$y_seconds" 'BEGIN { print s + 0.5 }')"
echo >&3 # release
outcomes='Completed|NoReply|TooShort|BargedIn|LinkLost|ReplyTimeout|ReplyStalled|ReplyTooLong|ServerError|NotUnderstood'
wait_until 30 "pivox logs the push-to-talk turn's outcome" logged_since "$from" "turn [0-9]+:? ($outcomes)\b"
outcome=$(log_since "$from" | grep -oE "turn [0-9]+:? ($outcomes)\b" | head -1)
verify "the turn completed (pivox: '$outcome')" grep -qE '^turn [0-9]+ Completed$' <<<"$outcome"
verify "HA's speech-to-text double got the audio" test -s "$HA_CONF/testrig_stt_last.json"
stt_text=$(json 'd["text"]' <"$HA_CONF/testrig_stt_last.json")
stt_seconds=$(json 'd["seconds"]' <"$HA_CONF/testrig_stt_last.json")
verify "speech-to-text: text '$stt_text'" test -n "$stt_text"
verify "speech-to-text heard $stt_seconds s (>= 1 s)" awk -v s="$stt_seconds" 'BEGIN { exit !(s >= 1) }'
coverage=$(audio coverage "$y_wav" "$HA_CONF/testrig_stt_last.wav")
verify "speech-to-text got $coverage of y.wav's speech (>= 0.9)" awk -v c="$coverage" 'BEGIN { exit !(c >= 0.9) }'
wait_until 10 "light.kitchen_lights turns on" state_is light.kitchen_lights on
verify "light.kitchen_lights is on" state_is light.kitchen_lights on
wait_until 15 "$satellite is idle after the turn" state_is "$satellite" idle
verify "$satellite is idle again" state_is "$satellite" idle
loud=$(audio loud "$dir/reply.wav" "$reply_from")
verify "reply.wav: $loud s of reply audio played (>= 0.5 s)" awk -v s="$loud" 'BEGIN { exit !(s >= 0.5) }'

# ---- c. an announcement ---------------------------------------------------------------------------
phase "c. announcement"
# rig_turn NAME [turn.sh options]: one turn started by HA, then the rig's check.sh on it.
rig_turn() {
  local name=$1; shift
  timeout 150 "$rig/turn.sh" "$@" --out "$dir/$name" >"$dir/$name.log" 2>&1 ||
    { cat "$dir/$name.log" >&2; return 1; }
  timeout 60 "$rig/check.sh" "$dir/$name" >"$dir/$name.check.json" 2>&1 ||
    { cat "$dir/$name.check.json" >&2; return 1; }
}
reply_from=$(audio frames "$dir/reply.wav")
verify "announce: check.sh passes (reply fetched, announcement finished)" \
  rig_turn announce --mode announce --message "This is the pivox test. The announcement works."
loud=$(audio loud "$dir/reply.wav" "$reply_from")
verify "reply.wav: $loud s of the announcement played (>= 0.5 s)" awk -v s="$loud" 'BEGIN { exit !(s >= 0.5) }'

# ---- d. start_conversation ------------------------------------------------------------------------
phase "d. start_conversation"
export DUT_SPEAK_CMD="timeout 10 sh -c \"$speak_cmd\""
verify "start_conversation: check.sh passes (STT coverage >= 90 %, light on, reply delivered)" \
  rig_turn conversation --mode start_conversation --message "What should I do?"
unset DUT_SPEAK_CMD

# ---- e. a config-flow probe while idle ------------------------------------------------------------
phase "e. config flow while idle" "then an announcement"
wait_until 15 "$satellite is idle before the probe" state_is "$satellite" idle
# pivox now requires the key HA set; the flow asks for it, as it would a user.
verify "a second config flow (--force) with the provisioned key" add_device --force --noise-psk "$(cat "$key_file")"
verify "announce after the probe: check.sh passes" rig_turn announce2 --mode announce --message "Still here."

# ---- f. clean up ----------------------------------------------------------------------------------
phase "f. removal, shutdown"
# HA's log up to here: removing an entry races HA's own unload of the satellite platform with
# the disconnect it sends itself ("Config entry was never loaded!"), whatever the device.
ha_log_before_removal=$(wc -l <"$HA_LOG")
from=$(($(log_lines) + 1))
verify "HA removes the esphome entry" remove_device
wait_until 15 "pivox logs HA's disconnect" logged_since "$from" "Home Assistant .* disconnected"
verify "pivox logs HA's disconnect" logged_since "$from" "Home Assistant .* disconnected"
# HA removing the device takes its key back: the next HA adds it without one.
wait_until 10 "pivox forgets the key HA removed" test ! -e "$key_file"
verify "HA took the key back: state_dir/esphome-key is gone" test ! -e "$key_file"
kill -TERM "$pivox_pid"
for _ in $(seq 1 40); do kill -0 "$pivox_pid" 2>/dev/null || break; sleep 0.25; done
kill -0 "$pivox_pid" 2>/dev/null && fail "pivox still runs 10 s after SIGTERM"
status=0 && wait "$pivox_pid" || status=$?
pivox_pid=''
verify "pivox exits 0 on SIGTERM (status $status)" test "$status" = 0
exec 3>&-
stop_ha() { timeout 90 "$rig/stop.sh" >"$dir/stop.log" 2>&1 || { cat "$dir/stop.log" >&2; return 1; }; }
verify "Home Assistant stops" stop_ha
ha_started=no
# Nothing HA did with the device went wrong on its side (adding, provisioning, turns).
ha_errors() {
  head -n "$ha_log_before_removal" "$HA_LOG" | grep -E '^[0-9-]+ [0-9:.]+ ERROR .*(esphome|assist_satellite|aioesphomeapi)' || true
}
verify "HA logged no esphome or satellite error" test -z "$(ha_errors)"
phase ''

echo "ha-test phase times:"
printf '  %s\n' "${phase_times[@]}"
echo "tests/ha-esphome.sh: $checks checks passed in $(elapsed "$started") s"
