// The straightforward tile GEMM kernels: one shared-memory stage, bounds-checked loads that
// accept any shape and any alignment. simpleTensorCoreGemmKernel (bf16/fp16 WMMA, TF32) is
// the reference of the pipelined kernel (tile_gemm_pipelined.cuh), which replaces it where
// its alignment rules hold, and the fallback where they do not (SIGLIP_TILE_GEMM=simple
// selects it everywhere); simtGemmKernel is the exact float32 path (precision 'fp32').
#pragma once
#include "tile_gemm_epilogue.cuh"

namespace siglip::cuda {

// Copies an OUTER × INNER block whose INNER index is contiguous in global memory (stride
// `ld` between outer lines) into shared memory with row stride INNER + PAD, zero outside
// [0, outerLimit) × [0, innerLimit). The copy is raw (no conversion) and runs in 16-byte
// vectors wherever a chunk is in bounds and aligned; consecutive threads take consecutive
// chunks, so global reads coalesce.
template <class T, int OUTER, int INNER, int PAD, int THREADS>
__device__ __forceinline__ void loadBlock(const T* base, int64_t ld, int64_t outerLimit, int64_t innerLimit, T* smem) {
  constexpr int kVec = 16 / int(sizeof(T));
  static_assert(INNER % kVec == 0 && (INNER + PAD) % kVec == 0, "tile rows must hold whole 16-byte chunks");
  constexpr int kChunksPerLine = INNER / kVec;
  for (int chunk = threadIdx.x; chunk < OUTER * kChunksPerLine; chunk += THREADS) {
    const int outer = chunk / kChunksPerLine, inner = (chunk % kChunksPerLine) * kVec;
    T* dst = smem + outer * (INNER + PAD) + inner;
    const T* src = base + outer * ld + inner;
    if (outer < outerLimit && inner + kVec <= innerLimit && (reinterpret_cast<uintptr_t>(src) & 15) == 0) {
      *reinterpret_cast<uint4*>(dst) = __ldg(reinterpret_cast<const uint4*>(src));
    } else {
#pragma unroll
      for (int v = 0; v < kVec; ++v)
        dst[v] = (outer < outerLimit && inner + v < innerLimit) ? src[v] : T(0.0f);
    }
  }
}

// Loads the BM × BK slice of A at (m0, k0) and the BK × BN slice of B at (k0, n0).
template <class T, int BM, int BN, int BK, int PAD, bool A_COL, bool B_COL, int THREADS>
__device__ __forceinline__ void loadTiles(const GemmOperands<T>& op, int64_t m0, int64_t n0, int64_t k0, T* as, T* bs) {
  if (!A_COL)  // shared As[BM][BK + PAD]
    loadBlock<T, BM, BK, PAD, THREADS>(op.a + m0 * op.lda + k0, op.lda, op.m - m0, op.k - k0, as);
  else  // shared As[BK][BM + PAD]
    loadBlock<T, BK, BM, PAD, THREADS>(op.a + k0 * op.lda + m0, op.lda, op.k - k0, op.m - m0, as);
  if (!B_COL)  // shared Bs[BK][BN + PAD]
    loadBlock<T, BK, BN, PAD, THREADS>(op.b + k0 * op.ldb + n0, op.ldb, op.k - k0, op.n - n0, bs);
  else  // shared Bs[BN][BK + PAD]
    loadBlock<T, BN, BK, PAD, THREADS>(op.b + n0 * op.ldb + k0, op.ldb, op.n - n0, op.k - k0, bs);
}

// ---- the single-stage tensor-core kernel --------------------------------------------

constexpr int kSimpleBK = 32;

template <class T, bool A_COL, bool B_COL, class Epilogue>
__global__ void __launch_bounds__(kTcThreads) simpleTensorCoreGemmKernel(GemmOperands<T> op, Epilogue ep) {
  using L = SliceLayout<T, A_COL, B_COL, kSimpleBK>;
  constexpr int kEpilogueBytes = tensorCoreEpilogueBytes<Epilogue>();
  __shared__ __align__(128) unsigned char smem[L::kBytes > kEpilogueBytes ? L::kBytes : kEpilogueBytes];
  T* as = reinterpret_cast<T*>(smem);
  T* bs = as + L::kAElems;

  const int warp = threadIdx.x / 32;
  const int warpRow = warp / (kTcBN / kTcWarpN), warpCol = warp % (kTcBN / kTcWarpN);
  const int64_t m0 = int64_t(blockIdx.y) * kTcBM, n0 = int64_t(blockIdx.x) * kTcBN;

  TcAccumulator<T> acc[kTcFragM][kTcFragN];
#pragma unroll
  for (int i = 0; i < kTcFragM; ++i)
#pragma unroll
    for (int j = 0; j < kTcFragN; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.0f);

  for (int64_t k0 = 0; k0 < op.k; k0 += kSimpleBK) {
    loadTiles<T, kTcBM, kTcBN, kSimpleBK, L::kPad, A_COL, B_COL, kTcThreads>(op, m0, n0, k0, as, bs);
    __syncthreads();
    warpSliceMma<T, A_COL, B_COL, kSimpleBK>(as, bs, warpRow, warpCol, acc);
    __syncthreads();
  }
  // The loop ended with a barrier: the staging buffer is free for the epilogue.
  finishTensorCoreTile<T>(acc, smem, m0, n0, op.m, op.n, ep);
}

// ---- the exact float32 kernel (precision 'fp32') ------------------------------------

constexpr int kSimtBM = 64, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256;  // 4×4 per thread

template <bool A_COL, bool B_COL, class Epilogue>
__global__ void __launch_bounds__(kSimtThreads) simtGemmKernel(GemmOperands<float> op, Epilogue ep) {
  constexpr int BM = kSimtBM, BN = kSimtBN, BK = kSimtBK, PAD = 4;
  __shared__ __align__(16) float as[A_COL ? BK * (BM + PAD) : BM * (BK + PAD)];
  __shared__ __align__(16) float bs[B_COL ? BN * (BK + PAD) : BK * (BN + PAD)];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = int64_t(blockIdx.y) * BM, n0 = int64_t(blockIdx.x) * BN;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < op.k; k0 += BK) {
    loadTiles<float, BM, BN, BK, PAD, A_COL, B_COL, kSimtThreads>(op, m0, n0, k0, as, bs);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int r = ty + 16 * i;
        a[i] = A_COL ? as[kk * (BM + PAD) + r] : as[r * (BK + PAD) + kk];
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = tx + 16 * j;
        b[j] = B_COL ? bs[c * (BK + PAD) + kk] : bs[kk * (BN + PAD) + c];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  if constexpr (WholeTileEpilogue<Epilogue>::value) {
    // The whole 64×64 tile in one part.
    static_assert(BN <= kSimtThreads, "one thread per column");
    constexpr int kLd = BN + 4;
    __shared__ __align__(16) float tile[BM * kLd];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) tile[(ty + 16 * i) * kLd + tx + 16 * j] = acc[i][j];
    __syncthreads();
    typename Epilogue::TileState state{};
    const int rows = int(op.m - m0 < BM ? op.m - m0 : BM);
    const int cols = int(op.n - n0 < BN ? op.n - n0 : BN);
    ep.template tilePart<kSimtThreads, BM>(tile, kLd, m0, n0, rows, cols, state);
    ep.tileFinish(n0, cols, state);
  } else {
    typename Epilogue::Sums sums{};
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t row = m0 + ty + 16 * i, col = n0 + tx + 16 * j;
        if (row < op.m && col < op.n) ep.apply(row, col, acc[i][j], sums);
      }
    ep.finish(sums);
  }
}

}  // namespace siglip::cuda
