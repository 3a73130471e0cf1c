// The chunked multi-rank sigmoid loss (SPEC.md, "The ring"): each rank keeps its images; text
// blocks, their label ids and their gradient accumulators travel around the ring. No rank
// ever holds more than its own shards plus a constant number of travelling blocks.
#pragma once
#include <cstdint>

#include "../core/loss_request.h"
#include "ring_backend.h"
#include "transport.h"

namespace siglip::ring {

// One rank's part of the global batch (the concatenation of all ranks' shards in rank order).
struct RingShard {
  MatrixView image;                  // n_r × D (for a CUDA backend: device data of its dtype)
  MatrixView text;                   // m_r × D (m_r may differ from n_r where ids are given)
  const int32_t* imageIds = nullptr;  // n_r ids, or null on every rank
  const int32_t* textIds = nullptr;   // m_r ids
};

struct RingOptions {
  double logitScale = 0;  // must be the same on every rank (checked)
  double logitBias = 0;
  int threads = 1;        // CPU threads this rank's tiles use
};

struct RingStats {
  int steps = 0;               // ring steps taken (P)
  uint64_t bytesSent = 0;      // by this rank
  uint64_t peakRingBytes = 0;  // the ring's own buffers on this rank (travelling blocks)
  double computeSeconds = 0;   // time in the tile computation
  double waitSeconds = 0;      // time blocked on transfers not hidden by computation
};

// Computes, on every rank, the global loss and ∂L/∂s, ∂L/∂b (identical bits on every rank),
// and this rank's ∂L/∂X_r and ∂L/∂Y_r into `grads` (when wanted). Collective: every rank of
// the transport must call it with the same options. On any failure it aborts the transport
// (so the other ranks fail too) and throws.
// On the CPU (host memory, the CPU kernels).
LossResult ringSigmoidLoss(Transport& transport, const RingShard& shard, const RingOptions& options,
                           GradientOutputs grads, RingStats* stats = nullptr);
// On any backend: the shard's data, ids and `grads` live in the backend's memory.
LossResult ringSigmoidLoss(Transport& transport, RingBackend& backend, const RingShard& shard,
                           const RingOptions& options, GradientOutputs grads, RingStats* stats = nullptr);

}  // namespace siglip::ring
