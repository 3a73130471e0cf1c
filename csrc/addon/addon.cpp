// siglip_kernels.node: the N-API surface. It converts JS values (convert.cpp), calls the
// CPU backend (cpu/cpu_backend.h) and converts back; it computes nothing itself.
//
// Exports (the raw binding; lib/ wraps it in the typed public API):
//   sigmoidLoss(image, text, options, wantGrad)       → { loss, grad? }
//   softmaxLoss(image, text, options, wantGrad)       → { loss, grad? }
//   sigmoidLossAsync / softmaxLossAsync (same args)   → Promise of the same
//   backendInfo()                                     → { simd, simdReason, hardwareThreads, tileRows, tileCols,
//                                                         bf16, bf16Reason }
//   gemmABt(a, b, m, n, k, threads)                   → Float32Array C = A·Bᵀ (m×n)
//   limits                                            → { maxAbsLogitScale, maxThreads, maxRingRanks,
//                                                         defaultRingTimeoutMs, maxRingTimeoutMs,
//                                                         maxAllGatherBytes } (csrc/core/limits.h; frozen)
// image/text are { data: Float32Array, rows, cols }; options is
// { logitScale, logitBias (sigmoid only), imageIds?, textIds?, method: 'fused'|'naive', threads }.
// The CMake build with CUDA adds the cuda* exports and the DeviceMatrix class, and
// backendInfo().cuda (cuda_bindings.h). The ring (LocalRingHandle, MpiRingHandle, NcclRingHandle, ringBuildInfo, …)
// is in ring_bindings.h.
#include <napi.h>

#include <string>
#include <utility>

#include "convert.h"
#include "core/limits.h"
#include "cpu/cpu_backend.h"
#include "cuda_bindings.h"
#include "js_errors.h"
#include "promise_worker.h"
#include "ring_bindings.h"

namespace siglip::addon {
namespace {

Napi::Value lossSync(const Napi::CallbackInfo& info, LossKind kind) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    const CpuLossCall call = readCpuLossCall(info, kind, InputUse::Borrow);
    const GradientArrays grads = allocateGradients(env, call);
    const LossResult result = runCpuLoss(kind, call, grads.outputs());
    return lossResultToJs(env, kind, result, grads.image, grads.text);
  });
}

Napi::Value lossAsync(const Napi::CallbackInfo& info, LossKind kind) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    CpuLossCall call = readCpuLossCall(info, kind, InputUse::Copy);
    call.inputs.persist();
    const GradientArrays grads = allocateGradients(env, call);
    return queuePromise(
        env, kind == LossKind::Sigmoid ? "siglip:sigmoidLoss" : "siglip:softmaxLoss",
        [kind, call = std::move(call), outputs = grads.outputs()] { return runCpuLoss(kind, call, outputs); },
        [kind, held = HeldGradients(grads)](Napi::Env env, const LossResult& result) {
          const GradientArrays grads = held.arrays();
          return lossResultToJs(env, kind, result, grads.image, grads.text);
        });
  });
}

Napi::Value SigmoidLoss(const Napi::CallbackInfo& info) { return lossSync(info, LossKind::Sigmoid); }
Napi::Value SoftmaxLoss(const Napi::CallbackInfo& info) { return lossSync(info, LossKind::Softmax); }
Napi::Value SigmoidLossAsync(const Napi::CallbackInfo& info) { return lossAsync(info, LossKind::Sigmoid); }
Napi::Value SoftmaxLossAsync(const Napi::CallbackInfo& info) { return lossAsync(info, LossKind::Softmax); }

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    const cpu::CpuInfo info = cpu::cpuInfo();
    Napi::Object out = makeObject(env, {{"simd", Napi::String::New(env, info.simd)},
                                        {"simdReason", Napi::String::New(env, info.simdReason)},
                                        {"hardwareThreads", Napi::Number::New(env, info.hardwareThreads)},
                                        {"tileRows", Napi::Number::New(env, info.tileRows)},
                                        {"tileCols", Napi::Number::New(env, info.tileCols)},
                                        {"bf16", Napi::String::New(env, info.bf16)},
                                        {"bf16Reason", Napi::String::New(env, info.bf16Reason)}});
    addCudaBackendInfo(env, out);
    return out;
  });
}

Napi::Value GemmABt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    const int64_t m = readInteger(info[2], "m", 1, kMaxSafeInteger);
    const int64_t n = readInteger(info[3], "n", 1, kMaxSafeInteger);
    const int64_t k = readInteger(info[4], "k", 1, kMaxSafeInteger);
    const int threads = static_cast<int>(readInteger(info[5], "threads", 1, kMaxThreads));
    // Each of A (m×k), B (n×k) and C (m×n) must be addressable in bytes.
    const char* expected = "sizes whose product fits in memory";
    checkAddressable(env, m, k, "a", expected);
    checkAddressable(env, n, k, "b", expected);
    checkAddressable(env, m, n, "m × n", expected);
    Napi::Float32Array a = readFloat32Array(info[0], "a", m * k);
    Napi::Float32Array b = readFloat32Array(info[1], "b", n * k);
    Napi::Float32Array c = allocateFloat32Array(env, m * n, "the product");
    cpu::gemmABt(a.Data(), b.Data(), c.Data(), m, n, k, threads);
    return c;
  });
}

// csrc/core/limits.h as a frozen object: lib/limits.ts reads the limits from here, so
// TypeScript defines none of them.
Napi::Object Limits(Napi::Env env) {
  const auto number = [&](double value) { return Napi::Number::New(env, value); };
  Napi::Object out = makeObject(env, {{"maxAbsLogitScale", number(limits::kMaxAbsLogitScale)},
                                      {"maxThreads", number(double(limits::kMaxThreads))},
                                      {"maxRingRanks", number(double(limits::kMaxRingRanks))},
                                      {"defaultRingTimeoutMs", number(double(limits::kDefaultRingTimeoutMs))},
                                      {"maxRingTimeoutMs", number(double(limits::kMaxRingTimeoutMs))},
                                      {"maxAllGatherBytes", number(double(limits::kMaxAllGatherBytes))}});
  out.Freeze();
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("limits", Limits(env));
  exports.Set("sigmoidLoss", Napi::Function::New(env, SigmoidLoss, "sigmoidLoss"));
  exports.Set("softmaxLoss", Napi::Function::New(env, SoftmaxLoss, "softmaxLoss"));
  exports.Set("sigmoidLossAsync", Napi::Function::New(env, SigmoidLossAsync, "sigmoidLossAsync"));
  exports.Set("softmaxLossAsync", Napi::Function::New(env, SoftmaxLossAsync, "softmaxLossAsync"));
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfo, "backendInfo"));
  exports.Set("gemmABt", Napi::Function::New(env, GemmABt, "gemmABt"));
  registerRingBindings(env, exports);
  registerCudaBindings(env, exports);
  return exports;
}

}  // namespace
}  // namespace siglip::addon

static Napi::Object InitSiglipKernels(Napi::Env env, Napi::Object exports) {
  return siglip::addon::Init(env, exports);
}

NODE_API_MODULE(siglip_kernels, InitSiglipKernels)
