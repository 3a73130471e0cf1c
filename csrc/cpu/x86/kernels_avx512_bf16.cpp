// The native bf16 kernel (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16; only
// called after dispatch.cpp has seen AVX512_BF16 and the OS's AVX-512 state).
// Micro-kernel: 12×32 of C in 24 zmm accumulators, as the fp32 one, but each step takes a
// pair of k: two zmm of the packed B panel (32 columns × 2 k as bf16) and 12 broadcast pairs
// of A, 24 vdpbf16ps of 32 products each: twice the products of the fp32 kernel per
// instruction. vdpbf16ps sums each lane's two products into the float32 accumulator with
// round-to-nearest-even, denormal inputs and outputs as zero (fixed by the instruction, not
// by MXCSR), so results are the same for any thread count.
#include <immintrin.h>

#include <algorithm>

#include "avx512_tile.h"
#include "../bf16_pack.h"
#include "../gemm_bf16.h"

namespace siglip::cpu {
namespace {

using avx512::kMR;
using avx512::kNR;

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
  avx512::storeTile(acc, c, ldc, accumulate);
}

// float32 → bf16 with vcvtne2ps2bf16: round to nearest even, as roundToBf16 (both operand
// orders documented: the low half of the result holds `lo`).
inline __m512i toBf16Pairs(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

// A from float32 rows contiguous in k (the tiles of t·G of G·Y_j, and float32 X_i): per panel
// of 12 rows and 32 k, each row's 32 floats become 16 bf16 pairs in one instruction; the
// 12 × 16 pairs are then written pair-major (the panel's order). Ragged panels and the k
// tail go through the portable packer, which rounds identically.
void packAFloatRows(const Bf16Kernel& kn, const float* base, int64_t rs, int64_t m, int64_t kc, uint16_t* out) {
  const int64_t kcp = (kc + 1) / 2 * 2;
  const int64_t kVector = kc / 32 * 32;
  int64_t p = 0;
  for (; p + kMR <= m; p += kMR) {
    uint32_t* panel = reinterpret_cast<uint32_t*>(out + p * kcp);
    alignas(64) uint32_t pairs[kMR][16];
    for (int64_t k0 = 0; k0 < kVector; k0 += 32) {
      for (int r = 0; r < kMR; ++r) {
        const float* src = base + (p + r) * rs + k0;
        _mm512_store_si512(pairs[r], toBf16Pairs(_mm512_loadu_ps(src), _mm512_loadu_ps(src + 16)));
      }
      uint32_t* dst = panel + (k0 / 2) * kMR;
      for (int q = 0; q < 16; ++q)
        for (int r = 0; r < kMR; ++r) dst[q * kMR + r] = pairs[r][q];
    }
    for (int r = 0; r < kMR; ++r) {
      const float* src = base + (p + r) * rs;
      uint16_t* dst = out + p * kcp;
      for (int64_t k = kVector; k < kc; ++k) dst[((k / 2) * kMR + r) * 2 + k % 2] = roundToBf16(src[k]);
      for (int64_t k = kc; k < kcp; ++k) dst[((k / 2) * kMR + r) * 2 + k % 2] = 0;
    }
  }
  if (p < m) packATyped<uint16_t, 2>(kMR, base + p * rs, rs, int64_t(1), m - p, kc, out + p * kcp);
  (void)kn;
}

// A from float32 contiguous across rows (the tiles' Gᵀ as the A of Gᵀ·X_i): for each pair of k,
// two rows of 12 floats, rounded together and interleaved (vpermw) into 12 pairs.
void packAFloatColumns(const Bf16Kernel& kn, const float* base, int64_t cs, int64_t m, int64_t kc, uint16_t* out) {
  const int64_t kcp = (kc + 1) / 2 * 2;
  alignas(64) uint16_t order[32];
  for (int i = 0; i < 16; ++i) order[2 * i] = uint16_t(i), order[2 * i + 1] = uint16_t(16 + i);
  const __m512i interleave = _mm512_load_si512(order);
  for (int64_t p = 0; p < m; p += kMR) {
    const int rows = int(std::min<int64_t>(kMR, m - p));
    const __mmask16 valid = __mmask16((1u << rows) - 1u);
    uint32_t* panel = reinterpret_cast<uint32_t*>(out + p * kcp);
    int64_t q = 0;
    for (; 2 * q + 1 < kc; ++q) {
      const __m512 k0 = _mm512_maskz_loadu_ps(valid, base + (2 * q) * cs + p);
      const __m512 k1 = _mm512_maskz_loadu_ps(valid, base + (2 * q + 1) * cs + p);
      const __m512i pairs = _mm512_permutexvar_epi16(interleave, toBf16Pairs(k0, k1));
      _mm512_mask_storeu_epi32(panel + q * kMR, __mmask16(0x0fff), pairs);
    }
    if (2 * q < kc) {  // odd kc: the last pair is (k, 0)
      const __m512 k0 = _mm512_maskz_loadu_ps(valid, base + (2 * q) * cs + p);
      const __m512i pairs = _mm512_permutexvar_epi16(interleave, toBf16Pairs(k0, _mm512_setzero_ps()));
      _mm512_mask_storeu_epi32(panel + q * kMR, __mmask16(0x0fff), pairs);
    }
  }
  (void)kn;
}

void packANative(const Bf16Kernel& kn, SourceView a, int64_t m, int64_t kc, void* out) {
  uint16_t* dst = static_cast<uint16_t*>(out);
  if (a.type == Element::F32 && a.colStride == 1)
    return packAFloatRows(kn, static_cast<const float*>(a.data), a.rowStride, m, kc, dst);
  if (a.type == Element::F32 && a.rowStride == 1)
    return packAFloatColumns(kn, static_cast<const float*>(a.data), a.colStride, m, kc, dst);
  packAAny<uint16_t, 2>(kn, a, m, kc, out);
}

}  // namespace

// Blocking as the fp32 AVX-512 set (kc = 768: D = 768 in one k block); a packed A block of
// 288 × 768 bf16 is 432 KiB, half the fp32 one.
const Bf16Kernel& avx512Bf16Kernel() {
  static const Bf16Kernel kernel{"avx512_bf16",   kMR, kNR, /*mc=*/288, /*kc=*/768, /*nc=*/3072,
                                 /*group=*/2,     /*elementBytes=*/2,
                                 packANative,     packBAny<uint16_t, 2>, microKernelBf16, nullptr};
  return kernel;
}

}  // namespace siglip::cpu
