// What the ring's bindings share (internal to csrc/addon/ring_*.cpp): the ring's error codes
// and limits, RingKind and RingState, reading the options every ring call takes (scalars,
// label ids, the timeout), and a rank's result or failure as a JS value.
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
#include "js_errors.h"
#include "ring/ring_sigmoid.h"
#include "ring/transport.h"
#include "ring_test_fault.h"

namespace siglip::addon::ring_internal {

// `code`s of the ring's own errors (lib/ring/ uses the same).
constexpr const char* kErrDisposedCode = "ERR_SIGLIP_DISPOSED";
constexpr const char* kErrRingBusy = "ERR_SIGLIP_RING_BUSY";
constexpr const char* kErrRingFailed = "ERR_SIGLIP_RING_FAILED";
constexpr const char* kErrNoMpi = "ERR_SIGLIP_NO_MPI";
constexpr const char* kErrNoNccl = "ERR_SIGLIP_NO_NCCL";

// The ring's limits (csrc/core/limits.h).
using limits::kMaxAbsLogitScale;
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
#if defined(SIGLIP_WITH_CUDA)
  std::vector<uint8_t> ncclId;  // until connect()
#endif
};

// A plain object (not an array, function, typed array or ArrayBuffer) named `name`.
Napi::Object readOptions(Napi::Value value, const std::string& name);

struct Scalars {
  double logitScale = 0;
  double logitBias = 0;
};

Scalars readScalars(Napi::Object options);

// options.direction: 'one-way' (the default, when absent) or 'two-way'.
ring::RingDirection readDirection(Napi::Object options);

bool absent(Napi::Value value);

// imageIds and textIds are given together or not at all.
void checkIdsTogether(Napi::Env env, bool hasImageIds, bool hasTextIds);

std::chrono::milliseconds readTimeout(Napi::Object options);

// { loss, grad?: { image, text, logitScale, logitBias }, stats }; image/text given when wanted.
Napi::Object rankResultToJs(Napi::Env env, const LossResult& result, const ring::RingStats& stats, bool wantGrad,
                            Napi::Value image, Napi::Value text);

// A ring's failure as a JS error: the transport's own failures (timeouts, a stopped rank)
// get ERR_SIGLIP_RING_FAILED; argument errors keep their TypeError / RangeError.
Napi::Error ringError(Napi::Env env, const CapturedError& error);

}  // namespace siglip::addon::ring_internal
