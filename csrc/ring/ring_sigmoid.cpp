// The ring schedule (P ranks, rank r, text block c = (r − s) mod P at step s = 0 … P−1):
//
//   step s:  start receiving block c−1's texts (+ ids) from the previous rank   (s < P−1)
//            start sending block c's texts (+ ids) to the next rank             (s < P−1)
//            compute own images × block c: loss sums, ∂X_r += …, and block c's ∂Y part
//            wait for block c's gradient accumulator from the previous rank     (s > 0)
//            add this rank's part, send the accumulator on to the next rank     (P > 1)
//   end:     receive ∂Y_r, which has visited every rank, from the previous rank
//
// At step 0 the block is the rank's own (it holds the positives). The texts of the next step
// and the accumulator of the previous one move while the tiles compute (double buffering);
// the last accumulator hop (s = P−1) lands on the block's owner. The three scalars are
// all-gathered and summed in rank order, so every rank gets the same bits.
#include "ring_sigmoid.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../core/errors.h"
#include "ring_backend.h"

namespace siglip::ring {
namespace {

using Clock = std::chrono::steady_clock;

// What every rank tells every other before the first step.
struct ShardHeader {
  int64_t imageRows, textRows, cols;
  int64_t hasIds;
  double logitScale, logitBias;
};

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

LossResult runRing(Transport& tp, RingBackend& be, const RingShard& shard, const RingOptions& opt,
                   GradientOutputs grads, RingStats& stats) {
  const int p = tp.size(), r = tp.rank();
  const int64_t d = shard.image.cols;
  if (shard.text.cols != d)
    throw invalidArgument(ErrorKind::Range, "text", std::to_string(d) + " columns (as image)",
                          std::to_string(shard.text.cols));
  if ((shard.imageIds == nullptr) != (shard.textIds == nullptr))
    throw invalidArgument(ErrorKind::Type, "textIds", "imageIds and textIds given together", "only one of them");

  // 1. Sizes and options from every rank; all must agree on D, ids and the scalars.
  const ShardHeader mine{shard.image.rows, shard.text.rows, d, shard.imageIds ? 1 : 0, opt.logitScale, opt.logitBias};
  std::vector<ShardHeader> all(static_cast<size_t>(p));
  tp.allGather(&mine, sizeof mine, all.data());
  std::vector<int64_t> imageOffset(static_cast<size_t>(p) + 1, 0), textOffset(static_cast<size_t>(p) + 1, 0);
  int64_t maxTextRows = 0;
  for (int q = 0; q < p; ++q) {
    const ShardHeader& h = all[size_t(q)];
    if (h.cols != d || h.hasIds != mine.hasIds || h.logitScale != mine.logitScale || h.logitBias != mine.logitBias)
      throw Error(ErrorKind::Range, "ring",
                  "ring ranks disagree: rank " + std::to_string(q) + " has D=" + std::to_string(h.cols) +
                      (h.hasIds ? " with" : " without") + " ids, logitScale " + std::to_string(h.logitScale) +
                      ", logitBias " + std::to_string(h.logitBias) + "; rank " + std::to_string(r) + " has D=" +
                      std::to_string(d) + (mine.hasIds ? " with" : " without") + " ids, logitScale " +
                      std::to_string(mine.logitScale) + ", logitBias " + std::to_string(mine.logitBias));
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

  // 2. The travelling buffers, in the backend's memory: two text blocks (current, incoming;
  //    a block's ids ride right after its texts in the same message), two gradient
  //    accumulators (one travelling out, one coming in) and this rank's contribution.
  const bool wantGrad = grads.wanted();
  const size_t element = be.elementBytes();
  // Texts, padded to 4 bytes (16-bit data may have an odd element count), then the ids.
  const auto textBytes = [&](int64_t m) { return (size_t(m * d) * element + 3) / 4 * 4; };
  const auto blockBytes = [&](int64_t m) { return textBytes(m) + (mine.hasIds ? size_t(m) * sizeof(int32_t) : 0); };
  const auto gradBytes = [&](int64_t m) { return size_t(m * d) * sizeof(float); };
  const auto idsOf = [&](void* block, int64_t m) {
    return reinterpret_cast<int32_t*>(static_cast<char*>(block) + textBytes(m));
  };
  void* blocks[2] = {be.allocate(blockBytes(maxTextRows)), p > 1 ? be.allocate(blockBytes(maxTextRows)) : nullptr};
  float* accumulators[2] = {nullptr, nullptr};
  float* contribution = nullptr;
  if (wantGrad) {
    contribution = static_cast<float*>(be.allocate(gradBytes(maxTextRows)));
    if (p > 1) {
      accumulators[0] = static_cast<float*>(be.allocate(gradBytes(maxTextRows)));
      accumulators[1] = static_cast<float*>(be.allocate(gradBytes(maxTextRows)));
    }
    be.zero(grads.image, gradBytes(shard.image.rows));
  }
  stats.peakRingBytes = be.allocatedBytes();

  // The own block starts in blocks[0].
  be.copy(blocks[0], shard.text.data, size_t(shard.text.rows * d) * element);
  if (mine.hasIds) be.copy(idsOf(blocks[0], shard.text.rows), shard.textIds, size_t(shard.text.rows) * sizeof(int32_t));

  const double temperature = std::exp(opt.logitScale);
  cpu::PairSums sums;
  Transfer sendingAccumulator;
  for (int s = 0; s < p; ++s) {
    const int owner = (r - s + p) % p;
    const int64_t rows = all[size_t(owner)].textRows;
    void* current = blocks[s % 2];
    void* incoming = blocks[(s + 1) % 2];

    // Texts of the next step travel while this one computes.
    Transfer receivingTexts, sendingTexts, receivingAccumulator;
    if (s < p - 1) {
      const int nextOwner = (r - s - 1 + 2 * p) % p;
      receivingTexts = tp.receiveFromPrevious(incoming, blockBytes(all[size_t(nextOwner)].textRows), 2 * (s + 1));
      sendingTexts = tp.sendToNext(current, blockBytes(rows), 2 * (s + 1));
    }
    float* accumulator = nullptr;
    if (wantGrad && s > 0) {
      accumulator = accumulators[s % 2];
      receivingAccumulator = tp.receiveFromPrevious(accumulator, gradBytes(rows), 2 * s + 1);
    }

    // Own images × block `owner`.
    const auto computeStart = Clock::now();
    cpu::SigmoidBlock block;
    block.image = shard.image;
    block.text = MatrixView{static_cast<const float*>(current), rows, d};
    block.imageIds = shard.imageIds;
    block.textIds = mine.hasIds ? idsOf(current, rows) : nullptr;
    block.imageOffset = imageOffset[size_t(r)];
    block.textOffset = textOffset[size_t(owner)];
    block.temperature = temperature;
    block.bias = opt.logitBias;
    block.normalizer = double(globalImages);
    block.threads = opt.threads;
    float* part = nullptr;
    if (wantGrad) {
      part = (s == 0 && p == 1) ? grads.text : contribution;
      be.zero(part, gradBytes(rows));
    }
    if (shard.image.rows > 0 && rows > 0) sums.add(be.computeBlock(block, wantGrad ? grads.image : nullptr, part));
    const auto computeEnd = Clock::now();
    stats.computeSeconds += seconds(computeStart, computeEnd);

    if (wantGrad && p > 1) {
      // Add this rank's part to the block's accumulator and pass it on.
      if (s == 0) {
        accumulator = accumulators[0];
        be.copy(accumulator, part, gradBytes(rows));
      } else {
        tp.wait(receivingAccumulator);
        be.add(accumulator, part, rows * d);
      }
      tp.wait(sendingAccumulator);  // the previous one, whose buffer is about to be reused
      sendingAccumulator = tp.sendToNext(accumulator, gradBytes(rows), 2 * (s + 1) + 1);
    }
    tp.wait(sendingTexts);
    tp.wait(receivingTexts);
    stats.waitSeconds += seconds(computeEnd, Clock::now());
  }
  if (wantGrad && p > 1) {
    // ∂Y_r has visited every rank; the last of them sends it home.
    const auto waitStart = Clock::now();
    Transfer home = tp.receiveFromPrevious(grads.text, gradBytes(shard.text.rows), 2 * p + 1);
    tp.wait(home);
    tp.wait(sendingAccumulator);
    stats.waitSeconds += seconds(waitStart, Clock::now());
  }
  stats.steps = p;

  // 3. The scalars, summed in rank order on every rank.
  const double local[3] = {sums.softplus, sums.dLogit, sums.dLogitSim};
  std::vector<double> everyone(static_cast<size_t>(p) * 3);
  tp.allGather(local, sizeof local, everyone.data());
  cpu::PairSums total;
  for (int q = 0; q < p; ++q) total.add(cpu::PairSums{everyone[3 * q], everyone[3 * q + 1], everyone[3 * q + 2]});
  stats.bytesSent = tp.bytesSent();
  return cpu::sigmoidResultFromSums(total, temperature, double(globalImages), wantGrad);
}

}  // namespace

LossResult ringSigmoidLoss(Transport& transport, RingBackend& backend, const RingShard& shard,
                           const RingOptions& options, GradientOutputs grads, RingStats* stats) {
  RingStats local;
  try {
    return runRing(transport, backend, shard, options, grads, stats ? *stats : local);
  } catch (const std::exception& e) {
    transport.abort(e.what());
    throw;
  }
}

LossResult ringSigmoidLoss(Transport& transport, const RingShard& shard, const RingOptions& options,
                           GradientOutputs grads, RingStats* stats) {
  CpuRingBackend backend;
  return ringSigmoidLoss(transport, backend, shard, options, grads, stats);
}

}  // namespace siglip::ring
