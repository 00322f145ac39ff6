#!/usr/bin/env bash
# Downloads the pinned Raspberry Pi OS Lite (arm64) image that image/build-image.sh was written
# against, checks its sha256, and prints its path. The tests never call this: they build their
# own images.
#
#   image/fetch-base.sh [--bookworm] [DIR]      (DIR defaults to ~/.cache/pivox/images)
#
# The pins: the newest releases as of 2026-11. Raspberry Pi publishes each image's sha256 next
# to it (the same URL + .sha256); when you move a pin, take both from there.
set -euo pipefail

trixie_url=https://downloads.raspberrypi.com/raspios_lite_arm64/images/raspios_lite_arm64-2026-10-06/2026-10-06-raspios-trixie-arm64-lite.img.xz
trixie_sha256=483db18a48da399b5b7022ffae9a07bc6d99daab30e593aedac09b69ff422843
bookworm_url=https://downloads.raspberrypi.com/raspios_oldstable_lite_arm64/images/raspios_oldstable_lite_arm64-2026-10-06/2026-10-06-raspios-bookworm-arm64-lite.img.xz
bookworm_sha256=9e938c5a6981c3f498b3b564c527f3e1fd58ef20bbf703be0eea748384a6c1af

die() { echo "fetch-base: error: $*" >&2; exit 1; }
url=$trixie_url sha256=$trixie_sha256
if [ "${1:-}" = --bookworm ]; then url=$bookworm_url sha256=$bookworm_sha256; shift; fi
dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/pivox/images}
mkdir -p "$dir"
file="$dir/$(basename "$url")"

if [ ! -f "$file" ]; then
  command -v curl >/dev/null || die "curl not found (apt install curl)"
  echo "fetch-base: downloading $url" >&2
  curl -fL --retry 3 -o "$file.partial" "$url" || { rm -f "$file.partial"; die "download failed: $url"; }
  mv "$file.partial" "$file"
fi
actual=$(sha256sum <"$file" | cut -d' ' -f1)
if [ "$actual" != "$sha256" ]; then
  rm -f "$file"
  die "$(basename "$file") has sha256 $actual, but $sha256 is pinned; the file was removed. Compare with $url.sha256"
fi
echo "$file"
