// The two towers (one per modality) and the optimiser. A tower is a small MLP,
// input → Dense → ReLU → Dense → embedding; the embedding is L2-normalised outside it (with
// the package's normalizeRows, whose backward chains the loss gradient back to the tower).
import { type Dense, type DenseGrad, denseBackward, denseForward } from './linalg.js';
import { Rng } from './rng.js';

/** What a forward pass keeps for the backward pass. */
export interface TowerActivations {
  rows: number;
  input: Float32Array;
  hidden: Float32Array; // after the ReLU
  output: Float32Array; // the unnormalised embeddings, rows × embedDim
}

export class Tower {
  readonly first: Dense;
  readonly second: Dense;

  constructor(rng: Rng, inputs: number, hidden: number, readonly embedDim: number) {
    // He initialisation for the ReLU layer, LeCun for the linear output layer.
    this.first = { inputs, outputs: hidden, weight: rng.gaussians(hidden * inputs, Math.sqrt(2 / inputs)), bias: new Float32Array(hidden) };
    this.second = { inputs: hidden, outputs: embedDim, weight: rng.gaussians(embedDim * hidden, Math.sqrt(1 / hidden)), bias: new Float32Array(embedDim) };
  }

  forward(input: Float32Array, rows: number): TowerActivations {
    const hidden = denseForward(this.first, input, rows);
    for (let i = 0; i < hidden.length; i++) if (hidden[i]! < 0) hidden[i] = 0;
    const output = denseForward(this.second, hidden, rows);
    return { rows, input, hidden, output };
  }

  /** Gradients of the parameters, in {@link Tower.parameters} order, from ∂L/∂output. */
  backward(act: TowerActivations, gradOutput: Float32Array): Float32Array[] {
    const second = denseBackward(this.second, act.hidden, gradOutput, act.rows, true);
    const gradHidden = second.gradX!;
    for (let i = 0; i < gradHidden.length; i++) if (act.hidden[i]! <= 0) gradHidden[i] = 0;
    const first = denseBackward(this.first, act.input, gradHidden, act.rows, false);
    return flatten(first.grad, second.grad);
  }

  /** The parameter arrays (updated in place by the optimiser): weights decay, biases do not. */
  parameters(): { value: Float32Array; decay: boolean }[] {
    return [
      { value: this.first.weight, decay: true },
      { value: this.first.bias, decay: false },
      { value: this.second.weight, decay: true },
      { value: this.second.bias, decay: false },
    ];
  }
}

function flatten(first: DenseGrad, second: DenseGrad): Float32Array[] {
  return [first.weight, first.bias, second.weight, second.bias];
}

/** One parameter array the optimiser updates in place. */
export interface Parameter {
  value: Float32Array | Float64Array;
  decay: boolean;
}

/** AdamW (decoupled weight decay), as in the paper's training recipe (β2 = 0.95). */
export class AdamW {
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];
  private step = 0;

  constructor(
    private readonly params: Parameter[],
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.95,
    private readonly weightDecay = 1e-4,
    private readonly epsilon = 1e-8,
  ) {
    this.m = params.map((p) => new Float64Array(p.value.length));
    this.v = params.map((p) => new Float64Array(p.value.length));
  }

  /** One update with learning rate `lr`; `grads[i]` matches `params[i]`. */
  update(grads: ArrayLike<number>[], lr: number): void {
    this.step++;
    const c1 = 1 - this.beta1 ** this.step;
    const c2 = 1 - this.beta2 ** this.step;
    for (let k = 0; k < this.params.length; k++) {
      const { value, decay } = this.params[k]!;
      const g = grads[k]!;
      const m = this.m[k]!;
      const v = this.v[k]!;
      const shrink = decay ? 1 - lr * this.weightDecay : 1;
      for (let i = 0; i < value.length; i++) {
        const gi = g[i]!;
        m[i] = this.beta1 * m[i]! + (1 - this.beta1) * gi;
        v[i] = this.beta2 * v[i]! + (1 - this.beta2) * gi * gi;
        value[i] = value[i]! * shrink - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + this.epsilon);
      }
    }
  }
}
