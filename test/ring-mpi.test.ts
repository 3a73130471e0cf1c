// The ring over MPI: `mpirun -np P` (P = 2, 3, 4) runs test/fixtures/ring_mpi_worker.ts, one
// rank per process; every rank compares its result with the single-device loss of the whole
// batch and prints one JSON line. Then a rank with bad data: every rank must reject, within the
// timeout. Skipped, saying why, where mpirun is missing or the addon was built without MPI.
// Open MPI refuses root and more ranks than cores unless told (CI runs as root on 2 cores).
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

import { loadAddon } from '../lib/loader';

const root = path.resolve(__dirname, '..');
const worker = path.join('test', 'fixtures', 'ring_mpi_worker.ts');

function onPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

const mpirun = onPath('mpirun');
const build = loadAddon().addon.ringBuildInfo();
const why = mpirun === undefined ? 'mpirun is not on PATH (apt-get install openmpi-bin)' : !build.mpi ? 'the addon was built without MPI (no mpicxx when it was compiled)' : '';

interface Run {
  lines: Array<Record<string, unknown>>;
  output: string;
  code: number | null;
  seconds: number;
}

function mpiRun(ranks: number, mode: string, mpirunOptions: string[] = []): Promise<Run> {
  const env = {
    ...process.env,
    OMPI_ALLOW_RUN_AS_ROOT: '1',
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
    OMPI_MCA_rmaps_base_oversubscribe: '1',
  };
  const start = Date.now();
  return new Promise((resolve) => {
    execFile(
      mpirun!,
      [...mpirunOptions, '-np', String(ranks), process.execPath, '--import', 'tsx', worker, mode],
      { cwd: root, env, timeout: 30_000, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const lines = stdout
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        const code = error ? ((error as { code?: number }).code ?? 1) : 0;
        resolve({ lines, output: `${stdout}\n${stderr}`, code: typeof code === 'number' ? code : 1, seconds: (Date.now() - start) / 1000 });
      },
    );
  });
}

interface Case {
  withIds: boolean;
  direction: string;
  ok: boolean;
  errors: Record<string, number>;
  bits: number[];
}

if (why !== '') {
  test.skip(`the MPI ring (mpirun -np 2, 3, 4) — skipped: ${why}`, () => {});
} else {
  for (const ranks of [2, 3, 4]) {
    test.serial(`mpirun -np ${ranks}: every rank equals the single-device result, with the same bits, one-way and two-way`, async (t) => {
      const run = await mpiRun(ranks, 'check');
      t.is(run.code, 0, run.output);
      t.is(run.lines.length, ranks, run.output);
      const byRank = new Map(run.lines.map((l) => [l['rank'] as number, l]));
      t.deepEqual([...byRank.keys()].sort(), [...Array(ranks).keys()], run.output);
      const first = byRank.get(0)!['cases'] as Case[];
      for (const [rank, line] of byRank) {
        t.is(line['size'], ranks);
        const cases = line['cases'] as Case[];
        t.is(cases.length, 4);
        cases.forEach((c, k) => {
          t.true(c.ok, `rank ${rank} ids=${c.withIds} ${c.direction}: ${JSON.stringify(c.errors)}`);
          t.deepEqual(c.bits, first[k]!.bits, `rank ${rank}: loss, ∂s, ∂b differ from rank 0's`);
        });
      }
      t.log(`${ranks} processes in ${run.seconds.toFixed(1)} s`);
    });
  }

  test.serial('mpirun -np 3: bad data on rank 1 makes every rank reject within the timeout', async (t) => {
    const run = await mpiRun(3, 'fail:1');
    t.is(run.code, 0, run.output);
    t.is(run.lines.length, 3, run.output);
    for (const line of run.lines) {
      t.true(line['rejected'], JSON.stringify(line));
      t.true((line['seconds'] as number) < 15, 'before the 15 s timeout');
      if (line['rank'] === 1) {
        t.is(line['name'], 'RangeError');
        t.regex(line['message'] as string, /^Expected only finite values for text\.data but received NaN/);
      } else {
        t.is(line['code'], 'ERR_SIGLIP_RING_FAILED');
        t.regex(line['message'] as string, /stopped: rank 1 failed: Expected only finite values/);
      }
    }
  });

  test.serial('mpirun -np 3 with recovery enabled: when rank 1 is killed, the survivors reject within the timeout and exit', async (t) => {
    // With orte_enable_recovery the launcher keeps the job alive after a rank dies, so each
    // survivor must end by itself: before the fix they waited forever in MPI_Finalize.
    const run = await mpiRun(3, 'die:1', ['--mca', 'orte_enable_recovery', '1']);
    const timeoutSeconds = 3;
    t.true(run.seconds < timeoutSeconds + 12, `every process ended after ${run.seconds} s (timeout ${timeoutSeconds} s)`);
    t.is(run.lines.length, 2, run.output);
    for (const line of run.lines) {
      t.not(line['rank'], 1);
      t.like(line, { rejected: true, code: 'ERR_SIGLIP_RING_FAILED' }, JSON.stringify(line));
      t.true((line['seconds'] as number) < timeoutSeconds + 2, JSON.stringify(line));
    }
    t.log(`2 survivors rejected and exited; the job ended after ${run.seconds.toFixed(1)} s`);
  });

  test.serial('mpirun -np 3 (default): when rank 1 is killed, mpirun ends the whole job within seconds', async (t) => {
    const run = await mpiRun(3, 'die:1');
    t.not(run.code, 0);
    t.true(run.seconds < 10, `the job ended after ${run.seconds} s`);
    t.log(`mpirun ended the job ${run.seconds.toFixed(1)} s after the start (the killed rank dies at once)`);
  });

  test.serial('mpirun -np 3: ranks that disagree on the direction all reject, naming the difference', async (t) => {
    const run = await mpiRun(3, 'disagree');
    t.is(run.code, 0, run.output);
    t.is(run.lines.length, 3, run.output);
    for (const line of run.lines) {
      t.true(line['rejected'], JSON.stringify(line));
      t.regex(line['message'] as string, /ring ranks disagree: rank \d has .*two-way/);
    }
  });

  test.serial('mpirun -np 3: logitScales that differ by 1e-12 are rejected with both values printed exactly', async (t) => {
    const run = await mpiRun(3, 'disagree:scale');
    t.is(run.code, 0, run.output);
    t.is(run.lines.length, 3, run.output);
    for (const line of run.lines) {
      t.true(line['rejected'], JSON.stringify(line));
      const values = [...(line['message'] as string).matchAll(/logitScale ([0-9.e+-]+)/g)].map((m) => m[1]);
      t.is(values.length, 2, line['message'] as string);
      t.not(values[0], values[1], line['message'] as string);
    }
  });

  test.serial('mpirun -np 3: allGather gives every rank all ranks\' bytes; lengths that differ are an error on every rank', async (t) => {
    const run = await mpiRun(3, 'gather');
    t.is(run.code, 0, run.output);
    t.is(run.lines.length, 3, run.output);
    const expected = [0, 1, 2].map((r) => [0, 1, 2, 3, 4].map((k) => 10 * r + k));
    for (const line of run.lines) {
      t.deepEqual(line['gathered'], expected, JSON.stringify(line));
      const mismatch = line['mismatch'] as Record<string, unknown>;
      t.true(mismatch['rejected'], JSON.stringify(line));
      t.is(mismatch['name'], 'RangeError');
      t.regex(mismatch['message'] as string, /^Expected as many bytes as every other rank passes for bytes but received [34] on rank/);
    }
  });

  test.serial('mpirun -np 2: Ring.ncclOverMpi shares rank 0\'s NCCL id over MPI (or, without a GPU, rank 0\'s error)', async (t) => {
    const run = await mpiRun(2, 'nccl');
    t.is(run.code, 0, run.output);
    t.is(run.lines.length, 2, run.output);
    const byRank = new Map(run.lines.map((l) => [l['rank'] as number, l]));
    if (byRank.get(0)?.['rejected'] === false) {
      for (const line of run.lines) t.is(line['kind'], 'nccl', JSON.stringify(line));
      return;
    }
    // No GPU (or no NCCL) here: rank 0 cannot make the id, and says why on every rank.
    const zero = byRank.get(0)!;
    t.regex(zero['code'] as string, /^ERR_SIGLIP_NO_(CUDA|NCCL)$/, JSON.stringify(zero));
    const one = byRank.get(1)!;
    t.is(one['code'], 'ERR_SIGLIP_RING_FAILED', JSON.stringify(one));
    t.true((one['message'] as string).startsWith('MPI rank 0 could not make the NCCL unique id: '), JSON.stringify(one));
    t.true((one['message'] as string).includes((zero['message'] as string).slice(0, 40)), JSON.stringify(run.lines));
  });
}
