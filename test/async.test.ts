// The Promise versions: same numbers as the synchronous ones, several calls in flight at
// once, and bad arguments reject (never throw synchronously).
import test from 'ava';

import {
  sigmoidLoss,
  sigmoidLossSync,
  sigmoidLossWithGrad,
  sigmoidLossWithGradSync,
  softmaxLoss,
  softmaxLossWithGrad,
  softmaxLossWithGradSync,
} from '../lib/index';
import { idOptions, makeProblem } from './helpers/cases';

test('many concurrent calls each resolve to their synchronous result', async (t) => {
  const specs = [
    { n: 50, m: 50, d: 32 },
    { n: 257, m: 257, d: 40 },
    { n: 9, m: 9, d: 3 },
    { n: 120, m: 80, d: 24, distinctIds: 30 },
    { n: 300, m: 300, d: 8 },
    { n: 64, m: 64, d: 100 },
  ];
  const problems = specs.map((spec, k) => ({ p: makeProblem({ ...spec, seed: 100 + k }), method: k % 2 ? 'naive' : 'fused' } as const));
  const pending = problems.map(({ p, method }) =>
    Promise.all([
      sigmoidLossWithGrad(p.image, p.text, { method, ...idOptions(p) }),
      sigmoidLoss(p.image, p.text, { method, threads: 1, ...idOptions(p) }),
    ]),
  );
  const softmaxProblems = problems.filter(({ p }) => p.image.rows === p.text.rows && !p.imageIds);
  const softmaxPending = softmaxProblems.map(({ p }) => Promise.all([softmaxLossWithGrad(p.image, p.text), softmaxLoss(p.image, p.text)]));

  const results = await Promise.all(pending);
  results.forEach(([withGrad, lossOnly], k) => {
    const { p, method } = problems[k]!;
    const sync = sigmoidLossWithGradSync(p.image, p.text, { method, ...idOptions(p) });
    t.deepEqual(withGrad, sync);
    t.is(lossOnly, sync.loss);
  });
  const softmaxResults = await Promise.all(softmaxPending);
  softmaxResults.forEach(([withGrad, lossOnly], k) => {
    const { p } = softmaxProblems[k]!;
    const sync = softmaxLossWithGradSync(p.image, p.text);
    t.deepEqual(withGrad, sync);
    t.is(lossOnly, sync.loss);
  });
});

test('the same inputs may be shared by concurrent calls', async (t) => {
  const p = makeProblem({ n: 200, m: 200, d: 48 });
  const expected = sigmoidLossSync(p.image, p.text);
  const losses = await Promise.all(Array.from({ length: 8 }, () => sigmoidLoss(p.image, p.text, { threads: 1 })));
  t.deepEqual(losses, Array(8).fill(expected));
});

test('Promise versions reject on bad arguments instead of throwing', async (t) => {
  const p = makeProblem({ n: 4, m: 4, d: 2 });
  const bad = { data: new Float64Array(8), rows: 4, cols: 2 } as never;
  let promise: Promise<unknown> | undefined;
  t.notThrows(() => {
    promise = sigmoidLoss(bad, p.text);
  });
  await t.throwsAsync(promise!, { instanceOf: TypeError, message: /image\.data/ });
  await t.throwsAsync(sigmoidLossWithGrad(p.image, p.text, { threads: 0 }), { instanceOf: RangeError, message: /options\.threads/ });
  await t.throwsAsync(softmaxLoss(p.image, bad), { instanceOf: TypeError, message: /text\.data/ });
  await t.throwsAsync(softmaxLossWithGrad(p.image, p.text, { method: 'fused' } as never), {
    instanceOf: RangeError,
    message: /options\.method/,
  });
});

test('errors from the native core reject the Promise with the mapped class', async (t) => {
  const p = makeProblem({ n: 4, m: 4, d: 2 });
  // |logitScale| > 80 is rejected by the core's validation, not by the TypeScript layer.
  await t.throwsAsync(sigmoidLoss(p.image, p.text, { logitScale: 100 }), { instanceOf: RangeError, message: /logitScale/ });
  // Softmax with ids needs a positive in every row and column: checked by the core.
  await t.throwsAsync(
    softmaxLoss(p.image, p.text, { imageIds: Int32Array.of(0, 1, 2, 3), textIds: Int32Array.of(0, 1, 2, 9) }),
    { instanceOf: RangeError, message: /Ids/ },
  );
});
