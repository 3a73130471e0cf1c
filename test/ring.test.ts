// The ring in one process (Ring.local): P = 1 … 8 ranks with uneven shards, with and without
// label ids, against the single-device loss of the concatenated batch; memory per rank that
// does not grow with P; a rank that fails (or never shows up) makes every other rank fail
// within the timeout; bad arguments name themselves. MPI: test/ring-mpi.test.ts.
import test, { type ExecutionContext } from 'ava';

import {
  DEFAULT_RING_TIMEOUT_MS,
  ERR_SIGLIP_NO_MPI,
  ERR_SIGLIP_RING_FAILED,
  type LocalRingLossOptions,
  type Matrix,
  DeviceMatrix,
  Ring,
  matrix,
} from '../lib/index';
import { loadAddon } from '../lib/loader';
import { injectRingFaultForTests } from '../lib/ring/local';
import { cuda, gpuTest, noGpuTest } from './helpers/gpu';
import { type ShardedBatch, makeShardedBatch, rankErrors, shardsOf, singleDevice, withinTolerance } from './helpers/ring_batch';

type Failure = Error & { code?: string; argument?: string; rank?: number; rankErrors?: string[] };

const directions = ['one-way', 'two-way'] as const;

for (let p = 1; p <= 8; p++) {
  for (const withIds of [false, true]) {
    for (const direction of directions) {
      const d = p % 2 ? 24 : 17;
      test(`P=${p} ${direction} ${withIds ? 'with label ids (text shards of their own sizes)' : 'without ids'}: every rank equals the single-device result`, async (t) => {
        const b = makeShardedBatch(1000 + 10 * p + Number(withIds), p, d, withIds);
        const { images, texts, ids } = shardsOf(b);
        const options = { logitScale: 2.1, logitBias: -6.5, direction, ...ids };
        const ref = singleDevice(b, options.logitScale, options.logitBias);
        const ring = await Ring.local({ ranks: p });
        try {
          const out = await ring.sigmoidLossWithGrad(images, texts, options);
          t.is(out.grad.image.length, p);
          t.is(out.grad.text.length, p);
          t.is(out.stats.length, p);
          for (let r = 0; r < p; r++) {
            t.is(out.grad.image[r]!.length, b.imageRows[r]! * d);
            t.is(out.grad.text[r]!.length, b.textRows[r]! * d);
            const e = rankErrors(b, ref, r, {
              loss: out.loss,
              logitScale: out.grad.logitScale,
              logitBias: out.grad.logitBias,
              image: out.grad.image[r]!,
              text: out.grad.text[r]!,
            });
            t.true(withinTolerance(e), `rank ${r}: ${JSON.stringify(e)} (shards ${b.imageRows}/${b.textRows})`);
            t.is(out.stats[r]!.steps, direction === 'one-way' ? p : Math.floor(p / 2) + 1);
            t.is(out.stats[r]!.returnHops, p === 1 ? 0 : direction === 'one-way' ? 1 : Math.floor(p / 2));
          }
          // The forward-only call gives the same loss.
          t.is(await ring.sigmoidLoss(images, texts, options), out.loss);
        } finally {
          ring.dispose();
        }
      });
    }
  }
}

test('without ids the text shards may split the global batch differently from the image shards', async (t) => {
  const b: ShardedBatch = {
    d: 12,
    imageRows: [3, 1, 4],
    textRows: [2, 4, 2],
    image: new Float32Array(8 * 12).map((_, k) => Math.sin(k * 0.37) / 2),
    text: new Float32Array(8 * 12).map((_, k) => Math.cos(k * 0.11) / 2),
  };
  const ref = singleDevice(b);
  const ring = await Ring.local({ ranks: 3 });
  const { images, texts } = shardsOf(b);
  const out = await ring.sigmoidLossWithGrad(images, texts);
  ring.dispose();
  for (let r = 0; r < 3; r++) {
    const e = rankErrors(b, ref, r, { loss: out.loss, logitScale: out.grad.logitScale, logitBias: out.grad.logitBias, image: out.grad.image[r]!, text: out.grad.text[r]! });
    t.true(withinTolerance(e), `rank ${r}: ${JSON.stringify(e)}`);
  }
});

for (const direction of ['one-way', 'two-way'] as const) {
  test(`${direction}: every rank ends with the same bits of the loss, ∂s and ∂b (the raw per-rank results)`, async (t) => {
    const b = makeShardedBatch(5, 5, 20, true);
    const { images, texts, ids } = shardsOf(b);
    const { addon } = loadAddon();
    const native = new addon.LocalRingHandle({ ranks: 5, timeoutMs: 20_000 });
    const options = { logitScale: Math.log(10), logitBias: -10, direction, threads: 1, ...ids };
    const results = (await native.sigmoidLoss(images, texts, options, true)) as Array<{
      loss: number;
      grad: { logitScale: number; logitBias: number };
    }>;
    native.dispose();
    t.is(results.length, 5);
    for (const r of results) {
      t.true(Object.is(r.loss, results[0]!.loss));
      t.true(Object.is(r.grad.logitScale, results[0]!.grad.logitScale));
      t.true(Object.is(r.grad.logitBias, results[0]!.grad.logitBias));
    }
  });
}

for (const [direction, blocks] of [['one-way', 5], ['two-way', 9]] as const) {
  test(`${direction}: memory per rank does not grow with P: the ring buffers stay under ${blocks} blocks of the largest text shard`, async (t) => {
    const rows = 32;
    const d = 64;
    const peaks: number[] = [];
    for (const p of [3, 5, 8]) {
      for (const withIds of [false, true]) {
        const b = makeShardedBatch(300 + p, p, d, withIds, rows);
        const largest = Math.max(...b.textRows);
        const bound = blocks * largest * d * 4 + (withIds ? 4 * largest * 4 : 0);
        const ring = await Ring.local({ ranks: p });
        const { images, texts, ids } = shardsOf(b);
        const out = await ring.sigmoidLossWithGrad(images, texts, { ...ids, direction });
        ring.dispose();
        for (const [r, s] of out.stats.entries()) {
          t.true(s.peakRingBytes > 0 && s.peakRingBytes <= bound, `P=${p} rank ${r}: ${s.peakRingBytes} bytes > ${bound}`);
          t.true(s.bytesSent > 0);
          t.true(s.computeSeconds >= 0 && s.waitSeconds >= 0);
        }
        if (!withIds) peaks.push(Math.max(...out.stats.map((s) => s.peakRingBytes)) / (largest * d * 4));
      }
    }
    // In units of the largest shard: the same from P = 5 on (a two-way ring with P = 3 needs fewer).
    t.true(peaks[0]! <= peaks[1]! && peaks[1] === peaks[2], `ring bytes per largest-shard byte at P = 3, 5, 8: ${peaks}`);
  });
}

test('stats.bytesSent counts one call: P − 1 text blocks and their gradients one-way; two-way the return hops too', async (t) => {
  const p = 4;
  const rows = 8;
  const d = 16;
  const shards = (phase: number) =>
    Array.from({ length: p }, (_, r) => matrix(new Float32Array(rows * d).map((_, k) => Math.sin(phase + r + 0.1 * k)), rows, d));
  const images = shards(0);
  const texts = shards(1);
  const block = rows * d * 4;
  const ring = await Ring.local({ ranks: p });
  for (let call = 0; call < 2; call++) {
    const one = await ring.sigmoidLossWithGrad(images, texts);
    // P − 1 = 3 text blocks and 3 accumulators (started by the first rank a block visits).
    for (const s of one.stats) t.is(s.bytesSent, 3 * block + 3 * block);
    const two = await ring.sigmoidLossWithGrad(images, texts, { direction: 'two-way' });
    // Texts: 2 blocks go forward, 1 back. Gradients: lane 0 one hop out and two home, lane 1 one home.
    for (const s of two.stats) t.is(s.bytesSent, 3 * block + 4 * block);
  }
  ring.dispose();
});

for (const direction of directions) {
  test(`${direction}: a rank that fails mid-ring makes every other rank reject within the timeout, and the ring recovers`, async (t) => {
    const p = 4;
    const b = makeShardedBatch(9, p, 16, false);
    const { images, texts } = shardsOf(b);
    const timeoutMs = 5000;
    const ring = await Ring.local({ ranks: p, timeoutMs });
    const start = Date.now();
    injectRingFaultForTests(ring, 2); // the test seam: rank 2 of the next call fails after its first step
    const error = (await t.throwsAsync(ring.sigmoidLossWithGrad(images, texts, { direction }))) as Failure;
    t.true(Date.now() - start < timeoutMs, 'the other ranks noticed the abort, not their timeout');
    t.is(error.code, ERR_SIGLIP_RING_FAILED);
    t.is(error.rank, 2);
    t.regex(error.message, /rank 2: simulated failure after its first step/);
    t.is(error.rankErrors?.length, p);
    for (let r = 0; r < p; r++) {
      if (r !== 2) t.regex(error.rankErrors![r]!, new RegExp(`ring rank ${r} stopped: rank 2 failed`));
    }
    // A local ring gets a fresh group after a failure.
    const ok = await ring.sigmoidLossWithGrad(images, texts, { direction });
    t.true(Number.isFinite(ok.loss));
    ring.dispose();
  });
}

test('a rank that never takes part makes the others time out (timeoutMs), not hang', async (t) => {
  const b = makeShardedBatch(10, 3, 8, false);
  const { images, texts } = shardsOf(b);
  const timeoutMs = 300;
  const ring = await Ring.local({ ranks: 3, timeoutMs });
  const start = Date.now();
  injectRingFaultForTests(ring, 0, 'absent');
  const error = (await t.throwsAsync(ring.sigmoidLoss(images, texts))) as Failure;
  const elapsed = Date.now() - start;
  t.true(elapsed >= timeoutMs && elapsed < timeoutMs + 3000, `${elapsed} ms`);
  t.is(error.code, ERR_SIGLIP_RING_FAILED);
  t.is(error.rank, 0);
  for (const r of [1, 2]) t.regex(error.rankErrors![r]!, /timed out after 300 ms/);
  ring.dispose();
});

test('bad data on one rank reaches the others as an error naming the shard', async (t) => {
  const b = makeShardedBatch(11, 4, 8, true);
  const { images, texts, ids } = shardsOf(b);
  const bad = new Float32Array(texts[2]!.data);
  bad[3] = Number.NaN;
  texts[2] = matrix(bad, texts[2]!.rows, texts[2]!.cols);
  const ring = await Ring.local({ ranks: 4, timeoutMs: 10_000 });
  const start = Date.now();
  const error = (await t.throwsAsync(ring.sigmoidLossWithGrad(images, texts, ids), { instanceOf: RangeError })) as Failure;
  t.true(Date.now() - start < 5000);
  t.is(error.message, 'Expected only finite values for textShards[2].data but received NaN at index 3 (row 0, column 3)');
  t.is(error.rank, 2);
  for (const r of [0, 1, 3]) t.regex(error.rankErrors![r]!, /stopped: rank 2 failed: Expected only finite values for textShards\[2\]\.data/);
  ring.dispose();
});

test('calls on one ring run one after another; dispose() lets the calls made before it finish', async (t) => {
  const b = makeShardedBatch(12, 3, 10, false);
  const { images, texts } = shardsOf(b);
  const ring = await Ring.local({ ranks: 3 });
  const losses = await Promise.all([1, 2, 3].map((s) => ring.sigmoidLoss(images, texts, { logitScale: s })));
  t.is(new Set(losses).size, 3);
  const inFlight = ring.sigmoidLossWithGrad(images, texts);
  ring.dispose();
  t.true(Number.isFinite((await inFlight).loss));
  t.true(ring.disposed);
  const error = (await t.throwsAsync(ring.sigmoidLoss(images, texts))) as Failure;
  t.is(error.code, 'ERR_SIGLIP_DISPOSED');
  t.notThrows(() => ring.dispose());
});

test('properties and defaults', async (t) => {
  const ring = await Ring.local({ ranks: 3 });
  t.is(ring.kind, 'local');
  t.is(ring.rank, 0);
  t.is(ring.size, 3);
  t.is(ring.ranks, 3);
  t.false(ring.disposed);
  t.is(DEFAULT_RING_TIMEOUT_MS, 60_000);
  ring.dispose();
});

const m = (rows: number, cols: number): Matrix => matrix(new Float32Array(rows * cols).fill(0.5), rows, cols);

test('bad arguments reject with TypeError / RangeError naming the argument', async (t) => {
  const ring = await Ring.local({ ranks: 2 });
  const two = [m(2, 3), m(1, 3)];
  const cases: Array<[string, () => Promise<unknown>, typeof TypeError | typeof RangeError, string]> = [
    ['not an Array', () => ring.sigmoidLoss(m(2, 3) as unknown as Matrix[], two), TypeError, 'imageShards'],
    ['wrong number of shards', () => ring.sigmoidLoss([m(3, 3)], two), RangeError, 'imageShards'],
    ['wrong number of text shards', () => ring.sigmoidLoss(two, [m(1, 3), m(1, 3), m(1, 3)]), RangeError, 'textShards'],
    ['D differs between image shards', () => ring.sigmoidLoss([m(2, 3), m(1, 4)], two), RangeError, 'imageShards[1].cols'],
    ['D differs between text shards', () => ring.sigmoidLoss(two, [m(2, 3), m(1, 2)]), RangeError, 'textShards[1].cols'],
    [
      'non-Float32Array data',
      () => ring.sigmoidLoss([{ data: new Float64Array(6), rows: 2, cols: 3 } as unknown as Matrix, m(1, 3)], two),
      TypeError,
      'imageShards[0].data',
    ],
    ['a shard that is not a Matrix', () => ring.sigmoidLoss(two, [m(2, 3), null as unknown as Matrix]), TypeError, 'textShards[1]'],
    ['global rows differ without ids', () => ring.sigmoidLoss(two, [m(2, 3), m(2, 3)]), RangeError, 'textShards'],
    [
      'only imageIds',
      () => ring.sigmoidLoss(two, two, { imageIds: [new Int32Array(2), new Int32Array(1)] }),
      TypeError,
      'options.textIds',
    ],
    [
      'only textIds',
      () => ring.sigmoidLoss(two, two, { textIds: [new Int32Array(2), new Int32Array(1)] }),
      TypeError,
      'options.imageIds',
    ],
    [
      'ids not one per rank',
      () => ring.sigmoidLoss(two, two, { imageIds: [new Int32Array(2)], textIds: [new Int32Array(2), new Int32Array(1)] }),
      RangeError,
      'options.imageIds',
    ],
    [
      'ids of the wrong length',
      () => ring.sigmoidLoss(two, two, { imageIds: [new Int32Array(2), new Int32Array(2)], textIds: [new Int32Array(2), new Int32Array(1)] }),
      RangeError,
      'options.imageIds[1]',
    ],
    [
      'ids not an Int32Array',
      () =>
        ring.sigmoidLoss(two, two, {
          imageIds: [new Int32Array(2), new Int32Array(1)],
          textIds: [new Int32Array(2), [0] as unknown as Int32Array],
        }),
      TypeError,
      'options.textIds[1]',
    ],
    ['logitScale out of range', () => ring.sigmoidLoss(two, two, { logitScale: 81 }), RangeError, 'options.logitScale'],
    ['logitBias not finite', () => ring.sigmoidLoss(two, two, { logitBias: Number.NaN }), RangeError, 'options.logitBias'],
    ['unknown direction', () => ring.sigmoidLoss(two, two, { direction: 'both' as 'two-way' }), RangeError, 'options.direction'],
    ['direction not a string', () => ring.sigmoidLoss(two, two, { direction: 2 as unknown as 'two-way' }), TypeError, 'options.direction'],
    ['unknown option', () => ring.sigmoidLoss(two, two, { temperature: 10 } as LocalRingLossOptions), TypeError, 'options.temperature'],
    ['the test seam is no option', () => ring.sigmoidLoss(two, two, { failRank: 0 } as LocalRingLossOptions), TypeError, 'options.failRank'],
    ['options not an object', () => ring.sigmoidLoss(two, two, 5 as unknown as LocalRingLossOptions), TypeError, 'options'],
  ];
  for (const [what, call, type, argument] of cases) {
    const error = (await t.throwsAsync(call(), { instanceOf: type }, what)) as Failure;
    t.is(error?.argument, argument, `${what}: ${error?.message}`);
    t.regex(error?.message ?? '', new RegExp(`^Expected .* for ${argument.replace(/[[\].]/g, '\\$&')} but received `), what);
  }
  // A local ring's ranks are this process: it has no allGather (RankRing has).
  t.false('allGather' in ring);
  ring.dispose();
});

test('bad ring options reject naming the option', async (t) => {
  const cases: Array<[unknown, typeof TypeError | typeof RangeError, string]> = [
    [undefined, TypeError, 'options'],
    [{}, TypeError, 'options.ranks'],
    [{ ranks: 0 }, RangeError, 'options.ranks'],
    [{ ranks: 4097 }, RangeError, 'options.ranks'],
    [{ ranks: 2.5 }, RangeError, 'options.ranks'],
    [{ ranks: 2, device: 'gpu' }, RangeError, 'options.device'],
    [{ ranks: 2, device: ['cuda'] }, RangeError, 'options.device'],
    [{ ranks: 2, device: 5 }, TypeError, 'options.device'],
    [{ ranks: 2, transport: 'nccl' }, RangeError, 'options.transport'],
    [{ ranks: 2, transport: 5 }, TypeError, 'options.transport'],
    [{ ranks: 2, threads: 0 }, RangeError, 'options.threads'],
    [{ ranks: 2, timeoutMs: 0 }, RangeError, 'options.timeoutMs'],
    [{ ranks: 2, timeout: 5 }, TypeError, 'options.timeout'],
  ];
  for (const [options, type, argument] of cases) {
    const error = (await t.throwsAsync(Ring.local(options as { ranks: number }), { instanceOf: type })) as Failure;
    t.is(error.argument, argument, JSON.stringify(options));
  }
});

test('the native ring object refuses garbage without crashing', async (t) => {
  const { addon } = loadAddon();
  const Handle = addon.LocalRingHandle as unknown as new (...args: unknown[]) => { sigmoidLoss: (...args: unknown[]) => unknown; dispose(): void };
  for (const args of [[], [null], ['local'], [{}], [{ ranks: 'two', timeoutMs: 1 }], [{ ranks: 2, timeoutMs: Infinity }]]) {
    t.throws(() => new Handle(...args), undefined, JSON.stringify(args));
  }
  const ring = new Handle({ ranks: 2, timeoutMs: 1000 });
  const x = m(1, 2);
  const garbage: unknown[][] = [
    [],
    [[x, x], [x, x]],
    [[x, x], [x, x], {}],
    [[x, x], [x, x], { logitScale: 1, logitBias: 0, threads: 1 }],
    [[x, 5], [x, x], { logitScale: 1, logitBias: 0, threads: 1 }, true],
    [[x, x], [x, x], { logitScale: 1, logitBias: 0, threads: 1, imageIds: [1, 2], textIds: [1, 2] }, true],
    [{ length: 2 }, [x, x], { logitScale: 1, logitBias: 0, threads: 1 }, true],
  ];
  for (const args of garbage) t.throws(() => ring.sigmoidLoss(...args), undefined, String(args.length));
  // The test seam refuses a rank outside the ring and an unknown mode.
  const seam = ring as unknown as { testFault: (...args: unknown[]) => void };
  for (const args of [[5], [0, 7], [0, 'later'], ['0']]) t.throws(() => seam.testFault(...args), undefined, JSON.stringify(args));
  const bound = ring.sigmoidLoss as (...args: unknown[]) => unknown;
  t.throws(() => bound.call({}, [x, x], [x, x], { logitScale: 1, logitBias: 0, threads: 1 }, true));
  ring.dispose();
});

test('Ring.mpi without MPI in the build says how to get it', async (t) => {
  const { addon } = loadAddon();
  if (addon.ringBuildInfo().mpi) {
    t.pass('this build has MPI (test/ring-mpi.test.ts runs it under mpirun)');
    return;
  }
  const error = (await t.throwsAsync(Ring.mpi())) as Failure;
  t.is(error.code, ERR_SIGLIP_NO_MPI);
  t.regex(error.message, /libopenmpi-dev/);
});

test('a CPU ring refuses the options of rings of GPUs', async (t) => {
  const ring = await Ring.local({ ranks: 2 });
  const two = [m(2, 3), m(1, 3)];
  for (const options of [{ precision: 'fp32' }, { gradients: 'device' }] as LocalRingLossOptions[]) {
    const error = (await t.throwsAsync(ring.sigmoidLoss(two, two, options), { instanceOf: TypeError })) as Failure;
    t.is(error.argument, `options.${Object.keys(options)[0]}`);
  }
  ring.dispose();
});

noGpuTest('a local ring of GPUs needs a GPU (ERR_SIGLIP_NO_CUDA naming options.device)', async (t) => {
  for (const device of ['cuda', 'cuda:1', ['cuda', 'cuda:0']] as const) {
    const error = (await t.throwsAsync(Ring.local({ ranks: 2, device: device as 'cuda', transport: 'nccl' }))) as Failure;
    t.is(error.code, 'ERR_SIGLIP_NO_CUDA', JSON.stringify(device));
    t.regex(error.argument ?? '', /^options\.device/);
  }
});

// Local rings of GPUs: every rank on GPU 0 (or on GPU r where the machine has them), host
// and device shards, both directions, against the single-device loss on the CPU: float32
// shards at FP32 meet the float32 tolerances, and device shards give the host shards' bits.
for (const p of [1, 2, 3, 4]) {
  for (const direction of directions) {
    gpuTest(`local ring of GPUs, P=${p} ${direction}: every rank equals the single-device result (host and device shards)`, async (t) => {
      const b = makeShardedBatch(3000 + p, p, 40, p % 2 === 1);
      const { images, texts, ids } = shardsOf(b);
      const ref = singleDevice(b, 2.1, -6.5);
      const device = cuda.devices.length >= p ? cuda.devices.slice(0, p).map((g) => g.device) : 'cuda';
      const ring = await Ring.local({ ranks: p, device: device as 'cuda' });
      const options = { logitScale: 2.1, logitBias: -6.5, direction, precision: 'fp32' as const, ...ids };
      try {
        const host = await ring.sigmoidLossWithGrad(images, texts, options);
        for (let r = 0; r < p; r++) {
          const e = rankErrors(b, ref, r, { loss: host.loss, logitScale: host.grad.logitScale, logitBias: host.grad.logitBias, image: host.grad.image[r]!, text: host.grad.text[r]! });
          t.true(withinTolerance(e), `host shards, rank ${r}: ${JSON.stringify(e)}`);
        }
        const onGpu = (shards: Matrix[]) => shards.map((s, r) => DeviceMatrix.fromHost(s.data, s.rows, s.cols, { device: Array.isArray(device) ? device[r]! : 'cuda' }));
        const x = onGpu(images);
        const y = onGpu(texts);
        try {
          const dev = await ring.sigmoidLossWithGrad(x, y, options);
          t.is(dev.loss, host.loss, 'the same bits from device shards');
          for (let r = 0; r < p; r++) {
            t.true(dev.grad.image[r] instanceof DeviceMatrix);
            t.deepEqual(dev.grad.image[r]!.download(), host.grad.image[r], `rank ${r}: the same ∂X bits`);
            dev.grad.image[r]!.dispose();
            dev.grad.text[r]!.dispose();
          }
        } finally {
          for (const d of [...x, ...y]) d.dispose();
        }
      } finally {
        ring.dispose();
      }
    });
  }
}

// NCCL as the addon loaded it, or undefined (the test then passes, saying why it did not run:
// a GPU machine without libnccl.so.2 is not a failure of this package).
function loadedNccl(t: ExecutionContext): { version: string } | undefined {
  const nccl = loadAddon().addon.ncclInfo?.();
  if (nccl?.available) return nccl;
  t.log(`skipped: NCCL cannot be loaded (${nccl?.reason ?? 'no ncclInfo'}); set SIGLIP_NCCL_LIBRARY`);
  t.pass();
  return undefined;
}

gpuTest('local ring of GPUs over NCCL: one rank per GPU equals the single-device result; two ranks on one GPU are refused', async (t) => {
  const nccl = loadedNccl(t);
  if (!nccl) return;
  const error = (await t.throwsAsync(Ring.local({ ranks: 2, device: ['cuda:0', 'cuda:0'], transport: 'nccl' }), { instanceOf: RangeError })) as Failure;
  t.is(error.argument, 'options.device');
  const p = Math.min(cuda.devices.length, 4);
  const b = makeShardedBatch(44, p, 24, true);
  const { images, texts, ids } = shardsOf(b);
  const ref = singleDevice(b);
  const ring = await Ring.local({ ranks: p, device: cuda.devices.slice(0, p).map((g) => g.device), transport: 'nccl' });
  try {
    for (const direction of directions) {
      const out = await ring.sigmoidLossWithGrad(images, texts, { ...ids, direction, precision: 'fp32' });
      for (let r = 0; r < p; r++) {
        const e = rankErrors(b, ref, r, { loss: out.loss, logitScale: out.grad.logitScale, logitBias: out.grad.logitBias, image: out.grad.image[r]!, text: out.grad.text[r]! });
        t.true(withinTolerance(e), `${direction} rank ${r}: ${JSON.stringify(e)}`);
      }
    }
  } finally {
    ring.dispose();
  }
});

gpuTest('local ring of GPUs: a rank that fails mid-ring makes the others reject, and the ring recovers', async (t) => {
  const b = makeShardedBatch(33, 3, 16, false);
  const { images, texts } = shardsOf(b);
  const ring = await Ring.local({ ranks: 3, device: 'cuda', timeoutMs: 10_000 });
  injectRingFaultForTests(ring, 1);
  const error = (await t.throwsAsync(ring.sigmoidLossWithGrad(images, texts))) as Failure;
  t.is(error.code, ERR_SIGLIP_RING_FAILED);
  t.is(error.rank, 1);
  const ok = await ring.sigmoidLossWithGrad(images, texts);
  t.true(Number.isFinite(ok.loss));
  ring.dispose();
});

noGpuTest('Ring.nccl and Ring.ncclUniqueId need a GPU (ERR_SIGLIP_NO_CUDA)', async (t) => {
  t.is((t.throws(() => Ring.ncclUniqueId()) as Failure).code, 'ERR_SIGLIP_NO_CUDA');
  const error = (await t.throwsAsync(Ring.nccl({ rank: 0, size: 1, id: new Uint8Array(128), device: 'cuda' }))) as Failure;
  t.is(error.code, 'ERR_SIGLIP_NO_CUDA');
  const bad = (await t.throwsAsync(Ring.nccl({ rank: 1, size: 1, id: new Uint8Array(128), device: 'cuda' }))) as Failure;
  t.is(bad.argument, 'options.rank');
});

gpuTest('Ring.nccl with one rank equals the single-device loss (host and device inputs)', async (t) => {
  const nccl = loadedNccl(t);
  if (!nccl) return;
  const b = makeShardedBatch(21, 1, 32, true);
  const { images, texts, ids } = shardsOf(b);
  const ref = singleDevice(b);
  const ring = await Ring.nccl({ rank: 0, size: 1, id: Ring.ncclUniqueId(), device: 'cuda' });
  try {
    const host = await ring.sigmoidLossWithGrad(images[0]!, texts[0]!, { imageIds: ids.imageIds![0], textIds: ids.textIds![0], precision: 'fp32' });
    const e = rankErrors(b, ref, 0, { loss: host.loss, logitScale: host.grad.logitScale, logitBias: host.grad.logitBias, image: host.grad.image, text: host.grad.text });
    t.true(withinTolerance(e), JSON.stringify(e));
    const x = DeviceMatrix.fromHost(images[0]!.data, images[0]!.rows, 32);
    const y = DeviceMatrix.fromHost(texts[0]!.data, texts[0]!.rows, 32);
    const dev = await ring.sigmoidLossWithGrad(x, y, { imageIds: ids.imageIds![0], textIds: ids.textIds![0], precision: 'fp32' });
    t.true(dev.grad.image instanceof DeviceMatrix);
    t.true(Math.abs(dev.loss - ref.loss) <= 1e-5 * ref.loss);
    for (const d of [x, y, dev.grad.image, dev.grad.text]) d.dispose();
  } finally {
    ring.dispose();
  }
  t.log(`cuda: ${cuda.devices.length} device(s), NCCL ${nccl.version}`);
});
