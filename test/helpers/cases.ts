/** Random test problems: image/text matrices (unit rows), optional label ids, and their reference inputs. */
import type { Matrix } from '../../lib/index';
import { type LossInputs, gaussian, randomIds, randomUnitRows, rng } from './reference';

export interface Problem {
  image: Matrix;
  text: Matrix;
  imageIds?: Int32Array;
  textIds?: Int32Array;
}

export interface ProblemSpec {
  n: number;
  m: number;
  d: number;
  /** With label ids drawn from this many distinct values (duplicates when fewer than the rows). */
  distinctIds?: number;
  /** Every id appears on both sides (softmax needs a positive in every row and column). */
  coverIds?: boolean;
  seed?: number;
}

/**
 * Unit-norm rows; without ids, text row i is image row i plus noise (renormalised), so the
 * positives have large similarities and the loss is not saturated everywhere.
 */
export function makeProblem(spec: ProblemSpec): Problem {
  const { n, m, d } = spec;
  const random = rng(spec.seed ?? n * 1_000_003 + m * 1009 + d);
  const image = randomUnitRows(random, n, d);
  let text: Float32Array;
  if (spec.distinctIds === undefined && n === m) {
    text = new Float32Array(m * d);
    for (let j = 0; j < m; j++) {
      let sum = 0;
      const row = new Float64Array(d);
      for (let k = 0; k < d; k++) {
        row[k] = image[j * d + k]! + 0.7 * gaussian(random) / Math.sqrt(d);
        sum += row[k]! ** 2;
      }
      for (let k = 0; k < d; k++) text[j * d + k] = row[k]! / Math.sqrt(sum);
    }
  } else {
    text = randomUnitRows(random, m, d);
  }
  const problem: Problem = { image: { data: image, rows: n, cols: d }, text: { data: text, rows: m, cols: d } };
  if (spec.distinctIds !== undefined) {
    const k = spec.distinctIds;
    if (spec.coverIds) {
      // i mod k on both sides, shuffled: every id in [0, k) appears in both (needs n, m ≥ k).
      problem.imageIds = Int32Array.from({ length: n }, (_, i) => i % k);
      problem.textIds = Int32Array.from({ length: m }, (_, j) => j % k);
      shuffle(problem.imageIds, random);
      shuffle(problem.textIds, random);
    } else {
      problem.imageIds = randomIds(random, n, k);
      problem.textIds = randomIds(random, m, k);
    }
  }
  return problem;
}

function shuffle(a: Int32Array, random: () => number): void {
  for (let k = a.length - 1; k > 0; k--) {
    const r = Math.floor(random() * (k + 1));
    [a[k], a[r]] = [a[r]!, a[k]!];
  }
}

/** The reference's view of a problem. */
export function referenceInputs(p: Problem, logitScale: number, logitBias?: number): LossInputs {
  const inputs: LossInputs = {
    image: p.image.data,
    text: p.text.data,
    n: p.image.rows,
    m: p.text.rows,
    d: p.image.cols,
    logitScale,
  };
  if (logitBias !== undefined) inputs.logitBias = logitBias;
  if (p.imageIds) {
    inputs.imageIds = p.imageIds;
    inputs.textIds = p.textIds!;
  }
  return inputs;
}

/** The ids part of an options object (empty without ids). */
export function idOptions(p: Problem): { imageIds?: Int32Array; textIds?: Int32Array } {
  return p.imageIds ? { imageIds: p.imageIds, textIds: p.textIds! } : {};
}

/** "N×M×D[, ids]" for test titles. */
export function describeProblem(spec: ProblemSpec): string {
  const ids = spec.distinctIds === undefined ? '' : `, ids from ${spec.distinctIds} values`;
  return `N=${spec.n} M=${spec.m} D=${spec.d}${ids}`;
}
