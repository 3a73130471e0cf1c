#!/usr/bin/env bash
# The package's GPU ava tests on the GPU machine (no Node.js, no network), from the repository
# root, with what bench/gpu/pack_node.sh packed here into build-gpu-node/ (carried):
#
#     bash test/gpu/node_tests.sh OUT_DIR [ava arguments...]   # OUT_DIR: default $OUT, else bench/gpu/results
#
# Unpacks node and the package root (compiled lib/ and tests, the sm_90 CUDA addon at
# build-cuda/Release/, node_modules/) into a temporary folder, then runs ava on the compiled GPU
# test files under SIGLIP_REQUIRE_CUDA=1, so a GPU test that cannot run (no GPU answered, the
# addon failed to load) FAILS instead of being skipped. The files (TEST_FILES in pack_node.sh):
#   test/cuda.test.js  gpuTest cases: both losses against the float64 reference on the GPU
#   test/cuda-device.test.js  gpuTest cases: DeviceMatrix, memory counters, device errors
#   test/ring.test.js  gpuTest case: Ring.nccl with one rank (needs libnccl.so.2: PyTorch's
#                      nvidia-nccl wheel, found below); its other tests are CPU rings
# (errors.test.ts has noGpuTest cases only, which skip on a GPU; loader.test.ts needs tsx.)
#
# Output: OUT_DIR/node_tests.log (everything), and one summary line at the end:
#     node_tests: PASS|FAIL (N passed, N failed, N skipped, ...; S s)
# Always exits 0 (a caller's script goes on); the summary line says FAIL. Never hangs: ava runs
# under `timeout` (SIGLIP_NODE_TESTS_TIMEOUT_S, default 150 s; ava's own per-test timeout, 90 s,
# names a stuck test before that).
#
# Environment: SIGLIP_REQUIRE_CUDA (default 1; 0 runs without a GPU, skipping the GPU tests),
# SIGLIP_NCCL_LIBRARY and SIGLIP_CUBLAS_LIBRARY (found in python3's site-packages when unset),
# SIGLIP_NODE_TESTS_TIMEOUT_S, PYTHON (python3).
set -euo pipefail

OUT_DIR="${1:-${OUT:-bench/gpu/results}}"
# Relative to where the caller is, not to the repository root this script moves to.
case "$OUT_DIR" in /*) ;; *) OUT_DIR="$PWD/$OUT_DIR" ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PACK="build-gpu-node"
if [ "$#" -gt 0 ]; then shift; fi
LIMIT="${SIGLIP_NODE_TESTS_TIMEOUT_S:-150}"
PY="${PYTHON:-python3}"
T0=$SECONDS
RESULT=""  # the summary line, once ava has run
LOG=""
WORK=""
AVA_PID=""
ERR_LINE="?"
trap 'ERR_LINE=$LINENO' ERR

# Whatever happens (a failed unpack, an unexpected error under set -e), print one FAIL line,
# clean up, and exit 0: this script must not fail the caller's.
finish() {
  local rc=$?
  if [ -z "$RESULT" ]; then
    RESULT="node_tests: FAIL (stopped before ava finished: exit status $rc after line $ERR_LINE; $((SECONDS - T0)) s)"
  fi
  if [ -n "$LOG" ]; then echo "$RESULT" | tee -a "$LOG"; else echo "$RESULT"; fi
  if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
  exit 0
}
trap finish EXIT
# Stopped from outside (a caller's `timeout`): stop ava too. It runs under its own `timeout`,
# which is a process group of its own that a caller's group-wide signal does not reach.
interrupted() {
  RESULT="node_tests: FAIL (interrupted by a signal after $((SECONDS - T0)) s; log: ${LOG:-none})"
  if [ -n "$AVA_PID" ]; then kill -TERM "$AVA_PID" 2>/dev/null || true; fi
  exit 0
}
trap interrupted TERM INT HUP

mkdir -p "$OUT_DIR"
LOG="$(cd "$OUT_DIR" && pwd)/node_tests.log"
: >"$LOG"
if [ ! -f "$PACK/node.xz" ] || [ ! -f "$PACK/pkg.tar.xz" ]; then
  RESULT="node_tests: SKIPPED: $PACK/ is absent (run bench/gpu/pack_node.sh where Node.js is, and carry $PACK)"
  exit 0
fi
say() { echo "[node_tests +$((SECONDS - T0))s] $*" | tee -a "$LOG"; }

# ---- unpack: node and the package root, into a temporary folder --------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/siglip-node-tests.XXXXXX")"
NODE="$WORK/bin/node"  # always called by this absolute path: there is no node on PATH here
mkdir -p "$WORK/bin" "$WORK/pkg"
if command -v xz >/dev/null; then
  xz -dc "$PACK/node.xz" >"$NODE"
  xz -dc "$PACK/pkg.tar.xz" | tar -C "$WORK/pkg" -xf -
else
  # No xz binary: Python's lzma and tarfile read the same files.
  "$PY" -c '
import lzma, shutil, sys, tarfile
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
with tarfile.open(sys.argv[3], "r:xz") as tar:
    try:
        tar.extractall(sys.argv[4], filter="data")  # Python 3.12+ warns without a filter
    except TypeError:
        tar.extractall(sys.argv[4])
' "$PACK/node.xz" "$NODE" "$PACK/pkg.tar.xz" "$WORK/pkg"
fi
chmod +x "$NODE"
say "unpacked into $WORK ($(du -sh "$WORK" | cut -f1))"
sed -n '1,6p' "$PACK/MANIFEST.txt" | sed 's/^/  /' | tee -a "$LOG"

if ! NODE_VERSION="$("$NODE" --version 2>&1)"; then
  say "the packed node does not run here: $NODE_VERSION"
  RESULT="node_tests: FAIL (the packed node does not run on this machine: $(echo "$NODE_VERSION" | head -n 1))"
  exit 0
fi
say "node $NODE_VERSION; $(ldd --version 2>/dev/null | head -n 1)"
{ timeout 20 nvidia-smi -L 2>&1 || echo "nvidia-smi -L failed or is missing"; } | sed 's/^/  /' | tee -a "$LOG"

# The compiled tests are of the sources packed, not necessarily of this tree's: say so.
sources_hash() {  # the same as pack_node.sh's
  find csrc lib test CMakeLists.txt -type f \( -name '*.ts' -o -name '*.cpp' -o -name '*.cc' -o -name '*.c' \
    -o -name '*.h' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' -o -name 'CMakeLists.txt' \) -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
PACKED_HASH="$(cat "$PACK/sources.sha256" 2>/dev/null || echo none)"
if [ "$(sources_hash 2>/dev/null || echo unknown)" != "$PACKED_HASH" ]; then
  say "WARNING: csrc/, lib/ or test/ here differ from what $PACK/ was packed from: the addon and the compiled tests are the packed ones (rerun bench/gpu/pack_node.sh before carrying)"
fi

# ---- NCCL and cuBLAS from PyTorch's wheels ------------------------------------------------------
# The addon dlopens both. Its NCCL search does not look in site-packages, and its cuBLAS search
# looks in pip wheels only under $VIRTUAL_ENV and a few prefixes, so name them when python3
# (PyTorch's) has them. Plain sys.path globbing: importing torch would cost seconds.
if [ -z "${SIGLIP_NCCL_LIBRARY:-}" ] || [ -z "${SIGLIP_CUBLAS_LIBRARY:-}" ]; then
  FOUND="$(timeout 30 "$PY" -c '
import glob, os, sys
for p in sys.path:
    for lib in sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib", "libnccl.so.2")))[:1]:
        print("NCCL=" + lib)
    for d in sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib"))):
        if glob.glob(os.path.join(d, "libcublas.so*")):
            print("CUBLAS=" + d)
' 2>/dev/null || true)"
  if [ -z "${SIGLIP_NCCL_LIBRARY:-}" ]; then
    SIGLIP_NCCL_LIBRARY="$(echo "$FOUND" | sed -n 's/^NCCL=//p' | head -n 1)"
    if [ -n "$SIGLIP_NCCL_LIBRARY" ]; then export SIGLIP_NCCL_LIBRARY; fi
  fi
  if [ -z "${SIGLIP_CUBLAS_LIBRARY:-}" ]; then
    SIGLIP_CUBLAS_LIBRARY="$(echo "$FOUND" | sed -n 's/^CUBLAS=//p' | head -n 1)"
    if [ -n "$SIGLIP_CUBLAS_LIBRARY" ]; then export SIGLIP_CUBLAS_LIBRARY; fi
  fi
fi
say "SIGLIP_NCCL_LIBRARY=${SIGLIP_NCCL_LIBRARY:-(unset, so the addon searches by itself)}"
say "SIGLIP_CUBLAS_LIBRARY=${SIGLIP_CUBLAS_LIBRARY:-(unset, so the addon searches by itself)}"

# ---- ava ------------------------------------------------------------------------------------------
# SIGLIP_FORCE_CPU would make the loader skip the CUDA build: never inherit it here.
unset SIGLIP_FORCE_CPU
export SIGLIP_REQUIRE_CUDA="${SIGLIP_REQUIRE_CUDA-1}"
# A plain log (no colour codes); the compiled files carry inline source maps, so stack traces
# name the .ts lines.
export FORCE_COLOR=0
say "ava (timeout ${LIMIT}s) with SIGLIP_REQUIRE_CUDA=$SIGLIP_REQUIRE_CUDA: $(sed -n 's/^ *files: //; s/,$//p' "$WORK/pkg/ava.config.mjs") $*"
# ava writes straight into the log and `tail --pid` echoes it: a pipe to tee could be held open
# by a stray child process after ava is killed, and then this script would wait for ever.
START=$(stat -c %s "$LOG")
(cd "$WORK/pkg" && exec timeout -k 10 "$LIMIT" "$NODE" --enable-source-maps node_modules/ava/entrypoints/cli.mjs "$@") \
  >>"$LOG" 2>&1 </dev/null &
AVA_PID=$!
tail -c +"$((START + 1))" -f --pid="$AVA_PID" "$LOG" || true
RC=0
wait "$AVA_PID" || RC=$?

# ---- the summary ----------------------------------------------------------------------------------
# ava closes with "N tests passed" / "N tests failed" / "N tests skipped" ("test" for 1), but
# prints no passed count when something failed, and nothing after a kill: then the per-test
# lines ("✔ ...", "✘ ...", "- [skip] ...") are counted instead.
NEW="$(tail -c +"$((START + 1))" "$LOG")"
closing() { echo "$NEW" | sed -n "s/^ *\([0-9][0-9]*\) tests\{0,1\} $1\$/\1/p" | tail -n 1; }
marks() { echo "$NEW" | grep -c "^ *$1 " || true; }
PASSED="$(closing passed)"
FAILED="$(closing failed)"
SKIPPED="$(closing skipped)"
PASSED="${PASSED:-$(marks '✔')}"
FAILED="${FAILED:-$(marks '✘')}"
SKIPPED="${SKIPPED:-$(marks '- \[skip\]')}"
COUNTS="$PASSED passed, $FAILED failed, $SKIPPED skipped"
# Anything else ava reports at the end (uncaught exceptions, unhandled rejections, timeouts).
OTHER="$(echo "$NEW" | grep -E '^ *[0-9]+ (uncaught exception|unhandled rejection|known failure|tests? remained)|Timed out while running tests' |
  sed 's/^ *//; s/^✘ //' | paste -sd ';' - | sed 's/;/; /g' || true)"
if [ -n "$OTHER" ]; then COUNTS="$COUNTS; $OTHER"; fi
if ((RC == 124 || RC == 137)); then
  RESULT="node_tests: FAIL (TIMED OUT after ${LIMIT}s; until then $COUNTS; log: $LOG)"
elif ((RC == 0)) && [ "$FAILED" = 0 ] && [ "$PASSED" != 0 ]; then
  RESULT="node_tests: PASS ($COUNTS; $((SECONDS - T0)) s)"
else
  RESULT="node_tests: FAIL ($COUNTS; ava exit status $RC; $((SECONDS - T0)) s; log: $LOG)"
fi
