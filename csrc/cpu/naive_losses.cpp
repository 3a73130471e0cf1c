// The materialising baselines: the full N×M matrix of similarities exists in memory, as
// in the Python peers' implementations (logits = t·X·Yᵀ + b, then elementwise losses and
// two more GEMMs for the gradients). They share the fused path's GEMM and epilogue
// kernels, so a benchmark compares memory schedules, not kernel quality.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include "gemm.h"
#include "losses.h"
#include "thread_pool.h"

namespace siglip::cpu {
namespace {

// Rows are processed in fixed blocks (independent of the thread count); per-block sums
// are combined in block order, so results are reproducible bit for bit.
constexpr int64_t kRowBlock = 64;

template <class Body>
void forEachRowBlock(int64_t rows, int threads, Body&& body) {
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  std::atomic<int64_t> next{0};
  const int workers = int(std::max<int64_t>(1, std::min<int64_t>(threads, blocks)));
  ThreadPool::shared().run(workers, [&](int w) {
    for (int64_t b; (b = next.fetch_add(1)) < blocks;)
      body(w, b, b * kRowBlock, std::min(kRowBlock, rows - b * kRowBlock));
  });
}

AlignedBuffer similarities(const KernelSet& ks, const LossRequest& req) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  AlignedBuffer s(size_t(n) * size_t(m));
  parallelGemm(ks, n, m, d, StridedView{req.image.data, d, 1}, StridedView{req.text.data, 1, d}, s.data(), m, false,
               req.threads);
  return s;
}

// ∂X = G·Y and ∂Y = Gᵀ·X from the materialised gradient matrix G (N×M).
void backwardGemms(const KernelSet& ks, const LossRequest& req, const float* g, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  parallelGemm(ks, n, d, m, StridedView{g, m, 1}, StridedView{req.text.data, d, 1}, grads.image, d, false,
               req.threads);
  parallelGemm(ks, m, d, n, StridedView{g, 1, m}, StridedView{req.image.data, d, 1}, grads.text, d, false,
               req.threads);
}

// The positive pairs of a softmax batch in compressed-row form: row i's positive columns
// are columns[rowStart[i] .. rowStart[i+1]). Without ids, the diagonal.
struct Positives {
  std::vector<int64_t> rowStart;
  std::vector<int64_t> columns;
  std::vector<int64_t> columnCount;
};

Positives findPositives(const LossRequest& req) {
  const int64_t n = req.image.rows, m = req.text.rows;
  Positives p;
  p.rowStart.resize(size_t(n) + 1);
  p.columnCount.assign(size_t(m), 0);
  if (!req.imageIds) {
    for (int64_t i = 0; i < n; ++i) p.rowStart[i] = i, p.columns.push_back(i), p.columnCount[i] = 1;
    p.rowStart[n] = n;
    return p;
  }
  std::unordered_map<int32_t, std::vector<int64_t>> textsById;
  for (int64_t j = 0; j < m; ++j) textsById[req.textIds[j]].push_back(j);
  for (int64_t i = 0; i < n; ++i) {
    p.rowStart[i] = int64_t(p.columns.size());
    auto found = textsById.find(req.imageIds[i]);
    if (found == textsById.end()) continue;
    for (int64_t j : found->second) p.columns.push_back(j), ++p.columnCount[j];
  }
  p.rowStart[n] = int64_t(p.columns.size());
  return p;
}

double sumAsDouble(const float* v, int64_t n) {
  double parts[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int q = 0; q < 4; ++q) parts[q] += v[i + q];
  for (; i < n; ++i) parts[0] += v[i];
  return (parts[0] + parts[1]) + (parts[2] + parts[3]);
}

}  // namespace

LossResult naiveSigmoidLoss(const KernelSet& ks, const EpilogueSet& ep, const LossRequest& req, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows;
  const double temperature = std::exp(req.logitScale);
  AlignedBuffer s = similarities(ks, req);

  SigmoidTileParams params;
  params.temperature = float(temperature);
  params.bias = float(req.logitBias);
  params.gradScale = float(temperature / double(n));
  params.wantGradient = grads.wanted();
  std::vector<PairSums> blockSums(static_cast<size_t>((n + kRowBlock - 1) / kRowBlock));
  forEachRowBlock(n, req.threads, [&](int, int64_t block, int64_t row0, int64_t rows) {
    SigmoidTileParams p = params;
    p.rowOffset = row0;
    if (req.imageIds) p.rowIds = req.imageIds + row0, p.colIds = req.textIds;
    ep.sigmoidEpilogue(s.data() + row0 * m, m, rows, m, p, blockSums[size_t(block)]);
  });
  PairSums total;
  for (const PairSums& b : blockSums) total.add(b);

  if (grads.wanted()) backwardGemms(ks, req, s.data(), grads);
  return sigmoidResultFromSums(total, temperature, double(n), grads.wanted());
}

LossResult naiveSoftmaxLoss(const KernelSet& ks, const EpilogueSet& ep, const LossRequest& req, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows;
  const float t = float(std::exp(req.logitScale));
  AlignedBuffer s = similarities(ks, req);
  const Positives positives = findPositives(req);

  // Log-sum-exp of each row and column of the logits t·S, kept as (max, log Σ exp(l - max)):
  // the loss and the positives' gradient subtract the (nearly equal) logit of the positive
  // from it, and keeping the max apart makes that difference exact instead of a rounding
  // error of the whole log-sum-exp. Logits are the float32 products t·S everywhere.
  const int workers = std::max(1, req.threads);
  std::vector<std::vector<float>> scratch(size_t(workers), std::vector<float>(static_cast<size_t>(m)));
  std::vector<float> rowMax(static_cast<size_t>(n));
  std::vector<double> rowLogSum(static_cast<size_t>(n));
  forEachRowBlock(n, req.threads, [&](int w, int64_t, int64_t row0, int64_t rows) {
    float* tmp = scratch[size_t(w)].data();
    for (int64_t i = row0; i < row0 + rows; ++i) {
      const float* row = s.data() + i * m;
      const float maxLogit = t * *std::max_element(row, row + m);
      for (int64_t j = 0; j < m; ++j) tmp[j] = t * row[j] - maxLogit;
      ep.expInPlace(tmp, m);
      rowMax[size_t(i)] = maxLogit;
      rowLogSum[size_t(i)] = std::log(sumAsDouble(tmp, m));
    }
  });

  // Columns, in chunks of columns (one task each): a max pass down the chunk, then a pass
  // summing exp(logit - max). Each column is summed in row order.
  std::vector<float> colMax(static_cast<size_t>(m), -std::numeric_limits<float>::infinity());
  std::vector<double> colSum(static_cast<size_t>(m), 0.0);
  forEachRowBlock(m, req.threads, [&](int w, int64_t, int64_t col0, int64_t cols) {
    float* tmp = scratch[size_t(w)].data();
    for (int64_t i = 0; i < n; ++i) {
      const float* row = s.data() + i * m + col0;
      for (int64_t j = 0; j < cols; ++j) colMax[col0 + j] = std::max(colMax[col0 + j], t * row[j]);
    }
    for (int64_t i = 0; i < n; ++i) {
      const float* row = s.data() + i * m + col0;
      for (int64_t j = 0; j < cols; ++j) tmp[j] = t * row[j] - colMax[col0 + j];
      ep.expInPlace(tmp, cols);
      for (int64_t j = 0; j < cols; ++j) colSum[col0 + j] += tmp[j];
    }
  });
  std::vector<double> colLogSum(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) colLogSum[j] = std::log(colSum[j]);

  // The loss: each row's (column's) log-sum-exp minus the mean logit of its positives,
  // i.e. logSum + mean(max - positive logit).
  std::vector<double> rowGap(static_cast<size_t>(n), 0.0), colGap(static_cast<size_t>(m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t q = positives.rowStart[i]; q < positives.rowStart[i + 1]; ++q) {
      const int64_t j = positives.columns[q];
      const double logit = t * s.data()[i * m + j];
      rowGap[i] += double(rowMax[i]) - logit;
      colGap[j] += double(colMax[j]) - logit;
    }
  double rowTerms = 0, colTerms = 0;
  for (int64_t i = 0; i < n; ++i)
    rowTerms += rowLogSum[i] + rowGap[i] / double(positives.rowStart[i + 1] - positives.rowStart[i]);
  for (int64_t j = 0; j < m; ++j) colTerms += colLogSum[j] + colGap[j] / double(positives.columnCount[j]);

  LossResult result;
  result.loss = 0.5 * (rowTerms / double(n) + colTerms / double(m));
  if (!grads.wanted()) return result;

  // H = ∂L/∂logits = (P_row - T_row)/(2N) + (P_col - T_col)/(2M); S is overwritten by t·H
  // (= ∂L/∂S) and ∂L/∂s = Σ H ⊙ logits is summed on the way. At the positives P - T is
  // recomputed in double: P is close to T there once training converges, and float32
  // would cancel to noise.
  const double rowScale = 1.0 / (2.0 * double(n)), colScale = 1.0 / (2.0 * double(m));
  std::vector<float> colLogSumF(colLogSum.begin(), colLogSum.end());
  std::vector<std::vector<float>> scratch2(size_t(workers), std::vector<float>(static_cast<size_t>(m)));
  std::vector<double> blockDScale(static_cast<size_t>((n + kRowBlock - 1) / kRowBlock), 0.0);
  forEachRowBlock(n, req.threads, [&](int w, int64_t block, int64_t row0, int64_t rows) {
    float* pRow = scratch[size_t(w)].data();
    float* pCol = scratch2[size_t(w)].data();
    double dScale = 0;
    for (int64_t i = row0; i < row0 + rows; ++i) {
      float* row = s.data() + i * m;
      const float max = rowMax[size_t(i)], logSum = float(rowLogSum[size_t(i)]);
      for (int64_t j = 0; j < m; ++j) {
        pRow[j] = (t * row[j] - max) - logSum;
        pCol[j] = (t * row[j] - colMax[j]) - colLogSumF[j];
      }
      ep.expInPlace(pRow, m);
      ep.expInPlace(pCol, m);
      const double rowCount = double(positives.rowStart[i + 1] - positives.rowStart[i]);
      for (int64_t q = positives.rowStart[i]; q < positives.rowStart[i + 1]; ++q) {
        const int64_t j = positives.columns[q];
        const float logit = t * row[j];
        pRow[j] = float(std::exp(double(logit - max) - rowLogSum[size_t(i)]) - 1.0 / rowCount);
        pCol[j] = float(std::exp(double(logit - colMax[j]) - colLogSum[j]) - 1.0 / double(positives.columnCount[j]));
      }
      for (int64_t j = 0; j < m; ++j) {
        const double h = rowScale * pRow[j] + colScale * pCol[j];
        dScale += h * double(t * row[j]);
        row[j] = float(double(t) * h);
      }
    }
    blockDScale[size_t(block)] = dScale;
  });
  for (double part : blockDScale) result.dLogitScale += part;
  backwardGemms(ks, req, s.data(), grads);
  return result;
}

}  // namespace siglip::cpu
