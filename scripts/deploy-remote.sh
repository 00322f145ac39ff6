# shellcheck shell=bash
# The Pi's side of deploy.sh and of the fleet playbooks (fleet/): deploy.sh sends it over SSH on
# stdin and runs it as root (`sudo -n bash -s`); Ansible's script module copies it over and runs
# it the same way. Not meant to be run by hand. Arguments: ACTION ROOT TIMEOUT SETTLE [...]
#   install ROOT TIMEOUT SETTLE BIN_TMP BIN_SHA CONF_TMP CONF_SHA   (either pair may be "-")
#   rollback ROOT TIMEOUT SETTLE
# ROOT is "" on a real Pi; the tests give a folder standing in for /. TIMEOUT: seconds the
# service may take to become ready; SETTLE: seconds it must then stay up to count as healthy.
# Exit codes: 0 done, 3 nothing changed (bad upload or config), 4 unhealthy and rolled back,
# 5 unhealthy and the rollback did not help either.
set -euo pipefail

action=$1 root=$2 timeout=$3 settle=$4
shift 4
bin="$root/usr/local/bin/pivox"
unit=pivox.service

say() { echo "pi: $*"; }
# fail MESSAGE [EXIT_CODE]: the message alone, then the exit code (3 unless given).
fail() { echo "pi: error: $1" >&2; exit "${2:-3}"; }

systemctl cat "$unit" >/dev/null 2>&1 ||
  fail "$unit is not installed here (build the SD card with image/build-image.sh, or see docs/getting-started.md)"

# The config the daemon reads: the boot partition's if there is one, else /etc/pivox.
config_path() {
  if [ -f "$root/boot/firmware/pivox.toml" ]; then echo "$root/boot/firmware/pivox.toml"; else echo "$root/etc/pivox/pivox.toml"; fi
}

verify_upload() { # FILE SHA256 WHAT
  local actual
  actual=$(sha256sum <"$1" | cut -d' ' -f1)
  if [ "$actual" != "$2" ]; then
    rm -f "$1"
    fail "the uploaded $3 is corrupt (sha256 $actual, sent $2); nothing was changed"
  fi
}

# Restarts the service and waits until it is active (Type=notify: READY=1 sent) and stays so
# for a few seconds without restarting.
healthy() {
  local deadline=$((SECONDS + timeout)) restarts
  if ! timeout "$timeout" systemctl restart "$unit"; then
    say "$unit did not start (restart failed or no READY within ${timeout} s)"
    return 1
  fi
  restarts=$(systemctl show -p NRestarts --value "$unit" 2>/dev/null || echo 0)
  local until=$((SECONDS + settle))
  while ((SECONDS < until && SECONDS < deadline)); do
    if [ "$(systemctl is-active "$unit" 2>/dev/null)" != active ]; then
      say "$unit stopped $((settle - (until - SECONDS))) s after starting"
      return 1
    fi
    sleep 1
  done
  if [ "$(systemctl is-active "$unit" 2>/dev/null)" != active ] ||
    [ "$(systemctl show -p NRestarts --value "$unit" 2>/dev/null || echo 0)" != "$restarts" ]; then
    say "$unit restarted on its own within ${settle} s"
    return 1
  fi
}

show_log() {
  if command -v journalctl >/dev/null; then
    journalctl -u "$unit" -n 15 --no-pager -o cat 2>/dev/null | sed 's/^/pi:   | /' >&2 || true
  fi
}

# A file swapped in by rename (atomic: the daemon never sees half a binary). The old one is
# kept as NAME.previous. install_file SOURCE DEST MODE
install_file() {
  local dir base
  dir=$(dirname "$2") base=$(basename "$2")
  mkdir -p "$dir"
  cp -- "$1" "$dir/.$base.new"
  chmod "$3" "$dir/.$base.new"
  # The older .previous is kept aside until the new version proves healthy (forget_before), so
  # that a failed update leaves .previous as it was (restore_file).
  rm -f -- "$dir/.$base.previous.before"
  [ ! -e "$2.previous" ] || cp -p -- "$2.previous" "$dir/.$base.previous.before"
  if [ -e "$2" ]; then
    cp -p -- "$2" "$dir/.$base.previous.new" && mv -f -- "$dir/.$base.previous.new" "$2.previous"
  fi
  mv -f -- "$dir/.$base.new" "$2"
}

forget_before() { rm -f -- "$(dirname "$1")/.$(basename "$1").previous.before"; }

# restore_file DEST: DEST.previous back in place, and the .previous from before the failed
# update back as DEST.previous.
restore_file() {
  local dir base
  dir=$(dirname "$1") base=$(basename "$1")
  cp -p -- "$1.previous" "$dir/.$base.restore" && mv -f -- "$dir/.$base.restore" "$1"
  if [ -e "$dir/.$base.previous.before" ]; then mv -f -- "$dir/.$base.previous.before" "$1.previous"; fi
}

case "$action" in
  install)
    bin_tmp=$1 bin_sha=$2 conf_tmp=$3 conf_sha=$4
    [ "$bin_tmp" = - ] || verify_upload "$bin_tmp" "$bin_sha" binary
    [ "$conf_tmp" = - ] || verify_upload "$conf_tmp" "$conf_sha" config
    if [ "$conf_tmp" != - ]; then
      checker=$bin
      [ "$bin_tmp" = - ] || { chmod 755 "$bin_tmp"; checker=$bin_tmp; }
      if ! report=$("$checker" check-config "$conf_tmp" 2>&1); then
        rm -f "$conf_tmp" "$bin_tmp"
        fail "pivox check-config refused the config, nothing was changed: ${report//$'\n'/ }"
      fi
    fi
    conf=$(config_path)
    changed=()
    if [ "$bin_tmp" != - ]; then
      install_file "$bin_tmp" "$bin" 755
      rm -f "$bin_tmp"
      changed+=("$bin")
      say "installed the new binary as $bin (the old one is $bin.previous)"
    fi
    if [ "$conf_tmp" != - ]; then
      had_config=no
      [ -e "$conf" ] && had_config=yes
      install_file "$conf_tmp" "$conf" 640
      case "$conf" in "$root/etc/pivox/"*) chgrp pivox "$conf" 2>/dev/null || true ;; esac
      rm -f "$conf_tmp"
      changed+=("$conf")
      say "installed the new config as $conf"
    fi
    if healthy; then
      for f in "${changed[@]}"; do forget_before "$f"; done
      say "$unit is active and ready: $(systemctl show -p StatusText --value "$unit" 2>/dev/null || true)"
      exit 0
    fi
    show_log
    say "rolling back: ${changed[*]}"
    for f in "${changed[@]}"; do
      if [ -e "$f.previous" ]; then
        if [ "$f" = "$bin" ]; then cp -p -- "$bin" "$bin.failed"; fi
        restore_file "$f"
      elif [ "$f" = "$conf" ] && [ "$had_config" = no ]; then
        rm -f "$conf"
      fi
    done
    if healthy; then
      fail "the new version did not become ready; the previous one is back and running (the failed binary, if any, is $bin.failed)" 4
    fi
    fail "the new version did not become ready, and neither did the previous one after rolling back: see journalctl -u $unit" 5
    ;;
  rollback)
    [ -e "$bin.previous" ] || fail "there is no previous binary ($bin.previous) to go back to"
    # Swap, so that a second rollback returns to where we were.
    forget_before "$bin"
    cp -p -- "$bin" "$(dirname "$bin")/.pivox.swap"
    restore_file "$bin"
    mv -f -- "$(dirname "$bin")/.pivox.swap" "$bin.previous"
    say "the previous binary is back as $bin (the one it replaced is now $bin.previous)"
    if healthy; then
      say "$unit is active and ready"
      exit 0
    fi
    show_log
    fail "$unit is not healthy after the rollback either" 5
    ;;
  *) fail "unknown action $action" ;;
esac
