// The contract in code: what a loss call takes and what it returns (see SPEC.md).
// Every backend (CPU fused, CPU naive, CUDA, the ring) consumes a LossRequest and fills a
// LossResult plus, when asked, the two gradient matrices.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "errors.h"
#include "matrix_view.h"

namespace siglip {

// How a loss is computed, one name per method (the JS option string in quotes). Which loss
// and backend take which:
//   sigmoid: Fused ('fused', CPU and CUDA), Naive ('naive', CPU and CUDA), Simple ('simple', CUDA)
//   softmax: Chunked ('chunked', CPU and CUDA), Naive ('naive', CPU and CUDA)
// validateLossRequest refuses a method of the other loss; a backend refuses one it lacks.
enum class Method {
  Fused,    // sigmoid: logits, sigmoid-BCE and its gradient fused per tile; never an N×M buffer
  Chunked,  // softmax: two tiled passes (log-sum-exps, then gradients); O(N + M) statistics
  Naive,    // materialises the N×M logits as the Python peers do (the benchmark baseline)
  Simple,   // sigmoid on CUDA: one thread per row, then per column (the GPU's own reference)
};

enum class LossKind { Sigmoid, Softmax };

// The backends whose method sets differ (see Method).
enum class MethodBackend { Cpu, Cuda };

// 'fused' | 'chunked' | 'naive' | 'simple': the option string of `method`.
const char* methodName(Method method);
// The methods `kind` takes on `backend`, as messages list them ("'fused' or 'naive'").
std::string methodChoices(LossKind kind, MethodBackend backend);
// Throws a RangeError naming options.method unless `kind` takes `method` on `backend`;
// `received` describes the value as the caller gave it.
void checkMethod(LossKind kind, MethodBackend backend, Method method, const std::string& received);
// The method an option string names, refused (as checkMethod) unless `kind` takes it on `backend`.
Method parseMethod(LossKind kind, MethodBackend backend, const std::string& name, const std::string& received);

struct LossRequest {
  MatrixView image;                 // X: N×D
  MatrixView text;                  // Y: M×D
  const int32_t* imageIds = nullptr;  // N label ids, or null (then pair (i, j) is positive iff i == j)
  const int32_t* textIds = nullptr;   // M label ids; given together with imageIds or not at all
  double logitScale = 0;            // s; the temperature is t = exp(s)
  double logitBias = 0;             // b (sigmoid only)
  Method method = Method::Fused;
  int threads = 1;                  // worker threads, >= 1; results do not depend on it
};

// Where gradients go. Null pointers mean "forward only". When given, image is N×D and
// text is M×D (row-major float32); the backend overwrites them.
struct GradientOutputs {
  float* image = nullptr;
  float* text = nullptr;
  bool wanted() const { return image != nullptr; }
};

struct LossResult {
  double loss = 0;
  double dLogitScale = 0;  // ∂L/∂s (zero when gradients were not requested)
  double dLogitBias = 0;   // ∂L/∂b (zero for softmax, or when gradients were not requested)
};

// The sigmoid loss and its scalar gradients from the sums over all pairs (SPEC.md):
//   softplusSum = Σ softplus(-u_ij), dLogitSum = Σ -z_ij·σ(-u_ij), dLogitSimSum = Σ -z_ij·σ(-u_ij)·S_ij;
//   L = softplusSum / N, ∂L/∂b = dLogitSum / N, ∂L/∂s = t · dLogitSimSum / N.
// Every backend ends with this, so the normalisation (and the overflow check) exists once.
//
// Every backend forms the logits t·S + b in float32. When |t·S| passes float32's range
// (3.4e38: logitScale near its bound of 80 with embeddings far from unit length) a logit is
// ±Infinity: +Infinity is harmless (its pair's term and gradient are exactly 0, as in
// float64), but -Infinity makes its softplus term, and so the loss, infinite, where the
// float64 loss is a finite ~t·|S|/N. That case is refused, never returned as a silent
// Infinity (issue 10, item 8).
inline LossResult sigmoidLossFromSums(double softplusSum, double dLogitSum, double dLogitSimSum, double temperature,
                                      double normalizer, bool withGradients) {
  LossResult result;
  result.loss = softplusSum / normalizer;
  if (!std::isfinite(result.loss)) {
    throw invalidArgument(ErrorKind::Range, "options.logitScale",
                          "a temperature t = exp(logitScale) with which every logit t·S + b fits in float32 "
                          "(|t·S| < 3.4e38; normalise the embeddings or lower logitScale)",
                          "t = " + formatNumber(temperature) + ", with which a logit overflowed to -Infinity");
  }
  if (withGradients) {
    result.dLogitBias = dLogitSum / normalizer;
    result.dLogitScale = temperature * dLogitSimSum / normalizer;
  }
  return result;
}

// Checks sizes, overflow, ids, the method (one `kind` takes on some backend) and scalar
// options; throws siglip::Error naming the argument.
// Float data is scanned for NaN/Inf too (cost O(N·D), tiny next to the O(N·M·D) loss),
// unless the data is not host memory (the CUDA backend scans on the GPU instead).
enum class DataScan { Host, Skip };
void validateLossRequest(LossKind kind, const LossRequest& request, DataScan scan = DataScan::Host);

// The checks validateLossRequest is made of that other calls (the ring's) need alone, each
// defined once: NaN/Infinity in `m` (named `name`, e.g. "textShards[2].data"), and the scalar
// options' ranges (csrc/core/limits.h); `received` describes the value as the caller gave it.
void checkFinite(const MatrixView& m, const std::string& name);
void checkLogitScale(double logitScale, const std::string& received);
void checkLogitBias(double logitBias, const std::string& received);

}  // namespace siglip
