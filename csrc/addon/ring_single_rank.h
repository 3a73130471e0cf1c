// One-rank-per-process rings in the raw binding: this process's rank of an MPI job (host
// shards, CPU; here) or of an NCCL ring (one GPU; ring_nccl.cpp, the CUDA build), one call at a
// time, in an AsyncWorker (internal to csrc/addon/ring_*.cpp; ring_bindings.h documents the
// calls). A failure breaks the ring (state->broken).
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "host_inputs.h"
#include "ring/ring_sigmoid.h"
#include "ring/transport.h"
#include "ring_convert.h"

namespace siglip::addon::ring_internal {

// One rank's call, read on the JS thread. What differs between the kinds of rank: run()
// (on a worker thread: the ring for this rank, filling result and stats) and gradients()
// (back on the JS thread: the gradients as JavaScript values).
struct SingleRankCall {
  virtual ~SingleRankCall() = default;
  virtual void run(ring::Transport& tp) = 0;
  // The host arrays given (the default), or device matrices.
  virtual std::pair<Napi::Value, Napi::Value> gradients(Napi::Env env, Napi::Value hostImage, Napi::Value hostText);

  ring::RingShard shard;  // host views and ids
  ring::RingOptions options;
  bool wantGrad = false;
  float* hostGradImage = nullptr;
  float* hostGradText = nullptr;
  LossResult result;
  ring::RingStats stats;
};

// options.imageIds / textIds of a one-rank call (host Int32Arrays), with the shard's row counts.
void readSingleRankIds(Napi::Object options, SingleRankCall& call, int64_t imageRows, int64_t textRows,
                       HostInputs& inputs);

// Reads wantGrad (info[3]), allocates the host gradient arrays on the JS thread when the
// gradients go to the host, and queues the call: the tail every one-rank loss shares.
Napi::Value queueSingleRankCall(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state,
                                std::unique_ptr<SingleRankCall> call, HostInputs&& inputs, int64_t imageElements,
                                int64_t textElements, bool hostGradients);

// handle.sigmoidLoss(image, text, options, wantGrad) of an MPI ring: one host shard; a
// Promise of this rank's result.
Napi::Value mpiSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state);

}  // namespace siglip::addon::ring_internal
