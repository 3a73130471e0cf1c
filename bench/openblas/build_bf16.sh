#!/usr/bin/env bash
# Builds an OpenBLAS with cblas_sbgemm (BUILD_BFLOAT16=1), the bf16 floor that
# `bench/openblas/run.sh --bf16` compares the package's bf16 path with. Debian 12's
# libopenblas (0.3.21) and Debian 13's (0.3.29) are both built without it.
#
#   bench/openblas/build_bf16.sh [--target NAME]      (default COOPERLAKE: what OpenBLAS's own
#                                                     detection picks on Zen 4 and Zen 5)
#
# The source is Debian's own tarball of OpenBLAS 0.3.29 (deb.debian.org, the one archive the
# build machines reach), unpacked and built under ~/.cache/siglip-kernels/openblas-bf16/
# (SIGLIP_CACHE_DIR overrides the cache root): single target, pthreads, no LAPACK or Fortran.
# About 20 minutes on 2 cores; a second run finds it built and only prints where it is.
# A bench helper only: nothing in the package links OpenBLAS.
set -euo pipefail

target=COOPERLAKE
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_bf16.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

version=0.3.29
tarball="openblas_${version}+ds.orig.tar.xz"
url="http://deb.debian.org/debian/pool/main/o/openblas/$tarball"
root="${SIGLIP_CACHE_DIR:-$HOME/.cache/siglip-kernels}/openblas-bf16"
out="$root/$target"
if [ -f "$out/libopenblas.so.0" ]; then
  echo "$out/libopenblas.so.0 (already built)"
  exit 0
fi
mkdir -p "$root"
if [ ! -f "$root/$tarball" ]; then
  echo "build_bf16.sh: fetching $url" >&2
  curl -fsSL -o "$root/$tarball.part" "$url"
  mv "$root/$tarball.part" "$root/$tarball"
fi
src="$root/src-$target"
rm -rf "$src"
mkdir -p "$src"
tar -xf "$root/$tarball" -C "$src" --strip-components=1
echo "build_bf16.sh: building OpenBLAS $version for $target with BUILD_BFLOAT16=1 (log: $src/build.log)" >&2
make -C "$src" -j"$(nproc)" TARGET="$target" BUILD_BFLOAT16=1 NO_LAPACK=1 NO_LAPACKE=1 NOFORTRAN=1 \
  USE_OPENMP=0 USE_THREAD=1 NUM_THREADS=64 libs shared >"$src/build.log" 2>&1 ||
  { tail -n 20 "$src/build.log" >&2; exit 1; }
mkdir -p "$out"
cp -L "$src/libopenblas.so.0" "$out/libopenblas.so.0"
rm -rf "$src"
echo "$out/libopenblas.so.0"
