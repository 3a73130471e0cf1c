// Helpers shared by the C++ checks (siglip_core_check, siglip_cuda_check, siglip_ring_check):
// the checked cases, their test data, the roundings the references apply to their inputs and
// the error measures of SPEC.md's precision targets.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/loss_request.h"

namespace siglip::check {

// The roundings of the inputs, written here independently of the library's (cpu/gemm_bf16.h,
// the GPU's conversions) so that a check compares them with a second implementation.
// float32 → bfloat16 bits, nearest, ties to even (inputs are finite), and back.
inline uint16_t bf16Bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16Value(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}
// cvt.rna.tf32.f32 (what wmma::__float_to_tf32 does): nearest, ties away from zero, keeping
// 10 explicit mantissa bits. Adding half of the dropped range to the magnitude then clearing
// the 13 low bits is exactly that (a carry into the exponent is the correct rounding up).
inline float tf32Value(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) return v;  // Inf / NaN unchanged
  u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// One problem's inputs: X (N×D), Y (M×D), and label ids when used.
struct Data {
  std::vector<float> x, y;
  std::vector<int32_t> imageIds, textIds;
};

// Scales a row to L2 norm `norm` (a zero row stays zero).
inline void normaliseRow(float* row, int64_t d, double norm) {
  double sq = 0;
  for (int64_t k = 0; k < d; ++k) sq += double(row[k]) * row[k];
  const double f = sq > 0 ? norm / std::sqrt(sq) : 0;
  for (int64_t k = 0; k < d; ++k) row[k] = float(row[k] * f);
}

// The shape of a problem's test data.
struct DataShape {
  int64_t n, m, d;
  bool ids;
  int64_t classes;  // with ids: distinct ids (0: two thirds of min(N, M)); capped at min(N, M)
  double rowNorm;   // every row's L2 norm (1: the usual normalised embeddings)
  double noise;     // text row = its image row + noise·N(0, 1/D), then rescaled (large: unrelated)
  uint64_t seed;
};

// Text rows are noisy copies of their matching image row (so positives score high, as in
// training): the image of the same index without ids, else the first image of the text's
// class. With ids, K ≤ min(N, M) classes, so every row and column has a positive (the
// softmax needs one) and several rows share a class; the ids are shuffled.
inline Data makeData(const DataShape& c) {
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  Data data;
  data.x.resize(size_t(c.n * c.d));
  data.y.resize(size_t(c.m * c.d));
  for (auto& v : data.x) v = normal(rng);
  for (int64_t i = 0; i < c.n; ++i) normaliseRow(&data.x[size_t(i * c.d)], c.d, 1.0);
  std::vector<int64_t> firstImageOfClass;
  const auto classOf = [](int32_t id) { return size_t((id + 100) / 7); };
  if (c.ids) {
    const int64_t classes =
        c.classes > 0 ? std::min(c.classes, std::min(c.n, c.m)) : std::max<int64_t>(1, std::min(c.n, c.m) * 2 / 3);
    data.imageIds.resize(size_t(c.n));
    data.textIds.resize(size_t(c.m));
    for (int64_t i = 0; i < c.n; ++i) data.imageIds[size_t(i)] = int32_t(i % classes) * 7 - 100;
    for (int64_t j = 0; j < c.m; ++j) data.textIds[size_t(j)] = int32_t(j % classes) * 7 - 100;
    std::shuffle(data.imageIds.begin(), data.imageIds.end(), rng);
    std::shuffle(data.textIds.begin(), data.textIds.end(), rng);
    firstImageOfClass.assign(size_t(classes), -1);
    for (int64_t i = c.n - 1; i >= 0; --i) firstImageOfClass[classOf(data.imageIds[size_t(i)])] = i;
  }
  for (int64_t j = 0; j < c.m; ++j) {
    const int64_t match = c.ids ? firstImageOfClass[classOf(data.textIds[size_t(j)])] : (j < c.n ? j : -1);
    float* y = &data.y[size_t(j * c.d)];
    for (int64_t k = 0; k < c.d; ++k) {
      const float base = match >= 0 ? data.x[size_t(match * c.d + k)] : 0.f;
      y[k] = base + float(c.noise) * normal(rng) / float(std::sqrt(double(c.d)));
    }
    normaliseRow(y, c.d, c.rowNorm);
  }
  for (int64_t i = 0; i < c.n; ++i) normaliseRow(&data.x[size_t(i * c.d)], c.d, c.rowNorm);
  return data;
}

// One checked problem: the loss, its shape, its logit scale and bias, and how its data is made.
struct Case {
  std::string name;
  LossKind kind;
  int64_t n, m, d;
  bool ids;
  double logitScale, logitBias;
  double rowNorm;       // every embedding row has this L2 norm (1 = the usual normalised inputs)
  double noise;         // text row = its image row + noise·N(0, 1/D), then rescaled (large: unrelated)
  uint64_t seed;
  int64_t classes = 0;  // with ids: the number of distinct ids (0: two thirds of min(N, M))
};

// The case's inputs (texts are noisy copies of their matching images, as above).
inline Data makeData(const Case& c) {
  return makeData(DataShape{c.n, c.m, c.d, c.ids, c.classes, c.rowNorm, c.noise, c.seed});
}

// Σ|terms| of ∂b and ∂s (sigmoid), or the softmax's bound 2·t·max‖x‖·max‖y‖ for ∂s: the
// magnitudes their sums are made of, the floor of scalarError's denominator.
struct ScalarScales {
  double bias = 0, scale = 0;
};

// ‖out − ref‖ / ‖ref‖ (absolute when ref is zero); infinite when out holds NaN or Inf.
inline double relativeError(const std::vector<float>& out, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    const double e = double(out[k]) - ref[k];
    diff += e * e;
    norm += ref[k] * ref[k];
  }
  if (!std::isfinite(diff)) return std::numeric_limits<double>::infinity();
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// The error of a scalar sum such as ∂L/∂b: relative to |ref|, but never to less than
// floor × `scale` (Σ|terms|), since a sum that cancels to near zero has no relative precision.
inline double scalarError(double out, double ref, double scale, double floor = 1e-3) {
  if (!std::isfinite(out)) return std::numeric_limits<double>::infinity();
  const double denom = std::max(std::fabs(ref), floor * scale);
  return denom > 0 ? std::fabs(out - ref) / denom : std::fabs(out - ref);
}

}  // namespace siglip::check
