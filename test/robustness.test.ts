// Never crash: each situation that used to end the whole process (issue 10) runs in a child
// process (test/fixtures/crash_cases.ts, out_of_memory.js) and must exit cleanly with what a
// caller can use: the right result, or a catchable error with a code.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import test from 'ava';

import { loadAddon } from '../lib/loader';

const root = path.resolve(__dirname, '..');

interface Child {
  status: number | null;
  signal: NodeJS.Signals | null;
  result: Record<string, unknown> | undefined;
  stderr: string;
}

function runChild(command: string, args: string[], timeoutMs = 90_000): Child {
  const run = spawnSync(command, args, { cwd: root, encoding: 'utf8', timeout: timeoutMs });
  const lastLine = run.stdout.trim().split('\n').pop() ?? '';
  let result: Record<string, unknown> | undefined;
  try {
    result = JSON.parse(lastLine) as Record<string, unknown>;
  } catch {
    result = undefined;
  }
  return { status: run.status, signal: run.signal, result, stderr: run.stderr.slice(-2000) };
}

function crashCase(name: string): Child {
  return runChild(process.execPath, ['--import', 'tsx', '--expose-gc', 'test/fixtures/crash_cases.ts', name]);
}

function describe(child: Child): string {
  return `exit ${child.status}, signal ${child.signal}; stderr: ${child.stderr}`;
}

for (const call of ['sigmoidLoss', 'sigmoidLossWithGrad', 'ring', 'exit']) {
  test(`ending a Worker while its ${call === 'exit' ? 'call runs (process.exit() in the Worker)' : `${call} call runs`} leaves the process running`, (t) => {
    const child = crashCase(`worker:${call}`);
    t.is(child.status, 0, describe(child));
    t.is(child.result?.['rounds'], 5);
    t.true(child.result?.['lossMatches'], 'a call on the main thread afterwards still computes');
  });
}

for (const target of ['', ':ring']) {
  test(`shrinking a resizable ArrayBuffer under a running ${target ? 'ring ' : ''}call: the result of the values at the call`, (t) => {
    const child = crashCase(`resize${target}`);
    t.is(child.status, 0, describe(child));
    t.is(child.result?.['calls'], 20);
    t.true(child.result?.['allEqualTheValuesAtTheCall']);
  });
}

test('transferring a 32 MB input under a running call (then collecting it): the result of the values at the call', (t) => {
  const child = crashCase('transfer');
  t.is(child.status, 0, describe(child));
  t.true(child.result?.['detachedAfter'], 'the buffer really was transferred away');
  t.true(child.result?.['equal'], JSON.stringify(child.result));
});

test('raw binding: an options getter that shrinks image.data is a TypeError (sync) or harmless (Promise: inputs already copied)', (t) => {
  const sync = crashCase('getter:sync');
  t.is(sync.status, 0, describe(sync));
  t.like(sync.result, { rejected: true, name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', argument: 'image.data' });
  const async = crashCase('getter:async');
  t.is(async.status, 0, describe(async));
  t.true(async.result?.['resolved']);
});

const addonPath = loadAddon().path;

function outOfMemory(what: string, limitKb?: number): Child {
  const script = `node test/fixtures/out_of_memory.js '${addonPath}' ${what}`;
  // `ulimit -v` caps the address space, so that an allocation fails here as it would on a
  // machine without the memory.
  return runChild('/bin/sh', ['-c', limitKb === undefined ? script : `ulimit -v ${limitKb} && ${script}`]);
}

test('outputs that cannot be allocated are ERR_SIGLIP_OUT_OF_MEMORY, not an abort (ulimit -v 3 GB)', (t) => {
  for (const what of ['gemm', 'gradients']) {
    const child = outOfMemory(what, 3_000_000);
    t.is(child.status, 0, `${what}: ${describe(child)}`);
    t.like(child.result, { threw: true, code: 'ERR_SIGLIP_OUT_OF_MEMORY' }, what);
  }
});

test('gemmABt with a 2^20 × 2^20 product (4 TiB) is ERR_SIGLIP_OUT_OF_MEMORY on any machine', (t) => {
  const child = outOfMemory('huge');
  t.is(child.status, 0, describe(child));
  t.like(child.result, { threw: true, code: 'ERR_SIGLIP_OUT_OF_MEMORY' });
});
