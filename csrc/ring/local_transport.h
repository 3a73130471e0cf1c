// The in-process transport: P ranks as threads of one process, exchanging messages through
// shared mailboxes. For tests, and for driving several ranks (CPU, or one per GPU) from one
// Node.js process. Sends copy the message at once, so they complete immediately.
#pragma once
#include <memory>
#include <vector>

#include "../core/block_backend.h"  // MessageMemory
#include "transport.h"

namespace siglip::ring {

class LocalGroup;

// Messages are kept in a MessageMemory (core/block_backend.h): host memory and memcpy by
// default; device memory and cudaMemcpy for ranks whose buffers live on GPUs
// (cuda::deviceMessageMemory, csrc/cuda/cuda_block_backend.h). All-gathers stay on the host
// (their buffers are host memory by the Transport contract).
using siglip::MessageMemory;

// Creates `size` connected endpoints; endpoint r is rank r. The group lives as long as any
// endpoint does. `timeout` bounds every wait. `memory`: null for host memory.
std::vector<std::unique_ptr<Transport>> createLocalGroup(int size, std::chrono::milliseconds timeout,
                                                         std::shared_ptr<MessageMemory> memory = nullptr);

}  // namespace siglip::ring
