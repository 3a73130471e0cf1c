// The limits are defined once, in csrc/core/limits.h: the addon exports them (`limits`), lib/
// reads them from there, and the public constants that name three of them agree.
import test from 'ava';

import { DEFAULT_RING_TIMEOUT_MS, MAX_RING_RANKS, MAX_THREADS, Ring, sigmoidLossSync, matrix } from '../lib/index';
import { limits } from '../lib/limits';
import { loadAddon } from '../lib/loader';

test('the public constants are the addon’s limits (csrc/core/limits.h)', (t) => {
  const native = loadAddon().addon.limits;
  t.true(Object.isFrozen(native));
  t.is(limits(), native);
  t.is(MAX_THREADS, native.maxThreads);
  t.is(MAX_RING_RANKS, native.maxRingRanks);
  t.is(DEFAULT_RING_TIMEOUT_MS, native.defaultRingTimeoutMs);
  t.deepEqual(Object.keys(native).sort(), [
    'defaultRingTimeoutMs',
    'maxAbsLogitScale',
    'maxAllGatherBytes',
    'maxRingRanks',
    'maxRingTimeoutMs',
    'maxThreads',
  ]);
});

test('plain calls and ring calls refuse |logitScale| beyond the one bound, with one message', async (t) => {
  const { maxAbsLogitScale } = limits();
  const x = matrix(new Float32Array([0.6, 0.8, 1, 0]), 2, 2);
  const plain = t.throws(() => sigmoidLossSync(x, x, { logitScale: maxAbsLogitScale + 1 }), { instanceOf: RangeError });
  const ring = await Ring.local({ ranks: 2, threads: 1 });
  const half = matrix(new Float32Array([0.6, 0.8]), 1, 2);
  const viaRing = await t.throwsAsync(ring.sigmoidLoss([half, half], [half, half], { logitScale: -maxAbsLogitScale - 1 }), { instanceOf: RangeError });
  ring.dispose();
  const expected = `a finite number in [-${maxAbsLogitScale}, ${maxAbsLogitScale}]`;
  t.true(plain?.message.includes(expected), plain?.message);
  t.true(viaRing?.message.includes(expected), viaRing?.message);
  t.notThrows(() => sigmoidLossSync(x, x, { logitScale: maxAbsLogitScale }));
});
