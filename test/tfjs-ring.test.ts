// siglip-kernels/tfjs's ringSigmoidLoss over MPI: `mpirun -np P` runs
// test/fixtures/tfjs_ring_worker.ts, one rank per process; each rank trains one data-parallel
// step (ring, then attach() under tf.variableGrads, then ∂L/∂W summed with ring.allGather) and
// compares it with the single-device step on the whole batch. Skipped, saying why, where
// mpirun is missing or the addon was built without MPI.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

import { loadAddon } from '../lib/loader';

const root = path.resolve(__dirname, '..');
const worker = path.join('test', 'fixtures', 'tfjs_ring_worker.ts');
const mpirun = (process.env['PATH'] ?? '')
  .split(path.delimiter)
  .map((dir) => path.join(dir, 'mpirun'))
  .find((file) => existsSync(file));
const why = mpirun === undefined ? 'mpirun is not on PATH (apt-get install openmpi-bin)' : !loadAddon().addon.ringBuildInfo().mpi ? 'the addon was built without MPI' : '';

interface Case {
  withIds: boolean;
  errors: Record<string, number>;
  leaked: number;
}

if (why !== '') {
  test.skip(`ringSigmoidLoss over MPI — skipped: ${why}`, () => {});
} else {
  for (const ranks of [2, 3]) {
    test.serial(`mpirun -np ${ranks}: one ringSigmoidLoss step equals the single-device step (loss, ∂W summed over ranks, ∂s, ∂b)`, async (t) => {
      // Open MPI refuses root and more ranks than cores unless told (CI runs as root on 2 cores).
      const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };
      const { stdout, output, code } = await new Promise<{ stdout: string; output: string; code: number }>((resolve) => {
        execFile(mpirun!, ['-np', String(ranks), process.execPath, '--import', 'tsx', worker], { cwd: root, env, timeout: 60_000, maxBuffer: 16 << 20 }, (error, out, err) => {
          resolve({ stdout: out, output: `${out}\n${err}`, code: error ? 1 : 0 });
        });
      });
      t.is(code, 0, output);
      const lines = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { rank: number; size: number; cases: Case[] });
      t.deepEqual(lines.map((l) => l.rank).sort(), [...Array(ranks).keys()], output);
      for (const line of lines) {
        t.is(line.size, ranks);
        t.is(line.cases.length, 2, output);
        for (const c of line.cases) {
          const where = `rank ${line.rank}, ${c.withIds ? 'with' : 'without'} ids`;
          t.true(c.errors['loss']! <= 1e-5, `${where}: loss ${c.errors['loss']}`);
          for (const key of ['w', 'logitScale', 'logitBias']) t.true(c.errors[key]! <= 1e-4, `${where}: ∂${key} relative error ${c.errors[key]}`);
          t.is(c.leaked, 0, `${where}: tensors leaked`);
        }
      }
    });
  }
}
