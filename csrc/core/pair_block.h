// The block contract: the one unit of work that crosses from the ring (or a whole-batch loss
// call) to a backend. A PairBlock is images X (rows at global index imageOffset…) against a
// block of texts Y (at textOffset…), with positives by ids or, without them, where the global
// indices are equal; a backend computes its PairSums and, when asked, *adds* the block's share
// of the gradients. The CPU (csrc/cpu) and the CUDA backend (csrc/cuda) both take it; neither
// the ring nor this header knows how.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "host_device.h"
#include "loss_request.h"
#include "matrix_view.h"

namespace siglip {

// The element type of image and text data. Float32 everywhere; the 16-bit types on CUDA.
enum class DType { Float32, BFloat16, Float16 };
inline size_t dtypeSize(DType dtype) { return dtype == DType::Float32 ? 4 : 2; }
inline const char* dtypeName(DType dtype) {
  return dtype == DType::Float32 ? "float32" : dtype == DType::BFloat16 ? "bfloat16" : "float16";
}

// How the GEMMs multiply: FP32 exact float32 (CPU default; CUDA SIMT), TF32 tensor cores
// (CUDA default for float32; 16-bit inputs always use tensor cores), BF16 inputs rounded to
// bfloat16 with float32 sums (the CPU's bf16 kernel). A backend refuses the ones it lacks.
enum class Precision { FP32, TF32, BF16 };

// Where a matrix's memory is: the host, or a CUDA device ordinal (0, 1, …).
constexpr int kHostMemory = -1;

// A borrowed, row-major, contiguous matrix of `dtype` in host or device memory.
struct BlockMatrix {
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  DType dtype = DType::Float32;
  int device = kHostMemory;
  // A host float32 matrix.
  static BlockMatrix host(const MatrixView& m) { return BlockMatrix{m.data, m.rows, m.cols, DType::Float32, kHostMemory}; }
  // This matrix as a host float32 view (the caller has checked dtype and device).
  MatrixView hostView() const { return MatrixView{static_cast<const float*>(data), rows, cols}; }
};

struct PairBlock {
  BlockMatrix image;                  // n × D
  BlockMatrix text;                   // m × D: the same dtype, device and D
  const int32_t* imageIds = nullptr;  // n ids, or null; in the data's memory
  const int32_t* textIds = nullptr;   // m ids; given together with imageIds or not at all
  int64_t imageOffset = 0;            // global index of image row 0
  int64_t textOffset = 0;             // global index of text row 0
  double temperature = 1;             // t = exp(logitScale)
  double bias = 0;                    // b
  double normalizer = 1;              // N, the number of image rows of the whole batch
  Precision precision = Precision::FP32;
  // Where the gradients go: when dImage is given, the backend *adds* (t/N)·G·Y to dImage
  // (n × D float32) and (t/N)·Gᵀ·X to dText (m × D), in the data's memory. Both or neither.
  float* dImage = nullptr;
  float* dText = nullptr;
  // CPU only: worker threads (results do not depend on them), and with Precision::BF16 the
  // inputs as bfloat16 bits where given (image / text then only give the shapes).
  int threads = 1;
  const uint16_t* imageBf16 = nullptr;
  const uint16_t* textBf16 = nullptr;

  bool wantsGradients() const { return dImage != nullptr; }
};

// A whole batch as one block: offsets 0, t = exp(logitScale), normaliser N = image.rows.
inline PairBlock wholeBatchBlock(const BlockMatrix& image, const BlockMatrix& text, const int32_t* imageIds,
                                 const int32_t* textIds, double logitScale, double logitBias) {
  PairBlock block;
  block.image = image;
  block.text = text;
  block.imageIds = imageIds;
  block.textIds = textIds;
  block.temperature = std::exp(logitScale);
  block.bias = logitBias;
  block.normalizer = double(image.rows);
  return block;
}

// Float64 sums over a block's pairs (or a tile's, or a thread's): with u = z·(t·S + b),
//   softplus  = Σ softplus(-u)            (N · loss contribution)
//   dLogit    = Σ -z·σ(-u)                (N · ∂L/∂b contribution)
//   dLogitSim = Σ -z·σ(-u) · S            (N/t · ∂L/∂s contribution)
// The softmax's CUDA pass reuses the three slots (dLogitSim = Σ H·S there).
struct PairSums {
  double softplus = 0;
  double dLogit = 0;
  double dLogitSim = 0;
  SIGLIP_HOST_DEVICE void add(const PairSums& o) {
    softplus += o.softplus;
    dLogit += o.dLogit;
    dLogitSim += o.dLogitSim;
  }
};

// The loss, ∂L/∂s and ∂L/∂b from the sums over all pairs (sigmoidLossFromSums): what every
// backend and the ring end with.
inline LossResult sigmoidResultFromSums(const PairSums& sums, double temperature, double normalizer,
                                        bool withGradients) {
  return sigmoidLossFromSums(sums.softplus, sums.dLogit, sums.dLogitSim, temperature, normalizer, withGradients);
}

}  // namespace siglip
