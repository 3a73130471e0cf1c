// The prebuilt platform packages of siglip-kernels: one record per package in npm/<dir>/.
// Shared by the loader's tests, scripts/release/prebuild.js and scripts/release/pack.js (plain
// Node, no dependencies). lib/loader.ts keeps its own copy of the names (it must not read
// files outside dist/ at run time); test/install.test.ts checks that the two agree.
'use strict';

/**
 * dir: the folder under npm/ and the package's name after the scope.
 * cross: the GNU triplet of a cross-compiled platform (absent: built for this machine).
 * kind: 'cpu' (node-gyp's binding.gyp, every SIMD level dispatched at run time) or 'cuda'
 *       (CMakeLists.txt with SIGLIP_CUDA=on: the CUDA backend plus the same CPU backend).
 */
const PLATFORMS = [
  { dir: 'linux-x64-gnu', kind: 'cpu', os: 'linux', cpu: 'x64', libc: 'glibc' },
  { dir: 'linux-x64-gnu-cuda', kind: 'cuda', os: 'linux', cpu: 'x64', libc: 'glibc' },
  // Cross-compiled (Debian 11's aarch64-linux-gnu GCC 10), tested under qemu-aarch64.
  { dir: 'linux-arm64-gnu', kind: 'cpu', os: 'linux', cpu: 'arm64', libc: 'glibc', cross: 'aarch64-linux-gnu' },
];

const SCOPE = '@siglip-kernels';
const ADDON_FILE = 'siglip_kernels.node';

/** The glibc version the prebuilt binaries may require at most (Debian 11's). */
const GLIBC_FLOOR = '2.31';

function packageName(platform) {
  return `${SCOPE}/${platform.dir}`;
}

module.exports = { PLATFORMS, SCOPE, ADDON_FILE, GLIBC_FLOOR, packageName };
