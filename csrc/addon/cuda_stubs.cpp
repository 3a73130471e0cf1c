// cuda_bindings.h in the CPU build (node-gyp's, or CMake's without a CUDA compiler): no CUDA
// exports, no backendInfo().cuda, no NCCL rings, and local rings of GPUs refused when made.
// The addon's one guard on CUDA: the CUDA build compiles csrc/addon/cuda/ instead.
#ifndef SIGLIP_WITH_CUDA
#include "cuda_bindings.h"
#include "js_errors.h"
#include "ring_convert.h"
#include "ring_rank.h"

namespace siglip::addon {

void registerCudaBindings(Napi::Env, Napi::Object) {}
void addCudaBackendInfo(Napi::Env, Napi::Object) {}
void registerNcclRing(Napi::Env, Napi::Object) {}  // lib/ring/rank.ts answers ERR_SIGLIP_NO_CUDA first
void ncclBuildInfo(Napi::Env env, Napi::Object out) { out.Set("nccl", Napi::Boolean::New(env, false)); }

namespace ring_internal {
namespace {

Error noGpuRanks() { return Error(ErrorKind::Internal, "options.devices", "local rings of GPUs need the CUDA build"); }

}  // namespace

void readLocalDevices(Napi::Env env, Napi::Value, RingState&) {
  throw makeJsError(env, ErrorKind::Internal,
                    "Local rings of GPUs need the CUDA build of siglip-kernels (this is the CPU build)", "", kErrNoCuda);
}

void requireLocalNccl(Napi::Env env, const RingState&) {
  throw makeJsError(env, ErrorKind::Internal,
                    "Local rings over NCCL need the CUDA build of siglip-kernels (this is the CPU build)", "", kErrNoCuda);
}

// Never reached: no ring of GPUs exists in this build.
Napi::Value connectLocalNccl(Napi::Env, const std::shared_ptr<RingState>&) { throw noGpuRanks(); }
std::vector<std::unique_ptr<ring::Transport>> createLocalGpuEndpoints(const RingState&) { throw noGpuRanks(); }
std::unique_ptr<RankCall> readGpuRank(Napi::Value, Napi::Value, const std::string&, const std::string&, int,
                                      const RankCall*, const std::string&, HostInputs&) {
  throw noGpuRanks();
}
bool readGpuRankOptions(Napi::Object, const std::vector<RankCall*>&) { throw noGpuRanks(); }

}  // namespace ring_internal
}  // namespace siglip::addon

#endif  // SIGLIP_WITH_CUDA
