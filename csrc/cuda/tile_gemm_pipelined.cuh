// The pipelined tensor-core tile GEMM (sm_80+): the same CTA tile, warp split, MMAs and
// epilogue as simpleTensorCoreGemmKernel, but the k slices stream through kStages shared-memory
// buffers with cp.async, so the copies of slices k+1 … k+kStages−1 are in flight while the
// tensor cores work on slice k (the simple kernel loads, waits, computes, in turn).
//
// Each slice is 64 bytes of k per line (32 bf16/fp16 values, 16 floats): four 16-byte chunks
// per line, two A and two B chunks per thread per slice; four slices in flight take 68–80 KB
// of shared memory (dynamic, above the 48 KB static limit: opted in per device), which leaves
// two CTAs per SM on an H100 or A100 and one on sm_86/89 (99 KB per block).
//
// Alignment: cp.async moves whole, 16-byte-aligned chunks, so this kernel needs both operands'
// base pointers 16-byte aligned and their line strides (lda, ldb) multiples of 16 bytes;
// launchPipelinedGemm returns false otherwise and the caller runs the simple kernel. Edges
// need no such rule: a chunk that runs past the last row or column is copied with cp.async's
// source size cut to the valid bytes, the rest zero-filled, and one wholly outside reads
// nothing (source size 0, from the operand's base, a valid address).
#pragma once
#include <atomic>

#include "tile_gemm_epilogue.cuh"

namespace siglip::cuda {

template <class T>
struct PipelineShape {
  static constexpr int kBK = 64 / int(sizeof(T));  // k per slice: 64 bytes per line
  static constexpr int kStages = 4;
};

// Dynamic shared memory of one launch: the stages, reused by the epilogue after them.
template <class T, bool A_COL, bool B_COL, class Epilogue>
constexpr int pipelinedSmemBytes() {
  constexpr int stages = PipelineShape<T>::kStages * SliceLayout<T, A_COL, B_COL, PipelineShape<T>::kBK>::kBytes;
  constexpr int epilogue = tensorCoreEpilogueBytes<Epilogue>();
  return stages > epilogue ? stages : epilogue;
}

// ---- cp.async (PTX ISA: cp.async, cp.async.commit_group, cp.async.wait_group) -------

// Copies 16 bytes global → shared, of which the first `srcBytes` (0…16) are read and the rest
// zero-filled. Both addresses 16-byte aligned. .cg: through L2 only (each chunk is used once
// per CTA, from shared memory).
// (In the CPU emulation, test/cuda-emulated, the three wrappers call its cp.async model.)
__device__ __forceinline__ void cpAsync16(void* smemDst, const void* gmemSrc, int srcBytes) {
#ifdef SIGLIP_CUDA_EMULATION
  ::siglip_emu::cpAsync16(smemDst, gmemSrc, srcBytes);
#else
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smemDst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmemSrc), "r"(srcBytes) : "memory");
#endif
}
__device__ __forceinline__ void cpAsyncCommit() {
#ifdef SIGLIP_CUDA_EMULATION
  ::siglip_emu::cpAsyncCommit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most `Pending` of this thread's committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void cpAsyncWait() {
#ifdef SIGLIP_CUDA_EMULATION
  ::siglip_emu::cpAsyncWait(Pending);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#endif
}

// Starts the copy of an OUTER × INNER block (INNER contiguous in global memory, stride `ld`
// between lines, lines 16-byte aligned) into shared memory with line stride INNER + PAD;
// zeros outside [0, outerLimit) × [0, innerLimit). `safe` is a valid, aligned global address
// for the chunks that read nothing.
template <class T, int OUTER, int INNER, int PAD>
__device__ __forceinline__ void copyBlockAsync(const T* base, int64_t ld, int64_t outerLimit, int64_t innerLimit,
                                               const T* safe, T* smem) {
  constexpr int kVec = 16 / int(sizeof(T));
  constexpr int kChunksPerLine = INNER / kVec;
  constexpr int kChunks = OUTER * kChunksPerLine;
  static_assert(INNER % kVec == 0 && (INNER + PAD) % kVec == 0, "lines must hold whole 16-byte chunks");
  static_assert(kChunks % kTcThreads == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int c = 0; c < kChunks / kTcThreads; ++c) {
    const int chunk = int(threadIdx.x) + c * kTcThreads;
    const int outer = chunk / kChunksPerLine, inner = (chunk % kChunksPerLine) * kVec;
    int64_t valid = innerLimit - inner;  // elements of this chunk inside the matrix
    valid = outer < outerLimit ? (valid < 0 ? 0 : valid > kVec ? kVec : valid) : 0;
    const T* src = valid > 0 ? base + outer * ld + inner : safe;
    cpAsync16(smem + outer * (INNER + PAD) + inner, src, int(valid) * int(sizeof(T)));
  }
}

// Starts the copies of slice k0: A's BM × BK block at (m0, k0) and B's BK × BN block at (k0, n0).
template <class T, bool A_COL, bool B_COL, int BK>
__device__ __forceinline__ void copySliceAsync(const GemmOperands<T>& op, int64_t m0, int64_t n0, int64_t k0, T* as,
                                               T* bs) {
  constexpr int PAD = TensorCoreTraits<T>::kPad;
  if (!A_COL)
    copyBlockAsync<T, kTcBM, BK, PAD>(op.a + m0 * op.lda + k0, op.lda, op.m - m0, op.k - k0, op.a, as);
  else
    copyBlockAsync<T, BK, kTcBM, PAD>(op.a + k0 * op.lda + m0, op.lda, op.k - k0, op.m - m0, op.a, as);
  if (!B_COL)
    copyBlockAsync<T, BK, kTcBN, PAD>(op.b + k0 * op.ldb + n0, op.ldb, op.k - k0, op.n - n0, op.b, bs);
  else
    copyBlockAsync<T, kTcBN, BK, PAD>(op.b + n0 * op.ldb + k0, op.ldb, op.n - n0, op.k - k0, op.b, bs);
}

// Two CTAs per SM (the shared memory allows it on sm_80/90) need ≤ 128 registers per thread.
template <class T, bool A_COL, bool B_COL, class Epilogue>
__global__ void __launch_bounds__(kTcThreads, 2) pipelinedTensorCoreGemmKernel(GemmOperands<T> op, Epilogue ep) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  // Never launched: launchPipelinedGemm runs it only on sm_80+ devices, and every
  // architecture this project builds is sm_80+. Trap rather than return an unwritten result.
  __trap();
#else
  constexpr int BK = PipelineShape<T>::kBK, S = PipelineShape<T>::kStages;
  using L = SliceLayout<T, A_COL, B_COL, BK>;
  static_assert(L::kBytes % 128 == 0 && (L::kAElems * int(sizeof(T))) % 128 == 0,
                "stages and their B blocks start 128-byte aligned (WMMA needs 32, cp.async 16)");
  SIGLIP_DYNAMIC_SHARED(unsigned char, smem);
  T* stages = reinterpret_cast<T*>(smem);

  const int warp = threadIdx.x / 32;
  const int warpRow = warp / (kTcBN / kTcWarpN), warpCol = warp % (kTcBN / kTcWarpN);
  const int64_t m0 = int64_t(blockIdx.y) * kTcBM, n0 = int64_t(blockIdx.x) * kTcBN;
  const int64_t slices = (op.k + BK - 1) / BK;
  auto startSlice = [&](int64_t s) {
    T* as = stages + int(s % S) * L::kElems;
    copySliceAsync<T, A_COL, B_COL, BK>(op, m0, n0, s * BK, as, as + L::kAElems);
  };

  TcAccumulator<T> acc[kTcFragM][kTcFragN];
#pragma unroll
  for (int i = 0; i < kTcFragM; ++i)
#pragma unroll
    for (int j = 0; j < kTcFragN; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.0f);

  // Prologue: slices 0 … S−2 in flight, one commit group each (empty groups past the end keep
  // the count uniform, so the wait below always means "slice s has landed").
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < slices) startSlice(s);
    cpAsyncCommit();
  }
  for (int64_t s = 0; s < slices; ++s) {
    // Groups committed so far: S − 1 + s; slice s's is complete once at most S − 2 are pending.
    cpAsyncWait<S - 2>();
    // Every thread's part of slice s has landed, and every warp has finished slice s − 1,
    // whose buffer the copy below refills.
    __syncthreads();
    if (s + S - 1 < slices) startSlice(s + S - 1);
    cpAsyncCommit();
    const T* as = stages + int(s % S) * L::kElems;
    warpSliceMma<T, A_COL, B_COL, BK>(as, as + L::kAElems, warpRow, warpCol, acc);
  }
  // Only empty groups can be pending here; wait for them anyway, then let every warp finish
  // its last MMAs before the epilogue reuses the buffers.
  cpAsyncWait<0>();
  __syncthreads();
  finishTensorCoreTile<T>(acc, smem, m0, n0, op.m, op.n, ep);
#endif
}

// Launches the pipelined kernel when it can run: the operands meet its alignment rule and the
// current device is sm_80+ with enough opt-in shared memory (checked, and the kernel's limit
// raised, once per device). Returns false, having launched nothing, otherwise.
template <class T, bool A_COL, bool B_COL, class Epilogue>
bool launchPipelinedGemm(const GemmOperands<T>& op, const Epilogue& ep, cudaStream_t stream) {
  const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  if (!aligned(op.a) || !aligned(op.b) || (op.lda * int64_t(sizeof(T))) % 16 != 0 ||
      (op.ldb * int64_t(sizeof(T))) % 16 != 0)
    return false;

  constexpr int kBytes = pipelinedSmemBytes<T, A_COL, B_COL, Epilogue>();
  const auto kernel = pipelinedTensorCoreGemmKernel<T, A_COL, B_COL, Epilogue>;
  // Per device: 0 not checked yet, 1 ready, −1 unusable (a race only repeats the check).
  constexpr int kCachedDevices = 64;
  static std::atomic<signed char> ready[kCachedDevices];
  int device = 0;
  SIGLIP_CUDA_CHECK(cudaGetDevice(&device));
  signed char state = device < kCachedDevices ? ready[device].load() : 0;
  if (state == 0) {
    // The epilogue may add static shared memory (the per-CTA sums): it counts against the limit too.
    int major = 0, optin = 0;
    cudaFuncAttributes attributes{};
    SIGLIP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    SIGLIP_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    SIGLIP_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
    state = major >= 8 && size_t(optin) >= kBytes + attributes.sharedSizeBytes ? 1 : -1;
    if (state > 0) {
      SIGLIP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes));
      // Prefer the largest shared-memory carveout, so that two CTAs fit per SM.
      SIGLIP_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, int(cudaSharedmemCarveoutMaxShared)));
    }
    if (device < kCachedDevices) ready[device].store(state);
  }
  if (state < 0) return false;
  const dim3 grid(unsigned((op.n + kTcBN - 1) / kTcBN), unsigned((op.m + kTcBM - 1) / kTcBM));
  launchKernel(kernel, grid, kTcThreads, kBytes, stream, op, ep);
  SIGLIP_CUDA_CHECK_LAUNCH("pipelinedTensorCoreGemmKernel");
  return true;
}

}  // namespace siglip::cuda
