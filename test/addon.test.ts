// The raw binding, called directly with garbage, throws JS errors instead of crashing; and
// backendInfo reports what was loaded.
import * as fs from 'node:fs';

import test from 'ava';

import { backendInfo } from '../lib/index';
import { loadAddon } from '../lib/loader';

const { addon } = loadAddon();
const f32 = (n: number) => new Float32Array(n);
const m = (data: unknown, rows: unknown, cols: unknown) => ({ data, rows, cols });
const goodImage = m(f32(6).fill(0.5), 2, 3);
const goodOptions = { logitScale: 1, logitBias: -1, method: 'fused', threads: 1 };

type Raw = (...args: unknown[]) => unknown;
const sigmoid = addon.sigmoidLoss as unknown as Raw;
const softmax = addon.softmaxLoss as unknown as Raw;
const sigmoidAsync = addon.sigmoidLossAsync as unknown as Raw;
const gemm = addon.gemmABt as unknown as Raw;

function detached(): Float32Array {
  const a = f32(6);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

const GARBAGE: Array<[string, () => unknown, typeof TypeError | typeof RangeError, RegExp]> = [
  ['no arguments', () => sigmoid(), TypeError, /image/],
  ['numbers for matrices', () => sigmoid(1, 2, 3, 4), TypeError, /image/],
  ['Float64Array data', () => sigmoid(m(new Float64Array(6), 2, 3), goodImage, goodOptions, false), TypeError, /image\.data/],
  ['short data', () => sigmoid(m(f32(5), 2, 3), goodImage, goodOptions, false), RangeError, /image\.data/],
  ['detached data', () => sigmoid(goodImage, m(detached(), 2, 3), goodOptions, false), TypeError, /text\.data.*detached/],
  ['huge rows', () => sigmoid(m(f32(6), 2 ** 62, 2 ** 62), goodImage, goodOptions, false), RangeError, /image/],
  ['fractional rows', () => sigmoid(m(f32(6), 1.5, 4), goodImage, goodOptions, false), RangeError, /image\.rows/],
  ['negative cols', () => sigmoid(goodImage, m(f32(6), 2, -3), goodOptions, false), RangeError, /text\.cols/],
  ['options null', () => sigmoid(goodImage, goodImage, null, false), TypeError, /options/],
  ['options without logitScale', () => sigmoid(goodImage, goodImage, { ...goodOptions, logitScale: undefined }, false), TypeError, /options\.logitScale/],
  ['NaN logitBias', () => sigmoid(goodImage, goodImage, { ...goodOptions, logitBias: Number.NaN }, false), RangeError, /options\.logitBias/],
  ['softmax with logitBias', () => softmax(goodImage, goodImage, { ...goodOptions, method: 'naive' }, false), TypeError, /options\.logitBias/],
  ['softmax fused', () => softmax(goodImage, goodImage, { logitScale: 1, method: 'fused', threads: 1 }, false), RangeError, /options\.method/],
  ['bad method', () => sigmoid(goodImage, goodImage, { ...goodOptions, method: 'quick' }, false), RangeError, /options\.method/],
  ['threads 0', () => sigmoid(goodImage, goodImage, { ...goodOptions, threads: 0 }, false), RangeError, /options\.threads/],
  ['threads huge', () => sigmoid(goodImage, goodImage, { ...goodOptions, threads: 1e9 }, false), RangeError, /options\.threads/],
  ['ids of the wrong type', () => sigmoid(goodImage, goodImage, { ...goodOptions, imageIds: f32(2), textIds: new Int32Array(2) }, false), TypeError, /options\.imageIds/],
  ['ids of the wrong length', () => sigmoid(goodImage, goodImage, { ...goodOptions, imageIds: new Int32Array(3), textIds: new Int32Array(2) }, false), RangeError, /options\.imageIds/],
  ['one side of ids', () => sigmoid(goodImage, goodImage, { ...goodOptions, textIds: new Int32Array(2) }, false), TypeError, /options\.imageIds/],
  ['wantGrad not a boolean', () => sigmoid(goodImage, goodImage, goodOptions, 'yes'), TypeError, /wantGrad/],
  ['N ≠ M without ids (core check)', () => sigmoid(goodImage, m(f32(3), 1, 3), goodOptions, false), RangeError, /text/],
  ['NaN data (core check)', () => sigmoid(m(f32(6).fill(Number.NaN), 2, 3), goodImage, goodOptions, false), RangeError, /image/],
  ['async with garbage throws synchronously', () => sigmoidAsync(goodImage, 'text', goodOptions, true), TypeError, /text/],
  ['gemmABt with no arguments', () => gemm(), TypeError, /\bm\b/],
  ['gemmABt with short a', () => gemm(f32(5), f32(6), 2, 2, 3, 1), RangeError, /\ba\b/],
  ['gemmABt with an Int32Array b', () => gemm(f32(6), new Int32Array(6), 2, 2, 3, 1), TypeError, /\bb\b/],
  ['gemmABt with overflowing sizes', () => gemm(f32(6), f32(6), 2 ** 40, 2 ** 40, 2 ** 20, 1), RangeError, /\ba\b|m × n/],
];

for (const [title, call, errorClass, argument] of GARBAGE) {
  test(`raw addon: ${title} → ${errorClass.name}`, (t) => {
    const error = t.throws(call, { instanceOf: errorClass, message: argument });
    t.regex(error?.message ?? '', /^Expected .+ for .+ but received .+/s);
    t.truthy((error as Error & { code?: string })?.code);
  });
}

test('raw addon: a getter that throws propagates its error', (t) => {
  const image = {
    data: f32(6),
    cols: 3,
    get rows(): number {
      throw new Error('boom');
    },
  };
  t.throws(() => sigmoid(image, goodImage, goodOptions, false), { message: 'boom' });
});

test('raw addon: a valid call returns { loss, grad }', async (t) => {
  const sync = sigmoid(goodImage, goodImage, goodOptions, true) as { loss: number; grad: Record<string, unknown> };
  t.true(Number.isFinite(sync.loss));
  t.deepEqual(Object.keys(sync.grad).sort(), ['image', 'logitBias', 'logitScale', 'text']);
  t.deepEqual(await sigmoidAsync(goodImage, goodImage, goodOptions, true), sync);
  const noGrad = sigmoid(goodImage, goodImage, goodOptions, false) as Record<string, unknown>;
  t.deepEqual(Object.keys(noGrad), ['loss']);
});

test('backendInfo reports the binary, SIMD level, threads, tile and CUDA status', (t) => {
  const info = backendInfo();
  t.true(fs.existsSync(info.binaryPath), info.binaryPath);
  t.regex(info.binaryPath, /siglip_kernels\.node$/);
  t.true(info.binaryReason.length > 0);
  t.true(['avx512', 'avx2', 'generic'].includes(info.simd), info.simd);
  t.true(info.simdReason.length > 0);
  t.true(Number.isInteger(info.hardwareThreads) && info.hardwareThreads >= 1);
  t.true(Number.isInteger(info.defaultThreads) && info.defaultThreads >= 1);
  t.true(info.tile.rows > 0 && info.tile.cols > 0);
  // Available only with the CUDA build and a GPU (test/cuda.test.ts checks both cases).
  if (info.cuda.available) t.is(info.cuda.reason, '');
  else t.regex(info.cuda.reason, /CUDA/);
});
