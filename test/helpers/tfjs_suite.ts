// The checks of the TensorFlow.js adapter (lib/tfjs.ts), shared by the CPU-backend file
// (test/tfjs.test.ts) and the WASM-backend file (test/tfjs-wasm.test.ts): each file picks its
// backend before these run. The reference is tfjs's own autodiff of the same losses written
// in tfjs ops (float32), so what is compared is exactly what a tfjs user would otherwise get.
import type { TestFn } from 'ava';
import type * as tfType from '@tensorflow/tfjs';

import { sigmoidLoss, softmaxLoss } from '../../lib/tfjs';
import { randomIds, randomUnitRows, relativeError, rng, scalarError } from './reference';

type Tf = typeof tfType;
type T2 = tfType.Tensor2D;
type S = tfType.Scalar;

/** SPEC.md's float32 tolerances (relative, as ‖out − ref‖ / ‖ref‖). */
export const LOSS_TOLERANCE = 1e-5;
export const GRAD_TOLERANCE = 1e-4;

/** The positive-pair mask P (N×M, 1 for positives): the diagonal, or equal label ids. */
export function positives(tf: Tf, n: number, m: number, ids?: { imageIds: Int32Array; textIds: Int32Array }): T2 {
  const mask = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) mask[i * m + j] = (ids ? ids.imageIds[i] === ids.textIds[j] : i === j) ? 1 : 0;
  }
  return tf.tensor2d(mask, [n, m]);
}

/** SPEC.md's sigmoid loss in tfjs ops: (1/N) Σ softplus(−z · (exp(s) · X·Yᵀ + b)). */
export function sigmoidLossOps(tf: Tf, x: T2, y: T2, s: S, b: S, mask: T2): S {
  return tf.tidy(() => {
    const logits = tf.add(tf.mul(tf.exp(s), tf.matMul(x, y, false, true)), b);
    const z = tf.sub(tf.mul(mask, 2), 1);
    return tf.div(tf.sum(tf.softplus(tf.neg(tf.mul(z, logits)))), x.shape[0]) as S;
  });
}

/** SPEC.md's softmax loss in tfjs ops: the mean of the row and column cross-entropies against the (uniform over positives) targets. */
export function softmaxLossOps(tf: Tf, x: T2, y: T2, s: S, mask: T2): S {
  return tf.tidy(() => {
    const logits = tf.mul(tf.exp(s), tf.matMul(x, y, false, true)) as T2;
    const rowTarget = tf.div(mask, tf.sum(mask, 1, true));
    const colTarget = tf.div(mask.transpose(), tf.sum(mask.transpose(), 1, true));
    const rows = tf.div(tf.neg(tf.sum(tf.mul(rowTarget, tf.logSoftmax(logits)))), x.shape[0]);
    const cols = tf.div(tf.neg(tf.sum(tf.mul(colTarget, tf.logSoftmax(logits.transpose())))), y.shape[0]);
    return tf.mul(0.5, tf.add(rows, cols)) as S;
  });
}

export interface Case {
  n: number;
  m: number;
  d: number;
  x: Float32Array;
  y: Float32Array;
  s: number;
  b: number;
  ids?: { imageIds: Int32Array; textIds: Int32Array };
}

/** A random problem: unit rows, N, M up to 40, D up to 70, s in [0, 3], b in [−6, 1]; with ids, every id has a text (softmax needs it). */
export function randomCase(seed: number, withIds: boolean): Case {
  const random = rng(seed);
  const n = 1 + Math.floor(random() * 40);
  const d = 1 + Math.floor(random() * 70);
  let m = n;
  let ids: Case['ids'];
  if (withIds) {
    const imageIds = randomIds(random, n, 1 + Math.floor(random() * n));
    const distinct = [...new Set(imageIds)];
    m = distinct.length + Math.floor(random() * 20);
    const textIds = new Int32Array(m);
    distinct.forEach((id, k) => (textIds[k] = id));
    for (let k = distinct.length; k < m; k++) textIds[k] = imageIds[Math.floor(random() * n)]!;
    ids = { imageIds, textIds };
  }
  return { n, m, d, x: randomUnitRows(random, n, d), y: randomUnitRows(random, m, d), s: 3 * random(), b: -6 + 7 * random(), ids };
}

interface Outcome {
  loss: number;
  grads: Float32Array[];
}

/** Loss and the gradients of image, text, logitScale (and logitBias), from `f` under tf.grads. */
function lossAndGrads(tf: Tf, c: Case, sigmoid: boolean, f: (x: T2, y: T2, s: S, b: S) => S): Outcome {
  return tf.tidy(() => {
    const inputs = [tf.tensor2d(c.x, [c.n, c.d]), tf.tensor2d(c.y, [c.m, c.d]), tf.scalar(c.s), tf.scalar(c.b)];
    const used = sigmoid ? inputs : inputs.slice(0, 3);
    const { value, grads } = tf.valueAndGrads((...args: tfType.Tensor[]) => f(args[0] as T2, args[1] as T2, args[2] as S, (args[3] ?? inputs[3]) as S))(used);
    return { loss: value.dataSync()[0]!, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

export function registerTfjsSuite(test: TestFn, tf: Tf, backend: string, seeds: number): void {
  for (const kind of ['sigmoid', 'softmax'] as const) {
    for (const withIds of [false, true]) {
      test(`${backend}: ${kind} loss and gradients match tfjs autodiff of the loss in tfjs ops (${seeds} random shapes, ${withIds ? 'with' : 'without'} ids)`, (t) => {
        t.is(tf.getBackend(), backend);
        const sigmoid = kind === 'sigmoid';
        const names = ['image', 'text', 'logitScale', 'logitBias'];
        let worst = { loss: 0, grad: 0, scalar: 0 };
        for (let seed = 1; seed <= seeds; seed++) {
          const c = randomCase(1000 * seed + (withIds ? 7 : 0) + (sigmoid ? 0 : 500), withIds);
          const options = c.ids ? { imageIds: c.ids.imageIds, textIds: c.ids.textIds } : undefined;
          const mine = lossAndGrads(tf, c, sigmoid, (x, y, s, b) => (sigmoid ? sigmoidLoss(tf, x, y, s, b, options) : softmaxLoss(tf, x, y, s, options)));
          const mask = positives(tf, c.n, c.m, c.ids);
          const ref = lossAndGrads(tf, c, sigmoid, (x, y, s, b) => (sigmoid ? sigmoidLossOps(tf, x, y, s, b, mask) : softmaxLossOps(tf, x, y, s, mask)));
          mask.dispose();
          const where = `seed ${seed}: N ${c.n}, M ${c.m}, D ${c.d}`;
          const lossError = scalarError(mine.loss, ref.loss);
          t.true(lossError <= LOSS_TOLERANCE, `${where}: loss ${mine.loss} vs ${ref.loss}`);
          worst.loss = Math.max(worst.loss, lossError);
          t.is(mine.grads.length, ref.grads.length);
          for (let k = 0; k < ref.grads.length; k++) {
            const matrixGrad = k < 2;
            // Scalars: relative to the larger of the gradient and the loss (∂L/∂s can nearly cancel).
            const e = matrixGrad ? relativeError(mine.grads[k]!, ref.grads[k]!) : scalarError(mine.grads[k]![0]!, ref.grads[k]![0]!, Math.abs(ref.loss));
            t.true(e <= GRAD_TOLERANCE, `${where}: ∂L/∂${names[k]} relative error ${e}`);
            if (matrixGrad) worst.grad = Math.max(worst.grad, e);
            else worst.scalar = Math.max(worst.scalar, e);
          }
        }
        t.log(`worst relative error: loss ${worst.loss.toExponential(1)}, image/text gradients ${worst.grad.toExponential(1)}, scalar gradients ${worst.scalar.toExponential(1)}`);
        worst = { loss: 0, grad: 0, scalar: 0 };
      });
    }
  }

  test(`${backend}: a linear two-tower model trained with tf.train.adam follows the pure-tfjs trajectory`, (t) => {
    const steps = 12;
    const random = rng(42);
    const n = 48;
    const [dImage, dText, e] = [24, 16, 8];
    const image = tf.tensor2d(randomUnitRows(random, n, dImage), [n, dImage]);
    const text = tf.tensor2d(randomUnitRows(random, n, dText), [n, dText]);
    const w0 = { image: randomUnitRows(random, dImage, e), text: randomUnitRows(random, dText, e) };
    const mask = positives(tf, n, n);
    const run = (useAdapter: boolean): number[] => {
      const wImage = tf.variable(tf.tensor2d(w0.image, [dImage, e]));
      const wText = tf.variable(tf.tensor2d(w0.text, [dText, e]));
      const s = tf.variable(tf.scalar(Math.log(10)));
      const b = tf.variable(tf.scalar(-10));
      const optimizer = tf.train.adam(0.05);
      const unit = (m: tfType.Tensor): T2 => tf.div(m, tf.norm(m, 'euclidean', 1, true)) as T2;
      const losses: number[] = [];
      let afterFirstStep = 0;
      for (let step = 0; step < steps; step++) {
        const loss = optimizer.minimize(() => {
          const x = unit(tf.matMul(image, wImage));
          const y = unit(tf.matMul(text, wText));
          return useAdapter ? sigmoidLoss(tf, x, y, s, b) : sigmoidLossOps(tf, x, y, s, b, mask);
        }, true)!;
        losses.push(loss.dataSync()[0]!);
        loss.dispose();
        // Adam makes its moment slots in the first step; after that the count must not move.
        if (step === 0) afterFirstStep = tf.memory().numTensors;
        else t.is(tf.memory().numTensors, afterFirstStep, `${useAdapter ? 'adapter' : 'tfjs ops'}: tensors leaked in step ${step}`);
      }
      losses.push(s.dataSync()[0]!, b.dataSync()[0]!);
      optimizer.dispose();
      tf.dispose([wImage, wText, s, b]);
      return losses;
    };
    // tfjs's Adam leaves a few tensors behind after dispose(), with either loss: compare the two runs.
    const before = tf.memory().numTensors;
    const adapter = run(true);
    const leftByAdapterRun = tf.memory().numTensors - before;
    const ops = run(false);
    t.is(tf.memory().numTensors - before, 2 * leftByAdapterRun, 'the adapter run left other tensors behind than the tfjs-ops run');
    tf.dispose([image, text, mask]);
    t.true(adapter[steps - 1]! < adapter[0]! * 0.9, `the loss did not fall: ${adapter.join(', ')}`);
    for (let k = 0; k < adapter.length; k++) {
      const e2 = scalarError(adapter[k]!, ops[k]!);
      t.true(e2 <= 1e-4, `${k < steps ? `step ${k} loss` : k === steps ? 'final logitScale' : 'final logitBias'}: ${adapter[k]} (adapter) vs ${ops[k]} (tfjs ops), relative ${e2}`);
    }
    t.log(`loss ${adapter[0]!.toFixed(4)} → ${adapter[steps - 1]!.toFixed(4)} in ${steps} steps; tfjs ops ${ops[0]!.toFixed(4)} → ${ops[steps - 1]!.toFixed(4)}`);
  });

  test(`${backend}: no tensor leaks over many training steps, and tf.tidy around the call`, (t) => {
    const random = rng(7);
    const [n, d] = [16, 8];
    const image = tf.tensor2d(randomUnitRows(random, n, d), [n, d]);
    const w = tf.variable(tf.eye(d));
    const s = tf.variable(tf.scalar(Math.log(10)));
    const b = tf.variable(tf.scalar(-10));
    const optimizer = tf.train.sgd(0.1);
    const ids = tf.tensor1d(Int32Array.from({ length: n }, (_, i) => i % 5), 'int32');
    const before = tf.memory().numTensors;
    for (let step = 0; step < 50; step++) {
      optimizer.minimize(() => {
        const x = tf.matMul(image, w) as T2;
        return step % 2 === 0 ? sigmoidLoss(tf, x, image, s, b) : sigmoidLoss(tf, x, image, s, b, { imageIds: ids, textIds: ids });
      });
      t.is(tf.memory().numTensors, before, `step ${step}`);
    }
    const inTidy = tf.tidy(() => sigmoidLoss(tf, tf.matMul(image, w) as T2, image, s, b));
    t.is(tf.memory().numTensors, before + 1, 'tf.tidy keeps exactly the returned loss');
    inTidy.dispose();
    tf.tidy(() => {
      softmaxLoss(tf, image, image, s);
    });
    t.is(tf.memory().numTensors, before);
    tf.dispose([image, w, s, b, ids]);
    optimizer.dispose();
  });
}
