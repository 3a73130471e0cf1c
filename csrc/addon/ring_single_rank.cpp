// One rank per process: MPI (host shards, CPU) and NCCL (GPU). Reads one rank's call on the
// JS thread (SingleRankCall), runs it in SingleRankWorker (runMpiRank, or ring_gpu_rank.h's
// runGpuRank), and connects an NCCL ring (NcclConnectWorker). A failure breaks the ring.
#include "ring_single_rank.h"

#include <exception>
#include <string>
#include <tuple>
#include <utility>

#include "convert.h"
#include "core/errors.h"
#include "ring/ring_sigmoid.h"
#if defined(SIGLIP_WITH_CUDA)
#include "ring/nccl_transport.h"
#include "ring_gpu_rank.h"
#endif

namespace siglip::addon::ring_internal {
namespace {

// One rank's call. For MPI the shard is host memory; for NCCL each input is a device matrix
// or host float32 data uploaded for the call (ring_gpu_rank.h), the shard its host views.
struct SingleRankCall {
  ring::RingShard shard;  // host views (MPI; NCCL host inputs) and ids
  ring::RingOptions options;
  bool wantGrad = false;
  float* hostGradImage = nullptr;
  float* hostGradText = nullptr;
#if defined(SIGLIP_WITH_CUDA)
  GpuRankInputs gpu;  // NCCL
#endif
};

struct SingleRankOutcome {
  LossResult result;
  ring::RingStats stats;
#if defined(SIGLIP_WITH_CUDA)
  GpuRankOutcome gpu;  // NCCL
#endif
};

SingleRankOutcome runMpiRank(ring::Transport& tp, const SingleRankCall& call) {
  SingleRankOutcome out;
  try {
    checkFinite(call.shard.image, "image.data");
    checkFinite(call.shard.text, "text.data");
  } catch (const std::exception& e) {
    tp.abort(e.what());
    throw;
  }
  out.result = ring::ringSigmoidLoss(tp, call.shard, call.options,
                                     GradientOutputs{call.hostGradImage, call.hostGradText}, &out.stats);
  return out;
}

class SingleRankWorker : public RankCallWorker {
 public:
  SingleRankWorker(Napi::Env env, std::shared_ptr<RingState> state, SingleRankCall call, HostInputs&& inputs,
                   Napi::Value gradImage, Napi::Value gradText)
      : RankCallWorker(env, "siglip:ringSigmoidLoss", std::move(state)), call_(std::move(call)), inputs_(std::move(inputs)) {
    inputs_.persist();
    if (gradImage.IsObject()) {
      gradImage_ = Napi::Persistent(gradImage.As<Napi::Object>());
      gradText_ = Napi::Persistent(gradText.As<Napi::Object>());
    }
  }

 protected:
  void run() override {
    ring::Transport& tp = *state_->endpoints[0];
#if defined(SIGLIP_WITH_CUDA)
    if (state_->kind == RingKind::Nccl) {
      outcome_.gpu = runGpuRank(tp, call_.shard, call_.gpu, call_.options, call_.wantGrad, call_.hostGradImage,
                                call_.hostGradText, "image.data", "text.data");
      outcome_.result = outcome_.gpu.result;
      outcome_.stats = outcome_.gpu.stats;
      return;
    }
#endif
    outcome_ = runMpiRank(tp, call_);
  }

  Napi::Value result(Napi::Env env) override {
    Napi::Value image = env.Undefined(), text = env.Undefined();
    if (call_.wantGrad) {
      image = gradImage_.IsEmpty() ? env.Undefined() : gradImage_.Value();
      text = gradText_.IsEmpty() ? env.Undefined() : gradText_.Value();
#if defined(SIGLIP_WITH_CUDA)
      if (state_->kind == RingKind::Nccl) std::tie(image, text) = gpuRankGradients(env, call_.gpu, outcome_.gpu, image, text);
#endif
    }
    return rankResultToJs(env, outcome_.result, outcome_.stats, call_.wantGrad, image, text);
  }

 private:
  SingleRankCall call_;
  SingleRankOutcome outcome_;
  HostInputs inputs_;  // the memory call_'s host views point into
  Napi::ObjectReference gradImage_;
  Napi::ObjectReference gradText_;
};

// Label ids of a one-rank call (host Int32Arrays), with the shard's row counts.
void readSingleRankIds(Napi::Object options, SingleRankCall& call, int64_t imageRows, int64_t textRows,
                       HostInputs& inputs) {
  Napi::Value imageIds = options.Get("imageIds"), textIds = options.Get("textIds");
  checkIdsTogether(options.Env(), !absent(imageIds), !absent(textIds));
  if (absent(imageIds)) return;
  call.shard.imageIds = readIdArray(imageIds, "options.imageIds", imageRows, inputs);
  call.shard.textIds = readIdArray(textIds, "options.textIds", textRows, inputs);
}

// Reads wantGrad (info[3]), allocates the host gradient arrays on the JS thread when the
// gradients go to the host, and queues the call: the tail every one-rank loss shares.
Napi::Value queueSingleRankCall(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state,
                                SingleRankCall call, HostInputs&& inputs, int64_t imageElements,
                                int64_t textElements, bool hostGradients) {
  Napi::Env env = info.Env();
  if (!info[3].IsBoolean()) throw typeError(env, "wantGrad", "a boolean", describeValue(info[3]));
  call.wantGrad = info[3].As<Napi::Boolean>().Value();
  Napi::Value gradImage = env.Undefined(), gradText = env.Undefined();
  if (call.wantGrad && hostGradients) {
    Napi::Float32Array gi = allocateFloat32Array(env, imageElements, "the image gradient");
    Napi::Float32Array gt = allocateFloat32Array(env, textElements, "the text gradient");
    call.hostGradImage = gi.Data();
    call.hostGradText = gt.Data();
    gradImage = gi;
    gradText = gt;
  }
  return (new SingleRankWorker(env, state, std::move(call), std::move(inputs), gradImage, gradText))->queue();
}

}  // namespace

Napi::Value mpiSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  SingleRankCall call;
  HostInputs inputs(InputUse::Copy);
  const MatrixView image = readMatrix(info[0], "image", inputs);
  const MatrixView text = readMatrix(info[1], "text", inputs);
  if (text.cols != image.cols) {
    throw rangeError(env, "text.cols", std::to_string(image.cols) + " (image.cols: the same width D)",
                     describeValue(Napi::Number::New(env, double(text.cols))));
  }
  call.shard.image = image;
  call.shard.text = text;
  Napi::Object options = readOptions(info[2], "options");
  const Scalars scalars = readScalars(options);
  call.options.logitScale = scalars.logitScale;
  call.options.logitBias = scalars.logitBias;
  call.options.direction = readDirection(options);
  call.options.threads = static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, kMaxThreads));
  readSingleRankIds(options, call, image.rows, text.rows, inputs);
  return queueSingleRankCall(info, state, std::move(call), std::move(inputs), image.rows * image.cols,
                             text.rows * text.cols, true);
}

#if defined(SIGLIP_WITH_CUDA)
Napi::Value ncclSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  SingleRankCall call;
  HostInputs inputs(InputUse::Copy);
  GpuRankInputs& gpu = call.gpu;
  gpu.device = state->device;
  gpu.image = readGpuRankInput(info[0], "image", state->device, call.shard.image, inputs);
  gpu.text = readGpuRankInput(info[1], "text", state->device, call.shard.text, inputs);
  if (gpu.text.cols != gpu.image.cols) {
    throw rangeError(env, "text.cols", std::to_string(gpu.image.cols) + " (image.cols: the same width D)",
                     describeValue(Napi::Number::New(env, double(gpu.text.cols))));
  }
  if (gpu.text.dtype != gpu.image.dtype) {
    throw typeError(env, "text", std::string("a matrix of the dtype of image (") + cuda::dtypeName(gpu.image.dtype) + ")",
                    std::string("one of dtype ") + cuda::dtypeName(gpu.text.dtype));
  }
  Napi::Object options = readOptions(info[2], "options");
  const Scalars scalars = readScalars(options);
  call.options.logitScale = scalars.logitScale;
  call.options.logitBias = scalars.logitBias;
  call.options.direction = readDirection(options);
  readSingleRankIds(options, call, gpu.image.rows, gpu.text.rows, inputs);
  readGpuRankOptions(options, gpu);
  const int64_t imageElements = gpu.image.rows * gpu.image.cols, textElements = gpu.text.rows * gpu.text.cols;
  return queueSingleRankCall(info, state, std::move(call), std::move(inputs), imageElements, textElements,
                             !gpu.gradientsOnDevice);
}

void NcclConnectWorker::run() {
  transport_ = ring::createNcclTransport(state_->rank, state_->size, id_, state_->device, state_->timeout);
}

Napi::Value NcclConnectWorker::result(Napi::Env env) {
  state_->endpoints.clear();
  state_->endpoints.push_back(std::move(transport_));
  return env.Undefined();
}

void LocalNcclConnectWorker::run() {
  endpoints_ = ring::createNcclGroupAllDevices(state_->devices, state_->timeout);
}

Napi::Value LocalNcclConnectWorker::result(Napi::Env env) {
  state_->endpoints = std::move(endpoints_);
  return env.Undefined();
}

void requireNccl(Napi::Env env) {
  std::string reason;
  if (!ring::ncclAvailable(&reason)) {
    throw makeJsError(env, ErrorKind::Internal,
                      "NCCL rings need NCCL (libnccl.so.2, e.g. from pip install nvidia-nccl-cu12), which cannot "
                      "be loaded: " + reason,
                      "", kErrNoNccl);
  }
}
#endif  // SIGLIP_WITH_CUDA

}  // namespace siglip::addon::ring_internal
