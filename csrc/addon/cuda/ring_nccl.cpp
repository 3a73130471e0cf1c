// NcclRingHandle: this process's GPU rank of an NCCL ring, plus ncclUniqueId() and ncclInfo(),
// and what a local ring of GPUs over NCCL needs (connect(): ncclCommInitAll); the one place of
// the addon that binds NCCL.
#include <algorithm>
#include <climits>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "addon/convert.h"
#include "addon/cuda_bindings.h"
#include "addon/ring_handle.h"
#include "addon/ring_rank.h"
#include "core/errors.h"
#include "cuda/cuda_backend.h"
#include "ring/nccl/nccl_transport.h"

namespace siglip::addon {
namespace ring_internal {
namespace {

// Throws ERR_SIGLIP_NO_NCCL (a JS error) when libnccl cannot be loaded.
void requireNccl(Napi::Env env) {
  std::string reason;
  if (!ring::ncclAvailable(&reason)) {
    throw makeJsError(env, ErrorKind::Internal,
                      "NCCL rings need NCCL (libnccl.so.2, e.g. from pip install nvidia-nccl-cu12), which cannot "
                      "be loaded: " + reason,
                      "", kErrNoNccl);
  }
}

}  // namespace

void requireLocalNccl(Napi::Env env, const RingState& state) {
  if (state.devices.empty())
    throw typeError(env, "options.transport", "'memcpy' for a CPU ring ('nccl' needs GPU ranks)", "'nccl'");
  requireNccl(env);
}

// ncclCommInitAll over the ring's devices (one endpoint per rank, each then driven by its
// rank's thread).
Napi::Value connectLocalNccl(Napi::Env env, const std::shared_ptr<RingState>& state) {
  return queueRankRingCall(
      env, "siglip:ncclConnectLocal", state,
      [state] { return ring::createNcclGroupAllDevices(state->devices, state->timeout); },
      [state](Napi::Env env, std::vector<std::unique_ptr<ring::Transport>>& endpoints) {
        state->endpoints = std::move(endpoints);
        return env.Undefined();
      });
}

}  // namespace ring_internal

namespace {

using namespace ring_internal;

// new NcclRingHandle({ rank, size, id, device, timeoutMs }), then connect() (ncclCommInitRank).
class NcclRingHandle : public RingHandleBase<NcclRingHandle> {
 public:
  static Napi::Function define(Napi::Env env) { return defineRingClass(env, "NcclRingHandle", true); }

  explicit NcclRingHandle(const Napi::CallbackInfo& info) : RingHandleBase(info) {
    Napi::Env env = info.Env();
    construct(info, RingKind::Nccl, [&](RingState& state, Napi::Object options) {
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

  // image/text: device matrix handles on the ring's device or host { data, rows, cols }
  // (float32, uploaded for the call); a Promise of this rank's result.
  Napi::Value loss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
    HostInputs inputs(InputUse::Copy);
    auto call = readGpuRank(info[0], info[1], "image", "text", state->device, nullptr, "image", inputs);
    return rankSigmoidLoss(info, state, std::move(call), std::move(inputs), true);
  }
  // ncclCommInitRank blocks until every rank has joined: a worker thread, never the JS thread.
  Napi::Value join(Napi::Env env, const std::shared_ptr<RingState>& state) {
    return queueRankRingCall(
        env, "siglip:ncclConnect", state,
        [state, id = state->ncclId] {
          return ring::createNcclTransport(state->rank, state->size, id, state->device, state->timeout);
        },
        [state](Napi::Env env, std::unique_ptr<ring::Transport>& transport) {
          state->endpoints.clear();
          state->endpoints.push_back(std::move(transport));
          return env.Undefined();
        });
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

