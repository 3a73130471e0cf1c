// The loader: when no usable binary exists, one actionable error lists every cause.
// Runs a copy of lib/ in a scratch package (no build/, a corrupt prebuild-like file) in a
// child process, so this process's loaded addon is not involved.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import test from 'ava';

const root = path.resolve(__dirname, '..');

function scratchPackage(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'siglip-loader-'));
  fs.cpSync(path.join(root, 'lib'), path.join(dir, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'siglip-kernels', version: '0.0.0' }));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return dir;
}

function loadError(dir: string): { code: string; message: string } {
  const script =
    "try { require('./lib/index.ts').backendInfo(); console.log(JSON.stringify({ code: 'none', message: '' })) } " +
    'catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }';
  const out = execFileSync(process.execPath, ['--import=tsx', '-e', script], { cwd: dir, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!);
}

test('a missing addon gives one error with every cause and the fix', (t) => {
  const dir = scratchPackage();
  try {
    const error = loadError(dir);
    t.is(error.code, 'ERR_SIGLIP_ADDON_LOAD');
    t.regex(error.message, /no local build in /);
    t.regex(error.message, /npx siglip-kernels build/);
    // The clone's node_modules has no platform package: the message names the one to install.
    t.regex(error.message, /@siglip-kernels\/linux-x64-gnu is not installed|no prebuilt package exists for/);
    t.regex(error.message, /Package root: /);

    // A file that is not a loadable binary: its dlopen failure is listed too.
    fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'build', 'Release', 'siglip_kernels.node'), 'not an ELF file');
    const corrupt = loadError(dir);
    t.is(corrupt.code, 'ERR_SIGLIP_ADDON_LOAD');
    t.regex(corrupt.message, /build\/Release\/siglip_kernels\.node: .+/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the package loads from the compiled dist/ as well as from lib/ (when dist/ was built)', (t) => {
  const dist = path.join(root, 'dist', 'index.js');
  if (!fs.existsSync(dist)) {
    t.pass('dist/ not built (npm run prepare builds it)');
    return;
  }
  const out = execFileSync(
    process.execPath,
    ['-e', `console.log(require(${JSON.stringify(dist)}).backendInfo().binaryPath)`],
    { encoding: 'utf8' },
  );
  t.regex(out, /siglip_kernels\.node/);
});

// ---- which binary, and why: the CUDA build (build-cuda/) against the CPU build (build/) -------

interface Report {
  code?: string;
  message?: string;
  binaryPath?: string;
  binaryReason?: string;
  cuda?: { available: boolean; reason: string };
  loss?: number;
}

/** backendInfo() (and a small CPU loss) in a child process running `dir`'s lib/. */
function report(dir: string, env: Record<string, string> = {}): Report {
  const script =
    "const s = require('./lib/index.ts'); try { const i = s.backendInfo(); " +
    'const x = s.matrix(new Float32Array([1, 0, 0, 1]), 2, 2); ' +
    'console.log(JSON.stringify({ binaryPath: i.binaryPath, binaryReason: i.binaryReason, cuda: i.cuda, loss: s.sigmoidLossSync(x, x) })) } ' +
    'catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }';
  const out = execFileSync(process.execPath, ['--import=tsx', '-e', script], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, SIGLIP_FORCE_CPU: '', ...env },
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Report;
}

const cpuBuild = path.join(root, 'build');
const cudaBuild = path.join(root, 'build-cuda', 'Release', 'siglip_kernels.node');
const hasCpuBuild = fs.existsSync(path.join(cpuBuild, 'Release', 'siglip_kernels.node'));

function withScratch(body: (dir: string) => void): void {
  const dir = scratchPackage();
  try {
    body(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function putCudaBuild(dir: string, contents: 'real' | 'corrupt'): void {
  fs.mkdirSync(path.join(dir, 'build-cuda', 'Release'), { recursive: true });
  const file = path.join(dir, 'build-cuda', 'Release', 'siglip_kernels.node');
  if (contents === 'real') fs.symlinkSync(cudaBuild, file);
  else fs.writeFileSync(file, 'not an ELF file');
}

test('without a CUDA build the CPU build is used, and the report says there is no CUDA build', (t) => {
  if (!hasCpuBuild) return t.pass('no CPU build in build/ to test with');
  withScratch((dir) => {
    fs.symlinkSync(cpuBuild, path.join(dir, 'build'), 'dir');
    const r = report(dir);
    t.regex(r.binaryPath ?? '', /build[\\/]Release[\\/]siglip_kernels\.node$/);
    t.regex(r.binaryReason ?? '', /^no CUDA build \(build-cuda\/Release\/siglip_kernels\.node is missing.*; using the CPU build: /);
    t.false(r.cuda?.available);
    t.regex(r.cuda?.reason ?? '', /^no CUDA build/);
    t.true(Number.isFinite(r.loss));
  });
});

test('a CUDA build that fails to load is reported, and the CPU build is used', (t) => {
  if (!hasCpuBuild) return t.pass('no CPU build in build/ to test with');
  withScratch((dir) => {
    fs.symlinkSync(cpuBuild, path.join(dir, 'build'), 'dir');
    putCudaBuild(dir, 'corrupt');
    const r = report(dir);
    t.regex(r.binaryReason ?? '', /^the CUDA build build-cuda\/Release\/siglip_kernels\.node failed to load: .+; using the CPU build/);
    t.regex(r.binaryPath ?? '', /build[\\/]Release/);
    t.false(r.cuda?.available);
  });
});

test('SIGLIP_FORCE_CPU=1 skips the CUDA build without loading it', (t) => {
  if (!hasCpuBuild) return t.pass('no CPU build in build/ to test with');
  withScratch((dir) => {
    fs.symlinkSync(cpuBuild, path.join(dir, 'build'), 'dir');
    putCudaBuild(dir, 'corrupt'); // would fail to load, if it were tried
    const r = report(dir, { SIGLIP_FORCE_CPU: '1' });
    t.regex(r.binaryReason ?? '', /^SIGLIP_FORCE_CPU=1 is set, so the CUDA build was not tried; using the CPU build/);
    t.regex(r.cuda?.reason ?? '', /SIGLIP_FORCE_CPU/);
  });
});

test('the real CUDA build: used with a GPU; without one the report says why and the CPU build is used', (t) => {
  if (!hasCpuBuild || !fs.existsSync(cudaBuild)) return t.pass('needs both build/ and build-cuda/ (npm install with nvcc)');
  withScratch((dir) => {
    fs.symlinkSync(cpuBuild, path.join(dir, 'build'), 'dir');
    putCudaBuild(dir, 'real');
    const r = report(dir);
    if (r.cuda?.available) {
      t.regex(r.binaryPath ?? '', /build-cuda[\\/]Release[\\/]siglip_kernels\.node$/);
      t.regex(r.binaryReason ?? '', /^the CUDA build .*GPUs? answered/);
    } else {
      t.regex(r.binaryReason ?? '', /^the CUDA build loaded but no GPU answered: .+; using the CPU build: /);
      t.regex(r.binaryPath ?? '', /build[\\/]Release[\\/]siglip_kernels\.node$/);
      t.regex(r.cuda?.reason ?? '', /no GPU answered: .+/);
    }
    t.true(Number.isFinite(r.loss));
  });
});

test('without a CPU build, a CUDA build that has no GPU still runs the CPU work (and says so)', (t) => {
  if (!fs.existsSync(cudaBuild)) return t.pass('needs build-cuda/ (npm install with nvcc)');
  withScratch((dir) => {
    putCudaBuild(dir, 'real');
    const r = report(dir);
    t.regex(r.binaryPath ?? '', /build-cuda[\\/]Release[\\/]siglip_kernels\.node$/);
    if (!r.cuda?.available) t.regex(r.binaryReason ?? '', /(the CPU build failed to load .*|there is no CPU build), so the CUDA build runs the CPU work/);
    t.true(Number.isFinite(r.loss));
  });
});
