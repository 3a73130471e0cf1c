// The CPU backend's public entry points: the N-API addon and the C++ tools call these (and
// the ring's block backend, cpu_block_backend.h) and nothing deeper.
#pragma once
#include <cstdint>
#include <string>

#include "../core/loss_request.h"
#include "../core/pair_block.h"  // Precision

namespace siglip::cpu {

// Validates the request (throws siglip::Error) and computes the loss, plus gradients
// into `grads` when grads.wanted(). Deterministic for any request.threads.
LossResult sigmoidLoss(const LossRequest& request, GradientOutputs grads);
LossResult softmaxLoss(const LossRequest& request, GradientOutputs grads);

// The precision of the GEMMs (core's Precision; the CPU takes FP32 and BF16): FP32
// multiplies the float32 inputs; BF16 rounds them to bfloat16 (nearest, ties to even) when a
// block is packed and multiplies with float32 sums (vdpbf16ps where the processor has
// AVX512_BF16, else widened onto the float32 kernel). The epilogue stays float32, the loss
// sums and scalar gradients float64, as for FP32.
using siglip::Precision;

// Inputs given as bfloat16 bits (lib/half.ts's Uint16Array layout): image N×D, text M×D,
// row-major. Both or neither.
struct Bf16Inputs {
  const uint16_t* image = nullptr;
  const uint16_t* text = nullptr;
};

// The sigmoid loss with bf16 GEMMs (Method::Fused only). With `bits`, the request's
// image/text views give the shapes and their data may be null; without, the request's
// float32 data is rounded to bf16 as it is packed. Deterministic for any request.threads.
LossResult sigmoidLossBf16(const LossRequest& request, Bf16Inputs bits, GradientOutputs grads);

// C (m×n) = A (m×k) · Bᵀ where A is m×k and B is n×k, both row-major: the same packed
// GEMM and micro-kernel the fused loss runs on, exposed for the "floor" benchmark.
void gemmABt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, int threads);
// The same product with bf16 inputs (bits) on the bf16 kernel, float32 out.
void gemmABtBf16(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k, int threads);

struct CpuInfo {
  std::string simd;         // kernel set in use: "avx512", "avx2" or "generic"
  std::string simdReason;   // why that one (detected features, or SIGLIP_SIMD override)
  int hardwareThreads = 1;  // std::thread::hardware_concurrency(), at least 1
  int tileRows = 0;         // fused tile shape (rows: the most; small N uses fewer), never from the thread count
  int tileCols = 0;
  std::string bf16;         // the bf16 kernel: "avx512_bf16" (vdpbf16ps) or "convert"
  std::string bf16Reason;   // why that one
};
CpuInfo cpuInfo();

}  // namespace siglip::cpu
