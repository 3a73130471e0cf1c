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
import { cudaAddon } from './cuda';
import type { DeviceMatrix } from './device_matrix';
import { loadAddon } from './loader';
import { type BFloat16Matrix, checkFitsTypedArray, matrix, type Matrix } from './matrix';
import { checkThreads, defaultThreads } from './options';
import type { SigmoidLossOptions, SoftmaxLossOptions } from './options';
import { type LossOutput, prepareLossCall, runLossAsync, runLossSync } from './request';
import { checkFloat32Array, checkIntegerInRange, checkPositiveInteger, invalidValue } from './validate';

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
export {
  DEFAULT_RING_TIMEOUT_MS,
  ERR_SIGLIP_NO_MPI,
  ERR_SIGLIP_RING_FAILED,
  MAX_RING_RANKS,
  LocalRing,
  RankRing,
  Ring,
  type LocalRingLossOptions,
  type LocalRingLossWithGrad,
  type LocalRingOptions,
  type MpiRingOptions,
  type NcclOverMpiOptions,
  type NcclRingOptions,
  type RankRingLossOptions,
  type RankRingLossWithGrad,
  type RingDirection,
  type RingKind,
  type RingLossOptions,
  type RingStats,
} from './ring';

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

function sigmoidResult(result: LossOutput): SigmoidLossWithGrad<AnyGradients> {
  const g = result.grad!;
  return { loss: result.loss, grad: { image: g.image, text: g.text, logitScale: g.logitScale, logitBias: g.logitBias! } };
}

function softmaxResult(result: LossOutput): SoftmaxLossWithGrad<AnyGradients> {
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
  return runLossSync('sigmoid', prepareLossCall('sigmoid', image, text, options), false).loss;
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
  const call = prepareLossCall('sigmoid', image, text, options);
  return (await runLossAsync('sigmoid', call, false)).loss;
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
export function sigmoidLossWithGradSync(
  image: LossInput,
  text: LossInput,
  options: SigmoidLossOptions & ToDevice,
): SigmoidLossWithGrad<DeviceMatrix>;
export function sigmoidLossWithGradSync(
  image: LossInput,
  text: LossInput,
  options: SigmoidLossOptions & ToHost,
): SigmoidLossWithGrad;
export function sigmoidLossWithGradSync(
  image: Matrix | BFloat16Matrix,
  text: Matrix | BFloat16Matrix,
  options?: SigmoidLossOptions,
): SigmoidLossWithGrad;
export function sigmoidLossWithGradSync(
  image: DeviceMatrix,
  text: DeviceMatrix,
  options?: SigmoidLossOptions,
): SigmoidLossWithGrad<DeviceMatrix>;
export function sigmoidLossWithGradSync(
  image: LossInput,
  text: LossInput,
  options?: SigmoidLossOptions,
): SigmoidLossWithGrad<AnyGradients>;
export function sigmoidLossWithGradSync(
  image: LossInput,
  text: LossInput,
  options?: SigmoidLossOptions,
): SigmoidLossWithGrad<AnyGradients> {
  return sigmoidResult(runLossSync('sigmoid', prepareLossCall('sigmoid', image, text, options), true));
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
export function sigmoidLossWithGrad(
  image: LossInput,
  text: LossInput,
  options: SigmoidLossOptions & ToHost,
): Promise<SigmoidLossWithGrad>;
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
export function sigmoidLossWithGrad(
  image: LossInput,
  text: LossInput,
  options?: SigmoidLossOptions,
): Promise<SigmoidLossWithGrad<AnyGradients>>;
export async function sigmoidLossWithGrad(
  image: LossInput,
  text: LossInput,
  options?: SigmoidLossOptions,
): Promise<SigmoidLossWithGrad<AnyGradients>> {
  const call = prepareLossCall('sigmoid', image, text, options);
  return sigmoidResult(await runLossAsync('sigmoid', call, true));
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
  return runLossSync('softmax', prepareLossCall('softmax', image, text, options), false).loss;
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
  const call = prepareLossCall('softmax', image, text, options);
  return (await runLossAsync('softmax', call, false)).loss;
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
export function softmaxLossWithGradSync(
  image: LossInput,
  text: LossInput,
  options: SoftmaxLossOptions & ToDevice,
): SoftmaxLossWithGrad<DeviceMatrix>;
export function softmaxLossWithGradSync(
  image: LossInput,
  text: LossInput,
  options: SoftmaxLossOptions & ToHost,
): SoftmaxLossWithGrad;
export function softmaxLossWithGradSync(image: Matrix, text: Matrix, options?: SoftmaxLossOptions): SoftmaxLossWithGrad;
export function softmaxLossWithGradSync(
  image: DeviceMatrix,
  text: DeviceMatrix,
  options?: SoftmaxLossOptions,
): SoftmaxLossWithGrad<DeviceMatrix>;
export function softmaxLossWithGradSync(
  image: LossInput,
  text: LossInput,
  options?: SoftmaxLossOptions,
): SoftmaxLossWithGrad<AnyGradients>;
export function softmaxLossWithGradSync(
  image: LossInput,
  text: LossInput,
  options?: SoftmaxLossOptions,
): SoftmaxLossWithGrad<AnyGradients> {
  return softmaxResult(runLossSync('softmax', prepareLossCall('softmax', image, text, options), true));
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
export function softmaxLossWithGrad(
  image: LossInput,
  text: LossInput,
  options: SoftmaxLossOptions & ToHost,
): Promise<SoftmaxLossWithGrad>;
export function softmaxLossWithGrad(
  image: Matrix,
  text: Matrix,
  options?: SoftmaxLossOptions,
): Promise<SoftmaxLossWithGrad>;
export function softmaxLossWithGrad(
  image: DeviceMatrix,
  text: DeviceMatrix,
  options?: SoftmaxLossOptions,
): Promise<SoftmaxLossWithGrad<DeviceMatrix>>;
export function softmaxLossWithGrad(
  image: LossInput,
  text: LossInput,
  options?: SoftmaxLossOptions,
): Promise<SoftmaxLossWithGrad<AnyGradients>>;
export async function softmaxLossWithGrad(
  image: LossInput,
  text: LossInput,
  options?: SoftmaxLossOptions,
): Promise<SoftmaxLossWithGrad<AnyGradients>> {
  const call = prepareLossCall('softmax', image, text, options);
  return softmaxResult(await runLossAsync('softmax', call, true));
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
  /**
   * The kernel of `precision: 'bf16'` on the CPU: `'avx512_bf16'` (vdpbf16ps, where the
   * processor has AVX512_BF16) or `'convert'` (inputs rounded to bfloat16, then multiplied by
   * the float32 kernels: the same numbers' kind of error, not faster).
   */
  bf16: string;
  /** Why that one (detected features, or the SIGLIP_BF16=convert environment override). */
  bf16Reason: string;
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
  /** Whether CUDA can be used, and why not. */
  cuda: CudaInfo;
}

/** One GPU, as {@link backendInfo} lists it. */
export interface CudaDeviceInfo {
  /** `'cuda:N'`: what `options.device` takes. */
  device: `cuda:${number}`;
  /** The product name, e.g. `'NVIDIA H100 80GB HBM3'`. */
  name: string;
  /** Compute capability as `'major.minor'`, e.g. `'9.0'`. */
  computeCapability: string;
  /** Total device memory, bytes. */
  totalMemory: number;
  /** Free device memory when asked, bytes. */
  freeMemory: number;
  /** Set (and the other fields empty) when the device could not be queried. */
  error?: string;
}

/** The CUDA part of {@link BackendInfo}. */
export interface CudaInfo {
  /** True when the loaded binary is the CUDA build and at least one GPU answered. */
  available: boolean;
  /** Why CUDA cannot be used ('' when it can): no CUDA build, no driver, no GPU, SIGLIP_FORCE_CPU. */
  reason: string;
  /** The GPUs (empty when not available). Listing them creates each GPU's CUDA context. */
  devices: CudaDeviceInfo[];
  /** The CUDA runtime the build links, e.g. 13000 for 13.0 (null without the CUDA build in use). */
  runtimeVersion: number | null;
  /** The driver's CUDA version, e.g. 13000 (null without the CUDA build in use, 0 without a driver). */
  driverVersion: number | null;
  /** Which kernels run the losses' matrix products (null without the CUDA build in use). */
  gemm: CudaGemmInfo | null;
}

/**
 * Which kernels run the CUDA losses' matrix products, as {@link CudaInfo} reports it. X·Yᵀ
 * runs on this package's tile GEMM, which computes the loss on its accumulators, unless
 * `SIGLIP_GEMM1=cublas` puts it on cuBLAS (the sigmoid loss only: S is written to a float32
 * block per piece, then a separate pass applies the same per-pair math); the two backward
 * products (∂X from G·Y, ∂Y from Gᵀ·X) run on NVIDIA's cuBLAS when it can be loaded.
 * Environment variables (each read once, when first needed): `SIGLIP_CUBLAS` = `auto`
 * (default: cuBLAS when it loads) | `on` (cuBLAS or an error) | `off`; `SIGLIP_GEMM1` = `tile`
 * (default) | `cublas` (cuBLAS or an error, never the tile GEMM instead);
 * `SIGLIP_CUBLAS_LIBRARY` = a `libcublas.so` file or its folder (default: the system's, CUDA's,
 * or a pip wheel's such as PyTorch's); `SIGLIP_TILE_GEMM` = `pipelined` (default) | `simple`;
 * `SIGLIP_GEMM_OVERLAP` = `off` (default) | `on` (the sigmoid loss's backward products on a
 * second CUDA stream, overlapping the next piece's X·Yᵀ). An invalid value makes CUDA loss
 * calls throw a `RangeError` naming the variable. Results are deterministic on every path, and
 * the same with and without overlap.
 */
export interface CudaGemmInfo {
  /**
   * X·Yᵀ of the sigmoid loss: `'tile'` (this package's kernel, the loss computed on its
   * accumulators) or `'cublas'` (`SIGLIP_GEMM1=cublas`: NVIDIA's library, then a separate
   * pass; without a usable cuBLAS, sigmoid loss calls throw and `reason` says why).
   */
  forward: 'tile' | 'cublas';
  /** The backward products: `'cublas'` (NVIDIA's library, loaded at run time) or `'tile'` (this package's kernel). */
  backward: 'cublas' | 'tile';
  /** This package's tile GEMM: `'pipelined'` (multi-stage asynchronous copies, sm_80+) or `'simple'` (one stage). */
  tile: 'pipelined' | 'simple';
  /**
   * Whether the sigmoid loss overlaps its products (`SIGLIP_GEMM_OVERLAP=on`): the pair grid
   * runs in pieces, and each piece's backward products run on a second CUDA stream while the
   * next piece's X·Yᵀ and loss math run on the call's stream. It costs a second gradient
   * block (up to 32 MB in bfloat16) and, where the backward products run
   * on cuBLAS, a second cuBLAS handle. The results are bit-for-bit those without it.
   */
  overlap: boolean;
  /** The cuBLAS library file in use ('' when none was loaded). */
  cublasLibrary: string;
  /** Its version, e.g. `'12.8.4'` ('' when unknown or none). */
  cublasVersion: string;
  /** Why the backward products do not run on cuBLAS, or why CUDA calls will fail (`SIGLIP_CUBLAS=on` or `SIGLIP_GEMM1=cublas` without a usable cuBLAS); '' otherwise. */
  reason: string;
}

/**
 * Describes the backend in use: which addon binary was loaded and why (the CUDA build, or
 * the CPU build and why not the CUDA one), the SIMD kernel set and why, thread counts, the
 * fused tile shape, and CUDA availability with the GPUs. Loads the addon if it was not
 * loaded yet.
 *
 * @throws Error with code `ERR_SIGLIP_ADDON_LOAD` if the native addon cannot be loaded.
 *
 * @example
 * ```ts
 * console.log(backendInfo().simd); // e.g. 'avx2'
 * ```
 */
export function backendInfo(): BackendInfo {
  const { addon, path, reason, cuda } = loadAddon();
  const info = addon.backendInfo();
  const native = cuda.available ? info.cuda : undefined;
  const devices: CudaDeviceInfo[] = (native?.devices ?? []).map((d) => {
    const device: CudaDeviceInfo = {
      device: `cuda:${d.ordinal}`,
      name: d.name ?? '',
      computeCapability: d.computeCapability ?? '',
      totalMemory: d.totalMemory ?? 0,
      freeMemory: d.freeMemory ?? 0,
    };
    if (d.error !== undefined) device.error = d.error;
    return device;
  });
  return {
    binaryPath: path,
    binaryReason: reason,
    simd: info.simd,
    simdReason: info.simdReason,
    bf16: info.bf16,
    bf16Reason: info.bf16Reason,
    hardwareThreads: info.hardwareThreads,
    defaultThreads: defaultThreads(),
    tile: { rows: info.tileRows, cols: info.tileCols },
    cuda: {
      available: cuda.available,
      reason: cuda.reason,
      devices,
      runtimeVersion: native?.runtimeVersion ?? null,
      driverVersion: native?.driverVersion ?? null,
      gemm: native?.gemm ? { ...native.gemm } : null,
    },
  };
}

/** Device memory this library holds, as {@link cudaMemoryUsage} reports it. */
export interface CudaMemoryUsage {
  /** Bytes of GPU memory held now (DeviceMatrix objects, and buffers of calls in flight), all GPUs. */
  allocatedBytes: number;
  /** The most held at once since the process started or {@link resetCudaPeakMemory}, bytes. */
  peakAllocatedBytes: number;
}

/**
 * GPU memory held by this library (not by other CUDA users in the process): what the
 * benchmarks use to measure a call's extra device memory, and a way to check that
 * DeviceMatrix objects are disposed.
 *
 * @returns `{ allocatedBytes, peakAllocatedBytes }`, bytes over all GPUs.
 * @throws Error with code `ERR_SIGLIP_NO_CUDA` when no GPU can be used.
 *
 * @example
 * ```ts
 * resetCudaPeakMemory();
 * await sigmoidLoss(x, y);
 * console.log(cudaMemoryUsage().peakAllocatedBytes);
 * ```
 */
export function cudaMemoryUsage(): CudaMemoryUsage {
  return cudaAddon('cudaMemoryUsage() needs a GPU', 'It needs the CUDA build of siglip-kernels.').cudaMemory();
}

/**
 * Resets the peak of {@link cudaMemoryUsage} to the memory held now.
 *
 * @throws Error with code `ERR_SIGLIP_NO_CUDA` when no GPU can be used.
 *
 * @example
 * ```ts
 * resetCudaPeakMemory();
 * ```
 */
export function resetCudaPeakMemory(): void {
  cudaAddon('resetCudaPeakMemory() needs a GPU', 'It needs the CUDA build of siglip-kernels.').cudaResetPeakMemory();
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
  const t = threads === undefined ? defaultThreads() : checkThreads('threads', threads);
  const arrayA = checkFloat32Array('a', a);
  const arrayB = checkFloat32Array('b', b);
  if (arrayA.length !== rowsA * width) throw invalidValue('a', `a Float32Array of length m × k = ${rowsA * width}`, arrayA);
  if (arrayB.length !== rowsB * width) throw invalidValue('b', `a Float32Array of length n × k = ${rowsB * width}`, arrayB);
  checkFitsTypedArray('m × n', rowsA, rowsB); // C is allocated
  return loadAddon().addon.gemmABt(arrayA, arrayB, rowsA, rowsB, width, t);
}
