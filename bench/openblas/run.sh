#!/usr/bin/env bash
# The OpenBLAS reference rate for C = A·Bᵀ at the shapes the fused loss multiplies, with the
# same thread count, so bench/run.ts's "gemm" rows have an outside yardstick.
#
#   bench/openblas/run.sh [--threads T] [--repeats R] [--bf16] [MxNxK ...]
#
# Defaults: 2 threads, 5 timed runs (median) after one warm-up, shapes 512x512x768,
# 2048x2048x768 and 8192x8192x768 (S = X·Yᵀ for N = M at D = 768).
#
# OpenBLAS picks its kernel at run time (Debian builds it with DYNAMIC_ARCH). Two variables
# change that choice: OPENBLAS_CORETYPE forces a core type (Haswell = the AVX2 kernel, even on
# an AVX-512 machine) and OPENBLAS_L2_SIZE overrides the cache size its blocking assumes. So
# the script runs the same binary twice: with the environment as it is, and with both unset
# (OpenBLAS's own detection). When the environment sets neither, the first run already is
# "own detection", so it runs OPENBLAS_CORETYPE=Haswell instead, for the AVX2 figure.
#
# --bf16 also times cblas_sbgemm (bfloat16 inputs, float32 sums and out) per shape: the floor
# for the package's bf16 path (siglip_core_bench --bf16). Debian's OpenBLAS lacks it, so a third
# block runs an OpenBLAS built with BUILD_BFLOAT16 by build_bf16.sh, where one is built.
#
# A bench helper only: nothing in the package links OpenBLAS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
threads=2
repeats=5
bf16=()
shapes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --bf16) bf16=(--bf16); shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) shapes+=("$1"); shift ;;
  esac
done
[ ${#shapes[@]} -gt 0 ] || shapes=(512x512x768 2048x2048x768 8192x8192x768)

# Debian/Ubuntu ship cblas.h and libopenblas.so in libopenblas-dev (which pulls in the
# pthread variant). Check both before compiling so the error says what to install.
cc="${CC:-cc}"
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "run.sh: no C compiler ($cc); install one, e.g. apt-get install -y gcc" >&2
  exit 1
fi
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf '#include <cblas.h>\nint main(void){openblas_set_num_threads(1);return 0;}\n' >"$probe/probe.c"
if ! "$cc" "$probe/probe.c" -o "$probe/probe" -lopenblas >"$probe/log" 2>&1; then
  echo "run.sh: cannot build against OpenBLAS (cblas.h or libopenblas.so missing):" >&2
  sed 's/^/  /' "$probe/log" >&2
  echo "Install it with: sudo apt-get install -y libopenblas-dev   (Debian/Ubuntu)" >&2
  echo "                  sudo dnf install -y openblas-devel        (Fedora)" >&2
  exit 1
fi

# build/ is git-ignored (see .gitignore).
mkdir -p "$here/build"
"$cc" -O2 -Wall -Wextra -o "$here/build/sgemm_rate" "$here/sgemm_rate.c" -lopenblas -ldl

cpu="$( (lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1) || true)"
[ -n "$cpu" ] || cpu="$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n1)"
echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores online; C = A·Bᵀ (row-major), $threads threads, median of $repeats"
echo

args=(--threads "$threads" --repeats "$repeats" ${bf16[@]+"${bf16[@]}"} "${shapes[@]}")
describe() { echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>}"; }

if [ -n "${OPENBLAS_CORETYPE+x}" ] || [ -n "${OPENBLAS_L2_SIZE+x}" ]; then
  echo "== environment as set: $(describe)"
  "$here/build/sgemm_rate" "${args[@]}"
  echo
  echo "== both unset (OpenBLAS's own detection)"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$here/build/sgemm_rate" "${args[@]}"
else
  echo "== environment as set: $(describe) (neither set: OpenBLAS's own detection)"
  "$here/build/sgemm_rate" "${args[@]}"
  echo
  echo "== OPENBLAS_CORETYPE=Haswell (forces the AVX2 kernel; the environment did not set it)"
  OPENBLAS_CORETYPE=Haswell "$here/build/sgemm_rate" "${args[@]}"
fi

# --bf16: Debian's OpenBLAS has no cblas_sbgemm, so the bf16 floor comes from an OpenBLAS built
# with BUILD_BFLOAT16 (bench/openblas/build_bf16.sh; SIGLIP_OPENBLAS_BF16 names another build's
# libopenblas.so.0), run as a block of its own: both its sgemm and its sbgemm.
if [ ${#bf16[@]} -gt 0 ]; then
  lib="${SIGLIP_OPENBLAS_BF16:-${SIGLIP_CACHE_DIR:-$HOME/.cache/siglip-kernels}/openblas-bf16/COOPERLAKE/libopenblas.so.0}"
  echo
  if [ -f "$lib" ]; then
    echo "== OpenBLAS built with BUILD_BFLOAT16 ($lib)"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      "$here/build/sgemm_rate" "${args[@]}"
  else
    echo "(no OpenBLAS with cblas_sbgemm at $lib: bench/openblas/build_bf16.sh builds one)"
  fi
fi
