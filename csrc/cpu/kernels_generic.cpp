// Portable kernel set: plain C++ the compiler may auto-vectorise for the baseline ISA.
// It is the fallback on processors without AVX2 (and on non-x86 machines), and the
// scalar meaning of the SIMD sets: they implement these same loops lane-wise.
#include <cmath>

#include "../core/sigmoid_math.h"
#include "cpu_kernels.h"

namespace siglip::cpu {
namespace {

constexpr int kMR = 4;
constexpr int kNR = 8;

void microKernel4x8(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int r = 0; r < kMR; ++r) {
      const float ar = a[k * kMR + r];
      for (int j = 0; j < kNR; ++j) acc[r][j] += ar * b[k * kNR + j];
    }
  }
  for (int r = 0; r < kMR; ++r) {
    float* row = c + r * ldc;
    for (int j = 0; j < kNR; ++j) row[j] = accumulate ? row[j] + acc[r][j] : acc[r][j];
  }
}

void sigmoidEpilogueGeneric(float* tile, int64_t ld, int64_t rows, int64_t cols, const SigmoidTileParams& p,
                            PairSums& sums) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = tile + i * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const bool positive = p.rowIds ? p.rowIds[i] == p.colIds[j] : p.rowOffset + i == p.colOffset + j;
      float dTerm;
      const float similarity = row[j];
      const float term = sigmoidPairTerm<float>(similarity, positive, p.temperature, p.bias, &dTerm);
      sums.softplus += term;
      sums.dLogit += dTerm;
      sums.dLogitSim += double(dTerm) * similarity;
      if (p.wantGradient) row[j] = p.gradScale * dTerm;
    }
  }
}

void expInPlaceGeneric(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

// exp(x) for x ≤ 0, exactly 0 below -87 and for NaN (as the SIMD sets' expNonPositive).
inline float expOrZero(float x) { return x >= -87.0f ? std::exp(x) : 0.0f; }

inline bool softmaxPositive(const SoftmaxTileParams& p, int64_t r, int64_t c) {
  return p.rowIds ? p.rowIds[r] == p.colIds[c] : p.rowOffset + r == p.colOffset + c;
}

void softmaxStatsEpilogueGeneric(const float* tile, int64_t ld, int64_t rows, int64_t cols,
                                 const SoftmaxTileParams& p, SoftmaxTilePartials& out) {
  for (int64_t c = 0; c < cols; ++c) {
    out.colMaxS[c] = -INFINITY;
    out.colSum[c] = 0;
    out.colPositiveSumS[c] = 0;
    out.colPositives[c] = 0;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = tile + r * ld;
    float rowMax = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) {
      rowMax = row[c] > rowMax ? row[c] : rowMax;
      out.colMaxS[c] = row[c] > out.colMaxS[c] ? row[c] : out.colMaxS[c];
    }
    out.rowMaxS[r] = rowMax;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = tile + r * ld;
    double rowSum = 0, positiveSum = 0;
    int64_t positives = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const float s = row[c];
      rowSum += expOrZero(p.temperature * (s - out.rowMaxS[r]));
      out.colSum[c] += expOrZero(p.temperature * (s - out.colMaxS[c]));
      if (softmaxPositive(p, r, c)) {
        positiveSum += s;
        ++positives;
        out.colPositiveSumS[c] += s;
        ++out.colPositives[c];
      }
    }
    out.rowSum[r] = rowSum;
    out.rowPositiveSumS[r] = positiveSum;
    out.rowPositives[r] = positives;
  }
}

double softmaxGradientEpilogueGeneric(float* tile, int64_t ld, int64_t rows, int64_t cols,
                                      const SoftmaxTileParams& p) {
  const float t = p.temperature, rowScale = float(p.rowScale), colScale = float(p.colScale);
  double hDotS = 0;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = tile + r * ld;
    for (int64_t c = 0; c < cols; ++c) {
      const float s = row[c];
      const float h = softmaxPositive(p, r, c)
                          ? float(p.positiveH(r, c, s))
                          : rowScale * expOrZero(t * (s - p.rowMaxS[r]) - p.rowLogSum[r]) +
                                colScale * expOrZero(t * (s - p.colMaxS[c]) - p.colLogSum[c]);
      hDotS += double(h * s);
      row[c] = t * h;
    }
  }
  return hDotS;
}

}  // namespace

const KernelSet& genericKernels() {
  static const KernelSet set{"generic", kMR, kNR, /*mc=*/128, /*kc=*/256, /*nc=*/2048, microKernel4x8};
  return set;
}

const EpilogueSet& genericEpilogues() {
  static const EpilogueSet set{"generic", sigmoidEpilogueGeneric, expInPlaceGeneric, softmaxStatsEpilogueGeneric,
                               softmaxGradientEpilogueGeneric};
  return set;
}

}  // namespace siglip::cpu
