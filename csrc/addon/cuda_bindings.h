// The CUDA part of the raw binding, present only in the CMake build with CUDA
// (SIGLIP_WITH_CUDA); node-gyp's CPU build compiles cuda_*.cpp to nothing and exports none
// of it (lib/ tells the two builds apart by the presence of cudaAvailable).
//
// Exports added by registerCudaBindings:
//   cudaAvailable()    → { available, deviceCount, reason }      never throws; no GPU context
//   cudaDevices()      → { deviceCount, reason, runtimeVersion, driverVersion,
//                          devices: [{ ordinal, name, computeCapability, totalMemory, freeMemory }] }
//   cudaMemory()       → { allocatedBytes, peakAllocatedBytes }   device memory this library holds
//   cudaResetPeakMemory()
//   DeviceMatrix       the device matrix handle class (cuda_matrix.h)
//   cudaSigmoidLoss / cudaSoftmaxLoss / cudaSigmoidLossAsync / cudaSoftmaxLossAsync (cuda_loss.h)
#pragma once
#ifdef SIGLIP_WITH_CUDA
#include <napi.h>

namespace siglip::addon {

void registerCudaBindings(Napi::Env env, Napi::Object exports);

// backendInfo().cuda: { compiled: true, available, deviceCount, reason, runtimeVersion,
// driverVersion, devices, gemm: { backward, tile, cublasLibrary, cublasVersion, reason } }.
// Never throws.
Napi::Object cudaBackendInfo(Napi::Env env);

}  // namespace siglip::addon

#endif  // SIGLIP_WITH_CUDA
