#!/usr/bin/env bash
# Makes the Debian 11 (bullseye, glibc 2.31, GCC 10) root that the prebuilt Linux binaries are
# compiled in, so that they load on any Linux with glibc 2.31 or newer (scripts/release/prebuild.js
# runs the compiler inside it with chroot). Needs root and debootstrap (apt-get install debootstrap)
# and reaches deb.debian.org; about 300 MB. Idempotent: an existing, complete root is kept.
#
#   scripts/release/debian11-root.sh [DIR]     default: $SIGLIP_DEBIAN11_ROOT or
#                                              ~/.cache/siglip-kernels/debian11-amd64
set -euo pipefail
ROOT="${1:-${SIGLIP_DEBIAN11_ROOT:-$HOME/.cache/siglip-kernels/debian11-amd64}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="g++,make,python3,cmake,ninja-build,binutils"

if [ -f "$ROOT/.siglip-root-complete" ]; then
  echo "Debian 11 root ready: $ROOT"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "debian11-root.sh: debootstrap and chroot need root (run it with sudo)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "debian11-root.sh: installing debootstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
rm -rf "$ROOT"
mkdir -p "$ROOT"
echo "debootstrap bullseye (glibc 2.31, GCC 10) into $ROOT"
debootstrap --variant=minbase --include="$PACKAGES" bullseye "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
  echo "debootstrap failed; last lines of $ROOT.log:" >&2
  tail -n 20 "$ROOT.log" >&2
  exit 1
}
chroot "$ROOT" ldd --version | head -n 1
chroot "$ROOT" g++ --version | head -n 1
touch "$ROOT/.siglip-root-complete"
echo "Debian 11 root ready: $ROOT"
