// The CUDA backend through the public API, the losses: both against the float64 reference for
// every dtype and precision at SPEC.md's tolerances (the reference runs on the dtype-rounded
// inputs), fused vs naive vs simple (sigmoid) and chunked vs naive (softmax) on the GPU, several
// pair blocks, determinism. DeviceMatrix, the errors and the runs without a GPU:
// test/cuda-device.test.ts.
//
// GPU tests run only where a GPU answers (test/helpers/gpu.ts): otherwise they are listed as
// skipped with the reason, or fail under SIGLIP_REQUIRE_CUDA=1.
import {
  sigmoidLossSync,
  sigmoidLossWithGrad,
  sigmoidLossWithGradSync,
  softmaxLossSync,
  softmaxLossWithGrad,
  softmaxLossWithGradSync,
  type DType,
  type Matrix,
  type Precision,
  type SigmoidLossOptions,
  type SigmoidMethod,
  type SoftmaxLossOptions,
  type SoftmaxMethod,
} from '../lib/index';
import { type ProblemSpec, describeProblem, idOptions, makeProblem, referenceInputs } from './helpers/cases';
import { type HostResult, onDevice, sameBits, toHost } from './helpers/cuda_results';
import { gpuTest } from './helpers/gpu';
import {
  type ReferenceResult,
  randomUnitRows,
  relativeError,
  rng,
  scalarError,
  softmaxLossError,
  sigmoidReference,
  softmaxReference,
} from './helpers/reference';

// ---- configurations and tolerances (SPEC.md, Precision) --------------------------------

interface Config {
  name: string;
  dtype: DType;
  precision: Precision;
  loss: number;
  grad: number;
}

const CONFIGS: Config[] = [
  { name: 'float32 fp32', dtype: 'float32', precision: 'fp32', loss: 1e-5, grad: 1e-4 },
  { name: 'float32 tf32', dtype: 'float32', precision: 'tf32', loss: 5e-3, grad: 5e-3 },
  { name: 'bfloat16', dtype: 'bfloat16', precision: 'tf32', loss: 2e-2, grad: 2e-2 },
  { name: 'float16', dtype: 'float16', precision: 'tf32', loss: 2e-2, grad: 2e-2 },
];
const FP32 = CONFIGS[0]!;

function checkAgainst(
  t: { true(value: boolean, message?: string): void },
  label: string,
  out: HostResult,
  ref: ReferenceResult,
  tol: { loss: number; grad: number },
): void {
  t.true(Number.isFinite(out.loss), `${label}: loss is finite`);
  // The sigmoid's softplus sums resolve any loss; the softmax's log Σ only down to 2^-52.
  const lossError = out.grad.logitBias === undefined ? softmaxLossError(out.loss, ref.loss, tol.loss) : scalarError(out.loss, ref.loss);
  t.true(lossError <= tol.loss, `${label}: loss ${out.loss} vs ${ref.loss}`);
  // Below the softmax's float32 noise floor (ReferenceResult.gradImageFloor) the gradients are measured against it.
  const ei = relativeError(out.grad.image, ref.gradImage, (ref.gradImageFloor ?? 0) / tol.grad);
  const et = relativeError(out.grad.text, ref.gradText, (ref.gradTextFloor ?? 0) / tol.grad);
  t.true(ei <= tol.grad, `${label}: grad.image relative error ${ei}`);
  t.true(et <= tol.grad, `${label}: grad.text relative error ${et}`);
  const es = scalarError(out.grad.logitScale, ref.dLogitScale, Math.max(1e-2 * ref.dLogitScaleMagnitude, (ref.dLogitScaleFloor ?? 0) / tol.grad));
  t.true(es <= tol.grad, `${label}: grad.logitScale ${out.grad.logitScale} vs ${ref.dLogitScale}`);
  if (out.grad.logitBias !== undefined) {
    const eb = scalarError(out.grad.logitBias, ref.dLogitBias, 1e-2 * ref.dLogitBiasMagnitude);
    t.true(eb <= tol.grad, `${label}: grad.logitBias ${out.grad.logitBias} vs ${ref.dLogitBias}`);
  }
}

// ---- the sigmoid loss against the reference ------------------------------------------

const SIGMOID_CASES: Array<ProblemSpec & { logitScale: number; logitBias: number }> = [
  { n: 1, m: 1, d: 1, logitScale: Math.log(10), logitBias: -10 },
  { n: 7, m: 7, d: 3, logitScale: Math.log(10), logitBias: -5 },
  { n: 33, m: 33, d: 17, logitScale: Math.log(10), logitBias: -10 },
  { n: 130, m: 130, d: 129, logitScale: Math.log(20), logitBias: -8 }, // just past a 128 tile, both ways
  { n: 255, m: 255, d: 12, logitScale: Math.log(5), logitBias: -3 },
  { n: 257, m: 257, d: 768, logitScale: Math.log(10), logitBias: -10 },
  { n: 33, m: 50, d: 17, distinctIds: 10, logitScale: Math.log(10), logitBias: -10 },
  { n: 257, m: 100, d: 65, distinctIds: 40, logitScale: Math.log(10), logitBias: -4 },
  { n: 7, m: 300, d: 16, distinctIds: 3, logitScale: Math.log(3), logitBias: -2 },
];
const METHODS: SigmoidMethod[] = ['fused', 'naive', 'simple'];

for (const spec of SIGMOID_CASES) {
  gpuTest(`cuda sigmoid matches the float64 reference for every dtype, precision and method: ${describeProblem(spec)}`, async (t) => {
    const p = makeProblem(spec);
    const scalars = { logitScale: spec.logitScale, logitBias: spec.logitBias, ...idOptions(p) };
    for (const config of CONFIGS) {
      const { host, x, y } = onDevice(p, config.dtype);
      try {
        const ref = sigmoidReference(referenceInputs(host, spec.logitScale, spec.logitBias));
        for (const method of METHODS) {
          // The simple kernel multiplies in plain float32 whatever the precision.
          const tol = method === 'simple' ? { loss: FP32.loss, grad: FP32.grad } : config;
          const options: SigmoidLossOptions = { ...scalars, method, precision: config.precision };
          const label = `${config.name} ${method}`;
          const device = toHost(sigmoidLossWithGradSync(x, y, options));
          checkAgainst(t, `${label} (DeviceMatrix)`, device, ref, tol);
          t.true(Number.isFinite(sigmoidLossSync(x, y, options)), `${label}: forward only`);
          t.is(sigmoidLossSync(x, y, options), device.loss, `${label}: the forward-only loss is the same number`);
          const asyncResult = toHost(await sigmoidLossWithGrad(x, y, options));
          t.true(sameBits(asyncResult, device), `${label}: the Promise form gives the same bits`);
          if (config.dtype === 'float32') {
            // Host inputs on the GPU: uploaded for the call, gradients back as Float32Arrays.
            const fromHost = sigmoidLossWithGradSync(host.image, host.text, { ...options, device: 'cuda' });
            t.true(sameBits(fromHost, device), `${label}: host inputs give the same bits`);
          }
        }
      } finally {
        x.dispose();
        y.dispose();
      }
    }
  });
}

// Extreme logits: as test/gradcheck.test.ts, |u| reaches 1e4; softplus and σ must stay finite.
function extremeProblem(): { image: Matrix; text: Matrix } {
  const n = 40;
  const d = 32;
  const image = randomUnitRows(rng(11), n, d).map((v) => 10 * v);
  const text = image.slice();
  for (let j = 0; j < n; j++) {
    if (j % 3 === 1) text.set(image.subarray(((j + 1) % n) * d, (((j + 1) % n) + 1) * d), j * d);
    if (j % 5 === 2) for (let k = 0; k < d; k++) text[j * d + k] = -image[j * d + k]!;
  }
  return { image: { data: image, rows: n, cols: d }, text: { data: text, rows: n, cols: d } };
}

gpuTest('cuda sigmoid at extreme logits (|u| ≥ 1e4) is finite and matches the reference', (t) => {
  const p = extremeProblem();
  const logitScale = Math.log(112);
  const logitBias = -24;
  const ref = sigmoidReference(referenceInputs(p, logitScale, logitBias));
  t.true(ref.loss > 1e3);
  for (const method of METHODS) {
    const out = sigmoidLossWithGradSync(p.image, p.text, { logitScale, logitBias, method, device: 'cuda', precision: 'fp32' });
    t.true(out.grad.image.every(Number.isFinite) && out.grad.text.every(Number.isFinite), `${method}: finite gradients`);
    checkAgainst(t, `${method} fp32`, out, ref, FP32);
    const tf32 = sigmoidLossWithGradSync(p.image, p.text, { logitScale, logitBias, method, device: 'cuda' });
    t.true(Number.isFinite(tf32.loss) && tf32.grad.image.every(Number.isFinite), `${method} tf32: finite`);
  }
});

// ---- the softmax loss against the reference ------------------------------------------

const SOFTMAX_CASES: Array<ProblemSpec & { logitScale: number }> = [
  { n: 1, m: 1, d: 1, logitScale: Math.log(1 / 0.07) },
  { n: 7, m: 7, d: 3, logitScale: Math.log(1 / 0.07) },
  { n: 33, m: 33, d: 17, logitScale: Math.log(10) },
  { n: 255, m: 255, d: 12, logitScale: Math.log(1 / 0.07) },
  { n: 257, m: 257, d: 768, logitScale: Math.log(1 / 0.07) },
  { n: 33, m: 33, d: 17, distinctIds: 11, coverIds: true, logitScale: Math.log(1 / 0.07) },
  { n: 40, m: 25, d: 17, distinctIds: 9, coverIds: true, logitScale: Math.log(20) },
  { n: 130, m: 130, d: 48, logitScale: Math.log(100) }, // t = 100 (CLIP's clamp), past a 128 tile
  { n: 70, m: 150, d: 24, distinctIds: 50, coverIds: true, logitScale: Math.log(100) },
];
const SOFTMAX_METHODS: SoftmaxMethod[] = ['chunked', 'naive'];

for (const spec of SOFTMAX_CASES) {
  gpuTest(`cuda softmax matches the float64 reference for every dtype, precision and method: ${describeProblem(spec)}`, async (t) => {
    const p = makeProblem(spec);
    const scalars = { logitScale: spec.logitScale, ...idOptions(p) };
    for (const config of CONFIGS) {
      const { host, x, y } = onDevice(p, config.dtype);
      try {
        const ref = softmaxReference(referenceInputs(host, spec.logitScale));
        for (const method of SOFTMAX_METHODS) {
          const label = `${config.name} ${method}`;
          const options: SoftmaxLossOptions = { ...scalars, method, precision: config.precision };
          const device = toHost(softmaxLossWithGradSync(x, y, options));
          checkAgainst(t, label, device, ref, config);
          t.is(softmaxLossSync(x, y, options), device.loss, `${label}: the forward-only loss is the same number`);
          t.true(sameBits(toHost(await softmaxLossWithGrad(x, y, options)), device), `${label}: Promise form`);
          if (config.dtype === 'float32') {
            const fromHost = softmaxLossWithGradSync(host.image, host.text, { ...options, device: 'cuda' });
            t.true(sameBits(fromHost, device), `${label}: host inputs give the same bits`);
          }
        }
        // 'chunked' is the default on CUDA as on the CPU.
        const byDefault = toHost(softmaxLossWithGradSync(x, y, { ...scalars, precision: config.precision }));
        const chunked = toHost(softmaxLossWithGradSync(x, y, { ...scalars, method: 'chunked', precision: config.precision }));
        t.true(sameBits(byDefault, chunked), `${config.name}: the default method is 'chunked'`);
      } finally {
        x.dispose();
        y.dispose();
      }
    }
  });
}

// ---- fused vs naive vs simple, several pair blocks, determinism ----------------------

gpuTest('cuda fused, naive and simple agree with each other (fp32) and with the CPU', (t) => {
  const p = makeProblem({ n: 500, m: 460, d: 96, distinctIds: 300, seed: 21 });
  const options: SigmoidLossOptions = { logitScale: Math.log(10), logitBias: -10, ...idOptions(p), device: 'cuda', precision: 'fp32' };
  const simple = sigmoidLossWithGradSync(p.image, p.text, { ...options, method: 'simple' });
  const cpu = sigmoidLossWithGradSync(p.image, p.text, { logitScale: Math.log(10), logitBias: -10, ...idOptions(p) });
  for (const method of ['fused', 'naive'] as const) {
    const out = sigmoidLossWithGradSync(p.image, p.text, { ...options, method });
    for (const [name, other] of [['simple', simple], ['cpu', cpu]] as const) {
      t.true(scalarError(out.loss, other.loss) <= 1e-5, `${method} vs ${name}: loss ${out.loss} vs ${other.loss}`);
      t.true(relativeError(out.grad.image, other.grad.image) <= 1e-4, `${method} vs ${name}: grad.image`);
      t.true(relativeError(out.grad.text, other.grad.text) <= 1e-4, `${method} vs ${name}: grad.text`);
      t.true(scalarError(out.grad.logitBias, other.grad.logitBias) <= 1e-4, `${method} vs ${name}: grad.logitBias`);
    }
  }
});

// More than one 4096×4096 pair block in both directions: block offsets, ids per block and the
// partial sums across blocks. The CPU's fused result is the float32 reference here.
const BIG = { n: 4500, m: 4200, d: 32, distinctIds: 3000, seed: 5 };
const BIG_SCALARS = { logitScale: Math.log(10), logitBias: -10 };

gpuTest('cuda sigmoid over several pair blocks matches the CPU (fp32) and the simple kernel (bfloat16)', (t) => {
  const p = makeProblem(BIG);
  const ids = idOptions(p);
  const cpu = sigmoidLossWithGradSync(p.image, p.text, { ...BIG_SCALARS, ...ids });
  for (const method of ['fused', 'naive'] as const) {
    const out = sigmoidLossWithGradSync(p.image, p.text, { ...BIG_SCALARS, ...ids, method, device: 'cuda', precision: 'fp32' });
    t.true(scalarError(out.loss, cpu.loss) <= 1e-5, `${method}: loss ${out.loss} vs ${cpu.loss}`);
    t.true(relativeError(out.grad.image, cpu.grad.image) <= 1e-4, `${method}: grad.image`);
    t.true(relativeError(out.grad.text, cpu.grad.text) <= 1e-4, `${method}: grad.text`);
  }
  const { x, y } = onDevice(p, 'bfloat16');
  try {
    const simple = toHost(sigmoidLossWithGradSync(x, y, { ...BIG_SCALARS, ...ids, method: 'simple' }));
    const fused = toHost(sigmoidLossWithGradSync(x, y, { ...BIG_SCALARS, ...ids, method: 'fused' }));
    t.true(scalarError(fused.loss, simple.loss) <= 2e-2, `bfloat16: loss ${fused.loss} vs ${simple.loss}`);
    t.true(relativeError(fused.grad.image, simple.grad.image) <= 2e-2, 'bfloat16: grad.image');
    t.true(relativeError(fused.grad.text, simple.grad.text) <= 2e-2, 'bfloat16: grad.text');
  } finally {
    x.dispose();
    y.dispose();
  }
});

// The chunked softmax over several pair blocks (its row and column statistics merge across
// blocks), with ids and N ≠ M: against the CPU's chunked softmax (fp32) and the CUDA naive one.
const BIG_SOFTMAX = { n: 4500, m: 4200, d: 32, distinctIds: 3000, coverIds: true, seed: 6 };

gpuTest('cuda chunked softmax over several pair blocks matches the CPU (fp32) and the naive method (bfloat16)', (t) => {
  const p = makeProblem(BIG_SOFTMAX);
  const ids = idOptions(p);
  const logitScale = Math.log(1 / 0.07);
  const cpu = softmaxLossWithGradSync(p.image, p.text, { logitScale, ...ids });
  for (const method of SOFTMAX_METHODS) {
    const out = softmaxLossWithGradSync(p.image, p.text, { logitScale, ...ids, method, device: 'cuda', precision: 'fp32' });
    t.true(scalarError(out.loss, cpu.loss) <= 1e-5, `${method}: loss ${out.loss} vs ${cpu.loss}`);
    t.true(relativeError(out.grad.image, cpu.grad.image) <= 1e-4, `${method}: grad.image`);
    t.true(relativeError(out.grad.text, cpu.grad.text) <= 1e-4, `${method}: grad.text`);
    t.true(scalarError(out.grad.logitScale, cpu.grad.logitScale) <= 1e-4, `${method}: grad.logitScale`);
  }
  const { x, y } = onDevice(p, 'bfloat16');
  try {
    const naive = toHost(softmaxLossWithGradSync(x, y, { logitScale, ...ids, method: 'naive' }));
    const chunked = toHost(softmaxLossWithGradSync(x, y, { logitScale, ...ids, method: 'chunked' }));
    t.true(scalarError(chunked.loss, naive.loss) <= 2e-2, `bfloat16: loss ${chunked.loss} vs ${naive.loss}`);
    t.true(relativeError(chunked.grad.image, naive.grad.image) <= 2e-2, 'bfloat16: grad.image');
    t.true(relativeError(chunked.grad.text, naive.grad.text) <= 2e-2, 'bfloat16: grad.text');
  } finally {
    x.dispose();
    y.dispose();
  }
});

gpuTest('cuda results are deterministic: two runs give the same bits (every dtype, method and loss)', (t) => {
  const p = makeProblem(BIG);
  const ids = idOptions(p);
  for (const config of CONFIGS) {
    const { x, y } = onDevice(p, config.dtype);
    try {
      for (const method of METHODS) {
        const options = { ...BIG_SCALARS, ...ids, method, precision: config.precision };
        const first = toHost(sigmoidLossWithGradSync(x, y, options));
        const second = toHost(sigmoidLossWithGradSync(x, y, options));
        t.true(sameBits(first, second), `sigmoid ${config.name} ${method}`);
      }
      const small = makeProblem({ n: 700, m: 700, d: 64, seed: 3 });
      const s = onDevice(small, config.dtype);
      try {
        for (const method of SOFTMAX_METHODS) {
          const first = toHost(softmaxLossWithGradSync(s.x, s.y, { method, precision: config.precision }));
          const second = toHost(softmaxLossWithGradSync(s.x, s.y, { method, precision: config.precision }));
          t.true(sameBits(first, second), `softmax ${config.name} ${method}`);
        }
      } finally {
        s.x.dispose();
        s.y.dispose();
      }
      // The chunked softmax across 4096-pair blocks.
      const big = makeProblem(BIG_SOFTMAX);
      const b = onDevice(big, config.dtype);
      try {
        const options: SoftmaxLossOptions = { ...idOptions(big), method: 'chunked', precision: config.precision };
        const first = toHost(softmaxLossWithGradSync(b.x, b.y, options));
        const second = toHost(softmaxLossWithGradSync(b.x, b.y, options));
        t.true(sameBits(first, second), `softmax ${config.name} chunked, several pair blocks`);
      } finally {
        b.x.dispose();
        b.y.dispose();
      }
    } finally {
      x.dispose();
      y.dispose();
    }
  }
});
