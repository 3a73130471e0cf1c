// `npm run bench`: times the fused sigmoid loss against the naive sigmoid and softmax losses
// and the plain GEMM, forward and forward+backward, over a range of batch sizes N (= M).
//
// Each case runs in a fresh child process (bench/case.ts), so that its peak-memory figure is
// its own (see the comment at the top of case.ts). Progress goes to stderr (a bar with the time
// left on a terminal, one line per case elsewhere: progress.ts); the table goes to stdout;
// everything, with a description of the machine, goes to bench/results/cpu-<date>.json.
// `--report` runs the report suite and writes bench/report/ instead (report_files.ts).
// bench/NOTES.md explains the columns. `--help` lists flags.
//
// An installed package runs the compiled copy (`npx siglip-kernels bench`: dist/bench/run.js,
// plain JavaScript, no tsx or devDependencies): the cases run dist/bench/case.js, results go to
// the current directory, and the progress bar and plots appear only where cli-progress and
// vega are installed.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import {
  type CaseResult,
  type CaseSpec,
  caseFlops,
  DEFAULT_METHODS,
  defaultRepeats,
  estimatedExtraBytes,
  METHOD_INFO,
  METHOD_LABELS,
  METHODS,
  type MethodName,
  type Pass,
  REPORT_METHODS,
  reportRepeats,
} from './cases.js';
import { type GpuRowsResult, readGpuRows } from './gpu_rows.js';
import { BenchProgress, formatDuration } from './progress.js';
import { type CaseOutcome, describeMachine, formatBytes, formatTable, type MachineInfo, progressLine } from './report.js';
import { collectVersions, updateReadme, writeReport } from './report_files.js';

// Located from the script's own path (works whether tsx runs this file as CommonJS or ESM).
const benchDir = path.dirname(path.resolve(process.argv[1] ?? 'bench/run.ts'));
/** Running as dist/bench/run.js (an installed package, or a clone's compiled copy). */
const compiled = path.extname(process.argv[1] ?? '') === '.js';
/** The package root: bench/.. in a clone, dist/bench/../.. when compiled. */
const repoRoot = compiled ? path.resolve(benchDir, '..', '..') : path.dirname(benchDir);
const COMMAND = compiled ? 'npx siglip-kernels bench' : 'npm run bench --';

const GiB = 1024 ** 3;
const POWERS = (from: number, to: number): number[] => {
  const list: number[] = [];
  for (let n = from; n <= to; n *= 2) list.push(n);
  return list;
};

const USAGE = `usage: ${COMMAND} [flags]

  --n 512,1024       batch sizes N (= M) to run (default 512…8192; --quick to 4096, --full to 16384)
  --d 768            embedding width D
  --threads T        worker threads (default: all ${os.availableParallelism()} available)
  --device DEV       cpu (default) or cuda (the losses on GPU 0; needs the CUDA build and a GPU;
                     the gemm method is CPU-only and left out)
  --methods LIST     any of ${METHODS.join(',')} (default: all but tfjs-autodiff, which needs
                     @tensorflow/tfjs and takes seconds to minutes per case)
  --passes LIST      fwd, fwd+bwd or both (default: both; gemm has its own single pass)
  --quick            N = 512…4096
  --full             N = 512…16384, plus fused sigmoid fwd+bwd at N = 32768, D = 256
  --repeats R        timed runs per case (default: 7 at N ≤ 1024 down to 1 at N ≥ 16384)
  --warmup W         untimed runs before them (default 1; the first also measures memory)
  --mem-budget SIZE  skip cases whose N×N buffers would exceed it, e.g. 6GiB, 512MiB (default 6GiB,
                     at most half the machine's memory)
  --timeout SECONDS  per case (default 900)
  --seed S           input RNG seed (default 1)
  --out FILE         JSON results file (default ${compiled ? './siglip-kernels-bench-<device>-<date>.json' : 'bench/results/<device>-<date>.json'}); --no-json for none
  --list             print the planned cases (with their repeats) and exit without running any

  --report           the report suite: fused sigmoid, chunked softmax (once the library has it),
                     naive sigmoid, naive softmax, tfjs autodiff (N ≤ 1024, about 45 s of the run;
                     needs @tensorflow/tfjs); fwd and fwd+bwd; N = 512…4096 (under two minutes
                     on 2 cores), or 512…16384 with --full; D = 768. Writes bench/report/:
                     results.json, time.svg/.png, memory.svg/.png, and prints a summary table
  --report-dir DIR   where --report writes (default bench/report)
  --gpu-json FILE    merge the GPU check's rows into the report (repeatable; format: bench/NOTES.md)
  --replot           redo the report's files from DIR/results.json (and --gpu-json) without running
  --update-readme    also rewrite README.md's benchmark-report section (between its markers)
`;

interface BenchOptions {
  ns: number[];
  d: number;
  threads: number;
  device: 'cpu' | 'cuda';
  methods: MethodName[];
  passes: Array<'fwd' | 'fwd+bwd'>;
  full: boolean;
  repeats: number | undefined;
  warmup: number;
  memBudgetBytes: number;
  timeoutMs: number;
  seed: number;
  out: string | null;
  listOnly: boolean;
  report: boolean;
  reportDir: string;
  gpuJson: string[];
  replot: boolean;
  updateReadme: boolean;
  /** --methods was given: unavailable methods then show as skipped rows instead of a note. */
  methodsGiven: boolean;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) fail(`Expected ${name} to be a positive integer but received "${text}"`);
  return value;
}

function parseSize(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(k|m|g|t)?(i?b)?$/i.exec(text.trim());
  if (!match) fail(`Expected ${name} to be a size such as 6GiB or 512MiB but received "${text}"`);
  const units: Record<string, number> = { k: 1024, m: 1024 ** 2, g: GiB, t: 1024 ** 4 };
  // A bare number is GiB: nobody means a budget of 6 bytes.
  const unit = match[2] ? (units[match[2].toLowerCase()] ?? GiB) : GiB;
  return Number(match[1]) * unit;
}

function list<T extends string>(name: string, text: string, allowed: readonly T[]): T[] {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (const item of items) if (!(allowed as readonly string[]).includes(item)) fail(`Expected ${name} to list some of ${allowed.join(', ')} but received "${item}"`);
  if (items.length === 0) fail(`Expected ${name} to list at least one of ${allowed.join(', ')}`);
  return items as T[];
}

/** The methods in the table's order, whatever order --methods gave them in. */
function inTableOrder(methods: readonly MethodName[]): MethodName[] {
  return METHODS.filter((method) => methods.includes(method));
}

function parseOptions(argv: string[]): BenchOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        n: { type: 'string' },
        d: { type: 'string' },
        threads: { type: 'string' },
        device: { type: 'string' },
        methods: { type: 'string' },
        passes: { type: 'string' },
        quick: { type: 'boolean' },
        full: { type: 'boolean' },
        repeats: { type: 'string' },
        warmup: { type: 'string' },
        'mem-budget': { type: 'string' },
        timeout: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        'no-json': { type: 'boolean' },
        list: { type: 'boolean' },
        report: { type: 'boolean' },
        'report-dir': { type: 'string' },
        'gpu-json': { type: 'string', multiple: true },
        replot: { type: 'boolean' },
        'update-readme': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (v.quick && v.full) fail('--quick and --full exclude each other');
  const report = v.report === true || v.replot === true;
  if (!report && (v['gpu-json'] !== undefined || v['update-readme'] || v['report-dir'] !== undefined)) fail('--gpu-json, --update-readme and --report-dir go with --report or --replot');
  const ns =
    v.n !== undefined
      ? v.n.split(',').map((s) => positiveInteger('--n', s.trim()))
      : v.full
        ? POWERS(512, 16384)
        : v.quick || report
          ? POWERS(512, 4096)
          : POWERS(512, 8192);
  const device = v.device === undefined ? 'cpu' : v.device === 'cpu' || v.device === 'cuda' ? v.device : fail(`Expected --device to be cpu or cuda but received "${v.device}"`);
  if (device === 'cuda' && v.methods !== undefined && v.methods.split(',').includes('gemm')) fail('the gemm method runs on the CPU only; leave it out of --methods with --device cuda');
  if (v['update-readme'] && compiled) fail('--update-readme rewrites the repository README: run it from a clone (npm run bench)');
  const halfOfMemory = os.totalmem() / 2;
  const date = new Date().toISOString().replace(/:/g, '-').replace(/\..*$/, '');
  return {
    ns: [...new Set(ns)].sort((a, b) => a - b),
    d: v.d !== undefined ? positiveInteger('--d', v.d) : 768,
    threads: v.threads !== undefined ? positiveInteger('--threads', v.threads) : os.availableParallelism(),
    device,
    methods: (v.methods !== undefined ? inTableOrder(list('--methods', v.methods, METHODS)) : report ? inTableOrder(REPORT_METHODS) : [...DEFAULT_METHODS]).filter(
      (m) => device === 'cpu' || (m !== 'gemm' && m !== 'tfjs-autodiff'),
    ),
    passes: v.passes !== undefined ? list('--passes', v.passes, ['fwd', 'fwd+bwd'] as const) : ['fwd', 'fwd+bwd'],
    full: v.full === true,
    repeats: v.repeats !== undefined ? positiveInteger('--repeats', v.repeats) : undefined,
    warmup: v.warmup !== undefined ? positiveInteger('--warmup', v.warmup) : 1,
    memBudgetBytes: v['mem-budget'] !== undefined ? parseSize('--mem-budget', v['mem-budget']) : Math.min(6 * GiB, halfOfMemory),
    timeoutMs: 1000 * (v.timeout !== undefined ? positiveInteger('--timeout', v.timeout) : 900),
    seed: v.seed !== undefined ? positiveInteger('--seed', v.seed) : 1,
    // The report keeps its own results.json; a second copy in bench/results/ only when asked.
    out:
      v['no-json'] || (report && v.out === undefined)
        ? null
        : path.resolve(v.out ?? (compiled ? `siglip-kernels-bench-${device}-${date}.json` : path.join(benchDir, 'results', `${device}-${date}.json`))),
    listOnly: v.list === true,
    report,
    reportDir: path.resolve(v['report-dir'] ?? (compiled ? 'siglip-kernels-bench-report' : path.join(benchDir, 'report'))),
    gpuJson: (v['gpu-json'] ?? []).map((f) => path.resolve(f)),
    replot: v.replot === true,
    updateReadme: v['update-readme'] === true,
    methodsGiven: v.methods !== undefined,
  };
}

interface PlannedCase {
  spec: CaseSpec;
  skipReason?: string; // set when the case would not fit in --mem-budget
}

/** Every case to run, in order: by N, then method, then pass; skipped ones carry why. */
function planCases(options: BenchOptions): PlannedCase[] {
  const planned: PlannedCase[] = [];
  const add = (method: MethodName, pass: Pass, n: number, d: number): void => {
    const spec: CaseSpec = {
      method,
      pass,
      n,
      m: n,
      d,
      threads: options.threads,
      warmup: options.warmup,
      // tfjs autodiff: one timed call in the report (each is seconds long, and its plot line is orders above the others).
      repeats: options.repeats ?? (options.report ? (METHOD_INFO[method].loss === 'tfjs' ? 1 : reportRepeats(n)) : defaultRepeats(n)),
      seed: options.seed,
      device: method === 'gemm' ? 'cpu' : options.device,
    };
    const need = estimatedExtraBytes(spec);
    const reportMaxN = (METHOD_INFO[method] as { reportMaxN?: number }).reportMaxN;
    if (options.report && reportMaxN !== undefined && n > reportMaxN) {
      planned.push({ spec, skipReason: `the report runs ${METHOD_INFO[method].label} up to N = ${reportMaxN} (its calls take minutes beyond)` });
    } else if (need > options.memBudgetBytes) {
      const skipReason = `its N×N buffers need ~${formatBytes(need)}, over the ${formatBytes(options.memBudgetBytes)} --mem-budget`;
      planned.push({ spec, skipReason });
    } else {
      planned.push({ spec });
    }
  };
  for (const n of options.ns) {
    for (const method of options.methods) {
      if (method === 'gemm') add(method, 'gemm', n, options.d);
      else for (const pass of options.passes) add(method, pass, n, options.d);
    }
  }
  // The memory target: the fused loss at a batch the naive ones could not hold (N×N float32
  // alone would be 4 GiB), at a width where the inputs stay small.
  // Not in the report, whose plots hold D fixed.
  if (options.full && !options.report && options.methods.includes('fused')) add('fused', 'fwd+bwd', 32768, 256);
  return planned;
}

function tsxLoaderUrl(): string | null {
  if (compiled) return null; // dist/bench/case.js is plain JavaScript
  // An absolute URL, so the child finds tsx whatever its working directory.
  const require = createRequire(path.join(repoRoot, 'package.json'));
  return pathToFileURL(require.resolve('tsx')).href;
}

/**
 * Runs one case in a child process. Asynchronous, so the progress bar keeps redrawing while
 * the case runs; the child's stderr (errors, warnings) is passed on through `log`.
 */
function runCase(spec: CaseSpec, loader: string | null, timeoutMs: number, log: (text: string) => void): Promise<CaseOutcome> {
  return new Promise((resolve) => {
    const script = loader === null ? ['--expose-gc', path.join(benchDir, 'case.js')] : ['--expose-gc', '--import', loader, path.join(benchDir, 'case.ts')];
    const child = spawn(process.execPath, [...script, JSON.stringify(spec)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => log(chunk.replace(/\n$/, '')));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ status: 'failed', spec, reason: error.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return resolve({ status: 'failed', spec, reason: `timed out after ${timeoutMs / 1000} s (--timeout)` });
      if (signal) return resolve({ status: 'failed', spec, reason: `killed by ${signal}${signal === 'SIGKILL' ? ' (out of memory?)' : ''}` });
      if (code !== 0) return resolve({ status: 'failed', spec, reason: `exit code ${String(code)} (its error is above)` });
      const lastLine = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve({ status: 'ok', spec, result: JSON.parse(lastLine) as CaseResult });
      } catch {
        resolve({ status: 'failed', spec, reason: `unreadable output: ${lastLine.slice(0, 200)}` });
      }
    });
  });
}

type Library = typeof import('../lib/index.js');

/**
 * Which methods the loaded library implements: each loss method is called once on a 4×8
 * problem, and a method whose call throws (e.g. a softmax method not implemented yet) is
 * reported with the error's message. gemm always exists.
 */
function probeMethods(lib: Library, methods: readonly MethodName[], device: 'cpu' | 'cuda'): Record<string, string> {
  const unavailable: Record<string, string> = {};
  const x = lib.matrix(Float32Array.from({ length: 32 }, (_, i) => Math.sin(i + 1)), 4, 8);
  for (const method of methods) {
    const info: (typeof METHOD_INFO)[MethodName] = METHOD_INFO[method];
    if (info.loss === 'gemm') continue;
    if (info.loss === 'tfjs') {
      try {
        createRequire(path.join(repoRoot, 'package.json')).resolve('@tensorflow/tfjs');
      } catch {
        unavailable[method] = 'it needs @tensorflow/tfjs, which is not installed (npm install @tensorflow/tfjs)';
      }
      continue;
    }
    const precision = 'precision' in info ? { precision: info.precision as never } : {};
    const options = { threads: 1, device, method: info.libMethod as never, ...precision };
    try {
      if (info.loss === 'sigmoid') lib.sigmoidLossWithGradSync(x, x, options);
      else lib.softmaxLossWithGradSync(x, x, options);
    } catch (error) {
      unavailable[method] = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
    }
  }
  return unavailable;
}

interface PreviousReport {
  date: string;
  command: string;
  elapsedSeconds: number | null;
  loadAverage?: { start: number; end: number } | null;
  machine: MachineInfo;
  backend: unknown;
  options: unknown;
  unavailableMethods: Record<string, string>;
  cases: Array<{ status: string; spec: CaseSpec; reason?: string } & Partial<CaseResult>>;
}

/** `--replot`: the outcomes of the run recorded in DIR/results.json. */
function readPreviousReport(dir: string): { report: PreviousReport; outcomes: CaseOutcome[] } {
  const file = path.join(dir, 'results.json');
  if (!existsSync(file)) fail(`--replot needs ${path.relative(process.cwd(), file)}; run --report first`);
  const report = JSON.parse(readFileSync(file, 'utf8')) as PreviousReport;
  const outcomes = report.cases.map((c): CaseOutcome => {
    if (c.status === 'ok') {
      const { status: _status, ...result } = c;
      return { status: 'ok', spec: c.spec, result: result as CaseResult };
    }
    return { status: c.status === 'skipped' ? 'skipped' : 'failed', spec: c.spec, reason: c.reason ?? '' };
  });
  return { report, outcomes };
}

function readGpuFiles(files: readonly string[]): GpuRowsResult[] {
  return files.map((file) => {
    try {
      const result = readGpuRows(file);
      process.stderr.write(`bench: ${path.relative(process.cwd(), file)}: ${result.rows.length} GPU rows (${result.device})${result.skipped > 0 ? `, ${result.skipped} left out (not ok, or no N or time)` : ''}\n`);
      return result;
    } catch (error) {
      fail(error instanceof Error ? error.message : String(error));
    }
  });
}

async function emitReport(
  options: BenchOptions,
  run: {
    date: string;
    command: string;
    elapsedSeconds: number | null;
    loadAverage: { start: number; end: number } | null;
    machine: MachineInfo;
    backend: unknown;
    options: unknown;
    unavailable: Record<string, string>;
    outcomes: CaseOutcome[];
  },
): Promise<void> {
  const gpu = readGpuFiles(options.gpuJson);
  mkdirSync(options.reportDir, { recursive: true });
  const versions = collectVersions(repoRoot);
  const { summary, files } = await writeReport({
    dir: options.reportDir,
    repoRoot,
    command: run.command,
    date: run.date,
    elapsedSeconds: run.elapsedSeconds,
    loadAverage: run.loadAverage,
    machine: run.machine,
    versions,
    backend: run.backend,
    options: run.options,
    unavailable: run.unavailable,
    outcomes: run.outcomes,
    gpu,
  });
  process.stdout.write(`\n${summary}\n\nreport: ${files.map((f) => path.relative(process.cwd(), f)).join(', ')}\n`);
  if (options.updateReadme) {
    const readme = path.join(repoRoot, 'README.md');
    const done = updateReadme(readme, summary, { ...run, versions });
    process.stdout.write(done ? 'README.md: benchmark report section updated\n' : 'README.md: no bench-report markers found; left unchanged\n');
  }
}

async function main(): Promise<void> {
  // `npm run bench -- ring [flags]`: the ring benchmark (bench/ring.ts) instead of the loss suite.
  if (process.argv[2] === 'ring') {
    const { runRingBench } = await import('./ring.js');
    await runRingBench(process.argv.slice(3));
    return;
  }
  const options = parseOptions(process.argv.slice(2));
  const command = `${COMMAND} ${process.argv.slice(2).join(' ')}`.trim();

  if (options.replot) {
    const { report, outcomes } = readPreviousReport(options.reportDir);
    await emitReport(options, {
      date: report.date,
      command: report.command,
      elapsedSeconds: report.elapsedSeconds,
      loadAverage: report.loadAverage ?? null,
      machine: report.machine,
      backend: report.backend,
      options: report.options,
      unavailable: report.unavailableMethods ?? {},
      outcomes,
    });
    return;
  }

  // Load the library here once, before spawning anything, so a missing build fails in one
  // clear message rather than once per case; its backendInfo() also goes into the JSON.
  let lib: Library;
  let backend: unknown;
  try {
    lib = await import('../lib/index.js');
    backend = lib.backendInfo();
  } catch (error) {
    process.stderr.write(`bench: cannot load the library (build it first: npm run build)\n  ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  if (options.device === 'cuda' && !lib.backendInfo().cuda.available) {
    process.stderr.write(`bench: --device cuda, but CUDA is not available: ${lib.backendInfo().cuda.reason}\n`);
    process.exit(1);
  }

  // Methods the library does not implement yet: dropped with a note, or listed as skipped
  // when --methods asked for them by name.
  const unavailable = probeMethods(lib, options.methods, options.device);
  for (const [method, why] of Object.entries(unavailable)) process.stderr.write(`bench: ${METHOD_LABELS[method as MethodName]} is not available (${why}); ${options.methodsGiven ? 'listed as skipped' : 'left out'}\n`);
  if (!options.methodsGiven) options.methods = options.methods.filter((m) => unavailable[m] === undefined);

  const plan = planCases(options).map((c) => {
    const why = unavailable[c.spec.method];
    return why !== undefined && c.skipReason === undefined ? { ...c, skipReason: `not available: ${why}` } : c;
  });
  if (options.listOnly) {
    for (const { spec, skipReason } of plan) {
      const what = `${METHOD_LABELS[spec.method]} ${spec.pass} N=${spec.n} D=${spec.d}`;
      process.stdout.write(`${what}: ${skipReason !== undefined ? `skip (${skipReason})` : `${spec.warmup} warm-up + ${spec.repeats} timed, ${spec.threads} threads`}\n`);
    }
    return;
  }

  const machine = describeMachine(repoRoot);
  const loader = tsxLoaderUrl();
  process.stderr.write(
    `bench: ${plan.length} cases, N ∈ {${[...new Set(plan.map((c) => c.spec.n))].join(', ')}}, ${options.threads} threads, ` +
      `memory budget ${formatBytes(options.memBudgetBytes)}; ${machine.cpuModel}, ${machine.cores} cores\n`,
  );

  const progress = new BenchProgress(
    plan.map(({ spec, skipReason }) => ({
      label: `${METHOD_LABELS[spec.method]} ${spec.pass} N=${spec.n}`,
      calls: skipReason === undefined ? spec.warmup + spec.repeats : 0,
      flopsPerCall: caseFlops(spec),
    })),
  );
  const outcomes: CaseOutcome[] = [];
  const started = Date.now();
  const loadAtStart = os.loadavg()[0] ?? 0;
  try {
    for (const [index, planned] of plan.entries()) {
      progress.begin(index);
      const caseStarted = Date.now();
      const outcome: CaseOutcome =
        planned.skipReason !== undefined
          ? { status: 'skipped', spec: planned.spec, reason: planned.skipReason }
          : await runCase(planned.spec, loader, options.timeoutMs, (text) => progress.log(text));
      outcomes.push(outcome);
      // Time in kernel calls: the first call, the extra warm-ups (about a median each), the timed ones.
      const callsMs =
        outcome.status === 'ok'
          ? outcome.result.firstCallMs + Math.max(0, planned.spec.warmup - 1) * outcome.result.medianMs + outcome.result.timesMs.reduce((a, b) => a + b, 0)
          : 0;
      progress.end(index, progressLine(index + 1, plan.length, outcome), { wallMs: Date.now() - caseStarted, callsMs });
    }
  } finally {
    progress.stop();
  }
  const elapsedS = (Date.now() - started) / 1000;

  process.stdout.write(`\n${formatTable(outcomes)}\n\n`);
  process.stdout.write(`${machine.cpuModel}, ${machine.cores} cores, ${options.threads} threads, node ${machine.node}; ${formatDuration(elapsedS * 1000)} in all\n`);

  if (options.out !== null) {
    mkdirSync(path.dirname(options.out), { recursive: true });
    const report = {
      date: new Date().toISOString(),
      command: process.argv.slice(2),
      options,
      machine,
      backend,
      unavailableMethods: unavailable,
      elapsedSeconds: elapsedS,
      cases: outcomes.map((o) => (o.status === 'ok' ? { status: o.status, ...o.result } : o)),
    };
    writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`results: ${path.relative(process.cwd(), options.out)}\n`);
  }
  if (options.report) {
    const loadAverage = { start: loadAtStart, end: os.loadavg()[0] ?? 0 };
    await emitReport(options, { date: new Date().toISOString(), command, elapsedSeconds: elapsedS, loadAverage, machine, backend, options, unavailable, outcomes });
  }
  if (outcomes.some((o) => o.status === 'failed')) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
