/**
 * What the package reports about its backends (the CPU's instruction sets, the CUDA build and
 * its GPUs, memory counters), and `gemmABt`, the CPU GEMM on its own.
 *
 * @internal
 * @packageDocumentation
 */
import { cudaAddon } from './cuda';
import { loadAddon } from './loader';
import { coreChecked, defaultThreads } from './options';
import { checkFloat32Array } from './validate';
/** What {@link backendInfo} reports. */
export interface BackendInfo {
  /** Absolute path of the native addon file that was loaded. */
  binaryPath: string;
  /** Why that file: a local node-gyp build, a shipped prebuild, ... */
  binaryReason: string;
  /** The CPU kernel set in use: `'avx512'`, `'avx2'` or `'generic'`. */
  simd: string;
  /** Why that kernel set (detected CPU features, or the SIGLIP_SIMD environment override). */
  simdReason: string;
  /**
   * The kernel of `precision: 'bf16'` on the CPU: `'avx512_bf16'` (vdpbf16ps, where the
   * processor has AVX512_BF16) or `'convert'` (inputs rounded to bfloat16, then multiplied by
   * the float32 kernels: the same numbers' kind of error, not faster).
   */
  bf16: string;
  /** Why that one (detected features, or the SIGLIP_BF16=convert environment override). */
  bf16Reason: string;
  /** Hardware threads the native code sees. */
  hardwareThreads: number;
  /** The thread count calls use when `threads` is not given. */
  defaultThreads: number;
  /** The fused kernel's tile: rows of X × rows of Y per tile (never chosen by thread count; batches under 8 tiles of rows use shorter row blocks, cut evenly). */
  tile: {
    /** Image rows per tile. */
    rows: number;
    /** Text rows per tile. */
    cols: number;
  };
  /** Whether CUDA can be used, and why not. */
  cuda: CudaInfo;
}

/** One GPU, as {@link backendInfo} lists it. */
export interface CudaDeviceInfo {
  /** `'cuda:N'`: what `options.device` takes. */
  device: `cuda:${number}`;
  /** The product name, e.g. `'NVIDIA H100 80GB HBM3'`. */
  name: string;
  /** Compute capability as `'major.minor'`, e.g. `'9.0'`. */
  computeCapability: string;
  /** Total device memory, bytes. */
  totalMemory: number;
  /** Free device memory when asked, bytes. */
  freeMemory: number;
  /** Set (and the other fields empty) when the device could not be queried. */
  error?: string;
}

/** The CUDA part of {@link BackendInfo}. */
export interface CudaInfo {
  /** True when the loaded binary is the CUDA build and at least one GPU answered. */
  available: boolean;
  /** Why CUDA cannot be used ('' when it can): no CUDA build, no driver, no GPU, SIGLIP_FORCE_CPU. */
  reason: string;
  /** The GPUs (empty when not available). Listing them creates each GPU's CUDA context. */
  devices: CudaDeviceInfo[];
  /** The CUDA runtime the build links, e.g. 13000 for 13.0 (null without the CUDA build in use). */
  runtimeVersion: number | null;
  /** The driver's CUDA version, e.g. 13000 (null without the CUDA build in use, 0 without a driver). */
  driverVersion: number | null;
  /** Which kernels run the losses' matrix products (null without the CUDA build in use). */
  gemm: CudaGemmInfo | null;
}

/**
 * Which kernels run the CUDA losses' matrix products, as {@link CudaInfo} reports it. X·Yᵀ
 * runs on this package's tile GEMM, which computes the loss on its accumulators, unless
 * `SIGLIP_GEMM1=cublas` puts it on cuBLAS (the sigmoid loss only: S is written to a float32
 * block per piece, then a separate pass applies the same per-pair math); the two backward
 * products (∂X from G·Y, ∂Y from Gᵀ·X) run on NVIDIA's cuBLAS when it can be loaded.
 * Environment variables (each read once, when first needed): `SIGLIP_CUBLAS` = `auto`
 * (default: cuBLAS when it loads) | `on` (cuBLAS or an error) | `off`; `SIGLIP_GEMM1` = `tile`
 * (default) | `cublas` (cuBLAS or an error, never the tile GEMM instead);
 * `SIGLIP_CUBLAS_LIBRARY` = a `libcublas.so` file or its folder (default: the system's, CUDA's,
 * or a pip wheel's such as PyTorch's); `SIGLIP_TILE_GEMM` = `pipelined` (default) | `simple`;
 * `SIGLIP_GEMM_OVERLAP` = `off` (default) | `on` (the sigmoid loss's backward products on a
 * second CUDA stream, overlapping the next piece's X·Yᵀ). An invalid value makes CUDA loss
 * calls throw a `RangeError` naming the variable. Results are deterministic on every path, and
 * the same with and without overlap.
 */
export interface CudaGemmInfo {
  /**
   * X·Yᵀ of the sigmoid loss: `'tile'` (this package's kernel, the loss computed on its
   * accumulators) or `'cublas'` (`SIGLIP_GEMM1=cublas`: NVIDIA's library, then a separate
   * pass; without a usable cuBLAS, sigmoid loss calls throw and `reason` says why).
   */
  forward: 'tile' | 'cublas';
  /** The backward products: `'cublas'` (NVIDIA's library, loaded at run time) or `'tile'` (this package's kernel). */
  backward: 'cublas' | 'tile';
  /** This package's tile GEMM: `'pipelined'` (multi-stage asynchronous copies, sm_80+) or `'simple'` (one stage). */
  tile: 'pipelined' | 'simple';
  /**
   * Whether the sigmoid loss overlaps its products (`SIGLIP_GEMM_OVERLAP=on`): the pair grid
   * runs in pieces, and each piece's backward products run on a second CUDA stream while the
   * next piece's X·Yᵀ and loss math run on the call's stream. It costs a second gradient
   * block (up to 32 MB in bfloat16) and, where the backward products run
   * on cuBLAS, a second cuBLAS handle. The results are bit-for-bit those without it.
   */
  overlap: boolean;
  /** The cuBLAS library file in use ('' when none was loaded). */
  cublasLibrary: string;
  /** Its version, e.g. `'12.8.4'` ('' when unknown or none). */
  cublasVersion: string;
  /** Why the backward products do not run on cuBLAS, or why CUDA calls will fail (`SIGLIP_CUBLAS=on` or `SIGLIP_GEMM1=cublas` without a usable cuBLAS); '' otherwise. */
  reason: string;
}

/**
 * Describes the backend in use: which addon binary was loaded and why (the CUDA build, or
 * the CPU build and why not the CUDA one), the SIMD kernel set and why, thread counts, the
 * fused tile shape, and CUDA availability with the GPUs. Loads the addon if it was not
 * loaded yet.
 *
 * @throws Error with code `ERR_SIGLIP_ADDON_LOAD` if the native addon cannot be loaded.
 *
 * @example
 * ```ts
 * console.log(backendInfo().simd); // e.g. 'avx2'
 * ```
 */
export function backendInfo(): BackendInfo {
  const { addon, path, reason, cuda } = loadAddon();
  const info = addon.backendInfo();
  const native = cuda.available ? info.cuda : undefined;
  const devices: CudaDeviceInfo[] = (native?.devices ?? []).map((d) => {
    const device: CudaDeviceInfo = {
      device: `cuda:${d.ordinal}`,
      name: d.name ?? '',
      computeCapability: d.computeCapability ?? '',
      totalMemory: d.totalMemory ?? 0,
      freeMemory: d.freeMemory ?? 0,
    };
    if (d.error !== undefined) device.error = d.error;
    return device;
  });
  return {
    binaryPath: path,
    binaryReason: reason,
    simd: info.simd,
    simdReason: info.simdReason,
    bf16: info.bf16,
    bf16Reason: info.bf16Reason,
    hardwareThreads: info.hardwareThreads,
    defaultThreads: defaultThreads(),
    tile: { rows: info.tileRows, cols: info.tileCols },
    cuda: {
      available: cuda.available,
      reason: cuda.reason,
      devices,
      runtimeVersion: native?.runtimeVersion ?? null,
      driverVersion: native?.driverVersion ?? null,
      gemm: native?.gemm ? { ...native.gemm } : null,
    },
  };
}

/** Device memory this library holds, as {@link cudaMemoryUsage} reports it. */
export interface CudaMemoryUsage {
  /** Bytes of GPU memory held now (DeviceMatrix objects, and buffers of calls in flight), all GPUs. */
  allocatedBytes: number;
  /** The most held at once since the process started or {@link resetCudaPeakMemory}, bytes. */
  peakAllocatedBytes: number;
}

/**
 * GPU memory held by this library (not by other CUDA users in the process): what the
 * benchmarks use to measure a call's extra device memory, and a way to check that
 * DeviceMatrix objects are disposed.
 *
 * @returns `{ allocatedBytes, peakAllocatedBytes }`, bytes over all GPUs.
 * @throws Error with code `ERR_SIGLIP_NO_CUDA` when no GPU can be used.
 *
 * @example
 * ```ts
 * resetCudaPeakMemory();
 * await sigmoidLoss(x, y);
 * console.log(cudaMemoryUsage().peakAllocatedBytes);
 * ```
 */
export function cudaMemoryUsage(): CudaMemoryUsage {
  return cudaAddon('cudaMemoryUsage() needs a GPU', 'It needs the CUDA build of siglip-kernels.').cudaMemory();
}

/**
 * Resets the peak of {@link cudaMemoryUsage} to the memory held now.
 *
 * @throws Error with code `ERR_SIGLIP_NO_CUDA` when no GPU can be used.
 *
 * @example
 * ```ts
 * resetCudaPeakMemory();
 * ```
 */
export function resetCudaPeakMemory(): void {
  cudaAddon('resetCudaPeakMemory() needs a GPU', 'It needs the CUDA build of siglip-kernels.').cudaResetPeakMemory();
}

/**
 * The benchmark's floor: C = A · Bᵀ with A m×k and B n×k (row-major float32), computed by the
 * same packed GEMM and micro-kernel the fused loss runs on. A loss over N×M pairs with width
 * D cannot be faster than `gemmABt(X, Y, N, M, D)`, which is how bench/ uses it. It allocates
 * the m×n result, so keep m·n modest.
 *
 * @param a - A, m×k row-major.
 * @param b - B, n×k row-major.
 * @param m - rows of A (and of C), a positive integer.
 * @param n - rows of B (columns of C), a positive integer.
 * @param k - the shared width, a positive integer.
 * @param threads - worker threads (1–1024); default `os.availableParallelism()`.
 * @returns C, m×n row-major, a new Float32Array.
 * @throws TypeError / RangeError (naming a, b, m, n, k or threads) for wrong types or sizes.
 *
 * @example
 * ```ts
 * const c = gemmABt(new Float32Array([1, 2]), new Float32Array([3, 4]), 1, 1, 2); // [11]
 * ```
 */
export function gemmABt(a: Float32Array, b: Float32Array, m: number, n: number, k: number, threads?: number): Float32Array {
  // lib/ checks the arrays' kinds (and that they are not detached); the sizes, their product
  // and threads are the core's checks.
  const [arrayA, arrayB] = [checkFloat32Array('a', a), checkFloat32Array('b', b)];
  return loadAddon().addon.gemmABt(arrayA, arrayB, m, n, k, coreChecked(threads, defaultThreads()));
}
