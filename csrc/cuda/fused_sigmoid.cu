// The fused sigmoid loss on the GPU: the N×M pair grid is processed in blocks of at most
// kPairBlock × kPairBlock pairs. For block (r, c):
//   1. S = X_r · Y_cᵀ on tensor cores; the sigmoid epilogue runs on the accumulators and
//      writes only the gradient block G (in the input dtype) and per-CTA scalar sums;
//   2. ∂X_r += (t/N) · G · Y_c           (tile GEMM, float32 accumulate into ∂X)
//   3. ∂Y_c += (t/N) · Gᵀ · X_r          (tile GEMM, Gᵀ read in place, no transpose)
// S never exists in memory; G is one block (32 MB in bf16 at 4096², L2-sized on an H100),
// independent of N and M. Every launch goes to one stream in a fixed order and every output
// element has one writer per launch, so results are deterministic.
//
// Why this "blocked logits → epilogue → two GEMMs" scheme rather than one kernel that keeps
// a row block's ∂X in registers: at D = 768–1152 a CTA's ∂X and ∂Y accumulators would not
// fit on chip, forcing atomics (non-deterministic) or a fourth GEMM to recompute S for the
// column owner. Here the three GEMMs are plain, each can use the best tile shape, and the
// only extra traffic is G (N·M·2 bytes, about 1/D of the GEMM work's operand traffic).
#include <cmath>

#include "request_prep.cuh"
#include "sigmoid_epilogue.cuh"
#include "tile_gemm.cuh"

namespace siglip::cuda {

// One block of kAccumulateThreads: thread i sums partials i, i + 256, … in order, then the
// block reduces in a fixed tree (writeBlockSums), so the order, and the bits, never vary.
__global__ void accumulatePartialsKernel(const double* partials, int64_t blocks, double* totals) {
  PairSums3 mine;
  for (int64_t b = threadIdx.x; b < blocks; b += blockDim.x) {
    mine.softplus += partials[3 * b];
    mine.dLogit += partials[3 * b + 1];
    mine.dLogitSim += partials[3 * b + 2];
  }
  __shared__ double blockTotal[3];
  writeBlockSums(mine, blockTotal);
  __syncthreads();
  if (threadIdx.x == 0) totals[0] += blockTotal[0], totals[1] += blockTotal[1], totals[2] += blockTotal[2];
}

namespace {

constexpr int64_t kPairBlock = 4096;

LossResult finishSigmoid(const DeviceBuffer& totals, int64_t n, double temperature, bool wantGrad) {
  double sums[3];
  totals.download(sums, sizeof sums);
  LossResult result;
  result.loss = sums[0] / double(n);
  if (wantGrad) {
    result.dLogitBias = sums[1] / double(n);
    result.dLogitScale = temperature * sums[2] / double(n);
  }
  return result;
}

template <class T>
LossResult blockedSigmoid(const CudaLossRequest& req, const DeviceIds& ids, CudaGradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  const int device = req.image.device;
  const T* x = static_cast<const T*>(req.image.data);
  const T* y = static_cast<const T*>(req.text.data);
  const bool exact = req.precision == Precision::FP32;
  const bool wantGrad = grads.wanted();
  const int64_t br = std::min(n, kPairBlock), bc = std::min(m, kPairBlock);
  const double temperature = std::exp(req.logitScale);

  DeviceGuard guard(device);
  Stream stream(device);
  DeviceBuffer g(device, wantGrad ? size_t(br) * size_t(bc) * sizeof(T) : 0);
  DeviceBuffer partials(device, size_t(gemmBlockCount(br, bc, exact)) * 3 * sizeof(double));
  DeviceBuffer totals(device, 3 * sizeof(double));
  SIGLIP_CUDA_CHECK(cudaMemsetAsync(totals.data(), 0, totals.bytes(), stream.get()));
  if (wantGrad) {
    SIGLIP_CUDA_CHECK(cudaMemsetAsync(grads.image, 0, size_t(n) * d * sizeof(float), stream.get()));
    SIGLIP_CUDA_CHECK(cudaMemsetAsync(grads.text, 0, size_t(m) * d * sizeof(float), stream.get()));
  }
  T* gBlock = static_cast<T*>(g.data());
  const float alpha = float(temperature / double(n)) / kGradStoreScale<T>;

  for (int64_t r0 = 0; r0 < n; r0 += br) {
    const int64_t rows = std::min(br, n - r0);
    for (int64_t c0 = 0; c0 < m; c0 += bc) {
      const int64_t cols = std::min(bc, m - c0);
      SigmoidEpilogue<T> ep;
      ep.g = wantGrad ? gBlock : nullptr;
      ep.ldg = bc;
      ep.temperature = float(temperature);
      ep.bias = float(req.logitBias);
      ep.rowIds = ids.image ? ids.image + r0 : nullptr;
      ep.colIds = ids.text ? ids.text + c0 : nullptr;
      ep.rowOffset = r0;
      ep.colOffset = c0;
      ep.partials = static_cast<double*>(partials.data());
      launchGemm<T, false, true>(GemmOperands<T>{x + r0 * d, d, y + c0 * d, d, rows, cols, d}, ep, exact, stream.get());
      accumulatePartialsKernel<<<1, kAccumulateThreads, 0, stream.get()>>>(ep.partials, gemmBlockCount(rows, cols, exact),
                                                          static_cast<double*>(totals.data()));
      SIGLIP_CUDA_CHECK_LAUNCH("accumulatePartialsKernel");
      if (!wantGrad) continue;
      launchGemm<T, false, false>(GemmOperands<T>{gBlock, bc, y + c0 * d, d, rows, d, cols},
                                  StoreEpilogue{grads.image + r0 * d, d, alpha, true}, exact, stream.get());
      launchGemm<T, true, false>(GemmOperands<T>{gBlock, bc, x + r0 * d, d, cols, d, rows},
                                 StoreEpilogue{grads.text + c0 * d, d, alpha, true}, exact, stream.get());
    }
  }
  stream.synchronize();
  return finishSigmoid(totals, n, temperature, wantGrad);
}

}  // namespace

LossResult naiveSigmoidLossCuda(const CudaLossRequest& request, const DeviceIds& ids, CudaGradientOutputs grads);

LossResult sigmoidLoss(const CudaLossRequest& request, CudaGradientOutputs grads) {
  validateCudaRequest(LossKind::Sigmoid, request, grads);
  const DeviceIds ids = uploadIds(request);
  if (request.method == Method::Naive) return naiveSigmoidLossCuda(request, ids, grads);
  return dispatchDType(request.image.dtype, [&](auto tag) { return blockedSigmoid<decltype(tag)>(request, ids, grads); });
}

}  // namespace siglip::cuda
