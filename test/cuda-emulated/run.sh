#!/usr/bin/env bash
# npm run test:cuda-emulated: builds csrc/cuda against the CPU emulation of the CUDA execution
# model (build-emu/) and runs siglip_cuda_check's correctness checks on it: every kernel path
# and precision against the float64 reference, identical bits where promised, bad requests.
# Exits non-zero on any mismatch or any emulator report (race, deadlock, out-of-bounds access,
# warp-mask or cp.async misuse). No GPU needed. docs/CUDA_EMULATION.md explains it.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS="${JOBS:-2}"

cmake -S test/cuda-emulated -B build-emu -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-emu --parallel "$JOBS"
check=build-emu/siglip_cuda_check_emu
start=$SECONDS

# 1. Small cases that reach every edge the kernels have: N = M = 1 (D = 1); 7 × 7 (D = 3);
#    257 × 257 (D = 13: unaligned lines, the simple fallback); 129 × 131 with ids (D = 96:
#    16-byte lines, the pipelined kernel); 130 × 61 with ids (D = 9); extreme |u| with ids
#    (D = 20); s = b = 0. Every path, every precision, the overlapped schedule, bad requests.
#    Schedule seed 1, newest stream first.
echo "== cuda-emulated: seed 1, streams newest-first =="
SIGLIP_EMU_SEED=1 SIGLIP_EMU_STREAM_ORDER=newest \
  "$check" --correctness --filter "tiny|odd|ids, N != M|ids, N > M|extreme, ids|bias 0, s 0"

# 2. Other schedules and fragment layouts (seed 2), streams in a random order, other cases.
echo "== cuda-emulated: seed 2, streams in random order =="
SIGLIP_EMU_SEED=2 SIGLIP_EMU_STREAM_ORDER=random \
  "$check" --correctness --filter "tiny|extreme, random pairs|logitScale ln 100, ids"

echo "== cuda-emulated: all passed, no emulator reports ($((SECONDS - start)) s of checks) =="
