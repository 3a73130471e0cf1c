/**
 * Sharded batches for the ring tests (test/ring.test.ts, test/fixtures/ring_mpi_worker.ts):
 * a seeded global batch cut into uneven per-rank shards, and the comparison of a ring's
 * result with the single-device loss of the concatenated batch (SPEC.md's float32
 * tolerances: 1e-5 for the loss, 1e-4 for the gradients).
 */
import { type Matrix, matrix, sigmoidLossWithGradSync } from '../../lib/index';
import { randomIds, randomUnitRows, relativeError, rng, scalarError } from './reference';

export interface ShardedBatch {
  d: number;
  /** Rows of each rank's image and text shard. */
  imageRows: number[];
  textRows: number[];
  /** The global batch: every rank's shard, in rank order. */
  image: Float32Array;
  text: Float32Array;
  imageIds?: Int32Array;
  textIds?: Int32Array;
}

/**
 * P uneven shards of 1 … maxRows rows (rank ⌊P/2⌋ holds a single image row); with ids the
 * text shards get sizes of their own and the ids repeat (several positives per row, across
 * ranks). Same seed, same batch, in every process.
 */
export function makeShardedBatch(seed: number, ranks: number, d: number, withIds: boolean, maxRows = 40): ShardedBatch {
  const random = rng(seed);
  const size = () => 1 + Math.floor(random() * maxRows);
  const imageRows: number[] = [];
  const textRows: number[] = [];
  for (let r = 0; r < ranks; r++) {
    const rows = r === Math.floor(ranks / 2) ? 1 : size();
    imageRows.push(rows);
    textRows.push(withIds ? size() : rows);
  }
  const n = imageRows.reduce((a, b) => a + b, 0);
  const m = textRows.reduce((a, b) => a + b, 0);
  const batch: ShardedBatch = { d, imageRows, textRows, image: randomUnitRows(random, n, d), text: randomUnitRows(random, m, d) };
  if (withIds) {
    const distinct = Math.max(2, Math.floor(n / 3));
    batch.imageIds = randomIds(random, n, distinct);
    batch.textIds = randomIds(random, m, distinct);
  }
  return batch;
}

function offset(rows: number[], r: number): number {
  return rows.slice(0, r).reduce((a, b) => a + b, 0);
}

/** Rank r's shard: its image and text rows (views into the global batch) and ids. */
export function shardOf(b: ShardedBatch, r: number): { image: Matrix; text: Matrix; imageIds?: Int32Array; textIds?: Int32Array } {
  const i0 = offset(b.imageRows, r);
  const j0 = offset(b.textRows, r);
  const n = b.imageRows[r]!;
  const m = b.textRows[r]!;
  const shard: { image: Matrix; text: Matrix; imageIds?: Int32Array; textIds?: Int32Array } = {
    image: matrix(b.image.subarray(i0 * b.d, (i0 + n) * b.d), n, b.d),
    text: matrix(b.text.subarray(j0 * b.d, (j0 + m) * b.d), m, b.d),
  };
  if (b.imageIds && b.textIds) {
    shard.imageIds = b.imageIds.subarray(i0, i0 + n);
    shard.textIds = b.textIds.subarray(j0, j0 + m);
  }
  return shard;
}

/** Every rank's shards, as a local ring call takes them. */
export function shardsOf(b: ShardedBatch): {
  images: Matrix[];
  texts: Matrix[];
  ids: { imageIds?: Int32Array[]; textIds?: Int32Array[] };
} {
  const shards = b.imageRows.map((_, r) => shardOf(b, r));
  const ids = b.imageIds ? { imageIds: shards.map((s) => s.imageIds!), textIds: shards.map((s) => s.textIds!) } : {};
  return { images: shards.map((s) => s.image), texts: shards.map((s) => s.text), ids };
}

/** The single-device result on the concatenated batch. */
export function singleDevice(b: ShardedBatch, logitScale = Math.log(10), logitBias = -10) {
  const n = b.imageRows.reduce((a, c) => a + c, 0);
  const m = b.textRows.reduce((a, c) => a + c, 0);
  const ids = b.imageIds ? { imageIds: b.imageIds, textIds: b.textIds } : {};
  return sigmoidLossWithGradSync(matrix(b.image, n, b.d), matrix(b.text, m, b.d), { logitScale, logitBias, threads: 1, ...ids });
}

/** What one rank ended with. */
export interface RankOutcome {
  loss: number;
  logitScale: number;
  logitBias: number;
  image: Float32Array;
  text: Float32Array;
}

/** The largest relative errors of rank r against the single-device `ref`. */
export function rankErrors(b: ShardedBatch, ref: ReturnType<typeof singleDevice>, r: number, out: RankOutcome) {
  const i0 = offset(b.imageRows, r) * b.d;
  const j0 = offset(b.textRows, r) * b.d;
  return {
    loss: scalarError(out.loss, ref.loss),
    logitScale: scalarError(out.logitScale, ref.grad.logitScale),
    logitBias: scalarError(out.logitBias, ref.grad.logitBias),
    image: relativeError(out.image, ref.grad.image.subarray(i0, i0 + out.image.length)),
    text: relativeError(out.text, ref.grad.text.subarray(j0, j0 + out.text.length)),
  };
}

/** SPEC.md's float32 tolerances: the loss 1e-5, everything else (gradients, ∂s, ∂b) 1e-4. */
export function withinTolerance(e: ReturnType<typeof rankErrors>): boolean {
  return e.loss <= 1e-5 && e.logitScale <= 1e-4 && e.logitBias <= 1e-4 && e.image <= 1e-4 && e.text <= 1e-4;
}
