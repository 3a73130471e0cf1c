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
#include "../cpu/aligned_buffer.h"
#include "../cpu/cpu_kernels.h"
#include "../cpu/losses.h"

namespace siglip::ring {
namespace {

using Clock = std::chrono::steady_clock;

// What every rank tells every other before the first step.
struct ShardHeader {
  int64_t imageRows, textRows, cols;
  int64_t hasIds;
  double logitScale, logitBias;
};

// A travelling block: texts (m × D floats) followed by their ids (m int32, when used).
struct BlockBuffer {
  cpu::AlignedBuffer storage;
  float* texts() { return storage.data(); }
  int32_t* ids(int64_t rows, int64_t cols) { return reinterpret_cast<int32_t*>(storage.data() + rows * cols); }
};

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

LossResult runRing(Transport& tp, const RingShard& shard, const RingOptions& opt, GradientOutputs grads,
                   RingStats& stats) {
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

  // 2. The travelling buffers: two text blocks (current, incoming), two gradient
  //    accumulators (one travelling out, one coming in) and this rank's contribution.
  const bool wantGrad = grads.wanted();
  const int64_t idFloats = mine.hasIds ? maxTextRows : 0;  // ids ride in float-sized slots
  BlockBuffer blocks[2];
  cpu::AlignedBuffer accumulators[2], contribution;
  blocks[0].storage.resize(size_t(maxTextRows * d + idFloats));
  if (p > 1) blocks[1].storage.resize(size_t(maxTextRows * d + idFloats));
  if (wantGrad) {
    contribution.resize(size_t(maxTextRows * d));
    if (p > 1) {
      accumulators[0].resize(size_t(maxTextRows * d));
      accumulators[1].resize(size_t(maxTextRows * d));
    }
    std::memset(grads.image, 0, size_t(shard.image.rows * d) * sizeof(float));
  }
  stats.peakRingBytes = (blocks[0].storage.size() + blocks[1].storage.size() + accumulators[0].size() +
                         accumulators[1].size() + contribution.size()) * sizeof(float);

  // The own block starts in blocks[0].
  std::memcpy(blocks[0].texts(), shard.text.data, size_t(shard.text.rows * d) * sizeof(float));
  if (mine.hasIds) std::memcpy(blocks[0].ids(shard.text.rows, d), shard.textIds, size_t(shard.text.rows) * sizeof(int32_t));

  const cpu::KernelSet& kernels = cpu::activeKernels();
  const double temperature = std::exp(opt.logitScale);
  cpu::PairSums sums;
  Transfer sendingAccumulator;
  for (int s = 0; s < p; ++s) {
    const int owner = (r - s + p) % p;
    const int64_t rows = all[size_t(owner)].textRows;
    BlockBuffer& current = blocks[s % 2];
    BlockBuffer& incoming = blocks[(s + 1) % 2];
    const auto blockBytes = [&](int64_t m) { return size_t(m * d) * sizeof(float) + (mine.hasIds ? size_t(m) * 4 : 0); };

    // Texts of the next step travel while this one computes; a block's ids ride right after
    // its texts in the same message.
    Transfer receivingTexts, sendingTexts, receivingAccumulator;
    if (s < p - 1) {
      const int nextOwner = (r - s - 1 + 2 * p) % p;
      const int64_t nextRows = all[size_t(nextOwner)].textRows;
      receivingTexts = tp.receiveFromPrevious(incoming.texts(), blockBytes(nextRows), 2 * (s + 1));
      sendingTexts = tp.sendToNext(current.texts(), blockBytes(rows), 2 * (s + 1));
    }
    float* accumulator = nullptr;
    if (wantGrad && s > 0) {
      accumulator = accumulators[s % 2].data();
      receivingAccumulator = tp.receiveFromPrevious(accumulator, size_t(rows * d) * sizeof(float), 2 * s + 1);
    }

    // Own images × block `owner`.
    const auto computeStart = Clock::now();
    cpu::SigmoidBlock block;
    block.image = shard.image;
    block.text = MatrixView{current.texts(), rows, d};
    block.imageIds = shard.imageIds;
    block.textIds = mine.hasIds ? current.ids(rows, d) : nullptr;
    block.imageOffset = imageOffset[size_t(r)];
    block.textOffset = textOffset[size_t(owner)];
    block.temperature = temperature;
    block.bias = opt.logitBias;
    block.normalizer = double(globalImages);
    block.threads = opt.threads;
    float* part = nullptr;
    if (wantGrad) {
      part = (s == 0 && p == 1) ? grads.text : contribution.data();
      std::memset(part, 0, size_t(rows * d) * sizeof(float));
    }
    if (shard.image.rows > 0 && rows > 0) sums.add(cpu::fusedSigmoidBlock(kernels, block, wantGrad ? grads.image : nullptr, part));
    const auto computeEnd = Clock::now();
    stats.computeSeconds += seconds(computeStart, computeEnd);

    if (wantGrad && p > 1) {
      // Add this rank's part to the block's accumulator and pass it on.
      if (s == 0) {
        accumulator = accumulators[0].data();
        std::memcpy(accumulator, part, size_t(rows * d) * sizeof(float));
      } else {
        tp.wait(receivingAccumulator);
        for (int64_t e = 0; e < rows * d; ++e) accumulator[e] += part[e];
      }
      tp.wait(sendingAccumulator);  // the previous one, whose buffer is about to be reused
      sendingAccumulator = tp.sendToNext(accumulator, size_t(rows * d) * sizeof(float), 2 * (s + 1) + 1);
    }
    tp.wait(sendingTexts);
    tp.wait(receivingTexts);
    stats.waitSeconds += seconds(computeEnd, Clock::now());
  }
  if (wantGrad && p > 1) {
    // ∂Y_r has visited every rank; the last of them sends it home.
    const auto waitStart = Clock::now();
    Transfer home = tp.receiveFromPrevious(grads.text, size_t(shard.text.rows * d) * sizeof(float), 2 * p + 1);
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

LossResult ringSigmoidLoss(Transport& transport, const RingShard& shard, const RingOptions& options,
                           GradientOutputs grads, RingStats* stats) {
  RingStats local;
  try {
    LossResult result = runRing(transport, shard, options, grads, stats ? *stats : local);
    return result;
  } catch (const std::exception& e) {
    transport.abort(e.what());
    throw;
  }
}

}  // namespace siglip::ring
