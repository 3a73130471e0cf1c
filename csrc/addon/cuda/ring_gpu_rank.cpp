// GPU ranks, shared by the two rings whose ranks compute on GPUs: an NCCL ring (one rank per
// process, ring_nccl.cpp) and a local ring of GPUs (ranks as threads of this process,
// addon/ring_local.cpp): their arguments read into ring::GpuRankInputs, which
// ring::gpuRankSigmoidLoss (csrc/ring/gpu) turns into a result.
#include <climits>
#include <string>
#include <utility>

#include "addon/convert.h"
#include "addon/cuda_bindings.h"
#include "addon/js_errors.h"
#include "addon/ring_rank.h"
#include "core/errors.h"
#include "cuda/cuda_block_backend.h"
#include "device_matrix.h"
#include "ring/gpu/gpu_rank.h"
#include "ring/local_transport.h"

namespace siglip::addon::ring_internal {
namespace {

struct GpuRankCall : RankCall {
  ring::GpuRankInputs in;  // the shard's ids and names, wantGrad and hostGrads join it at run()
  bool gradientsOnDevice = false;
  cuda::SharedMatrix gradImage, gradText;  // when the gradients stay on the device

  void run(ring::Transport& tp) override {
    in.imageIds = shard.imageIds;
    in.textIds = shard.textIds;
    in.imageName = shard.imageName;
    in.textName = shard.textName;
    in.wantGrad = wantGrad;
    in.hostGrads = hostGrads;  // none allocated when the gradients stay on the device
    ring::GpuRankResult out = ring::gpuRankSigmoidLoss(tp, in, options);
    result = out.result;
    stats = out.stats;
    gradImage = out.gradImage;
    gradText = out.gradText;
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
  ring::GpuRankInputs& in = call->in;
  in.device = device;
  in.image = readCudaInput(image, imageName, device, "its rank's device", inputs);
  in.text = readCudaInput(text, textName, device, "its rank's device", inputs);
  call->shard.imageName = imageName + ".data";
  call->shard.textName = textName + ".data";
  const cuda::DType dtype = reference ? static_cast<const GpuRankCall*>(reference)->in.image.matrix.dtype
                                      : in.image.matrix.dtype;
  for (const auto& [name, input] : {std::pair<std::string, const cuda::HostOrDeviceInput*>{imageName, &in.image},
                                    {textName, &in.text}}) {
    if (input->matrix.dtype != dtype) {
      throw typeError(env, name, "a matrix of the dtype of " + referenceName + " (" + cuda::dtypeName(dtype) + ")",
                      std::string("one of dtype ") + cuda::dtypeName(input->matrix.dtype));
    }
  }
  // The shape (the addon's checks read it); the data goes through `in`.
  call->shard.image = BlockMatrix{in.image.host, in.image.matrix.rows, in.image.matrix.cols, dtype, device};
  call->shard.text = BlockMatrix{in.text.host, in.text.matrix.rows, in.text.matrix.cols, dtype, device};
  return call;
}

bool readGpuRankOptions(Napi::Object options, const std::vector<RankCall*>& ranks) {
  const GpuOptions gpu = readGpuOptions(options);
  for (RankCall* rank : ranks) {
    auto& call = static_cast<GpuRankCall&>(*rank);
    cuda::checkPrecision(gpu.precision, call.in.image.matrix.dtype);
    call.in.precision = gpu.precision;
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
