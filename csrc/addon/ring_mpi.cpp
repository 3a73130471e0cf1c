// MpiRingHandle: this process's rank of an MPI job, bound only where the addon is built with
// MPI (SIGLIP_WITH_MPI); the one place of the addon that guards on it. MPI is initialised on
// the JS thread when the first handle is made and finalised when the environment is torn
// down (or by mpiFinalize(), which lib/ring/rank.ts calls at process exit).
#include "ring_bindings.h"

#if defined(SIGLIP_WITH_MPI)
#include <dlfcn.h>
#include <mpi.h>

#include <algorithm>
#include <string>

#include "ring/mpi/mpi_transport.h"
#include "ring_handle.h"
#include "ring_rank.h"

namespace siglip::addon {
namespace {

using namespace ring_internal;

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

// new MpiRingHandle({ timeoutMs }): MPI_COMM_WORLD's rank and size.
class MpiRingHandle : public RingHandleBase<MpiRingHandle> {
 public:
  static Napi::Function define(Napi::Env env) { return defineRingClass(env, "MpiRingHandle", true); }

  explicit MpiRingHandle(const Napi::CallbackInfo& info) : RingHandleBase(info) {
    construct(info, RingKind::Mpi, [&](RingState& state, Napi::Object) {
      makeMpiSymbolsGlobal();
      state.endpoints.push_back(ring::createMpiTransport(state.timeout));
      state.rank = state.endpoints[0]->rank();
      state.size = state.endpoints[0]->size();
      if (!mpiCleanupHookAdded) {
        // MPI_Finalize when this environment is torn down (process exit), on the JS thread,
        // which is the thread that initialised MPI.
        napi_add_env_cleanup_hook(info.Env(), finalizeMpiAtExit, nullptr);
        mpiCleanupHookAdded = true;
      }
    });
  }

  // One host shard, on the CPU; a Promise of this rank's result.
  Napi::Value loss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
    auto call = std::make_unique<CpuRankCall>();
    HostInputs inputs(InputUse::Copy);
    call->shard.image = BlockMatrix::host(readMatrix(info[0], "image", inputs));
    call->shard.text = BlockMatrix::host(readMatrix(info[1], "text", inputs));
    return rankSigmoidLoss(info, state, std::move(call), std::move(inputs), false);
  }
  Napi::Value join(Napi::Env env, const std::shared_ptr<RingState>&) { return resolvedPromise(env); }  // never: connected when made
};

void MpiFinalize(const Napi::CallbackInfo&) { ring::finalizeMpi(); }

}  // namespace

void registerMpiRing(Napi::Env env, Napi::Object exports) {
  exports.Set("MpiRingHandle", MpiRingHandle::define(env));
  exports.Set("mpiFinalize", Napi::Function::New(env, MpiFinalize, "mpiFinalize"));
}

void mpiBuildInfo(Napi::Env env, Napi::Object out) {
  out.Set("mpi", Napi::Boolean::New(env, true));
  out.Set("mpiLibrary", Napi::String::New(env, mpiLibraryVersion()));
  out.Set("mpiLaunched", Napi::Boolean::New(env, ring::launchedByMpi()));
}

}  // namespace siglip::addon

#else  // without MPI: no MpiRingHandle (lib/ring/rank.ts says how to get one)

namespace siglip::addon {

void registerMpiRing(Napi::Env env, Napi::Object exports) {
  exports.Set("mpiFinalize", Napi::Function::New(env, [](const Napi::CallbackInfo&) {}, "mpiFinalize"));
}

void mpiBuildInfo(Napi::Env env, Napi::Object out) {
  out.Set("mpi", Napi::Boolean::New(env, false));
  out.Set("mpiLibrary", Napi::String::New(env, ""));
  out.Set("mpiLaunched", Napi::Boolean::New(env, false));
}

}  // namespace siglip::addon

#endif
