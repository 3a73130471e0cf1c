// One training run of the two-tower model with the sigmoid (SigLIP) or softmax (CLIP) loss,
// and its evaluation. The loss and its gradients with respect to the normalised embeddings,
// the log-temperature and the bias come from the package; everything else (towers,
// normalisation backward, AdamW) is chained by hand here.
import {
  DEFAULT_SIGMOID_LOGIT_BIAS,
  DEFAULT_SIGMOID_LOGIT_SCALE,
  DEFAULT_SOFTMAX_LOGIT_SCALE,
  matrix,
  normalizeRows,
  sigmoidLossWithGradSync,
  softmaxLossWithGradSync,
} from '../lib/index.js';
import { matmulABt } from './linalg.js';
import { Rng } from './rng.js';
import { type CorruptionKind, type Pairs, corruptBatch, slicePairs, type TaskConfig } from './task.js';
import { AdamW, type Parameter, Tower } from './towers.js';

export type LossKind = 'sigmoid' | 'softmax';

export interface TrainConfig {
  loss: LossKind;
  batchSize: number;
  /** Training pairs seen; the run takes floor(examples / batchSize) steps. */
  examples: number;
  /** Peak learning rate (after a linear warm-up over 5 % of the steps; cosine decay to 0). */
  learningRate: number;
  /** Seeds the tower initialisation and the corruption draws (not the data stream). */
  seed: number;
  corruption: CorruptionKind;
  /** Probability with which each pair is corrupted (per corruption type). */
  corruptionRate: number;
  hiddenDim: number;
  embedDim: number;
}

export interface Metrics {
  /** Zero-shot-style classification: the nearest class text for each held-out image. */
  zeroShot: number;
  /** Image → text recall@1 among the held-out pairs. */
  imageToText: number;
  /** Text → image recall@1 among the held-out pairs. */
  textToImage: number;
}

export interface RunResult extends Metrics {
  steps: number;
  /** Mean training loss over the last 10 % of steps (not comparable between the two losses). */
  finalLoss: number;
  /** The learned temperature t = exp(logitScale) at the end. */
  temperature: number;
  /** The learned bias at the end (sigmoid only; null for softmax). */
  bias: number | null;
  seconds: number;
}

/** The held-out data: pairs, and the K class texts for zero-shot classification. */
export interface EvalSet {
  pairs: Pairs;
  classTexts: Float32Array;
  concepts: number;
}

/** The two towers and the loss's learned scalars: logits[0] = logitScale s (t = exp s), logits[1] = bias b. */
export interface TwoTowers {
  loss: LossKind;
  image: Tower;
  text: Tower;
  logits: Float64Array;
}

/** Fresh towers with the paper's initialisation of the scalars: t = 10, b = −10 (sigmoid); t = 1/0.07 (softmax). */
export function initTwoTowers(loss: LossKind, rng: Rng, imageDim: number, textDim: number, hiddenDim: number, embedDim: number): TwoTowers {
  const sigmoid = loss === 'sigmoid';
  return {
    loss,
    image: new Tower(rng, imageDim, hiddenDim, embedDim),
    text: new Tower(rng, textDim, hiddenDim, embedDim),
    logits: Float64Array.of(sigmoid ? DEFAULT_SIGMOID_LOGIT_SCALE : DEFAULT_SOFTMAX_LOGIT_SCALE, sigmoid ? DEFAULT_SIGMOID_LOGIT_BIAS : 0),
  };
}

/** The optimiser's view of a model: every tower array, then the two scalars (no weight decay on them). */
export function modelParameters(model: TwoTowers): Parameter[] {
  return [...model.image.parameters(), ...model.text.parameters(), { value: model.logits, decay: false }];
}

/**
 * The loss of one batch and the gradient of every parameter, in {@link modelParameters} order:
 * towers forward → L2-normalise (normalizeRows) → the package's loss and gradients → back
 * through normalizeRows' backward → towers backward.
 */
export function lossAndGradients(model: TwoTowers, image: Float32Array, text: Float32Array, rows: number): { loss: number; grads: ArrayLike<number>[] } {
  const imageAct = model.image.forward(image, rows);
  const textAct = model.text.forward(text, rows);
  const imageEmb = normalizeRows(matrix(imageAct.output, rows, model.image.embedDim));
  const textEmb = normalizeRows(matrix(textAct.output, rows, model.text.embedDim));
  const [logitScale, logitBias] = [model.logits[0]!, model.logits[1]!];
  let result: { loss: number; grad: { image: Float32Array; text: Float32Array; logitScale: number } };
  let gradBias = 0; // the softmax loss has no bias: it stays at 0
  if (model.loss === 'sigmoid') {
    const r = sigmoidLossWithGradSync(imageEmb.normalized, textEmb.normalized, { logitScale, logitBias });
    gradBias = r.grad.logitBias;
    result = r;
  } else {
    result = softmaxLossWithGradSync(imageEmb.normalized, textEmb.normalized, { logitScale });
  }
  const { loss, grad } = result;
  const grads: ArrayLike<number>[] = [
    ...model.image.backward(imageAct, imageEmb.backward(grad.image)),
    ...model.text.backward(textAct, textEmb.backward(grad.text)),
    [grad.logitScale, gradBias],
  ];
  return { loss, grads };
}

/** Trains both towers on the stream `train` (its first `examples` pairs, in order). */
export function trainRun(task: TaskConfig, train: Pairs, evalSet: EvalSet, config: TrainConfig): RunResult {
  const started = performance.now();
  const n = config.batchSize;
  const { imageDim, textDim } = task;
  const steps = Math.floor(config.examples / n);
  if (steps < 1 || steps * n > train.count) throw new RangeError(`need ${config.examples} training pairs, have ${train.count}`);

  const model = initTwoTowers(config.loss, new Rng(config.seed, 0x7e1), imageDim, textDim, config.hiddenDim, config.embedDim);
  const optimiser = new AdamW(modelParameters(model));
  const corruptionRng = new Rng(config.seed, 0xbad, config.batchSize);

  const warmup = Math.max(1, Math.round(0.05 * steps));
  const tail = Math.max(1, Math.floor(0.1 * steps));
  let tailLoss = 0;
  for (let step = 0; step < steps; step++) {
    const batch = slicePairs(train, step * n, n, imageDim, textDim);
    corruptBatch(batch, config.corruption, config.corruptionRate, corruptionRng, imageDim, textDim);

    const { loss, grads } = lossAndGradients(model, batch.image, batch.text, n);
    if (step >= steps - tail) tailLoss += loss / tail;
    const lr =
      step < warmup ? (config.learningRate * (step + 1)) / warmup : 0.5 * config.learningRate * (1 + Math.cos((Math.PI * (step - warmup)) / Math.max(1, steps - warmup)));
    optimiser.update(grads, lr);
  }

  return {
    ...evaluate(model.image, model.text, evalSet),
    steps,
    finalLoss: tailLoss,
    temperature: Math.exp(model.logits[0]!),
    bias: config.loss === 'sigmoid' ? model.logits[1]! : null,
    seconds: (performance.now() - started) / 1000,
  };
}

function embed(tower: Tower, input: Float32Array, rows: number): Float32Array {
  return normalizeRows(matrix(tower.forward(input, rows).output, rows, tower.embedDim)).normalized.data;
}

/** Index of the largest of row r of a rows×cols matrix (first on ties). */
function argmaxRow(s: Float32Array, r: number, cols: number): number {
  let best = 0;
  for (let c = 1; c < cols; c++) if (s[r * cols + c]! > s[r * cols + best]!) best = c;
  return best;
}

/** Zero-shot accuracy and both recall@1 figures on the held-out set. */
export function evaluate(imageTower: Tower, textTower: Tower, evalSet: EvalSet): Metrics {
  const { pairs, classTexts, concepts } = evalSet;
  const n = pairs.count;
  const e = imageTower.embedDim;
  const image = embed(imageTower, pairs.image, n);
  const text = embed(textTower, pairs.text, n);
  const classes = embed(textTower, classTexts, concepts);

  const toClass = matmulABt(image, classes, n, concepts, e);
  let zeroShot = 0;
  for (let i = 0; i < n; i++) if (argmaxRow(toClass, i, concepts) === pairs.concept[i]) zeroShot++;

  const sim = matmulABt(image, text, n, n, e);
  let imageToText = 0;
  for (let i = 0; i < n; i++) if (argmaxRow(sim, i, n) === i) imageToText++;
  const simT = matmulABt(text, image, n, n, e);
  let textToImage = 0;
  for (let j = 0; j < n; j++) if (argmaxRow(simT, j, n) === j) textToImage++;

  return { zeroShot: zeroShot / n, imageToText: imageToText / n, textToImage: textToImage / n };
}
