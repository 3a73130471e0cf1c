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

}  // namespace

const KernelSet& genericKernels() {
  static const KernelSet set{"generic", kMR, kNR, /*mc=*/128, /*kc=*/256, /*nc=*/2048,
                             microKernel4x8, sigmoidEpilogueGeneric, expInPlaceGeneric};
  return set;
}

}  // namespace siglip::cpu
