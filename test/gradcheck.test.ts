// Gradients checked by central differences of the package's own loss, and the loss at
// extreme logits (|u| ≥ 1e4) against the reference.
import test from 'ava';

import {
  type Matrix,
  sigmoidLossSync,
  sigmoidLossWithGradSync,
  softmaxLossSync,
  softmaxLossWithGradSync,
} from '../lib/index';
import type { SigmoidLossOptions, SoftmaxLossOptions } from '../lib/index';
import { makeProblem, referenceInputs } from './helpers/cases';
import {
  randomUnitRows,
  relativeError,
  rng,
  scalarError,
  sigmoidReference,
  similarities,
  softmaxReference,
} from './helpers/reference';

// Step for central differences. The loss is accumulated in float64 but each pair's term is
// rounded (float32 logits and epilogue), which puts noise of about 1e-8 relative on L: the
// difference quotient's noise is ~noise·L/h and its truncation error ~h²·L'''/6. h = 1e-3
// keeps both near 1e-5 relative here (measured: 1e-4 and 1e-5 are noise-dominated, 1e-2
// truncation-dominated); 1e-3 relative tolerance leaves a wide margin.
const H = 1e-3;
const FD_TOLERANCE = 1e-3;

function centralDifference(f: (delta: number) => number, h = H): number {
  return (f(h) - f(-h)) / (2 * h);
}

const problem = makeProblem({ n: 32, m: 32, d: 16, seed: 7 });
const SIGMOID: SigmoidLossOptions = { logitScale: Math.log(10), logitBias: -6 };

for (const method of ['fused', 'naive'] as const) {
  test(`sigmoid ∂L/∂logitScale and ∂L/∂logitBias match central differences (${method})`, (t) => {
    const options = { ...SIGMOID, method };
    const { grad } = sigmoidLossWithGradSync(problem.image, problem.text, options);
    const dScale = centralDifference((h) =>
      sigmoidLossSync(problem.image, problem.text, { ...options, logitScale: options.logitScale! + h }),
    );
    const dBias = centralDifference((h) =>
      sigmoidLossSync(problem.image, problem.text, { ...options, logitBias: options.logitBias! + h }),
    );
    t.true(scalarError(grad.logitScale, dScale) <= FD_TOLERANCE, `logitScale ${grad.logitScale} vs ${dScale}`);
    t.true(scalarError(grad.logitBias, dBias) <= FD_TOLERANCE, `logitBias ${grad.logitBias} vs ${dBias}`);
  });
}

test('softmax ∂L/∂logitScale matches central differences', (t) => {
  const options: SoftmaxLossOptions = { logitScale: Math.log(1 / 0.07) };
  const { grad } = softmaxLossWithGradSync(problem.image, problem.text, options);
  const dScale = centralDifference((h) =>
    softmaxLossSync(problem.image, problem.text, { logitScale: options.logitScale! + h }),
  );
  t.true(scalarError(grad.logitScale, dScale) <= FD_TOLERANCE, `logitScale ${grad.logitScale} vs ${dScale}`);
});

// One entry of an input matrix nudged by ±h. The nudged value is rounded to float32, so the
// quotient divides by the step actually taken.
function entryDerivative(m: Matrix, index: number, loss: () => number): number {
  const original = m.data[index]!;
  m.data[index] = original + H;
  const up = m.data[index]!;
  const lossUp = loss();
  m.data[index] = original - H;
  const down = m.data[index]!;
  const lossDown = loss();
  m.data[index] = original;
  return (lossUp - lossDown) / (up - down);
}

const ENTRIES = [0, 37, 200, 511];
// The quotient's rounding noise is absolute (about 3e-6 here), so entries are judged
// relative to max(|entry|, a tenth of the largest |entry| of the gradient).

test('sigmoid ∂L/∂image and ∂L/∂text entries match central differences', (t) => {
  const p = makeProblem({ n: 32, m: 32, d: 16, seed: 8 });
  const { grad } = sigmoidLossWithGradSync(p.image, p.text, SIGMOID);
  const loss = () => sigmoidLossSync(p.image, p.text, SIGMOID);
  const scale = Math.max(...grad.image.map(Math.abs));
  for (const [name, m, g] of [['image', p.image, grad.image], ['text', p.text, grad.text]] as const) {
    for (const k of ENTRIES) {
      const fd = entryDerivative(m, k, loss);
      t.true(scalarError(g[k]!, fd, 0.1 * scale) <= FD_TOLERANCE, `${name}[${k}]: ${g[k]} vs ${fd}`);
    }
  }
});

test('softmax ∂L/∂image and ∂L/∂text entries match central differences', (t) => {
  const p = makeProblem({ n: 24, m: 24, d: 16, seed: 9 });
  const { grad } = softmaxLossWithGradSync(p.image, p.text);
  const loss = () => softmaxLossSync(p.image, p.text);
  const scale = Math.max(...grad.image.map(Math.abs));
  for (const [name, m, g] of [['image', p.image, grad.image], ['text', p.text, grad.text]] as const) {
    for (const k of [0, 37, 200, 383]) {
      const fd = entryDerivative(m, k, loss);
      t.true(scalarError(g[k]!, fd, 0.1 * scale) <= FD_TOLERANCE, `${name}[${k}]: ${g[k]} vs ${fd}`);
    }
  }
});

// Extreme logits: t = 112 (logitScale ln 112, beyond what SigLIP training reaches), b = −24, embeddings of norm 10 so |t·S| reaches ~1.1e4. Some text rows
// copy the image row of their neighbour (a negative pair with S = 100: u ≈ −1.1e4, loss term
// ≈ 1.1e4) and some negate their own (a positive with S = −100). softplus and σ must neither
// overflow nor lose the large terms.
function extremeProblem(): { image: Matrix; text: Matrix } {
  const n = 40;
  const d = 32;
  const image = randomUnitRows(rng(11), n, d).map((v) => 10 * v);
  const text = image.slice();
  for (let j = 0; j < n; j++) {
    if (j % 3 === 1) text.set(image.subarray(((j + 1) % n) * d, ((j + 1) % n + 1) * d), j * d);
    if (j % 5 === 2) for (let k = 0; k < d; k++) text[j * d + k] = -image[j * d + k]!;
  }
  return { image: { data: image, rows: n, cols: d }, text: { data: text, rows: n, cols: d } };
}

for (const method of ['fused', 'naive'] as const) {
  test(`sigmoid at extreme logits (|u| ≥ 1e4) is finite and matches the reference (${method})`, (t) => {
    const p = extremeProblem();
    const logitScale = Math.log(112);
    const logitBias = -24;
    const inputs = referenceInputs(p, logitScale, logitBias);
    const maxAbsLogit = Math.max(...similarities(inputs).map((s) => Math.abs(112 * s + logitBias)));
    t.true(maxAbsLogit >= 1e4, `max |u| = ${maxAbsLogit}`);

    const ref = sigmoidReference(inputs);
    const out = sigmoidLossWithGradSync(p.image, p.text, { logitScale, logitBias, method });
    t.true(Number.isFinite(out.loss));
    t.true(out.grad.image.every(Number.isFinite) && out.grad.text.every(Number.isFinite));
    t.true(Number.isFinite(out.grad.logitScale) && Number.isFinite(out.grad.logitBias));
    t.true(ref.loss > 1e3, `reference loss ${ref.loss} has the large terms`);
    t.true(scalarError(out.loss, ref.loss) <= 1e-5, `loss ${out.loss} vs ${ref.loss}`);
    t.true(relativeError(out.grad.image, ref.gradImage) <= 1e-4, 'grad.image');
    t.true(relativeError(out.grad.text, ref.gradText) <= 1e-4, 'grad.text');
    t.true(scalarError(out.grad.logitScale, ref.dLogitScale, 1e-2 * ref.dLogitScaleMagnitude) <= 1e-4);
    t.true(scalarError(out.grad.logitBias, ref.dLogitBias, 1e-2 * ref.dLogitBiasMagnitude) <= 1e-4);
  });
}

test('softmax at extreme logits is finite and matches the reference', (t) => {
  const p = extremeProblem();
  const logitScale = Math.log(112);
  const ref = softmaxReference(referenceInputs(p, logitScale));
  const out = softmaxLossWithGradSync(p.image, p.text, { logitScale });
  t.true(Number.isFinite(out.loss) && out.grad.image.every(Number.isFinite) && out.grad.text.every(Number.isFinite));
  t.true(scalarError(out.loss, ref.loss) <= 1e-5, `loss ${out.loss} vs ${ref.loss}`);
  t.true(relativeError(out.grad.image, ref.gradImage) <= 1e-4, 'grad.image');
  t.true(relativeError(out.grad.text, ref.gradText) <= 1e-4, 'grad.text');
});
