// What both ring benchmarks (bench/ring.ts: ranks as threads; bench/ring_mpi.ts: ranks as MPI
// processes) need alike: unit-row inputs, the shard sizes and the table layout. (The seeded
// generator and the median are the package benchmark's: cases.ts.)

/** Unit rows, written straight into the Float32Array (no temporaries to inflate peak RSS). */
export function unitRows(next: () => number, rows: number, d: number): Float32Array {
  const out = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let k = 0; k < d; k++) {
      const v = next() - 0.5;
      out[r * d + k] = v;
      sum += v * v;
    }
    const inv = 1 / Math.sqrt(sum);
    for (let k = 0; k < d; k++) out[r * d + k]! *= inv;
  }
  return out;
}

/** Rows per rank: N split as evenly as possible (the first N mod P ranks get one more). */
export function shardRows(n: number, ranks: number): number[] {
  return Array.from({ length: ranks }, (_, r) => Math.floor(n / ranks) + (r < n % ranks ? 1 : 0));
}

/** Rows of cells as a text table: the first column left-aligned, the others right-aligned. */
export function pad(cells: string[][]): string {
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  return cells.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}
