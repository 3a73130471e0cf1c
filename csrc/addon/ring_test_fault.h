// The test seam of local rings: a fault armed on a ring handle (handle.testFault(rank, mode),
// which lib/ring/local.ts reaches only through injectRingFaultForTests, a function the
// package's entry points do not export) makes one rank of the ring's next call fail, so that
// test/ring.test.ts can check the other ranks stop with an error instead of hanging. Nothing
// in the public types or the call options carries it.
#pragma once
#include <napi.h>

#include <string>

#include "ring/transport.h"

namespace siglip::addon::ring_internal {

enum class FaultMode { None, Abort, Absent };

struct RingFault {
  FaultMode mode = FaultMode::None;
  int rank = -1;
  bool hits(int r) const { return mode != FaultMode::None && r == rank; }
};

// testFault(rank, mode?) of a ring of `size` ranks: rank in 0 … size − 1, mode 'abort' (the
// default) or 'absent'.
RingFault readRingFault(Napi::Value rank, Napi::Value mode, int size);

// Rank `rank` fails after its first ring step: its first send carrying a tag of step 2 or
// later throws (step s sends what step s + 1 needs), and the ring aborts the transport as it
// does on any failure. With P = 1 there is no such send and no failure.
class FaultyTransport : public ring::Transport {
 public:
  explicit FaultyTransport(ring::Transport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  ring::Transfer send(ring::Neighbour to, const void* data, size_t bytes, int tag) override;
  ring::Transfer receive(ring::Neighbour from, void* data, size_t bytes, int tag) override {
    return inner_.receive(from, data, bytes, tag);
  }
  void wait(ring::Transfer& transfer) override { inner_.wait(transfer); }
  void allGather(const void* mine, size_t bytes, void* all) override { inner_.allGather(mine, bytes, all); }
  void abort(const std::string& reason) override { inner_.abort(reason); }
  uint64_t bytesSent() const override { return inner_.bytesSent(); }

 private:
  ring::Transport& inner_;
};

// Throws for the rank a fault of mode Absent names: it never takes part.
void failIfAbsent(const RingFault& fault, int rank);

}  // namespace siglip::addon::ring_internal
