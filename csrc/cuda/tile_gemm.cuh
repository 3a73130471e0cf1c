// The tile GEMM every CUDA loss path runs X·Yᵀ on (and, where cuBLAS is not used, G·Y and
// Gᵀ·X): C (m×n) = A (m×k) · B (k×n) with float32 accumulation, in 128×128 tiles on tensor
// cores (bf16/fp16 WMMA 16×16×16, TF32 16×16×8) or 64×64 tiles of exact float32 FMA, each
// tile finished by an epilogue functor (tile_gemm_epilogue.cuh) — which is why X·Yᵀ stays on
// this GEMM: the loss is computed on its accumulators, and S never reaches memory.
//
// Kept apart, as in FlashAttention's csrc: the traits (tile_gemm_traits.cuh: shapes, layouts,
// the warp MMA step), the epilogue (tile_gemm_epilogue.cuh), and the main loops:
//   tile_gemm_pipelined.cuh  cp.async, four stages in flight (sm_80+, 16-byte-aligned lines)
//   tile_gemm_simple.cuh     one stage, any shape and alignment; also the exact fp32 kernel
// SIGLIP_TILE_GEMM (gemm_paths.cuh) picks the tensor-core main loop: pipelined (default)
// where its alignment rule holds, else simple; or simple everywhere. Both produce the same
// tiles and the same grid; a given launch's bits depend only on which one ran. The kernels'
// reference is the simple per-row kernels of reference_kernels.cu.
#pragma once
#include "gemm_paths.cuh"
#include "tile_gemm_pipelined.cuh"
#include "tile_gemm_simple.cuh"

namespace siglip::cuda {

// Grid x covers columns and y rows; y is limited to 65535 tiles (8.4M rows at 128), far
// above any batch this package is given (the blocked drivers cap m at their block size).
template <class T, bool A_COL, bool B_COL, class Epilogue>
void launchGemm(const GemmOperands<T>& op, const Epilogue& ep, bool exactFloat32, cudaStream_t stream) {
  if (op.m <= 0 || op.n <= 0) return;
  if constexpr (std::is_same<T, float>::value) {
    if (exactFloat32) {
      const dim3 grid(unsigned((op.n + kSimtBN - 1) / kSimtBN), unsigned((op.m + kSimtBM - 1) / kSimtBM));
      launchKernel(simtGemmKernel<A_COL, B_COL, Epilogue>, grid, kSimtThreads, 0, stream, op, ep);
      SIGLIP_CUDA_CHECK_LAUNCH("simtGemmKernel");
      return;
    }
  }
  if (selectedTileGemm() == TileGemm::Pipelined && launchPipelinedGemm<T, A_COL, B_COL>(op, ep, stream)) return;
  const dim3 grid(unsigned((op.n + kTcBN - 1) / kTcBN), unsigned((op.m + kTcBM - 1) / kTcBM));
  launchKernel(simpleTensorCoreGemmKernel<T, A_COL, B_COL, Epilogue>, grid, kTcThreads, 0, stream, op, ep);
  SIGLIP_CUDA_CHECK_LAUNCH("simpleTensorCoreGemmKernel");
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

// Line stride for a block the backward GEMMs read as an operand (the gradient block G, the
// softmax's H): rounded up to 16 bytes (8 elements covers every dtype) so that its lines meet
// the pipelined kernel's alignment rule whatever the block's width.
inline int64_t alignedLineStride(int64_t cols) { return (cols + 7) / 8 * 8; }

}  // namespace siglip::cuda
