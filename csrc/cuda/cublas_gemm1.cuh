// GEMM1 of the fused sigmoid on cuBLAS (SIGLIP_GEMM1=cublas): per piece, S = X_r·Y_cᵀ by
// cublasGemmEx into a float32 block, then one elementwise pass that applies the sigmoid
// epilogue's per-pair math (SigmoidEpilogue::pair, the same code the tile GEMM's epilogue
// runs) to S, writing G and one partial of the sums per thread block.
//
// Why a second pass rather than the tile GEMM's fused epilogue: on Hopper cuBLAS runs GEMMs
// on wgmma/TMA kernels that a WMMA kernel cannot match, and the price of keeping it a black
// box is writing S and reading it back. With the piece small enough (2048², 16 MB of S plus
// G) both stay in an H100's 50 MB L2 between the GEMM and the pass, so that traffic is L2's,
// not HBM's.
//
// The pass: each thread handles 8 consecutive elements of a line at a time (two 16-byte
// loads of S; one 16-byte store of G in 16-bit, two in float32), grid-stride over the block,
// on a grid fixed by the block's shape alone; every CTA's sums are reduced in a fixed tree
// (writeBlockSums) and the partials in block order (accumulatePartialsKernel): the same bits
// on every run.
#pragma once
#include <algorithm>
#include <cstring>

#include "gemm_paths.cuh"
#include "sigmoid_epilogue.cuh"
#include "tile_gemm_traits.cuh"

namespace siglip::cuda {

constexpr int kPassThreads = 256;
constexpr int kPassVector = 8;  // elements per step: 16 bytes of G in 16-bit
// The grid's cap: fixed, so the partials (one per block) and their order depend on the shape
// alone; high enough that a 2048² piece runs one step per thread (2048 short blocks: the
// last wave's tail is a fraction of one short block).
constexpr int64_t kPassMaxBlocks = 4096;

// The thread blocks (one partial each) of the pass over a rows-line block of line stride ldg.
inline int64_t cublasGemm1Blocks(int64_t rows, int64_t ldg) {
  const int64_t steps = rows * (ldg / kPassVector);
  return std::max<int64_t>(1, std::min(kPassMaxBlocks, (steps + kPassThreads - 1) / kPassThreads));
}

// Eight entries of G, written as whole 16-byte vectors (a line's 16-byte-aligned slot).
template <class T>
__device__ __forceinline__ void storeVector(T* dst, const T (&v)[kPassVector]) {
  static_assert(sizeof(v) % sizeof(uint4) == 0, "whole 16-byte vectors");
  uint4 packed[sizeof(v) / sizeof(uint4)];
  memcpy(packed, v, sizeof(v));
#pragma unroll
  for (int q = 0; q < int(sizeof(v) / sizeof(uint4)); ++q) reinterpret_cast<uint4*>(dst)[q] = packed[q];
}

// S (rows × cols, line stride ep.ldg, a multiple of kPassVector) → ep's math on every pair,
// G's lines (their padding past `cols` written as zeros) and this block's partial.
template <class T>
__global__ void __launch_bounds__(kPassThreads)
    sigmoidPassKernel(const float* __restrict__ s, int rows, int cols, SigmoidEpilogue<T> ep) {
  typename SigmoidEpilogue<T>::Sums sums{};
  const unsigned lineSteps = unsigned(ep.ldg) / kPassVector;
  const unsigned steps = unsigned(rows) * lineSteps;
  for (unsigned q = blockIdx.x * kPassThreads + threadIdx.x; q < steps; q += gridDim.x * kPassThreads) {
    const unsigned row = q / lineSteps;
    const int col0 = int(q - row * lineSteps) * kPassVector;
    const int64_t at = int64_t(row) * ep.ldg + col0;
    const float4 lo = *reinterpret_cast<const float4*>(s + at);
    const float4 hi = *reinterpret_cast<const float4*>(s + at + 4);
    const float similarity[kPassVector] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
    T entry[kPassVector];
#pragma unroll
    for (int e = 0; e < kPassVector; ++e)
      entry[e] = col0 + e < cols ? ep.pair(row, col0 + e, similarity[e], sums) : DTypeTraits<T>::fromFloat(0.0f);
    if (ep.g) storeVector(ep.g + at, entry);
  }
  ep.finish(sums);
}

// One piece: S = A·Bᵀ (op: A = X_r, B = Y_c, both row-major with k = D) into `s` on the
// lease's cuBLAS (float32 out; bf16/fp16 in, or float32 as TF32 or exact), then the pass with
// `ep` (its ldg is S's line stride too). Returns the number of partials the pass wrote.
template <class T>
int64_t cublasGemm1(const CublasLease& cublas, const GemmOperands<T>& op, float* s, const SigmoidEpilogue<T>& ep,
                    bool exactFloat32, cudaStream_t stream) {
  if (op.m <= 0 || op.n <= 0) return 0;
  if (ep.ldg % kPassVector != 0 || ep.ldg < op.n)
    throw Error(ErrorKind::Internal, "device", "cublasGemm1: the line stride must cover a line in 16-byte vectors");
  CublasLease::checkSizes("S = X·Yᵀ", op.m, op.n, op.k, op.lda, op.ldb, ep.ldg, op.m * (ep.ldg / kPassVector));
  const CublasLibrary& lib = cublas.library();
  cublas.check(lib.gemmABt(cublas.handle(), int(op.m), int(op.n), int(op.k), op.a, int(op.lda), op.b, int(op.ldb), s,
                           int(ep.ldg), cublasDataType<T>(), CublasDataType::R32F, cublasComputeType<T>(exactFloat32),
                           1.0f, 0.0f),
               "S = X·Yᵀ", op.m, op.n, op.k, "SIGLIP_GEMM1=tile");
  const int64_t blocks = cublasGemm1Blocks(op.m, ep.ldg);
  launchKernel(sigmoidPassKernel<T>, unsigned(blocks), kPassThreads, 0, stream, s, int(op.m), int(op.n), ep);
  SIGLIP_CUDA_CHECK_LAUNCH("sigmoidPassKernel");
  return blocks;
}

}  // namespace siglip::cuda
