/**
 * Types of the raw binding (csrc/addon/addon.cpp). Internal: the public API in index.ts wraps
 * it; lib/ checks what only JavaScript can see, the core the rest, both naming the caller's
 * arguments (docs/ARCHITECTURE.md, "Which layer checks what").
 *
 * @internal
 * @packageDocumentation
 */
import type { CudaGemmInfo, CudaMemoryUsage } from './backend';
import type { CudaStatus } from './loader';
import type { BFloat16Matrix, Matrix } from './matrix';
import type { RingStats } from './ring/options';

/** What the addon takes for image and text: a Matrix, or (CPU, precision 'bf16') a BFloat16Matrix. */
export type NativeMatrix = Matrix;
export type NativeBf16Matrix = BFloat16Matrix;
export type NativeHostMatrix = NativeMatrix | NativeBf16Matrix;

/** What every loss call's options have (logitScale, logitBias and threads as the caller gave them: the core checks them). */
interface NativeCallOptions {
  logitScale: number;
  /** Sigmoid only; must be absent for softmax. */
  logitBias?: number;
  imageIds?: Int32Array;
  textIds?: Int32Array;
}

/** Fully resolved options: the addon has no defaults. */
export interface NativeLossOptions extends NativeCallOptions {
  method: 'fused' | 'naive' | 'chunked';
  threads: number;
  /** 'bf16': the fused sigmoid's GEMMs in bfloat16. Absent: float32. */
  precision?: 'fp32' | 'bf16';
}

/** A loss call's result (`G`: a CPU call's Float32Arrays, or a CUDA call's with device gradients). */
export interface NativeLossResult<G = Float32Array> {
  loss: number;
  grad?: { image: G; text: G; logitScale: number; logitBias?: number };
}

/** A loss export of the addon: `(image, text, options, wantGrad)`, synchronous or a Promise (`R`). */
type LossExport<I, O, R> = (image: I, text: I, options: O, wantGrad: boolean) => R;

export interface NativeBackendInfo {
  simd: string;
  simdReason: string;
  hardwareThreads: number;
  tileRows: number;
  tileCols: number;
  bf16: string;
  bf16Reason: string;
  /** CUDA build only. */
  cuda?: NativeCudaDevices & { compiled: true; gemm: NativeCudaGemmPaths };
}

/** Which kernels run the CUDA losses' GEMMs (csrc/cuda/cuda_backend.h, GemmPathInfo): the public CudaGemmInfo. */
export type NativeCudaGemmPaths = CudaGemmInfo;

/** The device matrix handle of the CUDA build (csrc/addon/cuda_matrix.h). */
export interface NativeDeviceMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: 'float32' | 'bfloat16' | 'float16';
  readonly device: number;
  readonly bytes: number;
  readonly disposed: boolean;
  download(): Float32Array | Uint16Array;
  dispose(): void;
}

export interface NativeDeviceMatrixClass {
  new (
    data: Float32Array | Uint16Array | null,
    rows: number,
    cols: number,
    dtype: 'float32' | 'bfloat16' | 'float16',
    device: number,
  ): NativeDeviceMatrix;
}

/** Fully resolved options of a CUDA loss call (csrc/addon/cuda_loss.h). */
export interface NativeCudaLossOptions extends NativeCallOptions {
  method: 'fused' | 'naive' | 'simple' | 'chunked';
  precision: 'tf32' | 'fp32';
  gradients: 'host' | 'device';
  device: number;
}

export type NativeCudaLossResult = NativeLossResult<Float32Array | NativeDeviceMatrix>;

export type NativeCudaStatus = CudaStatus;

export interface NativeCudaDevice {
  ordinal: number;
  name?: string;
  computeCapability?: string;
  totalMemory?: number;
  freeMemory?: number;
  /** Set instead of the fields above when the device could not be queried. */
  error?: string;
}

export interface NativeCudaDevices extends NativeCudaStatus {
  runtimeVersion: number;
  driverVersion: number;
  devices: NativeCudaDevice[];
}

export type NativeCudaInput = NativeMatrix | NativeDeviceMatrix;
type CudaLoss<R> = LossExport<NativeCudaInput, NativeCudaLossOptions, R>;

/** The exports only the CUDA build has (csrc/addon/cuda_bindings.h). */
export interface NativeCudaAddon {
  DeviceMatrix: NativeDeviceMatrixClass;
  cudaAvailable(): NativeCudaStatus;
  cudaDevices(): NativeCudaDevices;
  cudaMemory(): CudaMemoryUsage;
  cudaResetPeakMemory(): void;
  cudaSigmoidLoss: CudaLoss<NativeCudaLossResult>;
  cudaSoftmaxLoss: CudaLoss<NativeCudaLossResult>;
  cudaSigmoidLossAsync: CudaLoss<Promise<NativeCudaLossResult>>;
  cudaSoftmaxLossAsync: CudaLoss<Promise<NativeCudaLossResult>>;
}

/** Statistics of one rank of a ring call (csrc/ring/ring_sigmoid.h, RingStats): the public RingStats. */
export type NativeRingStats = RingStats;

/** One rank's result of a ring call (csrc/addon/ring_bindings.h). */
export interface NativeRingRankResult<G = Float32Array> {
  loss: number;
  grad?: { image: G; text: G; logitScale: number; logitBias: number };
  stats: NativeRingStats;
}

/** Fully resolved options of a ring call. */
export interface NativeRingLossOptions {
  logitScale: number;
  logitBias: number;
  direction: 'one-way' | 'two-way';
  /** local rings: one Int32Array per rank; mpi/nccl: one Int32Array. */
  imageIds?: Int32Array | Int32Array[];
  textIds?: Int32Array | Int32Array[];
  /** CPU rings (local, mpi). */
  threads?: number;
  /** NCCL rings. */
  precision?: 'tf32' | 'fp32';
  gradients?: 'host' | 'device';
}

/** The native ring object (csrc/addon/ring_bindings.h). */
export interface NativeRing {
  readonly kind: 'local' | 'mpi' | 'nccl';
  readonly rank: number;
  readonly size: number;
  readonly disposed: boolean;
  /** image, text: a local ring's Arrays of shards, a rank ring's shard (NativeMatrix or NativeDeviceMatrix); checked here. */
  sigmoidLoss(
    image: unknown,
    text: unknown,
    options: NativeRingLossOptions,
    wantGrad: boolean,
  ): Promise<NativeRingRankResult<Float32Array | NativeDeviceMatrix>[] | NativeRingRankResult<Float32Array | NativeDeviceMatrix>>;
  connect(): Promise<void>;
  /** mpi/nccl rings (MpiRingHandle, NcclRingHandle): every rank's bytes (all the same length), concatenated in rank order. */
  allGather(bytes: Uint8Array): Promise<Uint8Array>;
  /** local rings (LocalRingHandle), the test seam (csrc/addon/ring_test_fault.h): rank `rank` of the next call fails. */
  testFault(rank: number, mode?: 'abort' | 'absent'): void;
  dispose(): void;
}

/** The native ring classes, one per kind (csrc/addon/ring_bindings.h). */
export interface NativeLocalRingClass {
  new (options: { ranks: number; timeoutMs: number; devices?: number[]; transport?: 'memcpy' | 'nccl' }): NativeRing;
}
export interface NativeMpiRingClass {
  new (options: { timeoutMs: number }): NativeRing;
}
export interface NativeNcclRingClass {
  new (options: { rank: number; size: number; id: Uint8Array; device: number; timeoutMs: number }): NativeRing;
}

/** What the loaded binary's ring supports. */
export interface NativeRingBuildInfo {
  /** Built with the MPI transport (SIGLIP_WITH_MPI). */
  mpi: boolean;
  /** The MPI library's version line ('' without MPI). */
  mpiLibrary: string;
  /** This process was started by an MPI launcher (mpirun sets its environment). */
  mpiLaunched: boolean;
  /** Built with the NCCL transport (the CUDA build). */
  nccl: boolean;
}

/** csrc/core/limits.h, the addon's `limits` export (frozen). */
export interface NativeLimits {
  readonly maxAbsLogitScale: number;
  readonly maxThreads: number;
  readonly maxRingRanks: number;
  readonly defaultRingTimeoutMs: number;
  readonly maxRingTimeoutMs: number;
  readonly maxAllGatherBytes: number;
}

type CpuLoss<R> = LossExport<NativeHostMatrix, NativeLossOptions, R>;

export interface NativeAddon extends Partial<NativeCudaAddon> {
  limits: NativeLimits;
  LocalRingHandle: NativeLocalRingClass;
  /** Builds with MPI only (ringBuildInfo().mpi). */
  MpiRingHandle?: NativeMpiRingClass;
  /** CUDA build only. */
  NcclRingHandle?: NativeNcclRingClass;
  ringBuildInfo(): NativeRingBuildInfo;
  mpiFinalize(): void;
  /** CUDA build only. */
  ncclUniqueId?(): Uint8Array;
  /** CUDA build only. */
  ncclInfo?(): { available: boolean; reason: string; library: string; version: string };
  // Uint16Array inputs (bfloat16 bits) only with precision 'bf16' (the fused sigmoid).
  sigmoidLoss: CpuLoss<NativeLossResult>;
  softmaxLoss: CpuLoss<NativeLossResult>;
  sigmoidLossAsync: CpuLoss<Promise<NativeLossResult>>;
  softmaxLossAsync: CpuLoss<Promise<NativeLossResult>>;
  backendInfo(): NativeBackendInfo;
  gemmABt(a: Float32Array, b: Float32Array, m: number, n: number, k: number, threads: number): Float32Array;
}
