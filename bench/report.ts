// Turning case results into the printed table and the machine description of the JSON file.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';

import { type CaseResult, type CaseSpec, caseFlops, METHOD_LABELS, type MethodName, type Pass } from './cases.js';

/** A planned case and what became of it. */
export type CaseOutcome =
  | { status: 'ok'; spec: CaseSpec; result: CaseResult }
  | { status: 'skipped'; spec: CaseSpec; reason: string }
  | { status: 'failed'; spec: CaseSpec; reason: string };

const MiB = 1024 * 1024;

export function gflopsOf(result: CaseResult): number {
  return caseFlops(result.spec) / (result.medianMs * 1e6);
}

function key(method: MethodName, pass: Pass, n: number, d: number): string {
  return `${method}|${pass}|${n}|${d}`;
}

/** Fused memory below this counts as this much when forming ratios (RSS moves in pages). */
const RATIO_FLOOR_BYTES = 1 * MiB;

interface Row {
  cells: string[];
}

/**
 * The table: one row per case, grouped by N. For the fused rows, "vs softmax" compares with
 * the naive softmax of the same N, D and pass (time ratio, and extra-memory ratio), and
 * "% gemm" is its GFLOP/s as a share of the plain A·Bᵀ rate at the same N and D.
 */
export function formatTable(outcomes: readonly CaseOutcome[]): string {
  const ok = new Map<string, CaseResult>();
  for (const o of outcomes) if (o.status === 'ok') ok.set(key(o.spec.method, o.spec.pass, o.spec.n, o.spec.d), o.result);

  const header = ['method', 'pass', 'N', 'D', 'time (ms)', 'GFLOP/s', '% gemm', 'extra MB', 'speed-up', 'mem ratio'];
  const rows: Row[] = [];
  for (const o of outcomes) {
    const { spec } = o;
    const base = [METHOD_LABELS[spec.method], spec.pass, String(spec.n), String(spec.d)];
    if (o.status !== 'ok') {
      rows.push({ cells: [...base, o.status === 'skipped' ? `skipped: ${o.reason}` : `FAILED: ${o.reason}`] });
      continue;
    }
    const r = o.result;
    const gflops = gflopsOf(r);
    const gemm = ok.get(key('gemm', 'gemm', spec.n, spec.d));
    const share = gemm && spec.method !== 'gemm' ? `${((100 * gflops) / gflopsOf(gemm)).toFixed(0)}%` : '';
    const extra = `${r.peakExtraIsUpperBound ? '≤' : ''}${(r.peakExtraBytes / MiB).toFixed(1)}`;
    let speedUp = '';
    let memRatio = '';
    if (spec.method === 'fused') {
      const softmax = ok.get(key('naive-softmax', spec.pass, spec.n, spec.d));
      if (softmax) {
        speedUp = `${(softmax.medianMs / r.medianMs).toFixed(2)}×`;
        // Below a MiB both figures are mostly page noise; a ratio of them would mean nothing.
        if (softmax.peakExtraBytes >= RATIO_FLOOR_BYTES) {
          const clamped = r.peakExtraBytes < RATIO_FLOOR_BYTES;
          memRatio = `${clamped ? '≥' : ''}${(softmax.peakExtraBytes / Math.max(r.peakExtraBytes, RATIO_FLOOR_BYTES)).toFixed(0)}×`;
        }
      }
    }
    rows.push({ cells: [...base, formatMs(r.medianMs), gflops.toFixed(1), share, extra, speedUp, memRatio] });
  }

  // Skipped and failed rows have four cells and a reason; only those four count for widths.
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row.cells.length === header.length || i < 4 ? (row.cells[i] ?? '').length : 0))));
  const numeric = new Set([2, 3, 4, 5, 6, 7, 8, 9]);
  const pad = (text: string, i: number): string => (numeric.has(i) ? text.padStart(widths[i] ?? 0) : text.padEnd(widths[i] ?? 0));
  const lines = [header.map(pad).join('  '), widths.map((w) => '-'.repeat(w)).join('  ')];
  let previousN: number | undefined;
  for (const [index, row] of rows.entries()) {
    const n = outcomes[index]?.spec.n;
    if (previousN !== undefined && n !== previousN) lines.push('');
    previousN = n;
    // Skipped and failed rows: the first four columns, then the reason across the rest.
    lines.push(row.cells.length === header.length ? row.cells.map(pad).join('  ') : [...row.cells.slice(0, 4).map(pad), row.cells[4] ?? ''].join('  '));
  }
  return lines.join('\n');
}

export function formatBytes(bytes: number): string {
  return bytes >= 1024 * MiB ? `${(bytes / (1024 * MiB)).toFixed(1)} GiB` : `${(bytes / MiB).toFixed(0)} MiB`;
}

export function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

/** One progress line for stderr, written as each case finishes. */
export function progressLine(index: number, total: number, o: CaseOutcome): string {
  const { spec } = o;
  const what = `[${index}/${total}] ${METHOD_LABELS[spec.method]} ${spec.pass} N=${spec.n} D=${spec.d}`;
  if (o.status === 'skipped') return `${what}: skipped (${o.reason})`;
  if (o.status === 'failed') return `${what}: FAILED (${o.reason})`;
  const r = o.result;
  const extra = `${r.peakExtraIsUpperBound ? '≤' : ''}${(r.peakExtraBytes / MiB).toFixed(1)} MB extra`;
  return `${what}: ${formatMs(r.medianMs)} ms median of ${r.timesMs.length}, ${gflopsOf(r).toFixed(1)} GFLOP/s, ${extra}`;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number; // logical CPUs the OS reports
  availableParallelism: number;
  totalMemoryBytes: number;
  platform: string;
  arch: string;
  osRelease: string;
  node: string;
  cpuFlags: string[]; // the SIMD-relevant ones, from /proc/cpuinfo (Linux only)
  gitCommit: string | null;
  gitDirty: boolean | null;
  env: Record<string, string>; // SIGLIP_* overrides in effect (e.g. SIGLIP_SIMD)
}

function cpuInfoField(field: string): string | undefined {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const match = new RegExp(`^${field}\\s*:\\s*(.*)$`, 'm').exec(text);
    return match?.[1]?.trim();
  } catch {
    return undefined;
  }
}

function git(args: string[], cwd: string): string | null {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export function describeMachine(repoRoot: string): MachineInfo {
  const flags = (cpuInfoField('flags') ?? '').split(/\s+/).filter((f) => /^(avx|fma|f16c|amx)/.test(f));
  const status = git(['status', '--porcelain', '--untracked-files=no'], repoRoot);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (name.startsWith('SIGLIP_') && value !== undefined) env[name] = value;
  return {
    cpuModel: cpuInfoField('model name') ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    availableParallelism: os.availableParallelism(),
    totalMemoryBytes: os.totalmem(),
    platform: process.platform,
    arch: process.arch,
    osRelease: os.release(),
    node: process.version,
    cpuFlags: flags,
    gitCommit: git(['rev-parse', 'HEAD'], repoRoot),
    gitDirty: status === null ? null : status.length > 0,
    env,
  };
}
