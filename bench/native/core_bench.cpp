// siglip_core_bench: the CPU core's speed without Node, in GFLOP/s.
//
//   gemm   cpu::gemmABt, C (M×N) = A (M×K) · Bᵀ: 2·M·N·K flops. The "floor" the fused loss
//          runs on; the fused loss cannot beat three of these.
//   fused  cpu::sigmoidLoss, Method::Fused, forward + backward: one GEMM for the logits and
//          two for ∂X, ∂Y, so 3 · 2·N·N·D flops (N = M, no ids).
//   naive  the same with Method::Naive (materialises N×N), when --naive is given.
//   chunk  with --softmax: cpu::softmaxLoss, Method::Chunked (the chunked CLIP loss), forward +
//          backward: S twice (once per pass) plus ∂X and ∂Y, so 4 · 2·N·N·D flops.
//   smnaiv with --softmax --naive: the softmax's Method::Naive, 3 GEMMs as the sigmoid's.
//   bfgemm with --bf16: cpu::gemmABtBf16, the gemm with bf16 inputs (float32 sums and out).
//   bf16   with --bf16: cpu::sigmoidLossBf16 on bf16 inputs (bits), forward + backward, 3 GEMMs.
//   bf16f  with --bf16: the same on float32 inputs rounded to bf16 as they are packed.
//
// Each is run once to warm up, then --runs times; the median is reported. GFLOP/s counts
// the GEMM work each method does (so chunk's 4 GEMMs against the others' 3): compare the
// times for the cost of the same loss. "cpu" is the median process CPU time per call (all
// threads; spin-waits count), steadier than wall time on a machine shared with other work.
//
//   siglip_core_bench [--gemm M N K] [--n N] [--d D] [--threads T] [--runs R] [--naive] [--softmax]
//                     [--bf16] [--only gemm|loss|bf16]   (bf16: only the bf16 loss on bf16 inputs)
// Defaults: --gemm 4096 4096 768, --n 8192 --d 768, --threads = hardware threads, --runs 5.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/loss_request.h"
#include "cpu/cpu_backend.h"

using namespace siglip;

namespace {

struct Timing {
  double median = 0, best = 0;
  double cpuMedian = 0;  // process CPU time per call (all threads): on a shared machine it moves
                         // less than wall time when other processes take the cores
};

double medianOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

Timing timeIt(int runs, const std::function<void()>& body) {
  body();  // warm-up: page in buffers, spin up the pool
  std::vector<double> seconds, cpuSeconds;
  for (int k = 0; k < runs; ++k) {
    const std::clock_t cpuStart = std::clock();
    const auto start = std::chrono::steady_clock::now();
    body();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    cpuSeconds.push_back(double(std::clock() - cpuStart) / CLOCKS_PER_SEC);
  }
  Timing t;
  t.best = *std::min_element(seconds.begin(), seconds.end());
  t.median = medianOf(seconds);
  t.cpuMedian = medianOf(cpuSeconds);
  return t;
}

std::vector<float> randomUnitRows(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> v(size_t(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    double sq = 0;
    for (int64_t k = 0; k < cols; ++k) {
      const float x = normal(rng);
      v[size_t(i * cols + k)] = x;
      sq += double(x) * x;
    }
    const float f = float(1 / std::sqrt(sq));
    for (int64_t k = 0; k < cols; ++k) v[size_t(i * cols + k)] *= f;
  }
  return v;
}

void report(const char* what, const std::string& shape, int threads, double flops, Timing t) {
  std::printf("%-6s %-22s threads=%-3d median %9.3f ms  best %9.3f ms  %8.1f GFLOP/s (median)  cpu %9.1f ms\n",
              what, shape.c_str(), threads, t.median * 1e3, t.best * 1e3, flops / t.median * 1e-9,
              t.cpuMedian * 1e3);
  std::fflush(stdout);
}

void benchLoss(LossKind kind, Method method, int64_t n, int64_t d, int threads, int runs) {
  const std::vector<float> x = randomUnitRows(n, d, 1), y = randomUnitRows(n, d, 2);
  std::vector<float> dx(x.size()), dy(y.size());
  LossRequest r;
  r.image = {x.data(), n, d};
  r.text = {y.data(), n, d};
  const bool sigmoid = kind == LossKind::Sigmoid;
  r.logitScale = sigmoid ? std::log(10.0) : std::log(1 / 0.07);
  r.logitBias = sigmoid ? -10 : 0;
  r.method = method;
  r.threads = threads;
  double loss = 0;
  const Timing t = timeIt(runs, [&] {
    loss = (sigmoid ? cpu::sigmoidLoss(r, {dx.data(), dy.data()}) : cpu::softmaxLoss(r, {dx.data(), dy.data()})).loss;
  });
  const bool naive = method == Method::Naive;
  const double gemms = method == Method::Chunked ? 4.0 : 3.0;
  report(sigmoid ? (naive ? "naive" : "fused") : (naive ? "smnaiv" : "chunk"),
         "N=" + std::to_string(n) + " D=" + std::to_string(d) + " fwd+bwd", threads,
         gemms * 2.0 * double(n) * double(n) * double(d), t);
  std::printf("       (loss %.6f)\n", loss);
}

std::vector<uint16_t> toBf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t k = 0; k < v.size(); ++k) {
    uint32_t x;
    std::memcpy(&x, &v[k], sizeof x);
    out[k] = uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);  // nearest, ties to even (finite inputs)
  }
  return out;
}

// The fused sigmoid with bf16 GEMMs: inputs as bf16 bits, or as float32 rounded when packed.
void benchLossBf16(bool bitsIn, int64_t n, int64_t d, int threads, int runs) {
  const std::vector<float> x = randomUnitRows(n, d, 1), y = randomUnitRows(n, d, 2);
  const std::vector<uint16_t> xb = toBf16(x), yb = toBf16(y);
  std::vector<float> dx(x.size()), dy(y.size());
  LossRequest r;
  r.image = {x.data(), n, d};
  r.text = {y.data(), n, d};
  r.logitScale = std::log(10.0);
  r.logitBias = -10;
  r.threads = threads;
  const cpu::Bf16Inputs bits = bitsIn ? cpu::Bf16Inputs{xb.data(), yb.data()} : cpu::Bf16Inputs{};
  double loss = 0;
  const Timing t = timeIt(runs, [&] { loss = cpu::sigmoidLossBf16(r, bits, {dx.data(), dy.data()}).loss; });
  report(bitsIn ? "bf16" : "bf16f", "N=" + std::to_string(n) + " D=" + std::to_string(d) + " fwd+bwd", threads,
         3 * 2.0 * double(n) * double(n) * double(d), t);
  std::printf("       (loss %.6f)\n", loss);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t gm = 4096, gn = 4096, gk = 768, n = 8192, d = 768;
  const cpu::CpuInfo info = cpu::cpuInfo();
  int threads = info.hardwareThreads, runs = 5;
  bool naive = false, softmax = false, bf16 = false;
  std::string only;
  for (int k = 1; k < argc; ++k) {
    const std::string arg = argv[k];
    auto next = [&]() -> int64_t {
      if (k + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return std::atoll(argv[++k]);
    };
    if (arg == "--gemm") {
      gm = next();
      gn = next();
      gk = next();
    } else if (arg == "--n") n = next();
    else if (arg == "--d") d = next();
    else if (arg == "--threads") threads = int(next());
    else if (arg == "--runs") runs = int(next());
    else if (arg == "--naive") naive = true;
    else if (arg == "--softmax") softmax = true;
    else if (arg == "--bf16") bf16 = true;
    else if (arg == "--only" && k + 1 < argc) only = argv[++k];
    else {
      std::fprintf(stderr,
                   "usage: %s [--gemm M N K] [--n N] [--d D] [--threads T] [--runs R] [--naive] [--softmax] "
                   "[--bf16] [--only gemm|loss|bf16]\n",
                   argv[0]);
      return 2;
    }
  }
  if (runs < 1) runs = 1;

  std::printf("siglip_core_bench: simd %s (%s), %d hardware threads, fused tile %dx%d, %d runs (median)\n",
              info.simd.c_str(), info.simdReason.c_str(), info.hardwareThreads, info.tileRows, info.tileCols, runs);
  if (bf16) std::printf("bf16 kernel %s (%s)\n", info.bf16.c_str(), info.bf16Reason.c_str());
  try {
    if (only == "bf16") {
      benchLossBf16(true, n, d, threads, runs);
      return 0;
    }
    if (only.empty() || only == "gemm") {
      const std::vector<float> a = randomUnitRows(gm, gk, 3), b = randomUnitRows(gn, gk, 4);
      std::vector<float> c(size_t(gm * gn));
      const Timing t = timeIt(runs, [&] { cpu::gemmABt(a.data(), b.data(), c.data(), gm, gn, gk, threads); });
      report("gemm", std::to_string(gm) + "x" + std::to_string(gn) + "x" + std::to_string(gk), threads,
             2.0 * double(gm) * double(gn) * double(gk), t);
      if (bf16) {
        const std::vector<uint16_t> ab = toBf16(a), bb = toBf16(b);
        const Timing tb = timeIt(runs, [&] { cpu::gemmABtBf16(ab.data(), bb.data(), c.data(), gm, gn, gk, threads); });
        report("bfgemm", std::to_string(gm) + "x" + std::to_string(gn) + "x" + std::to_string(gk), threads,
               2.0 * double(gm) * double(gn) * double(gk), tb);
      }
    }
    if (only.empty() || only == "loss") {
      benchLoss(LossKind::Sigmoid, Method::Fused, n, d, threads, runs);
      if (naive) benchLoss(LossKind::Sigmoid, Method::Naive, n, d, threads, runs);
      if (bf16) {
        benchLossBf16(true, n, d, threads, runs);
        benchLossBf16(false, n, d, threads, runs);
      }
      if (softmax) {
        benchLoss(LossKind::Softmax, Method::Chunked, n, d, threads, runs);
        if (naive) benchLoss(LossKind::Softmax, Method::Naive, n, d, threads, runs);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "siglip_core_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
