// The chunked multi-rank sigmoid loss (SPEC.md, "The ring"): each rank keeps its images; text
// blocks, their label ids and their gradient accumulators travel around the ring. No rank
// ever holds more than its own shards plus a constant number of travelling blocks.
#pragma once
#include <cstdint>
#include <string>

#include "../core/block_backend.h"
#include "../core/loss_request.h"
#include "transport.h"

namespace siglip::ring {

// One rank's part of the global batch (the concatenation of all ranks' shards in rank order),
// in the backend's memory and dtype (BlockBackend::dtype(), device(); checked). Host float32
// data is scanned for NaN/Infinity before the ring starts, named `imageName` / `textName` as
// the caller wrote them (e.g. "imageShards[2].data"); data elsewhere was scanned where it was
// put there (cuda::makeShardResident) or not at all (device inputs, as documented).
struct RingShard {
  BlockMatrix image;                  // n_r × D
  BlockMatrix text;                   // m_r × D (m_r may differ from n_r where ids are given)
  const int32_t* imageIds = nullptr;  // n_r ids, or null on every rank
  const int32_t* textIds = nullptr;   // m_r ids
  std::string imageName = "image.data", textName = "text.data";
};

// Which way text blocks travel (ring_sigmoid.cpp has the two schedules and what each costs).
enum class RingDirection {
  OneWay,  // each block visits the other P − 1 ranks going forward; its gradient comes home in one more hop
  TwoWay,  // a copy each way, ⌊P/2⌋ and ⌊(P−1)/2⌋ ranks; the two gradients retrace their paths home
};

struct RingOptions {
  double logitScale = 0;  // must be the same on every rank (checked), as must `direction`
  double logitBias = 0;
  RingDirection direction = RingDirection::OneWay;
  int threads = 1;        // CPU threads this rank's blocks use (PairBlock::threads)
};

struct RingStats {
  int steps = 0;               // computing steps: P one-way, ⌊P/2⌋ + 1 two-way
  int returnHops = 0;          // hops of gradient accumulators after the last computing step
  uint64_t bytesSent = 0;      // by this rank to its neighbours in this call (not the all-gathers)
  uint64_t peakRingBytes = 0;  // the ring's own buffers on this rank (travelling blocks)
  double computeSeconds = 0;   // time in the tile computation
  double waitSeconds = 0;      // time blocked on transfers not hidden by computation
};

// Computes, on every rank, the global loss and ∂L/∂s, ∂L/∂b (identical bits on every rank),
// and this rank's ∂L/∂X_r and ∂L/∂Y_r into `grads` (when wanted). Collective: every rank of
// the transport must call it with the same options. On any failure it aborts the transport
// (so the other ranks fail too) and throws.
// The shard's data, ids and `grads` live in the backend's memory (host memory for
// cpu::CpuBlockBackend, one GPU's for cuda::CudaBlockBackend).
LossResult ringSigmoidLoss(Transport& transport, BlockBackend& backend, const RingShard& shard,
                           const RingOptions& options, GradientOutputs grads, RingStats* stats = nullptr);

// The message tags of the schedule: one per step, lane (0: blocks going to the next rank,
// 1: to the previous one) and payload. A tag names one flow, as transport.h requires.
enum class RingPayload { Texts = 0, Gradients = 1 };
constexpr int ringTag(int step, int lane, RingPayload payload) { return 1 + 4 * step + 2 * lane + int(payload); }

}  // namespace siglip::ring
