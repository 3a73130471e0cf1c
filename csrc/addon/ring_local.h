// Local rings in the raw binding: P ranks as threads of this process, each with one shard,
// on the CPU or each on a GPU (internal to csrc/addon/ring_*.cpp; ring_bindings.h documents
// the calls).
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "ring_convert.h"

namespace siglip::addon::ring_internal {

// handle.sigmoidLoss(imageShards, textShards, options, wantGrad) of a local ring: reads and
// checks the arguments on the JS thread, then runs the P ranks in an AsyncWorker; a Promise
// of P results, or of the failing rank's error (with `rank` and `rankErrors`).
Napi::Value localSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state);

// The in-process endpoints of a local ring: host messages, or device messages (each rank's
// buffers on its GPU) for a ring of GPUs (state.devices).
std::vector<std::unique_ptr<ring::Transport>> createLocalEndpoints(const RingState& state);

}  // namespace siglip::addon::ring_internal
