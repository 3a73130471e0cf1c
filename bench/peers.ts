// The package against its Python peer on the CPU: eager PyTorch's SigLIP loss (open_clip's
// SigLipLoss; Hugging Face's SiglipModel and big_vision compute the same materialised N×N
// logits), forward and backward, on the same inputs, with the same threads. Each side runs in
// a fresh process per case (bench/peers/torch_cpu.py; this file with --child), where the first
// call's peak resident memory above the RSS before it, less the gradients, is that side's
// working memory (as bench/case.ts measures it; Linux); the sides alternate, round after
// round, and the table gives each round's ratio (the machine is shared).
//
//   npx tsx bench/peers.ts [--n 1024,4096,8192] [--d 768] [--threads 2] [--runs 3] [--rounds 2]
//                          [--python /usr/bin/python3]
//
// Needs a python3 with PyTorch (Debian/Ubuntu: apt-get install python3-torch); without one it
// says so and exits 2. The losses and gradients of both sides are compared too (relative
// differences), so the timing compares the same computation.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { matrix, sigmoidLossSync, sigmoidLossWithGradSync } from '../lib/index';
import { median, seededUniform } from './cases';
import { pad, unitRows } from './ring_support';

/** What one side's process reports. */
interface SideResult {
  ms: number[];
  loss: number;
  dLogitScale: number;
  dLogitBias: number;
  sumAbsDImage: number;
  sumAbsDText: number;
  extra_mb: number;
  torch?: string;
  blas?: string;
  error?: string;
}

function option(name: string, fallback: string): string {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 && k + 1 < process.argv.length ? process.argv[k + 1]! : fallback;
}

function readRows(path: string, n: number, d: number): Float32Array {
  const bytes = readFileSync(path);
  if (bytes.length !== n * d * 4) throw new Error(`${path}: ${bytes.length} bytes, expected ${n * d * 4}`);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

const sumAbs = (values: Float32Array): number => values.reduce((s, v) => s + Math.abs(v), 0);

/** --child: this package's fused loss on the files, as torch_cpu.py runs PyTorch's. */
function child(): void {
  const n = Number(option('n', '0')), d = Number(option('d', '0'));
  const threads = Number(option('threads', '2')), runs = Number(option('runs', '3'));
  const precision = option('precision', 'fp32') as 'fp32' | 'bf16';
  const image = matrix(readRows(option('image', ''), n, d), n, d);
  const text = matrix(readRows(option('text', ''), n, d), n, d);
  const call = () => sigmoidLossWithGradSync(image, text, { threads, precision, logitScale: Math.log(10), logitBias: -10 });
  // The addon loaded and its threads started first, as PyTorch's side does; then the memory of
  // the first real call as bench/case.ts measures it: its peak resident memory (the mark reset
  // to the current RSS) above the RSS before it, less the gradients it returns.
  sigmoidLossSync(matrix(new Float32Array([1, 0]), 1, 2), matrix(new Float32Array([0, 1]), 1, 2), { threads });
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  writeFileSync('/proc/self/clear_refs', '5');
  const base = process.memoryUsage.rss();
  let result = call(); // untimed, as the peer's first call
  const extraMb = (process.resourceUsage().maxRSS * 1024 - base - 2 * n * d * 4) / 2 ** 20;
  const ms: number[] = [];
  for (let r = 0; r < runs; ++r) {
    gc?.();
    const t0 = performance.now();
    result = call();
    ms.push(performance.now() - t0);
  }
  const out: SideResult = {
    ms,
    loss: result.loss,
    dLogitScale: result.grad.logitScale,
    dLogitBias: result.grad.logitBias,
    sumAbsDImage: sumAbs(result.grad.image),
    sumAbsDText: sumAbs(result.grad.text),
    extra_mb: extraMb,
  };
  console.log(JSON.stringify(out));
}

function runSide(command: string, args: string[]): SideResult {
  const run = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (run.error !== undefined) return { error: `${command}: ${run.error.message}` } as SideResult;
  const line = run.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as SideResult;
  } catch {
    return { error: `${command} exited ${run.status}: ${(run.stderr || run.stdout).trim().slice(-400)}` } as SideResult;
  }
}

const relative = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);

function main(): void {
  if (process.argv.includes('--child')) return child();
  if (process.argv.includes('--help')) {
    console.log('npx tsx bench/peers.ts [--n 1024,4096,8192] [--d 768] [--threads 2] [--runs 3] [--rounds 2] [--python PATH]');
    return;
  }
  const ns = option('n', '1024,4096,8192').split(',').map(Number);
  const d = Number(option('d', '768'));
  const threads = option('threads', '2'), runs = option('runs', '3');
  const rounds = Number(option('rounds', '2'));
  const python = option('python', '/usr/bin/python3');
  const peer = join(__dirname, 'peers', 'torch_cpu.py');
  if (!existsSync(peer)) {
    console.error(`bench/peers.ts: ${peer} is missing: this benchmark runs from a clone of the repository (npx tsx bench/peers.ts)`);
    process.exitCode = 2;
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'siglip-peers-'));
  const rows = [['N', 'D', 'round', 'torch ms', 'fp32 ms', 'torch / fp32', 'bf16 ms', 'torch / bf16', 'torch MB', 'fp32 MB', 'bf16 MB', 'loss Δ', 'grad Δ (fp32)']];
  let about = '';
  try {
    for (const n of ns) {
      const next = seededUniform(n + d);
      const imagePath = join(dir, `image-${n}.f32`), textPath = join(dir, `text-${n}.f32`);
      writeFileSync(imagePath, unitRows(next, n, d));
      writeFileSync(textPath, unitRows(next, n, d));
      const common = ['--image', imagePath, '--text', textPath, '--n', String(n), '--d', String(d), '--threads', threads, '--runs', runs];
      const ours = (precision: string) =>
        runSide(process.execPath, [...process.execArgv, '--expose-gc', __filename, '--child', '--precision', precision, ...common]);
      for (let round = 1; round <= rounds; ++round) {
        const torch = runSide(python, [peer, ...common]);
        if (torch.error !== undefined) {
          console.error(`bench/peers.ts: the PyTorch side failed: ${torch.error}\n(install PyTorch, e.g. apt-get install python3-torch, or pass --python)`);
          process.exitCode = 2;
          return;
        }
        about = `PyTorch ${torch.torch} (BLAS: ${torch.blas}), ${threads} threads`;
        const fp32 = ours('fp32');
        const bf16 = ours('bf16');
        for (const side of [fp32, bf16]) if (side.error !== undefined) throw new Error(side.error);
        const [t, f, b] = [median(torch.ms), median(fp32.ms), median(bf16.ms)];
        const gradDelta = Math.max(
          relative(fp32.dLogitScale, torch.dLogitScale),
          relative(fp32.dLogitBias, torch.dLogitBias),
          relative(fp32.sumAbsDImage, torch.sumAbsDImage),
          relative(fp32.sumAbsDText, torch.sumAbsDText),
        );
        rows.push([
          String(n), String(d), String(round),
          t.toFixed(1), f.toFixed(1), (t / f).toFixed(2), b.toFixed(1), (t / b).toFixed(2),
          torch.extra_mb.toFixed(1), fp32.extra_mb.toFixed(1), bf16.extra_mb.toFixed(1),
          relative(fp32.loss, torch.loss).toExponential(1), gradDelta.toExponential(1),
        ]);
        console.error(`N=${n} round ${round}: torch ${t.toFixed(1)} ms, fp32 ${f.toFixed(1)} ms, bf16 ${b.toFixed(1)} ms`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`SigLIP loss forward + backward, eager PyTorch vs siglip-kernels (fused; fp32, and bf16 GEMMs), ${about}`);
  console.log('ms: median of the timed runs; MB: extra memory of a call (peak RSS above the RSS before it, less the gradients); Δ: relative difference to PyTorch');
  console.log(pad(rows));
}

main();
