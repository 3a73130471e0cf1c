// What `npm pack` ships and what npm reads at install time: the main package (no install
// script, gypfile false, exact optionalDependencies on the platform packages, no build or test
// files), the platform packages' manifests (os/cpu/libc, the binary only), the loader's list of
// platforms against the release scripts', and the glibc floor of any prebuilt binary present.
// Fast (npm pack --dry-run); the full consumer install is test/install.test.ts.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import test from 'ava';

import { PLATFORM_SCOPE, PREBUILT_PLATFORMS, platformPackages } from '../lib/loader';
import { floorViolations } from './helpers/elf';

const root = path.resolve(__dirname, '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const platforms = require('../scripts/release/platforms.js') as {
  PLATFORMS: Array<{ dir: string; kind: 'cpu' | 'cuda'; os: string; cpu: string; libc: string }>;
  SCOPE: string;
  ADDON_FILE: string;
  GLIBC_FLOOR: string;
};

interface Manifest {
  name: string;
  version: string;
  scripts?: Record<string, string>;
  gypfile?: boolean;
  optionalDependencies?: Record<string, string>;
  dependencies?: Record<string, string>;
  bin?: Record<string, string>;
  os?: string[];
  cpu?: string[];
  libc?: string[];
  files?: string[];
  main?: string;
}

const readManifest = (file: string): Manifest => JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
const main = readManifest(path.join(root, 'package.json'));

/** Paths a published tarball must never hold. */
const FORBIDDEN = /^(build[^/]*|prebuilds|release|test|bench|examples|node_modules|\.ci|docs|npm)\/|\.node$|\.log$|^tsconfig|(^|\/)\.git/;

test('the main package: no install script, gypfile false, exact optionalDependencies on every platform package, a bin', (t) => {
  for (const hook of ['preinstall', 'install', 'postinstall']) t.is(main.scripts?.[hook], undefined, `scripts.${hook} would run (or be blocked) on consumers' machines`);
  t.is(main.gypfile, false, 'without "gypfile": false npm adds `node-gyp rebuild` because binding.gyp ships');
  t.regex(main.scripts?.['prepare'] ?? '', /scripts\/install\.js/, 'a clone still builds from source in prepare');
  for (const p of platforms.PLATFORMS) t.is(main.optionalDependencies?.[`${platforms.SCOPE}/${p.dir}`], main.version, `${p.dir}: exact version`);
  t.is(Object.keys(main.optionalDependencies ?? {}).length, platforms.PLATFORMS.length);
  t.is(main.bin?.['siglip-kernels'], 'bin/siglip-kernels.js');
  t.true(fs.existsSync(path.join(root, 'bin', 'siglip-kernels.js')));
});

test('the platform packages: os, cpu, libc, the version of the main package, and the binary as their only file', (t) => {
  for (const p of platforms.PLATFORMS) {
    const m = readManifest(path.join(root, 'npm', p.dir, 'package.json'));
    t.is(m.name, `${platforms.SCOPE}/${p.dir}`);
    t.is(m.version, main.version, `${p.dir}: npm run release:pack sets it`);
    t.deepEqual(m.os, [p.os]);
    t.deepEqual(m.cpu, [p.cpu]);
    t.deepEqual(m.libc, [p.libc]);
    t.deepEqual(m.files, [platforms.ADDON_FILE]);
    t.is(m.main, platforms.ADDON_FILE);
    t.is(m.scripts, undefined);
    t.is(m.dependencies, undefined);
  }
  t.deepEqual(fs.readdirSync(path.join(root, 'npm')).sort(), platforms.PLATFORMS.map((p) => p.dir).sort(), 'every folder in npm/ is a listed platform');
});

test("the loader's platforms are the release scripts' platforms", (t) => {
  t.is(PLATFORM_SCOPE, platforms.SCOPE);
  const fromLoader = Object.entries(PREBUILT_PLATFORMS).flatMap(([key, v]) => [key, ...(v.cuda ? [`${key}-cuda`] : [])]);
  t.deepEqual(fromLoader.sort(), platforms.PLATFORMS.map((p) => p.dir).sort());
  t.deepEqual(platformPackages('linux-x64-gnu'), { cpu: '@siglip-kernels/linux-x64-gnu', cuda: '@siglip-kernels/linux-x64-gnu-cuda' });
  t.deepEqual(platformPackages('linux-arm64-gnu'), { cpu: '@siglip-kernels/linux-arm64-gnu', cuda: null });
  t.deepEqual(platformPackages('darwin-arm64'), { cpu: null, cuda: null });
  t.deepEqual(platformPackages('linux-x64-musl'), { cpu: null, cuda: null });
});

test('npm pack: the main tarball holds dist/, bin/, the sources for a build from source, and no build, test or binary files', (t) => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const [info] = JSON.parse(out) as Array<{ size: number; unpackedSize: number; entryCount: number; files: Array<{ path: string }> }>;
  const files = info!.files.map((f) => f.path);
  const forbidden = files.filter((f) => FORBIDDEN.test(f));
  t.deepEqual(forbidden, [], 'build directories, tests, binaries or repository-only files in the tarball');
  for (const needed of ['package.json', 'README.md', 'bin/siglip-kernels.js', 'binding.gyp', 'CMakeLists.txt', 'scripts/install.js', 'scripts/mpi_flags.js']) {
    t.true(files.includes(needed), `${needed} is packed`);
  }
  t.true(files.some((f) => f.startsWith('csrc/cpu/')), 'csrc/ is packed (npx siglip-kernels build)');
  if (fs.existsSync(path.join(root, 'dist', 'index.js'))) {
    t.true(files.includes('dist/index.js'));
    if (fs.existsSync(path.join(root, 'dist', 'bench', 'run.js'))) t.true(files.includes('dist/bench/run.js') && files.includes('dist/bench/case.js'));
  }
  t.log(`main tarball: ${info!.entryCount} files, ${(info!.size / 1e6).toFixed(2)} MB packed, ${(info!.unpackedSize / 1e6).toFixed(2)} MB unpacked`);
  t.true(info!.size < 2e6, 'the main tarball stays small (the binaries are in the platform packages)');
});

test('glibc floor: the floor check flags a binary built against this machine\'s glibc, and passes the prebuilt ones', (t) => {
  // The control: the clone's own node-gyp build links this machine's glibc (Debian 12:
  // pthread symbols at GLIBC_2.34) and libstdc++ dynamically, so the check must reject it.
  const local = path.join(root, 'build', 'Release', platforms.ADDON_FILE);
  if (fs.existsSync(local)) t.not(floorViolations(local, platforms.GLIBC_FLOOR).length, 0, 'the check rejects a host build');
  let checked = 0;
  for (const p of platforms.PLATFORMS) {
    const file = path.join(root, 'npm', p.dir, platforms.ADDON_FILE);
    if (!fs.existsSync(file)) continue;
    t.deepEqual(floorViolations(file, platforms.GLIBC_FLOOR), [], `npm/${p.dir}/${platforms.ADDON_FILE}`);
    checked += 1;
  }
  // The prebuilt binaries exist after npm run release:pack; npm run test:install requires them.
  t.log(checked === 0 ? 'no prebuilt binary in npm/ (npm run release:pack builds them; test:install checks them)' : `${checked} prebuilt binaries at or under GLIBC_${platforms.GLIBC_FLOOR}`);
});
