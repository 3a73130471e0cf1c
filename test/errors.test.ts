// Every bad input gets a TypeError (wrong kind of value) or RangeError (bad value) whose
// message names the argument, in the one form "Expected X for <argument> but received Y".
// Each case runs through a synchronous and a Promise entry point.
import * as vm from 'node:vm';

import test from 'ava';

import {
  ERR_SIGLIP_NO_CUDA,
  ERR_SIGLIP_NOT_IMPLEMENTED,
  gemmABt,
  matrix,
  normalizeRows,
  sigmoidLoss,
  sigmoidLossSync,
  sigmoidLossWithGrad,
  sigmoidLossWithGradSync,
  softmaxLoss,
  softmaxLossSync,
  softmaxLossWithGradSync,
} from '../lib/index';
import { makeProblem } from './helpers/cases';
import { noGpuTest } from './helpers/gpu';

type ErrorClass = typeof TypeError | typeof RangeError;

const good = makeProblem({ n: 4, m: 4, d: 3 });
const MESSAGE_FORM = /^Expected .+ for .+ but received .+/s;

function detachedFloat32Array(length: number): Float32Array {
  const array = new Float32Array(length);
  structuredClone(array.buffer, { transfer: [array.buffer] });
  return array;
}

function withData(data: Float32Array | number[], rows = 4, cols = 3): unknown {
  return { data, rows, cols };
}

function poisoned(value: number, index = 5): Float32Array {
  const data = good.image.data.slice();
  data[index] = value;
  return data;
}

interface Case {
  title: string;
  image?: unknown;
  text?: unknown;
  options?: unknown;
  error: ErrorClass;
  argument: RegExp;
  /** Which losses the case applies to (default both). */
  losses?: Array<'sigmoid' | 'softmax'>;
}

const f32 = (n: number) => new Float32Array(n);
const CASES: Case[] = [
  // Matrices
  { title: 'data length ≠ rows × cols', image: withData(f32(11)), error: RangeError, argument: /image\.data/ },
  { title: 'text data length ≠ rows × cols', text: withData(f32(13)), error: RangeError, argument: /text\.data/ },
  { title: 'non-integer rows', image: withData(f32(12), 1.5, 8), error: RangeError, argument: /image\.rows/ },
  { title: 'zero rows', image: withData(f32(0), 0, 3), error: RangeError, argument: /image\.rows/ },
  { title: 'negative rows', image: withData(f32(12), -4, -3), error: RangeError, argument: /image\.rows/ },
  { title: 'NaN rows', text: withData(f32(12), Number.NaN, 3), error: RangeError, argument: /text\.rows/ },
  { title: 'Infinity cols', text: withData(f32(12), 4, Infinity), error: RangeError, argument: /text\.cols/ },
  { title: 'non-integer cols', image: withData(f32(12), 4, 3.5), error: RangeError, argument: /image\.cols/ },
  { title: 'string cols', image: withData(f32(12), 4, '3' as never), error: TypeError, argument: /image\.cols/ },
  { title: 'missing rows', image: { data: f32(12), cols: 3 }, error: TypeError, argument: /image\.rows/ },
  { title: 'D mismatch', text: withData(f32(8), 4, 2), error: RangeError, argument: /text\.cols/ },
  { title: 'N ≠ M without ids', text: withData(f32(15), 5, 3), error: RangeError, argument: /text\.rows/ },
  { title: 'NaN in image data', image: withData(poisoned(Number.NaN)), error: RangeError, argument: /for image\.data but received/ },
  { title: 'Infinity in image data', image: withData(poisoned(Infinity, 0)), error: RangeError, argument: /for image\.data but received/ },
  { title: '-Infinity in text data', text: withData(poisoned(-Infinity, 11)), error: RangeError, argument: /for text\.data but received/ },
  { title: 'NaN in text data', text: withData(poisoned(Number.NaN, 3)), error: RangeError, argument: /for text\.data but received/ },
  { title: 'Float64Array data', image: withData(new Float64Array(12) as never), error: TypeError, argument: /image\.data/ },
  { title: 'plain array data', text: withData(Array(12).fill(0)), error: TypeError, argument: /text\.data/ },
  { title: 'Int32Array data', image: withData(new Int32Array(12) as never), error: TypeError, argument: /image\.data/ },
  { title: 'detached data', image: withData(detachedFloat32Array(12)), error: TypeError, argument: /image\.data.*detached/ },
  { title: 'image null', image: null, error: TypeError, argument: /image/ },
  { title: 'image a bare Float32Array', image: f32(12), error: TypeError, argument: /image/ },
  { title: 'text an array', text: [f32(12)], error: TypeError, argument: /text/ },
  // Scalars
  { title: 'NaN logitScale', options: { logitScale: Number.NaN }, error: RangeError, argument: /options\.logitScale/ },
  { title: 'Infinity logitScale', options: { logitScale: Infinity }, error: RangeError, argument: /options\.logitScale/ },
  { title: 'string logitScale', options: { logitScale: '2' }, error: TypeError, argument: /options\.logitScale/ },
  { title: 'logitScale beyond ±80 (core check)', options: { logitScale: -81 }, error: RangeError, argument: /logitScale/ },
  { title: 'NaN logitBias', options: { logitBias: Number.NaN }, error: RangeError, argument: /options\.logitBias/, losses: ['sigmoid'] },
  { title: '-Infinity logitBias', options: { logitBias: -Infinity }, error: RangeError, argument: /options\.logitBias/, losses: ['sigmoid'] },
  { title: 'logitBias given to softmax', options: { logitBias: -10 }, error: TypeError, argument: /options\.logitBias/, losses: ['softmax'] },
  // Ids
  {
    title: 'imageIds of the wrong length',
    options: { imageIds: new Int32Array(3), textIds: new Int32Array(4) },
    error: RangeError,
    argument: /options\.imageIds/,
  },
  {
    title: 'textIds of the wrong length',
    options: { imageIds: new Int32Array(4), textIds: new Int32Array(5) },
    error: RangeError,
    argument: /options\.textIds/,
  },
  {
    title: 'Float32Array ids',
    options: { imageIds: new Int32Array(4), textIds: new Float32Array(4) },
    error: TypeError,
    argument: /options\.textIds/,
  },
  {
    title: 'plain array ids',
    options: { imageIds: [0, 1, 2, 3], textIds: new Int32Array(4) },
    error: TypeError,
    argument: /options\.imageIds/,
  },
  { title: 'only imageIds', options: { imageIds: new Int32Array(4) }, error: TypeError, argument: /options\.textIds/ },
  { title: 'only textIds', options: { textIds: new Int32Array(4) }, error: TypeError, argument: /options\.imageIds/ },
  // Options object and names
  { title: 'unknown option name', options: { logitscale: 1 }, error: TypeError, argument: /options\.logitscale/ },
  { title: 'unknown option temperature', options: { temperature: 10 }, error: TypeError, argument: /options\.temperature/ },
  { title: 'options null', options: null, error: TypeError, argument: /options/ },
  { title: 'options a string', options: 'fused', error: TypeError, argument: /options/ },
  { title: 'options an array', options: [], error: TypeError, argument: /options/ },
  { title: 'options a Map', options: new Map([['threads', 1]]), error: TypeError, argument: /options/ },
  { title: 'unknown method', options: { method: 'fast' }, error: RangeError, argument: /options\.method/ },
  { title: 'method not a string', options: { method: 1 }, error: TypeError, argument: /options\.method/ },
  { title: 'unknown device', options: { device: 'tpu' }, error: RangeError, argument: /options\.device/ },
  { title: 'device not a string', options: { device: 0 }, error: TypeError, argument: /options\.device/ },
  { title: 'threads 0', options: { threads: 0 }, error: RangeError, argument: /options\.threads/ },
  { title: 'threads 1.5', options: { threads: 1.5 }, error: RangeError, argument: /options\.threads/ },
  { title: 'threads -1', options: { threads: -1 }, error: RangeError, argument: /options\.threads/ },
  { title: 'threads NaN', options: { threads: Number.NaN }, error: RangeError, argument: /options\.threads/ },
  { title: 'threads 5000', options: { threads: 5000 }, error: RangeError, argument: /options\.threads/ },
  { title: 'threads a string', options: { threads: '2' }, error: TypeError, argument: /options\.threads/ },
];

const ENTRY_POINTS = {
  sigmoid: { sync: sigmoidLossWithGradSync as (...a: unknown[]) => unknown, async: sigmoidLoss as (...a: unknown[]) => Promise<unknown> },
  softmax: { sync: softmaxLossSync as (...a: unknown[]) => unknown, async: softmaxLoss as (...a: unknown[]) => Promise<unknown> },
};

for (const c of CASES) {
  for (const loss of c.losses ?? (['sigmoid', 'softmax'] as const)) {
    test(`${loss}: ${c.title} → ${c.error.name} naming ${c.argument.source}`, async (t) => {
      const args = ['image' in c ? c.image : good.image, 'text' in c ? c.text : good.text, c.options];
      const { sync, async: asyncCall } = ENTRY_POINTS[loss];
      const expectation = { instanceOf: c.error, message: c.argument };
      const error = t.throws(() => sync(...args), expectation);
      t.regex(error?.message ?? '', MESSAGE_FORM);
      t.is((error as Error & { code?: string })?.code, c.error === TypeError ? 'ERR_INVALID_ARG_TYPE' : 'ERR_INVALID_ARG_VALUE');
      await t.throwsAsync(asyncCall(...args), expectation);
    });
  }
}

// Without a usable GPU (test/cuda.test.ts covers the GPU side).
for (const device of ['cuda', 'cuda:0', 'cuda:3']) {
  noGpuTest(`device '${device}' → Error with code ERR_SIGLIP_NO_CUDA`, async (t) => {
    const error = t.throws(() => sigmoidLossSync(good.image, good.text, { device: device as never }));
    t.is(error?.constructor, Error);
    t.is((error as Error & { code?: string })?.code, ERR_SIGLIP_NO_CUDA);
    t.regex(error?.message ?? '', /options\.device.*no CUDA/);
    await t.throwsAsync(softmaxLoss(good.image, good.text, { device: device as never }), { code: ERR_SIGLIP_NO_CUDA });
  });
}

// 'chunked' (the default) and 'naive' are both softmax methods on CUDA too: without a GPU the
// call fails for that reason, never as not implemented.
for (const method of ['chunked', 'naive', undefined] as const) {
  noGpuTest(`softmax method ${String(method)} with device 'cuda' → ERR_SIGLIP_NO_CUDA, not ERR_SIGLIP_NOT_IMPLEMENTED`, (t) => {
    const options = method === undefined ? { device: 'cuda' as const } : { device: 'cuda' as const, method };
    const error = t.throws(() => softmaxLossSync(good.image, good.text, options)) as Error & { code?: string };
    t.is(error.code, ERR_SIGLIP_NO_CUDA);
    t.not(error.code, ERR_SIGLIP_NOT_IMPLEMENTED);
  });
}

test("softmax method 'fused' (a sigmoid method) → RangeError naming the softmax methods", async (t) => {
  t.throws(() => softmaxLossSync(good.image, good.text, { method: 'fused' } as never), {
    instanceOf: RangeError,
    message: /'chunked' or 'naive' for options\.method/,
  });
  await t.throwsAsync(softmaxLoss(good.image, good.text, { method: 'fused' } as never), { instanceOf: RangeError });
});

test('unknown option names get a suggestion when one fits', (t) => {
  t.throws(() => sigmoidLossSync(good.image, good.text, { bias: -10 } as never), { message: /did you mean logitBias/ });
  t.throws(() => sigmoidLossSync(good.image, good.text, { Threads: 2 } as never), { message: /did you mean threads/ });
});

test('a Promise entry point with grad rejects like the synchronous one', async (t) => {
  await t.throwsAsync(sigmoidLossWithGrad(good.image, good.text, { threads: 1.5 }), { instanceOf: RangeError, message: /options\.threads/ });
});

test('matrix() validates like the loss functions, naming its own parameters', (t) => {
  t.deepEqual(matrix(new Float32Array(6), 2, 3), { data: new Float32Array(6), rows: 2, cols: 3 });
  t.throws(() => matrix(new Float64Array(4) as never, 2, 2), { instanceOf: TypeError, message: /for data\b/ });
  t.throws(() => matrix([1, 2, 3, 4] as never, 2, 2), { instanceOf: TypeError, message: /for data\b/ });
  t.throws(() => matrix(new Uint8Array(4) as never, 2, 2), { instanceOf: TypeError, message: /for data\b/ });
  t.throws(() => matrix(new Float32Array(4), 2, 3), { instanceOf: RangeError, message: /length 6.*for data\b/ });
  t.throws(() => matrix(new Float32Array(4), 0, 4), { instanceOf: RangeError, message: /for rows\b/ });
  t.throws(() => matrix(new Float32Array(4), 4, Number.NaN), { instanceOf: RangeError, message: /for cols\b/ });
  t.throws(() => matrix(new Float32Array(4), 2 ** 53, 1), { instanceOf: RangeError, message: /for rows\b/ });
  t.throws(() => matrix(new Float32Array(4), '2' as never, 2), { instanceOf: TypeError, message: /for rows\b/ });
  t.throws(() => matrix(detachedFloat32Array(4), 2, 2), { instanceOf: TypeError, message: /for data\b.*detached/ });
  // A matrix larger than any typed array: rejected before the length is compared.
  t.throws(() => matrix(new Float32Array(4), 2 ** 26, 2 ** 26), { instanceOf: RangeError, message: /rows × cols/ });
  // An empty (but live) Float32Array is not mistaken for a detached one.
  t.throws(() => matrix(new Float32Array(0), 1, 1), { instanceOf: RangeError, message: /received a Float32Array of length 0/ });
});

test('gemmABt validates its arguments', (t) => {
  const a = new Float32Array(6);
  const b = new Float32Array(3);
  t.deepEqual(gemmABt(Float32Array.of(1, 2), Float32Array.of(3, 4), 1, 1, 2), Float32Array.of(11));
  t.throws(() => gemmABt(a, b, 2, 1, 4), { instanceOf: RangeError, message: /for a\b/ });
  t.throws(() => gemmABt(a, new Float32Array(4), 2, 1, 3), { instanceOf: RangeError, message: /for b\b/ });
  t.throws(() => gemmABt(new Float64Array(6) as never, b, 2, 1, 3), { instanceOf: TypeError, message: /for a\b/ });
  t.throws(() => gemmABt(a, b, 0, 1, 3), { instanceOf: RangeError, message: /for m\b/ });
  t.throws(() => gemmABt(a, b, 2, 1.5, 3), { instanceOf: RangeError, message: /for n\b/ });
  t.throws(() => gemmABt(a, b, 2, 1, 3, 0), { instanceOf: RangeError, message: /for threads\b/ });
});

test('normalizeRows validates its input and the gradient it is given', (t) => {
  t.throws(() => normalizeRows({ data: new Float64Array(4), rows: 2, cols: 2 } as never), { instanceOf: TypeError, message: /m\.data/ });
  const { backward } = normalizeRows({ data: new Float32Array([3, 4]), rows: 1, cols: 2 });
  t.throws(() => backward(new Float32Array(3)), { instanceOf: RangeError, message: /gradNormalized/ });
  t.throws(() => backward([1, 2] as never), { instanceOf: TypeError, message: /gradNormalized/ });
});

test('typed arrays from another realm (a vm context) are accepted', (t) => {
  const foreign = vm.runInNewContext('({ data: new Float32Array(12).fill(0.25), ids: new Int32Array([0, 1, 2, 3]) })') as {
    data: Float32Array;
    ids: Int32Array;
  };
  t.false(foreign.data instanceof Float32Array);
  const image = matrix(foreign.data, 4, 3);
  t.true(Number.isFinite(sigmoidLossSync(image, good.text, { imageIds: foreign.ids, textIds: Int32Array.of(0, 1, 2, 3) })));
});
