# shellcheck shell=bash
# Sourced by tests/deploy.sh and tests/fleet.sh (after tests/lib.sh): a stand-in Raspberry Pi
# reached over a real sshd on a loopback address. This machine runs no systemd and is x86_64,
# so the Pi's side of an update (scripts/deploy-remote.sh) finds stand-ins first on its PATH:
#   systemctl  pivox.service only. `restart` "starts" pivox by running the installed aarch64
#              binary under qemu-aarch64 (`pivox --version`): a binary that cannot run is a
#              service that never becomes ready. A binary whose sha256 is listed in the Pi's
#              DIR/cannot-run does not start either: a Pi this build does not work on.
#   sudo       runs the command (the test's user may have none; deploy.sh's `sudo -n` and
#              Ansible's `sudo -H -S -n -u root /bin/sh -c …` alike); refuses as sudo does while
#              DIR/no-sudo exists
#   id         `id -u` says 1000 while DIR/no-sudo exists (this test may run as root)
#   uname      `uname -m` says what DIR/machine says: aarch64 at first
# The boot test (tests/system.sh) does the same under real systemd on a real aarch64 kernel.

# start_standin_pi DIR ADDRESS PORT BINARY USER_KEY_PUB: the Pi's / is DIR/root, with BINARY as
# /usr/local/bin/pivox and the image's pivox.toml on its boot partition; its sshd listens on
# ADDRESS:PORT with a host key of its own, lets the test's user in with USER_KEY_PUB, and is
# stopped at exit. Appends the host key to DIR/../known_hosts.
# shellcheck disable=SC2154 # repo: set by tests/lib.sh
start_standin_pi() {
  local dir=$1 address=$2 port=$3 binary=$4 user_key=$5 qemu sshd pid
  qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || fail "qemu-aarch64 not found (make cross-deps)"
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  [ -x "$sshd" ] || fail "sshd not found (apt install openssh-server)"
  mkdir -p "$dir/root/usr/local/bin" "$dir/root/boot/firmware" "$dir/stubs" "$dir/ssh"
  cp "$binary" "$dir/root/usr/local/bin/pivox"
  cp "$repo/image/pivox.toml" "$dir/root/boot/firmware/pivox.toml"
  touch "$dir/cannot-run"

  cat >"$dir/stubs/systemctl" <<EOF
#!/usr/bin/env bash
# Stand-in systemctl for pivox.service; its state lives in $dir/service-state.
state=$dir/service-state
echo "systemctl \$*" >>$dir/systemctl.log
case "\$1" in
  cat) [ "\$2" = pivox.service ] ;;
  restart)
    bin=$dir/root/usr/local/bin/pivox
    if ! grep -qx "\$(sha256sum <\$bin | cut -d' ' -f1)" $dir/cannot-run && $qemu \$bin --version >/dev/null 2>&1; then
      echo active >\$state
    else
      echo failed >\$state
      echo "Job for pivox.service failed because the control process exited with error code." >&2
      exit 1
    fi ;;
  is-active) s=\$(cat \$state 2>/dev/null || echo inactive); echo \$s; [ \$s = active ] ;;
  show) [ "\$3" = NRestarts ] && echo 0 || echo "connected to ws://voice-server.local:8765/" ;;
  *) echo "stand-in systemctl: \$1 not supported" >&2; exit 1 ;;
esac
EOF
  cat >"$dir/stubs/sudo" <<EOF
#!/usr/bin/env bash
# Stand-in sudo: skips sudo's options, runs the command. Refuses while $dir/no-sudo exists.
while [ \$# -gt 0 ]; do
  case "\$1" in
    -u | -g | -p | -C | -D | -h | -U) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ -e $dir/no-sudo ]; then echo "sudo: a password is required" >&2; exit 1; fi
exec "\$@"
EOF
  cat >"$dir/stubs/id" <<EOF
#!/bin/sh
if [ "\$1" = -u ] && [ -e $dir/no-sudo ]; then echo 1000; else exec /usr/bin/id "\$@"; fi
EOF
  echo aarch64 >"$dir/machine"
  printf '#!/bin/sh\n[ "$1" = -m ] && cat %s || exec /bin/uname "$@"\n' "$dir/machine" >"$dir/stubs/uname"
  chmod +x "$dir/stubs/systemctl" "$dir/stubs/sudo" "$dir/stubs/id" "$dir/stubs/uname"

  # A real sshd for this user only, keys only; sftp inside sshd (no sftp-server path needed).
  # SHLVL=1: bash, the login shell that runs each command, then skips ~/.bashrc, as a Pi's
  # returns at once for commands over SSH; this machine's may be slow (pyenv's set-up).
  ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh/host"
  cp "$user_key" "$dir/ssh/authorized_keys"
  cat >"$dir/ssh/sshd_config" <<EOF
ListenAddress $address
Port $port
HostKey $dir/ssh/host
PidFile $dir/ssh/sshd.pid
AuthorizedKeysFile $dir/ssh/authorized_keys
AllowUsers $(id -un)
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
SetEnv PATH=$dir/stubs:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin SHLVL=1
EOF
  # As root, sshd wants its privilege separation directory (made by its service on a real system).
  [ "$(id -u)" != 0 ] || mkdir -p /run/sshd
  # sshd re-executes itself, so its own path and its config's are absolute.
  "$sshd" -D -e -f "$dir/ssh/sshd_config" 2>"$dir/sshd.log" &
  pid=$!
  cleanups+=("kill $pid 2>/dev/null")
  echo "[$address]:$port $(cat "$dir/ssh/host.pub")" >>"$(dirname "$dir")/known_hosts"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || fail "sshd on $address exited: $(cat "$dir/sshd.log")"
    (exec 3<>"/dev/tcp/$address/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "sshd on $address:$port did not listen within 5 s: $(cat "$dir/sshd.log")"
}
