// GPU ranks, shared by the two rings whose ranks compute on GPUs: an NCCL ring (one rank per
// process, ring_nccl.cpp) and a local ring of GPUs (ranks as threads of this process,
// addon/ring_local.cpp). A rank's inputs are device matrices on its GPU (any dtype) or host
// float32 data uploaded for the call (cuda::makeShardResident); the ring runs on
// CudaBlockBackend; the gradients stay on the device or are downloaded into host arrays.
#include <climits>
#include <exception>
#include <string>
#include <utility>

#include "addon/convert.h"
#include "addon/cuda_bindings.h"
#include "addon/js_errors.h"
#include "addon/ring_rank.h"
#include "core/errors.h"
#include "cuda/cuda_block_backend.h"
#include "device_matrix.h"
#include "ring/local_transport.h"

namespace siglip::addon::ring_internal {
namespace {

struct GpuRankCall : RankCall {
  int device = 0;
  cuda::HostOrDeviceInput image, text;
  cuda::Precision precision = cuda::Precision::TF32;
  bool gradientsOnDevice = false;
  cuda::SharedMatrix gradImage, gradText;  // when the gradients stay on the device

  void run(ring::Transport& tp) override {
    cuda::ResidentShard s;
    std::unique_ptr<cuda::CudaBlockBackend> backend;  // its stream and scratch live for the call only
    try {
      s = cuda::makeShardResident(image, text, shard.imageIds, shard.textIds, wantGrad, imageName, textName);
      backend = std::make_unique<cuda::CudaBlockBackend>(device, s.image.dtype, precision);
    } catch (const std::exception& e) {
      tp.abort(e.what());
      throw;
    }
    ring::RingShard resident;
    resident.image = MatrixView{static_cast<const float*>(s.image.buffer->data()), s.image.rows, s.image.cols};
    resident.text = MatrixView{static_cast<const float*>(s.text.buffer->data()), s.text.rows, s.text.cols};
    resident.imageIds = s.imageIds();
    resident.textIds = s.textIds();
    GradientOutputs grads;
    if (wantGrad) grads = GradientOutputs{static_cast<float*>(s.gradImage.buffer->data()),
                                          static_cast<float*>(s.gradText.buffer->data())};
    result = ring::ringSigmoidLoss(tp, *backend, resident, options, grads, &stats);
    backend.reset();
    if (wantGrad && !gradientsOnDevice) cuda::downloadGradients(s.gradImage, s.gradText, hostGrads.image, hostGrads.text);
    gradImage = s.gradImage;
    gradText = s.gradText;
  }

  std::pair<Napi::Value, Napi::Value> gradients(Napi::Env env, const GradientArrays& host) const override {
    if (!gradientsOnDevice) return {host.image, host.text};
    return {DeviceMatrixHandle::wrap(env, gradImage), DeviceMatrixHandle::wrap(env, gradText)};
  }
};

}  // namespace

std::unique_ptr<RankCall> readGpuRank(Napi::Value image, Napi::Value text, const std::string& imageName,
                                      const std::string& textName, int device, const RankCall* reference,
                                      const std::string& referenceName, HostInputs& inputs) {
  Napi::Env env = image.Env();
  auto call = std::make_unique<GpuRankCall>();
  call->device = device;
  call->image = readCudaInput(image, imageName, device, "its rank's device", inputs);
  call->text = readCudaInput(text, textName, device, "its rank's device", inputs);
  call->imageName = imageName + ".data";
  call->textName = textName + ".data";
  const cuda::DType dtype = reference ? static_cast<const GpuRankCall*>(reference)->image.matrix.dtype
                                      : call->image.matrix.dtype;
  for (const auto& [name, input] : {std::pair<std::string, const cuda::HostOrDeviceInput*>{imageName, &call->image},
                                    {textName, &call->text}}) {
    if (input->matrix.dtype != dtype) {
      throw typeError(env, name, "a matrix of the dtype of " + referenceName + " (" + cuda::dtypeName(dtype) + ")",
                      std::string("one of dtype ") + cuda::dtypeName(input->matrix.dtype));
    }
  }
  // The shape, and the host data where there is (the shard's own views).
  call->shard.image = MatrixView{call->image.host, call->image.matrix.rows, call->image.matrix.cols};
  call->shard.text = MatrixView{call->text.host, call->text.matrix.rows, call->text.matrix.cols};
  return call;
}

bool readGpuRankOptions(Napi::Object options, const std::vector<RankCall*>& ranks) {
  const GpuOptions gpu = readGpuOptions(options);
  for (RankCall* rank : ranks) {
    auto& call = static_cast<GpuRankCall&>(*rank);
    cuda::checkPrecision(gpu.precision, call.image.matrix.dtype);
    call.precision = gpu.precision;
    call.gradientsOnDevice = gpu.gradientsOnDevice;
  }
  return !gpu.gradientsOnDevice;
}

void readLocalDevices(Napi::Env env, Napi::Value devices, RingState& state) {
  const std::string expected = "an Array of " + std::to_string(state.size) + " CUDA ordinals (one per rank)";
  if (!devices.IsArray() || devices.As<Napi::Array>().Length() != uint32_t(state.size))
    throw typeError(env, "options.devices", expected, describeValue(devices));
  Napi::Array list = devices.As<Napi::Array>();
  for (uint32_t r = 0; r < list.Length(); ++r)
    state.devices.push_back(
        static_cast<int>(readInteger(list.Get(r), "options.devices[" + std::to_string(r) + "]", 0, INT_MAX)));
}

std::vector<std::unique_ptr<ring::Transport>> createLocalGpuEndpoints(const RingState& state) {
  return ring::createLocalGroup(state.size, state.timeout, cuda::deviceMessageMemory());
}

}  // namespace siglip::addon::ring_internal
