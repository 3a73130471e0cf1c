// The tile GEMM every CUDA path runs on: C (m×n) = A (m×k) · B (k×n) with float32
// accumulation, computed in 128×128 (tensor cores) or 64×64 (exact float32) tiles, each
// tile finished by an *epilogue* functor that sees (row, col, value) for every element:
// StoreEpilogue writes alpha·value (optionally adding to C); the sigmoid epilogue
// (sigmoid_epilogue.cuh) turns the similarity into the loss terms and the gradient tile.
// An epilogue that needs whole rows and columns of the tile (the softmax statistics,
// softmax_epilogue.cuh) declares a TileState and gets the tile staged in shared memory
// instead (see WholeTileEpilogue below).
//
// Layout is a compile-time choice per operand, so X·Yᵀ, G·Y and Gᵀ·X need no transposes:
//   A(r, kk) = a[r·lda + kk]   (row-major)   or a[kk·lda + r]   (A_COL)
//   B(kk, c) = b[kk·ldb + c]   (row-major)   or b[c·ldb + kk]   (B_COL)
//
// Structure, kept apart as in FlashAttention's csrc: the traits (tile shapes, shared
// memory layout per operand layout), the main loop (global → shared → fragments → MMA), and
// the epilogue (fragment → per-warp scratch → functor). This is the straightforward tiled
// version: one shared-memory stage, bounds-checked global loads (any shape, any
// alignment). The kernel's reference is the simple kernels in reference_kernels.cu.
#pragma once
#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "cuda_common.cuh"

namespace siglip::cuda {

template <class T>
struct GemmOperands {
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  int64_t m, n, k;
};

// C = alpha·A·B (+ C when accumulate). Each element is written by exactly one thread, so
// repeated accumulation in stream order is deterministic.
struct StoreEpilogue {
  float* c;
  int64_t ldc;
  float alpha;
  bool accumulate;
  struct Sums {};
  __device__ __forceinline__ void apply(int64_t row, int64_t col, float value, Sums&) const {
    float* out = c + row * ldc + col;
    *out = accumulate ? *out + alpha * value : alpha * value;
  }
  __device__ __forceinline__ void finish(const Sums&) const {}
};

// Whole-tile epilogues: an Epilogue with a nested `TileState` type is not called per element.
// The kernel stages its finished accumulator tile in shared memory (float, row stride ld)
// in parts of PART_ROWS rows × BN columns and, with every thread of the CTA (THREADS of
// them), calls for each part in row order
//   ep.tilePart<THREADS, PART_ROWS>(tile, ld, row0, col0, rows, cols, state)
// where (row0, col0) is the part's first element in C and rows × cols its valid extent
// (rows may be ≤ 0 for a part wholly past the last row: it must still be called, since it
// may use warp shuffles), then once ep.tileFinish(col0, cols, state). `state` is one
// TileState per thread, carried across the parts. Neither call may contain a barrier; the
// kernel synchronises around them.
template <class E, class = void>
struct WholeTileEpilogue : std::false_type {};
template <class E>
struct WholeTileEpilogue<E, std::void_t<typename E::TileState>> : std::true_type {};

// ---- traits -------------------------------------------------------------------------

// Shared-memory tile of one operand: `outer` × `inner` elements stored with the inner
// (contiguous-in-global) index fastest, padded so that WMMA's 32-byte alignment and the
// bank spread both hold.
template <class S, int ROWS, int COLS, int PAD>
struct SmemTile {
  static constexpr int kLd = COLS + PAD;
  static constexpr int kElements = ROWS * kLd;
};

template <class T>
struct TensorCoreTraits;  // per input dtype: fragment types and the k step of one MMA

template <>
struct TensorCoreTraits<__nv_bfloat16> {
  using Smem = __nv_bfloat16;
  using Precision = __nv_bfloat16;
  static constexpr int kStep = 16;
  static constexpr int kPad = 8;
  template <class Frag> __device__ static void convert(Frag&) {}
};
template <>
struct TensorCoreTraits<__half> {
  using Smem = __half;
  using Precision = __half;
  static constexpr int kStep = 16;
  static constexpr int kPad = 8;
  template <class Frag> __device__ static void convert(Frag&) {}
};
template <>
struct TensorCoreTraits<float> {  // TF32 tensor cores: float in shared memory, rounded on load
  using Smem = float;
  using Precision = nvcuda::wmma::precision::tf32;
  static constexpr int kStep = 8;
  static constexpr int kPad = 4;
  template <class Frag> __device__ static void convert(Frag& f) {
#pragma unroll
    for (int t = 0; t < f.num_elements; ++t) f.x[t] = nvcuda::wmma::__float_to_tf32(f.x[t]);
  }
};

// ---- global → shared ----------------------------------------------------------------

// Copies an OUTER × INNER block whose INNER index is contiguous in global memory (stride
// `ld` between outer lines) into shared memory with row stride INNER + PAD, zero outside
// [0, outerLimit) × [0, innerLimit). Each operand layout maps onto this one shape: the
// contiguous dimension in global memory stays contiguous in shared memory, so the copy is
// raw (no conversion) and runs in 16-byte vectors wherever a chunk is in bounds and aligned;
// consecutive threads take consecutive chunks, so global reads coalesce.
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

// ---- the tensor-core kernel ---------------------------------------------------------

constexpr int kTcBM = 128, kTcBN = 128, kTcBK = 32, kTcThreads = 256;  // 8 warps, 2 × 4
constexpr int kTcWarpM = 64, kTcWarpN = 32;                           // 4 × 2 fragments each

template <class T, bool A_COL, bool B_COL, class Epilogue>
__global__ void __launch_bounds__(kTcThreads) tensorCoreGemmKernel(GemmOperands<T> op, Epilogue ep) {
  namespace wmma = nvcuda::wmma;
  using Tr = TensorCoreTraits<T>;
  using S = typename Tr::Smem;
  constexpr int BM = kTcBM, BN = kTcBN, BK = kTcBK, PAD = Tr::kPad, KS = Tr::kStep;
  constexpr int kAElems = A_COL ? BK * (BM + PAD) : BM * (BK + PAD);
  constexpr int kBElems = B_COL ? BN * (BK + PAD) : BK * (BN + PAD);
  constexpr int kStageBytes = (kAElems + kBElems) * int(sizeof(S));
  constexpr int kScratchBytes = (kTcThreads / 32) * 16 * 16 * int(sizeof(float));
  constexpr bool kWholeTile = WholeTileEpilogue<Epilogue>::value;
  // Whole-tile epilogues: one warp row's part of the tile (kTcWarpM × BN floats) at a time.
  constexpr int kPartLd = BN + 4;  // a multiple of 4 (WMMA's float ldm); conflict-free row sweeps
  constexpr int kPartBytes = kWholeTile ? kTcWarpM * kPartLd * int(sizeof(float)) : 0;
  constexpr int kEpilogueBytes = kScratchBytes > kPartBytes ? kScratchBytes : kPartBytes;
  __shared__ __align__(128) unsigned char smem[kStageBytes > kEpilogueBytes ? kStageBytes : kEpilogueBytes];
  S* as = reinterpret_cast<S*>(smem);
  S* bs = as + kAElems;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warpRow = warp / (BN / kTcWarpN), warpCol = warp % (BN / kTcWarpN);
  const int64_t m0 = int64_t(blockIdx.y) * BM, n0 = int64_t(blockIdx.x) * BN;

  using ALayout = typename std::conditional<A_COL, wmma::col_major, wmma::row_major>::type;
  using BLayout = typename std::conditional<B_COL, wmma::col_major, wmma::row_major>::type;
  wmma::fragment<wmma::accumulator, 16, 16, KS, float> acc[kTcWarpM / 16][kTcWarpN / 16];
#pragma unroll
  for (int i = 0; i < kTcWarpM / 16; ++i)
#pragma unroll
    for (int j = 0; j < kTcWarpN / 16; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int64_t k0 = 0; k0 < op.k; k0 += BK) {
    loadTiles<T, BM, BN, BK, PAD, A_COL, B_COL, kTcThreads>(op, m0, n0, k0, as, bs);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += KS) {
      wmma::fragment<wmma::matrix_a, 16, 16, KS, typename Tr::Precision, ALayout> a[kTcWarpM / 16];
      wmma::fragment<wmma::matrix_b, 16, 16, KS, typename Tr::Precision, BLayout> b[kTcWarpN / 16];
#pragma unroll
      for (int i = 0; i < kTcWarpM / 16; ++i) {
        const int r = warpRow * kTcWarpM + i * 16;
        const S* p = A_COL ? as + kk * (BM + PAD) + r : as + r * (BK + PAD) + kk;
        wmma::load_matrix_sync(a[i], p, A_COL ? BM + PAD : BK + PAD);
        Tr::convert(a[i]);
      }
#pragma unroll
      for (int j = 0; j < kTcWarpN / 16; ++j) {
        const int c = warpCol * kTcWarpN + j * 16;
        const S* p = B_COL ? bs + c * (BK + PAD) + kk : bs + kk * (BN + PAD) + c;
        wmma::load_matrix_sync(b[j], p, B_COL ? BK + PAD : BN + PAD);
        Tr::convert(b[j]);
      }
#pragma unroll
      for (int i = 0; i < kTcWarpM / 16; ++i)
#pragma unroll
        for (int j = 0; j < kTcWarpN / 16; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

  if constexpr (kWholeTile) {
    // The tile in BM / kTcWarpM parts, part p being warp row p's accumulators. The main loop
    // ended with a barrier, so the staging buffers are free.
    static_assert(BN <= kTcThreads, "one thread per column");
    float* part = reinterpret_cast<float*>(smem);
    typename Epilogue::TileState state{};
    const int cols = int(op.n - n0 < BN ? op.n - n0 : BN);
    for (int p = 0; p < BM / kTcWarpM; ++p) {
      if (warpRow == p) {
#pragma unroll
        for (int i = 0; i < kTcWarpM / 16; ++i)
#pragma unroll
          for (int j = 0; j < kTcWarpN / 16; ++j)
            wmma::store_matrix_sync(part + i * 16 * kPartLd + warpCol * kTcWarpN + j * 16, acc[i][j], kPartLd,
                                    wmma::mem_row_major);
      }
      __syncthreads();
      const int64_t row0 = m0 + int64_t(p) * kTcWarpM;
      const int rows = int(op.m - row0 < kTcWarpM ? op.m - row0 : kTcWarpM);  // ≤ 0: past the last row
      ep.template tilePart<kTcThreads, kTcWarpM>(part, kPartLd, row0, n0, rows, cols, state);
      __syncthreads();
    }
    ep.tileFinish(n0, cols, state);
  } else {
    // Epilogue: fragments have an opaque register layout, so each warp stages one 16×16
    // fragment at a time in its own scratch to learn every value's (row, col).
    float* scratch = reinterpret_cast<float*>(smem) + warp * 256;
    typename Epilogue::Sums sums{};
#pragma unroll
    for (int i = 0; i < kTcWarpM / 16; ++i)
#pragma unroll
      for (int j = 0; j < kTcWarpN / 16; ++j) {
        wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
          const int64_t row = m0 + warpRow * kTcWarpM + i * 16 + e / 16;
          const int64_t col = n0 + warpCol * kTcWarpN + j * 16 + e % 16;
          if (row < op.m && col < op.n) ep.apply(row, col, scratch[e], sums);
        }
        __syncwarp();
      }
    ep.finish(sums);
  }
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

// ---- launcher -----------------------------------------------------------------------

// Grid x covers columns and y rows; y is limited to 65535 tiles (8.4M rows at 128), far
// above any batch this package is given (the blocked drivers cap m at their block size).
template <class T, bool A_COL, bool B_COL, class Epilogue>
void launchGemm(const GemmOperands<T>& op, const Epilogue& ep, bool exactFloat32, cudaStream_t stream) {
  if (op.m <= 0 || op.n <= 0) return;
  if constexpr (std::is_same<T, float>::value) {
    if (exactFloat32) {
      const dim3 grid(unsigned((op.n + kSimtBN - 1) / kSimtBN), unsigned((op.m + kSimtBM - 1) / kSimtBM));
      simtGemmKernel<A_COL, B_COL, Epilogue><<<grid, kSimtThreads, 0, stream>>>(op, ep);
      SIGLIP_CUDA_CHECK_LAUNCH("simtGemmKernel");
      return;
    }
  }
  const dim3 grid(unsigned((op.n + kTcBN - 1) / kTcBN), unsigned((op.m + kTcBM - 1) / kTcBM));
  tensorCoreGemmKernel<T, A_COL, B_COL, Epilogue><<<grid, kTcThreads, 0, stream>>>(op, ep);
  SIGLIP_CUDA_CHECK_LAUNCH("tensorCoreGemmKernel");
}

// Number of thread blocks launchGemm uses (the sigmoid epilogue writes one partial each).
inline int64_t gemmBlockCount(int64_t m, int64_t n, bool simt) {
  const int64_t bm = simt ? kSimtBM : kTcBM, bn = simt ? kSimtBN : kTcBN;
  return ((m + bm - 1) / bm) * ((n + bn - 1) / bn);
}
// Its grid: thread blocks along the rows of C (grid y) and along the columns (grid x).
inline int64_t gemmGridRows(int64_t m, bool simt) {
  const int64_t bm = simt ? kSimtBM : kTcBM;
  return (m + bm - 1) / bm;
}
inline int64_t gemmGridCols(int64_t n, bool simt) {
  const int64_t bn = simt ? kSimtBN : kTcBN;
  return (n + bn - 1) / bn;
}

}  // namespace siglip::cuda
