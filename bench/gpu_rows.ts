// Reading the GPU check's JSON into report rows, leniently (bench/NOTES.md, "GPU rows").
//
// The GPU timing tools (test/native/cuda_check_timing.cpp `--timing --json`,
// bench/gpu/torch_peer.py `--json`) write `{ device, d, cases: [{ case, pass, n, d, dtype, status, ms, peak_extra_mb, … }] }`.
// Other spellings are accepted too, so a hand-made or future file merges without a converter:
// the rows may be the top-level array or under `cases`, `rows` or `results`; the method under
// `method` or `case` (a trailing " fwd" / " fwd+bwd" is the pass when `pass` is missing); N
// under `n` or `N`; time under `ms`, `time_ms`, `timeMs`, `time ms` or `median_ms`; peak
// memory under `peak_extra_mb`, `peak_mb`, `peakMB`, `peak MB`, `extra_mb` or `peakExtraMB`.
// Rows whose `status` is present and not "ok", or that lack N or a time, are left out and
// counted.
import { readFileSync } from 'node:fs';

/** One measurement as the report plots and tabulates it (CPU and GPU alike). */
export interface ReportRow {
  source: 'cpu' | 'gpu';
  /** The method's name, e.g. 'fused sigmoid', 'naive softmax', 'torch eager'. */
  method: string;
  /** 'fwd' or 'fwd+bwd' (other passes are kept in results.json but not plotted). */
  pass: string;
  n: number;
  d: number;
  /** 'fp32' on the CPU; the GPU's 'tf32', 'bf16', … */
  dtype: string;
  /** The CPU model or GPU name. */
  device: string;
  /** Median time of one call, ms. */
  timeMs: number;
  /** Peak memory beyond inputs and outputs (host RSS, or device memory), MiB; null when not measured. */
  peakExtraMB: number | null;
  /** GEMM work rate (2·N·M·D per product), when known. */
  gflops: number | null;
  /** The plot line it belongs to. */
  series: string;
}

/** What a GPU JSON file gave. */
export interface GpuRowsResult {
  file: string;
  device: string;
  rows: ReportRow[];
  /** Rows left out (not "ok", or missing N or time). */
  skipped: number;
}

type Json = Record<string, unknown>;

const firstNumber = (row: Json, names: readonly string[]): number | null => {
  for (const name of names) {
    const v = row[name];
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n === 'number' && Number.isFinite(n)) return n;
  }
  return null;
};

const firstString = (row: Json, names: readonly string[]): string | null => {
  for (const name of names) {
    const v = row[name];
    if (typeof v === 'string' && v.trim() !== '') return v.trim();
  }
  return null;
};

/** 'NVIDIA H100 80GB HBM3' → 'H100'; other names as given. */
export function shortGpuName(name: string): string {
  const match = /^NVIDIA\s+(\S+)/i.exec(name);
  return match?.[1] ?? name;
}

/** The GPU tools call the fused sigmoid loss "fused"; the report names it as the CPU rows do. */
function methodName(raw: string): string {
  return raw === 'fused' ? 'fused sigmoid' : raw;
}

/** Parses one GPU JSON document (already read); `file` only labels messages. */
export function gpuRowsFrom(document: unknown, file: string): GpuRowsResult {
  const root: Json = Array.isArray(document) ? { cases: document } : typeof document === 'object' && document !== null ? (document as Json) : {};
  const list = [root.cases, root.rows, root.results].find(Array.isArray) as unknown[] | undefined;
  if (list === undefined) throw new Error(`${file}: expected an array of rows, or an object with "cases", "rows" or "results", but found none`);
  const topDevice = firstString(root, ['device', 'gpu', 'device_name']) ?? 'GPU';
  const topD = firstNumber(root, ['d', 'D']);
  const rows: ReportRow[] = [];
  let skipped = 0;
  for (const item of list) {
    if (typeof item !== 'object' || item === null) {
      skipped++;
      continue;
    }
    const row = item as Json;
    const status = firstString(row, ['status']);
    const n = firstNumber(row, ['n', 'N']);
    const timeMs = firstNumber(row, ['ms', 'time_ms', 'timeMs', 'time ms', 'median_ms', 'medianMs']);
    let method = firstString(row, ['method', 'case', 'name']) ?? '?';
    let pass = firstString(row, ['pass']);
    if (status !== null && status !== 'ok') {
      skipped++;
      continue;
    }
    if (n === null || timeMs === null || timeMs <= 0) {
      skipped++;
      continue;
    }
    const suffix = /\s+(fwd\+bwd|fwd)$/.exec(method);
    if (suffix) {
      pass ??= suffix[1]!;
      method = method.slice(0, suffix.index);
    }
    method = methodName(method);
    const d = firstNumber(row, ['d', 'D']) ?? topD ?? 0;
    const dtype = firstString(row, ['dtype', 'precision']) ?? 'fp32';
    const device = firstString(row, ['device', 'gpu']) ?? topDevice;
    const tflops = firstNumber(row, ['tflops', 'TFLOP/s']);
    const gflops = firstNumber(row, ['gflops', 'GFLOP/s']) ?? (tflops === null ? null : 1000 * tflops);
    rows.push({
      source: 'gpu',
      method,
      pass: pass ?? 'fwd+bwd',
      n,
      d,
      dtype,
      device,
      timeMs,
      peakExtraMB: firstNumber(row, ['peak_extra_mb', 'peak_mb', 'peakMB', 'peak MB', 'extra_mb', 'peakExtraMB']),
      gflops,
      series: `${method} (${shortGpuName(device)} ${dtype})`,
    });
  }
  return { file, device: topDevice, rows, skipped };
}

/** Reads and parses a GPU JSON file (see the top of this file for what it accepts). */
export function readGpuRows(file: string): GpuRowsResult {
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: cannot read it as JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  return gpuRowsFrom(document, file);
}
