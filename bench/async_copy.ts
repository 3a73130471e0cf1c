// What the Promise calls' input copies cost (issue 10: every Promise call copies image, text
// and ids before it is queued, csrc/addon/host_inputs.h). For each shape, alternating in one
// run: the synchronous call, the Promise call (copy + the same work on libuv's pool), and
// the copy alone (Float32Array.prototype.slice of the same bytes, a memcpy). Prints medians
// and the copy's share of the Promise call.
//   npx tsx bench/async_copy.ts [--repeats 7] [--threads 2]
import { performance } from 'node:perf_hooks';

import { matrix, sigmoidLossWithGrad, sigmoidLossWithGradSync } from '../lib/index';
import { median, seededUniform } from './cases';
import { pad, unitRows } from './ring_support';

function argument(name: string, fallback: number): number {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 ? Number(process.argv[k + 1]) : fallback;
}

async function main(): Promise<void> {
  const repeats = argument('repeats', 7);
  const threads = argument('threads', 2);
  const shapes = [
    [64, 64],
    [256, 256],
    [1024, 256],
    [1024, 768],
    [4096, 768],
  ] as const;
  const rows: string[][] = [['N = M', 'D', 'sync ms', 'Promise ms', 'copy ms', 'copy / Promise']];
  for (const [n, d] of shapes) {
    const next = seededUniform(n + d);
    const image = matrix(unitRows(next, n, d), n, d);
    const text = matrix(unitRows(next, n, d), n, d);
    const sync: number[] = [], promise: number[] = [], copy: number[] = [];
    for (let r = 0; r < repeats; ++r) {
      let t0 = performance.now();
      sigmoidLossWithGradSync(image, text, { threads });
      sync.push(performance.now() - t0);
      t0 = performance.now();
      await sigmoidLossWithGrad(image, text, { threads });
      promise.push(performance.now() - t0);
      t0 = performance.now();
      image.data.slice();
      text.data.slice();
      copy.push(performance.now() - t0);
    }
    const [s, p, c] = [median(sync), median(promise), median(copy)];
    rows.push([String(n), String(d), s.toFixed(3), p.toFixed(3), c.toFixed(3), `${((100 * c) / p).toFixed(2)} %`]);
  }
  console.log(pad(rows));
}

void main();
