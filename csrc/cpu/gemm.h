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

// The text matrix Y (m×d, row-major) packed once per call, per column block of `blockRows`
// rows, in the layouts the tile loops read it in: Y_jᵀ as the B of X_i·Y_jᵀ (K = d) and, with
// `rowsToo`, Y_j as the B of G·Y_j (K = the block's rows). The tile loops otherwise pack them
// again for every tile (N/192 times per call). Packing is an exact copy with the blocking the
// GEMMs use anyway, so results are the same bits packed or not; it is skipped (operands fall
// back to strided views, packed per GEMM call) above kPrepackTextLimit bytes, or always under
// SIGLIP_PREPACK=off (for the checks). 64 MiB holds both float32 layouts up to M·D ≈ 8.4 M
// (N = 8192 at D = 768: 48 MiB, 4 % faster there than packing per tile; bench/NOTES.md), bf16's
// up to twice that; the copy is bounded, so memory stays flat as the batch grows.
bool prepackTextAllowed(int64_t bytes);
constexpr int64_t kPrepackTextLimit = int64_t(64) << 20;

class PackedText {
 public:
  PackedText(const KernelSet& kernels, const float* y, int64_t m, int64_t d, int64_t blockRows, bool rowsToo);
  bool enabled() const { return enabled_; }
  // Packs every block, split over `threads` pool workers (a no-op when not enabled).
  void packAll(int threads);
  GemmOperand transposed(int64_t j0);  // Y_jᵀ (j0 = jb · blockRows)
  GemmOperand rows(int64_t j0);        // Y_j

 private:
  const KernelSet& ks_;
  const float* y_;
  int64_t m_, d_, blockRows_;
  bool rowsToo_;
  int64_t sizeT_, sizeR_;
  bool enabled_ = false;
  AlignedBuffer transposed_, rows_;
};

// Single-threaded. `accumulate` adds to C instead of overwriting it.
void gemm(const KernelSet& kernels, int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b, float* c,
          int64_t ldc, bool accumulate, GemmWorkspace& workspace);

// Multi-threaded over blocks of C's rows (each block of mc rows is one task); every
// element of C is computed exactly as by gemm(), so results do not depend on `threads`.
void parallelGemm(const KernelSet& kernels, int64_t m, int64_t n, int64_t k, StridedView a, StridedView b, float* c,
                  int64_t ldc, bool accumulate, int threads);

}  // namespace siglip::cpu
