// The chunked CLIP softmax loss on the CPU (softmaxLoss with Method::Chunked).
//
// The softmax of a row (or column) needs that whole row's log-sum-exp before any of its
// probabilities, so unlike the sigmoid the loss cannot be finished in one sweep. Two sweeps
// over the same kTileRows × kTileCols tiles, never an N×M buffer:
//
//   Pass 1, per tile (i, j): S = X_i·Y_jᵀ and the tile's partial log-sum-exp of the logits
//     t·S in each row and column, as (max S, Σ exp(t·(S - max S))), plus the sum of S over
//     the positives and their number. Row partials merge into their row's running (max, sum)
//     in j order, column partials into their column's in i order (below). Then, per row (and
//     per column), CE = log Σ + t·(max S - mean positive S): the max kept apart from the
//     log-sum, so a converged batch (positive = max, CE ≈ 0) keeps its relative accuracy.
//     Everything is in units of S (see SoftmaxTileParams): no float logit is ever formed.
//   Pass 2 (gradients only), per tile: S again, H = (P_row - T_row)/(2N) + (P_col - T_col)/(2M)
//     from the finished statistics (at the positives recomputed in double), Σ H ⊙ l for ∂s,
//     S ← t·H, then ∂X_i += (t·H)·Y_j and ∂Y_j += (t·H)ᵀ·X_i exactly as fused_sigmoid.cpp.
//
// Four GEMMs of work where the sigmoid has three (S is computed twice); extra memory is
// O(N + M) statistics plus, per worker, two tiles' worth of partials, one tile, its GEMM
// scratch and its row block of X packed.
//
// Determinism: a worker owns a row block i and sweeps j in order, so row statistics, ∂X_i
// and the per-row-block ∂s sum have a fixed order. Columns are shared between row blocks:
// the merge of tile (i, j)'s column partials (pass 1) and the ∂Y_j update (pass 2) wait
// until row block i-1 has done its own, the wavefront of fused_sigmoid.cpp, deferred by one
// tile so each wait has a tile of slack. Same bits for any number of threads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../core/errors.h"
#include "gemm.h"
#include "losses.h"
#include "thread_pool.h"

namespace siglip::cpu {
namespace {

// Folds a partial log-sum-exp (partMax, Σ exp(t·(S - partMax))) into a running one. Only
// ever exp of a non-positive argument; a part whose max is the running max adds exactly.
inline void mergeLogSumExp(double t, float& max, double& sum, float partMax, double partSum) {
  if (partMax > max) {
    sum = sum * std::exp(t * (double(max) - double(partMax))) + partSum;
    max = partMax;
  } else {
    sum += partSum * std::exp(t * (double(partMax) - double(max)));
  }
}

// Statistics of every row (or column) of the logits, O(length) memory.
struct LineStats {
  std::vector<float> maxS;            // max S (the logits' max is t times it)
  std::vector<double> sum;            // Σ exp(t·(S - max S))
  std::vector<double> positiveSumS;   // Σ S over the positives
  std::vector<int64_t> positives;
  // Filled by crossEntropySum(), for pass 2:
  std::vector<float> logSum;          // log(sum) in float, for the vector lanes
  std::vector<double> logSumExact;    // and in double, for the positives
  std::vector<double> target;         // 1 / positives

  explicit LineStats(int64_t n)
      : maxS(size_t(n), -std::numeric_limits<float>::infinity()),
        sum(size_t(n), 0.0),
        positiveSumS(size_t(n), 0.0),
        positives(size_t(n), 0) {}

  void merge(double t, int64_t at, const float* partMaxS, const double* partSum, const double* partPositiveSumS,
             const int64_t* partPositives, int64_t count) {
    for (int64_t k = 0; k < count; ++k) {
      mergeLogSumExp(t, maxS[size_t(at + k)], sum[size_t(at + k)], partMaxS[k], partSum[k]);
      positiveSumS[size_t(at + k)] += partPositiveSumS[k];
      positives[size_t(at + k)] += partPositives[k];
    }
  }

  // False when a similarity was not a finite float32 (the GEMM overflowed on huge
  // embeddings): then the statistics are junk.
  bool finite() const {
    for (size_t k = 0; k < maxS.size(); ++k)
      if (!std::isfinite(maxS[k]) || !std::isfinite(sum[k]) || !(sum[k] > 0) || !std::isfinite(positiveSumS[k]))
        return false;
    return true;
  }

  // Σ over the lines of CE = log Σ + t·(max S - mean positive S). Validation guarantees
  // every line a positive. Sums of float S in double are exact in practice, so a line
  // whose positives all equal its max contributes log Σ alone.
  double crossEntropySum(double t) {
    const size_t n = maxS.size();
    logSum.resize(n);
    logSumExact.resize(n);
    target.resize(n);
    double total = 0;
    for (size_t k = 0; k < n; ++k) {
      const double count = double(positives[k]);
      logSumExact[k] = std::log(sum[k]);
      logSum[k] = float(logSumExact[k]);
      target[k] = 1.0 / count;
      total += logSumExact[k] + t * (double(maxS[k]) - positiveSumS[k] / count);
    }
    return total;
  }
};

struct Worker {
  AlignedBuffer tile;
  GemmWorkspace gemm;
  AlignedBuffer imageAsA;
  AlignedBuffer imageAsB;
  AlignedBuffer tiles2;  // pass 2: the tile whose ∂Y step is deferred
  // Pass 1 partials: one set for the tile's rows, two for its columns (tile j and j-1,
  // whose merge is deferred).
  std::vector<float> rowMaxS, colMaxS[2];
  std::vector<double> rowSum, rowPositiveSumS, colSum[2], colPositiveSumS[2];
  std::vector<int64_t> rowPositives, colPositives[2];

  Worker(const KernelSet& k, int64_t d, bool wantGrad)
      : tile(size_t(kTileRows) * kTileCols),
        gemm(k),
        imageAsA(size_t(packedSizeA(k, kTileRows, d))),
        imageAsB(wantGrad ? size_t(packedSizeB(k, kTileRows, d)) : 0),
        tiles2(wantGrad ? size_t(kTileRows) * kTileCols : 0),
        rowMaxS(size_t(kTileRows)),
        rowSum(size_t(kTileRows)),
        rowPositiveSumS(size_t(kTileRows)),
        rowPositives(size_t(kTileRows)) {
    for (int b = 0; b < 2; ++b) {
      colMaxS[b].resize(size_t(kTileCols));
      colSum[b].resize(size_t(kTileCols));
      colPositiveSumS[b].resize(size_t(kTileCols));
      colPositives[b].resize(size_t(kTileCols));
    }
  }
  SoftmaxTilePartials partials(int b) {
    return {rowMaxS.data(),    rowSum.data(),    rowPositiveSumS.data(),    rowPositives.data(),
            colMaxS[b].data(), colSum[b].data(), colPositiveSumS[b].data(), colPositives[b].data()};
  }
};

// Progress counters of the column wavefront: entry j = the number of row blocks that have
// done their ordered step on column block j.
std::unique_ptr<std::atomic<int64_t>[]> progressCounters(int64_t count) {
  std::unique_ptr<std::atomic<int64_t>[]> p(new std::atomic<int64_t>[size_t(count)]);
  for (int64_t j = 0; j < count; ++j) p[j].store(0, std::memory_order_relaxed);
  return p;
}

void waitForTurn(const std::atomic<int64_t>& progress, int64_t rowBlock) {
  while (progress.load(std::memory_order_acquire) != rowBlock) std::this_thread::yield();
}

}  // namespace

LossResult chunkedSoftmaxLoss(const KernelSet& ks, const EpilogueSet& ep, const LossRequest& req, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  const float* x = req.image.data;
  const float* y = req.text.data;
  const double temperature = std::exp(req.logitScale);
  const bool wantGrad = grads.wanted();
  const int64_t rowBlocks = (n + kTileRows - 1) / kTileRows;
  const int64_t colBlocks = (m + kTileCols - 1) / kTileCols;
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>(req.threads, rowBlocks)));

  // Everything is allocated before the parallel sections: nothing in them can throw.
  std::vector<std::unique_ptr<Worker>> state;
  for (int w = 0; w < workers; ++w) state.push_back(std::make_unique<Worker>(ks, d, wantGrad));
  LineStats rowStats(n), colStats(m);
  std::vector<double> rowBlockHDotS(wantGrad ? size_t(rowBlocks) : 0, 0.0);  // Σ H ⊙ S per row block
  auto colProgress = progressCounters(colBlocks);
  // Y_jᵀ (both passes) and Y_j (pass 2) packed once per call where that is small (gemm.h).
  PackedText text(ks, y, m, d, kTileCols, wantGrad);
  text.packAll(req.threads);

  auto tileParams = [&](int64_t i0, int64_t j0) {
    SoftmaxTileParams p;
    p.temperature = float(temperature);
    p.temperatureExact = temperature;
    p.rowOffset = i0;
    p.colOffset = j0;
    if (req.imageIds) {
      p.rowIds = req.imageIds + i0;
      p.colIds = req.textIds + j0;
    }
    return p;
  };

  // ---- pass 1: the log-sum-exps and the positives' logits ----
  std::atomic<int64_t> nextRowBlock{0};
  ThreadPool::shared().run(workers, [&](int w) {
    Worker& me = *state[size_t(w)];
    for (int64_t ib; (ib = nextRowBlock.fetch_add(1)) < rowBlocks;) {
      const int64_t i0 = ib * kTileRows;
      const int64_t rows = std::min(kTileRows, n - i0);
      const float* xi = x + i0 * d;
      packWholeA(ks, StridedView{xi, d, 1}, rows, d, me.imageAsA.data());
      const GemmOperand imageAsA{StridedView{xi, d, 1}, me.imageAsA.data()};
      // The one ordered step: column partials join their columns in row-block order.
      auto mergeColumns = [&](int64_t jb) {
        const int64_t j0 = jb * kTileCols;
        const int b = int(jb % 2);
        waitForTurn(colProgress[jb], ib);
        colStats.merge(temperature, j0, me.colMaxS[b].data(), me.colSum[b].data(), me.colPositiveSumS[b].data(),
                       me.colPositives[b].data(), std::min(kTileCols, m - j0));
        colProgress[jb].store(ib + 1, std::memory_order_release);
      };
      for (int64_t jb = 0; jb < colBlocks; ++jb) {
        const int64_t j0 = jb * kTileCols;
        const int64_t cols = std::min(kTileCols, m - j0);
        float* s = me.tile.data();
        gemm(ks, rows, cols, d, imageAsA, text.transposed(j0), s, kTileCols, false, me.gemm);
        SoftmaxTilePartials partials = me.partials(int(jb % 2));
        ep.softmaxStatsEpilogue(s, kTileCols, rows, cols, tileParams(i0, j0), partials);
        rowStats.merge(temperature, i0, me.rowMaxS.data(), me.rowSum.data(), me.rowPositiveSumS.data(),
                       me.rowPositives.data(), rows);
        if (jb > 0) mergeColumns(jb - 1);
      }
      mergeColumns(colBlocks - 1);
    }
  });

  if (!rowStats.finite() || !colStats.finite()) {
    throw invalidArgument(ErrorKind::Range, "image.data",
                          "embeddings whose dot products with text are finite float32 numbers",
                          "rows whose dot products overflow float32 (normalise the embeddings)");
  }
  LossResult result;
  result.loss =
      0.5 * (rowStats.crossEntropySum(temperature) / double(n) + colStats.crossEntropySum(temperature) / double(m));
  if (!wantGrad) return result;

  // ---- pass 2: H tile by tile, ∂X, ∂Y and ∂s ----
  std::memset(grads.image, 0, size_t(n) * size_t(d) * sizeof(float));
  std::memset(grads.text, 0, size_t(m) * size_t(d) * sizeof(float));
  for (int64_t j = 0; j < colBlocks; ++j) colProgress[j].store(0, std::memory_order_relaxed);
  nextRowBlock.store(0);
  ThreadPool::shared().run(workers, [&](int w) {
    Worker& me = *state[size_t(w)];
    float* tiles[2] = {me.tile.data(), me.tiles2.data()};
    for (int64_t ib; (ib = nextRowBlock.fetch_add(1)) < rowBlocks;) {
      const int64_t i0 = ib * kTileRows;
      const int64_t rows = std::min(kTileRows, n - i0);
      const float* xi = x + i0 * d;
      packWholeA(ks, StridedView{xi, d, 1}, rows, d, me.imageAsA.data());
      packWholeB(ks, StridedView{xi, d, 1}, rows, d, me.imageAsB.data());
      const GemmOperand imageAsA{StridedView{xi, d, 1}, me.imageAsA.data()};
      const GemmOperand imageAsB{StridedView{xi, d, 1}, me.imageAsB.data()};
      // ∂Y_j += (t·H)ᵀ·X_i, in row-block order, one tile late (as in fused_sigmoid.cpp).
      auto accumulateTextGrad = [&](int64_t jb) {
        const int64_t j0 = jb * kTileCols;
        const int64_t cols = std::min(kTileCols, m - j0);
        waitForTurn(colProgress[jb], ib);
        gemm(ks, cols, d, rows, GemmOperand{StridedView{tiles[jb % 2], 1, kTileCols}}, imageAsB,
             grads.text + j0 * d, d, true, me.gemm);
        colProgress[jb].store(ib + 1, std::memory_order_release);
      };
      double hDotS = 0;
      for (int64_t jb = 0; jb < colBlocks; ++jb) {
        const int64_t j0 = jb * kTileCols;
        const int64_t cols = std::min(kTileCols, m - j0);
        float* s = tiles[jb % 2];
        gemm(ks, rows, cols, d, imageAsA, text.transposed(j0), s, kTileCols, false, me.gemm);
        SoftmaxTileParams p = tileParams(i0, j0);
        p.rowMaxS = rowStats.maxS.data() + i0;
        p.rowLogSum = rowStats.logSum.data() + i0;
        p.rowLogSumExact = rowStats.logSumExact.data() + i0;
        p.rowTarget = rowStats.target.data() + i0;
        p.colMaxS = colStats.maxS.data() + j0;
        p.colLogSum = colStats.logSum.data() + j0;
        p.colLogSumExact = colStats.logSumExact.data() + j0;
        p.colTarget = colStats.target.data() + j0;
        p.rowScale = 1.0 / (2.0 * double(n));
        p.colScale = 1.0 / (2.0 * double(m));
        hDotS += ep.softmaxGradientEpilogue(s, kTileCols, rows, cols, p);
        gemm(ks, rows, d, cols, GemmOperand{StridedView{s, kTileCols, 1}}, text.rows(j0), grads.image + i0 * d, d,
             true, me.gemm);
        if (jb > 0) accumulateTextGrad(jb - 1);
      }
      accumulateTextGrad(colBlocks - 1);
      rowBlockHDotS[size_t(ib)] = hDotS;
    }
  });
  // ∂L/∂s = Σ H ⊙ logits = t · Σ H ⊙ S, summed in row-block order.
  double hDotS = 0;
  for (double part : rowBlockHDotS) hDotS += part;
  result.dLogitScale = temperature * hDotS;
  return result;
}

}  // namespace siglip::cpu
