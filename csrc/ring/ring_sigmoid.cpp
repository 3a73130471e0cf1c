// The ring schedules. P ranks, this one r; a lane is a direction text blocks travel in.
//
// One way (one lane, towards the next rank; a block visits the P − 1 other ranks):
//   step 0:      own images × own texts (the positives); that part of ∂Y_r goes straight
//                into ∂Y_r
//   step s ≥ 1:  own images × block r − s, whose texts (+ ids) came from the previous rank
//                during step s − 1. The block's gradient accumulator (started by the first
//                rank it visits) comes from the previous rank, gets this rank's part and
//                moves on. Meanwhile the texts of step s + 1 move (double buffering).
//   end:         the accumulator of ∂Y_r, having visited every other rank, comes home from
//                the previous rank in one more hop.
// Two ways (open_clip's "bidirectional"): a copy of each block goes each way, one visiting
// the ⌊P/2⌋ ranks after its owner, the other the ⌊(P−1)/2⌋ before it, so computing takes
// ⌊P/2⌋ + 1 steps of (up to) two tiles instead of P steps of one. Each copy's accumulator
// then retraces its path home, both lanes at once.
//
// What that costs (T, G: the bytes of a text block and of its float32 gradient): one way,
// each link carries (P − 1)(T + G) in one direction, hidden behind the P − 1 computing steps
// as far as a step computes longer than a block travels. Two ways, each link direction
// carries about (P/2)(T + 2G): less per direction, but the P/2 return hops of G come after
// the last tile, with nothing to hide them. So two ways wins where links are the bottleneck
// (slow networks, small D, a fast backend) and loses a little where computing hides the
// transfers; bench/ring.ts measures both.
//
// The three scalars are all-gathered and summed in rank order, so every rank gets the same
// bits; ∂Y_r adds its parts in a fixed order (own, lane 0, lane 1), so reruns do too.
#include "ring_sigmoid.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../core/errors.h"

namespace siglip::ring {
namespace {

using Clock = std::chrono::steady_clock;

// What every rank tells every other before the first step.
struct ShardHeader {
  int64_t imageRows, textRows, cols;
  int64_t hasIds, twoWay;
  double logitScale, logitBias;
};

// A direction blocks travel in, with its buffers and the transfers in flight.
struct Lane {
  Lane(int index, Neighbour toward, int visits) : index(index), toward(toward), visits(visits) {}
  int index;           // 0: towards the next rank, 1: towards the previous one (two ways only)
  Neighbour toward;
  int visits;          // ranks a block visits after leaving its owner
  bool homeForward = false;  // its accumulator ends one hop before its owner (visits = P − 1)
  void* texts[2] = {nullptr, nullptr};  // the block of step s ≥ 1 is texts[s % 2]
  float* accumulators[2] = {nullptr, nullptr};
  float* home = nullptr;  // once computing is over: the accumulator on its way to (then at) its owner
  Transfer receivingTexts, sendingTexts, receivingGradients, sendingGradients;
};

std::string describe(const ShardHeader& h) {
  return "D=" + std::to_string(h.cols) + (h.hasIds ? " with" : " without") + " ids, logitScale " +
         formatNumber(h.logitScale) + ", logitBias " + formatNumber(h.logitBias) +
         (h.twoWay ? ", two-way" : ", one-way");
}

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

LossResult runRing(Transport& tp, BlockBackend& be, const RingShard& shard, const RingOptions& opt,
                   GradientOutputs grads, RingStats& stats) {
  const int p = tp.size(), r = tp.rank();
  const int64_t d = shard.image.cols;
  const uint64_t bytesBefore = tp.bytesSent();  // the transport counts over its whole life
  if (shard.text.cols != d)
    throw invalidArgument(ErrorKind::Range, "text.cols", std::to_string(d) + " columns (as image)",
                          std::to_string(shard.text.cols));
  if ((shard.imageIds == nullptr) != (shard.textIds == nullptr))
    throw invalidArgument(ErrorKind::Type, "options.textIds", "imageIds and textIds given together", "only one of them");
  for (const BlockMatrix* m : {&shard.image, &shard.text}) {
    if (m->dtype != be.dtype() || m->device != be.device())
      throw Error(ErrorKind::Internal, "ring", std::string("a ") + dtypeName(m->dtype) + " shard on device " +
                                                   std::to_string(m->device) + " for a backend of " +
                                                   dtypeName(be.dtype()) + " on device " + std::to_string(be.device()));
  }
  if (be.device() == kHostMemory && be.dtype() == DType::Float32) {
    checkFinite(shard.image.hostView(), shard.imageName);
    checkFinite(shard.text.hostView(), shard.textName);
  }

  // 1. Sizes and options from every rank; all must agree on D, ids and the scalars.
  const ShardHeader mine{shard.image.rows, shard.text.rows, d, shard.imageIds ? 1 : 0,
                        opt.direction == RingDirection::TwoWay ? 1 : 0, opt.logitScale, opt.logitBias};
  std::vector<ShardHeader> all(static_cast<size_t>(p));
  tp.allGather(&mine, sizeof mine, all.data());
  std::vector<int64_t> imageOffset(static_cast<size_t>(p) + 1, 0), textOffset(static_cast<size_t>(p) + 1, 0);
  int64_t maxTextRows = 0;
  for (int q = 0; q < p; ++q) {
    const ShardHeader& h = all[size_t(q)];
    if (h.cols != d || h.hasIds != mine.hasIds || h.twoWay != mine.twoWay || h.logitScale != mine.logitScale ||
        h.logitBias != mine.logitBias)
      throw Error(ErrorKind::Range, "ring",
                  "ring ranks disagree: rank " + std::to_string(q) + " has " + describe(h) + "; rank " +
                      std::to_string(r) + " has " + describe(mine));
    imageOffset[size_t(q) + 1] = imageOffset[size_t(q)] + h.imageRows;
    textOffset[size_t(q) + 1] = textOffset[size_t(q)] + h.textRows;
    maxTextRows = std::max(maxTextRows, h.textRows);
  }
  const int64_t globalImages = imageOffset[size_t(p)], globalTexts = textOffset[size_t(p)];
  if (!mine.hasIds && globalImages != globalTexts)
    throw Error(ErrorKind::Range, "text",
                "Expected as many text rows as image rows over all ranks (without label ids row i of the global image "
                "batch pairs with row i of the global text batch) for text but received " +
                    std::to_string(globalTexts) + " text rows for " + std::to_string(globalImages) + " image rows");

  // 2. The lanes and their buffers, in the backend's memory: per lane two text blocks
  //    (current, incoming; a block's ids ride right after its texts in the same message)
  //    and two gradient accumulators (one leaving, one arriving), plus one contribution.
  const bool wantGrad = grads.wanted();
  const size_t element = be.elementBytes();
  // Texts, padded to 4 bytes (16-bit data may have an odd element count), then the ids.
  const auto textBytes = [&](int64_t m) { return (size_t(m * d) * element + 3) / 4 * 4; };
  const auto blockBytes = [&](int64_t m) { return textBytes(m) + (mine.hasIds ? size_t(m) * sizeof(int32_t) : 0); };
  const auto gradBytes = [&](int64_t m) { return size_t(m * d) * sizeof(float); };
  const auto idsOf = [&](void* block, int64_t m) {
    return reinterpret_cast<int32_t*>(static_cast<char*>(block) + textBytes(m));
  };
  const bool twoWay = opt.direction == RingDirection::TwoWay;
  std::vector<Lane> lanes;
  lanes.emplace_back(0, Neighbour::Next, twoWay ? p / 2 : p - 1);
  if (twoWay) lanes.emplace_back(1, Neighbour::Previous, (p - 1) / 2);
  int lastStep = 0;
  for (Lane& lane : lanes) {
    lane.homeForward = lane.visits == p - 1;
    lastStep = std::max(lastStep, lane.visits);
    if (lane.index == 0 || lane.visits >= 2) lane.texts[0] = be.allocate(blockBytes(maxTextRows));
    if (lane.visits >= 1) {
      lane.texts[1] = be.allocate(blockBytes(maxTextRows));
      if (wantGrad)
        for (float*& accumulator : lane.accumulators)
          accumulator = static_cast<float*>(be.allocate(gradBytes(maxTextRows)));
    }
  }
  float* contribution = wantGrad && lastStep >= 2 ? static_cast<float*>(be.allocate(gradBytes(maxTextRows))) : nullptr;
  if (wantGrad) {
    be.zero(grads.image, gradBytes(shard.image.rows));
    be.zero(grads.text, gradBytes(shard.text.rows));
  }
  stats.peakRingBytes = be.allocatedBytes();

  // The own block starts in lane 0's first buffer; every lane sends it at step 0.
  void* const ownBlock = lanes[0].texts[0];
  be.copy(ownBlock, shard.text.data, size_t(shard.text.rows * d) * element);
  if (mine.hasIds) be.copy(idsOf(ownBlock, shard.text.rows), shard.textIds, size_t(shard.text.rows) * sizeof(int32_t));
  const auto ownerAt = [&](const Lane& lane, int step) {
    return lane.toward == Neighbour::Next ? (r - step % p + p) % p : (r + step) % p;
  };
  const auto rowsOf = [&](int owner) { return all[size_t(owner)].textRows; };
  const auto textsAt = [&](const Lane& lane, int step) { return step == 0 ? ownBlock : lane.texts[step % 2]; };

  const double temperature = std::exp(opt.logitScale);
  PairSums sums;
  // Own images × the block in `texts` (owner `owner`), adding its ∂Y part to `dText`.
  const auto computeBlock = [&](void* texts, int owner, float* dText) {
    const int64_t rows = rowsOf(owner);
    const auto computeStart = Clock::now();
    PairBlock block;
    block.image = shard.image;
    block.text = BlockMatrix{texts, rows, d, be.dtype(), be.device()};
    block.imageIds = shard.imageIds;
    block.textIds = mine.hasIds ? idsOf(texts, rows) : nullptr;
    block.imageOffset = imageOffset[size_t(r)];
    block.textOffset = textOffset[size_t(owner)];
    block.temperature = temperature;
    block.bias = opt.logitBias;
    block.normalizer = double(globalImages);
    block.threads = opt.threads;
    if (wantGrad) {
      block.dImage = grads.image;
      block.dText = dText;
    }
    if (shard.image.rows > 0 && rows > 0) sums.add(be.computeBlock(block));
    stats.computeSeconds += seconds(computeStart, Clock::now());
  };
  const auto waitAndCount = [&](Transfer& transfer) {
    const auto waitStart = Clock::now();
    tp.wait(transfer);
    stats.waitSeconds += seconds(waitStart, Clock::now());
  };

  for (int s = 0; s <= lastStep; ++s) {
    // Texts of the next step travel while this one computes; so does each accumulator.
    for (Lane& lane : lanes) {
      if (s < lane.visits) {
        const int tag = ringTag(s + 1, lane.index, RingPayload::Texts);
        lane.receivingTexts = tp.receive(opposite(lane.toward), lane.texts[(s + 1) % 2],
                                         blockBytes(rowsOf(ownerAt(lane, s + 1))), tag);
        lane.sendingTexts = tp.send(lane.toward, textsAt(lane, s), blockBytes(rowsOf(ownerAt(lane, s))), tag);
      }
      if (wantGrad && s >= 2 && s <= lane.visits)
        lane.receivingGradients = tp.receive(opposite(lane.toward), lane.accumulators[s % 2],
                                             gradBytes(rowsOf(ownerAt(lane, s))),
                                             ringTag(s, lane.index, RingPayload::Gradients));
    }
    if (s == 0) {
      computeBlock(ownBlock, r, wantGrad ? grads.text : nullptr);
    } else {
      for (Lane& lane : lanes) {
        if (s > lane.visits) continue;
        const int owner = ownerAt(lane, s);
        const int64_t rows = rowsOf(owner);
        if (!wantGrad) {
          computeBlock(textsAt(lane, s), owner, nullptr);
          continue;
        }
        float* accumulator = lane.accumulators[s % 2];
        if (s == 1) {
          // The first rank the block visits starts its accumulator.
          be.zero(accumulator, gradBytes(rows));
          computeBlock(textsAt(lane, s), owner, accumulator);
        } else {
          be.zero(contribution, gradBytes(rows));
          computeBlock(textsAt(lane, s), owner, contribution);
          waitAndCount(lane.receivingGradients);
          be.add(accumulator, contribution, rows * d);
        }
        waitAndCount(lane.sendingGradients);  // the previous one, whose buffer is about to be reused
        if (s < lane.visits || lane.homeForward)
          lane.sendingGradients =
              tp.send(lane.toward, accumulator, gradBytes(rows), ringTag(s + 1, lane.index, RingPayload::Gradients));
      }
    }
    for (Lane& lane : lanes) {
      waitAndCount(lane.sendingTexts);
      waitAndCount(lane.receivingTexts);
    }
  }

  // The accumulators of ∂Y_r come home: one hop forward (one way), or back along the path.
  int returnHops = 0;
  if (wantGrad) {
    for (Lane& lane : lanes) {
      if (lane.visits == 0 || !lane.homeForward) continue;
      float* arriving = lane.accumulators[(lane.visits + 1) % 2];  // its last send left from the other one
      Transfer home = tp.receive(opposite(lane.toward), arriving, gradBytes(shard.text.rows),
                                 ringTag(lane.visits + 1, lane.index, RingPayload::Gradients));
      waitAndCount(home);
      waitAndCount(lane.sendingGradients);
      lane.home = arriving;
      returnHops = std::max(returnHops, 1);
    }
    for (Lane& lane : lanes)
      if (lane.visits > 0 && !lane.homeForward) {
        lane.home = lane.accumulators[lane.visits % 2];  // held: its hop k goes out in lane.home
        returnHops = std::max(returnHops, lane.visits);
      }
    for (int k = 1; k <= returnHops; ++k) {
      for (Lane& lane : lanes) {
        if (lane.homeForward || k > lane.visits) continue;
        waitAndCount(lane.sendingGradients);  // frees the other buffer
        float* arriving = lane.home == lane.accumulators[0] ? lane.accumulators[1] : lane.accumulators[0];
        const int tag = ringTag(lane.visits + k, lane.index, RingPayload::Gradients);
        lane.receivingGradients =
            tp.receive(lane.toward, arriving, gradBytes(rowsOf(ownerAt(lane, lane.visits - k))), tag);
        lane.sendingGradients =
            tp.send(opposite(lane.toward), lane.home, gradBytes(rowsOf(ownerAt(lane, lane.visits - k + 1))), tag);
        lane.home = arriving;
      }
      for (Lane& lane : lanes) waitAndCount(lane.receivingGradients);
    }
    for (Lane& lane : lanes) {
      waitAndCount(lane.sendingGradients);
      if (lane.home) be.add(grads.text, lane.home, shard.text.rows * d);
    }
  }
  stats.steps = lastStep + 1;
  stats.returnHops = returnHops;

  // 3. The scalars, summed in rank order on every rank.
  const double local[3] = {sums.softplus, sums.dLogit, sums.dLogitSim};
  std::vector<double> everyone(static_cast<size_t>(p) * 3);
  tp.allGather(local, sizeof local, everyone.data());
  PairSums total;
  for (int q = 0; q < p; ++q) total.add(PairSums{everyone[3 * q], everyone[3 * q + 1], everyone[3 * q + 2]});
  stats.bytesSent = tp.bytesSent() - bytesBefore;
  return sigmoidResultFromSums(total, temperature, double(globalImages), wantGrad);
}

}  // namespace

LossResult ringSigmoidLoss(Transport& transport, BlockBackend& backend, const RingShard& shard,
                           const RingOptions& options, GradientOutputs grads, RingStats* stats) {
  RingStats local;
  try {
    return runRing(transport, backend, shard, options, grads, stats ? *stats : local);
  } catch (const std::exception& e) {
    transport.abort(e.what());
    throw;
  }
}

}  // namespace siglip::ring
