// A borrowed, row-major, contiguous float32 matrix: rows × cols values at `data`.
#pragma once
#include <cstdint>

namespace siglip {

struct MatrixView {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// A strided view used by the GEMM packers: element (r, c) is data[r * rowStride + c * colStride].
// It lets one GEMM driver read X, Yᵀ, G and Gᵀ without copying them into a fixed layout first.
struct StridedView {
  const float* data = nullptr;
  int64_t rowStride = 0;
  int64_t colStride = 0;
  const float* at(int64_t r, int64_t c) const { return data + r * rowStride + c * colStride; }
};

}  // namespace siglip
