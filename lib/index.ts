/**
 * siglip-kernels: the SigLIP sigmoid contrastive loss and the CLIP softmax loss, computed by
 * native C++ kernels (fused, tiled, SIMD, multi-threaded) behind a typed API.
 *
 * Shapes: `image` is X (N×D), `text` is Y (M×D), one embedding per row, float32, row-major.
 * The package uses embeddings as given; L2-normalise them first (see {@link normalizeRows}).
 * The exact formulas are in SPEC.md.
 *
 * Every loss comes in four forms: `xLoss` (Promise of the loss), `xLossSync`, `xLossWithGrad`
 * (Promise of loss and gradients) and `xLossWithGradSync`. The Promise forms compute on
 * libuv's thread pool, off the JavaScript thread; they validate their arguments first and
 * reject (never throw) on bad input. **Do not mutate (or transfer) the input arrays until
 * the Promise settles**: the native code reads them in place.
 *
 * @packageDocumentation
 */
import { loadAddon } from './loader';
import { checkFitsTypedArray, matrix, type Matrix } from './matrix';
import type { NativeLossResult } from './native';
import { CUDA_UNAVAILABLE_REASON, MAX_THREADS, defaultThreads } from './options';
import type { SigmoidLossOptions, SoftmaxLossOptions } from './options';
import { prepareLossCall } from './request';
import { checkFloat32Array, checkIntegerInRange, checkPositiveInteger, invalidValue } from './validate';

export { matrix, type Matrix };
export { normalizeRows, NORMALIZE_EPSILON, type NormalizedRows } from './normalize';
export {
  DEFAULT_SIGMOID_LOGIT_BIAS,
  DEFAULT_SIGMOID_LOGIT_SCALE,
  DEFAULT_SOFTMAX_LOGIT_SCALE,
  ERR_SIGLIP_NO_CUDA,
  ERR_SIGLIP_NOT_IMPLEMENTED,
  MAX_THREADS,
  type CommonLossOptions,
  type Device,
  type SigmoidLossOptions,
  type SigmoidMethod,
  type SoftmaxLossOptions,
  type SoftmaxMethod,
} from './options';
export { ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, type SiglipError } from './validate';

/** Gradients of the sigmoid loss with respect to each input. */
export interface SigmoidLossGradients {
  /** ∂L/∂X, N×D row-major (a new Float32Array). */
  image: Float32Array;
  /** ∂L/∂Y, M×D row-major (a new Float32Array). */
  text: Float32Array;
  /** ∂L/∂s, through the temperature t = exp(s): t · Σ_ij g_ij · S_ij. */
  logitScale: number;
  /** ∂L/∂b = Σ_ij g_ij. */
  logitBias: number;
}

/** The sigmoid loss and its gradients. */
export interface SigmoidLossWithGrad {
  /** The loss L (nats per image row). */
  loss: number;
  /** ∂L with respect to image, text, logitScale and logitBias. */
  grad: SigmoidLossGradients;
}

/** Gradients of the softmax loss with respect to each input (it has no bias). */
export interface SoftmaxLossGradients {
  /** ∂L/∂X, N×D row-major (a new Float32Array). */
  image: Float32Array;
  /** ∂L/∂Y, M×D row-major (a new Float32Array). */
  text: Float32Array;
  /** ∂L/∂s, through the temperature t = exp(s). */
  logitScale: number;
}

/** The softmax loss and its gradients. */
export interface SoftmaxLossWithGrad {
  /** The loss L (nats). */
  loss: number;
  /** ∂L with respect to image, text and logitScale. */
  grad: SoftmaxLossGradients;
}

function sigmoidResult(result: NativeLossResult): SigmoidLossWithGrad {
  const g = result.grad!;
  return { loss: result.loss, grad: { image: g.image, text: g.text, logitScale: g.logitScale, logitBias: g.logitBias! } };
}

function softmaxResult(result: NativeLossResult): SoftmaxLossWithGrad {
  const g = result.grad!;
  return { loss: result.loss, grad: { image: g.image, text: g.text, logitScale: g.logitScale } };
}

/**
 * The SigLIP sigmoid loss, synchronously: with S_ij = ⟨x_i, y_j⟩, z_ij = +1 for positive
 * pairs and −1 otherwise, and t = exp(logitScale),
 * L = (1/N) · Σ_i Σ_j softplus(−z_ij · (t · S_ij + logitBias)),
 * i.e. the mean over image rows of the summed binary cross-entropies of all N×M pairs.
 * Pair (i, j) is positive when i = j, or with label ids when `imageIds[i] === textIds[j]`.
 *
 * Defaults: logitScale ln 10 (t = 10), logitBias −10, method `'fused'`, threads
 * `os.availableParallelism()`, device `'cpu'`. The loss is accumulated in float64 (dot
 * products in float32) and is bit-identical for every thread count.
 *
 * @param image - X, N×D.
 * @param text - Y, M×D (M = N unless label ids are given).
 * @param options - see {@link SigmoidLossOptions}.
 * @returns the loss L (a non-negative number; nats per image row).
 * @throws TypeError for arguments of the wrong type (non-Float32Array data, non-Int32Array ids,
 *   unknown option names, only one of imageIds/textIds), RangeError for bad values (sizes that
 *   do not match, N ≠ M without ids, different widths D, NaN/Infinity in the data or scalars,
 *   |logitScale| > 80, bad threads or method), Error with code `ERR_SIGLIP_NO_CUDA` for a CUDA
 *   device, `ERR_SIGLIP_OUT_OF_MEMORY` if memory runs out, `ERR_SIGLIP_ADDON_LOAD` if the
 *   native addon cannot be loaded.
 *
 * @example
 * ```ts
 * const x = matrix(new Float32Array([1, 0, 0, 1]), 2, 2);
 * const loss = sigmoidLossSync(x, x); // 2 pairs of matching unit embeddings
 * ```
 */
export function sigmoidLossSync(image: Matrix, text: Matrix, options?: SigmoidLossOptions): number {
  const call = prepareLossCall('sigmoid', image, text, options);
  return loadAddon().addon.sigmoidLoss(call.image, call.text, call.options, false).loss;
}

/**
 * The SigLIP sigmoid loss, computed off the JavaScript thread: the same number as
 * {@link sigmoidLossSync} (see there for the formula, defaults and errors).
 * Do not mutate or transfer `image.data`, `text.data` or the ids until the Promise settles.
 *
 * @returns a Promise of the loss L; it rejects (instead of throwing) on bad arguments.
 *
 * @example
 * ```ts
 * const loss = await sigmoidLoss(image, text, { logitScale: Math.log(10), logitBias: -10 });
 * ```
 */
export async function sigmoidLoss(image: Matrix, text: Matrix, options?: SigmoidLossOptions): Promise<number> {
  const call = prepareLossCall('sigmoid', image, text, options);
  return (await loadAddon().addon.sigmoidLossAsync(call.image, call.text, call.options, false)).loss;
}

/**
 * The SigLIP sigmoid loss and all its gradients, synchronously. With
 * g_ij = −(1/N) · z_ij · σ(−z_ij · (t · S_ij + b)) (G is never materialised by the fused method):
 * ∂L/∂X = t · G · Y, ∂L/∂Y = t · Gᵀ · X, ∂L/∂b = Σ_ij g_ij, ∂L/∂s = t · Σ_ij g_ij · S_ij.
 * Formula, defaults and errors as {@link sigmoidLossSync}. In data-parallel training, where
 * frameworks average gradients over ranks, these are gradients of the global loss.
 *
 * @returns `{ loss, grad: { image, text, logitScale, logitBias } }`; `grad.image` (N×D) and
 *   `grad.text` (M×D) are new Float32Arrays.
 *
 * @example
 * ```ts
 * const { loss, grad } = sigmoidLossWithGradSync(image, text);
 * logitScale -= lr * grad.logitScale;
 * ```
 */
export function sigmoidLossWithGradSync(image: Matrix, text: Matrix, options?: SigmoidLossOptions): SigmoidLossWithGrad {
  const call = prepareLossCall('sigmoid', image, text, options);
  return sigmoidResult(loadAddon().addon.sigmoidLoss(call.image, call.text, call.options, true));
}

/**
 * The SigLIP sigmoid loss and all its gradients, computed off the JavaScript thread: the same
 * numbers as {@link sigmoidLossWithGradSync}. Do not mutate or transfer the inputs until the
 * Promise settles.
 *
 * @returns a Promise of `{ loss, grad: { image, text, logitScale, logitBias } }`; it rejects on bad arguments.
 *
 * @example
 * ```ts
 * const { loss, grad } = await sigmoidLossWithGrad(image, text, { threads: 4 });
 * ```
 */
export async function sigmoidLossWithGrad(
  image: Matrix,
  text: Matrix,
  options?: SigmoidLossOptions,
): Promise<SigmoidLossWithGrad> {
  const call = prepareLossCall('sigmoid', image, text, options);
  return sigmoidResult(await loadAddon().addon.sigmoidLossAsync(call.image, call.text, call.options, true));
}

/**
 * The CLIP softmax loss, synchronously: with logits_ij = t · S_ij and t = exp(logitScale),
 * L = ½ · [ (1/N) Σ_i CE(softmax of row i, target row i) + (1/M) Σ_j CE(softmax of column j, target column j) ],
 * where the target of a row (column) is its positive pair, or with label ids the uniform
 * distribution over its positives (then every row and column needs at least one positive).
 * Without ids N = M; with ids N may differ from M.
 *
 * Defaults: logitScale ln(1/0.07) (t ≈ 14.29), method `'naive'` (materialises the N×M
 * logits; the chunked method is not implemented yet), threads `os.availableParallelism()`.
 *
 * @returns the loss L (nats).
 * @throws as {@link sigmoidLossSync}; also TypeError if `logitBias` is given, RangeError
 *   (code `ERR_SIGLIP_NOT_IMPLEMENTED`) for method `'fused'`, and RangeError naming
 *   imageIds/textIds when a row or column has no positive.
 *
 * @example
 * ```ts
 * const loss = softmaxLossSync(image, text, { logitScale: Math.log(1 / 0.07) });
 * ```
 */
export function softmaxLossSync(image: Matrix, text: Matrix, options?: SoftmaxLossOptions): number {
  const call = prepareLossCall('softmax', image, text, options);
  return loadAddon().addon.softmaxLoss(call.image, call.text, call.options, false).loss;
}

/**
 * The CLIP softmax loss, computed off the JavaScript thread: the same number as
 * {@link softmaxLossSync}. Do not mutate or transfer the inputs until the Promise settles.
 *
 * @returns a Promise of the loss; it rejects on bad arguments.
 *
 * @example
 * ```ts
 * const loss = await softmaxLoss(image, text);
 * ```
 */
export async function softmaxLoss(image: Matrix, text: Matrix, options?: SoftmaxLossOptions): Promise<number> {
  const call = prepareLossCall('softmax', image, text, options);
  return (await loadAddon().addon.softmaxLossAsync(call.image, call.text, call.options, false)).loss;
}

/**
 * The CLIP softmax loss and its gradients, synchronously. With P_row, P_col the row- and
 * column-wise softmax of the logits and T the targets,
 * ∂L/∂S_ij = t · [(P_row − T_row)_ij / (2N) + (P_col − T_col)_ij / (2M)], ∂L/∂X = (∂L/∂S) · Y,
 * ∂L/∂Y = (∂L/∂S)ᵀ · X, and ∂L/∂s = Σ_ij ∂L/∂S_ij · S_ij. Errors as {@link softmaxLossSync}.
 *
 * @returns `{ loss, grad: { image, text, logitScale } }` (no logitBias).
 *
 * @example
 * ```ts
 * const { loss, grad } = softmaxLossWithGradSync(image, text);
 * ```
 */
export function softmaxLossWithGradSync(image: Matrix, text: Matrix, options?: SoftmaxLossOptions): SoftmaxLossWithGrad {
  const call = prepareLossCall('softmax', image, text, options);
  return softmaxResult(loadAddon().addon.softmaxLoss(call.image, call.text, call.options, true));
}

/**
 * The CLIP softmax loss and its gradients, computed off the JavaScript thread: the same
 * numbers as {@link softmaxLossWithGradSync}. Do not mutate or transfer the inputs until the
 * Promise settles.
 *
 * @returns a Promise of `{ loss, grad: { image, text, logitScale } }`; it rejects on bad arguments.
 *
 * @example
 * ```ts
 * const { grad } = await softmaxLossWithGrad(image, text, { threads: 2 });
 * ```
 */
export async function softmaxLossWithGrad(
  image: Matrix,
  text: Matrix,
  options?: SoftmaxLossOptions,
): Promise<SoftmaxLossWithGrad> {
  const call = prepareLossCall('softmax', image, text, options);
  return softmaxResult(await loadAddon().addon.softmaxLossAsync(call.image, call.text, call.options, true));
}

/** What {@link backendInfo} reports. */
export interface BackendInfo {
  /** Absolute path of the native addon file that was loaded. */
  binaryPath: string;
  /** Why that file: a local node-gyp build, a shipped prebuild, ... */
  binaryReason: string;
  /** The CPU kernel set in use: `'avx512'`, `'avx2'` or `'generic'`. */
  simd: string;
  /** Why that kernel set (detected CPU features, or the SIGLIP_SIMD environment override). */
  simdReason: string;
  /** Hardware threads the native code sees. */
  hardwareThreads: number;
  /** The thread count calls use when `threads` is not given. */
  defaultThreads: number;
  /** The fused kernel's tile: rows of X × rows of Y per tile (fixed; independent of thread count). */
  tile: {
    /** Image rows per tile. */
    rows: number;
    /** Text rows per tile. */
    cols: number;
  };
  /** Whether a CUDA backend is available, and why not. */
  cuda: {
    /** Always false in this version. */
    available: boolean;
    /** Why no CUDA backend is available. */
    reason: string;
  };
}

/**
 * Describes the backend in use: which addon binary was loaded and why, the SIMD kernel set
 * and why, thread counts, the fused tile shape, and CUDA availability (none in this build).
 * Loads the addon if it was not loaded yet.
 *
 * @throws Error with code `ERR_SIGLIP_ADDON_LOAD` if the native addon cannot be loaded.
 *
 * @example
 * ```ts
 * console.log(backendInfo().simd); // e.g. 'avx2'
 * ```
 */
export function backendInfo(): BackendInfo {
  const { addon, path, reason } = loadAddon();
  const info = addon.backendInfo();
  return {
    binaryPath: path,
    binaryReason: reason,
    simd: info.simd,
    simdReason: info.simdReason,
    hardwareThreads: info.hardwareThreads,
    defaultThreads: defaultThreads(),
    tile: { rows: info.tileRows, cols: info.tileCols },
    cuda: { available: false, reason: CUDA_UNAVAILABLE_REASON },
  };
}

/**
 * The benchmark's floor: C = A · Bᵀ with A m×k and B n×k (row-major float32), computed by the
 * same packed GEMM and micro-kernel the fused loss runs on. A loss over N×M pairs with width
 * D cannot be faster than `gemmABt(X, Y, N, M, D)`, which is how bench/ uses it. It allocates
 * the m×n result, so keep m·n modest.
 *
 * @param a - A, m×k row-major.
 * @param b - B, n×k row-major.
 * @param m - rows of A (and of C), a positive integer.
 * @param n - rows of B (columns of C), a positive integer.
 * @param k - the shared width, a positive integer.
 * @param threads - worker threads (1–1024); default `os.availableParallelism()`.
 * @returns C, m×n row-major, a new Float32Array.
 * @throws TypeError / RangeError (naming a, b, m, n, k or threads) for wrong types or sizes.
 *
 * @example
 * ```ts
 * const c = gemmABt(new Float32Array([1, 2]), new Float32Array([3, 4]), 1, 1, 2); // [11]
 * ```
 */
export function gemmABt(a: Float32Array, b: Float32Array, m: number, n: number, k: number, threads?: number): Float32Array {
  const rowsA = checkPositiveInteger('m', m);
  const rowsB = checkPositiveInteger('n', n);
  const width = checkPositiveInteger('k', k);
  const t = threads === undefined ? defaultThreads() : checkIntegerInRange('threads', threads, 1, MAX_THREADS);
  const arrayA = checkFloat32Array('a', a);
  const arrayB = checkFloat32Array('b', b);
  if (arrayA.length !== rowsA * width) throw invalidValue('a', `a Float32Array of length m × k = ${rowsA * width}`, arrayA);
  if (arrayB.length !== rowsB * width) throw invalidValue('b', `a Float32Array of length n × k = ${rowsB * width}`, arrayB);
  checkFitsTypedArray('m × n', rowsA, rowsB); // C is allocated
  return loadAddon().addon.gemmABt(arrayA, arrayB, rowsA, rowsB, width, t);
}
