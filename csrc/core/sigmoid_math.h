// The per-pair math of the sigmoid loss, written once. The float64 reference, the scalar
// CPU kernel and the CUDA epilogues use these scalar forms; the SIMD epilogues implement the
// same formulas lane-wise and are checked against them.
#pragma once
#include <cmath>

#include "host_device.h"

namespace siglip {

// softplus(v) = log(1 + e^v), stable for any |v| (no overflow, no cancellation):
// max(v, 0) + log1p(exp(-|v|)).
template <class T>
SIGLIP_HOST_DEVICE inline T softplus(T v) {
  using std::exp;
  using std::fabs;
  using std::log1p;
  return (v > T(0) ? v : T(0)) + log1p(exp(-fabs(v)));
}

// σ(v) = 1 / (1 + e^-v), evaluated without overflow for either sign of v.
template <class T>
SIGLIP_HOST_DEVICE inline T sigmoid(T v) {
  using std::exp;
  if (v >= T(0)) return T(1) / (T(1) + exp(-v));
  const T e = exp(v);
  return e / (T(1) + e);
}

// One pair (i, j): with u = z·(t·S + b), the loss term is softplus(-u) and
// ∂term/∂(t·S + b) = -z·σ(-u). Returns the loss term; writes the derivative.
// Both come from one exponential, e = exp(-|u|) ∈ (0, 1]: softplus(-u) = max(-u, 0) + log1p(e),
// and σ(-u) is 1/(1 + e) for -u ≥ 0, else e/(1 + e). The same values as softplus() and
// sigmoid() above (the same formulas, the exponential shared), at half the transcendental
// cost: on a GPU this math, not the GEMM, bounds the epilogue (N² pairs, each a few dozen
// instructions).
template <class T>
SIGLIP_HOST_DEVICE inline T sigmoidPairTerm(T similarity, bool positive, T temperature, T bias, T* dTermDLogit) {
  using std::exp;
  using std::fabs;
  using std::log1p;
  const T z = positive ? T(1) : T(-1);
  const T v = -z * (temperature * similarity + bias);  // -u
  const T e = exp(-fabs(v));
  *dTermDLogit = -z * ((v >= T(0) ? T(1) : e) / (T(1) + e));
  return (v > T(0) ? v : T(0)) + log1p(e);
}

}  // namespace siglip
