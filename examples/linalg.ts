// Dense-layer arithmetic for the towers. The matrix products go through the package's own
// GEMM (`gemmABt`, C = A·Bᵀ, the kernel the fused loss runs on): in plain TypeScript loops
// they run at about 1 GFLOP/s, through gemmABt at 40+, which is what lets the default
// experiment (about 80 training runs) finish in minutes on two cores.
import { gemmABt } from '../lib/index.js';

/** Worker threads for the tower GEMMs: the matrices are small, one thread wastes least. */
const GEMM_THREADS = 1;

/** C = A·Bᵀ with A m×k and B n×k, row-major (a new m×n array). */
export function matmulABt(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float32Array {
  return gemmABt(a, b, m, n, k, GEMM_THREADS);
}

/** The transpose of a rows×cols row-major matrix (a new cols×rows array). */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) t[c * rows + r] = a[base + c]!;
  }
  return t;
}

/** A fully connected layer y = x·Wᵀ + b, W stored out×in (as torch.nn.Linear stores it). */
export interface Dense {
  inputs: number;
  outputs: number;
  weight: Float32Array; // outputs × inputs
  bias: Float32Array; // outputs
}

/** Gradients of one {@link Dense} layer, the same shapes as its parameters. */
export interface DenseGrad {
  weight: Float32Array;
  bias: Float32Array;
}

/** y = x·Wᵀ + b for a batch of `rows` inputs. */
export function denseForward(layer: Dense, x: Float32Array, rows: number): Float32Array {
  const y = matmulABt(x, layer.weight, rows, layer.outputs, layer.inputs);
  const out = layer.outputs;
  for (let r = 0; r < rows; r++) {
    const base = r * out;
    for (let c = 0; c < out; c++) y[base + c]! += layer.bias[c]!;
  }
  return y;
}

/**
 * Backward of {@link denseForward}: given x and ∂L/∂y, returns ∂L/∂W = (∂L/∂y)ᵀ·x,
 * ∂L/∂b = column sums of ∂L/∂y and (when `needInput`) ∂L/∂x = (∂L/∂y)·W.
 */
export function denseBackward(
  layer: Dense,
  x: Float32Array,
  gradY: Float32Array,
  rows: number,
  needInput: boolean,
): { grad: DenseGrad; gradX: Float32Array | null } {
  const { inputs, outputs } = layer;
  // Both products in the A·Bᵀ form gemmABt computes: (∂y)ᵀ·x = (∂yᵀ)·(xᵀ)ᵀ, ∂y·W = ∂y·(Wᵀ)ᵀ.
  const weight = matmulABt(transpose(gradY, rows, outputs), transpose(x, rows, inputs), outputs, inputs, rows);
  const bias = new Float32Array(outputs);
  for (let r = 0; r < rows; r++) {
    const base = r * outputs;
    for (let c = 0; c < outputs; c++) bias[c]! += gradY[base + c]!;
  }
  const gradX = needInput ? matmulABt(gradY, transpose(layer.weight, outputs, inputs), rows, inputs, outputs) : null;
  return { grad: { weight, bias }, gradX };
}
