// The backend interface the ring computes through: where its numbers live (host memory or
// one GPU's), how they are moved, and how a PairBlock is computed. The ring schedule
// (csrc/ring/ring_sigmoid.cpp) is written once against it; the CPU (cpu::CpuBlockBackend,
// csrc/cpu/cpu_block_backend.h) and the CUDA backend (cuda::CudaBlockBackend,
// csrc/cuda/cuda_block_backend.h) implement it. Plain C++.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "pair_block.h"

namespace siglip {

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;
  // The element type of image and text data and where all of this backend's data is
  // (kHostMemory or a CUDA device ordinal): the ring builds its blocks with them.
  virtual DType dtype() const = 0;
  virtual int device() const = 0;
  size_t elementBytes() const { return dtypeSize(dtype()); }
  // Scratch in the backend's memory, freed with the backend.
  virtual void* allocate(size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  virtual void add(float* dst, const float* src, int64_t count) = 0;  // dst += src
  // One block (its data, ids and gradients in the backend's memory and dtype); adds to the
  // block's gradients when given and returns its sums. Complete on return.
  virtual PairSums computeBlock(const PairBlock& block) = 0;
  // Bytes allocated so far.
  virtual uint64_t allocatedBytes() const = 0;
};

// What the in-process transport (csrc/ring/local_transport.h) needs from a backend: where
// messages are kept between a send and its receive, and how they are copied. Host memory and
// memcpy by default; device memory and cudaMemcpy for ranks whose buffers live on GPUs
// (cuda::deviceMessageMemory).
class MessageMemory {
 public:
  virtual ~MessageMemory() = default;
  // A new message holding a copy of `bytes` at `data` (complete on return).
  virtual std::shared_ptr<void> copyOut(const void* data, size_t bytes) = 0;
  // Copies a message's `bytes` into `data` (complete on return).
  virtual void copyIn(void* data, const void* message, size_t bytes) = 0;
};

}  // namespace siglip
