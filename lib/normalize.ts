/**
 * Row L2-normalisation with its gradient: the package uses embeddings as given (SPEC.md), and
 * SigLIP/CLIP train on unit-norm embeddings, so callers normalise first and chain the
 * gradient back through this.
 *
 * @packageDocumentation
 */
import { checkMatrix, type Matrix } from './matrix';
import { checkFloat32Array, invalidValue } from './validate';

/**
 * Rows with a norm at most this are divided by it instead (as `torch.nn.functional.normalize`
 * does with its eps), so an all-zero row gives zeros rather than NaN.
 */
export const NORMALIZE_EPSILON = 1e-12;

/** The result of {@link normalizeRows}: the normalised matrix and the backward pass. */
export interface NormalizedRows {
  /** y_i = x_i / max(‖x_i‖, 1e-12), a new Float32Array. */
  normalized: Matrix;
  /**
   * Maps ∂L/∂y (rows × cols) to ∂L/∂x: row by row (g − y·(y·g)) / ‖x‖ (or g / 1e-12 for a
   * row whose norm is at most 1e-12). Returns a new Float32Array.
   */
  backward(gradNormalized: Float32Array): Float32Array;
}

/**
 * Divides each row of `m` by its Euclidean norm: y_i = x_i / ‖x_i‖ (computed in float64,
 * stored as float32), and returns the backward pass of that map, for chaining the loss
 * gradient back to unnormalised embeddings. Pure TypeScript, O(rows·cols). `m` is not
 * modified; it must not change before `backward` is called (backward reads it).
 *
 * @throws TypeError / RangeError if `m` is not a valid {@link Matrix} (same rules as {@link matrix}),
 *   or if `backward` gets anything but a Float32Array of rows × cols values.
 *
 * @example
 * ```ts
 * const { normalized, backward } = normalizeRows(rawImage);
 * const { loss, grad } = sigmoidLossWithGradSync(normalized, text);
 * const gradRawImage = backward(grad.image);
 * ```
 */
export function normalizeRows(m: Matrix): NormalizedRows {
  const { data, rows, cols } = checkMatrix('m', m);
  const norms = new Float64Array(rows);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += data[base + c]! * data[base + c]!;
    const norm = Math.sqrt(sum);
    norms[r] = norm;
    const inv = 1 / Math.max(norm, NORMALIZE_EPSILON);
    for (let c = 0; c < cols; c++) out[base + c] = data[base + c]! * inv;
  }

  const backward = (gradNormalized: Float32Array): Float32Array => {
    const g = checkFloat32Array('gradNormalized', gradNormalized);
    if (g.length !== rows * cols) {
      throw invalidValue('gradNormalized', `a Float32Array of length ${rows * cols} (${rows} × ${cols})`, g);
    }
    const grad = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const norm = norms[r]!;
      if (norm <= NORMALIZE_EPSILON) {
        // y = x / eps here: a linear map with derivative I / eps.
        for (let c = 0; c < cols; c++) grad[base + c] = g[base + c]! / NORMALIZE_EPSILON;
        continue;
      }
      // y recomputed in float64 from x (not the rounded float32 y) for an accurate projection.
      let yDotG = 0;
      for (let c = 0; c < cols; c++) yDotG += (data[base + c]! / norm) * g[base + c]!;
      for (let c = 0; c < cols; c++) grad[base + c] = (g[base + c]! - (data[base + c]! / norm) * yDotG) / norm;
    }
    return grad;
  };

  return { normalized: { data: out, rows, cols }, backward };
}
