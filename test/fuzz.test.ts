// A bounded fuzz run of the public API (test/fixtures/fuzz_api.ts) in child processes: a fixed
// seed, and a random one printed for replay (`node --import tsx test/fixtures/fuzz_api.ts
// <seed> 3000`). A crash fails the test through the exit status; any error without a code
// (or an argument error without its argument), a non-finite result, or a Promise result that
// differs from the synchronous one is a violation.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import test from 'ava';

const root = path.resolve(__dirname, '..');
const CALLS = 3000;

function fuzz(seed: number): { status: number | null; signal: string | null; summary: Record<string, unknown> | undefined; stderr: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/fuzz_api.ts', String(seed), String(CALLS)], {
    cwd: root,
    encoding: 'utf8',
    timeout: 100_000,
  });
  let summary: Record<string, unknown> | undefined;
  try {
    summary = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
  } catch {
    summary = undefined;
  }
  return { status: run.status, signal: run.signal, summary, stderr: run.stderr.slice(-3000) };
}

const randomSeed = (Date.now() ^ (process.pid << 8)) >>> 0 || 1;
for (const [label, seed] of [['fixed', 12345], ['random', randomSeed]] as const) {
  test(`${CALLS} random calls across the public API (${label} seed ${seed}): no crash, every error coded and named`, (t) => {
    t.log(`replay: node --import tsx test/fixtures/fuzz_api.ts ${seed} ${CALLS}`);
    const run = fuzz(seed);
    t.is(run.status, 0, `exit ${run.status}, signal ${run.signal}: ${run.stderr}`);
    const s = run.summary!;
    t.is(s['violations'], 0, JSON.stringify(s['first'], null, 1));
    t.is(s['calls'], CALLS);
    // Not vacuous: a fair share of the calls are valid and compute, sync and as Promises.
    t.true((s['resolved'] as number) > CALLS / 10, JSON.stringify(s));
    t.true((s['promiseChecks'] as number) > CALLS / 20, JSON.stringify(s));
    t.log(JSON.stringify({ ...s, first: undefined }));
  });
}
