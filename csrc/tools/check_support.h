// Helpers shared by the C++ checks (siglip_core_check, siglip_cuda_check): test data and the
// error measures of SPEC.md's precision targets.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace siglip::check {

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
