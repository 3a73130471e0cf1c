// One rank per process: the worker every one-rank call runs in (SingleRankWorker), the
// shared reading of its ids and gradients, and the MPI rank's call (host shards, CPU). The
// NCCL rank's call is ring_nccl.cpp's (the CUDA build). A failure breaks the ring.
#include "ring_single_rank.h"

#include <exception>
#include <string>
#include <utility>

#include "convert.h"
#include "core/errors.h"
#include "cpu/cpu_block_backend.h"
#include "ring_worker.h"

namespace siglip::addon::ring_internal {

std::pair<Napi::Value, Napi::Value> SingleRankCall::gradients(Napi::Env, Napi::Value hostImage, Napi::Value hostText) {
  return {hostImage, hostText};
}

namespace {

// An MPI rank: host shards, scanned for NaN/Inf first (a bad shard aborts the transport, so
// the other ranks stop too).
struct MpiRankCall : SingleRankCall {
  void run(ring::Transport& tp) override {
    try {
      checkFinite(shard.image, "image.data");
      checkFinite(shard.text, "text.data");
    } catch (const std::exception& e) {
      tp.abort(e.what());
      throw;
    }
    cpu::CpuBlockBackend backend;
    result = ring::ringSigmoidLoss(tp, backend, shard, options, GradientOutputs{hostGradImage, hostGradText}, &stats);
  }
};

class SingleRankWorker : public RankCallWorker {
 public:
  SingleRankWorker(Napi::Env env, std::shared_ptr<RingState> state, std::unique_ptr<SingleRankCall> call,
                   HostInputs&& inputs, Napi::Value gradImage, Napi::Value gradText)
      : RankCallWorker(env, "siglip:ringSigmoidLoss", std::move(state)), call_(std::move(call)), inputs_(std::move(inputs)) {
    inputs_.persist();
    if (gradImage.IsObject()) {
      gradImage_ = Napi::Persistent(gradImage.As<Napi::Object>());
      gradText_ = Napi::Persistent(gradText.As<Napi::Object>());
    }
  }

 protected:
  void run() override { call_->run(*state_->endpoints[0]); }

  Napi::Value result(Napi::Env env) override {
    Napi::Value image = env.Undefined(), text = env.Undefined();
    if (call_->wantGrad) {
      image = gradImage_.IsEmpty() ? env.Undefined() : gradImage_.Value();
      text = gradText_.IsEmpty() ? env.Undefined() : gradText_.Value();
      std::tie(image, text) = call_->gradients(env, image, text);
    }
    return rankResultToJs(env, call_->result, call_->stats, call_->wantGrad, image, text);
  }

 private:
  std::unique_ptr<SingleRankCall> call_;
  HostInputs inputs_;  // the memory call_'s host views point into
  Napi::ObjectReference gradImage_;
  Napi::ObjectReference gradText_;
};

}  // namespace

void readSingleRankIds(Napi::Object options, SingleRankCall& call, int64_t imageRows, int64_t textRows,
                       HostInputs& inputs) {
  Napi::Value imageIds = options.Get("imageIds"), textIds = options.Get("textIds");
  checkIdsTogether(options.Env(), !absent(imageIds), !absent(textIds));
  if (absent(imageIds)) return;
  call.shard.imageIds = readIdArray(imageIds, "options.imageIds", imageRows, inputs);
  call.shard.textIds = readIdArray(textIds, "options.textIds", textRows, inputs);
}

Napi::Value queueSingleRankCall(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state,
                                std::unique_ptr<SingleRankCall> call, HostInputs&& inputs, int64_t imageElements,
                                int64_t textElements, bool hostGradients) {
  Napi::Env env = info.Env();
  if (!info[3].IsBoolean()) throw typeError(env, "wantGrad", "a boolean", describeValue(info[3]));
  call->wantGrad = info[3].As<Napi::Boolean>().Value();
  Napi::Value gradImage = env.Undefined(), gradText = env.Undefined();
  if (call->wantGrad && hostGradients) {
    Napi::Float32Array gi = allocateFloat32Array(env, imageElements, "the image gradient");
    Napi::Float32Array gt = allocateFloat32Array(env, textElements, "the text gradient");
    call->hostGradImage = gi.Data();
    call->hostGradText = gt.Data();
    gradImage = gi;
    gradText = gt;
  }
  return (new SingleRankWorker(env, state, std::move(call), std::move(inputs), gradImage, gradText))->queue();
}

Napi::Value mpiSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  auto call = std::make_unique<MpiRankCall>();
  HostInputs inputs(InputUse::Copy);
  const MatrixView image = readMatrix(info[0], "image", inputs);
  const MatrixView text = readMatrix(info[1], "text", inputs);
  if (text.cols != image.cols) {
    throw rangeError(env, "text.cols", std::to_string(image.cols) + " (image.cols: the same width D)",
                     describeValue(Napi::Number::New(env, double(text.cols))));
  }
  call->shard.image = image;
  call->shard.text = text;
  Napi::Object options = readOptions(info[2], "options");
  const Scalars scalars = readScalars(options);
  call->options.logitScale = scalars.logitScale;
  call->options.logitBias = scalars.logitBias;
  call->options.direction = readDirection(options);
  call->options.threads = static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, kMaxThreads));
  readSingleRankIds(options, *call, image.rows, text.rows, inputs);
  return queueSingleRankCall(info, state, std::move(call), std::move(inputs), image.rows * image.cols,
                             text.rows * text.cols, true);
}

}  // namespace siglip::addon::ring_internal
