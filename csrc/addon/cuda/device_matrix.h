// The device matrix handle of the CUDA build: a JavaScript object (class DeviceMatrix of the
// raw binding) that owns GPU memory through a std::shared_ptr<cuda::DeviceBuffer>, with its
// shape, dtype and device. lib/device_matrix.ts wraps it in the public DeviceMatrix class.
//
// Ownership: the handle holds one reference to the buffer; a loss call in flight holds
// another (copied on the JS thread when it is queued). dispose() drops the handle's, so the
// memory is freed at once when no call uses it, or when the last call using it settles.
// The handle's destructor (run when V8 collects it) is the last safety net.
//
// Compiled only in the CMake build with CUDA (SIGLIP_WITH_CUDA); node-gyp's CPU build sees
// an empty file.
#pragma once
#ifdef SIGLIP_WITH_CUDA
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "cuda/cuda_backend.h"

namespace siglip::addon {

// `code` of the error for a disposed device matrix (lib/device_matrix.ts uses the same).
constexpr const char* kErrDisposed = "ERR_SIGLIP_DISPOSED";

// What a device matrix is, without any JavaScript: shared with the loss calls.
struct DeviceMatrixData {
  std::shared_ptr<cuda::DeviceBuffer> buffer;
  int64_t rows = 0;
  int64_t cols = 0;
  cuda::DType dtype = cuda::DType::Float32;
  int device = 0;
  cuda::DeviceMatrixView view() const;
};

// "float32" | "bfloat16" | "float16" → DType; throws a RangeError naming `argument` otherwise.
cuda::DType readDType(Napi::Value value, const std::string& argument);

class DeviceMatrixHandle : public Napi::ObjectWrap<DeviceMatrixHandle> {
 public:
  // The JS class: new DeviceMatrix(data | null, rows, cols, dtype, device). data is a
  // Float32Array (float32) or Uint16Array (bfloat16/float16 bits) of rows × cols values,
  // uploaded once; null allocates rows × cols zeros. device is a CUDA ordinal.
  static Napi::Function defineClass(Napi::Env env);
  // A new JS handle owning `data` (gradients a loss call leaves on the device).
  static Napi::Object wrap(Napi::Env env, DeviceMatrixData data);
  // The handle behind `value`, or null when `value` is not one (checked by type tag, so
  // look-alike objects and prototype tricks are refused, never dereferenced).
  static DeviceMatrixHandle* unwrap(Napi::Value value);

  explicit DeviceMatrixHandle(const Napi::CallbackInfo& info);

  // The live matrix; throws Error (code ERR_SIGLIP_DISPOSED, naming `argument`) once disposed.
  const DeviceMatrixData& live(Napi::Env env, const std::string& argument) const;

 private:
  Napi::Value Download(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  Napi::Value Rows(const Napi::CallbackInfo& info);
  Napi::Value Cols(const Napi::CallbackInfo& info);
  Napi::Value DTypeName(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  DeviceMatrixData data_;
};

}  // namespace siglip::addon

#endif  // SIGLIP_WITH_CUDA
