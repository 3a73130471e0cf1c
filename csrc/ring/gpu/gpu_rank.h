// One GPU rank of a ring, from the inputs a caller holds to its result: device matrices on its
// GPU (any dtype) or host float32 data (scanned for NaN/Infinity, uploaded for the call:
// cuda::makeShardResident), the ring on CudaBlockBackend, and the float32 gradients
// downloaded into host arrays or left on the device. The addon's NCCL rings and local rings
// of GPUs run it; siglip_ring_check's --cuda-local and --nccl jobs check it. Plain C++.
#pragma once
#include <cstdint>
#include <string>

#include "cuda/host_loss.h"
#include "ring/ring_sigmoid.h"

namespace siglip::ring {

struct GpuRankInputs {
  int device = 0;
  cuda::HostOrDeviceInput image, text;  // the same dtype (the caller's check)
  const int32_t* imageIds = nullptr;    // host arrays, or null on every rank
  const int32_t* textIds = nullptr;
  std::string imageName = "image.data", textName = "text.data";  // the host scan's names
  cuda::Precision precision = cuda::Precision::TF32;
  bool wantGrad = false;
  // Where the gradients go when wanted: these host arrays (n × D, m × D), or, where null,
  // device matrices in the result.
  GradientOutputs hostGrads;
};

struct GpuRankResult {
  LossResult result;
  RingStats stats;
  cuda::SharedMatrix gradImage, gradText;  // float32 on the device: wanted and not downloaded
};

// Collective, as ringSigmoidLoss; a failure before the ring starts (a bad value, no memory)
// aborts `tp` too, so the other ranks stop instead of waiting for this one.
GpuRankResult gpuRankSigmoidLoss(Transport& tp, const GpuRankInputs& inputs, const RingOptions& options);

}  // namespace siglip::ring
