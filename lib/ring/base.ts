/**
 * `Ring`, the base of both kinds of ring: what every ring has (kind, rank, size, dispose, a
 * queue of calls) and the factories. {@link LocalRing} (lib/ring/local.ts) and
 * {@link RankRing} (lib/ring/rank.ts) extend it and register their factories here, so that
 * this module imports neither (lib/ring/index.ts loads all three).
 *
 * @internal
 * @packageDocumentation
 */
import { ERR_SIGLIP_DISPOSED } from '../device_matrix';
import type { NativeMatrix, NativeRing, NativeRingLossOptions } from '../native';
import type { LocalRing } from './local';
import { type LocalRingOptions, type MpiRingOptions, type NcclOverMpiOptions, type NcclRingOptions, type RingKind, disposedRing } from './options';
import type { RankRing } from './rank';

interface Factories {
  local(options: LocalRingOptions): Promise<LocalRing>;
  mpi(options?: MpiRingOptions): Promise<RankRing>;
  nccl(options: NcclRingOptions): Promise<RankRing>;
  ncclOverMpi(options?: NcclOverMpiOptions): Promise<RankRing>;
  ncclUniqueId(): Uint8Array;
}

const factories: Partial<Factories> = {};

/** Where lib/ring/local.ts and lib/ring/rank.ts hand their factories to {@link Ring}. */
export function registerRingFactories(more: Partial<Factories>): void {
  Object.assign(factories, more);
}

function factory<K extends keyof Factories>(name: K): Factories[K] {
  const f = factories[name];
  if (f === undefined) throw new Error(`Internal error in siglip-kernels: Ring.${name} is not registered (import lib/ring/index)`);
  return f;
}

type HostInput = NativeMatrix | { data: unknown } | Int32Array;

/** A ring call as the native ring takes it (its inputs checked there). */
export interface PreparedCall {
  image: unknown;
  text: unknown;
  options: NativeRingLossOptions;
}

/** `native` once it has connected (an NCCL ring joins its ranks then, off this thread); disposed if it cannot. */
export async function connected(native: NativeRing): Promise<NativeRing> {
  try {
    await native.connect();
    return native;
  } catch (error) {
    native.dispose();
    throw error;
  }
}

/**
 * A copy of the host data of a call's inputs: host matrices and label ids (device matrices as
 * they are). A ring call runs once the calls before it on the same ring have finished and
 * reads its inputs then, so it takes this copy at the call: its result is that of the values
 * the inputs held when it was made, whatever the caller does to its arrays meanwhile (mutate,
 * resize, transfer), as for every Promise call of the package (csrc/addon/host_inputs.h).
 */
export function snapshotOf<T>(value: T): T {
  if (value === undefined) return value;
  if (Array.isArray(value)) return value.map((v: unknown) => snapshotOf(v)) as T;
  if (value instanceof Int32Array) return value.slice() as T;
  const m = value as HostInput as NativeMatrix;
  if (m.data instanceof Float32Array) return { data: m.data.slice(), rows: m.rows, cols: m.cols } as T;
  return value;
}

/**
 * A ring of P ranks that computes the SigLIP sigmoid loss of a batch split into P shards
 * (the global batch is the concatenation of the shards in rank order) and its gradients,
 * without gathering the batch anywhere (SPEC.md, "The ring"). Make one with
 * {@link Ring.local} (P ranks as threads of this process, on the CPU or GPUs: a
 * {@link LocalRing}), {@link Ring.mpi} (this process's rank of an `mpirun` job) or
 * {@link Ring.nccl} (this process's GPU rank): a {@link RankRing}; use it for any number of
 * calls, then {@link Ring.dispose} it.
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
export abstract class Ring {
  #native: NativeRing | null;
  #queue: Promise<unknown> = Promise.resolve();

  /** How the ranks talk: `'local'` ({@link LocalRing}), `'mpi'` or `'nccl'` ({@link RankRing}). */
  abstract readonly kind: RingKind;
  /** This process's rank (MPI, NCCL); 0 for a local ring, which drives ranks 0 … size − 1 itself. */
  readonly rank: number;
  /** P, the number of ranks of the ring (all processes together). */
  readonly size: number;

  /** @internal */
  protected constructor(native: NativeRing) {
    this.#native = native;
    this.rank = native.rank;
    this.size = native.size;
  }

  /** How many ranks this object drives: `size` for a local ring, 1 for MPI and NCCL rings. */
  abstract get ranks(): number;

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
   * @returns a Promise of the {@link LocalRing}.
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
  static async local(options: LocalRingOptions): Promise<LocalRing> {
    return factory('local')(options);
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
   * @returns a Promise of the {@link RankRing}.
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
  static async mpi(options?: MpiRingOptions): Promise<RankRing> {
    return factory('mpi')(options);
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
   * @returns a Promise of the {@link RankRing}.
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
  static async nccl(options: NcclRingOptions): Promise<RankRing> {
    return factory('nccl')(options);
  }

  /**
   * This process's rank of an NCCL ring whose ranks are the processes of this MPI job
   * (`mpirun -np P`, one GPU per process): rank and size come from MPI, MPI rank 0 makes the
   * NCCL unique id and MPI carries it to the others, then every rank joins as in
   * {@link Ring.nccl}. Needs a build with both MPI and CUDA.
   *
   * @param options - `device` (default: the GPU of this process's rank on its machine),
   *   `timeoutMs` (default 60 000).
   * @returns a Promise of the {@link RankRing} (kind `'nccl'`).
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
  static async ncclOverMpi(options?: NcclOverMpiOptions): Promise<RankRing> {
    return factory('ncclOverMpi')(options);
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
    return factory('ncclUniqueId')();
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

  /**
   * The native ring, or the disposed error.
   *
   * @internal
   */
  protected live(): NativeRing {
    if (this.#native === null) throw disposedRing(ERR_SIGLIP_DISPOSED);
    return this.#native;
  }

  /**
   * A loss call: `prepare` makes lib/'s checks and the snapshot now (a bad call rejects at
   * once, or after dispose() with the disposed error), the native call runs in turn.
   *
   * @internal
   */
  protected sigmoidCall<T>(prepare: () => PreparedCall, wantGrad: boolean): Promise<T> {
    this.live();
    const call = prepare();
    return this.enqueue((native) => native.sigmoidLoss(call.image, call.text, call.options, wantGrad) as Promise<T>);
  }

  /**
   * Runs `task` once the calls made before it have settled (a transport carries one call at a
   * time). Calls made before dispose() still run.
   *
   * @internal
   */
  protected enqueue<T>(task: (native: NativeRing) => Promise<T>): Promise<T> {
    const native = this.live();
    const run = this.#queue.then(
      () => task(native),
      () => task(native),
    );
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
