#!/usr/bin/env bash
# Packs what the GPU machine needs to run the package's GPU ava tests (test/gpu/node_tests.sh)
# into one ignored folder, build-gpu-node/. Runs HERE (a machine with Node.js, the repo's
# node_modules, nvcc and CMake); the GPU machine has no Node.js and no network.
#
#     bash bench/gpu/pack_node.sh
#
# build-gpu-node/ then holds (carry it: run's carry list ["build-gpu-node"]):
#   node.xz        this machine's node binary, stripped and xz-compressed (it links only libc,
#                  libm, libdl, libpthread, libstdc++ and libgcc_s, and needs glibc 2.28)
#   pkg.tar.xz     a package root laid out as in a checkout, so lib/loader.ts probes the same
#                  relative paths: lib/*.js, test/<GPU test files>.js and test/helpers/*.js
#                  (tsc, CommonJS: no tsx or esbuild there), build-cuda/Release/siglip_kernels.node
#                  (the CUDA addon for sm_90 only, stripped), node_modules/ (ava 7's runtime
#                  closure and node-gyp-build), package.json and ava.config.mjs
#   sources.sha256 one hash over csrc/, lib/, test/ and CMakeLists.txt as packed: node_tests.sh
#                  recomputes it there and warns when the tree it runs in differs
#   MANIFEST.txt   what was packed, from which sources, sizes, glibc needs
# Compressed because the addon (~14 MB, mostly its fatbin) and node_modules (~13 MB in ~1,000
# files) shrink to ~1.3 MB and ~1 MB, and a run carries 64 MiB at most, working tree included.
#
# The CUDA addon is built by cmake-js, as `npm run build:cuda` and scripts/install.js do, but
# into its own folder build-cuda-sm90/ (incremental across packs) so build-cuda/ is untouched:
# sm_90 only (real code, no PTX), MPI off (the GPU machine's MPI, if any, is not this one's).
# The CPU addon (build/) is not packed: the loader uses the CUDA build whenever a GPU answers,
# and without a GPU it falls back to the CUDA build's CPU code when no CPU build exists.
#
# Environment: SIGLIP_PACK_CUDA_ARCH (90-real), SIGLIP_PACK_NODE (the node to pack: `command -v
# node`), JOBS (parallel compile jobs: nproc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$(pwd)"
DEST="build-gpu-node"
ADDON_BUILD="build-cuda-sm90"
ARCH="${SIGLIP_PACK_CUDA_ARCH:-90-real}"
NODE_SRC="$(readlink -f "${SIGLIP_PACK_NODE:-$(command -v node)}")"
JOBS="${JOBS:-$(nproc)}"
# The GPU test files: those with gpuTest(...) cases (test/helpers/gpu.ts). Keep in step with
# test/gpu/tsconfig.node-tests.json's "include" (the sources) and with node_tests.sh.
TEST_FILES=(test/cuda.test.js test/cuda-device.test.js test/ring.test.js)
# A pack over this is refused: the carry limit (64 MiB) also holds the working tree.
MAX_BYTES=$((45 * 1024 * 1024))
T0=$SECONDS

say() { echo "[pack_node +$((SECONDS - T0))s] $*"; }
die() { echo "[pack_node] FAIL: $*" >&2; exit 1; }

for tool in xz tar strip sha256sum cmake; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ -x "$NODE_SRC" ] || die "no node binary to pack (SIGLIP_PACK_NODE or node on PATH)"
[ -x node_modules/.bin/cmake-js ] && [ -x node_modules/.bin/tsc ] && [ -d node_modules/ava ] ||
  die "node_modules lacks cmake-js, typescript or ava: run npm install first"
git check-ignore -q "$DEST/" || die "$DEST/ is not ignored by git (.gitignore's build-*/ should cover it)"

# The same hash node_tests.sh computes: every source file under csrc/, lib/, test/ and
# CMakeLists.txt, by path and content (find, not git: the GPU machine's copy may have no .git).
sources_hash() {
  find csrc lib test CMakeLists.txt -type f \( -name '*.ts' -o -name '*.cpp' -o -name '*.cc' -o -name '*.c' \
    -o -name '*.h' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' -o -name 'CMakeLists.txt' \) -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pack_node.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/pkg"   # the package root as it will be unpacked on the GPU machine
OUTNEW="$WORK/out"  # the new build-gpu-node/, moved into place only when complete
mkdir -p "$STAGE" "$OUTNEW"

HASH_BEFORE="$(sources_hash)"
say "sources hash $HASH_BEFORE; node $NODE_SRC ($("$NODE_SRC" --version)); CUDA architectures $ARCH"

# ---- 1. the CUDA addon, sm_90 only ----------------------------------------------------------
# configure always runs (cheap with a cache) so a changed ARCH applies to an existing build.
CONFIGURE=(configure --out "$ADDON_BUILD" --CDSIGLIP_CUDA=on --CDSIGLIP_MPI=off
  "--CDCMAKE_CUDA_ARCHITECTURES=$ARCH" --CDCMAKE_BUILD_TYPE=Release)
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  CONFIGURE+=(--CDCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
mkdir -p "$ADDON_BUILD"
BUILD_LOG="$ADDON_BUILD/pack-build.log"
say "building the CUDA addon into $ADDON_BUILD/ (cmake-js, $JOBS jobs; log $BUILD_LOG)"
if ! { node_modules/.bin/cmake-js "${CONFIGURE[@]}" &&
  node_modules/.bin/cmake-js build --out "$ADDON_BUILD" --parallel "$JOBS"; } >"$BUILD_LOG" 2>&1; then
  tail -n 40 "$BUILD_LOG" >&2
  die "the CUDA addon build failed (log: $BUILD_LOG)"
fi
ADDON="$ADDON_BUILD/Release/siglip_kernels.node"
[ -f "$ADDON" ] || die "cmake-js succeeded but $ADDON is missing"
CACHED_ARCH="$(sed -n 's/^CMAKE_CUDA_ARCHITECTURES:[A-Z]*=//p' "$ADDON_BUILD/CMakeCache.txt")"
[ "$CACHED_ARCH" = "$ARCH" ] || die "$ADDON_BUILD/CMakeCache.txt says CUDA architectures '$CACHED_ARCH', not '$ARCH'"
mkdir -p "$STAGE/build-cuda/Release"
# --strip-unneeded drops symbols and debug info only; the fatbin section stays.
strip --strip-unneeded -o "$STAGE/build-cuda/Release/siglip_kernels.node" "$ADDON"
# It must load here (no GPU: cudaAvailable() says why) and be a CUDA build of this package.
"$NODE_SRC" -e '
  const a = require(process.argv[1]);
  if (typeof a.sigmoidLoss !== "function" || typeof a.cudaAvailable !== "function") {
    throw new Error("loaded, but not a CUDA build of siglip-kernels");
  }
  console.log("[pack_node] the stripped addon loads; cudaAvailable() here: " + JSON.stringify(a.cudaAvailable()));
' "$STAGE/build-cuda/Release/siglip_kernels.node" || die "the stripped CUDA addon does not load here"

# ---- 2. lib/ and the GPU test files as CommonJS ----------------------------------------------
say "compiling lib/ and ${TEST_FILES[*]} (test/gpu/tsconfig.node-tests.json)"
node_modules/.bin/tsc -p test/gpu/tsconfig.node-tests.json --outDir "$STAGE" ||
  die "tsc failed (type errors: the compiled tests would not match the sources)"
for f in "${TEST_FILES[@]}" lib/index.js lib/loader.js test/helpers/gpu.js; do
  [ -f "$STAGE/$f" ] || die "tsc did not produce $f"
done

# ---- 3. node_modules: what ava 7 and lib/ load at run time ------------------------------------
# Walks package.json dependencies (and optional ones that are installed) from ava and
# node-gyp-build (lib/loader.ts requires it; node-addon-api is build-time only), resolving each
# as Node does (nearest node_modules up from the requiring package), and copies each package
# without its own nested node_modules (those are copied as closure members of their own).
# @vercel/nft is left out: ava imports it only in watch mode (lib/watcher.js), and it is about
# half of the closure.
cat >"$WORK/closure.cjs" <<'EOF'
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const [root, dest, ...starts] = process.argv.slice(2);
const SKIP = new Set(['@vercel/nft']);
const found = new Map(); // package dir relative to root -> version

function resolveFrom(dir, name) {
  for (let d = dir; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (d === root) return null;
  }
}

function visit(dir, requiredBy) {
  const rel = path.relative(root, dir);
  if (found.has(rel)) return;
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  found.set(rel, pkg.version);
  const optional = pkg.optionalDependencies ?? {};
  for (const name of Object.keys({ ...pkg.dependencies, ...optional })) {
    if (SKIP.has(name)) continue;
    const at = resolveFrom(dir, name);
    if (at === null) {
      if (name in optional) continue;
      throw new Error(`${name}, needed by ${rel || requiredBy}, is not installed: run npm install`);
    }
    visit(at, rel);
  }
}

for (const name of starts) {
  const at = resolveFrom(root, name);
  if (at === null) throw new Error(`${name} is not installed: run npm install`);
  visit(at, '(start)');
}
for (const rel of [...found.keys()].sort()) {
  const src = path.join(root, rel);
  const own = path.join(src, 'node_modules');
  fs.cpSync(src, path.join(dest, rel), { recursive: true, verbatimSymlinks: true, filter: (p) => p !== own });
}
const ava = found.get('node_modules/ava');
if (ava !== '7.0.0') throw new Error(`expected ava 7.0.0 in node_modules, found ${ava}`);
console.log(`[pack_node] node_modules: ${found.size} packages (ava ${ava})`);
EOF
"$NODE_SRC" "$WORK/closure.cjs" "$ROOT" "$STAGE" ava node-gyp-build || die "copying the node_modules closure failed"

# ---- 4. package.json and the ava config --------------------------------------------------------
# ava finds its project folder by package.json and reads ava.config.mjs there; the config lives
# only in the .mjs (ava refuses a config in both). No "type": the .js files are CommonJS.
cat >"$STAGE/package.json" <<'EOF'
{
  "name": "siglip-kernels-gpu-tests",
  "private": true,
  "description": "Compiled GPU tests of siglip-kernels, packed by bench/gpu/pack_node.sh for test/gpu/node_tests.sh"
}
EOF
{
  echo '// Written by bench/gpu/pack_node.sh: the compiled GPU test files, for test/gpu/node_tests.sh.'
  echo 'export default {'
  echo "  files: [$(printf "'%s', " "${TEST_FILES[@]}" | sed 's/, $//')],"
  cat <<'EOF'
  // One file at a time: the files share the process (worker threads), hence one CUDA context
  // and the addon's device-memory counters, which some tests read (cudaMemoryUsage()).
  concurrency: 1,
  // Under node_tests.sh's hard limit (150 s), so a hung test is named by ava before the kill.
  timeout: '90s',
  // Nothing written into node_modules/.cache.
  cache: false,
};
EOF
} >"$STAGE/ava.config.mjs"

# ---- 5. the node binary, stripped and xz-compressed ---------------------------------------------
# Reused from the previous pack when the binary is the same (xz -9 on ~86 MB takes ~45 s).
NODE_SHA="$(sha256sum "$NODE_SRC" | cut -d' ' -f1)"
if [ -f "$DEST/node.xz" ] && [ "$(cat "$DEST/node.source.sha256" 2>/dev/null)" = "$NODE_SHA" ]; then
  say "node.xz: reusing the previous pack's (same $NODE_SRC)"
  cp "$DEST/node.xz" "$OUTNEW/node.xz"
else
  say "node.xz: stripping and compressing $NODE_SRC (xz -9, about a minute)"
  strip -o "$WORK/node" "$NODE_SRC"
  xz -9 -T"$JOBS" -c "$WORK/node" >"$OUTNEW/node.xz"
  rm -f "$WORK/node"
fi
echo "$NODE_SHA" >"$OUTNEW/node.source.sha256"

# ---- 6. the package root as one tarball, the stamp and the manifest -----------------------------
say "compressing the package root (pkg.tar.xz)"
tar -C "$STAGE" --owner=0 --group=0 -cf - . | xz -9 -T"$JOBS" >"$OUTNEW/pkg.tar.xz"
HASH_AFTER="$(sources_hash)"
if [ "$HASH_AFTER" != "$HASH_BEFORE" ]; then
  # The addon and the JS may hold half of an edit: keep the pack (it may still be what is
  # wanted), but with a stamp no tree matches, so node_tests.sh warns too.
  echo "[pack_node] WARNING: csrc/, lib/ or test/ changed while packing: run pack_node.sh again once edits settle" >&2
  HASH_AFTER="changed-while-packing-$HASH_BEFORE"
fi
echo "$HASH_AFTER" >"$OUTNEW/sources.sha256"

glibc_needs() {
  objdump -T "$1" 2>/dev/null | grep -o 'GLIBC_2[0-9.]*\|GLIBCXX_[0-9.]*' | sort -Vu |
    awk -F_ '{last[$1]=$0} END {printf "%s %s", last["GLIBC"], last["GLIBCXX"]}'
}
{
  echo "build-gpu-node/, packed by bench/gpu/pack_node.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git: $(git rev-parse HEAD 2>/dev/null || echo '?') with $(git status --porcelain 2>/dev/null | wc -l) changed file(s)"
  echo "sources hash (csrc/ lib/ test/ CMakeLists.txt): $HASH_AFTER"
  echo "node: $NODE_SRC $("$NODE_SRC" --version), needs $(glibc_needs "$NODE_SRC")"
  echo "CUDA addon: $ADDON (CMAKE_CUDA_ARCHITECTURES=$CACHED_ARCH, $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/CUDA \1/p' | head -n 1)), needs $(glibc_needs "$STAGE/build-cuda/Release/siglip_kernels.node")"
  echo "test files: ${TEST_FILES[*]}"
  echo "package root (pkg.tar.xz), $(du -sh "$STAGE" | cut -f1) unpacked:"
  (cd "$STAGE" && find . -path ./node_modules -prune -o -type f -printf '  %P %s\n' | LC_ALL=C sort)
  echo "  node_modules/: $(find "$STAGE/node_modules" -type f | wc -l) files, $(du -sh "$STAGE/node_modules" | cut -f1)"
} >"$OUTNEW/MANIFEST.txt"

# ---- 7. into place, and the size ----------------------------------------------------------------
rm -rf "$DEST"
mv "$OUTNEW" "$DEST"
ls -l "$DEST" | tail -n +2
TOTAL="$(du -sb "$DEST" | cut -f1)"
say "$DEST/: $TOTAL bytes ($(du -sh "$DEST" | cut -f1)); the limit here is $((MAX_BYTES / 1024 / 1024)) MiB"
((TOTAL < MAX_BYTES)) || die "$DEST/ is over $((MAX_BYTES / 1024 / 1024)) MiB"
say "done: carry [\"$DEST\"] and run bash test/gpu/node_tests.sh OUT_DIR there"
