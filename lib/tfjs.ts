/**
 * `siglip-kernels/tfjs`: the sigmoid and softmax losses as TensorFlow.js ops, with gradients
 * to all their inputs, for models trained with `@tensorflow/tfjs` (CPU or WASM backend).
 *
 * Pass your application's own `tf` as the first argument (this module never loads tfjs, so
 * no second copy of tfjs-core appears; `@tensorflow/tfjs-core` is an optional peer
 * dependency, for the types). The embeddings are `tf.Tensor2D`s (float32, N×D and M×D,
 * L2-normalised by the caller as in the main API); `logitScale` and `logitBias` are scalar
 * tensors, usually `tf.Variable`s so that an optimiser trains them.
 *
 * Under a gradient tape (`tf.grad`, `tf.variableGrads`, `optimizer.minimize`) one native call
 * computes the loss and all gradients, and the op hands the gradients to the tape
 * (`tf.customGrad`); with no tape recording, only the loss is computed (about a third of the
 * work). Gradients are first-order only (the op's gradients are not themselves differentiable).
 *
 * Copies: on the CPU backend `dataSync()` returns the tensor's own Float32Array, and the
 * gradient tensors wrap the arrays the native call returns, so nothing is copied. The WASM
 * backend keeps tensors in the WebAssembly heap: reading the inputs copies them out, and the
 * gradients are copied in (bench/NOTES.md has the cost). GPU backends (WebGL, WebGPU) would
 * download the inputs on every call and are not tested.
 *
 * @packageDocumentation
 */
import type * as tfc from '@tensorflow/tfjs-core';

import {
  type Matrix,
  type RankRing,
  type RankRingLossOptions,
  type Ring,
  type RingStats,
  type SigmoidMethod,
  type SoftmaxMethod,
  type Device,
  type Precision,
  type SoftmaxLossWithGrad,
  matrix,
  sigmoidLossSync,
  sigmoidLossWithGradSync,
  softmaxLossSync,
  softmaxLossWithGradSync,
} from './index';
import { checkOptionKeys } from './options';
import { Description, invalidType, invalidValue, type SiglipError } from './validate';

/**
 * The parts of the TensorFlow.js module the adapter uses. Pass the module itself
 * (`import * as tf from '@tensorflow/tfjs'`, or `@tensorflow/tfjs-core` with a backend).
 */
export type TensorFlow = Pick<typeof tfc, 'Tensor' | 'customGrad' | 'engine' | 'scalar' | 'tensor2d'>;

/** Label ids: an `Int32Array`, or a rank-1 int32 tensor. */
export type TfjsIds = Int32Array | tfc.Tensor1D;

/** Options both tfjs losses take (as in the main API; the scalars are arguments, not options). */
export interface TfjsLossOptions {
  /** Label ids of the image rows (N of them); see the main API's `CommonLossOptions.imageIds`. */
  imageIds?: TfjsIds;
  /** Label ids of the text rows (M of them); given together with `imageIds` or not at all. */
  textIds?: TfjsIds;
  /** Worker threads of the native call, 1 to 1024. Default: `os.availableParallelism()`. */
  threads?: number;
  /** Where to compute: `'cpu'` (default) or a CUDA device (the tensors' data are uploaded for the call). */
  device?: Device;
  /** CUDA only: how float32 inputs are multiplied (`'tf32'`, `'fp32'`). */
  precision?: Precision;
}

/** Options of {@link sigmoidLoss}. */
export interface TfjsSigmoidLossOptions extends TfjsLossOptions {
  /** `'fused'` (default) or `'naive'`. */
  method?: SigmoidMethod;
}

/** Options of {@link softmaxLoss}. */
export interface TfjsSoftmaxLossOptions extends TfjsLossOptions {
  /** `'chunked'` (default) or `'naive'`. */
  method?: SoftmaxMethod;
}

/**
 * How many native calls of each kind this module has made: `lossOnly` (no tape was recording)
 * and `withGrad` (under a tape). For tests that check which path a call took.
 *
 * @internal
 */
export const nativeCalls = { lossOnly: 0, withGrad: 0 };

type Kind = 'sigmoid' | 'softmax';

const TF_PARTS = ['Tensor', 'customGrad', 'engine', 'scalar', 'tensor2d'] as const;

function checkTf(tf: unknown): TensorFlow {
  const ok = typeof tf === 'object' && tf !== null && TF_PARTS.every((k) => typeof (tf as Record<string, unknown>)[k] === 'function');
  if (!ok) throw invalidType('tf', "the TensorFlow.js module (import * as tf from '@tensorflow/tfjs')", tf);
  return tf as TensorFlow;
}

function tensorDescription(t: tfc.Tensor): Description {
  return new Description(`a ${t.dtype} tensor of shape [${t.shape.join(', ')}]`);
}

/** A live tensor of `tf` (not disposed); `expected` describes it in messages. */
function checkTensor(tf: TensorFlow, argument: string, value: unknown, expected: string): tfc.Tensor {
  if (!(value instanceof tf.Tensor)) {
    const hint = ArrayBuffer.isView(value) || Array.isArray(value) ? ' (wrap arrays with tf.tensor2d or tf.scalar)' : '';
    const other = typeof value === 'object' && value !== null && 'dataSync' in value ? ' from this tf (a tensor of another copy of tfjs-core?)' : '';
    throw invalidType(argument, `${expected}${other}${hint}`, value);
  }
  if (value.isDisposed) throw invalidValue(argument, `${expected} that is not disposed`, new Description('a disposed tensor'));
  return value;
}

function checkEmbeddings(tf: TensorFlow, argument: string, value: unknown): tfc.Tensor2D {
  const t = checkTensor(tf, argument, value, 'a float32 tf.Tensor2D');
  if (t.dtype !== 'float32') throw invalidType(argument, 'a float32 tf.Tensor2D', tensorDescription(t));
  if (t.rank !== 2) throw invalidValue(argument, 'a rank-2 tensor (one embedding per row)', tensorDescription(t));
  if (t.shape[0] === 0 || t.shape[1] === 0) throw invalidValue(argument, 'a tensor with at least one row and one column', tensorDescription(t));
  return t as tfc.Tensor2D;
}

function checkScalar(tf: TensorFlow, argument: string, value: unknown): tfc.Scalar {
  const expected = 'a float32 scalar tensor (tf.scalar(v) or a tf.Variable of shape [])';
  const t = checkTensor(tf, argument, value, expected);
  if (t.dtype !== 'float32') throw invalidType(argument, expected, tensorDescription(t));
  if (t.rank !== 0) throw invalidValue(argument, expected, tensorDescription(t));
  return t as tfc.Scalar;
}

function readIds(tf: TensorFlow, argument: string, value: unknown): unknown {
  if (!(value instanceof tf.Tensor)) return value; // an Int32Array, or something the main API rejects by name
  const expected = 'an Int32Array or a rank-1 int32 tensor';
  if (value.isDisposed) throw invalidValue(argument, `${expected} that is not disposed`, new Description('a disposed tensor'));
  if (value.dtype !== 'int32') throw invalidType(argument, expected, tensorDescription(value));
  if (value.rank !== 1) throw invalidValue(argument, expected, tensorDescription(value));
  return value.dataSync();
}

/** Options the adapter refuses: the scalars are arguments, and gradients always come back as tensors. */
const ARGUMENT_KEYS: Record<string, string> = {
  logitScale: 'no logitScale option (pass logitScale as a scalar tensor argument)',
  logitBias: 'no logitBias option (pass logitBias as a scalar tensor argument)',
  gradients: 'no gradients option (the tfjs adapter returns gradients as tensors)',
};

/** The main API's options for this call: the scalars' values, ids as Int32Arrays, the rest as given. */
function packageOptions(tf: TensorFlow, options: unknown, scalars: { logitScale: number; logitBias?: number }): Record<string, unknown> {
  // The main API checks the names of the others.
  const o = checkOptionKeys(options, [], false, (key, value) => {
    if (ARGUMENT_KEYS[key] === undefined) return true;
    throw invalidType(`options.${key}`, ARGUMENT_KEYS[key], value);
  });
  const resolved: Record<string, unknown> = { ...o, ...scalars };
  for (const key of ['imageIds', 'textIds'] as const) {
    if (o[key] !== undefined) resolved[key] = readIds(tf, `options.${key}`, o[key]);
  }
  return resolved;
}

/**
 * Reruns `call`, renaming the main API's `options.logitScale` / `options.logitBias` in its
 * errors to the argument the caller passed (the value of a scalar tensor).
 */
function withArgumentNames<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    const e = error as SiglipError;
    if (e instanceof Error && (e.argument === 'options.logitScale' || e.argument === 'options.logitBias')) {
      const name = e.argument.slice('options.'.length);
      e.message = e.message.replace(`for ${e.argument}`, `for ${name} (its value)`);
      e.argument = name;
    }
    throw error;
  }
}

interface Prepared {
  image: Matrix;
  text: Matrix;
  options: Record<string, unknown>;
}

/** Checks a loss op's tensors (read() reads their values and checks the options, later). */
function prepare(kind: Kind, tfArg: unknown, imageArg: unknown, textArg: unknown, scaleArg: unknown, biasArg: unknown, options: unknown): {
  tf: TensorFlow;
  inputs: tfc.Tensor[];
  read: () => Prepared;
} {
  const tf = checkTf(tfArg);
  const image = checkEmbeddings(tf, 'image', imageArg);
  const text = checkEmbeddings(tf, 'text', textArg);
  const [n, d] = image.shape;
  const [m, dText] = text.shape;
  if (dText !== d) {
    throw invalidValue('text', `a tensor of shape [M, ${d}] (image is [${n}, ${d}]: the same width D)`, tensorDescription(text));
  }
  const logitScale = checkScalar(tf, 'logitScale', scaleArg);
  const logitBias = kind === 'sigmoid' ? checkScalar(tf, 'logitBias', biasArg) : undefined;
  const inputs = logitBias === undefined ? [image, text, logitScale] : [image, text, logitScale, logitBias];
  const read = (): Prepared => {
    const scalars: { logitScale: number; logitBias?: number } = { logitScale: logitScale.dataSync()[0]! };
    if (logitBias !== undefined) scalars.logitBias = logitBias.dataSync()[0]!;
    const resolved = packageOptions(tf, options, scalars);
    return {
      // dataSync(): the CPU backend's own array (no copy); a copy out of the heap on WASM.
      image: matrix(image.dataSync() as Float32Array, n, d),
      text: matrix(text.dataSync() as Float32Array, m, d),
      options: resolved,
    };
  };
  return { tf, inputs, read };
}

/** The main API's synchronous losses this module calls. */
const LOSSES: Record<Kind, { loss: (x: Matrix, y: Matrix, o: object) => number; withGrad: (x: Matrix, y: Matrix, o: object) => SoftmaxLossWithGrad }> = {
  sigmoid: { loss: sigmoidLossSync, withGrad: sigmoidLossWithGradSync },
  softmax: { loss: softmaxLossSync, withGrad: softmaxLossWithGradSync },
};

/** Gradients as a TensorFlow.js op returns them. */
interface Grad {
  image: Float32Array;
  text: Float32Array;
  logitScale: number;
  logitBias?: number;
}

/**
 * The op's result and its gradFunc: the gradients times the upstream gradient dy, as tensors
 * of `shapes` (image, text). `owned`: the arrays are this call's own (a native call's fresh
 * arrays, scaled in place and become the tensors' storage on the CPU backend); otherwise
 * they are scaled as copies (attach() may be called more than once on the ring's arrays).
 */
function opResult(tf: TensorFlow, loss: number, grad: Grad, shapes: ReadonlyArray<readonly [number, number]>, owned: boolean) {
  return {
    value: tf.scalar(loss, 'float32'),
    gradFunc: (dy: tfc.Scalar): tfc.Tensor[] => {
      const k = dy.dataSync()[0]!;
      const scaled = (g: Float32Array) => {
        if (k === 1 || !owned) return k === 1 ? g : g.map((v) => v * k);
        for (let i = 0; i < g.length; i++) g[i]! *= k;
        return g;
      };
      const scalars = grad.logitBias === undefined ? [grad.logitScale] : [grad.logitScale, grad.logitBias];
      return [
        tf.tensor2d(scaled(grad.image), [...shapes[0]!], 'float32'),
        tf.tensor2d(scaled(grad.text), [...shapes[1]!], 'float32'),
        ...scalars.map((v) => tf.scalar(v * k, 'float32')),
      ];
    },
  };
}

/** A loss op (kind, tf, image, text, logitScale, logitBias, options: as {@link prepare}). */
function runLoss(...args: Parameters<typeof prepare>): tfc.Scalar {
  const kind = args[0];
  const { tf, inputs, read } = prepare(...args);
  if (!tf.engine().isTapeOn()) {
    // Nobody can ask for gradients of this value: the loss alone.
    const call = read();
    const loss = withArgumentNames(() => LOSSES[kind].loss(call.image, call.text, call.options));
    nativeCalls.lossOnly++;
    return tf.scalar(loss, 'float32');
  }
  // Checked and read before the op runs, so that a bad argument throws here and not from
  // inside the engine's kernel bookkeeping.
  const call = read();
  const forward = () => {
    const { loss, grad } = withArgumentNames(() => LOSSES[kind].withGrad(call.image, call.text, call.options));
    nativeCalls.withGrad++;
    const shapes = [[call.image.rows, call.image.cols], [call.text.rows, call.text.cols]] as const;
    return opResult(tf, loss, grad, shapes, true);
  };
  return tf.customGrad<tfc.Scalar>(forward)(...inputs);
}

/**
 * The SigLIP sigmoid loss of `image` (N×D) and `text` (M×D) as a TensorFlow.js op: a float32
 * scalar tensor, with gradients to `image`, `text`, `logitScale` and `logitBias`. The formula,
 * defaults and tolerances are the main API's `sigmoidLossSync` (t = exp(logitScale); the mean
 * over image rows of the binary cross-entropies of all N×M pairs).
 *
 * @param tf - the application's TensorFlow.js module.
 * @param image - X, a float32 `tf.Tensor2D` (N×D), one L2-normalised embedding per row.
 * @param text - Y, a float32 `tf.Tensor2D` (M×D; M = N unless label ids are given).
 * @param logitScale - s, a float32 scalar tensor (usually a `tf.Variable`; SigLIP starts at ln 10).
 * @param logitBias - b, a float32 scalar tensor (usually a `tf.Variable`; SigLIP starts at −10).
 * @param options - label ids (Int32Arrays or int32 tensors), `method`, `threads`; see {@link TfjsSigmoidLossOptions}.
 * @returns the loss L, a float32 scalar tensor (tracked by `tf.tidy` like any other).
 * @throws TypeError (code `ERR_INVALID_ARG_TYPE`) for something other than tensors of this
 *   `tf`, a dtype other than float32 (int32 for tensor ids), options that are arguments here
 *   (`logitScale`, `logitBias`, `gradients`); RangeError (`ERR_INVALID_ARG_VALUE`) for a
 *   wrong rank (a non-scalar logitScale, a rank-1 image), widths that differ, a disposed
 *   tensor; and whatever the main API throws for the values (NaN in the data, N ≠ M without
 *   ids, |logitScale| > 80, bad threads or method), naming the same arguments.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { sigmoidLoss } from 'siglip-kernels/tfjs';
 *
 * const logitScale = tf.variable(tf.scalar(Math.log(10)));
 * const logitBias = tf.variable(tf.scalar(-10));
 * const w = tf.variable(tf.randomNormal([8, 4]));
 * const x = tf.randomNormal([16, 8]);
 * const y = tf.randomNormal([16, 8]);
 * const unit = (e: tf.Tensor2D) => tf.div(e, tf.norm(e, 'euclidean', 1, true)) as tf.Tensor2D;
 * const optimizer = tf.train.adam(0.01);
 * const loss = optimizer.minimize(() => sigmoidLoss(tf, unit(tf.matMul(x, w)), unit(tf.matMul(y, w)), logitScale, logitBias), true);
 * console.log(loss?.dataSync()[0]);
 * tf.dispose([loss!, logitScale, logitBias, w, x, y]);
 * ```
 */
export function sigmoidLoss(
  tf: TensorFlow,
  image: tfc.Tensor2D,
  text: tfc.Tensor2D,
  logitScale: tfc.Scalar,
  logitBias: tfc.Scalar,
  options?: TfjsSigmoidLossOptions,
): tfc.Scalar {
  return runLoss('sigmoid', tf, image, text, logitScale, logitBias, options);
}

/**
 * The CLIP softmax loss of `image` (N×D) and `text` (M×D) as a TensorFlow.js op: a float32
 * scalar tensor, with gradients to `image`, `text` and `logitScale`. Formula and defaults as
 * the main API's `softmaxLossSync` (no bias; with label ids every row and column needs a positive).
 *
 * @param tf - the application's TensorFlow.js module.
 * @param image - X, a float32 `tf.Tensor2D` (N×D).
 * @param text - Y, a float32 `tf.Tensor2D` (M×D).
 * @param logitScale - s, a float32 scalar tensor (CLIP starts at ln(1/0.07)).
 * @param options - label ids, `method`, `threads`; see {@link TfjsSoftmaxLossOptions}.
 * @returns the loss L, a float32 scalar tensor.
 * @throws as {@link sigmoidLoss}.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs';
 * import { softmaxLoss } from 'siglip-kernels/tfjs';
 *
 * const x = tf.tensor2d([[1, 0], [0, 1]]);
 * const s = tf.scalar(Math.log(1 / 0.07));
 * const dx = tf.grad((e: tf.Tensor2D) => softmaxLoss(tf, e, x, s))(x); // ∂L/∂image
 * tf.dispose([x, s, dx]);
 * ```
 */
export function softmaxLoss(
  tf: TensorFlow,
  image: tfc.Tensor2D,
  text: tfc.Tensor2D,
  logitScale: tfc.Scalar,
  options?: TfjsSoftmaxLossOptions,
): tfc.Scalar {
  return runLoss('softmax', tf, image, text, logitScale, undefined, options);
}

/** Options of {@link ringSigmoidLoss}: this rank's label ids (every rank gives ids or none does). */
export interface TfjsRingLossOptions {
  /** Label ids of this rank's image rows (an Int32Array or a rank-1 int32 tensor). */
  imageIds?: TfjsIds;
  /** Label ids of this rank's text rows. */
  textIds?: TfjsIds;
}

/** What {@link ringSigmoidLoss} resolves to: the global loss, and an op that hands the ring's gradients to a tape. */
export interface TfjsRingLoss {
  /** The loss L of the global batch (every rank's shards), the same number on every rank. */
  loss: number;
  /** What this rank did (steps, bytes, time computing and waiting). */
  stats: RingStats;
  /**
   * The loss as a TensorFlow.js op (a float32 scalar) whose gradients are the ring's: ∂L/∂image
   * and ∂L/∂text for this rank's rows, and the global ∂L/∂logitScale and ∂L/∂logitBias. Call
   * it under the tape (`tf.variableGrads`, `optimizer.minimize`) with this step's shard
   * embeddings computed again by the towers, so that the gradients flow on to their weights;
   * it makes no native call. The shapes must be those of the shards given to the ring.
   */
  attach(image: tfc.Tensor2D, text: tfc.Tensor2D, logitScale: tfc.Scalar, logitBias: tfc.Scalar): tfc.Scalar;
}

/**
 * The sigmoid loss of a batch sharded over the ranks of an MPI or NCCL {@link Ring} (one
 * process per rank), for data-parallel training with TensorFlow.js. Ring calls are
 * asynchronous and a tfjs tape is not (`tf.variableGrads` takes a synchronous function), so a
 * step has two phases: compute this rank's shard embeddings, `await ringSigmoidLoss(…)` (the
 * ring computes the global loss and every gradient), then, under the tape, recompute the
 * embeddings and pass them to `attach`, which hands the ring's gradients to the tape; the
 * towers' forward pass runs twice, the loss once.
 *
 * Averaging: the gradients are those of the global loss L. Each rank's tower-weight gradients
 * are its rows' share of ∂L/∂W: **sum** them over the ranks (with `ring.allGather`, up to 1 MiB
 * per call), or, for a framework that averages, multiply the average by P. ∂L/∂logitScale and
 * ∂L/∂logitBias are already global and equal on every rank: use them as they are.
 *
 * @param tf - the application's TensorFlow.js module.
 * @param ring - an MPI or NCCL ring (`Ring.mpi()`, `Ring.nccl()`); a local ring is refused.
 * @param imageShard - this rank's image embeddings, a float32 `tf.Tensor2D` (n_r × D).
 * @param textShard - this rank's text embeddings (m_r × D).
 * @param logitScale - s, a float32 scalar tensor (its value is read; every rank passes the same).
 * @param logitBias - b, a float32 scalar tensor.
 * @param options - this rank's label ids.
 * @returns a Promise of {@link TfjsRingLoss}; it rejects with the ring's errors (see `RankRing.sigmoidLossWithGrad`).
 *
 * @example
 * ```ts
 * // requires: mpi
 * import * as tf from '@tensorflow/tfjs';
 * import { Ring } from 'siglip-kernels';
 * import { ringSigmoidLoss } from 'siglip-kernels/tfjs';
 *
 * const ring = await Ring.mpi();
 * const w = tf.variable(tf.randomNormal([8, 4], 0, 1, 'float32', 1)); // the same seed on every rank
 * const [s, b] = [tf.variable(tf.scalar(Math.log(10))), tf.variable(tf.scalar(-10))];
 * const x = tf.randomNormal([16, 8]), y = tf.randomNormal([16, 8]);   // this rank's batch
 * const embed = (v: tf.Tensor) => tf.tidy(() => { const e = tf.matMul(v as tf.Tensor2D, w); return tf.div(e, tf.norm(e, 'euclidean', 1, true)) as tf.Tensor2D; });
 * const [ex, ey] = [embed(x), embed(y)];
 * const step = await ringSigmoidLoss(tf, ring, ex, ey, s, b);
 * tf.dispose([ex, ey]);
 * const { value, grads } = tf.variableGrads(() => step.attach(embed(x), embed(y), s, b));
 * // sum grads[w.name] over the ranks (ring.allGather), keep grads[s.name] and grads[b.name] as they are
 * tf.dispose([value, ...Object.values(grads)]);
 * ring.dispose();
 * ```
 */
export async function ringSigmoidLoss(
  tf: TensorFlow,
  ring: RankRing,
  imageShard: tfc.Tensor2D,
  textShard: tfc.Tensor2D,
  logitScale: tfc.Scalar,
  logitBias: tfc.Scalar,
  options?: TfjsRingLossOptions,
): Promise<TfjsRingLoss> {
  const { tf: tfm, inputs, read } = prepare('sigmoid', tf, imageShard, textShard, logitScale, logitBias, options);
  const r = ring as unknown;
  if (typeof r !== 'object' || r === null || typeof (r as RankRing).sigmoidLossWithGrad !== 'function') {
    throw invalidType('ring', 'a Ring (Ring.mpi() or Ring.nccl())', r);
  }
  if ((r as Ring).kind === 'local') {
    throw invalidType('ring', 'an MPI or NCCL ring (one shard per process; a local ring takes every rank’s shards at once)', new Description('a local ring'));
  }
  const call = read(); // the ring checks the options (it refuses threads and method: it has its own)
  const result = await (r as RankRing).sigmoidLossWithGrad(call.image, call.text, call.options as RankRingLossOptions);
  const [image, text] = inputs as [tfc.Tensor2D, tfc.Tensor2D];
  const shapes = [image.shape, text.shape] as const;
  const grad = result.grad as { image: Float32Array; text: Float32Array; logitScale: number; logitBias: number };
  return {
    loss: result.loss,
    stats: result.stats,
    attach: (imageArg, textArg, scaleArg, biasArg) => {
      const x = checkEmbeddings(tfm, 'image', imageArg);
      const y = checkEmbeddings(tfm, 'text', textArg);
      for (const [name, t, shape] of [['image', x, shapes[0]], ['text', y, shapes[1]]] as const) {
        if (t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
          throw invalidValue(name, `a tensor of shape [${shape.join(', ')}] (the shard given to the ring)`, tensorDescription(t));
        }
      }
      const s = checkScalar(tfm, 'logitScale', scaleArg);
      const b = checkScalar(tfm, 'logitBias', biasArg);
      const forward = () => opResult(tfm, result.loss, grad, [shapes[0] as [number, number], shapes[1] as [number, number]], false);
      return tfm.customGrad<tfc.Scalar>(forward)(x, y, s, b);
    },
  };
}
