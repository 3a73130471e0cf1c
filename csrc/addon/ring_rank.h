// One rank's part of a ring call, shared by every kind of ring (internal to
// csrc/addon/ring_*.cpp and cuda/ring_*.cpp): what a rank computes (RankCall: a CPU rank
// here, a GPU rank in cuda/ring_gpu_rank.cpp), its result as a JS value, and the calls of a
// one-rank-per-process ring (MPI, NCCL): its loss call, allGather, and how they are queued.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <utility>

#include "convert.h"
#include "host_inputs.h"
#include "promise_worker.h"
#include "ring/ring_sigmoid.h"
#include "ring/transport.h"
#include "ring_convert.h"

namespace siglip::addon::ring_internal {

// Read on the JS thread; run() on a worker thread (or a rank's own thread of a local ring).
struct RankCall {
  virtual ~RankCall() = default;
  // The ring for this rank, filling result and stats; a failure aborts `tp` (ringSigmoidLoss,
  // ring::gpuRankSigmoidLoss), so the other ranks stop instead of waiting for this one.
  virtual void run(ring::Transport& tp) = 0;
  // Back on the JS thread: the gradients as JS values, the host arrays given (the default)
  // or device matrices.
  virtual std::pair<Napi::Value, Napi::Value> gradients(Napi::Env env, const GradientArrays& host) const;

  ring::RingShard shard;  // host views (a GPU rank's give the shape), ids, the data scan's names
  ring::RingOptions options;
  bool wantGrad = false;
  GradientOutputs hostGrads;  // when the gradients go to host arrays
  LossResult result;
  ring::RingStats stats;
};

// A CPU rank: the ring on the CPU backend (which scans the host shard for NaN/Inf first).
struct CpuRankCall : RankCall {
  void run(ring::Transport& tp) override;
};

// { loss, grad?: { image, text, logitScale, logitBias }, stats }.
Napi::Object rankResultToJs(Napi::Env env, const RankCall& call, const GradientArrays& host);

// Queues `compute` (a worker thread) on a one-rank-per-process ring, which is busy until the
// Promise settles; `toJs` gives its value. A failure breaks the ring: its transport cannot be
// trusted after a failed collective (local rings get a fresh group instead: ring_local.cpp).
template <class Compute, class ToJs>
Napi::Value queueRankRingCall(Napi::Env env, const char* name, const std::shared_ptr<RingState>& state,
                              Compute compute, ToJs toJs) {
  state->busy = true;
  return queuePromise(
      env, name, std::move(compute),
      [state, toJs = std::move(toJs)](Napi::Env env, auto& result) {
        state->busy = false;
        return toJs(env, result);
      },
      [state](Napi::Env env, const CapturedError& error) {
        state->busy = false;
        state->broken = error.message;
        return ringError(env, error);
      });
}

// handle.sigmoidLoss(image, text, options, wantGrad) of a one-rank-per-process ring, once its
// image and text are in `call`: the shapes' width, the options (scalars, direction, ids, and
// threads for a CPU rank or precision and gradients for a GPU rank), wantGrad and the host
// gradient arrays, then the call queued.
Napi::Value rankSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state,
                            std::unique_ptr<RankCall> call, HostInputs&& inputs, bool gpu);

// handle.allGather(bytes) of a one-rank-per-process ring: every rank passes a Uint8Array of
// the same length and gets all of them, rank after rank, in one Uint8Array. For the few bytes
// ranks must agree on outside a loss call (lib/ring/rank.ts shares an NCCL unique id over MPI
// with it). The collective blocks until every rank has joined: a worker thread, never the JS
// thread; a failure (a rank that never joins: the timeout) breaks the ring.
Napi::Value rankAllGather(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state);

}  // namespace siglip::addon::ring_internal
