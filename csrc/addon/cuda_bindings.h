// What the rest of the addon needs of its CUDA part, the one seam between the two builds.
// The CMake build with CUDA compiles csrc/addon/cuda/ (these functions' definitions, the
// DeviceMatrix class, the CUDA loss calls, GPU ranks and NCCL rings); node-gyp's CPU build
// compiles cuda_stubs.cpp instead, the addon's only file that asks which build it is in.
// lib/ tells the two builds apart by the presence of cudaAvailable.
//
// Exports added by registerCudaBindings (CUDA build; none in the CPU build):
//   cudaAvailable()    → { available, deviceCount, reason }      never throws; no GPU context
//   cudaDevices()      → { deviceCount, reason, runtimeVersion, driverVersion,
//                          devices: [{ ordinal, name, computeCapability, totalMemory, freeMemory }] }
//   cudaMemory()       → { allocatedBytes, peakAllocatedBytes }   device memory this library holds
//   cudaResetPeakMemory()
//   DeviceMatrix       the device matrix handle class (cuda/device_matrix.h)
//   cudaSigmoidLoss / cudaSoftmaxLoss / cudaSigmoidLossAsync / cudaSoftmaxLossAsync (cuda/loss.cpp)
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "host_inputs.h"
#include "ring/transport.h"

namespace siglip::addon {

void registerCudaBindings(Napi::Env env, Napi::Object exports);

// backendInfo().cuda: { compiled: true, available, deviceCount, reason, runtimeVersion,
// driverVersion, devices, gemm: { backward, tile, cublasLibrary, cublasVersion, reason } }.
// Never throws; sets nothing in the CPU build.
void addCudaBackendInfo(Napi::Env env, Napi::Object backendInfo);

// The NCCL ring (cuda/ring_nccl.cpp): NcclRingHandle, ncclUniqueId(), ncclInfo(); and
// ringBuildInfo().nccl.
void registerNcclRing(Napi::Env env, Napi::Object exports);
void ncclBuildInfo(Napi::Env env, Napi::Object out);

namespace ring_internal {

struct RingState;
struct RankCall;

// Local rings of GPUs (cuda/ring_gpu_rank.cpp). options.devices (rank r on CUDA device
// devices[r]), the ERR_SIGLIP_NO_CUDA error in the CPU build.
void readLocalDevices(Napi::Env env, Napi::Value devices, RingState& state);
// options.transport 'nccl': a ring of GPUs and a loadable NCCL, or an error.
void requireLocalNccl(Napi::Env env, const RingState& state);
// connect() of a local ring over NCCL: ncclCommInitAll on a worker thread (it blocks).
Napi::Value connectLocalNccl(Napi::Env env, const std::shared_ptr<RingState>& state);
// The in-process endpoints of a ring of GPUs (messages in device memory).
std::vector<std::unique_ptr<ring::Transport>> createLocalGpuEndpoints(const RingState& state);

// A GPU rank's call: image and text are DeviceMatrix handles on `device` or host
// { data, rows, cols } (float32, uploaded for the call), named `imageName` / `textName`;
// their dtype must be that of `reference`'s image (named `referenceName`), or of this
// rank's own image when `reference` is null.
std::unique_ptr<RankCall> readGpuRank(Napi::Value image, Napi::Value text, const std::string& imageName,
                                      const std::string& textName, int device, const RankCall* reference,
                                      const std::string& referenceName, HostInputs& inputs);
// options.precision ('tf32' | 'fp32') and options.gradients ('host' | 'device') of GPU ranks
// (lib/ring/options.ts fills the defaults), set on each; true when the gradients go to the host.
bool readGpuRankOptions(Napi::Object options, const std::vector<RankCall*>& ranks);

}  // namespace ring_internal
}  // namespace siglip::addon
