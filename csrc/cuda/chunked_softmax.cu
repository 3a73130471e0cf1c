// The chunked CLIP softmax loss on the GPU (softmaxLoss with Method::Chunked): the
// CUDA twin of csrc/cpu/chunked_softmax.cpp, on the tile GEMM and the pair blocks of
// fused_sigmoid.cu (at most kPairBlock × kPairBlock pairs each), never an N×M buffer.
//
//   Pass 1, per pair block (r, c), in block order (r outer, c inner):
//     1. S = X_r·Y_cᵀ through SoftmaxStatsEpilogue (softmax_epilogue.cuh): every CTA writes,
//        per row and per column of its tile, (max S, Σ exp(t·(S − max S)), Σ positive S, count)
//        to partial arrays: rows [CTA column index][row], columns [CTA row index][column];
//     2. two merge kernels fold them into the O(N + M) global statistics, one thread per
//        line, the partials in CTA index order. Rows therefore merge over blocks c in order,
//        each over its CTA columns in order; columns over blocks r, each over CTA rows in
//        order: a fixed order, no atomics.
//   The statistics come back to the host (O(N + M)), where the loss is formed exactly as on
//   the CPU: CE = log Σ + t·(max S − mean positive S) per row and column,
//   L = ½[(1/N) Σ_rows + (1/M) Σ_cols].
//   Pass 2 (gradients only), per pair block: S again through SoftmaxGradientEpilogue, which
//     writes the block of H (input dtype, scaled into float16's range) and per-CTA Σ H·S
//     (reduced in order by accumulatePartialsKernel); then ∂X_r += t·H·Y_c and
//     ∂Y_c += t·Hᵀ·X_r, the two backward GEMMs of fused_sigmoid.cu (backward_gemms.cuh).
//
// Four GEMMs of work where the sigmoid has three (S is formed twice). Extra device memory:
// 48 bytes per row and column (statistics, then what pass 2 reads), the partials of one
// block (24 bytes × block side × CTA tiles across: ≤ 3 MB per direction on tensor cores,
// ≤ 6 MB for 'fp32'), and in pass 2 the H block (≤ 4096² in the input dtype) as the sigmoid.
// Every launch goes to one stream in a fixed order: the same bits on every run.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backward_gemms.cuh"
#include "request_prep.cuh"
#include "sigmoid_epilogue.cuh"
#include "softmax_epilogue.cuh"
#include "tile_gemm.cuh"

namespace siglip::cuda {
namespace {

constexpr int64_t kPairBlock = 4096;  // as fused_sigmoid.cu
constexpr int kLineThreads = 256;

__global__ void initLineStatsKernel(LineStats* stats, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) stats[i] = LineStats{-INFINITY, 0, 0.0, 0.0};
}

// stats[i] ← stats[i] merged with parts[p·lines + i] for p = 0, 1, …, partCount − 1, in that order.
__global__ void mergeLinePartialsKernel(const LineStats* parts, int64_t lines, int64_t partCount, double t,
                                        LineStats* stats) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= lines) return;
  LineStats s = stats[i];
  for (int64_t p = 0; p < partCount; ++p) mergeLineStats(t, s, parts[p * lines + i]);
  stats[i] = s;
}

// As LineStats::finite() of chunked_softmax.cpp: false when a similarity was not a finite
// float32 (the GEMM overflowed on huge embeddings), which leaves the statistics junk.
bool finiteLines(const std::vector<LineStats>& lines) {
  for (const LineStats& l : lines)
    if (!std::isfinite(l.maxS) || !std::isfinite(l.sum) || !(l.sum > 0) || !std::isfinite(l.positiveSumS)) return false;
  return true;
}

// As LineStats::crossEntropySum() of chunked_softmax.cpp: Σ over the lines of
// CE = log Σ + t·(max S − mean positive S), and what pass 2 reads of each line.
double crossEntropySum(const std::vector<LineStats>& lines, double t, LineGradStats* grad) {
  double total = 0;
  for (size_t k = 0; k < lines.size(); ++k) {
    const LineStats& l = lines[k];
    const double count = double(l.positives);
    const double logSumExact = std::log(l.sum);
    grad[k] = LineGradStats{l.maxS, float(logSumExact), logSumExact, 1.0 / count};
    total += logSumExact + t * (double(l.maxS) - l.positiveSumS / count);
  }
  return total;
}

template <class T>
LossResult chunkedSoftmax(const CudaLossRequest& req, const DeviceIds& ids, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  if (n <= 0 || m <= 0 || d <= 0)  // validation refuses these; never launch on them
    throw Error(ErrorKind::Internal, "image", "cuda::softmaxLoss (chunked): empty matrices");
  const int device = req.image.device;
  const T* x = static_cast<const T*>(req.image.data);
  const T* y = static_cast<const T*>(req.text.data);
  const bool exact = req.precision == Precision::FP32;
  const bool wantGrad = grads.wanted();
  const double temperature = std::exp(req.logitScale);
  const int64_t br = std::min(n, kPairBlock), bc = std::min(m, kPairBlock);
  DeviceGuard guard(device);
  Stream stream(device);
  const cudaStream_t s = stream.get();

  // ---- pass 1: the statistics of every row and column ----
  std::vector<LineStats> lines(size_t(n + m));
  {
    DeviceBuffer stats(device, size_t(n + m) * sizeof(LineStats));
    LineStats* rowStats = static_cast<LineStats*>(stats.data());
    LineStats* colStats = rowStats + n;
    DeviceBuffer rowParts(device, size_t(gemmGridCols(bc, exact)) * size_t(br) * sizeof(LineStats));
    DeviceBuffer colParts(device, size_t(gemmGridRows(br, exact)) * size_t(bc) * sizeof(LineStats));
    launchKernel(initLineStatsKernel, blocksFor(n + m, kLineThreads), kLineThreads, 0, s, rowStats, n + m);
    SIGLIP_CUDA_CHECK_LAUNCH("initLineStatsKernel");
    for (int64_t r0 = 0; r0 < n; r0 += br) {
      const int64_t rows = std::min(br, n - r0);
      for (int64_t c0 = 0; c0 < m; c0 += bc) {
        const int64_t cols = std::min(bc, m - c0);
        SoftmaxStatsEpilogue ep;
        ep.temperature = float(temperature);
        ep.temperatureExact = temperature;
        ep.rowIds = ids.image ? ids.image + r0 : nullptr;
        ep.colIds = ids.text ? ids.text + c0 : nullptr;
        ep.rowOffset = r0;
        ep.colOffset = c0;
        ep.rowPartials = static_cast<LineStats*>(rowParts.data());
        ep.colPartials = static_cast<LineStats*>(colParts.data());
        ep.rowLines = rows;
        ep.colLines = cols;
        launchGemm<T, false, true>(GemmOperands<T>{x + r0 * d, d, y + c0 * d, d, rows, cols, d}, ep, exact, s);
        launchKernel(mergeLinePartialsKernel, blocksFor(rows, kLineThreads), kLineThreads, 0, s,
            ep.rowPartials, rows, gemmGridCols(cols, exact), temperature, rowStats + r0);
        SIGLIP_CUDA_CHECK_LAUNCH("mergeLinePartialsKernel");
        launchKernel(mergeLinePartialsKernel, blocksFor(cols, kLineThreads), kLineThreads, 0, s,
            ep.colPartials, cols, gemmGridRows(rows, exact), temperature, colStats + c0);
        SIGLIP_CUDA_CHECK_LAUNCH("mergeLinePartialsKernel");
      }
    }
    stream.synchronize();
    stats.download(lines.data(), lines.size() * sizeof(LineStats));
  }

  const std::vector<LineStats> rowLines(lines.begin(), lines.begin() + n);
  const std::vector<LineStats> colLines(lines.begin() + n, lines.end());
  if (!finiteLines(rowLines) || !finiteLines(colLines)) {
    throw invalidArgument(ErrorKind::Range, "image.data",
                          "embeddings whose dot products with text are finite float32 numbers",
                          "rows whose dot products overflow float32 (normalise the embeddings)");
  }
  std::vector<LineGradStats> gradLines(size_t(n + m));
  LossResult result;
  result.loss = 0.5 * (crossEntropySum(rowLines, temperature, gradLines.data()) / double(n) +
                       crossEntropySum(colLines, temperature, gradLines.data() + n) / double(m));
  if (!wantGrad) return result;

  // ---- pass 2: H block by block, ∂X, ∂Y and ∂s ----
  DeviceBuffer gradStats(device, gradLines.size() * sizeof(LineGradStats));
  gradStats.upload(gradLines.data(), gradLines.size() * sizeof(LineGradStats));  // ordered before `s` (blocking stream)
  const LineGradStats* rowGrad = static_cast<const LineGradStats*>(gradStats.data());
  const LineGradStats* colGrad = rowGrad + n;
  SIGLIP_CUDA_CHECK(cudaMemsetAsync(grads.image, 0, size_t(n) * size_t(d) * sizeof(float), s));
  SIGLIP_CUDA_CHECK(cudaMemsetAsync(grads.text, 0, size_t(m) * size_t(d) * sizeof(float), s));
  const int64_t ldh = alignedLineStride(bc);  // 16-byte lines, for the pipelined tile GEMM
  DeviceBuffer hBlock(device, size_t(br) * size_t(ldh) * sizeof(T));
  DeviceBuffer partials(device, size_t(gemmBlockCount(br, bc, exact)) * 3 * sizeof(double));
  DeviceBuffer totals(device, 3 * sizeof(double));
  SIGLIP_CUDA_CHECK(cudaMemsetAsync(totals.data(), 0, 3 * sizeof(double), s));
  T* h = static_cast<T*>(hBlock.data());
  double* totalsPtr = static_cast<double*>(totals.data());

  const double rowScale = 1.0 / (2.0 * double(n)), colScale = 1.0 / (2.0 * double(m));
  // |H| ≤ 1/(2N) + 1/(2M): stored as H·storeScale, within ±kGradStoreScale<T> (float16's
  // normal range); the backward GEMMs take ∂L/∂S = t·H = (t / storeScale)·stored.
  const float storeScale = float(double(kGradStoreScale<T>) / (rowScale + colScale));
  const float alpha = float(temperature / double(storeScale));
  // The call's cuBLAS handle, if any, held until return (released before `stream` is destroyed).
  const CublasLease cublas = leaseCublas(device, s, gemmSelection());
  const BackwardGemms<T> backward(cublas, s, exact);

  for (int64_t r0 = 0; r0 < n; r0 += br) {
    const int64_t rows = std::min(br, n - r0);
    for (int64_t c0 = 0; c0 < m; c0 += bc) {
      const int64_t cols = std::min(bc, m - c0);
      SoftmaxGradientEpilogue<T> ep;
      ep.g = h;
      ep.ldg = ldh;
      ep.temperature = float(temperature);
      ep.temperatureExact = temperature;
      ep.rowIds = ids.image ? ids.image + r0 : nullptr;
      ep.colIds = ids.text ? ids.text + c0 : nullptr;
      ep.rowOffset = r0;
      ep.colOffset = c0;
      ep.rowStats = rowGrad + r0;
      ep.colStats = colGrad + c0;
      ep.rowScale = float(rowScale);
      ep.colScale = float(colScale);
      ep.rowScaleExact = rowScale;
      ep.colScaleExact = colScale;
      ep.storeScale = storeScale;
      ep.partials = static_cast<double*>(partials.data());
      launchGemm<T, false, true>(GemmOperands<T>{x + r0 * d, d, y + c0 * d, d, rows, cols, d}, ep, exact, s);
      launchKernel(accumulatePartialsKernel, 1, kAccumulateThreads, 0, s, ep.partials, gemmBlockCount(rows, cols, exact), totalsPtr);
      SIGLIP_CUDA_CHECK_LAUNCH("accumulatePartialsKernel");
      backward.run({h, ldh, x + r0 * d, y + c0 * d, rows, cols, d, grads.image + r0 * d, grads.text + c0 * d, alpha, true});
    }
  }
  stream.synchronize();
  double sums[3];
  totals.download(sums, sizeof sums);
  // ∂L/∂s = Σ H ⊙ logits = t · Σ H ⊙ S.
  result.dLogitScale = temperature * sums[2];
  return result;
}

}  // namespace

LossResult chunkedSoftmaxLossCuda(const CudaLossRequest& request, const DeviceIds& ids, GradientOutputs grads) {
  return dispatchDType(request.image.dtype, [&](auto tag) { return chunkedSoftmax<decltype(tag)>(request, ids, grads); });
}

}  // namespace siglip::cuda
