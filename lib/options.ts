/**
 * Loss options: their types, their defaults, and their validation.
 *
 * @packageDocumentation
 */
import * as os from 'node:os';

import type { Matrix } from './matrix';
import type { NativeLossOptions } from './native';
import {
  Description,
  checkFiniteNumber,
  checkInt32Array,
  checkIntegerInRange,
  errorWithCode,
  invalidType,
  invalidValue,
  isPlainObject,
} from './validate';

/** How the sigmoid loss is computed: `'fused'` (tiled, never holds N×M) or `'naive'` (materialises N×M). */
export type SigmoidMethod = 'fused' | 'naive';

/**
 * How the softmax loss is computed. Only `'naive'` (materialises the N×M logits) exists in
 * this version; the chunked O(N)-memory version is not implemented yet.
 */
export type SoftmaxMethod = 'naive';

/** Where to compute. Only `'cpu'` is available in this version; CUDA requests throw `ERR_SIGLIP_NO_CUDA`. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

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
   * are bit-identical for every thread count (a fixed reduction order).
   */
  threads?: number;
  /** Default `'cpu'`, the only device in this version. */
  device?: Device;
}

/** Options of the sigmoid (SigLIP) loss. */
export interface SigmoidLossOptions extends CommonLossOptions {
  /** s, the log of the temperature t = exp(s) (dimensionless). Default ln 10 (t = 10). |s| ≤ 80. */
  logitScale?: number;
  /** b, added to every logit. Default −10. */
  logitBias?: number;
  /** Default `'fused'`. */
  method?: SigmoidMethod;
}

/** Options of the softmax (CLIP) loss. It has no bias. */
export interface SoftmaxLossOptions extends CommonLossOptions {
  /** s, the log of the temperature t = exp(s). Default ln(1/0.07) ≈ 2.659 (CLIP's init, t ≈ 14.3). |s| ≤ 80. */
  logitScale?: number;
  /** Default (and, in this version, only) `'naive'`. */
  method?: SoftmaxMethod;
}

/** Default sigmoid logitScale: ln 10, so the temperature is 10 (SigLIP's init). */
export const DEFAULT_SIGMOID_LOGIT_SCALE = Math.log(10);
/** Default sigmoid logitBias: −10 (SigLIP's init). */
export const DEFAULT_SIGMOID_LOGIT_BIAS = -10;
/** Default softmax logitScale: ln(1/0.07) (CLIP's init). */
export const DEFAULT_SOFTMAX_LOGIT_SCALE = Math.log(1 / 0.07);
/** The most threads a call may ask for. */
export const MAX_THREADS = 1024;

/** `code` of the error thrown for a CUDA device in a build without CUDA. */
export const ERR_SIGLIP_NO_CUDA = 'ERR_SIGLIP_NO_CUDA';
/** `code` of the error thrown for a method that is not implemented yet. */
export const ERR_SIGLIP_NOT_IMPLEMENTED = 'ERR_SIGLIP_NOT_IMPLEMENTED';

/** Why CUDA is unavailable (backendInfo reports the same text). */
export const CUDA_UNAVAILABLE_REASON =
  'this build of siglip-kernels has no CUDA backend (only the CPU addon is compiled; no CUDA build is present)';

/** The default thread count: the parallelism Node.js reports (at least 1, at most MAX_THREADS). */
export function defaultThreads(): number {
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.min(Math.max(1, n), MAX_THREADS);
}

type LossKind = 'sigmoid' | 'softmax';

const COMMON_KEYS = ['logitScale', 'imageIds', 'textIds', 'method', 'threads', 'device'] as const;
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

function checkIds(argument: string, value: unknown, length: number, rowsOf: string): Int32Array | undefined {
  if (value === undefined) return undefined;
  const expected = `an Int32Array of length ${length} (one label id per row of ${rowsOf})`;
  const ids = checkInt32Array(argument, value, expected);
  if (ids.length !== length) throw invalidValue(argument, expected, ids);
  return ids;
}

function checkDevice(value: unknown): void {
  if (value === undefined || value === 'cpu') return;
  const expected = "'cpu' (the only device of this build)";
  if (typeof value !== 'string') throw invalidType('options.device', expected, value);
  if (/^cuda(:\d+)?$/.test(value)) {
    throw errorWithCode(
      `options.device is '${value}', but ${CUDA_UNAVAILABLE_REASON}. Use device 'cpu' (the default).`,
      ERR_SIGLIP_NO_CUDA,
      'options.device',
    );
  }
  throw invalidValue('options.device', expected, value);
}

function checkMethod(kind: LossKind, value: unknown): 'fused' | 'naive' {
  if (kind === 'sigmoid') {
    if (value === undefined) return 'fused';
    if (typeof value !== 'string') throw invalidType('options.method', "'fused' or 'naive'", value);
    if (value !== 'fused' && value !== 'naive') throw invalidValue('options.method', "'fused' or 'naive'", value);
    return value;
  }
  if (value === undefined || value === 'naive') return 'naive';
  if (typeof value !== 'string') throw invalidType('options.method', "'naive'", value);
  if (value === 'fused') {
    throw invalidValue(
      'options.method',
      "'naive' (the chunked softmax loss, 'fused', is not implemented yet)",
      value,
      ERR_SIGLIP_NOT_IMPLEMENTED,
    );
  }
  throw invalidValue('options.method', "'naive'", value);
}

/**
 * Validates `options` for a loss over `image` (N rows) and `text` (M rows) and fills in the
 * defaults, giving what the addon takes.
 *
 * @internal
 */
export function resolveLossOptions(kind: LossKind, options: unknown, image: Matrix, text: Matrix): NativeLossOptions {
  if (options === undefined) options = {};
  if (!isPlainObject(options)) throw invalidType('options', 'a plain object or undefined', options);

  const known = KNOWN_KEYS[kind];
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    if (kind === 'softmax' && key === 'logitBias') {
      if (options[key] === undefined) continue;
      throw invalidType(
        'options.logitBias',
        'no logitBias (the softmax loss has no bias; it is an option of sigmoidLoss)',
        options[key],
      );
    }
    throw invalidType(
      `options.${key}`,
      `one of the options ${known.join(', ')}`,
      new Description(`an unknown option${suggestion(key, known)}`),
    );
  }

  checkDevice(options['device']);

  const logitScale =
    options['logitScale'] === undefined
      ? kind === 'sigmoid'
        ? DEFAULT_SIGMOID_LOGIT_SCALE
        : DEFAULT_SOFTMAX_LOGIT_SCALE
      : checkFiniteNumber('options.logitScale', options['logitScale']);

  const imageIds = checkIds('options.imageIds', options['imageIds'], image.rows, 'image');
  const textIds = checkIds('options.textIds', options['textIds'], text.rows, 'text');
  if ((imageIds === undefined) !== (textIds === undefined)) {
    const [missing, given] = imageIds === undefined ? ['imageIds', 'textIds'] : ['textIds', 'imageIds'];
    throw invalidType(
      `options.${missing}`,
      `an Int32Array (imageIds and textIds are given together or not at all; ${given} was given)`,
      undefined,
    );
  }

  const method = checkMethod(kind, options['method']);
  const threads =
    options['threads'] === undefined
      ? defaultThreads()
      : checkIntegerInRange('options.threads', options['threads'], 1, MAX_THREADS);

  const resolved: NativeLossOptions = { logitScale, method, threads };
  if (kind === 'sigmoid') {
    resolved.logitBias =
      options['logitBias'] === undefined
        ? DEFAULT_SIGMOID_LOGIT_BIAS
        : checkFiniteNumber('options.logitBias', options['logitBias']);
  }
  if (imageIds !== undefined && textIds !== undefined) {
    resolved.imageIds = imageIds;
    resolved.textIds = textIds;
  }
  return resolved;
}
