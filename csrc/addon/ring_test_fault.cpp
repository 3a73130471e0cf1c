#include "ring_test_fault.h"

#include "convert.h"
#include "core/errors.h"
#include "js_errors.h"
#include "ring/ring_sigmoid.h"

namespace siglip::addon::ring_internal {

RingFault readRingFault(Napi::Value rank, Napi::Value mode, int size) {
  RingFault fault;
  fault.rank = static_cast<int>(readInteger(rank, "rank", 0, size - 1));
  fault.mode = FaultMode::Abort;
  if (!mode.IsUndefined()) {
    const char* expected = "'abort' or 'absent'";
    if (!mode.IsString()) throw typeError(mode.Env(), "mode", expected, describeValue(mode));
    const std::string name = mode.As<Napi::String>().Utf8Value();
    if (name == "absent") fault.mode = FaultMode::Absent;
    else if (name != "abort") throw rangeError(mode.Env(), "mode", expected, describeValue(mode));
  }
  return fault;
}

ring::Transfer FaultyTransport::send(ring::Neighbour to, const void* data, size_t bytes, int tag) {
  if (tag >= ring::ringTag(2, 0, ring::RingPayload::Texts)) {
    throw Error(ErrorKind::Internal, "ring",
                "ring rank " + std::to_string(rank()) + ": simulated failure after its first step (the failRank test hook)");
  }
  return inner_.send(to, data, bytes, tag);
}

void failIfAbsent(const RingFault& fault, int rank) {
  if (fault.mode == FaultMode::Absent && fault.rank == rank) {
    throw Error(ErrorKind::Internal, "ring",
                "ring rank " + std::to_string(rank) + " did not take part (the failRank test hook, failMode 'absent')");
  }
}

}  // namespace siglip::addon::ring_internal
