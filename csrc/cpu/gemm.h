// A packed, cache-blocked single-precision GEMM in the BLIS style, on one kernel set's
// micro-kernel: C (m×n) = [C +] A (m×k) · B (k×n). A and B are strided views, so the
// fused loss multiplies X·Yᵀ, G·Y and Gᵀ·X without first copying any of them into a fixed
// layout; the packers read each layout once per block.
#pragma once
#include <cstdint>

#include "../core/matrix_view.h"
#include "aligned_buffer.h"
#include "cpu_kernels.h"

namespace siglip::cpu {

// Scratch for one thread's GEMMs: one packed block of A (mc×kc) and one of B (kc×nc).
struct GemmWorkspace {
  AlignedBuffer packedA;
  AlignedBuffer packedB;
  explicit GemmWorkspace(const KernelSet& kernels);
};

// One GEMM operand: a strided view, or (when `packed` is set) the same matrix already
// packed whole by packWholeA / packWholeB, so that an operand reused by many GEMMs (the
// fused loss's X_i, used by every tile of its row block) is packed once, not per call.
struct GemmOperand {
  StridedView view;
  const float* packed = nullptr;
};

// Floats needed to pack an m×k A operand (or a k×n B operand) whole.
int64_t packedSizeA(const KernelSet& kernels, int64_t m, int64_t k);
int64_t packedSizeB(const KernelSet& kernels, int64_t k, int64_t n);
void packWholeA(const KernelSet& kernels, StridedView a, int64_t m, int64_t k, float* out);
void packWholeB(const KernelSet& kernels, StridedView b, int64_t k, int64_t n, float* out);

// Single-threaded. `accumulate` adds to C instead of overwriting it.
void gemm(const KernelSet& kernels, int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b, float* c,
          int64_t ldc, bool accumulate, GemmWorkspace& workspace);

// Multi-threaded over blocks of C's rows (each block of mc rows is one task); every
// element of C is computed exactly as by gemm(), so results do not depend on `threads`.
void parallelGemm(const KernelSet& kernels, int64_t m, int64_t n, int64_t k, StridedView a, StridedView b, float* c,
                  int64_t ldc, bool accumulate, int threads);

}  // namespace siglip::cpu
