/**
 * The GPU tests' handling of results (test/cuda.test.ts, test/cuda-device.test.ts): inputs
 * rounded to a dtype and uploaded, DeviceMatrix gradients downloaded, results compared bit for bit.
 */
import { DeviceMatrix, fromBFloat16, fromFloat16, toBFloat16, toFloat16, type DType } from '../../lib/index';
import { type Problem } from './cases';

/** The bits the GPU gets for `data`, and the float32 values they stand for. */
export function rounded(data: Float32Array, dtype: DType): { upload: Float32Array | Uint16Array; values: Float32Array } {
  if (dtype === 'bfloat16') {
    const bits = toBFloat16(data);
    return { upload: bits, values: fromBFloat16(bits) };
  }
  if (dtype === 'float16') {
    const bits = toFloat16(data);
    return { upload: bits, values: fromFloat16(bits) };
  }
  return { upload: data, values: data };
}

/** The problem as the GPU sees it in `dtype` (inputs rounded), and those inputs uploaded. */
export function onDevice(p: Problem, dtype: DType): { host: Problem; x: DeviceMatrix; y: DeviceMatrix } {
  const x = rounded(p.image.data, dtype);
  const y = rounded(p.text.data, dtype);
  const host: Problem = {
    ...p,
    image: { data: x.values, rows: p.image.rows, cols: p.image.cols },
    text: { data: y.values, rows: p.text.rows, cols: p.text.cols },
  };
  return {
    host,
    x: DeviceMatrix.fromHost(x.upload, p.image.rows, p.image.cols, { dtype }),
    y: DeviceMatrix.fromHost(y.upload, p.text.rows, p.text.cols, { dtype }),
  };
}

export interface HostResult {
  loss: number;
  grad: { image: Float32Array; text: Float32Array; logitScale: number; logitBias?: number };
}

/** Downloads DeviceMatrix gradients (and disposes them). */
export function toHost(result: { loss: number; grad: { image: DeviceMatrix; text: DeviceMatrix; logitScale: number; logitBias?: number } }): HostResult {
  const image = result.grad.image.download() as Float32Array;
  const text = result.grad.text.download() as Float32Array;
  result.grad.image.dispose();
  result.grad.text.dispose();
  const grad: HostResult['grad'] = { image, text, logitScale: result.grad.logitScale };
  if (result.grad.logitBias !== undefined) grad.logitBias = result.grad.logitBias;
  return { loss: result.loss, grad };
}

export function bytes(a: Float32Array | Uint16Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function sameBits(a: HostResult, b: HostResult): boolean {
  return (
    Object.is(a.loss, b.loss) &&
    Object.is(a.grad.logitScale, b.grad.logitScale) &&
    Object.is(a.grad.logitBias, b.grad.logitBias) &&
    bytes(a.grad.image).equals(bytes(b.grad.image)) &&
    bytes(a.grad.text).equals(bytes(b.grad.text))
  );
}
