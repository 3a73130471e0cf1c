/**
 * An independent float64 reference of SPEC.md for the tests, written straight from its
 * formulas (not from the C++ code): the sigmoid and softmax losses with every gradient, with
 * and without label ids. Plus a seeded RNG, random unit-norm embeddings and error measures.
 *
 * Softmax normalisation: L = ½[(1/N) Σ_i CE_row_i + (1/M) Σ_j CE_col_j]. SPEC.md writes 1/N
 * for both terms because it assumes N = M, where the two agree; with label ids N may differ
 * from M, and each term is then the mean over its own rows / columns (as the core does).
 */

export interface LossInputs {
  image: Float32Array; // N×D
  text: Float32Array; // M×D
  n: number;
  m: number;
  d: number;
  logitScale: number;
  logitBias?: number;
  imageIds?: Int32Array;
  textIds?: Int32Array;
}

export interface ReferenceResult {
  loss: number;
  gradImage: Float64Array;
  gradText: Float64Array;
  dLogitScale: number;
  dLogitBias: number;
  /** Σ |terms| of ∂L/∂s and ∂L/∂b: the natural scale for judging those sums' rounding. */
  dLogitScaleMagnitude: number;
  dLogitBiasMagnitude: number;
  /**
   * The softmax's gradients are made of P − T in float32 (SPEC.md): where a probability is
   * within float32's resolution (2^-24) of its target that difference is rounding, so
   * gradients whose norm is below ‖t · 2^-24 · (1/2N + 1/2M) · Y‖ (image; X for text) are
   * noise for every float32 implementation. Absent for the sigmoid.
   */
  gradImageFloor?: number;
  gradTextFloor?: number;
  /** The same floor for ∂L/∂s: 2^-24 · Σ over the positives of |t·S| · (target/2N + target/2M). */
  dLogitScaleFloor?: number;
}

/** Mulberry32: a small, fast, seeded 32-bit generator; returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal sample (Box–Muller). */
export function gaussian(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** rows × cols with i.i.d. normal entries, each row then scaled to unit L2 norm (in float64). */
export function randomUnitRows(random: () => number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const row = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < cols; c++) {
      row[c] = gaussian(random);
      sum += row[c]! * row[c]!;
    }
    const inv = 1 / Math.sqrt(sum);
    for (let c = 0; c < cols; c++) out[r * cols + c] = row[c]! * inv;
  }
  return out;
}

/** `count` ids drawn from [0, distinct): with distinct < count there are duplicates. */
export function randomIds(random: () => number, count: number, distinct: number): Int32Array {
  const ids = new Int32Array(count);
  for (let k = 0; k < count; k++) ids[k] = Math.floor(random() * distinct);
  return ids;
}

/** ‖out − ref‖₂ / ‖ref‖₂ (0 when both are 0). */
export function relativeError(out: ArrayLike<number>, ref: ArrayLike<number>, floor = 0): number {
  if (out.length !== ref.length) throw new Error(`length ${out.length} vs ${ref.length}`);
  let diff = 0;
  let norm = 0;
  for (let k = 0; k < ref.length; k++) {
    diff += (out[k]! - ref[k]!) ** 2;
    norm += ref[k]! ** 2;
  }
  norm = Math.max(norm, floor * floor); // ‖ref‖, or `floor` where ‖ref‖ is below it
  if (norm === 0) return Math.sqrt(diff);
  return Math.sqrt(diff / norm);
}

/** |out − ref| / max(|ref|, scale): a relative error that stays sensible when ref nearly cancels. */
export function scalarError(out: number, ref: number, scale = 0): number {
  const denominator = Math.max(Math.abs(ref), scale);
  return denominator === 0 ? Math.abs(out - ref) : Math.abs(out - ref) / denominator;
}

/**
 * The softmax loss's error, relative above the resolution of its sums: each row and column
 * adds log Σ with Σ = 1 + (its other terms) summed in float64 (SPEC.md), so a loss under
 * float64's resolution of 1, 2^-52, is 0 or noise for every implementation (t = 100 with
 * well-separated positives gives 1e-31); there the difference is measured against that floor.
 */
export function softmaxLossError(out: number, ref: number, tolerance: number): number {
  return scalarError(out, ref, SOFTMAX_LOSS_RESOLUTION / tolerance);
}
export const SOFTMAX_LOSS_RESOLUTION = 2 ** -52;
/** float32's resolution of 1: the softmax gradients' P − T cannot resolve less (ReferenceResult.gradImageFloor). */
const FLOAT32_RESOLUTION = 2 ** -24;

function softplus(v: number): number {
  return Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));
}

function sigmoid(v: number): number {
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}

function isPositive(inputs: LossInputs, i: number, j: number): boolean {
  return inputs.imageIds !== undefined ? inputs.imageIds[i] === inputs.textIds![j] : i === j;
}

/** S = X·Yᵀ in float64 (from the float32 inputs, exactly widened), N×M row-major. */
export function similarities(inputs: LossInputs): Float64Array {
  const { n, m, d } = inputs;
  const x = Float64Array.from(inputs.image);
  const y = Float64Array.from(inputs.text);
  const s = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += x[i * d + k]! * y[j * d + k]!;
      s[i * m + j] = dot;
    }
  }
  return s;
}

/** ∂L/∂X = H·Y and ∂L/∂Y = Hᵀ·X for H = ∂L/∂S (N×M). */
function chainThroughSimilarity(inputs: LossInputs, h: Float64Array): { gradImage: Float64Array; gradText: Float64Array } {
  const { n, m, d } = inputs;
  const gradImage = new Float64Array(n * d);
  const gradText = new Float64Array(m * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const hij = h[i * m + j]!;
      if (hij === 0) continue;
      for (let k = 0; k < d; k++) {
        gradImage[i * d + k] = gradImage[i * d + k]! + hij * inputs.text[j * d + k]!;
        gradText[j * d + k] = gradText[j * d + k]! + hij * inputs.image[i * d + k]!;
      }
    }
  }
  return { gradImage, gradText };
}

/**
 * SPEC.md sigmoid loss: u_ij = z_ij (t S_ij + b), L = (1/N) Σ softplus(−u_ij);
 * g_ij = −(1/N) z_ij σ(−u_ij), ∂X = t G Y, ∂Y = t Gᵀ X, ∂b = Σ g, ∂s = t Σ g S.
 */
export function sigmoidReference(inputs: LossInputs): ReferenceResult {
  const { n, m } = inputs;
  const t = Math.exp(inputs.logitScale);
  const b = inputs.logitBias ?? 0;
  const s = similarities(inputs);
  const h = new Float64Array(n * m); // ∂L/∂S = t·g
  let loss = 0;
  let dBias = 0;
  let dBiasMagnitude = 0;
  let dScale = 0;
  let dScaleMagnitude = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const z = isPositive(inputs, i, j) ? 1 : -1;
      const sij = s[i * m + j]!;
      const u = z * (t * sij + b);
      loss += softplus(-u);
      const g = (-z * sigmoid(-u)) / n;
      dBias += g;
      dBiasMagnitude += Math.abs(g);
      dScale += t * g * sij;
      dScaleMagnitude += Math.abs(t * g * sij);
      h[i * m + j] = t * g;
    }
  }
  return {
    loss: loss / n,
    ...chainThroughSimilarity(inputs, h),
    dLogitScale: dScale,
    dLogitBias: dBias,
    dLogitScaleMagnitude: dScaleMagnitude,
    dLogitBiasMagnitude: dBiasMagnitude,
  };
}

/**
 * SPEC.md softmax loss: logits = t S; row i's target T_row is uniform over its positives,
 * column j's T_col likewise; L = ½[(1/N) Σ_i (lse_i − Σ_j T_row_ij logits_ij) + (1/M) Σ_j (...)];
 * ∂L/∂logits = (P_row − T_row)/(2N) + (P_col − T_col)/(2M), ∂S = t ∂logits, ∂s = Σ ∂logits ⊙ logits.
 */
export function softmaxReference(inputs: LossInputs): ReferenceResult {
  const { n, m } = inputs;
  const t = Math.exp(inputs.logitScale);
  const s = similarities(inputs);
  const logits = s.map((v) => t * v);
  const rowPositives = new Float64Array(n);
  const colPositives = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      if (isPositive(inputs, i, j)) {
        rowPositives[i] = rowPositives[i]! + 1;
        colPositives[j] = colPositives[j]! + 1;
      }
    }
  }
  // Each row's and column's log-sum-exp as max + log1p(the rest): a loss term lse − l is then
  // (max − l) + log1p(rest), exact to float64's relative precision even when it is ~1e-15
  // (t = 100 and well-separated positives), where max + log(sum) − l would round to ±ulp(max).
  const lseOf = (count: number, logit: (k: number) => number): { max: number; log1pRest: number } => {
    let top = 0;
    for (let k = 1; k < count; k++) if (logit(k) > logit(top)) top = k;
    const max = logit(top);
    let rest = 0;
    for (let k = 0; k < count; k++) if (k !== top) rest += Math.exp(logit(k) - max);
    return { max, log1pRest: Math.log1p(rest) };
  };
  const rowLse = Array.from({ length: n }, (_, i) => lseOf(m, (j) => logits[i * m + j]!));
  const colLse = Array.from({ length: m }, (_, j) => lseOf(n, (i) => logits[i * m + j]!));
  // lse − l (exp(l − lse) = exp(−(lse − l)))
  const gap = (lse: { max: number; log1pRest: number }, l: number) => lse.max - l + lse.log1pRest;
  let rowLoss = 0;
  let colLoss = 0;
  let dScale = 0;
  let dScaleMagnitude = 0;
  let dScaleFloor = 0;
  const h = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const l = logits[i * m + j]!;
      const positive = isPositive(inputs, i, j);
      const rowTarget = positive ? 1 / rowPositives[i]! : 0;
      const colTarget = positive ? 1 / colPositives[j]! : 0;
      const rowGap = gap(rowLse[i]!, l);
      const colGap = gap(colLse[j]!, l);
      rowLoss += rowTarget * rowGap;
      colLoss += colTarget * colGap;
      const dLogit = (Math.exp(-rowGap) - rowTarget) / (2 * n) + (Math.exp(-colGap) - colTarget) / (2 * m);
      dScale += dLogit * l;
      dScaleMagnitude += Math.abs(dLogit * l);
      if (positive) dScaleFloor += FLOAT32_RESOLUTION * Math.abs(l) * (rowTarget / (2 * n) + colTarget / (2 * m));
      h[i * m + j] = t * dLogit;
    }
  }
  const noise = t * FLOAT32_RESOLUTION * (1 / (2 * n) + 1 / (2 * m));
  return {
    loss: 0.5 * (rowLoss / n + colLoss / m),
    ...chainThroughSimilarity(inputs, h),
    dLogitScale: dScale,
    dLogitBias: 0,
    dLogitScaleMagnitude: dScaleMagnitude,
    dLogitBiasMagnitude: 0,
    gradImageFloor: noise * Math.sqrt(inputs.text.reduce((a, x) => a + x * x, 0)),
    gradTextFloor: noise * Math.sqrt(inputs.image.reduce((a, x) => a + x * x, 0)),
    dLogitScaleFloor: dScaleFloor,
  };
}
