/**
 * Loss options: their types, their defaults, and their validation.
 *
 * @packageDocumentation
 */
import * as os from 'node:os';

import { type CudaDevice, ERR_SIGLIP_NO_CUDA, isCudaDeviceName, resolveCudaOrdinal } from './cuda';
import type { DType } from './device_matrix';
import { MAX_THREADS, limits } from './limits';
import type { NativeCudaLossOptions, NativeLossOptions } from './native';
import {
  Description,
  checkChoice,
  checkIntegerInRange,
  checkTypedArray,
  invalidType,
  invalidValue,
  isPlainObject,
} from './validate';

/**
 * How the sigmoid loss is computed: `'fused'` (tiled, never holds N×M), `'naive'`
 * (materialises N×M, the baseline), or, on CUDA only, `'simple'` (the plain reference
 * kernel the fast ones are tested against: slow, for tests).
 */
export type SigmoidMethod = 'fused' | 'naive' | 'simple';

/**
 * How the softmax loss is computed: `'chunked'` (tile by tile with online row and column
 * log-sum-exp, then the gradients in a second tiled pass; O(N + M) extra memory, never N×M;
 * the default on the CPU and on CUDA) or `'naive'` (materialises the N×M logits, the baseline).
 */
export type SoftmaxMethod = 'chunked' | 'naive';

/**
 * Where to compute: `'cpu'`, `'cuda'` (GPU 0, or the GPU of DeviceMatrix inputs) or
 * `'cuda:N'`. A CUDA device needs the CUDA build and that GPU; otherwise the call throws
 * `ERR_SIGLIP_NO_CUDA` (it never falls back to the CPU silently).
 */
export type Device = 'cpu' | CudaDevice;

/**
 * How float32 inputs are multiplied on CUDA: `'tf32'` (tensor cores, inputs rounded to
 * 10-bit mantissas, float32 accumulation; relative error ≈ 1e-3) or `'fp32'` (exact float32
 * FMA, slower). bfloat16/float16 inputs always use tensor cores with float32 accumulation.
 */
export type Precision = 'tf32' | 'fp32';

/** Where gradients are returned: `'host'` (Float32Arrays) or `'device'` (float32 DeviceMatrix objects). */
export type GradientPlacement = 'host' | 'device';

/** Options both losses take. */
export interface CommonLossOptions {
  /**
   * Label ids of the image rows (N of them). With `textIds`, pair (i, j) is positive exactly
   * when `imageIds[i] === textIds[j]` (several captions per image, duplicate images); N may
   * then differ from M. Without ids, pair (i, j) is positive exactly when i = j.
   */
  imageIds?: Int32Array;
  /** Label ids of the text rows (M of them); given together with `imageIds` or not at all. */
  textIds?: Int32Array;
  /**
   * Worker threads, an integer from 1 to 1024. Default: `os.availableParallelism()`. Results
   * are bit-identical for every thread count (a fixed reduction order). CPU only: checked but
   * not used by CUDA calls.
   */
  threads?: number;
  /**
   * Where to compute. Default: `'cpu'` for Matrix inputs, the inputs' GPU for DeviceMatrix
   * inputs. Host inputs with a CUDA device are uploaded (as float32) for the call.
   */
  device?: Device;
  /**
   * CUDA: how float32 inputs are multiplied, default `'tf32'` (tolerance ≈ 5e-3 relative;
   * `'fp32'` matches the CPU's 1e-5). 16-bit inputs take only `'tf32'` (or nothing). The CPU
   * multiplies in float32 (`'fp32'`, the default) or, for the fused sigmoid, in bfloat16
   * (`'bf16'`: inputs rounded to bfloat16 as they are packed, or given as a
   * {@link BFloat16Matrix}; float32 sums, epilogue and gradients; tolerance 2e-2 relative;
   * `vdpbf16ps` where the processor has AVX512_BF16, see `backendInfo().bf16`).
   */
  precision?: Precision | 'bf16';
  /**
   * Where gradients are returned. Default: `'host'` (Float32Arrays) for Matrix inputs,
   * `'device'` (new float32 DeviceMatrix objects, to dispose()) for DeviceMatrix inputs.
   * `'device'` needs a CUDA device.
   */
  gradients?: GradientPlacement;
}

/** Options of the sigmoid (SigLIP) loss. */
export interface SigmoidLossOptions extends CommonLossOptions {
  /** s, the log of the temperature t = exp(s) (dimensionless). Default ln 10 (t = 10). |s| ≤ 80. */
  logitScale?: number;
  /** b, added to every logit. Default −10. */
  logitBias?: number;
  /** Default `'fused'`. `'simple'` (the reference kernel) exists on CUDA only. */
  method?: SigmoidMethod;
}

/** Options of the softmax (CLIP) loss. It has no bias. */
export interface SoftmaxLossOptions extends CommonLossOptions {
  /** s, the log of the temperature t = exp(s). Default ln(1/0.07) ≈ 2.659 (CLIP's init, t ≈ 14.3). |s| ≤ 80. */
  logitScale?: number;
  /** Default `'chunked'` (on the CPU and on CUDA); `'naive'` materialises the N×M logits. */
  method?: SoftmaxMethod;
}

/** Default sigmoid logitScale: ln 10, so the temperature is 10 (SigLIP's init). */
export const DEFAULT_SIGMOID_LOGIT_SCALE = Math.log(10);
/** Default sigmoid logitBias: −10 (SigLIP's init). */
export const DEFAULT_SIGMOID_LOGIT_BIAS = -10;
/** Default softmax logitScale: ln(1/0.07) (CLIP's init). */
export const DEFAULT_SOFTMAX_LOGIT_SCALE = Math.log(1 / 0.07);
export { MAX_THREADS };

export { ERR_SIGLIP_NO_CUDA };
/**
 * `code` of the error thrown for a method that is not implemented yet on the chosen device.
 * Kept for compatibility: no call throws it in this version.
 */
export const ERR_SIGLIP_NOT_IMPLEMENTED = 'ERR_SIGLIP_NOT_IMPLEMENTED';

/** The default thread count: the parallelism Node.js reports (at least 1, at most MAX_THREADS). */
export function defaultThreads(): number {
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.min(Math.max(1, n), limits().maxThreads);
}

/** options.threads: an integer from 1 to the core's limit (csrc/core/limits.h). */
export function checkThreads(argument: string, value: unknown): number {
  return checkIntegerInRange(argument, value, 1, limits().maxThreads);
}

type LossKind = 'sigmoid' | 'softmax';

const COMMON_KEYS = [
  'logitScale',
  'imageIds',
  'textIds',
  'method',
  'threads',
  'device',
  'precision',
  'gradients',
] as const;
const KNOWN_KEYS: Record<LossKind, readonly string[]> = {
  sigmoid: [...COMMON_KEYS, 'logitBias'],
  softmax: COMMON_KEYS,
};
/** Names people reach for that mean a known option. */
const ALIASES: Record<string, string> = {
  temperature: 'logitScale',
  scale: 'logitScale',
  logit_scale: 'logitScale',
  bias: 'logitBias',
  logit_bias: 'logitBias',
  numThreads: 'threads',
  nThreads: 'threads',
  labels: 'imageIds and textIds',
};

function suggestion(key: string, known: readonly string[]): string {
  const match = known.find((k) => k.toLowerCase() === key.toLowerCase()) ?? ALIASES[key];
  return match !== undefined ? ` (did you mean ${match}?)` : '';
}

/**
 * Checks `options` is a plain object (or, unless `required`, undefined: then `{}`) whose keys
 * are all `known`: an unknown key is a TypeError naming it, with the option meant where the
 * name is a common alias. Every call's options go through it (losses, rings).
 */
export function checkOptionKeys(
  value: unknown,
  known: readonly string[],
  required = false,
  allowed: (key: string, value: unknown) => boolean = () => false,
): Record<string, unknown> {
  if (value === undefined && !required) return {};
  if (!isPlainObject(value)) throw invalidType('options', required ? 'a plain object' : 'a plain object or undefined', value);
  for (const key of Object.keys(value)) {
    if (known.includes(key) || allowed(key, value[key])) continue;
    throw invalidType(
      `options.${key}`,
      `one of the options ${known.join(', ')}`,
      new Description(`an unknown option${suggestion(key, known)}`),
    );
  }
  return value;
}

/**
 * Label ids, as far as lib/ checks them: an Int32Array that is not detached, or undefined.
 * Their length and the rule that imageIds and textIds come together are the core's checks.
 */
export function checkIds(argument: string, value: unknown): Int32Array | undefined {
  return value === undefined ? undefined : checkTypedArray(argument, value, 'Int32Array', 'an Int32Array', 'an Int32Array, not detached');
}

/**
 * An option the native core checks (its type, finiteness and range), passed on as given;
 * `fallback` where it is undefined (null is passed on, and refused there).
 */
export function coreChecked<T>(value: unknown, fallback: T): T {
  return (value === undefined ? fallback : value) as T;
}

/** The shape (and, for DeviceMatrix inputs, dtype and GPU) of one loss input. */
export interface InputShape {
  rows: number;
  cols: number;
}

/** What DeviceMatrix inputs imply: their GPU and dtype. */
export interface DeviceInputs {
  ordinal: number;
  dtype: DType;
}

/** Where a call computes. */
export type Target = { target: 'cpu' } | { target: 'cuda'; ordinal: number };

function resolveDevice(value: unknown, inputs: DeviceInputs | undefined): Target {
  if (value === undefined) {
    return inputs === undefined ? { target: 'cpu' } : { target: 'cuda', ordinal: inputs.ordinal };
  }
  const expected = "'cpu', 'cuda' or 'cuda:N'";
  if (typeof value !== 'string') throw invalidType('options.device', expected, value);
  if (value === 'cpu') {
    if (inputs === undefined) return { target: 'cpu' };
    throw invalidValue(
      'options.device',
      `'cuda:${inputs.ordinal}' or no device (image and text are DeviceMatrix objects on cuda:${inputs.ordinal}; ` +
        'download() them to compute on the CPU)',
      value,
    );
  }
  if (isCudaDeviceName(value)) {
    const ordinal = resolveCudaOrdinal('options.device', value, inputs?.ordinal ?? 0);
    if (inputs !== undefined && ordinal !== inputs.ordinal) {
      throw invalidValue(
        'options.device',
        `'cuda:${inputs.ordinal}' or no device (where the DeviceMatrix inputs image and text are)`,
        value,
      );
    }
    return { target: 'cuda', ordinal };
  }
  throw invalidValue('options.device', expected, value);
}

function checkMethod(kind: LossKind, value: unknown, target: Target['target']): 'fused' | 'naive' | 'simple' | 'chunked' {
  if (kind === 'softmax') return checkChoice('options.method', value, ['chunked', 'naive'], "'chunked' or 'naive'", 'chunked');
  const cuda = target === 'cuda';
  const expected = cuda
    ? "'fused', 'naive' or 'simple'"
    : `'fused' or 'naive'${value === 'simple' ? " ('simple', the reference kernel, needs device 'cuda')" : ''}`;
  return checkChoice('options.method', value, cuda ? ['fused', 'naive', 'simple'] : ['fused', 'naive'], expected, 'fused');
}

/** options.precision for a call on `target` (inputs of `dtype`), with its default. */
export function checkPrecision(value: unknown, target: Target['target'], dtype: DType, bf16Allowed: boolean): Precision | 'bf16' {
  if (target === 'cpu') {
    const expected = bf16Allowed
      ? "'fp32', 'bf16' or no precision ('tf32' needs device 'cuda')"
      : "'fp32' or no precision ('bf16' is the CPU's fused sigmoid only; 'tf32' needs device 'cuda')";
    return checkChoice<Precision | 'bf16'>('options.precision', value, bf16Allowed ? ['fp32', 'bf16'] : ['fp32'], expected, 'fp32');
  }
  if (dtype === 'float32') return checkChoice('options.precision', value, ['tf32', 'fp32'], "'tf32' or 'fp32'", 'tf32');
  const expected = `'tf32' or no precision (${dtype} inputs always use tensor cores with float32 accumulation)`;
  return checkChoice('options.precision', value, ['tf32'], expected, 'tf32');
}

/** options.gradients for a call on `target`, defaulting to where the inputs are. */
export function checkGradients(value: unknown, target: Target['target'], inputs: DeviceInputs | undefined): GradientPlacement {
  const fallback = inputs === undefined ? 'host' : 'device';
  if (target === 'cuda') return checkChoice('options.gradients', value, ['host', 'device'], "'host' or 'device'", fallback);
  const expected = "'host' or no gradients option (a CPU call returns Float32Arrays; 'device' needs device 'cuda')";
  return checkChoice('options.gradients', value, ['host'], expected, fallback);
}

/** Resolved options: for the CPU addon, or for a CUDA call. */
export type ResolvedLossOptions =
  | { target: 'cpu'; options: NativeLossOptions }
  | { target: 'cuda'; options: NativeCudaLossOptions };

/**
 * Checks what lib/ owns of a loss call's `options` (names, kinds, the choices of device,
 * method, precision and gradients) and fills in the defaults, giving what the addon takes;
 * the core checks the rest (docs/ARCHITECTURE.md, "Which layer checks what"). `inputs` is set
 * when image and text are DeviceMatrix objects.
 *
 * @internal
 */
export function resolveLossOptions(kind: LossKind, rawOptions: unknown, inputs?: DeviceInputs): ResolvedLossOptions {
  const options = checkOptionKeys(rawOptions, KNOWN_KEYS[kind], false, (key, value) => {
    if (kind !== 'softmax' || key !== 'logitBias') return false;
    if (value === undefined) return true;
    throw invalidType('options.logitBias', 'no logitBias (the softmax loss has no bias; it is an option of sigmoidLoss)', value);
  });

  const device = resolveDevice(options['device'], inputs);

  // logitScale, logitBias and threads: their types and ranges are the core's checks (in the
  // addon's call), except threads on CUDA, which that call does not take.
  const logitScale = coreChecked(options['logitScale'], kind === 'sigmoid' ? DEFAULT_SIGMOID_LOGIT_SCALE : DEFAULT_SOFTMAX_LOGIT_SCALE);
  const imageIds = checkIds('options.imageIds', options['imageIds']);
  const textIds = checkIds('options.textIds', options['textIds']);
  const method = checkMethod(kind, options['method'], device.target);
  const threads = device.target === 'cpu' || options['threads'] === undefined
    ? coreChecked(options['threads'], defaultThreads())
    : checkThreads('options.threads', options['threads']);
  const precision = checkPrecision(
    options['precision'],
    device.target,
    inputs?.dtype ?? 'float32',
    kind === 'sigmoid' && method === 'fused',
  );
  const gradients = checkGradients(options['gradients'], device.target, inputs);
  const logitBias = kind === 'sigmoid' ? coreChecked(options['logitBias'], DEFAULT_SIGMOID_LOGIT_BIAS) : undefined;
  const ids = { ...(imageIds && { imageIds }), ...(textIds && { textIds }) };
  const bias = logitBias === undefined ? {} : { logitBias };

  if (device.target === 'cpu') {
    // checkMethod allows 'simple' only on CUDA.
    const cpuMethod = method as 'fused' | 'naive' | 'chunked';
    const bf16 = precision === 'bf16' ? { precision } : {};
    return { target: 'cpu', options: { logitScale, ...bias, ...ids, method: cpuMethod, threads, ...bf16 } };
  }
  return {
    target: 'cuda',
    // checkPrecision allows 'bf16' only on the CPU.
    options: { logitScale, ...bias, ...ids, method, precision: precision as Precision, gradients, device: device.ordinal },
  };
}
