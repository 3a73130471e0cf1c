// The in-process transport: P ranks as threads of one process, exchanging messages through
// shared mailboxes. For tests, and for driving several ranks (CPU, or one per GPU) from one
// Node.js process. Sends copy the message at once, so they complete immediately.
#pragma once
#include <memory>
#include <vector>

#include "transport.h"

namespace siglip::ring {

class LocalGroup;

// Creates `size` connected endpoints; endpoint r is rank r. The group lives as long as any
// endpoint does. `timeout` bounds every wait.
std::vector<std::unique_ptr<Transport>> createLocalGroup(int size, std::chrono::milliseconds timeout);

}  // namespace siglip::ring
