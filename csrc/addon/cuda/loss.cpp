// The CUDA loss calls of the raw binding:
//   cudaSigmoidLoss(image, text, options, wantGrad)      → { loss, grad? }
//   cudaSoftmaxLoss(image, text, options, wantGrad)      → { loss, grad? }
//   cudaSigmoidLossAsync / cudaSoftmaxLossAsync          → Promise of the same
// image/text are device matrix handles or host { data: Float32Array, rows, cols }, which are
// uploaded to temporary float32 device buffers for the call. options is
// { logitScale, logitBias (sigmoid only), imageIds?, textIds?,
//   method: 'fused'|'naive'|'simple' (sigmoid) or 'chunked'|'naive' (softmax), precision: 'tf32'|'fp32',
//   gradients: 'host'|'device', device: ordinal }.
// Gradients 'device' come back as new float32 device matrix handles, 'host' as Float32Arrays.
//
// Here: reading the arguments and allocating the host gradient arrays, on the JS thread; the
// uploads, the loss and the downloads are the backend's (cuda::lossFromHost, host_loss.h),
// on the JS thread (sync) or a PromiseWorker (async).
#include <climits>
#include <string>
#include <utility>

#include "addon/convert.h"
#include "addon/js_errors.h"
#include "addon/promise_worker.h"
#include "device_matrix.h"

namespace siglip::addon {
namespace {

// The request (pointing into `inputs`: host inputs and ids; device matrices shared) and the
// host gradient arrays.
struct CudaLossCall {
  explicit CudaLossCall(InputUse use) : inputs(use) {}
  cuda::HostLossRequest request;
  HostInputs inputs;
  GradientArrays hostGrads;
};

CudaLossCall readCudaLossCall(const Napi::CallbackInfo& info, LossKind kind, InputUse use) {
  Napi::Env env = info.Env();
  CudaLossCall call(use);
  cuda::HostLossRequest& r = call.request;
  r.kind = kind;
  Napi::Object options = readObject(info[2], "options");
  r.device = static_cast<int>(readInteger(options.Get("device"), "options.device", 0, INT_MAX));
  r.image = readCudaInput(info[0], "image", r.device, "options.device", call.inputs);
  r.text = readCudaInput(info[1], "text", r.device, "options.device", call.inputs);

  const Scalars scalars = readScalars(options, kind);
  r.logitScale = scalars.logitScale;
  r.logitBias = scalars.logitBias;
  r.imageIds = readIds(options, "imageIds", r.image.matrix.rows, call.inputs);
  r.textIds = readIds(options, "textIds", r.text.matrix.rows, call.inputs);
  r.method = readMethod(options, kind, MethodBackend::Cuda);
  const GpuOptions gpu = readGpuOptions(options);
  r.precision = gpu.precision;
  r.gradientsOnDevice = gpu.gradientsOnDevice;
  r.wantGrad = readBoolean(info[3], "wantGrad");
  call.inputs.confirmUnchanged(env);  // the options' getters ran after image and text were read

  cuda::checkHostLoss(r);  // before anything is allocated
  if (r.wantGrad && !r.gradientsOnDevice) {
    call.hostGrads = allocateGradients(env, r.image.matrix.rows * r.image.matrix.cols,
                                       r.text.matrix.rows * r.text.matrix.cols);
    r.hostGradImage = call.hostGrads.outputs().image;
    r.hostGradText = call.hostGrads.outputs().text;
  }
  return call;
}

Napi::Object resultToJs(Napi::Env env, const cuda::HostLossRequest& request, const cuda::HostLossResult& result,
                        const GradientArrays& hostGrads) {
  if (!request.wantGrad) return lossResultToJs(env, request.kind, result.result, Napi::Value(), Napi::Value());
  if (!request.gradientsOnDevice) return lossResultToJs(env, request.kind, result.result, hostGrads.image, hostGrads.text);
  return lossResultToJs(env, request.kind, result.result, DeviceMatrixHandle::wrap(env, result.gradImage),
                        DeviceMatrixHandle::wrap(env, result.gradText));
}

Napi::Value lossSync(const Napi::CallbackInfo& info, LossKind kind) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    const CudaLossCall call = readCudaLossCall(info, kind, InputUse::Borrow);
    return resultToJs(env, call.request, cuda::lossFromHost(call.request), call.hostGrads);
  });
}

// The inputs' copies and the device matrices stay with the worker until the Promise settles
// (disposing a handle meanwhile frees its memory only after the call).
Napi::Value lossAsync(const Napi::CallbackInfo& info, LossKind kind) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    CudaLossCall call = readCudaLossCall(info, kind, InputUse::Copy);
    call.inputs.persist();
    const cuda::HostLossRequest request = call.request;
    return queuePromise(
        env, kind == LossKind::Sigmoid ? "siglip:cudaSigmoidLoss" : "siglip:cudaSoftmaxLoss",
        [request, inputs = std::move(call.inputs)] { return cuda::lossFromHost(request); },
        [request, held = HeldGradients(call.hostGrads)](Napi::Env env, const cuda::HostLossResult& result) {
          return resultToJs(env, request, result, held.arrays());
        });
  });
}

}  // namespace

void registerCudaLosses(Napi::Env env, Napi::Object exports) {
  const auto bind = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&, LossKind), LossKind kind) {
    exports.Set(name, Napi::Function::New(env, [fn, kind](const Napi::CallbackInfo& info) { return fn(info, kind); }, name));
  };
  bind("cudaSigmoidLoss", lossSync, LossKind::Sigmoid);
  bind("cudaSoftmaxLoss", lossSync, LossKind::Softmax);
  bind("cudaSigmoidLossAsync", lossAsync, LossKind::Sigmoid);
  bind("cudaSoftmaxLossAsync", lossAsync, LossKind::Softmax);
}

}  // namespace siglip::addon
