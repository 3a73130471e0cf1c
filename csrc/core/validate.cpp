// validateLossRequest: every check a loss call needs before any backend touches the data.
// Order matters: sizes and overflow first (so a bogus size never drives a scan), then the
// scalar options, then the O(N·D) scan for NaN/Inf, then (softmax with ids) the positives.
// Every message has the one form "Expected X for <argument> but received Y" (errors.h).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "errors.h"
#include "limits.h"
#include "loss_request.h"

namespace siglip {
namespace {

using limits::kMaxAbsLogitScale;
using limits::kMaxThreads;
// Byte counts are capped at 2^62 (and at SIZE_MAX), far beyond any real allocation but far
// enough below 2^63 that offsets like rows*cols + cols cannot wrap in int64 arithmetic.
constexpr uint64_t kMaxBytes = uint64_t(1) << 62;

std::string formatFloat(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.9g", static_cast<double>(v));
  return buffer;
}

// a·b for non-negative a, b; false if it exceeds `limit`.
bool productWithin(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  if (a != 0 && b > limit / a) return false;
  *out = a * b;
  return *out <= limit;
}

void checkShape(const MatrixView& m, const char* name) {
  const std::string shape = std::to_string(m.rows) + "x" + std::to_string(m.cols);
  if (m.rows < 1) {
    throw invalidArgument(ErrorKind::Range, name, "at least 1 row", std::to_string(m.rows) + " rows");
  }
  if (m.cols < 1) {
    throw invalidArgument(ErrorKind::Range, name, "at least 1 column", std::to_string(m.cols) + " columns");
  }
  const uint64_t byteLimit = std::min<uint64_t>(kMaxBytes, std::numeric_limits<size_t>::max());
  uint64_t elements = 0;
  uint64_t bytes = 0;
  if (!productWithin(uint64_t(m.rows), uint64_t(m.cols), byteLimit, &elements) ||
      !productWithin(elements, sizeof(float), byteLimit, &bytes)) {
    throw invalidArgument(ErrorKind::Range, name,
                          "a matrix of at most " + std::to_string(byteLimit) + " bytes (rows x cols x 4)",
                          "a " + shape + " matrix");
  }
  if (m.data == nullptr) {
    throw invalidArgument(ErrorKind::Type, name, "a non-null float32 data pointer", "null");
  }
}

// Softmax with ids: the target of a row (column) is uniform over its positives, so every
// row and every column needs one. Sort each side's ids once, then binary-search the other:
// O((N + M) log(N + M)) time, O(N + M) memory.
void checkEveryRowHasPositive(const int32_t* ids, int64_t count, const char* name, const int32_t* otherIds,
                              int64_t otherCount, const char* otherName) {
  std::vector<int32_t> sorted(otherIds, otherIds + otherCount);
  std::sort(sorted.begin(), sorted.end());
  for (int64_t k = 0; k < count; ++k) {
    if (!std::binary_search(sorted.begin(), sorted.end(), ids[k])) {
      throw invalidArgument(ErrorKind::Range, name,
                            std::string("every id to appear in ") + otherName +
                                " (the softmax loss needs at least one positive per row and per column)",
                            "id " + std::to_string(ids[k]) + " at index " + std::to_string(k) +
                                " with no match in " + otherName);
    }
  }
}

}  // namespace

void checkFinite(const MatrixView& m, const std::string& name) {
  const int64_t count = m.rows * m.cols;
  const float* data = m.data;
  for (int64_t k = 0; k < count; ++k) {
    if (!std::isfinite(data[k])) {
      throw invalidArgument(ErrorKind::Range, name, "only finite values",
                            formatFloat(data[k]) + " at index " + std::to_string(k) + " (row " +
                                std::to_string(k / m.cols) + ", column " + std::to_string(k % m.cols) + ")");
    }
  }
}

void checkLogitScale(double logitScale, const std::string& received) {
  if (!std::isfinite(logitScale) || std::fabs(logitScale) > kMaxAbsLogitScale) {
    const std::string bound = formatNumber(kMaxAbsLogitScale);
    throw invalidArgument(ErrorKind::Range, "options.logitScale",
                          "a finite number in [-" + bound + ", " + bound +
                              "] (the temperature exp(logitScale) must be a finite float32)",
                          received);
  }
}

void checkLogitBias(double logitBias, const std::string& received) {
  if (!std::isfinite(logitBias) || std::fabs(logitBias) > double(FLT_MAX)) {
    throw invalidArgument(ErrorKind::Range, "options.logitBias", "a finite number (representable as float32)",
                          received);
  }
}

const char* methodName(Method method) {
  switch (method) {
    case Method::Fused: return "fused";
    case Method::Chunked: return "chunked";
    case Method::Naive: return "naive";
    case Method::Simple: return "simple";
  }
  return "unknown";
}

namespace {

bool takesMethod(LossKind kind, MethodBackend backend, Method method) {
  if (method == Method::Naive) return true;
  if (kind == LossKind::Softmax) return method == Method::Chunked;
  return method == Method::Fused || (method == Method::Simple && backend == MethodBackend::Cuda);
}

[[noreturn]] void refuseMethod(LossKind kind, MethodBackend backend, const std::string& received) {
  std::string expected = methodChoices(kind, backend);
  if (kind == LossKind::Softmax && backend == MethodBackend::Cuda) {
    expected += " ('fused' and 'simple' are sigmoid methods)";
  }
  throw invalidArgument(ErrorKind::Range, "options.method", expected, received);
}

}  // namespace

std::string methodChoices(LossKind kind, MethodBackend backend) {
  if (kind == LossKind::Softmax) return "'chunked' or 'naive'";
  return backend == MethodBackend::Cuda ? "'fused', 'naive' or 'simple'" : "'fused' or 'naive'";
}

void checkMethod(LossKind kind, MethodBackend backend, Method method, const std::string& received) {
  if (!takesMethod(kind, backend, method)) refuseMethod(kind, backend, received);
}

Method parseMethod(LossKind kind, MethodBackend backend, const std::string& name, const std::string& received) {
  for (Method method : {Method::Fused, Method::Chunked, Method::Naive, Method::Simple}) {
    if (name == methodName(method) && takesMethod(kind, backend, method)) return method;
  }
  refuseMethod(kind, backend, received);
}

void validateLossRequest(LossKind kind, const LossRequest& request, DataScan scan) {
  const MatrixView& image = request.image;
  const MatrixView& text = request.text;
  checkShape(image, "image");
  checkShape(text, "text");
  if (image.cols != text.cols) {
    throw invalidArgument(ErrorKind::Range, "text",
                          std::to_string(image.cols) + " columns (the embedding width of image)",
                          std::to_string(text.cols) + " columns");
  }
  // The N×M pairs are counted and indexed in int64 by every backend.
  uint64_t pairs = 0;
  if (!productWithin(uint64_t(image.rows), uint64_t(text.rows), kMaxBytes, &pairs)) {
    throw invalidArgument(ErrorKind::Range, "text", "at most 2^62 image-text pairs (rows(image) x rows(text))",
                          std::to_string(image.rows) + " x " + std::to_string(text.rows) + " pairs");
  }

  const bool hasImageIds = request.imageIds != nullptr;
  const bool hasTextIds = request.textIds != nullptr;
  if (hasImageIds && !hasTextIds) {
    throw invalidArgument(ErrorKind::Type, "options.textIds", "label ids (imageIds and textIds are given together)",
                          "none");
  }
  if (hasTextIds && !hasImageIds) {
    throw invalidArgument(ErrorKind::Type, "options.imageIds", "label ids (imageIds and textIds are given together)",
                          "none");
  }
  if (!hasImageIds && image.rows != text.rows) {
    throw invalidArgument(ErrorKind::Range, "text",
                          std::to_string(image.rows) +
                              " rows (as many as image: without label ids row i of image pairs with row i of text)",
                          std::to_string(text.rows) + " rows");
  }

  // A method of this loss on some backend (CUDA's set is the union); the backend checks its own.
  checkMethod(kind, MethodBackend::Cuda, request.method,
              std::string("the method '") + methodName(request.method) + "'");
  checkLogitScale(request.logitScale, formatNumber(request.logitScale));
  checkLogitBias(request.logitBias, formatNumber(request.logitBias));
  if (request.threads < 1 || request.threads > kMaxThreads) {
    throw invalidArgument(ErrorKind::Range, "options.threads", "an integer from 1 to " + std::to_string(kMaxThreads),
                          std::to_string(request.threads));
  }

  if (scan == DataScan::Host) {
    checkFinite(image, "image.data");  // named as the caller wrote them
    checkFinite(text, "text.data");
  }

  if (kind == LossKind::Softmax && hasImageIds) {
    checkEveryRowHasPositive(request.imageIds, image.rows, "options.imageIds", request.textIds, text.rows,
                             "options.textIds");
    checkEveryRowHasPositive(request.textIds, text.rows, "options.textIds", request.imageIds, image.rows,
                             "options.imageIds");
  }
}

}  // namespace siglip
