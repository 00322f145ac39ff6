#!/usr/bin/env bash
# Installs what fleet/pivox-fleet needs, only where missing: ansible-core from PyPI, in a
# virtual environment of its own (Debian's python3 and python3-venv, from apt), so that no
# system Python package is touched and every machine runs the same Ansible. Prints nothing
# when it is already there.
#
#   scripts/install-fleet-deps.sh      the environment is $PIVOX_FLEET_VENV, by default
#                                      ~/.cache/pivox/ansible; its bin/ holds ansible-playbook
set -euo pipefail

# shellcheck source=scripts/apt.sh
source "$(dirname "$0")/apt.sh"

venv=${PIVOX_FLEET_VENV:-$HOME/.cache/pivox/ansible}
# 2.19 runs on Debian 12's Python 3.11 as the controller and manages Pis with Python 3.11
# (Bookworm) or 3.13 (Trixie).
wanted='ansible-core>=2.19,<2.20'

if "$venv/bin/python" -c 'import sys, ansible.release as r; sys.exit(not r.__version__.startswith("2.19."))' 2>/dev/null; then
  exit 0
fi
apt_install_missing python3 python3-venv
echo "installing ansible-core into $venv"
rm -rf "$venv"
# Debian's python3, not whichever python3 comes first on PATH: the one the apt line installed.
/usr/bin/python3 -m venv "$venv" || { echo "error: cannot make a Python environment in $venv" >&2; exit 1; }
"$venv/bin/pip" install --quiet --disable-pip-version-check "$wanted" ||
  { echo "error: could not install $wanted from PyPI into $venv" >&2; exit 1; }
