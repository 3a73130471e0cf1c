// scripts/check_layers.js: the tree follows the include graph of docs/ARCHITECTURE.md, and
// the checker does find a forbidden edge (a small tree made here with one of each kind).
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const script = path.join(__dirname, '..', 'scripts', 'check_layers.js');

test('csrc/ and lib/ include only across allowed edges', (t) => {
  const out = execFileSync(process.execPath, [script], { encoding: 'utf8' });
  t.regex(out, /follow docs\/ARCHITECTURE\.md/);
});

test('a forbidden edge fails the check, naming the file and line', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'siglip-layers-'));
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  };
  try {
    write('csrc/core/errors.h', '#pragma once\n');
    write('csrc/cpu/gemm.h', '#pragma once\n#include "core/errors.h"\n');
    write('csrc/core/validate.cpp', '#include "errors.h"\n#include "cpu/gemm.h"\n'); // core → cpu: upward
    write('csrc/ring/ring.cpp', '#include <napi.h>\n'); // N-API outside the addon
    write('lib/index.ts', "export { x } from '../test/helpers/x';\n"); // lib → test
    write('lib/ring/base.ts', "import { LocalRing } from './local';\n"); // the cycle
    write('csrc/addon/convert.h', '#pragma once\n');
    write('test/native/x_check.cpp', '#include "core/errors.h"\n#include "addon/convert.h"\n'); // checks → addon
    const run = spawnSync(process.execPath, [script, root], { encoding: 'utf8' });
    t.is(run.status, 1);
    t.regex(run.stderr, /csrc\/core\/validate\.cpp:2: csrc\/core includes csrc\/cpu\/gemm\.h/);
    t.regex(run.stderr, /csrc\/ring\/ring\.cpp:1: includes <napi\.h>/);
    t.regex(run.stderr, /lib\/index\.ts:1: lib\/ imports test\/helpers\/x/);
    t.regex(run.stderr, /lib\/ring\/base\.ts:1: .* at run time/);
    t.notRegex(run.stderr, /csrc\/cpu\/gemm\.h:/, 'cpu → core is allowed');
    t.regex(run.stderr, /test\/native\/x_check\.cpp:2: test\/native includes csrc\/addon\/convert\.h/);
    t.notRegex(run.stderr, /x_check\.cpp:1:/, 'the checks may include the core');
    t.regex(run.stderr, /5 forbidden edge\(s\)/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
