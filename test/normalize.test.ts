// normalizeRows: unit rows, and a backward pass that matches finite differences.
import test from 'ava';

import { normalizeRows } from '../lib/index';
import { gaussian, relativeError, rng } from './helpers/reference';

function randomMatrix(seed: number, rows: number, cols: number): Float32Array {
  const random = rng(seed);
  return Float32Array.from({ length: rows * cols }, () => 3 * gaussian(random));
}

test('normalizeRows gives unit rows and leaves its input alone', (t) => {
  const data = randomMatrix(1, 5, 7);
  const copy = data.slice();
  const { normalized } = normalizeRows({ data, rows: 5, cols: 7 });
  t.deepEqual(data, copy);
  t.is(normalized.rows, 5);
  t.is(normalized.cols, 7);
  for (let r = 0; r < 5; r++) {
    let sum = 0;
    for (let c = 0; c < 7; c++) sum += normalized.data[r * 7 + c]! ** 2;
    t.true(Math.abs(Math.sqrt(sum) - 1) < 1e-6);
  }
});

test('normalizeRows backward is (g − y·(y·g)) / ‖x‖ (checked by float64 central differences)', (t) => {
  const rows = 3;
  const cols = 6;
  const data = randomMatrix(2, rows, cols);
  const g = randomMatrix(3, rows, cols);
  const { backward } = normalizeRows({ data, rows, cols });
  const analytic = backward(g);
  // f(x) = Σ g ⊙ normalize(x), differentiated numerically in float64.
  const f = (x: Float64Array): number => {
    let total = 0;
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += x[r * cols + c]! ** 2;
      const norm = Math.sqrt(sum);
      for (let c = 0; c < cols; c++) total += (g[r * cols + c]! * x[r * cols + c]!) / norm;
    }
    return total;
  };
  const x = Float64Array.from(data);
  const numeric = new Float64Array(rows * cols);
  const h = 1e-6;
  for (let k = 0; k < x.length; k++) {
    const v = x[k]!;
    x[k] = v + h;
    const up = f(x);
    x[k] = v - h;
    const down = f(x);
    x[k] = v;
    numeric[k] = (up - down) / (2 * h);
  }
  t.true(relativeError(analytic, numeric) < 1e-6, String(relativeError(analytic, numeric)));
});

test('normalizeRows maps an all-zero row to zeros, not NaN', (t) => {
  const { normalized, backward } = normalizeRows({ data: new Float32Array([0, 0, 3, 4]), rows: 2, cols: 2 });
  t.deepEqual(normalized.data, new Float32Array([0, 0, 0.6, 0.8]));
  t.true(backward(new Float32Array([0, 0, 1, 0])).every(Number.isFinite));
});
