// Results do not depend on the thread count (SPEC.md, Precision): bit-identical loss and
// gradients for 1, 2 and 3 threads at a size with many tiles in both directions.
import test from 'ava';

import { sigmoidLossWithGradSync, softmaxLossWithGradSync } from '../lib/index';
import { makeProblem } from './helpers/cases';

const problem = makeProblem({ n: 700, m: 700, d: 64, seed: 3 });

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

for (const method of ['fused', 'naive'] as const) {
  test(`sigmoid (${method}) is bit-identical for 1, 2 and 3 threads`, (t) => {
    const one = sigmoidLossWithGradSync(problem.image, problem.text, { method, threads: 1 });
    for (const threads of [2, 3]) {
      const other = sigmoidLossWithGradSync(problem.image, problem.text, { method, threads });
      t.is(other.loss, one.loss, `loss, ${threads} threads`);
      t.is(other.grad.logitScale, one.grad.logitScale, `grad.logitScale, ${threads} threads`);
      t.is(other.grad.logitBias, one.grad.logitBias, `grad.logitBias, ${threads} threads`);
      t.true(bytes(other.grad.image).equals(bytes(one.grad.image)), `grad.image bytes, ${threads} threads`);
      t.true(bytes(other.grad.text).equals(bytes(one.grad.text)), `grad.text bytes, ${threads} threads`);
    }
  });
}

test('softmax (naive) is bit-identical for 1, 2 and 3 threads', (t) => {
  const one = softmaxLossWithGradSync(problem.image, problem.text, { threads: 1 });
  for (const threads of [2, 3]) {
    const other = softmaxLossWithGradSync(problem.image, problem.text, { threads });
    t.is(other.loss, one.loss, `loss, ${threads} threads`);
    t.is(other.grad.logitScale, one.grad.logitScale, `grad.logitScale, ${threads} threads`);
    t.true(bytes(other.grad.image).equals(bytes(one.grad.image)), `grad.image bytes, ${threads} threads`);
    t.true(bytes(other.grad.text).equals(bytes(one.grad.text)), `grad.text bytes, ${threads} threads`);
  }
});

test('repeated calls give the same bits', (t) => {
  const a = sigmoidLossWithGradSync(problem.image, problem.text, { threads: 2 });
  const b = sigmoidLossWithGradSync(problem.image, problem.text, { threads: 2 });
  t.is(a.loss, b.loss);
  t.true(bytes(a.grad.image).equals(bytes(b.grad.image)));
});
