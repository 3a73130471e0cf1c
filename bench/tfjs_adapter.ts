// `npx tsx bench/tfjs_adapter.ts [--n 256,512,1024,2048] [--d 256] [--repeats 5] [--ops-max-n 1024]`:
// what siglip-kernels/tfjs costs and gains, per call of the sigmoid loss and its four
// gradients under a tape (tf.grads), median ms:
//
//   native      sigmoidLossWithGradSync on Float32Arrays (the floor)
//   cpu         the adapter on tfjs's CPU backend (customGrad; no copies)
//   cpu kernel  the same native call as a registered tfjs kernel with a registered gradient
//               (the alternative to customGrad that the issue asked to measure; a prototype here)
//   wasm        the adapter on the WASM backend (inputs copied out of the heap, gradients in)
//   wasm copies the copies alone: dataSync() of image and text, tensor2d() of two gradients
//   tfjs ops    the loss in tfjs ops with tfjs's autodiff, CPU backend (up to --ops-max-n)
//
// and the loss alone with no tape (the adapter's cheaper path) on the CPU backend.
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { matrix, sigmoidLossWithGradSync } from '../lib/index.js';
import { sigmoidLoss } from '../lib/tfjs.js';
import { median, seededUniform } from './cases.js';
import { tfjsSigmoidCall } from './tfjs_autodiff.js';

const USAGE = 'usage: npx tsx bench/tfjs_adapter.ts [--n 256,512,1024,2048] [--d 256] [--repeats 5] [--ops-max-n 1024]';
function parseOptions() {
  try {
    return parseArgs({
      options: {
        n: { type: 'string', default: '256,512,1024,2048' },
        d: { type: 'string', default: '256' },
        repeats: { type: 'string', default: '5' },
        'ops-max-n': { type: 'string', default: '1024' },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}
const { values } = parseOptions();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const ns = values.n.split(',').map(Number);
const d = Number(values.d);
const repeats = Number(values.repeats);
const opsMaxN = Number(values['ops-max-n']);

function unitRows(seed: number, rows: number, cols: number): Float32Array {
  const uniform = seededUniform(seed);
  const a = Float32Array.from({ length: rows * cols }, () => uniform() - 0.5);
  for (let r = 0; r < rows; r++) {
    const row = a.subarray(r * cols, (r + 1) * cols);
    const norm = Math.hypot(...row);
    for (let c = 0; c < cols; c++) row[c]! /= norm;
  }
  return a;
}

/** Median ms of `call` over `repeats` runs after one warm-up. */
function time(call: () => void, times = repeats): number {
  call();
  const ms: number[] = [];
  for (let k = 0; k < times; k++) {
    const started = performance.now();
    call();
    ms.push(performance.now() - started);
  }
  return median(ms);
}

// The registered-kernel alternative: one kernel with five outputs (the loss and the four
// gradients); its registered gradient returns the saved gradient outputs times dy.
const KERNEL = 'SiglipSigmoidLossWithGradProbe';
tf.registerKernel({
  kernelName: KERNEL,
  backendName: 'cpu',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const cpu = backend as unknown as { readSync(id: object): Float32Array; makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo };
    const { image, text } = inputs as { image: tf.TensorInfo; text: tf.TensorInfo };
    const [n, dd] = image.shape as [number, number];
    const m = text.shape[0]!;
    const { logitScale, logitBias } = attrs as { logitScale: number; logitBias: number };
    const r = sigmoidLossWithGradSync(matrix(cpu.readSync(image.dataId), n, dd), matrix(cpu.readSync(text.dataId), m, dd), { logitScale, logitBias });
    return [
      cpu.makeTensorInfo([], 'float32', Float32Array.of(r.loss)),
      cpu.makeTensorInfo([n, dd], 'float32', r.grad.image),
      cpu.makeTensorInfo([m, dd], 'float32', r.grad.text),
      cpu.makeTensorInfo([], 'float32', Float32Array.of(r.grad.logitScale)),
      cpu.makeTensorInfo([], 'float32', Float32Array.of(r.grad.logitBias)),
    ];
  },
});
tf.registerGradient({
  kernelName: KERNEL,
  outputsToSave: [false, true, true, true, true],
  gradFunc: (dys, saved) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys)!;
    const [gImage, gText] = saved as tf.Tensor[];
    // dy = 1 (a loss minimised directly): a clone shares the saved data (no copy, no multiply).
    const one = dy.dataSync()[0] === 1;
    return { image: () => (one ? gImage!.clone() : tf.mul(dy, gImage!)), text: () => (one ? gText!.clone() : tf.mul(dy, gText!)) };
  },
});
function kernelLoss(image: tf.Tensor, text: tf.Tensor, s: number, b: number): tf.Scalar {
  const outs = tf.engine().runKernel(KERNEL, { image, text }, { logitScale: s, logitBias: b }) as tf.Tensor[];
  tf.dispose(outs.slice(1));
  return outs[0] as tf.Scalar;
}

async function onBackend(name: string): Promise<void> {
  await tf.setBackend(name);
  await tf.ready();
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const header = ['N', 'D', 'native', 'cpu', 'cpu kernel', 'wasm', 'wasm copies', 'tfjs ops', 'ops/cpu', 'cpu loss only'];
  rows.push(header.map((h) => h.padStart(14)).join(''));
  for (const n of ns) {
    const x = unitRows(1, n, d);
    const y = unitRows(2, n, d);
    const s = Math.log(10);
    const b = -10;
    const native = time(() => sigmoidLossWithGradSync(matrix(x, n, d), matrix(y, n, d), { logitScale: s, logitBias: b }));

    await onBackend('cpu');
    const cpuInputs = [tf.tensor2d(x, [n, d]), tf.tensor2d(y, [n, d]), tf.scalar(s), tf.scalar(b)] as const;
    const adapter = (t: typeof cpuInputs) => () => tf.dispose(tf.grads((a: tf.Tensor, c: tf.Tensor, sc: tf.Tensor, bi: tf.Tensor) => sigmoidLoss(tf, a as tf.Tensor2D, c as tf.Tensor2D, sc as tf.Scalar, bi as tf.Scalar))([...t]));
    const cpu = time(adapter(cpuInputs));
    const lossOnly = time(() => tf.dispose(sigmoidLoss(tf, cpuInputs[0], cpuInputs[1], cpuInputs[2], cpuInputs[3])));
    const kernel = time(() => tf.dispose(tf.grads((a: tf.Tensor, c: tf.Tensor) => kernelLoss(a, c, s, b))([cpuInputs[0], cpuInputs[1]])));
    const ops = n <= opsMaxN ? time(tfjsSigmoidCall(tf, x, y, n, n, d, true), Math.min(repeats, 3)) : Number.NaN;
    tf.dispose([...cpuInputs]);

    await onBackend('wasm');
    const wasmInputs = [tf.tensor2d(x, [n, d]), tf.tensor2d(y, [n, d]), tf.scalar(s), tf.scalar(b)] as const;
    const wasm = time(adapter(wasmInputs));
    const gradients = [new Float32Array(n * d), new Float32Array(n * d)];
    const copies = time(() => {
      wasmInputs[0].dataSync();
      wasmInputs[1].dataSync();
      tf.dispose(gradients.map((g) => tf.tensor2d(g, [n, d])));
    });
    tf.dispose([...wasmInputs]);

    const f = (v: number) => (Number.isNaN(v) ? '—' : v < 10 ? v.toFixed(2) : v.toFixed(0)).padStart(14);
    rows.push([String(n).padStart(14), String(d).padStart(14), f(native), f(cpu), f(kernel), f(wasm), f(copies), f(ops), (Number.isNaN(ops) ? '—' : `${(ops / cpu).toFixed(0)}×`).padStart(14), f(lossOnly)].join(''));
    process.stderr.write(`N = ${n} done\n`);
  }
  console.log(`sigmoid loss and its gradients under tf.grads, median ms of ${repeats} (tfjs ops: of ${Math.min(repeats, 3)}); tfjs ${tf.version.tfjs}`);
  console.log(rows.join('\n'));
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
