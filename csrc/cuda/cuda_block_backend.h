// The CUDA backend's side of the block contract (core/block_backend.h), for the ring on a GPU
// (csrc/ring/ring_sigmoid.h with this backend): the travelling blocks and accumulators live in
// device memory and each step's block runs through cuda::sigmoidBlock. Plain C++ (no CUDA
// headers). Part of siglip_cuda.
//
// With this backend every pointer the ring is given (the shard's image and text in `dtype`,
// its int32 ids, the float32 gradients) is device memory on `device`. The data is not scanned
// for NaN/Inf here (the caller does that, as cuda::sigmoidLoss does before it computes).
//
// Every operation is synchronous with respect to the calling thread (it returns when the GPU
// has finished it), which is what the transports rely on: a buffer handed to send() is
// complete, and a received one is not touched before wait() returns.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "../core/block_backend.h"
#include "cuda_backend.h"
#include "cuda_block.h"

struct CUstream_st;

namespace siglip::cuda {

class CudaBlockBackend : public BlockBackend {
 public:
  // One device and one dtype; precision TF32 or FP32, FP32 only with float32 (siglip::Error
  // otherwise).
  CudaBlockBackend(int device, DType dtype, Precision precision = Precision::TF32);
  ~CudaBlockBackend() override;
  CudaBlockBackend(const CudaBlockBackend&) = delete;
  CudaBlockBackend& operator=(const CudaBlockBackend&) = delete;

  DType dtype() const override { return dtype_; }
  int device() const override { return device_; }
  void* allocate(size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;  // device ↔ device (or host)
  void zero(void* dst, size_t bytes) override;
  void add(float* dst, const float* src, int64_t count) override;
  // The block's data is device memory of dtype on device(); it runs at this backend's
  // precision (the block's own precision is not used), block.threads is not used.
  PairSums computeBlock(const PairBlock& block) override;
  // The ring's buffers; the block workspace (one G block, up to 32 MB in bf16, or two with
  // SIGLIP_GEMM_OVERLAP=on) is not counted.
  uint64_t allocatedBytes() const override { return allocated_; }

  Precision precision() const { return precision_; }

 private:
  void synchronize();

  int device_;
  DType dtype_;
  Precision precision_;
  CUstream_st* stream_ = nullptr;
  std::vector<DeviceBuffer> buffers_;
  SigmoidBlockWorkspace workspace_;
  uint64_t allocated_ = 0;
};

// What the in-process transport needs from this backend (ring::createLocalGroup's memory):
// messages kept in device memory (on the sender's device) and copied with cudaMemcpy, so P
// in-process ranks can exchange device buffers (one GPU or several, with unified addressing).
std::shared_ptr<MessageMemory> deviceMessageMemory();

}  // namespace siglip::cuda
