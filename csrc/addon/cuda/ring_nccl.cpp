// NcclRingHandle: this process's GPU rank of an NCCL ring, plus ncclUniqueId() and ncclInfo(),
// bound only in the CUDA build (SIGLIP_WITH_CUDA); the one place of the addon that binds NCCL.
// (Local rings of GPUs, which may also talk through NCCL, are LocalRingHandle's: ring_local.cpp.)
#include "ring_bindings.h"

#if defined(SIGLIP_WITH_CUDA)
#include <algorithm>
#include <climits>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "convert.h"
#include "core/errors.h"
#include "cuda/cuda_backend.h"
#include "ring/nccl_transport.h"
#include "ring_all_gather.h"
#include "ring_gpu_rank.h"
#include "ring_handle.h"
#include "ring_nccl.h"
#include "ring_single_rank.h"
#include "ring_worker.h"

namespace siglip::addon {
namespace ring_internal {
namespace {

// An NCCL rank: device matrices on the ring's GPU or host float32 data uploaded for the call.
struct NcclRankCall : SingleRankCall {
  GpuRankInputs gpu;
  GpuRankOutcome outcome;
  void run(ring::Transport& tp) override {
    outcome = runGpuRank(tp, shard, gpu, options, wantGrad, hostGradImage, hostGradText, "image.data", "text.data");
    result = outcome.result;
    stats = outcome.stats;
  }
  std::pair<Napi::Value, Napi::Value> gradients(Napi::Env env, Napi::Value hostImage, Napi::Value hostText) override {
    return gpuRankGradients(env, gpu, outcome, hostImage, hostText);
  }
};

// handle.sigmoidLoss(image, text, options, wantGrad): image/text are device matrix handles on
// the ring's device or host { data, rows, cols } (float32, uploaded for the call).
Napi::Value ncclSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  auto call = std::make_unique<NcclRankCall>();
  HostInputs inputs(InputUse::Copy);
  GpuRankInputs& gpu = call->gpu;
  gpu.device = state->device;
  gpu.image = readGpuRankInput(info[0], "image", state->device, call->shard.image, inputs);
  gpu.text = readGpuRankInput(info[1], "text", state->device, call->shard.text, inputs);
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
  call->options.logitScale = scalars.logitScale;
  call->options.logitBias = scalars.logitBias;
  call->options.direction = readDirection(options);
  readSingleRankIds(options, *call, gpu.image.rows, gpu.text.rows, inputs);
  readGpuRankOptions(options, gpu);
  const int64_t imageElements = gpu.image.rows * gpu.image.cols, textElements = gpu.text.rows * gpu.text.cols;
  const bool hostGradients = !gpu.gradientsOnDevice;
  return queueSingleRankCall(info, state, std::move(call), std::move(inputs), imageElements, textElements,
                             hostGradients);
}

// ncclCommInitRank blocks until every rank has joined: a worker thread, never the JS thread.
class NcclConnectWorker : public RankCallWorker {
 public:
  NcclConnectWorker(Napi::Env env, std::shared_ptr<RingState> state)
      : RankCallWorker(env, "siglip:ncclConnect", std::move(state)), id_(state_->ncclId) {}

 protected:
  void run() override {
    transport_ = ring::createNcclTransport(state_->rank, state_->size, id_, state_->device, state_->timeout);
  }
  Napi::Value result(Napi::Env env) override {
    state_->endpoints.clear();
    state_->endpoints.push_back(std::move(transport_));
    return env.Undefined();
  }

 private:
  std::vector<uint8_t> id_;
  std::unique_ptr<ring::Transport> transport_;
};

// ncclCommInitAll for a local ring of GPUs, on a worker thread as it blocks.
class LocalNcclConnectWorker : public RankCallWorker {
 public:
  LocalNcclConnectWorker(Napi::Env env, std::shared_ptr<RingState> state)
      : RankCallWorker(env, "siglip:ncclConnectLocal", std::move(state)) {}

 protected:
  void run() override { endpoints_ = ring::createNcclGroupAllDevices(state_->devices, state_->timeout); }
  Napi::Value result(Napi::Env env) override {
    state_->endpoints = std::move(endpoints_);
    return env.Undefined();
  }

 private:
  std::vector<std::unique_ptr<ring::Transport>> endpoints_;
};

}  // namespace

void requireNccl(Napi::Env env) {
  std::string reason;
  if (!ring::ncclAvailable(&reason)) {
    throw makeJsError(env, ErrorKind::Internal,
                      "NCCL rings need NCCL (libnccl.so.2, e.g. from pip install nvidia-nccl-cu12), which cannot "
                      "be loaded: " + reason,
                      "", kErrNoNccl);
  }
}

Napi::Value connectLocalNccl(Napi::Env env, const std::shared_ptr<RingState>& state) {
  return (new LocalNcclConnectWorker(env, state))->queue();
}

}  // namespace ring_internal

namespace {

using namespace ring_internal;

// new NcclRingHandle({ rank, size, id, device, timeoutMs }), then connect() (ncclCommInitRank).
class NcclRingHandle : public RingHandleBase<NcclRingHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return defineRingClass(env, "NcclRingHandle",
                           {InstanceMethod("sigmoidLoss", &NcclRingHandle::SigmoidLoss),
                            InstanceMethod("connect", &NcclRingHandle::Connect),
                            InstanceMethod("allGather", &NcclRingHandle::AllGather)});
  }

  explicit NcclRingHandle(const Napi::CallbackInfo& info) : RingHandleBase(info) {
    Napi::Env env = info.Env();
    construct(env, RingKind::Nccl, [&](RingState& state) {
      Napi::Object options = readOptions(info[0], "options");
      state.timeout = readTimeout(options);
      state.size = static_cast<int>(readInteger(options.Get("size"), "options.size", 1, kMaxRingRanks));
      state.rank = static_cast<int>(readInteger(options.Get("rank"), "options.rank", 0, state.size - 1));
      state.device = static_cast<int>(readInteger(options.Get("device"), "options.device", 0, INT_MAX));
      Napi::Value id = options.Get("id");
      const std::string expected = "a Uint8Array of " + std::to_string(ring::kNcclUniqueIdBytes) +
                                   " bytes (from Ring.ncclUniqueId() on one rank)";
      if (!id.IsTypedArray() || id.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        throw typeError(env, "options.id", expected, describeValue(id));
      Napi::Uint8Array bytes = id.As<Napi::Uint8Array>();
      if (bytes.ElementLength() != ring::kNcclUniqueIdBytes || bytes.ArrayBuffer().IsDetached())
        throw rangeError(env, "options.id", expected, describeValue(id));
      state.ncclId.assign(bytes.Data(), bytes.Data() + bytes.ElementLength());
      cuda::requireDevice(state.device);
      requireNccl(env);
    });
  }

 private:
  Napi::Value SigmoidLoss(const Napi::CallbackInfo& info) {
    return withJsErrors(info.Env(), [&]() -> Napi::Value { return ncclSigmoidLoss(info, connected(info.Env())); });
  }
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = usable(env);
      if (state->endpoints.empty()) return (new NcclConnectWorker(env, state))->queue();
      return resolvedPromise(env);
    });
  }
  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    return withJsErrors(info.Env(), [&]() -> Napi::Value { return rankAllGather(info, connected(info.Env())); });
  }
};

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    requireNccl(env);
    const std::vector<uint8_t> id = ring::ncclUniqueIdBytes();
    Napi::Uint8Array out = Napi::Uint8Array::New(env, id.size());
    std::copy(id.begin(), id.end(), out.Data());
    return out;
  });
}

Napi::Value NcclInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  std::string reason;
  const bool available = ring::ncclAvailable(&reason);
  out.Set("available", Napi::Boolean::New(env, available));
  out.Set("reason", Napi::String::New(env, reason));
  std::string library, version;
  if (available) {
    try {
      library = ring::ncclLibraryPath();
      version = ring::ncclVersionString();
    } catch (const std::exception&) {
    }
  }
  out.Set("library", Napi::String::New(env, library));
  out.Set("version", Napi::String::New(env, version));
  return out;
}

}  // namespace

void registerNcclRing(Napi::Env env, Napi::Object exports) {
  exports.Set("NcclRingHandle", NcclRingHandle::define(env));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId, "ncclUniqueId"));
  exports.Set("ncclInfo", Napi::Function::New(env, NcclInfo, "ncclInfo"));
}

void ncclBuildInfo(Napi::Env env, Napi::Object out) { out.Set("nccl", Napi::Boolean::New(env, true)); }

}  // namespace siglip::addon

#else  // the CPU build: no NCCL rings (lib/ring/rank.ts answers ERR_SIGLIP_NO_CUDA first)

namespace siglip::addon {

void registerNcclRing(Napi::Env, Napi::Object) {}

void ncclBuildInfo(Napi::Env env, Napi::Object out) { out.Set("nccl", Napi::Boolean::New(env, false)); }

}  // namespace siglip::addon

#endif
