// The CUDA backend through the public API: both losses against the float64 reference for
// every dtype and precision at SPEC.md's tolerances (the reference runs on the dtype-rounded
// inputs), fused vs naive vs simple (sigmoid) and chunked vs naive (softmax) on the GPU,
// determinism, DeviceMatrix upload, download and dispose, and the errors (invalid ordinal,
// out of memory, bad combinations).
//
// GPU tests run only where a GPU answers (test/helpers/gpu.ts): otherwise they are listed as
// skipped with the reason, or fail under SIGLIP_REQUIRE_CUDA=1. The tests at the end run
// without a GPU: a CUDA request must fail with ERR_SIGLIP_NO_CUDA and say why.
import test from 'ava';

import {
  DeviceMatrix,
  ERR_SIGLIP_DISPOSED,
  ERR_SIGLIP_NO_CUDA,
  backendInfo,
  cudaMemoryUsage,
  fromBFloat16,
  fromFloat16,
  sigmoidLoss,
  sigmoidLossSync,
  sigmoidLossWithGrad,
  sigmoidLossWithGradSync,
  softmaxLossSync,
  softmaxLossWithGrad,
  softmaxLossWithGradSync,
  toBFloat16,
  toFloat16,
  type DType,
  type Matrix,
  type Precision,
  type SigmoidLossOptions,
  type SigmoidMethod,
  type SoftmaxLossOptions,
  type SoftmaxMethod,
} from '../lib/index';
import { loadAddon } from '../lib/loader';
import { type Problem, type ProblemSpec, describeProblem, idOptions, makeProblem, referenceInputs } from './helpers/cases';
import { cuda, gpuTest, noGpuTest } from './helpers/gpu';
import {
  type ReferenceResult,
  randomUnitRows,
  relativeError,
  rng,
  scalarError,
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

/** The bits the GPU gets for `data`, and the float32 values they stand for. */
function rounded(data: Float32Array, dtype: DType): { upload: Float32Array | Uint16Array; values: Float32Array } {
  if (dtype === 'bfloat16') {
    const bits = toBFloat16(data);
    return { upload: bits, values: fromBFloat16(bits) };
  }
  if (dtype === 'float16') {
    const bits = toFloat16(data);
    return { upload: bits, values: fromFloat16(bits) };
  }
  return { upload: data, values: data };
}

/** The problem as the GPU sees it in `dtype` (inputs rounded), and those inputs uploaded. */
function onDevice(p: Problem, dtype: DType): { host: Problem; x: DeviceMatrix; y: DeviceMatrix } {
  const x = rounded(p.image.data, dtype);
  const y = rounded(p.text.data, dtype);
  const host: Problem = {
    ...p,
    image: { data: x.values, rows: p.image.rows, cols: p.image.cols },
    text: { data: y.values, rows: p.text.rows, cols: p.text.cols },
  };
  return {
    host,
    x: DeviceMatrix.fromHost(x.upload, p.image.rows, p.image.cols, { dtype }),
    y: DeviceMatrix.fromHost(y.upload, p.text.rows, p.text.cols, { dtype }),
  };
}

interface HostResult {
  loss: number;
  grad: { image: Float32Array; text: Float32Array; logitScale: number; logitBias?: number };
}

function checkAgainst(
  t: { true(value: boolean, message?: string): void },
  label: string,
  out: HostResult,
  ref: ReferenceResult,
  tol: { loss: number; grad: number },
): void {
  t.true(Number.isFinite(out.loss), `${label}: loss is finite`);
  t.true(scalarError(out.loss, ref.loss) <= tol.loss, `${label}: loss ${out.loss} vs ${ref.loss}`);
  const ei = relativeError(out.grad.image, ref.gradImage);
  const et = relativeError(out.grad.text, ref.gradText);
  t.true(ei <= tol.grad, `${label}: grad.image relative error ${ei}`);
  t.true(et <= tol.grad, `${label}: grad.text relative error ${et}`);
  const es = scalarError(out.grad.logitScale, ref.dLogitScale, 1e-2 * ref.dLogitScaleMagnitude);
  t.true(es <= tol.grad, `${label}: grad.logitScale ${out.grad.logitScale} vs ${ref.dLogitScale}`);
  if (out.grad.logitBias !== undefined) {
    const eb = scalarError(out.grad.logitBias, ref.dLogitBias, 1e-2 * ref.dLogitBiasMagnitude);
    t.true(eb <= tol.grad, `${label}: grad.logitBias ${out.grad.logitBias} vs ${ref.dLogitBias}`);
  }
}

/** Downloads DeviceMatrix gradients (and disposes them). */
function toHost(result: { loss: number; grad: { image: DeviceMatrix; text: DeviceMatrix; logitScale: number; logitBias?: number } }): HostResult {
  const image = result.grad.image.download() as Float32Array;
  const text = result.grad.text.download() as Float32Array;
  result.grad.image.dispose();
  result.grad.text.dispose();
  const grad: HostResult['grad'] = { image, text, logitScale: result.grad.logitScale };
  if (result.grad.logitBias !== undefined) grad.logitBias = result.grad.logitBias;
  return { loss: result.loss, grad };
}

function bytes(a: Float32Array | Uint16Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function sameBits(a: HostResult, b: HostResult): boolean {
  return (
    Object.is(a.loss, b.loss) &&
    Object.is(a.grad.logitScale, b.grad.logitScale) &&
    Object.is(a.grad.logitBias, b.grad.logitBias) &&
    bytes(a.grad.image).equals(bytes(b.grad.image)) &&
    bytes(a.grad.text).equals(bytes(b.grad.text))
  );
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

// ---- DeviceMatrix ----------------------------------------------------------------------

gpuTest('DeviceMatrix round trips: float32 values, 16-bit bits, host rounding, zeros', (t) => {
  const data = randomUnitRows(rng(4), 37, 19);
  const f = DeviceMatrix.fromHost(data, 37, 19);
  t.is(f.rows, 37);
  t.is(f.cols, 19);
  t.is(f.dtype, 'float32');
  t.is(f.device, 'cuda:0');
  t.is(f.bytes, 37 * 19 * 4);
  t.false(f.disposed);
  t.true(bytes(f.download()).equals(bytes(data)));
  t.regex(String(f), /DeviceMatrix\(37×19 float32 on cuda:0\)/);
  f.dispose();

  for (const [dtype, convert, widen] of [
    ['bfloat16', toBFloat16, fromBFloat16],
    ['float16', toFloat16, fromFloat16],
  ] as const) {
    const bits = convert(data);
    const m = DeviceMatrix.fromHost(bits, 37, 19, { dtype, device: 'cuda:0' });
    t.is(m.dtype, dtype);
    t.is(m.bytes, 37 * 19 * 2);
    const down = m.download();
    t.true(down instanceof Uint16Array, `${dtype}: download() gives a Uint16Array`);
    t.true(bytes(down).equals(bytes(bits)), `${dtype}: the bits come back`);
    t.true(bytes(m.toFloat32Array()).equals(bytes(widen(bits))), `${dtype}: toFloat32Array widens exactly`);
    m.dispose();
    // Float32Array data with a 16-bit dtype is rounded on the host, to nearest even.
    const fromFloats = DeviceMatrix.fromHost(data, 37, 19, { dtype });
    t.true(bytes(fromFloats.download()).equals(bytes(bits)), `${dtype}: rounded on upload as ${convert.name} rounds`);
    fromFloats.dispose();
  }

  const z = DeviceMatrix.zeros(5, 300, { dtype: 'bfloat16' });
  t.deepEqual(z.download(), new Uint16Array(1500));
  z.dispose();
});

gpuTest('DeviceMatrix.fromHost validates its arguments', (t) => {
  const f = new Float32Array(6);
  const h = new Uint16Array(6);
  t.throws(() => DeviceMatrix.fromHost(h, 2, 3), { instanceOf: TypeError, message: /for options\.dtype/ });
  t.throws(() => DeviceMatrix.fromHost(h, 2, 3, { dtype: 'float32' }), { instanceOf: TypeError, message: /for data\b/ });
  t.throws(() => DeviceMatrix.fromHost(new Float64Array(6) as never, 2, 3), { instanceOf: TypeError, message: /for data\b/ });
  t.throws(() => DeviceMatrix.fromHost(f, 2, 4), { instanceOf: RangeError, message: /length 8.*for data\b/ });
  t.throws(() => DeviceMatrix.fromHost(f, 0, 6), { instanceOf: RangeError, message: /for rows\b/ });
  t.throws(() => DeviceMatrix.fromHost(f, 2, 3, { dtype: 'int8' as never }), { instanceOf: RangeError, message: /for options\.dtype/ });
  t.throws(() => DeviceMatrix.fromHost(f, 2, 3, { device: 'cpu' as never }), { instanceOf: RangeError, message: /for options\.device/ });
  t.throws(() => DeviceMatrix.fromHost(f, 2, 3, { dtyp: 'float32' } as never), { instanceOf: TypeError, message: /options\.dtyp\b/ });
});

gpuTest('dispose() frees the GPU memory at once; a disposed matrix throws ERR_SIGLIP_DISPOSED', async (t) => {
  // cudaMemoryUsage() counts the whole process, and other test files run at the same time in
  // worker threads of it: one of their allocations between two readings would shift the
  // difference. So the exact accounting gets a few attempts; a dispose() that frees nothing
  // fails every one of them.
  const bytes = 1024 * 64 * 4;
  let m = DeviceMatrix.fromHost(new Float32Array(1024 * 64).fill(0.01), 1024, 64);
  const deltas: Array<[number, number]> = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    if (attempt > 0) m = DeviceMatrix.fromHost(new Float32Array(1024 * 64).fill(0.01), 1024, 64);
    const held = cudaMemoryUsage().allocatedBytes;
    m.dispose();
    const after = cudaMemoryUsage().allocatedBytes;
    const allocated = (() => {
      const probe = DeviceMatrix.fromHost(new Float32Array(1024 * 64), 1024, 64);
      const grown = cudaMemoryUsage().allocatedBytes - after;
      probe.dispose();
      return grown;
    })();
    deltas.push([held - after, allocated]);
    if (held - after === bytes && allocated === bytes) break;
  }
  t.true(
    deltas.some(([freed, allocated]) => freed === bytes && allocated === bytes),
    `bytes freed by dispose() and allocated by fromHost() per attempt: ${JSON.stringify(deltas)} (expected ${bytes})`,
  );
  t.true(m.disposed);
  t.is(m.bytes, 0);
  t.is(m.rows, 1024, 'the shape stays readable');
  m.dispose(); // idempotent
  const error = t.throws(() => m.download(), { message: /disposed/ }) as Error & { code?: string };
  t.is(error.code, ERR_SIGLIP_DISPOSED);
  const other = DeviceMatrix.fromHost(new Float32Array(1024 * 64), 1024, 64);
  try {
    t.throws(() => sigmoidLossSync(m, other), { code: ERR_SIGLIP_DISPOSED, message: /for image\b/ });
    await t.throwsAsync(sigmoidLoss(other, m), { code: ERR_SIGLIP_DISPOSED, message: /for text\b/ });
  } finally {
    other.dispose();
  }
});

gpuTest('disposing inputs while a Promise is pending is safe: the call keeps its memory until it settles', async (t) => {
  const p = makeProblem({ n: 300, m: 300, d: 64, seed: 12 });
  const x = DeviceMatrix.fromHost(p.image.data, 300, 64);
  const y = DeviceMatrix.fromHost(p.text.data, 300, 64);
  const expected = toHost(sigmoidLossWithGradSync(x, y));
  const pending = sigmoidLossWithGrad(x, y);
  x.dispose();
  y.dispose();
  t.true(sameBits(toHost(await pending), expected));
});

gpuTest("gradients: 'device' gives float32 DeviceMatrix objects with the same bits as 'host'", (t) => {
  const p = makeProblem({ n: 65, m: 65, d: 40, seed: 13 });
  const { x, y } = onDevice(p, 'bfloat16');
  try {
    const onGpu = sigmoidLossWithGradSync(x, y); // DeviceMatrix inputs: 'device' by default
    t.true(onGpu.grad.image instanceof DeviceMatrix);
    t.is(onGpu.grad.image.dtype, 'float32');
    t.is(onGpu.grad.image.rows, 65);
    t.is(onGpu.grad.text.cols, 40);
    t.is(onGpu.grad.text.device, 'cuda:0');
    const onHost = sigmoidLossWithGradSync(x, y, { gradients: 'host' });
    t.true(onHost.grad.image instanceof Float32Array);
    t.true(sameBits(toHost(onGpu), onHost));
    // Host inputs can leave their gradients on the GPU too.
    const hostInputs = sigmoidLossWithGradSync(p.image, p.text, { device: 'cuda', gradients: 'device' });
    t.true(hostInputs.grad.image instanceof DeviceMatrix);
    toHost(hostInputs);
  } finally {
    x.dispose();
    y.dispose();
  }
});

// ---- errors on a GPU machine ---------------------------------------------------------------

gpuTest("an invalid device ordinal ('cuda:99') is a RangeError naming options.device", (t) => {
  const p = makeProblem({ n: 4, m: 4, d: 3, seed: 1 });
  const expectation = { instanceOf: RangeError, message: /'cuda:N' with N from 0 .*for options\.device but received the string 'cuda:99'/ };
  const error = t.throws(() => sigmoidLossSync(p.image, p.text, { device: 'cuda:99' }), expectation) as Error & {
    code?: string;
    argument?: string;
  };
  t.is(error.code, 'ERR_INVALID_ARG_VALUE');
  t.is(error.argument, 'options.device');
  t.throws(() => DeviceMatrix.fromHost(p.image.data, 4, 3, { device: 'cuda:99' }), { instanceOf: RangeError, message: /options\.device/ });
  t.throws(() => DeviceMatrix.zeros(4, 3, { device: 'cuda:99' }), { instanceOf: RangeError, message: /options\.device/ });
  // The native layer checks too (it can be called directly).
  const raw = loadAddon().addon.DeviceMatrix!;
  t.throws(() => new raw(p.image.data, 4, 3, 'float32', 99), { instanceOf: RangeError, message: /options\.device/ });
  const rawLoss = () => loadAddon().addon.cudaSigmoidLoss!(p.image, p.text, {
    logitScale: 1, logitBias: 0, method: 'fused', precision: 'tf32', gradients: 'host', device: 99,
  }, false);
  t.throws(rawLoss, { instanceOf: RangeError, message: /options\.device/ });
});

gpuTest('an absurd DeviceMatrix is ERR_SIGLIP_OUT_OF_MEMORY or a RangeError, never a crash; the GPU stays usable', (t) => {
  // 2^40 float32 values = 4 TiB: more than any GPU has.
  const oom = t.throws(() => DeviceMatrix.zeros(2 ** 20, 2 ** 20)) as Error & { code?: string };
  t.is(oom.code, 'ERR_SIGLIP_OUT_OF_MEMORY', oom.message);
  // Past 2^63 bytes: refused before any allocation.
  t.throws(() => DeviceMatrix.zeros(2 ** 40, 2 ** 40), { instanceOf: RangeError });
  const p = makeProblem({ n: 9, m: 9, d: 5, seed: 2 });
  t.true(Number.isFinite(sigmoidLossSync(p.image, p.text, { device: 'cuda' })), 'a normal call after the failures');
});

gpuTest('cuda calls reject bad combinations with the argument named', async (t) => {
  const p = makeProblem({ n: 6, m: 6, d: 4, seed: 3 });
  const f32 = DeviceMatrix.fromHost(p.image.data, 6, 4);
  const bf16 = DeviceMatrix.fromHost(p.text.data, 6, 4, { dtype: 'bfloat16' });
  const five = DeviceMatrix.fromHost(p.text.data.subarray(0, 20), 5, 4);
  const nan = p.image.data.slice();
  nan[9] = Number.NaN;
  const withNaN = DeviceMatrix.fromHost(nan, 6, 4);
  try {
    t.throws(() => sigmoidLossSync(f32, p.text), { instanceOf: TypeError, message: /DeviceMatrix.*for text\b/ });
    t.throws(() => sigmoidLossSync(p.image, f32), { instanceOf: TypeError, message: /for image\b/ });
    t.throws(() => sigmoidLossSync(f32, bf16), { instanceOf: TypeError, message: /dtype float32.*for text\b/ });
    t.throws(() => sigmoidLossSync(bf16, bf16, { precision: 'fp32' }), { instanceOf: RangeError, message: /for options\.precision/ });
    t.throws(() => sigmoidLossSync(f32, f32, { device: 'cpu' }), { instanceOf: RangeError, message: /for options\.device/ });
    t.throws(() => sigmoidLossSync(f32, five), { instanceOf: RangeError, message: /for text\.rows/ });
    t.throws(() => sigmoidLossSync(withNaN, f32), { instanceOf: RangeError, message: /for image\b.*index 9 \(row 2, column 1\)/ });
    await t.throwsAsync(sigmoidLoss(f32, withNaN), { instanceOf: RangeError, message: /for text\b/ });
    t.throws(() => softmaxLossSync(f32, f32, { method: 'fused' } as never), { instanceOf: RangeError, message: /'chunked' or 'naive' for options\.method/ });
    t.throws(() => softmaxLossSync(f32, f32, { method: 'simple' } as never), { instanceOf: RangeError, message: /for options\.method/ });
    t.throws(() => sigmoidLossSync(f32, f32, { gradients: 'gpu' } as never), { instanceOf: RangeError, message: /for options\.gradients/ });
  } finally {
    for (const m of [f32, bf16, five, withNaN]) m.dispose();
  }
});

gpuTest('backendInfo reports the CUDA build, its GPUs and versions', (t) => {
  const info = backendInfo();
  t.true(info.cuda.available);
  t.is(info.cuda.reason, '');
  t.regex(info.binaryPath, /build-cuda[\\/]Release[\\/]siglip_kernels\.node$/);
  t.regex(info.binaryReason, /CUDA build/);
  t.true(info.cuda.devices.length >= 1);
  const gpu = info.cuda.devices[0]!;
  t.is(gpu.device, 'cuda:0');
  t.true(gpu.name.length > 0, gpu.name);
  t.regex(gpu.computeCapability, /^\d+\.\d+$/);
  t.true(gpu.totalMemory > 0 && gpu.freeMemory > 0 && gpu.freeMemory <= gpu.totalMemory);
  t.true((info.cuda.runtimeVersion ?? 0) >= 12000);
  t.true((info.cuda.driverVersion ?? 0) > 0);
  t.true(cudaMemoryUsage().peakAllocatedBytes >= cudaMemoryUsage().allocatedBytes);
});

gpuTest('backendInfo().cuda.gemm says which kernels run the products, and why', (t) => {
  // A loss call first, so the GEMM selection (read once, when first needed) has been made.
  const p = makeProblem({ n: 64, m: 64, d: 32, seed: 3 });
  sigmoidLossSync(p.image, p.text, { device: 'cuda' });
  const gemm = backendInfo().cuda.gemm!;
  t.log(JSON.stringify(gemm));
  t.true(gemm.forward === 'tile' || gemm.forward === 'cublas');
  t.true(gemm.backward === 'cublas' || gemm.backward === 'tile');
  t.true(gemm.tile === 'pipelined' || gemm.tile === 'simple');
  t.is(typeof gemm.overlap, 'boolean');
  if (gemm.backward === 'cublas') {
    t.regex(gemm.cublasLibrary, /libcublas/);
    t.regex(gemm.cublasVersion, /^\d+\.\d+/);
  } else {
    t.true(gemm.reason.length > 0, 'the tile GEMM runs the backward products only with a reason');
  }
});

// ---- without a GPU -----------------------------------------------------------------------

noGpuTest("device 'cuda' without a usable GPU → ERR_SIGLIP_NO_CUDA saying why, never a CPU run", async (t) => {
  const p = makeProblem({ n: 4, m: 4, d: 3, seed: 1 });
  t.true(cuda.reason.length > 0, 'the loader recorded a reason');
  for (const device of ['cuda', 'cuda:0', 'cuda:1'] as const) {
    const error = t.throws(() => sigmoidLossWithGradSync(p.image, p.text, { device })) as Error & { code?: string; argument?: string };
    t.is(error.constructor, Error);
    t.is(error.code, ERR_SIGLIP_NO_CUDA);
    t.is(error.argument, 'options.device');
    t.true(error.message.includes(cuda.reason), error.message);
    t.regex(error.message, new RegExp(`^options\\.device is '${device}', but no CUDA GPU can be used: `));
    await t.throwsAsync(softmaxLossWithGrad(p.image, p.text, { device }), { code: ERR_SIGLIP_NO_CUDA });
  }
  t.throws(() => DeviceMatrix.fromHost(p.image.data, 4, 3), { code: ERR_SIGLIP_NO_CUDA, message: /needs the CUDA build/ });
  t.throws(() => DeviceMatrix.zeros(4, 3, { dtype: 'bfloat16' }), { code: ERR_SIGLIP_NO_CUDA });
  t.throws(() => cudaMemoryUsage(), { code: ERR_SIGLIP_NO_CUDA });
});

noGpuTest('backendInfo says CUDA is not available, and why', (t) => {
  const info = backendInfo();
  t.false(info.cuda.available);
  t.deepEqual(info.cuda.devices, []);
  t.true(info.cuda.reason.length > 0);
  t.true(info.binaryReason.startsWith(info.cuda.reason), info.binaryReason);
  t.regex(info.binaryReason, /using the CPU build|runs the CPU work/);
});

// ---- CUDA-only options on the CPU (everywhere) ---------------------------------------------

test('the CPU refuses CUDA-only options with a message that says so', (t) => {
  const p = makeProblem({ n: 4, m: 4, d: 3, seed: 1 });
  t.throws(() => sigmoidLossSync(p.image, p.text, { precision: 'tf32' }), { instanceOf: RangeError, message: /'fp32'.*needs device 'cuda'.*for options\.precision/ });
  t.throws(() => sigmoidLossSync(p.image, p.text, { gradients: 'device' }), { instanceOf: RangeError, message: /for options\.gradients/ });
  t.throws(() => sigmoidLossSync(p.image, p.text, { method: 'simple' }), { instanceOf: RangeError, message: /needs device 'cuda'.*for options\.method/ });
  t.throws(() => sigmoidLossSync(p.image, p.text, { precision: 1 } as never), { instanceOf: TypeError, message: /for options\.precision/ });
  // The values that mean what the CPU does anyway are accepted.
  const plain = sigmoidLossSync(p.image, p.text);
  t.is(sigmoidLossSync(p.image, p.text, { precision: 'fp32', gradients: 'host', device: 'cpu' }), plain);
});
