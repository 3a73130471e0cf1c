/**
 * Matrices resident on a GPU: upload embeddings once, then use them in any number of loss
 * calls without copying them again (needs the CUDA build and a GPU).
 *
 * @packageDocumentation
 */
import { type CudaDevice, checkCudaDevice } from './cuda';
import { fromBFloat16, fromFloat16, toBFloat16, toFloat16 } from './half';
import type { NativeCudaAddon, NativeDeviceMatrix } from './native';
import { checkOptionKeys } from './options';
import { checkChoice, checkPositiveInteger, errorWithCode, invalidType, invalidValue, isDetachedView, type SiglipError } from './validate';
import { types } from 'node:util';

/** Element types a {@link DeviceMatrix} can hold. Gradients are always float32. */
export type DType = 'float32' | 'bfloat16' | 'float16';

/** `code` of the error thrown when a disposed {@link DeviceMatrix} is used. */
export const ERR_SIGLIP_DISPOSED = 'ERR_SIGLIP_DISPOSED';

/** Options of {@link DeviceMatrix.fromHost} and {@link DeviceMatrix.zeros}. */
export interface DeviceMatrixOptions {
  /**
   * The element type on the GPU. Default `'float32'` for Float32Array data; required for
   * Uint16Array data (raw `'bfloat16'` or `'float16'` bits). Float32Array data with a 16-bit
   * dtype is rounded on the host (round to nearest even, see {@link toBFloat16}) before upload.
   */
  dtype?: DType;
  /** The GPU: `'cuda'` (GPU 0, the default) or `'cuda:N'`. */
  device?: CudaDevice;
}

const DTYPE_EXPECTED = "'float32', 'bfloat16' or 'float16'";

// Frees the GPU memory of a DeviceMatrix that was garbage-collected without dispose(). The
// native handle's own destructor is the last safety net; this one runs sooner.
const finalizer = new FinalizationRegistry<NativeDeviceMatrix>((native) => native.dispose());

let nativeOf: (matrix: DeviceMatrix) => NativeDeviceMatrix;
let wrap: (native: NativeDeviceMatrix) => DeviceMatrix;

/**
 * A row-major matrix in GPU memory (`rows × cols` of {@link DType}), made by
 * {@link DeviceMatrix.fromHost} or {@link DeviceMatrix.zeros}, or returned as a gradient by a
 * loss call with `gradients: 'device'` (the default for DeviceMatrix inputs). Pass it as
 * `image` or `text` to any loss function: the call runs on its GPU and copies nothing from
 * the host.
 *
 * Call {@link DeviceMatrix.dispose} when done: GPU memory is not seen by the JavaScript
 * garbage collector, which may take long to collect a forgotten matrix (a finalizer frees it
 * then, as a safety net). A loss call in flight keeps the memory it reads alive, so
 * disposing an input while its Promise is pending is safe.
 *
 * @example
 * ```ts
 * const x = DeviceMatrix.fromHost(imageEmbeddings, n, d, { dtype: 'bfloat16' });
 * const y = DeviceMatrix.fromHost(textEmbeddings, n, d, { dtype: 'bfloat16' });
 * const { loss, grad } = await sigmoidLossWithGrad(x, y); // grad.image: a float32 DeviceMatrix
 * const dx = grad.image.download();
 * for (const m of [x, y, grad.image, grad.text]) m.dispose();
 * ```
 */
export class DeviceMatrix {
  #native: NativeDeviceMatrix;

  static {
    nativeOf = (matrix) => matrix.#native;
    wrap = (native) => new DeviceMatrix(native);
  }

  private constructor(native: NativeDeviceMatrix) {
    this.#native = native;
    finalizer.register(this, native, this);
  }

  /**
   * Uploads `data` (`rows × cols` values, row after row) to a GPU, once.
   *
   * @param data - Float32Array values, or Uint16Array raw bits of the 16-bit `dtype`. Copied;
   *   it may be changed or reused as soon as this returns.
   * @param rows - number of rows (embeddings), a positive integer.
   * @param cols - number of columns (the embedding width D), a positive integer.
   * @param options - `dtype` (default `'float32'` for Float32Array data) and `device`
   *   (default `'cuda'`, i.e. `'cuda:0'`).
   * @returns a new DeviceMatrix; dispose() it when done.
   * @throws TypeError for a wrong kind of data (not a Float32Array/Uint16Array, a Uint16Array
   *   without a 16-bit dtype) or options; RangeError for sizes that do not match, an unknown
   *   dtype or a device ordinal this machine lacks; Error with code `ERR_SIGLIP_NO_CUDA` when
   *   no GPU can be used, `ERR_SIGLIP_OUT_OF_MEMORY` when the GPU has no room.
   *
   * @example
   * ```ts
   * const x = DeviceMatrix.fromHost(new Float32Array([1, 0, 0, 1]), 2, 2, { device: 'cuda:0' });
   * ```
   */
  static fromHost(data: Float32Array | Uint16Array, rows: number, cols: number, options?: DeviceMatrixOptions): DeviceMatrix {
    const r = checkPositiveInteger('rows', rows);
    const c = checkPositiveInteger('cols', cols);
    const isFloat32 = types.isFloat32Array(data);
    if (!isFloat32 && !types.isUint16Array(data)) {
      throw invalidType('data', 'a Float32Array, or a Uint16Array of bfloat16/float16 bits', data);
    }
    if (isDetachedView(data)) throw invalidType('data', 'a typed array that is not detached', data);
    const { dtype, ordinal, addon } = readOptions(options, isFloat32 ? 'float32' : undefined);
    if (!isFloat32 && dtype === 'float32') {
      throw invalidType(
        'data',
        "a Float32Array for dtype 'float32' (a Uint16Array holds 16-bit bits: give dtype 'bfloat16' or 'float16')",
        data,
      );
    }
    if (data.length !== r * c) {
      throw invalidValue('data', `a typed array of length ${r * c} (rows × cols = ${r} × ${c})`, data);
    }
    let upload: Float32Array | Uint16Array = data;
    if (isFloat32 && dtype === 'bfloat16') upload = toBFloat16(data);
    if (isFloat32 && dtype === 'float16') upload = toFloat16(data);
    return wrap(new addon.DeviceMatrix(upload, r, c, dtype, ordinal));
  }

  /**
   * Allocates a `rows × cols` matrix of zeros on a GPU.
   *
   * @param rows - number of rows, a positive integer.
   * @param cols - number of columns, a positive integer.
   * @param options - `dtype` (default `'float32'`) and `device` (default `'cuda'`).
   * @returns a new DeviceMatrix; dispose() it when done.
   * @throws as {@link DeviceMatrix.fromHost}; in particular `ERR_SIGLIP_OUT_OF_MEMORY` when
   *   the GPU has no room, RangeError when rows × cols × element size exceeds 2^63 bytes.
   *
   * @example
   * ```ts
   * const z = DeviceMatrix.zeros(1024, 768, { dtype: 'bfloat16' });
   * ```
   */
  static zeros(rows: number, cols: number, options?: DeviceMatrixOptions): DeviceMatrix {
    const r = checkPositiveInteger('rows', rows);
    const c = checkPositiveInteger('cols', cols);
    const { dtype, ordinal, addon } = readOptions(options, 'float32');
    return wrap(new addon.DeviceMatrix(null, r, c, dtype, ordinal));
  }

  /** Number of rows. */
  get rows(): number {
    return this.#native.rows;
  }

  /** Number of columns. */
  get cols(): number {
    return this.#native.cols;
  }

  /** The element type on the GPU. */
  get dtype(): DType {
    return this.#native.dtype;
  }

  /** The GPU it lives on, as `'cuda:N'`. */
  get device(): `cuda:${number}` {
    return `cuda:${this.#native.device}`;
  }

  /** GPU memory it holds, in bytes (0 once disposed). */
  get bytes(): number {
    return this.#native.bytes;
  }

  /** True once {@link DeviceMatrix.dispose} was called. */
  get disposed(): boolean {
    return this.#native.disposed;
  }

  /**
   * Copies the matrix to the host: a Float32Array for float32, a Uint16Array of raw bits for
   * bfloat16/float16 (see {@link fromBFloat16} and {@link fromFloat16}, or use
   * {@link DeviceMatrix.toFloat32Array}).
   *
   * @returns a new typed array of `rows × cols` values, row after row.
   * @throws Error with code `ERR_SIGLIP_DISPOSED` after dispose(); `ERR_SIGLIP_OUT_OF_MEMORY`
   *   if the host array cannot be allocated.
   *
   * @example
   * ```ts
   * const values = grad.image.download() as Float32Array;
   * ```
   */
  download(): Float32Array | Uint16Array {
    checkLive(this, 'download()');
    return this.#native.download();
  }

  /**
   * Copies the matrix to the host as float32, widening 16-bit values exactly.
   *
   * @returns a new Float32Array of `rows × cols` values.
   * @throws as {@link DeviceMatrix.download}.
   *
   * @example
   * ```ts
   * const values = x.toFloat32Array();
   * ```
   */
  toFloat32Array(): Float32Array {
    const values = this.download();
    if (values instanceof Float32Array) return values;
    return this.dtype === 'bfloat16' ? fromBFloat16(values) : fromFloat16(values);
  }

  /**
   * Frees the GPU memory now (after any loss call still reading it settles). Idempotent;
   * the matrix cannot be used afterwards (its shape stays readable).
   *
   * @example
   * ```ts
   * x.dispose();
   * ```
   */
  dispose(): void {
    this.#native.dispose();
    finalizer.unregister(this);
  }

  /** `DeviceMatrix(rows×cols dtype on cuda:N)`, or `(disposed)`. */
  toString(): string {
    const state = this.disposed ? ', disposed' : '';
    return `DeviceMatrix(${this.rows}×${this.cols} ${this.dtype} on ${this.device}${state})`;
  }
}

interface ResolvedOptions {
  dtype: DType;
  ordinal: number;
  addon: NativeCudaAddon;
}

function readOptions(options: unknown, defaultDType: DType | undefined): ResolvedOptions {
  const o = checkOptionKeys(options, ['dtype', 'device']);
  let dtype = o['dtype'];
  if (dtype === undefined && defaultDType === undefined) {
    throw invalidType('options.dtype', "'bfloat16' or 'float16' (Uint16Array data holds the bits of either)", undefined);
  }
  dtype = checkChoice('options.dtype', dtype, ['float32', 'bfloat16', 'float16'], DTYPE_EXPECTED, defaultDType);
  const advice = 'A DeviceMatrix needs the CUDA build of siglip-kernels and a GPU.';
  const expected = "'cuda' or 'cuda:N' (a DeviceMatrix lives on a GPU)";
  return { dtype: dtype as DType, ...checkCudaDevice('options.device', o['device'] ?? 'cuda', expected, advice) };
}

function checkLive(matrix: DeviceMatrix, argument: string): void {
  if (matrix.disposed) throw disposedError(argument);
}

function disposedError(argument: string): Error & SiglipError {
  return errorWithCode(
    `Expected a live DeviceMatrix for ${argument} but received one that was disposed ` +
      '(dispose() freed its GPU memory; it cannot be used after)',
    ERR_SIGLIP_DISPOSED,
    argument,
  );
}

/**
 * The native handle of a live DeviceMatrix.
 *
 * @throws Error with code ERR_SIGLIP_DISPOSED, naming `argument`, once disposed.
 * @internal
 */
export function liveNative(matrix: DeviceMatrix, argument: string): NativeDeviceMatrix {
  if (matrix.disposed) throw disposedError(argument);
  return nativeOf(matrix);
}

/**
 * A gradient the addon returned: a Float32Array as it is, a native handle (a gradient left
 * on the device) wrapped as a DeviceMatrix.
 *
 * @internal
 */
export function wrapGradient(value: Float32Array | NativeDeviceMatrix): Float32Array | DeviceMatrix {
  return value instanceof Float32Array ? value : wrap(value);
}
