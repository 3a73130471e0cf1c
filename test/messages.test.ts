// Messages of odd inputs (issue 10, item 9): every error has a code and names the argument,
// even for values that lie about themselves.
import test from 'ava';

import { fromBFloat16, fromFloat16, Ring, toBFloat16, toFloat16 } from '../lib/index';

class LyingFloat32Array extends Float32Array {
  override get length(): number {
    return 1e9;
  }
}

class LyingUint16Array extends Uint16Array {
  override get length(): number {
    return 7;
  }
}

test('toBFloat16/toFloat16 read a subclass by its true length (a lying `length` is ignored)', (t) => {
  const values = new LyingFloat32Array(3);
  values.set([1, -2, 0.5]);
  t.deepEqual([...toBFloat16(values)], [0x3f80, 0xc000, 0x3f00]);
  t.deepEqual([...toFloat16(values)], [0x3c00, 0xc000, 0x3800]);
  const bits = new LyingUint16Array(2);
  bits.set([0x3f80, 0x4000]);
  t.deepEqual([...fromBFloat16(bits)], [1, 2]);
  t.is(fromFloat16(bits).length, 2);
});

test('fromFloat16 of a detached Uint16Array names the argument and says why', (t) => {
  const bits = new Uint16Array(4);
  structuredClone(bits.buffer, { transfer: [bits.buffer] });
  const error = t.throws(() => fromFloat16(bits), { instanceOf: TypeError, message: /^Expected a Uint16Array that is not detached .* for bits but received a detached Uint16Array$/ });
  t.is((error as Error & { code?: string }).code, 'ERR_INVALID_ARG_TYPE');
});

test('Ring.nccl with a Proxy of a Uint8Array as its id is a TypeError naming options.id', async (t) => {
  const id = new Proxy(new Uint8Array(128), {});
  const error = await t.throwsAsync(Ring.nccl({ rank: 0, size: 1, id, device: 'cuda:0' }), { instanceOf: TypeError, message: /for options\.id but received/ });
  t.like(error, { code: 'ERR_INVALID_ARG_TYPE', argument: 'options.id' });
});
