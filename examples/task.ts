// The synthetic image–text task. K concepts, each a latent vector c_k in R^Z. A pair is drawn
// by picking a concept k, an instance latent z = c_k + σ_inst·u (the particular "photo" of
// the concept), then
//   image = g_img(z) + σ_img·ε      text = g_txt(z) + σ_txt·ε
// where g_img and g_txt are two different fixed random two-layer tanh networks (standardised
// so every output coordinate has mean 0 and variance 1 over the data). Image and text of a
// pair share the instance latent, so retrieval on held-out pairs asks for the instance, and
// zero-shot classification asks for the concept: its "class text" is g_txt(c_k), the
// noise-free caption of the concept's centre (the analogue of the prompt "a photo of a k").
// The towers must learn to invert two unknown nonlinear maps into one shared space.
import { matmulABt } from './linalg.js';
import { Rng } from './rng.js';

/** The knobs of the task; {@link DEFAULT_TASK} is the one the experiments use. */
export interface TaskConfig {
  /** K, the number of concepts (zero-shot chance is 1/K). */
  concepts: number;
  /** Z, the width of the latent space. */
  latentDim: number;
  /** σ_inst: spread of instances around their concept's latent (each coordinate). */
  instanceSpread: number;
  /** Width of the image vectors. */
  imageDim: number;
  /** Width of the text vectors. */
  textDim: number;
  /** Hidden width of the two generator networks. */
  generatorHidden: number;
  /** σ_img: observation noise added to each (unit-variance) image coordinate. */
  imageNoise: number;
  /** σ_txt: observation noise added to each text coordinate. */
  textNoise: number;
}

export const DEFAULT_TASK: TaskConfig = {
  concepts: 1000,
  latentDim: 16,
  instanceSpread: 0.5,
  imageDim: 64,
  textDim: 32,
  generatorHidden: 64,
  imageNoise: 0.5,
  textNoise: 0.5,
};

/** A set of pairs: row i of `image` and row i of `text` belong together; `concept[i]` is their concept. */
export interface Pairs {
  count: number;
  image: Float32Array; // count × imageDim
  text: Float32Array; // count × textDim
  concept: Int32Array;
}

/** A fixed random map R^Z → R^D: standardise(A2 · tanh(A1·z + a1)). */
class Generator {
  private readonly w1: Float32Array;
  private readonly b1: Float32Array;
  private readonly w2: Float32Array;
  private readonly mean: Float32Array;
  private readonly invStd: Float32Array;

  constructor(
    rng: Rng,
    private readonly inputs: number,
    private readonly hidden: number,
    readonly outputs: number,
    calibration: Float32Array,
  ) {
    // Gain 2 on the first layer puts the tanh units well into their nonlinear range.
    this.w1 = rng.gaussians(hidden * inputs, 2 / Math.sqrt(inputs));
    this.b1 = rng.gaussians(hidden, 0.5);
    this.w2 = rng.gaussians(outputs * hidden, 1 / Math.sqrt(hidden));
    this.mean = new Float32Array(outputs);
    this.invStd = new Float32Array(outputs).fill(1);
    // Standardise each output coordinate over a calibration sample of latents.
    const rows = calibration.length / inputs;
    const raw = this.apply(calibration, rows);
    for (let c = 0; c < outputs; c++) {
      let s = 0;
      let s2 = 0;
      for (let r = 0; r < rows; r++) {
        const v = raw[r * outputs + c]!;
        s += v;
        s2 += v * v;
      }
      const m = s / rows;
      this.mean[c] = m;
      this.invStd[c] = 1 / Math.sqrt(Math.max(s2 / rows - m * m, 1e-12));
    }
  }

  /** g(z) for `rows` latents (rows × Z in, rows × D out). */
  apply(latents: Float32Array, rows: number): Float32Array {
    const h = matmulABt(latents, this.w1, rows, this.hidden, this.inputs);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < this.hidden; j++) h[r * this.hidden + j] = Math.tanh(h[r * this.hidden + j]! + this.b1[j]!);
    }
    const out = matmulABt(h, this.w2, rows, this.outputs, this.hidden);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < this.outputs; c++) {
        const i = r * this.outputs + c;
        out[i] = (out[i]! - this.mean[c]!) * this.invStd[c]!;
      }
    }
    return out;
  }
}

/** One instance of the task (the concepts and the two generators are fixed by `seed`). */
export class Task {
  readonly concepts: Float32Array; // K × Z
  private readonly imageMap: Generator;
  private readonly textMap: Generator;

  constructor(
    readonly config: TaskConfig,
    seed: number,
  ) {
    const rng = new Rng(seed, 0xc0ce97);
    const { concepts: k, latentDim: z } = config;
    this.concepts = rng.gaussians(k * z);
    const calibration = this.latents(rng, this.randomConcepts(rng, 8192));
    this.imageMap = new Generator(rng, z, config.generatorHidden, config.imageDim, calibration);
    this.textMap = new Generator(rng, z, config.generatorHidden, config.textDim, calibration);
  }

  /** `count` fresh pairs drawn with `rng` (concepts uniform). */
  sample(rng: Rng, count: number): Pairs {
    const concept = this.randomConcepts(rng, count);
    const z = this.latents(rng, concept);
    const image = this.imageMap.apply(z, count);
    const text = this.textMap.apply(z, count);
    for (let i = 0; i < image.length; i++) image[i]! += this.config.imageNoise * rng.gaussian();
    for (let i = 0; i < text.length; i++) text[i]! += this.config.textNoise * rng.gaussian();
    return { count, image, text, concept };
  }

  /** The K class texts g_txt(c_k): noise-free captions of each concept's centre. */
  classTexts(): Float32Array {
    return this.textMap.apply(this.concepts, this.config.concepts);
  }

  private randomConcepts(rng: Rng, count: number): Int32Array {
    const concept = new Int32Array(count);
    for (let i = 0; i < count; i++) concept[i] = rng.int(this.config.concepts);
    return concept;
  }

  private latents(rng: Rng, concept: Int32Array): Float32Array {
    const z = this.config.latentDim;
    const out = new Float32Array(concept.length * z);
    for (let i = 0; i < concept.length; i++) {
      const base = concept[i]! * z;
      for (let j = 0; j < z; j++) out[i * z + j] = this.concepts[base + j]! + this.config.instanceSpread * rng.gaussian();
    }
    return out;
  }
}

/** The paper's five corruptions of training data (SigLIP §4.6 / Fig. 7), plus none. */
export type CorruptionKind = 'none' | 'image' | 'text' | 'batch' | 'image+text' | 'image+text+batch';

export const CORRUPTIONS: readonly CorruptionKind[] = ['image', 'text', 'batch', 'image+text', 'image+text+batch'];

export const CORRUPTION_LABELS: Record<CorruptionKind, string> = {
  none: 'clean',
  image: 'image → noise',
  text: 'text → random tokens',
  batch: 'batch misalignment',
  'image+text': 'image + text',
  'image+text+batch': 'image + text + batch',
};

/**
 * Corrupts one training batch in place, each pair independently with probability p per
 * corruption type:
 * - image: the image is replaced by noise, N(0, 1) in every coordinate (the moments of a real
 *   image, none of its structure);
 * - text: the text is replaced by "random tokens", a random vector of the text space, N(0, 1);
 * - batch: the chosen pairs' texts are permuted among themselves (a cyclic shift of a random
 *   order, so none keeps its own text when two or more are chosen).
 * With several types (image+text…), each is applied independently.
 */
export function corruptBatch(batch: Pairs, kind: CorruptionKind, p: number, rng: Rng, imageDim: number, textDim: number): void {
  if (kind === 'none' || p === 0) return;
  const n = batch.count;
  if (kind.includes('image')) {
    for (let i = 0; i < n; i++) {
      if (rng.uniform() < p) for (let c = 0; c < imageDim; c++) batch.image[i * imageDim + c] = rng.gaussian();
    }
  }
  if (kind.includes('text')) {
    for (let i = 0; i < n; i++) {
      if (rng.uniform() < p) for (let c = 0; c < textDim; c++) batch.text[i * textDim + c] = rng.gaussian();
    }
  }
  if (kind.includes('batch')) {
    const chosen: number[] = [];
    for (let i = 0; i < n; i++) if (rng.uniform() < p) chosen.push(i);
    if (chosen.length < 2) return;
    rng.shuffle(chosen);
    const first = batch.text.slice(chosen[0]! * textDim, (chosen[0]! + 1) * textDim);
    for (let j = 0; j < chosen.length - 1; j++) {
      batch.text.copyWithin(chosen[j]! * textDim, chosen[j + 1]! * textDim, (chosen[j + 1]! + 1) * textDim);
    }
    batch.text.set(first, chosen[chosen.length - 1]! * textDim);
  }
}

/** Rows [start, start + count) of `pairs`, copied (so a batch can be corrupted in place). */
export function slicePairs(pairs: Pairs, start: number, count: number, imageDim: number, textDim: number): Pairs {
  return {
    count,
    image: pairs.image.slice(start * imageDim, (start + count) * imageDim),
    text: pairs.text.slice(start * textDim, (start + count) * textDim),
    concept: pairs.concept.slice(start, start + count),
  };
}
