#include "loss_worker.h"

#include <utility>

#include "cpu/cpu_backend.h"

namespace siglip::addon {

LossWorker::LossWorker(Napi::Env env, LossKind kind, LossCall&& call, const GradientArrays& grads)
    : SettlingWorker(env, kind == LossKind::Sigmoid ? "siglip:sigmoidLoss" : "siglip:softmaxLoss"),
      kind_(kind),
      call_(std::move(call)),
      outputs_(grads.outputs()),
      deferred_(Napi::Promise::Deferred::New(env)) {
  call_.inputs.persist();
  if (!grads.image.IsEmpty()) {
    gradImage_ = Napi::Persistent(static_cast<Napi::Object>(grads.image));
    gradText_ = Napi::Persistent(static_cast<Napi::Object>(grads.text));
  }
}

void LossWorker::Execute() {
  try {
    result_ = runCpuLoss(kind_, call_, outputs_);
  } catch (...) {
    error_ = captureCurrentException();
  }
}

void LossWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (error_.present) {
    deferred_.Reject(toJsError(env, error_).Value());
    return;
  }
  GradientArrays grads;
  if (!gradImage_.IsEmpty()) {
    grads.image = gradImage_.Value().As<Napi::Float32Array>();
    grads.text = gradText_.Value().As<Napi::Float32Array>();
  }
  try {
    deferred_.Resolve(lossResultToJs(env, kind_, result_, grads));
  } catch (const Napi::Error& e) {  // building the result object failed (out of JS heap)
    deferred_.Reject(e.Value());
  }
}

}  // namespace siglip::addon
