// NcclRingHandle: this process's GPU rank of an NCCL ring, plus ncclUniqueId() and ncclInfo(),
// bound only in the CUDA build (SIGLIP_WITH_CUDA); the one place of the addon that binds NCCL.
// (Local rings of GPUs, which may also talk through NCCL, are LocalRingHandle's: ring_local.cpp.)
#include "ring_bindings.h"

#if defined(SIGLIP_WITH_CUDA)
#include <algorithm>
#include <climits>
#include <exception>
#include <string>
#include <vector>

#include "convert.h"
#include "cuda/cuda_backend.h"
#include "ring/nccl_transport.h"
#include "ring_all_gather.h"
#include "ring_handle.h"
#include "ring_single_rank.h"

namespace siglip::addon {
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
