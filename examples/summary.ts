// Aggregation over seeds and the terminal tables of the example.
import type { CorruptionKind } from './task.js';
import { CORRUPTION_LABELS } from './task.js';
import type { LossKind, Metrics, RunResult } from './train.js';

/** One finished training run and what defines it. */
export interface RunRecord extends RunResult {
  experiment: 'batch-sweep' | 'noise';
  loss: LossKind;
  batchSize: number;
  seed: number;
  corruption: CorruptionKind;
  corruptionRate: number;
  learningRate: number;
}

/** Mean, sample standard deviation, minimum and maximum of a few values. */
export interface Spread {
  mean: number;
  std: number;
  min: number;
  max: number;
  n: number;
}

export function spread(values: readonly number[]): Spread {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(variance), min: Math.min(...values), max: Math.max(...values), n };
}

export const METRICS: readonly (keyof Metrics)[] = ['zeroShot', 'imageToText', 'textToImage'];
export const METRIC_LABELS: Record<keyof Metrics, string> = {
  zeroShot: 'zero-shot accuracy',
  imageToText: 'image→text R@1',
  textToImage: 'text→image R@1',
};

/** Per metric: the spread of each loss over seeds, and of the paired difference sigmoid − softmax. */
export type MetricSummary = Record<keyof Metrics, { sigmoid: Spread; softmax: Spread; difference: Spread }>;

/** One configuration (batch size, corruption and rate) summarised over its seeds. */
export interface ConfigSummary {
  batchSize: number;
  corruption: CorruptionKind;
  corruptionRate: number;
  steps: number;
  metrics: MetricSummary;
  /** Mean learned temperature and bias at the end of training. */
  temperature: { sigmoid: number; softmax: number };
  bias: number;
}

/** Groups runs of one configuration and pairs sigmoid with softmax by seed. */
export function summarise(runs: readonly RunRecord[]): ConfigSummary[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of runs) {
    const key = `${r.batchSize}|${r.corruption}|${r.corruptionRate}`;
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    list.push(r);
  }
  const out: ConfigSummary[] = [];
  for (const list of groups.values()) {
    const bySeed = (loss: LossKind): Map<number, RunRecord> => new Map(list.filter((r) => r.loss === loss).map((r) => [r.seed, r]));
    const sig = bySeed('sigmoid');
    const soft = bySeed('softmax');
    const seeds = [...sig.keys()].filter((s) => soft.has(s));
    if (seeds.length === 0) continue;
    const metric = (m: keyof Metrics): MetricSummary[keyof Metrics] => ({
      sigmoid: spread(seeds.map((s) => sig.get(s)![m])),
      softmax: spread(seeds.map((s) => soft.get(s)![m])),
      difference: spread(seeds.map((s) => sig.get(s)![m] - soft.get(s)![m])),
    });
    const first = list[0]!;
    out.push({
      batchSize: first.batchSize,
      corruption: first.corruption,
      corruptionRate: first.corruptionRate,
      steps: first.steps,
      metrics: { zeroShot: metric('zeroShot'), imageToText: metric('imageToText'), textToImage: metric('textToImage') },
      temperature: {
        sigmoid: spread(seeds.map((s) => sig.get(s)!.temperature)).mean,
        softmax: spread(seeds.map((s) => soft.get(s)!.temperature)).mean,
      },
      bias: spread(seeds.map((s) => sig.get(s)!.bias ?? 0)).mean,
    });
  }
  return out;
}

/** "64.2 ± 0.7" (percent, mean ± sample std over seeds; no ± for a single seed). */
export function pct(s: Spread, signed = false): string {
  const mean = (100 * s.mean).toFixed(1);
  const head = signed && s.mean >= 0 ? `+${mean}` : mean;
  return s.n > 1 ? `${head} ± ${(100 * s.std).toFixed(1)}` : head;
}

/** A Markdown table (pipes and a separator line), which reads in a terminal and pastes into README. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((x, c) => x.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The batch-size table: each metric for both losses and their paired difference. */
export function batchTable(summaries: readonly ConfigSummary[]): string {
  const header = ['batch', 'steps', 'zero-shot sigmoid', 'zero-shot softmax', 'Δ sig − soft', 'I→T sigmoid', 'I→T softmax', 'Δ', 'T→I sigmoid', 'T→I softmax', 'Δ', 't sig / soft', 'b sig'];
  const rows = [...summaries]
    .sort((a, b) => a.batchSize - b.batchSize)
    .map((s) => [
      String(s.batchSize),
      String(s.steps),
      ...METRICS.flatMap((m) => [pct(s.metrics[m].sigmoid), pct(s.metrics[m].softmax), pct(s.metrics[m].difference, true)]),
      `${s.temperature.sigmoid.toFixed(1)} / ${s.temperature.softmax.toFixed(1)}`,
      s.bias.toFixed(2),
    ]);
  return markdownTable(header, rows);
}

/**
 * The noise table: zero-shot accuracy and I→T R@1 per corruption and rate, with each loss's
 * accuracy as a share of its own clean accuracy (robustness is about the drop, not the level).
 */
export function noiseTable(summaries: readonly ConfigSummary[], clean: ConfigSummary | undefined, order: readonly CorruptionKind[]): string {
  const header = ['corruption', 'p', 'zero-shot sigmoid', 'zero-shot softmax', 'Δ sig − soft', 'kept sig', 'kept soft', 'I→T sigmoid', 'I→T softmax', 'Δ'];
  const rows: string[][] = [];
  const kept = (value: number, base: number | undefined): string => (base === undefined ? '' : `${((100 * value) / base).toFixed(0)}%`);
  const cleanRow = (s: ConfigSummary, label: string): string[] => {
    const z = s.metrics.zeroShot;
    const r = s.metrics.imageToText;
    return [
      label,
      s.corruptionRate.toFixed(1),
      pct(z.sigmoid),
      pct(z.softmax),
      pct(z.difference, true),
      kept(z.sigmoid.mean, clean?.metrics.zeroShot.sigmoid.mean),
      kept(z.softmax.mean, clean?.metrics.zeroShot.softmax.mean),
      pct(r.sigmoid),
      pct(r.softmax),
      pct(r.difference, true),
    ];
  };
  if (clean) rows.push(cleanRow(clean, CORRUPTION_LABELS.none));
  for (const kind of order) {
    for (const s of summaries.filter((x) => x.corruption === kind).sort((a, b) => a.corruptionRate - b.corruptionRate)) {
      rows.push(cleanRow(s, CORRUPTION_LABELS[kind]));
    }
  }
  return markdownTable(header, rows);
}
