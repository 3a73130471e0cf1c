// The softmax (CLIP) loss against the float64 reference of SPEC.md, with and without ids.
import test from 'ava';

import {
  DEFAULT_SOFTMAX_LOGIT_SCALE,
  softmaxLoss,
  softmaxLossSync,
  softmaxLossWithGrad,
  softmaxLossWithGradSync,
} from '../lib/index';
import { type ProblemSpec, describeProblem, idOptions, makeProblem, referenceInputs } from './helpers/cases';
import { relativeError, scalarError, softmaxLossError, softmaxReference } from './helpers/reference';

const LOSS_TOLERANCE = 1e-5;
const GRAD_TOLERANCE = 1e-4;

const CASES: Array<ProblemSpec & { logitScale: number }> = [
  { n: 193, m: 193, d: 64, logitScale: Math.log(10) },
  { n: 385, m: 193, d: 3, distinctIds: 60, coverIds: true, logitScale: DEFAULT_SOFTMAX_LOGIT_SCALE },
  { n: 1, m: 1, d: 1, logitScale: DEFAULT_SOFTMAX_LOGIT_SCALE },
  { n: 7, m: 7, d: 3, logitScale: DEFAULT_SOFTMAX_LOGIT_SCALE },
  { n: 33, m: 33, d: 17, logitScale: Math.log(10) },
  { n: 255, m: 255, d: 12, logitScale: DEFAULT_SOFTMAX_LOGIT_SCALE },
  { n: 257, m: 257, d: 768, logitScale: Math.log(100) },
  { n: 300, m: 300, d: 16, logitScale: 0 },
  // Label ids: duplicates, every id on both sides (each row and column has a positive).
  { n: 33, m: 33, d: 17, distinctIds: 11, coverIds: true, logitScale: DEFAULT_SOFTMAX_LOGIT_SCALE },
  { n: 40, m: 25, d: 17, distinctIds: 9, coverIds: true, logitScale: Math.log(20) },
  { n: 257, m: 120, d: 65, distinctIds: 120, coverIds: true, logitScale: DEFAULT_SOFTMAX_LOGIT_SCALE },
];

for (const method of ['chunked', 'naive'] as const)
for (const spec of CASES) {
  test(`softmax (${method}) matches the float64 reference: ${describeProblem(spec)}`, async (t) => {
    const p = makeProblem(spec);
    const ref = softmaxReference(referenceInputs(p, spec.logitScale));
    const options = { logitScale: spec.logitScale, method, threads: 2, ...idOptions(p) };
    const sync = softmaxLossWithGradSync(p.image, p.text, options);
    t.true(softmaxLossError(sync.loss, ref.loss, LOSS_TOLERANCE) <= LOSS_TOLERANCE, `loss ${sync.loss} vs ${ref.loss}`);
    t.true(relativeError(sync.grad.image, ref.gradImage, ref.gradImageFloor! / GRAD_TOLERANCE) <= GRAD_TOLERANCE, 'grad.image');
    t.true(relativeError(sync.grad.text, ref.gradText, ref.gradTextFloor! / GRAD_TOLERANCE) <= GRAD_TOLERANCE, 'grad.text');
    t.true(
      scalarError(sync.grad.logitScale, ref.dLogitScale, Math.max(1e-2 * ref.dLogitScaleMagnitude, ref.dLogitScaleFloor! / GRAD_TOLERANCE)) <=
        GRAD_TOLERANCE,
      `grad.logitScale ${sync.grad.logitScale} vs ${ref.dLogitScale}`,
    );
    t.deepEqual(Object.keys(sync.grad).sort(), ['image', 'logitScale', 'text']);

    t.is(softmaxLossSync(p.image, p.text, options), sync.loss);
    t.is(await softmaxLoss(p.image, p.text, options), sync.loss);
    t.deepEqual(await softmaxLossWithGrad(p.image, p.text, options), sync);
  });
}

test('softmax defaults are logitScale ln(1/0.07) and method chunked', (t) => {
  const p = makeProblem({ n: 20, m: 20, d: 8 });
  const explicit = softmaxLossWithGradSync(p.image, p.text, { logitScale: Math.log(1 / 0.07), method: 'chunked' });
  t.deepEqual(softmaxLossWithGradSync(p.image, p.text), explicit);
  t.is(DEFAULT_SOFTMAX_LOGIT_SCALE, Math.log(1 / 0.07));
});

test('softmax of one matching pair is zero with zero gradients', (t) => {
  const p = makeProblem({ n: 1, m: 1, d: 5 });
  const r = softmaxLossWithGradSync(p.image, p.text);
  t.is(r.loss, 0);
  t.true(r.grad.image.every((v) => v === 0));
  t.is(r.grad.logitScale, 0);
});
