/**
 * siglip-kernels: the SigLIP sigmoid contrastive loss and the CLIP softmax loss, computed by
 * native C++ kernels (fused, tiled, SIMD, multi-threaded) behind a typed API.
 *
 * Shapes: `image` is X (N×D), `text` is Y (M×D), one embedding per row, float32, row-major.
 * The package uses embeddings as given; L2-normalise them first (see {@link normalizeRows}).
 * The exact formulas are in SPEC.md.
 *
 * CUDA (with the CUDA build and a GPU): pass `device: 'cuda'` to compute host matrices on
 * the GPU, or pass {@link DeviceMatrix} inputs (uploaded once, float32/bfloat16/float16) to
 * compute where they live; gradients then stay on the GPU unless `gradients: 'host'`.
 * {@link backendInfo} says whether CUDA is available and why not.
 *
 * Every loss comes in four forms: `xLoss` (Promise of the loss), `xLossSync`, `xLossWithGrad`
 * (Promise of loss and gradients) and `xLossWithGradSync`. The Promise forms compute on
 * libuv's thread pool, off the JavaScript thread; they validate their arguments first and
 * reject (never throw) on bad input. **Do not mutate (or transfer) the input arrays until
 * the Promise settles**: the native code reads them in place.
 *
 * @packageDocumentation
 */
import type { DeviceMatrix } from './device_matrix';
import { type BFloat16Matrix, matrix, type Matrix } from './matrix';
import type { SigmoidLossOptions, SoftmaxLossOptions } from './options';
import { runLoss } from './request';

export { matrix, type Matrix, type BFloat16Matrix };
export { DeviceMatrix, ERR_SIGLIP_DISPOSED, type DeviceMatrixOptions, type DType } from './device_matrix';
export { fromBFloat16, fromFloat16, toBFloat16, toFloat16 } from './half';
export type { CudaDevice } from './cuda';
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
  type GradientPlacement,
  type Precision,
  type SigmoidLossOptions,
  type SigmoidMethod,
  type SoftmaxLossOptions,
  type SoftmaxMethod,
} from './options';
export { ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, type SiglipError } from './validate';
export * from './ring'; // Ring, LocalRing, RankRing, their options and results (lib/ring/index.ts)
export * from './backend'; // backendInfo, the CUDA memory counters, gemmABt (lib/backend.ts)

/**
 * A loss input: a host {@link Matrix}, a host {@link BFloat16Matrix} (the CPU's fused sigmoid
 * with `precision: 'bf16'`) or a {@link DeviceMatrix} (both inputs of one call are the same kind).
 */
export type LossInput = Matrix | BFloat16Matrix | DeviceMatrix;

/**
 * Gradients of the sigmoid loss with respect to each input. `G` is `Float32Array` (gradients
 * on the host, the default for Matrix inputs) or `DeviceMatrix` (float32 on the GPU, the
 * default for DeviceMatrix inputs; dispose() them when done).
 */
export interface SigmoidLossGradients<G extends Float32Array | DeviceMatrix = Float32Array> {
  /** ∂L/∂X, N×D row-major (a new Float32Array or float32 DeviceMatrix). */
  image: G;
  /** ∂L/∂Y, M×D row-major (a new Float32Array or float32 DeviceMatrix). */
  text: G;
  /** ∂L/∂s, through the temperature t = exp(s): t · Σ_ij g_ij · S_ij. */
  logitScale: number;
  /** ∂L/∂b = Σ_ij g_ij. */
  logitBias: number;
}

/** The sigmoid loss and its gradients (`G`: see {@link SigmoidLossGradients}). */
export interface SigmoidLossWithGrad<G extends Float32Array | DeviceMatrix = Float32Array> {
  /** The loss L (nats per image row). */
  loss: number;
  /** ∂L with respect to image, text, logitScale and logitBias. */
  grad: SigmoidLossGradients<G>;
}

/** Gradients of the softmax loss with respect to each input (it has no bias); `G` as in {@link SigmoidLossGradients}. */
export interface SoftmaxLossGradients<G extends Float32Array | DeviceMatrix = Float32Array> {
  /** ∂L/∂X, N×D row-major (a new Float32Array or float32 DeviceMatrix). */
  image: G;
  /** ∂L/∂Y, M×D row-major (a new Float32Array or float32 DeviceMatrix). */
  text: G;
  /** ∂L/∂s, through the temperature t = exp(s). */
  logitScale: number;
}

/** The softmax loss and its gradients (`G`: see {@link SigmoidLossGradients}). */
export interface SoftmaxLossWithGrad<G extends Float32Array | DeviceMatrix = Float32Array> {
  /** The loss L (nats). */
  loss: number;
  /** ∂L with respect to image, text and logitScale. */
  grad: SoftmaxLossGradients<G>;
}

/** Options that send gradients to the host (Float32Arrays). */
type ToHost = { gradients: 'host' };
/** Options that leave gradients on the GPU (DeviceMatrix objects). */
type ToDevice = { gradients: 'device' };
type AnyGradients = Float32Array | DeviceMatrix;

/**
 * The SigLIP sigmoid loss, synchronously: with S_ij = ⟨x_i, y_j⟩, z_ij = +1 for positive
 * pairs and −1 otherwise, and t = exp(logitScale),
 * L = (1/N) · Σ_i Σ_j softplus(−z_ij · (t · S_ij + logitBias)),
 * i.e. the mean over image rows of the summed binary cross-entropies of all N×M pairs.
 * Pair (i, j) is positive when i = j, or with label ids when `imageIds[i] === textIds[j]`.
 *
 * Defaults: logitScale ln 10 (t = 10), logitBias −10, method `'fused'`, threads
 * `os.availableParallelism()`, device `'cpu'` (the inputs' GPU for DeviceMatrix inputs),
 * precision `'tf32'` on CUDA. The loss is accumulated in float64 (dot products in float32,
 * or TF32/16-bit tensor cores on CUDA) and is bit-identical for every thread count and run.
 *
 * @param image - X, N×D: a {@link Matrix}, or a {@link DeviceMatrix} (then text is one too).
 * @param text - Y, M×D (M = N unless label ids are given).
 * @param options - see {@link SigmoidLossOptions}.
 * @returns the loss L (a non-negative number; nats per image row).
 * @throws TypeError for arguments of the wrong type (non-Float32Array data, non-Int32Array ids,
 *   unknown option names, only one of imageIds/textIds, one DeviceMatrix input and one host
 *   input, DeviceMatrix inputs of different dtypes), RangeError for bad values (sizes that do
 *   not match, N ≠ M without ids, different widths D, NaN/Infinity in the data or scalars,
 *   |logitScale| > 80, bad threads, method, precision or gradients, a `cuda:N` this machine
 *   lacks), Error with code `ERR_SIGLIP_NO_CUDA` for a CUDA device when no GPU can be used
 *   (the message says why), `ERR_SIGLIP_DISPOSED` for a disposed DeviceMatrix,
 *   `ERR_SIGLIP_OUT_OF_MEMORY` if host or GPU memory runs out, `ERR_SIGLIP_ADDON_LOAD` if
 *   the native addon cannot be loaded.
 *
 * @example
 * ```ts
 * const x = matrix(new Float32Array([1, 0, 0, 1]), 2, 2);
 * const loss = sigmoidLossSync(x, x); // 2 pairs of matching unit embeddings
 * ```
 *
 * @example
 * ```ts
 * // requires: cuda
 * const x = matrix(new Float32Array([1, 0, 0, 1]), 2, 2);
 * const onGpu = sigmoidLossSync(x, x, { device: 'cuda', precision: 'fp32' });
 * ```
 */
export function sigmoidLossSync(image: LossInput, text: LossInput, options?: SigmoidLossOptions): number {
  return runLoss('sigmoid', image, text, options, false, true).loss;
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
export async function sigmoidLoss(image: LossInput, text: LossInput, options?: SigmoidLossOptions): Promise<number> {
  return (await runLoss('sigmoid', image, text, options, false, false)).loss;
}

/**
 * The SigLIP sigmoid loss and all its gradients, synchronously. With
 * g_ij = −(1/N) · z_ij · σ(−z_ij · (t · S_ij + b)) (G is never materialised by the fused method):
 * ∂L/∂X = t · G · Y, ∂L/∂Y = t · Gᵀ · X, ∂L/∂b = Σ_ij g_ij, ∂L/∂s = t · Σ_ij g_ij · S_ij.
 * Formula, defaults and errors as {@link sigmoidLossSync}. In data-parallel training, where
 * frameworks average gradients over ranks, these are gradients of the global loss.
 *
 * @returns `{ loss, grad: { image, text, logitScale, logitBias } }`; `grad.image` (N×D) and
 *   `grad.text` (M×D) are new Float32Arrays, or new float32 DeviceMatrix objects with
 *   `gradients: 'device'` (the default for DeviceMatrix inputs; dispose() them). The
 *   overloads type them from a literal `gradients` option, else from the inputs (Matrix →
 *   Float32Array, DeviceMatrix → DeviceMatrix).
 *
 * @example
 * ```ts
 * const { loss, grad } = sigmoidLossWithGradSync(image, text);
 * logitScale -= lr * grad.logitScale;
 * ```
 */
export function sigmoidLossWithGradSync(image: LossInput, text: LossInput, options: SigmoidLossOptions & ToDevice): SigmoidLossWithGrad<DeviceMatrix>;
export function sigmoidLossWithGradSync(image: LossInput, text: LossInput, options: SigmoidLossOptions & ToHost): SigmoidLossWithGrad;
export function sigmoidLossWithGradSync(
  image: Matrix | BFloat16Matrix,
  text: Matrix | BFloat16Matrix,
  options?: SigmoidLossOptions,
): SigmoidLossWithGrad;
export function sigmoidLossWithGradSync(image: DeviceMatrix, text: DeviceMatrix, options?: SigmoidLossOptions): SigmoidLossWithGrad<DeviceMatrix>;
export function sigmoidLossWithGradSync(image: LossInput, text: LossInput, options?: SigmoidLossOptions): SigmoidLossWithGrad<AnyGradients>;
export function sigmoidLossWithGradSync(image: LossInput, text: LossInput, options?: SigmoidLossOptions): SigmoidLossWithGrad<AnyGradients> {
  return runLoss('sigmoid', image, text, options, true, true) as SigmoidLossWithGrad<AnyGradients>;
}

/**
 * The SigLIP sigmoid loss and all its gradients, computed off the JavaScript thread: the same
 * numbers as {@link sigmoidLossWithGradSync}. Do not mutate or transfer the inputs until the
 * Promise settles.
 *
 * @returns a Promise of `{ loss, grad: { image, text, logitScale, logitBias } }` (gradients
 *   as in {@link sigmoidLossWithGradSync}); it rejects on bad arguments.
 *
 * @example
 * ```ts
 * const { loss, grad } = await sigmoidLossWithGrad(image, text, { threads: 4 });
 * ```
 */
export function sigmoidLossWithGrad(
  image: LossInput,
  text: LossInput,
  options: SigmoidLossOptions & ToDevice,
): Promise<SigmoidLossWithGrad<DeviceMatrix>>;
export function sigmoidLossWithGrad(image: LossInput, text: LossInput, options: SigmoidLossOptions & ToHost): Promise<SigmoidLossWithGrad>;
export function sigmoidLossWithGrad(
  image: Matrix | BFloat16Matrix,
  text: Matrix | BFloat16Matrix,
  options?: SigmoidLossOptions,
): Promise<SigmoidLossWithGrad>;
export function sigmoidLossWithGrad(
  image: DeviceMatrix,
  text: DeviceMatrix,
  options?: SigmoidLossOptions,
): Promise<SigmoidLossWithGrad<DeviceMatrix>>;
export function sigmoidLossWithGrad(image: LossInput, text: LossInput, options?: SigmoidLossOptions): Promise<SigmoidLossWithGrad<AnyGradients>>;
export async function sigmoidLossWithGrad(
  image: LossInput,
  text: LossInput,
  options?: SigmoidLossOptions,
): Promise<SigmoidLossWithGrad<AnyGradients>> {
  return (await runLoss('sigmoid', image, text, options, true, false)) as SigmoidLossWithGrad<AnyGradients>;
}

/**
 * The CLIP softmax loss, synchronously: with logits_ij = t · S_ij and t = exp(logitScale),
 * L = ½ · [ (1/N) Σ_i CE(softmax of row i, target row i) + (1/M) Σ_j CE(softmax of column j, target column j) ],
 * where the target of a row (column) is its positive pair, or with label ids the uniform
 * distribution over its positives (then every row and column needs at least one positive).
 * Without ids N = M; with ids N may differ from M.
 *
 * Defaults: logitScale ln(1/0.07) (t ≈ 14.29), method `'chunked'` on the CPU and on CUDA
 * (tile by tile with online row and column log-sum-exp, O(N + M) extra memory; `'naive'`
 * materialises the N×M logits), threads `os.availableParallelism()`; device, precision and
 * gradients as {@link sigmoidLossSync}.
 *
 * @returns the loss L (nats).
 * @throws as {@link sigmoidLossSync}; also TypeError if `logitBias` is given, and RangeError
 *   naming imageIds/textIds when a row or column has no positive.
 *
 * @example
 * ```ts
 * const loss = softmaxLossSync(image, text, { logitScale: Math.log(1 / 0.07) });
 * ```
 */
export function softmaxLossSync(image: LossInput, text: LossInput, options?: SoftmaxLossOptions): number {
  return runLoss('softmax', image, text, options, false, true).loss;
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
export async function softmaxLoss(image: LossInput, text: LossInput, options?: SoftmaxLossOptions): Promise<number> {
  return (await runLoss('softmax', image, text, options, false, false)).loss;
}

/**
 * The CLIP softmax loss and its gradients, synchronously. With P_row, P_col the row- and
 * column-wise softmax of the logits and T the targets,
 * ∂L/∂S_ij = t · [(P_row − T_row)_ij / (2N) + (P_col − T_col)_ij / (2M)], ∂L/∂X = (∂L/∂S) · Y,
 * ∂L/∂Y = (∂L/∂S)ᵀ · X, and ∂L/∂s = Σ_ij ∂L/∂S_ij · S_ij. Errors as {@link softmaxLossSync}.
 *
 * @returns `{ loss, grad: { image, text, logitScale } }` (no logitBias); gradients as in
 *   {@link sigmoidLossWithGradSync} (Float32Arrays, or DeviceMatrix objects with `gradients: 'device'`).
 *
 * @example
 * ```ts
 * const { loss, grad } = softmaxLossWithGradSync(image, text);
 * ```
 */
export function softmaxLossWithGradSync(image: LossInput, text: LossInput, options: SoftmaxLossOptions & ToDevice): SoftmaxLossWithGrad<DeviceMatrix>;
export function softmaxLossWithGradSync(image: LossInput, text: LossInput, options: SoftmaxLossOptions & ToHost): SoftmaxLossWithGrad;
export function softmaxLossWithGradSync(image: Matrix, text: Matrix, options?: SoftmaxLossOptions): SoftmaxLossWithGrad;
export function softmaxLossWithGradSync(image: DeviceMatrix, text: DeviceMatrix, options?: SoftmaxLossOptions): SoftmaxLossWithGrad<DeviceMatrix>;
export function softmaxLossWithGradSync(image: LossInput, text: LossInput, options?: SoftmaxLossOptions): SoftmaxLossWithGrad<AnyGradients>;
export function softmaxLossWithGradSync(image: LossInput, text: LossInput, options?: SoftmaxLossOptions): SoftmaxLossWithGrad<AnyGradients> {
  return runLoss('softmax', image, text, options, true, true) as SoftmaxLossWithGrad<AnyGradients>;
}

/**
 * The CLIP softmax loss and its gradients, computed off the JavaScript thread: the same
 * numbers as {@link softmaxLossWithGradSync}. Do not mutate or transfer the inputs until the
 * Promise settles.
 *
 * @returns a Promise of `{ loss, grad: { image, text, logitScale } }` (gradients as in
 *   {@link softmaxLossWithGradSync}); it rejects on bad arguments.
 *
 * @example
 * ```ts
 * const { grad } = await softmaxLossWithGrad(image, text, { threads: 2 });
 * ```
 */
export function softmaxLossWithGrad(
  image: LossInput,
  text: LossInput,
  options: SoftmaxLossOptions & ToDevice,
): Promise<SoftmaxLossWithGrad<DeviceMatrix>>;
export function softmaxLossWithGrad(image: LossInput, text: LossInput, options: SoftmaxLossOptions & ToHost): Promise<SoftmaxLossWithGrad>;
export function softmaxLossWithGrad(image: Matrix, text: Matrix, options?: SoftmaxLossOptions): Promise<SoftmaxLossWithGrad>;
export function softmaxLossWithGrad(
  image: DeviceMatrix,
  text: DeviceMatrix,
  options?: SoftmaxLossOptions,
): Promise<SoftmaxLossWithGrad<DeviceMatrix>>;
export function softmaxLossWithGrad(image: LossInput, text: LossInput, options?: SoftmaxLossOptions): Promise<SoftmaxLossWithGrad<AnyGradients>>;
export async function softmaxLossWithGrad(
  image: LossInput,
  text: LossInput,
  options?: SoftmaxLossOptions,
): Promise<SoftmaxLossWithGrad<AnyGradients>> {
  return (await runLoss('softmax', image, text, options, true, false)) as SoftmaxLossWithGrad<AnyGradients>;
}
