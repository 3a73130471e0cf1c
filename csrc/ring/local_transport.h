// The in-process transport: P ranks as threads of one process, exchanging messages through
// shared mailboxes. For tests, and for driving several ranks (CPU, or one per GPU) from one
// Node.js process. Sends copy the message at once, so they complete immediately.
#pragma once
#include <memory>
#include <vector>

#include "transport.h"

namespace siglip::ring {

class LocalGroup;

// Where messages are kept between a send and its receive, and how they are copied: host
// memory and memcpy by default; device memory and cudaMemcpy for ranks whose buffers live on
// GPUs (cuda::deviceMessageMemory, csrc/cuda/cuda_ring_backend.h). All-gathers stay on the
// host (their buffers are host memory by the Transport contract).
class MessageMemory {
 public:
  virtual ~MessageMemory() = default;
  // A new message holding a copy of `bytes` at `data` (complete on return).
  virtual std::shared_ptr<void> copyOut(const void* data, size_t bytes) = 0;
  // Copies a message's `bytes` into `data` (complete on return).
  virtual void copyIn(void* data, const void* message, size_t bytes) = 0;
};

// Creates `size` connected endpoints; endpoint r is rank r. The group lives as long as any
// endpoint does. `timeout` bounds every wait. `memory`: null for host memory.
std::vector<std::unique_ptr<Transport>> createLocalGroup(int size, std::chrono::milliseconds timeout,
                                                         std::shared_ptr<MessageMemory> memory = nullptr);

}  // namespace siglip::ring
