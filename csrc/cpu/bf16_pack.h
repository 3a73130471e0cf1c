// The bf16 GEMM's packers (layout in gemm_bf16.h), written once over the packed element P
// (uint16_t bfloat16 bits in k pairs, G = 2, for the native kernel; float, G = 1, for the
// conversion path) and the source element S (float, rounded; or uint16_t bits, copied).
// Included by gemm_bf16.cpp (baseline flags) and kernels_avx512_bf16.cpp (AVX-512 flags):
// everything here has internal linkage, so the two compilations never merge.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "gemm_bf16.h"

namespace siglip::cpu {
namespace {

inline uint16_t bf16Bits(float v) { return roundToBf16(v); }
inline uint16_t bf16Bits(uint16_t v) { return v; }

template <class P>
inline P packedValue(uint16_t bits);
template <>
inline uint16_t packedValue<uint16_t>(uint16_t bits) {
  return bits;
}
template <>
inline float packedValue<float>(uint16_t bits) {
  return bf16ToFloat(bits);
}

// A: rows [0, m) × k [0, kc) into panels of mr rows (k-groups of G side by side per row).
template <class P, int G, class S>
void packATyped(int mr, const S* base, int64_t rs, int64_t cs, int64_t m, int64_t kc, P* out) {
  const int64_t kcp = (kc + G - 1) / G * G;
  for (int64_t p = 0; p < m; p += mr) {
    const int64_t rows = std::min<int64_t>(mr, m - p);
    P* panel = out + p * kcp;
    if (rows < mr) std::fill(panel, panel + mr * kcp, P(0));
    if (cs == 1) {  // each row contiguous in k (X, G)
      for (int64_t r = 0; r < rows; ++r) {
        const S* src = base + (p + r) * rs;
        for (int64_t k = 0; k < kc; ++k) panel[((k / G) * mr + r) * G + k % G] = packedValue<P>(bf16Bits(src[k]));
        for (int64_t k = kc; k < kcp; ++k) panel[((k / G) * mr + r) * G + k % G] = P(0);
      }
    } else {  // each k contiguous (or strided) across rows (Gᵀ)
      for (int64_t k = 0; k < kc; ++k) {
        const S* src = base + k * cs + p * rs;
        P* dst = panel + (k / G) * mr * G + k % G;
        for (int64_t r = 0; r < rows; ++r) dst[r * G] = packedValue<P>(bf16Bits(src[r * rs]));
      }
      for (int64_t k = kc; k < kcp; ++k)
        for (int64_t r = 0; r < rows; ++r) panel[((k / G) * mr + r) * G + k % G] = P(0);
    }
  }
}

// B: k [0, kc) × columns [0, n) into panels of nr columns (k-groups of G side by side per column).
template <class P, int G, class S>
void packBTyped(int nr, const S* base, int64_t rs, int64_t cs, int64_t kc, int64_t n, P* out) {
  const int64_t kcp = (kc + G - 1) / G * G;
  for (int64_t p = 0; p < n; p += nr) {
    const int64_t cols = std::min<int64_t>(nr, n - p);
    P* panel = out + p * kcp;
    if (cols < nr) std::fill(panel, panel + nr * kcp, P(0));
    if (cs == 1) {  // each k contiguous across columns (Y as the B of G·Y)
      for (int64_t k = 0; k < kc; ++k) {
        const S* src = base + k * rs + p;
        P* dst = panel + (k / G) * nr * G + k % G;
        for (int64_t c = 0; c < cols; ++c) dst[c * G] = packedValue<P>(bf16Bits(src[c]));
      }
    } else {  // each column contiguous (or strided) in k (Yᵀ as the B of X·Yᵀ)
      for (int64_t c = 0; c < cols; ++c) {
        const S* src = base + (p + c) * cs;
        for (int64_t k = 0; k < kc; ++k) panel[((k / G) * nr + c) * G + k % G] = packedValue<P>(bf16Bits(src[k * rs]));
      }
    }
    for (int64_t k = kc; k < kcp; ++k)
      for (int64_t c = 0; c < cols; ++c) panel[((k / G) * nr + c) * G + k % G] = P(0);
  }
}

template <class P, int G>
void packAAny(const Bf16Kernel& kn, SourceView a, int64_t m, int64_t kc, void* out) {
  if (a.type == Element::F32)
    packATyped<P, G>(kn.mr, static_cast<const float*>(a.data), a.rowStride, a.colStride, m, kc, static_cast<P*>(out));
  else
    packATyped<P, G>(kn.mr, static_cast<const uint16_t*>(a.data), a.rowStride, a.colStride, m, kc,
                     static_cast<P*>(out));
}

template <class P, int G>
void packBAny(const Bf16Kernel& kn, SourceView b, int64_t kc, int64_t n, void* out) {
  if (b.type == Element::F32)
    packBTyped<P, G>(kn.nr, static_cast<const float*>(b.data), b.rowStride, b.colStride, kc, n, static_cast<P*>(out));
  else
    packBTyped<P, G>(kn.nr, static_cast<const uint16_t*>(b.data), b.rowStride, b.colStride, kc, n,
                     static_cast<P*>(out));
}

}  // namespace
}  // namespace siglip::cpu
