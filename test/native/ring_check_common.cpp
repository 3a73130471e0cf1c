// siglip_ring_check (ring_check.h): batches, the single-device reference, the comparison
// of a rank's outcome with it, and a CPU rank.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_block_backend.h"
#include "ring_check.h"

namespace siglip::ring_check {

Batch makeBatch(std::mt19937_64& rng, int ranks, int64_t d, bool ids) {
  Batch b;
  b.d = d;
  std::uniform_int_distribution<int64_t> size(1, 90);
  for (int r = 0; r < ranks; ++r) {
    const int64_t rows = (r == ranks / 2) ? 1 : size(rng);  // one rank holds a single row
    b.imageRows.push_back(rows);
    b.textRows.push_back(ids ? size(rng) : rows);
  }
  fillBatch(rng, b, ids);
  return b;
}

// Unit rows of random data (and ids) for the shard sizes already in `b`.
void fillBatch(std::mt19937_64& rng, Batch& b, bool ids) {
  const int64_t d = b.d;
  const int64_t n = std::accumulate(b.imageRows.begin(), b.imageRows.end(), int64_t(0));
  const int64_t m = std::accumulate(b.textRows.begin(), b.textRows.end(), int64_t(0));
  std::normal_distribution<float> normal(0, 1);
  auto fill = [&](std::vector<float>& v, int64_t rows) {
    v.resize(size_t(rows * d));
    for (int64_t i = 0; i < rows; ++i) {
      double norm = 0;
      for (int64_t k = 0; k < d; ++k) norm += double(v[i * d + k] = normal(rng)) * v[i * d + k];
      for (int64_t k = 0; k < d; ++k) v[i * d + k] = float(v[i * d + k] / std::sqrt(norm));
    }
  };
  fill(b.image, n);
  fill(b.text, m);
  if (ids) {
    std::uniform_int_distribution<int32_t> id(0, int32_t(std::max<int64_t>(2, n / 3)));
    for (int64_t i = 0; i < n; ++i) b.imageIds.push_back(id(rng));
    for (int64_t j = 0; j < m; ++j) b.textIds.push_back(id(rng));
  }
}

ring::RingShard shardOf(const Batch& b, int r) {
  const int64_t i0 = std::accumulate(b.imageRows.begin(), b.imageRows.begin() + r, int64_t(0));
  const int64_t j0 = std::accumulate(b.textRows.begin(), b.textRows.begin() + r, int64_t(0));
  ring::RingShard s;
  s.image = BlockMatrix::host(MatrixView{b.image.data() + i0 * b.d, b.imageRows[r], b.d});
  s.text = BlockMatrix::host(MatrixView{b.text.data() + j0 * b.d, b.textRows[r], b.d});
  if (!b.imageIds.empty()) s.imageIds = b.imageIds.data() + i0, s.textIds = b.textIds.data() + j0;
  return s;
}

Outcome runRank(ring::Transport& tp, const Batch& b, int threads, ring::RingDirection direction) {
  Outcome o;
  const ring::RingShard shard = shardOf(b, tp.rank());
  o.dImage.assign(size_t(shard.image.rows * b.d), NAN);
  o.dText.assign(size_t(shard.text.rows * b.d), NAN);
  ring::RingOptions opt;
  opt.logitScale = b.logitScale;
  opt.logitBias = b.logitBias;
  opt.threads = threads;
  opt.direction = direction;
  try {
    cpu::CpuBlockBackend backend;
    o.result = ring::ringSigmoidLoss(tp, backend, shard, opt, GradientOutputs{o.dImage.data(), o.dText.data()}, &o.stats);
  } catch (const std::exception& e) {
    o.error = e.what();
  }
  return o;
}
Reference singleDevice(const Batch& b) {
  Reference ref;
  LossRequest req;
  const int64_t n = int64_t(b.image.size()) / b.d, m = int64_t(b.text.size()) / b.d;
  req.image = MatrixView{b.image.data(), n, b.d};
  req.text = MatrixView{b.text.data(), m, b.d};
  if (!b.imageIds.empty()) req.imageIds = b.imageIds.data(), req.textIds = b.textIds.data();
  req.logitScale = b.logitScale;
  req.logitBias = b.logitBias;
  req.threads = 2;
  ref.dImage.resize(b.image.size());
  ref.dText.resize(b.text.size());
  ref.result = cpu::sigmoidLoss(req, GradientOutputs{ref.dImage.data(), ref.dText.data()});
  return ref;
}

double relativeError(const float* out, const float* ref, size_t count) {
  double num = 0, den = 0;
  for (size_t i = 0; i < count; ++i) {
    const double e = double(out[i]) - ref[i];
    num += e * e;
    den += double(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::string compareRank(const Batch& b, const Reference& ref, int r, const Outcome& o, ring::RingDirection direction,
                        double* worst, const Tolerance& tol) {
  if (!o.error.empty()) return "rank " + std::to_string(r) + " threw: " + o.error;
  const int64_t i0 = std::accumulate(b.imageRows.begin(), b.imageRows.begin() + r, int64_t(0));
  const int64_t j0 = std::accumulate(b.textRows.begin(), b.textRows.begin() + r, int64_t(0));
  const double eLoss = scalarError(o.result.loss, ref.result.loss);
  const double eScale = scalarError(o.result.dLogitScale, ref.result.dLogitScale);
  const double eBias = scalarError(o.result.dLogitBias, ref.result.dLogitBias);
  const double eX = relativeError(o.dImage.data(), ref.dImage.data() + i0 * b.d, o.dImage.size());
  const double eY = relativeError(o.dText.data(), ref.dText.data() + j0 * b.d, o.dText.size());
  *worst = std::max({*worst, eLoss, eScale, eBias, eX, eY});
  if (!(eLoss <= tol.loss) || !(eScale <= tol.scalars) || !(eBias <= tol.scalars) || !(eX <= tol.gradients) ||
      !(eY <= tol.gradients))
    return "rank " + std::to_string(r) + ": loss " + std::to_string(eLoss) + " ds " + std::to_string(eScale) + " db " +
           std::to_string(eBias) + " dX " + std::to_string(eX) + " dY " + std::to_string(eY);
  // The ring's own buffers: at most 5 travelling blocks of the largest text shard (+ ids)
  // one way, 9 two ways.
  const int64_t largest = *std::max_element(b.textRows.begin(), b.textRows.end());
  const int64_t blocks = direction == ring::RingDirection::TwoWay ? 9 : 5;
  const uint64_t bound = uint64_t(blocks * largest * b.d + 4 * largest) * sizeof(float);
  if (o.stats.peakRingBytes > bound)
    return "rank " + std::to_string(r) + " ring buffers " + std::to_string(o.stats.peakRingBytes) + " bytes > " +
           std::to_string(bound);
  return "";
}

}  // namespace siglip::ring_check
