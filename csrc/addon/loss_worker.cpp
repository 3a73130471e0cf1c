#include "loss_worker.h"

#include "cpu/cpu_backend.h"

namespace siglip::addon {

LossWorker::LossWorker(Napi::Env env, LossKind kind, const LossCall& call, const GradientArrays& grads)
    : Napi::AsyncWorker(env, kind == LossKind::Sigmoid ? "siglip:sigmoidLoss" : "siglip:softmaxLoss"),
      kind_(kind),
      request_(call.request),
      outputs_(grads.outputs()),
      deferred_(Napi::Promise::Deferred::New(env)) {
  borrowed_.reserve(call.borrowed.size());
  for (const Napi::Object& object : call.borrowed) borrowed_.push_back(Napi::Persistent(object));
  if (!grads.image.IsEmpty()) {
    gradImage_ = Napi::Persistent(static_cast<Napi::Object>(grads.image));
    gradText_ = Napi::Persistent(static_cast<Napi::Object>(grads.text));
  }
}

void LossWorker::Execute() {
  try {
    result_ = kind_ == LossKind::Sigmoid ? cpu::sigmoidLoss(request_, outputs_) : cpu::softmaxLoss(request_, outputs_);
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

void LossWorker::OnError(const Napi::Error& error) {
  Napi::HandleScope scope(Env());
  deferred_.Reject(error.Value());
}

}  // namespace siglip::addon
