/**
 * Argument validation with one message form, as in the native core (csrc/core/errors.h):
 * "Expected <expected> for <argument> but received <received>". Wrong kinds of value throw
 * TypeError, right kinds with bad values throw RangeError; both carry Node's usual `code`
 * and the `argument` they are about.
 *
 * @internal
 * @packageDocumentation
 */
import { types } from 'node:util';

/** The `code` on TypeErrors the package throws for arguments of the wrong kind. */
export const ERR_INVALID_ARG_TYPE = 'ERR_INVALID_ARG_TYPE';
/** The `code` on RangeErrors the package throws for arguments with bad values. */
export const ERR_INVALID_ARG_VALUE = 'ERR_INVALID_ARG_VALUE';

/** An error of the package: a standard error class plus `code` and, for arguments, `argument`. */
export type SiglipError = Error & {
  /** `ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`, `ERR_SIGLIP_NO_CUDA`, `ERR_SIGLIP_OUT_OF_MEMORY`, ... */
  code: string;
  /** The argument the error is about (`image.data`, `options.threads`, ...), when there is one. */
  argument?: string;
};

function withCode<E extends Error>(error: E, code: string, argument?: string): E & SiglipError {
  const e = error as E & SiglipError;
  e.code = code;
  if (argument !== undefined) e.argument = argument;
  return e;
}

/** "Expected <expected> for <argument> but received <received>". */
export function message(argument: string, expected: string, received: string): string {
  return `Expected ${expected} for ${argument} but received ${received}`;
}

/** A TypeError for a value of the wrong kind. */
export function invalidType(argument: string, expected: string, value: unknown): TypeError & SiglipError {
  return withCode(new TypeError(message(argument, expected, describe(value))), ERR_INVALID_ARG_TYPE, argument);
}

/** A RangeError for a value of the right kind but a bad value; `received` is described if not a string. */
export function invalidValue(argument: string, expected: string, received: unknown, code: string = ERR_INVALID_ARG_VALUE): RangeError & SiglipError {
  return withCode(new RangeError(message(argument, expected, describe(received))), code, argument);
}

/** A plain Error with a package-specific code (for conditions that are not bad arguments). */
export function errorWithCode(text: string, code: string, argument?: string): Error & SiglipError {
  return withCode(new Error(text), code, argument);
}

/** Marks a string as already a description, so that {@link describe} passes it through. */
export class Description {
  constructor(readonly text: string) {}
}

/** The <received> part of a message: "undefined", "the number 1.5", "a Float64Array of length 4", ... */
export function describe(value: unknown): string {
  if (value instanceof Description) return value.text;
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      return `the number ${String(value)}`;
    case 'boolean':
      return `the boolean ${String(value)}`;
    case 'string':
      return `the string '${value.length > 40 ? `${value.slice(0, 40)}...` : value}'`;
    case 'bigint':
      return `the bigint ${String(value)}n`;
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    default:
      break;
  }
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor?.name ?? 'typed array';
    if (types.isDataView(value)) return `a ${name}`;
    if (isDetachedView(value)) return `a detached ${name}`;
    return `a ${name} of length ${lengthOf(value)}`;
  }
  if (Array.isArray(value)) return `an Array of length ${value.length}`;
  if (value instanceof ArrayBuffer) return 'an ArrayBuffer';
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name && name !== 'Object' ? `an instance of ${name}` : 'an object';
}

// %TypedArray%.prototype's own getters: a subclass (or an object with a typed array as its
// prototype) can override `length`, `buffer` or `byteOffset` and lie; these cannot.
const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
function intrinsicGetter<T>(name: string): (view: ArrayBufferView) => T {
  const get = Object.getOwnPropertyDescriptor(typedArrayPrototype, name)!.get!;
  return (view) => Reflect.apply(get, view, []) as T;
}
const lengthOf = intrinsicGetter<number>('length');
const bufferOf = intrinsicGetter<ArrayBufferLike>('buffer');
const byteOffsetOf = intrinsicGetter<number>('byteOffset');
const byteLengthOf = intrinsicGetter<number>('byteLength');

/**
 * A typed array's true memory, whatever its own properties say: its element count, buffer
 * and byte offset as the engine knows them.
 */
export function typedArrayMemory(view: ArrayBufferView): { buffer: ArrayBufferLike; byteOffset: number; length: number } {
  return { buffer: bufferOf(view), byteOffset: byteOffsetOf(view), length: lengthOf(view) };
}

/** A detached view: its buffer was transferred (postMessage, structuredClone) and it has no bytes left. */
export function isDetachedView(view: ArrayBufferView): boolean {
  if (byteLengthOf(view) !== 0) return false;
  const buffer = bufferOf(view) as ArrayBuffer & { detached?: boolean };
  if (typeof buffer.detached === 'boolean') return buffer.detached; // ES2024 (Node 22+)
  try {
    new Uint8Array(buffer); // throws TypeError on a detached buffer, and only then
    return false;
  } catch {
    return true;
  }
}

/** true for `{}`-style objects (prototype Object.prototype or null), false for arrays, class instances, null. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// util.types, not instanceof: arrays from another realm (vm contexts) count, a Proxy of one does not.
const TYPED_ARRAYS = {
  Float32Array: types.isFloat32Array,
  Int32Array: types.isInt32Array,
  Uint8Array: types.isUint8Array,
  Uint16Array: types.isUint16Array,
};
type TypedArrayKind = keyof typeof TYPED_ARRAYS;
type TypedArrayOf<K extends TypedArrayKind> = { Float32Array: Float32Array; Int32Array: Int32Array; Uint8Array: Uint8Array; Uint16Array: Uint16Array }[K];

/**
 * A typed array of `kind` that is not detached: `expected` describes it in messages,
 * `live` describes a detached one's expectation.
 */
export function checkTypedArray<K extends TypedArrayKind>(
  argument: string,
  value: unknown,
  kind: K,
  expected = `a ${kind}`,
  live = `a ${kind} that is not detached (its buffer was transferred)`,
): TypedArrayOf<K> {
  if (!TYPED_ARRAYS[kind](value)) throw invalidType(argument, expected, value);
  if (isDetachedView(value as ArrayBufferView)) throw invalidType(argument, live, value);
  return value as TypedArrayOf<K>;
}

/** A positive safe integer (1 ≤ value ≤ 2^53 − 1). */
export function checkPositiveInteger(argument: string, value: unknown): number {
  if (typeof value !== 'number') throw invalidType(argument, 'a positive integer', value);
  if (!Number.isSafeInteger(value) || value < 1) throw invalidValue(argument, 'a positive integer', value);
  return value;
}

/** An integer in [min, max]. */
export function checkIntegerInRange(argument: string, value: unknown, min: number, max: number): number {
  const expected = `an integer from ${min} to ${max}`;
  if (typeof value !== 'number') throw invalidType(argument, expected, value);
  if (!Number.isInteger(value) || value < min || value > max) throw invalidValue(argument, expected, value);
  return value;
}

/** A string option, one of `allowed` (`expected` says which in messages); `fallback` where it is undefined. */
export function checkChoice<T extends string>(argument: string, value: unknown, allowed: readonly T[], expected: string, fallback?: T): T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string') throw invalidType(argument, expected, value);
  if (!(allowed as readonly string[]).includes(value)) throw invalidValue(argument, expected, value);
  return value as T;
}

/** A Float32Array (not a Float64Array, Array or other typed array) that is not detached. */
export function checkFloat32Array(argument: string, value: unknown): Float32Array {
  return checkTypedArray(argument, value, 'Float32Array');
}
