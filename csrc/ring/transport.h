// What the ring needs from a communication layer, and nothing more: point-to-point messages
// between neighbours (non-blocking, matched by sender and tag), an all-gather of a few bytes
// per rank (sizes, the three scalars), and abort. In-process (threads), MPI
// (processes) and NCCL (GPUs) implement it.
//
// Failure semantics: every wait has a deadline. A wait that passes it, or that sees another
// rank abort, throws siglip::Error naming the rank and what it waited for, so a dead peer is
// an error on every other rank within the timeout, never a hang.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace siglip::ring {

// A pending send or receive; complete it with Transport::wait (a completed request is a no-op).
class PendingTransfer {
 public:
  virtual ~PendingTransfer() = default;
};
using Transfer = std::unique_ptr<PendingTransfer>;

// A rank's two neighbours on the ring: rank + 1 and rank − 1 (mod size).
enum class Neighbour { Next, Previous };

constexpr Neighbour opposite(Neighbour n) { return n == Neighbour::Next ? Neighbour::Previous : Neighbour::Next; }

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // The rank of a neighbour (itself when size is 1; both neighbours are one rank when size is 2).
  int neighbour(Neighbour n) const {
    return n == Neighbour::Next ? (rank() + 1) % size() : (rank() - 1 + size()) % size();
  }

  // Starts sending `bytes` at `data` to a neighbour. The buffer must stay valid and unchanged
  // until wait() returns for the transfer.
  //
  // A tag names one flow: messages sent to Next with tag t are received from Previous with
  // tag t (and vice versa), and a tag is never used for both directions. Every rank posts
  // the same sequence of tags (the NCCL transport, which has no tags, relies on it).
  virtual Transfer send(Neighbour to, const void* data, size_t bytes, int tag) = 0;
  // Starts receiving exactly `bytes` from a neighbour into `data`.
  virtual Transfer receive(Neighbour from, void* data, size_t bytes, int tag) = 0;
  // Blocks until the transfer completes; throws on timeout, abort or a size mismatch.
  virtual void wait(Transfer& transfer) = 0;

  // all[r·bytes … (r+1)·bytes) receives rank r's `bytes` at `mine`, for every rank.
  virtual void allGather(const void* mine, size_t bytes, void* all) = 0;

  // Tells every other rank that this one failed (their waits throw with `reason`).
  virtual void abort(const std::string& reason) = 0;

  // Bytes this endpoint has sent (to either neighbour) since it was created.
  virtual uint64_t bytesSent() const = 0;
};

}  // namespace siglip::ring
