#include "ring_all_gather.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "convert.h"
#include "core/errors.h"
#include "core/limits.h"
#include "js_errors.h"
#include "ring_worker.h"

namespace siglip::addon::ring_internal {
namespace {

using limits::kMaxAllGatherBytes;  // csrc/core/limits.h

class AllGatherWorker : public RankCallWorker {
 public:
  AllGatherWorker(Napi::Env env, std::shared_ptr<RingState> state, std::vector<uint8_t> mine)
      : RankCallWorker(env, "siglip:ringAllGather", std::move(state)), mine_(std::move(mine)) {}

 protected:
  void run() override {
    ring::Transport& tp = *state_->endpoints[0];
    // The lengths first: a collective over messages of different sizes would misread them.
    const int64_t length = int64_t(mine_.size());
    std::vector<int64_t> lengths(size_t(tp.size()));
    tp.allGather(&length, sizeof length, lengths.data());
    for (int q = 0; q < tp.size(); ++q)
      if (lengths[size_t(q)] != length)
        throw Error(ErrorKind::Range, "bytes",
                    "Expected as many bytes as every other rank passes for bytes but received " +
                        std::to_string(length) + " on rank " + std::to_string(tp.rank()) + " and " +
                        std::to_string(lengths[size_t(q)]) + " on rank " + std::to_string(q));
    all_.resize(mine_.size() * size_t(tp.size()));
    tp.allGather(mine_.data(), mine_.size(), all_.data());
  }

  Napi::Value result(Napi::Env env) override {
    Napi::Uint8Array out = Napi::Uint8Array::New(env, all_.size());
    std::copy(all_.begin(), all_.end(), out.Data());
    return out;
  }

 private:
  std::vector<uint8_t> mine_, all_;
};

}  // namespace

Napi::Value rankAllGather(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  Napi::Value value = info[0];
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw typeError(env, "bytes", "a Uint8Array", describeValue(value));
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  if (bytes.ElementLength() > kMaxAllGatherBytes)
    throw rangeError(env, "bytes", "at most " + std::to_string(kMaxAllGatherBytes) + " bytes",
                     std::to_string(bytes.ElementLength()) + " bytes");
  std::vector<uint8_t> mine(bytes.Data(), bytes.Data() + bytes.ElementLength());
  return (new AllGatherWorker(env, state, std::move(mine)))->queue();
}

}  // namespace siglip::addon::ring_internal
