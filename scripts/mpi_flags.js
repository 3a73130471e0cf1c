#!/usr/bin/env node
// MPI for the node-gyp build (binding.gyp runs this at configure time): asks the MPI C++
// compiler wrapper for its flags and prints one of them, so that the addon gets the MPI ring
// transport (csrc/ring/mpi/mpi_transport.cpp, SIGLIP_WITH_MPI) where MPI is installed, and builds
// without it everywhere else.
//
//   node scripts/mpi_flags.js found      yes when MPI was found, else no
//   node scripts/mpi_flags.js includes   the include folders (-I…), space separated
//   node scripts/mpi_flags.js cflags     other compile flags (-pthread, -D…)
//   node scripts/mpi_flags.js libs       the link flags (-L… -l… -Wl,…), plus an rpath per -L folder
//   node scripts/mpi_flags.js describe   one line: what was found, or why not (for people)
//
// Wrappers: Open MPI (`mpicxx --showme:compile` / `--showme:link`) and MPICH / Intel MPI
// (`mpicxx -compile_info` / `-link_info`, or `-show`). The wrapper is $MPICXX, else the first
// of mpicxx, mpic++, mpiCC on PATH. SIGLIP_MPI=off (or npm_config_siglip_mpi=off) skips MPI;
// SIGLIP_MPI=on makes a missing MPI an error (exit 1) instead of a build without it.
//
// Plain Node, no dependencies; never prints anything but the answer on stdout.
'use strict';

const { spawnSync } = require('node:child_process');

function mode() {
  const raw = String(process.env.SIGLIP_MPI ?? process.env.npm_config_siglip_mpi ?? 'auto').trim().toLowerCase();
  return raw === 'on' || raw === 'off' ? raw : 'auto';
}

function run(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 20000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error || result.status !== 0) return null;
  return result.stdout.trim();
}

// Splits a flag line (no shell quoting in practice; quotes are dropped).
function split(line) {
  return line.split(/\s+/).filter(Boolean).map((flag) => flag.replace(/^["']|["']$/g, ''));
}

// Flags of one wrapper: { compile: [...], link: [...] } or null.
function wrapperFlags(wrapper) {
  // Open MPI
  const compile = run(wrapper, ['--showme:compile']);
  const link = run(wrapper, ['--showme:link']);
  if (compile !== null && link !== null) return { compile: split(compile), link: split(link), flavour: 'Open MPI' };
  // MPICH, Intel MPI: the whole command line, compiler first.
  const compileInfo = run(wrapper, ['-compile_info']);
  const linkInfo = run(wrapper, ['-link_info']);
  if (compileInfo !== null && linkInfo !== null) {
    return { compile: split(compileInfo).slice(1), link: split(linkInfo).slice(1), flavour: 'MPICH' };
  }
  const show = run(wrapper, ['-show']);
  if (show !== null) {
    const flags = split(show).slice(1);
    return {
      compile: flags.filter((f) => f.startsWith('-I') || f.startsWith('-D') || f === '-pthread'),
      link: flags.filter((f) => /^-(L|l|Wl,|pthread$)/.test(f)),
      flavour: 'MPICH',
    };
  }
  return null;
}

function find() {
  if (mode() === 'off') return { found: false, why: 'SIGLIP_MPI=off' };
  const candidates = process.env.MPICXX ? [process.env.MPICXX] : ['mpicxx', 'mpic++', 'mpiCC'];
  for (const wrapper of candidates) {
    const flags = wrapperFlags(wrapper);
    if (flags === null) continue;
    const includes = flags.compile.filter((f) => f.startsWith('-I')).map((f) => f.slice(2));
    const cflags = flags.compile.filter((f) => !f.startsWith('-I') && (f.startsWith('-D') || f === '-pthread'));
    const libs = flags.link.filter((f) => /^-(L|l|Wl,|pthread$)/.test(f));
    // The MPI C++ bindings (-lmpi_cxx, -lmpicxx) are not used: the transport calls the C API.
    const needed = libs.filter((f) => f !== '-lmpi_cxx' && f !== '-lmpicxx');
    for (const f of libs) if (f.startsWith('-L')) needed.push(`-Wl,-rpath,${f.slice(2)}`);
    if (!needed.some((f) => f.startsWith('-l'))) continue;
    return { found: true, wrapper, flavour: flags.flavour, includes, cflags, libs: needed };
  }
  return { found: false, why: `no MPI compiler wrapper (${candidates.join(', ')}) answered` };
}

const what = process.argv[2] ?? 'describe';
const mpi = find();
if (!mpi.found && mode() === 'on') {
  console.error(`siglip-kernels: SIGLIP_MPI=on but ${mpi.why} (install e.g. openmpi-bin and libopenmpi-dev)`);
  process.exit(1);
}
switch (what) {
  case 'found':
    console.log(mpi.found ? 'yes' : 'no');
    break;
  case 'includes':
    console.log(mpi.found ? mpi.includes.join(' ') : '');
    break;
  case 'cflags':
    console.log(mpi.found ? mpi.cflags.join(' ') : '');
    break;
  case 'libs':
    console.log(mpi.found ? mpi.libs.join(' ') : '');
    break;
  case 'describe':
    console.log(
      mpi.found
        ? `MPI ring transport: ${mpi.flavour} via ${mpi.wrapper} (${mpi.libs.filter((f) => f.startsWith('-l')).join(' ')})`
        : `MPI ring transport skipped: ${mpi.why}`,
    );
    break;
  default:
    console.error(`usage: node scripts/mpi_flags.js found|includes|cflags|libs|describe (got '${what}')`);
    process.exit(2);
}
