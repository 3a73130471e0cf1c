// The CPU's side of the block contract (core/block_backend.h): host memory and the kernel set
// in use, for the ring (csrc/ring) to compute through.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../core/block_backend.h"

namespace siglip::cpu {

class AlignedBuffer;

// Host float32 data; blocks run on cpu::fusedSigmoidBlock with the block's threads and
// precision (fp32, or bf16 from float32 data).
class CpuBlockBackend : public BlockBackend {
 public:
  CpuBlockBackend();
  ~CpuBlockBackend() override;
  DType dtype() const override { return DType::Float32; }
  int device() const override { return kHostMemory; }
  void* allocate(size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* dst, size_t bytes) override;
  void add(float* dst, const float* src, int64_t count) override;
  PairSums computeBlock(const PairBlock& block) override;
  uint64_t allocatedBytes() const override { return allocated_; }

 private:
  std::vector<std::unique_ptr<AlignedBuffer>> buffers_;
  uint64_t allocated_ = 0;
};

}  // namespace siglip::cpu
