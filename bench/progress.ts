// Progress of a benchmark run on stderr, with an estimate of the time left.
//
// On a terminal: a cli-progress bar (redrawn every second) with the case running now, the
// cases done, the time spent and the time left; each finished case's line is printed above
// the bar. Elsewhere (a pipe, a CI log): one plain line per finished case, ending with the
// estimate, and nothing redrawn.
//
// The estimate: a case costs `calls × flops per call / rate + overhead`, where the rate is the
// measured GEMM-work rate of the cases done so far (flops over the time their calls took) and
// the overhead (child start-up, building the inputs) is their mean wall time beyond the calls.
// Before the first case finishes, the priors below stand in for both.
import type { MultiBar, SingleBar } from 'cli-progress';

/**
 * cli-progress, a devDependency: an installed package's `npx siglip-kernels bench` may not
 * have it, and then prints one plain line per case on a terminal too.
 */
function loadCliProgress(): typeof import('cli-progress') | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('cli-progress') as typeof import('cli-progress');
  } catch {
    return null;
  }
}

/** ~150 GFLOP/s: the fused and naive losses on the 2-core development machine (bench/NOTES.md). */
const PRIOR_FLOPS_PER_MS = 150e6;
/** Child process, tsx, loading the addon and building inputs at small N. */
const PRIOR_OVERHEAD_MS = 700;

/** A case as the progress display sees it. */
export interface ProgressCase {
  /** Shown while it runs, e.g. "fused sigmoid fwd+bwd N=4096". */
  label: string;
  /** Kernel calls it makes (warm-up and timed); 0 for a case that will not run. */
  calls: number;
  /** Flops of one call (cases.ts caseFlops). */
  flopsPerCall: number;
}

/** What a finished case measured, for the rate estimate. */
export interface CaseTiming {
  /** Wall time of the whole case (spawn to exit), ms. */
  wallMs: number;
  /** Time its kernel calls took, ms (0 when it did not run). */
  callsMs: number;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export class BenchProgress {
  private readonly cases: readonly ProgressCase[];
  private readonly stream: NodeJS.WriteStream;
  private readonly multi: MultiBar | null;
  private bar: SingleBar | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private readonly started = Date.now();
  private current = -1;
  private currentStarted = 0;
  private done = 0;
  private flopsDone = 0;
  private callsMsDone = 0;
  private overheadMsDone = 0;
  private casesRun = 0;

  constructor(cases: readonly ProgressCase[], stream: NodeJS.WriteStream = process.stderr) {
    this.cases = cases;
    this.stream = stream;
    const cliProgress = stream.isTTY ? loadCliProgress() : null;
    this.multi = cliProgress
      ? new cliProgress.MultiBar(
          {
            stream,
            format: '{bar} {percentage}% | {done}/{count} cases | {elapsed} spent, ~{left} left | {current}',
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 1,
            barsize: 24,
            autopadding: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  }

  private rate(): number {
    return this.callsMsDone > 0 ? this.flopsDone / this.callsMsDone : PRIOR_FLOPS_PER_MS;
  }

  private overhead(): number {
    return this.casesRun > 0 ? this.overheadMsDone / this.casesRun : PRIOR_OVERHEAD_MS;
  }

  private estimateMs(c: ProgressCase): number {
    return c.calls === 0 ? 0 : this.overhead() + (c.calls * c.flopsPerCall) / this.rate();
  }

  /** Estimated ms until the last case finishes. */
  remainingMs(): number {
    let left = 0;
    for (let i = Math.max(this.current, 0); i < this.cases.length; i++) {
      const c = this.cases[i]!;
      const estimate = this.estimateMs(c);
      left += i === this.current ? Math.max(0.05 * estimate, estimate - (Date.now() - this.currentStarted)) : estimate;
    }
    return left;
  }

  private redraw(): void {
    if (this.multi === null) return;
    const spent = Date.now() - this.started;
    const left = this.remainingMs();
    const total = Math.max(1, spent + left);
    const payload = {
      done: this.done,
      count: this.cases.length,
      elapsed: formatDuration(spent),
      left: formatDuration(left),
      current: this.current >= 0 && this.current < this.cases.length ? this.cases[this.current]!.label : '',
    };
    if (this.bar === null) {
      this.bar = this.multi.create(total, spent, payload);
      this.ticker = setInterval(() => this.redraw(), 1000);
    } else {
      this.bar.setTotal(total);
      this.bar.update(spent, payload);
    }
  }

  /** Case `index` (0-based) starts now. */
  begin(index: number): void {
    this.current = index;
    this.currentStarted = Date.now();
    this.redraw();
  }

  /** Case `index` finished; `line` describes its result (printed above the bar, or as a plain line). */
  end(index: number, line: string, timing: CaseTiming): void {
    const c = this.cases[index]!;
    this.done++;
    if (timing.callsMs > 0 && c.calls > 0) {
      this.flopsDone += c.calls * c.flopsPerCall;
      this.callsMsDone += timing.callsMs;
      this.overheadMsDone += Math.max(0, timing.wallMs - timing.callsMs);
      this.casesRun++;
    }
    this.current = index + 1;
    this.currentStarted = Date.now();
    if (this.multi === null) {
      const left = this.done < this.cases.length ? `; ~${formatDuration(this.remainingMs())} left` : '';
      this.stream.write(`${line}${left}\n`);
    } else {
      this.log(line);
      this.redraw();
    }
  }

  /** A message that must not garble the bar (e.g. a child's stderr). */
  log(text: string): void {
    if (this.multi === null) this.stream.write(text.endsWith('\n') ? text : `${text}\n`);
    else this.multi.log(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Removes the bar (the logged lines stay). */
  stop(): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    if (this.multi !== null) {
      this.multi.update(); // flush logged lines
      this.multi.stop();
    }
  }
}
