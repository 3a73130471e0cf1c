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
    t.regex(error.message, /node-gyp-build: No native build was found/);
    t.regex(error.message, /npm rebuild siglip-kernels/);
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
