// `npm run example`: two-tower models trained with the sigmoid (SigLIP) and the softmax (CLIP)
// loss on a synthetic image–text task, testing the SigLIP paper's two headline claims in
// miniature: (1) sigmoid beats softmax at small batch sizes, and the gap closes as the batch
// grows; (2) sigmoid is more robust to noisy training data. README.md in this folder explains
// the task and what the default run found. `--help` lists the flags; `--quick` is a ~1 minute
// smoke run. Progress goes to stderr; tables to stdout; JSON and charts to examples/results/.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { backendInfo } from '../lib/index.js';
import { plotBatchSweep, plotNoise } from './charts.js';
import { checkGradients } from './gradcheck.js';
import { Rng } from './rng.js';
import { type ConfigSummary, batchTable, noiseTable, type RunRecord, summarise } from './summary.js';
import { CORRUPTIONS, type CorruptionKind, DEFAULT_TASK, type Pairs, Task } from './task.js';
import { type EvalSet, type LossKind, type TrainConfig, trainRun } from './train.js';

const USAGE = `usage: npm run example -- [flags]

  --quick              smoke run (~1 min): 1 seed, batches 16,128,512, 65536 examples, p ∈ {0, 0.4}
  --batches LIST       batch sizes of experiment 1 (default 16,32,64,128,256,512,1024)
  --seeds S            seeds per configuration in experiment 1 (default 3)
  --noise-seeds S      seeds per configuration in experiment 2 (default 3)
  --noise-batch B      batch size of experiment 2 (default 256)
  --rates LIST         corruption probabilities of experiment 2 (default 0,0.1,0.2,0.4)
  --examples N         training pairs seen by every run (default 131072 = 2^17)
  --only WHICH         'sweep' or 'noise' (default: both)
  --out DIR            where JSON and charts go (default examples/results, --quick: examples/results/quick)
  --no-plots           skip the charts
  --replot             only redraw the charts from the JSON of an earlier run in --out
`;

/** The learning rate grows as the square root of the batch size (chosen by a one-seed grid, see README). */
const BASE_LEARNING_RATE = 0.012;
const BASE_BATCH = 256;
const TASK_SEED = 2023;
const EVAL_PAIRS = 2048;
const MODEL = { hiddenDim: 128, embedDim: 32 };

const OPTIONS = {
  quick: { type: 'boolean', default: false },
  batches: { type: 'string' },
  seeds: { type: 'string' },
  'noise-seeds': { type: 'string' },
  'noise-batch': { type: 'string' },
  rates: { type: 'string' },
  examples: { type: 'string' },
  only: { type: 'string' },
  out: { type: 'string' },
  'no-plots': { type: 'boolean', default: false },
  replot: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const;

/** A bad flag: reported as one line and the usage, without a stack. */
class UsageError extends Error {}

function intList(text: string): number[] {
  return text.split(',').map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`expected positive integers, got '${s}'`);
    return v;
  });
}

function rateList(text: string): number[] {
  return text.split(',').map((s) => {
    const v = Number(s);
    if (!(v >= 0 && v <= 1)) throw new UsageError(`expected probabilities in [0, 1], got '${s}'`);
    return v;
  });
}

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

interface Planned {
  experiment: RunRecord['experiment'];
  config: TrainConfig;
}

/** Rough relative cost of a run (ms on the development machine), for the time-left estimate only. */
function cost(c: TrainConfig): number {
  const steps = Math.floor(c.examples / c.batchSize);
  return 0.6 * steps + 0.011 * c.examples + 1e-5 * c.batchSize * c.examples;
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ options: OPTIONS });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error)); // an unknown flag, a missing value
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const quick = values.quick;
  const batches = intList(values.batches ?? (quick ? '16,128,512' : '16,32,64,128,256,512,1024'));
  const seeds = intList(values.seeds ?? (quick ? '1' : '3'))[0]!;
  const noiseSeeds = intList(values['noise-seeds'] ?? (quick ? '1' : '3'))[0]!;
  const noiseBatch = intList(values['noise-batch'] ?? (quick ? '128' : '256'))[0]!;
  const rates = rateList(values.rates ?? (quick ? '0,0.4' : '0,0.1,0.2,0.4'));
  const examples = intList(values.examples ?? (quick ? '65536' : '131072'))[0]!;
  const only = values.only;
  if (only !== undefined && only !== 'sweep' && only !== 'noise') throw new UsageError(`--only takes 'sweep' or 'noise', got '${only}'`);
  const outDir = path.resolve(values.out ?? path.join('examples', 'results', quick ? 'quick' : ''));
  for (const b of [...batches, noiseBatch]) {
    if (b > examples) throw new UsageError(`batch size ${b} is larger than --examples ${examples}`);
  }

  if (values.replot) {
    await replot(outDir);
    return;
  }

  const started = performance.now();
  const info = backendInfo();
  process.stderr.write(`siglip-kernels example: ${info.simd} kernels, ${os.availableParallelism()} cores; task seed ${TASK_SEED}\n`);

  // The hand-written backward pass, checked against finite differences before anything trains.
  for (const loss of ['sigmoid', 'softmax'] as const) {
    const check = checkGradients(loss);
    process.stderr.write(`gradient check (${loss}): ${check.checked} entries, worst relative difference ${check.worst.toExponential(1)}\n`);
    if (!(check.worst < 1e-2)) throw new Error(`the ${loss} gradient check failed (worst relative difference ${check.worst})`);
  }

  const task = new Task(DEFAULT_TASK, TASK_SEED);
  const evalSet: EvalSet = { pairs: task.sample(new Rng(TASK_SEED, 0xe7a1), EVAL_PAIRS), classTexts: task.classTexts(), concepts: DEFAULT_TASK.concepts };
  // One training stream per seed, shared by both losses and every batch size and corruption,
  // so each comparison is paired: same data, same order, same initial towers.
  const streams = new Map<number, Pairs>();
  const streamFor = (seed: number): Pairs => {
    let s = streams.get(seed);
    if (!s) streams.set(seed, (s = task.sample(new Rng(seed, 0x57e4), examples)));
    return s;
  };

  const learningRate = (batch: number): number => BASE_LEARNING_RATE * Math.sqrt(batch / BASE_BATCH);
  const base = { examples, ...MODEL };
  const plan: Planned[] = [];
  const losses: LossKind[] = ['sigmoid', 'softmax'];
  if (only !== 'noise') {
    for (const batchSize of batches) {
      for (let seed = 1; seed <= seeds; seed++) {
        for (const loss of losses) plan.push({ experiment: 'batch-sweep', config: { ...base, loss, batchSize, seed, learningRate: learningRate(batchSize), corruption: 'none', corruptionRate: 0 } });
      }
    }
  }
  const noiseKinds: CorruptionKind[] = [...CORRUPTIONS];
  if (only !== 'sweep') {
    for (let seed = 1; seed <= noiseSeeds; seed++) {
      // The clean run is the sweep's run at the same batch size and seed, when there is one.
      const cleanKnown = only !== 'noise' && batches.includes(noiseBatch) && seed <= seeds;
      const push = (corruption: CorruptionKind, rate: number, loss: LossKind): void => {
        plan.push({ experiment: 'noise', config: { ...base, loss, batchSize: noiseBatch, seed, learningRate: learningRate(noiseBatch), corruption, corruptionRate: rate } });
      };
      if (rates.includes(0) && !cleanKnown) for (const loss of losses) push('none', 0, loss);
      for (const kind of noiseKinds) for (const rate of rates.filter((r) => r > 0)) for (const loss of losses) push(kind, rate, loss);
    }
  }

  const totalCost = plan.reduce((a, p) => a + cost(p.config), 0);
  let doneCost = 0;
  const records: RunRecord[] = [];
  for (const [i, { experiment, config }] of plan.entries()) {
    const result = trainRun(DEFAULT_TASK, streamFor(config.seed), evalSet, config);
    const { examples: _e, hiddenDim: _h, embedDim: _d, ...key } = config;
    records.push({ experiment, ...key, ...result });
    doneCost += cost(config);
    const elapsed = (performance.now() - started) / 1000;
    const left = (elapsed / doneCost) * (totalCost - doneCost);
    const what = experiment === 'noise' ? `noise ${config.corruption}@${config.corruptionRate}` : 'sweep';
    process.stderr.write(
      `[${String(i + 1).padStart(String(plan.length).length)}/${plan.length}] ${what} B=${config.batchSize} seed ${config.seed} ${config.loss.padEnd(7)}` +
        ` zero-shot ${(100 * result.zeroShot).toFixed(1)}%  I→T ${(100 * result.imageToText).toFixed(1)}%  t=${result.temperature.toFixed(1)}` +
        ` (${result.seconds.toFixed(1)} s; ${formatDuration(elapsed)} spent, ~${formatDuration(left)} left)\n`,
    );
  }

  const sweepRuns = records.filter((r) => r.experiment === 'batch-sweep');
  const sweep = summarise(sweepRuns);
  const cleanRuns = [
    ...records.filter((r) => r.experiment === 'noise' && r.corruption === 'none'),
    ...sweepRuns.filter((r) => r.batchSize === noiseBatch && r.seed <= noiseSeeds),
  ];
  const clean: ConfigSummary | undefined = rates.includes(0) && only !== 'sweep' ? summarise(cleanRuns)[0] : undefined;
  const noise = summarise(records.filter((r) => r.experiment === 'noise' && r.corruption !== 'none'));
  const seconds = (performance.now() - started) / 1000;

  const chance = `chance: zero-shot ${(100 / DEFAULT_TASK.concepts).toFixed(1)}%, R@1 ${(100 / EVAL_PAIRS).toFixed(2)}%`;
  const out: string[] = [];
  if (sweep.length > 0) {
    out.push(
      `\nExperiment 1: batch size, ${examples} examples seen per run, mean ± std over ${seeds} seed(s), held-out %, Δ paired by seed (${chance}).\n`,
      batchTable(sweep),
    );
  }
  if (noise.length > 0 || clean) {
    out.push(
      `\nExperiment 2: corrupted training pairs, batch ${noiseBatch}, ${examples} examples seen, ${noiseSeeds} seed(s); "kept" = accuracy as a share of the same loss's clean accuracy.\n`,
      noiseTable(noise, clean, noiseKinds),
    );
  }
  out.push(`\nTotal time ${formatDuration(seconds)}.`);
  process.stdout.write(`${out.join('\n')}\n`);

  mkdirSync(outDir, { recursive: true });
  const jsonPath = path.join(outDir, 'siglip-vs-clip.json');
  const meta = {
    date: new Date().toISOString(),
    argv: process.argv.slice(2),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    simd: info.simd,
    seconds,
    task: { ...DEFAULT_TASK, seed: TASK_SEED, evalPairs: EVAL_PAIRS },
    model: { ...MODEL, towers: 'input → Dense → ReLU → Dense → L2-normalise' },
    training: {
      examples,
      optimiser: 'AdamW β1 0.9, β2 0.95, weight decay 1e-4 (weights only)',
      learningRate: `${BASE_LEARNING_RATE} · sqrt(batch / ${BASE_BATCH}), linear warm-up over 5 % of steps, cosine decay to 0`,
      init: 'sigmoid: t = 10, b = −10; softmax: t = 1/0.07; both learned',
      batches,
      seeds,
      noiseSeeds,
      noiseBatch,
      rates,
    },
  };
  writeFileSync(jsonPath, `${JSON.stringify({ meta, summary: { batchSweep: sweep, noiseClean: clean ?? null, noise }, runs: records }, null, 1)}\n`);
  const written = [jsonPath];
  if (!values['no-plots']) written.push(...(await drawCharts({ batchSweep: sweep, noiseClean: clean ?? null, noise }, examples, noiseBatch, outDir)));
  process.stderr.write(`wrote ${written.map((f) => path.relative(process.cwd(), f)).join(', ')}\n`);
}

interface Summaries {
  batchSweep: ConfigSummary[];
  noiseClean: ConfigSummary | null;
  noise: ConfigSummary[];
}

async function drawCharts(summary: Summaries, examples: number, noiseBatch: number, outDir: string): Promise<string[]> {
  const written: string[] = [];
  const subtitle = `synthetic task, K = ${DEFAULT_TASK.concepts} concepts; ${examples} examples seen; lines: mean, bars: min–max over seeds`;
  if (summary.batchSweep.length > 0) written.push(...(await plotBatchSweep(summary.batchSweep, outDir, subtitle)));
  if (summary.noise.length > 0) {
    written.push(...(await plotNoise(summary.noise, summary.noiseClean ?? undefined, [...CORRUPTIONS], outDir, `${subtitle}; batch ${noiseBatch}`)));
  }
  return written;
}

/** --replot: the charts again from siglip-vs-clip.json (after a change to charts.ts, without retraining). */
async function replot(outDir: string): Promise<void> {
  const jsonPath = path.join(outDir, 'siglip-vs-clip.json');
  const saved = JSON.parse(readFileSync(jsonPath, 'utf8')) as { meta: { training: { examples: number; noiseBatch: number } }; summary: Summaries };
  const written = await drawCharts(saved.summary, saved.meta.training.examples, saved.meta.training.noiseBatch, outDir);
  process.stderr.write(`redrew ${written.map((f) => path.relative(process.cwd(), f)).join(', ')} from ${path.relative(process.cwd(), jsonPath)}\n`);
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
