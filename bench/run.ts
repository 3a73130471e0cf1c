// `npm run bench`: times the fused sigmoid loss against the naive sigmoid and softmax losses
// and the plain GEMM, forward and forward+backward, over a range of batch sizes N (= M).
//
// Each case runs in a fresh child process (bench/case.ts), so that its peak-memory figure is
// its own (see the comment at the top of case.ts). Progress goes to stderr, one line per case;
// the table goes to stdout; everything, with a description of the machine, goes to
// bench/results/cpu-<date>.json. bench/NOTES.md explains the columns. `--help` lists flags.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { type CaseResult, type CaseSpec, defaultRepeats, estimatedExtraBytes, METHOD_LABELS, METHODS, type MethodName, type Pass } from './cases.js';
import { type CaseOutcome, describeMachine, formatBytes, formatTable, progressLine } from './report.js';

// Located from the script's own path (works whether tsx runs this file as CommonJS or ESM).
const benchDir = path.dirname(path.resolve(process.argv[1] ?? 'bench/run.ts'));
const repoRoot = path.dirname(benchDir);

const GiB = 1024 ** 3;
const POWERS = (from: number, to: number): number[] => {
  const list: number[] = [];
  for (let n = from; n <= to; n *= 2) list.push(n);
  return list;
};

const USAGE = `usage: npm run bench -- [flags]

  --n 512,1024       batch sizes N (= M) to run (default 512…8192; --quick to 4096, --full to 16384)
  --d 768            embedding width D
  --threads T        worker threads (default: all ${os.availableParallelism()} available)
  --methods LIST     any of ${METHODS.join(',')} (default: all)
  --passes LIST      fwd, fwd+bwd or both (default: both; gemm has its own single pass)
  --quick            N = 512…4096
  --full             N = 512…16384, plus fused sigmoid fwd+bwd at N = 32768, D = 256
  --repeats R        timed runs per case (default: 7 at N ≤ 1024 down to 1 at N ≥ 16384)
  --warmup W         untimed runs before them (default 1; the first also measures memory)
  --mem-budget SIZE  skip cases whose N×N buffers would exceed it, e.g. 6GiB, 512MiB (default 6GiB,
                     at most half the machine's memory)
  --timeout SECONDS  per case (default 900)
  --seed S           input RNG seed (default 1)
  --out FILE         JSON results file (default bench/results/cpu-<date>.json); --no-json for none
  --list             print the planned cases (with their repeats) and exit without running any
`;

interface BenchOptions {
  ns: number[];
  d: number;
  threads: number;
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
  const ns = v.n !== undefined ? v.n.split(',').map((s) => positiveInteger('--n', s.trim())) : v.full ? POWERS(512, 16384) : v.quick ? POWERS(512, 4096) : POWERS(512, 8192);
  const halfOfMemory = os.totalmem() / 2;
  const date = new Date().toISOString().replace(/:/g, '-').replace(/\..*$/, '');
  return {
    ns: [...new Set(ns)].sort((a, b) => a - b),
    d: v.d !== undefined ? positiveInteger('--d', v.d) : 768,
    threads: v.threads !== undefined ? positiveInteger('--threads', v.threads) : os.availableParallelism(),
    methods: v.methods !== undefined ? inTableOrder(list('--methods', v.methods, METHODS)) : [...METHODS],
    passes: v.passes !== undefined ? list('--passes', v.passes, ['fwd', 'fwd+bwd'] as const) : ['fwd', 'fwd+bwd'],
    full: v.full === true,
    repeats: v.repeats !== undefined ? positiveInteger('--repeats', v.repeats) : undefined,
    warmup: v.warmup !== undefined ? positiveInteger('--warmup', v.warmup) : 1,
    memBudgetBytes: v['mem-budget'] !== undefined ? parseSize('--mem-budget', v['mem-budget']) : Math.min(6 * GiB, halfOfMemory),
    timeoutMs: 1000 * (v.timeout !== undefined ? positiveInteger('--timeout', v.timeout) : 900),
    seed: v.seed !== undefined ? positiveInteger('--seed', v.seed) : 1,
    out: v['no-json'] ? null : path.resolve(v.out ?? path.join(benchDir, 'results', `cpu-${date}.json`)),
    listOnly: v.list === true,
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
      repeats: options.repeats ?? defaultRepeats(n),
      seed: options.seed,
    };
    const need = estimatedExtraBytes(spec);
    if (need > options.memBudgetBytes) {
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
  if (options.full && options.methods.includes('fused')) add('fused', 'fwd+bwd', 32768, 256);
  return planned;
}

function tsxLoaderUrl(): string {
  // An absolute URL, so the child finds tsx whatever its working directory.
  const require = createRequire(path.join(repoRoot, 'package.json'));
  return pathToFileURL(require.resolve('tsx')).href;
}

function runCase(spec: CaseSpec, loader: string, timeoutMs: number): CaseOutcome {
  const child = spawnSync(process.execPath, ['--expose-gc', '--import', loader, path.join(benchDir, 'case.ts'), JSON.stringify(spec)], {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'], // the child's stderr (errors, warnings) passes straight through
    timeout: timeoutMs,
    maxBuffer: 16 * 1024 * 1024,
  });
  if (child.error) {
    const timedOut = (child.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    return { status: 'failed', spec, reason: timedOut ? `timed out after ${timeoutMs / 1000} s (--timeout)` : child.error.message };
  }
  if (child.signal) return { status: 'failed', spec, reason: `killed by ${child.signal}${child.signal === 'SIGKILL' ? ' (out of memory?)' : ''}` };
  if (child.status !== 0) return { status: 'failed', spec, reason: `exit code ${String(child.status)} (its error is above)` };
  const lastLine = child.stdout.trim().split('\n').pop() ?? '';
  try {
    return { status: 'ok', spec, result: JSON.parse(lastLine) as CaseResult };
  } catch {
    return { status: 'failed', spec, reason: `unreadable output: ${lastLine.slice(0, 200)}` };
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.listOnly) {
    for (const { spec, skipReason } of planCases(options)) {
      const what = `${METHOD_LABELS[spec.method]} ${spec.pass} N=${spec.n} D=${spec.d}`;
      process.stdout.write(`${what}: ${skipReason !== undefined ? `skip (${skipReason})` : `${spec.warmup} warm-up + ${spec.repeats} timed, ${spec.threads} threads`}\n`);
    }
    return;
  }

  // Load the library here once, before spawning anything, so a missing build fails in one
  // clear message rather than once per case; its backendInfo() also goes into the JSON.
  let backend: unknown;
  try {
    const lib = await import('../lib/index.js');
    backend = lib.backendInfo();
  } catch (error) {
    process.stderr.write(`bench: cannot load the library (build it first: npm run build)\n  ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }

  const machine = describeMachine(repoRoot);
  const loader = tsxLoaderUrl();
  const plan = planCases(options);
  process.stderr.write(
    `bench: ${plan.length} cases, N ∈ {${[...new Set(plan.map((c) => c.spec.n))].join(', ')}}, ${options.threads} threads, ` +
      `memory budget ${formatBytes(options.memBudgetBytes)}; ${machine.cpuModel}, ${machine.cores} cores\n`,
  );

  const outcomes: CaseOutcome[] = [];
  const started = Date.now();
  for (const [index, planned] of plan.entries()) {
    const outcome: CaseOutcome =
      planned.skipReason !== undefined ? { status: 'skipped', spec: planned.spec, reason: planned.skipReason } : runCase(planned.spec, loader, options.timeoutMs);
    outcomes.push(outcome);
    process.stderr.write(`${progressLine(index + 1, plan.length, outcome)}\n`);
  }
  const elapsedS = (Date.now() - started) / 1000;

  process.stdout.write(`\n${formatTable(outcomes)}\n\n`);
  process.stdout.write(`${machine.cpuModel}, ${machine.cores} cores, ${options.threads} threads, node ${machine.node}; ${elapsedS.toFixed(0)} s in all\n`);

  if (options.out !== null) {
    mkdirSync(path.dirname(options.out), { recursive: true });
    const report = {
      date: new Date().toISOString(),
      command: process.argv.slice(2),
      options,
      machine,
      backend,
      elapsedSeconds: elapsedS,
      cases: outcomes.map((o) => (o.status === 'ok' ? { status: o.status, ...o.result } : o)),
    };
    writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`results: ${path.relative(process.cwd(), options.out)}\n`);
  }
  if (outcomes.some((o) => o.status === 'failed')) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
