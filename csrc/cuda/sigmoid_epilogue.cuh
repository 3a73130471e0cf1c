// The sigmoid-BCE epilogue on the GPU: applied to each similarity S_ij as the tile GEMM
// produces it (or, with GEMM1 on cuBLAS, as the pass of sigmoid_epilogue_pass.cuh reads it),
// it adds the pair's loss term and gradient sums, and writes the pair's entry of the gradient
// tile G (−z·σ(−u), times the float16 storage scale). The math is core/sigmoid_math.h, shared
// with the CPU and the float64 reference.
#pragma once
#include "../core/pair_block.h"  // PairSums
#include "../core/sigmoid_math.h"
#include "cuda_common.cuh"

namespace siglip::cuda {

__device__ __forceinline__ double warpSum(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Scalar sums of one thread block, reduced in a fixed order (warp shuffles in a fixed tree,
// then warps in index order) and written to the block's own slot: deterministic.
__device__ __forceinline__ void writeBlockSums(PairSums sums, double* slot) {
  __shared__ double warpSums[32][3];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = (blockDim.x + 31) / 32;
  const double s0 = warpSum(sums.softplus), s1 = warpSum(sums.dLogit), s2 = warpSum(sums.dLogitSim);
  if (lane == 0) warpSums[warp][0] = s0, warpSums[warp][1] = s1, warpSums[warp][2] = s2;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t0 = 0, t1 = 0, t2 = 0;
    for (int w = 0; w < warps; ++w) t0 += warpSums[w][0], t1 += warpSums[w][1], t2 += warpSums[w][2];
    slot[0] = t0, slot[1] = t1, slot[2] = t2;
  }
}

// A thread's running sums of its pairs. The pair terms are float, and adding each into a
// double costs three float→double conversions and three double additions per pair, about as
// much as the pair's own math on a GPU; so a thread adds kFlushPairs of them in float, then
// moves that partial into its double totals. Float partials of at most 64 terms (a relative
// error of at most 64·2⁻²⁴ on a sum of the positive loss terms), double beyond; a thread's
// pairs come in a fixed order, so the bits are as deterministic as before.
struct PairSumsAccumulator {
  static constexpr int kFlushPairs = 64;
  PairSums total;
  float softplus = 0, dLogit = 0, dLogitSim = 0;
  int pending = 0;

  __device__ __forceinline__ void add(float term, float dLogitTerm, float similarity) {
    softplus += term;
    dLogit += dLogitTerm;
    dLogitSim += dLogitTerm * similarity;
    if (++pending == kFlushPairs) flush();
  }
  __device__ __forceinline__ void flush() {
    total.softplus += softplus, total.dLogit += dLogit, total.dLogitSim += dLogitSim;
    softplus = dLogit = dLogitSim = 0, pending = 0;
  }
};

__device__ __forceinline__ bool isPositivePair(const int32_t* rowIds, const int32_t* colIds, int64_t row, int64_t col,
                                               int64_t rowOffset, int64_t colOffset) {
  return rowIds ? rowIds[row] == colIds[col] : rowOffset + row == colOffset + col;
}

template <class T>
struct SigmoidEpilogue {
  T* g = nullptr;  // gradient tile (row-major, ldg), or null for forward only
  int64_t ldg = 0;
  float temperature = 1, bias = 0;
  const int32_t* rowIds = nullptr;  // device ids of this block's rows / columns, or null
  const int32_t* colIds = nullptr;
  int64_t rowOffset = 0, colOffset = 0;  // global index of the block's first row / column
  double* partials = nullptr;            // 3 doubles per thread block of the launch

  using Sums = PairSumsAccumulator;
  // The per-pair math, wherever S comes from (the tile GEMM's accumulators, or a block of S in
  // memory: sigmoid_epilogue_pass.cuh): adds pair (row, col)'s terms to `sums` and returns its
  // entry of G as stored.
  __device__ __forceinline__ T pair(int64_t row, int64_t col, float similarity, Sums& sums) const {
    const bool positive = isPositivePair(rowIds, colIds, row, col, rowOffset, colOffset);
    float dLogit;
    const float term = sigmoidPairTerm<float>(similarity, positive, temperature, bias, &dLogit);
    sums.add(term, dLogit, similarity);
    return DTypeTraits<T>::fromFloat(dLogit * kGradStoreScale<T>);
  }
  __device__ __forceinline__ void apply(int64_t row, int64_t col, float similarity, Sums& sums) const {
    const T entry = pair(row, col, similarity, sums);
    if (g) g[row * ldg + col] = entry;
  }
  __device__ __forceinline__ void finish(Sums sums) const {
    sums.flush();
    writeBlockSums(sums.total, partials + 3 * (int64_t(blockIdx.y) * gridDim.x + blockIdx.x));
  }
};

// totals[q] += Σ_b partials[3b + q] in a fixed order (one block of kAccumulateThreads).
constexpr int kAccumulateThreads = 256;
__global__ void accumulatePartialsKernel(const double* partials, int64_t blocks, double* totals);

}  // namespace siglip::cuda
