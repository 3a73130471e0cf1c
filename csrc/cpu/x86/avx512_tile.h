// The 12×32 register tile both AVX-512 micro-kernels keep C in (kernels_avx512.cpp: fp32 FMA;
// kernels_avx512_bf16.cpp: vdpbf16ps): 24 zmm accumulators, two per row. Included only by
// files compiled with AVX-512 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace siglip::cpu::avx512 {

constexpr int kMR = 12;
constexpr int kNR = 32;

// C (kMR × kNR at `c`, row stride `ldc`) = the accumulators, or C + them when `accumulate`.
inline void storeTile(__m512 (&acc)[kMR][2], float* c, int64_t ldc, bool accumulate) {
  for (int r = 0; r < kMR; ++r) {
    float* row = c + r * ldc;
    if (accumulate) {
      acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(row));
      acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, acc[r][0]);
    _mm512_storeu_ps(row + 16, acc[r][1]);
  }
}

}  // namespace siglip::cpu::avx512
