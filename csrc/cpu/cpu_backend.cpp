#include "cpu_backend.h"

#include <thread>

#include "../core/errors.h"
#include "gemm.h"
#include "losses.h"

namespace siglip::cpu {

LossResult sigmoidLoss(const LossRequest& request, GradientOutputs grads) {
  validateLossRequest(LossKind::Sigmoid, request);
  const KernelSet& kernels = activeKernels();
  return request.method == Method::Fused ? fusedSigmoidLoss(kernels, request, grads)
                                         : naiveSigmoidLoss(kernels, request, grads);
}

LossResult softmaxLoss(const LossRequest& request, GradientOutputs grads) {
  validateLossRequest(LossKind::Softmax, request);
  const KernelSet& kernels = activeKernels();
  // For the softmax, Method::Fused is the chunked two-pass version (chunked_softmax.cpp).
  return request.method == Method::Fused ? chunkedSoftmaxLoss(kernels, request, grads)
                                         : naiveSoftmaxLoss(kernels, request, grads);
}

void gemmABt(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k, int threads) {
  if (!a || !b || !c || m < 1 || n < 1 || k < 1 || threads < 1)
    throw Error(ErrorKind::Range, "gemmABt", "gemmABt needs non-null matrices, positive sizes and threads");
  parallelGemm(activeKernels(), m, n, k, StridedView{a, k, 1}, StridedView{b, 1, k}, c, n, false, threads);
}

CpuInfo cpuInfo() {
  CpuInfo info;
  info.simd = activeKernels().name;
  info.simdReason = activeKernelsReason();
  info.hardwareThreads = int(std::max(1u, std::thread::hardware_concurrency()));
  info.tileRows = int(kTileRows);
  info.tileCols = int(kTileCols);
  return info;
}

}  // namespace siglip::cpu
