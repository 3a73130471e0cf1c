#!/usr/bin/env bash
# Issue #3's GPU check in one command, run from the repository root on a machine with an
# NVIDIA GPU, nvcc, CMake and PyTorch (no Node.js, no network):
#
#     bash bench/gpu/check.sh [OUTDIR]      # default OUTDIR: $OUT if set, else bench/gpu/results
#
# Steps, each under `timeout` (a later step runs even when an earlier one failed):
#   1. the machine: nvidia-smi, nvcc, cmake, PyTorch; cuBLAS found in PyTorch's wheel (exported
#      as SIGLIP_CUBLAS_LIBRARY, so the backend's backward GEMMs and the floor both use it)
#   2. cmake configure + build of siglip_core_check, siglip_cuda_check and siglip_ring_check
#      (sm_90 only); after the correctness step, test/gpu/ring_check.sh (the ring on the GPU)
#   3. siglip_core_check (the CPU core against the float64 reference, seconds)
#   4. siglip_cuda_check --correctness (every CUDA path and precision against the reference;
#      the fused sigmoid and chunked softmax on each GEMM path: cuBLAS backward, pipelined and
#      simple tile GEMM; the fused sigmoid also with GEMM1 on cuBLAS and the epilogue pass, and
#      each of its paths but simple overlapped, '…-overlap' lines, which must read '= <path> bits')
#   5. siglip_cuda_check --timing (N = 4096, 16384, 65536; D = 768; bf16 and tf32), with the
#      cuBLAS floor (same GEMMs through cublasGemmEx) and fused fwd+bwd on each GEMM path (the
#      simple tile GEMM, the slow one, only up to N = 16384; GEMM1 on cuBLAS in 2048² and 4096²
#      pieces: the rows that decide SIGLIP_GEMM1's default; the default and both GEMM1-on-cuBLAS
#      rows again as '… overlap', right after each, the rows that decide SIGLIP_GEMM_OVERLAP's)
#   6. bench/gpu/torch_peer.py (PyTorch eager SigLIP, same sizes)
#   7. compute-sanitizer memcheck on small correctness cases (odd D: the simple tile GEMM;
#      N != M with aligned D: the pipelined one, partial tiles), then N != M with GEMM1 on
#      cuBLAS (the epilogue pass's vector accesses at partial pieces; in 128-pair pieces, one
#      and two streams: the second gradient slot), when time is left
#   8. bench/gpu/merge.py: the final table (time, TFLOP/s, extra memory, x floor, x torch) and
#      the GEMM paths side by side
# The whole run is held under SIGLIP_CHECK_BUDGET_S seconds (default 340; with
# the 10 s grace `timeout -k` allows a step, at most about 5 minutes 50 in the worst case): each step's
# timeout is cut so the steps after it keep their minimum, and the timing tools stop starting
# new cases before their own timeout.
#
# OUTDIR receives 8 files: setup.log core_check.log correctness.log timing.log timing.json
# torch_peer.log torch_peer.json summary.txt (summary.txt: the table, then each step's result).
# Exit status: 0 when every step passed, 1 otherwise.
#
# Overrides (environment): SIGLIP_CHECK_BUDGET_S, SIGLIP_CHECK_N (4096,16384,65536),
# SIGLIP_CHECK_DTYPES (bf16,tf32), SIGLIP_CHECK_SIMPLE_MAX_N (16384), SIGLIP_BUILD_DIR
# (build-gpu), SIGLIP_CUBLAS_LIBRARY (a cuBLAS library or its folder), SIGLIP_CUDA_ARCH (90),
# PYTHON (python3). SIGLIP_CUBLAS (auto|on|off), SIGLIP_TILE_GEMM (pipelined|simple),
# SIGLIP_GEMM1 (tile|cublas) and SIGLIP_GEMM_OVERLAP (off|on) are not needed: siglip_cuda_check
# runs every GEMM path itself (its default rows use auto, pipelined, tile, off).
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
REPO="$(pwd)"
OUTDIR="${1:-${OUT:-bench/gpu/results}}"
mkdir -p "$OUTDIR" || { echo "cannot create $OUTDIR"; exit 1; }
OUTDIR="$(cd "$OUTDIR" && pwd)"
BUDGET="${SIGLIP_CHECK_BUDGET_S:-340}"
BUILD="${SIGLIP_BUILD_DIR:-build-gpu}"
NS="${SIGLIP_CHECK_N:-4096,16384,65536}"
SIMPLE_MAX_N="${SIGLIP_CHECK_SIMPLE_MAX_N:-16384}"
DTYPES="${SIGLIP_CHECK_DTYPES:-bf16,tf32}"
ARCH="${SIGLIP_CUDA_ARCH:-90}"
PY="${PYTHON:-python3}"
D=768
T0=$SECONDS
STATUS=()
FAILED=0

SETUP_LOG="$OUTDIR/setup.log"
CORE_LOG="$OUTDIR/core_check.log"
CORRECT_LOG="$OUTDIR/correctness.log"
TIMING_LOG="$OUTDIR/timing.log"
TIMING_JSON="$OUTDIR/timing.json"
PEER_LOG="$OUTDIR/torch_peer.log"
PEER_JSON="$OUTDIR/torch_peer.json"
SUMMARY="$OUTDIR/summary.txt"
rm -f "$SETUP_LOG" "$CORE_LOG" "$CORRECT_LOG" "$TIMING_LOG" "$TIMING_JSON" "$PEER_LOG" "$PEER_JSON" "$SUMMARY"

say() { echo "[check +$((SECONDS - T0))s] $*"; }

# slot CAP RESERVE: a step's timeout, at most CAP seconds and leaving RESERVE seconds of the
# budget for the steps after it (never under 10 s).
slot() {
  local cap=$1 reserve=$2 left
  left=$((BUDGET - (SECONDS - T0) - reserve))
  ((left < cap)) && cap=$left
  ((cap < 10)) && cap=10
  echo "$cap"
}

# run_step NAME LOG LIMIT QUIET CMD...: runs CMD under `timeout`, appending its output to LOG;
# prints it too, or with QUIET=1 only its FAIL (and sanitizer error) lines and its last 5
# lines. Records the result in STATUS.
run_step() {
  local name=$1 logfile=$2 limit=$3 quiet=$4 rc result before
  shift 4
  say "$name (timeout ${limit}s): $*" | tee -a "$logfile"
  if [ "$quiet" = 1 ]; then
    before=$(wc -l <"$logfile")
    timeout -k 10 "$limit" "$@" >>"$logfile" 2>&1
    rc=$?
    tail -n +"$((before + 1))" "$logfile" | grep -E '^FAIL|ERROR SUMMARY|^========= (Invalid|Program hit|Error)' | head -40
    tail -n +"$((before + 1))" "$logfile" | tail -n 5
  else
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$logfile"
    rc=${PIPESTATUS[0]}
  fi
  if ((rc == 124 || rc == 137)); then
    result="TIMED OUT after ${limit}s"
  elif ((rc == 0)); then
    result="ok"
  else
    result="exit status $rc"
  fi
  ((rc != 0)) && FAILED=1
  say "$name: $result" | tee -a "$logfile"
  STATUS+=("$name: $result")
  return "$rc"
}

# ---- 1. the machine ----------------------------------------------------------------------
say "siglip-kernels GPU check: repo $REPO, results in $OUTDIR, budget ${BUDGET}s" | tee -a "$SETUP_LOG"
{
  echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "== git: $(git rev-parse HEAD 2>/dev/null || echo 'not a git checkout') $(git status --porcelain 2>/dev/null | wc -l) changed file(s)"
  echo "== host: $(uname -srm), $(nproc) CPUs"
  echo "== nvidia-smi"
  timeout 30 nvidia-smi || echo "nvidia-smi failed or is missing (exit $?)"
} 2>&1 | tee -a "$SETUP_LOG"

# nvcc: PATH, else the usual places. A toolkit newer than the driver cannot run (CUDA 13
# needs driver 580+): then prefer an installed toolkit of the driver's major version.
NVCC="$(command -v nvcc || true)"
if [ -z "$NVCC" ]; then
  for c in /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc /opt/cuda/bin/nvcc; do
    if [ -x "$c" ]; then NVCC="$c"; break; fi
  done
fi
NVCC_NOTE="nvcc: NOT FOUND (the CUDA build will fail)"
if [ -n "$NVCC" ]; then
  NVCC_MAJOR="$("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9]*\)\..*/\1/p' | head -n 1)"
  DRIVER_MAJOR="$(timeout 30 nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\)\..*/\1/p' | head -n 1)"
  NVCC_NOTE="nvcc: $NVCC (CUDA ${NVCC_MAJOR:-?}; the driver supports CUDA ${DRIVER_MAJOR:-?})"
  if [ -n "$NVCC_MAJOR" ] && [ -n "$DRIVER_MAJOR" ] && ((NVCC_MAJOR > DRIVER_MAJOR)); then
    for c in /usr/local/cuda-"$DRIVER_MAJOR"*/bin/nvcc; do
      if [ -x "$c" ]; then NVCC="$c"; fi
    done
    NVCC_NOTE="$NVCC_NOTE; the driver is older than the toolkit: using $NVCC"
  fi
fi
{
  echo "== $NVCC_NOTE"
  [ -n "$NVCC" ] && "$NVCC" --version 2>&1 | tail -n 2
  echo "== cmake: $(cmake --version 2>/dev/null | head -n 1 || echo missing)"
} 2>&1 | tee -a "$SETUP_LOG"

# PyTorch and the cuBLAS in its wheel (nvidia/cu13/lib, nvidia/cublas/lib, or torch/lib).
# SIGLIP_CUBLAS once named the library here; it now selects the backend's path (auto|on|off),
# so a path found in it is moved to SIGLIP_CUBLAS_LIBRARY.
case "${SIGLIP_CUBLAS:-auto}" in
  auto | on | off | AUTO | ON | OFF) ;;
  *)
    echo "SIGLIP_CUBLAS=$SIGLIP_CUBLAS is not auto|on|off: using it as SIGLIP_CUBLAS_LIBRARY" | tee -a "$SETUP_LOG"
    export SIGLIP_CUBLAS_LIBRARY="${SIGLIP_CUBLAS_LIBRARY:-$SIGLIP_CUBLAS}"
    unset SIGLIP_CUBLAS
    ;;
esac
CUBLAS="${SIGLIP_CUBLAS_LIBRARY:-}"
FIND_CUBLAS='
import glob, os, sys
dirs = []
try:
    import torch
    print("== torch", torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available(),
          "device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
    dirs.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception as e:
    print("== torch import failed:", e)
try:
    import triton
    print("== triton", triton.__version__)
except Exception as e:
    print("== triton not importable:", e)
for p in sys.path:
    if os.path.isdir(os.path.join(p, "nvidia")):
        dirs = sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib"))) + dirs
for d in dirs:
    if glob.glob(os.path.join(d, "libcublas.so*")):
        print("CUBLAS_DIR=" + d)
        break
else:
    print("== no libcublas.so* under", dirs)
'
if [ -z "$CUBLAS" ]; then
  PYOUT="$(timeout "$(slot 90 240)" "$PY" -c "$FIND_CUBLAS" 2>&1)"
  echo "$PYOUT" | tee -a "$SETUP_LOG"
  CUBLAS="$(echo "$PYOUT" | sed -n 's/^CUBLAS_DIR=//p' | head -n 1)"
  if [ -z "$CUBLAS" ]; then
    for c in /usr/local/cuda/lib64 "$(dirname "${NVCC:-/nonexistent}")/../lib64"; do
      if ls "$c"/libcublas.so* >/dev/null 2>&1; then CUBLAS="$c"; break; fi
    done
  fi
fi
# Every step's cuBLAS (backend and floor): the one found here, else the backend's own search.
[ -n "$CUBLAS" ] && export SIGLIP_CUBLAS_LIBRARY="$CUBLAS"
say "cuBLAS for the backward GEMMs and the floor: ${CUBLAS:-none found here (the backend searches on its own)}" |
  tee -a "$SETUP_LOG"

# ---- 2. build ----------------------------------------------------------------------------
JOBS="$(nproc)"
((JOBS > 16)) && JOBS=16
CONFIGURE=(cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DSIGLIP_CUDA=on
  -DSIGLIP_MPI=off)
[ -n "$NVCC" ] && CONFIGURE+=(-DCMAKE_CUDA_COMPILER="$NVCC")
if ! run_step "configure" "$SETUP_LOG" "$(slot 90 220)" 0 "${CONFIGURE[@]}"; then
  say "configure failed: retrying once in a fresh $BUILD" | tee -a "$SETUP_LOG"
  rm -rf "$BUILD"
  run_step "configure (fresh)" "$SETUP_LOG" "$(slot 90 220)" 0 "${CONFIGURE[@]}" && STATUS+=("(the first configure failed; the fresh one passed)")
fi
run_step "build" "$SETUP_LOG" "$(slot 240 160)" 0 \
  cmake --build "$BUILD" -j "$JOBS" --target siglip_core_check siglip_cuda_check siglip_ring_check
CHECK_BIN="$BUILD/siglip_cuda_check"
CORE_BIN="$BUILD/siglip_core_check"

# ---- 3. the CPU core ---------------------------------------------------------------------
if [ -x "$CORE_BIN" ]; then
  run_step "siglip_core_check" "$CORE_LOG" "$(slot 60 150)" 1 "$CORE_BIN"
else
  echo "siglip_core_check was not built" | tee -a "$CORE_LOG"
  STATUS+=("siglip_core_check: not built")
  FAILED=1
fi

# ---- 4. correctness, 5. timing -------------------------------------------------------------
if [ -x "$CHECK_BIN" ]; then
  run_step "cuda correctness" "$CORRECT_LOG" "$(slot 120 110)" 1 "$CHECK_BIN" --correctness
  CORRECT_PASS="$(grep -c '^PASS' "$CORRECT_LOG" || true)"
  CORRECT_FAIL="$(grep -c '^FAIL' "$CORRECT_LOG" || true)"
  # The ring on the GPU (ranks as threads on this GPU; NCCL with one rank): its log goes into
  # correctness.log, since only 8 files come back from the machine.
  RING_DIR="$(mktemp -d)"
  run_step "ring on the GPU" "$CORRECT_LOG" "$(slot 75 100)" 1 \
    env SIGLIP_BUILD_DIR="$BUILD" bash test/gpu/ring_check.sh "$RING_DIR"
  cat "$RING_DIR"/*.log >>"$CORRECT_LOG" 2>/dev/null || true
  rm -rf "$RING_DIR"
else
  echo "siglip_cuda_check was not built: see setup.log" | tee -a "$CORRECT_LOG"
  STATUS+=("cuda correctness: not built")
  FAILED=1
fi

if [ -x "$CHECK_BIN" ]; then
  LIMIT="$(slot 170 50)"
  DEADLINE=$((LIMIT > 60 ? LIMIT - 40 : LIMIT * 2 / 3))
  TIMING_ARGS=(--timing --n "$NS" --d "$D" --dtypes "$DTYPES" --runs 10 --warmup 1 --case-budget-s 2.5
    --simple-max-n "$SIMPLE_MAX_N" --deadline-s "$DEADLINE" --json "$TIMING_JSON")
  run_step "cuda timing" "$TIMING_LOG" "$LIMIT" 0 "$CHECK_BIN" "${TIMING_ARGS[@]}"
else
  echo "siglip_cuda_check was not built: see setup.log" | tee -a "$TIMING_LOG"
  STATUS+=("cuda timing: not built")
fi

# ---- 6. the PyTorch peer -------------------------------------------------------------------
LIMIT="$(slot 120 20)"
DEADLINE=$((LIMIT > 60 ? LIMIT - 30 : LIMIT / 2))
run_step "torch peer" "$PEER_LOG" "$LIMIT" 0 "$PY" bench/gpu/torch_peer.py --n "$NS" --d "$D" --dtypes "$DTYPES" \
  --runs 10 --warmup 1 --case-budget-s 2.5 --deadline-s "$DEADLINE" --json "$PEER_JSON"

# ---- 7. compute-sanitizer on small cases, if there is time --------------------------------
SANITIZER="$(command -v compute-sanitizer || true)"
if [ -z "$SANITIZER" ] && [ -n "$NVCC" ] && [ -x "$(dirname "$NVCC")/compute-sanitizer" ]; then
  SANITIZER="$(dirname "$NVCC")/compute-sanitizer"
fi
LEFT=$((BUDGET - (SECONDS - T0)))
if [ -n "$SANITIZER" ] && [ -x "$CHECK_BIN" ] && ((LEFT > 50)); then
  # Out-of-bounds or misaligned accesses in this package's kernels: 257 x 257 x 13 (rows not
  # 16-byte aligned: the simple tile GEMM) and 129 x 131 x 96 (aligned rows, partial tiles,
  # the padded gradient block: the pipelined tile GEMM's cp.async zero-fill), every path and
  # precision. cuBLAS is left out (a library path that does not exist): it is NVIDIA's code,
  # slow to instrument, and without it the "SIGLIP_CUBLAS=on / SIGLIP_GEMM1=cublas but
  # missing" error paths run. With a cuBLAS, 35 s of the budget stay for the step after it.
  RESERVE=15
  [ -n "${SIGLIP_CUBLAS_LIBRARY:-}" ] && RESERVE=35
  LIMIT="$(slot 90 "$RESERVE")"
  run_step "memcheck (257x257x13 sigmoid, 129x131x96 sigmoid and softmax)" "$CORRECT_LOG" "$LIMIT" 1 \
    env SIGLIP_CUBLAS_LIBRARY=/nonexistent/libcublas.so "$SANITIZER" --tool memcheck --error-exitcode 99 \
    --print-limit 20 "$CHECK_BIN" --correctness --filter "sigmoid D odd|ids, N != M|bad-request"
  # GEMM1 on cuBLAS: the epilogue pass's 16-byte loads of S and stores of G at a partial piece
  # (131 columns in a 136-element line) and, in 128-pair pieces, across pieces, on one stream
  # and overlapped (the four pieces alternate between G's two slots, which no 4096-pair piece
  # of these small cases reaches); only these runs, so that little of cuBLAS is instrumented.
  LEFT=$((BUDGET - (SECONDS - T0)))
  if [ -n "${SIGLIP_CUBLAS_LIBRARY:-}" ] && ((LEFT > 30)); then
    LIMIT="$(slot 60 10)"
    run_step "memcheck (129x131x96 sigmoid, GEMM1 on cuBLAS)" "$CORRECT_LOG" "$LIMIT" 1 \
      "$SANITIZER" --tool memcheck --error-exitcode 99 --print-limit 20 "$CHECK_BIN" --correctness \
      --filter "sigmoid ids, N != M" --gemm cublas-gemm1,cublas-gemm1-p128,cublas-gemm1-p128-overlap
  else
    say "memcheck of GEMM1 on cuBLAS skipped (SIGLIP_CUBLAS_LIBRARY: ${SIGLIP_CUBLAS_LIBRARY:-unset}; ${LEFT}s of the budget left)" |
      tee -a "$CORRECT_LOG"
  fi
else
  say "memcheck skipped (compute-sanitizer: ${SANITIZER:-not found}; ${LEFT}s of the budget left)" | tee -a "$CORRECT_LOG"
fi

# ---- 8. the table --------------------------------------------------------------------------
rm -f "$OUTDIR"/*.tmp
timeout 30 "$PY" bench/gpu/merge.py --timing "$TIMING_JSON" --torch "$PEER_JSON" --out "$SUMMARY" ||
  { echo "merge.py failed (exit $?)" | tee -a "$SUMMARY"; FAILED=1; }
{
  echo
  echo "steps (total $((SECONDS - T0)) s of a ${BUDGET} s budget):"
  for s in "${STATUS[@]}"; do echo "  $s"; done
  echo "cuda correctness: ${CORRECT_PASS:-0} PASS, ${CORRECT_FAIL:-0} FAIL lines (correctness.log)"
  echo "files in $OUTDIR: $(cd "$OUTDIR" && printf '%s ' *)"
} | tee -a "$SUMMARY"
exit "$FAILED"
