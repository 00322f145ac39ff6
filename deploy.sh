#!/usr/bin/env bash
# Updates pivox on a Raspberry Pi over SSH: builds the aarch64 binary (or takes --binary),
# checks it is aarch64 before anything is sent, uploads it to a temporary file, verifies its
# sha256 on the Pi, swaps it in atomically keeping the previous one, restarts pivox.service
# and waits until it is active and READY. If it is not, the previous binary is put back.
#
#   ./deploy.sh pi@pivox.local
#   ./deploy.sh --config my-pivox.toml pi@pivox.local
#   ./deploy.sh --rollback pi@pivox.local
#
# The Pi's side is scripts/deploy-remote.sh, sent over the same SSH connection.
set -euo pipefail

repo=$(cd "$(dirname "$0")" && pwd)

usage() {
  cat <<'EOF'
usage: ./deploy.sh [options] HOST        (HOST as for ssh, e.g. pi@pivox.local)

  --binary FILE    deploy this aarch64 binary (default: build it with `make aarch64`)
  --config FILE    push this pivox.toml; `pivox check-config` on the Pi must accept it first.
                   Without --binary only the config is pushed.
  --rollback       put the previous binary back and restart
  --dry-run        check the binary, the config and the Pi, say what would happen, change nothing
  --timeout SEC    how long to wait for the service to become ready (default 60)
  --settle SEC     how long it must then stay up to count as healthy (default 3)

Environment: PIVOX_SSH_OPTS   extra ssh options, e.g. "-p 2222 -i ~/.ssh/pi_key"
EOF
}

die() { echo "deploy: error: $*" >&2; exit 1; }
say() { echo "deploy: $*"; }

host='' binary='' config='' rollback=no dry_run=no timeout=60 settle=3 build=yes
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --binary) (($# >= 2)) || die "--binary needs a file"; binary=$2; build=no; shift 2 ;;
    --config) (($# >= 2)) || die "--config needs a file"; config=$2; shift 2 ;;
    --timeout) (($# >= 2)) || die "--timeout needs seconds"; timeout=$2; shift 2 ;;
    --settle) (($# >= 2)) || die "--settle needs seconds"; settle=$2; shift 2 ;;
    --rollback) rollback=yes; shift ;;
    --dry-run) dry_run=yes; shift ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$host" ] || die "one HOST only (got '$host' and '$1')"; host=$1; shift ;;
  esac
done
[ -n "$host" ] || { usage >&2; exit 1; }
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || die "--timeout '$timeout': a whole number of seconds"
[[ "$settle" =~ ^[1-9][0-9]*$ ]] || die "--settle '$settle': a whole number of seconds"
[ "$rollback" = no ] || [ -z "$binary$config" ] || die "--rollback takes no --binary or --config"
# --config alone pushes only the config.
[ -z "$config" ] || [ -n "$binary" ] || build=no
push_binary=yes
[ "$rollback" = no ] && { [ -n "$binary" ] || [ -z "$config" ]; } || push_binary=no

# ---- Local checks, before anything is sent --------------------------------------------------
if [ "$push_binary" = yes ]; then
  if [ "$build" = yes ]; then
    say "building the aarch64 release binary (make aarch64)"
    make -s -C "$repo" aarch64 >&2 || die "the build failed (above)"
    binary="$repo/target/aarch64-unknown-linux-gnu/release/pivox"
  fi
  [ -f "$binary" ] || die "--binary $binary: no such file"
  # The same check as the fleet playbooks' (fleet/): aarch64, and the sha256 the Pi checks.
  bin_sha=$("$repo/scripts/check-binary.sh" "$binary" 2>&1) || die "$bin_sha"
fi
if [ -n "$config" ]; then
  [ -f "$config" ] || die "--config $config: no such file"
  conf_sha=$(sha256sum <"$config" | cut -d' ' -f1)
fi

# ---- The Pi ------------------------------------------------------------------------------------
# BatchMode: never a password or host-key prompt; a script must not hang on one.
read -r -a ssh_opts <<<"${PIVOX_SSH_OPTS:-}"
ssh_cmd=(ssh -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 "${ssh_opts[@]}" "$host")
remote() { "${ssh_cmd[@]}" "$@"; }
remote_root=${PIVOX_REMOTE_ROOT:-}

probe=$(remote 'uname -m; id -u; if sudo -n true 2>/dev/null; then echo sudo; else echo nosudo; fi' 2>"${TMPDIR:-/tmp}/deploy-ssh.$$") || {
  status=$?
  reason=$(tail -1 "${TMPDIR:-/tmp}/deploy-ssh.$$" 2>/dev/null || true)
  rm -f "${TMPDIR:-/tmp}/deploy-ssh.$$"
  [ "$status" = 255 ] && die "cannot reach $host over SSH: ${reason:-no reason given} (is it on, on the network, and is your key in its authorized keys?)"
  die "$host: the first command over SSH failed (status $status): $reason"
}
rm -f "${TMPDIR:-/tmp}/deploy-ssh.$$"
{ read -r remote_arch; read -r remote_uid; read -r remote_sudo; } <<<"$probe"
[ "$remote_arch" = aarch64 ] || die "$host runs $remote_arch; pivox needs 64-bit Raspberry Pi OS (aarch64)"
if [ "$remote_sudo" = sudo ]; then
  as_root=(sudo -n)
elif [ "$remote_uid" = 0 ]; then
  as_root=()
else
  die "${host%@*} on $host cannot use sudo without a password, which deploy.sh needs to replace /usr/local/bin/pivox. Images from image/build-image.sh allow it; elsewhere add '$(printf %s "${host%@*}") ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/"
fi
# ssh joins its arguments into one command line for the remote shell: each is quoted for it,
# so that an empty one (the Pi's root is "") survives.
run_remote() {
  local args
  args=$(printf '%q ' "$@")
  remote "${as_root[@]}" bash -s -- "$args" <"$repo/scripts/deploy-remote.sh"
}

# Uploads FILE to a new private temporary file on the Pi; prints its name.
upload() {
  local tmp
  tmp=$(remote 'umask 077 && tmp=$(mktemp /tmp/pivox-deploy.XXXXXX) && cat >"$tmp" && echo "$tmp"' <"$1") ||
    die "uploading $1 to $host failed"
  echo "$tmp"
}

if [ "$rollback" = yes ]; then
  if [ "$dry_run" = yes ]; then
    say "dry run: would put /usr/local/bin/pivox.previous back on $host and restart pivox.service"
    exit 0
  fi
  say "rolling back on $host"
  run_remote rollback "$remote_root" "$timeout" "$settle"
  exit
fi

if [ "$dry_run" = yes ]; then
  [ "$push_binary" = no ] || say "dry run: would upload $binary (aarch64, sha256 $bin_sha) and swap it in as /usr/local/bin/pivox, keeping the old one as pivox.previous"
  [ -z "$config" ] || say "dry run: would upload $config, have pivox check-config accept it on $host, and install it where the daemon reads it"
  say "dry run: would restart pivox.service and wait up to ${timeout} s for it to be ready, rolling back if not"
  say "dry run: $host is reachable, aarch64, and ${as_root[*]:-root} works; nothing was changed"
  exit 0
fi

bin_tmp=- conf_tmp=-
if [ "$push_binary" = yes ]; then
  say "uploading $(stat -c %s "$binary") bytes to $host"
  bin_tmp=$(upload "$binary")
fi
[ -z "$config" ] || conf_tmp=$(upload "$config")
say "installing on $host and waiting up to ${timeout} s for pivox.service to be ready"
status=0
run_remote install "$remote_root" "$timeout" "$settle" "$bin_tmp" "${bin_sha:--}" "$conf_tmp" "${conf_sha:--}" || status=$?
case "$status" in
  0) say "done: $host runs the new version" ;;
  4) die "$host did not take the new version; it runs the previous one again" ;;
  *) die "the update on $host failed (above)" ;;
esac
