// The CUDA loss calls of the raw binding (CUDA build only):
//   cudaSigmoidLoss(image, text, options, wantGrad)      → { loss, grad? }
//   cudaSoftmaxLoss(image, text, options, wantGrad)      → { loss, grad? }
//   cudaSigmoidLossAsync / cudaSoftmaxLossAsync          → Promise of the same
// image/text are device matrix handles (cuda_matrix.h) or host { data: Float32Array, rows,
// cols }, which are uploaded to temporary float32 device buffers for the call. options is
// { logitScale, logitBias (sigmoid only), imageIds?, textIds?,
//   method: 'fused'|'naive'|'simple' (sigmoid) or 'chunked'|'naive' (softmax), precision: 'tf32'|'fp32',
//   gradients: 'host'|'device', device: ordinal }.
// Gradients 'device' come back as new float32 device matrix handles, 'host' as Float32Arrays.
//
// The split: everything JavaScript (reading and checking arguments, allocating host
// gradient arrays, keeping references) happens on the JS thread in readCudaLossCall; the
// CUDA work (uploads, the loss, downloads; it synchronises) is runCudaLoss, which touches no
// JavaScript and runs on the JS thread (sync) or a libuv worker (async).
#pragma once
#ifdef SIGLIP_WITH_CUDA
#include <napi.h>

#include <memory>
#include <vector>

#include "core/loss_request.h"
#include "cuda/cuda_backend.h"
#include "cuda_matrix.h"
#include "host_inputs.h"

namespace siglip::addon {

// One input: a device matrix (buffer set) or host float32 data to upload (host set).
struct CudaInput {
  DeviceMatrixData matrix;      // buffer null for host data until runCudaLoss uploads it
  const float* host = nullptr;  // host rows × cols float32 values, or null
};

// A loss call with no JavaScript in it: what runCudaLoss needs.
struct CudaLossPlan {
  LossKind kind = LossKind::Sigmoid;
  CudaInput image, text;
  const int32_t* imageIds = nullptr;
  const int32_t* textIds = nullptr;
  double logitScale = 0;
  double logitBias = 0;
  Method method = Method::Fused;  // one the loss takes on CUDA (core/loss_request.h)
  cuda::Precision precision = cuda::Precision::TF32;
  int device = 0;
  bool wantGrad = false;
  bool gradientsOnDevice = false;
  float* hostGradImage = nullptr;  // N×D and M×D Float32Array memory when gradients go to the host
  float* hostGradText = nullptr;
};

struct CudaLossOutcome {
  LossResult result;
  std::shared_ptr<cuda::DeviceBuffer> gradImage;  // set when gradients stay on the device
  std::shared_ptr<cuda::DeviceBuffer> gradText;
};

// The plan plus the memory it points into (host inputs and ids, as `inputs` gives them;
// device matrix handles kept alive) and the host gradient arrays.
struct CudaLossCall {
  explicit CudaLossCall(InputUse use) : inputs(use) {}
  CudaLossPlan plan;
  HostInputs inputs;
  Napi::Float32Array hostGradImage;
  Napi::Float32Array hostGradText;
};

CudaLossCall readCudaLossCall(const Napi::CallbackInfo& info, LossKind kind, InputUse use);
CudaLossOutcome runCudaLoss(const CudaLossPlan& plan);
Napi::Object cudaOutcomeToJs(Napi::Env env, const CudaLossPlan& plan, const CudaLossOutcome& outcome,
                             Napi::Float32Array hostGradImage, Napi::Float32Array hostGradText);

Napi::Value CudaSigmoidLoss(const Napi::CallbackInfo& info);
Napi::Value CudaSoftmaxLoss(const Napi::CallbackInfo& info);
Napi::Value CudaSigmoidLossAsync(const Napi::CallbackInfo& info);
Napi::Value CudaSoftmaxLossAsync(const Napi::CallbackInfo& info);

}  // namespace siglip::addon

#endif  // SIGLIP_WITH_CUDA
