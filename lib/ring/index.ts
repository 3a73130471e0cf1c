/**
 * The ring: the sigmoid loss of a batch sharded over several ranks, without gathering it.
 * Each rank keeps its image shard; text shards (with their label ids and their gradient
 * accumulators) travel around the ring, one neighbour to the next, while every rank computes
 * its images against the block it holds (SPEC.md, "The ring"). No rank ever holds more than
 * its own shards plus a constant number of travelling text blocks: no all-gather, no N×N
 * matrix, and memory per rank that does not grow with the number of ranks.
 *
 * Two kinds of ring, one class each on a common base ({@link Ring}, lib/ring/base.ts):
 * {@link LocalRing} (lib/ring/local.ts), P ranks as threads of this process (`Ring.local`,
 * CPU or GPUs), whose calls take Arrays of P shards; and {@link RankRing}
 * (lib/ring/rank.ts), one rank per process over MPI (`Ring.mpi`, started with `mpirun`) or
 * NCCL (`Ring.nccl`, the CUDA build), whose calls take this rank's shard. They share the
 * options module lib/ring/options.ts.
 *
 * @packageDocumentation
 */
import './local';
import './rank';

export { Ring } from './base';
export { LocalRing } from './local';
export { RankRing } from './rank';
export {
  DEFAULT_RING_TIMEOUT_MS,
  ERR_SIGLIP_NO_MPI,
  ERR_SIGLIP_RING_FAILED,
  MAX_RING_RANKS,
  type LocalRingLossOptions,
  type LocalRingLossWithGrad,
  type LocalRingOptions,
  type MpiRingOptions,
  type NcclOverMpiOptions,
  type NcclRingOptions,
  type RankRingLossOptions,
  type RankRingLossWithGrad,
  type RingDirection,
  type RingKind,
  type RingLossOptions,
  type RingStats,
} from './options';
