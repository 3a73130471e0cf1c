#!/usr/bin/env bash
# npm run test:cuda-emulated: builds csrc/cuda against the CPU emulation of the CUDA execution
# model (build-emu/) and runs on it: the cuBLAS and NCCL test doubles against plain references;
# siglip_cuda_check's correctness checks (every kernel path and precision against the float64
# reference, identical bits where promised, bad requests), with the cuBLAS double loaded through
# the package's own loader and without it; a grid of edge shapes; and the GPU ring
# (siglip_ring_check --cuda-local and --nccl on the NCCL double); then the package's own GPU
# tests (ava) through lib/ and the addon built on the emulation. Exits non-zero on any mismatch
# or any emulator report (race, deadlock, hang, out-of-bounds access, warp-mask or cp.async
# misuse, mismatched NCCL messages). No GPU needed. docs/CUDA_EMULATION.md explains it.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS="${JOBS:-2}"

cmake -S test/cuda-emulated -B build-emu -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-emu --parallel "$JOBS"
check=build-emu/siglip_cuda_check_emu
ring=build-emu/siglip_ring_check_emu
doubles=build-emu/doubles
start=$SECONDS
step() { echo "== cuda-emulated: $* ($((SECONDS - start)) s) =="; }

# 0. The test doubles, loaded as the package loads them, against plain references.
step "the cuBLAS double against a float64 product"
build-emu/cublas_double_check "$doubles"
step "the NCCL double against host-side message passing (3 ranks on 3 devices)"
SIGLIP_EMU_DEVICES=3 build-emu/nccl_double_check "$doubles/libnccl.so.2"

# 1. Every path (GEMM1 and the backward GEMMs on the tile GEMM, simple and pipelined, and on
#    the cuBLAS double; the overlapped schedule; naive, simple and chunked kernels) in every
#    precision on cases that reach the kernels' edges: N = M = 1 (D = 1); 7 × 7 (D = 3);
#    129 × 131 with ids (D = 96: the pipelined kernel, crossing the 128 tile); 130 × 61 with
#    ids (D = 9: the fallback); extreme |u| with ids (D = 20); s = b = 0; the bad requests; and
#    the entry for host memory the addon calls (host-loss).
#    Schedule seed 1, newest stream first.
step "every path and precision, cuBLAS double, seed 1, streams newest-first"
SIGLIP_CUBLAS_LIBRARY="$doubles" SIGLIP_EMU_SEED=1 SIGLIP_EMU_STREAM_ORDER=newest \
  "$check" --correctness --filter "tiny|sigmoid odd|softmax odd|ids, N != M|ids, N > M|extreme, ids|bias 0, s 0|bad-request|host-loss"

# 2. Other schedules and fragment layouts (seed 2), streams in a random order, other cases.
step "other cases, cuBLAS double, seed 2, streams in random order"
SIGLIP_CUBLAS_LIBRARY="$doubles" SIGLIP_EMU_SEED=2 SIGLIP_EMU_STREAM_ORDER=random \
  "$check" --correctness --filter "extreme, random pairs|logitScale ln 100, ids"

# 3. Without cuBLAS (SIGLIP_CUBLAS_LIBRARY names nothing): the default paths, and the requests
#    that must fail because they require cuBLAS.
step "no cuBLAS: the tile paths and what must fail without it, seed 3"
SIGLIP_CUBLAS_LIBRARY=/nonexistent/libcublas.so SIGLIP_EMU_SEED=3 \
  "$check" --correctness --filter "tiny|bad-request"

# 4. The grid of edges: rows and columns 1, 15, 16, 17, 127, 128, 129, 300, N != M with ids,
#    D a multiple of 16, of 8 only, of 4 only (16-byte lines in float32, not in 16 bits: the
#    pipelined kernel for one, its fallback for the other) and odd; every shape in bfloat16 on
#    every path, then float32 (exact and TF32) and float16 on a few.
step "shape grid in bf16, seed 4"
SIGLIP_CUBLAS_LIBRARY="$doubles" SIGLIP_EMU_SEED=4 \
  "$check" --correctness --precisions bf16 \
  --shapes 1x300x16i,300x1x24i,15x17x12i,16x16x16,17x15x8i,127x129x13i,128x128x32,129x127x40i,300x17x20i
step "shape grid in fp32, tf32 and fp16 (a few shapes), seed 5, streams in random order"
SIGLIP_CUBLAS_LIBRARY="$doubles" SIGLIP_EMU_SEED=5 SIGLIP_EMU_STREAM_ORDER=random \
  "$check" --correctness --precisions fp32,tf32,fp16 --shapes 15x17x12i,16x16x16,127x129x13i

# 5. The GPU ring: CudaBlockBackend with the in-process transport on one device (3 ranks), and
#    with the NCCL transport on the NCCL double (3 ranks on 3 devices, 4 on 4, 1): one-way
#    and two-way, uneven shards (one rank with a single row), label ids, float32 at TF32 and
#    FP32, bfloat16; then a receive nobody answers (the transport's timeout and abort).
step "GPU ring, in-process transport, 3 ranks on one device, seed 6"
SIGLIP_EMU_SEED=6 "$ring" --cuda-local 3
step "GPU ring, NCCL double, 3 ranks on 3 devices, seed 7, streams in random order"
SIGLIP_NCCL_LIBRARY="$doubles" SIGLIP_EMU_DEVICES=3 SIGLIP_EMU_SEED=7 SIGLIP_EMU_STREAM_ORDER=random "$ring" --nccl 3
step "GPU ring, NCCL double, 4 ranks on 4 devices, seed 9, streams first-in first-out"
SIGLIP_NCCL_LIBRARY="$doubles" SIGLIP_EMU_DEVICES=4 SIGLIP_EMU_SEED=9 SIGLIP_EMU_STREAM_ORDER=fifo "$ring" --nccl 4
step "GPU ring, NCCL double, 1 rank; an unanswered receive times out"
SIGLIP_NCCL_LIBRARY="$doubles" SIGLIP_EMU_SEED=8 "$ring" --nccl 1
SIGLIP_NCCL_LIBRARY="$doubles" "$ring" --nccl-timeout

# 6. The package's own GPU tests, through lib/ and the addon: csrc/addon built on the emulation
#    (build-emu/siglip_kernels_emu.node, named by SIGLIP_KERNELS_BINARY) with the cuBLAS and
#    NCCL doubles on 4 emulated devices, SIGLIP_REQUIRE_CUDA=1 (a GPU test that cannot run
#    fails instead of skipping): test/cuda.test.ts, test/cuda-device.test.ts, the GPU tests
#    of test/ring.test.ts (local rings of GPUs, over memcpy and NCCL; Ring.nccl) and of
#    test/tfjs.test.ts (the tfjs ops with device 'cuda'). The addon is
#    also preloaded (LD_PRELOAD) so that the doubles, which the package dlopens, find the
#    emulated runtime in it as they find it in the executables above (-rdynamic). Left out
#    by name: the shapes that take minutes to emulate (D = 768, 129, 65; N = 255; several
#    4096-blocks; the determinism test on them); steps 1–4 cover those paths and shapes.
if [ -f build-emu/siglip_kernels_emu.node ] && [ -d node_modules/ava ]; then
  step "the package's GPU tests (ava) on the emulated addon, cuBLAS and NCCL doubles, 4 devices"
  (
    export LD_PRELOAD="$PWD/build-emu/siglip_kernels_emu.node" SIGLIP_KERNELS_BINARY=build-emu/siglip_kernels_emu.node \
      SIGLIP_CUBLAS_LIBRARY="$doubles" SIGLIP_NCCL_LIBRARY="$doubles" SIGLIP_REQUIRE_CUDA=1 SIGLIP_EMU_DEVICES=4
    npx ava --timeout 5m --match '!*D=768*' --match '!*D=129*' --match '!*N=255*' --match '!*D=65*' \
      --match '!*several pair blocks*' --match '!*deterministic*' test/cuda.test.ts test/cuda-device.test.ts
    npx ava --timeout 5m --match '*GPUs*' --match '*Ring.nccl*' --match "*device 'cuda'*" test/ring.test.ts test/tfjs.test.ts
  )
else
  echo "cuda-emulated: the package's GPU tests skipped: build-emu/siglip_kernels_emu.node or node_modules/ava missing (npm install first)"
fi

step "all passed, no emulator reports"
