// `npm run bench -- --report`: the files of bench/report/ (committed; README shows them).
//
//     results.json   every measurement (CPU case results as case.ts printed them, GPU rows as
//                    merged), the flattened rows the plots draw, the machine, the versions
//                    (package, node, npm, compiler), the git commit, the command
//     time.svg/.png  median time per call vs N, log–log, one line per method, fwd | fwd+bwd
//     memory.svg/.png  peak extra memory vs N, the same layout
//
// and a Markdown summary table, printed, stored in results.json, and (with --update-readme)
// written into README.md between the bench-report markers.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { METHOD_LABELS, REPORT_METHODS } from './cases.js';
import { type GpuRowsResult, type ReportRow } from './gpu_rows.js';
import { writeLinePlot } from './plot.js';
import { type CaseOutcome, gflopsOf, type MachineInfo } from './report.js';

const MiB = 1024 * 1024;
/** Memory on a log axis: figures below this (page noise, or truly none) are drawn at it. */
const MEMORY_FLOOR_MB = 0.1;

export const README_BEGIN = '<!-- bench-report:begin (npm run bench -- --report --update-readme rewrites this part) -->';
export const README_END = '<!-- bench-report:end -->';

/** Versions of what produced the figures; a tool that cannot be asked cheaply is null. */
export interface Versions {
  package: string;
  node: string;
  v8: string;
  npm: string | null;
  compiler: string | null;
}

function firstLineOf(command: string, args: string[]): string | null {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).split('\n')[0]?.trim() ?? null;
  } catch {
    return null;
  }
}

export function collectVersions(repoRoot: string): Versions {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  // Under `npm run`, npm says who it is in the environment; otherwise ask it (a fraction of a second).
  const agent = /npm\/(\S+)/.exec(process.env.npm_config_user_agent ?? '');
  return {
    package: pkg.version,
    node: process.version,
    v8: process.versions.v8,
    npm: agent?.[1] ?? firstLineOf('npm', ['--version']),
    // node-gyp's Makefile compiles with $CXX, else make's default (g++).
    compiler: firstLineOf(process.env.CXX ?? 'g++', ['--version']),
  };
}

/** The CPU outcomes as report rows (cases that ran; skipped and failed ones stay in `cases`). */
export function cpuRows(outcomes: readonly CaseOutcome[], device: string): ReportRow[] {
  const rows: ReportRow[] = [];
  for (const o of outcomes) {
    if (o.status !== 'ok') continue;
    const label = METHOD_LABELS[o.spec.method];
    rows.push({
      source: 'cpu',
      method: label,
      pass: o.spec.pass,
      n: o.spec.n,
      d: o.spec.d,
      dtype: 'fp32',
      device,
      timeMs: o.result.medianMs,
      peakExtraMB: o.result.peakExtraBytes / MiB,
      gflops: gflopsOf(o.result),
      series: o.spec.d === 768 || o.spec.method === 'gemm' ? label : `${label} (D=${o.spec.d})`,
    });
  }
  return rows;
}

const SERIES_ORDER = REPORT_METHODS.map((m) => METHOD_LABELS[m]);

/** The series of `rows`: the report's methods in their order (a GPU's fused sigmoid first too), then the rest by name. */
function seriesOrderOf(rows: readonly ReportRow[]): string[] {
  const rank = (s: string): number => {
    const at = SERIES_ORDER.findIndex((label) => s === label || s.startsWith(`${label} (`));
    return at < 0 ? SERIES_ORDER.length : at;
  };
  return [...new Set(rows.map((r) => r.series))].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function formatTime(ms: number): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2)} ms`;
}

function formatMB(mb: number | null): string {
  if (mb === null) return '–';
  return mb >= 100 ? `${mb.toFixed(0)} MB` : `${mb.toFixed(1)} MB`;
}

/**
 * The summary: one row per pass and N, one column per method, each cell "time · extra memory".
 * CPU rows and GPU rows get a table each (a GPU's methods and dtypes differ).
 */
export function summaryMarkdown(rows: readonly ReportRow[]): string {
  const tables: string[] = [];
  for (const source of ['cpu', 'gpu'] as const) {
    const own = rows.filter((r) => r.source === source && (r.pass === 'fwd' || r.pass === 'fwd+bwd'));
    if (own.length === 0) continue;
    const series = seriesOrderOf(own);
    const keys = [...new Set(own.map((r) => `${r.pass}|${r.n}|${r.d}`))].sort((a, b) => {
      const [pa, na, da] = a.split('|');
      const [pb, nb, db] = b.split('|');
      return (pa === pb ? 0 : pa === 'fwd' ? -1 : 1) || Number(da) - Number(db) || Number(na) - Number(nb);
    });
    const lines = [`| pass | N | D | ${series.join(' | ')} |`, `| --- | ---: | ---: |${series.map(() => ' ---: |').join('')}`];
    for (const key of keys) {
      const [pass, n, d] = key.split('|');
      const cells = series.map((s) => {
        const r = own.find((row) => row.series === s && `${row.pass}|${row.n}|${row.d}` === key);
        return r === undefined ? '' : `${formatTime(r.timeMs)} · ${formatMB(r.peakExtraMB)}`;
      });
      lines.push(`| ${pass} | ${n} | ${d} | ${cells.join(' | ')} |`);
    }
    tables.push(lines.join('\n'));
  }
  return tables.join('\n\n');
}

export interface ReportInput {
  dir: string;
  repoRoot: string;
  command: string;
  date: string;
  elapsedSeconds: number | null;
  /** 1-minute load average before and after the run: the cores are shared, so it says how quiet they were. */
  loadAverage: { start: number; end: number } | null;
  machine: MachineInfo;
  versions: Versions;
  backend: unknown;
  options: unknown;
  /** Methods left out because the library does not implement them yet, with why. */
  unavailable: Record<string, string>;
  outcomes: readonly CaseOutcome[];
  gpu: readonly GpuRowsResult[];
}

/** Writes results.json and the four plots into `input.dir`; resolves to the summary table. */
export async function writeReport(input: ReportInput): Promise<{ summary: string; files: string[] }> {
  const machineLine = `${input.machine.cpuModel}, ${input.machine.availableParallelism} cores`;
  const rows = [...cpuRows(input.outcomes, input.machine.cpuModel), ...input.gpu.flatMap((g) => g.rows)];
  const summary = summaryMarkdown(rows);
  const results = {
    date: input.date,
    command: input.command,
    elapsedSeconds: input.elapsedSeconds,
    loadAverage: input.loadAverage,
    gitCommit: input.machine.gitCommit,
    gitDirty: input.machine.gitDirty,
    machine: input.machine,
    versions: input.versions,
    backend: input.backend,
    options: input.options,
    unavailableMethods: input.unavailable,
    summaryMarkdown: summary,
    rows,
    cases: input.outcomes.map((o) => (o.status === 'ok' ? { status: o.status, ...o.result } : o)),
    gpu: input.gpu.map((g) => ({ file: path.relative(input.repoRoot, g.file), device: g.device, rows: g.rows.length, skipped: g.skipped })),
  };
  const files: string[] = [];
  const json = path.join(input.dir, 'results.json');
  writeFileSync(json, `${JSON.stringify(results, null, 1)}\n`);
  files.push(json);

  const plotted = rows.filter((r) => r.pass === 'fwd' || r.pass === 'fwd+bwd');
  const common = {
    x: { title: 'N (= M, the batch size)', log: true },
    seriesOrder: seriesOrderOf(plotted),
    facetOrder: ['fwd', 'fwd+bwd'],
  };
  const ds = [...new Set(plotted.filter((r) => r.source === 'cpu').map((r) => r.d))];
  const where = `${ds.length === 1 ? `D = ${ds[0]}, ` : ''}${machineLine}${input.gpu.length > 0 ? ` + ${input.gpu.map((g) => g.device).join(', ')}` : ''}`;
  // vega, vega-lite and @resvg/resvg-js are devDependencies: an installed package's
  // `npx siglip-kernels bench --report` may lack them, and then writes the JSON and the table only.
  const missing = await missingPlotLibraries();
  if (missing.length > 0) {
    process.stderr.write(`bench: no plots (${missing.join(', ')} not installed: npm install ${missing.join(' ')} adds them)\n`);
    return { summary, files };
  }
  const time = await writeLinePlot(
    plotted.map((r) => ({ x: r.n, y: r.timeMs, series: r.series, facet: r.pass, gflops: r.gflops })),
    { ...common, out: path.join(input.dir, 'time'), title: 'Time per call (median)', subtitle: where, y: { title: 'time (ms)', log: true } },
  );
  const memory = await writeLinePlot(
    plotted
      .filter((r) => r.peakExtraMB !== null)
      .map((r) => ({ x: r.n, y: Math.max(MEMORY_FLOOR_MB, r.peakExtraMB!), series: r.series, facet: r.pass, measuredMB: r.peakExtraMB })),
    {
      ...common,
      out: path.join(input.dir, 'memory'),
      title: 'Peak extra memory (beyond inputs and gradients)',
      subtitle: `${where}; below ${MEMORY_FLOOR_MB} MB drawn at ${MEMORY_FLOOR_MB}`,
      y: { title: 'peak extra memory (MB)', log: true },
    },
  );
  files.push(time.svg, time.png, memory.svg, memory.png);
  return { summary, files };
}

/** The plotting libraries that cannot be loaded here (empty when all can). */
async function missingPlotLibraries(): Promise<string[]> {
  const missing: string[] = [];
  for (const name of ['vega', 'vega-lite', '@resvg/resvg-js']) {
    try {
      await import(name);
    } catch {
      missing.push(name);
    }
  }
  return missing;
}

/**
 * Rewrites the part of README.md between README_BEGIN and README_END: the plots, the summary
 * table, the command and the machine. Returns false (and changes nothing) when the markers are missing.
 */
export function updateReadme(
  readmePath: string,
  summary: string,
  run: { command: string; machine: MachineInfo; versions: Versions; date: string; elapsedSeconds: number | null; loadAverage: { start: number; end: number } | null },
): boolean {
  const { command, machine, versions, date, elapsedSeconds, loadAverage } = run;
  const text = readFileSync(readmePath, 'utf8');
  const begin = text.indexOf(README_BEGIN);
  const end = text.indexOf(README_END);
  if (begin < 0 || end < begin) return false;
  const commit = machine.gitCommit === null ? 'unknown commit' : `commit ${machine.gitCommit.slice(0, 7)}${machine.gitDirty ? ' with local changes' : ''}`;
  const took = elapsedSeconds === null ? '' : `, ${Math.round(elapsedSeconds)} s in all`;
  const load = loadAverage === null ? '' : `, load average ${loadAverage.start.toFixed(1)} at the start${loadAverage.start < 1 ? '' : ' (the cores were shared with other work: figures are noisy)'}`;
  const body = [
    '',
    '',
    `\`${command}\` on ${machine.cpuModel} (${machine.availableParallelism} cores, ${machine.cpuFlags.filter((f) => f.startsWith('avx512f') || f === 'avx2').join(', ') || 'no AVX2'}), ` +
      `node ${versions.node}, ${versions.compiler ?? 'compiler unknown'}; ${commit}, ${date.slice(0, 10)}${took}${load}:`,
    '',
    '![time per call vs N](bench/report/time.png)',
    '',
    '![peak extra memory vs N](bench/report/memory.png)',
    '',
    'Each cell: median time of one call · peak memory beyond the inputs and the gradients.',
    '',
    summary,
    '',
  ].join('\n');
  writeFileSync(readmePath, text.slice(0, begin + README_BEGIN.length) + body + text.slice(end));
  return true;
}
