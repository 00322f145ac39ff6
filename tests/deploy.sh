#!/usr/bin/env bash
# deploy.sh against a real sshd on 127.0.0.1: temporary host and user keys, a temporary folder
# standing in for the Pi's root, and stand-ins for systemctl (this machine runs no systemd)
# and sudo on the remote PATH. The stand-in systemctl "starts" pivox by running the installed
# aarch64 binary under qemu-aarch64 (`pivox --version`): a binary that cannot run is a
# service that never becomes ready. The boot test (tests/system.sh) does the same under real
# systemd.
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

binary=${1:-$repo/target/aarch64-unknown-linux-gnu/release/pivox}
[ -f "$binary" ] || fail "no aarch64 binary at $binary (make aarch64)"
sshd=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd" ] || fail "sshd not found (apt install openssh-server)"
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || fail "qemu-aarch64 not found (make cross-deps)"

pi="$scratch/pi" stubs="$scratch/stubs" keys="$scratch/ssh"
mkdir -p "$pi/usr/local/bin" "$pi/boot/firmware" "$stubs" "$keys"
cp "$binary" "$pi/usr/local/bin/pivox"
cp image/pivox.toml "$pi/boot/firmware/pivox.toml"

# Stand-ins on the remote PATH.
cat >"$stubs/systemctl" <<EOF
#!/usr/bin/env bash
# Stand-in systemctl for pivox.service; its state lives in $scratch/service-state.
state=$scratch/service-state
echo "systemctl \$*" >>$scratch/systemctl.log
case "\$1" in
  cat) [ "\$2" = pivox.service ] ;;
  restart)
    if $qemu $pi/usr/local/bin/pivox --version >/dev/null 2>&1; then echo active >\$state; else
      echo failed >\$state
      echo "Job for pivox.service failed because the control process exited with error code." >&2
      exit 1
    fi ;;
  is-active) s=\$(cat \$state 2>/dev/null || echo inactive); echo \$s; [ \$s = active ] ;;
  show) [ "\$3" = NRestarts ] && echo 0 || echo "connected to ws://voice-server.local:8765/" ;;
  *) echo "stand-in systemctl: \$1 not supported" >&2; exit 1 ;;
esac
EOF
cat >"$stubs/sudo" <<EOF
#!/usr/bin/env bash
# Stand-in sudo: the test's user may have none. Refuses as sudo does when $scratch/no-sudo exists.
[ "\$1" = -n ] && shift
if [ -e $scratch/no-sudo ]; then echo "sudo: a password is required" >&2; exit 1; fi
exec "\$@"
EOF
# With $scratch/no-sudo the login user also looks like an ordinary one (this test may run as root).
cat >"$stubs/id" <<EOF
#!/bin/sh
if [ "\$1" = -u ] && [ -e $scratch/no-sudo ]; then echo 1000; else exec /usr/bin/id "\$@"; fi
EOF
chmod +x "$stubs/systemctl" "$stubs/sudo" "$stubs/id"

# A real sshd on 127.0.0.1, on a free port, for this user only, keys only.
ssh-keygen -q -t ed25519 -N '' -f "$keys/host"
ssh-keygen -q -t ed25519 -N '' -f "$keys/user"
cp "$keys/user.pub" "$keys/authorized_keys"
port=$(free_port)
cat >"$keys/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $keys/host
PidFile $keys/sshd.pid
AuthorizedKeysFile $keys/authorized_keys
AllowUsers $(id -un)
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
SetEnv PATH=$stubs:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
EOF
# As root, sshd wants its privilege separation directory (made by its service on a real system).
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
"$sshd" -D -e -f "$keys/sshd_config" 2>"$scratch/sshd.log" &
sshd_pid=$!
cleanups+=("kill $sshd_pid 2>/dev/null")
echo "[127.0.0.1]:$port $(cat "$keys/host.pub")" >"$keys/known_hosts"
export PIVOX_SSH_OPTS="-p $port -i $keys/user -o UserKnownHostsFile=$keys/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
export PIVOX_REMOTE_ROOT="$pi"
host="$(id -un)@127.0.0.1"
for _ in $(seq 1 50); do
  kill -0 "$sshd_pid" 2>/dev/null || fail "sshd exited: $(cat "$scratch/sshd.log")"
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
ssh -o BatchMode=yes $PIVOX_SSH_OPTS "$host" true 2>/dev/null || fail "cannot log in to the test sshd: $(cat "$scratch/sshd.log")"

# The remote side always sees aarch64: this machine is x86_64, so `uname` is a stand-in too.
printf '#!/bin/sh\n[ "$1" = -m ] && echo aarch64 || exec /bin/uname "$@"\n' >"$stubs/uname" && chmod +x "$stubs/uname"

make_deploy_binaries "$binary" "$scratch"
new="$scratch/pivox-new" broken="$scratch/pivox-broken"

# 1. A good deploy.
out=$(./deploy.sh --binary "$new" "$host" 2>&1) || fail "good deploy failed: $out"
check_contains "good deploy: says so" "done: $host runs the new version" "$out"
check_eq "good deploy: new binary in place" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"
check_eq "good deploy: previous kept" "$(sum "$binary")" "$(sum "$pi/usr/local/bin/pivox.previous")"
check_eq "good deploy: executable" 755 "$(stat -c %a "$pi/usr/local/bin/pivox")"
check_contains "good deploy: restarted" "systemctl restart pivox.service" "$(cat "$scratch/systemctl.log")"
check "good deploy: no temporary file left" test -z "$(find /tmp -maxdepth 1 -name 'pivox-deploy.*' -user "$(id -u)" -newer "$keys/sshd_config" 2>/dev/null)"

# 2. The wrong architecture is refused before anything is sent.
: >"$scratch/systemctl.log"
check_refused "x86 binary refused" "is x86_64, not aarch64" ./deploy.sh --binary "$repo/target/debug/pivox" "$host"
check_refused "a text file refused" "is not an ELF file, not aarch64" ./deploy.sh --binary README.md "$host"
check_eq "wrong arch: nothing ran on the Pi" "" "$(cat "$scratch/systemctl.log")"
check_eq "wrong arch: binary unchanged" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"

# 3. A checksum mismatch (the upload corrupted on the way) is refused on the Pi. The remote
#    side is given a wrong sum directly, as deploy.sh would pass on a corrupted transfer.
tmp=$(ssh $PIVOX_SSH_OPTS "$host" 'umask 077; t=$(mktemp /tmp/pivox-deploy.XXXXXX); cat >"$t"; echo "$t"' <"$binary")
status=0
mismatch=$(ssh $PIVOX_SSH_OPTS "$host" bash -s -- install "$pi" 10 "$tmp" "$(sum "$new")" - - <scripts/deploy-remote.sh 2>&1) || status=$?
check_eq "checksum mismatch: exit status 3" 3 "$status"
check_contains "checksum mismatch: says so" "the uploaded binary is corrupt" "$mismatch"
check_eq "checksum mismatch: binary unchanged" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"
check "checksum mismatch: upload removed" test ! -e "$tmp"

# 4. An unhealthy binary (an aarch64 ELF header, then garbage: it cannot start) is rolled back.
status=0
out=$(./deploy.sh --binary "$broken" --timeout 20 "$host" 2>&1) || status=$?
check_eq "unhealthy: deploy fails" 1 "$status"
check_contains "unhealthy: says it rolled back" "it runs the previous one again" "$out"
check_eq "unhealthy: previous binary back" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"
check_eq "unhealthy: failed one kept for a look" "$(sum "$broken")" "$(sum "$pi/usr/local/bin/pivox.failed")"
check_eq "unhealthy: the service runs again" active "$(cat "$scratch/service-state")"
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
: >"$scratch/systemctl.log"
out=$(./deploy.sh --dry-run --binary "$binary" "$host" 2>&1) || fail "dry run failed: $out"
check_contains "dry run: says what it would do" "would upload $binary" "$out"
check_eq "dry run: binary unchanged" "$before" "$(sum "$pi/usr/local/bin/pivox")"
check_eq "dry run: nothing restarted" "" "$(cat "$scratch/systemctl.log")"

# 8. Clear errors: no sudo, host unreachable, bad arguments.
touch "$scratch/no-sudo"
check_refused "no sudo" "cannot use sudo without a password" ./deploy.sh --binary "$new" "$host"
rm "$scratch/no-sudo"
closed=1  # nothing listens on port 1
check_refused "unreachable" "cannot reach $(id -un)@127.0.0.1 over SSH" env PIVOX_SSH_OPTS="-p $closed -i $keys/user -o UserKnownHostsFile=$keys/known_hosts" ./deploy.sh --binary "$new" "$host"
check_refused "no host" "usage:" ./deploy.sh
check_refused "unknown option" "unknown option '--force'" ./deploy.sh --force "$host"
check_refused "bad timeout" "--timeout 'soon'" ./deploy.sh --timeout soon "$host"
check_eq "after all that: the new binary still in place" "$(sum "$new")" "$(sum "$pi/usr/local/bin/pivox")"

echo "tests/deploy.sh: $checks checks passed"
