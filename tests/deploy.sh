#!/usr/bin/env bash
# deploy.sh against a real sshd on 127.0.0.1: temporary host and user keys, a temporary folder
# standing in for the Pi's root, and stand-ins for systemctl, sudo and uname on the remote PATH
# (tests/standin-pi.sh says what each does).
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/standin-pi.sh
source "$(dirname "$0")/standin-pi.sh"

binary=${1:-$repo/target/aarch64-unknown-linux-gnu/release/pivox}
[ -f "$binary" ] || fail "no aarch64 binary at $binary (make aarch64)"

# The Pi: its / is $pi, its stand-ins' state and logs beside it in $scratch/pi.
keys="$scratch/ssh" standin="$scratch/pi"
pi="$standin/root"
mkdir -p "$keys"
ssh-keygen -q -t ed25519 -N '' -f "$keys/user"
port=$(free_port)
start_standin_pi "$standin" 127.0.0.1 "$port" "$binary" "$keys/user.pub"
export PIVOX_SSH_OPTS="-p $port -i $keys/user -o UserKnownHostsFile=$scratch/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
export PIVOX_REMOTE_ROOT="$pi"
host="$(id -un)@127.0.0.1"
ssh -o BatchMode=yes $PIVOX_SSH_OPTS "$host" true 2>/dev/null || fail "cannot log in to the test sshd: $(cat "$standin/sshd.log")"

make_deploy_binaries "$binary" "$scratch"
new="$scratch/pivox-new" broken="$scratch/pivox-broken"

# 1. A good deploy.
out=$(./deploy.sh --binary "$new" "$host" 2>&1) || fail "good deploy failed: $out"
check_contains "good deploy: says so" "done: $host runs the new version" "$out"
check_eq "good deploy: new binary in place" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"
check_eq "good deploy: previous kept" "$(sum "$binary")" "$(sum "$pi/usr/local/bin/pivox.previous")"
check_eq "good deploy: executable" 755 "$(stat -c %a "$pi/usr/local/bin/pivox")"
check_contains "good deploy: restarted" "systemctl restart pivox.service" "$(cat "$standin/systemctl.log")"
check "good deploy: no temporary file left" test -z "$(find /tmp -maxdepth 1 -name 'pivox-deploy.*' -user "$(id -u)" -newer "$standin/ssh/sshd_config" 2>/dev/null)"

# 2. The wrong architecture is refused before anything is sent.
: >"$standin/systemctl.log"
check_refused "x86 binary refused" "is x86_64, not aarch64" ./deploy.sh --binary "$repo/target/debug/pivox" "$host"
check_refused "a text file refused" "is not an ELF file, not aarch64" ./deploy.sh --binary README.md "$host"
check_eq "wrong arch: nothing ran on the Pi" "" "$(cat "$standin/systemctl.log")"
check_eq "wrong arch: binary unchanged" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"

# 3. A checksum mismatch (the upload corrupted on the way) is refused on the Pi. The remote
#    side is given a wrong sum directly, as deploy.sh would pass on a corrupted transfer.
tmp=$(ssh $PIVOX_SSH_OPTS "$host" 'umask 077; t=$(mktemp /tmp/pivox-deploy.XXXXXX); cat >"$t"; echo "$t"' <"$binary")
status=0
mismatch=$(ssh $PIVOX_SSH_OPTS "$host" bash -s -- install "$pi" 10 3 "$tmp" "$(sum "$new")" - - <scripts/deploy-remote.sh 2>&1) || status=$?
check_eq "checksum mismatch: exit status 3" 3 "$status"
check_contains "checksum mismatch: says so" "the uploaded binary is corrupt" "$mismatch"
check_eq "checksum mismatch: binary unchanged" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"
check "checksum mismatch: upload removed" test ! -e "$tmp"

# 4. An unhealthy binary (an aarch64 ELF header, then garbage: it cannot start) is rolled back.
status=0
out=$(./deploy.sh --binary "$broken" --timeout 20 "$host" 2>&1) || status=$?
check_eq "unhealthy: deploy fails" 1 "$status"
check_contains "unhealthy: says it rolled back" "it runs the previous one again" "$out"
check_eq "unhealthy: the Pi's error is its message alone (no exit code after it)" "" "$(grep -E '^pi: error: .* [0-9]+$' <<<"$out" || true)"
check_eq "unhealthy: previous binary back" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"
check_eq "unhealthy: failed one kept for a look" "$(sum "$broken")" "$(sum "$pi/usr/local/bin/pivox.failed")"
check_eq "unhealthy: the service runs again" active "$(cat "$standin/service-state")"
check_eq "unhealthy: .previous still the one before" "$(sum "$binary")" "$(sum "$pi/usr/local/bin/pivox.previous")"

# 5. --rollback swaps back to the binary before the last good deploy, and a second one returns.
out=$(./deploy.sh --rollback "$host" 2>&1) || fail "rollback failed: $out"
check_contains "rollback: says so" "the previous binary is back" "$out"
check_eq "rollback: the original binary" "$(sum "$binary")" "$(sum "$pi/usr/local/bin/pivox")"
check_eq "rollback: the newer one kept" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox.previous")"
./deploy.sh --rollback "$host" >/dev/null 2>&1 || fail "second rollback failed"
check_eq "rollback twice: back to the new one" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"

# 6. --config: checked by pivox on the Pi, installed where the daemon reads it, bad ones refused.
sed 's/^# friendly_name = "Kitchen"/friendly_name = "Kitchen"/' image/pivox.toml >"$scratch/good.toml"
cmp -s image/pivox.toml "$scratch/good.toml" && fail "the test's config edit did not apply to image/pivox.toml"
out=$(./deploy.sh --config "$scratch/good.toml" "$host" 2>&1) || fail "config deploy failed: $out"
check "config: installed on the boot partition" cmp -s "$scratch/good.toml" "$pi/boot/firmware/pivox.toml"
check "config: previous kept" cmp -s image/pivox.toml "$pi/boot/firmware/pivox.toml.previous"
check_eq "config alone: binary unchanged" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"
printf '[server]\nurl = "ws://x/"\n[audio]\nframe_ms = 33\n' >"$scratch/bad.toml"
check_refused "config: a bad one refused by the Pi's pivox" "Opus frames are 10 or 20 ms" ./deploy.sh --config "$scratch/bad.toml" "$host"
check "config: the good one stays" cmp -s "$scratch/good.toml" "$pi/boot/firmware/pivox.toml"

# 7. --dry-run changes nothing.
before=$(sum "$pi/usr/local/bin/pivox")
: >"$standin/systemctl.log"
out=$(./deploy.sh --dry-run --binary "$binary" "$host" 2>&1) || fail "dry run failed: $out"
check_contains "dry run: says what it would do" "would upload $binary" "$out"
check_eq "dry run: binary unchanged" "$before" "$(sum "$pi/usr/local/bin/pivox")"
check_eq "dry run: nothing restarted" "" "$(cat "$standin/systemctl.log")"

# 8. Clear errors: no sudo, host unreachable, bad arguments.
touch "$standin/no-sudo"
check_refused "no sudo" "cannot use sudo without a password" ./deploy.sh --binary "$new" "$host"
rm "$standin/no-sudo"
closed=1  # nothing listens on port 1
check_refused "unreachable" "cannot reach $(id -un)@127.0.0.1 over SSH" env PIVOX_SSH_OPTS="-p $closed -i $keys/user -o UserKnownHostsFile=$scratch/known_hosts" ./deploy.sh --binary "$new" "$host"
check_refused "no host" "usage:" ./deploy.sh
check_refused "unknown option" "unknown option '--force'" ./deploy.sh --force "$host"
check_refused "bad timeout" "--timeout 'soon'" ./deploy.sh --timeout soon "$host"
check_refused "bad settle" "--settle '0'" ./deploy.sh --settle 0 "$host"
check_eq "after all that: the new binary still in place" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"

echo "tests/deploy.sh: $checks checks passed"
