// The example's charts: Vega-Lite specs rendered headless to SVG and PNG by bench/plot.ts
// (renderVegaLite). Lines are means over seeds; bars span the seeds' minimum to maximum.
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { renderVegaLite } from '../bench/plot.js';
import { METRIC_LABELS, METRICS, type ConfigSummary, type Spread } from './summary.js';
import { CORRUPTION_LABELS, type CorruptionKind } from './task.js';

const FONT = 'DejaVu Sans';
const CHART_BASE = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  background: 'white',
  config: { font: FONT, view: { stroke: '#ccc' }, axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 12, orient: 'bottom' } },
};
const LOSS_COLOURS = { domain: ['sigmoid (SigLIP)', 'softmax (CLIP)'], range: ['#d62728', '#1f77b4'] };

interface Point {
  x: number;
  series: string;
  panel: string;
  row?: string;
  mean: number;
  lo: number;
  hi: number;
}

function point(x: number, series: string, panel: string, s: Spread, scale = 100, row?: string): Point {
  const p: Point = { x, series, panel, mean: scale * s.mean, lo: scale * s.min, hi: scale * s.max };
  if (row !== undefined) p.row = row;
  return p;
}

function lineWithRanges(x: object, yTitle: string, colour: object, zeroRule: boolean): object[] {
  const layers: object[] = [
    {
      mark: { type: 'errorbar', ticks: true, thickness: 1.5 },
      encoding: { x, y: { field: 'lo', type: 'quantitative', title: yTitle }, y2: { field: 'hi' }, color: colour },
    },
    {
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: {
        x,
        y: { field: 'mean', type: 'quantitative', title: yTitle, scale: { zero: false } },
        color: colour,
        tooltip: [{ field: 'series' }, { field: 'x', title: 'x' }, { field: 'mean', format: '.1f' }, { field: 'lo', format: '.1f' }, { field: 'hi', format: '.1f' }],
      },
    },
  ];
  if (zeroRule) layers.unshift({ mark: { type: 'rule', color: '#888', strokeDash: [4, 3] }, encoding: { y: { datum: 0 } } });
  return layers;
}

function facetted(points: Point[], layers: object[], title: { text: string; subtitle: string }, columns: string[], rows?: string[]): object {
  return {
    ...CHART_BASE,
    title,
    data: { values: points },
    facet: {
      column: { field: 'panel', type: 'nominal', sort: columns, title: null, header: { labelFontSize: 13, labelFontWeight: 'bold' } },
      ...(rows ? { row: { field: 'row', type: 'nominal', sort: rows, title: null, header: { labelFontSize: 13, labelFontWeight: 'bold' } } } : {}),
    },
    spec: { width: 260, height: 220, layer: layers },
  };
}

async function write(spec: object, out: string): Promise<string[]> {
  const { svg, png } = await renderVegaLite(spec, 2);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(`${out}.svg`, svg);
  writeFileSync(`${out}.png`, png);
  return [`${out}.svg`, `${out}.png`];
}

const seriesOf = (loss: 'sigmoid' | 'softmax'): string => (loss === 'sigmoid' ? 'sigmoid (SigLIP)' : 'softmax (CLIP)');

/** batch-sweep.{svg,png}: each metric against batch size; batch-sweep-difference: sigmoid − softmax. */
export async function plotBatchSweep(summaries: readonly ConfigSummary[], outDir: string, subtitle: string): Promise<string[]> {
  const points: Point[] = [];
  const diffs: Point[] = [];
  for (const s of summaries) {
    for (const m of METRICS) {
      for (const loss of ['sigmoid', 'softmax'] as const) points.push(point(s.batchSize, seriesOf(loss), METRIC_LABELS[m], s.metrics[m][loss]));
      diffs.push(point(s.batchSize, METRIC_LABELS[m], '', s.metrics[m].difference));
    }
  }
  const batches = [...new Set(summaries.map((s) => s.batchSize))].sort((a, b) => a - b);
  // Padded so the end labels are not clipped in narrow panels.
  const domain = [batches[0]! / 1.25, batches[batches.length - 1]! * 1.25];
  const x = { field: 'x', type: 'quantitative', title: 'batch size', scale: { type: 'log', base: 2, domain, nice: false }, axis: { values: batches, grid: true } };
  const colour = { field: 'series', type: 'nominal', scale: LOSS_COLOURS, legend: { title: null } };
  const metricLabels = METRICS.map((m) => METRIC_LABELS[m]);
  const files = await write(
    facetted(points, lineWithRanges(x, 'held-out, %', colour, false), { text: 'Sigmoid vs softmax loss against batch size (same examples seen)', subtitle }, metricLabels),
    path.join(outDir, 'batch-sweep'),
  );
  const diffColour = { field: 'series', type: 'nominal', sort: metricLabels, legend: { title: null, labelLimit: 300, columns: 3 } };
  const diffSpec = {
    ...CHART_BASE,
    title: { text: 'Sigmoid minus softmax, paired by seed (above 0: sigmoid better)', subtitle },
    data: { values: diffs },
    width: 520,
    height: 260,
    layer: lineWithRanges(x, 'sigmoid − softmax, % points', diffColour, true),
  };
  files.push(...(await write(diffSpec, path.join(outDir, 'batch-sweep-difference'))));
  return files;
}

/** noise.{svg,png}: zero-shot accuracy and image→text R@1 against corruption rate, one panel per corruption. */
export async function plotNoise(
  summaries: readonly ConfigSummary[],
  clean: ConfigSummary | undefined,
  order: readonly CorruptionKind[],
  outDir: string,
  subtitle: string,
): Promise<string[]> {
  const points: Point[] = [];
  const rows = [METRIC_LABELS.zeroShot, METRIC_LABELS.imageToText];
  for (const kind of order) {
    const list = clean ? [{ ...clean, corruption: kind }, ...summaries.filter((s) => s.corruption === kind)] : summaries.filter((s) => s.corruption === kind);
    for (const s of list) {
      for (const m of ['zeroShot', 'imageToText'] as const) {
        for (const loss of ['sigmoid', 'softmax'] as const) {
          points.push(point(s.corruptionRate, seriesOf(loss), CORRUPTION_LABELS[kind], s.metrics[m][loss], 100, METRIC_LABELS[m]));
        }
      }
    }
  }
  const x = { field: 'x', type: 'quantitative', title: 'corruption probability p', axis: { values: [...new Set(points.map((p) => p.x))].sort(), grid: true } };
  const colour = { field: 'series', type: 'nominal', scale: LOSS_COLOURS, legend: { title: null } };
  return write(
    facetted(points, lineWithRanges(x, 'held-out, %', colour, false), { text: 'Robustness to corrupted training pairs', subtitle }, order.map((k) => CORRUPTION_LABELS[k]), rows),
    path.join(outDir, 'noise'),
  );
}
