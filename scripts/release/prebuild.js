#!/usr/bin/env node
// Builds the prebuilt binaries of the platform packages (npm/<platform>/siglip_kernels.node)
// inside a Debian 11 root (glibc 2.31, GCC 10), so that they load on any Linux with glibc 2.31
// or newer whatever this machine's glibc is:
//
//   node scripts/release/prebuild.js [--only linux-x64-gnu,linux-x64-gnu-cuda] [--jobs N]
//                                    [--commit REF | --worktree] [--root DIR]
//
// The sources are git's HEAD (or --commit REF), not the working tree's (--worktree for those).
//
//   linux-x64-gnu       node-gyp (binding.gyp): every SIMD level, dispatched at run time;
//                       no MPI (Ring.mpi() then says to build from source with MPI present)
//   linux-arm64-gnu     node-gyp cross-compiling with Debian 11's aarch64-linux-gnu-g++ (GCC 10,
//                       glibc 2.31), NEON kernels; loaded by an arm64 Node under qemu-aarch64
//                       (scripts/release/arm64-node-root.sh); no MPI
//   linux-x64-gnu-cuda  CMake (CMakeLists.txt, SIGLIP_CUDA=on): the CUDA backend with the CUDA
//                       runtime linked statically (sm_80/86/89/90 + compute_90 PTX, or
//                       CUDAARCHS), the same CPU backend, no MPI; needs nvcc here
//
// Both link libstdc++ and libgcc statically (hidden: -Wl,--exclude-libs,ALL), are stripped,
// and are loaded once by Node inside the Debian 11 root before they are copied to npm/.
//
// The root: scripts/release/debian11-root.sh makes it (debootstrap; needs root), at
// $SIGLIP_DEBIAN11_ROOT or ~/.cache/siglip-kernels/debian11-amd64. This script copies into it
// what the build needs from this machine: the sources (into <root>/siglip/src), this Node and
// its headers, npm's node-gyp, and for CUDA the toolkit (hard links where possible). Build
// trees stay inside the root; build/ and build-cuda/ of the checkout are never touched.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { PLATFORMS, ADDON_FILE } = require('./platforms.js');

const repo = path.resolve(__dirname, '..', '..');
const TAG = 'prebuild:';
const STATIC_LINK = '-static-libstdc++ -static-libgcc -Wl,--exclude-libs,ALL';

function say(line) {
  console.log(`${TAG} ${line}`);
}

function fail(line) {
  console.error(`${TAG} ${line}`);
  process.exit(1);
}

function run(cmd, args, options = {}) {
  const result = spawnSync(cmd, args, { stdio: 'inherit', ...options });
  if (result.error) fail(`${cmd} could not start: ${result.error.message}`);
  if (result.status !== 0) fail(`${cmd} ${args.slice(0, 3).join(' ')} … exited with ${result.status ?? result.signal}`);
}

/** Copies a tree, as hard links where the file system allows (same device), else as files. */
function copyTree(from, to) {
  fs.rmSync(to, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(to), { recursive: true });
  const linked = spawnSync('cp', ['-al', from, to], { stdio: 'ignore' });
  if (linked.status !== 0) {
    fs.rmSync(to, { recursive: true, force: true });
    run('cp', ['-a', from, to]);
  }
}

function sameFile(a, b) {
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.size === sb.size && sa.mtimeMs === sb.mtimeMs;
  } catch {
    return false;
  }
}

/** npm's own node-gyp (npm bundles one): the folder of npm holding node_modules/node-gyp. */
function findNpmDir() {
  const candidates = [];
  if (process.env.npm_execpath) candidates.push(path.resolve(path.dirname(process.env.npm_execpath), '..'));
  candidates.push(path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm'));
  const which = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) {
    candidates.push(path.resolve(path.dirname(fs.realpathSync(which.stdout.trim())), '..'));
  }
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))) return fs.realpathSync(dir);
  }
  return fail(`npm's node-gyp was not found (looked in ${candidates.join(', ')})`);
}

/** Node's headers: <prefix>/include/node next to this Node, as node-gyp's --nodedir wants. */
function findNodeHeaders() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const candidates = [prefix, '/usr', '/usr/local', path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node)];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) return dir;
  }
  return fail(`Node's headers (include/node/node_api.h) were not found in ${candidates.join(', ')}`);
}

function findCuda() {
  const nvcc = process.env.CUDACXX || spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).stdout.trim() || '/usr/local/cuda/bin/nvcc';
  if (!fs.existsSync(nvcc)) return null;
  // nvcc on PATH may be a wrapper script; the toolkit is the folder above the real bin/nvcc.
  const candidates = [path.resolve(path.dirname(fs.realpathSync(nvcc)), '..'), '/usr/local/cuda'];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'bin', 'nvcc')) && fs.existsSync(path.join(dir, 'include', 'cuda_runtime.h'))) return fs.realpathSync(dir);
  }
  return null;
}

function main() {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      jobs: { type: 'string' },
      root: { type: 'string' },
      worktree: { type: 'boolean' },
      commit: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log('usage: node scripts/release/prebuild.js [--only linux-x64-gnu,linux-x64-gnu-cuda] [--jobs N] [--commit REF | --worktree] [--root DIR]');
    return;
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the prebuilt binaries are built on linux-x64 (this is ${process.platform}-${process.arch})`);
  const wanted = values.only ? values.only.split(',').map((s) => s.trim()) : PLATFORMS.map((p) => p.dir);
  const targets = wanted.map((dir) => PLATFORMS.find((p) => p.dir === dir) ?? fail(`unknown platform '${dir}' (known: ${PLATFORMS.map((p) => p.dir).join(', ')})`));
  const jobs = String(values.jobs ?? process.env.JOBS ?? Math.min(2, os.availableParallelism()));

  const root = path.resolve(values.root ?? process.env.SIGLIP_DEBIAN11_ROOT ?? path.join(os.homedir(), '.cache', 'siglip-kernels', 'debian11-amd64'));
  run('bash', [path.join(__dirname, 'debian11-root.sh'), root]);

  // This Node (its glibc floor is 2.28) and its headers, and npm's node-gyp, into the root.
  const nodeInRoot = path.join(root, 'usr', 'local', 'bin', 'node');
  if (!sameFile(process.execPath, nodeInRoot)) fs.copyFileSync(process.execPath, nodeInRoot), fs.utimesSync(nodeInRoot, fs.statSync(process.execPath).atime, fs.statSync(process.execPath).mtime);
  const headers = findNodeHeaders();
  copyTree(path.join(headers, 'include', 'node'), path.join(root, 'siglip', 'node', 'include', 'node'));
  const npmDir = findNpmDir();
  copyTree(npmDir, path.join(root, 'siglip', 'npm'));

  // The sources, fresh each time: the committed ones (git archive HEAD), so that a release is
  // what the commit holds; --worktree takes the working tree's files instead.
  const src = path.join(root, 'siglip', 'src');
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(path.join(src, 'scripts'), { recursive: true });
  const sources = ['binding.gyp', 'CMakeLists.txt', 'csrc', 'scripts/mpi_flags.js'];
  if (values.worktree) {
    for (const file of sources) fs.cpSync(path.join(repo, file), path.join(src, file), { recursive: true });
  } else {
    const archive = spawnSync('git', ['archive', '--format=tar', values.commit ?? 'HEAD', '--', ...sources], { cwd: repo, maxBuffer: 1 << 30 });
    if (archive.status !== 0) fail(`git archive failed: ${String(archive.stderr).trim()} (--worktree builds from the working tree)`);
    const untar = spawnSync('tar', ['-x', '-C', src], { input: archive.stdout });
    if (untar.status !== 0) fail(`tar failed: ${String(untar.stderr).trim()}`);
  }
  say(`sources: ${values.worktree ? 'the working tree' : `git ${values.commit ?? 'HEAD'} (${spawnSync('git', ['rev-parse', '--short', values.commit ?? 'HEAD'], { cwd: repo, encoding: 'utf8' }).stdout.trim()})`}`);
  fs.cpSync(path.dirname(require.resolve('node-addon-api/package.json', { paths: [repo] })), path.join(src, 'node_modules', 'node-addon-api'), { recursive: true });

  const env = ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/root', 'LANG=C.UTF-8', 'SIGLIP_MPI=off', `JOBS=${jobs}`];
  const inRoot = (script, extraEnv = []) => run('chroot', [root, '/usr/bin/env', '-i', ...env, ...extraEnv, '/bin/sh', '-ec', script]);
  const check = (file) =>
    inRoot(
      `node -e "const a = require('${file}'); const i = a.backendInfo(); ` +
        `console.log('${TAG} loads under glibc ' + process.report.getReport().header.glibcVersionRuntime + ': simd ' + i.simd)"`,
    );

  for (const target of targets) {
    const started = Date.now();
    let built;
    let strip = 'strip';
    let checkBuilt = check;
    if (target.cross) {
      const triplet = target.cross;
      if (!fs.existsSync(path.join(root, 'usr', 'bin', `${triplet}-g++`))) {
        say(`${target.dir}: installing Debian 11's ${triplet} cross compiler in the root`);
        fs.copyFileSync('/etc/resolv.conf', path.join(root, 'etc', 'resolv.conf'));
        inRoot(`apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++-${triplet} >/dev/null`);
      }
      const arch = target.cpu;
      say(`${target.dir}: node-gyp cross-compiling with ${triplet}-g++ (GCC 10, glibc 2.31) in the Debian 11 root, ${jobs} jobs, no MPI`);
      // -ffp-contract=off: AArch64 has FMA in its base instruction set, and GCC would fuse
      // a·b + c in the portable code too, which x86-64's baseline cannot; the reference-style
      // paths (the naive softmax) depend on products rounded as written.
      inRoot(`cd /siglip/src && rm -rf build && node /siglip/npm/node_modules/node-gyp/bin/node-gyp.js rebuild --arch=${arch} --nodedir=/siglip/node -j ${jobs} --loglevel=warn`, [
        `CC=${triplet}-gcc`,
        `CXX=${triplet}-g++`,
        `LINK=${triplet}-g++`,
        `AR=${triplet}-ar`,
        'CXXFLAGS=-ffp-contract=off',
        `LDFLAGS=${STATIC_LINK}`,
      ]);
      built = `/siglip/src/build/Release/${ADDON_FILE}`;
      strip = `${triplet}-strip`;
      const nodeRoot = path.resolve(process.env.SIGLIP_ARM64_NODE_ROOT ?? path.join(os.homedir(), '.cache', 'siglip-kernels', 'debian12-arm64-node'));
      run('bash', [path.join(__dirname, 'arm64-node-root.sh'), nodeRoot]);
      checkBuilt = (file) =>
        run('qemu-aarch64', [
          '-L',
          nodeRoot,
          path.join(nodeRoot, 'usr', 'bin', 'node'),
          '-e',
          `const a = require(${JSON.stringify(path.join(root, file))}); const i = a.backendInfo(); ` +
            `console.log('${TAG} loads in an arm64 Node ' + process.version + ' under qemu-aarch64: simd ' + i.simd + ' (' + i.simdReason + ')')`,
        ]);
    } else if (target.kind === 'cpu') {
      say(`${target.dir}: node-gyp in the Debian 11 root (GCC 10, glibc 2.31), ${jobs} jobs, no MPI`);
      inRoot(`cd /siglip/src && rm -rf build && node /siglip/npm/node_modules/node-gyp/bin/node-gyp.js rebuild --nodedir=/siglip/node -j ${jobs} --loglevel=warn`, [
        `LDFLAGS=${STATIC_LINK}`,
      ]);
      built = `/siglip/src/build/Release/${ADDON_FILE}`;
    } else {
      const cuda = findCuda();
      if (!cuda) fail(`${target.dir}: no CUDA toolkit here (nvcc not found); build the other platforms with --only`);
      say(`${target.dir}: CMake + nvcc (${cuda}) in the Debian 11 root, CUDA runtime static, ${jobs} jobs, no MPI`);
      const cudaInRoot = path.join(root, cuda);
      if (!fs.existsSync(path.join(cudaInRoot, 'bin', 'nvcc'))) copyTree(cuda, cudaInRoot);
      const archs = process.env.CUDAARCHS ? [`-DCMAKE_CUDA_ARCHITECTURES=${process.env.CUDAARCHS}`] : [];
      const configure = [
        'cmake -S /siglip/src -B /siglip/build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_JS_VERSION=8 -DCMAKE_JS_INC=/siglip/node/include/node',
        `-DSIGLIP_CUDA=on -DSIGLIP_MPI=off -DSIGLIP_BUILD_TOOLS=OFF -DCMAKE_CUDA_COMPILER=${cuda}/bin/nvcc`,
        `'-DCMAKE_MODULE_LINKER_FLAGS=${STATIC_LINK}'`,
        ...archs,
      ].join(' ');
      inRoot(`rm -rf /siglip/build-cuda && ${configure} >/siglip/cuda-configure.log && cmake --build /siglip/build-cuda --target siglip_kernels -j ${jobs}`);
      built = `/siglip/build-cuda/${ADDON_FILE}`;
    }
    inRoot(`${strip} --strip-unneeded ${built}`);
    checkBuilt(built);
    const dest = path.join(repo, 'npm', target.dir, ADDON_FILE);
    fs.copyFileSync(path.join(root, built), dest);
    const mb = (fs.statSync(dest).size / 1e6).toFixed(1);
    say(`${target.dir}: npm/${target.dir}/${ADDON_FILE} (${mb} MB) in ${Math.round((Date.now() - started) / 1000)} s`);
  }
}

main();
