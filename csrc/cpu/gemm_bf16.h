// The bfloat16 GEMM: C (m×n, float32) [+]= A (m×k) · B (k×n), with A and B rounded to
// bfloat16 (round to nearest, ties to even) as their blocks are packed, products summed in
// float32. Operands are strided views of float32 values (rounded when packed: `precision:
// 'bf16'`) or of bfloat16 bits (the Uint16Array inputs; packing only moves them).
//
// Two kernels behind one driver (the blocking of gemm.cpp):
//   - native: where the processor has AVX512_BF16, kernels_avx512_bf16.cpp packs k in pairs
//     (the two bf16 of a pair side by side, one 32-bit lane) and its micro-kernel issues
//     vdpbf16ps, two products per lane and instruction: twice an fp32 FMA's.
//   - convert: elsewhere, the packers widen the rounded values to float32 panels and the
//     fp32 kernel set's micro-kernel multiplies them (the same rounded inputs; correct, not fast).
// Either way every element of C is computed the same way whatever the thread count.
#pragma once
#include <cstdint>
#include <cstring>

#include "aligned_buffer.h"
#include "cpu_kernels.h"

namespace siglip::cpu {

enum class Element : uint8_t { F32, BF16 };

// Element (r, c) of a float32 or bfloat16 matrix: at data + (r·rowStride + c·colStride) elements.
struct SourceView {
  const void* data = nullptr;
  int64_t rowStride = 0;
  int64_t colStride = 0;
  Element type = Element::F32;
  SourceView offset(int64_t r, int64_t c) const {
    const int64_t e = r * rowStride + c * colStride;
    SourceView v = *this;
    v.data = type == Element::F32 ? static_cast<const void*>(static_cast<const float*>(data) + e)
                                  : static_cast<const void*>(static_cast<const uint16_t*>(data) + e);
    return v;
  }
};

// float32 → bfloat16 bits, round to nearest, ties to even (as lib/half.ts's toBFloat16);
// NaN stays a quiet NaN. The inputs here are finite (validated), the NaN branch is for safety.
// Static: included by files built with different instruction sets, whose copies must not merge.
static inline uint16_t roundToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x0040u);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
static inline float bf16ToFloat(uint16_t b) {
  const uint32_t x = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

// One bf16 GEMM kernel. Packed panels hold `group` consecutive k values per row (A) or column
// (B) side by side: A panel p holds A[p·MR + r][q·group + e] at ((q·MR + r)·group + e), B panel
// p holds B[q·group + e][p·NR + c] at ((q·NR + c)·group + e); k is zero-padded to a multiple of
// `group`. Native: group 2, uint16 elements; convert: group 1, float elements.
struct Bf16Kernel {
  const char* name;
  int mr, nr, mc, kc, nc;  // kc is even
  int group;
  int elementBytes;
  // Pack rows [0, m) × columns [0, kc) of A (or [0, kc) × [0, n) of B) into `out`.
  void (*packA)(const Bf16Kernel& kernel, SourceView a, int64_t m, int64_t kc, void* out);
  void (*packB)(const Bf16Kernel& kernel, SourceView b, int64_t kc, int64_t n, void* out);
  // C[MR×NR] = (accumulate ? C : 0) + the k-sum over kc (padded) k values of one A and one B panel.
  void (*microKernel)(const Bf16Kernel& kernel, int64_t kcPadded, const void* a, const void* b, float* c,
                      int64_t ldc, bool accumulate);
  const KernelSet* fp32;  // convert: the set whose micro-kernel runs; native: null
};

// The native kernel (kernels_avx512_bf16.cpp): only when the processor has AVX512_BF16.
#if defined(SIGLIP_HAVE_X86_KERNELS)
const Bf16Kernel& avx512Bf16Kernel();
#endif
// The conversion kernel on an fp32 kernel set.
const Bf16Kernel& convertBf16Kernel(const KernelSet& fp32);

// The kernel in use, chosen once: native where AVX512_BF16 is usable and the fp32 set in use
// is AVX-512, unless SIGLIP_BF16=convert asks for the conversion path; and why.
const Bf16Kernel& activeBf16Kernel();
const char* activeBf16Reason();

struct Bf16Operand {
  SourceView view;
  const void* packed = nullptr;  // packed whole by bf16PackWholeA/B, or null
};

struct Bf16Workspace {
  AlignedBuffer packedA;
  AlignedBuffer packedB;
  explicit Bf16Workspace(const Bf16Kernel& kernel);
};

// Buffer sizes (in floats, for AlignedBuffer) to pack an m×k A or a k×n B operand whole.
int64_t bf16PackedSizeA(const Bf16Kernel& kernel, int64_t m, int64_t k);
int64_t bf16PackedSizeB(const Bf16Kernel& kernel, int64_t k, int64_t n);
void bf16PackWholeA(const Bf16Kernel& kernel, SourceView a, int64_t m, int64_t k, void* out);
void bf16PackWholeB(const Bf16Kernel& kernel, SourceView b, int64_t k, int64_t n, void* out);

// Single-threaded; `accumulate` adds to C.
void bf16Gemm(const Bf16Kernel& kernel, int64_t m, int64_t n, int64_t k, Bf16Operand a, Bf16Operand b, float* c,
              int64_t ldc, bool accumulate, Bf16Workspace& workspace);

// Multi-threaded over blocks of C's rows, the same bits as bf16Gemm for any `threads`.
void bf16ParallelGemm(const Bf16Kernel& kernel, int64_t m, int64_t n, int64_t k, SourceView a, SourceView b,
                      float* c, int64_t ldc, bool accumulate, int threads);

}  // namespace siglip::cpu
