// One rank's loss call on a GPU, shared by the two rings whose ranks compute on GPUs: an NCCL
// ring (one rank per process) and a local ring of GPUs (ranks as threads of this process).
// Its inputs are device matrices on the rank's GPU (any dtype) or host float32 data uploaded
// for the call; the ring runs on CudaBlockBackend; the gradients stay on the device or are
// downloaded into host arrays (internal to csrc/addon/ring_*.cpp; CUDA build only).
#pragma once
#if defined(SIGLIP_WITH_CUDA)
#include <napi.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda_matrix.h"
#include "host_inputs.h"
#include "ring/ring_sigmoid.h"

namespace siglip::addon::ring_internal {

struct GpuRankInputs {
  int device = 0;
  DeviceMatrixData image, text;  // `buffer` set for device inputs, null for host inputs
  cuda::Precision precision = cuda::Precision::TF32;
  bool gradientsOnDevice = false;
};

struct GpuRankOutcome {
  LossResult result;
  ring::RingStats stats;
  std::shared_ptr<cuda::DeviceBuffer> gradImage, gradText;  // when the gradients stay on the device
};

// One input named `name`: a DeviceMatrix handle on `device`, or a host { data, rows, cols }
// (float32, uploaded for the call), whose view goes to `host` (null data for device inputs).
DeviceMatrixData readGpuRankInput(Napi::Value value, const std::string& name, int device, MatrixView& host,
                                  HostInputs& inputs);

// options.precision ('tf32' | 'fp32') and options.gradients ('host' | 'device'), both given
// (lib/ring/options.ts fills the defaults), checked against the inputs' dtype.
void readGpuRankOptions(Napi::Object options, GpuRankInputs& inputs);

// The ring for one rank on its GPU. `host` holds the host inputs' views (used where the
// inputs have no buffer; scanned for NaN/Inf under `imageName` / `textName`) and the ids.
// Host gradients go to hostGradImage / hostGradText. Any failure before the ring starts
// aborts the transport, so the other ranks stop too.
GpuRankOutcome runGpuRank(ring::Transport& tp, const ring::RingShard& host, const GpuRankInputs& inputs,
                          const ring::RingOptions& options, bool wantGrad, float* hostGradImage, float* hostGradText,
                          const std::string& imageName, const std::string& textName);

// The gradients as JavaScript values: DeviceMatrix handles, or the host arrays given.
std::pair<Napi::Value, Napi::Value> gpuRankGradients(Napi::Env env, const GpuRankInputs& inputs,
                                                     const GpuRankOutcome& outcome, Napi::Value hostImage,
                                                     Napi::Value hostText);

}  // namespace siglip::addon::ring_internal
#endif  // SIGLIP_WITH_CUDA
