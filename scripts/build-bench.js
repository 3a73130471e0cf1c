#!/usr/bin/env node
// Compiles the benchmark (bench/*.ts) into dist/bench/ as plain JavaScript, for
// `npx siglip-kernels bench` in an installed package (no tsx there). tsc compiles bench/ and
// the lib/ it imports into build-bench-js/; the bench files are copied to dist/bench/ with
// their imports of '../lib/…' pointed at the package's own dist/ ('../…'), so there is one
// copy of the library. Part of `prepare` (after tsc -p tsconfig.build.json).
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'build-bench-js');
const dest = path.join(root, 'dist', 'bench');

fs.rmSync(out, { recursive: true, force: true });
const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.bench.json')], { cwd: root, stdio: 'inherit' });
// tsc still emits when only types are wrong (exit 2): a type error in a benchmark file should
// not fail a clone's `npm install` (npm run typecheck reports it); anything else does.
if (result.status !== 0 && !(result.status === 2 && fs.existsSync(path.join(out, 'bench', 'run.js')))) {
  console.error('build-bench: tsc -p tsconfig.bench.json failed');
  process.exit(result.status || 1);
}
if (result.status !== 0) console.error('build-bench: type errors above (npm run typecheck); dist/bench/ compiled anyway');
fs.rmSync(dest, { recursive: true, force: true });
fs.mkdirSync(dest, { recursive: true });
let files = 0;
for (const name of fs.readdirSync(path.join(out, 'bench'))) {
  if (!name.endsWith('.js')) continue;
  const text = fs.readFileSync(path.join(out, 'bench', name), 'utf8');
  // require("../lib/x.js") and import("../lib/x.js") -> "../x.js" (dist/bench/ -> dist/).
  const fixed = text.replace(/(["'])\.\.\/lib\//g, '$1../');
  fs.writeFileSync(path.join(dest, name), fixed);
  files += 1;
}
fs.rmSync(out, { recursive: true, force: true });
console.log(`build-bench: ${files} files in dist/bench/`);
