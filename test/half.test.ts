// The float32 ⇄ bfloat16 / float16 bit conversions (lib/half.ts): known bit patterns, round to
// nearest even at the ties, overflow to Infinity, NaN, signed zeros and float16 subnormals.
// Runs everywhere (no GPU needed).
import test from 'ava';

import { fromBFloat16, fromFloat16, toBFloat16, toFloat16 } from '../lib/index';

/** A float32 from its bit pattern. */
function f32(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0]!;
}

function bitsOf(values: Float32Array): number[] {
  return Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));
}

test('toBFloat16: exact values and known bit patterns', (t) => {
  // 65504 = 0x477fe000: the dropped half 0xe000 rounds up to 0x4780 (65536).
  const values = Float32Array.of(0, -0, 1, -2, 0.5, Math.PI, 65504, Infinity, -Infinity, f32(0x7f7f0000));
  const expected = [0x0000, 0x8000, 0x3f80, 0xc000, 0x3f00, 0x4049, 0x4780, 0x7f80, 0xff80, 0x7f7f];
  t.deepEqual(Array.from(toBFloat16(values)), expected);
});

test('toBFloat16 rounds to nearest, ties to even, and overflows to Infinity', (t) => {
  const cases: Array<[number, number]> = [
    [0x3f808000, 0x3f80], // 1 + 2^-8: a tie, the even neighbour 0x3f80 wins
    [0x3f818000, 0x3f82], // a tie above an odd mantissa: rounds up to even
    [0x3f808001, 0x3f81], // just above the tie: up
    [0x3f807fff, 0x3f80], // just below the tie: down
    [0xbf808001, 0xbf81], // negative values round by magnitude
    [0x7f7fffff, 0x7f80], // FLT_MAX rounds past the largest bfloat16: +Infinity
    [0x7f7f7fff, 0x7f7f], // still below the halfway point: the largest bfloat16
    [0x00000001, 0x0000], // the smallest float32 subnormal rounds to +0
    [0x00018000, 0x0002], // a subnormal tie rounds to even
  ];
  const out = toBFloat16(Float32Array.from(cases.map(([bits]) => f32(bits))));
  cases.forEach(([bits, want], i) => t.is(out[i], want, `0x${bits.toString(16)} → 0x${out[i]!.toString(16)}`));
});

test('toBFloat16 keeps NaN a (quiet) NaN with its sign', (t) => {
  const out = toBFloat16(Float32Array.from([f32(0x7fc00000), f32(0xffc00000), f32(0x7f800001), f32(0x7fffffff)]));
  t.is(out[0], 0x7fc0);
  t.is(out[1], 0xffc0);
  for (const h of out) t.true((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0, `0x${h.toString(16)} is a NaN`);
  t.true(Number.isNaN(fromBFloat16(out)[2]!)); // a signalling NaN whose payload sits in the low bits
});

test('fromBFloat16 is exact, and a round trip through it is the identity on bfloat16 values', (t) => {
  const bits = Uint16Array.of(0x0000, 0x8000, 0x3f80, 0xc000, 0x4049, 0x7f80, 0xff80, 0x0001, 0x7f7f);
  const values = fromBFloat16(bits);
  t.deepEqual(bitsOf(values), Array.from(bits, (h) => (h << 16) >>> 0));
  t.is(values[2], 1);
  t.is(values[5], Infinity);
  t.true(Object.is(values[1], -0));
  t.deepEqual(toBFloat16(values), bits);
  t.true(Number.isNaN(fromBFloat16(Uint16Array.of(0x7fc0))[0]!));
});

test('toFloat16: exact values and known bit patterns', (t) => {
  const values = Float32Array.of(0, -0, 1, -2, 0.5, 65504, 2 ** -14, 2 ** -24, -(2 ** -24), Infinity, -Infinity, 0.1, 1 / 3);
  const expected = [
    0x0000, 0x8000, 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0400, 0x0001, 0x8001, 0x7c00, 0xfc00, 0x2e66, 0x3555,
  ];
  t.deepEqual(Array.from(toFloat16(values)), expected);
});

test('toFloat16 rounds to nearest even, overflows at 65520 and flushes below 2^-25 to zero', (t) => {
  const cases: Array<[number, number]> = [
    [1 + 2 ** -11, 0x3c00], // a tie between 1 and 1 + 2^-10: even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // a tie above an odd mantissa: up to even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [65519, 0x7bff], // below the halfway point to 2^16: the largest float16
    [65520, 0x7c00], // the halfway point: ties to even, which is Infinity
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [2 ** -25, 0x0000], // half the smallest subnormal: a tie, rounds to even (zero)
    [1.5 * 2 ** -25, 0x0001], // above the tie: the smallest subnormal
    [2 ** -26, 0x0000],
    [-(2 ** -26), 0x8000], // keeps the sign of zero
    [3 * 2 ** -24, 0x0003], // subnormals are exact multiples of 2^-24
    [2.5 * 2 ** -24, 0x0002], // a subnormal tie: even
    [3.5 * 2 ** -24, 0x0004],
    [2 ** -14 - 2 ** -25, 0x0400], // the largest subnormal plus half a step: a tie, rounds up into the smallest normal
    [2 ** -15, 0x0200], // exact subnormal
    [f32(0x00000001), 0x0000], // a float32 subnormal is far below float16's range
  ];
  const out = toFloat16(Float32Array.from(cases.map(([v]) => v)));
  cases.forEach(([v, want], i) => t.is(out[i], want, `${v} → 0x${out[i]!.toString(16)}, want 0x${want.toString(16)}`));
});

test('toFloat16 keeps NaN a (quiet) NaN with its sign', (t) => {
  const out = toFloat16(Float32Array.from([Number.NaN, f32(0xffc00000), f32(0x7f800001)]));
  t.is(out[0], 0x7e00);
  t.is(out[1], 0xfe00);
  for (const h of out) t.true((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0, `0x${h.toString(16)} is a NaN`);
});

test('fromFloat16 is exact (subnormals included) and inverts toFloat16 on every float16 value', (t) => {
  const known = fromFloat16(Uint16Array.of(0x3c00, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x8000));
  t.deepEqual(Array.from(known), [1, 2 ** -24, -(2 ** -24), 1023 * 2 ** -24, 2 ** -14, 65504, Infinity, -Infinity, -0]);
  t.true(Object.is(known[8], -0));
  t.true(Number.isNaN(fromFloat16(Uint16Array.of(0x7e00))[0]!));

  // All 65536 patterns: every non-NaN one survives float16 → float32 → float16 unchanged.
  const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
  const back = toFloat16(fromFloat16(all));
  let mismatches = 0;
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN ? (back[h]! & 0x7c00) !== 0x7c00 || (back[h]! & 0x3ff) === 0 : back[h] !== h) mismatches++;
  }
  t.is(mismatches, 0);
});

test('the conversions check their argument types', (t) => {
  t.throws(() => toBFloat16([1, 2] as never), { instanceOf: TypeError, message: /for values\b/ });
  t.throws(() => toFloat16(new Float64Array(2) as never), { instanceOf: TypeError, message: /for values\b/ });
  t.throws(() => fromBFloat16(new Int16Array(2) as never), { instanceOf: TypeError, message: /Uint16Array.*for bits\b/ });
  t.throws(() => fromFloat16(new Float32Array(2) as never), { instanceOf: TypeError, message: /for bits\b/ });
});

test('the conversions respect a subarray view (byteOffset)', (t) => {
  const whole = Float32Array.of(9, 1, -2, 9);
  t.deepEqual(Array.from(toBFloat16(whole.subarray(1, 3))), [0x3f80, 0xc000]);
  t.deepEqual(Array.from(toFloat16(whole.subarray(1, 3))), [0x3c00, 0xc000]);
  const bits = Uint16Array.of(0, 0x3c00, 0x3f80, 0);
  t.deepEqual(Array.from(fromFloat16(bits.subarray(1, 2))), [1]);
  t.deepEqual(Array.from(fromBFloat16(bits.subarray(2, 3))), [1]);
});
