#!/usr/bin/env bash
# fleet/pivox-fleet (Ansible) against six stand-in Pis: six real sshd on 127.0.0.11 … .16, one
# port, each with its own host key and its own folder as the Pi's / (tests/standin-pi.sh says
# what stands in for systemd and sudo there). A seventh address, .17, has nothing listening: a
# Pi that is switched off. Covers a good rollout, a Pi that is off, a config push one Pi's
# check refuses, a binary that does not come up on the third Pi, and rollbacks.
#
#   tests/fleet.sh [AARCH64_BINARY]
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/standin-pi.sh
source "$(dirname "$0")/standin-pi.sh"

binary=${1:-$repo/target/aarch64-unknown-linux-gnu/release/pivox}
[ -f "$binary" ] || fail "no aarch64 binary at $binary (make aarch64)"
started=$SECONDS

ssh-keygen -q -t ed25519 -N '' -f "$scratch/user"
port=$(free_port)
pis=(pi1 pi2 pi3 pi4 pi5 pi6)
rooms=(Kitchen Hall Pantry Bedroom Office Attic)
for i in "${!pis[@]}"; do
  start_standin_pi "$scratch/${pis[$i]}" "127.0.0.1$((i + 1))" "$port" "$binary" "$scratch/user.pub"
done

# The inventory, as a user would write it from fleet/inventory.example.yml, plus where each
# stand-in's / is (pivox_root; "" on a real Pi). pi5's HAT preset is one pivox does not know.
inventory=$scratch/inventory.yml
{
  cat <<EOF
pivox:
  vars:
    ansible_user: $(id -un)
    ansible_port: $port
    ansible_python_interpreter: /usr/bin/python3
    ansible_ssh_private_key_file: $scratch/user
    ansible_ssh_common_args: -o UserKnownHostsFile=$scratch/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
    ansible_remote_tmp: $scratch/remote-tmp
  children:
EOF
  for group in downstairs upstairs; do
    echo "    $group:"
    echo "      hosts:"
    for i in "${!pis[@]}"; do
      { [ $group = downstairs ] && ((i < 3)); } || { [ $group = upstairs ] && ((i >= 3)); } || continue
      echo "        ${pis[$i]}:"
      echo "          ansible_host: 127.0.0.1$((i + 1))"
      echo "          pivox_root: $scratch/${pis[$i]}/root"
      echo "          pivox_room: ${rooms[$i]}"
      [ "${pis[$i]}" != pi5 ] || echo "          pivox_preset: respeaker-9mic"
    done
  done
} >"$inventory"
# The same Pis and a seventh that is switched off.
offline_inventory=$scratch/inventory-with-offline.yml
sed 's/^  children:$/  hosts:\n    pi7:\n      ansible_host: 127.0.0.17\n  children:/' "$inventory" >"$offline_inventory"

# One SSH connection per Pi for the whole test (a control socket in $scratch), closed at exit so
# that none outlives the test; Ansible's own files in $scratch too.
mkdir -p "$scratch/cm"
export ANSIBLE_SSH_ARGS="-o BatchMode=yes -o ControlMaster=auto -o ControlPersist=120s -o ControlPath=$scratch/cm/%C"
close_connections() {
  local socket
  for socket in "$scratch"/cm/*; do
    [ -S "$socket" ] && ssh -o ControlPath="$socket" -O exit pi >/dev/null 2>&1
  done
  return 0
}
cleanups=(close_connections "${cleanups[@]}")
export ANSIBLE_HOME=$scratch/ansible
export ANSIBLE_NOCOLOR=1
fleet() { "$repo/fleet/pivox-fleet" "$@"; }
on() { echo "$scratch/$1/root/usr/local/bin/pivox"; }  # on PI: that Pi's installed binary
make_deploy_binaries "$binary" "$scratch"
v2="$scratch/pivox-new" v3="$scratch/pivox-v3"
cp "$v2" "$v3" && printf 'v3' >>"$v3"
step() { echo "tests/fleet.sh: [$((SECONDS - started)) s] $*"; }
outcome() { awk -v h="$1" '$1 == h { $1 = ""; sub(/^ +/, ""); o = $0 } END { print o }' <<<"$2"; }

step "a Pi that is off"
# 1. A Pi that is switched off stops the rollout before any Pi is changed...
status=0
out=$(fleet -i "$offline_inventory" update --binary "$v2" 2>&1) || status=$?
check_eq "offline: the run fails" 1 "$status"
check_contains "offline: says which Pi and what to do" "pi7 did not answer over SSH; nothing was changed on any Pi" "$out"
check_contains "offline: in the summary" "not reached" "$(outcome pi7 "$out")"
for pi in "${pis[@]}"; do
  check_eq "offline: $pi untouched" "" "$(cat "$scratch/$pi/systemctl.log" 2>/dev/null)"
  check_eq "offline: $pi says untouched" untouched "$(outcome "$pi" "$out")"
done

step "a good rollout"
# 2. A good rollout to six Pis, in the default batches (one Pi, then five).
t0=$SECONDS
out=$(fleet -i "$inventory" update --binary "$v2" 2>&1) || fail "good rollout failed: $out"
rollout_seconds=$((SECONDS - t0))
for pi in "${pis[@]}"; do
  check_eq "rollout: $pi runs the new binary" "$(sum "$v2")" "$(sum "$(on $pi)")"
  check_eq "rollout: $pi keeps the one before" "$(sum "$binary")" "$(sum "$(on $pi).previous")"
  check_eq "rollout: $pi in the summary" updated "$(outcome $pi "$out")"
done
check_contains "rollout: the first batch is one Pi" "PLAY [Update, a batch at a time]" "$out"
check_eq "rollout: two batches (1, then 5)" 2 "$(grep -c '^PLAY \[Update, a batch at a time\]' <<<"$out")"
check "rollout: no temporary file left on the Pis" test -z "$(find /tmp -maxdepth 1 -name 'pivox-deploy.*' -newer "$inventory" 2>/dev/null)"

step "a config push"
# 3. A config for each Pi from the template and its inventory settings, with the switched-off Pi
#    skipped on request. pi5's (an unknown HAT preset) is refused by its pivox: pi5 keeps its
#    config, the rest of its batch (all six at once) take theirs, and the run says so and fails.
cp "$scratch/pi5/root/boot/firmware/pivox.toml" "$scratch/pi5-config-before"
status=0
out=$(fleet -i "$offline_inventory" config --skip-offline --batches 6 --settle 1 2>&1) || status=$?
check_eq "config: the run fails" 1 "$status"
check_contains "config: pi7 reported, not waited for" "not reached" "$(outcome pi7 "$out")"
check_contains "config: pi5 refused by its check" "not changed: pivox check-config refused the config" "$(outcome pi5 "$out")"
check_contains "config: pi5 names what is wrong" "respeaker-9mic" "$(outcome pi5 "$out")"
check "config: pi5 keeps its config" cmp -s "$scratch/pi5-config-before" "$scratch/pi5/root/boot/firmware/pivox.toml"
for i in 0 1 2 3 5; do
  pi=${pis[$i]}
  check_eq "config: $pi took its config" updated "$(outcome $pi "$out")"
  check_contains "config: $pi's has its room" "friendly_name = \"${rooms[$i]}\"" "$(cat "$scratch/$pi/root/boot/firmware/pivox.toml")"
done
check_eq "config: the binaries are not touched" "$(sum "$v2")" "$(sum "$(on pi6)")"

step "a bad binary on the third Pi"
# 4. A binary that does not come up on the third Pi, in batches of 1, then 2: pi1 takes it, the
#    second batch (pi2, pi3) runs together, pi3 is rolled back, and pi4-pi6 are not touched.
sum "$v3" >"$scratch/pi3/cannot-run"
status=0
out=$(fleet -i "$inventory" update --binary "$v3" --batches 1,2 --timeout 20 --settle 1 2>&1) || status=$?
check_eq "bad on pi3: the run fails" 1 "$status"
check_contains "bad on pi3: says so" "pi3: rolled back: the new version did not become ready; the previous one is back and running" "$out"
check_eq "bad on pi3: pi1 updated" "$(sum "$v3")" "$(sum "$(on pi1)")"
check_eq "bad on pi3: pi2 (same batch) updated" "$(sum "$v3")" "$(sum "$(on pi2)")"
check_eq "bad on pi3: pi3 runs the version before again" "$(sum "$v2")" "$(sum "$(on pi3)")"
check_eq "bad on pi3: pi3 keeps the failed one for a look" "$(sum "$v3")" "$(sum "$(on pi3).failed")"
check_eq "bad on pi3: pi3 running" active "$(cat "$scratch/pi3/service-state")"
check_contains "bad on pi3: in the summary" "rolled back" "$(outcome pi3 "$out")"
for pi in pi4 pi5 pi6; do
  check_eq "bad on pi3: $pi not touched" "$(sum "$v2")" "$(sum "$(on $pi)")"
  check_eq "bad on pi3: $pi says untouched" untouched "$(outcome $pi "$out")"
done
check_contains "bad on pi3: Ansible's recap counts the failure" "pi3" "$(grep -A8 'PLAY RECAP' <<<"$out" | grep 'failed=1')"

step "rollbacks"
# 5. Rollbacks: the whole fleet, then one group back again (a rollback is a swap).
out=$(fleet -i "$inventory" rollback --batches 6 --settle 1 2>&1) || fail "fleet rollback failed: $out"
for pi in pi1 pi2; do check_eq "rollback: $pi back to v2" "$(sum "$v2")" "$(sum "$(on $pi)")"; done
for pi in pi3 pi4 pi5 pi6; do check_eq "rollback: $pi back to the first" "$(sum "$binary")" "$(sum "$(on $pi)")"; done
check_eq "rollback: in the summary" "rolled back to the previous binary" "$(outcome pi4 "$out")"
out=$(fleet -i "$inventory" rollback --limit upstairs --settle 1 2>&1) || fail "group rollback failed: $out"
for pi in pi4 pi5 pi6; do check_eq "group rollback: $pi swapped back" "$(sum "$v2")" "$(sum "$(on $pi)")"; done
check_eq "group rollback: downstairs untouched" "$(sum "$binary")" "$(sum "$(on pi3)")"
check_eq "group rollback: the summary lists the group only" 3 "$(grep -c 'rolled back to the previous binary' <<<"$out")"

step "a dry run and clear errors"
restarts=$(grep -c restart "$scratch/pi6/systemctl.log")
out=$(fleet -i "$inventory" update --binary "$v2" --dry-run 2>&1) || fail "dry run failed: $out"
check_contains "dry run: says so" "every Pi answered and runs aarch64; nothing was changed" "$out"
check_eq "dry run: nothing restarted" "$restarts" "$(grep -c restart "$scratch/pi6/systemctl.log")"
echo armv7l >"$scratch/pi6/machine"
status=0
out=$(fleet -i "$inventory" update --binary "$v2" --dry-run 2>&1) || status=$?
check_eq "a 32-bit Pi: the dry run fails" 1 "$status"
check_contains "a 32-bit Pi: says which and why" "pi6: not aarch64; pivox needs 64-bit Raspberry Pi OS" "$out"
echo aarch64 >"$scratch/pi6/machine"
# 6. A dry run asks every Pi and changes nothing; clear errors before any Pi is asked.
check_refused "an x86 binary" "is x86_64, not aarch64" fleet -i "$inventory" update --binary "$repo/target/debug/pivox"
check_refused "no inventory" "no inventory at $scratch/none.yml" fleet -i "$scratch/none.yml" update
check_refused "unknown action" "unknown action 'upgrade'" fleet -i "$inventory" upgrade
check_refused "bad batches" "--batches '1,x'" fleet -i "$inventory" --batches 1,x rollback

# 7. The example inventory gives every Pi in it a config its pivox accepts.
step "the example inventory's configs"
ANSIBLE_CONFIG=$repo/fleet/ansible.cfg LC_ALL=C.UTF-8 "${PIVOX_FLEET_VENV:-$HOME/.cache/pivox/ansible}/bin/ansible" \
  -i "$repo/fleet/inventory.example.yml" pivox -c local -e ansible_python_interpreter=/usr/bin/python3 \
  -m ansible.builtin.template -a "src=$repo/fleet/templates/pivox.toml.j2 dest=$scratch/example-{{ inventory_hostname }}.toml" \
  >"$scratch/example.log" 2>&1 || fail "rendering the example inventory's configs: $(cat "$scratch/example.log")"
for host in kitchen living-room bedroom office; do
  report=$("$repo/target/debug/pivox" check-config "$scratch/example-$host.toml" 2>&1) ||
    fail "the example inventory's config for $host is refused: $report"
  ok
done
check_contains "example: the kitchen's HAT preset" 'preset = "respeaker-2mic"' "$(cat "$scratch/example-kitchen.toml")"
check_contains "example: the office's own server" 'url = "ws://voice-server.local:8765/"' "$(cat "$scratch/example-office.toml")"

echo "tests/fleet.sh: six Pis updated in ${rollout_seconds} s; whole test $((SECONDS - started)) s"
echo "tests/fleet.sh: $checks checks passed"
