#!/usr/bin/env node
// The source build of siglip-kernels in a clone (plain Node, no dependencies of its own). It
// runs from the root package's `prepare` script, which npm runs on `npm install` in a clone
// but never for a consumer that installs the package from a registry (they get the prebuilt
// platform packages; `npx siglip-kernels build [--cuda]` runs this file's CUDA part):
//
//   1. The CPU addon: node-gyp-build keeps a build/Release/siglip_kernels.node that loads, or
//      compiles one with node-gyp. Its failure fails the install. (--cuda-only skips this.)
//   2. The CUDA addon, where nvcc is found: cmake-js compiles CMakeLists.txt (CPU backend +
//      csrc/cuda + the addon) into build-cuda/Release/siglip_kernels.node. The node-gyp
//      binary in build/ stays; lib/loader.ts picks between the two at run time.
//
// Environment:
//   SIGLIP_CUDA=auto (default)  build CUDA where nvcc is found; a failure is reported in one
//                               line and the install continues with the CPU addon
//   SIGLIP_CUDA=on              a missing nvcc or a failed CUDA build fails the install
//   SIGLIP_CUDA=off             skip the CUDA build
//   (npm install --siglip-cuda=on sets npm_config_siglip_cuda, read as a fallback.)
//   CUDAARCHS                   CUDA architectures, passed through to CMake (e.g. "90" or
//                               "80-real;90-real"); default sm_80/86/89/90 + compute_90 PTX
//   CUDACXX                     the nvcc to use (as CMake reads it)
//   JOBS                        parallel compile jobs (default: the number of CPUs)
//   SIGLIP_CUDA_VERBOSE=1       show the CMake/nvcc output instead of only logging it
//
// The CUDA build's full output goes to build-cuda/cuda-build.log.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const CUDA_OUT = 'build-cuda';
const CUDA_ADDON = path.join(root, CUDA_OUT, 'Release', 'siglip_kernels.node');
const LOG = path.join(root, CUDA_OUT, 'cuda-build.log');
const LOG_RELATIVE = `${CUDA_OUT}/cuda-build.log`;
const TAG = 'siglip-kernels:';

function say(line) {
  console.log(`${TAG} ${line}`);
}

function warn(line) {
  console.error(`${TAG} ${line}`);
}

function cudaMode() {
  const raw = process.env.SIGLIP_CUDA ?? process.env.npm_config_siglip_cuda ?? 'auto';
  const mode = String(raw).trim().toLowerCase() || 'auto';
  if (mode === 'on' || mode === 'off' || mode === 'auto') return mode;
  warn(`SIGLIP_CUDA must be on, off or auto, but it is '${raw}'.`);
  process.exit(1);
}

function jobs() {
  const fromEnv = Number.parseInt(process.env.JOBS ?? '', 10);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

function isFile(file) {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

// An executable on PATH (with PATHEXT on Windows), or null.
function onPath(name) {
  const extensions = process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of extensions) {
      const file = path.join(dir, name + ext);
      if (isFile(file)) return file;
    }
  }
  return null;
}

// Where nvcc is, and whether CMake finds it by itself (PATH or CUDACXX) or must be told.
function findNvcc() {
  const exe = process.platform === 'win32' ? 'nvcc.exe' : 'nvcc';
  if (process.env.CUDACXX) {
    return isFile(process.env.CUDACXX) ? { file: process.env.CUDACXX, tellCMake: false } : null;
  }
  const found = onPath('nvcc');
  if (found) return { file: found, tellCMake: false };
  const homes = [process.env.CUDA_PATH, process.env.CUDA_HOME, process.platform === 'win32' ? null : '/usr/local/cuda'];
  for (const home of homes) {
    if (!home) continue;
    const file = path.join(home, 'bin', exe);
    if (isFile(file)) return { file, tellCMake: true };
  }
  return null;
}

function findCmakeJs() {
  try {
    return require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  } catch {
    return null;
  }
}

function formatSeconds(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

// The first line of the log that looks like the cause of a failure.
function firstError(logText) {
  const lines = logText.split(/\r?\n/);
  const patterns = [/CMake Error.*/, /\berror\b.*/i, /FAILED:.*/, /ERR!.*/];
  for (const pattern of patterns) {
    for (const [i, line] of lines.entries()) {
      const m = pattern.exec(line);
      if (!m) continue;
      let text = m[0].trim();
      // "CMake Error at CMakeLists.txt:128 (message):" says where; the next lines say what.
      if (text.endsWith(':')) text += ` ${lines.slice(i + 1, i + 4).map((l) => l.trim()).filter(Boolean).join(' ')}`;
      return text.slice(0, 300);
    }
  }
  return 'see the log';
}

// 1. The CPU addon (node-gyp-build: a prebuild, or node-gyp rebuild).
function buildCpuAddon() {
  const bin = require.resolve('node-gyp-build/bin.js', { paths: [root] });
  const result = spawnSync(process.execPath, [bin], { cwd: root, stdio: 'inherit', env: process.env });
  if (result.status !== 0) {
    warn(`building the CPU addon failed (node-gyp-build exited with ${result.status ?? result.signal}).`);
    process.exit(result.status || 1);
  }
}

// Runs cmake-js once; resolves to its exit code. Output goes to the log (and the terminal
// with SIGLIP_CUDA_VERBOSE=1).
function runCmakeJs(cmakeJs, args, log) {
  return new Promise((resolve) => {
    const verbose = /^(1|true|yes|on)$/i.test(process.env.SIGLIP_CUDA_VERBOSE ?? '');
    fs.writeSync(log, `$ cmake-js ${args.join(' ')}\n`);
    const child = spawn(process.execPath, [cmakeJs, ...args], { cwd: root, env: process.env });
    const copy = (stream, terminal) =>
      stream.on('data', (chunk) => {
        fs.writeSync(log, chunk);
        if (verbose) terminal.write(chunk);
      });
    copy(child.stdout, process.stdout);
    copy(child.stderr, process.stderr);
    child.on('error', (error) => {
      fs.writeSync(log, `\n${error.stack ?? error}\n`);
      resolve(1);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function buildCudaAddon(mode) {
  const skip = (why) => {
    if (mode === 'on') {
      warn(`SIGLIP_CUDA=on, but the CUDA addon cannot be built: ${why}.`);
      process.exit(1);
    }
    say(`CUDA build skipped: ${why}; the CPU addon is ready.`);
  };
  if (mode === 'off') {
    say('CUDA build skipped: SIGLIP_CUDA=off; the CPU addon is ready.');
    return;
  }
  const nvcc = findNvcc();
  if (!nvcc) {
    const where = process.env.CUDACXX ? `CUDACXX=${process.env.CUDACXX} is not a file` : 'nvcc is not on PATH, in $CUDA_PATH/bin, $CUDA_HOME/bin or /usr/local/cuda/bin';
    skip(`no CUDA compiler (${where})`);
    return;
  }
  if (!onPath('cmake')) {
    skip(`nvcc was found (${nvcc.file}) but cmake is not on PATH (CMake 3.18 or later builds the CUDA addon)`);
    return;
  }
  const cmakeJs = findCmakeJs();
  if (!cmakeJs) {
    skip(
      `nvcc was found (${nvcc.file}) but cmake-js is not installed (a devDependency of siglip-kernels: ` +
        '`npm install -D cmake-js`, then `npx siglip-kernels build --cuda`)',
    );
    return;
  }

  const parallel = jobs();
  // configure always runs (cheap with a cache), so changed settings apply to an existing
  // build-cuda/ too; cmake-js build alone configures only when there is no cache yet.
  const configure = ['configure', '--out', CUDA_OUT, '--CDSIGLIP_CUDA=on'];
  if (nvcc.tellCMake) configure.push(`--CDCMAKE_CUDA_COMPILER=${nvcc.file}`);
  if (process.env.CUDAARCHS) configure.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.CUDAARCHS}`);
  const build = ['build', '--out', CUDA_OUT, '--parallel', String(parallel)];
  const runBoth = async (log) => {
    const code = await runCmakeJs(cmakeJs, configure, log);
    return code !== 0 ? code : runCmakeJs(cmakeJs, build, log);
  };
  const archs = process.env.CUDAARCHS ? `CUDAARCHS=${process.env.CUDAARCHS}` : 'sm_80/86/89/90 + compute_90 PTX';
  say(
    `building the CUDA addon into ${CUDA_OUT}/ with cmake-js (nvcc ${nvcc.file}; ${archs}; ${parallel} jobs). ` +
      `This takes minutes; log: ${LOG_RELATIVE}`,
  );

  const hadCache = isFile(path.join(root, CUDA_OUT, 'CMakeCache.txt'));
  fs.mkdirSync(path.join(root, CUDA_OUT), { recursive: true });
  let log = fs.openSync(LOG, 'w');
  const started = Date.now();
  let code = await runBoth(log);
  if (code !== 0 && hadCache) {
    // A CMake cache from another checkout or toolkit can break configure: start clean, once.
    fs.closeSync(log);
    fs.rmSync(path.join(root, CUDA_OUT), { recursive: true, force: true });
    fs.mkdirSync(path.join(root, CUDA_OUT), { recursive: true });
    log = fs.openSync(LOG, 'w');
    fs.writeSync(log, 'The incremental build failed; retrying from a clean build-cuda/.\n');
    code = await runBoth(log);
  }
  fs.closeSync(log);
  const elapsed = formatSeconds(Date.now() - started);

  if (code === 0 && isFile(CUDA_ADDON)) {
    say(`CUDA addon built in ${elapsed}: ${CUDA_OUT}/Release/siglip_kernels.node (used when a GPU answers at run time).`);
    return;
  }
  // Never leave an older binary behind to be loaded in place of the one that failed.
  fs.rmSync(CUDA_ADDON, { force: true });
  const logText = isFile(LOG) ? fs.readFileSync(LOG, 'utf8') : '';
  if (mode === 'on') {
    warn(`the CUDA build failed after ${elapsed} (SIGLIP_CUDA=on). Last lines of ${LOG_RELATIVE}:`);
    console.error(logText.split(/\r?\n/).slice(-40).join('\n'));
    process.exit(1);
  }
  warn(
    `CUDA build failed after ${elapsed} (${firstError(logText)}); continuing with the CPU addon only. ` +
      `Log: ${LOG_RELATIVE}; SIGLIP_CUDA=on makes this fatal, SIGLIP_CUDA=off skips it.`,
  );
}

async function main() {
  const mode = cudaMode(); // checked first: a typo should not cost a CPU build
  if (!process.argv.includes('--cuda-only')) buildCpuAddon();
  await buildCudaAddon(mode);
}

main().catch((error) => {
  warn(`install failed: ${error.stack ?? error}`);
  process.exit(1);
});
