// The one AsyncWorker of the addon: every call that returns a Promise queues one.
//
//   queuePromise(env, "siglip:sigmoidLoss", compute, toJs[, toError])
//
// compute() runs on libuv's thread pool, touches no JavaScript and returns the call's result
// (or throws); toJs(env, result) then runs on the JS thread and gives the value the Promise
// resolves with (a Napi::Error it throws rejects it instead); a failure of compute() is
// captured where it happens and rejects the Promise with toError(env, captured), js_errors.h's
// mapping by default. Whatever the call must keep alive until it settles (the copied inputs,
// references to the gradient arrays) lives in the captures of compute and toJs, which are
// destroyed with the worker, on the JS thread.
//
// When the environment is shutting down (a Worker thread was terminated, or called
// process.exit(), while the call ran) no JavaScript can run: resolving the Promise fails,
// throwing fails too, and node-addon-api's wrapper would let the exception reach
// std::terminate, which aborts the whole process. Here the work completes as usual; if its
// environment is gone, nobody is left to receive the result, so it is dropped and the worker
// freed.
#pragma once
#include <napi.h>

#include <optional>
#include <type_traits>
#include <utility>

#include "js_errors.h"

namespace siglip::addon {

struct DefaultToError {
  Napi::Error operator()(Napi::Env env, const CapturedError& error) const { return toJsError(env, error); }
};

template <class Compute, class ToJs, class ToError>
class PromiseWorker final : public Napi::AsyncWorker {
 public:
  using Result = std::invoke_result_t<Compute&>;

  PromiseWorker(Napi::Env env, const char* name, Compute&& compute, ToJs&& toJs, ToError&& toError)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        compute_(std::move(compute)),
        toJs_(std::move(toJs)),
        toError_(std::move(toError)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

 private:
  void Execute() override {  // worker thread: no JS here
    try {
      result_.emplace(compute_());
    } catch (...) {
      error_ = captureCurrentException();
    }
  }

  void OnOK() override {  // JS thread
    Napi::Env env = Env();
    try {
      if (error_.present) {
        deferred_.Reject(toError_(env, error_).Value());
      } else {
        deferred_.Resolve(toJs_(env, *result_));
      }
    } catch (const Napi::Error& e) {  // building the value failed (out of JS heap), or a rejection
      deferred_.Reject(e.Value());
    }
  }

  // Execute() captures every failure itself; OnOK() settles.
  void OnError(const Napi::Error&) override {}

  void OnWorkComplete(Napi::Env env, napi_status status) override {
    if (status != napi_cancelled) {
      try {
        Napi::HandleScope scope(env);
        OnOK();
      } catch (...) {
        // The environment can no longer run JavaScript (see above): the result has no taker.
      }
    }
    Destroy();
  }

  Napi::Promise::Deferred deferred_;
  Compute compute_;
  ToJs toJs_;
  ToError toError_;
  std::optional<Result> result_;
  CapturedError error_;
};

// Queues a PromiseWorker (it deletes itself once settled) and returns its Promise.
template <class Compute, class ToJs, class ToError = DefaultToError>
Napi::Promise queuePromise(Napi::Env env, const char* name, Compute compute, ToJs toJs, ToError toError = {}) {
  auto* worker = new PromiseWorker<Compute, ToJs, ToError>(env, name, std::move(compute), std::move(toJs),
                                                           std::move(toError));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace siglip::addon
