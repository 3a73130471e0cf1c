// Line charts as SVG and PNG, rendered headless: a Vega-Lite spec is compiled to Vega, drawn by
// a Vega View with renderer 'none' (no DOM, no canvas) into an SVG string, and that SVG is
// rasterised by resvg. Used by the benchmark report (bench/report_files.ts) and meant for
// reuse (examples/ imports it), so the API is two functions:
//
//     import { writeLinePlot } from '../bench/plot';
//     await writeLinePlot(
//       [{ x: 512, y: 3.1, series: 'fused sigmoid', facet: 'fwd+bwd' }, …],
//       { out: 'bench/report/time', title: 'Time per call', x: { title: 'N', log: true }, y: { title: 'ms', log: true } },
//     ); // writes bench/report/time.svg and bench/report/time.png
//
//     import { renderVegaLite } from '../bench/plot';
//     const { svg, png } = await renderVegaLite(anyVegaLiteSpec); // for charts of another shape
//
// vega and vega-lite are ESM-only packages, so they are loaded with import() (this file also
// runs as CommonJS under tsx). Text is set in DejaVu Sans, which resvg finds among the system
// fonts; any sans-serif font will do where it is missing.
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/** One point of a line chart. */
export interface PlotRow {
  /** Position on the x axis (must be > 0 on a log axis). */
  x: number;
  /** Position on the y axis (must be > 0 on a log axis). */
  y: number;
  /** The line it belongs to: one line, one colour and one legend entry per distinct series. */
  series: string;
  /** Optional: rows with different facets go into side-by-side panels, titled by the facet. */
  facet?: string;
  /** Optional: extra fields shown in the SVG's tooltips (the PNG ignores them). */
  [extra: string]: unknown;
}

/** An axis: its title, and whether it is logarithmic (base 10). */
export interface PlotAxis {
  title: string;
  log?: boolean;
}

export interface LinePlotOptions {
  /** Output path without extension: `<out>.svg` and `<out>.png` are written (directories created). */
  out: string;
  /** Chart title (optional). */
  title?: string;
  /** A second title line in smaller type (optional). */
  subtitle?: string;
  x: PlotAxis;
  y: PlotAxis;
  /** Width and height of one panel in pixels (default 360 × 260). */
  width?: number;
  height?: number;
  /** Series in this order in the legend and colour scale (others follow, sorted). */
  seriesOrder?: string[];
  /** Facets in this order, left to right (others follow, sorted). */
  facetOrder?: string[];
  /** PNG pixels per SVG pixel (default 2). */
  pngScale?: number;
}

const FONT = 'DejaVu Sans';

/** Renders any Vega-Lite spec headless: the SVG text and a PNG of it (scaled by `pngScale`). */
export async function renderVegaLite(spec: object, pngScale = 2): Promise<{ svg: string; png: Buffer }> {
  const vegaLite = await import('vega-lite');
  const vega = await import('vega');
  const compiled = vegaLite.compile(spec as Parameters<typeof vegaLite.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const { Resvg } = await import('@resvg/resvg-js');
    const png = new Resvg(svg, {
      fitTo: { mode: 'zoom', value: pngScale },
      background: 'white',
      font: { loadSystemFonts: true, defaultFontFamily: FONT, sansSerifFamily: FONT },
    })
      .render()
      .asPng();
    return { svg, png };
  } finally {
    view.finalize();
  }
}

function ordered(values: Iterable<string>, preferred: readonly string[] = []): string[] {
  const present = new Set(values);
  const first = preferred.filter((v) => present.has(v));
  return [...first, ...[...present].filter((v) => !first.includes(v)).sort()];
}

/** The Vega-Lite spec {@link writeLinePlot} draws (exported for tests and custom tweaks). */
export function linePlotSpec(rows: readonly PlotRow[], options: Omit<LinePlotOptions, 'out' | 'pngScale'>): object {
  const series = ordered(rows.map((r) => r.series), options.seriesOrder);
  const facets = ordered(rows.flatMap((r) => (r.facet === undefined ? [] : [r.facet])), options.facetOrder);
  const scale = (axis: PlotAxis): object => (axis.log ? { type: 'log', base: 10, nice: false } : { zero: false });
  // Log axes label the powers of ten only; the data's own x values (e.g. powers of two) are
  // often the clearer ticks, so a log x axis with few distinct values is labelled by them.
  const xValues = [...new Set(rows.map((r) => r.x))].sort((a, b) => a - b);
  const xAxis: Record<string, unknown> = { title: options.x.title, grid: true };
  if (options.x.log && xValues.length <= 12) xAxis.values = xValues;
  const title = options.title === undefined ? undefined : options.subtitle === undefined ? options.title : { text: options.title, subtitle: options.subtitle };
  const layer = {
    width: options.width ?? 360,
    height: options.height ?? 260,
    mark: { type: 'line', point: true, strokeWidth: 2 },
    encoding: {
      x: { field: 'x', type: 'quantitative', scale: scale(options.x), axis: xAxis },
      y: { field: 'y', type: 'quantitative', scale: scale(options.y), axis: { title: options.y.title, grid: true } },
      color: { field: 'series', type: 'nominal', sort: series, scale: { domain: series }, legend: { title: null, orient: 'bottom', columns: 2, labelLimit: 400 } },
      tooltip: [
        { field: 'series', type: 'nominal' },
        { field: 'x', type: 'quantitative', title: options.x.title },
        { field: 'y', type: 'quantitative', title: options.y.title },
      ],
    },
  };
  const base = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(title === undefined ? {} : { title }),
    data: { values: rows.map((r) => ({ ...r })) },
    config: { font: FONT, view: { stroke: '#ccc' }, axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11 } },
    background: 'white',
  };
  if (facets.length === 0) return { ...base, ...layer };
  return {
    ...base,
    facet: { column: { field: 'facet', type: 'nominal', sort: facets, title: null, header: { labelFontSize: 13, labelFontWeight: 'bold' } } },
    spec: layer,
    resolve: { scale: { y: 'shared', x: 'shared' } },
  };
}

/**
 * Draws `rows` as a line chart (one line per `series`, one panel per `facet` when any row has
 * one) and writes `<out>.svg` and `<out>.png`. Rows with a non-finite x or y, or a value ≤ 0
 * on a log axis, are left out. Resolves to the two paths written.
 */
export async function writeLinePlot(rows: readonly PlotRow[], options: LinePlotOptions): Promise<{ svg: string; png: string }> {
  const drawable = rows.filter(
    (r) => Number.isFinite(r.x) && Number.isFinite(r.y) && (!options.x.log || r.x > 0) && (!options.y.log || r.y > 0),
  );
  const { svg, png } = await renderVegaLite(linePlotSpec(drawable, options), options.pngScale ?? 2);
  mkdirSync(path.dirname(path.resolve(options.out)), { recursive: true });
  const files = { svg: `${options.out}.svg`, png: `${options.out}.png` };
  writeFileSync(files.svg, svg);
  writeFileSync(files.png, png);
  return files;
}
