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
#include <cstdint>

#include "cpu_kernels.h"

namespace siglip::cpu::simd {

// exp(x) for x ≤ 0 (x is clamped below at -87, where the result is ~1e-38 instead of a
// denormal or 0: harmless for every caller). Cody–Waite reduction x = n·ln2 + r, then a
// degree-7 polynomial on |r| ≤ ln2/2 (the classic Cephes expf coefficients).
template <class V>
inline typename V::F expNonPositive(typename V::F x) {
  using F = typename V::F;
  x = V::max(x, V::set1(-87.0f));
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
  return V::scaleByPow2(p, n);
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

}  // namespace siglip::cpu::simd
