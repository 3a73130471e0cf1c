// The tile GEMM's epilogue side: what a kernel does with its finished accumulator tile. An
// *epilogue* functor sees (row, col, value) for every element: StoreEpilogue writes alpha·value
// (optionally adding to C); the sigmoid epilogue (sigmoid_epilogue.cuh) turns the similarity
// into the loss terms and the gradient tile. An epilogue that needs whole rows and columns of
// the tile (the softmax statistics, softmax_epilogue.cuh) declares a TileState and gets the
// tile staged in shared memory instead (WholeTileEpilogue below). finishTensorCoreTile is the
// one tensor-core epilogue, shared by the simple and the pipelined kernel.
#pragma once
#include "tile_gemm_traits.cuh"

namespace siglip::cuda {

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

// Shared memory finishTensorCoreTile needs: a 16×16 float scratch per warp for per-element
// epilogues, or one warp row's part of the tile (kTcWarpM × BN floats, row stride
// kTcPartLd) for whole-tile ones.
constexpr int kTcPartLd = kTcBN + 4;  // a multiple of 4 (WMMA's float ldm); conflict-free row sweeps
template <class Epilogue>
constexpr int tensorCoreEpilogueBytes() {
  constexpr int scratch = (kTcThreads / 32) * 16 * 16 * int(sizeof(float));
  constexpr int part = WholeTileEpilogue<Epilogue>::value ? kTcWarpM * kTcPartLd * int(sizeof(float)) : 0;
  return scratch > part ? scratch : part;
}

// Hands the CTA's accumulators (tile at (m0, n0) of the m × n result) to the epilogue. `smem`
// holds at least tensorCoreEpilogueBytes<Epilogue>() bytes that no thread still reads: the
// caller's main loop ends with a barrier after its last use of them.
template <class T, class Epilogue>
__device__ __forceinline__ void finishTensorCoreTile(TcAccumulator<T> (&acc)[kTcFragM][kTcFragN], unsigned char* smem,
                                                     int64_t m0, int64_t n0, int64_t m, int64_t n, const Epilogue& ep) {
  namespace wmma = nvcuda::wmma;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warpRow = warp / (kTcBN / kTcWarpN), warpCol = warp % (kTcBN / kTcWarpN);
  if constexpr (WholeTileEpilogue<Epilogue>::value) {
    // The tile in BM / kTcWarpM parts, part p being warp row p's accumulators.
    static_assert(kTcBN <= kTcThreads, "one thread per column");
    float* part = reinterpret_cast<float*>(smem);
    typename Epilogue::TileState state{};
    const int cols = int(n - n0 < kTcBN ? n - n0 : kTcBN);
    for (int p = 0; p < kTcBM / kTcWarpM; ++p) {
      if (warpRow == p) {
#pragma unroll
        for (int i = 0; i < kTcFragM; ++i)
#pragma unroll
          for (int j = 0; j < kTcFragN; ++j)
            wmma::store_matrix_sync(part + i * 16 * kTcPartLd + warpCol * kTcWarpN + j * 16, acc[i][j], kTcPartLd,
                                    wmma::mem_row_major);
      }
      __syncthreads();
      const int64_t row0 = m0 + int64_t(p) * kTcWarpM;
      const int rows = int(m - row0 < kTcWarpM ? m - row0 : kTcWarpM);  // ≤ 0: past the last row
      ep.template tilePart<kTcThreads, kTcWarpM>(part, kTcPartLd, row0, n0, rows, cols, state);
      __syncthreads();
    }
    ep.tileFinish(n0, cols, state);
  } else {
    // Fragments have an opaque register layout, so each warp stages one 16×16 fragment at a
    // time in its own scratch to learn every value's (row, col).
    float* scratch = reinterpret_cast<float*>(smem) + warp * 256;
    typename Epilogue::Sums sums{};
#pragma unroll
    for (int i = 0; i < kTcFragM; ++i)
#pragma unroll
      for (int j = 0; j < kTcFragN; ++j) {
        wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
          const int64_t row = m0 + warpRow * kTcWarpM + i * 16 + e / 16;
          const int64_t col = n0 + warpCol * kTcWarpN + j * 16 + e % 16;
          if (row < m && col < n) ep.apply(row, col, scratch[e], sums);
        }
        __syncwarp();
      }
    ep.finish(sums);
  }
}

}  // namespace siglip::cuda
