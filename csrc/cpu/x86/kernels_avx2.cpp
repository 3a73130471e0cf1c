// AVX2 + FMA kernel set (compiled with -mavx2 -mfma; only called after dispatch.cpp has
// seen the processor and the OS support it). Micro-kernel: a 6×16 block of C in 12 ymm
// accumulators, two ymm loads of B and six broadcasts of A per k step.
#include <immintrin.h>

#include <algorithm>

#include "../cpu_kernels.h"
#include "../simd_epilogue.h"

namespace siglip::cpu {
namespace {

struct Avx2 {
  using F = __m256;
  using I = __m256i;
  using M = __m256;  // lane masks as all-ones / all-zeros floats
  static constexpr int W = 8;
  struct DoubleSum {
    __m256d lo = _mm256_setzero_pd();
    __m256d hi = _mm256_setzero_pd();
  };

  static __m256i lanesBelow(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F loadN(const float* p, int n) { return _mm256_maskload_ps(p, lanesBelow(n)); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void storeN(float* p, F v, int n) { _mm256_maskstore_ps(p, lanesBelow(n), v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static F roundNearest(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // p · 2^n for integral n ≥ -126 (expNonPositive clamps its input so that holds).
  static F scaleByPow2(F p, F n) {
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  }
  static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  static M greaterEqual(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M firstN(int n) { return _mm256_castsi256_ps(lanesBelow(n)); }
  static M laneMask(int lane) {
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_set1_epi32(lane), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  }
  static I set1Int(int32_t v) { return _mm256_set1_epi32(v); }
  static I loadIntN(const int32_t* p, int n) { return _mm256_maskload_epi32(p, lanesBelow(n)); }
  static M equalInts(I a, I b) { return _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)); }
  static void accumulate(DoubleSum& s, F v) {
    s.lo = _mm256_add_pd(s.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    s.hi = _mm256_add_pd(s.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  static double reduce(const DoubleSum& s) {
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, _mm256_add_pd(s.lo, s.hi));
    return ((lanes[0] + lanes[1]) + lanes[2]) + lanes[3];  // fixed order: reproducible
  }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static unsigned bits(M m) { return unsigned(_mm256_movemask_ps(m)); }
  static void addToDoubles(double* p, F v) {
    _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(p + 4, _mm256_add_pd(_mm256_loadu_pd(p + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
  }
};

constexpr int kMR = 6;
constexpr int kNR = 16;

// The accumulators are named variables, not an array: with an array GCC 12 kept a copy of
// it on the stack and stored ten of them every k step, which halved the kernel's speed.
void microKernel6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    __m256 ar = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(ar, b0, c00), c01 = _mm256_fmadd_ps(ar, b1, c01);
    ar = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(ar, b0, c10), c11 = _mm256_fmadd_ps(ar, b1, c11);
    ar = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(ar, b0, c20), c21 = _mm256_fmadd_ps(ar, b1, c21);
    ar = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(ar, b0, c30), c31 = _mm256_fmadd_ps(ar, b1, c31);
    ar = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(ar, b0, c40), c41 = _mm256_fmadd_ps(ar, b1, c41);
    ar = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(ar, b0, c50), c51 = _mm256_fmadd_ps(ar, b1, c51);
    a += kMR;
    b += kNR;
  }
  const __m256 rows[kMR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int r = 0; r < kMR; ++r) {
    float* row = c + r * ldc;
    __m256 v0 = rows[r][0], v1 = rows[r][1];
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, v0);
    _mm256_storeu_ps(row + 8, v1);
  }
}

}  // namespace

// kc = 768 (as AVX-512): at D = 768 a large GEMM reads and writes its C block once instead of
// three times. Measured on Zen 4 (bench/NOTES.md, 2026-12-05): 4096² × 768 GEMMs 15–20 % faster
// than with kc = 256, level with OpenBLAS's Haswell kernel. The packed A block (mc × kc floats)
// should stay in L2, and AVX2-only processors have 256 KiB to 1 MiB+ of it, so mc is taken
// from the L2 size (half of it for A; 144 rows = 432 KiB where L2 is 1 MiB). mc does not
// change any result (the k blocking alone fixes each element's sum order).
int avx2RowBlock() {
  constexpr int kMaxRows = 144, kMinRows = 4 * kMR, kc = 768;
  const int64_t l2 = l2CacheBytes();
  if (l2 <= 0) return kMaxRows;
  const int64_t rows = l2 / 2 / (kc * int64_t(sizeof(float))) / kMR * kMR;
  return int(std::max<int64_t>(kMinRows, std::min<int64_t>(kMaxRows, rows)));
}

const KernelSet& avx2Kernels() {
  static const KernelSet set{"avx2", kMR, kNR, /*mc=*/avx2RowBlock(), /*kc=*/768, /*nc=*/3072, microKernel6x16};
  return set;
}

const EpilogueSet& avx2Epilogues() {
  static const EpilogueSet set{"avx2", simd::sigmoidEpilogue<Avx2>, simd::expInPlace<Avx2>,
                               simd::softmaxStatsEpilogue<Avx2>, simd::softmaxGradientEpilogue<Avx2>};
  return set;
}

}  // namespace siglip::cpu
