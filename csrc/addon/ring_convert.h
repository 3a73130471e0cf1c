// What the ring's bindings share (internal to csrc/addon/ring_*.cpp): the ring's limits,
// RingKind and RingState, reading the options every ring call takes (scalars, direction, the
// timeout), the checks before a call, and a ring's failure as a JS error.
// Everything here runs on the JS thread.
#pragma once
#include <napi.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/limits.h"
#include "core/loss_request.h"
#include "convert.h"
#include "js_errors.h"
#include "ring/ring_sigmoid.h"
#include "ring/transport.h"
#include "ring_test_fault.h"

namespace siglip::addon::ring_internal {

// The ring's limits (csrc/core/limits.h).
using limits::kMaxRingRanks;
using limits::kMaxRingTimeoutMs;

enum class RingKind { Local, Mpi, Nccl };

const char* kindName(RingKind kind);

// What a ring is, without JavaScript. Changed only on the JS thread; a call's worker reads
// `endpoints` while `busy` (no other call, connect or re-creation runs meanwhile). Workers
// hold their own shared_ptr, so dispose() during a call frees the transports after it.
struct RingState {
  RingKind kind = RingKind::Local;
  int rank = 0;  // the (first) rank this object drives
  int size = 1;  // P
  int device = -1;  // nccl: the CUDA ordinal
  std::vector<int> devices;  // local rings of GPUs: rank r's CUDA ordinal (empty: the CPU)
  bool localNccl = false;    // a local ring of GPUs whose ranks talk through NCCL (connect() joins them)
  std::chrono::milliseconds timeout{limits::kDefaultRingTimeoutMs};
  std::vector<std::unique_ptr<ring::Transport>> endpoints;
  bool busy = false;
  std::string broken;  // mpi, nccl: why the ring cannot be used any more ('' while it can)
  RingFault fault;     // local: armed by the test seam (ring_test_fault.h) for the next call
  std::vector<uint8_t> ncclId;  // nccl: until connect()
};

// options.logitScale and options.logitBias of a ring call, in the core's ranges (checked here:
// the ring reads them on the JS thread, before its ranks start).
Scalars readRingScalars(Napi::Object options);

// options.direction: 'one-way' (the default, when absent) or 'two-way'.
ring::RingDirection readDirection(Napi::Object options);

std::chrono::milliseconds readTimeout(Napi::Object options);

// The live state of a ring; throws for a disposed ring, one busy with another call, or a broken one.
std::shared_ptr<RingState> usableRing(Napi::Env env, const std::shared_ptr<RingState>& state);
// usableRing(), and connected (an NCCL ring once connect() has resolved).
std::shared_ptr<RingState> connectedRing(Napi::Env env, const std::shared_ptr<RingState>& state);
// A Promise resolved at once: connect() of a ring that is connected when made.
Napi::Value resolvedPromise(Napi::Env env);

// A ring's failure as a JS error: the transport's own failures (timeouts, a stopped rank)
// get ERR_SIGLIP_RING_FAILED; argument errors keep their TypeError / RangeError.
Napi::Error ringError(Napi::Env env, const CapturedError& error);

}  // namespace siglip::addon::ring_internal
