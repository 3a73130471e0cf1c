// The fused, tiled sigmoid loss on the CPU.
//
// The N×M pair grid is cut into tiles of kTileRows × kTileCols. For tile (i, j):
//   1. S    = X_i · Y_jᵀ                       (GEMM, K = D)
//   2. epilogue on S in place: the loss terms and scalar sums, and S ← t·G
//   3. ∂X_i += (t·G) · Y_j                      (GEMM, K = tile columns)
//   4. ∂Y_j += (t·G)ᵀ · X_i                     (GEMM, K = tile rows)
// so no N×M buffer exists: each worker holds one tile and its GEMM packing buffers.
//
// Work is split by row blocks: a worker takes the next row block i and sweeps j = 0, 1, …
// It alone writes ∂X_i, in j order. ∂Y_j receives a contribution from every row block;
// to make the sum's order fixed (i = 0, 1, …, whatever the thread count) step 4 of tile
// (i, j) waits until row block i-1 has added its contribution to ∂Y_j. Row blocks are
// handed out in order, so workers run as a wavefront one tile apart and the waits are
// short; the waiting never deadlocks because the lowest row block in flight never waits.
// The scalar sums are kept per row block (added in j order) and summed in i order.
// Together: the same bits for any number of threads. (Step 4 of a tile is deferred past
// steps 1-3 of the next one, so a wait has a tile of slack: see the loop.)
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "gemm.h"
#include "losses.h"
#include "thread_pool.h"

namespace siglip::cpu {

PairSums fusedSigmoidBlock(const KernelSet& ks, const SigmoidBlock& req, float* dImage, float* dText) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  const float* x = req.image.data;
  const float* y = req.text.data;
  const double temperature = req.temperature;
  const bool wantGrad = dImage != nullptr;
  const GradientOutputs grads{dImage, dText};
  const int64_t rowBlocks = (n + kTileRows - 1) / kTileRows;
  const int64_t colBlocks = (m + kTileCols - 1) / kTileCols;
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>(req.threads, rowBlocks)));

  // Everything is allocated before the parallel section, so nothing in it can throw
  // (a worker that threw while others wait on its progress would hang them).
  // Per worker: the tile, GEMM scratch, and its row block X_i packed whole in the two
  // layouts the tile GEMMs read it in (A of X_i·Y_jᵀ, B of Gᵀ·X_i), once per row block.
  struct Worker {
    AlignedBuffer tiles[2];  // tile j and tile j-1 (whose ∂Y step is deferred, see below)
    GemmWorkspace gemm;
    AlignedBuffer imageAsA;
    AlignedBuffer imageAsB;
    Worker(const KernelSet& k, int64_t d)
        : tiles{AlignedBuffer(size_t(kTileRows) * kTileCols), AlignedBuffer(size_t(kTileRows) * kTileCols)},
          gemm(k),
          imageAsA(size_t(packedSizeA(k, kTileRows, d))),
          imageAsB(size_t(packedSizeB(k, kTileRows, d))) {}
  };
  std::vector<std::unique_ptr<Worker>> state;
  for (int w = 0; w < workers; ++w) state.push_back(std::make_unique<Worker>(ks, d));
  std::vector<PairSums> rowBlockSums(static_cast<size_t>(rowBlocks));
  std::unique_ptr<std::atomic<int64_t>[]> colProgress(new std::atomic<int64_t>[size_t(colBlocks)]);
  for (int64_t j = 0; j < colBlocks; ++j) colProgress[j].store(0, std::memory_order_relaxed);

  SigmoidTileParams params;
  params.temperature = float(temperature);
  params.bias = float(req.bias);
  params.gradScale = float(temperature / req.normalizer);
  params.wantGradient = wantGrad;

  std::atomic<int64_t> nextRowBlock{0};
  ThreadPool::shared().run(workers, [&](int w) {
    Worker& me = *state[size_t(w)];
    for (int64_t ib; (ib = nextRowBlock.fetch_add(1)) < rowBlocks;) {
      const int64_t i0 = ib * kTileRows;
      const int64_t rows = std::min(kTileRows, n - i0);
      const float* xi = x + i0 * d;
      packWholeA(ks, StridedView{xi, d, 1}, rows, d, me.imageAsA.data());
      if (wantGrad) packWholeB(ks, StridedView{xi, d, 1}, rows, d, me.imageAsB.data());
      const GemmOperand imageAsA{StridedView{xi, d, 1}, me.imageAsA.data()};
      const GemmOperand imageAsB{StridedView{xi, d, 1}, me.imageAsB.data()};
      // Step 4 (∂Y_j += Gᵀ·X_i, the only ordered step) of tile j runs after steps 1-3 of
      // tile j+1: the wait for row block i-1 then has a whole tile of slack, which absorbs
      // the jitter of a shared machine instead of stalling on it.
      auto accumulateTextGrad = [&](int64_t jb) {
        const int64_t j0 = jb * kTileCols;
        const int64_t cols = std::min(kTileCols, m - j0);
        while (colProgress[jb].load(std::memory_order_acquire) != ib) std::this_thread::yield();
        gemm(ks, cols, d, rows, GemmOperand{StridedView{me.tiles[jb % 2].data(), 1, kTileCols}}, imageAsB,
             grads.text + j0 * d, d, true, me.gemm);
        colProgress[jb].store(ib + 1, std::memory_order_release);
      };
      for (int64_t jb = 0; jb < colBlocks; ++jb) {
        const int64_t j0 = jb * kTileCols;
        const int64_t cols = std::min(kTileCols, m - j0);
        const float* yj = y + j0 * d;
        float* s = me.tiles[jb % 2].data();
        gemm(ks, rows, cols, d, imageAsA, GemmOperand{StridedView{yj, 1, d}}, s, kTileCols, false, me.gemm);

        SigmoidTileParams tileParams = params;
        tileParams.rowOffset = req.imageOffset + i0;
        tileParams.colOffset = req.textOffset + j0;
        if (req.imageIds) {
          tileParams.rowIds = req.imageIds + i0;
          tileParams.colIds = req.textIds + j0;
        }
        PairSums tileSums;
        ks.sigmoidEpilogue(s, kTileCols, rows, cols, tileParams, tileSums);
        rowBlockSums[size_t(ib)].add(tileSums);
        if (!wantGrad) continue;

        gemm(ks, rows, d, cols, GemmOperand{StridedView{s, kTileCols, 1}}, GemmOperand{StridedView{yj, d, 1}},
             grads.image + i0 * d, d, true, me.gemm);
        if (jb > 0) accumulateTextGrad(jb - 1);
      }
      if (wantGrad) accumulateTextGrad(colBlocks - 1);
    }
  });

  PairSums total;
  for (const PairSums& rowSums : rowBlockSums) total.add(rowSums);
  return total;
}

LossResult sigmoidResultFromSums(const PairSums& sums, double temperature, double normalizer, bool withGradients) {
  return sigmoidLossFromSums(sums.softplus, sums.dLogit, sums.dLogitSim, temperature, normalizer, withGradients);
}

LossResult fusedSigmoidLoss(const KernelSet& ks, const LossRequest& req, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  if (grads.wanted()) {
    std::memset(grads.image, 0, size_t(n) * size_t(d) * sizeof(float));
    std::memset(grads.text, 0, size_t(m) * size_t(d) * sizeof(float));
  }
  SigmoidBlock block;
  block.image = req.image;
  block.text = req.text;
  block.imageIds = req.imageIds;
  block.textIds = req.textIds;
  block.temperature = std::exp(req.logitScale);
  block.bias = req.logitBias;
  block.normalizer = double(n);
  block.threads = req.threads;
  const PairSums sums = fusedSigmoidBlock(ks, block, grads.image, grads.text);
  return sigmoidResultFromSums(sums, block.temperature, block.normalizer, grads.wanted());
}

}  // namespace siglip::cpu
