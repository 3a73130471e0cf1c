// siglip_cuda_check: the CUDA backend checked against the float64 reference, and timed.
//
//   --correctness      every path (fused, naive, simple sigmoid; chunked and naive softmax) ×
//                      every input precision (float32 exact 'fp32', float32 on TF32 tensor cores
//                      'tf32', bfloat16, float16) on seeded shapes (tiny, odd, non-multiples of
//                      the 128/64 tiles, label ids, N≠M, the blocked drivers' 4096-pair block
//                      boundary, |u| up to ~1e4, softmax at t = 100), compared with
//                      csrc/core/reference.cpp as relative L2 error. The fused sigmoid and the
//                      chunked softmax run on each GEMM path (cuda_backend.h, GemmSelection):
//                      'cublas' (backward GEMMs on cuBLAS, when it loads), 'pipelined' and
//                      'simple' (every GEMM on the tile GEMM's pipelined or single-stage main
//                      loop); the fused sigmoid also with GEMM1 on cuBLAS and the separate
//                      epilogue pass, when cuBLAS loads: 'cublas-gemm1' (default pieces) and
//                      'cublas-gemm1-p128' (128-pair pieces, so that most cases cross pieces,
//                      with the backward GEMMs on the tile GEMM). Each fused sigmoid path but
//                      'simple' runs once more with the overlapped schedule (SIGLIP_GEMM_OVERLAP:
//                      the backward GEMMs on a second stream), '<path>-overlap', which must give
//                      the same bits as its one-stream twin; and sigmoidBlock (the ring's unit)
//                      on one workspace across calls that alternate the two schedules must give
//                      a fresh workspace's bits. --gemm keeps only the runs on the listed
//                      paths. Plus: two runs give identical bits, forward-only gives
//                      the same loss, nothing is written outside the gradient buffers, and bad
//                      requests (device ordinal, out of memory, NaN, dtype/precision
//                      mismatches, cuBLAS required by SIGLIP_CUBLAS=on or SIGLIP_GEMM1=cublas
//                      but missing, a piece size out of bounds) throw siglip::Error without
//                      crashing. One line per check.
//                      --shapes N×M×D[i],… replaces the built-in cases with these shapes
//                      (written NxMxD; a trailing i: with label ids), each as a sigmoid and a
//                      softmax case named "shape NxMxD[ ids]"; --precisions fp32,tf32,bf16,fp16
//                      keeps only the runs in those precisions (both for a grid of edges: every
//                      shape in one precision, every precision on a few shapes).
//   --timing           per N and dtype: the cuBLAS floor (the same three GEMMs by cublasGemmEx),
//                      fused fwd+bwd on each GEMM path ('fused fwd+bwd': the default, backward
//                      GEMMs on cuBLAS when it loads; '… pipelined' and '… simple': every GEMM
//                      on the tile GEMM; '… cublas-gemm1': GEMM1 on cuBLAS too, then the
//                      epilogue pass, in 2048² pieces, and '… cublas-gemm1 p4096' in 4096²
//                      pieces; '… overlap': the default and both cublas-gemm1 rows again with
//                      the overlapped schedule), fused fwd (default, cublas-gemm1 and simple),
//                      chunked softmax, naive sigmoid and naive softmax fwd+bwd; CUDA-event
//                      medians, peak extra device memory; a table, and JSON with --json FILE.
//   --reference-only   the CPU half of --correctness (data and float64 references, timed) and
//                      the cuBLAS loader's failure paths, no GPU needed: a dry run for the
//                      check's CPU cost.
//
// cuBLAS is loaded at run time (csrc/cuda/cublas_loader.h) from $SIGLIP_CUBLAS_LIBRARY, which
// --cublas PATH sets, or the usual places; the floor and the backend use the same library.
//
// Tolerances (SPEC.md "Precision"), relative ‖out − ref‖ / ‖ref‖: fp32 loss 1e-5, gradients
// 1e-4; tf32 5e-3; bfloat16 / float16 2e-2. The inputs of the reduced precisions are rounded
// on the host first (bf16/fp16 as uploaded, tf32 as the tensor cores round them: nearest,
// ties away) and the reference is computed on the rounded values, so a tolerance measures
// the compute precision, not the rounding of the inputs. ∂s and ∂b are sums of many signed
// terms: their error is relative to max(|ref|, 1e-3 · Σ|terms|), as in siglip_core_check.
//
// Build: cmake -S . -B build-gpu -DSIGLIP_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90
//        cmake --build build-gpu --target siglip_cuda_check
// Run:   build-gpu/siglip_cuda_check --correctness [--filter TEXT[|TEXT…]] [--gemm PATH[,PATH…]] [--seed N]
//            [--cublas PATH] [--shapes NxMxD[i][,…]] [--precisions fp32,tf32,bf16,fp16]
//        build-gpu/siglip_cuda_check --timing --n 4096,16384 --d 768 --dtypes bf16,tf32 --runs 5
//            [--warmup 1] [--case-budget-s 6] [--deadline-s 0] [--simple-max-n N] [--cublas PATH]
//            [--json FILE]
// Exit status: 0 every check passed; 1 a check failed or a step threw; 2 no usable CUDA
// device (the reason is printed); 3 bad command line.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "tools/check_support.h"
#include "core/loss_request.h"
#include "core/reference.h"
#include "core/sigmoid_math.h"
#include "cuda/cublas_loader.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_block.h"

using namespace siglip;
using namespace siglip::check;
namespace sc = siglip::cuda;

namespace {

// ---- small utilities --------------------------------------------------------------------

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The tool's own CUDA runtime calls (events, memory info): failures become exceptions.
void cudaCheck(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

// After every case: a sticky error (illegal address, launch failure) poisons the context and
// every later call would fail too, so the caller stops instead of printing hundreds of FAILs.
bool contextHealthy(std::string* why) {
  const cudaError_t status = cudaDeviceSynchronize();
  if (status == cudaSuccess) return true;
  if (why) *why = std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")";
  return false;
}

const char* kindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::Type: return "Type";
    case ErrorKind::Range: return "Range";
    case ErrorKind::OutOfMemory: return "OutOfMemory";
    default: return "Internal";
  }
}

std::vector<int64_t> parseList(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(std::atoll(item.c_str()));
  }
  return out;
}

std::vector<std::string> parseWords(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// --filter: '|'-separated alternatives; a label matches when it contains one of them.
bool matchesFilter(const std::string& label, const std::string& filter) {
  if (filter.empty()) return true;
  std::stringstream ss(filter);
  std::string alternative;
  while (std::getline(ss, alternative, '|'))
    if (!alternative.empty() && label.find(alternative) != std::string::npos) return true;
  return false;
}

// ---- precisions -------------------------------------------------------------------------

enum class Rounding { None, Tf32, BFloat16, Float16 };

// cvt.rna.tf32.f32 (what wmma::__float_to_tf32 does): nearest, ties away from zero, keeping
// 10 explicit mantissa bits. Adding half of the dropped range to the magnitude then clearing
// the 13 low bits is exactly that (a carry into the exponent is the correct rounding up).
float roundTf32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u) return v;  // Inf / NaN unchanged
  bits = (bits + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &bits, 4);
  return v;
}

float roundTo(float v, Rounding r) {
  switch (r) {
    case Rounding::Tf32: return roundTf32(v);
    case Rounding::BFloat16: return __bfloat162float(__float2bfloat16(v));
    case Rounding::Float16: return __half2float(__float2half(v));
    default: return v;
  }
}

struct Config {
  const char* label;
  sc::DType dtype;
  sc::Precision precision;
  Rounding rounding;
  double lossTol, gradTol;
};

// 16-bit inputs take Precision::TF32 (the default: "16-bit inputs always use tensor cores").
const Config kFp32{"fp32", sc::DType::Float32, sc::Precision::FP32, Rounding::None, 1e-5, 1e-4};
const Config kTf32{"tf32", sc::DType::Float32, sc::Precision::TF32, Rounding::Tf32, 5e-3, 5e-3};
const Config kBf16{"bf16", sc::DType::BFloat16, sc::Precision::TF32, Rounding::BFloat16, 2e-2, 2e-2};
const Config kFp16{"fp16", sc::DType::Float16, sc::Precision::TF32, Rounding::Float16, 2e-2, 2e-2};

const Config* configByLabel(const std::string& label) {
  for (const Config* c : {&kFp32, &kTf32, &kBf16, &kFp16})
    if (label == c->label) return c;
  return nullptr;
}

// Host float32 → the dtype's bytes, for upload.
std::vector<unsigned char> encode(const std::vector<float>& v, sc::DType dtype) {
  std::vector<unsigned char> out(v.size() * sc::dtypeSize(dtype));
  if (dtype == sc::DType::Float32) {
    std::memcpy(out.data(), v.data(), out.size());
  } else if (dtype == sc::DType::BFloat16) {
    auto* p = reinterpret_cast<__nv_bfloat16*>(out.data());
    for (size_t k = 0; k < v.size(); ++k) p[k] = __float2bfloat16(v[k]);
  } else {
    auto* p = reinterpret_cast<__half*>(out.data());
    for (size_t k = 0; k < v.size(); ++k) p[k] = __float2half(v[k]);
  }
  return out;
}

// DeviceBuffer::upload is a synchronous cudaMemcpy from pageable memory, which may return
// before the DMA lands; the backend then works on non-blocking streams that do not wait for
// the legacy stream. Synchronising the device after every upload rules that race out here.
sc::DeviceBuffer uploadBytes(const void* data, size_t bytes) {
  sc::DeviceBuffer buffer(0, bytes);
  if (bytes) buffer.upload(data, bytes);
  cudaCheck(cudaDeviceSynchronize(), "cudaDeviceSynchronize after upload");
  return buffer;
}

// ---- correctness: cases and data ---------------------------------------------------------

enum class Path { Fused, Naive, Simple, SoftmaxChunked, SoftmaxNaive };
const char* pathName(Path p) {
  switch (p) {
    case Path::Fused: return "fused";
    case Path::Naive: return "naive";
    case Path::Simple: return "simple";
    case Path::SoftmaxChunked: return "chunked";
    default: return "naive";
  }
}

// The GEMM paths a loss call can take (cuda_backend.h). Each is set for the whole process
// (setGemmSelection) before the runs that use it. A path whose results must repeat another's
// bit for bit names it in sameBitsAs (checked when both run on a case).
struct GemmVariant {
  const char* label;
  sc::GemmSelection selection;
  const GemmVariant* sameBitsAs = nullptr;
};
const GemmVariant kCublasGemm{"cublas", {sc::BackwardGemm::Cublas, sc::TileGemm::Pipelined}};
const GemmVariant kPipelinedGemm{"pipelined", {sc::BackwardGemm::Tile, sc::TileGemm::Pipelined}};
// The simple main loop issues the same MMAs, in the same k order, on the same values (zeros
// past the edges) as the pipelined one, and the same epilogue follows: the same bits, which
// checks the pipelined copies far more sharply than a tolerance.
const GemmVariant kSimpleGemm{"simple", {sc::BackwardGemm::Tile, sc::TileGemm::Simple}, &kPipelinedGemm};
// GEMM1 on cuBLAS and the epilogue as a pass over S (SIGLIP_GEMM1=cublas), backward GEMMs on
// cuBLAS: in the default pieces, and (timing) in 4096² pieces like the tile path's.
const GemmVariant kCublasGemm1{
    "cublas-gemm1", {sc::BackwardGemm::Auto, sc::TileGemm::Pipelined, sc::ForwardGemm::Cublas}};
const GemmVariant kCublasGemm1Wide{
    "cublas-gemm1 p4096", {sc::BackwardGemm::Auto, sc::TileGemm::Pipelined, sc::ForwardGemm::Cublas, 4096}};
// The smallest pieces, so that every correctness case with over 128 rows or columns crosses
// pieces (ids, offsets and partial edges per piece), and the backward GEMMs on the tile GEMM:
// a lease that serves GEMM1 alone.
const GemmVariant kCublasGemm1Small{
    "cublas-gemm1-p128",
    {sc::BackwardGemm::Tile, sc::TileGemm::Pipelined, sc::ForwardGemm::Cublas, sc::kMinCublasGemm1Piece}};
// What a loss call uses when nobody chooses (whatever SIGLIP_CUBLAS / SIGLIP_TILE_GEMM /
// SIGLIP_GEMM1 / SIGLIP_GEMM_OVERLAP say here): cuBLAS for the backward GEMMs when it loads,
// the pipelined tile GEMM for GEMM1, one stream.
const GemmVariant kDefaultGemm{"default", {sc::BackwardGemm::Auto, sc::TileGemm::Pipelined}};

// The fused sigmoid's overlapped schedule (SIGLIP_GEMM_OVERLAP=on: the backward GEMMs on a
// second stream, G in two slots): every launch's inputs and each stream's order are those of
// the one-stream schedule, so each must repeat its one-stream twin's bits. On cuBLAS the
// second stream has a handle of its own; with the tile GEMM's backward ('pipelined',
// 'cublas-gemm1-p128') it launches the tile kernels there. The 128-pair pieces cross pieces in
// most cases, so they check the slots' hand-over far more than 4096-pair pieces do.
sc::GemmSelection overlapped(sc::GemmSelection selection) {
  selection.overlap = true;
  return selection;
}
const GemmVariant kCublasOverlap{"cublas-overlap", overlapped(kCublasGemm.selection), &kCublasGemm};
const GemmVariant kPipelinedOverlap{"pipelined-overlap", overlapped(kPipelinedGemm.selection), &kPipelinedGemm};
const GemmVariant kCublasGemm1Overlap{"cublas-gemm1-overlap", overlapped(kCublasGemm1.selection), &kCublasGemm1};
const GemmVariant kCublasGemm1SmallOverlap{"cublas-gemm1-p128-overlap", overlapped(kCublasGemm1Small.selection),
                                           &kCublasGemm1Small};
// Timing only: the rows the overlapped schedule is judged by.
const GemmVariant kDefaultOverlap{"default overlap", overlapped(kDefaultGemm.selection)};
const GemmVariant kCublasGemm1WideOverlap{"cublas-gemm1 p4096 overlap", overlapped(kCublasGemm1Wide.selection)};

// Every path --gemm can name.
const GemmVariant* const kCheckedVariants[] = {&kCublasGemm,        &kPipelinedGemm,    &kSimpleGemm,
                                               &kCublasGemm1,       &kCublasGemm1Small, &kDefaultGemm,
                                               &kCublasOverlap,     &kPipelinedOverlap, &kCublasGemm1Overlap,
                                               &kCublasGemm1SmallOverlap};

// Whether the process's cuBLAS loaded: the 'cublas' variants run only then.
bool cublasLoads() { return sc::processCublas() != nullptr; }

struct Case {
  std::string name;
  LossKind kind;
  int64_t n, m, d;
  bool ids;
  double logitScale, logitBias;
  double rowNorm;  // every row has this L2 norm
  double noise;    // text row = its image row + noise·N(0, 1/D), rescaled (large: unrelated pairs)
  uint64_t seed;
};

// The case's inputs (check_support.h: texts are noisy copies of their matching images).
Data makeData(const Case& c) {
  return check::makeData(DataShape{c.n, c.m, c.d, c.ids, 0, c.rowNorm, c.noise, c.seed});
}

std::vector<Case> buildCases(uint64_t seed) {
  const double ln10 = std::log(10.0), clipScale = std::log(1 / 0.07);
  const double extremeScale = std::log(112.0), extremeBias = -24;
  // |u| = |t·S + b| up to ~1e4: rows of norm r give |S| <= r², so r = sqrt(1e4 / 112).
  const double extremeNorm = std::sqrt(1e4 / 112.0);
  std::vector<Case> cases;
  uint64_t s = seed;
  auto add = [&](const std::string& name, LossKind kind, int64_t n, int64_t m, int64_t d, bool ids, bool extreme,
                 double noise = 0.6) {
    const bool sig = kind == LossKind::Sigmoid;
    const double scale = extreme ? extremeScale : sig ? ln10 : clipScale;
    const double bias = sig ? (extreme ? extremeBias : -10) : 0;
    cases.push_back({name, kind, n, m, d, ids, scale, bias, extreme ? extremeNorm : 1.0, noise, ++s});
  };
  for (LossKind kind : {LossKind::Sigmoid, LossKind::Softmax}) {
    add("tiny", kind, 1, 1, 1, false, false);
    add("odd", kind, 7, 7, 3, false, false);
    add("ids, N != M", kind, 129, 131, 96, true, false);
    add("ids, N > M", kind, 130, 61, 9, true, false);
    add("D odd (unaligned rows)", kind, 257, 257, 13, false, false);
    add("wide D", kind, 300, 300, 768, false, false);
    add("tall", kind, 1000, 1000, 64, false, false);
    add("extreme |u|~1e4", kind, 65, 65, 48, false, true);
    add("extreme, ids", kind, 70, 90, 20, true, true);
    add("extreme, random pairs", kind, 97, 97, 24, false, true, 1e3);
  }
  // Sigmoid only: the fused driver's 4096 × 4096 pair blocks (crossed in both directions,
  // with and without ids), a bigger extreme case, and s = b = 0.
  add("extreme, 300 x 300", LossKind::Sigmoid, 300, 300, 256, false, true);
  add("bias 0, s 0", LossKind::Sigmoid, 40, 40, 8, false, false);
  cases.back().logitScale = 0, cases.back().logitBias = 0;
  add("ids across 4096 blocks", LossKind::Sigmoid, 4200, 4300, 16, true, false);
  add("4096 block boundary", LossKind::Sigmoid, 4097, 4097, 128, false, false);
  // Softmax only: t = 100 (logitScale ln 100, CLIP's clamp) on unit rows, with and without
  // ids, and the chunked driver's 4096 × 4096 pair blocks crossed in both directions (its
  // statistics merge across blocks), with ids and N != M too.
  add("logitScale ln 100", LossKind::Softmax, 200, 200, 64, false, false, 2.0);
  cases.back().logitScale = std::log(100.0);
  add("logitScale ln 100, ids", LossKind::Softmax, 150, 170, 32, true, false);
  cases.back().logitScale = std::log(100.0);
  add("4096 block boundary", LossKind::Softmax, 4097, 4097, 32, false, false);
  add("ids across 4096 blocks", LossKind::Softmax, 4200, 4300, 16, true, false);
  return cases;
}

// --shapes: "NxMxD" (N = M) or "NxMxDi" (with ids), comma-separated; each as a sigmoid and a
// softmax case (usual scale and bias, unit rows). False when an item does not parse.
bool shapeCases(const std::string& list, uint64_t seed, std::vector<Case>* out) {
  for (const std::string& item : parseWords(list)) {
    long long n = 0, m = 0, d = 0;
    char ids = 0, extra = 0;
    const int got = std::sscanf(item.c_str(), "%lldx%lldx%lld%c%c", &n, &m, &d, &ids, &extra);
    if (got < 3 || got > 4 || (got == 4 && ids != 'i') || n < 1 || m < 1 || d < 1) return false;
    if (got == 3 && n != m) return false;  // without ids row i pairs with row i: N = M
    const std::string name = "shape " + std::to_string(n) + "x" + std::to_string(m) + "x" + std::to_string(d) +
                             (got == 4 ? " ids" : "");
    for (LossKind kind : {LossKind::Sigmoid, LossKind::Softmax}) {
      const bool sig = kind == LossKind::Sigmoid;
      out->push_back({name, kind, n, m, d, got == 4, sig ? std::log(10.0) : std::log(1 / 0.07), sig ? -10.0 : 0.0, 1.0,
                      0.6, ++seed});
    }
  }
  return true;
}

// ---- correctness: the reference ------------------------------------------------------------

// Σ|terms| of ∂b and ∂s (sigmoid), or the softmax's bound 2·t·max‖x‖·max‖y‖ for ∂s.
struct ScalarScales {
  double bias = 0, scale = 0;
};

struct Reference {
  Rounding rounding = Rounding::None;
  LossResult result;
  std::vector<double> dx, dy;
  ScalarScales scales;
  double seconds = 0;
  std::string error;  // non-empty when the reference itself threw
};

double dotDouble(const float* a, const float* b, int64_t d) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains: the floor scale needs no exact order
  int64_t k = 0;
  for (; k + 4 <= d; k += 4) {
    s0 += double(a[k]) * b[k];
    s1 += double(a[k + 1]) * b[k + 1];
    s2 += double(a[k + 2]) * b[k + 2];
    s3 += double(a[k + 3]) * b[k + 3];
  }
  for (; k < d; ++k) s0 += double(a[k]) * b[k];
  return (s0 + s1) + (s2 + s3);
}

ScalarScales scalarScales(const Case& c, const std::vector<float>& x, const std::vector<float>& y, const Data& data,
                          int threads) {
  ScalarScales out;
  const double t = std::exp(c.logitScale);
  if (c.kind == LossKind::Softmax) {
    auto maxNorm = [&](const std::vector<float>& v, int64_t rows) {
      double best = 0;
      for (int64_t i = 0; i < rows; ++i) best = std::max(best, std::sqrt(dotDouble(&v[size_t(i * c.d)], &v[size_t(i * c.d)], c.d)));
      return best;
    };
    out.scale = 2 * t * maxNorm(x, c.n) * maxNorm(y, c.m);
    return out;
  }
  threads = std::max(1, std::min<int>(threads, int(c.n)));
  std::vector<ScalarScales> part(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w) {
    pool.emplace_back([&, w] {
      for (int64_t i = w; i < c.n; i += threads) {
        for (int64_t j = 0; j < c.m; ++j) {
          const double s = dotDouble(&x[size_t(i * c.d)], &y[size_t(j * c.d)], c.d);
          const bool positive = c.ids ? data.imageIds[size_t(i)] == data.textIds[size_t(j)] : i == j;
          double dTerm = 0;
          sigmoidPairTerm<double>(s, positive, t, c.logitBias, &dTerm);
          const double g = std::fabs(dTerm) / double(c.n);
          part[size_t(w)].bias += g;
          part[size_t(w)].scale += t * g * std::fabs(s);
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (const auto& p : part) out.bias += p.bias, out.scale += p.scale;
  return out;
}

Reference computeReference(const Case& c, const Data& data, Rounding rounding, int scaleThreads) {
  Reference ref;
  ref.rounding = rounding;
  const auto start = Clock::now();
  try {
    std::vector<float> x = data.x, y = data.y;
    for (auto& v : x) v = roundTo(v, rounding);
    for (auto& v : y) v = roundTo(v, rounding);
    LossRequest r;
    r.image = {x.data(), c.n, c.d};
    r.text = {y.data(), c.m, c.d};
    if (c.ids) r.imageIds = data.imageIds.data(), r.textIds = data.textIds.data();
    r.logitScale = c.logitScale;
    r.logitBias = c.logitBias;
    ref.dx.resize(size_t(c.n * c.d));
    ref.dy.resize(size_t(c.m * c.d));
    ref.result = c.kind == LossKind::Sigmoid ? referenceSigmoidLoss(r, {ref.dx.data(), ref.dy.data()})
                                             : referenceSoftmaxLoss(r, {ref.dx.data(), ref.dy.data()});
    ref.scales = scalarScales(c, x, y, data, scaleThreads);
  } catch (const std::exception& e) {
    ref.error = e.what();
  }
  ref.seconds = secondsSince(start);
  return ref;
}

// The paths (and precisions) each loss is checked on.
struct Run {
  Path path;
  const Config* config;
  const GemmVariant* gemm;  // null: the path runs no GEMM
};
std::vector<Run> runsFor(LossKind kind) {
  std::vector<Run> runs;
  // The fused sigmoid and the chunked softmax on every GEMM path; exact 'fp32' runs the SIMT
  // kernel whatever the tile setting, so its 'simple' run would repeat its 'pipelined' one.
  // GEMM1 on cuBLAS is the fused sigmoid's alone (the softmax's epilogue needs whole tiles).
  // The overlapped schedule is the fused sigmoid's alone too, after its one-stream twins (whose
  // bits it must repeat).
  std::vector<const GemmVariant*> variants = {&kPipelinedGemm, &kSimpleGemm};
  if (cublasLoads()) variants.insert(variants.begin(), &kCublasGemm);
  if (cublasLoads() && kind == LossKind::Sigmoid) variants.insert(variants.end(), {&kCublasGemm1, &kCublasGemm1Small});
  if (kind == LossKind::Sigmoid) {
    if (cublasLoads()) variants.push_back(&kCublasOverlap);
    variants.push_back(&kPipelinedOverlap);
    if (cublasLoads()) variants.insert(variants.end(), {&kCublasGemm1Overlap, &kCublasGemm1SmallOverlap});
  }
  const Path blocked = kind == LossKind::Softmax ? Path::SoftmaxChunked : Path::Fused;
  for (const GemmVariant* v : variants)
    for (const Config* c : {&kFp32, &kTf32, &kBf16, &kFp16})
      if (!(v == &kSimpleGemm && c == &kFp32)) runs.push_back({blocked, c, v});
  // The naive baselines share those GEMMs: once, on the default path.
  const Path naive = kind == LossKind::Softmax ? Path::SoftmaxNaive : Path::Naive;
  for (const Config* c : {&kFp32, &kTf32, &kBf16, &kFp16}) runs.push_back({naive, c, &kDefaultGemm});
  // The simple kernels ignore the precision (plain float32 FMA): 'tf32' would repeat 'fp32'.
  if (kind == LossKind::Sigmoid)
    for (const Config* c : {&kFp32, &kBf16, &kFp16}) runs.push_back({Path::Simple, c, nullptr});
  return runs;
}

// Every rounding a case's runs need a reference for.
std::vector<Rounding> roundingsFor(LossKind kind) {
  (void)kind;
  return {Rounding::None, Rounding::Tf32, Rounding::BFloat16, Rounding::Float16};
}

// ---- correctness: running the backend ---------------------------------------------------

// Gradient buffers on the device between canaries (must survive), their inside NaN (so an
// element the backend forgets shows up as an infinite error).
constexpr size_t kCanary = 64;
constexpr float kCanaryValue = -12345.f;

struct DeviceGrads {
  sc::DeviceBuffer buffer;
  size_t count = 0;
  float* data() const { return static_cast<float*>(buffer.data()) + kCanary; }
};

DeviceGrads makeDeviceGrads(size_t count) {
  std::vector<float> host(count + 2 * kCanary, kCanaryValue);
  std::fill(host.begin() + kCanary, host.end() - kCanary, std::numeric_limits<float>::quiet_NaN());
  DeviceGrads g;
  g.buffer = uploadBytes(host.data(), host.size() * sizeof(float));
  g.count = count;
  return g;
}

// Downloads the inside; returns false when a canary was overwritten.
bool readDeviceGrads(const DeviceGrads& g, std::vector<float>& out) {
  std::vector<float> host(g.count + 2 * kCanary);
  g.buffer.download(host.data(), host.size() * sizeof(float));
  out.assign(host.begin() + kCanary, host.end() - kCanary);
  for (size_t k = 0; k < kCanary; ++k)
    if (host[k] != kCanaryValue || host[host.size() - 1 - k] != kCanaryValue) return false;
  return true;
}

struct Output {
  LossResult result;
  std::vector<float> dx, dy;
  bool inBounds = true;
  double ms = 0;
};

LossResult callPath(Path path, sc::CudaLossRequest req, sc::CudaGradientOutputs grads) {
  switch (path) {
    case Path::Fused: req.method = Method::Fused; return sc::sigmoidLoss(req, grads);
    case Path::Naive: req.method = Method::Naive; return sc::sigmoidLoss(req, grads);
    case Path::Simple: return sc::sigmoidLossSimple(req, grads);
    case Path::SoftmaxChunked: req.method = Method::Chunked; return sc::softmaxLoss(req, grads);
    default: req.method = Method::Naive; return sc::softmaxLoss(req, grads);
  }
}

struct DeviceInputs {
  sc::DeviceBuffer x, y;
};

sc::CudaLossRequest makeCudaRequest(const Case& c, const Data& data, const DeviceInputs& in, const Config& cfg) {
  sc::CudaLossRequest r;
  r.image = {in.x.data(), c.n, c.d, cfg.dtype, 0};
  r.text = {in.y.data(), c.m, c.d, cfg.dtype, 0};
  if (c.ids) r.imageIds = data.imageIds.data(), r.textIds = data.textIds.data();
  r.logitScale = c.logitScale;
  r.logitBias = c.logitBias;
  r.precision = cfg.precision;
  return r;
}

Output runOnDevice(Path path, const sc::CudaLossRequest& req, bool withGrads) {
  Output out;
  const size_t nx = size_t(req.image.rows * req.image.cols), ny = size_t(req.text.rows * req.text.cols);
  DeviceGrads gx, gy;
  sc::CudaGradientOutputs grads;
  if (withGrads) {
    gx = makeDeviceGrads(nx);
    gy = makeDeviceGrads(ny);
    grads.image = gx.data();
    grads.text = gy.data();
  }
  const auto start = Clock::now();
  out.result = callPath(path, req, grads);
  out.ms = secondsSince(start) * 1e3;
  if (withGrads) out.inBounds = readDeviceGrads(gx, out.dx) && readDeviceGrads(gy, out.dy);
  return out;
}

bool sameBits(const Output& a, const Output& b) {
  auto same = [](double p, double q) { return std::memcmp(&p, &q, sizeof p) == 0; };
  return same(a.result.loss, b.result.loss) && same(a.result.dLogitScale, b.result.dLogitScale) &&
         same(a.result.dLogitBias, b.result.dLogitBias) && a.dx.size() == b.dx.size() && a.dy.size() == b.dy.size() &&
         std::memcmp(a.dx.data(), b.dx.data(), a.dx.size() * sizeof(float)) == 0 &&
         std::memcmp(a.dy.data(), b.dy.data(), a.dy.size() * sizeof(float)) == 0;
}

int failures = 0;
int checks = 0;
bool contextLost = false;

void report(bool ok, const std::string& line) {
  ++checks;
  if (!ok) ++failures;
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", line.c_str());
  std::fflush(stdout);
}

std::string caseLabel(const Case& c, const char* path, const char* config) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, "%-7s %-31s %-4s %-24s N=%-5lld M=%-5lld D=%-4lld ids=%-3s",
                c.kind == LossKind::Sigmoid ? "sigmoid" : "softmax", path, config, c.name.c_str(), (long long)c.n,
                (long long)c.m, (long long)c.d, c.ids ? "yes" : "no");
  return buffer;
}

// --gemm: the runs on one of the listed GEMM paths (every run when the list is empty; the
// simple kernels, which run no GEMM, only then).
// --precisions: only the runs in the listed precisions (every run when the list is empty).
std::vector<std::string> g_precisions;

std::vector<Run> selectRuns(LossKind kind, const std::vector<std::string>& gemmPaths) {
  std::vector<Run> runs;
  for (const Run& run : runsFor(kind))
    if ((gemmPaths.empty() ||
         (run.gemm && std::find(gemmPaths.begin(), gemmPaths.end(), run.gemm->label) != gemmPaths.end())) &&
        (g_precisions.empty() ||
         std::find(g_precisions.begin(), g_precisions.end(), run.config->label) != g_precisions.end()))
      runs.push_back(run);
  return runs;
}

void checkCase(const Case& c, int hardwareThreads, const std::vector<std::string>& gemmPaths) {
  const std::vector<Run> runs = selectRuns(c.kind, gemmPaths);
  if (runs.empty()) return;
  const Data data = makeData(c);
  // References per rounding, concurrently (the 4097² case takes seconds each).
  const std::vector<Rounding> roundings = roundingsFor(c.kind);
  const int scaleThreads = std::max(1, hardwareThreads / int(roundings.size()));
  std::vector<std::future<Reference>> pending;
  for (Rounding r : roundings)
    pending.push_back(std::async(std::launch::async, [&, r] { return computeReference(c, data, r, scaleThreads); }));
  std::vector<Reference> refs;
  for (auto& f : pending) refs.push_back(f.get());
  double refSeconds = 0;
  for (const auto& r : refs) refSeconds = std::max(refSeconds, r.seconds);
  auto refFor = [&](Rounding r) -> const Reference& {
    for (const auto& ref : refs)
      if (ref.rounding == r) return ref;
    return refs.front();
  };

  // Device inputs per dtype (float32 shared by fp32 and tf32: the tensor cores round).
  DeviceInputs inputs[3];
  bool uploaded[3] = {false, false, false};
  // Each run's results, by GEMM path, loss path and precision: a run that must repeat another
  // path's bits (GemmVariant::sameBitsAs) finds its twin's here.
  std::map<std::string, Output> results;

  for (const Run& run : runs) {
    if (contextLost) return;
    const Config& cfg = *run.config;
    // The simple kernels are exact float32 whatever the dtype: float32 inputs use fp32's tolerance.
    const Reference& ref = refFor(cfg.rounding);
    std::string path = pathName(run.path);
    if (run.gemm && run.gemm != &kDefaultGemm) path = path + "/" + run.gemm->label;
    std::string detail;
    bool ok = false;
    try {
      if (run.gemm) sc::setGemmSelection(run.gemm->selection);
      if (!ref.error.empty()) throw std::runtime_error("the float64 reference threw: " + ref.error);
      const int slot = int(cfg.dtype);
      if (!uploaded[slot]) {
        const auto bx = encode(data.x, cfg.dtype), by = encode(data.y, cfg.dtype);
        inputs[slot].x = uploadBytes(bx.data(), bx.size());
        inputs[slot].y = uploadBytes(by.data(), by.size());
        uploaded[slot] = true;
      }
      const sc::CudaLossRequest req = makeCudaRequest(c, data, inputs[slot], cfg);
      const Output one = runOnDevice(run.path, req, true);
      const Output two = runOnDevice(run.path, req, true);
      const Output fwd = runOnDevice(run.path, req, false);

      const double eLoss = scalarError(one.result.loss, ref.result.loss, 0);
      const double eDx = relativeError(one.dx, ref.dx), eDy = relativeError(one.dy, ref.dy);
      const double eDs = scalarError(one.result.dLogitScale, ref.result.dLogitScale, ref.scales.scale);
      const double eDb = c.kind == LossKind::Sigmoid ? scalarError(one.result.dLogitBias, ref.result.dLogitBias, ref.scales.bias)
                                                     : std::fabs(one.result.dLogitBias);
      const bool deterministic = sameBits(one, two);
      const double eFwd = std::fabs(fwd.result.loss - one.result.loss) / std::max(std::fabs(one.result.loss), 1e-300);
      const bool fwdSameBits = std::memcmp(&fwd.result.loss, &one.result.loss, sizeof(double)) == 0;
      const bool fwdOk = eFwd <= 1e-12 && fwd.result.dLogitScale == 0 && fwd.result.dLogitBias == 0;
      const bool accurate = eLoss <= cfg.lossTol && eDx <= cfg.gradTol && eDy <= cfg.gradTol && eDs <= cfg.gradTol &&
                            eDb <= cfg.gradTol;
      ok = accurate && deterministic && fwdOk && one.inBounds && two.inBounds;
      const auto key = [&](const GemmVariant* gemm) {
        return std::string(gemm ? gemm->label : "-") + " " + pathName(run.path) + " " + cfg.label;
      };
      results[key(run.gemm)] = one;
      std::string versusTwin;
      if (run.gemm && run.gemm->sameBitsAs) {
        const auto found = results.find(key(run.gemm->sameBitsAs));
        if (found != results.end()) {
          const bool same = sameBits(one, found->second);
          const std::string twin = run.gemm->sameBitsAs->label;
          versusTwin = same ? "  = " + twin + " bits" : "  DIFFERS FROM " + twin;
          ok = ok && same;
        }
      }
      char buffer[640];
      std::snprintf(buffer, sizeof buffer,
                    "loss %.1e (ref %.6g)  dX %.1e  dY %.1e  ds %.1e  db %.1e  [tol %.0e/%.0e]  2 runs %s  fwd-only %s  "
                    "%.1f ms%s%s",
                    eLoss, ref.result.loss, eDx, eDy, eDs, eDb, cfg.lossTol, cfg.gradTol,
                    deterministic ? "same bits" : "DIFFER", fwdOk ? (fwdSameBits ? "same bits" : "same") : "DIFFERS",
                    one.ms, versusTwin.c_str(), one.inBounds && two.inBounds ? "" : "  WROTE OUTSIDE THE GRADIENT BUFFERS");
      detail = buffer;
    } catch (const Error& e) {
      detail = std::string("threw siglip::Error (") + kindName(e.kind()) + ", " + e.argument() + "): " + e.what();
    } catch (const std::exception& e) {
      detail = std::string("threw: ") + e.what();
    }
    report(ok, caseLabel(c, path.c_str(), cfg.label) + "  " + detail);
    std::string why;
    if (!contextHealthy(&why)) {
      contextLost = true;
      report(false, "CUDA context lost after the case above (" + why + "): stopping the correctness checks");
    }
  }
  std::printf("       (float64 references: %.2f s)\n", refSeconds);
}

// ---- correctness: the ring's unit, one workspace call after call ---------------------------

// The ring runs sigmoidBlock step after step on one stream with one workspace. Here one
// workspace serves calls that alternate the one-stream and the overlapped schedule (G grows
// from one slot to two; the second stream and its events are created once, then reused, the
// first two pieces of a call relying on the previous call having drained it), each call's sums
// and gradients compared bit for bit with a call on a fresh workspace. 4200 × 4300 pairs
// cross the tile path's 4096-pair pieces both ways (four pieces, both slots twice).
void checkWorkspaceReuse(const std::vector<std::string>& gemmPaths) {
  const Case c{"one workspace across calls", LossKind::Sigmoid, 4200, 4300, 16, true, std::log(10.0), -10, 1.0, 0.6, 7};
  const Config& cfg = kBf16;
  const Data data = makeData(c);
  const auto bx = encode(data.x, cfg.dtype), by = encode(data.y, cfg.dtype);
  const sc::DeviceBuffer x = uploadBytes(bx.data(), bx.size()), y = uploadBytes(by.data(), by.size());
  const sc::DeviceBuffer imageIds = uploadBytes(data.imageIds.data(), data.imageIds.size() * sizeof(int32_t));
  const sc::DeviceBuffer textIds = uploadBytes(data.textIds.data(), data.textIds.size() * sizeof(int32_t));
  const size_t nx = size_t(c.n * c.d), ny = size_t(c.m * c.d);
  sc::DeviceBuffer gx(0, nx * sizeof(float)), gy(0, ny * sizeof(float));
  sc::CudaSigmoidBlock block;
  block.image = {x.data(), c.n, c.d, cfg.dtype, 0};
  block.text = {y.data(), c.m, c.d, cfg.dtype, 0};
  block.imageIds = static_cast<const int32_t*>(imageIds.data());
  block.textIds = static_cast<const int32_t*>(textIds.data());
  block.temperature = std::exp(c.logitScale);
  block.bias = c.logitBias;
  block.normalizer = double(c.n);
  block.precision = cfg.precision;
  cudaStream_t stream = nullptr;
  cudaCheck(cudaStreamCreate(&stream), "cudaStreamCreate");
  struct BlockOutput {
    sc::SigmoidBlockSums sums;
    std::vector<float> dx, dy;
  };
  // sigmoidBlock adds to the gradients: zeroed first, read back after (it returns synchronised).
  const auto run = [&](sc::SigmoidBlockWorkspace* workspace) {
    gx.zero();
    gy.zero();
    BlockOutput out;
    out.sums = sc::sigmoidBlock(block, static_cast<float*>(gx.data()), static_cast<float*>(gy.data()), stream, workspace);
    out.dx.resize(nx);
    out.dy.resize(ny);
    gx.download(out.dx.data(), nx * sizeof(float));
    gy.download(out.dy.data(), ny * sizeof(float));
    return out;
  };
  const auto same = [](const BlockOutput& a, const BlockOutput& b) {
    return std::memcmp(&a.sums, &b.sums, sizeof a.sums) == 0 &&
           std::memcmp(a.dx.data(), b.dx.data(), a.dx.size() * sizeof(float)) == 0 &&
           std::memcmp(a.dy.data(), b.dy.data(), a.dy.size() * sizeof(float)) == 0;
  };
  for (const GemmVariant* overlap : {&kPipelinedOverlap, &kCublasOverlap, &kCublasGemm1SmallOverlap}) {
    if (contextLost) break;
    const sc::GemmSelection& selection = overlap->selection;
    const bool needsCublas = selection.backward == sc::BackwardGemm::Cublas || selection.forward == sc::ForwardGemm::Cublas;
    if (needsCublas && !cublasLoads()) continue;
    if (!gemmPaths.empty() && std::find(gemmPaths.begin(), gemmPaths.end(), overlap->label) == gemmPaths.end()) continue;
    const GemmVariant& serial = *overlap->sameBitsAs;
    std::string detail;
    bool ok = true;
    try {
      sc::setGemmSelection(serial.selection);
      const BlockOutput want = run(nullptr);
      sc::SigmoidBlockWorkspace workspace;
      for (const GemmVariant* v : {&serial, overlap, overlap, &serial}) {
        sc::setGemmSelection(v->selection);
        const bool equal = same(run(&workspace), want);
        detail += std::string(v == overlap ? "  overlapped" : "  one-stream") + (equal ? " same bits" : " DIFFERS");
        ok = ok && equal;
      }
    } catch (const std::exception& e) {
      ok = false;
      detail += std::string("  threw: ") + e.what();
    }
    report(ok, caseLabel(c, (std::string("block/") + overlap->label).c_str(), cfg.label) +
                   "  calls on one workspace vs a fresh one:" + detail);
    std::string why;
    if (!contextHealthy(&why)) {
      contextLost = true;
      report(false, "CUDA context lost after the check above (" + why + ")");
    }
  }
  sc::setGemmSelection(kDefaultGemm.selection);
  cudaStreamDestroy(stream);
}

// ---- correctness: bad requests ----------------------------------------------------------

// Puts the default GEMM paths back when a bad request that changed them is done.
struct RestoreDefaultGemm {
  ~RestoreDefaultGemm() { sc::setGemmSelection(kDefaultGemm.selection); }
};

struct BadCase {
  std::string name;
  std::vector<ErrorKind> kinds;  // acceptable kinds (first = the preferred one)
  std::string argument;          // expected argument name, or empty for any
  std::function<void()> body;
};

void checkBadRequests() {
  sc::setGemmSelection(kDefaultGemm.selection);
  // A valid 4×3 request to spoil, on device 0.
  std::vector<float> x(12, 0.25f), y(12, -0.5f);
  const auto bx = encode(x, sc::DType::Float32), by = encode(y, sc::DType::Float32);
  sc::DeviceBuffer dx = uploadBytes(bx.data(), bx.size()), dy = uploadBytes(by.data(), by.size());
  std::vector<float> xn = x;
  xn[7] = std::numeric_limits<float>::quiet_NaN();
  const auto bxn = encode(xn, sc::DType::Float32);
  sc::DeviceBuffer dxn = uploadBytes(bxn.data(), bxn.size());
  std::vector<float> yi = y;
  yi[11] = std::numeric_limits<float>::infinity();
  const auto byi = encode(yi, sc::DType::BFloat16);
  const auto bxb = encode(x, sc::DType::BFloat16);
  sc::DeviceBuffer dyi = uploadBytes(byi.data(), byi.size()), dxb = uploadBytes(bxb.data(), bxb.size());
  sc::DeviceBuffer gradX(0, 12 * sizeof(float)), gradY(0, 12 * sizeof(float));
  // Finite entries whose dot products overflow float32 (3 · 1e40).
  const std::vector<float> huge(12, 1e20f);
  const auto bhuge = encode(huge, sc::DType::Float32);
  sc::DeviceBuffer dhuge = uploadBytes(bhuge.data(), bhuge.size());

  auto request = [&](const sc::DeviceBuffer& a, const sc::DeviceBuffer& b, sc::DType dtype) {
    sc::CudaLossRequest r;
    r.image = {a.data(), 4, 3, dtype, 0};
    r.text = {b.data(), 4, 3, dtype, 0};
    r.logitScale = std::log(10.0);
    r.logitBias = -10;
    return r;
  };

  std::vector<BadCase> cases = {
      {"DeviceBuffer on device 99", {ErrorKind::Range}, "options.device", [] { sc::DeviceBuffer b(99, 16); }},
      {"deviceInfo(99)", {ErrorKind::Range}, "options.device", [] { sc::deviceInfo(99); }},
      {"request on device 99", {ErrorKind::Range, ErrorKind::Internal}, "",
       [&] {
         auto r = request(dx, dy, sc::DType::Float32);
         r.image.device = r.text.device = 99;
         sc::sigmoidLoss(r, {});
       }},
      {"DeviceBuffer of 2^50 bytes", {ErrorKind::OutOfMemory}, "", [] { sc::DeviceBuffer b(0, size_t(1) << 50); }},
      {"NaN in image (float32)", {ErrorKind::Range}, "image.data",
       [&] { sc::sigmoidLoss(request(dxn, dy, sc::DType::Float32), {}); }},
      {"Inf in text (bfloat16)", {ErrorKind::Range}, "text.data",
       [&] { sc::sigmoidLoss(request(dxb, dyi, sc::DType::BFloat16), {}); }},
      {"NaN in image, softmax", {ErrorKind::Range}, "image.data",
       [&] {
         auto r = request(dxn, dy, sc::DType::Float32);
         r.method = Method::Naive;
         sc::softmaxLoss(r, {});
       }},
      {"NaN in image, simple", {ErrorKind::Range}, "image.data",
       [&] { sc::sigmoidLossSimple(request(dxn, dy, sc::DType::Float32), {}); }},
      {"precision fp32 with bfloat16", {ErrorKind::Range}, "options.precision",
       [&] {
         auto r = request(dxb, dxb, sc::DType::BFloat16);
         r.precision = sc::Precision::FP32;
         sc::sigmoidLoss(r, {});
       }},
      {"dtype mismatch", {ErrorKind::Type}, "text",
       [&] {
         auto r = request(dx, dxb, sc::DType::Float32);
         r.text.dtype = sc::DType::BFloat16;
         sc::sigmoidLoss(r, {});
       }},
      {"NaN in image, softmax chunked", {ErrorKind::Range}, "image.data",
       [&] {
         auto r = request(dxn, dy, sc::DType::Float32);
         r.method = Method::Chunked;
         sc::softmaxLoss(r, {});
       }},
      {"softmax chunked, similarities overflow float32", {ErrorKind::Range}, "image.data",
       [&] {
         auto r = request(dhuge, dhuge, sc::DType::Float32);
         r.method = Method::Chunked;
         sc::softmaxLoss(r, {static_cast<float*>(gradX.data()), static_cast<float*>(gradY.data())});
       }},
      {"only one gradient output", {ErrorKind::Internal}, "grads",
       [&] {
         sc::CudaGradientOutputs g;
         g.image = static_cast<float*>(gradX.data());
         sc::sigmoidLoss(request(dx, dy, sc::DType::Float32), g);
       }},
      {"N != M without ids", {ErrorKind::Range}, "text",
       [&] {
         auto r = request(dx, dy, sc::DType::Float32);
         r.text.rows = 3;
         sc::sigmoidLoss(r, {});
       }},
      {"NaN logitScale", {ErrorKind::Range}, "options.logitScale",
       [&] {
         auto r = request(dx, dy, sc::DType::Float32);
         r.logitScale = std::nan("");
         sc::sigmoidLoss(r, {});
       }},
      {"upload past the end", {ErrorKind::Range}, "", [&] { gradX.upload(x.data(), 13 * sizeof(float)); }},
      {"GEMM1 piece side below its minimum", {ErrorKind::Range}, "cublasGemm1Piece",
       [&] {
         RestoreDefaultGemm restore;
         sc::GemmSelection selection = kCublasGemm1.selection;
         selection.cublasGemm1Piece = sc::kMinCublasGemm1Piece - 1;
         sc::setGemmSelection(selection);
       }},
  };
  if (!cublasLoads()) {
    // Without a cuBLAS to load, SIGLIP_CUBLAS=on must make a fused call fail and say why, and
    // so must SIGLIP_GEMM1=cublas, even for a forward-only call (no backward GEMMs to run).
    cases.push_back({"cuBLAS required (SIGLIP_CUBLAS=on) but not loadable", {ErrorKind::Internal}, "SIGLIP_CUBLAS", [&] {
                       RestoreDefaultGemm restore;
                       sc::setGemmSelection(kCublasGemm.selection);
                       sc::sigmoidLoss(request(dx, dy, sc::DType::Float32),
                                       {static_cast<float*>(gradX.data()), static_cast<float*>(gradY.data())});
                     }});
    cases.push_back({"cuBLAS required for GEMM1 (SIGLIP_GEMM1=cublas) but not loadable, forward only",
                     {ErrorKind::Internal}, "SIGLIP_GEMM1", [&] {
                       RestoreDefaultGemm restore;
                       sc::setGemmSelection(kCublasGemm1.selection);
                       sc::sigmoidLoss(request(dx, dy, sc::DType::Float32), {});
                     }});
  }

  for (const BadCase& bad : cases) {
    std::string verdict;
    bool ok = false;
    try {
      bad.body();
      verdict = "did not throw";
    } catch (const Error& e) {
      const bool kindOk = std::find(bad.kinds.begin(), bad.kinds.end(), e.kind()) != bad.kinds.end();
      const bool argOk = bad.argument.empty() || e.argument() == bad.argument;
      ok = kindOk && argOk;
      verdict = std::string(kindName(e.kind())) + " (" + e.argument() + "): " + e.what();
      if (!ok) verdict = "expected " + std::string(kindName(bad.kinds.front())) +
                         (bad.argument.empty() ? "" : " naming " + bad.argument) + ", got " + verdict;
      else if (e.kind() != bad.kinds.front())
        verdict += "  [accepted; " + std::string(kindName(bad.kinds.front())) + " would be more precise]";
    } catch (const std::exception& e) {
      verdict = std::string("threw a non-siglip exception: ") + e.what();
    }
    report(ok, "bad-request " + bad.name + ": " + verdict);
    std::string why;
    if (!contextHealthy(&why)) {
      contextLost = true;
      report(false, "CUDA context lost after the bad request above (" + why + ")");
      return;
    }
  }

  // After all that, an ordinary call still works and agrees with the reference.
  try {
    LossRequest host;
    host.image = {x.data(), 4, 3};
    host.text = {y.data(), 4, 3};
    host.logitScale = std::log(10.0);
    host.logitBias = -10;
    const LossResult ref = referenceSigmoidLoss(host, {});
    sc::CudaLossRequest r = request(dx, dy, sc::DType::Float32);
    r.precision = sc::Precision::FP32;
    const LossResult got = sc::sigmoidLoss(r, {static_cast<float*>(gradX.data()), static_cast<float*>(gradY.data())});
    const double e = std::fabs(got.loss - ref.loss) / std::fabs(ref.loss);
    char buffer[160];
    std::snprintf(buffer, sizeof buffer, "after the bad requests, a valid call: loss %.8g (ref %.8g, error %.1e)", got.loss,
                  ref.loss, e);
    report(e <= 1e-5, buffer);
  } catch (const std::exception& e) {
    report(false, std::string("after the bad requests, a valid call threw: ") + e.what());
  }
}

// ---- --reference-only: the CPU half, no GPU ----------------------------------------------

// The lines of a multi-line message joined by " | ", their indentation dropped.
std::string oneLine(const std::string& text) {
  std::string out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    const size_t start = line.find_first_not_of(' ');
    if (start != std::string::npos) out += (out.empty() ? "" : " | ") + line.substr(start);
  }
  return out;
}

// The cuBLAS loader's failure paths (host code, no GPU): a missing file, a folder without the
// library, a file that is not one; then what this process's cuBLAS and GEMM paths are.
void checkCublasLoader() {
  std::string error;
  const std::string missing = "/nonexistent/siglip/libcublas.so.99";
  bool loaded = sc::loadCublas(missing, &error) != nullptr;
  report(!loaded && error.find(missing) != std::string::npos, "cuBLAS loader, missing file: " + oneLine(error));
  char dir[] = "/tmp/siglip_cublas_check_XXXXXX";
  if (!mkdtemp(dir)) {
    report(false, "cuBLAS loader: mkdtemp failed");
    return;
  }
  error.clear();
  loaded = sc::loadCublas(dir, &error) != nullptr;
  report(!loaded && error.find("no libcublas.so* there") != std::string::npos,
         "cuBLAS loader, folder without it: " + oneLine(error));
  const std::string junk = std::string(dir) + "/libcublas.so.99";
  if (FILE* f = std::fopen(junk.c_str(), "w")) {
    std::fputs("not a shared library\n", f);
    std::fclose(f);
  }
  error.clear();
  loaded = sc::loadCublas(dir, &error) != nullptr;
  report(!loaded && error.find(junk) != std::string::npos,
         "cuBLAS loader, a file that is not a library: " + oneLine(error));
  unlink(junk.c_str());
  rmdir(dir);

  // This process: either outcome is right here; the backend's report must agree with it.
  std::string why;
  const sc::CublasLibrary* lib = sc::processCublas(&why);
  const sc::GemmPathInfo info = sc::gemmPathInfo();
  bool consistent = true;
  try {
    const sc::GemmSelection selection = sc::gemmSelection();
    const bool gemm1OnCublas = selection.forward == sc::ForwardGemm::Cublas;
    consistent = info.forward == (gemm1OnCublas ? "cublas" : "tile") && info.overlap == selection.overlap;
    // Without cuBLAS, SIGLIP_GEMM1=cublas must say that calls will throw.
    if (gemm1OnCublas && !lib) consistent = consistent && info.reason.find("SIGLIP_GEMM1=cublas, but") != std::string::npos;
    if (selection.backward == sc::BackwardGemm::Auto)
      consistent = consistent && (lib ? info.backward == "cublas" && info.cublasLibrary == lib->path && info.reason.empty()
                                      : info.backward == "tile" && !info.reason.empty());
  } catch (const Error& e) {
    // A bad SIGLIP_CUBLAS / SIGLIP_TILE_GEMM / SIGLIP_GEMM1 / SIGLIP_GEMM_OVERLAP.
    consistent = info.forward == "tile" && info.backward == "tile" && !info.overlap && info.reason == e.what();
  }
  report(consistent, "GEMM paths here: forward " + info.forward + ", backward " + info.backward + ", tile " + info.tile +
                         ", overlap " + (info.overlap ? "on" : "off") +
                         (lib ? ", cuBLAS " + lib->path + " (" + lib->version + ")" : "") +
                         (info.reason.empty() ? "" : "; reason: " + oneLine(info.reason)));
}

int referenceOnly(uint64_t seed, const std::string& filter, int hardwareThreads) {
  checkCublasLoader();
  // Rounding self-checks first: the reduced-precision references rest on them.
  struct Probe {
    float in;
    Rounding r;
    float want;
  };
  const Probe probes[] = {
      {1.0f + 1.0f / 2048, Rounding::Tf32, 1.0f + 1.0f / 1024},       // tie → away from zero
      {-(1.0f + 1.0f / 2048), Rounding::Tf32, -(1.0f + 1.0f / 1024)}, // same, negative
      {1.0f + 1.0f / 4096, Rounding::Tf32, 1.0f},                     // below half → down
      {1.0f + 3.0f / 1024 + 1.0f / 8192, Rounding::Tf32, 1.0f + 3.0f / 1024},
      {1.0f + 1.0f / 256, Rounding::BFloat16, 1.0f},                  // bf16 tie → even
      {1.0f + 3.0f / 256, Rounding::BFloat16, 1.0f + 4.0f / 256},     // tie → even (up)
      {1.0f + 1.0f / 2048, Rounding::Float16, 1.0f},                  // fp16 tie → even
      {70000.0f, Rounding::Float16, std::numeric_limits<float>::infinity()},
  };
  for (const Probe& p : probes) {
    const float got = roundTo(p.in, p.r);
    char buffer[160];
    std::snprintf(buffer, sizeof buffer, "rounding %.10g (mode %d) -> %.10g, expected %.10g", p.in, int(p.r), got, p.want);
    report(got == p.want, buffer);
  }
  for (const Case& c : buildCases(seed)) {
    const std::string label = std::string(c.kind == LossKind::Sigmoid ? "sigmoid " : "softmax ") + c.name;
    if (!matchesFilter(label, filter)) continue;
    const auto start = Clock::now();
    const Data data = makeData(c);
    const double dataSeconds = secondsSince(start);
    const std::vector<Rounding> roundings = roundingsFor(c.kind);
    const int scaleThreads = std::max(1, hardwareThreads / int(roundings.size()));
    std::vector<std::future<Reference>> pending;
    for (Rounding r : roundings)
      pending.push_back(std::async(std::launch::async, [&, r] { return computeReference(c, data, r, scaleThreads); }));
    bool ok = true;
    std::string losses;
    for (auto& f : pending) {
      const Reference ref = f.get();
      ok = ok && ref.error.empty() && std::isfinite(ref.result.loss);
      char buffer[96];
      std::snprintf(buffer, sizeof buffer, " %.6g", ref.result.loss);
      losses += ref.error.empty() ? buffer : " threw: " + ref.error;
    }
    char buffer[128];
    std::snprintf(buffer, sizeof buffer, "  data %.2f s, references %.2f s; loss by rounding none/tf32/bf16/fp16:",
                  dataSeconds, secondsSince(start) - dataSeconds);
    report(ok, caseLabel(c, "ref", "all") + buffer + losses);
  }
  std::printf("siglip_cuda_check --reference-only: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}

// ---- timing -------------------------------------------------------------------------------

struct TimingRow {
  std::string name;  // "fused fwd+bwd", …
  std::string pass;  // "fwd+bwd" | "fwd" (which floor it is compared with)
  int64_t n = 0, d = 0;
  std::string dtype;
  std::string status = "ok";  // ok | skipped | error
  std::string note;
  double ms = NAN, msMin = NAN, hostMs = NAN;
  int runs = 0;
  double flops = 0;
  double extraBytes = NAN;
  double loss = NAN;
  double floorMs = NAN;
};

std::string jsonEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\', out += ch;
    else if (ch == '\n') out += "\\n";
    else if (static_cast<unsigned char>(ch) < 0x20) out += ' ';
    else out += ch;
  }
  return out;
}

std::string jsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

struct TimingContext {
  int runs = 5, warmup = 1;
  double caseBudgetSeconds = 6, deadlineSeconds = 0;
  Clock::time_point start = Clock::now();
  std::string jsonPath;
  std::string header;  // the JSON fields describing the machine and the arguments
  std::vector<TimingRow> rows;
  cudaEvent_t begin = nullptr, end = nullptr;
};

double floorFor(const TimingContext& tc, const TimingRow& row) {
  for (const auto& r : tc.rows)
    if (r.name.rfind("cublas floor", 0) == 0 && r.pass == row.pass && r.n == row.n && r.d == row.d &&
        r.dtype == row.dtype && r.status == "ok")
      return r.ms;
  return NAN;
}

void writeJson(const TimingContext& tc) {
  if (tc.jsonPath.empty()) return;
  std::string out = "{\n" + tc.header + "  \"elapsed_s\": " + jsonNumber(secondsSince(tc.start)) + ",\n  \"cases\": [\n";
  for (size_t k = 0; k < tc.rows.size(); ++k) {
    const TimingRow& r = tc.rows[k];
    const double tflops = r.flops / (r.ms * 1e-3) * 1e-12;
    out += "    {\"case\": \"" + jsonEscape(r.name) + "\", \"pass\": \"" + r.pass + "\", \"n\": " + std::to_string(r.n) +
           ", \"d\": " + std::to_string(r.d) + ", \"dtype\": \"" + r.dtype + "\", \"status\": \"" + r.status +
           "\", \"ms\": " + jsonNumber(r.ms) + ", \"ms_min\": " + jsonNumber(r.msMin) +
           ", \"host_ms\": " + jsonNumber(r.hostMs) + ", \"runs\": " + std::to_string(r.runs) +
           ", \"flops\": " + jsonNumber(r.flops) + ", \"tflops\": " + jsonNumber(tflops) +
           ", \"peak_extra_mb\": " + jsonNumber(r.extraBytes / (1 << 20)) + ", \"floor_ms\": " + jsonNumber(r.floorMs) +
           ", \"ratio_floor\": " + jsonNumber(r.ms / r.floorMs) + ", \"loss\": " + jsonNumber(r.loss) +
           ", \"note\": \"" + jsonEscape(r.note) + "\"}" + (k + 1 < tc.rows.size() ? ",\n" : "\n");
  }
  out += "  ]\n}\n";
  const std::string tmp = tc.jsonPath + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fputs(out.c_str(), f);
    std::fclose(f);
    std::rename(tmp.c_str(), tc.jsonPath.c_str());
  } else {
    std::fprintf(stderr, "siglip_cuda_check: cannot write %s\n", tc.jsonPath.c_str());
  }
}

void printRow(const TimingRow& r) {
  const double tflops = r.flops / (r.ms * 1e-3) * 1e-12;
  if (r.status != "ok") {
    std::printf("%-40s %6lld %-5s %10s %8s %10s %8s   %s: %s\n", r.name.c_str(), (long long)r.n, r.dtype.c_str(), "-", "-",
                "-", "-", r.status.c_str(), r.note.c_str());
  } else {
    char ratio[32] = "-";
    if (std::isfinite(r.floorMs)) std::snprintf(ratio, sizeof ratio, "%.2f", r.ms / r.floorMs);
    std::printf("%-40s %6lld %-5s %10.3f %8.1f %10.1f %8s   runs=%d min=%.3f host=%.3f%s%s\n", r.name.c_str(),
                (long long)r.n, r.dtype.c_str(), r.ms, tflops, r.extraBytes / (1 << 20), ratio, r.runs, r.msMin,
                r.hostMs, r.note.empty() ? "" : "  ", r.note.c_str());
  }
  std::fflush(stdout);
}

void printHeader() {
  std::printf("%-40s %6s %-5s %10s %8s %10s %8s\n", "case", "N", "dtype", "time ms", "TFLOP/s", "extra MB", "x floor");
}

// Records a row that was not run, and why.
void skipRow(TimingContext& tc, TimingRow row, const std::string& why) {
  row.status = "skipped";
  row.note = why;
  row.floorMs = floorFor(tc, row);
  tc.rows.push_back(row);
  printRow(row);
  writeJson(tc);
}

// Times `body` (which must leave the GPU idle or enqueue on the legacy stream): warm-up
// calls, then up to tc.runs timed calls within the case budget, CUDA events on the legacy
// stream around each call (for the library's synchronous calls this is the call's whole
// duration, validation and allocation included); median and min. Peak device memory the
// library allocated beyond what existed before (inputs and gradients) is recorded too.
void timeCase(TimingContext& tc, TimingRow row, const std::function<double()>& body, double extraBytesOverride = NAN) {
  if (tc.deadlineSeconds > 0 && secondsSince(tc.start) > tc.deadlineSeconds) {
    row.status = "skipped";
    row.note = "deadline (--deadline-s) reached before this case";
  } else {
    try {
      sc::resetPeakAllocatedBytes();
      const size_t base = sc::allocatedBytes();
      auto timedCall = [&](double* hostMs) {
        cudaCheck(cudaEventRecord(tc.begin, 0), "cudaEventRecord");
        const auto t0 = Clock::now();
        row.loss = body();
        cudaCheck(cudaEventRecord(tc.end, 0), "cudaEventRecord");
        cudaCheck(cudaEventSynchronize(tc.end), "cudaEventSynchronize");
        if (hostMs) *hostMs = secondsSince(t0) * 1e3;
        float ms = 0;
        cudaCheck(cudaEventElapsedTime(&ms, tc.begin, tc.end), "cudaEventElapsedTime");
        return double(ms);
      };
      double warmMs = 0;
      for (int w = 0; w < tc.warmup; ++w) warmMs = timedCall(nullptr);
      int runs = tc.runs;
      if (warmMs > 0) runs = int(std::max(1.0, std::min(double(tc.runs), tc.caseBudgetSeconds * 1e3 / warmMs)));
      std::vector<double> ms, host;
      for (int k = 0; k < runs; ++k) {
        double h = 0;
        ms.push_back(timedCall(&h));
        host.push_back(h);
      }
      std::sort(ms.begin(), ms.end());
      std::sort(host.begin(), host.end());
      auto median = [](const std::vector<double>& v) {
        return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
      };
      row.ms = median(ms);
      row.msMin = ms.front();
      row.hostMs = median(host);
      row.runs = runs;
      row.extraBytes = std::isfinite(extraBytesOverride) ? extraBytesOverride : double(sc::peakAllocatedBytes() - base);
      if (runs < tc.runs) row.note += (row.note.empty() ? "" : "; ") + std::string("runs cut to fit --case-budget-s");
    } catch (const Error& e) {
      row.status = "error";
      row.note = std::string(kindName(e.kind())) + ": " + e.what();
    } catch (const std::exception& e) {
      row.status = "error";
      row.note = e.what();
    }
    std::string why;
    if (!contextHealthy(&why)) {
      row.status = "error";
      row.note += " [CUDA context lost: " + why + "]";
      contextLost = true;
    }
  }
  row.floorMs = floorFor(tc, row);
  if (row.status == "error") ++failures;
  tc.rows.push_back(row);
  printRow(row);
  writeJson(tc);
}

// Seeded unit rows, quickly (splitmix64 uniforms; the timing does not depend on the values).
std::vector<float> fastUnitRows(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> v(size_t(rows * cols));
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < rows; ++i) {
    float* row = &v[size_t(i * cols)];
    double sq = 0;
    for (int64_t k = 0; k < cols; ++k) {
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      row[k] = float(double(z >> 11) * (2.0 / 9007199254740992.0) - 1.0);
      sq += double(row[k]) * row[k];
    }
    const float f = float(1 / std::sqrt(sq));
    for (int64_t k = 0; k < cols; ++k) row[k] *= f;
  }
  return v;
}

sc::CublasDataType cublasType(sc::DType dtype) {
  return dtype == sc::DType::Float32    ? sc::CublasDataType::R32F
         : dtype == sc::DType::BFloat16 ? sc::CublasDataType::R16BF
                                        : sc::CublasDataType::R16F;
}

// The floor's own cuBLAS handle (the process's library, as the backend uses), on the legacy
// stream where the timing events are recorded.
struct FloorCublas {
  const sc::CublasLibrary* lib = nullptr;
  sc::CublasHandle handle = nullptr;
  std::string note;  // the library and version, or why there is no floor
  FloorCublas() {
    std::string why;
    lib = sc::processCublas(&why);
    if (!lib) {
      note = why;
      return;
    }
    const sc::CublasStatus status = lib->create(&handle);
    if (status != 0) {
      handle = nullptr;
      note = lib->path + ": cublasCreate_v2 returned " + lib->statusText(status);
      return;
    }
    if (lib->setStream(handle, nullptr) != 0) std::printf("cublasSetStream_v2(NULL) failed; continuing with the handle's default\n");
    note = lib->path + " (version " + lib->version + ")";
  }
  ~FloorCublas() {
    if (handle) lib->destroy(handle);
  }
  FloorCublas(const FloorCublas&) = delete;
  FloorCublas& operator=(const FloorCublas&) = delete;
  bool ok() const { return handle != nullptr; }
};

// One small fused fwd+bwd before any timing on the default path and, when cuBLAS loads, on
// the overlapped cublas-gemm1 path (which holds two handles at once: GEMM1's and the second
// stream's), so that the cuBLAS handles and their workspaces (kept for the process) exist in
// every row's "before": no single row's extra memory includes them.
void warmUpCublasHandles() {
  constexpr int64_t kRows = 256, kCols = 64;
  const auto host = fastUnitRows(kRows, kCols, 3);
  const sc::DeviceBuffer x = uploadBytes(host.data(), host.size() * sizeof(float));
  sc::DeviceBuffer gx(0, host.size() * sizeof(float)), gy(0, host.size() * sizeof(float));
  sc::CudaLossRequest req;
  req.image = {x.data(), kRows, kCols, sc::DType::Float32, 0};
  req.text = req.image;
  const sc::CudaGradientOutputs grads{static_cast<float*>(gx.data()), static_cast<float*>(gy.data())};
  if (cublasLoads()) {
    sc::setGemmSelection(kCublasGemm1Overlap.selection);
    sc::sigmoidLoss(req, grads);
  }
  sc::setGemmSelection(kDefaultGemm.selection);
  sc::sigmoidLoss(req, grads);
}

int timing(TimingContext& tc, const std::vector<int64_t>& ns, int64_t d, const std::vector<std::string>& dtypes,
           const FloorCublas& cublas, int64_t simpleMaxN) {
  cudaCheck(cudaEventCreate(&tc.begin), "cudaEventCreate");
  cudaCheck(cudaEventCreate(&tc.end), "cudaEventCreate");
  warmUpCublasHandles();
  printHeader();
  constexpr int64_t kFloorChunk = 8192;  // rows of X·Yᵀ per cuBLAS call: memory stays bounded
  for (const std::string& label : dtypes) {
    const Config* cfg = configByLabel(label);
    if (!cfg) {
      std::printf("unknown dtype '%s' (expected fp32, tf32, bf16 or fp16): skipped\n", label.c_str());
      ++failures;
      continue;
    }
    for (int64_t n : ns) {
      if (contextLost) break;
      const double gemm = 2.0 * double(n) * double(n) * double(d);
      auto row = [&](const std::string& name, const std::string& pass) {
        TimingRow r;
        r.name = name;
        r.pass = pass;
        r.n = n;
        r.d = d;
        r.dtype = label;
        r.flops = pass == "fwd" ? gemm : 3 * gemm;
        return r;
      };
      sc::DeviceBuffer x, y, gx, gy;
      try {
        const auto hx = fastUnitRows(n, d, 1), hy = fastUnitRows(n, d, 2);
        const auto bx = encode(hx, cfg->dtype), by = encode(hy, cfg->dtype);
        x = uploadBytes(bx.data(), bx.size());
        y = uploadBytes(by.data(), by.size());
        gx = sc::DeviceBuffer(0, size_t(n) * size_t(d) * sizeof(float));
        gy = sc::DeviceBuffer(0, size_t(n) * size_t(d) * sizeof(float));
      } catch (const std::exception& e) {
        TimingRow r = row("inputs", "fwd+bwd");
        r.status = "error";
        r.note = std::string("could not create the inputs and gradients: ") + e.what();
        tc.rows.push_back(r);
        printRow(r);
        writeJson(tc);
        ++failures;
        continue;
      }
      const size_t elem = sc::dtypeSize(cfg->dtype);

      // cuBLAS floor: S = X·Yᵀ in chunks of kFloorChunk rows (one reused chunk buffer, G's
      // dtype), then ∂X_chunk = G_chunk·Y and ∂Y += G_chunkᵀ·X_chunk: the three GEMMs of the
      // loss at its precision, with nothing else.
      for (const std::string pass : {"fwd+bwd", "fwd"}) {
        TimingRow r = row("cublas floor " + pass, pass);
        const int64_t chunk = std::min(n, kFloorChunk);
        if (!cublas.ok()) {
          skipRow(tc, r, "no cuBLAS (see above)");
          continue;
        }
        if (n > kFloorChunk) r.note = "chunked: " + std::to_string(kFloorChunk) + "-row blocks of X·Yᵀ reuse one buffer";
        const size_t chunkBytes = size_t(chunk) * size_t(n) * elem;
        std::unique_ptr<sc::DeviceBuffer> buffer;
        try {
          buffer = std::make_unique<sc::DeviceBuffer>(0, chunkBytes);
        } catch (const std::exception& e) {
          r.status = "error";
          r.note = std::string("chunk buffer: ") + e.what();
          tc.rows.push_back(r);
          printRow(r);
          writeJson(tc);
          ++failures;
          continue;
        }
        const sc::CublasDataType type = cublasType(cfg->dtype);
        const sc::CublasCompute compute = cfg->dtype != sc::DType::Float32       ? sc::CublasCompute::F32
                                          : cfg->precision == sc::Precision::TF32 ? sc::CublasCompute::F32FastTf32
                                                                                  : sc::CublasCompute::F32Pedantic;
        const bool backward = pass == "fwd+bwd";
        const float alpha = float(1.0 / double(n));
        timeCase(
            tc, r,
            [&] {
              for (int64_t r0 = 0; r0 < n; r0 += chunk) {
                const int rows = int(std::min(chunk, n - r0));
                const char* xr = static_cast<const char*>(x.data()) + size_t(r0) * size_t(d) * elem;
                void* g = buffer->data();
                const sc::CublasLibrary& lib = *cublas.lib;
                int status = lib.gemmABt(cublas.handle, rows, int(n), int(d), xr, int(d), y.data(), int(d), g, int(n),
                                         type, type, compute, 1.0f, 0.0f);
                if (status == 0 && backward)
                  status = lib.gemmAB(cublas.handle, rows, int(d), int(n), g, int(n), y.data(), int(d),
                                      static_cast<float*>(gx.data()) + size_t(r0) * size_t(d), int(d), type,
                                      sc::CublasDataType::R32F, compute, alpha, 0.0f);
                if (status == 0 && backward)
                  status = lib.gemmAtB(cublas.handle, int(n), int(d), rows, g, int(n), xr, int(d), gy.data(), int(d),
                                       type, sc::CublasDataType::R32F, compute, alpha, r0 == 0 ? 0.0f : 1.0f);
                if (status != 0) throw std::runtime_error("cublasGemmEx returned " + lib.statusText(status));
              }
              return NAN;
            },
            double(chunkBytes));
      }

      sc::CudaLossRequest req;
      req.image = {x.data(), n, d, cfg->dtype, 0};
      req.text = {y.data(), n, d, cfg->dtype, 0};
      req.logitScale = std::log(10.0);
      req.logitBias = -10;
      req.precision = cfg->precision;
      const sc::CudaGradientOutputs grads{static_cast<float*>(gx.data()), static_cast<float*>(gy.data())};

      // The fused loss on each GEMM path: the default (backward GEMMs on cuBLAS when it loads),
      // GEMM1 on cuBLAS too (then the epilogue pass; in the default pieces and in 4096² ones),
      // each of those three also overlapped (the backward GEMMs on a second stream: right after
      // its one-stream twin, so that the pair is timed together even where the deadline cuts
      // the rest), then every GEMM on the tile GEMM, pipelined and simple; the simple main
      // loop, the slow one, only up to --simple-max-n. fwd runs X·Yᵀ (and the pass) alone.
      req.method = Method::Fused;
      const bool simpleHere = simpleMaxN <= 0 || n <= simpleMaxN;
      const std::string tooBig = "N > --simple-max-n " + std::to_string(simpleMaxN);
      auto fused = [&](const std::string& name, const std::string& pass, const GemmVariant& gemm, const std::string& note) {
        TimingRow r = row(name, pass);
        r.note = note;
        sc::setGemmSelection(gemm.selection);
        const sc::CudaGradientOutputs out = pass == "fwd" ? sc::CudaGradientOutputs{} : grads;
        timeCase(tc, r, [&] { return sc::sigmoidLoss(req, out).loss; });
        sc::setGemmSelection(kDefaultGemm.selection);
      };
      sc::setGemmSelection(kDefaultGemm.selection);
      const sc::GemmPathInfo paths = sc::gemmPathInfo();
      const bool onCublas = paths.backward == "cublas";
      const std::string backwardNote = onCublas ? "backward GEMMs: cuBLAS" : "backward GEMMs: tile (GEMM paths, above, says why)";
      fused("fused fwd+bwd", "fwd+bwd", kDefaultGemm, backwardNote);
      fused("fused fwd+bwd overlap", "fwd+bwd", kDefaultOverlap, backwardNote + ", on a second stream");
      const std::string noCublas = "no cuBLAS (GEMM paths, above, says why)";
      const bool gemm1Piecewise = n > kCublasGemm1.selection.cublasGemm1Piece;
      if (cublasLoads()) {
        const std::string pieces = std::to_string(kCublasGemm1.selection.cublasGemm1Piece) + "² pieces";
        fused("fused fwd+bwd cublas-gemm1", "fwd+bwd", kCublasGemm1, "GEMM1 and backward on cuBLAS, " + pieces);
        fused("fused fwd+bwd cublas-gemm1 overlap", "fwd+bwd", kCublasGemm1Overlap, pieces + ", backward on a second stream");
        if (gemm1Piecewise) {
          fused("fused fwd+bwd cublas-gemm1 p4096", "fwd+bwd", kCublasGemm1Wide, "4096² pieces");
          fused("fused fwd+bwd cublas-gemm1 p4096 overlap", "fwd+bwd", kCublasGemm1WideOverlap,
                "4096² pieces, backward on a second stream");
        }
      } else {
        skipRow(tc, row("fused fwd+bwd cublas-gemm1", "fwd+bwd"), noCublas);
        skipRow(tc, row("fused fwd+bwd cublas-gemm1 overlap", "fwd+bwd"), noCublas);
        if (gemm1Piecewise) {
          skipRow(tc, row("fused fwd+bwd cublas-gemm1 p4096", "fwd+bwd"), noCublas);
          skipRow(tc, row("fused fwd+bwd cublas-gemm1 p4096 overlap", "fwd+bwd"), noCublas);
        }
      }
      if (onCublas && sc::gemmPathInfo().backward == "cublas")
        fused("fused fwd+bwd pipelined", "fwd+bwd", kPipelinedGemm, "");
      else
        skipRow(tc, row("fused fwd+bwd pipelined", "fwd+bwd"), "the same path as fused fwd+bwd here (no cuBLAS)");
      if (simpleHere)
        fused("fused fwd+bwd simple", "fwd+bwd", kSimpleGemm, "");
      else
        skipRow(tc, row("fused fwd+bwd simple", "fwd+bwd"), tooBig);
      fused("fused fwd", "fwd", kDefaultGemm, "");
      if (cublasLoads())
        fused("fused fwd cublas-gemm1", "fwd", kCublasGemm1, "");
      else
        skipRow(tc, row("fused fwd cublas-gemm1", "fwd"), noCublas);
      if (simpleHere)
        fused("fused fwd simple", "fwd", kSimpleGemm, "");
      else
        skipRow(tc, row("fused fwd simple", "fwd"), tooBig);
      {
        // The chunked softmax: O(N) statistics, never N×N. Four GEMMs of work (S is formed in
        // both passes); TFLOP/s and x floor count the same three as every fwd+bwd row.
        TimingRow r = row("chunked softmax fwd+bwd", "fwd+bwd");
        r.note = "4 GEMMs of work (S twice); TFLOP/s counts 3";
        sc::CudaLossRequest q = req;
        q.method = Method::Chunked;
        q.logitScale = std::log(1 / 0.07);
        q.logitBias = 0;
        timeCase(tc, r, [&] { return sc::softmaxLoss(q, grads).loss; });
      }

      // The naive paths hold S (N×N float32) and G (N×N, input dtype) at once.
      size_t freeBytes = 0, totalBytes = 0;
      cudaMemGetInfo(&freeBytes, &totalBytes);
      const double need = double(n) * double(n) * double(4 + elem) + double(n) * 64;
      const double room = double(freeBytes) - double(size_t(2) << 30);
      char fitNote[160];
      std::snprintf(fitNote, sizeof fitNote, "N×N buffers need %.1f GiB, %.1f GiB free (2 GiB kept back)", need / (1 << 30),
                    double(freeBytes) / (1 << 30));
      for (const bool softmax : {false, true}) {
        TimingRow r = row(softmax ? "naive softmax fwd+bwd" : "naive sigmoid fwd+bwd", "fwd+bwd");
        if (need > room) {
          skipRow(tc, r, fitNote);
          continue;
        }
        sc::CudaLossRequest q = req;
        q.method = Method::Naive;
        if (softmax) {
          q.logitScale = std::log(1 / 0.07);
          q.logitBias = 0;
          timeCase(tc, r, [&] { return sc::softmaxLoss(q, grads).loss; });
        } else {
          timeCase(tc, r, [&] { return sc::sigmoidLoss(q, grads).loss; });
        }
      }
    }
  }
  cudaEventDestroy(tc.begin);
  cudaEventDestroy(tc.end);
  std::printf("\nsiglip_cuda_check --timing: %zu cases, %d not ok, %.1f s\n", tc.rows.size(), failures,
              secondsSince(tc.start));
  if (!tc.jsonPath.empty()) std::printf("JSON: %s\n", tc.jsonPath.c_str());
  return failures ? 1 : 0;
}

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --correctness [--filter TEXT[|TEXT...]] [--gemm PATH[,PATH...]] [--seed N] [--cublas PATH]\n"
               "                        [--shapes NxMxD[i][,...]] [--precisions fp32,tf32,bf16,fp16]\n"
               "       %s --timing [--n 4096,16384,65536] [--d 768] [--dtypes bf16,tf32] [--runs 5] [--warmup 1]\n"
               "                   [--case-budget-s 6] [--deadline-s 0] [--simple-max-n 0] [--cublas PATH] [--json FILE]\n"
               "       %s --reference-only [--filter TEXT[|TEXT...]] [--seed N]   (CPU only)\n"
               "--cublas PATH: a libcublas.so file or its folder (sets SIGLIP_CUBLAS_LIBRARY); --simple-max-n N: time the\n"
               "simple tile GEMM only up to N (0: always); --gemm: only the runs on these GEMM paths (cublas, pipelined,\n"
               "simple, cublas-gemm1, cublas-gemm1-p128, default: the naive baselines'; each but simple and default\n"
               "also as PATH-overlap, the fused sigmoid's overlapped schedule)\n",
               argv0, argv0, argv0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode, filter, jsonPath, cublasPath, gemmList, dtypeList = "bf16,tf32", nList = "4096,16384,65536";
  std::string shapeList, precisionList;
  uint64_t seed = 20240611;
  int64_t d = 768, simpleMaxN = 0;
  TimingContext tc;
  for (int k = 1; k < argc; ++k) {
    const std::string arg = argv[k];
    auto value = [&]() -> std::string {
      if (k + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        usage(argv[0]);
        std::exit(3);
      }
      return argv[++k];
    };
    if (arg == "--correctness" || arg == "--timing" || arg == "--reference-only") mode = arg.substr(2);
    else if (arg == "--filter") filter = value();
    else if (arg == "--gemm") gemmList = value();
    else if (arg == "--shapes") shapeList = value();
    else if (arg == "--precisions") precisionList = value();
    else if (arg == "--seed") seed = std::strtoull(value().c_str(), nullptr, 10);
    else if (arg == "--n") nList = value();
    else if (arg == "--d") d = std::atoll(value().c_str());
    else if (arg == "--dtypes") dtypeList = value();
    else if (arg == "--runs") tc.runs = std::max(1, std::atoi(value().c_str()));
    else if (arg == "--warmup") tc.warmup = std::max(0, std::atoi(value().c_str()));
    else if (arg == "--case-budget-s") tc.caseBudgetSeconds = std::atof(value().c_str());
    else if (arg == "--deadline-s") tc.deadlineSeconds = std::atof(value().c_str());
    else if (arg == "--json") jsonPath = value();
    else if (arg == "--cublas") cublasPath = value();
    else if (arg == "--simple-max-n") simpleMaxN = std::atoll(value().c_str());
    else {
      std::fprintf(stderr, "unknown argument: %s\n", arg.c_str());
      usage(argv[0]);
      return 3;
    }
  }
  if (mode.empty()) {
    usage(argv[0]);
    return 3;
  }
  // Before anything loads cuBLAS: the backend and the floor share the process's library.
  if (!cublasPath.empty()) setenv("SIGLIP_CUBLAS_LIBRARY", cublasPath.c_str(), 1);
  const int hardwareThreads = std::max(1, int(std::thread::hardware_concurrency()));
  if (mode == "reference-only") return referenceOnly(seed, filter, hardwareThreads);

  std::string reason;
  const int devices = sc::deviceCount(&reason);
  if (devices <= 0) {
    std::printf("no CUDA device: %s\n", reason.empty() ? "none found" : reason.c_str());
    return 2;
  }
  sc::DeviceInfo info;
  try {
    info = sc::deviceInfo(0);
  } catch (const std::exception& e) {
    std::printf("no CUDA device: device 0 unusable: %s\n", e.what());
    return 2;
  }
  std::printf("siglip_cuda_check --%s: %s (sm_%d%d, %.1f GiB, %.1f GiB free), %d device(s), driver %d, runtime %d, "
              "%d host threads\n",
              mode.c_str(), info.name.c_str(), info.computeMajor, info.computeMinor,
              double(info.totalMemory) / (1 << 30), double(info.freeMemory) / (1 << 30), devices, sc::driverVersion(),
              sc::runtimeVersion(), hardwareThreads);
  const sc::GemmPathInfo paths = sc::gemmPathInfo();
  std::printf("GEMM paths by default: forward %s, backward %s, tile %s, overlap %s%s%s%s\n", paths.forward.c_str(),
              paths.backward.c_str(), paths.tile.c_str(), paths.overlap ? "on" : "off",
              paths.cublasLibrary.empty() ? "" : (", cuBLAS " + paths.cublasLibrary + " " + paths.cublasVersion).c_str(),
              paths.reason.empty() ? "" : "; ", paths.reason.c_str());
  std::fflush(stdout);

  if (mode == "correctness") {
    const auto start = Clock::now();
    std::printf("tolerances (relative L2): fp32 loss 1e-5 grads 1e-4; tf32 5e-3; bf16/fp16 2e-2; ds/db relative to "
                "max(|ref|, 1e-3*sum|terms|); references on the rounded inputs\n");
    const std::vector<std::string> gemmPaths = parseWords(gemmList);
    for (const std::string& g : gemmPaths) {
      // A listed path no run takes here fails, rather than passing with nothing checked.
      const bool known = std::any_of(std::begin(kCheckedVariants), std::end(kCheckedVariants),
                                     [&](const GemmVariant* v) { return g == v->label; });
      if (!known) report(false, "--gemm " + g + ": no such GEMM path");
      else if (g.rfind("cublas", 0) == 0 && !cublasLoads()) report(false, "--gemm " + g + ": cuBLAS does not load here");
    }
    g_precisions = parseWords(precisionList);
    for (const std::string& p : g_precisions)
      if (!configByLabel(p)) report(false, "--precisions " + p + ": no such precision (fp32, tf32, bf16, fp16)");
    std::vector<Case> cases;
    if (shapeList.empty()) cases = buildCases(seed);
    else if (!shapeCases(shapeList, seed, &cases)) report(false, "--shapes " + shapeList + ": expected NxMxD[i][,...]");
    for (const Case& c : cases) {
      if (contextLost) break;
      const std::string label = std::string(c.kind == LossKind::Sigmoid ? "sigmoid " : "softmax ") + c.name;
      if (!matchesFilter(label, filter)) continue;
      try {
        checkCase(c, hardwareThreads, gemmPaths);
      } catch (const std::exception& e) {
        report(false, caseLabel(c, "-", "-") + "  threw outside a path: " + e.what());
      }
    }
    // With --shapes only the shapes run (not the workspace-reuse case nor the bad requests).
    if (!contextLost && shapeList.empty() && matchesFilter("sigmoid one workspace across calls", filter)) {
      try {
        checkWorkspaceReuse(gemmPaths);
      } catch (const std::exception& e) {
        report(false, std::string("one workspace across calls: setup threw: ") + e.what());
      }
    }
    if (!contextLost && shapeList.empty() && matchesFilter("bad-request", filter)) {
      try {
        checkBadRequests();
      } catch (const std::exception& e) {
        report(false, std::string("bad-request setup threw: ") + e.what());
      }
    }
    std::printf("siglip_cuda_check --correctness: %d checks, %d FAILED, %.1f s\n", checks, failures, secondsSince(start));
    return failures ? 1 : 0;
  }

  // --timing
  const std::vector<int64_t> ns = parseList(nList);
  const std::vector<std::string> dtypes = parseWords(dtypeList);
  if (ns.empty() || d <= 0 || dtypes.empty()) {
    usage(argv[0]);
    return 3;
  }
  tc.jsonPath = jsonPath;
  const FloorCublas cublas;
  if (cublas.ok())
    std::printf("cuBLAS: %s%s\n", cublas.note.c_str(), cublas.lib->ltPath.empty() ? "" : (", with " + cublas.lib->ltPath).c_str());
  else
    std::printf("cuBLAS unavailable, floor rows skipped: %s\n", cublas.note.c_str());
  std::printf("timing: median of up to %d runs after %d warm-up(s), at most ~%.0f s per case%s; TFLOP/s counts 2*N*N*D "
              "per GEMM (3 GEMMs fwd+bwd, 1 fwd); extra MB = peak device memory beyond inputs and gradients (and "
              "beyond the cuBLAS handles' workspaces, 4 or 32 MiB each, held for the process: one, or two for GEMM1 on "
              "cuBLAS overlapped)\n",
              tc.runs, tc.warmup, tc.caseBudgetSeconds,
              tc.deadlineSeconds > 0 ? (", no new case after " + std::to_string(int(tc.deadlineSeconds)) + " s").c_str() : "");
  tc.header = "  \"tool\": \"siglip_cuda_check --timing\",\n  \"device\": \"" + jsonEscape(info.name) +
              "\",\n  \"compute_capability\": \"" + std::to_string(info.computeMajor) + "." +
              std::to_string(info.computeMinor) + "\",\n  \"memory_gib\": " + jsonNumber(double(info.totalMemory) / (1 << 30)) +
              ",\n  \"driver\": " + std::to_string(sc::driverVersion()) + ",\n  \"runtime\": " +
              std::to_string(sc::runtimeVersion()) + ",\n  \"cublas\": \"" + jsonEscape(cublas.note) +
              "\",\n  \"cublas_ok\": " + (cublas.ok() ? "true" : "false") + ",\n  \"gemm_forward\": \"" +
              paths.forward + "\",\n  \"gemm_overlap\": " + (paths.overlap ? "true" : "false") + ",\n  \"gemm_backward\": \"" +
              paths.backward + "\",\n  \"gemm_tile\": \"" + paths.tile + "\",\n  \"gemm_reason\": \"" +
              jsonEscape(paths.reason) + "\",\n  \"d\": " + std::to_string(d) +
              ",\n  \"runs\": " + std::to_string(tc.runs) + ",\n  \"warmup\": " + std::to_string(tc.warmup) + ",\n";
  try {
    return timing(tc, ns, d, dtypes, cublas, simpleMaxN);
  } catch (const std::exception& e) {
    std::printf("siglip_cuda_check --timing: %s\n", e.what());
    writeJson(tc);
    return 1;
  }
}
