// The sigmoid epilogue and the vector exp, written once over a SIMD "traits" type and
// instantiated by each x86 kernel file (kernels_avx2.cpp, kernels_avx512.cpp) under its own
// compiler flags. The math is SPEC.md's, lane-wise, with the same stable forms as
// core/sigmoid_math.h:
//   e        = exp(-|u|)                       (never overflows)
//   softplus(-u) = max(-u, 0) + log1p(e)
//   σ(-u)    = u ≥ 0 ? e / (1 + e) : 1 / (1 + e)
// log1p(e) for e ∈ [0, 1] is 2·atanh(s) with s = e / (2 + e) ∈ [0, 1/3], an odd series that
// keeps full relative accuracy for tiny e (where log(1 + e) would lose e's low bits: the
// negatives' terms, e ≈ 4.5e-5 at the default t = 10, b = -10, dominate the loss sum).
#pragma once
#include <cmath>
#include <cstdint>

#include "cpu_kernels.h"

namespace siglip::cpu::simd {

// exp(x) for x ≤ 0, exactly 0 below -87 (and for -Infinity): Cody–Waite reduction
// x = n·ln2 + r, then a degree-7 polynomial on |r| ≤ ln2/2 (the classic Cephes expf
// coefficients), evaluated on x clamped at -87 so that 2^n stays a normal float.
// The 0 matters: when t·S overflows float32 (logitScale near 80 and large embeddings) u is
// ±Infinity, σ(-u) must be 0, and the ~1.6e-38 of the clamp times t·S ≈ 1e38 in ∂s would
// be a spurious gradient of order 1 (issue 10, item 7). Results below e^-87 ≈ 1.6e-38 are
// denormals in float32 and contribute nothing a float sum could keep.
template <class V>
inline typename V::F expNonPositive(typename V::F x) {
  using F = typename V::F;
  const F floor = V::set1(-87.0f);
  const typename V::M representable = V::greaterEqual(x, floor);  // false for -Infinity and NaN
  x = V::max(x, floor);
  const F n = V::roundNearest(V::mul(x, V::set1(1.44269504088896341f)));
  F r = V::fmadd(n, V::set1(-0.693359375f), x);
  r = V::fmadd(n, V::set1(2.12194440e-4f), r);
  F p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  p = V::fmadd(V::mul(p, r), r, V::add(r, V::set1(1.0f)));
  return V::select(representable, V::scaleByPow2(p, n), V::set1(0.0f));
}

// log1p(e) for e ∈ [0, 1] (see the file comment).
template <class V>
inline typename V::F log1pUnit(typename V::F e) {
  using F = typename V::F;
  const F s = V::div(e, V::add(e, V::set1(2.0f)));
  const F w = V::mul(s, s);
  F q = V::set1(1.0f / 13);
  q = V::fmadd(q, w, V::set1(1.0f / 11));
  q = V::fmadd(q, w, V::set1(1.0f / 9));
  q = V::fmadd(q, w, V::set1(1.0f / 7));
  q = V::fmadd(q, w, V::set1(1.0f / 5));
  q = V::fmadd(q, w, V::set1(1.0f / 3));
  q = V::fmadd(q, w, V::set1(1.0f));
  return V::mul(V::add(s, s), q);
}

template <class V>
void expInPlace(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(x + i, expNonPositive<V>(V::load(x + i)));
  if (i < n) {
    const int rest = int(n - i);
    V::storeN(x + i, expNonPositive<V>(V::loadN(x + i, rest)), rest);
  }
}

template <class V>
void sigmoidEpilogue(float* tile, int64_t ld, int64_t rows, int64_t cols, const SigmoidTileParams& p,
                     PairSums& sums) {
  using F = typename V::F;
  using M = typename V::M;
  const F t = V::set1(p.temperature);
  const F b = V::set1(p.bias);
  const F gradScale = V::set1(p.gradScale);
  const F zero = V::set1(0.0f);
  const F one = V::set1(1.0f);
  typename V::DoubleSum softplusSum, dLogitSum, dLogitSimSum;
  for (int64_t i = 0; i < rows; ++i) {
    float* row = tile + i * ld;
    for (int64_t j = 0; j < cols; j += V::W) {
      const int width = cols - j < V::W ? int(cols - j) : V::W;
      const F s = width == V::W ? V::load(row + j) : V::loadN(row + j, width);
      M positive;
      if (p.rowIds) {
        positive = V::equalInts(V::set1Int(p.rowIds[i]), V::loadIntN(p.colIds + j, width));
      } else {
        // Global column index colOffset + j + lane equals row rowOffset + i at one lane at most.
        const int64_t lane = p.rowOffset + i - p.colOffset - j;
        positive = V::laneMask(lane >= 0 && lane < width ? int(lane) : -1);
      }
      const F logit = V::fmadd(t, s, b);
      const F u = V::select(positive, logit, V::neg(logit));
      const F e = expNonPositive<V>(V::neg(V::abs(u)));
      const F softplusNegU = V::add(V::max(V::neg(u), zero), log1pUnit<V>(e));
      const F recip = V::div(one, V::add(one, e));
      const F sigmoidNegU = V::select(V::greaterEqual(u, zero), V::mul(e, recip), recip);
      // -z·σ(-u): negative for positives (pull together), positive for negatives.
      const F dLogit = V::select(positive, V::neg(sigmoidNegU), sigmoidNegU);
      const M valid = V::firstN(width);
      V::accumulate(softplusSum, V::select(valid, softplusNegU, zero));
      V::accumulate(dLogitSum, V::select(valid, dLogit, zero));
      V::accumulate(dLogitSimSum, V::select(valid, V::mul(dLogit, s), zero));
      if (p.wantGradient) {
        const F g = V::mul(gradScale, dLogit);
        if (width == V::W) V::store(row + j, g); else V::storeN(row + j, g, width);
      }
    }
  }
  sums.softplus += V::reduce(softplusSum);
  sums.dLogit += V::reduce(dLogitSum);
  sums.dLogitSim += V::reduce(dLogitSimSum);
}

// ---- the softmax (CLIP) epilogues of chunked_softmax.cpp --------------------------------
// Besides the traits above they use V::sub, V::bits (a lane mask as an integer, lane k in
// bit k) and V::addToDoubles (W float lanes added to W doubles in memory).


// The positive pairs among columns j .. j+width-1 of tile row r, as lane bits.
template <class V>
inline unsigned positiveLanes(const SoftmaxTileParams& p, int64_t r, int64_t j, int width) {
  if (p.rowIds) {
    const unsigned valid = width >= 32 ? ~0u : (1u << width) - 1u;
    return V::bits(V::equalInts(V::set1Int(p.rowIds[r]), V::loadIntN(p.colIds + j, width))) & valid;
  }
  const int64_t lane = p.rowOffset + r - p.colOffset - j;
  return lane >= 0 && lane < width ? 1u << lane : 0u;
}

template <class V>
inline float horizontalMax(typename V::F v) {
  alignas(64) float lanes[V::W];
  V::store(lanes, v);
  float best = lanes[0];
  for (int k = 1; k < V::W; ++k) best = lanes[k] > best ? lanes[k] : best;
  return best;
}

template <class V>
void softmaxStatsEpilogue(const float* tile, int64_t ld, int64_t rows, int64_t cols, const SoftmaxTileParams& p,
                          SoftmaxTilePartials& out) {
  using F = typename V::F;
  const F t = V::set1(p.temperature);
  const F minusInf = V::set1(-INFINITY);
  const F zero = V::set1(0.0f);
  for (int64_t c = 0; c < cols; ++c) {
    out.colMaxS[c] = -INFINITY;
    out.colSum[c] = 0;
    out.colPositiveSumS[c] = 0;
    out.colPositives[c] = 0;
  }
  // Sweep 1: max S of the tile's rows and columns.
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = tile + r * ld;
    F rowMax = minusInf;
    for (int64_t j = 0; j < cols; j += V::W) {
      const int width = cols - j < V::W ? int(cols - j) : V::W;
      if (width == V::W) {
        const F s = V::load(row + j);
        rowMax = V::max(rowMax, s);
        V::store(out.colMaxS + j, V::max(V::load(out.colMaxS + j), s));
      } else {
        const F s = V::loadN(row + j, width);
        rowMax = V::max(rowMax, V::select(V::firstN(width), s, minusInf));
        V::storeN(out.colMaxS + j, V::max(V::loadN(out.colMaxS + j, width), s), width);
      }
    }
    out.rowMaxS[r] = horizontalMax<V>(rowMax);
  }
  // Sweep 2: Σ exp(t·(S - max S)) per row and per column (float terms, double sums), and
  // the positives' S (rare: a lane-bit test, then scalar).
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = tile + r * ld;
    const F rowMax = V::set1(out.rowMaxS[r]);
    typename V::DoubleSum rowSum;
    double positiveSum = 0;
    int64_t positives = 0;
    for (int64_t j = 0; j < cols; j += V::W) {
      const int width = cols - j < V::W ? int(cols - j) : V::W;
      if (width == V::W) {
        const F s = V::load(row + j);
        V::accumulate(rowSum, expNonPositive<V>(V::mul(t, V::sub(s, rowMax))));
        V::addToDoubles(out.colSum + j, expNonPositive<V>(V::mul(t, V::sub(s, V::load(out.colMaxS + j)))));
      } else {
        const F s = V::loadN(row + j, width);
        V::accumulate(rowSum, V::select(V::firstN(width), expNonPositive<V>(V::mul(t, V::sub(s, rowMax))), zero));
        alignas(64) float colTerms[V::W];
        V::store(colTerms, expNonPositive<V>(V::mul(t, V::sub(s, V::loadN(out.colMaxS + j, width)))));
        for (int k = 0; k < width; ++k) out.colSum[j + k] += colTerms[k];
      }
      for (unsigned lanes = positiveLanes<V>(p, r, j, width), k = 0; lanes; lanes >>= 1, ++k) {
        if (!(lanes & 1u)) continue;
        const double s = row[j + k];
        positiveSum += s;
        ++positives;
        out.colPositiveSumS[j + k] += s;
        ++out.colPositives[j + k];
      }
    }
    out.rowSum[r] = V::reduce(rowSum);
    out.rowPositiveSumS[r] = positiveSum;
    out.rowPositives[r] = positives;
  }
}

template <class V>
double softmaxGradientEpilogue(float* tile, int64_t ld, int64_t rows, int64_t cols, const SoftmaxTileParams& p) {
  using F = typename V::F;
  const F t = V::set1(p.temperature);
  const F rowScale = V::set1(float(p.rowScale));
  const F colScale = V::set1(float(p.colScale));
  const F zero = V::set1(0.0f);
  typename V::DoubleSum hDotS;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = tile + r * ld;
    const F rowMax = V::set1(p.rowMaxS[r]);
    const F rowLogSum = V::set1(p.rowLogSum[r]);
    for (int64_t j = 0; j < cols; j += V::W) {
      const int width = cols - j < V::W ? int(cols - j) : V::W;
      const bool full = width == V::W;
      const F s = full ? V::load(row + j) : V::loadN(row + j, width);
      const F colMax = full ? V::load(p.colMaxS + j) : V::loadN(p.colMaxS + j, width);
      const F colLogSum = full ? V::load(p.colLogSum + j) : V::loadN(p.colLogSum + j, width);
      // P = exp(t·(S - max S) - log Σ)
      const F pRow = expNonPositive<V>(V::sub(V::mul(t, V::sub(s, rowMax)), rowLogSum));
      const F pCol = expNonPositive<V>(V::sub(V::mul(t, V::sub(s, colMax)), colLogSum));
      F h = V::fmadd(rowScale, pRow, V::mul(colScale, pCol));
      if (const unsigned positive = positiveLanes<V>(p, r, j, width)) {
        alignas(64) float hLanes[V::W], sLanes[V::W];
        V::store(hLanes, h);
        V::store(sLanes, s);
        for (unsigned lanes = positive, k = 0; lanes; lanes >>= 1, ++k)
          if (lanes & 1u) hLanes[k] = float(p.positiveH(r, j + k, sLanes[k]));
        h = V::load(hLanes);
      }
      const F tH = V::mul(t, h);
      if (full) {
        V::accumulate(hDotS, V::mul(h, s));
        V::store(row + j, tH);
      } else {
        V::accumulate(hDotS, V::select(V::firstN(width), V::mul(h, s), zero));
        V::storeN(row + j, tH, width);
      }
    }
  }
  return V::reduce(hDotS);
}

}  // namespace siglip::cpu::simd
