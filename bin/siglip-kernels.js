#!/usr/bin/env node
// The `siglip-kernels` command of an installed package (npx siglip-kernels …):
//
//   build [--cuda]   compiles the addon from source into the package's own folder
//   bench [flags]    the micro-benchmark, compiled to dist/bench/ (plain JavaScript)
//   info             backendInfo() as JSON: which binary was loaded and why
//
// Plain Node, no dependencies of its own.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const TAG = 'siglip-kernels:';

const USAGE = `usage: npx siglip-kernels <command>

  build [--cuda]   compile the addon from source into ${path.relative(process.cwd(), root) || '.'}/build
                   (node-gyp: Python 3, make and a C++17 compiler; MPI is built in where
                   mpicxx is found). --cuda also builds the CUDA addon into build-cuda/
                   (CMake 3.18+, nvcc, and cmake-js: npm install -D cmake-js).
                   A local build is used before the prebuilt platform package.
  bench [flags]    the micro-benchmark: fused sigmoid and chunked softmax against the naive
                   softmax and sigmoid, forward and forward+backward; --device cuda on a GPU,
                   --quick for N up to 4096; bench --help lists every flag
  info             which binary is loaded and why, the SIMD level and CUDA (backendInfo())
`;

function fail(line, code = 1) {
  console.error(`${TAG} ${line}`);
  process.exit(code);
}

function isFile(file) {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** node-gyp: npm's setting, a node-gyp package beside us, npm's bundled copy, or one on PATH. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  for (const from of [root, process.cwd()]) {
    try {
      candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [from] }));
    } catch {
      // not installed there
    }
  }
  const npmDirs = [];
  if (process.env.npm_execpath) npmDirs.push(path.resolve(path.dirname(process.env.npm_execpath), '..'));
  npmDirs.push(path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm'));
  npmDirs.push(path.resolve(path.dirname(process.execPath), 'node_modules', 'npm'));
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isFile(path.join(dir, 'npm'))) npmDirs.push(path.resolve(path.dirname(fs.realpathSync(path.join(dir, 'npm'))), '..'));
  }
  for (const dir of npmDirs) candidates.push(path.join(dir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find(isFile) ?? null;
}

function build(args) {
  const extra = args.filter((a) => a !== '--cuda');
  if (extra.length > 0) fail(`build takes only --cuda, not ${extra.join(' ')}\n\n${USAGE}`, 2);
  const cuda = args.includes('--cuda');
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) fail('node-gyp was not found (npm ships one; or npm install -g node-gyp)');
  const jobs = process.env.JOBS ?? String(typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  console.log(`${TAG} building the CPU addon in ${root} with node-gyp (${nodeGyp}), ${jobs} jobs`);
  const cpu = spawnSync(process.execPath, [nodeGyp, 'rebuild', '-j', jobs], { cwd: root, stdio: 'inherit', env: process.env });
  if (cpu.status !== 0) {
    fail(
      'the CPU build failed (above). It needs Python 3, make and a C++17 compiler (Debian/Ubuntu: ' +
        'apt-get install python3 make g++); the prebuilt package stays in use until a local build loads.',
    );
  }
  if (cuda) {
    const result = spawnSync(process.execPath, [path.join(root, 'scripts', 'install.js'), '--cuda-only'], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, SIGLIP_CUDA: 'on' },
    });
    if (result.status !== 0) fail('the CUDA build failed (above); the CPU build in build/Release is ready');
  }
  info(['--reason-only']);
}

function info(args) {
  // The loader's errors say what to do; print the message, not a stack trace.
  const script =
    `let i; try { i = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))}).backendInfo(); } ` +
    `catch (e) { console.error(e.code === 'ERR_SIGLIP_ADDON_LOAD' ? e.message : e.stack); process.exit(1); } ` +
    (args.includes('--reason-only')
      ? `console.log('${TAG} now loads ' + i.binaryPath + '\\n  (' + i.binaryReason + ')');`
      : 'console.log(JSON.stringify(i, null, 2));');
  const result = spawnSync(process.execPath, ['-e', script], { stdio: 'inherit', env: process.env });
  process.exit(result.status ?? 1);
}

function bench(args) {
  const run = path.join(root, 'dist', 'bench', 'run.js');
  if (!isFile(run)) fail(`${run} is missing: this copy of siglip-kernels has no compiled benchmark (in a clone: npm run prepare, or npm run bench)`);
  const result = spawnSync(process.execPath, [run, ...args], { stdio: 'inherit', env: process.env });
  process.exit(result.status ?? 1);
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'build':
    build(rest);
    break;
  case 'bench':
    bench(rest);
    break;
  case 'info':
    info(rest);
    break;
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    process.stdout.write(USAGE);
    break;
  default:
    fail(`unknown command '${command}'\n\n${USAGE}`, 2);
}
