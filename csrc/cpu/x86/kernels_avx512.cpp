// AVX-512 kernel set (compiled with -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma;
// only called after dispatch.cpp has seen the processor and the OS support it).
// Micro-kernel: a 12×32 block of C in 24 zmm accumulators; each k step loads two zmm of
// the packed B panel and broadcasts 12 values of the packed A panel: 24 FMAs per 14
// loads, which keeps both FMA pipes of a Zen 4/5 or Skylake-X core busy.
#include <immintrin.h>

#include "avx512_tile.h"
#include "../cpu_kernels.h"
#include "../simd_epilogue.h"

namespace siglip::cpu {
namespace {

struct Avx512 {
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  static constexpr int W = 16;
  struct DoubleSum {
    __m512d lo = _mm512_setzero_pd();
    __m512d hi = _mm512_setzero_pd();
  };

  static F set1(float v) { return _mm512_set1_ps(v); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F loadN(const float* p, int n) { return _mm512_maskz_loadu_ps(firstN(n), p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void storeN(float* p, F v, int n) { _mm512_mask_storeu_ps(p, firstN(n), v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F abs(F a) { return _mm512_abs_ps(a); }
  static F neg(F a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
  static F roundNearest(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F scaleByPow2(F p, F n) { return _mm512_scalef_ps(p, n); }
  static F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
  static M greaterEqual(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M firstN(int n) { return M((1u << n) - 1u); }
  static M laneMask(int lane) { return lane < 0 ? M(0) : M(1u << lane); }
  static I set1Int(int32_t v) { return _mm512_set1_epi32(v); }
  static I loadIntN(const int32_t* p, int n) { return _mm512_maskz_loadu_epi32(firstN(n), p); }
  static M equalInts(I a, I b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static void accumulate(DoubleSum& s, F v) {
    s.lo = _mm512_add_pd(s.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s.hi = _mm512_add_pd(s.hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  static double reduce(const DoubleSum& s) {
    alignas(64) double lanes[8];
    _mm512_store_pd(lanes, _mm512_add_pd(s.lo, s.hi));
    double total = 0;
    for (double lane : lanes) total += lane;  // fixed order: reproducible
    return total;
  }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static unsigned bits(M m) { return unsigned(m); }
  static void addToDoubles(double* p, F v) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), _mm512_cvtps_pd(_mm512_castps512_ps256(v))));
    _mm512_storeu_pd(p + 8, _mm512_add_pd(_mm512_loadu_pd(p + 8), _mm512_cvtps_pd(hi)));
  }
};

using avx512::kMR;
using avx512::kNR;

void microKernel12x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  __m512 acc[kMR][2];
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < kMR; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += kMR;
    b += kNR;
  }
  avx512::storeTile(acc, c, ldc, accumulate);
}

}  // namespace

// kc = 768: a whole D = 768 in one k block, so a large GEMM reads and writes its C block once
// instead of three times (C blocks of mc × nc floats, 3.5 MB, live beyond L2). The packed A
// block (288 × 768 floats, 864 KiB) still fits a 1 MiB L2. Measured on Zen 4 (bench/NOTES.md):
// 4096² GEMMs at K = 768 and 1152 ran 10–13 % faster than with kc = 256; the fused loss, whose
// 192² tiles keep C in L2, did not change.
const KernelSet& avx512Kernels() {
  static const KernelSet set{"avx512", kMR, kNR, /*mc=*/288, /*kc=*/768, /*nc=*/3072, microKernel12x32};
  return set;
}

const EpilogueSet& avx512Epilogues() {
  static const EpilogueSet set{"avx512", simd::sigmoidEpilogue<Avx512>, simd::expInPlace<Avx512>,
                               simd::softmaxStatsEpilogue<Avx512>, simd::softmaxGradientEpilogue<Avx512>};
  return set;
}

}  // namespace siglip::cpu
