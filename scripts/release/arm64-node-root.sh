#!/usr/bin/env bash
# An AArch64 Node.js to test the linux-arm64-gnu binary under emulation (qemu-aarch64 -L ROOT):
# Debian 12's nodejs (Node 18) for arm64 and the libraries it needs, unpacked from Debian's
# archive by debootstrap's first stage (no arm64 code runs while making it). Needs root,
# debootstrap and qemu-user (installed with apt-get if missing); about 60 MB.
#
#   scripts/release/arm64-node-root.sh [DIR]   default: $SIGLIP_ARM64_NODE_ROOT or
#                                              ~/.cache/siglip-kernels/debian12-arm64-node
set -euo pipefail
ROOT="${1:-${SIGLIP_ARM64_NODE_ROOT:-$HOME/.cache/siglip-kernels/debian12-arm64-node}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if [ -f "$ROOT/.siglip-root-complete" ]; then
  echo "arm64 Node root ready: $ROOT"
  exit 0
fi
need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  echo "arm64-node-root.sh: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
rm -rf "$ROOT"
mkdir -p "$ROOT"
debootstrap --foreign --arch=arm64 --variant=minbase --include=nodejs bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
  echo "debootstrap failed; last lines of $ROOT.log:" >&2
  tail -n 20 "$ROOT.log" >&2
  exit 1
}
for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
qemu-aarch64 -L "$ROOT" "$ROOT/usr/bin/node" -e 'console.log("arm64 Node " + process.version + " (" + process.arch + ") runs under qemu")'
touch "$ROOT/.siglip-root-complete"
echo "arm64 Node root ready: $ROOT"
