#!/usr/bin/env node
// `npm run release:pack`: every tarball of a release, in release/ (git-ignored), ready for
// `npm publish <tarball>` (RELEASING.md):
//
//   1. sets each platform package's version (npm/*/package.json) and the main package's
//      optionalDependencies on them to the main package's version;
//   2. builds the platform binaries this machine can build (scripts/release/prebuild.js, in
//      the Debian 11 root; the CUDA one only where nvcc is found), unless --no-build;
//   3. compiles the TypeScript (dist/, dist/bench/);
//   4. packs the platform packages that have their binary, then the main package
//      (npm pack --ignore-scripts: no source build), and writes release/manifest.json.
//
//   node scripts/release/pack.js [--no-build] [--only linux-x64-gnu,…] [--worktree]
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { PLATFORMS, ADDON_FILE, packageName } = require('./platforms.js');

const repo = path.resolve(__dirname, '..', '..');
const releaseDir = path.join(repo, 'release');
const TAG = 'release:pack:';

function say(line) {
  console.log(`${TAG} ${line}`);
}

function run(cmd, args, options = {}) {
  const result = spawnSync(cmd, args, { cwd: repo, stdio: 'inherit', ...options });
  if (result.status !== 0) {
    console.error(`${TAG} ${cmd} ${args.join(' ')} failed (${result.status ?? result.signal})`);
    process.exit(1);
  }
  return result;
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** Sets one "key": "value" line in a JSON file without reformatting the rest of it. */
function setJsonString(file, pattern, value) {
  const text = fs.readFileSync(file, 'utf8');
  const next = text.replace(pattern, (_match, head) => `${head}"${value}"`);
  if (next !== text) fs.writeFileSync(file, next);
  return next !== text;
}

function hasNvcc() {
  if (process.env.CUDACXX && fs.existsSync(process.env.CUDACXX)) return true;
  if (spawnSync('sh', ['-c', 'command -v nvcc'], { stdio: 'ignore' }).status === 0) return true;
  return fs.existsSync('/usr/local/cuda/bin/nvcc');
}

function main() {
  const { values } = parseArgs({ options: { 'no-build': { type: 'boolean' }, only: { type: 'string' }, worktree: { type: 'boolean' } } });
  const main = readJson(path.join(repo, 'package.json'));
  const version = main.version;
  const wanted = values.only ? values.only.split(',').map((s) => s.trim()) : PLATFORMS.map((p) => p.dir);

  // 1. Versions.
  for (const platform of PLATFORMS) {
    const file = path.join(repo, 'npm', platform.dir, 'package.json');
    if (setJsonString(file, /("version":\s*)"[^"]*"/, version)) say(`npm/${platform.dir}/package.json: version ${version}`);
    const dep = packageName(platform).replace(/[/@.-]/g, (c) => `\\${c}`);
    if (setJsonString(path.join(repo, 'package.json'), new RegExp(`("${dep}":\\s*)"[^"]*"`), version)) {
      say(`package.json: optionalDependencies ${packageName(platform)} ${version}`);
    }
  }

  // 2. Binaries.
  if (!values['no-build']) {
    const buildable = wanted.filter((dir) => {
      const platform = PLATFORMS.find((p) => p.dir === dir);
      if (!platform) {
        console.error(`${TAG} unknown platform '${dir}'`);
        process.exit(2);
      }
      if (platform.kind === 'cuda' && !hasNvcc()) {
        say(`${dir}: not built here (no nvcc); its tarball is left out`);
        return false;
      }
      return true;
    });
    if (buildable.length > 0) {
      const args = [path.join(__dirname, 'prebuild.js'), '--only', buildable.join(',')];
      if (values.worktree) args.push('--worktree');
      run(process.execPath, args);
    }
  }

  // 3. The TypeScript.
  run(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [repo] }), '-p', 'tsconfig.build.json']);
  run(process.execPath, [path.join(repo, 'scripts', 'build-bench.js')]);

  // 4. Tarballs.
  fs.rmSync(releaseDir, { recursive: true, force: true });
  fs.mkdirSync(releaseDir, { recursive: true });
  const manifest = { version, platforms: [], main: null };
  const pack = (dir) => {
    const result = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', releaseDir], { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) {
      console.error(result.stderr);
      console.error(`${TAG} npm pack in ${dir} failed`);
      process.exit(1);
    }
    const [info] = JSON.parse(result.stdout);
    const file = path.join(releaseDir, info.filename);
    say(`${path.relative(repo, file)}: ${info.entryCount} files, ${(info.size / 1e6).toFixed(2)} MB packed, ${(info.unpackedSize / 1e6).toFixed(2)} MB unpacked`);
    return { name: info.name, version: info.version, file: path.relative(repo, file), size: info.size, unpackedSize: info.unpackedSize, files: info.files.map((f) => f.path) };
  };
  for (const platform of PLATFORMS) {
    const dir = path.join(repo, 'npm', platform.dir);
    if (!wanted.includes(platform.dir) || !fs.existsSync(path.join(dir, ADDON_FILE))) {
      say(`${packageName(platform)}: no npm/${platform.dir}/${ADDON_FILE}, not packed`);
      continue;
    }
    manifest.platforms.push({ ...pack(dir), dir: platform.dir, kind: platform.kind, os: platform.os, cpu: platform.cpu });
  }
  manifest.main = pack(repo);
  fs.writeFileSync(path.join(releaseDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  say(`release/manifest.json: ${manifest.platforms.length + 1} tarballs (publish the platform packages first: RELEASING.md)`);
}

main();
