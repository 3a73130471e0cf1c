#!/usr/bin/env node
// The include graph of docs/ARCHITECTURE.md ("Layers and data flow"), checked: every
// `#include "…"` of csrc/ and every import of lib/ must follow an edge the diagram allows.
//
//   node scripts/check_layers.js [root]      exit 1 and one line per forbidden edge
//   node scripts/check_layers.js --edges     the folder-to-folder edges that exist, counted
//
// Run by .ci/run and by `npm test` (test/layers.test.ts). No dependencies.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

// csrc/<folder> → the csrc folders it may include (its own always). Nothing below includes
// upward: core is the contract, the backends (cpu, cuda) and the ring sit on it, the addon
// and the C++ checks (test/native) sit on all of them.
const ALLOWED = {
  platform: [], // the dynamic-library helper (dlopen, library search): below all, no siglip header
  core: [],
  cpu: ['core'],
  cuda: ['core', 'platform'],
  ring: ['core', 'platform'],
  // A GPU rank (csrc/ring/gpu): the ring over the CUDA backend; a layer above both.
  'ring/gpu': ['core', 'cuda', 'ring', 'platform'],
  addon: ['core', 'cpu', 'cuda', 'ring', 'ring/gpu', 'platform'],
  // Outside csrc/: the C++ checks (test/native) and the C++ bench (bench/native).
  'test/native': ['core', 'cpu', 'cuda', 'ring', 'ring/gpu', 'platform'],
  'bench/native': ['core', 'cpu'],
};

// Edges that break the rule, each allowed here by name with a reason next to it. None today:
// issue 14's block contract (csrc/core/pair_block.h, block_backend.h) removed the last ones.
const KNOWN_WRONG = new Set([]);

// System headers only one layer may include: Node's (the addon is the only N-API code) and
// MPI's (the MPI transport, and the addon file that binds MPI rings).
const SYSTEM_ONLY = [
  { pattern: /^(napi|node_api|node|uv)\.h$/, may: (file) => file.startsWith('csrc/addon/'), why: 'only csrc/addon is N-API code' },
  {
    pattern: /^mpi\.h$/,
    may: (file) => file === 'csrc/ring/mpi/mpi_transport.cpp' || file === 'csrc/addon/ring_mpi.cpp',
    why: 'MPI is bound in csrc/ring/mpi/mpi_transport.cpp and csrc/addon/ring_mpi.cpp only',
  },
];

// lib/: modules that are the package's entry points (what package.json exports).
const ENTRY_POINTS = new Set(['lib/index.ts', 'lib/tfjs.ts']);
// Names only tests may reach (the test seam of lib/ring/local.ts): never from an entry point.
const TEST_ONLY_NAMES = ['injectRingFaultForTests', 'testFault'];

function walk(dir, root, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, root, out);
    else out.push(path.relative(root, full).split(path.sep).join('/'));
  }
  return out;
}

// A C++ file's layer: the csrc/ folder it is in (or its subfolder where that is a layer of
// its own, such as ring/gpu), or the folder of the checks or the bench.
function layerOf(file) {
  if (!file.startsWith('csrc/')) return file.split('/').slice(0, 2).join('/');
  const parts = file.split('/');
  const sub = `${parts[1]}/${parts[2]}`;
  return parts.length > 3 && sub in ALLOWED ? sub : parts[1];
}
const layerName = (layer) => (layer.includes('/') ? layer : `csrc/${layer}`);

function checkCsrc(root, problems, edges) {
  const files = ['csrc', 'test/native', 'bench/native'].flatMap((dir) => walk(path.join(root, dir), root));
  for (const file of files.filter((f) => /\.(h|hpp|cpp|cu|cuh)$/.test(f))) {
    const layer = layerOf(file);
    const lines = fs.readFileSync(path.join(root, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      const where = `${file}:${i + 1}`;
      const system = /^\s*#\s*include\s*<([^>]+)>/.exec(line);
      if (system) {
        for (const rule of SYSTEM_ONLY) {
          if (rule.pattern.test(system[1]) && !rule.may(file)) problems.push(`${where}: includes <${system[1]}> (${rule.why})`);
        }
        return;
      }
      const local = /^\s*#\s*include\s*"([^"]+)"/.exec(line);
      if (!local) return;
      const candidates = [path.join(path.dirname(file), local[1]), path.join('csrc', local[1])].map((p) => path.normalize(p).split(path.sep).join('/'));
      const target = candidates.find((p) => fs.existsSync(path.join(root, p)));
      if (target === undefined || !target.startsWith('csrc/')) return; // generated or third-party
      const to = layerOf(target);
      if (to === layer) return;
      edges.set(`${layer} -> ${to}`, (edges.get(`${layer} -> ${to}`) ?? 0) + 1);
      if (!(layer in ALLOWED)) {
        problems.push(`${where}: ${layerName(layer)} is no layer of docs/ARCHITECTURE.md (add it to ALLOWED)`);
      } else if (!ALLOWED[layer].includes(to) && !KNOWN_WRONG.has(`${file} -> ${target}`)) {
        problems.push(`${where}: ${layerName(layer)} includes ${target} (${layerName(layer)} may include ${ALLOWED[layer].map(layerName).join(', ') || 'nothing outside itself'})`);
      }
    });
  }
}

function checkLib(root, problems) {
  for (const file of walk(path.join(root, 'lib'), root).filter((f) => f.endsWith('.ts'))) {
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    const imports = [...text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm)];
    for (const m of imports) {
      const spec = m[3] ?? m[4];
      const typeOnly = m[2] !== undefined;
      const line = text.slice(0, m.index).split('\n').length;
      const where = `${file}:${line}`;
      if (!spec.startsWith('.')) continue; // node: and packages
      const target = path.normalize(path.join(path.dirname(file), spec)).split(path.sep).join('/');
      if (!target.startsWith('lib/')) problems.push(`${where}: lib/ imports ${target} (lib/ is the package: it imports nothing of test/, bench/ or scripts/)`);
      // lib/ring/base.ts is the base the ring classes extend: importing them at run time would be a cycle.
      if (file === 'lib/ring/base.ts' && /^lib\/ring\/(local|rank)$/.test(target) && !typeOnly) {
        problems.push(`${where}: lib/ring/base.ts imports ${target} at run time (type imports only: they extend it)`);
      }
    }
    if (ENTRY_POINTS.has(file)) {
      for (const name of TEST_ONLY_NAMES) {
        if (new RegExp(`\\b${name}\\b`).test(text)) problems.push(`${file}: an entry point mentions ${name} (a test seam, for tests only)`);
      }
    }
  }
}

function main() {
  const args = process.argv.slice(2);
  const listEdges = args.includes('--edges');
  const root = path.resolve(args.find((a) => !a.startsWith('--')) ?? path.join(__dirname, '..'));
  const problems = [];
  const edges = new Map();
  checkCsrc(root, problems, edges);
  checkLib(root, problems);
  if (listEdges) for (const [edge, count] of [...edges].sort()) console.log(`${edge}  ${count}`);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`check_layers: ${problems.length} forbidden edge(s); see docs/ARCHITECTURE.md, "Layers and data flow"`);
    process.exit(1);
  }
  if (!listEdges) console.log(`check_layers: csrc/ and lib/ follow docs/ARCHITECTURE.md (${KNOWN_WRONG.size} known wrong edges allowed by name)`);
}

main();
