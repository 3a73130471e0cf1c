// siglip_ring_check's command line (ring_check.h says what each mode checks), and the CPU
// jobs: in-process ranks (threads) and one rank per process over MPI.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/limits.h"
#include "ring/local_transport.h"
#include "ring_check.h"
#if defined(SIGLIP_WITH_MPI)
#include "ring/mpi/mpi_transport.h"
#endif

namespace siglip::ring_check {

int localCases() {
  int failures = 0;
  std::mt19937_64 rng(7);
  for (int p = 1; p <= 8; ++p) {
    for (int withIds = 0; withIds < 2; ++withIds) {
      const int64_t d = p % 2 ? 48 : 17;
      const Batch b = makeBatch(rng, p, d, withIds);
      const Reference ref = singleDevice(b);
      for (const ring::RingDirection direction : kDirections) {
        auto endpoints = ring::createLocalGroup(p, std::chrono::milliseconds(20000));
        std::vector<Outcome> outcomes(static_cast<size_t>(p));
        std::vector<std::thread> threads;
        for (int r = 0; r < p; ++r) threads.emplace_back([&, r] { outcomes[r] = runRank(*endpoints[r], b, 1, direction); });
        for (auto& t : threads) t.join();
        double worst = 0;
        std::string problem;
        for (int r = 0; r < p && problem.empty(); ++r) problem = compareRank(b, ref, r, outcomes[r], direction, &worst);
        for (int r = 1; r < p && problem.empty(); ++r)
          if (std::memcmp(&outcomes[r].result, &outcomes[0].result, sizeof(LossResult)) != 0)
            problem = "rank " + std::to_string(r) + " scalars differ from rank 0's bits";
        std::string shards;
        for (int r = 0; r < p; ++r) shards += (r ? "," : "") + std::to_string(b.imageRows[r]) + (withIds ? "/" + std::to_string(b.textRows[r]) : "");
        std::printf("%s local P=%d %s D=%-3lld ids=%-3s shards=[%s] worst rel. error %.1e, ring bytes/rank %llu, sent by rank 0 %llu%s%s\n",
                    problem.empty() ? "PASS" : "FAIL", p, directionName(direction), (long long)d, withIds ? "yes" : "no",
                    shards.c_str(), worst, (unsigned long long)outcomes[0].stats.peakRingBytes,
                    (unsigned long long)outcomes[0].stats.bytesSent, problem.empty() ? "" : "  ", problem.c_str());
        failures += !problem.empty();
      }
    }
  }
  return failures;
}

// A rank that dies: one rank aborts (throws) before its first step, never shows up, or holds
// a NaN (ringSigmoidLoss scans host shards and aborts). Every other rank must fail, with an
// error, within the timeout; the NaN's rank with the value's name and place.
int deadRankCases() {
  int failures = 0;
  std::mt19937_64 rng(11);
  const Batch b = makeBatch(rng, 4, 16, false);
  Batch poisoned = b;
  poisoned.image[size_t(std::accumulate(b.imageRows.begin(), b.imageRows.begin() + 2, int64_t(0)) * b.d + 3)] = NAN;
  const char* kModes[] = {"aborts", "never shows up", "NaN in its shard"};
  for (int mode = 0; mode < 3; ++mode) {
    const auto timeout = std::chrono::milliseconds(1500);
    auto endpoints = ring::createLocalGroup(4, timeout);
    std::vector<Outcome> outcomes(4);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int r = 0; r < 4; ++r)
      threads.emplace_back([&, r] {
        if (r == 2 && mode == 0) endpoints[r]->abort("simulated crash of rank 2");
        if (r == 2 && mode < 2) return;  // mode 1: rank 2 simply never takes part
        outcomes[r] = runRank(*endpoints[r], mode == 2 ? poisoned : b, 1,
                              mode == 1 ? ring::RingDirection::TwoWay : ring::RingDirection::OneWay);
      });
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bool ok = seconds < 3 * 1.5;
    for (int r : {0, 1, 3}) ok = ok && !outcomes[r].error.empty();
    if (mode == 2) ok = ok && outcomes[2].error.find("image.data") != std::string::npos &&
                        outcomes[2].error.find("(row 0, column 3)") != std::string::npos;
    std::printf("%s dead rank (%s): other ranks failed after %.2f s: \"%s\"%s%s\n", ok ? "PASS" : "FAIL", kModes[mode],
                seconds, outcomes[0].error.c_str(), mode == 2 ? "; its own: " : "", mode == 2 ? outcomes[2].error.c_str() : "");
    failures += !ok;
  }
  return failures;
}

#if defined(SIGLIP_WITH_MPI)
int mpiCase() {
  std::unique_ptr<ring::Transport> tp = ring::createMpiTransport(std::chrono::milliseconds(limits::kDefaultRingTimeoutMs));
  const int p = tp->size(), r = tp->rank();
  int failures = 0;
  for (int withIds = 0; withIds < 2; ++withIds) {
    std::mt19937_64 rng(100 + p);  // the same batch on every process
    const Batch b = makeBatch(rng, p, 40, withIds);
    const Reference ref = singleDevice(b);
    for (const ring::RingDirection direction : kDirections) {
      const Outcome o = runRank(*tp, b, 1, direction);
      double worst = 0;
      const std::string problem = compareRank(b, ref, r, o, direction, &worst);
      std::printf("%s mpi P=%d %s rank %d ids=%s worst rel. error %.1e loss %.9f%s%s\n", problem.empty() ? "PASS" : "FAIL",
                  p, directionName(direction), r, withIds ? "yes" : "no", worst, o.result.loss,
                  problem.empty() ? "" : "  ", problem.c_str());
      failures += !problem.empty();
    }
  }
  return failures;
}
#endif

}  // namespace siglip::ring_check

using namespace siglip;
using namespace siglip::ring_check;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--cuda-local" || mode == "--nccl" || mode == "--nccl-timeout") {
#if defined(SIGLIP_WITH_CUDA)
    int ranks = 0;
    if (argc > 2) {
      char* end = nullptr;
      const long value = std::strtol(argv[2], &end, 10);
      if (!end || *end || value < 1 || value > 64) {
        std::fprintf(stderr, "siglip_ring_check %s: expected a number of ranks from 1 to 64, got '%s'\n", mode.c_str(), argv[2]);
        return 2;
      }
      ranks = int(value);
    }
    if (!haveGpu(mode.c_str())) return 2;
    if (mode != "--cuda-local" && !haveNccl(mode.c_str())) return 2;
    int failures = 0;
    try {
      if (mode == "--cuda-local") failures = cudaLocalCases(ranks > 0 ? ranks : 2);
      else if (mode == "--nccl") failures = ncclCases(ranks);
      else failures = ncclTimeoutCase();
    } catch (const std::exception& e) {
      std::printf("FAIL %s: %s\n", mode.c_str(), e.what());
      failures += 1;
    }
    std::printf("siglip_ring_check %s: %s\n", mode.c_str(), failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
#else
    std::fprintf(stderr, "siglip_ring_check %s: this build has no CUDA backend (configure with -DSIGLIP_CUDA=on)\n",
                 mode.c_str());
    return 2;
#endif
  }
  const bool mpi = mode == "--mpi";
  if (mpi) {
#if defined(SIGLIP_WITH_MPI)
    int failures = 0;
    try {
      failures = mpiCase();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "FAIL mpi: %s\n", e.what());
      failures = 1;
    }
    ring::finalizeMpi();
    return failures ? 1 : 0;
#else
    std::fprintf(stderr, "siglip_ring_check: this build has no MPI transport\n");
    return 2;
#endif
  }
  int failures = localCases();
  failures += deadRankCases();
  std::printf("siglip_ring_check: %s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
