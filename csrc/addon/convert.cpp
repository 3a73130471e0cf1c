#include "convert.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "js_errors.h"

namespace siglip::addon {
namespace {

const char* typedArrayName(napi_typedarray_type type) {
  static const char* const names[] = {"Int8Array",    "Uint8Array",   "Uint8ClampedArray", "Int16Array",
                                      "Uint16Array",  "Int32Array",   "Uint32Array",       "Float32Array",
                                      "Float64Array", "BigInt64Array", "BigUint64Array"};  // napi_typedarray_type's order
  return type >= napi_int8_array && type <= napi_biguint64_array ? names[type] : "typed array";
}

// Reads the buffer through napi_get_typedarray_info, not the (overridable) `buffer` getter.
bool isDetached(const Napi::TypedArray& array) { return array.ArrayBuffer().IsDetached(); }

bool isPlainObject(Napi::Value value) {
  return value.IsObject() && !value.IsArray() && !value.IsFunction() && !value.IsTypedArray() && !value.IsArrayBuffer();
}

}  // namespace

Napi::TypedArray readTypedArray(Napi::Value value, const std::string& name, napi_typedarray_type type, int64_t length,
                                const std::string& expected) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) {
    throw typeError(value.Env(), name, expected, describeValue(value));
  }
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  if (length > 0 && isDetached(array)) {
    throw typeError(value.Env(), name, expected + " that is not detached (its buffer was transferred)",
                    describeValue(value));
  }
  if (static_cast<int64_t>(array.ElementLength()) != length) {
    throw rangeError(value.Env(), name, expected + " of length " + std::to_string(length), describeValue(value));
  }
  return array;
}

const int32_t* readIdArray(Napi::Value value, const std::string& name, int64_t length, HostInputs& inputs) {
  return inputs.take(readTypedArray(value, name, napi_int32_array, length, "an Int32Array").As<Napi::Int32Array>(), name);
}

const int32_t* readIds(Napi::Object options, const char* key, int64_t length, HostInputs& inputs) {
  Napi::Value value = options.Get(key);
  if (absent(value)) return nullptr;
  return readIdArray(value, std::string("options.") + key, length, inputs);
}

bool absent(Napi::Value value) { return value.IsUndefined() || value.IsNull(); }

void checkIdsTogether(Napi::Env env, bool hasImageIds, bool hasTextIds) {
  if (hasImageIds == hasTextIds) return;
  throw typeError(env, hasImageIds ? "options.textIds" : "options.imageIds",
                  "label ids (imageIds and textIds are given together or not at all)",
                  "undefined while " + std::string(hasImageIds ? "imageIds" : "textIds") + " is given");
}

std::string describeValue(Napi::Value value) {
  if (value.IsEmpty() || value.IsUndefined()) return "undefined";
  if (value.IsNull()) return "null";
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value() ? "the boolean true" : "the boolean false";
  if (value.IsNumber()) return "the number " + value.ToString().Utf8Value();
  if (value.IsString()) {
    std::string s = value.As<Napi::String>().Utf8Value();
    if (s.size() > 40) s = s.substr(0, 40) + "...";
    return "the string '" + s + "'";
  }
  if (value.IsTypedArray()) {
    Napi::TypedArray array = value.As<Napi::TypedArray>();
    const std::string name = typedArrayName(array.TypedArrayType());
    if (isDetached(array)) return "a detached " + name;
    return "a " + name + " of length " + std::to_string(array.ElementLength());
  }
  if (value.IsArray()) return "an Array of length " + std::to_string(value.As<Napi::Array>().Length());
  if (value.IsArrayBuffer()) return "an ArrayBuffer";
  if (value.IsFunction()) return "a function";
  if (value.IsSymbol()) return "a symbol";
  if (value.IsBigInt()) return "a bigint";
  if (value.IsObject()) return "an object";
  return "an unsupported value";
}

int64_t readInteger(Napi::Value value, const std::string& name, int64_t min, int64_t max) {
  const std::string expected = max == kMaxSafeInteger && min == 1
                                   ? std::string("a positive integer")
                                   : "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!value.IsNumber()) throw typeError(value.Env(), name, expected, describeValue(value));
  const double v = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || std::floor(v) != v || v < static_cast<double>(min) || v > static_cast<double>(max)) {
    throw rangeError(value.Env(), name, expected, describeValue(value));
  }
  return static_cast<int64_t>(v);
}

double readNumber(Napi::Value value, const std::string& name) {
  if (!value.IsNumber()) throw typeError(value.Env(), name, "a finite number", describeValue(value));
  return value.As<Napi::Number>().DoubleValue();
}

bool readBoolean(Napi::Value value, const std::string& name) {
  if (!value.IsBoolean()) throw typeError(value.Env(), name, "a boolean", describeValue(value));
  return value.As<Napi::Boolean>().Value();
}

Napi::Object readObject(Napi::Value value, const std::string& name) {
  if (!isPlainObject(value)) throw typeError(value.Env(), name, "an object", describeValue(value));
  return value.As<Napi::Object>();
}

std::string readChoice(Napi::Value value, const std::string& name, std::initializer_list<const char*> choices,
                       const std::string& expected) {
  if (!value.IsString()) throw typeError(value.Env(), name, expected, describeValue(value));
  const std::string text = value.As<Napi::String>().Utf8Value();
  for (const char* choice : choices)
    if (text == choice) return text;
  throw rangeError(value.Env(), name, expected, describeValue(value));
}

Napi::Float32Array readFloat32Array(Napi::Value value, const std::string& name, int64_t length) {
  return readTypedArray(value, name, napi_float32_array, length, "a Float32Array").As<Napi::Float32Array>();
}

void checkAddressable(Napi::Env env, int64_t x, int64_t y, const std::string& argument, const std::string& expected) {
  if (x > std::numeric_limits<int64_t>::max() / 4 / y) {
    throw rangeError(env, argument, expected, std::to_string(x) + " × " + std::to_string(y));
  }
}

MatrixView readMatrix(Napi::Value value, const std::string& name, HostInputs& inputs, const uint16_t** bf16Bits) {
  Napi::Env env = value.Env();
  if (!isPlainObject(value)) throw typeError(env, name, "an object { data: Float32Array, rows, cols }", describeValue(value));
  Napi::Object object = value.As<Napi::Object>();
  const int64_t rows = readInteger(object.Get("rows"), name + ".rows", 1, kMaxSafeInteger);
  const int64_t cols = readInteger(object.Get("cols"), name + ".cols", 1, kMaxSafeInteger);
  // Larger requests cannot match any array.
  checkAddressable(env, rows, cols, name, "rows × cols small enough to address");
  Napi::Value data = object.Get("data");
  if (bf16Bits && data.IsTypedArray() && data.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array) {
    Napi::Uint16Array bits = data.As<Napi::Uint16Array>();
    if (isDetached(bits) || static_cast<int64_t>(bits.ElementLength()) != rows * cols) {
      throw rangeError(env, name + ".data", "a Uint16Array of length " + std::to_string(rows * cols) + ", not detached",
                       describeValue(data));
    }
    *bf16Bits = inputs.take(bits, name + ".data");
    return MatrixView{nullptr, rows, cols};
  }
  const Napi::Float32Array array = readFloat32Array(data, name + ".data", rows * cols);
  return MatrixView{inputs.take(array, name + ".data"), rows, cols};
}

Scalars readScalars(Napi::Object options, LossKind kind) {
  Scalars s;
  s.logitScale = readNumber(options.Get("logitScale"), "options.logitScale");
  Napi::Value bias = options.Get("logitBias");
  if (kind == LossKind::Sigmoid) {
    s.logitBias = readNumber(bias, "options.logitBias");
  } else if (!bias.IsUndefined()) {
    throw typeError(options.Env(), "options.logitBias", "no logitBias (the softmax loss has no bias)", describeValue(bias));
  }
  return s;
}

Method readMethod(Napi::Object options, LossKind kind, MethodBackend backend) {
  Napi::Value method = options.Get("method");
  if (!method.IsString()) throw typeError(options.Env(), "options.method", methodChoices(kind, backend), describeValue(method));
  return parseMethod(kind, backend, method.As<Napi::String>().Utf8Value(), describeValue(method));
}

CpuLossCall readCpuLossCall(const Napi::CallbackInfo& info, LossKind kind, InputUse use) {
  Napi::Env env = info.Env();
  CpuLossCall call(use);
  call.request.image = readMatrix(info[0], "image", call.inputs, &call.bits.image);
  call.request.text = readMatrix(info[1], "text", call.inputs, &call.bits.text);
  const MatrixView& image = call.request.image;
  const MatrixView& text = call.request.text;

  Napi::Object options = readObject(info[2], "options");

  const Scalars scalars = readScalars(options, kind);
  call.request.logitScale = scalars.logitScale;
  call.request.logitBias = scalars.logitBias;
  call.request.imageIds = readIds(options, "imageIds", image.rows, call.inputs);
  call.request.textIds = readIds(options, "textIds", text.rows, call.inputs);
  call.request.method = readMethod(options, kind, MethodBackend::Cpu);
  call.request.threads = static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, kMaxThreads));

  // precision: absent or 'fp32'; 'bf16' for the fused sigmoid (float32 or bfloat16-bit inputs).
  Napi::Value precision = options.Get("precision");
  const char* precisions = kind == LossKind::Sigmoid ? "'fp32', 'bf16' or no precision" : "'fp32' or no precision";
  if (!precision.IsUndefined()) {
    if (!precision.IsString()) throw typeError(env, "options.precision", precisions, describeValue(precision));
    const std::string name = precision.As<Napi::String>().Utf8Value();
    if (name == "bf16" && kind == LossKind::Sigmoid && call.request.method == Method::Fused) {
      call.precision = cpu::Precision::BF16;
    } else if (name != "fp32") {
      throw rangeError(env, "options.precision",
                       kind == LossKind::Sigmoid && name == "bf16" ? "'fp32' with method 'naive'" : precisions,
                       describeValue(precision));
    }
  }
  if (call.bits.image || call.bits.text) {
    const char* which = call.bits.image ? "image.data" : "text.data";
    if (call.precision != cpu::Precision::BF16) {
      throw typeError(env, which, "a Float32Array (a Uint16Array of bfloat16 bits needs precision 'bf16')",
                      "a Uint16Array");
    }
    if (!call.bits.image || !call.bits.text) {
      throw typeError(env, call.bits.image ? "text.data" : "image.data",
                      "a Uint16Array of bfloat16 bits (as the other input)", "a Float32Array");
    }
  }

  call.wantGrad = readBoolean(info[3], "wantGrad");
  call.inputs.confirmUnchanged(env);  // the options' getters ran after image and text were read
  return call;
}

LossResult runCpuLoss(LossKind kind, const CpuLossCall& call, GradientOutputs grads) {
  if (call.precision == cpu::Precision::BF16) return cpu::sigmoidLossBf16(call.request, call.bits, grads);
  return kind == LossKind::Sigmoid ? cpu::sigmoidLoss(call.request, grads) : cpu::softmaxLoss(call.request, grads);
}

GradientOutputs GradientArrays::outputs() const {
  GradientOutputs out;
  if (!image.IsEmpty()) {
    // Data() is const on a const handle; the arrays themselves are ours to write.
    out.image = Napi::Float32Array(image).Data();
    out.text = Napi::Float32Array(text).Data();
  }
  return out;
}

namespace {

void freeExternalArray(napi_env env, void* data, void* hint) {
  const int64_t bytes = static_cast<int64_t>(reinterpret_cast<uintptr_t>(hint));
  std::free(data);
  int64_t ignored = 0;
  napi_adjust_external_memory(env, -bytes, &ignored);
}

}  // namespace

// V8 aborts the process when it cannot allocate an ArrayBuffer's memory ("Fatal process out
// of memory"), so the memory is allocated here, where a failure is an error, and handed to
// V8 as an external buffer that frees it when collected. Runtimes that forbid external
// buffers (V8's sandbox, e.g. Electron) get V8's own allocation after a probe of the size.
Napi::Float32Array allocateFloat32Array(Napi::Env env, int64_t length, const std::string& what) {
  const auto outOfMemory = [&]() {
    return makeJsError(env, ErrorKind::OutOfMemory,
                       "Out of memory: could not allocate " + what + " (" + std::to_string(length) +
                           " float32 values)",
                       "");
  };
  if (length < 0 || uint64_t(length) > uint64_t(kMaxSafeInteger) / sizeof(float)) throw outOfMemory();
  const size_t bytes = size_t(length) * sizeof(float);
  void* memory = std::calloc(bytes == 0 ? 1 : bytes, 1);
  if (memory == nullptr) throw outOfMemory();
  napi_value buffer = nullptr;
  const napi_status status = napi_create_external_arraybuffer(
      env, memory, bytes, freeExternalArray, reinterpret_cast<void*>(static_cast<uintptr_t>(bytes)), &buffer);
  if (status == napi_ok) {
    int64_t ignored = 0;
    napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &ignored);
    napi_value array = nullptr;
    if (napi_create_typedarray(env, napi_float32_array, size_t(length), buffer, 0, &array) != napi_ok) {
      // The buffer (and its memory) is V8's now and is freed when collected.
      if (env.IsExceptionPending()) env.GetAndClearPendingException();
      throw outOfMemory();
    }
    return Napi::Float32Array(env, array);
  }
  std::free(memory);
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
  try {
    return Napi::Float32Array::New(env, static_cast<size_t>(length));
  } catch (const Napi::Error&) {
    throw outOfMemory();
  }
}

GradientArrays allocateGradients(Napi::Env env, const CpuLossCall& call) {
  if (!call.wantGrad) return {};
  const LossRequest& r = call.request;
  return allocateGradients(env, r.image.rows * r.image.cols, r.text.rows * r.text.cols);
}

GradientArrays allocateGradients(Napi::Env env, int64_t imageElements, int64_t textElements, const std::string& rank) {
  const std::string of = rank.empty() ? "" : " of rank " + rank;
  GradientArrays grads;
  grads.image = allocateFloat32Array(env, imageElements, "the image gradient" + of);
  grads.text = allocateFloat32Array(env, textElements, "the text gradient" + of);
  return grads;
}

HeldGradients::HeldGradients(const GradientArrays& grads) {
  if (grads.image.IsEmpty()) return;
  image = Napi::Persistent(static_cast<Napi::Object>(grads.image));
  text = Napi::Persistent(static_cast<Napi::Object>(grads.text));
}

GradientArrays HeldGradients::arrays() const {
  GradientArrays grads;
  if (image.IsEmpty()) return grads;
  grads.image = image.Value().As<Napi::Float32Array>();
  grads.text = text.Value().As<Napi::Float32Array>();
  return grads;
}

Napi::Object makeObject(Napi::Env env, std::initializer_list<std::pair<const char*, Napi::Value>> properties) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [key, value] : properties) out.Set(key, value);
  return out;
}

Napi::Object lossResultToJs(Napi::Env env, LossKind kind, const LossResult& result, Napi::Value image,
                            Napi::Value text) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", Napi::Number::New(env, result.loss));
  if (!image.IsEmpty() && !image.IsUndefined()) {
    Napi::Object grad = Napi::Object::New(env);
    grad.Set("image", image);
    grad.Set("text", text);
    grad.Set("logitScale", Napi::Number::New(env, result.dLogitScale));
    if (kind == LossKind::Sigmoid) grad.Set("logitBias", Napi::Number::New(env, result.dLogitBias));
    out.Set("grad", grad);
  }
  return out;
}

}  // namespace siglip::addon
