#include "ring_gpu_rank.h"
#if defined(SIGLIP_WITH_CUDA)

#include <exception>

#include "convert.h"
#include "core/errors.h"
#include "cuda/cuda_ring_backend.h"
#include "js_errors.h"
#include "ring_convert.h"

namespace siglip::addon::ring_internal {

DeviceMatrixData readGpuRankInput(Napi::Value value, const std::string& name, int device, MatrixView& host,
                                  HostInputs& inputs) {
  Napi::Env env = value.Env();
  if (DeviceMatrixHandle* handle = DeviceMatrixHandle::unwrap(value)) {
    DeviceMatrixData m = handle->live(env, name);
    if (m.device != device) {
      throw rangeError(env, name, "a matrix on cuda:" + std::to_string(device) + " (its rank's device)",
                       "one on cuda:" + std::to_string(m.device));
    }
    inputs.keepAlive(value.As<Napi::Object>());
    host = MatrixView{nullptr, m.rows, m.cols};
    return m;
  }
  host = readMatrix(value, name, inputs);
  DeviceMatrixData m;
  m.rows = host.rows;
  m.cols = host.cols;
  m.dtype = cuda::DType::Float32;
  m.device = device;
  return m;
}

void readGpuRankOptions(Napi::Object options, GpuRankInputs& inputs) {
  Napi::Env env = options.Env();
  Napi::Value precision = options.Get("precision");
  const std::string precisionName = precision.IsString() ? precision.As<Napi::String>().Utf8Value() : "";
  if (!precision.IsString()) throw typeError(env, "options.precision", "'tf32' or 'fp32'", describeValue(precision));
  if (precisionName != "tf32" && precisionName != "fp32")
    throw rangeError(env, "options.precision", "'tf32' or 'fp32'", describeValue(precision));
  inputs.precision = precisionName == "fp32" ? cuda::Precision::FP32 : cuda::Precision::TF32;
  if (inputs.precision == cuda::Precision::FP32 && inputs.image.dtype != cuda::DType::Float32) {
    throw rangeError(env, "options.precision", "'tf32' for 16-bit matrices ('fp32' needs float32 matrices)",
                     std::string("the string 'fp32' with ") + cuda::dtypeName(inputs.image.dtype) + " matrices");
  }
  Napi::Value gradients = options.Get("gradients");
  const std::string gradientsName = gradients.IsString() ? gradients.As<Napi::String>().Utf8Value() : "";
  if (!gradients.IsString()) throw typeError(env, "options.gradients", "'host' or 'device'", describeValue(gradients));
  if (gradientsName != "host" && gradientsName != "device")
    throw rangeError(env, "options.gradients", "'host' or 'device'", describeValue(gradients));
  inputs.gradientsOnDevice = gradientsName == "device";
}

GpuRankOutcome runGpuRank(ring::Transport& tp, const ring::RingShard& host, const GpuRankInputs& inputs,
                          const ring::RingOptions& options, bool wantGrad, float* hostGradImage, float* hostGradText,
                          const std::string& imageName, const std::string& textName) {
  GpuRankOutcome out;
  const int device = inputs.device;
  const int64_t d = inputs.image.cols, n = inputs.image.rows, m = inputs.text.rows;
  DeviceMatrixData image = inputs.image, text = inputs.text;
  std::shared_ptr<cuda::DeviceBuffer> ids;
  std::unique_ptr<cuda::CudaRingBackend> backend;  // its stream and scratch live for the call only
  try {
    // Host inputs: scanned here (device inputs are not: see lib/ring/base.ts, Ring.nccl), uploaded as float32.
    const auto resident = [&](DeviceMatrixData& input, const MatrixView& view, const std::string& name) {
      if (input.buffer) return;
      checkFinite(view, name);
      const size_t bytes = size_t(view.rows) * size_t(view.cols) * sizeof(float);
      input.buffer = std::make_shared<cuda::DeviceBuffer>(device, bytes);
      input.buffer->upload(view.data, bytes);
    };
    resident(image, host.image, imageName);
    resident(text, host.text, textName);
    if (host.imageIds) {
      ids = std::make_shared<cuda::DeviceBuffer>(device, size_t(n + m) * sizeof(int32_t));
      ids->upload(host.imageIds, size_t(n) * sizeof(int32_t));
      ids->upload(host.textIds, size_t(m) * sizeof(int32_t), size_t(n) * sizeof(int32_t));
    }
    if (wantGrad) {
      out.gradImage = std::make_shared<cuda::DeviceBuffer>(device, size_t(n * d) * sizeof(float));
      out.gradText = std::make_shared<cuda::DeviceBuffer>(device, size_t(m * d) * sizeof(float));
    }
    backend = std::make_unique<cuda::CudaRingBackend>(device, image.dtype, inputs.precision);
  } catch (const std::exception& e) {
    tp.abort(e.what());
    throw;
  }
  ring::RingShard shard;
  shard.image = MatrixView{static_cast<const float*>(image.buffer->data()), n, d};
  shard.text = MatrixView{static_cast<const float*>(text.buffer->data()), m, d};
  if (ids) {
    shard.imageIds = static_cast<const int32_t*>(ids->data());
    shard.textIds = shard.imageIds + n;
  }
  GradientOutputs grads;
  if (wantGrad) grads = GradientOutputs{static_cast<float*>(out.gradImage->data()), static_cast<float*>(out.gradText->data())};
  out.result = ring::ringSigmoidLoss(tp, *backend, shard, options, grads, &out.stats);
  backend.reset();
  if (wantGrad && !inputs.gradientsOnDevice) {
    out.gradImage->download(hostGradImage, out.gradImage->bytes());
    out.gradText->download(hostGradText, out.gradText->bytes());
    out.gradImage.reset();
    out.gradText.reset();
  }
  return out;
}

std::pair<Napi::Value, Napi::Value> gpuRankGradients(Napi::Env env, const GpuRankInputs& inputs,
                                                     const GpuRankOutcome& outcome, Napi::Value hostImage,
                                                     Napi::Value hostText) {
  if (!inputs.gradientsOnDevice) return {hostImage, hostText};
  const int64_t d = inputs.image.cols;
  return {DeviceMatrixHandle::wrap(env, DeviceMatrixData{outcome.gradImage, inputs.image.rows, d, cuda::DType::Float32,
                                                         inputs.device}),
          DeviceMatrixHandle::wrap(env, DeviceMatrixData{outcome.gradText, inputs.text.rows, d, cuda::DType::Float32,
                                                         inputs.device})};
}

}  // namespace siglip::addon::ring_internal
#endif  // SIGLIP_WITH_CUDA
