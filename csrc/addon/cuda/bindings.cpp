// registerCudaBindings and backendInfo().cuda in the CUDA build (addon/cuda_bindings.h).
#include <string>

#include "addon/convert.h"
#include "addon/cuda_bindings.h"
#include "cuda/cuda_backend.h"
#include "device_matrix.h"

namespace siglip::addon {
namespace {

// deviceCount(), with a reason that says what is missing: without a driver the CUDA runtime
// reports "driver version is insufficient", which reads like a version mismatch.
int countDevices(std::string& reason) {
  int count = 0;
  try {
    count = cuda::deviceCount(&reason);
  } catch (const std::exception& e) {
    count = 0;
    reason = e.what();
  }
  if (count > 0) return count;
  if (reason.empty()) reason = "no CUDA device found";
  if (cuda::driverVersion() == 0) reason = "no NVIDIA driver found (the CUDA driver library libcuda could not be loaded)";
  return 0;
}

// { available, deviceCount, reason }; never throws. deviceCount creates no GPU context (cheap,
// and harmless on a machine whose GPUs belong to other processes).
Napi::Object availability(Napi::Env env, int& count) {
  std::string reason;
  count = countDevices(reason);
  return makeObject(env, {{"available", Napi::Boolean::New(env, count > 0)},
                          {"deviceCount", Napi::Number::New(env, count)},
                          {"reason", Napi::String::New(env, reason)}});
}

// The loader calls it to decide which binary to use.
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  int count = 0;
  return availability(info.Env(), count);
}

// The devices, with names, compute capability and memory. deviceInfo() asks each device for
// its free memory, which creates that device's primary context (as any use of it would).
Napi::Object describeDevices(Napi::Env env) {
  int count = 0;
  Napi::Object out = availability(env, count);
  Napi::Array devices = Napi::Array::New(env);
  for (int ordinal = 0; ordinal < count; ++ordinal) {
    Napi::Object device = Napi::Object::New(env);
    device.Set("ordinal", Napi::Number::New(env, ordinal));
    try {
      const cuda::DeviceInfo d = cuda::deviceInfo(ordinal);
      device.Set("name", Napi::String::New(env, d.name));
      device.Set("computeCapability",
                 Napi::String::New(env, std::to_string(d.computeMajor) + "." + std::to_string(d.computeMinor)));
      device.Set("totalMemory", Napi::Number::New(env, static_cast<double>(d.totalMemory)));
      device.Set("freeMemory", Napi::Number::New(env, static_cast<double>(d.freeMemory)));
    } catch (const std::exception& e) {
      device.Set("error", Napi::String::New(env, e.what()));
    }
    devices.Set(static_cast<uint32_t>(ordinal), device);
  }
  out.Set("runtimeVersion", Napi::Number::New(env, cuda::runtimeVersion()));
  out.Set("driverVersion", Napi::Number::New(env, cuda::driverVersion()));
  out.Set("devices", devices);
  return out;
}

Napi::Value CudaDevices(const Napi::CallbackInfo& info) { return describeDevices(info.Env()); }

Napi::Value CudaMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return makeObject(env, {{"allocatedBytes", Napi::Number::New(env, double(cuda::allocatedBytes()))},
                          {"peakAllocatedBytes", Napi::Number::New(env, double(cuda::peakAllocatedBytes()))}});
}

void CudaResetPeakMemory(const Napi::CallbackInfo&) { cuda::resetPeakAllocatedBytes(); }

// Which kernels run the GEMMs (cuda::gemmPathInfo: never throws; loads cuBLAS, no GPU context).
Napi::Object describeGemmPaths(Napi::Env env) {
  const cuda::GemmPathInfo paths = cuda::gemmPathInfo();
  const auto string = [&](const std::string& value) { return Napi::String::New(env, value); };
  return makeObject(env, {{"forward", string(paths.forward)},
                          {"backward", string(paths.backward)},
                          {"tile", string(paths.tile)},
                          {"overlap", Napi::Boolean::New(env, paths.overlap)},
                          {"cublasLibrary", string(paths.cublasLibrary)},
                          {"cublasVersion", string(paths.cublasVersion)},
                          {"reason", string(paths.reason)}});
}

}  // namespace

void addCudaBackendInfo(Napi::Env env, Napi::Object backendInfo) {
  Napi::Object info = describeDevices(env);
  info.Set("compiled", Napi::Boolean::New(env, true));
  info.Set("gemm", describeGemmPaths(env));
  backendInfo.Set("cuda", info);
}

void registerCudaBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("DeviceMatrix", DeviceMatrixHandle::defineClass(env));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable, "cudaAvailable"));
  exports.Set("cudaDevices", Napi::Function::New(env, CudaDevices, "cudaDevices"));
  exports.Set("cudaMemory", Napi::Function::New(env, CudaMemory, "cudaMemory"));
  exports.Set("cudaResetPeakMemory", Napi::Function::New(env, CudaResetPeakMemory, "cudaResetPeakMemory"));
  registerCudaLosses(env, exports);
}

}  // namespace siglip::addon
