// The CUDA backend through the public API, the rest: DeviceMatrix upload, download and dispose,
// gradients left on the GPU, the errors (invalid ordinal, out of memory, bad combinations) and
// backendInfo. The losses against the reference: test/cuda.test.ts.
//
// GPU tests run only where a GPU answers (test/helpers/gpu.ts): otherwise they are listed as
// skipped with the reason, or fail under SIGLIP_REQUIRE_CUDA=1. The tests at the end run
// without a GPU: a CUDA request must fail with ERR_SIGLIP_NO_CUDA and say why.
import * as path from 'node:path';

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
  toBFloat16,
  toFloat16,
} from '../lib/index';
import { loadAddon } from '../lib/loader';
import { makeProblem } from './helpers/cases';
import { bytes, onDevice, sameBits, toHost } from './helpers/cuda_results';
import { cuda, gpuTest, noGpuTest } from './helpers/gpu';
import { randomUnitRows, rng } from './helpers/reference';

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
  // The local CUDA build, or the binary SIGLIP_KERNELS_BINARY names (the emulated addon).
  const named = process.env['SIGLIP_KERNELS_BINARY']?.trim();
  if (named) t.is(info.binaryPath, path.resolve(named));
  else t.regex(info.binaryPath, /build-cuda[\\/]Release[\\/]siglip_kernels\.node$/);
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
