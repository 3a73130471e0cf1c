// One benchmark case, in a process of its own (bench/run.ts spawns it):
//
//     node --expose-gc --import tsx bench/case.ts '<CaseSpec as JSON>'
//     node --expose-gc dist/bench/case.js '<CaseSpec as JSON>'      (an installed package)
//
// It builds seeded random inputs, loads the addon, takes a memory baseline, makes the
// warm-up call(s) (the first one measured for memory), then the timed calls, and prints one
// line of JSON (a CaseResult) on stdout. Progress and errors go to stderr.
//
// Why a process per case, and why "peak RSS minus a baseline": the kernels allocate in C++
// (malloc/new, std::vector), which V8's own counters (process.memoryUsage().heapUsed,
// .arrayBuffers) never see, and buffers freed before the call returns leave no trace in a
// sample of RSS taken afterwards. The kernel's high-water mark of resident memory
// (getrusage's ru_maxrss, which Node exposes as process.resourceUsage().maxRSS, in KiB) sees
// every page any allocator touched, including the transient N×N buffers of the naive
// methods. It only ever grows during a process's life, so each case gets a fresh process,
// and the baseline (RSS once the inputs exist and the addon is loaded) is subtracted. On
// Linux, writing "5" to /proc/self/clear_refs resets the high-water mark to the current RSS,
// so what was resident earlier (the JS heap's peak while building inputs, tsx compiling the
// script) cannot mask the call's own peak; elsewhere the figure is marked as an upper bound
// when the call did not raise the mark. What the call returns (the gradient matrices, or the
// GEMM's C) is part of the contract's inputs-and-outputs, not working memory, so its bytes
// are subtracted too: what is left is the "extra memory" SPEC.md talks about.
import { writeFileSync } from 'node:fs';

import { backendInfo, gemmABt, matrix, sigmoidLossSync, sigmoidLossWithGradSync, softmaxLossSync, softmaxLossWithGradSync } from '../lib/index.js';
import { type CaseResult, type CaseSpec, METHOD_INFO, type MethodInfo, METHODS, median, seededUniform } from './cases.js';
import { loadTfjs, tfjsSigmoidCall } from './tfjs_autodiff.js';

function seededGaussian(seed: number): () => number {
  const uniform = seededUniform(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const value = spare;
      spare = null;
      return value;
    }
    // Box–Muller; 1 − u keeps the logarithm's argument in (0, 1].
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

function normaliseRows(data: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * cols, (r + 1) * cols);
    let sumSquares = 0;
    for (let c = 0; c < cols; c++) sumSquares += row[c]! * row[c]!;
    const scale = 1 / Math.sqrt(sumSquares);
    for (let c = 0; c < cols; c++) row[c]! *= scale;
  }
}

/**
 * Unit rows, as callers pass them. Text row i is image row i plus an independent Gaussian of
 * about the same length, renormalised, so the matching pairs have cosine ≈ 0.7 and the loss
 * looks like a training batch's rather than pure noise (the timing does not depend on it).
 * Written straight into the final arrays: no temporaries that would raise the memory peak.
 */
function buildInputs(spec: CaseSpec): { image: Float32Array; text: Float32Array } {
  const gaussian = seededGaussian(spec.seed);
  const image = new Float32Array(spec.n * spec.d);
  const text = new Float32Array(spec.m * spec.d);
  for (let i = 0; i < image.length; i++) image[i] = gaussian();
  normaliseRows(image, spec.n, spec.d);
  const noise = 1 / Math.sqrt(spec.d);
  for (let i = 0; i < text.length; i++) text[i] = (i < image.length ? image[i]! : 0) + noise * gaussian();
  normaliseRows(text, spec.m, spec.d);
  return { image, text };
}

interface CallOutcome {
  loss: number | null;
  outputBytes: number;
}

function makeCall(spec: CaseSpec, image: Float32Array, text: Float32Array, tf: Awaited<ReturnType<typeof loadTfjs>> | null): () => CallOutcome {
  const x = matrix(image, spec.n, spec.d);
  const y = matrix(text, spec.m, spec.d);
  const info: MethodInfo = METHOD_INFO[spec.method];
  // Default logit scale and bias (SPEC.md's initial values): the timing does not depend on them.
  // The method name is passed as a string: a method the library's types do not list yet (a
  // new one being added) is still benchmarked once the native side accepts it.
  const precision = info.precision === undefined ? {} : { precision: info.precision as never };
  const options = { threads: spec.threads, device: spec.device ?? 'cpu', method: info.libMethod as never, ...precision };
  const fwd = spec.pass === 'fwd';
  switch (info.loss) {
    case 'tfjs':
      return tfjsSigmoidCall(tf!, image, text, spec.n, spec.m, spec.d, !fwd);
    case 'gemm':
      return () => {
        const c = gemmABt(image, text, spec.n, spec.m, spec.d, spec.threads);
        return { loss: null, outputBytes: c.byteLength };
      };
    case 'sigmoid':
      if (fwd) return () => ({ loss: sigmoidLossSync(x, y, options), outputBytes: 0 });
      return () => {
        const { loss, grad } = sigmoidLossWithGradSync(x, y, options);
        return { loss, outputBytes: byteLengthOf(grad.image) + byteLengthOf(grad.text) };
      };
    case 'softmax':
      if (fwd) return () => ({ loss: softmaxLossSync(x, y, options), outputBytes: 0 });
      return () => {
        const { loss, grad } = softmaxLossWithGradSync(x, y, options);
        return { loss, outputBytes: byteLengthOf(grad.image) + byteLengthOf(grad.text) };
      };
  }
}

// The gradient matrices may come back as Float32Arrays or as matrix objects holding one.
function byteLengthOf(value: unknown): number {
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (typeof value === 'object' && value !== null && 'data' in value && ArrayBuffer.isView(value.data)) {
    return value.data.byteLength;
  }
  return 0;
}

function collectGarbage(): void {
  // Present because run.ts starts this process with --expose-gc. Between calls only, so the
  // previous call's gradients are gone before the next one and no collection lands in a timing.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
}

/** Resets the kernel's RSS high-water mark to the current RSS; false where that is not possible. */
function resetHighWaterMark(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

const maxRssBytes = (): number => process.resourceUsage().maxRSS * 1024;

function parseSpec(argument: string | undefined): CaseSpec {
  if (argument === undefined) throw new Error('Expected a case description (JSON) as the first argument but received nothing');
  const spec = JSON.parse(argument) as CaseSpec;
  if (!(METHODS as readonly string[]).includes(spec.method)) {
    throw new Error(`Expected method to be one of ${METHODS.join(', ')} but received ${String(spec.method)}`);
  }
  for (const key of ['n', 'm', 'd', 'threads', 'repeats'] as const) {
    if (!Number.isInteger(spec[key]) || spec[key] < 1) throw new Error(`Expected ${key} to be a positive integer but received ${String(spec[key])}`);
  }
  return spec;
}

async function main(): Promise<void> {
  const spec = parseSpec(process.argv[2]);
  // Loaded before the inputs exist, so that its code and heap belong to the baseline.
  const tf = METHOD_INFO[spec.method].loss === 'tfjs' ? await loadTfjs() : null;

  const setupStart = performance.now();
  const { image, text } = buildInputs(spec);
  const setupMs = performance.now() - setupStart;
  const call = makeCall(spec, image, text, tf);

  // Loads the addon (its code pages and static data belong to the baseline) without running
  // a kernel: a small call here would also allocate any per-thread tile buffers a backend
  // keeps, and those are exactly the fused method's working memory we want to see.
  backendInfo();

  collectGarbage();
  const highWaterReset = resetHighWaterMark();
  const rssBaselineBytes = process.memoryUsage.rss();
  const maxRssBeforeBytes = maxRssBytes();

  const firstStart = performance.now();
  const first = call();
  const firstCallMs = performance.now() - firstStart;
  const maxRssAfterBytes = maxRssBytes();

  const raisedMark = maxRssAfterBytes > maxRssBeforeBytes;
  const peakExtraIsUpperBound = !highWaterReset && !raisedMark;
  const peakExtraBytes = Math.max(0, maxRssAfterBytes - rssBaselineBytes - first.outputBytes);
  let loss = first.loss;

  for (let i = 1; i < spec.warmup; i++) {
    collectGarbage();
    call();
  }
  const timesMs: number[] = [];
  for (let i = 0; i < spec.repeats; i++) {
    collectGarbage();
    const start = performance.now();
    const outcome = call();
    timesMs.push(performance.now() - start);
    loss = outcome.loss;
  }

  const result: CaseResult = {
    spec,
    timesMs,
    medianMs: median(timesMs),
    firstCallMs,
    loss,
    rssBaselineBytes,
    maxRssBeforeBytes,
    maxRssAfterBytes,
    outputBytes: first.outputBytes,
    peakExtraBytes,
    peakExtraIsUpperBound,
    highWaterReset,
    setupMs,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/case.ts: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
