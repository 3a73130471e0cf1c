// siglip_core_bench: the CPU core's speed without Node, in GFLOP/s.
//
//   gemm   cpu::gemmABt, C (M×N) = A (M×K) · Bᵀ: 2·M·N·K flops. The "floor" the fused loss
//          runs on; the fused loss cannot beat three of these.
//   fused  cpu::sigmoidLoss, Method::Fused, forward + backward: one GEMM for the logits and
//          two for ∂X, ∂Y, so 3 · 2·N·N·D flops (N = M, no ids).
//   naive  the same with Method::Naive (materialises N×N), when --naive is given.
//
// Each is run once to warm up, then --runs times; the median is reported.
//
//   siglip_core_bench [--gemm M N K] [--n N] [--d D] [--threads T] [--runs R] [--naive] [--only gemm|loss]
// Defaults: --gemm 4096 4096 768, --n 8192 --d 768, --threads = hardware threads, --runs 5.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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
};

Timing timeIt(int runs, const std::function<void()>& body) {
  body();  // warm-up: page in buffers, spin up the pool
  std::vector<double> seconds;
  for (int k = 0; k < runs; ++k) {
    const auto start = std::chrono::steady_clock::now();
    body();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  Timing t;
  t.best = seconds.front();
  t.median = seconds.size() % 2 ? seconds[seconds.size() / 2]
                                : 0.5 * (seconds[seconds.size() / 2 - 1] + seconds[seconds.size() / 2]);
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
  std::printf("%-6s %-22s threads=%-3d median %9.3f ms  best %9.3f ms  %8.1f GFLOP/s (median)\n", what,
              shape.c_str(), threads, t.median * 1e3, t.best * 1e3, flops / t.median * 1e-9);
  std::fflush(stdout);
}

void benchLoss(Method method, int64_t n, int64_t d, int threads, int runs) {
  const std::vector<float> x = randomUnitRows(n, d, 1), y = randomUnitRows(n, d, 2);
  std::vector<float> dx(x.size()), dy(y.size());
  LossRequest r;
  r.image = {x.data(), n, d};
  r.text = {y.data(), n, d};
  r.logitScale = std::log(10.0);
  r.logitBias = -10;
  r.method = method;
  r.threads = threads;
  double loss = 0;
  const Timing t = timeIt(runs, [&] { loss = cpu::sigmoidLoss(r, {dx.data(), dy.data()}).loss; });
  report(method == Method::Fused ? "fused" : "naive",
         "N=" + std::to_string(n) + " D=" + std::to_string(d) + " fwd+bwd", threads,
         3.0 * 2.0 * double(n) * double(n) * double(d), t);
  std::printf("       (loss %.6f)\n", loss);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t gm = 4096, gn = 4096, gk = 768, n = 8192, d = 768;
  const cpu::CpuInfo info = cpu::cpuInfo();
  int threads = info.hardwareThreads, runs = 5;
  bool naive = false;
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
    else if (arg == "--only" && k + 1 < argc) only = argv[++k];
    else {
      std::fprintf(stderr,
                   "usage: %s [--gemm M N K] [--n N] [--d D] [--threads T] [--runs R] [--naive] [--only gemm|loss]\n",
                   argv[0]);
      return 2;
    }
  }
  if (runs < 1) runs = 1;

  std::printf("siglip_core_bench: simd %s (%s), %d hardware threads, fused tile %dx%d, %d runs (median)\n",
              info.simd.c_str(), info.simdReason.c_str(), info.hardwareThreads, info.tileRows, info.tileCols, runs);
  try {
    if (only.empty() || only == "gemm") {
      const std::vector<float> a = randomUnitRows(gm, gk, 3), b = randomUnitRows(gn, gk, 4);
      std::vector<float> c(size_t(gm * gn));
      const Timing t = timeIt(runs, [&] { cpu::gemmABt(a.data(), b.data(), c.data(), gm, gn, gk, threads); });
      report("gemm", std::to_string(gm) + "x" + std::to_string(gn) + "x" + std::to_string(gk), threads,
             2.0 * double(gm) * double(gn) * double(gk), t);
    }
    if (only.empty() || only == "loss") {
      benchLoss(Method::Fused, n, d, threads, runs);
      if (naive) benchLoss(Method::Naive, n, d, threads, runs);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "siglip_core_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
