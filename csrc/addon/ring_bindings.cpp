#include "ring_bindings.h"

#include <algorithm>
#include <climits>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "convert.h"
#include "core/errors.h"
#include "js_errors.h"
#include "ring/local_transport.h"
#include "ring_all_gather.h"
#include "ring_convert.h"
#include "ring_local.h"
#include "ring_single_rank.h"
#if defined(SIGLIP_WITH_MPI)
#include <dlfcn.h>
#include <mpi.h>

#include "ring/mpi_transport.h"
#endif
#if defined(SIGLIP_WITH_CUDA)
#include "cuda/cuda_backend.h"
#include "ring/nccl_transport.h"
#endif

namespace siglip::addon {
namespace {

// RingKind, RingState and the shared conversions (ring_convert.h); the calls of local rings
// (ring_local.h) and of one-rank-per-process rings (ring_single_rank.h).
using namespace ring_internal;

// ---- MPI: init on the JS thread, finalize at exit ---------------------------------------

#if defined(SIGLIP_WITH_MPI)
bool mpiCleanupHookAdded = false;

void finalizeMpiAtExit(void*) { ring::finalizeMpi(); }

// Open MPI loads its components with dlopen and expects libmpi's symbols to be global; a
// library pulled in by a Node addon (dlopen'ed RTLD_LOCAL) is not. Promote it (as mpi4py does).
void makeMpiSymbolsGlobal() {
  Dl_info where;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &where) != 0 && where.dli_fname != nullptr) {
    dlopen(where.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  }
}

std::string mpiLibraryVersion() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "";
  std::string version(text, size_t(std::max(0, length)));
  const size_t end = version.find_first_of("\r\n,");
  return version.substr(0, end);
}
#endif

// ---- the handle ---------------------------------------------------------------------------

class RingHandle : public Napi::ObjectWrap<RingHandle> {
 public:
  static Napi::Function defineClass(Napi::Env env) {
    return DefineClass(env, "RingHandle",
                       {
                           InstanceMethod<&RingHandle::SigmoidLoss>("sigmoidLoss"),
                           InstanceMethod<&RingHandle::Connect>("connect"),
                           InstanceMethod<&RingHandle::AllGather>("allGather"),
                           InstanceMethod<&RingHandle::Dispose>("dispose"),
                           InstanceMethod<&RingHandle::TestFault>("testFault"),
                           InstanceAccessor<&RingHandle::Kind>("kind"),
                           InstanceAccessor<&RingHandle::Rank>("rank"),
                           InstanceAccessor<&RingHandle::Size>("size"),
                           InstanceAccessor<&RingHandle::Disposed>("disposed"),
                       });
  }

  explicit RingHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingHandle>(info) {
    Napi::Env env = info.Env();
    try {
      construct(info);
    } catch (const Napi::Error&) {
      throw;
    } catch (...) {
      throw ringError(env, captureCurrentException());  // e.g. MPI_Init failed: ERR_SIGLIP_RING_FAILED
    }
  }

 private:
  void construct(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw typeError(env, "kind", "'local', 'mpi' or 'nccl'", describeValue(info[0]));
    const std::string kind = info[0].As<Napi::String>().Utf8Value();
    if (kind != "local" && kind != "mpi" && kind != "nccl")
      throw rangeError(env, "kind", "'local', 'mpi' or 'nccl'", describeValue(info[0]));
    Napi::Object options = readOptions(info[1], "options");
    auto state = std::make_shared<RingState>();
    state->timeout = readTimeout(options);
    if (kind == "local") {
      state->kind = RingKind::Local;
      state->size = static_cast<int>(readInteger(options.Get("ranks"), "options.ranks", 1, kMaxRingRanks));
      Napi::Value devices = options.Get("devices");
      if (!absent(devices)) {
#if defined(SIGLIP_WITH_CUDA)
        // Rank r on CUDA device devices[r] (lib/ring.ts resolved the names and checked the GPUs).
        const std::string expected = "an Array of " + std::to_string(state->size) + " CUDA ordinals (one per rank)";
        if (!devices.IsArray() || devices.As<Napi::Array>().Length() != uint32_t(state->size))
          throw typeError(env, "options.devices", expected, describeValue(devices));
        Napi::Array list = devices.As<Napi::Array>();
        for (uint32_t r = 0; r < list.Length(); ++r)
          state->devices.push_back(static_cast<int>(
              readInteger(list.Get(r), "options.devices[" + std::to_string(r) + "]", 0, INT_MAX)));
#else
        throw makeJsError(env, ErrorKind::Internal,
                          "Local rings of GPUs need the CUDA build of siglip-kernels (this is the CPU build)", "",
                          "ERR_SIGLIP_NO_CUDA");
#endif
      }
      Napi::Value transport = options.Get("transport");
      if (!absent(transport)) {
        const std::string name = transport.IsString() ? transport.As<Napi::String>().Utf8Value() : "";
        if (!transport.IsString()) throw typeError(env, "options.transport", "'memcpy' or 'nccl'", describeValue(transport));
        if (name != "memcpy" && name != "nccl")
          throw rangeError(env, "options.transport", "'memcpy' or 'nccl'", describeValue(transport));
        state->localNccl = name == "nccl";
      }
      if (state->localNccl) {
#if defined(SIGLIP_WITH_CUDA)
        if (state->devices.empty())
          throw typeError(env, "options.transport", "'memcpy' for a CPU ring ('nccl' needs GPU ranks)", "'nccl'");
        requireNccl(env);  // the endpoints come with connect() (ncclCommInitAll blocks)
#else
        throw makeJsError(env, ErrorKind::Internal,
                          "Local rings over NCCL need the CUDA build of siglip-kernels (this is the CPU build)", "",
                          "ERR_SIGLIP_NO_CUDA");
#endif
      } else {
        state->endpoints = createLocalEndpoints(*state);
      }
    } else if (kind == "mpi") {
      state->kind = RingKind::Mpi;
#if defined(SIGLIP_WITH_MPI)
      makeMpiSymbolsGlobal();
      state->endpoints.push_back(ring::createMpiTransport(state->timeout));
      state->rank = state->endpoints[0]->rank();
      state->size = state->endpoints[0]->size();
      if (!mpiCleanupHookAdded) {
        // MPI_Finalize when this environment is torn down (process exit), on the JS thread,
        // which is the thread that initialised MPI.
        napi_add_env_cleanup_hook(env, finalizeMpiAtExit, nullptr);
        mpiCleanupHookAdded = true;
      }
#else
      throw makeJsError(env, ErrorKind::Internal,
                        "This build of siglip-kernels has no MPI transport: no MPI was found when the addon was "
                        "compiled. Install Open MPI (e.g. apt-get install openmpi-bin libopenmpi-dev) and rebuild "
                        "(npm rebuild siglip-kernels)",
                        "", kErrNoMpi);
#endif
    } else if (kind == "nccl") {
      state->kind = RingKind::Nccl;
#if defined(SIGLIP_WITH_CUDA)
      state->size = static_cast<int>(readInteger(options.Get("size"), "options.size", 1, kMaxRingRanks));
      state->rank = static_cast<int>(readInteger(options.Get("rank"), "options.rank", 0, state->size - 1));
      state->device = static_cast<int>(readInteger(options.Get("device"), "options.device", 0, INT_MAX));
      Napi::Value id = options.Get("id");
      const std::string expected = "a Uint8Array of " + std::to_string(ring::kNcclUniqueIdBytes) +
                                   " bytes (from Ring.ncclUniqueId() on one rank)";
      if (!id.IsTypedArray() || id.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        throw typeError(env, "options.id", expected, describeValue(id));
      Napi::Uint8Array bytes = id.As<Napi::Uint8Array>();
      if (bytes.ElementLength() != ring::kNcclUniqueIdBytes || bytes.ArrayBuffer().IsDetached())
        throw rangeError(env, "options.id", expected, describeValue(id));
      state->ncclId.assign(bytes.Data(), bytes.Data() + bytes.ElementLength());
      cuda::requireDevice(state->device);
      requireNccl(env);
#else
      throw makeJsError(env, ErrorKind::Internal,
                        "NCCL rings need the CUDA build of siglip-kernels (this is the CPU build)", "",
                        "ERR_SIGLIP_NO_CUDA");
#endif
    } else {
      throw rangeError(env, "kind", "'local', 'mpi' or 'nccl'", describeValue(info[0]));
    }
    kind_ = state->kind;
    state_ = std::move(state);
  }

  // The live state; throws for a disposed ring, one busy with another call, or a broken one.
  std::shared_ptr<RingState> usable(Napi::Env env) {
    if (!state_) {
      throw makeJsError(env, ErrorKind::Internal,
                        "This ring was disposed (dispose() frees its transports; create a new Ring to go on)", "",
                        kErrDisposedCode);
    }
    if (state_->busy) {
      throw makeJsError(env, ErrorKind::Internal,
                        "This ring is busy with another call (a ring runs one call at a time; wait for it to settle)",
                        "", kErrRingBusy);
    }
    if (!state_->broken.empty()) {
      throw makeJsError(env, ErrorKind::Internal,
                        "This ring failed earlier and cannot be used any more (dispose it and create a new one): " +
                            state_->broken,
                        "", kErrRingFailed);
    }
    return state_;
  }

  // usable(), and connected (an NCCL ring once connect() has resolved).
  std::shared_ptr<RingState> connected(Napi::Env env) {
    std::shared_ptr<RingState> state = usable(env);
    if (state->endpoints.empty()) {
      throw makeJsError(env, ErrorKind::Internal, "This ring is not connected yet (await connect() first)", "",
                        kErrRingFailed);
    }
    return state;
  }

  Napi::Value SigmoidLoss(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = connected(env);
      switch (state->kind) {
        case RingKind::Local:
          return localSigmoidLoss(info, state);
        case RingKind::Mpi:
          return mpiSigmoidLoss(info, state);
        case RingKind::Nccl:
#if defined(SIGLIP_WITH_CUDA)
          return ncclSigmoidLoss(info, state);
#else
          break;
#endif
      }
      throw makeJsError(env, ErrorKind::Internal, "unknown ring kind", "");
    });
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = usable(env);
#if defined(SIGLIP_WITH_CUDA)
      if (state->kind == RingKind::Nccl && state->endpoints.empty()) return (new NcclConnectWorker(env, state))->queue();
      if (state->localNccl && state->endpoints.empty()) return (new LocalNcclConnectWorker(env, state))->queue();
#endif
      Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
      done.Resolve(env.Undefined());  // other rings are connected when made
      return done.Promise();
    });
  }

  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return withJsErrors(env, [&]() -> Napi::Value {
      return rankAllGather(info, connected(env));
    });
  }

  void Dispose(const Napi::CallbackInfo&) { state_.reset(); }

  // The test seam (ring_test_fault.h): testFault(rank, mode?) arms a fault for the next call.
  void TestFault(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = usable(env);
      if (state->kind != RingKind::Local) throw typeError(env, "ring", "a local ring", kindName(state->kind));
      state->fault = readRingFault(info[0], info[1], state->size);
      return env.Undefined();
    });
  }

  Napi::Value Kind(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), kindName(state_ ? state_->kind : kind_));
  }
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? state_->rank : 0); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? state_->size : 0); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

  std::shared_ptr<RingState> state_;
  RingKind kind_ = RingKind::Local;
};

Napi::Value RingBuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#if defined(SIGLIP_WITH_MPI)
  out.Set("mpi", Napi::Boolean::New(env, true));
  out.Set("mpiLibrary", Napi::String::New(env, mpiLibraryVersion()));
  out.Set("mpiLaunched", Napi::Boolean::New(env, ring::launchedByMpi()));
#else
  out.Set("mpi", Napi::Boolean::New(env, false));
  out.Set("mpiLibrary", Napi::String::New(env, ""));
  out.Set("mpiLaunched", Napi::Boolean::New(env, false));
#endif
#if defined(SIGLIP_WITH_CUDA)
  out.Set("nccl", Napi::Boolean::New(env, true));
#else
  out.Set("nccl", Napi::Boolean::New(env, false));
#endif
  return out;
}

void MpiFinalize(const Napi::CallbackInfo&) {
#if defined(SIGLIP_WITH_MPI)
  ring::finalizeMpi();
#endif
}

#if defined(SIGLIP_WITH_CUDA)
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
#endif

}  // namespace

void registerRingBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("RingHandle", RingHandle::defineClass(env));
  exports.Set("ringBuildInfo", Napi::Function::New(env, RingBuildInfo, "ringBuildInfo"));
  exports.Set("mpiFinalize", Napi::Function::New(env, MpiFinalize, "mpiFinalize"));
#if defined(SIGLIP_WITH_CUDA)
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId, "ncclUniqueId"));
  exports.Set("ncclInfo", Napi::Function::New(env, NcclInfo, "ncclInfo"));
#endif
}

}  // namespace siglip::addon
