// Every public API once, small, for `valgrind --error-exitcode=9 node test/valgrind/every_api.js`
// (.ci/run): an invalid read or write, or a use of uninitialised memory, in the addon fails CI.
// Plain JavaScript on the compiled package (dist/), because tsx's loader is slow under valgrind.
'use strict';
const sk = require('../../dist/index.js');

function rows(n, d, seed) {
  const data = Float32Array.from({ length: n * d }, (_, k) => Math.sin(seed + 0.7 * k) * 0.3);
  return sk.normalizeRows(sk.matrix(data, n, d)).normalized;
}

async function main() {
  const x = rows(7, 9, 1), y = rows(7, 9, 2), z = rows(5, 9, 3);
  const ids = { imageIds: Int32Array.of(0, 1, 2, 0, 1, 2, 3), textIds: Int32Array.of(3, 2, 1, 0, 1) };
  const out = [];
  for (const method of ['fused', 'naive']) {
    out.push(sk.sigmoidLossSync(x, y, { method }), sk.sigmoidLossWithGradSync(x, z, { method, ...ids }).loss);
    out.push(await sk.sigmoidLoss(x, y, { method, threads: 2 }), (await sk.sigmoidLossWithGrad(x, y, { method })).loss);
  }
  for (const method of ['chunked', 'naive']) {
    out.push(sk.softmaxLossSync(x, y, { method }), sk.softmaxLossWithGradSync(x, z, { method, imageIds: Int32Array.of(0, 1, 2, 0, 1, 2, 3), textIds: Int32Array.of(3, 2, 1, 0, 1) }).loss);
    out.push(await sk.softmaxLoss(x, y, { method }), (await sk.softmaxLossWithGrad(x, y, { method })).loss);
  }
  const n = sk.normalizeRows(x);
  n.backward(new Float32Array(x.data.length).fill(0.1));
  out.push(sk.gemmABt(x.data, y.data, 7, 7, 9, 2)[3]);
  out.push(sk.fromBFloat16(sk.toBFloat16(x.data))[2], sk.fromFloat16(sk.toFloat16(x.data))[2]);
  const info = sk.backendInfo();
  const ring = await sk.Ring.local({ ranks: 3, threads: 1 });
  const r = await ring.sigmoidLossWithGrad([x, y, z], [y, x, z]);
  out.push(r.loss, (await ring.sigmoidLossWithGrad([x, y, z], [y, x, z], { direction: 'two-way' })).loss);
  ring.dispose();
  let errors = 0;
  for (const bad of [() => sk.sigmoidLossSync(x, z), () => sk.softmaxLossSync(x, { ...y, data: new Float32Array(3) }), () => sk.sigmoidLossSync(x, y, { threads: 0 })]) {
    try {
      bad();
    } catch (e) {
      if (typeof e.code === 'string') errors++;
    }
  }
  if (!out.every(Number.isFinite) || errors !== 3) throw new Error(`unexpected results: ${out} / ${errors} errors`);
  console.log(`every API ran (${out.length} results, ${errors} errors as expected) on ${info.simd}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
