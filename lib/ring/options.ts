/**
 * What both kinds of ring share: the public option and result types, the error codes, and
 * the checks of the options every ring and every ring call takes (the checks themselves are
 * lib/options.ts's, with the limits of csrc/core/limits.h).
 *
 * @internal
 * @packageDocumentation
 */
import { type CudaDevice, checkCudaDevice } from '../cuda';
import type { DType, DeviceMatrix } from '../device_matrix';
import { DEFAULT_RING_TIMEOUT_MS, MAX_RING_RANKS, limits } from '../limits';
import type { NativeRingLossOptions } from '../native';
import {
  DEFAULT_SIGMOID_LOGIT_BIAS,
  DEFAULT_SIGMOID_LOGIT_SCALE,
  type GradientPlacement,
  type Precision,
  checkGradients,
  checkPrecision,
  coreChecked,
  defaultThreads,
} from '../options';
import { checkIntegerInRange, errorWithCode, invalidValue, type SiglipError } from '../validate';

export { DEFAULT_RING_TIMEOUT_MS, MAX_RING_RANKS };

/** `code` of the error {@link Ring.mpi} throws where the addon was built without MPI. */
export const ERR_SIGLIP_NO_MPI = 'ERR_SIGLIP_NO_MPI';
/**
 * `code` of a ring call's rejection when the ring itself failed: a rank timed out waiting for
 * another (`timeoutMs`), or stopped because another rank failed. The error of a local ring
 * call also has `rank` (the rank whose failure is reported) and `rankErrors` (every rank's
 * message, `''` where it succeeded). Errors of bad arguments keep their TypeError/RangeError.
 */
export const ERR_SIGLIP_RING_FAILED = 'ERR_SIGLIP_RING_FAILED';

/** How the ranks of a {@link Ring} talk: threads of this process, MPI processes, or NCCL GPUs. */
export type RingKind = 'local' | 'mpi' | 'nccl';

/** What one rank of a ring call did, as the ring measured it. */
export interface RingStats {
  /** Computing steps: P one-way (one text block each), ⌊P/2⌋ + 1 two-way (up to two blocks each). */
  steps: number;
  /**
   * Hops the gradient accumulators made after the last computing step, on their way home:
   * 1 one-way, ⌊P/2⌋ two-way (0 with P = 1 or without gradients).
   */
  returnHops: number;
  /** Bytes this rank sent to its neighbour: text blocks (with ids) and gradient accumulators. */
  bytesSent: number;
  /**
   * Bytes of the ring's own buffers on this rank (travelling text blocks, their ids and the
   * gradient accumulators): at most 5 blocks the size of the largest text shard (plus ids)
   * one-way, 9 two-way, whatever the number of ranks. Inputs and gradients are not counted; nor is the CPU tile
   * scratch (which does not depend on P) or, on a GPU, the block workspace.
   */
  peakRingBytes: number;
  /** Seconds this rank spent computing its tiles. */
  computeSeconds: number;
  /** Seconds this rank waited for transfers that computing did not hide. */
  waitSeconds: number;
}

/** Options of {@link Ring.local}. */
export interface LocalRingOptions {
  /** P, the number of ranks (threads of this process), an integer from 1 to 4096. */
  ranks: number;
  /**
   * Where the ranks compute: `'cpu'` (the default); a GPU, `'cuda'` or `'cuda:N'`, for every
   * rank (ranks share it, each with its own stream; for tests, and to shard a batch too large
   * for one call); or an Array of P GPUs, rank r on `device[r]` (one process driving several
   * GPUs; messages between ranks are device-to-device copies through this process). GPU ranks
   * take Matrix shards (uploaded as float32 for the call) or DeviceMatrix shards on their GPU.
   */
  device?: 'cpu' | CudaDevice | CudaDevice[];
  /**
   * How the ranks of a ring of GPUs pass blocks: `'memcpy'` (the default; device-to-device
   * copies through this process, any device list) or `'nccl'` (one NCCL communicator over the
   * ranks' GPUs, ncclCommInitAll: peer-to-peer transfers over NVLink where there is one; the
   * GPUs must differ, and libnccl.so.2 must load). An NCCL ring is unusable after a failed call.
   */
  transport?: 'memcpy' | 'nccl';
  /**
   * CPU threads each rank's tiles use, 1 to 1024 (CPU rings). Default: `os.availableParallelism()` divided
   * by `ranks` (at least 1). Results do not depend on it.
   */
  threads?: number;
  /** How long a rank waits for another before the call fails, in ms (1 to 2^31 − 1). Default 60 000. */
  timeoutMs?: number;
}

/** Options of {@link Ring.mpi}. */
export interface MpiRingOptions {
  /**
   * CPU threads this rank's tiles use, 1 to 1024. Default: `os.availableParallelism()` divided
   * by the ranks mpirun started on this machine (OMPI_COMM_WORLD_LOCAL_SIZE or
   * MPI_LOCALNRANKS), at least 1.
   */
  threads?: number;
  /** How long this rank waits for another before a call fails, in ms. Default 60 000. */
  timeoutMs?: number;
}

/** Options of {@link Ring.nccl}. */
export interface NcclRingOptions {
  /** This process's rank, 0 to size − 1. */
  rank: number;
  /** P, the number of ranks (processes, one GPU each). */
  size: number;
  /** The 128-byte id from {@link Ring.ncclUniqueId}, made by one rank and shared with the others (the same on every rank). */
  id: Uint8Array;
  /** This rank's GPU, `'cuda'` (GPU 0) or `'cuda:N'`. */
  device: CudaDevice;
  /** How long this rank waits for another during a call before it fails, in ms. Default 60 000. */
  timeoutMs?: number;
}

/** Options of {@link Ring.ncclOverMpi}. */
export interface NcclOverMpiOptions {
  /**
   * This rank's GPU. Default: `'cuda:L'`, L being this process's rank on its machine as the
   * launcher tells it (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID or SLURM_LOCALID), else `'cuda'`.
   */
  device?: CudaDevice;
  /** How long this rank waits for another, in ms (sharing the id and during calls). Default 60 000. */
  timeoutMs?: number;
}

/** Which way text blocks travel round a ring; see {@link RingLossOptions.direction}. */
export type RingDirection = 'one-way' | 'two-way';

/** The options of a ring call that every rank must pass with the same values (checked). */
export interface RingLossOptions {
  /** s, the log of the temperature t = exp(s). Default ln 10 (t = 10). |s| ≤ 80. */
  logitScale?: number;
  /** b, added to every logit. Default −10. */
  logitBias?: number;
  /**
   * `'one-way'` (the default): each text block visits the other P − 1 ranks in turn, going
   * to the next rank, and its gradient comes home in one more hop. `'two-way'` (open_clip's
   * "bidirectional"): a copy of each block goes each way, so computing takes ⌊P/2⌋ + 1 steps
   * of two tiles instead of P of one, and the two gradients then retrace their paths home
   * (`stats.returnHops`). Two-way halves what each link direction carries but adds return
   * hops that no computation hides: it pays where links are slow relative to computing.
   * Both give the same result up to float32 reassociation.
   */
  direction?: RingDirection;
}

/** Options of a call on a local ring (several ranks in this process). */
export interface LocalRingLossOptions extends RingLossOptions {
  /**
   * Label ids, one Int32Array per rank (`imageIds[r]` has one id per row of `imageShards[r]`).
   * With `textIds`, pair (i, j) of the global batch is positive exactly when their ids are
   * equal, across ranks too; text shards may then have other sizes than the image shards.
   */
  imageIds?: Int32Array[];
  /** Label ids of the text rows, one Int32Array per rank; given together with `imageIds` or not at all. */
  textIds?: Int32Array[];
  /** Local rings of GPUs: how float32 inputs are multiplied, `'tf32'` (default) or `'fp32'`. */
  precision?: Precision;
  /**
   * Local rings of GPUs: where gradients are returned, `'host'` (Float32Arrays; the default for
   * Matrix shards) or `'device'` (float32 DeviceMatrix objects on each rank's GPU; the default
   * for DeviceMatrix shards). CPU rings return Float32Arrays.
   */
  gradients?: GradientPlacement;
}

/** Options of a call on a ring with one rank per process (MPI or NCCL). */
export interface RankRingLossOptions extends RingLossOptions {
  /** Label ids of this rank's image rows (see {@link LocalRingLossOptions.imageIds}); all ranks give ids or none does. */
  imageIds?: Int32Array;
  /** Label ids of this rank's text rows; given together with `imageIds`. */
  textIds?: Int32Array;
  /** NCCL rings: how float32 inputs are multiplied, `'tf32'` (default) or `'fp32'`. */
  precision?: Precision;
  /**
   * NCCL rings: where gradients are returned, `'host'` (Float32Arrays; the default for Matrix
   * inputs) or `'device'` (float32 DeviceMatrix objects; the default for DeviceMatrix inputs).
   * MPI rings return Float32Arrays.
   */
  gradients?: GradientPlacement;
}

/**
 * The result of {@link LocalRing.sigmoidLossWithGrad}: the global loss and every rank's
 * gradients (`G`: Float32Array, or DeviceMatrix for a ring of GPUs returning them on the device).
 */
export interface LocalRingLossWithGrad<G extends Float32Array | DeviceMatrix = Float32Array> {
  /** The loss L of the whole (concatenated) batch, nats per image row: the same number on every rank. */
  loss: number;
  /** Gradients of the global loss L. */
  grad: {
    /** `image[r]` = ∂L/∂X_r, rank r's image rows (n_r × D), a new Float32Array (or float32 DeviceMatrix) per rank. */
    image: G[];
    /** `text[r]` = ∂L/∂Y_r, rank r's text rows (m_r × D). */
    text: G[];
    /** ∂L/∂s of the global loss. */
    logitScale: number;
    /** ∂L/∂b of the global loss. */
    logitBias: number;
  };
  /** What each rank did (index r: rank r). */
  stats: RingStats[];
}

/** The result of {@link RankRing.sigmoidLossWithGrad} on one rank of an MPI or NCCL ring. */
export interface RankRingLossWithGrad<G extends Float32Array | DeviceMatrix = Float32Array> {
  /** The loss L of the global batch (all ranks' shards), the same bits on every rank. */
  loss: number;
  /** Gradients of the global loss L. */
  grad: {
    /** ∂L/∂X_r for this rank's image rows (n_r × D): a Float32Array, or a float32 DeviceMatrix. */
    image: G;
    /** ∂L/∂Y_r for this rank's text rows (m_r × D). */
    text: G;
    /** ∂L/∂s of the global loss (the same on every rank). */
    logitScale: number;
    /** ∂L/∂b of the global loss (the same on every rank). */
    logitBias: number;
  };
  /** What this rank did. */
  stats: RingStats;
}

/** The keys every ring call takes; each kind adds its own. */
export const RING_CALL_KEYS = ['logitScale', 'logitBias', 'direction', 'imageIds', 'textIds'] as const;

/** options.timeoutMs of a ring, with its default; its range is the core's check. */
export function ringTimeout(value: unknown): number {
  return coreChecked(value, limits().defaultRingTimeoutMs);
}

/** A ring's option `name` that counts ranks (ranks, size): 1 to the core's limit (lib/ needs it before the core sees it). */
export function checkRankCount(argument: string, value: unknown): number {
  return checkIntegerInRange(argument, value, 1, limits().maxRingRanks);
}

/** The options every rank passes alike, with their defaults: their types and ranges are the core's checks. */
export function sharedOptions(o: Record<string, unknown>): Pick<NativeRingLossOptions, 'logitScale' | 'logitBias' | 'direction'> {
  return {
    logitScale: coreChecked(o['logitScale'], DEFAULT_SIGMOID_LOGIT_SCALE),
    logitBias: coreChecked(o['logitBias'], DEFAULT_SIGMOID_LOGIT_BIAS),
    direction: coreChecked(o['direction'], 'one-way'),
  };
}

/**
 * precision and gradients of a call on GPU ranks (NCCL rings, local rings of GPUs): the
 * checks of a single-device CUDA call (lib/options.ts), with its defaults.
 */
export function gpuCallOptions(
  o: Record<string, unknown>,
  inputs: { dtype: DType } | undefined,
): Pick<NativeRingLossOptions, 'precision' | 'gradients'> {
  const precision = checkPrecision(o['precision'], 'cuda', inputs?.dtype ?? 'float32', false) as Precision;
  const gradients = checkGradients(o['gradients'], 'cuda', inputs && { ordinal: 0, dtype: inputs.dtype });
  return { precision, gradients };
}

/** options.device of Ring.local: undefined for the CPU, else each rank's CUDA ordinal. */
export function localDevices(device: unknown, ranks: number): number[] | undefined {
  if (device === undefined || device === 'cpu') return undefined;
  const expected = `'cpu', 'cuda', 'cuda:N' or an Array of ${ranks} of 'cuda' / 'cuda:N' (one per rank)`;
  const advice = "Use device 'cpu' (the default).";
  const one = (value: unknown, argument: string) => checkCudaDevice(argument, value, expected, advice).ordinal;
  if (Array.isArray(device)) {
    if (device.length !== ranks) throw invalidValue('options.device', expected, device);
    return device.map((d, r) => one(d, `options.device[${r}]`));
  }
  return new Array<number>(ranks).fill(one(device, 'options.device'));
}

/**
 * The GPU of this process's rank on its machine, as MPI launchers (Open MPI, MPICH/Hydra) and
 * Slurm tell it; 'cuda' (GPU 0) where none does.
 */
export function defaultLocalDevice(): CudaDevice {
  for (const name of ['OMPI_COMM_WORLD_LOCAL_RANK', 'MPI_LOCALRANKID', 'SLURM_LOCALID']) {
    const value = process.env[name];
    if (value !== undefined && /^\d+$/.test(value)) return `cuda:${Number(value)}` as CudaDevice;
  }
  return 'cuda';
}

/** The default threads of each rank of a CPU ring: this machine's cores shared by `ranksHere`. */
export function threadsPerRank(ranksHere: number): number {
  return Math.max(1, Math.floor(defaultThreads() / ranksHere));
}

/** The ranks mpirun started on this machine, as its environment says (1 where it says nothing). */
export function mpiRanksHere(env: NodeJS.ProcessEnv = process.env): number {
  const local = Number(env['OMPI_COMM_WORLD_LOCAL_SIZE'] ?? env['MPI_LOCALNRANKS'] ?? '1');
  return Number.isSafeInteger(local) && local > 0 ? local : 1;
}

/** The error of a call on a disposed ring. */
export function disposedRing(code: string): Error & SiglipError {
  return errorWithCode('This Ring was disposed (dispose() frees its transports; create a new Ring to go on)', code);
}
