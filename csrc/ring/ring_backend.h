// Where the ring's numbers live and how a block is computed: host memory and the CPU
// kernels, or device memory and the CUDA kernels. The ring schedule (ring_sigmoid.cpp) is
// written once against this interface.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../cpu/aligned_buffer.h"
#include "../cpu/cpu_kernels.h"
#include "../cpu/losses.h"

namespace siglip::ring {

class RingBackend {
 public:
  virtual ~RingBackend() = default;
  // Bytes per element of the image and text data (4 for float32, 2 for 16-bit types).
  virtual size_t elementBytes() const = 0;
  // Scratch in the backend's memory, freed with the backend.
  virtual void* allocate(size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  virtual void add(float* dst, const float* src, int64_t count) = 0;  // dst += src
  // One block of pairs (cpu::SigmoidBlock's data pointers are in the backend's memory and
  // element type); adds to dImage / dText when given, returns the block's sums.
  virtual cpu::PairSums computeBlock(const cpu::SigmoidBlock& block, float* dImage, float* dText) = 0;
  // Bytes allocated so far.
  virtual uint64_t allocatedBytes() const = 0;
};

// Host memory and the CPU kernel set in use.
class CpuRingBackend : public RingBackend {
 public:
  size_t elementBytes() const override { return sizeof(float); }
  void* allocate(size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* dst, size_t bytes) override;
  void add(float* dst, const float* src, int64_t count) override;
  cpu::PairSums computeBlock(const cpu::SigmoidBlock& block, float* dImage, float* dText) override;
  uint64_t allocatedBytes() const override { return allocated_; }

 private:
  std::vector<std::unique_ptr<cpu::AlignedBuffer>> buffers_;
  uint64_t allocated_ = 0;
};

}  // namespace siglip::ring
