// siglip_ring_check's GPU jobs (built with CUDA): --cuda-local P (P in-process ranks on GPU 0,
// each through ring::gpuRankSigmoidLoss; the in-process transport copying device memory),
// --nccl [P] and --nccl-timeout (the NCCL transport). See ring_check.h.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check_support.h"
#include "ring_check.h"
#if defined(SIGLIP_WITH_CUDA)
#include "core/errors.h"
#include "core/limits.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_block_backend.h"
#include "ring/gpu/gpu_rank.h"
#include "ring/local_transport.h"
#include "ring/nccl/nccl_transport.h"

namespace siglip::ring_check {

// ---- the ring on GPUs ----------------------------------------------------------------------

struct GpuCase {
  const char* name;
  cuda::DType dtype;
  cuda::Precision precision;
  Tolerance tolerance;
};
const GpuCase kGpuCases[] = {
    {"tf32", cuda::DType::Float32, cuda::Precision::TF32, {5e-3, 5e-3, 5e-3}},
    {"fp32", cuda::DType::Float32, cuda::Precision::FP32, {1e-4, 1e-4, 1e-4}},
    {"bf16", cuda::DType::BFloat16, cuda::Precision::TF32, {2e-2, 2e-2, 2e-2}},
};

// The batch as the GPU will see it: bfloat16 inputs, and float32 ones at TF32, are rounded
// here, so the CPU reference is computed on exactly the values the GPU multiplies and the
// tolerance measures the computation (as siglip_cuda_check's). Without it the inputs' TF32
// rounding alone moved ∂s of a cancelling sum by 3.6e-2 (P = 4, ids; the CUDA emulation).
Batch asDtype(Batch b, const GpuCase& c) {
  const bool tf32 = c.dtype == cuda::DType::Float32 && c.precision == cuda::Precision::TF32;
  if (c.dtype == cuda::DType::BFloat16 || tf32) {
    for (float& v : b.image) v = tf32 ? check::tf32Value(v) : check::bf16Value(check::bf16Bits(v));
    for (float& v : b.text) v = tf32 ? check::tf32Value(v) : check::bf16Value(check::bf16Bits(v));
  }
  return b;
}

// A float32 batch's rows as a bfloat16 matrix on `device`.
cuda::HostOrDeviceInput bf16OnDevice(const float* data, int64_t rows, int64_t cols, int device) {
  std::vector<uint16_t> bits(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = check::bf16Bits(data[i]);
  cuda::HostOrDeviceInput in;
  in.matrix = cuda::SharedMatrix{std::make_shared<cuda::DeviceBuffer>(device, bits.size() * sizeof(uint16_t)), rows,
                                 cols, cuda::DType::BFloat16, device};
  in.matrix.buffer->upload(bits.data(), bits.size() * sizeof(uint16_t));
  return in;
}

// Rank tp.rank()'s shard through ring::gpuRankSigmoidLoss, as the addon's GPU ranks run it:
// float32 cases from host memory (scanned, uploaded; gradients downloaded into host arrays),
// bfloat16 ones from device matrices (gradients left on the device, downloaded here).
Outcome runRankCuda(ring::Transport& tp, const Batch& b, int device, const GpuCase& c, ring::RingDirection direction) {
  Outcome o;
  try {
    const ring::RingShard host = shardOf(b, tp.rank());
    const int64_t d = b.d, n = host.image.rows, m = host.text.rows;
    const auto* image = static_cast<const float*>(host.image.data);
    const auto* text = static_cast<const float*>(host.text.data);
    ring::GpuRankInputs in;
    in.device = device;
    in.precision = c.precision;
    in.imageIds = host.imageIds;
    in.textIds = host.textIds;
    in.wantGrad = true;
    o.dImage.assign(size_t(n * d), NAN);
    o.dText.assign(size_t(m * d), NAN);
    if (c.dtype == cuda::DType::Float32) {
      in.image = cuda::HostOrDeviceInput::fromHost(image, n, d, device);
      in.text = cuda::HostOrDeviceInput::fromHost(text, m, d, device);
      in.hostGrads = GradientOutputs{o.dImage.data(), o.dText.data()};
    } else {
      in.image = bf16OnDevice(image, n, d, device);
      in.text = bf16OnDevice(text, m, d, device);
    }
    ring::RingOptions opt;
    opt.logitScale = b.logitScale;
    opt.logitBias = b.logitBias;
    opt.direction = direction;
    ring::GpuRankResult out = ring::gpuRankSigmoidLoss(tp, in, opt);
    o.result = out.result;
    o.stats = out.stats;
    if (out.gradImage.buffer) {
      out.gradImage.buffer->download(o.dImage.data(), o.dImage.size() * sizeof(float));
      out.gradText.buffer->download(o.dText.data(), o.dText.size() * sizeof(float));
    }
  } catch (const std::exception& e) {
    o.error = e.what();
  }
  return o;
}

// Runs one batch over the given endpoints (a thread per rank, rank r on devices[r]) and
// prints one PASS/FAIL line. Returns 1 on failure.
int gpuRingCase(const char* label, std::vector<std::unique_ptr<ring::Transport>>& endpoints,
                const std::vector<int>& devices, const Batch& batch, const GpuCase& c, bool withIds,
                ring::RingDirection direction) {
  const int p = int(endpoints.size());
  const Batch b = asDtype(batch, c);
  const Reference ref = singleDevice(b);
  std::vector<Outcome> outcomes(static_cast<size_t>(p));
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int r = 0; r < p; ++r)
    threads.emplace_back(
        [&, r] { outcomes[size_t(r)] = runRankCuda(*endpoints[size_t(r)], b, devices[size_t(r)], c, direction); });
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double worst = 0;
  std::string problem;
  for (int r = 0; r < p && problem.empty(); ++r)
    problem = compareRank(b, ref, r, outcomes[size_t(r)], direction, &worst, c.tolerance);
  for (int r = 1; r < p && problem.empty(); ++r)
    if (std::memcmp(&outcomes[size_t(r)].result, &outcomes[0].result, sizeof(LossResult)) != 0)
      problem = "rank " + std::to_string(r) + " scalars differ from rank 0's bits";
  std::string shards;
  for (int r = 0; r < p; ++r)
    shards += (r ? "," : "") + std::to_string(b.imageRows[size_t(r)]) + (withIds ? "/" + std::to_string(b.textRows[size_t(r)]) : "");
  if (shards.size() > 60) shards = shards.substr(0, 57) + "...";
  std::printf("%s %s P=%d %s %s D=%-3lld ids=%-3s shards=[%s] worst rel. error %.1e (limit %.0e), ring bytes/rank %llu, %.2f s%s%s\n",
              problem.empty() ? "PASS" : "FAIL", label, p, directionName(direction), c.name, (long long)b.d, withIds ? "yes" : "no", shards.c_str(),
              worst, c.tolerance.gradients, (unsigned long long)outcomes[0].stats.peakRingBytes, seconds,
              problem.empty() ? "" : "  ", problem.c_str());
  std::fflush(stdout);
  return problem.empty() ? 0 : 1;
}

bool haveGpu(const char* mode) {
  std::string reason;
  if (cuda::deviceCount(&reason) > 0) return true;
  std::fprintf(stderr, "siglip_ring_check %s: no usable CUDA device (%s); this check needs a GPU\n", mode,
               reason.empty() ? "none found" : reason.c_str());
  return false;
}

bool haveNccl(const char* mode) {
  std::string reason;
  if (ring::ncclAvailable(&reason)) return true;
  std::fprintf(stderr, "siglip_ring_check %s: NCCL is not available: %s\n", mode, reason.c_str());
  return false;
}

// P in-process ranks on GPU 0, the in-process transport copying device memory.
int cudaLocalCases(int p) {
  const cuda::DeviceInfo info = cuda::deviceInfo(0);
  std::printf("cuda-local: %d rank(s) on cuda:0 (%s, sm_%d%d)\n", p, info.name.c_str(), info.computeMajor, info.computeMinor);
  int failures = 0;
  const std::vector<int> devices(static_cast<size_t>(p), 0);
  for (size_t k = 0; k < sizeof kGpuCases / sizeof kGpuCases[0]; ++k) {
    for (int withIds = 0; withIds < 2; ++withIds) {
      std::mt19937_64 rng(1000 + 10 * uint64_t(p) + 2 * k + uint64_t(withIds));
      const int64_t d = p % 2 ? 48 : 17;  // 17: odd rows × D, so bfloat16 blocks leave their ids unaligned
      const Batch b = makeBatch(rng, p, d, withIds);
      for (const ring::RingDirection direction : kDirections) {
        auto endpoints = ring::createLocalGroup(p, std::chrono::milliseconds(limits::kDefaultRingTimeoutMs), cuda::deviceMessageMemory());
        failures += gpuRingCase("cuda-local", endpoints, devices, b, kGpuCases[k], withIds, direction);
      }
    }
  }
  if (p == 2) {
    // Shards above the GPU driver's 4096-row piece, uneven: several pieces per block.
    std::mt19937_64 rng(77);
    Batch b;
    b.d = 64;
    b.imageRows = b.textRows = {4200, 4100};
    fillBatch(rng, b, false);
    auto endpoints = ring::createLocalGroup(p, std::chrono::milliseconds(120000), cuda::deviceMessageMemory());
    failures += gpuRingCase("cuda-local (large)", endpoints, devices, b, kGpuCases[0], false, ring::RingDirection::OneWay);
  }
  return failures;
}

std::vector<uint8_t> pattern(int rank, int tag, size_t bytes) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; ++i) v[i] = uint8_t((size_t(rank) * 131 + size_t(tag) * 31 + i * 7 + (i >> 12)) & 0xff);
  return v;
}

// The transport alone: messages posted out of tag order (as the ring does), both ways round
// the ring, one of 8 MiB (beyond NCCL's staging buffers), an odd one and an empty one, then
// an all-gather.
std::string exchangeCheck(ring::Transport& tp, int device) {
  try {
    const int r = tp.rank(), p = tp.size(), previous = (r - 1 + p) % p, next = (r + 1) % p;
    const size_t big = (size_t(8) << 20) + 3, small = 3;
    cuda::DeviceBuffer outA(device, big), inA(device, big), outB(device, small), inB(device, small);
    cuda::DeviceBuffer empty(device, 0);
    outA.upload(pattern(r, 2, big).data(), big);
    outB.upload(pattern(r, 3, small).data(), small);
    using ring::Neighbour;
    ring::Transfer receiveA = tp.receive(Neighbour::Previous, inA.data(), big, 2);
    ring::Transfer sendA = tp.send(Neighbour::Next, outA.data(), big, 2);
    ring::Transfer sendB = tp.send(Neighbour::Previous, outB.data(), small, 3);  // the other way; its receive comes later
    ring::Transfer receiveC = tp.receive(Neighbour::Previous, empty.data(), 0, 4);
    ring::Transfer sendC = tp.send(Neighbour::Next, empty.data(), 0, 4);
    ring::Transfer receiveB = tp.receive(Neighbour::Next, inB.data(), small, 3);
    tp.wait(sendB);
    tp.wait(receiveA);
    tp.wait(receiveB);
    tp.wait(sendA);
    tp.wait(receiveC);
    tp.wait(sendC);
    std::vector<uint8_t> gotA(big), gotB(small);
    inA.download(gotA.data(), big);
    inB.download(gotB.data(), small);
    if (gotA != pattern(previous, 2, big)) return "rank " + std::to_string(r) + ": the 8 MiB message (tag 2) differs";
    if (gotB != pattern(next, 3, small)) return "rank " + std::to_string(r) + ": the 3-byte message (tag 3) differs";
    const int64_t mine = int64_t(r) * 1000 + 7;
    std::vector<int64_t> all(static_cast<size_t>(p), -1);
    tp.allGather(&mine, sizeof mine, all.data());
    for (int q = 0; q < p; ++q)
      if (all[size_t(q)] != int64_t(q) * 1000 + 7) return "rank " + std::to_string(r) + ": all-gather slot " + std::to_string(q) + " wrong";
    if (tp.bytesSent() < big + small) return "rank " + std::to_string(r) + ": bytesSent " + std::to_string(tp.bytesSent());
    return "";
  } catch (const std::exception& e) {
    return "rank " + std::to_string(tp.rank()) + " threw: " + e.what();
  }
}

// The NCCL transport, one rank per GPU (P = min(requested, GPUs); all GPUs when requested <= 0).
int ncclCases(int requested) {
  std::string reason;
  const int gpus = cuda::deviceCount(&reason);
  const int p = requested > 0 ? std::min(requested, gpus) : gpus;
  std::printf("nccl: %s (NCCL %s), %d GPU(s) visible, P = %d\n", ring::ncclLibraryPath().c_str(),
              ring::ncclVersionString().c_str(), gpus, p);
  std::fflush(stdout);
  std::vector<int> devices;
  for (int r = 0; r < p; ++r) devices.push_back(r);
  int failures = 0;
  std::vector<std::unique_ptr<ring::Transport>> endpoints;
  const auto start = std::chrono::steady_clock::now();
  try {
    endpoints = ring::createNcclGroupAllDevices(devices, std::chrono::milliseconds(limits::kDefaultRingTimeoutMs));
  } catch (const std::exception& e) {
    std::printf("FAIL nccl: creating %d endpoint(s): %s\n", p, e.what());
    return 1;
  }
  std::printf("nccl: %d endpoint(s) created and connected in %.2f s\n", p,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  {
    std::vector<std::string> problems(static_cast<size_t>(p));
    std::vector<std::thread> threads;
    for (int r = 0; r < p; ++r)
      threads.emplace_back([&, r] { problems[size_t(r)] = exchangeCheck(*endpoints[size_t(r)], devices[size_t(r)]); });
    for (auto& t : threads) t.join();
    std::string problem;
    for (const std::string& q : problems)
      if (problem.empty()) problem = q;
    std::printf("%s nccl P=%d exchange (tags out of order, both ways, 8 MiB + 3 B + empty, all-gather)%s%s\n",
                problem.empty() ? "PASS" : "FAIL", p, problem.empty() ? "" : ": ", problem.c_str());
    std::fflush(stdout);
    failures += !problem.empty();
    if (!problem.empty()) return failures;  // the endpoints are aborted
  }
  for (size_t k = 0; k < sizeof kGpuCases / sizeof kGpuCases[0]; ++k) {
    for (int withIds = 0; withIds < 2; ++withIds) {
      std::mt19937_64 rng(2000 + 10 * uint64_t(p) + 2 * k + uint64_t(withIds));
      const Batch b = makeBatch(rng, p, 40, withIds);
      for (const ring::RingDirection direction : kDirections)
        failures += gpuRingCase("nccl", endpoints, devices, b, kGpuCases[k], withIds, direction);
    }
  }
  return failures;
}

// A receive that no rank answers: the wait must end in an error within the timeout.
int ncclTimeoutCase() {
  const auto timeout = std::chrono::milliseconds(1500);
  std::vector<std::unique_ptr<ring::Transport>> endpoints = ring::createNcclGroupAllDevices({0}, timeout);
  ring::Transport& tp = *endpoints[0];
  cuda::DeviceBuffer buffer(0, 4096);
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  try {
    ring::Transfer t = tp.receive(ring::Neighbour::Previous, buffer.data(), 4096, 9);
    tp.wait(t);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string after;
  try {
    const int one = 1;
    int all = 0;
    tp.allGather(&one, sizeof one, &all);
  } catch (const std::exception& e) {
    after = e.what();
  }
  const bool ok = !error.empty() && seconds < 3 * 1.5 && !after.empty();
  std::printf("%s nccl timeout: an unanswered receive failed after %.2f s: \"%s\"; the next call: \"%s\"\n",
              ok ? "PASS" : "FAIL", seconds, error.empty() ? "(no error)" : error.c_str(),
              after.empty() ? "(no error)" : after.c_str());
  return ok ? 0 : 1;
}

}  // namespace siglip::ring_check
#endif  // SIGLIP_WITH_CUDA
