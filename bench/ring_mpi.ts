// The ring over MPI processes (`npm run bench -- ring --mpi`, or `npx tsx bench/ring_mpi.ts`):
// for each P, `mpirun -np P` starts this file as P ranks. Every rank builds the same seeded
// global batch (N × D unit rows), keeps its shard (N split as evenly as possible) and times
// Ring.mpi() forward+backward calls one-way and two-way (one untimed call each first, then
// --repeats), and prints its medians and stats as one JSON line. The parent prints a row per P:
// the slowest rank's median per direction (a ring call ends when its last rank does), the bytes
// each rank sent, and `exposed`, the share of the ranks' time spent waiting on transfers.
//
// Unlike bench/ring.ts (ranks as threads, messages copied in memory), messages go through MPI:
// shared memory between the processes of one machine, the network between machines (pass
// mpirun's own options, e.g. a host file, with --mpirun-args). On a machine with fewer cores
// than ranks the ranks time-share the cores, and the times say more about that than the ring.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { Ring, type RingDirection, type RingStats, matrix } from '../lib/index.js';
import { median, seededUniform } from './cases.js';
import { pad, shardRows, unitRows } from './ring_support.js';

const benchDir = path.dirname(path.resolve(process.argv[1] ?? 'bench/ring_mpi.ts'));
const repoRoot = path.dirname(benchDir);
const MiB = 1024 * 1024;
const DIRECTIONS: RingDirection[] = ['one-way', 'two-way'];

const USAGE = `usage: npm run bench -- ring --mpi [flags]   (or: npx tsx bench/ring_mpi.ts [flags])

  --n 2048              global batch size N (= M)
  --d 256               embedding width D
  --ranks 2,4           the numbers of ranks P (processes) to run
  --repeats 5           timed calls per direction (after one untimed call)
  --seed 1              input RNG seed
  --threads T           CPU threads per rank (default: cores / P, at least 1)
  --mpirun-args "..."   extra options for mpirun (e.g. "--hostfile hosts")
`;

interface ChildSpec {
  n: number;
  d: number;
  repeats: number;
  seed: number;
  threads: number;
}

interface RankLine {
  rank: number;
  size: number;
  medianMs: Record<RingDirection, number>;
  loss: Record<RingDirection, number>;
  stats: Record<RingDirection, RingStats>;
}

/** Rows [from, from + rows) of a seeded N × D batch of unit rows (the same numbers on every rank). */
function unitRowsFrom(seed: number, from: number, rows: number, d: number): Float32Array {
  const next = seededUniform(seed);
  for (let k = 0; k < from * d; k++) next();
  return unitRows(next, rows, d);
}

// ---- one rank (under mpirun) ---------------------------------------------------------------

async function runRank(spec: ChildSpec): Promise<RankLine> {
  const ring = await Ring.mpi({ threads: spec.threads });
  try {
    const { rank, size } = ring;
    const shards = shardRows(spec.n, size);
    const rows = shards[rank]!;
    const from = shards.slice(0, rank).reduce((a, b) => a + b, 0);
    const image = matrix(unitRowsFrom(spec.seed, from, rows, spec.d), rows, spec.d);
    const text = matrix(unitRowsFrom(spec.seed + 1, from, rows, spec.d), rows, spec.d);
    const line: RankLine = { rank, size, medianMs: {} as never, loss: {} as never, stats: {} as never };
    for (const direction of DIRECTIONS) {
      const times: number[] = [];
      for (let k = 0; k <= spec.repeats; k++) {
        const t0 = performance.now();
        const out = await ring.sigmoidLossWithGrad(image, text, { direction });
        if (k > 0) times.push(performance.now() - t0);
        line.loss[direction] = out.loss;
        line.stats[direction] = out.stats;
      }
      line.medianMs[direction] = median(times);
    }
    return line;
  } finally {
    ring.dispose();
  }
}

// ---- the parent ------------------------------------------------------------------------------

function onPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

function runRanks(mpirun: string, ranks: number, spec: ChildSpec, extra: string[]): Promise<RankLine[]> {
  const loader = pathToFileURL(createRequire(path.join(repoRoot, 'package.json')).resolve('tsx')).href;
  const args = ['-np', String(ranks), ...extra, process.execPath, '--import', loader, path.join(benchDir, 'ring_mpi.ts'), '--child', JSON.stringify(spec)];
  // Open MPI refuses root and more ranks than cores unless told; a benchmark may want both.
  const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };
  return new Promise((resolve, reject) => {
    const child = spawn(mpirun, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
      if (code !== 0 || lines.length !== ranks) reject(new Error(`mpirun -np ${ranks} failed (exit ${code}): ${stdout}`));
      else resolve(lines.map((l) => JSON.parse(l) as RankLine).sort((a, b) => a.rank - b.rank));
    });
  });
}

export async function runRingMpiBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string', default: '2048' },
      d: { type: 'string', default: '256' },
      ranks: { type: 'string', default: '2,4' },
      repeats: { type: 'string', default: '5' },
      seed: { type: 'string', default: '1' },
      threads: { type: 'string' },
      'mpirun-args': { type: 'string', default: '' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const [n, d, repeats, seed] = [values.n, values.d, values.repeats, values.seed].map(Number) as [number, number, number, number];
  for (const [name, v] of [['--n', n], ['--d', d], ['--repeats', repeats]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  }
  const rankList = values.ranks.split(',').map(Number);
  if (!rankList.every((p) => Number.isSafeInteger(p) && p >= 1 && p <= n)) throw new Error('--ranks must list integers from 1 to N');
  const mpirun = onPath('mpirun');
  if (mpirun === undefined) throw new Error('mpirun is not on PATH (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)');
  const extra = values['mpirun-args'].split(/\s+/).filter((a) => a !== '');
  const cores = os.availableParallelism();

  const header = ['P', 'rows/rank', 'one-way ms', 'two-way ms', 'one-way sent/rank MiB', 'two-way sent/rank MiB', 'one-way exposed', 'two-way exposed'];
  const table = [header];
  process.stderr.write(`ring over MPI: N = ${n}, D = ${d}, P = ${rankList.join(',')}, ${cores} cores here, ${repeats} repeats\n`);
  for (const p of rankList) {
    const threads = values.threads === undefined ? Math.max(1, Math.floor(cores / p)) : Number(values.threads);
    const lines = await runRanks(mpirun, p, { n, d, repeats, seed, threads }, extra);
    const losses = new Set(lines.flatMap((l) => DIRECTIONS.map((dir) => l.loss[dir])));
    const slowest = (dir: RingDirection) => Math.max(...lines.map((l) => l.medianMs[dir]));
    const sent = (dir: RingDirection) => Math.max(...lines.map((l) => l.stats[dir].bytesSent)) / MiB;
    const exposed = (dir: RingDirection) => {
      const compute = lines.reduce((s, l) => s + l.stats[dir].computeSeconds, 0);
      const wait = lines.reduce((s, l) => s + l.stats[dir].waitSeconds, 0);
      return `${((100 * wait) / Math.max(compute + wait, 1e-12)).toFixed(1)}%`;
    };
    table.push([
      String(p),
      String(Math.ceil(n / p)),
      slowest('one-way').toFixed(1),
      slowest('two-way').toFixed(1),
      sent('one-way').toFixed(2),
      sent('two-way').toFixed(2),
      exposed('one-way'),
      exposed('two-way'),
    ]);
    process.stderr.write(`  P=${p}: one-way ${slowest('one-way').toFixed(1)} ms, two-way ${slowest('two-way').toFixed(1)} ms; distinct losses over ranks and directions: ${losses.size}\n`);
  }
  process.stdout.write(`\nThe ring over MPI, N = ${n}, D = ${d}, forward + backward, the slowest rank's median (${os.cpus()[0]?.model ?? 'unknown CPU'}, ${cores} cores here)\n\n`);
  process.stdout.write(`${pad(table)}\n`);
}

// Run as a script (not when bench/ring.ts imports runRingMpiBench).
if (/(^|[\\/])ring_mpi\.ts$/.test(process.argv[1] ?? '')) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    runRank(JSON.parse(args[1] ?? '{}') as ChildSpec).then(
      (line) => process.stdout.write(`${JSON.stringify(line)}\n`),
      (error) => {
        process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
        process.exitCode = 1;
      },
    );
  } else {
    runRingMpiBench(args).catch((error) => {
      process.stderr.write(`${(error as Error)?.message ?? String(error)}\n`);
      process.exitCode = 1;
    });
  }
}
