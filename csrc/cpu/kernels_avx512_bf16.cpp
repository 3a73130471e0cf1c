// The native bf16 kernel (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16; only
// called after dispatch.cpp has seen AVX512_BF16 and the OS's AVX-512 state).
// Micro-kernel: 12×32 of C in 24 zmm accumulators, as the fp32 one, but each step takes a
// pair of k: two zmm of the packed B panel (32 columns × 2 k as bf16) and 12 broadcast pairs
// of A, 24 vdpbf16ps of 32 products each: twice the products of the fp32 kernel per
// instruction. vdpbf16ps sums each lane's two products into the float32 accumulator with
// round-to-nearest-even, denormal inputs and outputs as zero (fixed by the instruction, not
// by MXCSR), so results are the same for any thread count.
#include <immintrin.h>

#include "bf16_pack.h"
#include "gemm_bf16.h"

namespace siglip::cpu {
namespace {

constexpr int kMR = 12;
constexpr int kNR = 32;

void microKernelBf16(const Bf16Kernel&, int64_t kcPadded, const void* aPanel, const void* bPanel, float* c,
                     int64_t ldc, bool accumulate) {
  const int32_t* a = static_cast<const int32_t*>(aPanel);  // one bf16 pair per int32
  const __m512i* b = static_cast<const __m512i*>(bPanel);
  __m512 acc[kMR][2];
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < kcPadded / 2; ++q) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 1);
#pragma GCC unroll 12
    for (int r = 0; r < kMR; ++r) {
      const __m512bh ar = (__m512bh)_mm512_set1_epi32(a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
    }
    a += kMR;
    b += 2;
  }
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

}  // namespace

// Blocking as the fp32 AVX-512 set (kc = 768: D = 768 in one k block); a packed A block of
// 288 × 768 bf16 is 432 KiB, half the fp32 one.
const Bf16Kernel& avx512Bf16Kernel() {
  static const Bf16Kernel kernel{"avx512_bf16",   kMR, kNR, /*mc=*/288, /*kc=*/768, /*nc=*/3072,
                                 /*group=*/2,     /*elementBytes=*/2,
                                 packAAny<uint16_t, 2>, packBAny<uint16_t, 2>, microKernelBf16, nullptr};
  return kernel;
}

}  // namespace siglip::cpu
