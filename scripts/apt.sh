# shellcheck shell=bash
# Sourced by the install scripts: apt-get as root or through sudo, for packages not installed yet.

if [ "$(id -u)" -eq 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo); else as_root=(false); fi

# apt_install_missing [--no-install-recommends] PACKAGE...: installs those not installed yet.
apt_install_missing() {
  local options=() missing=() p
  [ "${1:-}" != --no-install-recommends ] || { options=("$1"); shift; }
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "installing: ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "${missing[@]}" >/dev/null ||
    { echo "error: could not install ${missing[*]} (needs root or sudo)" >&2; exit 1; }
}
