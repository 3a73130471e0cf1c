// The AsyncWorker of a call on a one-rank-per-process ring (MPI, NCCL): the call runs in
// run() on a worker thread; back on the JS thread the ring is free again, and the Promise
// resolves with result() or rejects with the failure, which breaks the ring (its transport
// cannot be trusted after a failed collective). Local rings report per-rank errors and get a
// fresh group instead (ring_local.cpp).
#pragma once
#include <napi.h>

#include <memory>
#include <utility>

#include "js_errors.h"
#include "ring_convert.h"
#include "settling_worker.h"

namespace siglip::addon::ring_internal {

class RankCallWorker : public SettlingWorker {
 public:
  Napi::Promise promise() const { return deferred_.Promise(); }

  // Marks the ring busy and queues the worker, which deletes itself when it settles.
  Napi::Promise queue() {
    state_->busy = true;
    Napi::Promise p = promise();
    Queue();
    return p;
  }

 protected:
  RankCallWorker(Napi::Env env, const char* name, std::shared_ptr<RingState> state)
            : SettlingWorker(env, name), state_(std::move(state)), deferred_(Napi::Promise::Deferred::New(env)) {}

  // The call, on a worker thread: touches no JavaScript; throws on failure.
  virtual void run() = 0;
  // The Promise's value, on the JS thread after run() returned.
  virtual Napi::Value result(Napi::Env env) = 0;

  std::shared_ptr<RingState> state_;

 private:
  void Execute() final {
    try {
      run();
    } catch (...) {
      error_ = captureCurrentException();
    }
  }

  void OnOK() final {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    state_->busy = false;
    if (error_.present) {
      state_->broken = error_.message;
      deferred_.Reject(ringError(env, error_).Value());
      return;
    }
    try {
      deferred_.Resolve(result(env));
    } catch (const Napi::Error& e) {  // building the result failed (out of JS heap)
      deferred_.Reject(e.Value());
    }
  }

  CapturedError error_;
  Napi::Promise::Deferred deferred_;
};

}  // namespace siglip::addon::ring_internal
