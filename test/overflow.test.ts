// Logits that overflow float32 (issue 10, items 7 and 8), with every kernel set: a pair whose
// logit is +Infinity contributes exactly nothing (as in float64), and one whose logit is
// -Infinity, which would make the loss Infinity, is a RangeError naming options.logitScale.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import test from 'ava';

import { sigmoidReference } from './helpers/reference';

const root = path.resolve(__dirname, '..');

function runWith(simd: string): Record<string, Record<string, unknown>> & { simd: unknown } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/overflow_case.ts'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, SIGLIP_SIMD: simd },
    timeout: 60_000,
  });
  if (run.status !== 0) throw new Error(`overflow_case exited ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!);
}

for (const simd of ['avx512', 'avx2', 'generic']) {
  test(`SIGLIP_SIMD=${simd}: t·S beyond float32 gives no spurious gradient, and no silent Infinity`, (t) => {
    const result = runWith(simd);
    if (result.simd !== simd) t.log(`this CPU runs the ${String(result.simd)} kernels instead of ${simd}`);
    // The float64 reference of the positive pair: loss 0, every gradient 0.
    const one = { n: 1, m: 1, d: 1, logitScale: 80, logitBias: 0 };
    const reference = sigmoidReference({ ...one, image: new Float32Array([100]), text: new Float32Array([100]) });
    t.deepEqual([reference.loss, reference.dLogitScale, reference.dLogitBias, reference.gradImage[0], reference.gradText[0]], [0, 0, 0, 0, 0]);
    // …and the negative case is finite in float64, which float32 logits cannot hold.
    const negative = sigmoidReference({ ...one, image: new Float32Array([100]), text: new Float32Array([-100]) });
    t.true(Number.isFinite(negative.loss) && negative.loss > 3.4e38);
    for (const target of ['fused', 'naive', 'ring']) {
      t.deepEqual(result[`positive:${target}`], { loss: 0, dLogitScale: 0, dLogitBias: 0, dImage: 0, dText: 0 }, `positive pair, ${target}`);
      t.like(result[`negative:${target}`], { error: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', argument: 'options.logitScale' }, `negative logit, ${target}`);
    }
  });
}
