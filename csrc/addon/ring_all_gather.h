// handle.allGather(bytes) of a one-rank-per-process ring (MPI or NCCL): every rank passes a
// Uint8Array of the same length and gets all of them, rank after rank, in one Uint8Array.
// For the few bytes ranks must agree on outside a loss call (lib/ring/rank.ts shares an NCCL
// unique id over MPI with it). The collective blocks until every rank has joined: a worker
// thread, never the JS thread; a failure (a rank that never joins: the timeout) breaks the ring.
#pragma once
#include <napi.h>

#include <memory>

#include "ring_convert.h"

namespace siglip::addon::ring_internal {

Napi::Value rankAllGather(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state);

}  // namespace siglip::addon::ring_internal
