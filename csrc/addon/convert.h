// JS values → core types, and core results → JS values.
//
// This layer checks what only it can see: JavaScript types, typed arrays' lengths and whether
// they are detached, and what must hold to read memory safely (rows × cols addressable); the
// core checks sizes, finiteness and ranges, with messages naming the argument. The addon can
// be called directly, and garbage must throw, never crash.
// Everything here runs on the JS thread.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "core/loss_request.h"
#include "cpu/cpu_backend.h"
#include "host_inputs.h"

namespace siglip::addon {

using limits::kMaxThreads;  // csrc/core/limits.h
// 2^53 - 1: the largest integer a JS number holds exactly.
constexpr int64_t kMaxSafeInteger = 9007199254740991LL;

// "undefined", "the number 1.5", "a Float64Array of length 4", ...: the <received> part.
std::string describeValue(Napi::Value value);

int64_t readInteger(Napi::Value value, const std::string& name, int64_t min, int64_t max);
// A number (a TypeError naming `name` otherwise); its range is the core's to check.
double readNumber(Napi::Value value, const std::string& name);
bool readBoolean(Napi::Value value, const std::string& name);
// A plain object (not an array, function, typed array or ArrayBuffer) named `name`.
Napi::Object readObject(Napi::Value value, const std::string& name);
// A string among `choices` (a TypeError for a non-string, a RangeError for another string),
// `expected` listing them as messages do ("'tf32' or 'fp32'").
std::string readChoice(Napi::Value value, const std::string& name, std::initializer_list<const char*> choices,
                       const std::string& expected);
// A typed array of `type` named `name`, of exactly `length` elements (not detached unless
// length is 0); `expected` names the type in messages ("a Float32Array").
Napi::TypedArray readTypedArray(Napi::Value value, const std::string& name, napi_typedarray_type type, int64_t length,
                                const std::string& expected);
Napi::Float32Array readFloat32Array(Napi::Value value, const std::string& name, int64_t length);

// An Int32Array of exactly `length` label ids named `name`, its memory as `inputs` gives it.
const int32_t* readIdArray(Napi::Value value, const std::string& name, int64_t length, HostInputs& inputs);
// options[key] as label ids (readIdArray, named "options.<key>"), or null when absent.
const int32_t* readIds(Napi::Object options, const char* key, int64_t length, HostInputs& inputs);
bool absent(Napi::Value value);  // undefined or null
// imageIds and textIds are given together or not at all (a ring reads per-rank arrays only
// then; a loss call leaves the check to the core).
void checkIdsTogether(Napi::Env env, bool hasImageIds, bool hasTextIds);

// options.logitScale and, for the sigmoid, options.logitBias: numbers (finite and in range:
// the core's checks, csrc/core/validate.cpp); the softmax takes no logitBias.
struct Scalars {
  double logitScale = 0;
  double logitBias = 0;
};
Scalars readScalars(Napi::Object options, LossKind kind);
// options.method: a method `kind` takes on `backend` (core/loss_request.h).
Method readMethod(Napi::Object options, LossKind kind, MethodBackend backend);

// {data: Float32Array, rows, cols}; the view's memory as `inputs` gives it. With `bf16Bits`,
// data may also be a Uint16Array of bfloat16 bits: then *bf16Bits points at them and the
// view's data is null (it gives the shape).
MatrixView readMatrix(Napi::Value value, const std::string& name, HostInputs& inputs,
                      const uint16_t** bf16Bits = nullptr);

// One loss call's arguments: (image, text, options, wantGrad). The request points into
// `inputs` (copies for an asynchronous call, the caller's arrays for a synchronous one).
struct CpuLossCall {
  explicit CpuLossCall(InputUse use) : inputs(use) {}
  LossRequest request;
  bool wantGrad = false;
  HostInputs inputs;
  // options.precision 'bf16' (sigmoid only): the GEMMs in bfloat16, on float32 inputs or on
  // Uint16Array bfloat16 bits (`bits`).
  cpu::Precision precision = cpu::Precision::FP32;
  cpu::Bf16Inputs bits;
};
CpuLossCall readCpuLossCall(const Napi::CallbackInfo& info, LossKind kind, InputUse use);
// The CPU loss the call asks for (float32 or bf16); any thread.
LossResult runCpuLoss(LossKind kind, const CpuLossCall& call, GradientOutputs grads);

// Gradient outputs, allocated on the JS thread (N×D and M×D), or empty when not wanted.
struct GradientArrays {
  Napi::Float32Array image;
  Napi::Float32Array text;
  GradientOutputs outputs() const;
};
GradientArrays allocateGradients(Napi::Env env, const CpuLossCall& call);
// `imageElements` and `textElements` zeros; `rank` names them in an out-of-memory error ("" for none).
GradientArrays allocateGradients(Napi::Env env, int64_t imageElements, int64_t textElements, const std::string& rank = "");

// Gradient arrays held for a call that outlives the JS callback (persistent references, made
// and released on the JS thread).
struct HeldGradients {
  HeldGradients() = default;
  explicit HeldGradients(const GradientArrays& grads);
  GradientArrays arrays() const;
  Napi::ObjectReference image, text;
};

// A zero-filled Float32Array of `length` elements; an allocation failure (or a length no
// Float32Array can have) becomes an Error with code ERR_SIGLIP_OUT_OF_MEMORY, never an abort.
Napi::Float32Array allocateFloat32Array(Napi::Env env, int64_t length, const std::string& what);

// x·y float32 values (x, y ≥ 1) fit in memory addresses, or a RangeError naming `argument`.
void checkAddressable(Napi::Env env, int64_t x, int64_t y, const std::string& argument, const std::string& expected);

// A new object with these properties, in this order.
Napi::Object makeObject(Napi::Env env, std::initializer_list<std::pair<const char*, Napi::Value>> properties);

// { loss, grad?: { image, text, logitScale, logitBias? } } (softmax has no logitBias); grad is
// there when `image` is given (host arrays or device matrices).
Napi::Object lossResultToJs(Napi::Env env, LossKind kind, const LossResult& result, Napi::Value image,
                            Napi::Value text);

}  // namespace siglip::addon
