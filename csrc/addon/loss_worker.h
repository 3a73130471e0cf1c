// The Promise-returning loss calls: the loss runs on libuv's thread pool, off the JS thread.
//
// Everything JS is done on the JS thread: arguments are converted and validated, and the
// gradient Float32Arrays allocated, before the work is queued; the worker only reads the
// borrowed input memory and writes into the preallocated outputs. References to every
// borrowed typed array (inputs, ids, outputs) keep them alive until the Promise settles.
// The caller must not mutate or transfer the inputs meanwhile (documented in lib/index.ts).
#pragma once
#include <napi.h>

#include <vector>

#include "convert.h"
#include "js_errors.h"

namespace siglip::addon {

class LossWorker : public Napi::AsyncWorker {
 public:
  // Validates nothing itself: `call` and `grads` come from readLossCall / allocateGradients.
  LossWorker(Napi::Env env, LossKind kind, const LossCall& call, const GradientArrays& grads);

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override;  // worker thread: no JS here
  void OnOK() override;     // JS thread
  void OnError(const Napi::Error& error) override;

 private:
  LossKind kind_;
  LossRequest request_;
  GradientOutputs outputs_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> borrowed_;
  Napi::ObjectReference gradImage_;
  Napi::ObjectReference gradText_;
  LossResult result_;
  CapturedError error_;
};

}  // namespace siglip::addon
