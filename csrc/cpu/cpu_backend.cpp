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
  if (request.method != Method::Naive)
    throw invalidArgument(ErrorKind::Range, "options.method", "'naive' (the only softmax method so far)",
                          "'fused'");
  return naiveSoftmaxLoss(activeKernels(), request, grads);
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
