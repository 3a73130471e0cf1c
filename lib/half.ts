/**
 * Conversions between float32 and the raw bits of the 16-bit formats the CUDA backend takes
 * (bfloat16 and IEEE float16), as `Uint16Array`s: JavaScript has no 16-bit float array in
 * Node.js 20. Float32 → 16 bits rounds to nearest, ties to even (as PyTorch's `.to()` and
 * CUDA's `__float2bfloat16` / `__float2half` do); 16 bits → float32 is exact.
 *
 * @packageDocumentation
 */
import { checkFloat32Array, checkTypedArray, typedArrayMemory } from './validate';

// The arrays' own memory (typedArrayMemory), never their possibly overridden properties: a
// subclass whose `length` lies must not turn into a bare "Invalid typed array length".
function checkUint16Array(argument: string, value: unknown): Uint16Array {
  const bits = checkTypedArray(argument, value, 'Uint16Array', 'a Uint16Array of 16-bit float bits');
  const { buffer, byteOffset, length } = typedArrayMemory(bits);
  return new Uint16Array(buffer, byteOffset, length);
}

/** The bits of a Float32Array (no copy). */
function bitsOf(values: Float32Array): Uint32Array {
  const { buffer, byteOffset, length } = typedArrayMemory(values);
  return new Uint32Array(buffer, byteOffset, length);
}

/**
 * Rounds each float32 to bfloat16 (8 exponent bits, 7 mantissa bits: float32's range with
 * about 3 significant decimal digits), round to nearest, ties to even. Values beyond the
 * largest bfloat16 (≈ 3.39e38) become ±Infinity; NaN stays NaN (quiet, sign kept);
 * subnormals round like any other value.
 *
 * @param values - float32 values.
 * @returns a new Uint16Array of the same length holding bfloat16 bit patterns.
 * @throws TypeError if `values` is not a Float32Array (or is detached).
 *
 * @example
 * ```ts
 * toBFloat16(new Float32Array([1, -2, Math.PI])); // Uint16Array [0x3f80, 0xc000, 0x4049]
 * ```
 */
export function toBFloat16(values: Float32Array): Uint16Array {
  const bits = bitsOf(checkFloat32Array('values', values));
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x0040; // NaN: keep sign and payload top bits, force quiet
    } else {
      // Adding 0x7fff plus the lowest kept bit rounds to nearest even; a carry out of the
      // mantissa correctly bumps the exponent (up to Infinity).
      out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
  return out;
}

/**
 * Widens bfloat16 bit patterns to float32 (exact: bfloat16 is the top half of a float32).
 *
 * @param bits - bfloat16 bit patterns.
 * @returns a new Float32Array of the same length.
 * @throws TypeError if `bits` is not a Uint16Array.
 *
 * @example
 * ```ts
 * fromBFloat16(Uint16Array.of(0x3f80, 0x7f80)); // Float32Array [1, Infinity]
 * ```
 */
export function fromBFloat16(bits: Uint16Array): Float32Array {
  const input = checkUint16Array('bits', bits);
  const out = new Float32Array(input.length);
  const outBits = bitsOf(out);
  for (let i = 0; i < input.length; i++) outBits[i] = input[i]! << 16;
  return out;
}

/**
 * Rounds each float32 to IEEE 754 binary16 (5 exponent bits, 10 mantissa bits; largest
 * finite 65504, smallest subnormal 2^-24 ≈ 5.96e-8), round to nearest, ties to even.
 * Magnitudes of 65520 and above become ±Infinity; those below 2^-25 become ±0; in between
 * the smallest normal (2^-14) and zero results are subnormal. NaN stays NaN (quiet, sign kept).
 *
 * @param values - float32 values.
 * @returns a new Uint16Array of the same length holding float16 bit patterns.
 * @throws TypeError if `values` is not a Float32Array (or is detached).
 *
 * @example
 * ```ts
 * toFloat16(new Float32Array([1, 65504, 1e5, 2 ** -24])); // Uint16Array [0x3c00, 0x7bff, 0x7c00, 0x0001]
 * ```
 */
export function toFloat16(values: Float32Array): Uint16Array {
  const bits = bitsOf(checkFloat32Array('values', values));
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = float32BitsToFloat16(bits[i]!);
  return out;
}

function float32BitsToFloat16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) {
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13); // ±Inf, quiet NaN
  }
  if (exponent > 142) return sign | 0x7c00; // ≥ 2^16: beyond any rounding to 65504
  if (exponent >= 113) {
    // Normal float16: rebias the exponent (127 → 15), keep 10 mantissa bits, round the 13 dropped.
    let h = ((exponent - 112) << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // a carry may reach Infinity (0x7c00)
    return sign | h;
  }
  if (exponent < 102) return sign; // below 2^-25: rounds to zero
  // Subnormal float16: the value in units of 2^-24 is (1.mantissa) · 2^(exponent − 103).
  const full = mantissa | 0x800000;
  const shift = 126 - exponent; // 14 .. 24
  let h = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) === 1)) h++; // may carry into the smallest normal
  return sign | h;
}

/**
 * Widens float16 bit patterns to float32 (exact, subnormals included).
 *
 * @param bits - float16 bit patterns.
 * @returns a new Float32Array of the same length.
 * @throws TypeError if `bits` is not a Uint16Array.
 *
 * @example
 * ```ts
 * fromFloat16(Uint16Array.of(0x3c00, 0x0001)); // Float32Array [1, 5.960464477539063e-8]
 * ```
 */
export function fromFloat16(bits: Uint16Array): Float32Array {
  const input = checkUint16Array('bits', bits);
  const out = new Float32Array(input.length);
  const outBits = bitsOf(out);
  for (let i = 0; i < input.length; i++) {
    const h = input[i]!;
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) {
      const magnitude = mantissa * 2 ** -24; // zero or subnormal: exact in float32
      out[i] = sign !== 0 ? -magnitude : magnitude;
    } else if (exponent === 0x1f) {
      outBits[i] = (sign | 0x7f800000 | (mantissa << 13)) >>> 0; // ±Inf, NaN with its payload
    } else {
      outBits[i] = (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
    }
  }
  return out;
}
