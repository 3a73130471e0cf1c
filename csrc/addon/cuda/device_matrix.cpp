#include "device_matrix.h"

#include <climits>
#include <limits>
#include <utility>
#include <vector>

#include "addon/convert.h"
#include "addon/js_errors.h"

namespace siglip::addon {
namespace {

// Marks objects made by this class, so unwrap() can tell them from anything else.
constexpr napi_type_tag kDeviceMatrixTag = {0x5ec1f0c0da7a11ceULL, 0x9d3b2a41c6e8f705ULL};

// Passed as the only constructor argument by wrap(): JavaScript cannot make this External.
int internalConstructionToken = 0;

// Per environment (main thread, each worker thread): the class, for wrap().
struct CudaAddonData {
  Napi::FunctionReference deviceMatrixClass;
};

CudaAddonData& addonData(Napi::Env env) {
  CudaAddonData* data = env.GetInstanceData<CudaAddonData>();
  if (data == nullptr) {
    data = new CudaAddonData();
    env.SetInstanceData(data);  // deleted with the environment
  }
  return *data;
}

// Host data for an upload: a Float32Array (float32) or Uint16Array (16-bit bits) of `count` values.
const void* readUploadData(Napi::Value value, cuda::DType dtype, int64_t count, std::vector<Napi::Object>& keep) {
  const bool wide = dtype == cuda::DType::Float32;
  Napi::TypedArray array =
      readTypedArray(value, "data", wide ? napi_float32_array : napi_uint16_array, count,
                     wide ? std::string("a Float32Array (dtype float32)")
                          : std::string("a Uint16Array of raw ") + cuda::dtypeName(dtype) + " bits");
  keep.push_back(array);
  return static_cast<const char*>(array.ArrayBuffer().Data()) + array.ByteOffset();
}

}  // namespace

cuda::DType readDType(Napi::Value value, const std::string& argument) {
  const std::string name =
      readChoice(value, argument, {"float32", "bfloat16", "float16"}, "'float32', 'bfloat16' or 'float16'");
  return name == "float32" ? cuda::DType::Float32 : name == "bfloat16" ? cuda::DType::BFloat16 : cuda::DType::Float16;
}

cuda::HostOrDeviceInput readCudaInput(Napi::Value value, const std::string& name, int device,
                                      const std::string& deviceWhat, HostInputs& inputs) {
  Napi::Env env = value.Env();
  cuda::HostOrDeviceInput input;
  if (DeviceMatrixHandle* handle = DeviceMatrixHandle::unwrap(value)) {
    input.matrix = handle->live(env, name);
    if (input.matrix.device != device) {
      throw rangeError(env, name, "a matrix on cuda:" + std::to_string(device) + " (" + deviceWhat + ")",
                       "one on cuda:" + std::to_string(input.matrix.device));
    }
    inputs.keepAlive(value.As<Napi::Object>());
    return input;
  }
  const MatrixView host = readMatrix(value, name, inputs);
  return cuda::HostOrDeviceInput::fromHost(host.data, host.rows, host.cols, device);
}

GpuOptions readGpuOptions(Napi::Object options) {
  GpuOptions out;
  out.precision = readChoice(options.Get("precision"), "options.precision", {"tf32", "fp32"}, "'tf32' or 'fp32'") == "fp32"
                      ? cuda::Precision::FP32
                      : cuda::Precision::TF32;
  out.gradientsOnDevice =
      readChoice(options.Get("gradients"), "options.gradients", {"host", "device"}, "'host' or 'device'") == "device";
  return out;
}

Napi::Function DeviceMatrixHandle::defineClass(Napi::Env env) {
  Napi::Function cls = DefineClass(env, "DeviceMatrix",
                                   {
                                       InstanceMethod<&DeviceMatrixHandle::Download>("download"),
                                       InstanceMethod<&DeviceMatrixHandle::Dispose>("dispose"),
                                       InstanceAccessor<&DeviceMatrixHandle::Rows>("rows"),
                                       InstanceAccessor<&DeviceMatrixHandle::Cols>("cols"),
                                       InstanceAccessor<&DeviceMatrixHandle::DTypeName>("dtype"),
                                       InstanceAccessor<&DeviceMatrixHandle::Device>("device"),
                                       InstanceAccessor<&DeviceMatrixHandle::Bytes>("bytes"),
                                       InstanceAccessor<&DeviceMatrixHandle::Disposed>("disposed"),
                                   });
  addonData(env).deviceMatrixClass = Napi::Persistent(cls);
  return cls;
}

DeviceMatrixHandle::DeviceMatrixHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceMatrixHandle>(info) {
  Napi::Env env = info.Env();
  withJsErrors(env, [&]() {
    if (info.Length() == 1 && info[0].IsExternal() &&
        info[0].As<Napi::External<int>>().Data() == &internalConstructionToken) {
      return 0;  // wrap() fills data_ in
    }
    const int64_t rows = readInteger(info[1], "rows", 1, kMaxSafeInteger);
    const int64_t cols = readInteger(info[2], "cols", 1, kMaxSafeInteger);
    const cuda::DType dtype = readDType(info[3], "options.dtype");
    const int device = static_cast<int>(readInteger(info[4], "options.device", 0, INT_MAX));
    const int64_t elementSize = static_cast<int64_t>(cuda::dtypeSize(dtype));
    if (rows > std::numeric_limits<int64_t>::max() / elementSize / cols) {
      throw rangeError(env, "rows × cols", "a matrix whose size in bytes fits in 63 bits",
                       std::to_string(rows) + " × " + std::to_string(cols));
    }
    const size_t bytes = static_cast<size_t>(rows * cols * elementSize);
    std::vector<Napi::Object> keep;
    const void* host = info[0].IsNull() ? nullptr : readUploadData(info[0], dtype, rows * cols, keep);
    auto buffer = std::make_shared<cuda::DeviceBuffer>(device, bytes);  // OutOfMemory when the GPU has no room
    if (host != nullptr) {
      buffer->upload(host, bytes);
    } else {
      buffer->zero();
    }
    data_ = cuda::SharedMatrix{std::move(buffer), rows, cols, dtype, device};
    return 0;
  });
  // Tagged last: a constructor that threw leaves no tagged, half-made object behind.
  info.This().As<Napi::Object>().TypeTag(&kDeviceMatrixTag);
}

Napi::Object DeviceMatrixHandle::wrap(Napi::Env env, cuda::SharedMatrix data) {
  Napi::FunctionReference& cls = addonData(env).deviceMatrixClass;
  Napi::Object object = cls.New({Napi::External<int>::New(env, &internalConstructionToken)});
  Unwrap(object)->data_ = std::move(data);
  return object;
}

DeviceMatrixHandle* DeviceMatrixHandle::unwrap(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object object = value.As<Napi::Object>();
  if (!object.CheckTypeTag(&kDeviceMatrixTag)) return nullptr;
  return Unwrap(object);
}

const cuda::SharedMatrix& DeviceMatrixHandle::live(Napi::Env env, const std::string& argument) const {
  if (!data_.buffer) {
    throw makeJsError(env, ErrorKind::Internal,
                      "Expected a live DeviceMatrix for " + argument +
                          " but received one that was disposed (dispose() frees its GPU memory; it cannot be used after)",
                      argument, kErrDisposed);
  }
  return data_;
}

Napi::Value DeviceMatrixHandle::Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    const cuda::SharedMatrix& m = live(env, "this");
    const int64_t count = m.rows * m.cols;
    if (m.dtype == cuda::DType::Float32) {
      Napi::Float32Array out = allocateFloat32Array(env, count, "the downloaded matrix");
      m.buffer->download(out.Data(), m.buffer->bytes());
      return out;
    }
    Napi::Uint16Array out;
    try {
      out = Napi::Uint16Array::New(env, static_cast<size_t>(count));
    } catch (const Napi::Error&) {
      throw makeJsError(env, ErrorKind::OutOfMemory,
                        "Out of memory: could not allocate the downloaded matrix (" + std::to_string(count) +
                            " 16-bit values)",
                        "");
    }
    m.buffer->download(out.Data(), m.buffer->bytes());
    return out;
  });
}

void DeviceMatrixHandle::Dispose(const Napi::CallbackInfo&) { data_.buffer.reset(); }

Napi::Value DeviceMatrixHandle::Rows(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(data_.rows));
}
Napi::Value DeviceMatrixHandle::Cols(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(data_.cols));
}
Napi::Value DeviceMatrixHandle::DTypeName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cuda::dtypeName(data_.dtype));
}
Napi::Value DeviceMatrixHandle::Device(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), data_.device);
}
Napi::Value DeviceMatrixHandle::Bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), data_.buffer ? static_cast<double>(data_.buffer->bytes()) : 0.0);
}
Napi::Value DeviceMatrixHandle::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !data_.buffer);
}

}  // namespace siglip::addon
