// The Promise-returning loss calls: the loss runs on libuv's thread pool, off the JS thread.
//
// Everything JS is done on the JS thread: arguments are converted and validated, the inputs
// copied (host_inputs.h: the caller may change, resize or transfer its arrays meanwhile) and
// the gradient Float32Arrays allocated, before the work is queued; the worker reads only
// memory the call owns and writes into the preallocated outputs, which references keep
// alive until the Promise settles.
#pragma once
#include <napi.h>

#include "convert.h"
#include "js_errors.h"
#include "settling_worker.h"

namespace siglip::addon {

class LossWorker : public SettlingWorker {
 public:
  // Validates nothing itself: `call` (read with InputUse::Copy) and `grads` come from
  // readLossCall / allocateGradients.
  LossWorker(Napi::Env env, LossKind kind, LossCall&& call, const GradientArrays& grads);

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override;  // worker thread: no JS here
  void OnOK() override;     // JS thread

 private:
  LossKind kind_;
  LossCall call_;
  GradientOutputs outputs_;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference gradImage_;
  Napi::ObjectReference gradText_;
  LossResult result_;
  CapturedError error_;
};

}  // namespace siglip::addon
