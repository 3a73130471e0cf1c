// NEON (Advanced SIMD) kernel set for AArch64, where NEON is part of the base architecture:
// no run-time check is needed, dispatch.cpp picks it unless SIGLIP_SIMD=generic. The whole
// file compiles to nothing elsewhere (binding.gyp and CMakeLists.txt list every csrc/cpu file).
//
// Micro-kernel: an 8×12 block of C in 24 q-register accumulators; per k step two loads of A
// (8 floats), three of B (12 floats) and 24 fused multiply-adds by lane (fmla v.4s, v.4s,
// v.s[lane]), 29 of the 32 vector registers. The epilogues are simd_epilogue.h's, over the
// 4-lane traits below.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "../cpu_kernels.h"
#include "../simd_epilogue.h"

namespace siglip::cpu {
namespace {

struct Neon {
  using F = float32x4_t;
  using I = int32x4_t;
  using M = uint32x4_t;  // lane masks, all-ones / all-zeros
  static constexpr int W = 4;
  struct DoubleSum {
    float64x2_t lo = vdupq_n_f64(0.0);
    float64x2_t hi = vdupq_n_f64(0.0);
  };

  static int32x4_t laneIndex() {
    const int32_t lanes[4] = {0, 1, 2, 3};
    return vld1q_s32(lanes);
  }
  static M lanesBelow(int n) { return vcltq_s32(laneIndex(), vdupq_n_s32(n)); }
  static F set1(float v) { return vdupq_n_f32(v); }
  static F load(const float* p) { return vld1q_f32(p); }
  static F loadN(const float* p, int n) {
    float lanes[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; ++i) lanes[i] = p[i];
    return vld1q_f32(lanes);
  }
  static void store(float* p, F v) { vst1q_f32(p, v); }
  static void storeN(float* p, F v, int n) {
    float lanes[4];
    vst1q_f32(lanes, v);
    for (int i = 0; i < n; ++i) p[i] = lanes[i];
  }
  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F sub(F a, F b) { return vsubq_f32(a, b); }
  static F mul(F a, F b) { return vmulq_f32(a, b); }
  static F div(F a, F b) { return vdivq_f32(a, b); }
  static F fmadd(F a, F b, F c) { return vfmaq_f32(c, a, b); }  // a·b + c, one rounding
  // As x86's maxps: b when either is NaN (expNonPositive relies on max(NaN, floor) = floor).
  static F max(F a, F b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
  static F abs(F a) { return vabsq_f32(a); }
  static F neg(F a) { return vnegq_f32(a); }
  static F roundNearest(F a) { return vrndnq_f32(a); }  // ties to even, as _MM_FROUND_TO_NEAREST_INT
  // p · 2^n for integral n ≥ -126 (expNonPositive clamps its input so that holds).
  static F scaleByPow2(F p, F n) {
    const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(bits));
  }
  static F select(M m, F a, F b) { return vbslq_f32(m, a, b); }
  static M greaterEqual(F a, F b) { return vcgeq_f32(a, b); }
  static M firstN(int n) { return lanesBelow(n); }
  static M laneMask(int lane) { return vceqq_s32(laneIndex(), vdupq_n_s32(lane)); }
  static I set1Int(int32_t v) { return vdupq_n_s32(v); }
  static I loadIntN(const int32_t* p, int n) {
    int32_t lanes[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; ++i) lanes[i] = p[i];
    return vld1q_s32(lanes);
  }
  static M equalInts(I a, I b) { return vceqq_s32(a, b); }
  static void accumulate(DoubleSum& s, F v) {
    s.lo = vaddq_f64(s.lo, vcvt_f64_f32(vget_low_f32(v)));
    s.hi = vaddq_f64(s.hi, vcvt_high_f64_f32(v));
  }
  static double reduce(const DoubleSum& s) {
    const float64x2_t t = vaddq_f64(s.lo, s.hi);
    return vgetq_lane_f64(t, 0) + vgetq_lane_f64(t, 1);  // fixed order: reproducible
  }
  static unsigned bits(M m) {
    const uint32_t weights[4] = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(m, vld1q_u32(weights)));
  }
  static void addToDoubles(double* p, F v) {
    vst1q_f64(p, vaddq_f64(vld1q_f64(p), vcvt_f64_f32(vget_low_f32(v))));
    vst1q_f64(p + 2, vaddq_f64(vld1q_f64(p + 2), vcvt_high_f64_f32(v)));
  }
};

constexpr int kMR = 8;
constexpr int kNR = 12;

// Named accumulators (no array), as in the x86 kernels: GCC keeps them in registers.
#define SIGLIP_NEON_ROW(r, av, lane)              \
  c##r##0 = vfmaq_laneq_f32(c##r##0, b0, av, lane); \
  c##r##1 = vfmaq_laneq_f32(c##r##1, b1, av, lane); \
  c##r##2 = vfmaq_laneq_f32(c##r##2, b2, av, lane)

void microKernel8x12(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  const float32x4_t z = vdupq_n_f32(0.0f);
  float32x4_t c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z, c22 = z, c30 = z, c31 = z, c32 = z;
  float32x4_t c40 = z, c41 = z, c42 = z, c50 = z, c51 = z, c52 = z, c60 = z, c61 = z, c62 = z, c70 = z, c71 = z, c72 = z;
  for (int64_t k = 0; k < kc; ++k) {
    const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
    SIGLIP_NEON_ROW(0, a0, 0);
    SIGLIP_NEON_ROW(1, a0, 1);
    SIGLIP_NEON_ROW(2, a0, 2);
    SIGLIP_NEON_ROW(3, a0, 3);
    SIGLIP_NEON_ROW(4, a1, 0);
    SIGLIP_NEON_ROW(5, a1, 1);
    SIGLIP_NEON_ROW(6, a1, 2);
    SIGLIP_NEON_ROW(7, a1, 3);
    a += kMR;
    b += kNR;
  }
  const float32x4_t rows[kMR][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32},
                                    {c40, c41, c42}, {c50, c51, c52}, {c60, c61, c62}, {c70, c71, c72}};
  for (int r = 0; r < kMR; ++r) {
    float* row = c + r * ldc;
    for (int q = 0; q < 3; ++q) {
      float32x4_t v = rows[r][q];
      if (accumulate) v = vaddq_f32(v, vld1q_f32(row + 4 * q));
      vst1q_f32(row + 4 * q, v);
    }
  }
}
#undef SIGLIP_NEON_ROW

}  // namespace

// kc = 768 as on x86 (one pass over C at D = 768); mc = 128 rows keeps the packed A block
// (384 KiB) in the 1 MiB L2 of Neoverse N1/V1-class cores; nc a multiple of 12.
const KernelSet& neonKernels() {
  static const KernelSet set{"neon", kMR, kNR, /*mc=*/128, /*kc=*/768, /*nc=*/3072, microKernel8x12};
  return set;
}

const EpilogueSet& neonEpilogues() {
  static const EpilogueSet set{"neon", simd::sigmoidEpilogue<Neon>, simd::expInPlace<Neon>,
                               simd::softmaxStatsEpilogue<Neon>, simd::softmaxGradientEpilogue<Neon>};
  return set;
}

}  // namespace siglip::cpu
#endif  // __aarch64__
