// __half and __nv_bfloat16 for the CUDA emulation: storage types whose conversions from float
// round to nearest, ties to even (as __float2half / __float2bfloat16 do), with NaN kept NaN.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace siglip_emu {

inline uint16_t floatToHalfBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return uint16_t(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // ≥ 65520 rounds to infinity
  if (ax < 0x38800000u) {                                   // below 2^-14: subnormal (units of 2^-24)
    float v;
    std::memcpy(&v, &ax, 4);
    return uint16_t(sign | uint32_t(std::nearbyint(v * 16777216.0f)));  // exact scaling, then RNE
  }
  const uint32_t mant = ax & 0x7fffffu;
  uint32_t h = ((((ax >> 23) - 127 + 15)) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return uint16_t(sign | h);
}

inline float halfBitsToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  float out;
  if (e == 0) {
    out = std::ldexp(float(m), -24);
    return sign ? -out : out;
  }
  const uint32_t bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e - 15 + 127) << 23) | (m << 13));
  std::memcpy(&out, &bits, 4);
  return out;
}

inline uint16_t floatToBf16Bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return uint16_t(x >> 16);
}
inline float bf16BitsToFloat(uint16_t b) {
  const uint32_t x = uint32_t(b) << 16;
  float out;
  std::memcpy(&out, &x, 4);
  return out;
}

}  // namespace siglip_emu

struct __half {
  uint16_t bits_;
  __half() = default;
  __half(float f) : bits_(::siglip_emu::floatToHalfBits(f)) {}
  __half(double f) : bits_(::siglip_emu::floatToHalfBits(float(f))) {}
  __half(int f) : bits_(::siglip_emu::floatToHalfBits(float(f))) {}
  operator float() const { return ::siglip_emu::halfBitsToFloat(bits_); }
};
struct __nv_bfloat16 {
  uint16_t bits_;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : bits_(::siglip_emu::floatToBf16Bits(f)) {}
  __nv_bfloat16(double f) : bits_(::siglip_emu::floatToBf16Bits(float(f))) {}
  __nv_bfloat16(int f) : bits_(::siglip_emu::floatToBf16Bits(float(f))) {}
  operator float() const { return ::siglip_emu::bf16BitsToFloat(bits_); }
};
static_assert(sizeof(__half) == 2 && sizeof(__nv_bfloat16) == 2, "16-bit storage");
using half = __half;

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
