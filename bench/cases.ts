// What a benchmark case is, shared by the driver (run.ts) and the child that runs one case
// (case.ts): the case description that travels as JSON on the child's command line, the
// result it prints back, and the arithmetic both sides need (flop counts, memory estimates).

/** What one benchmarked method is: how the table names it and which library call runs it. */
export interface MethodInfo {
  /** The name tables, plots and progress lines use. */
  label: string;
  /** Which call runs it: `sigmoidLoss*Sync`, `softmaxLoss*Sync`, `gemmABt`, or the sigmoid loss in tfjs ops (bench/tfjs_autodiff.ts). */
  loss: 'sigmoid' | 'softmax' | 'gemm' | 'tfjs';
  /** The `options.method` passed to the loss (absent for gemm). */
  libMethod?: string;
  /** The `options.precision` passed to the loss, when not the default. */
  precision?: string;
  /** N×M float32 buffers it holds at its peak, forward and forward+backward (see estimatedSquareBuffers). */
  squareBuffers: { fwd: number; 'fwd+bwd': number };
  /** The largest N the report runs it at (slow methods; other runs take any --n). */
  reportMaxN?: number;
}

/**
 * Every method `--methods` accepts, in the order tables and plots list them. Adding a method
 * of the library to the benchmark, its table and the report's plots is one line here (and
 * one in REPORT_METHODS). A method the library does not implement yet (its probe call
 * throws, see run.ts) is left out of a run with a note rather than failing it.
 */
export const METHOD_INFO = {
  fused: { label: 'fused sigmoid', loss: 'sigmoid', libMethod: 'fused', squareBuffers: { fwd: 0, 'fwd+bwd': 0 } },
  // The fused sigmoid with its GEMMs in bfloat16 (float32 inputs rounded as they are packed; CPU).
  bf16: {
    label: 'fused sigmoid bf16',
    loss: 'sigmoid',
    libMethod: 'fused',
    precision: 'bf16',
    squareBuffers: { fwd: 0, 'fwd+bwd': 0 },
  },
  // O(N) memory: row and column statistics, no N×M buffer.
  'chunked-softmax': { label: 'chunked softmax', loss: 'softmax', libMethod: 'chunked', squareBuffers: { fwd: 0, 'fwd+bwd': 0 } },
  // The logits and, with gradients, G.
  'naive-sigmoid': { label: 'naive sigmoid', loss: 'sigmoid', libMethod: 'naive', squareBuffers: { fwd: 1, 'fwd+bwd': 2 } },
  // The logits, the row and the column softmax.
  'naive-softmax': { label: 'naive softmax', loss: 'softmax', libMethod: 'naive', squareBuffers: { fwd: 2, 'fwd+bwd': 3 } },
  // Its output C.
  gemm: { label: 'gemm A·Bᵀ', loss: 'gemm', squareBuffers: { fwd: 1, 'fwd+bwd': 1 } },
  // The sigmoid loss in TensorFlow.js ops on its CPU backend, gradients by tfjs's autodiff: what
  // a tfjs user has without siglip-kernels/tfjs. Every intermediate is N×M (logits, its pieces,
  // softplus) and the tape keeps them for the backward pass. Single-threaded JavaScript: about
  // 18 s per fwd+bwd call at N = 1024, D = 768, so the report stops at N = 1024.
  'tfjs-autodiff': { label: 'tfjs autodiff', loss: 'tfjs', squareBuffers: { fwd: 6, 'fwd+bwd': 16 }, reportMaxN: 1024 },
} as const satisfies Record<string, MethodInfo>;

export type MethodName = keyof typeof METHOD_INFO;

/** The methods `--methods` accepts, in the order the table lists them. */
export const METHODS = Object.keys(METHOD_INFO) as MethodName[];

/** The methods a run without --methods times: all but tfjs autodiff (minutes per case at the default N; ask for it by name). */
export const DEFAULT_METHODS: readonly MethodName[] = METHODS.filter((m) => m !== 'tfjs-autodiff');

/** The methods `--report` runs (the plots' lines), when the library implements them. */
export const REPORT_METHODS: readonly MethodName[] = ['fused', 'bf16', 'chunked-softmax', 'naive-sigmoid', 'naive-softmax', 'tfjs-autodiff'];

/** fwd: the loss only. fwd+bwd: the loss and all four gradients. gemm: one A·Bᵀ product. */
export type Pass = 'fwd' | 'fwd+bwd' | 'gemm';

export const METHOD_LABELS = Object.fromEntries(METHODS.map((m) => [m, METHOD_INFO[m].label])) as Record<MethodName, string>;

export interface CaseSpec {
  method: MethodName;
  pass: Pass;
  n: number; // image rows N (also the GEMM's m)
  m: number; // text rows M (also the GEMM's n); the loss cases use M = N
  d: number; // embedding width D (the GEMM's k)
  threads: number;
  warmup: number; // untimed calls; the first one is also the memory measurement
  repeats: number; // timed calls; the report uses their median
  seed: number;
  /** Where the losses run (`--device`; default 'cpu'). The GEMM method is CPU-only. */
  device?: 'cpu' | 'cuda';
}

export interface CaseResult {
  spec: CaseSpec;
  timesMs: number[]; // every timed call, in order
  medianMs: number;
  firstCallMs: number; // the first (untimed) call: includes one-time costs such as thread start-up
  loss: number | null; // null for gemm
  /** RSS (bytes) after the inputs exist and the addon is loaded, just before the first call. */
  rssBaselineBytes: number;
  /** process.resourceUsage().maxRSS (bytes) before and after the first call. */
  maxRssBeforeBytes: number;
  maxRssAfterBytes: number;
  /** Bytes of what the call returns (gradients, or the GEMM's C), excluded from the extra. */
  outputBytes: number;
  /** Peak RSS during the first call beyond the baseline and the outputs (see case.ts). */
  peakExtraBytes: number;
  /**
   * True when the high-water mark could not be reset before the call and the call did not
   * raise it: then peakExtraBytes is only an upper bound (the true figure is at most that).
   */
  peakExtraIsUpperBound: boolean;
  /** Whether /proc/self/clear_refs reset the high-water mark to the baseline (Linux). */
  highWaterReset: boolean;
  setupMs: number; // building the inputs
}

/** Flops the timed call performs, counting only the GEMM work: 2·N·M·D per product. */
export function caseFlops(spec: CaseSpec): number {
  const perGemm = 2 * spec.n * spec.m * spec.d;
  // Forward: S = X·Yᵀ. Backward adds G·Y (for ∂X) and Gᵀ·X (for ∂Y): three products in all.
  return spec.pass === 'fwd+bwd' ? 3 * perGemm : perGemm;
}

/**
 * A conservative estimate of the N×M float32 buffers a case holds at its peak, used only to
 * skip cases that would not fit in --mem-budget (the fused loss holds none); the figures are
 * METHOD_INFO's.
 */
export function estimatedSquareBuffers(method: MethodName, pass: Pass): number {
  return METHOD_INFO[method].squareBuffers[pass === 'fwd+bwd' ? 'fwd+bwd' : 'fwd'];
}

/** Estimated bytes beyond inputs and gradients: the N×M buffers above. */
export function estimatedExtraBytes(spec: Pick<CaseSpec, 'method' | 'pass' | 'n' | 'm'>): number {
  return estimatedSquareBuffers(spec.method, spec.pass) * spec.n * spec.m * 4;
}

/**
 * Timed runs per case when --repeats is not given: fewer for big N, so the default suite
 * stays within a few minutes on two cores (at N = 16384 one fwd+bwd call is ~1.2 TFLOP).
 */
export function defaultRepeats(n: number): number {
  if (n <= 1024) return 7;
  if (n <= 2048) return 5;
  if (n <= 4096) return 3;
  if (n <= 8192) return 2;
  return 1;
}

/**
 * Timed runs per case in the `--report` suite (fewer than defaultRepeats: the default report
 * must finish in under two minutes on two cores, and its plots span orders of magnitude).
 */
export function reportRepeats(n: number): number {
  if (n <= 1024) return 5;
  if (n <= 2048) return 3;
  if (n <= 8192) return 2;
  return 1;
}

// mulberry32: a small, fast, seedable generator; good enough for benchmark inputs.
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : 0.5 * ((sorted[mid - 1] ?? Number.NaN) + upper);
}
