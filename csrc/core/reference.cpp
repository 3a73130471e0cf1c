// The float64 reference of SPEC.md: the formulas written out, in double, for checking the
// fast backends. Clarity over speed: O(N·M·D) time, one row of similarities at a time.
#include "reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <vector>

#include "sigmoid_math.h"

namespace siglip {
namespace {

// S_ij for one image row i against every text row: out[j] = <x_i, y_j> in double.
void similarityRow(const LossRequest& r, int64_t i, std::vector<double>& out) {
  const int64_t d = r.image.cols;
  const float* x = r.image.data + i * d;
  for (int64_t j = 0; j < r.text.rows; ++j) {
    const float* y = r.text.data + j * d;
    double dot = 0;
    for (int64_t k = 0; k < d; ++k) dot += double(x[k]) * double(y[k]);
    out[size_t(j)] = dot;
  }
}

bool isPositive(const LossRequest& r, int64_t i, int64_t j) {
  return r.imageIds ? r.imageIds[i] == r.textIds[j] : i == j;
}

// Accumulates the matrix-gradient contribution of row i given h_ij = ∂L/∂(t·S_ij)·(its
// factor): ∂X_i += t Σ_j h_ij y_j and ∂Y_j += t h_ij x_i.
void accumulateRowGradients(const LossRequest& r, int64_t i, const std::vector<double>& h, double t,
                            ReferenceGradients grads) {
  const int64_t d = r.image.cols;
  const float* x = r.image.data + i * d;
  double* gx = grads.image + i * d;
  for (int64_t j = 0; j < r.text.rows; ++j) {
    const double w = t * h[size_t(j)];
    if (w == 0) continue;
    const float* y = r.text.data + j * d;
    double* gy = grads.text + j * d;
    for (int64_t k = 0; k < d; ++k) {
      gx[k] += w * double(y[k]);
      gy[k] += w * double(x[k]);
    }
  }
}

// The reference has one method whatever the request names: validated as the naive one.
LossRequest methodFree(const LossRequest& r) {
  LossRequest copy = r;
  copy.method = Method::Naive;
  return copy;
}

void zeroGradients(const LossRequest& r, ReferenceGradients grads) {
  if (!grads.image) return;
  std::fill(grads.image, grads.image + r.image.rows * r.image.cols, 0.0);
  std::fill(grads.text, grads.text + r.text.rows * r.text.cols, 0.0);
}

}  // namespace

LossResult referenceSigmoidLoss(const LossRequest& r, ReferenceGradients grads) {
  validateLossRequest(LossKind::Sigmoid, methodFree(r));
  const int64_t n = r.image.rows;
  const int64_t m = r.text.rows;
  const double t = std::exp(r.logitScale);
  const double b = r.logitBias;
  const bool wantGrads = grads.image != nullptr;
  zeroGradients(r, grads);

  std::vector<double> s(static_cast<size_t>(m));
  std::vector<double> g(static_cast<size_t>(m));
  double lossSum = 0, dBias = 0, dScaleOverT = 0;
  for (int64_t i = 0; i < n; ++i) {
    similarityRow(r, i, s);
    for (int64_t j = 0; j < m; ++j) {
      double dTerm = 0;
      lossSum += sigmoidPairTerm<double>(s[size_t(j)], isPositive(r, i, j), t, b, &dTerm);
      const double gij = dTerm / double(n);  // g_ij = −(1/N) z σ(−u)
      g[size_t(j)] = gij;
      dBias += gij;
      dScaleOverT += gij * s[size_t(j)];
    }
    if (wantGrads) accumulateRowGradients(r, i, g, t, grads);
  }

  LossResult result;
  result.loss = lossSum / double(n);
  if (wantGrads) {
    result.dLogitBias = dBias;
    result.dLogitScale = t * dScaleOverT;
  }
  return result;
}

// CLIP: logits = t·S. Row i's target is uniform over its positives (T_row), column j's over
// its positives (T_col); without ids both are the identity. L = ½[(1/N) Σ_i CE_i + (1/M) Σ_j CE_j]
// and H = ∂L/∂logits = (P_row − T_row)/(2N) + (P_col − T_col)/(2M).
LossResult referenceSoftmaxLoss(const LossRequest& r, ReferenceGradients grads) {
  validateLossRequest(LossKind::Softmax, methodFree(r));
  const int64_t n = r.image.rows;
  const int64_t m = r.text.rows;
  const double t = std::exp(r.logitScale);
  const bool wantGrads = grads.image != nullptr;
  zeroGradients(r, grads);

  // Positives per row and per column (1 each without ids).
  std::vector<double> rowPositives(static_cast<size_t>(n), 1.0), colPositives(static_cast<size_t>(m), 1.0);
  if (r.imageIds) {
    std::unordered_map<int32_t, int64_t> textCount, imageCount;
    for (int64_t j = 0; j < m; ++j) ++textCount[r.textIds[j]];
    for (int64_t i = 0; i < n; ++i) ++imageCount[r.imageIds[i]];
    for (int64_t i = 0; i < n; ++i) rowPositives[size_t(i)] = double(textCount[r.imageIds[i]]);
    for (int64_t j = 0; j < m; ++j) colPositives[size_t(j)] = double(imageCount[r.textIds[j]]);
  }

  // Pass 1: row log-sum-exp, and the column log-sum-exp (online: running max and scaled sum).
  std::vector<double> s(static_cast<size_t>(m)), logits(static_cast<size_t>(m));
  std::vector<double> rowLse(static_cast<size_t>(n));
  std::vector<double> colMax(static_cast<size_t>(m), -std::numeric_limits<double>::infinity());
  std::vector<double> colSum(static_cast<size_t>(m), 0.0);
  double rowCe = 0;  // Σ_i CE_i
  std::vector<double> colTargetDot(static_cast<size_t>(m), 0.0);  // Σ_i T_col_ij logits_ij
  for (int64_t i = 0; i < n; ++i) {
    similarityRow(r, i, s);
    double rowMax = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < m; ++j) {
      logits[size_t(j)] = t * s[size_t(j)];
      rowMax = std::max(rowMax, logits[size_t(j)]);
    }
    double sum = 0, targetDot = 0;
    for (int64_t j = 0; j < m; ++j) {
      const double l = logits[size_t(j)];
      sum += std::exp(l - rowMax);
      if (isPositive(r, i, j)) {
        targetDot += l / rowPositives[size_t(i)];
        colTargetDot[size_t(j)] += l / colPositives[size_t(j)];
      }
      if (l > colMax[size_t(j)]) {
        colSum[size_t(j)] = colSum[size_t(j)] * std::exp(colMax[size_t(j)] - l) + 1.0;
        colMax[size_t(j)] = l;
      } else {
        colSum[size_t(j)] += std::exp(l - colMax[size_t(j)]);
      }
    }
    rowLse[size_t(i)] = rowMax + std::log(sum);
    rowCe += rowLse[size_t(i)] - targetDot;
  }
  std::vector<double> colLse(static_cast<size_t>(m));
  double colCe = 0;
  for (int64_t j = 0; j < m; ++j) {
    colLse[size_t(j)] = colMax[size_t(j)] + std::log(colSum[size_t(j)]);
    colCe += colLse[size_t(j)] - colTargetDot[size_t(j)];
  }

  LossResult result;
  result.loss = 0.5 * (rowCe / double(n) + colCe / double(m));
  if (!wantGrads) return result;

  // Pass 2: H row by row, then ∂X = t·H·Y, ∂Y = t·Hᵀ·X, ∂s = Σ H ⊙ logits.
  std::vector<double> h(static_cast<size_t>(m));
  double dScale = 0;
  for (int64_t i = 0; i < n; ++i) {
    similarityRow(r, i, s);
    for (int64_t j = 0; j < m; ++j) {
      const double l = t * s[size_t(j)];
      const bool positive = isPositive(r, i, j);
      const double rowTarget = positive ? 1.0 / rowPositives[size_t(i)] : 0.0;
      const double colTarget = positive ? 1.0 / colPositives[size_t(j)] : 0.0;
      const double hij = (std::exp(l - rowLse[size_t(i)]) - rowTarget) / (2.0 * double(n)) +
                         (std::exp(l - colLse[size_t(j)]) - colTarget) / (2.0 * double(m));
      h[size_t(j)] = hij;
      dScale += hij * l;
    }
    accumulateRowGradients(r, i, h, t, grads);
  }
  result.dLogitScale = dScale;
  result.dLogitBias = 0;
  return result;
}

}  // namespace siglip
