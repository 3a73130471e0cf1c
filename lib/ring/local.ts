/**
 * {@link LocalRing}: the P ranks of a ring as threads of this process, each call taking an
 * Array of P shards; {@link Ring.local} makes one.
 *
 * @internal
 * @packageDocumentation
 */
import { DeviceMatrix, liveNative, wrapGradient } from '../device_matrix';
import { loadAddon } from '../loader';
import { checkMatrix, type Matrix } from '../matrix';
import type { NativeDeviceMatrix, NativeRing, NativeRingLossOptions, NativeRingRankResult } from '../native';
import { checkIds, checkOptionKeys, checkThreads } from '../options';
import { checkChoice, errorWithCode, invalidType, invalidValue } from '../validate';
import { type PreparedCall, Ring, connected, registerRingFactories, snapshotOf } from './base';
import {
  type LocalRingLossOptions,
  type LocalRingLossWithGrad,
  type LocalRingOptions,
  RING_CALL_KEYS,
  checkRankCount,
  ringTimeout,
  gpuCallOptions,
  localDevices,
  sharedOptions,
  threadsPerRank,
} from './options';

const LOCAL_KEYS = ['ranks', 'device', 'transport', 'threads', 'timeoutMs'];
const LOCAL_CALL_KEYS = [...RING_CALL_KEYS, 'precision', 'gradients'];

type Result = NativeRingRankResult<Float32Array | NativeDeviceMatrix>;

// Each LocalRing's native handle, for the test seam below only.
const handles = new WeakMap<LocalRing, NativeRing>();

/**
 * The test seam of local rings (not exported by the package's entry points): rank `rank` of
 * `ring`'s next call fails after its first ring step (`'abort'`) or never takes part
 * (`'absent'`), so that tests can check the other ranks stop with an error instead of
 * hanging. Call it while the ring is idle, right before the call it is meant for.
 *
 * @internal
 */
export function injectRingFaultForTests(ring: LocalRing, rank: unknown, mode?: unknown): void {
  const native = handles.get(ring);
  if (native === undefined || ring.disposed) throw invalidType('ring', 'a LocalRing that is not disposed', ring);
  native.testFault(rank as number, mode as 'abort' | 'absent' | undefined);
}

/**
 * A ring whose P ranks are threads of this process ({@link Ring.local}), on the CPU or on
 * GPUs: each call takes every rank's shards at once and returns every rank's gradients.
 */
export class LocalRing extends Ring {
  readonly #threads: number;
  readonly #onGpus: boolean;

  /** Always `'local'`. */
  readonly kind = 'local' as const;

  /** @internal */
  constructor(native: NativeRing, threads: number, onGpus: boolean) {
    super(native);
    this.#threads = threads;
    this.#onGpus = onGpus;
    handles.set(this, native);
  }

  /** How many ranks this object drives: all `size` of them. */
  get ranks(): number {
    return this.size;
  }

  /**
   * The sigmoid loss of the global batch and its gradients, computed by the ring.
   *
   * `imageShards` and `textShards` are Arrays of P {@link Matrix} shards (shard r is rank r's;
   * every shard at least one row, all of width D; on a local ring of GPUs also DeviceMatrix
   * shards on rank r's GPU, all of one dtype); label ids, when used, are Arrays of P
   * Int32Arrays. Without ids the global text batch must have as many rows as the global image
   * batch (row i pairs with row i; shards may still split them differently).
   *
   * Defaults: logitScale ln 10, logitBias −10. Gradients are those of the global loss L (see
   * {@link Ring}: scale by P where a framework averages over ranks). Do not mutate the inputs
   * until the Promise settles.
   *
   * @returns a Promise of `{ loss, grad, stats }`: `grad.image` / `grad.text` are Arrays of P
   *   Float32Arrays (or DeviceMatrix objects) and `stats` one {@link RingStats} per rank.
   * @throws (the Promise rejects) TypeError for wrong kinds of arguments (a non-Array of
   *   shards, non-Float32Array data, non-Int32Array ids, only one of imageIds/textIds,
   *   unknown options), RangeError for bad values (a wrong number of shards, a D that differs
   *   between shards, ids of the wrong length, global row counts that do not match without
   *   ids, NaN/Infinity in a shard, |logitScale| > 80), Error with code
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
  async sigmoidLossWithGrad(
    imageShards: Array<Matrix | DeviceMatrix>,
    textShards: Array<Matrix | DeviceMatrix>,
    options?: LocalRingLossOptions,
  ): Promise<LocalRingLossWithGrad<Float32Array | DeviceMatrix>> {
    return combine(await this.sigmoidCall<Result[]>(() => this.#prepare(imageShards, textShards, options), true));
  }

  /**
   * The sigmoid loss of the global batch only (no gradients): the same number as
   * {@link LocalRing.sigmoidLossWithGrad}'s `loss`, with the same arguments, defaults and errors.
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
  async sigmoidLoss(
    imageShards: Array<Matrix | DeviceMatrix>,
    textShards: Array<Matrix | DeviceMatrix>,
    options?: LocalRingLossOptions,
  ): Promise<number> {
    return combine(await this.sigmoidCall<Result[]>(() => this.#prepare(imageShards, textShards, options), false)).loss;
  }

  // What lib/ checks before the call is queued, with the functions plain calls use: the kinds
  // of the values (each shard a Matrix or, on GPUs, a live DeviceMatrix; ids Int32Arrays) and
  // the option names, and it takes the snapshot. The counts, widths, row totals, scalars and
  // direction are the core's checks, made when the call runs.
  #prepare(imageShards: unknown, textShards: unknown, options: unknown): PreparedCall {
    const o = checkOptionKeys(options, LOCAL_CALL_KEYS);
    const native: NativeRingLossOptions = { ...sharedOptions(o) };
    if (this.#onGpus) {
      const first = Array.isArray(imageShards) ? imageShards[0] : undefined;
      Object.assign(native, gpuCallOptions(o, first instanceof DeviceMatrix ? { dtype: first.dtype } : undefined));
    } else {
      native.threads = this.#threads;
      for (const key of ['precision', 'gradients'] as const) {
        if (o[key] !== undefined) throw invalidType(`options.${key}`, 'no value on a CPU ring (it applies to rings of GPUs)', o[key]);
      }
    }
    const each = <T>(value: unknown, one: (v: unknown, argument: string) => T) =>
      Array.isArray(value) ? value.map((v: unknown, r) => one(v, `[${r}]`)) : value;
    const shards = (value: unknown, name: string) =>
      each(value, (m, r) => (this.#onGpus && m instanceof DeviceMatrix ? liveNative(m, name + r) : snapshotOf(checkMatrix(name + r, m))));
    native.imageIds = each(o['imageIds'], (ids, r) => snapshotOf(checkIds(`options.imageIds${r}`, ids))) as Int32Array[];
    native.textIds = each(o['textIds'], (ids, r) => snapshotOf(checkIds(`options.textIds${r}`, ids))) as Int32Array[];
    return { image: shards(imageShards, 'imageShards'), text: shards(textShards, 'textShards'), options: native };
  }
}

/** The P ranks' results as one: the scalars (the same bits on every rank, checked) and each rank's gradients. */
function combine(ranks: Result[]): LocalRingLossWithGrad<Float32Array | DeviceMatrix> {
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

async function openLocalRing(options: LocalRingOptions): Promise<LocalRing> {
  const o = checkOptionKeys(options, LOCAL_KEYS, true);
  const ranks = checkRankCount('options.ranks', o['ranks']);
  const devices = localDevices(o['device'], ranks);
  const transports = "'memcpy' or 'nccl' ('nccl': for GPU ranks on distinct GPUs)";
  const transport = checkChoice('options.transport', o['transport'] ?? 'memcpy', ['memcpy', 'nccl'], transports);
  if (transport === 'nccl') {
    if (devices === undefined) throw invalidValue('options.transport', `'memcpy' for a CPU ring (${transports})`, transport);
    if (new Set(devices).size !== devices.length) {
      throw invalidValue('options.device', 'distinct GPUs, one per rank (NCCL cannot put two ranks on one GPU)', o['device']);
    }
  }
  const threads = o['threads'] === undefined ? threadsPerRank(ranks) : checkThreads('options.threads', o['threads']);
  const timeoutMs = ringTimeout(o['timeoutMs']);
  const { addon } = loadAddon();
  const native = await connected(new addon.LocalRingHandle({ ranks, timeoutMs, ...(devices && { devices, transport }) }));
  return new LocalRing(native, threads, devices !== undefined);
}

registerRingFactories({ local: openLocalRing });
