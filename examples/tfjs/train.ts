// `npm run example:tfjs`: the two-tower model of the main example (examples/README.md),
// built from TensorFlow.js variables and trained with tfjs's autodiff, the sigmoid loss coming
// from `siglip-kernels/tfjs`. Three runs of one configuration (batch 256, one seed, the same
// data, the same initial weights, the same AdamW and schedule):
//
//   1. hand-written: the main example's Float32Array towers and backward pass (examples/train.ts);
//   2. tfjs + siglip-kernels/tfjs: the towers in tfjs ops, the loss and its gradients from the package;
//   3. tfjs ops: the same model with the loss written in tfjs ops too (what a tfjs user writes without the package).
//
// It prints each run's held-out metrics (zero-shot accuracy and recall@1, evaluated by the
// main example's own `evaluate`) and its time per training step. The pure-tfjs run trains 64
// steps by default (its time per step; `--ops-steps 512` trains it fully, about 2 minutes more
// on 2 cores), so the default run takes about a minute. `--help` lists the flags.
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs';

import { sigmoidLoss } from '../../lib/tfjs.js';
import { Rng } from '../rng.js';
import { DEFAULT_TASK, type Pairs, slicePairs, Task } from '../task.js';
import { type EvalSet, evaluate, initTwoTowers, type Metrics, trainRun } from '../train.js';
import type { Tower } from '../towers.js';

const USAGE = `usage: npm run example:tfjs -- [flags]

  --batch B        batch size (default 256)
  --seed S         training seed: initial weights and data stream (default 1)
  --examples N     training pairs seen (default 131072, as the main example: 512 steps at batch 256)
  --ops-steps K    steps the pure-tfjs run trains (default 64, for its time per step; all steps
                   to compare its accuracy too, about 2 extra minutes on 2 cores)
  --backend NAME   tfjs backend, cpu or wasm (default cpu)
`;

// The main example's settings (examples/siglip_vs_clip.ts).
const TASK_SEED = 2023;
const EVAL_PAIRS = 2048;
const MODEL = { hiddenDim: 128, embedDim: 32 };
const learningRate = (batch: number): number => 0.012 * Math.sqrt(batch / 256);

type Scalar = tf.Scalar;
type T2 = tf.Tensor2D;

/** One tower as tfjs variables: x·W1 + b1 → ReLU → ·W2 + b2 (W stored in×out, tfjs's matMul order). */
interface TfTower {
  w1: tf.Variable;
  b1: tf.Variable;
  w2: tf.Variable;
  b2: tf.Variable;
}

/** The hand-written tower's initial weights (out×in) as tfjs variables (in×out). */
function toTf(tower: Tower): TfTower {
  const weight = (d: Tower['first']) => tf.variable(tf.tidy(() => tf.tensor2d(d.weight, [d.outputs, d.inputs]).transpose()));
  return { w1: weight(tower.first), b1: tf.variable(tf.tensor1d(tower.first.bias)), w2: weight(tower.second), b2: tf.variable(tf.tensor1d(tower.second.bias)) };
}

/** Copies trained tfjs weights back into a hand-written tower (for the main example's evaluate()). */
function fromTf(tower: Tower, t: TfTower): void {
  tower.first.weight.set(tf.tidy(() => t.w1.transpose()).dataSync());
  tower.first.bias.set(t.b1.dataSync());
  tower.second.weight.set(tf.tidy(() => t.w2.transpose()).dataSync());
  tower.second.bias.set(t.b2.dataSync());
}

function embed(t: TfTower, x: tf.Tensor): T2 {
  const hidden = tf.relu(tf.add(tf.matMul(x as T2, t.w1), t.b1));
  const out = tf.add(tf.matMul(hidden as T2, t.w2), t.b2);
  return tf.div(out, tf.norm(out, 'euclidean', 1, true)) as T2;
}

/** The sigmoid loss in tfjs ops (SPEC.md), for the pure-tfjs run: (1/N) Σ softplus(−z · (exp(s)·X·Yᵀ + b)). */
function sigmoidLossOps(x: T2, y: T2, logitScale: Scalar, logitBias: Scalar): Scalar {
  const n = x.shape[0];
  const logits = tf.add(tf.mul(tf.exp(logitScale), tf.matMul(x, y, false, true)), logitBias);
  const z = tf.sub(tf.mul(tf.eye(n), 2), 1); // +1 on the diagonal (positive pairs), −1 elsewhere
  return tf.div(tf.sum(tf.softplus(tf.neg(tf.mul(z, logits)))), n) as Scalar;
}

/** AdamW in tfjs ops, as the main example's (β1 0.9, β2 0.95, decoupled decay 1e-4 on the weight matrices). */
class TfAdamW {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private step = 0;

  constructor(
    private readonly params: { variable: tf.Variable; decay: boolean }[],
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.95,
    private readonly weightDecay = 1e-4,
    private readonly epsilon = 1e-8,
  ) {
    this.m = params.map((p) => tf.variable(tf.zerosLike(p.variable), false));
    this.v = params.map((p) => tf.variable(tf.zerosLike(p.variable), false));
  }

  update(grads: tf.NamedTensorMap, lr: number): void {
    this.step++;
    const c1 = 1 - this.beta1 ** this.step;
    const c2 = 1 - this.beta2 ** this.step;
    tf.tidy(() => {
      this.params.forEach(({ variable, decay }, k) => {
        const g = grads[variable.name]!;
        const m = this.m[k]!;
        const v = this.v[k]!;
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        v.assign(tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const step = tf.div(tf.mul(m, lr / c1), tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon));
        variable.assign(tf.sub(decay ? tf.mul(variable, 1 - lr * this.weightDecay) : variable, step));
      });
    });
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

interface TfRunResult extends Metrics {
  steps: number;
  msPerStep: number;
  temperature: number;
  bias: number;
}

/** Trains the tfjs model for `steps` steps with `lossFn`, then evaluates it with the main example's evaluate(). */
function trainTfjs(stream: Pairs, evalSet: EvalSet, batch: number, seed: number, totalSteps: number, steps: number, useAdapter: boolean): TfRunResult {
  const { imageDim, textDim } = DEFAULT_TASK;
  const init = initTwoTowers('sigmoid', new Rng(seed, 0x7e1), imageDim, textDim, MODEL.hiddenDim, MODEL.embedDim);
  const towers = { image: toTf(init.image), text: toTf(init.text) };
  const logitScale = tf.variable(tf.scalar(init.logits[0]!));
  const logitBias = tf.variable(tf.scalar(init.logits[1]!));
  const params = [towers.image, towers.text].flatMap((t) => [
    { variable: t.w1, decay: true },
    { variable: t.b1, decay: false },
    { variable: t.w2, decay: true },
    { variable: t.b2, decay: false },
  ]);
  params.push({ variable: logitScale, decay: false }, { variable: logitBias, decay: false });
  const optimiser = new TfAdamW(params);
  const peak = learningRate(batch);
  const warmup = Math.max(1, Math.round(0.05 * totalSteps));
  const startTensors = tf.memory().numTensors;
  const started = performance.now();
  for (let step = 0; step < steps; step++) {
    const b = slicePairs(stream, step * batch, batch, imageDim, textDim);
    const { value, grads } = tf.tidy(() => {
      const x = tf.tensor2d(b.image, [batch, imageDim]);
      const y = tf.tensor2d(b.text, [batch, textDim]);
      return tf.variableGrads(() => {
        const imageEmb = embed(towers.image, x);
        const textEmb = embed(towers.text, y);
        return useAdapter ? sigmoidLoss(tf, imageEmb, textEmb, logitScale, logitBias) : sigmoidLossOps(imageEmb, textEmb, logitScale, logitBias);
      });
    });
    const lr = step < warmup ? (peak * (step + 1)) / warmup : 0.5 * peak * (1 + Math.cos((Math.PI * (step - warmup)) / Math.max(1, totalSteps - warmup)));
    optimiser.update(grads, lr);
    tf.dispose([value, grads]);
  }
  const msPerStep = (performance.now() - started) / steps;
  if (tf.memory().numTensors !== startTensors) throw new Error(`tensors leaked: ${tf.memory().numTensors - startTensors}`);
  fromTf(init.image, towers.image);
  fromTf(init.text, towers.text);
  const metrics = evaluate(init.image, init.text, evalSet);
  const result = { ...metrics, steps, msPerStep, temperature: Math.exp(logitScale.dataSync()[0]!), bias: logitBias.dataSync()[0]! };
  optimiser.dispose();
  tf.dispose([...params.map((p) => p.variable)]);
  return result;
}

/** Median ms of the loss and its four gradients alone, at the example's shape (random unit embeddings). */
function timeLossAlone(batch: number, useAdapter: boolean, repeats = 15): number {
  const random = new Rng(7, 0x71);
  const unit = (rows: number) => tf.tidy(() => {
    const e = tf.tensor2d(random.gaussians(rows * MODEL.embedDim), [rows, MODEL.embedDim]);
    return tf.div(e, tf.norm(e, 'euclidean', 1, true)) as T2;
  });
  const [x, y, s, b] = [unit(batch), unit(batch), tf.scalar(Math.log(10)), tf.scalar(-10)];
  const f = (xx: tf.Tensor, yy: tf.Tensor, ss: tf.Tensor, bb: tf.Tensor) =>
    useAdapter ? sigmoidLoss(tf, xx as T2, yy as T2, ss as Scalar, bb as Scalar) : sigmoidLossOps(xx as T2, yy as T2, ss as Scalar, bb as Scalar);
  const times: number[] = [];
  for (let k = 0; k <= repeats; k++) {
    const started = performance.now();
    tf.dispose(tf.grads(f)([x, y, s, b]));
    if (k > 0) times.push(performance.now() - started); // the first call warms up
  }
  tf.dispose([x, y, s, b]);
  times.sort((p, q) => p - q);
  return times[times.length >> 1]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      batch: { type: 'string', default: '256' },
      seed: { type: 'string', default: '1' },
      examples: { type: 'string', default: '131072' },
      'ops-steps': { type: 'string' },
      backend: { type: 'string', default: 'cpu' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const positive = (name: string, text: string): number => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < 1) {
      process.stderr.write(`example:tfjs: expected a positive integer for --${name}, got '${text}'\n\n${USAGE}`);
      process.exit(2);
    }
    return v;
  };
  const batch = positive('batch', values.batch);
  const seed = positive('seed', values.seed);
  const examples = positive('examples', values.examples);
  const steps = Math.floor(examples / batch);
  const opsSteps = Math.min(steps, positive('ops-steps', values['ops-steps'] ?? '64'));
  if (values.backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend(values.backend);
  await tf.ready();

  const task = new Task(DEFAULT_TASK, TASK_SEED);
  const evalSet: EvalSet = { pairs: task.sample(new Rng(TASK_SEED, 0xe7a1), EVAL_PAIRS), classTexts: task.classTexts(), concepts: DEFAULT_TASK.concepts };
  const stream = task.sample(new Rng(seed, 0x57e4), examples);
  process.stderr.write(`batch ${batch}, seed ${seed}, ${steps} steps; tfjs ${tf.version.tfjs} on the ${tf.getBackend()} backend\n`);

  const hand = trainRun(DEFAULT_TASK, stream, evalSet, {
    loss: 'sigmoid',
    batchSize: batch,
    examples,
    learningRate: learningRate(batch),
    seed,
    corruption: 'none',
    corruptionRate: 0,
    ...MODEL,
  });
  process.stderr.write(`hand-written: ${hand.seconds.toFixed(1)} s\n`);
  const adapter = trainTfjs(stream, evalSet, batch, seed, steps, steps, true);
  process.stderr.write(`tfjs + siglip-kernels/tfjs: ${((adapter.msPerStep * steps) / 1000).toFixed(1)} s\n`);
  const ops = trainTfjs(stream, evalSet, batch, seed, steps, opsSteps, false);
  process.stderr.write(`tfjs ops: ${((ops.msPerStep * opsSteps) / 1000).toFixed(1)} s\n`);

  const lossAlone = { adapter: timeLossAlone(batch, true), ops: timeLossAlone(batch, false) };

  const pct = (v: number) => `${(100 * v).toFixed(1)}%`.padStart(9);
  const rows = [
    ['hand-written (Float32Array, the package)', hand.zeroShot, hand.imageToText, hand.textToImage, hand.temperature, hand.bias!, (1000 * hand.seconds) / steps, steps],
    ['tfjs + siglip-kernels/tfjs', adapter.zeroShot, adapter.imageToText, adapter.textToImage, adapter.temperature, adapter.bias, adapter.msPerStep, steps],
    ['tfjs, loss in tfjs ops', ops.zeroShot, ops.imageToText, ops.textToImage, ops.temperature, ops.bias, ops.msPerStep, ops.steps],
  ] as const;
  console.log(`\n${'run'.padEnd(42)} zero-shot      I→T      T→I      t        b   ms/step  steps`);
  for (const [name, z, it, ti, t, b, ms, n] of rows) {
    console.log(`${name.padEnd(42)}${pct(z)}${pct(it)}${pct(ti)}${t.toFixed(1).padStart(7)}${b.toFixed(2).padStart(9)}${ms.toFixed(1).padStart(10)}${String(n).padStart(7)}`);
  }
  if (ops.steps < steps) console.log(`(the tfjs-ops run trained ${ops.steps} of ${steps} steps: its metrics are not comparable, only its time per step)`);
  console.log(
    `\ntime per training step (batch ${batch}, ${tf.getBackend()} backend): ${adapter.msPerStep.toFixed(1)} ms with siglip-kernels/tfjs, ` +
      `${ops.msPerStep.toFixed(1)} ms with the loss in tfjs ops (${(ops.msPerStep / adapter.msPerStep).toFixed(1)}× as long)`,
  );
  console.log(
    `the loss and its four gradients alone (N = ${batch}, D = ${MODEL.embedDim}, median of 15): ${lossAlone.adapter.toFixed(2)} ms with siglip-kernels/tfjs, ` +
      `${lossAlone.ops.toFixed(2)} ms in tfjs ops (${(lossAlone.ops / lossAlone.adapter).toFixed(0)}×); the rest of a step is the towers and AdamW in tfjs ops`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
