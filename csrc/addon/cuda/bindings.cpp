// registerCudaBindings and backendInfo().cuda in the CUDA build (addon/cuda_bindings.h).
#include <string>

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

// Never throws: the loader calls it to decide which binary to use. deviceCount creates no
// GPU context (cheap, and harmless on a machine whose GPUs belong to other processes).
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string reason;
  const int count = countDevices(reason);
  Napi::Object out = Napi::Object::New(env);
  out.Set("available", Napi::Boolean::New(env, count > 0));
  out.Set("deviceCount", Napi::Number::New(env, count));
  out.Set("reason", Napi::String::New(env, reason));
  return out;
}

// The devices, with names, compute capability and memory. deviceInfo() asks each device for
// its free memory, which creates that device's primary context (as any use of it would).
Napi::Object describeDevices(Napi::Env env) {
  std::string reason;
  const int count = countDevices(reason);
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
  Napi::Object out = Napi::Object::New(env);
  out.Set("available", Napi::Boolean::New(env, count > 0));
  out.Set("deviceCount", Napi::Number::New(env, count));
  out.Set("reason", Napi::String::New(env, reason));
  out.Set("runtimeVersion", Napi::Number::New(env, cuda::runtimeVersion()));
  out.Set("driverVersion", Napi::Number::New(env, cuda::driverVersion()));
  out.Set("devices", devices);
  return out;
}

Napi::Value CudaDevices(const Napi::CallbackInfo& info) { return describeDevices(info.Env()); }

Napi::Value CudaMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("allocatedBytes", Napi::Number::New(env, static_cast<double>(cuda::allocatedBytes())));
  out.Set("peakAllocatedBytes", Napi::Number::New(env, static_cast<double>(cuda::peakAllocatedBytes())));
  return out;
}

void CudaResetPeakMemory(const Napi::CallbackInfo&) { cuda::resetPeakAllocatedBytes(); }

// Which kernels run the GEMMs (cuda::gemmPathInfo: never throws; loads cuBLAS, no GPU context).
Napi::Object describeGemmPaths(Napi::Env env) {
  const cuda::GemmPathInfo paths = cuda::gemmPathInfo();
  Napi::Object out = Napi::Object::New(env);
  out.Set("forward", Napi::String::New(env, paths.forward));
  out.Set("backward", Napi::String::New(env, paths.backward));
  out.Set("tile", Napi::String::New(env, paths.tile));
  out.Set("overlap", Napi::Boolean::New(env, paths.overlap));
  out.Set("cublasLibrary", Napi::String::New(env, paths.cublasLibrary));
  out.Set("cublasVersion", Napi::String::New(env, paths.cublasVersion));
  out.Set("reason", Napi::String::New(env, paths.reason));
  return out;
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
