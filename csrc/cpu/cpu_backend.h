// The CPU backend's public entry points: everything above the native core (the N-API
// addon, the C++ check and bench tools, the ring later) calls these and nothing deeper.
#pragma once
#include <cstdint>
#include <string>

#include "../core/loss_request.h"

namespace siglip::cpu {

// Validates the request (throws siglip::Error) and computes the loss, plus gradients
// into `grads` when grads.wanted(). Deterministic for any request.threads.
LossResult sigmoidLoss(const LossRequest& request, GradientOutputs grads);
LossResult softmaxLoss(const LossRequest& request, GradientOutputs grads);

// C (m×n) = A (m×k) · Bᵀ where A is m×k and B is n×k, both row-major: the same packed
// GEMM and micro-kernel the fused loss runs on, exposed for the "floor" benchmark.
void gemmABt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, int threads);

struct CpuInfo {
  std::string simd;         // kernel set in use: "avx512", "avx2" or "generic"
  std::string simdReason;   // why that one (detected features, or SIGLIP_SIMD override)
  int hardwareThreads = 1;  // std::thread::hardware_concurrency(), at least 1
  int tileRows = 0;         // fused tile shape, fixed (independent of thread count)
  int tileCols = 0;
};
CpuInfo cpuInfo();

}  // namespace siglip::cpu
