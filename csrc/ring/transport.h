// What the ring needs from a communication layer, and nothing more: point-to-point messages
// to the next rank and from the previous one (non-blocking, matched by tag), an all-gather
// of a few bytes per rank (sizes, the three scalars), and abort. In-process (threads), MPI
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

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Starts sending `bytes` at `data` to rank (rank + 1) % size. The buffer must stay valid
  // and unchanged until wait() returns for the transfer.
  virtual Transfer sendToNext(const void* data, size_t bytes, int tag) = 0;
  // Starts receiving exactly `bytes` from rank (rank - 1 + size) % size into `data`.
  virtual Transfer receiveFromPrevious(void* data, size_t bytes, int tag) = 0;
  // Blocks until the transfer completes; throws on timeout, abort or a size mismatch.
  virtual void wait(Transfer& transfer) = 0;

  // all[r·bytes … (r+1)·bytes) receives rank r's `bytes` at `mine`, for every rank.
  virtual void allGather(const void* mine, size_t bytes, void* all) = 0;

  // Tells every other rank that this one failed (their waits throw with `reason`).
  virtual void abort(const std::string& reason) = 0;

  // Bytes this endpoint has sent with sendToNext since it was created.
  virtual uint64_t bytesSent() const = 0;
};

}  // namespace siglip::ring
