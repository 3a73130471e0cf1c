// The CUDA part of the raw binding (csrc/addon/cuda/, compiled by the CMake build with CUDA
// only): what its files share. The device matrix handle is a JavaScript object (class
// DeviceMatrix of the raw binding) that owns GPU memory through a cuda::SharedMatrix (a
// std::shared_ptr<cuda::DeviceBuffer>, its shape, dtype and device); lib/device_matrix.ts wraps
// it in the public DeviceMatrix class.
//
// Ownership: the handle holds one reference to the buffer; a loss call in flight holds
// another (copied on the JS thread when it is queued). dispose() drops the handle's, so the
// memory is freed at once when no call uses it, or when the last call using it settles.
// The handle's destructor (run when V8 collects it) is the last safety net.
#pragma once
#include <napi.h>

#include <string>

#include "addon/host_inputs.h"
#include "cuda/cuda_backend.h"
#include "cuda/host_loss.h"

namespace siglip::addon {

// "float32" | "bfloat16" | "float16" → DType; throws a RangeError naming `argument` otherwise.
cuda::DType readDType(Napi::Value value, const std::string& argument);

class DeviceMatrixHandle : public Napi::ObjectWrap<DeviceMatrixHandle> {
 public:
  // The JS class: new DeviceMatrix(data | null, rows, cols, dtype, device). data is a
  // Float32Array (float32) or Uint16Array (bfloat16/float16 bits) of rows × cols values,
  // uploaded once; null allocates rows × cols zeros. device is a CUDA ordinal.
  static Napi::Function defineClass(Napi::Env env);
  // A new JS handle owning `matrix` (gradients a loss call leaves on the device).
  static Napi::Object wrap(Napi::Env env, cuda::SharedMatrix matrix);
  // The handle behind `value`, or null when `value` is not one (checked by type tag, so
  // look-alike objects and prototype tricks are refused, never dereferenced).
  static DeviceMatrixHandle* unwrap(Napi::Value value);

  explicit DeviceMatrixHandle(const Napi::CallbackInfo& info);

  // The live matrix; throws Error (code ERR_SIGLIP_DISPOSED, naming `argument`) once disposed.
  const cuda::SharedMatrix& live(Napi::Env env, const std::string& argument) const;

 private:
  Napi::Value Download(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  Napi::Value Rows(const Napi::CallbackInfo& info);
  Napi::Value Cols(const Napi::CallbackInfo& info);
  Napi::Value DTypeName(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  cuda::SharedMatrix data_;
};

// A loss input named `name`: a DeviceMatrix handle (kept alive by `inputs`), which must live
// on `device` (`deviceWhat` says whose device that is: "options.device", "its rank's device"),
// or a host { data, rows, cols } (float32, uploaded for the call).
cuda::HostOrDeviceInput readCudaInput(Napi::Value value, const std::string& name, int device,
                                      const std::string& deviceWhat, HostInputs& inputs);

// options.precision ('tf32' | 'fp32') and options.gradients ('host' | 'device').
struct GpuOptions {
  cuda::Precision precision = cuda::Precision::TF32;
  bool gradientsOnDevice = false;
};
GpuOptions readGpuOptions(Napi::Object options);

// The CUDA loss calls (loss.cpp): cudaSigmoidLoss, cudaSoftmaxLoss and their Async forms.
void registerCudaLosses(Napi::Env env, Napi::Object exports);

}  // namespace siglip::addon
