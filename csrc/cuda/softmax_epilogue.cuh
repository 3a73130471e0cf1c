// The chunked softmax's two epilogues on the GPU (driven by chunked_softmax.cu): the CUDA twins
// of the CPU kernel sets' softmaxStatsEpilogue and softmaxGradientEpilogue
// (csrc/cpu/kernels_generic.cpp, simd_epilogue.h), with the same math in units of S: the
// statistics of a row (or column) are (max S, Σ exp(t·(S − max S))), so no float logit t·S
// is ever formed; terms whose exponent is below −87 count as exactly 0; P − T at the
// positives is recomputed in double.
#pragma once
#include <math_constants.h>

#include <cmath>

#include "cuda_common.cuh"
#include "sigmoid_epilogue.cuh"  // PairSums, writeBlockSums, isPositivePair

namespace siglip::cuda {

// Statistics of one row or column of S, or of one CTA's share of it: max S,
// Σ exp(t·(S − max S)) (NaN once a similarity was not finite), Σ S over the positives and
// their number. 24 bytes, 8-aligned.
struct LineStats {
  float maxS;
  int32_t positives;
  double sum;
  double positiveSumS;
};

// A finished line as pass 2 reads it: max S, log Σ in float (the float terms) and in double
// (the positives), and the target 1 / (number of positives).
struct LineGradStats {
  float maxS;
  float logSum;
  double logSumExact;
  double target;
};

// exp(x) for x ≤ 0: exactly 0 below −87 and for NaN (as the CPU kernels' expNonPositive).
__device__ __forceinline__ float softmaxExpOrZero(float x) { return x >= -87.0f ? expf(x) : 0.0f; }

// Folds `part` into `into` (mergeLogSumExp of chunked_softmax.cpp): only ever exp of a
// non-positive argument; a part whose max is the running max adds exactly.
__device__ __forceinline__ void mergeLineStats(double t, LineStats& into, const LineStats& part) {
  if (part.maxS > into.maxS) {
    into.sum = into.sum * exp(t * (double(into.maxS) - double(part.maxS))) + part.sum;
    into.maxS = part.maxS;
  } else {
    into.sum += part.sum * exp(t * (double(part.maxS) - double(into.maxS)));
  }
  into.positiveSumS += part.positiveSumS;
  into.positives += part.positives;
}

// Pass 1: a whole-tile epilogue (tile_gemm.cuh) over S = X_r·Y_cᵀ of one pair block. Each CTA
// writes, for every row of its tile, the row's statistics over the tile's columns to
// rowPartials[blockIdx.x · rowLines + row], and for every column its statistics over the
// tile's rows to colPartials[blockIdx.y · colLines + col] (row, col: indices in the block).
// Inside a CTA the order is fixed: a row's L threads each sweep the columns ≡ q (mod L)
// in order and combine by a butterfly of shuffles (commutative adds: every lane gets the
// same bits); a column is one thread's, sweeping the part's rows in order and merging the
// parts in order. No atomics: the same bits on every run.
struct SoftmaxStatsEpilogue {
  float temperature = 1;        // t, for the float terms
  double temperatureExact = 1;  // t in double, for merging parts
  const int32_t* rowIds = nullptr;  // device ids of the block's rows / columns, or null
  const int32_t* colIds = nullptr;
  int64_t rowOffset = 0, colOffset = 0;  // global index of the block's first row / column
  LineStats* rowPartials = nullptr;      // [grid columns][rowLines]
  LineStats* colPartials = nullptr;      // [grid rows][colLines]
  int64_t rowLines = 0, colLines = 0;    // the block's rows and columns (the GEMM's m, n)

  struct TileState {
    LineStats column{-INFINITY, 0, 0.0, 0.0};  // this thread's column, merged over the parts
  };

  __device__ __forceinline__ bool positive(int64_t row, int64_t col) const {
    return isPositivePair(rowIds, colIds, row, col, rowOffset, colOffset);
  }

  template <int THREADS, int PART_ROWS>
  __device__ __forceinline__ void tilePart(const float* tile, int ld, int64_t row0, int64_t col0, int rows, int cols,
                                           TileState& state) const {
    static_assert(THREADS % PART_ROWS == 0, "a part's rows must share the threads evenly");
    constexpr int L = THREADS / PART_ROWS;  // threads per row: consecutive lanes of one warp
    static_assert(L >= 1 && L <= 32 && (L & (L - 1)) == 0, "threads per row: a power of two within a warp");
    const float t = temperature;

    // Rows: thread k takes row k / L, columns q, q + L, q + 2L, … with q = k mod L.
    {
      const int r = int(threadIdx.x) / L, q = int(threadIdx.x) % L;
      const bool valid = r < rows;
      const float* line = tile + r * ld;
      float maxS = -INFINITY;
      int nonFinite = 0;
      if (valid) {
        for (int c = q; c < cols; c += L) {
          const float s = line[c];
          maxS = s > maxS ? s : maxS;
          nonFinite |= isfinite(s) ? 0 : 1;
        }
      }
#pragma unroll
      for (int o = 1; o < L; o *= 2) {
        const float other = __shfl_xor_sync(0xffffffffu, maxS, o);
        maxS = other > maxS ? other : maxS;
      }
      double sum = 0, positiveSumS = 0;
      int positives = 0;
      if (valid) {
        for (int c = q; c < cols; c += L) {
          const float s = line[c];
          sum += double(softmaxExpOrZero(t * (s - maxS)));
          if (positive(row0 + r, col0 + c)) {
            positiveSumS += double(s);
            ++positives;
          }
        }
      }
#pragma unroll
      for (int o = 1; o < L; o *= 2) {
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
        positiveSumS += __shfl_xor_sync(0xffffffffu, positiveSumS, o);
        positives += __shfl_xor_sync(0xffffffffu, positives, o);
        nonFinite |= __shfl_xor_sync(0xffffffffu, nonFinite, o);
      }
      if (valid && q == 0) {
        rowPartials[int64_t(blockIdx.x) * rowLines + row0 + r] =
            LineStats{maxS, positives, nonFinite ? CUDART_NAN : sum, positiveSumS};
      }
    }

    // Columns: thread c takes column c (cols ≤ THREADS), the part's rows in order.
    if (rows > 0 && int(threadIdx.x) < cols) {
      const int c = int(threadIdx.x);
      float maxS = -INFINITY;
      int nonFinite = 0;
      for (int r = 0; r < rows; ++r) {
        const float s = tile[r * ld + c];
        maxS = s > maxS ? s : maxS;
        nonFinite |= isfinite(s) ? 0 : 1;
      }
      double sum = 0, positiveSumS = 0;
      int positives = 0;
      for (int r = 0; r < rows; ++r) {
        const float s = tile[r * ld + c];
        sum += double(softmaxExpOrZero(t * (s - maxS)));
        if (positive(row0 + r, col0 + c)) {
          positiveSumS += double(s);
          ++positives;
        }
      }
      mergeLineStats(temperatureExact, state.column,
                     LineStats{maxS, positives, nonFinite ? CUDART_NAN : sum, positiveSumS});
    }
  }

  __device__ __forceinline__ void tileFinish(int64_t col0, int cols, const TileState& state) const {
    if (int(threadIdx.x) < cols) colPartials[int64_t(blockIdx.y) * colLines + col0 + threadIdx.x] = state.column;
  }
};

// Pass 2: a per-element epilogue over S again. With the finished statistics,
//   H = (P_row − T_row)/(2N) + (P_col − T_col)/(2M),   P = exp(t·(S − max S) − log Σ),
// recomputed in double at the positives; writes G = H · storeScale in the input dtype (the
// scale keeps |G| ≤ kGradStoreScale<T>: float16's normal range) and sums Σ H·S per CTA.
template <class T>
struct SoftmaxGradientEpilogue {
  T* g = nullptr;  // the gradient block (row-major, ldg)
  int64_t ldg = 0;
  float temperature = 1;
  double temperatureExact = 1;
  const int32_t* rowIds = nullptr;
  const int32_t* colIds = nullptr;
  int64_t rowOffset = 0, colOffset = 0;
  const LineGradStats* rowStats = nullptr;  // the block's rows / columns
  const LineGradStats* colStats = nullptr;
  float rowScale = 0, colScale = 0;  // 1/(2N), 1/(2M)
  double rowScaleExact = 0, colScaleExact = 0;
  float storeScale = 1;
  double* partials = nullptr;  // 3 doubles per thread block (PairSums; dLogitSim = Σ H·S)

  using Sums = PairSums;
  __device__ __forceinline__ void apply(int64_t row, int64_t col, float similarity, Sums& sums) const {
    const LineGradStats r = rowStats[row];
    const LineGradStats c = colStats[col];
    float h;
    if (isPositivePair(rowIds, colIds, row, col, rowOffset, colOffset)) {
      // P − T cancels to a tiny difference here once a batch converges: double.
      const double s = similarity;
      const double pRow = exp(temperatureExact * (s - double(r.maxS)) - r.logSumExact) - r.target;
      const double pCol = exp(temperatureExact * (s - double(c.maxS)) - c.logSumExact) - c.target;
      h = float(rowScaleExact * pRow + colScaleExact * pCol);
    } else {
      h = rowScale * softmaxExpOrZero(temperature * (similarity - r.maxS) - r.logSum) +
          colScale * softmaxExpOrZero(temperature * (similarity - c.maxS) - c.logSum);
    }
    sums.dLogitSim += double(h * similarity);
    g[row * ldg + col] = DTypeTraits<T>::fromFloat(h * storeScale);
  }
  __device__ __forceinline__ void finish(const Sums& sums) const {
    writeBlockSums(sums, partials + 3 * (int64_t(blockIdx.y) * gridDim.x + blockIdx.x));
  }
};

}  // namespace siglip::cuda
