// The sigmoid loss against the float64 reference of SPEC.md, on shapes that are odd and not
// multiples of any tile or register block, with and without label ids, both methods, sync and async.
import test from 'ava';

import { sigmoidLoss, sigmoidLossSync, sigmoidLossWithGrad, sigmoidLossWithGradSync } from '../lib/index';
import type { SigmoidMethod } from '../lib/index';
import { type ProblemSpec, describeProblem, idOptions, makeProblem, referenceInputs } from './helpers/cases';
import { relativeError, scalarError, sigmoidReference } from './helpers/reference';

const LOSS_TOLERANCE = 1e-5;
const GRAD_TOLERANCE = 1e-4;

const CASES: Array<ProblemSpec & { logitScale: number; logitBias: number }> = [
  { n: 1, m: 1, d: 1, logitScale: Math.log(10), logitBias: -10 },
  { n: 7, m: 7, d: 3, logitScale: Math.log(10), logitBias: -5 },
  { n: 33, m: 33, d: 17, logitScale: Math.log(10), logitBias: -10 },
  { n: 255, m: 255, d: 12, logitScale: Math.log(5), logitBias: -3 },
  { n: 257, m: 257, d: 768, logitScale: Math.log(10), logitBias: -10 },
  { n: 300, m: 300, d: 1, logitScale: Math.log(2), logitBias: 0.5 },
  { n: 193, m: 193, d: 33, logitScale: Math.log(20), logitBias: -8 },
  { n: 12, m: 12, d: 257, logitScale: 0, logitBias: -1 },
  // Label ids: duplicates, N ≠ M, some rows with no positive at all.
  { n: 33, m: 50, d: 17, distinctIds: 10, logitScale: Math.log(10), logitBias: -10 },
  { n: 257, m: 100, d: 65, distinctIds: 40, logitScale: Math.log(10), logitBias: -4 },
  { n: 7, m: 300, d: 16, distinctIds: 3, logitScale: Math.log(3), logitBias: -2 },
  { n: 64, m: 64, d: 32, distinctIds: 1000, logitScale: Math.log(10), logitBias: -10 },
];

const METHODS: SigmoidMethod[] = ['fused', 'naive'];

for (const spec of CASES) {
  test(`sigmoid matches the float64 reference: ${describeProblem(spec)}`, async (t) => {
    const p = makeProblem(spec);
    const ref = sigmoidReference(referenceInputs(p, spec.logitScale, spec.logitBias));
    for (const method of METHODS) {
      const options = { logitScale: spec.logitScale, logitBias: spec.logitBias, method, threads: 2, ...idOptions(p) };
      const sync = sigmoidLossWithGradSync(p.image, p.text, options);
      const label = `${method}: `;
      t.true(scalarError(sync.loss, ref.loss) <= LOSS_TOLERANCE, `${label}loss ${sync.loss} vs ${ref.loss}`);
      t.true(relativeError(sync.grad.image, ref.gradImage) <= GRAD_TOLERANCE, `${label}grad.image`);
      t.true(relativeError(sync.grad.text, ref.gradText) <= GRAD_TOLERANCE, `${label}grad.text`);
      t.true(
        scalarError(sync.grad.logitScale, ref.dLogitScale, 1e-2 * ref.dLogitScaleMagnitude) <= GRAD_TOLERANCE,
        `${label}grad.logitScale ${sync.grad.logitScale} vs ${ref.dLogitScale}`,
      );
      t.true(
        scalarError(sync.grad.logitBias, ref.dLogitBias, 1e-2 * ref.dLogitBiasMagnitude) <= GRAD_TOLERANCE,
        `${label}grad.logitBias ${sync.grad.logitBias} vs ${ref.dLogitBias}`,
      );

      // Forward only, and the Promise versions: the same bits as the synchronous call.
      t.is(sigmoidLossSync(p.image, p.text, options), sync.loss, `${label}forward-only loss`);
      t.is(await sigmoidLoss(p.image, p.text, options), sync.loss, `${label}async loss`);
      const async = await sigmoidLossWithGrad(p.image, p.text, options);
      t.is(async.loss, sync.loss);
      t.deepEqual(async.grad, sync.grad, `${label}async gradients`);
    }
  });
}

test('sigmoid defaults are logitScale ln 10, logitBias -10, method fused', (t) => {
  const p = makeProblem({ n: 20, m: 20, d: 8 });
  const explicit = sigmoidLossWithGradSync(p.image, p.text, { logitScale: Math.log(10), logitBias: -10, method: 'fused' });
  t.deepEqual(sigmoidLossWithGradSync(p.image, p.text), explicit);
  t.deepEqual(sigmoidLossWithGradSync(p.image, p.text, {}), explicit);
  t.deepEqual(sigmoidLossWithGradSync(p.image, p.text, { logitBias: undefined, device: 'cpu' }), explicit);
});

test('sigmoid result objects have exactly the documented fields', (t) => {
  const p = makeProblem({ n: 3, m: 3, d: 4 });
  const r = sigmoidLossWithGradSync(p.image, p.text);
  t.deepEqual(Object.keys(r).sort(), ['grad', 'loss']);
  t.deepEqual(Object.keys(r.grad).sort(), ['image', 'logitBias', 'logitScale', 'text']);
  t.true(r.grad.image instanceof Float32Array && r.grad.image.length === 12);
  t.true(r.grad.text instanceof Float32Array && r.grad.text.length === 12);
  t.not(r.grad.image.buffer, p.image.data.buffer);
});

test('sigmoid does not modify its inputs', (t) => {
  const p = makeProblem({ n: 40, m: 40, d: 24 });
  const image = p.image.data.slice();
  const text = p.text.data.slice();
  sigmoidLossWithGradSync(p.image, p.text, { method: 'fused' });
  sigmoidLossWithGradSync(p.image, p.text, { method: 'naive' });
  t.deepEqual(p.image.data, image);
  t.deepEqual(p.text.data, text);
});
