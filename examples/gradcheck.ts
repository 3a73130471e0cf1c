// A finite-difference check of the hand-written backward pass: towers, normalizeRows' backward
// and the package's loss gradients chained together must agree with central differences of
// the loss. The example runs it before training (a few milliseconds); on its own:
//     npx tsx examples/gradcheck.ts
import { Rng } from './rng.js';
import { initTwoTowers, type LossKind, lossAndGradients, modelParameters } from './train.js';

export interface GradCheckResult {
  loss: LossKind;
  checked: number;
  /** The largest |analytic − numeric| / (|analytic| + |numeric| + 1e-3) over the checked entries. */
  worst: number;
}

/**
 * Compares analytic and numeric gradients of a small random model (8 pairs) for a few entries of
 * every parameter array, the temperature and (sigmoid) the bias. The loss is computed from
 * float32 embeddings, so agreement is to about 1e-3, not to float64 precision.
 */
export function checkGradients(loss: LossKind, seed = 7): GradCheckResult {
  const rng = new Rng(seed, 0x9c);
  const rows = 8;
  const [imageDim, textDim] = [6, 5];
  const model = initTwoTowers(loss, rng, imageDim, textDim, 7, 4);
  // Scalars away from their initial values, so the check covers a generic point.
  model.logits[0] = 1.3;
  model.logits[1] = loss === 'sigmoid' ? -2.5 : 0;
  const image = rng.gaussians(rows * imageDim);
  const text = rng.gaussians(rows * textDim);
  const { grads } = lossAndGradients(model, image, text, rows);
  const params = modelParameters(model);
  let worst = 0;
  let checked = 0;
  const h = 1e-3;
  for (let k = 0; k < params.length; k++) {
    const value = params[k]!.value;
    const entries = k === params.length - 1 ? (loss === 'sigmoid' ? [0, 1] : [0]) : [0, 1, 2].map(() => rng.int(value.length));
    for (const i of entries) {
      const saved = value[i]!;
      value[i] = saved + h;
      const upAt = value[i]!; // as stored: float32 arrays round saved ± h
      const up = lossAndGradients(model, image, text, rows).loss;
      value[i] = saved - h;
      const downAt = value[i]!;
      const down = lossAndGradients(model, image, text, rows).loss;
      value[i] = saved;
      const numeric = (up - down) / (upAt - downAt);
      const analytic = grads[k]![i]!;
      worst = Math.max(worst, Math.abs(analytic - numeric) / (Math.abs(analytic) + Math.abs(numeric) + 1e-3));
      checked++;
    }
  }
  return { loss, checked, worst };
}

if (require.main === module) {
  for (const loss of ['sigmoid', 'softmax'] as const) {
    const r = checkGradients(loss);
    console.log(`${loss}: ${r.checked} entries, worst relative difference ${r.worst.toExponential(2)}`);
  }
}
