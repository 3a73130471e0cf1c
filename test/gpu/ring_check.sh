#!/usr/bin/env bash
# The ring on a GPU machine, in one command from the repository root (no network needed):
#
#     bash test/gpu/ring_check.sh [OUTDIR]     # default OUTDIR: $OUT if set, else bench/gpu/results
#
#   1. siglip_ring_check from the CMake build in $SIGLIP_BUILD_DIR (default build-gpu): an
#      existing build is only brought up to date for that target (nothing to do when
#      bench/gpu/check.sh built it), otherwise it is configured for sm_$SIGLIP_CUDA_ARCH (90)
#      and only siglip_ring_check is built;
#   2. libnccl.so.2 looked up in Python's site-packages (nvidia/nccl/lib, nvidia/*/lib, as the
#      nvidia-nccl-cu12/13 wheels that PyTorch depends on install it) unless SIGLIP_NCCL_LIBRARY
#      is set, and exported as SIGLIP_NCCL_LIBRARY;
#   3. siglip_ring_check --cuda-local P for P = 1..4 (P ranks as threads on GPU 0: device
#      shards, CudaBlockBackend, float32 at TF32 and FP32 and bfloat16, against the CPU);
#   4. siglip_ring_check --nccl (NCCL, one rank per visible GPU: the transport's exchange
#      check, then the ring), then --nccl-timeout (an unanswered receive must fail, not hang).
# Each run is under `timeout`; the runs take a few seconds each on an H100 (under 60 s in all,
# the build aside). A run that exits 2 lacked something (a GPU, NCCL) and says what.
# OUTDIR receives ring_check.log. Exit status: 0 when every step passed, 1 otherwise.
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
OUTDIR="${1:-${OUT:-bench/gpu/results}}"
mkdir -p "$OUTDIR" || { echo "cannot create $OUTDIR"; exit 1; }
OUTDIR="$(cd "$OUTDIR" && pwd)"
LOG="$OUTDIR/ring_check.log"
BUILD="${SIGLIP_BUILD_DIR:-build-gpu}"
ARCH="${SIGLIP_CUDA_ARCH:-90}"
PY="${PYTHON:-python3}"
T0=$SECONDS
FAILED=0
STATUS=()
: >"$LOG"

say() { echo "[ring_check +$((SECONDS - T0))s] $*" | tee -a "$LOG"; }

# step NAME LIMIT CMD...: runs CMD under `timeout`, output to the terminal and the log.
step() {
  local name=$1 limit=$2 rc result
  shift 2
  say "$name (timeout ${limit}s): $*"
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  if ((rc == 124 || rc == 137)); then
    result="TIMED OUT after ${limit}s"
  elif ((rc == 0)); then
    result="ok"
  elif ((rc == 2)); then
    result="exit status 2 (something it needs is missing: see above)"
  else
    result="exit status $rc"
  fi
  ((rc != 0)) && FAILED=1
  say "$name: $result"
  STATUS+=("$name: $result")
  return "$rc"
}

# ---- 1. build --------------------------------------------------------------------------------
BIN="$BUILD/siglip_ring_check"
JOBS="$(nproc)"
((JOBS > 16)) && JOBS=16
if [ -f "$BUILD/CMakeCache.txt" ]; then
  step "build (existing $BUILD)" 300 cmake --build "$BUILD" -j "$JOBS" --target siglip_ring_check
else
  # nvcc: PATH, else the usual places; a toolkit newer than the driver cannot run, so then
  # prefer an installed toolkit of the driver's major version (as check.sh does).
  NVCC="$(command -v nvcc || true)"
  if [ -z "$NVCC" ]; then
    for c in /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc /opt/cuda/bin/nvcc; do
      if [ -x "$c" ]; then NVCC="$c"; break; fi
    done
  fi
  if [ -n "$NVCC" ]; then
    NVCC_MAJOR="$("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9]*\)\..*/\1/p' | head -n 1)"
    DRIVER_MAJOR="$(timeout 30 nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\)\..*/\1/p' | head -n 1)"
    if [ -n "$NVCC_MAJOR" ] && [ -n "$DRIVER_MAJOR" ] && ((NVCC_MAJOR > DRIVER_MAJOR)); then
      for c in /usr/local/cuda-"$DRIVER_MAJOR"*/bin/nvcc; do
        if [ -x "$c" ]; then NVCC="$c"; fi
      done
    fi
  fi
  say "nvcc: ${NVCC:-NOT FOUND}"
  CONFIGURE=(cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DSIGLIP_CUDA=on)
  [ -n "$NVCC" ] && CONFIGURE+=(-DCMAKE_CUDA_COMPILER="$NVCC")
  step "configure" 120 "${CONFIGURE[@]}"
  step "build" 400 cmake --build "$BUILD" -j "$JOBS" --target siglip_ring_check
fi

# ---- 2. NCCL ---------------------------------------------------------------------------------
if [ -z "${SIGLIP_NCCL_LIBRARY:-}" ]; then
  FIND_NCCL='
import glob, os, sys
seen = []
for p in sys.path:
    for pattern in ("nvidia/nccl/lib/libnccl.so*", "nvidia/*/lib/libnccl.so*", "torch/lib/libnccl.so*"):
        for f in sorted(glob.glob(os.path.join(p, pattern))):
            if f not in seen:
                seen.append(f)
print("\n".join(seen))
'
  CANDIDATES="$(timeout 60 "$PY" -c "$FIND_NCCL" 2>>"$LOG" || true)"
  if [ -z "$CANDIDATES" ]; then
    CANDIDATES="$(find /usr/local/lib /usr/lib /opt /root/.local -maxdepth 7 -path '*nvidia*' -name 'libnccl.so*' 2>/dev/null | sort)"
  fi
  # Prefer the versioned name the loader expects.
  NCCL="$(echo "$CANDIDATES" | grep 'libnccl\.so\.2$' | head -n 1)"
  [ -z "$NCCL" ] && NCCL="$(echo "$CANDIDATES" | grep . | head -n 1)"
  if [ -n "$NCCL" ]; then
    export SIGLIP_NCCL_LIBRARY="$NCCL"
  fi
fi
say "SIGLIP_NCCL_LIBRARY=${SIGLIP_NCCL_LIBRARY:-(none found: the dynamic loader search path is tried)}"
# One machine: the bootstrap can stay on the loopback interface (there may be no other).
export NCCL_SOCKET_IFNAME="${NCCL_SOCKET_IFNAME:-lo}"
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
{
  echo "== nvidia-smi -L"
  timeout 20 nvidia-smi -L 2>&1 || echo "nvidia-smi failed or is missing"
} | tee -a "$LOG"

# ---- 3, 4. the checks ------------------------------------------------------------------------
if [ -x "$BIN" ]; then
  for p in 1 2 3 4; do
    step "cuda-local P=$p" 40 "$BIN" --cuda-local "$p"
  done
  step "nccl" 60 "$BIN" --nccl
  step "nccl timeout" 30 "$BIN" --nccl-timeout
else
  say "$BIN was not built: see the build step above"
  STATUS+=("siglip_ring_check: not built")
  FAILED=1
fi

{
  echo
  echo "ring_check steps (total $((SECONDS - T0)) s):"
  for s in "${STATUS[@]}"; do echo "  $s"; done
  echo "PASS lines: $(grep -c '^PASS' "$LOG" || true), FAIL lines: $(grep -c '^FAIL' "$LOG" || true) (in $LOG)"
} | tee -a "$LOG"
exit "$FAILED"
