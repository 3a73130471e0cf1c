#!/usr/bin/env bash
# The native core's check (siglip_core_check: every loss method and gradient against the
# float64 reference, random shapes, label ids, extreme logits) for AArch64: cross-compiled in
# the Debian 11 root (scripts/release/debian11-root.sh; the cross compiler is added if missing)
# and run under qemu-aarch64 with the NEON kernels, then the portable ones. Slow under
# emulation: about 3 to 5 minutes per kernel set on 2 cores. Not part of CI.
#
#   scripts/release/arm64-core-check.sh [--random K]     (default --random 4, as ctest)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="${SIGLIP_DEBIAN11_ROOT:-$HOME/.cache/siglip-kernels/debian11-amd64}"
bash scripts/release/debian11-root.sh "$ROOT"
command -v qemu-aarch64 >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
if [ ! -x "$ROOT/usr/bin/aarch64-linux-gnu-g++" ]; then
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -ec 'apt-get update -qq && apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu >/dev/null'
fi
rm -rf "$ROOT/siglip/src-arm" "$ROOT/siglip/build-arm-core"
mkdir -p "$ROOT/siglip/src-arm"
git archive --format=tar HEAD -- CMakeLists.txt csrc | tar -x -C "$ROOT/siglip/src-arm"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root sh -ec '
  cmake -S /siglip/src-arm -B /siglip/build-arm-core -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
    -DSIGLIP_CUDA=off -DSIGLIP_MPI=off "-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc" >/dev/null
  cmake --build /siglip/build-arm-core --target siglip_core_check -j 2'
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--random 4)
status=0
for simd in neon generic; do
  echo "== siglip_core_check on AArch64 under qemu, SIGLIP_SIMD=$simd"
  SIGLIP_SIMD=$simd qemu-aarch64 -L "$ROOT/usr/aarch64-linux-gnu" "$ROOT/siglip/build-arm-core/siglip_core_check" "${ARGS[@]}" \
    | grep -v '^PASS' || status=1
done
exit $status
