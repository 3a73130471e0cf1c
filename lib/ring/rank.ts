/**
 * {@link RankRing}: this process's rank of a ring with one rank per process, over MPI
 * ({@link Ring.mpi}) or NCCL ({@link Ring.nccl}, {@link Ring.ncclOverMpi}); each call takes
 * this rank's one shard.
 *
 * @internal
 * @packageDocumentation
 */

import { type CudaDevice, checkCudaDevice, cudaAddon } from '../cuda';
import { DeviceMatrix, liveNative, wrapGradient } from '../device_matrix';
import { loadAddon } from '../loader';
import { checkMatrix, type Matrix } from '../matrix';
import type { NativeDeviceMatrix, NativeRing, NativeRingLossOptions, NativeRingRankResult } from '../native';
import { checkIds, checkOptionKeys, checkThreads } from '../options';
import { bothOnDevice, checkSameDtype } from '../request';
import { checkIntegerInRange, checkTypedArray, errorWithCode, invalidType, typedArrayMemory } from '../validate';
import { type PreparedCall, Ring, connected, registerRingFactories, snapshotOf } from './base';
import {
  ERR_SIGLIP_NO_MPI,
  ERR_SIGLIP_RING_FAILED,
  type MpiRingOptions,
  type NcclOverMpiOptions,
  type NcclRingOptions,
  RING_CALL_KEYS,
  type RankRingLossOptions,
  type RankRingLossWithGrad,
  checkRankCount,
  ringTimeout,
  defaultLocalDevice,
  gpuCallOptions,
  mpiRanksHere,
  sharedOptions,
  threadsPerRank,
} from './options';

const MPI_KEYS = ['threads', 'timeoutMs'];
const NCCL_KEYS = ['rank', 'size', 'id', 'device', 'timeoutMs'];
const NCCL_OVER_MPI_KEYS = ['device', 'timeoutMs'];
const MPI_CALL_KEYS = [...RING_CALL_KEYS];
const NCCL_CALL_KEYS = [...RING_CALL_KEYS, 'precision', 'gradients'];
// What MPI rank 0 sends in Ring.ncclOverMpi: a flag (0: the id follows; 1: making it failed),
// the 128-byte id, then why it failed (UTF-8, zero-padded).
const ID_MESSAGE_BYTES = 1 + 128 + 512;

type Result = NativeRingRankResult<Float32Array | NativeDeviceMatrix>;

/**
 * This process's rank of a ring with one rank per process: an MPI ring ({@link Ring.mpi}, CPU)
 * or an NCCL ring ({@link Ring.nccl}, one GPU). Each call takes this rank's shard; every rank
 * makes the same calls in the same order, with the same options.
 */
export class RankRing extends Ring {
  readonly #threads: number;

  /** `'mpi'` or `'nccl'`. */
  readonly kind: 'mpi' | 'nccl';

  /** @internal */
  constructor(native: NativeRing, threads: number) {
    super(native);
    this.kind = native.kind === 'nccl' ? 'nccl' : 'mpi';
    this.#threads = threads;
  }

  /** How many ranks this object drives: 1, this process's. */
  get ranks(): number {
    return 1;
  }

  /**
   * The sigmoid loss of the global batch and its gradients, computed by the ring: `image` and
   * `text` are this rank's shards (NCCL: Matrix or DeviceMatrix, both alike) and its ids;
   * every rank calls with the same options.
   *
   * Defaults: logitScale ln 10, logitBias −10. Gradients are those of the global loss L (see
   * {@link Ring}: scale by P where a framework averages over ranks). Do not mutate the inputs
   * until the Promise settles.
   *
   * @returns a Promise of `{ loss, grad, stats }`: this rank's gradients and stats.
   * @throws (the Promise rejects) TypeError for wrong kinds of arguments (non-Float32Array
   *   data, non-Int32Array ids, only one of imageIds/textIds, unknown options), RangeError for
   *   bad values (a D that differs between shards or ranks, ids of the wrong length, global
   *   row counts that do not match without ids, NaN/Infinity in a shard, |logitScale| > 80),
   *   Error with code {@link ERR_SIGLIP_RING_FAILED} when a rank timed out or stopped because
   *   another failed, `ERR_SIGLIP_DISPOSED` after dispose(), `ERR_SIGLIP_OUT_OF_MEMORY`.
   *
   * @example
   * ```ts
   * // requires: mpi
   * const ring = await Ring.mpi();
   * const { loss, grad } = await ring.sigmoidLossWithGrad(image, text); // this rank's shard
   * ring.dispose();
   * ```
   */
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
  sigmoidLossWithGrad(image: DeviceMatrix, text: DeviceMatrix, options?: RankRingLossOptions): Promise<RankRingLossWithGrad<DeviceMatrix>>;
  async sigmoidLossWithGrad(
    image: Matrix | DeviceMatrix,
    text: Matrix | DeviceMatrix,
    options?: RankRingLossOptions,
  ): Promise<RankRingLossWithGrad<Float32Array | DeviceMatrix>> {
    const result = await this.sigmoidCall<Result>(() => this.#prepare(image, text, options), true);
    const g = result.grad!;
    return {
      loss: result.loss,
      grad: { image: wrapGradient(g.image), text: wrapGradient(g.text), logitScale: g.logitScale, logitBias: g.logitBias },
      stats: result.stats,
    };
  }

  /**
   * The sigmoid loss of the global batch only (no gradients): the same number as
   * {@link RankRing.sigmoidLossWithGrad}'s `loss`, with the same arguments, defaults and errors.
   *
   * @returns a Promise of the loss L (nats per image row of the global batch).
   *
   * @example
   * ```ts
   * // requires: mpi
   * const ring = await Ring.mpi();
   * const loss = await ring.sigmoidLoss(image, text); // this rank's shard
   * ring.dispose();
   * ```
   */
  async sigmoidLoss(image: Matrix | DeviceMatrix, text: Matrix | DeviceMatrix, options?: RankRingLossOptions): Promise<number> {
    return (await this.sigmoidCall<Result>(() => this.#prepare(image, text, options), false)).loss;
  }

  /**
   * Every rank's bytes, on every rank: each rank passes a Uint8Array of the same length (at
   * most 1 MiB) and gets all P of them, in rank order. For the few values ranks must agree on
   * outside a loss call (an id, a seed, a step count). Queued with the ring's other calls;
   * every rank must make it at the same point of its sequence of calls. (A {@link LocalRing}
   * has none: its ranks are this process.)
   *
   * @returns a Promise of P Uint8Arrays (index r: rank r's bytes).
   * @throws TypeError for a non-Uint8Array; RangeError for more than 1 MiB, or (on every rank)
   *   when ranks pass different lengths; `ERR_SIGLIP_RING_FAILED` when a rank does not join
   *   within the timeout. A failure leaves the ring unusable, as a failed loss call does. The
   *   Promise rejects with them.
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
    this.live();
    const expected = 'a Uint8Array that is not detached';
    const { buffer, byteOffset, length } = typedArrayMemory(checkTypedArray('bytes', bytes, 'Uint8Array', expected, expected)); // its size: the core's check
    const copy = new Uint8Array(buffer, byteOffset, length).slice();
    const all = await this.enqueue((native) => native.allGather(copy));
    return Array.from({ length: this.size }, (_, r) => all.slice(r * copy.length, (r + 1) * copy.length));
  }

  // As LocalRing's: kinds, option names and the snapshot here, before the call is queued; the
  // rest is the core's, when the call runs.
  #prepare(image: unknown, text: unknown, options: unknown): PreparedCall {
    const nccl = this.kind === 'nccl';
    const o = checkOptionKeys(options, nccl ? NCCL_CALL_KEYS : MPI_CALL_KEYS);
    const native: NativeRingLossOptions = { ...sharedOptions(o) };
    let inputs: [unknown, unknown];
    if (nccl && bothOnDevice(image, text)) {
      const [x, y] = [image as DeviceMatrix, text as DeviceMatrix];
      inputs = [liveNative(x, 'image'), liveNative(y, 'text')];
      checkSameDtype(x, y);
      Object.assign(native, gpuCallOptions(o, { dtype: x.dtype }));
    } else {
      if (Array.isArray(image)) {
        throw invalidType('image', `one Matrix, this rank's shard (a ${this.kind} ring has one rank per process)`, image);
      }
      inputs = [snapshotOf(checkMatrix('image', image)), snapshotOf(checkMatrix('text', text))];
      if (nccl) Object.assign(native, gpuCallOptions(o, undefined));
      else native.threads = this.#threads;
    }
    native.imageIds = snapshotOf(checkIds('options.imageIds', o['imageIds']));
    native.textIds = snapshotOf(checkIds('options.textIds', o['textIds']));
    return { image: inputs[0], text: inputs[1], options: native };
  }
}

let mpiExitHookAdded = false;

// Finalises MPI when the process exits, on the thread that initialised it (the addon also
// does so when the Node.js environment is torn down; finalising twice is a no-op).
function finalizeMpiAtExit(): void {
  if (mpiExitHookAdded) return;
  mpiExitHookAdded = true;
  process.once('exit', () => loadAddon().addon.mpiFinalize());
}

async function openMpiRing(options?: MpiRingOptions): Promise<RankRing> {
  const o = checkOptionKeys(options, MPI_KEYS);
  const threads = o['threads'] === undefined ? threadsPerRank(mpiRanksHere()) : checkThreads('options.threads', o['threads']);
  const timeoutMs = ringTimeout(o['timeoutMs']);
  const { addon } = loadAddon();
  const MpiRingHandle = addon.MpiRingHandle;
  if (MpiRingHandle === undefined) {
    throw errorWithCode(
      'Ring.mpi() needs the MPI transport, but this build of siglip-kernels has none: no MPI was found when ' +
        'the addon was compiled. Install MPI with its compiler wrapper mpicxx (Debian/Ubuntu: apt-get install ' +
        'openmpi-bin libopenmpi-dev) and build from source (npx siglip-kernels build; in a clone, npm install): ' +
        'the prebuilt platform packages have no MPI. Ring.local() needs no MPI.',
      ERR_SIGLIP_NO_MPI,
    );
  }
  finalizeMpiAtExit();
  return new RankRing(new MpiRingHandle({ timeoutMs }), threads);
}

async function openNcclRing(options: NcclRingOptions): Promise<RankRing> {
  const o = checkOptionKeys(options, NCCL_KEYS, true);
  const size = checkRankCount('options.size', o['size']);
  const rank = checkIntegerInRange('options.rank', o['rank'], 0, size - 1);
  const idExpected = 'a Uint8Array of 128 bytes (from Ring.ncclUniqueId() on one rank)';
  const id = checkTypedArray('options.id', o['id'], 'Uint8Array', idExpected, idExpected); // its length: the core's check
  const advice = 'NCCL rings need the CUDA build of siglip-kernels and a GPU per rank.';
  const { ordinal } = checkCudaDevice('options.device', o['device'], "'cuda' or 'cuda:N' (the GPU of this rank)", advice);
  const timeoutMs = ringTimeout(o['timeoutMs']);
  const NcclRingHandle = loadAddon().addon.NcclRingHandle;
  if (NcclRingHandle === undefined) throw errorWithCode('This build of siglip-kernels has no NCCL transport', 'ERR_SIGLIP_NO_NCCL');
  return new RankRing(await connected(new NcclRingHandle({ rank, size, id, device: ordinal, timeoutMs })), 1);
}

async function openNcclOverMpi(options?: NcclOverMpiOptions): Promise<RankRing> {
  const o = checkOptionKeys(options, NCCL_OVER_MPI_KEYS);
  const timeoutMs = ringTimeout(o['timeoutMs']);
  const device = o['device'] ?? defaultLocalDevice();
  const mpi = await openMpiRing({ timeoutMs, threads: 1 });
  try {
    const message = new Uint8Array(ID_MESSAGE_BYTES);
    let failure: unknown;
    if (mpi.rank === 0) {
      try {
        message.set(ncclUniqueId(), 1);
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
    return await openNcclRing({ rank: mpi.rank, size: mpi.size, id: fromRankZero.slice(1, 129), device: device as CudaDevice, timeoutMs });
  } finally {
    mpi.dispose();
  }
}

function ncclUniqueId(): Uint8Array {
  const addon = cudaAddon('Ring.ncclUniqueId() needs a GPU', 'NCCL rings need the CUDA build of siglip-kernels and a GPU.');
  const full = addon as unknown as { ncclUniqueId?: () => Uint8Array };
  if (typeof full.ncclUniqueId !== 'function') {
    throw errorWithCode('This build of siglip-kernels has no NCCL transport', 'ERR_SIGLIP_NO_NCCL');
  }
  return full.ncclUniqueId();
}

registerRingFactories({ mpi: openMpiRing, nccl: openNcclRing, ncclOverMpi: openNcclOverMpi, ncclUniqueId });
