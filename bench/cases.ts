// What a benchmark case is, shared by the driver (run.ts) and the child that runs one case
// (case.ts): the case description that travels as JSON on the child's command line, the
// result it prints back, and the arithmetic both sides need (flop counts, memory estimates).

/** The methods `--methods` accepts, in the order the table lists them. */
export const METHODS = ['fused', 'naive-sigmoid', 'naive-softmax', 'gemm'] as const;
export type MethodName = (typeof METHODS)[number];

/** fwd: the loss only. fwd+bwd: the loss and all four gradients. gemm: one A·Bᵀ product. */
export type Pass = 'fwd' | 'fwd+bwd' | 'gemm';

export const METHOD_LABELS: Record<MethodName, string> = {
  fused: 'fused sigmoid',
  'naive-sigmoid': 'naive sigmoid',
  'naive-softmax': 'naive softmax',
  gemm: 'gemm A·Bᵀ',
};

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
 * skip cases that would not fit in --mem-budget (the fused loss holds none). The naive
 * sigmoid keeps the logits and, with gradients, G; the naive softmax keeps the logits, the
 * row and the column softmax; the GEMM's output C is one.
 */
export function estimatedSquareBuffers(method: MethodName, pass: Pass): number {
  switch (method) {
    case 'fused':
      return 0;
    case 'naive-sigmoid':
      return pass === 'fwd+bwd' ? 2 : 1;
    case 'naive-softmax':
      return pass === 'fwd+bwd' ? 3 : 2;
    case 'gemm':
      return 1;
  }
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

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : 0.5 * ((sorted[mid - 1] ?? Number.NaN) + upper);
}
