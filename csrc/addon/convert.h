// JS values → core types, and core results → JS values, validating everything on the way in.
//
// The TypeScript layer validates first and gives the friendlier messages; this layer checks
// again because the addon can be called directly, and garbage must throw, never crash.
// Everything here runs on the JS thread.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/loss_request.h"

namespace siglip::addon {

// The most worker threads a call may ask for (a typo such as 1e6 threads fails fast).
constexpr int64_t kMaxThreads = 1024;
// 2^53 - 1: the largest integer a JS number holds exactly.
constexpr int64_t kMaxSafeInteger = 9007199254740991LL;

// "undefined", "the number 1.5", "a Float64Array of length 4", ...: the <received> part.
std::string describeValue(Napi::Value value);

int64_t readInteger(Napi::Value value, const std::string& name, int64_t min, int64_t max);
double readFiniteNumber(Napi::Value value, const std::string& name);
// A Float32Array of exactly `length` elements (not detached unless length is 0).
Napi::Float32Array readFloat32Array(Napi::Value value, const std::string& name, int64_t length);

// options[key] as an Int32Array of `length` label ids (kept alive through `borrowed`), or
// null when the option is absent; the argument is named "options.<key>" in errors.
const int32_t* readIds(Napi::Object options, const char* key, int64_t length, std::vector<Napi::Object>& borrowed);

// {data: Float32Array, rows, cols}; the view borrows `array`'s memory.
struct MatrixArg {
  MatrixView view;
  Napi::Float32Array array;
};
MatrixArg readMatrix(Napi::Value value, const std::string& name);

// One loss call's arguments: (image, text, options, wantGrad).
struct LossCall {
  LossRequest request;
  bool wantGrad = false;
  // The typed arrays the request points into; an async call keeps references to them.
  std::vector<Napi::Object> borrowed;
};
LossCall readLossCall(const Napi::CallbackInfo& info, LossKind kind);

// Gradient outputs, allocated on the JS thread (N×D and M×D), or empty when not wanted.
struct GradientArrays {
  Napi::Float32Array image;
  Napi::Float32Array text;
  GradientOutputs outputs() const;
};
GradientArrays allocateGradients(Napi::Env env, const LossCall& call);

// A zero-filled Float32Array of `length` elements; an allocation failure becomes an Error
// with code ERR_SIGLIP_OUT_OF_MEMORY.
Napi::Float32Array allocateFloat32Array(Napi::Env env, int64_t length, const std::string& what);

// { loss, grad?: { image, text, logitScale, logitBias? } } (softmax has no logitBias).
Napi::Object lossResultToJs(Napi::Env env, LossKind kind, const LossResult& result, const GradientArrays& grads);

}  // namespace siglip::addon
