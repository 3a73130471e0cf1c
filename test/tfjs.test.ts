// siglip-kernels/tfjs on TensorFlow.js's CPU backend: agreement with tfjs autodiff, training,
// leaks (test/helpers/tfjs_suite.ts), and what only this file checks: which native call each
// path makes (the tape), upstream gradients, the argument checks' messages, and the ops
// computing on a GPU (device 'cuda').
import test from 'ava';
import * as tf from '@tensorflow/tfjs';

import { matrix, Ring, sigmoidLossSync, sigmoidLossWithGradSync, softmaxLossWithGradSync } from '../lib/index';
import { nativeCalls, ringSigmoidLoss, sigmoidLoss, softmaxLoss } from '../lib/tfjs';
import { gpuTest } from './helpers/gpu';
import { randomUnitRows, relativeError, rng } from './helpers/reference';
import { registerTfjsSuite } from './helpers/tfjs_suite';

test.before(async () => {
  await tf.setBackend('cpu');
});

registerTfjsSuite(test, tf, 'cpu', 12);

function inputs(seed: number, n = 6, d = 5) {
  const random = rng(seed);
  const x = randomUnitRows(random, n, d);
  const y = randomUnitRows(random, n, d);
  return { x, y, image: tf.tensor2d(x, [n, d]), text: tf.tensor2d(y, [n, d]), s: tf.scalar(1.5), b: tf.scalar(-2) };
}

test('without a tape the loss alone is computed; under one, loss and gradients in one call', (t) => {
  const { x, y, image, text, s, b } = inputs(1);
  const expected = sigmoidLossSync(matrix(x, 6, 5), matrix(y, 6, 5), { logitScale: 1.5, logitBias: -2 });
  const start = { ...nativeCalls };
  t.false(tf.engine().isTapeOn());
  const plain = sigmoidLoss(tf, image, text, s, b);
  t.deepEqual(nativeCalls, { lossOnly: start.lossOnly + 1, withGrad: start.withGrad });
  t.is(plain.dataSync()[0], Math.fround(expected));

  const inTidy = tf.tidy(() => sigmoidLoss(tf, image, text, s, b)); // tidy records no tape
  t.deepEqual(nativeCalls, { lossOnly: start.lossOnly + 2, withGrad: start.withGrad });

  let tapeWasOn = false;
  const dx = tf.grad((e: tf.Tensor) => {
    tapeWasOn = tf.engine().isTapeOn();
    return sigmoidLoss(tf, e as tf.Tensor2D, text, s, b);
  })(image);
  t.true(tapeWasOn);
  t.deepEqual(nativeCalls, { lossOnly: start.lossOnly + 2, withGrad: start.withGrad + 1 });
  const direct = sigmoidLossWithGradSync(matrix(x, 6, 5), matrix(y, 6, 5), { logitScale: 1.5, logitBias: -2 });
  t.deepEqual(dx.dataSync(), direct.grad.image, 'the gradient is the native call’s, bit for bit');
  tf.dispose([plain, inTidy, dx, image, text, s, b]);
});

test('upstream gradients scale the result, and a loss used twice accumulates', (t) => {
  const { image, text, s, b } = inputs(2);
  const once = tf.grads((e: tf.Tensor, sc: tf.Tensor) => sigmoidLoss(tf, e as tf.Tensor2D, text, sc as tf.Scalar, b))([image, s]);
  const tripled = tf.grads((e: tf.Tensor, sc: tf.Tensor) => tf.mul(3, sigmoidLoss(tf, e as tf.Tensor2D, text, sc as tf.Scalar, b)))([image, s]);
  const twice = tf.grads((e: tf.Tensor, sc: tf.Tensor) => {
    const l = sigmoidLoss(tf, e as tf.Tensor2D, text, sc as tf.Scalar, b);
    return tf.add(l, tf.mul(l, 2));
  })([image, s]);
  for (const k of [0, 1]) {
    const reference = Array.from(once[k]!.dataSync(), (v) => 3 * v);
    t.true(relativeError(tripled[k]!.dataSync(), reference) < 1e-6);
    t.true(relativeError(twice[k]!.dataSync(), reference) < 1e-6);
  }
  tf.dispose([...once, ...tripled, ...twice, image, text, s, b]);
});

test('the same tensor as image and text gets the sum of both gradients', (t) => {
  const { x, image, s, b } = inputs(3);
  const dx = tf.grad((e: tf.Tensor) => sigmoidLoss(tf, e as tf.Tensor2D, e as tf.Tensor2D, s, b))(image);
  const direct = sigmoidLossWithGradSync(matrix(x, 6, 5), matrix(x, 6, 5), { logitScale: 1.5, logitBias: -2 });
  const sum = direct.grad.image.map((v, i) => v + direct.grad.text[i]!);
  t.true(relativeError(dx.dataSync(), sum) < 1e-6);
  tf.dispose([dx, image, s, b]);
});

test('label ids as int32 tensors or Int32Arrays give the same loss; options pass through', (t) => {
  const { image, text, s, b } = inputs(4);
  const ids = Int32Array.of(0, 1, 1, 2, 3, 0);
  const idTensor = tf.tensor1d(ids, 'int32');
  const a = sigmoidLoss(tf, image, text, s, b, { imageIds: ids, textIds: ids });
  const c = sigmoidLoss(tf, image, text, s, b, { imageIds: idTensor, textIds: idTensor, method: 'naive', threads: 1 });
  t.true(Math.abs(a.dataSync()[0]! - c.dataSync()[0]!) <= 1e-5 * Math.abs(a.dataSync()[0]!));
  const d = softmaxLoss(tf, image, text, s, { imageIds: idTensor, textIds: ids });
  t.true(Number.isFinite(d.dataSync()[0]!));
  tf.dispose([a, c, d, idTensor, image, text, s, b]);
});

test('bad arguments throw the package’s messages, naming the argument, and leak no tensor', (t) => {
  const { image, text, s, b } = inputs(5);
  const before = tf.memory().numTensors;
  const expectError = (f: () => unknown, kind: typeof TypeError | typeof RangeError, argument: string, pattern: RegExp) => {
    const error = t.throws(f, { instanceOf: kind, message: pattern }) as Error & { argument?: string; code?: string };
    t.is(error?.argument, argument, error?.message);
    t.regex(error?.code ?? '', /^ERR_/);
  };
  const rank1 = tf.tensor1d([1.5]);
  const int2d = tf.tensor2d([[1, 2]], [1, 2], 'int32');
  const narrow = tf.tensor2d(randomUnitRows(rng(9), 6, 4), [6, 4]);
  const fewer = tf.tensor2d(randomUnitRows(rng(9), 4, 5), [4, 5]);
  const floatIds = tf.tensor1d([0, 1, 2, 3, 4, 5]);
  const flat = image.reshape([30]);
  const tooLarge = tf.scalar(200);
  const disposed = tf.scalar(1);
  disposed.dispose();

  expectError(() => sigmoidLoss({} as never, image, text, s, b), TypeError, 'tf', /Expected the TensorFlow\.js module .* for tf but received an object/);
  expectError(() => sigmoidLoss(tf, image.dataSync() as never, text, s, b), TypeError, 'image', /for image but received a Float32Array of length 30/);
  expectError(() => sigmoidLoss(tf, flat as never, text, s, b), RangeError, 'image', /Expected a rank-2 tensor .* but received a float32 tensor of shape \[30\]/);
  expectError(() => sigmoidLoss(tf, int2d as tf.Tensor2D, text, s, b), TypeError, 'image', /Expected a float32 tf\.Tensor2D for image but received a int32 tensor of shape \[1, 2\]/);
  expectError(() => sigmoidLoss(tf, image, narrow, s, b), RangeError, 'text', /Expected a tensor of shape \[M, 5\] .* but received a float32 tensor of shape \[6, 4\]/);
  expectError(() => sigmoidLoss(tf, image, fewer, s, b), RangeError, 'text.rows', /image\.rows/);
  expectError(() => sigmoidLoss(tf, image, text, rank1 as never, b), RangeError, 'logitScale', /scalar tensor .* for logitScale but received a float32 tensor of shape \[1\]/);
  expectError(() => sigmoidLoss(tf, image, text, s, 3 as never), TypeError, 'logitBias', /for logitBias but received the number 3/);
  expectError(() => sigmoidLoss(tf, image, text, disposed, b), RangeError, 'logitScale', /not disposed .* received a disposed tensor/);
  expectError(() => sigmoidLoss(tf, image, text, tooLarge, b), RangeError, 'logitScale', /for logitScale \(its value\) but received 200|the number 200/);
  expectError(() => sigmoidLoss(tf, image, text, s, b, { logitScale: 2 } as never), TypeError, 'options.logitScale', /no logitScale option/);
  expectError(() => sigmoidLoss(tf, image, text, s, b, { imageIds: floatIds as never, textIds: floatIds as never }), TypeError, 'options.imageIds', /int32 tensor .* float32 tensor of shape \[6\]/);
  expectError(() => sigmoidLoss(tf, image, text, s, b, { threads: 0 }), RangeError, 'options.threads', /options\.threads/);
  expectError(() => sigmoidLoss(tf, image, text, s, b, { methd: 'fused' } as never), TypeError, 'options.methd', /method/);
  expectError(() => tf.grad((e: tf.Tensor) => sigmoidLoss(tf, e as tf.Tensor2D, text, s, b, { threads: 0 }))(image), RangeError, 'options.threads', /options\.threads/);
  const nan = tf.tensor2d(new Float32Array(30).fill(Number.NaN), [6, 5]);
  t.throws(() => softmaxLoss(tf, nan, text, s), { message: /image/ });

  tf.dispose([rank1, int2d, narrow, fewer, floatIds, nan, flat, tooLarge]);
  t.is(tf.memory().numTensors, before, 'tensors leaked by failed calls');
  tf.dispose([image, text, s, b]);
});

test('ringSigmoidLoss refuses a local ring (one shard per process) and non-rings, naming ring', async (t) => {
  const { image, text, s, b } = inputs(6);
  const ring = await Ring.local({ ranks: 2 });
  const before = tf.memory().numTensors;
  await t.throwsAsync(ringSigmoidLoss(tf, ring as never, image, text, s, b), { instanceOf: TypeError, message: /Expected an MPI or NCCL ring .* for ring but received a local ring/ });
  await t.throwsAsync(ringSigmoidLoss(tf, {} as never, image, text, s, b), { instanceOf: TypeError, message: /for ring but received an object/ });
  await t.throwsAsync(ringSigmoidLoss(tf, ring as never, image, text, s, tf.tensor1d([1]) as never), { instanceOf: RangeError, message: /for logitBias/ });
  t.is(tf.memory().numTensors, before + 1, 'only the test’s own rank-1 tensor');
  ring.dispose();
  tf.dispose([image, text, s, b]);
});

gpuTest("with device 'cuda' the ops give the main API's CUDA results, bit for bit, forward and under a tape", (t) => {
  const { x, y, image, text, s, b } = inputs(9, 20, 12);
  const options = { device: 'cuda', precision: 'fp32' } as const;
  const mx = matrix(x, 20, 12), my = matrix(y, 20, 12);
  const sigmoid = sigmoidLossWithGradSync(mx, my, { logitScale: 1.5, logitBias: -2, ...options });
  const softmax = softmaxLossWithGradSync(mx, my, { logitScale: 1.5, ...options });
  const loss = sigmoidLoss(tf, image, text, s, b, options);
  t.is(loss.dataSync()[0], Math.fround(sigmoid.loss));
  const [dx, dy, ds, db] = tf.grads((i: tf.Tensor, j: tf.Tensor, u: tf.Tensor, v: tf.Tensor) =>
    sigmoidLoss(tf, i as tf.Tensor2D, j as tf.Tensor2D, u as tf.Scalar, v as tf.Scalar, options),
  )([image, text, s, b]);
  t.deepEqual(dx!.dataSync(), sigmoid.grad.image);
  t.deepEqual(dy!.dataSync(), sigmoid.grad.text);
  t.is(ds!.dataSync()[0], Math.fround(sigmoid.grad.logitScale));
  t.is(db!.dataSync()[0], Math.fround(sigmoid.grad.logitBias));
  const [sx] = tf.grads((i: tf.Tensor) => softmaxLoss(tf, i as tf.Tensor2D, text, s, options))([image]);
  t.deepEqual(sx!.dataSync(), softmax.grad.image);
  tf.dispose([loss, dx!, dy!, ds!, db!, sx!, image, text, s, b]);
});
