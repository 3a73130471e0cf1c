// siglip_core_check: the native core checked against the float64 reference, without Node.
//
// For every case (seeded random shapes, with and without label ids, ordinary and extreme
// logits) it runs each CPU method, compares the loss, ∂X, ∂Y, ∂s and ∂b with
// csrc/core/reference.cpp at SPEC.md's float32 tolerances, checks that 1, 2 and 3 threads
// give bit-identical results, and that forward-only calls agree. Then it feeds bad requests
// and checks each throws siglip::Error naming the right argument (and nothing crashes).
//
// Build and run:  cmake -S . -B build-core && cmake --build build-core -j2 && (cd build-core && ctest)
// or directly:    build-core/siglip_core_check [--filter SUBSTRING] [--seed N] [--random COUNT]
// Exit status: 0 when every check passes, 1 otherwise. One line per case.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "check_support.h"
#include "core/loss_request.h"
#include "core/reference.h"
#include "core/sigmoid_math.h"
#include "cpu/cpu_backend.h"

using namespace siglip;
using namespace siglip::check;

namespace {

// SPEC.md, "Precision": float32 paths against the float64 reference.
constexpr double kLossTolerance = 1e-5;
constexpr double kGradTolerance = 1e-4;
// ∂s and ∂b are sums of many signed terms and may cancel to almost nothing; their error is
// measured against max(|ref|, kScalarFloor · Σ|terms|) so a near-zero sum is not judged by
// a relative error it cannot have in float32.
constexpr double kScalarFloor = 1e-3;

LossRequest makeRequest(const Case& c, const Data& data, Method method, int threads) {
  LossRequest r;
  r.image = {data.x.data(), c.n, c.d};
  r.text = {data.y.data(), c.m, c.d};
  if (c.ids) {
    r.imageIds = data.imageIds.data();
    r.textIds = data.textIds.data();
  }
  r.logitScale = c.logitScale;
  r.logitBias = c.logitBias;
  r.method = method;
  r.threads = threads;
  return r;
}

ScalarScales sigmoidScalarScales(const LossRequest& r) {
  ScalarScales out;
  const double t = std::exp(r.logitScale);
  const int64_t d = r.image.cols;
  for (int64_t i = 0; i < r.image.rows; ++i) {
    for (int64_t j = 0; j < r.text.rows; ++j) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += double(r.image.data[i * d + k]) * r.text.data[j * d + k];
      const bool positive = r.imageIds ? r.imageIds[i] == r.textIds[j] : i == j;
      double dTerm = 0;
      sigmoidPairTerm<double>(s, positive, t, r.logitBias, &dTerm);
      const double g = std::fabs(dTerm) / double(r.image.rows);
      out.bias += g;
      out.scale += t * g * std::fabs(s);
    }
  }
  return out;
}

// Softmax: Σ|H| <= 2 (each row of P_row − T_row sums to at most 2 in absolute value, and
// likewise columns), so Σ|H ⊙ logits| <= 2·max|logit| <= 2·t·max‖x‖·max‖y‖.
ScalarScales softmaxScalarScales(const LossRequest& r) {
  auto maxNorm = [](const MatrixView& m) {
    double best = 0;
    for (int64_t i = 0; i < m.rows; ++i) {
      double sq = 0;
      for (int64_t k = 0; k < m.cols; ++k) sq += double(m.data[i * m.cols + k]) * m.data[i * m.cols + k];
      best = std::max(best, std::sqrt(sq));
    }
    return best;
  };
  ScalarScales out;
  out.scale = 2 * std::exp(r.logitScale) * maxNorm(r.image) * maxNorm(r.text);
  return out;
}

struct Output {
  LossResult result;
  std::vector<float> dx, dy;
  bool inBounds = true;  // nothing written outside the gradient buffers
};

// Gradient buffers start as NaN (so an element the backend forgets shows up as an infinite
// error) and sit between canaries that must survive the call.
constexpr size_t kCanary = 64;
constexpr float kCanaryValue = -12345.f;

using LossFunction = std::function<LossResult(const LossRequest&, GradientOutputs)>;

Output runCall(const LossRequest& r, bool withGrads, const LossFunction& call) {
  Output out;
  GradientOutputs grads;
  const size_t nx = size_t(r.image.rows * r.image.cols), ny = size_t(r.text.rows * r.text.cols);
  std::vector<float> bx(nx + 2 * kCanary, kCanaryValue), by(ny + 2 * kCanary, kCanaryValue);
  std::fill(bx.begin() + kCanary, bx.end() - kCanary, std::numeric_limits<float>::quiet_NaN());
  std::fill(by.begin() + kCanary, by.end() - kCanary, std::numeric_limits<float>::quiet_NaN());
  if (withGrads) {
    grads.image = bx.data() + kCanary;
    grads.text = by.data() + kCanary;
  }
  out.result = call(r, grads);
  auto intact = [](const std::vector<float>& b) {
    for (size_t k = 0; k < kCanary; ++k)
      if (b[k] != kCanaryValue || b[b.size() - 1 - k] != kCanaryValue) return false;
    return true;
  };
  out.inBounds = intact(bx) && intact(by);
  if (withGrads) {
    out.dx.assign(bx.begin() + kCanary, bx.end() - kCanary);
    out.dy.assign(by.begin() + kCanary, by.end() - kCanary);
  }
  return out;
}

Output runBackend(LossKind kind, const LossRequest& r, bool withGrads) {
  return runCall(r, withGrads, [kind](const LossRequest& q, GradientOutputs g) {
    return kind == LossKind::Sigmoid ? cpu::sigmoidLoss(q, g) : cpu::softmaxLoss(q, g);
  });
}

bool bitIdentical(const Output& a, const Output& b) {
  auto same = [](double p, double q) { return std::memcmp(&p, &q, sizeof p) == 0; };
  return same(a.result.loss, b.result.loss) && same(a.result.dLogitScale, b.result.dLogitScale) &&
         same(a.result.dLogitBias, b.result.dLogitBias) && a.dx.size() == b.dx.size() &&
         a.dy.size() == b.dy.size() &&
         std::memcmp(a.dx.data(), b.dx.data(), a.dx.size() * sizeof(float)) == 0 &&
         std::memcmp(a.dy.data(), b.dy.data(), a.dy.size() * sizeof(float)) == 0;
}

const char* kindName(LossKind k) { return k == LossKind::Sigmoid ? "sigmoid" : "softmax"; }

// The methods each loss offers on the CPU: fused (the sigmoid) or chunked (the softmax),
// and the naive baseline.
std::vector<Method> methodsFor(LossKind kind) {
  return {kind == LossKind::Sigmoid ? Method::Fused : Method::Chunked, Method::Naive};
}

int failures = 0;

// The float64 reference of a request, and the scale floors of its ∂s and ∂b.
struct Reference {
  LossResult result;
  std::vector<double> dx, dy;
  ScalarScales scales;
};

Reference referenceOf(LossKind kind, const LossRequest& r) {
  Reference ref;
  ref.dx.resize(size_t(r.image.rows * r.image.cols));
  ref.dy.resize(size_t(r.text.rows * r.text.cols));
  const ReferenceGradients grads{ref.dx.data(), ref.dy.data()};
  ref.result = kind == LossKind::Sigmoid ? referenceSigmoidLoss(r, grads) : referenceSoftmaxLoss(r, grads);
  ref.scales = kind == LossKind::Sigmoid ? sigmoidScalarScales(r) : softmaxScalarScales(r);
  return ref;
}

// A call's errors against the reference (the softmax has no bias: its ∂b must be 0).
struct Errors {
  double loss, dx, dy, ds, db;
  bool within(double lossTolerance, double gradTolerance) const {
    return loss <= lossTolerance && dx <= gradTolerance && dy <= gradTolerance && ds <= gradTolerance &&
           db <= gradTolerance;
  }
};

Errors errorsOf(LossKind kind, const Output& out, const Reference& ref) {
  return {scalarError(out.result.loss, ref.result.loss, 0), relativeError(out.dx, ref.dx),
          relativeError(out.dy, ref.dy), scalarError(out.result.dLogitScale, ref.result.dLogitScale, ref.scales.scale),
          kind == LossKind::Sigmoid ? scalarError(out.result.dLogitBias, ref.result.dLogitBias, ref.scales.bias)
                                    : std::fabs(out.result.dLogitBias)};
}

// Counts a failure and prints the case's line.
void report(bool ok, const char* what, const Case& c, const std::string& line) {
  if (!ok) ++failures;
  std::printf("%s %s %-26s N=%-4lld M=%-4lld D=%-4lld ids=%-3s s=%.3g b=%.3g |row|=%.3g  %s\n", ok ? "PASS" : "FAIL",
              what, c.name.c_str(), (long long)c.n, (long long)c.m, (long long)c.d, c.ids ? "yes" : "no",
              c.logitScale, c.logitBias, c.rowNorm, line.c_str());
  std::fflush(stdout);
}

void checkBf16Case(const Case& c, const Data& data);

void checkCase(const Case& c) {
  const Data data = makeData(c);
  const Reference ref = referenceOf(c.kind, makeRequest(c, data, methodsFor(c.kind)[0], 1));

  for (Method method : methodsFor(c.kind)) {
    std::string line;
    bool ok = true;
    char buffer[512];
    try {
      const Output one = runBackend(c.kind, makeRequest(c, data, method, 1), true);
      const Errors e = errorsOf(c.kind, one, ref);
      ok = e.within(kLossTolerance, kGradTolerance);

      bool threadsSame = true;
      for (int threads : {2, 3}) {
        if (!bitIdentical(one, runBackend(c.kind, makeRequest(c, data, method, threads), true))) threadsSame = false;
      }
      const Output fwd = runBackend(c.kind, makeRequest(c, data, method, 2), false);
      const double eFwd = scalarError(fwd.result.loss, ref.result.loss, 0);
      const bool fwdOk = eFwd <= kLossTolerance && fwd.result.dLogitScale == 0 && fwd.result.dLogitBias == 0;
      ok = ok && threadsSame && fwdOk && one.inBounds;
      std::snprintf(buffer, sizeof buffer,
                    "loss %.1e (ref %.6g)  dX %.1e  dY %.1e  ds %.1e  db %.1e  threads 1=2=3 %s  fwd-only %.1e%s",
                    e.loss, ref.result.loss, e.dx, e.dy, e.ds, e.db, threadsSame ? "yes" : "NO", eFwd,
                    one.inBounds ? "" : "  WROTE OUTSIDE THE GRADIENT BUFFERS");
      line = buffer;
    } catch (const std::exception& e) {
      ok = false;
      line = std::string("threw: ") + e.what();
    }
    char what[32];
    std::snprintf(what, sizeof what, "%-7s %-7s", kindName(c.kind), methodName(method));
    report(ok, what, c, line);
  }
  if (c.kind == LossKind::Sigmoid) checkBf16Case(c, data);
}

// ---- bf16 ---------------------------------------------------------------------------------
// The sigmoid with bf16 GEMMs (cpu::sigmoidLossBf16) against the float64 reference on the
// inputs rounded to bf16, at SPEC.md's bfloat16 tolerance. Two ways in: float32 inputs
// (rounded when packed) and bf16 bits (rounded by check_support.h, independently of the library): they must
// give the same bits, and so must 1, 2 and 3 threads. The errors printed are what the bf16
// path costs beyond rounding its inputs (chiefly the tiles of G, rounded to bf16 for the
// backward GEMMs).
constexpr double kBf16Tolerance = 2e-2;

void checkBf16Case(const Case& c, const Data& data) {
  std::vector<uint16_t> xb(data.x.size()), yb(data.y.size());
  Data rounded = data;
  for (size_t k = 0; k < xb.size(); ++k) rounded.x[k] = bf16Value(xb[k] = bf16Bits(data.x[k]));
  for (size_t k = 0; k < yb.size(); ++k) rounded.y[k] = bf16Value(yb[k] = bf16Bits(data.y[k]));
  const Reference ref = referenceOf(LossKind::Sigmoid, makeRequest(c, rounded, Method::Fused, 1));

  std::string line;
  bool ok = true;
  char buffer[512];
  try {
    const LossFunction fromFloats = [](const LossRequest& q, GradientOutputs g) { return cpu::sigmoidLossBf16(q, {}, g); };
    const LossFunction fromBits = [&](const LossRequest& q, GradientOutputs g) {
      LossRequest shapes = q;
      shapes.image.data = nullptr;  // the bits are the inputs; the views give the shapes
      shapes.text.data = nullptr;
      return cpu::sigmoidLossBf16(shapes, {xb.data(), yb.data()}, g);
    };
    const Output one = runCall(makeRequest(c, data, Method::Fused, 1), true, fromFloats);
    const Errors e = errorsOf(LossKind::Sigmoid, one, ref);
    ok = e.within(kBf16Tolerance, kBf16Tolerance) && one.inBounds;
    bool same = true;
    for (int threads : {1, 2, 3}) {
      if (!bitIdentical(one, runCall(makeRequest(c, data, Method::Fused, threads), true, fromBits))) same = false;
      if (threads > 1 && !bitIdentical(one, runCall(makeRequest(c, data, Method::Fused, threads), true, fromFloats)))
        same = false;
    }
    const Output fwd = runCall(makeRequest(c, data, Method::Fused, 2), false, fromBits);
    const bool fwdOk = std::memcmp(&fwd.result.loss, &one.result.loss, sizeof(double)) == 0 &&
                       fwd.result.dLogitScale == 0 && fwd.result.dLogitBias == 0;
    ok = ok && same && fwdOk;
    std::snprintf(buffer, sizeof buffer,
                  "loss %.1e (ref %.6g)  dX %.1e  dY %.1e  ds %.1e  db %.1e  f32=bits, threads 1=2=3 %s  fwd-only %s",
                  e.loss, ref.result.loss, e.dx, e.dy, e.ds, e.db, same ? "yes" : "NO", fwdOk ? "same" : "DIFFERS");
    line = buffer;
  } catch (const std::exception& e) {
    ok = false;
    line = std::string("threw: ") + e.what();
  }
  report(ok, "sigmoid bf16   ", c, line);
}

// ---- bad requests --------------------------------------------------------------------

// Runs `call`, which must throw a siglip::Error of `kind` naming `argument` with a message
// that starts with `prefix`; whether it did, and what happened in *verdict.
bool throwsError(const std::function<void()>& call, const std::string& argument, ErrorKind kind, const char* prefix,
                 std::string* verdict) {
  try {
    call();
    *verdict = "did not throw";
  } catch (const Error& e) {
    const bool ok =
        e.argument() == argument && e.kind() == kind && std::strncmp(e.what(), prefix, std::strlen(prefix)) == 0;
    *verdict = ok ? e.what() : "wrong argument/kind (" + e.argument() + "): " + e.what();
    return ok;
  } catch (const std::exception& e) {
    *verdict = std::string("threw a non-siglip exception: ") + e.what();
  }
  return false;
}

void reportBadRequest(bool ok, LossKind kind, const char* target, const char* name, const std::string& verdict) {
  if (!ok) ++failures;
  std::printf("%s bad-request %-7s %-9s %-40s %s\n", ok ? "PASS" : "FAIL", kindName(kind), target, name,
              verdict.c_str());
}

struct BadRequest {
  std::string name;
  LossKind kind;
  std::string argument;  // the argument the error must name
  ErrorKind errorKind;
  std::function<void(LossRequest&)> spoil;
};

void checkBadRequests() {
  // A valid 4×3 / 4×3 request that each entry spoils in one way.
  std::vector<float> x(12, 0.25f), y(12, -0.5f);
  const int32_t fourIds[4] = {1, 2, 3, 4};
  const int32_t unmatched[4] = {1, 2, 3, 9};  // 9 has no image; image 4 has no text
  const int64_t huge = int64_t(1) << 40;

  const std::vector<BadRequest> cases = {
      {"null image data", LossKind::Sigmoid, "image", ErrorKind::Type, [](LossRequest& r) { r.image.data = nullptr; }},
      {"null text data", LossKind::Softmax, "text", ErrorKind::Type, [](LossRequest& r) { r.text.data = nullptr; }},
      {"zero image rows", LossKind::Sigmoid, "image", ErrorKind::Range, [](LossRequest& r) { r.image.rows = 0; }},
      {"negative text cols", LossKind::Sigmoid, "text", ErrorKind::Range, [](LossRequest& r) { r.text.cols = -3; }},
      {"width mismatch", LossKind::Sigmoid, "text", ErrorKind::Range, [](LossRequest& r) { r.text.cols = 2; }},
      {"N != M without ids", LossKind::Sigmoid, "text", ErrorKind::Range, [](LossRequest& r) { r.text.rows = 3; }},
      {"N != M without ids", LossKind::Softmax, "text", ErrorKind::Range, [](LossRequest& r) { r.image.rows = 3; }},
      {"imageIds only", LossKind::Sigmoid, "options.textIds", ErrorKind::Type,
       [&](LossRequest& r) { r.imageIds = fourIds; }},
      {"textIds only", LossKind::Softmax, "options.imageIds", ErrorKind::Type, [&](LossRequest& r) { r.textIds = fourIds; }},
      {"rows*cols*4 overflows", LossKind::Sigmoid, "image", ErrorKind::Range,
       [&](LossRequest& r) { r.image.rows = huge; r.image.cols = huge; r.text.cols = huge; }},
      {"int64 max rows", LossKind::Sigmoid, "text", ErrorKind::Range,
       [](LossRequest& r) { r.text.rows = std::numeric_limits<int64_t>::max(); }},
      {"2^61 bytes per matrix ok, pairs overflow", LossKind::Sigmoid, "text", ErrorKind::Range,
       [&](LossRequest& r) {
         r.image.rows = int64_t(1) << 58; r.image.cols = 1; r.text.rows = int64_t(1) << 58; r.text.cols = 1;
       }},
      {"NaN logitScale", LossKind::Sigmoid, "options.logitScale", ErrorKind::Range,
       [](LossRequest& r) { r.logitScale = std::nan(""); }},
      {"logitScale 100 (exp overflows float)", LossKind::Softmax, "options.logitScale", ErrorKind::Range,
       [](LossRequest& r) { r.logitScale = 100; }},
      {"infinite logitBias", LossKind::Sigmoid, "options.logitBias", ErrorKind::Range,
       [](LossRequest& r) { r.logitBias = -std::numeric_limits<double>::infinity(); }},
      {"threads 0", LossKind::Sigmoid, "options.threads", ErrorKind::Range, [](LossRequest& r) { r.threads = 0; }},
      {"threads 1025", LossKind::Softmax, "options.threads", ErrorKind::Range, [](LossRequest& r) { r.threads = 1025; }},
      {"NaN in text", LossKind::Sigmoid, "text.data", ErrorKind::Range,
       [&](LossRequest& r) { y[5] = std::numeric_limits<float>::quiet_NaN(); r.text.data = y.data(); }},
      {"Inf in image", LossKind::Softmax, "image.data", ErrorKind::Range,
       [&](LossRequest& r) { x[11] = std::numeric_limits<float>::infinity(); r.image.data = x.data(); }},
      {"softmax ids: image without positive", LossKind::Softmax, "options.imageIds", ErrorKind::Range,
       [&](LossRequest& r) { r.imageIds = fourIds; r.textIds = unmatched; }},
      {"softmax ids: text without positive", LossKind::Softmax, "options.textIds", ErrorKind::Range,
       [&](LossRequest& r) { r.image.rows = 3; r.imageIds = fourIds; r.textIds = fourIds; }},  // text id 4: no image
  };

  for (const auto& bad : cases) {
    std::fill(x.begin(), x.end(), 0.25f);
    std::fill(y.begin(), y.end(), -0.5f);
    LossRequest r;
    r.image = {x.data(), 4, 3};
    r.text = {y.data(), 4, 3};
    r.logitScale = std::log(10.0);
    r.logitBias = -10;
    bad.spoil(r);
    const std::vector<Method> methods = methodsFor(bad.kind);
    // The backend once per method, then the reference.
    for (size_t target = 0; target <= methods.size(); ++target) {
      const bool backend = target < methods.size();
      std::string verdict;
      const bool ok = throwsError(
          [&] {
            if (backend) {
              r.method = methods[target];
              if (bad.kind == LossKind::Sigmoid) cpu::sigmoidLoss(r, {});
              else cpu::softmaxLoss(r, {});
            } else if (bad.kind == LossKind::Sigmoid) {
              referenceSigmoidLoss(r, {});
            } else {
              referenceSoftmaxLoss(r, {});
            }
          },
          bad.argument, bad.errorKind, "Expected ", &verdict);
      reportBadRequest(ok, bad.kind, backend ? methodName(methods[target]) : "reference", bad.name.c_str(), verdict);
    }
  }
}

// A method the loss does not take on the CPU is a RangeError naming options.method, with the
// message the addon gives for the same option string (core/validate.cpp).
void checkForeignMethods() {
  std::vector<float> x(12, 0.5f), y(12, 0.25f);
  struct Foreign {
    LossKind kind;
    Method method;
    const char* message;
  };
  const Foreign cases[] = {
      {LossKind::Sigmoid, Method::Chunked, "Expected 'fused' or 'naive' for options.method"},
      {LossKind::Sigmoid, Method::Simple, "Expected 'fused' or 'naive' for options.method"},
      {LossKind::Softmax, Method::Fused, "Expected 'chunked' or 'naive' for options.method"},
      {LossKind::Softmax, Method::Simple, "Expected 'chunked' or 'naive' for options.method"},
  };
  for (const Foreign& f : cases) {
    LossRequest r;
    r.image = {x.data(), 4, 3};
    r.text = {y.data(), 4, 3};
    r.logitScale = std::log(10.0);
    r.method = f.method;
    std::string verdict;
    const bool ok = throwsError(
        [&] {
          if (f.kind == LossKind::Sigmoid) cpu::sigmoidLoss(r, {});
          else cpu::softmaxLoss(r, {});
        },
        "options.method", ErrorKind::Range, f.message, &verdict);
    reportBadRequest(ok, f.kind, methodName(f.method), "a method of another loss or backend", verdict);
  }
}

// The chunked softmax keeps its statistics in units of S, so no logit overflows at any
// valid logitScale; what is left is S itself overflowing float32 (finite but huge
// embeddings). That must be a RangeError naming image, not a NaN loss.
void checkOverflowingSimilarities() {
  std::vector<float> x(12, 1e20f), y(12, 1e20f);  // <x_i, y_j> = 3e40 > FLT_MAX
  LossRequest r;
  r.image = {x.data(), 4, 3};
  r.text = {y.data(), 4, 3};
  r.logitScale = std::log(10.0);
  r.method = Method::Chunked;
  std::string verdict;
  const bool ok = throwsError([&] { cpu::softmaxLoss(r, {}); }, "image.data", ErrorKind::Range, "Expected ", &verdict);
  reportBadRequest(ok, LossKind::Softmax, "chunked", "dot products overflow float32", verdict);
}

std::vector<Case> buildCases(uint64_t seed, int randomCount) {
  const double ln10 = std::log(10.0), clipScale = std::log(1 / 0.07);
  const double extremeScale = std::log(112.0), extremeBias = -24;
  // |u| = |t·S + b| up to ~1e4: rows of norm r give |S| <= r², so r = sqrt(1e4 / 112).
  const double extremeNorm = std::sqrt(1e4 / 112.0);
  std::vector<Case> cases;
  uint64_t s = seed;
  auto add = [&](std::string name, LossKind kind, int64_t n, int64_t m, int64_t d, bool ids, double scale,
                 double bias, double norm, double noise = 0.6, int64_t classes = 0) {
    cases.push_back({name, kind, n, m, d, ids, scale, bias, norm, noise, ++s, classes});
  };
  for (LossKind kind : {LossKind::Sigmoid, LossKind::Softmax}) {
    const double scale = kind == LossKind::Sigmoid ? ln10 : clipScale;
    const double bias = kind == LossKind::Sigmoid ? -10 : 0;
    add("tiny", kind, 1, 1, 1, false, scale, bias, 1);
    add("odd", kind, 7, 7, 3, false, scale, bias, 1);
    add("non-tile", kind, 33, 33, 17, false, scale, bias, 1);
    add("ids, N != M", kind, 255, 257, 40, true, scale, bias, 1);
    add("ids, N > M", kind, 130, 61, 9, true, scale, bias, 1);
    add("ids, square", kind, 96, 96, 32, true, scale, bias, 1);
    add("wide D", kind, 300, 300, 768, false, scale, bias, 1);
    add("tall", kind, 513, 513, 64, false, scale, bias, 1);
    add("extreme |u|~1e4", kind, 65, 65, 48, false, extremeScale, kind == LossKind::Sigmoid ? extremeBias : 0,
        extremeNorm);
    add("extreme, ids", kind, 70, 90, 20, true, extremeScale, kind == LossKind::Sigmoid ? extremeBias : 0,
        extremeNorm);
    // Unrelated pairs at extreme scale: logits spread over ±1e4 with no clear winner per row,
    // so the softmax is not trivially saturated (loss 0) and the sigmoid sees both signs.
    add("extreme, random pairs", kind, 97, 97, 24, false, extremeScale, kind == LossKind::Sigmoid ? extremeBias : 0,
        extremeNorm, 1e3);
    add("bias 0, s 0", kind, 40, 40, 8, false, 0, 0, 1);
  }
  // The softmax's own hard cases (the chunked version's tiles, online log-sum-exps and
  // column merges): sizes around the 192 tile, D = 1 (ties: every logit is ±t), many
  // duplicate ids, converged batches (the relative accuracy of a tiny loss), and the extreme
  // scales ln 100 and ln 1000 on unit-norm rows. A converged loss is Σ exp(l_neg - l_pos),
  // so its relative error is the absolute error of the logits, t·δS with δS ~ 1e-7 from the
  // float32 GEMM: at t = 1000 a loss below ~1e-3 cannot meet 1e-5 in float32 (any method),
  // and at t = 100 the margin is thin below ~1e-6; the cases stay inside what float32 can do.
  // ("saturated": the loss underflows to 0 in double, the gradients are ~1e-30.)
  const LossKind sm = LossKind::Softmax;
  add("193, D=1 (ties)", sm, 193, 193, 1, false, clipScale, 0, 1);
  add("385, D=3", sm, 385, 385, 3, false, clipScale, 0, 1);
  add("ids 385x193, D=3", sm, 385, 193, 3, true, clipScale, 0, 1);
  add("ids 193x385, D=768", sm, 193, 385, 768, true, clipScale, 0, 1);
  add("ids, 4 classes", sm, 200, 250, 16, true, clipScale, 0, 1, 0.6, 4);
  add("ids, 1 class", sm, 70, 200, 8, true, clipScale, 0, 1, 0.6, 1);
  add("converged, s=ln(1/0.07)", sm, 300, 300, 64, false, clipScale, 0, 1, 0.1);
  add("converged, s=ln 30", sm, 193, 193, 64, false, std::log(30.0), 0, 1, 0.05);
  add("converged, s=ln 100", sm, 200, 200, 8, false, std::log(100.0), 0, 1, 0.2);
  add("saturated, s=ln 100", sm, 200, 200, 256, false, std::log(100.0), 0, 1, 0.3);
  add("ids, small noise, s=ln 30", sm, 250, 230, 64, true, std::log(30.0), 0, 1, 0.05);
  add("s=80 (t=5.5e34), random pairs", sm, 200, 200, 16, false, 80, 0, 1, 1e3);
  add("s=-80, ids", sm, 100, 90, 16, true, -80, 0, 1);
  add("s=ln 100, random pairs", sm, 300, 300, 768, false, std::log(100.0), 0, 1, 1e3);
  add("s=ln 1000, paired", sm, 385, 385, 32, false, std::log(1000.0), 0, 1, 3);
  add("s=ln 1000, random pairs", sm, 193, 193, 768, false, std::log(1000.0), 0, 1, 1e3);
  add("s=ln 1000, ids N != M", sm, 300, 193, 48, true, std::log(1000.0), 0, 1, 2);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> size(1, 300);
  for (int k = 0; k < randomCount; ++k) {
    const LossKind kind = k % 2 == 0 ? LossKind::Sigmoid : LossKind::Softmax;
    const bool ids = k % 4 >= 2;
    const int64_t n = size(rng), d = size(rng);
    const int64_t m = ids ? size(rng) : n;
    const double scale = std::uniform_real_distribution<double>(0, std::log(100.0))(rng);
    const double bias = kind == LossKind::Sigmoid ? std::uniform_real_distribution<double>(-15, 5)(rng) : 0;
    add("random #" + std::to_string(k), kind, n, m, d, ids, scale, bias, 1);
  }
  return cases;
}

}  // namespace

int main(int argc, char** argv) {
  std::string filter;
  uint64_t seed = 20240611;
  int randomCount = 16;
  for (int k = 1; k < argc; ++k) {
    const std::string arg = argv[k];
    if (arg == "--filter" && k + 1 < argc) filter = argv[++k];
    else if (arg == "--seed" && k + 1 < argc) seed = std::strtoull(argv[++k], nullptr, 10);
    else if (arg == "--random" && k + 1 < argc) randomCount = std::atoi(argv[++k]);
    else {
      std::fprintf(stderr, "usage: %s [--filter SUBSTRING] [--seed N] [--random COUNT]\n", argv[0]);
      return 2;
    }
  }

  const cpu::CpuInfo info = cpu::cpuInfo();
  std::printf("siglip_core_check: simd %s (%s), %d hardware threads, fused tile %dx%d, seed %llu\n",
              info.simd.c_str(), info.simdReason.c_str(), info.hardwareThreads, info.tileRows, info.tileCols,
              (unsigned long long)seed);
  std::printf("bf16 kernel %s (%s); bf16 rows at tolerance %.0e against the reference on bf16-rounded inputs\n",
              info.bf16.c_str(), info.bf16Reason.c_str(), kBf16Tolerance);
  std::printf("tolerances: loss %.0e, dX/dY %.0e (relative L2), ds/db %.0e relative to max(|ref|, %.0e*sum|terms|)\n",
              kLossTolerance, kGradTolerance, kGradTolerance, kScalarFloor);

  for (const Case& c : buildCases(seed, randomCount)) {
    const std::string label = std::string(kindName(c.kind)) + " " + c.name;
    if (!filter.empty() && label.find(filter) == std::string::npos) continue;
    checkCase(c);
  }
  if (filter.empty() || std::string("bad-request").find(filter) != std::string::npos) {
    checkBadRequests();
    checkForeignMethods();
    checkOverflowingSimilarities();
  }

  if (failures) {
    std::printf("siglip_core_check: %d FAILED\n", failures);
    return 1;
  }
  std::printf("siglip_core_check: all passed\n");
  return 0;
}
