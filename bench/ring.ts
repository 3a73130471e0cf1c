// The ring benchmark (`npm run bench -- ring`, or `npx tsx bench/ring.ts`): P = 1 … 8 ranks in
// one process on the CPU (Ring.local), global batch N × D (default 2048 × 256), forward and
// backward. For each P it measures, each in a fresh child process (so that its peak RSS is its
// own):
//
//   ring        Ring.local({ ranks: P }).sigmoidLossWithGrad(P image shards, P text shards),
//               one-way (the default)
//   two-way     the same with { direction: 'two-way' } (each block goes both ways; see
//               csrc/ring/ring_sigmoid.cpp for what that trades)
//   all-gather  the formulation the ring replaces: every rank gets a copy of all N texts (the
//               all-gather), computes its own images against all of them with the fused
//               single-device call, and the text gradients are summed back to their owners
//               (the reduce-scatter). The single-device call normalises by its own n_r image
//               rows and takes its positives from label ids, so each rank passes
//               imageIds = the global indices of its rows and textIds = 0 … N−1, and its loss,
//               ∂s, ∂b and gradients are scaled by n_r / N: exactly the global loss (checked
//               against the ring's). Copies and sums are timed as part of it (in one process they
//               are memcpy and additions; over a network they would cost more).
//   single      the fused single-device call on the whole batch with all cores: compute alone,
//               no ranks at all (run once).
//
// Both formulations give each rank max(1, ⌊cores / P⌋) CPU threads, so they compete for the same
// cores. Columns: bytes sent per rank (the ring's stats), the ring's buffers per rank
// (stats.peakRingBytes: at most 5 text blocks of one shard one-way, 9 two-way, whatever P) against the all-gather's
// (N texts plus their N-row gradient, per rank), the growth of peak RSS during the calls divided
// by P (per rank), median wall times, the ring's Σ computeSeconds over ranks and max waitSeconds
// (time blocked on a transfer that computing did not hide), and `exposed` = Σ wait / Σ (compute +
// wait): the share of the ranks' time spent waiting, i.e. 1 − the share of communication hidden;
// then the same time, bytes and exposed share for the two-way ring.
// On a machine with fewer cores than ranks, ranks time-share the cores, so waits also include
// neighbours that were descheduled.
//
// Prints a table; writes bench/results/ring-<date>.json (--out FILE, --no-json). --help for flags.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { type LocalRing, type Matrix, Ring, type RingDirection, type RingStats, matrix, sigmoidLossWithGrad } from '../lib/index.js';
import { runRingMpiBench } from './ring_mpi.js';
import { median, seededUniform } from './cases.js';
import { pad, shardRows, unitRows } from './ring_support.js';

const benchDir = path.dirname(path.resolve(process.argv[1] ?? 'bench/ring.ts'));
const repoRoot = path.dirname(benchDir);
const MiB = 1024 * 1024;

const USAGE = `usage: npm run bench -- ring [flags]   (or: npx tsx bench/ring.ts [flags])

  --n 2048         global batch size N (= M)
  --d 256          embedding width D
  --ranks 1,2,…,8  the numbers of ranks P to run
  --repeats 3      timed runs per case (after one untimed run)
  --seed 1         input RNG seed
  --out FILE       JSON results (default bench/results/ring-<date>.json); --no-json for none
  --mpi            ranks as MPI processes (mpirun) instead of threads: see bench/ring_mpi.ts
`;

type Method = 'ring' | 'allgather' | 'single';

interface ChildSpec {
  method: Method;
  ranks: number;
  n: number;
  d: number;
  repeats: number;
  seed: number;
  threads: number;
  /** ring: the direction option. */
  direction?: RingDirection;
}

interface ChildResult {
  medianMs: number;
  timesMs: number[];
  loss: number;
  /** Peak RSS growth during the calls, bytes (whole process). */
  rssGrowthBytes: number;
  /** ring: every rank's stats of the last run. */
  stats?: RingStats[];
  /** all-gather: the parts of the last run, ms. */
  gatherMs?: number;
  computeMs?: number;
  reduceMs?: number;
}

// ---- the child: one method at one P -------------------------------------------------------

async function runChild(spec: ChildSpec): Promise<ChildResult> {
  const { n, d, ranks } = spec;
  const next = seededUniform(spec.seed);
  const image = unitRows(next, n, d);
  const text = unitRows(next, n, d);
  const rows = shardRows(n, ranks);
  const offsets = rows.map((_, r) => rows.slice(0, r).reduce((a, b) => a + b, 0));
  const images = rows.map((m, r) => matrix(image.subarray(offsets[r]! * d, (offsets[r]! + m) * d), m, d));
  const texts = rows.map((m, r) => matrix(text.subarray(offsets[r]! * d, (offsets[r]! + m) * d), m, d));

  let run: () => Promise<{ loss: number }>;
  let last: Partial<ChildResult> = {};
  let ring: LocalRing | undefined;
  if (spec.method === 'ring') {
    ring = await Ring.local({ ranks, threads: spec.threads });
    run = async () => {
      const out = await ring!.sigmoidLossWithGrad(images, texts, { direction: spec.direction ?? 'one-way' });
      last = { stats: out.stats };
      return out;
    };
  } else if (spec.method === 'single') {
    run = () => sigmoidLossWithGrad(matrix(image, n, d), matrix(text, n, d), { threads: spec.threads });
  } else {
    const textIds = Int32Array.from({ length: n }, (_, j) => j);
    const imageIds = rows.map((m, r) => Int32Array.from({ length: m }, (_, i) => offsets[r]! + i));
    run = async () => {
      // The all-gather: every rank receives a copy of every text shard.
      const t0 = performance.now();
      const gathered: Matrix[] = rows.map(() => {
        const all = new Float32Array(n * d);
        texts.forEach((t, q) => all.set(t.data, offsets[q]! * d));
        return matrix(all, n, d);
      });
      const t1 = performance.now();
      // Each rank: its images against all texts (positives by global index).
      const parts = await Promise.all(
        rows.map((_, r) => sigmoidLossWithGrad(images[r]!, gathered[r]!, { imageIds: imageIds[r]!, textIds, threads: spec.threads })),
      );
      const t2 = performance.now();
      // The reduce-scatter: rank r's text gradient is the sum of every rank's part for its rows;
      // each part is scaled by n_q / N (the single-device call normalised by n_q).
      let loss = 0;
      let logitScale = 0;
      let logitBias = 0;
      const gradImage = parts.map((p, r) => p.grad.image.map((v) => (v * rows[r]!) / n));
      const gradText = rows.map((m) => new Float32Array(m * d));
      parts.forEach((p, q) => {
        const w = rows[q]! / n;
        loss += w * p.loss;
        logitScale += w * p.grad.logitScale;
        logitBias += w * p.grad.logitBias;
        rows.forEach((m, r) => {
          const from = p.grad.text.subarray(offsets[r]! * d, (offsets[r]! + m) * d);
          const to = gradText[r]!;
          for (let k = 0; k < to.length; k++) to[k]! += w * from[k]!;
        });
      });
      const t3 = performance.now();
      void gradImage;
      void logitScale;
      void logitBias;
      last = { gatherMs: t1 - t0, computeMs: t2 - t1, reduceMs: t3 - t2 };
      return { loss };
    };
  }

  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.resourceUsage().maxRSS * 1024;
  let loss = Number.NaN;
  const times: number[] = [];
  for (let k = 0; k <= spec.repeats; k++) {
    const t0 = performance.now();
    loss = (await run()).loss;
    if (k > 0) times.push(performance.now() - t0);
  }
  const after = process.resourceUsage().maxRSS * 1024;
  ring?.dispose();
  return { medianMs: median(times), timesMs: times, loss, rssGrowthBytes: Math.max(0, after - before), ...last };
}

// ---- the parent --------------------------------------------------------------------------

function runInChild(spec: ChildSpec): Promise<ChildResult> {
  const require = createRequire(path.join(repoRoot, 'package.json'));
  const loader = pathToFileURL(require.resolve('tsx')).href;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', loader, path.join(benchDir, 'ring.ts'), '--child', JSON.stringify(spec)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
      // The all-gather child runs P rank calls at once on libuv's pool: give it P threads.
      env: { ...process.env, UV_THREADPOOL_SIZE: String(Math.max(4, spec.ranks)) },
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`${spec.method} P=${spec.ranks} failed (exit ${code}): ${stdout}`));
      else resolve(JSON.parse(line) as ChildResult);
    });
  });
}

// What one ring run's per-rank stats add up to.
interface RingSummary {
  bytesSentPerRank: number;
  ringBufferBytesPerRank: number;
  sumComputeSeconds: number;
  maxWaitSeconds: number;
  exposedWaitShare: number;
}

function summarise(stats: RingStats[]): RingSummary {
  const compute = stats.reduce((s, x) => s + x.computeSeconds, 0);
  const wait = stats.reduce((s, x) => s + x.waitSeconds, 0);
  return {
    bytesSentPerRank: Math.max(...stats.map((s) => s.bytesSent)),
    ringBufferBytesPerRank: Math.max(...stats.map((s) => s.peakRingBytes)),
    sumComputeSeconds: compute,
    maxWaitSeconds: Math.max(...stats.map((s) => s.waitSeconds)),
    exposedWaitShare: compute + wait > 0 ? wait / (compute + wait) : 0,
  };
}

interface Row extends RingSummary {
  ranks: number;
  threadsPerRank: number;
  shardRows: number;
  ring: ChildResult;
  twoWay: ChildResult;
  twoWaySummary: RingSummary;
  allgather: ChildResult;
  allgatherBufferBytesPerRank: number;
  lossRelativeDifference: number;
}

const mib = (bytes: number) => (bytes / MiB).toFixed(2);
const ms = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(1));

export async function runRingBench(argv: string[]): Promise<void> {
  // --mpi: ranks as MPI processes instead (bench/ring_mpi.ts).
  if (argv.includes('--mpi')) return runRingMpiBench(argv.filter((a) => a !== '--mpi'));
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string', default: '2048' },
      d: { type: 'string', default: '256' },
      ranks: { type: 'string', default: '1,2,3,4,5,6,7,8' },
      repeats: { type: 'string', default: '3' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      'no-json': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const n = Number(values.n);
  const d = Number(values.d);
  const repeats = Number(values.repeats);
  const seed = Number(values.seed);
  const rankList = values.ranks.split(',').map(Number);
  for (const [name, v] of [['--n', n], ['--d', d], ['--repeats', repeats]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  }
  if (!rankList.every((p) => Number.isSafeInteger(p) && p >= 1 && p <= n)) throw new Error('--ranks must list integers from 1 to N');
  const cores = os.availableParallelism();

  process.stderr.write(`ring bench: N = ${n}, D = ${d}, P = ${rankList.join(',')}, ${cores} cores, ${repeats} repeats\n`);
  const single = await runInChild({ method: 'single', ranks: 1, n, d, repeats, seed, threads: cores });
  const rows: Row[] = [];
  for (const p of rankList) {
    const threads = Math.max(1, Math.floor(cores / p));
    const spec = { ranks: p, n, d, repeats, seed, threads };
    const ring = await runInChild({ ...spec, method: 'ring' });
    const twoWay = await runInChild({ ...spec, method: 'ring', direction: 'two-way' });
    const allgather = await runInChild({ ...spec, method: 'allgather' });
    rows.push({
      ranks: p,
      threadsPerRank: threads,
      shardRows: Math.max(...shardRows(n, p)),
      ring,
      twoWay,
      twoWaySummary: summarise(twoWay.stats!),
      allgather,
      ...summarise(ring.stats!),
      // Per rank: all N texts (the gathered copy) and the N-row text gradient of its call.
      allgatherBufferBytesPerRank: p === 1 ? 0 : 2 * n * d * 4,
      lossRelativeDifference: Math.max(Math.abs(allgather.loss - ring.loss), Math.abs(twoWay.loss - ring.loss)) / Math.abs(single.loss),
    });
    process.stderr.write(
      `  P=${p}: ring ${ms(ring.medianMs)} ms, two-way ${ms(twoWay.medianMs)} ms, all-gather ${ms(allgather.medianMs)} ms\n`,
    );
  }

  const header = [
    'P',
    'rows/rank',
    'sent/rank MiB',
    'ring buf/rank MiB',
    'all-gather buf/rank MiB',
    'RSS+/rank ring MiB',
    'RSS+/rank all-gather MiB',
    'ring ms',
    'all-gather ms',
    'Σ compute ms',
    'max wait ms',
    'exposed',
    'two-way ms',
    'two-way sent/rank MiB',
    'two-way buf/rank MiB',
    'two-way exposed',
  ];
  const table = [
    header,
    ...rows.map((r) => [
      String(r.ranks),
      String(r.shardRows),
      mib(r.bytesSentPerRank),
      mib(r.ringBufferBytesPerRank),
      mib(r.allgatherBufferBytesPerRank),
      mib(r.ring.rssGrowthBytes / r.ranks),
      mib(r.allgather.rssGrowthBytes / r.ranks),
      ms(r.ring.medianMs),
      ms(r.allgather.medianMs),
      ms(1000 * r.sumComputeSeconds),
      ms(1000 * r.maxWaitSeconds),
      `${(100 * r.exposedWaitShare).toFixed(1)}%`,
      ms(r.twoWay.medianMs),
      mib(r.twoWaySummary.bytesSentPerRank),
      mib(r.twoWaySummary.ringBufferBytesPerRank),
      `${(100 * r.twoWaySummary.exposedWaitShare).toFixed(1)}%`,
    ]),
  ];
  process.stdout.write(`\nThe ring vs an all-gather, N = ${n}, D = ${d}, forward + backward, ${cores} cores (single device, all cores: ${ms(single.medianMs)} ms)\n\n`);
  process.stdout.write(`${pad(table)}\n`);
  const worst = Math.max(...rows.map((r) => r.lossRelativeDifference));
  process.stdout.write(`\nall-gather and two-way loss vs one-way ring loss: largest relative difference ${worst.toExponential(1)}\n`);

  if (!values['no-json']) {
    const date = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
    const out = path.resolve(values.out ?? path.join(benchDir, 'results', `ring-${date}.json`));
    mkdirSync(path.dirname(out), { recursive: true });
    const report = {
      benchmark: 'ring',
      date: new Date().toISOString(),
      machine: { cpuModel: os.cpus()[0]?.model ?? 'unknown', cores, node: process.version, platform: process.platform, arch: process.arch },
      n,
      d,
      repeats,
      seed,
      single,
      rows,
    };
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`results: ${path.relative(process.cwd(), out)}\n`);
  }
}

// Run as a script (not when bench/run.ts imports runRingBench).
if (/(^|[\\/])ring\.ts$/.test(process.argv[1] ?? '')) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    runChild(JSON.parse(args[1] ?? '{}') as ChildSpec).then(
      (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
      (error) => {
        process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
        process.exitCode = 1;
      },
    );
  } else {
    runRingBench(args[0] === 'ring' ? args.slice(1) : args).catch((error) => {
      process.stderr.write(`${(error as Error)?.message ?? String(error)}\n`);
      process.exitCode = 1;
    });
  }
}
