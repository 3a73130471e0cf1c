#include "ring_rank.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/limits.h"
#include "cpu/cpu_block_backend.h"
#include "cuda_bindings.h"

namespace siglip::addon::ring_internal {

std::pair<Napi::Value, Napi::Value> RankCall::gradients(Napi::Env, const GradientArrays& host) const {
  return {host.image, host.text};
}

void CpuRankCall::run(ring::Transport& tp) {
  cpu::CpuBlockBackend backend;
  result = ring::ringSigmoidLoss(tp, backend, shard, options, hostGrads, &stats);
}

Napi::Object rankResultToJs(Napi::Env env, const RankCall& call, const GradientArrays& host) {
  Napi::Value image = env.Undefined(), text = env.Undefined();
  if (call.wantGrad) std::tie(image, text) = call.gradients(env, host);
  Napi::Object out = lossResultToJs(env, LossKind::Sigmoid, call.result, image, text);
  const ring::RingStats& s = call.stats;
  const auto number = [&](double value) { return Napi::Number::New(env, value); };
  Napi::Object stats = makeObject(env, {{"steps", number(s.steps)},
                                        {"returnHops", number(s.returnHops)},
                                        {"bytesSent", number(double(s.bytesSent))},
                                        {"peakRingBytes", number(double(s.peakRingBytes))},
                                        {"computeSeconds", number(s.computeSeconds)},
                                        {"waitSeconds", number(s.waitSeconds)}});
  out.Set("stats", stats);
  return out;
}

Napi::Value rankSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state,
                            std::unique_ptr<RankCall> call, HostInputs&& inputs, bool gpu) {
  Napi::Env env = info.Env();
  const BlockMatrix& image = call->shard.image;
  const BlockMatrix& text = call->shard.text;
  if (text.cols != image.cols) {
    throw rangeError(env, "text.cols", std::to_string(image.cols) + " (image.cols: the same width D)",
                     describeValue(Napi::Number::New(env, double(text.cols))));
  }
  Napi::Object options = readObject(info[2], "options");
  const Scalars scalars = readRingScalars(options);
  call->options.logitScale = scalars.logitScale;
  call->options.logitBias = scalars.logitBias;
  call->options.direction = readDirection(options);
  Napi::Value imageIds = options.Get("imageIds"), textIds = options.Get("textIds");
  checkIdsTogether(env, !absent(imageIds), !absent(textIds));
  if (!absent(imageIds)) {
    call->shard.imageIds = readIdArray(imageIds, "options.imageIds", image.rows, inputs);
    call->shard.textIds = readIdArray(textIds, "options.textIds", text.rows, inputs);
  }
  bool hostGradients = true;
  if (gpu) {
    hostGradients = readGpuRankOptions(options, {call.get()});
  } else {
    call->options.threads =
        static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, limits::kMaxThreads));
  }
  call->wantGrad = readBoolean(info[3], "wantGrad");
  GradientArrays grads;
  if (call->wantGrad && hostGradients) {
    grads = allocateGradients(env, image.rows * image.cols, text.rows * text.cols);
    call->hostGrads = grads.outputs();
  }
  inputs.persist();
  return queueRankRingCall(
      env, "siglip:ringSigmoidLoss", state,
      [state, call = std::move(call), inputs = std::move(inputs)]() mutable {
        call->run(*state->endpoints[0]);
        return std::move(call);
      },
      [held = HeldGradients(grads)](Napi::Env env, const std::unique_ptr<RankCall>& call) {
        return rankResultToJs(env, *call, held.arrays());
      });
}

Napi::Value rankAllGather(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  Napi::Value value = info[0];
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw typeError(env, "bytes", "a Uint8Array", describeValue(value));
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  if (bytes.ElementLength() > limits::kMaxAllGatherBytes)
    throw rangeError(env, "bytes", "at most " + std::to_string(limits::kMaxAllGatherBytes) + " bytes",
                     std::to_string(bytes.ElementLength()) + " bytes");
  std::vector<uint8_t> mine(bytes.Data(), bytes.Data() + bytes.ElementLength());
  return queueRankRingCall(
      env, "siglip:ringAllGather", state,
      [state, mine = std::move(mine)] {
        ring::Transport& tp = *state->endpoints[0];
        // The lengths first: a collective over messages of different sizes would misread them.
        const int64_t length = int64_t(mine.size());
        std::vector<int64_t> lengths(size_t(tp.size()));
        tp.allGather(&length, sizeof length, lengths.data());
        for (int q = 0; q < tp.size(); ++q)
          if (lengths[size_t(q)] != length)
            throw Error(ErrorKind::Range, "bytes",
                        "Expected as many bytes as every other rank passes for bytes but received " +
                            std::to_string(length) + " on rank " + std::to_string(tp.rank()) + " and " +
                            std::to_string(lengths[size_t(q)]) + " on rank " + std::to_string(q));
        std::vector<uint8_t> all(mine.size() * size_t(tp.size()));
        tp.allGather(mine.data(), mine.size(), all.data());
        return all;
      },
      [](Napi::Env env, const std::vector<uint8_t>& all) {
        Napi::Uint8Array out = Napi::Uint8Array::New(env, all.size());
        std::copy(all.begin(), all.end(), out.Data());
        return out;
      });
}

}  // namespace siglip::addon::ring_internal
