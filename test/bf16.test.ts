// The CPU's bfloat16 path (precision 'bf16', the fused sigmoid): against the float64 reference
// on the inputs rounded to bfloat16, at SPEC.md's bfloat16 tolerance (2e-2 relative); float32
// inputs and Uint16Array bfloat16 bits give the same bits, for any thread count, sync and
// async; the options and inputs it refuses; backendInfo() naming the kernel.
import test from 'ava';

import {
  backendInfo,
  fromBFloat16,
  sigmoidLossSync,
  sigmoidLossWithGrad,
  sigmoidLossWithGradSync,
  softmaxLossSync,
  toBFloat16,
} from '../lib/index';
import { type ProblemSpec, describeProblem, idOptions, makeProblem, referenceInputs } from './helpers/cases';
import { relativeError, scalarError, sigmoidReference } from './helpers/reference';

const BF16_TOLERANCE = 2e-2;

const CASES: Array<ProblemSpec & { logitScale: number; logitBias: number }> = [
  { n: 1, m: 1, d: 1, logitScale: Math.log(10), logitBias: -10 },
  { n: 33, m: 33, d: 17, logitScale: Math.log(10), logitBias: -10 },
  { n: 257, m: 257, d: 768, logitScale: Math.log(10), logitBias: -10 },
  { n: 193, m: 193, d: 33, logitScale: Math.log(20), logitBias: -8 },
  { n: 257, m: 100, d: 65, distinctIds: 40, logitScale: Math.log(10), logitBias: -4 },
];

for (const spec of CASES) {
  test(`bf16 sigmoid matches the float64 reference on bf16-rounded inputs: ${describeProblem(spec)}`, async (t) => {
    const p = makeProblem(spec);
    const imageBits = { data: toBFloat16(p.image.data), rows: p.image.rows, cols: p.image.cols };
    const textBits = { data: toBFloat16(p.text.data), rows: p.text.rows, cols: p.text.cols };
    const rounded = {
      ...p,
      image: { ...p.image, data: fromBFloat16(imageBits.data) },
      text: { ...p.text, data: fromBFloat16(textBits.data) },
    };
    const ref = sigmoidReference(referenceInputs(rounded, spec.logitScale, spec.logitBias));
    const options = {
      logitScale: spec.logitScale,
      logitBias: spec.logitBias,
      precision: 'bf16' as const,
      threads: 1,
      ...idOptions(p),
    };
    const fromFloats = sigmoidLossWithGradSync(p.image, p.text, options);
    t.true(scalarError(fromFloats.loss, ref.loss) <= BF16_TOLERANCE, `loss ${fromFloats.loss} vs ${ref.loss}`);
    t.true(relativeError(fromFloats.grad.image, ref.gradImage) <= BF16_TOLERANCE, 'grad.image');
    t.true(relativeError(fromFloats.grad.text, ref.gradText) <= BF16_TOLERANCE, 'grad.text');
    t.true(
      scalarError(fromFloats.grad.logitScale, ref.dLogitScale, 1e-2 * ref.dLogitScaleMagnitude) <= BF16_TOLERANCE,
      `grad.logitScale ${fromFloats.grad.logitScale} vs ${ref.dLogitScale}`,
    );
    t.true(
      scalarError(fromFloats.grad.logitBias, ref.dLogitBias, 1e-2 * ref.dLogitBiasMagnitude) <= BF16_TOLERANCE,
      `grad.logitBias ${fromFloats.grad.logitBias} vs ${ref.dLogitBias}`,
    );
    t.true(fromFloats.grad.image instanceof Float32Array);

    // The rounding happens once, when a block is packed: bits in give the same bits out,
    // and so do 2 and 3 threads, the forward-only call and the Promise form.
    for (const threads of [1, 2, 3]) {
      const bits = sigmoidLossWithGradSync(imageBits, textBits, { ...options, threads });
      t.is(bits.loss, fromFloats.loss, `bits, ${threads} threads: loss`);
      t.deepEqual(bits.grad, fromFloats.grad, `bits, ${threads} threads: gradients`);
    }
    t.is(sigmoidLossSync(p.image, p.text, { ...options, threads: 2 }), fromFloats.loss, 'forward only');
    const async = await sigmoidLossWithGrad(imageBits, textBits, { ...options, threads: 2 });
    t.is(async.loss, fromFloats.loss, 'async loss');
    t.deepEqual(async.grad, fromFloats.grad, 'async gradients');
  });
}

test('bf16 is not float32: the rounding shows at the size SPEC.md allows', (t) => {
  // A guard against a "bf16" path that silently multiplies float32: its gradients differ
  // from the float32 ones by far more than float32 rounding, and far less than the tolerance.
  const p = makeProblem({ n: 64, m: 64, d: 96 });
  const fp32 = sigmoidLossWithGradSync(p.image, p.text, { threads: 1 });
  const bf16 = sigmoidLossWithGradSync(p.image, p.text, { threads: 1, precision: 'bf16' });
  const difference = relativeError(bf16.grad.image, Float64Array.from(fp32.grad.image));
  t.true(difference > 1e-5 && difference < BF16_TOLERANCE, `relative difference ${difference}`);
});

test('bf16 options and inputs that are refused', (t) => {
  const p = makeProblem({ n: 5, m: 5, d: 4 });
  const bits = { data: toBFloat16(p.image.data), rows: 5, cols: 4 };
  t.throws(() => sigmoidLossSync(bits, bits), {
    instanceOf: TypeError,
    message: /precision 'bf16'.*image\.data/,
  });
  t.throws(() => sigmoidLossSync(bits, p.text, { precision: 'bf16' }), {
    instanceOf: TypeError,
    message: /Uint16Array of bfloat16 bits.*text\.data/,
  });
  t.throws(() => sigmoidLossSync(p.image, p.text, { precision: 'bf16', method: 'naive' }), {
    instanceOf: RangeError,
    message: /options\.precision/,
  });
  t.throws(() => softmaxLossSync(p.image, p.text, { precision: 'bf16' }), {
    instanceOf: RangeError,
    message: /options\.precision/,
  });
  t.throws(() => sigmoidLossSync({ ...bits, rows: 4 }, bits, { precision: 'bf16' }), {
    instanceOf: RangeError,
    message: /length 16.*image\.data/,
  });
  const infinite = { data: toBFloat16(p.image.data), rows: 5, cols: 4 };
  infinite.data[7] = 0x7f80; // +Infinity
  t.throws(() => sigmoidLossSync(infinite, bits, { precision: 'bf16' }), {
    instanceOf: RangeError,
    message: /finite.*image.*index 7/,
  });
});

test('backendInfo names the bf16 kernel and why', (t) => {
  const info = backendInfo();
  t.true(info.bf16 === 'avx512_bf16' || info.bf16 === 'convert', info.bf16);
  t.true(info.bf16Reason.length > 0);
  if (info.bf16 === 'avx512_bf16') t.is(info.simd, 'avx512');
});
