/**
 * The one input type: a row-major float32 matrix.
 *
 * @packageDocumentation
 */
import { constants as bufferConstants } from 'node:buffer';

import { Description, checkFloat32Array, checkPositiveInteger, invalidType, invalidValue } from './validate';

/**
 * A row-major float32 matrix: `rows × cols` values in `data`, element (r, c) at
 * `data[r * cols + c]`. Embeddings are one per row (`image` is N×D, `text` is M×D).
 * The package borrows `data`, it never copies or modifies it.
 */
export type Matrix = {
  /** rows × cols values, row after row. */
  data: Float32Array;
  /** Number of rows (embeddings), a positive integer. */
  rows: number;
  /** Number of columns (the embedding width D), a positive integer. */
  cols: number;
};

/**
 * A row-major bfloat16 matrix on the host: `rows × cols` bfloat16 bit patterns in `data`, as
 * {@link toBFloat16} makes them (the layout a `'bfloat16'` DeviceMatrix uploads). The CPU
 * takes it for the sigmoid loss with `precision: 'bf16'`; the gradients come back as float32.
 */
export type BFloat16Matrix = {
  /** rows × cols bfloat16 bit patterns, row after row. */
  data: Uint16Array;
  /** Number of rows (embeddings), a positive integer. */
  rows: number;
  /** Number of columns (the embedding width D), a positive integer. */
  cols: number;
};

/** The most bytes one typed array may hold in this Node.js (2^32 in Node 20, 2^53 − 1 later). */
const MAX_TYPED_ARRAY_BYTES = bufferConstants.MAX_LENGTH;

/**
 * Throws a RangeError naming `argument` unless a rows × cols float32 array fits in one typed array.
 *
 * @internal
 */
export function checkFitsTypedArray(argument: string, rows: number, cols: number): void {
  if (rows * cols * 4 > MAX_TYPED_ARRAY_BYTES) {
    throw invalidValue(
      argument,
      `at most ${MAX_TYPED_ARRAY_BYTES} bytes (rows × cols × 4, the largest typed array Node.js can hold)`,
      new Description(`a ${rows} × ${cols} matrix`),
    );
  }
}

interface MatrixNames {
  matrix: string;
  data: string;
  rows: string;
  cols: string;
}

/** data, rows, cols of a matrix whose data are `kind` (Uint16Array: bfloat16 bits, already known to be one). */
function checkParts(data: unknown, rows: unknown, cols: unknown, names: MatrixNames, kind = 'Float32Array'): Matrix {
  const r = checkPositiveInteger(names.rows, rows);
  const c = checkPositiveInteger(names.cols, cols);
  // Checked before the length comparison: rows·cols may be past 2^53, where it is not exact.
  checkFitsTypedArray(names.matrix, r, c);
  const array = kind === 'Float32Array' ? checkFloat32Array(names.data, data) : (data as Float32Array);
  if (array.length !== r * c) {
    throw invalidValue(names.data, `a ${kind} of length ${r * c} (rows × cols = ${r} × ${c})`, array);
  }
  return { data: array, rows: r, cols: c };
}

/**
 * Wraps `data` as a `rows × cols` row-major matrix, after checking that it is one.
 *
 * @param data - the values, row after row; a `Float32Array` (not a `Float64Array`, plain
 *   array or other typed array, and not detached). It is borrowed, not copied.
 * @param rows - number of rows, a positive integer (one embedding per row).
 * @param cols - number of columns (the embedding width D), a positive integer.
 * @returns `{ data, rows, cols }`.
 * @throws TypeError if `data` is not a Float32Array, is detached, or `rows`/`cols` are not numbers.
 * @throws RangeError if `rows`/`cols` are not positive integers, `data.length !== rows * cols`,
 *   or the matrix would exceed the largest typed array Node.js can hold.
 *
 * @example
 * ```ts
 * const image = matrix(new Float32Array([1, 0, 0, 1]), 2, 2); // two 2-d embeddings
 * ```
 */
export function matrix(data: Float32Array, rows: number, cols: number): Matrix {
  return checkParts(data, rows, cols, { matrix: 'rows × cols', data: 'data', rows: 'rows', cols: 'cols' });
}

/**
 * Checks that `value` is a {@link Matrix} or, when its data is a Uint16Array, a
 * {@link BFloat16Matrix} (whether bfloat16 is allowed is the caller's to check).
 *
 * @internal
 */
export function checkHostMatrix(argument: string, value: unknown): Matrix | BFloat16Matrix {
  const data = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)['data'] : undefined;
  return checkMatrix(argument, value, data instanceof Uint16Array && !ArrayBuffer.isView(value) ? 'Uint16Array' : 'Float32Array');
}

/**
 * Checks that `value` (an argument named `argument`) is a {@link Matrix} with the same rules
 * as {@link matrix}; errors name `argument.data`, `argument.rows`, ...
 *
 * @internal
 */
export function checkMatrix(argument: string, value: unknown, kind = 'Float32Array'): Matrix {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) {
    throw invalidType(argument, 'a Matrix { data: Float32Array, rows, cols } (see matrix())', value);
  }
  const { data, rows, cols } = value as Record<string, unknown>;
  const names = { matrix: argument, data: `${argument}.data`, rows: `${argument}.rows`, cols: `${argument}.cols` };
  return checkParts(data, rows, cols, names, kind);
}
