/**
 * The ring: the sigmoid loss of a batch sharded over several ranks, without gathering it.
 * Each rank keeps its image shard; text shards (with their label ids and their gradient
 * accumulators) travel around the ring, one neighbour to the next, while every rank computes
 * its images against the block it holds (SPEC.md, "The ring"). No rank ever holds more than
 * its own shards plus a constant number of travelling text blocks: no all-gather, no N×N
 * matrix, and memory per rank that does not grow with the number of ranks.
 *
 * Three transports: ranks as threads of one process (`Ring.local`, CPU), one rank per
 * process over MPI (`Ring.mpi`, started with `mpirun`), and one rank per GPU over NCCL
 * (`Ring.nccl`, the CUDA build).
 *
 * @packageDocumentation
 */
import { types } from 'node:util';

import { type CudaDevice, cudaAddon, isCudaDeviceName, resolveCudaOrdinal } from './cuda';
import { DeviceMatrix, ERR_SIGLIP_DISPOSED, liveNative, wrapNative } from './device_matrix';
import { loadAddon } from './loader';
import { checkMatrix, type Matrix } from './matrix';
import type {
  NativeDeviceMatrix,
  NativeMatrix,
  NativeRing,
  NativeRingLossOptions,
  NativeRingRankResult,
} from './native';
import {
  DEFAULT_SIGMOID_LOGIT_BIAS,
  DEFAULT_SIGMOID_LOGIT_SCALE,
  MAX_THREADS,
  defaultThreads,
  type GradientPlacement,
  type Precision,
} from './options';
import {
  Description,
  checkFiniteNumber,
  checkInt32Array,
  checkIntegerInRange,
  errorWithCode,
  invalidType,
  invalidValue,
  isDetachedView,
  isPlainObject,
  type SiglipError,
  typedArrayMemory,
} from './validate';

/** `code` of the error {@link Ring.mpi} throws where the addon was built without MPI. */
export const ERR_SIGLIP_NO_MPI = 'ERR_SIGLIP_NO_MPI';
/**
 * `code` of a ring call's rejection when the ring itself failed: a rank timed out waiting for
 * another (`timeoutMs`), or stopped because another rank failed. The error of a local ring
 * call also has `rank` (the rank whose failure is reported) and `rankErrors` (every rank's
 * message, `''` where it succeeded). Errors of bad arguments keep their TypeError/RangeError.
 */
export const ERR_SIGLIP_RING_FAILED = 'ERR_SIGLIP_RING_FAILED';
/** The default `timeoutMs` of a ring: how long any rank waits for another, 60 000 ms. */
export const DEFAULT_RING_TIMEOUT_MS = 60_000;
/** The most ranks a ring may have. */
export const MAX_RING_RANKS = 4096;

const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const MAX_ABS_LOGIT_SCALE = 80;

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
  /**
   * Test hook (internal, unsupported): rank `failRank` fails after its first ring step
   * (`failMode: 'abort'`, the default) or never takes part (`'absent'`), to test that the
   * other ranks stop with an error instead of hanging.
   *
   * @internal
   */
  failRank?: number;
  /** @internal */
  failMode?: 'abort' | 'absent';
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
 * The result of {@link Ring.sigmoidLossWithGrad} on a local ring: the global loss and every
 * rank's gradients (`G`: Float32Array, or DeviceMatrix for a ring of GPUs returning them on
 * the device).
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

/** The result of {@link Ring.sigmoidLossWithGrad} on one rank of an MPI or NCCL ring. */
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

type AnyGradient = Float32Array | DeviceMatrix;

const LOCAL_KEYS = ['ranks', 'device', 'transport', 'threads', 'timeoutMs'];
const MPI_KEYS = ['threads', 'timeoutMs'];
const NCCL_KEYS = ['rank', 'size', 'id', 'device', 'timeoutMs'];
const NCCL_OVER_MPI_KEYS = ['device', 'timeoutMs'];
const MAX_ALL_GATHER_BYTES = 1 << 20;
// What MPI rank 0 sends in Ring.ncclOverMpi: a flag (0: the id follows; 1: making it failed),
// the 128-byte id, then why it failed (UTF-8, zero-padded).
const ID_MESSAGE_BYTES = 1 + 128 + 512;
const LOCAL_CALL_KEYS = ['logitScale', 'logitBias', 'direction', 'imageIds', 'textIds', 'precision', 'gradients', 'failRank', 'failMode'];
const MPI_CALL_KEYS = ['logitScale', 'logitBias', 'direction', 'imageIds', 'textIds'];
const NCCL_CALL_KEYS = [...MPI_CALL_KEYS, 'precision', 'gradients'];

/** Checks `options` is a plain object (or undefined) with only `known` keys. */
function checkOptions(value: unknown, known: readonly string[], required: boolean): Record<string, unknown> {
  if (value === undefined && !required) return {};
  if (!isPlainObject(value)) {
    throw invalidType('options', required ? 'a plain object' : 'a plain object or undefined', value);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw invalidType(`options.${key}`, `one of the options ${known.join(', ')}`, new Description('an unknown option'));
    }
  }
  return value;
}

// precision and gradients of a call on GPU ranks (NCCL, local rings of GPUs), with their
// defaults: TF32, and gradients where the inputs are.
function gpuCallOptions(o: Record<string, unknown>, onDevice: boolean): Pick<NativeRingLossOptions, 'precision' | 'gradients'> {
  const precision = o['precision'] ?? 'tf32';
  if (precision !== 'tf32' && precision !== 'fp32') throw invalidValue('options.precision', "'tf32' or 'fp32'", precision);
  const gradients = o['gradients'] ?? (onDevice ? 'device' : 'host');
  if (gradients !== 'host' && gradients !== 'device') throw invalidValue('options.gradients', "'host' or 'device'", gradients);
  return { precision, gradients };
}

// options.device of Ring.local: undefined for the CPU, else each rank's CUDA ordinal.
function localDevices(device: unknown, ranks: number): number[] | undefined {
  if (device === undefined || device === 'cpu') return undefined;
  const expected = `'cpu', 'cuda', 'cuda:N' or an Array of ${ranks} of 'cuda' / 'cuda:N' (one per rank)`;
  const advice = "Use device 'cpu' (the default).";
  const one = (value: unknown, argument: string): number => {
    if (typeof value !== 'string') throw invalidType(argument, expected, value);
    if (!isCudaDeviceName(value)) throw invalidValue(argument, expected, value);
    return resolveCudaOrdinal(argument, value, 0, advice);
  };
  if (Array.isArray(device)) {
    if (device.length !== ranks) throw invalidValue('options.device', expected, device);
    return device.map((d, r) => one(d, `options.device[${r}]`));
  }
  return new Array<number>(ranks).fill(one(device, 'options.device'));
}

// The GPU of this process's rank on its machine, as MPI launchers (Open MPI, MPICH/Hydra) and
// Slurm tell it; 'cuda' (GPU 0) where none does.
function defaultLocalDevice(): CudaDevice {
  for (const name of ['OMPI_COMM_WORLD_LOCAL_RANK', 'MPI_LOCALRANKID', 'SLURM_LOCALID']) {
    const value = process.env[name];
    if (value !== undefined && /^\d+$/.test(value)) return `cuda:${Number(value)}` as CudaDevice;
  }
  return 'cuda';
}

function checkTimeout(value: unknown): number {
  return value === undefined ? DEFAULT_RING_TIMEOUT_MS : checkIntegerInRange('options.timeoutMs', value, 1, MAX_TIMEOUT_MS);
}

// The options every rank passes alike: the scalars and the direction.
function sharedOptions(options: Record<string, unknown>): { logitScale: number; logitBias: number; direction: RingDirection } {
  const logitScale =
    options['logitScale'] === undefined ? DEFAULT_SIGMOID_LOGIT_SCALE : checkFiniteNumber('options.logitScale', options['logitScale']);
  if (Math.abs(logitScale) > MAX_ABS_LOGIT_SCALE) {
    throw invalidValue(
      'options.logitScale',
      'a finite number in [-80, 80] (the temperature exp(logitScale) must be a finite float32)',
      logitScale,
    );
  }
  const logitBias =
    options['logitBias'] === undefined ? DEFAULT_SIGMOID_LOGIT_BIAS : checkFiniteNumber('options.logitBias', options['logitBias']);
  const direction = options['direction'] ?? 'one-way';
  if (typeof direction !== 'string') throw invalidType('options.direction', "'one-way' or 'two-way'", direction);
  if (direction !== 'one-way' && direction !== 'two-way') throw invalidValue('options.direction', "'one-way' or 'two-way'", direction);
  return { logitScale, logitBias, direction };
}

function idsGivenTogether(imageIds: unknown, textIds: unknown, what: string): boolean {
  if ((imageIds === undefined) === (textIds === undefined)) return imageIds !== undefined;
  const [missing, given] = imageIds === undefined ? ['imageIds', 'textIds'] : ['textIds', 'imageIds'];
  throw invalidType(
    `options.${missing}`,
    `${what} (imageIds and textIds are given together or not at all; ${given} was given)`,
    undefined,
  );
}

function checkIds(argument: string, value: unknown, rows: number, rowsOf: string): Int32Array {
  const expected = `an Int32Array of length ${rows} (one label id per row of ${rowsOf})`;
  const ids = checkInt32Array(argument, value, expected);
  if (ids.length !== rows) throw invalidValue(argument, expected, ids);
  return ids;
}

function checkShardArray(argument: string, value: unknown, ranks: number): unknown[] {
  const expected = `an Array of ${ranks} Matrix shards (one per rank)`;
  if (!Array.isArray(value)) throw invalidType(argument, expected, value);
  if (value.length !== ranks) throw invalidValue(argument, expected, value);
  return value;
}

function localThreadsPerRank(ranks: number): number {
  return Math.max(1, Math.floor(defaultThreads() / ranks));
}

function mpiThreadsPerRank(): number {
  const local = Number(process.env['OMPI_COMM_WORLD_LOCAL_SIZE'] ?? process.env['MPI_LOCALNRANKS'] ?? '1');
  const ranksHere = Number.isSafeInteger(local) && local > 0 ? local : 1;
  return Math.min(MAX_THREADS, Math.max(1, Math.floor(defaultThreads() / ranksHere)));
}

let mpiExitHookAdded = false;

// Finalises MPI when the process exits, on the thread that initialised it (the addon also
// does so when the Node.js environment is torn down; finalising twice is a no-op).
function finalizeMpiAtExit(): void {
  if (mpiExitHookAdded) return;
  mpiExitHookAdded = true;
  process.once('exit', () => loadAddon().addon.mpiFinalize());
}

function disposedRing(): Error & SiglipError {
  return errorWithCode(
    'This Ring was disposed (dispose() frees its transports; create a new Ring to go on)',
    ERR_SIGLIP_DISPOSED,
  );
}

interface PreparedCall {
  image: Array<NativeMatrix | NativeDeviceMatrix> | NativeMatrix | NativeDeviceMatrix;
  text: Array<NativeMatrix | NativeDeviceMatrix> | NativeMatrix | NativeDeviceMatrix;
  options: NativeRingLossOptions;
}

type HostInput = NativeMatrix | NativeDeviceMatrix | Int32Array;

// A copy of the host data of a call's inputs: host matrices and label ids (device matrices as
// they are). A ring call runs once the calls before it on the same ring have finished and
// reads its inputs then, so it takes this copy at the call: its result is that of the values
// the inputs held when it was made, whatever the caller does to its arrays meanwhile (mutate,
// resize, transfer), as for every Promise call of the package (csrc/addon/host_inputs.h).
function snapshotOf<T extends HostInput | HostInput[] | undefined>(value: T): T {
  if (value === undefined) return value;
  if (Array.isArray(value)) return value.map((v) => snapshotOf(v)) as T;
  if (value instanceof Int32Array) return value.slice() as T;
  const m = value as NativeMatrix;
  if (m.data instanceof Float32Array) return { data: m.data.slice(), rows: m.rows, cols: m.cols } as T;
  return value;
}

function snapshotCall(call: PreparedCall): PreparedCall {
  const options = { ...call.options };
  if (options.imageIds !== undefined) options.imageIds = snapshotOf(options.imageIds);
  if (options.textIds !== undefined) options.textIds = snapshotOf(options.textIds);
  return { image: snapshotOf(call.image), text: snapshotOf(call.text), options };
}

/**
 * A ring of P ranks that computes the SigLIP sigmoid loss of a batch split into P shards
 * (the global batch is the concatenation of the shards in rank order) and its gradients,
 * without gathering the batch anywhere (SPEC.md, "The ring"). Make one with
 * {@link Ring.local} (P ranks as threads of this process, on the CPU or GPUs), {@link Ring.mpi} (this
 * process's rank of an `mpirun` job) or {@link Ring.nccl} (this process's GPU rank), use it
 * for any number of calls, then {@link Ring.dispose} it.
 *
 * What every rank gets: the global loss L, ∂L/∂s and ∂L/∂b (the same bits on every rank) and
 * the gradients of its own rows, ∂L/∂X_r and ∂L/∂Y_r, equal to the single-device result on the
 * concatenated batch up to floating-point reassociation (float32: 1e-5 relative for the
 * loss, 1e-4 for gradients). **These are gradients of the global loss**: a data-parallel
 * framework that averages gradients over ranks (all-reduce mean) must multiply them by P
 * first, or sum instead of averaging. Shards may have different sizes on different ranks
 * (e.g. a short last batch; at least one row each), text shards may differ in size from the
 * image shards when label ids are given, and ids match across ranks (a caption on rank 3 is a
 * positive of an image on rank 0 when their ids are equal).
 *
 * Failures: every wait for another rank has a deadline (`timeoutMs`). A rank that fails
 * (bad data, out of memory, a crash) makes every other rank's call reject, within the timeout,
 * never hang: with its own error where the transport can say so, or with code
 * {@link ERR_SIGLIP_RING_FAILED} ("stopped: rank k failed: …", "timed out …"). A local ring
 * can be used again after a failed call; an MPI or NCCL ring cannot (dispose it). Calls on one
 * Ring run one after another, in the order they were made (on MPI and NCCL rings every rank
 * must make the same calls in the same order).
 *
 * @example
 * ```ts
 * // P = 2 ranks in this process; each holds half of a 4-row batch
 * const ring = await Ring.local({ ranks: 2 });
 * const halves = (m) => [matrix(m.data.slice(0, 6), 2, 3), matrix(m.data.slice(6), 2, 3)];
 * const { loss, grad, stats } = await ring.sigmoidLossWithGrad(halves(image), halves(text));
 * // loss === sigmoidLossSync(image, text) up to rounding; grad.image[1] = ∂L/∂(rows 2–3 of image)
 * ring.dispose();
 * ```
 */
export class Ring {
  #native: NativeRing | null;
  #threads: number;
  #onGpus = false;
  #queue: Promise<unknown> = Promise.resolve();

  /** How the ranks talk: `'local'`, `'mpi'` or `'nccl'`. */
  readonly kind: RingKind;
  /** This process's rank (MPI, NCCL); 0 for a local ring, which drives ranks 0 … size − 1 itself. */
  readonly rank: number;
  /** P, the number of ranks of the ring (all processes together). */
  readonly size: number;

  private constructor(native: NativeRing, threads: number) {
    this.#native = native;
    this.#threads = threads;
    this.kind = native.kind;
    this.rank = native.rank;
    this.size = native.size;
  }

  /** How many ranks this object drives: `size` for a local ring, 1 for MPI and NCCL rings. */
  get ranks(): number {
    return this.kind === 'local' ? this.size : 1;
  }

  /** True once {@link Ring.dispose} was called. */
  get disposed(): boolean {
    return this.#native === null;
  }

  /**
   * A ring of `ranks` ranks as threads of this process, on the CPU or on GPUs: each call takes
   * P image shards and P text shards and computes every rank at once (one thread per rank; on
   * the CPU each uses `threads` CPU threads for its tiles). For tests, for sharded batches in
   * one process, to drive several GPUs from one process, and to measure the ring.
   *
   * @param options - `ranks` (required), `device` (`'cpu'`, the default; `'cuda'` /
   *   `'cuda:N'` for every rank; or an Array of P GPUs), `transport` (rings of GPUs:
   *   `'memcpy'`, the default, or `'nccl'`), `threads` (CPU rings; per rank; default cores /
   *   ranks), `timeoutMs` (default 60 000).
   * @returns a Promise of the Ring.
   * @throws TypeError / RangeError (naming the option) for bad options, e.g. `ranks` outside
   *   1–4096, a device list of another length, a GPU this machine lacks; Error with code
   *   `ERR_SIGLIP_NO_CUDA` for a GPU device without the CUDA build or a GPU,
   *   `ERR_SIGLIP_NO_NCCL` / `ERR_SIGLIP_RING_FAILED` when an NCCL ring cannot load NCCL or
   *   join. The Promise rejects with them.
   *
   * @example
   * ```ts
   * const ring = await Ring.local({ ranks: 4, timeoutMs: 10_000 });
   * ring.dispose();
   * ```
   */
  static async local(options: LocalRingOptions): Promise<Ring> {
    const o = checkOptions(options, LOCAL_KEYS, true);
    const ranks = checkIntegerInRange('options.ranks', o['ranks'], 1, MAX_RING_RANKS);
    const devices = localDevices(o['device'], ranks);
    const transport = o['transport'] ?? 'memcpy';
    const transports = "'memcpy' or 'nccl' ('nccl': for GPU ranks on distinct GPUs)";
    if (typeof transport !== 'string') throw invalidType('options.transport', transports, transport);
    if (transport !== 'memcpy' && transport !== 'nccl') throw invalidValue('options.transport', transports, transport);
    if (transport === 'nccl') {
      if (devices === undefined) throw invalidValue('options.transport', `'memcpy' for a CPU ring (${transports})`, transport);
      if (new Set(devices).size !== devices.length) {
        throw invalidValue('options.device', 'distinct GPUs, one per rank (NCCL cannot put two ranks on one GPU)', o['device']);
      }
    }
    const threads =
      o['threads'] === undefined ? localThreadsPerRank(ranks) : checkIntegerInRange('options.threads', o['threads'], 1, MAX_THREADS);
    const timeoutMs = checkTimeout(o['timeoutMs']);
    const { addon } = loadAddon();
    const native = new addon.RingHandle('local', { ranks, timeoutMs, ...(devices && { devices, transport }) });
    try {
      await native.connect();  // an NCCL ring joins its ranks here (ncclCommInitAll, off this thread)
    } catch (error) {
      native.dispose();
      throw error;
    }
    const ring = new Ring(native, threads);
    ring.#onGpus = devices !== undefined;
    return ring;
  }

  /**
   * This process's rank of an MPI job (started with `mpirun -np P node …`): rank and size
   * come from MPI_COMM_WORLD. Every process of the job must call it (MPI initialisation and
   * the communicator's creation are collective, and run on the JavaScript thread); MPI is
   * initialised on first use and finalised when the process exits. Each call on the ring takes
   * this rank's shard only. Needs an addon built with MPI: `npm install` finds it through the
   * `mpicxx` wrapper (Open MPI or MPICH; on Debian and Ubuntu `apt-get install openmpi-bin
   * libopenmpi-dev`, then `npx siglip-kernels build`; the prebuilt platform packages have no MPI).
   *
   * @param options - `threads` (default cores / ranks on this machine), `timeoutMs` (default 60 000).
   * @returns a Promise of the Ring.
   * @throws Error with code {@link ERR_SIGLIP_NO_MPI} where the addon was built without MPI;
   *   Error (code `ERR_SIGLIP_RING_FAILED`) if MPI cannot be initialised; TypeError /
   *   RangeError for bad options. The Promise rejects with them.
   *
   * @example
   * ```ts
   * // requires: mpi
   * // mpirun -np 4 node --import tsx train.ts
   * const ring = await Ring.mpi();
   * const { loss, grad } = await ring.sigmoidLossWithGrad(image, text); // this rank's shard
   * ring.dispose();
   * ```
   */
  static async mpi(options?: MpiRingOptions): Promise<Ring> {
    const o = checkOptions(options, MPI_KEYS, false);
    const threads =
      o['threads'] === undefined ? mpiThreadsPerRank() : checkIntegerInRange('options.threads', o['threads'], 1, MAX_THREADS);
    const timeoutMs = checkTimeout(o['timeoutMs']);
    const { addon } = loadAddon();
    if (!addon.ringBuildInfo().mpi) {
      throw errorWithCode(
        'Ring.mpi() needs the MPI transport, but this build of siglip-kernels has none: no MPI was found when ' +
          'the addon was compiled. Install MPI with its compiler wrapper mpicxx (Debian/Ubuntu: apt-get install ' +
          'openmpi-bin libopenmpi-dev) and build from source (npx siglip-kernels build; in a clone, npm install): ' +
          'the prebuilt platform packages have no MPI. Ring.local() needs no MPI.',
        ERR_SIGLIP_NO_MPI,
      );
    }
    finalizeMpiAtExit();
    return new Ring(new addon.RingHandle('mpi', { timeoutMs }), threads);
  }

  /**
   * This process's rank of a ring of GPUs over NCCL (one GPU per rank; the CUDA build and
   * libnccl.so.2, found as SIGLIP_NCCL_LIBRARY says). One rank makes an id with
   * {@link Ring.ncclUniqueId} and shares it (e.g. over MPI, a file or the network); then every
   * rank calls `Ring.nccl` with it. The Promise resolves when all `size` ranks have joined (NCCL
   * has no timeout there: a rank that never joins keeps the others waiting, off the JavaScript
   * thread). Calls take DeviceMatrix inputs on `device` (any dtype) or host Matrix inputs
   * (uploaded as float32 for the call); host inputs are checked for NaN/Infinity, device
   * inputs are not.
   *
   * @param options - `rank`, `size`, `id`, `device` (all required), `timeoutMs` (default 60 000).
   * @returns a Promise of the Ring.
   * @throws Error with code `ERR_SIGLIP_NO_CUDA` without the CUDA build or a GPU,
   *   `ERR_SIGLIP_NO_NCCL` when NCCL cannot be loaded, `ERR_SIGLIP_RING_FAILED` when joining
   *   fails; TypeError / RangeError for bad options (an id that is not 128 bytes, a rank
   *   outside 0 … size − 1, a GPU this machine lacks). The Promise rejects with them.
   *
   * @example
   * ```ts
   * const id = rank === 0 ? Ring.ncclUniqueId() : await receiveIdFromRankZero();
   * const ring = await Ring.nccl({ rank, size, id, device: `cuda:${localRank}` });
   * const x = DeviceMatrix.fromHost(imageShard, rows, d, { device: `cuda:${localRank}` });
   * ```
   */
  static async nccl(options: NcclRingOptions): Promise<Ring> {
    const o = checkOptions(options, NCCL_KEYS, true);
    const size = checkIntegerInRange('options.size', o['size'], 1, MAX_RING_RANKS);
    const rank = checkIntegerInRange('options.rank', o['rank'], 0, size - 1);
    const idExpected = 'a Uint8Array of 128 bytes (from Ring.ncclUniqueId() on one rank)';
    const id = o['id'];
    // util.types, not instanceof: a Proxy of a Uint8Array passes instanceof, then fails on
    // every access with a bare TypeError.
    if (!types.isUint8Array(id)) throw invalidType('options.id', idExpected, id);
    if (isDetachedView(id)) throw invalidType('options.id', idExpected, id);
    if (typedArrayMemory(id).length !== 128) throw invalidValue('options.id', idExpected, id);
    const device = o['device'];
    const deviceExpected = "'cuda' or 'cuda:N' (the GPU of this rank)";
    if (typeof device !== 'string') throw invalidType('options.device', deviceExpected, device);
    if (!isCudaDeviceName(device)) throw invalidValue('options.device', deviceExpected, device);
    const timeoutMs = checkTimeout(o['timeoutMs']);
    const advice = 'NCCL rings need the CUDA build of siglip-kernels and a GPU per rank.';
    const ordinal = resolveCudaOrdinal('options.device', device, 0, advice);
    cudaAddon(`options.device is '${device}'`, advice, 'options.device');
    const native = new (loadAddon().addon.RingHandle)('nccl', { rank, size, id, device: ordinal, timeoutMs });
    try {
      await native.connect();
    } catch (error) {
      native.dispose();
      throw error;
    }
    return new Ring(native, 1);
  }

  /**
   * This process's rank of an NCCL ring whose ranks are the processes of this MPI job
   * (`mpirun -np P`, one GPU per process): rank and size come from MPI, MPI rank 0 makes the
   * NCCL unique id and MPI carries it to the others, then every rank joins as in
   * {@link Ring.nccl}. Needs a build with both MPI and CUDA.
   *
   * @param options - `device` (default: the GPU of this process's rank on its machine),
   *   `timeoutMs` (default 60 000).
   * @returns a Promise of the Ring (kind `'nccl'`).
   * @throws what {@link Ring.mpi} and {@link Ring.nccl} throw; when rank 0 cannot make the id
   *   (no GPU, no NCCL) it rejects with that error and every other rank with code
   *   {@link ERR_SIGLIP_RING_FAILED} giving rank 0's reason.
   *
   * @example
   * ```ts
   * // requires: mpi, cuda
   * // mpirun -np 4 node --import tsx train.ts   (4 GPUs)
   * const ring = await Ring.ncclOverMpi();
   * ```
   */
  static async ncclOverMpi(options?: NcclOverMpiOptions): Promise<Ring> {
    const o = checkOptions(options, NCCL_OVER_MPI_KEYS, false);
    const timeoutMs = checkTimeout(o['timeoutMs']);
    const device = o['device'] ?? defaultLocalDevice();
    const mpi = await Ring.mpi({ timeoutMs, threads: 1 });
    try {
      const message = new Uint8Array(ID_MESSAGE_BYTES);
      let failure: unknown;
      if (mpi.rank === 0) {
        try {
          message.set(Ring.ncclUniqueId(), 1);
        } catch (error) {
          failure = error;
          message[0] = 1;
          message.set(new TextEncoder().encode(String((error as Error)?.message ?? error)).subarray(0, 512), 129);
        }
      }
      const fromRankZero = (await mpi.allGather(message))[0]!;
      if (failure !== undefined) throw failure;
      if (fromRankZero[0] !== 0) {
        const why = new TextDecoder().decode(fromRankZero.subarray(129)).replace(/\0+$/, '');
        throw errorWithCode(`MPI rank 0 could not make the NCCL unique id: ${why}`, ERR_SIGLIP_RING_FAILED);
      }
      return await Ring.nccl({ rank: mpi.rank, size: mpi.size, id: fromRankZero.slice(1, 129), device: device as CudaDevice, timeoutMs });
    } finally {
      mpi.dispose();
    }
  }

  /**
   * A new NCCL unique id (ncclGetUniqueId), for one rank to make and share with the others
   * before they call {@link Ring.nccl}.
   *
   * @returns 128 bytes.
   * @throws Error with code `ERR_SIGLIP_NO_CUDA` without the CUDA build or a GPU,
   *   `ERR_SIGLIP_NO_NCCL` when NCCL cannot be loaded.
   *
   * @example
   * ```ts
   * const id = Ring.ncclUniqueId(); // requires: cuda
   * ```
   */
  static ncclUniqueId(): Uint8Array {
    const addon = cudaAddon('Ring.ncclUniqueId() needs a GPU', 'NCCL rings need the CUDA build of siglip-kernels and a GPU.');
    const full = addon as unknown as { ncclUniqueId?: () => Uint8Array };
    if (typeof full.ncclUniqueId !== 'function') {
      throw errorWithCode('This build of siglip-kernels has no NCCL transport', 'ERR_SIGLIP_NO_NCCL');
    }
    return full.ncclUniqueId();
  }

  /**
   * The sigmoid loss of the global batch and its gradients, computed by the ring.
   *
   * On a local ring: `imageShards` and `textShards` are Arrays of P {@link Matrix} shards
   * (shard r is rank r's; every shard at least one row, all of width D; on a local ring of
   * GPUs also DeviceMatrix shards on rank r's GPU, all of one dtype); label ids, when used,
   * are Arrays of P Int32Arrays. Without ids the global text batch must have as many
   * rows as the global image batch (row i pairs with row i; shards may still split them
   * differently). On an MPI or NCCL ring: this rank's `image` and `text` shard (NCCL: Matrix
   * or DeviceMatrix) and its ids; every rank calls with the same options.
   *
   * Defaults: logitScale ln 10, logitBias −10. Gradients are those of the global loss L (see
   * {@link Ring}: scale by P where a framework averages over ranks). Do not mutate the inputs
   * until the Promise settles.
   *
   * @returns a Promise of `{ loss, grad, stats }`: on a local ring `grad.image` / `grad.text`
   *   are Arrays of P Float32Arrays and `stats` one {@link RingStats} per rank
   *   ({@link LocalRingLossWithGrad}); on MPI/NCCL rings this rank's gradients and stats
   *   ({@link RankRingLossWithGrad}).
   * @throws (the Promise rejects) TypeError for wrong kinds of arguments (a non-Array of shards
   *   on a local ring, non-Float32Array data, non-Int32Array ids, only one of imageIds/textIds,
   *   unknown options), RangeError for bad values (a wrong number of shards, a D that differs
   *   between shards or ranks, ids of the wrong length, global row counts that do not match
   *   without ids, NaN/Infinity in a shard, |logitScale| > 80), Error with code
   *   {@link ERR_SIGLIP_RING_FAILED} when a rank timed out or stopped because another failed,
   *   `ERR_SIGLIP_DISPOSED` after dispose(), `ERR_SIGLIP_OUT_OF_MEMORY`. Errors name the
   *   argument, e.g. `imageShards[2].data`.
   *
   * @example
   * ```ts
   * const ring = await Ring.local({ ranks: 2 });
   * const ids = [new Int32Array([0, 1, 2]), new Int32Array([3])]; // 3 + 1 images
   * const textIds = [new Int32Array([3, 0]), new Int32Array([1, 2])]; // 2 + 2 captions
   * const shards = (m, at) => [matrix(m.data.slice(0, at * 3), at, 3), matrix(m.data.slice(at * 3), m.rows - at, 3)];
   * const { grad } = await ring.sigmoidLossWithGrad(shards(image, 3), shards(text, 2), { imageIds: ids, textIds });
   * ring.dispose();
   * ```
   */
  sigmoidLossWithGrad(imageShards: Matrix[], textShards: Matrix[], options?: LocalRingLossOptions): Promise<LocalRingLossWithGrad>;
  sigmoidLossWithGrad(
    imageShards: Array<Matrix | DeviceMatrix>,
    textShards: Array<Matrix | DeviceMatrix>,
    options: LocalRingLossOptions & { gradients: 'device' },
  ): Promise<LocalRingLossWithGrad<DeviceMatrix>>;
  sigmoidLossWithGrad(
    imageShards: DeviceMatrix[],
    textShards: DeviceMatrix[],
    options?: LocalRingLossOptions,
  ): Promise<LocalRingLossWithGrad<DeviceMatrix>>;
  sigmoidLossWithGrad(
    image: Matrix | DeviceMatrix,
    text: Matrix | DeviceMatrix,
    options: RankRingLossOptions & { gradients: 'device' },
  ): Promise<RankRingLossWithGrad<DeviceMatrix>>;
  sigmoidLossWithGrad(
    image: Matrix | DeviceMatrix,
    text: Matrix | DeviceMatrix,
    options: RankRingLossOptions & { gradients: 'host' },
  ): Promise<RankRingLossWithGrad>;
  sigmoidLossWithGrad(image: Matrix, text: Matrix, options?: RankRingLossOptions): Promise<RankRingLossWithGrad>;
  sigmoidLossWithGrad(
    image: DeviceMatrix,
    text: DeviceMatrix,
    options?: RankRingLossOptions,
  ): Promise<RankRingLossWithGrad<DeviceMatrix>>;
  async sigmoidLossWithGrad(
    image: Array<Matrix | DeviceMatrix> | Matrix | DeviceMatrix,
    text: Array<Matrix | DeviceMatrix> | Matrix | DeviceMatrix,
    options?: LocalRingLossOptions | RankRingLossOptions,
  ): Promise<LocalRingLossWithGrad<AnyGradient> | RankRingLossWithGrad<AnyGradient>> {
    const call = this.#prepare(image, text, options);
    const result = await this.#run(call, true);
    if (Array.isArray(result)) return this.#localResult(result);
    const g = result.grad!;
    return {
      loss: result.loss,
      grad: { image: wrapGradient(g.image), text: wrapGradient(g.text), logitScale: g.logitScale, logitBias: g.logitBias },
      stats: result.stats,
    };
  }

  /**
   * The sigmoid loss of the global batch only (no gradients): the same number as
   * {@link Ring.sigmoidLossWithGrad}'s `loss`, with the same arguments, defaults and errors.
   *
   * @returns a Promise of the loss L (nats per image row of the global batch).
   *
   * @example
   * ```ts
   * const ring = await Ring.local({ ranks: 2 });
   * const loss = await ring.sigmoidLoss([image, image], [text, text]); // the batch twice
   * ring.dispose();
   * ```
   */
  sigmoidLoss(imageShards: Array<Matrix | DeviceMatrix>, textShards: Array<Matrix | DeviceMatrix>, options?: LocalRingLossOptions): Promise<number>;
  sigmoidLoss(image: Matrix | DeviceMatrix, text: Matrix | DeviceMatrix, options?: RankRingLossOptions): Promise<number>;
  async sigmoidLoss(
    image: Array<Matrix | DeviceMatrix> | Matrix | DeviceMatrix,
    text: Array<Matrix | DeviceMatrix> | Matrix | DeviceMatrix,
    options?: LocalRingLossOptions | RankRingLossOptions,
  ): Promise<number> {
    const call = this.#prepare(image, text, options);
    const result = await this.#run(call, false);
    if (Array.isArray(result)) return this.#localResult(result).loss;
    return result.loss;
  }

  /**
   * Every rank's bytes, on every rank: each rank of an MPI or NCCL ring passes a Uint8Array of
   * the same length (at most 1 MiB) and gets all P of them, in rank order. For the few values
   * ranks must agree on outside a loss call (an id, a seed, a step count). Queued with the
   * ring's other calls; every rank must make it at the same point of its sequence of calls.
   *
   * @returns a Promise of P Uint8Arrays (index r: rank r's bytes).
   * @throws TypeError on a local ring (its ranks are this process) or for a non-Uint8Array;
   *   RangeError for more than 1 MiB, or (on every rank) when ranks pass different lengths;
   *   `ERR_SIGLIP_RING_FAILED` when a rank does not join within the timeout. A failure leaves
   *   the ring unusable, as a failed loss call does. The Promise rejects with them.
   *
   * @example
   * ```ts
   * // requires: mpi
   * const ring = await Ring.mpi();
   * const seeds = await ring.allGather(Uint8Array.of(ring.rank)); // [[0], [1], …]
   * ring.dispose();
   * ```
   */
  async allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    const native = this.#live();
    if (this.kind === 'local') {
      throw invalidType('ring', "an MPI or NCCL ring (a local ring's ranks are threads of this process)", new Description('a local ring'));
    }
    if (!types.isUint8Array(bytes) || isDetachedView(bytes)) throw invalidType('bytes', 'a Uint8Array that is not detached', bytes);
    const { buffer, byteOffset, length } = typedArrayMemory(bytes);
    if (length > MAX_ALL_GATHER_BYTES) throw invalidValue('bytes', 'at most 1 MiB (1048576 bytes)', new Description(`${length} bytes`));
    const copy = new Uint8Array(buffer, byteOffset, length).slice();
    const all = await this.#enqueue(() => native.allGather(copy));
    return Array.from({ length: this.size }, (_, r) => all.slice(r * copy.length, (r + 1) * copy.length));
  }

  /**
   * Frees the ring's transports (an MPI ring's communicator, an NCCL communicator) once the
   * calls made before it have settled. Calls made afterwards reject with
   * `ERR_SIGLIP_DISPOSED`. Idempotent.
   * MPI itself stays initialised until the process exits (it cannot be initialised twice), so
   * a new {@link Ring.mpi} may follow.
   *
   * @example
   * ```ts
   * const ring = await Ring.local({ ranks: 2 });
   * ring.dispose();
   * ```
   */
  dispose(): void {
    const native = this.#native;
    this.#native = null;
    if (native !== null) void this.#queue.then(() => native.dispose());
  }

  #live(): NativeRing {
    if (this.#native === null) throw disposedRing();
    return this.#native;
  }

  #run(
    call: PreparedCall,
    wantGrad: boolean,
  ): Promise<NativeRingRankResult<Float32Array | NativeDeviceMatrix>[] | NativeRingRankResult<Float32Array | NativeDeviceMatrix>> {
    const native = this.#live(); // calls made before dispose() still run
    const own = snapshotCall(call);
    return this.#enqueue(() => native.sigmoidLoss(own.image, own.text, own.options, wantGrad));
  }

  // Calls run one after another (a transport carries one call at a time).
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #localResult(ranks: NativeRingRankResult<Float32Array | NativeDeviceMatrix>[]): LocalRingLossWithGrad<AnyGradient> {
    const first = ranks[0]!;
    for (const [r, result] of ranks.entries()) {
      const same =
        Object.is(result.loss, first.loss) &&
        Object.is(result.grad?.logitScale, first.grad?.logitScale) &&
        Object.is(result.grad?.logitBias, first.grad?.logitBias);
      if (!same) {
        throw errorWithCode(`Internal error in siglip-kernels: ring rank ${r} ended with other scalars than rank 0`, 'ERR_SIGLIP_INTERNAL');
      }
    }
    return {
      loss: first.loss,
      grad: {
        image: ranks.map((r) => (r.grad ? wrapGradient(r.grad.image) : new Float32Array(0))),
        text: ranks.map((r) => (r.grad ? wrapGradient(r.grad.text) : new Float32Array(0))),
        logitScale: first.grad?.logitScale ?? 0,
        logitBias: first.grad?.logitBias ?? 0,
      },
      stats: ranks.map((r) => r.stats),
    };
  }

  #prepare(image: unknown, text: unknown, options: unknown): PreparedCall {
    this.#live();
    if (this.kind === 'local') return this.#prepareLocal(image, text, options);
    return this.#prepareRank(image, text, options);
  }

  #prepareLocal(imageShards: unknown, textShards: unknown, options: unknown): PreparedCall {
    const p = this.size;
    const shardOf = (name: string) => (m: unknown, r: number) =>
      this.#onGpus && m instanceof DeviceMatrix ? m : checkMatrix(`${name}[${r}]`, m);
    const images = checkShardArray('imageShards', imageShards, p).map(shardOf('imageShards'));
    const texts = checkShardArray('textShards', textShards, p).map(shardOf('textShards'));
    const d = images[0]!.cols;
    const width = `${d} (imageShards[0].cols: every shard has the same width D)`;
    images.forEach((m, r) => {
      if (m.cols !== d) throw invalidValue(`imageShards[${r}].cols`, width, m.cols);
    });
    texts.forEach((m, r) => {
      if (m.cols !== d) throw invalidValue(`textShards[${r}].cols`, width, m.cols);
    });
    const o = checkOptions(options, LOCAL_CALL_KEYS, false);
    const native: NativeRingLossOptions = { ...sharedOptions(o) };
    const onDevice = images[0] instanceof DeviceMatrix;
    if (this.#onGpus) {
      Object.assign(native, gpuCallOptions(o, onDevice));
    } else {
      native.threads = this.#threads;
      for (const key of ['precision', 'gradients'] as const) {
        if (o[key] !== undefined) throw invalidType(`options.${key}`, 'no value on a CPU ring (it applies to rings of GPUs)', o[key]);
      }
    }
    const withIds = idsGivenTogether(o['imageIds'], o['textIds'], `an Array of ${p} Int32Arrays`);
    if (withIds) {
      const idArrays = (key: 'imageIds' | 'textIds', shards: Array<Matrix | DeviceMatrix>, name: string) => {
        const value = o[key];
        const expected = `an Array of ${p} Int32Arrays (one per rank)`;
        if (!Array.isArray(value)) throw invalidType(`options.${key}`, expected, value);
        if (value.length !== p) throw invalidValue(`options.${key}`, expected, value);
        return value.map((ids, r) => checkIds(`options.${key}[${r}]`, ids, shards[r]!.rows, `${name}[${r}]`));
      };
      native.imageIds = idArrays('imageIds', images, 'imageShards');
      native.textIds = idArrays('textIds', texts, 'textShards');
    } else {
      const n = images.reduce((sum, m) => sum + m.rows, 0);
      const m = texts.reduce((sum, t) => sum + t.rows, 0);
      if (n !== m) {
        throw invalidValue(
          'textShards',
          `${n} text rows in all (as many as image rows over all shards: without imageIds/textIds row i of the ` +
            'global image batch pairs with row i of the global text batch)',
          new Description(`${m} rows`),
        );
      }
    }
    if (o['failRank'] !== undefined) {
      native.failRank = checkIntegerInRange('options.failRank', o['failRank'], 0, p - 1);
      const mode = o['failMode'] ?? 'abort';
      if (mode !== 'abort' && mode !== 'absent') throw invalidValue('options.failMode', "'abort' or 'absent'", mode);
      native.failMode = mode;
    }
    const toNative = (name: string) => (m: Matrix | DeviceMatrix, r: number) =>
      m instanceof DeviceMatrix ? liveNative(m, `${name}[${r}]`) : m;
    return { image: images.map(toNative('imageShards')), text: texts.map(toNative('textShards')), options: native };
  }

  #prepareRank(image: unknown, text: unknown, options: unknown): PreparedCall {
    const nccl = this.kind === 'nccl';
    const o = checkOptions(options, nccl ? NCCL_CALL_KEYS : MPI_CALL_KEYS, false);
    let x: { rows: number; cols: number };
    let y: { rows: number; cols: number };
    let nativeImage: NativeMatrix | NativeDeviceMatrix;
    let nativeText: NativeMatrix | NativeDeviceMatrix;
    const onDevice = image instanceof DeviceMatrix;
    if (nccl && (onDevice || text instanceof DeviceMatrix)) {
      if (!(image instanceof DeviceMatrix) || !(text instanceof DeviceMatrix)) {
        const [argument, value, other] = onDevice ? ['text', text, 'image'] : ['image', image, 'text'];
        throw invalidType(argument, `a DeviceMatrix, as ${other} is one (both inputs live on the GPU or neither)`, value);
      }
      nativeImage = liveNative(image, 'image');
      nativeText = liveNative(text, 'text');
      x = image;
      y = text;
      if (text.dtype !== image.dtype) {
        throw invalidType('text', `a DeviceMatrix of dtype ${image.dtype} (as image)`, new Description(`one of dtype ${text.dtype}`));
      }
    } else {
      if (Array.isArray(image)) {
        throw invalidType('image', `one Matrix, this rank's shard (a ${this.kind} ring has one rank per process)`, image);
      }
      const m = checkMatrix('image', image);
      const t = checkMatrix('text', text);
      x = m;
      y = t;
      nativeImage = m;
      nativeText = t;
    }
    if (y.cols !== x.cols) throw invalidValue('text.cols', `${x.cols} (image.cols: the same width D)`, y.cols);
    const native: NativeRingLossOptions = { ...sharedOptions(o) };
    if (idsGivenTogether(o['imageIds'], o['textIds'], 'an Int32Array')) {
      native.imageIds = checkIds('options.imageIds', o['imageIds'], x.rows, 'image');
      native.textIds = checkIds('options.textIds', o['textIds'], y.rows, 'text');
    }
    if (nccl) {
      Object.assign(native, gpuCallOptions(o, onDevice));
    } else {
      native.threads = this.#threads;
    }
    return { image: nativeImage, text: nativeText, options: native };
  }
}

function wrapGradient(value: Float32Array | NativeDeviceMatrix): AnyGradient {
  return value instanceof Float32Array ? value : wrapNative(value);
}
