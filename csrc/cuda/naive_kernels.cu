// The materialising CUDA baselines (what eager PyTorch does): the N×M float32 similarity
// matrix is written to memory, the loss is an elementwise pass over it, the gradient matrix
// G (N×M, input dtype) is written too, then two GEMMs. Same GEMMs (tile GEMM, backward GEMMs)
// and epilogue math as the fused path, so benchmarks compare memory schedules, not kernels.
#include <cmath>
#include <vector>

#include "backward_gemms.cuh"
#include "request_prep.cuh"
#include "sigmoid_epilogue.cuh"
#include "tile_gemm.cuh"

namespace siglip::cuda {
namespace {

constexpr int kElementwiseThreads = 256;
constexpr int kElementwiseBlocks = 1024;  // fixed grid: per-block partials in a fixed order

// Applies an epilogue to every element of a materialised matrix (grid-stride).
template <class Epilogue>
__global__ void applyEpilogueKernel(const float* s, int64_t rows, int64_t cols, Epilogue ep) {
  typename Epilogue::Sums sums{};
  const int64_t count = rows * cols;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x)
    ep.apply(e / cols, e % cols, s[e], sums);
  ep.finish(sums);
}

// ∂X = alpha·G·Y and ∂Y = alpha·Gᵀ·X over the whole N×M matrix G (a cuBLAS handle, if one
// runs them, is released on return, which waits for the stream).
template <class T>
void backwardGemms(const CudaLossRequest& req, const T* g, float alpha, GradientOutputs grads, cudaStream_t stream) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  const T* x = static_cast<const T*>(req.image.data);
  const T* y = static_cast<const T*>(req.text.data);
  const CublasLease cublas = leaseCublas(req.image.device, stream, gemmSelection());
  BackwardGemms<T>(cublas, stream, req.precision == Precision::FP32)
      .run({g, m, x, y, n, m, d, grads.image, grads.text, alpha, false});
}

template <class T>
DeviceBuffer materialiseSimilarities(const CudaLossRequest& req, cudaStream_t stream) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  DeviceBuffer s(req.image.device, size_t(n) * size_t(m) * sizeof(float));
  launchGemm<T, false, true>(GemmOperands<T>{static_cast<const T*>(req.image.data), d, static_cast<const T*>(req.text.data), d, n, m, d},
                             StoreEpilogue{static_cast<float*>(s.data()), m, 1.0f, false}, req.precision == Precision::FP32,
                             stream);
  return s;
}

template <class T>
LossResult naiveSigmoid(const CudaLossRequest& req, const DeviceIds& ids, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows;
  const double temperature = std::exp(req.logitScale);
  DeviceGuard guard(req.image.device);
  Stream stream(req.image.device);
  DeviceBuffer s = materialiseSimilarities<T>(req, stream.get());
  DeviceBuffer g(req.image.device, grads.wanted() ? size_t(n) * size_t(m) * sizeof(T) : 0);
  DeviceBuffer partials(req.image.device, size_t(kElementwiseBlocks) * 3 * sizeof(double));
  SigmoidEpilogue<T> ep;
  ep.g = grads.wanted() ? static_cast<T*>(g.data()) : nullptr;
  ep.ldg = m;
  ep.temperature = float(temperature);
  ep.bias = float(req.logitBias);
  ep.rowIds = ids.image;
  ep.colIds = ids.text;
  ep.partials = static_cast<double*>(partials.data());
  launchKernel(applyEpilogueKernel<SigmoidEpilogue<T>>, kElementwiseBlocks, kElementwiseThreads, 0, stream.get(), static_cast<const float*>(s.data()), n, m, ep);
  SIGLIP_CUDA_CHECK_LAUNCH("applyEpilogueKernel");
  if (grads.wanted())
    backwardGemms<T>(req, static_cast<const T*>(g.data()), float(temperature / double(n)) / kGradStoreScale<T>, grads,
                     stream.get());
  stream.synchronize();
  std::vector<double> p(size_t(kElementwiseBlocks) * 3);
  partials.download(p.data(), p.size() * sizeof(double));
  double sums[3] = {0, 0, 0};
  for (int b = 0; b < kElementwiseBlocks; ++b)
    for (int q = 0; q < 3; ++q) sums[q] += p[3 * b + q];
  return sigmoidLossFromSums(sums[0], sums[1], sums[2], temperature, double(n), grads.wanted());
}

// ---- softmax ------------------------------------------------------------------------

// Row statistics of the logits t·S: max and log Σ exp(logit − max), one block per row.
__global__ void softmaxRowStatsKernel(const float* s, int64_t cols, float t, float* rowMax, double* rowLogSum) {
  __shared__ float sharedMax[32];
  __shared__ double sharedSum[32];
  const float* row = s + int64_t(blockIdx.x) * cols;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) mx = fmaxf(mx, t * row[j]);
  for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if (threadIdx.x % 32 == 0) sharedMax[threadIdx.x / 32] = mx;
  __syncthreads();
  mx = sharedMax[0];
  for (int w = 1; w < int(blockDim.x / 32); ++w) mx = fmaxf(mx, sharedMax[w]);
  double sum = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(t * row[j] - mx);
  sum = warpSum(sum);
  if (threadIdx.x % 32 == 0) sharedSum[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < int(blockDim.x / 32); ++w) total += sharedSum[w];
    rowMax[blockIdx.x] = mx;
    rowLogSum[blockIdx.x] = log(total);
  }
}

// Column statistics, one thread per column (rows are walked in order: coalesced).
__global__ void softmaxColumnStatsKernel(const float* s, int64_t rows, int64_t cols, float t, float* colMax, double* colLogSum) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  float mx = -INFINITY;
  for (int64_t i = 0; i < rows; ++i) mx = fmaxf(mx, t * s[i * cols + j]);
  double sum = 0;
  for (int64_t i = 0; i < rows; ++i) sum += expf(t * s[i * cols + j] - mx);
  colMax[j] = mx;
  colLogSum[j] = log(sum);
}

// Σ over a row's (column's) positives of (max − logit), and the count of positives.
__global__ void softmaxPositiveGapKernel(const float* s, int64_t rows, int64_t cols, float t, const int32_t* ownIds,
                                         const int32_t* otherIds, bool byColumn, const float* ownMax, double* gap,
                                         int32_t* count) {
  const int64_t a = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t own = byColumn ? cols : rows, other = byColumn ? rows : cols;
  if (a >= own) return;
  double g = 0;
  int32_t c = 0;
  for (int64_t b = 0; b < other; ++b) {
    if (ownIds ? ownIds[a] != otherIds[b] : a != b) continue;
    const float logit = t * (byColumn ? s[b * cols + a] : s[a * cols + b]);
    g += double(ownMax[a]) - logit;
    ++c;
  }
  gap[a] = g;
  count[a] = c;
}

struct SoftmaxGradParams {
  int64_t rows, cols;
  float t;
  const float *rowMax, *colMax;
  const double *rowLogSum, *colLogSum;
  const int32_t *rowCount, *colCount;
  const int32_t *imageIds, *textIds;
  float colWeight;  // N/M: (P_col − T_col)/(2M) expressed in units of 1/(2N)
  float storeScale;  // kGradStoreScale / (1 + colWeight): keeps |stored| ≤ kGradStoreScale
};

// With h2n = 2N·H = (P_row − T_row) + (N/M)(P_col − T_col) ∈ [−(1 + N/M), 1 + N/M], writes
// h2n·storeScale (within float16 range) and sums Σ h2n·logit per block.
template <class T>
__global__ void softmaxGradientKernel(const float* s, SoftmaxGradParams p, T* g, double* partials) {
  double dScale = 0;
  const int64_t count = p.rows * p.cols;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / p.cols, j = e % p.cols;
    const float logit = p.t * s[e];
    double pr, pc;
    if (isPositivePair(p.imageIds, p.textIds, i, j, 0, 0)) {
      // P − T recomputed in double: P ≈ T once training converges.
      pr = exp(double(logit - p.rowMax[i]) - p.rowLogSum[i]) - 1.0 / p.rowCount[i];
      pc = exp(double(logit - p.colMax[j]) - p.colLogSum[j]) - 1.0 / p.colCount[j];
    } else {
      pr = expf((logit - p.rowMax[i]) - float(p.rowLogSum[i]));
      pc = expf((logit - p.colMax[j]) - float(p.colLogSum[j]));
    }
    const double h2n = pr + p.colWeight * pc;  // 2N·H
    dScale += h2n * logit;
    g[e] = DTypeTraits<T>::fromFloat(float(h2n) * p.storeScale);
  }
  PairSums sums;
  sums.dLogitSim = dScale;
  writeBlockSums(sums, partials + 3 * blockIdx.x);
}

template <class T>
LossResult naiveSoftmax(const CudaLossRequest& req, const DeviceIds& ids, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows;
  const int device = req.image.device;
  const float t = float(std::exp(req.logitScale));
  DeviceGuard guard(device);
  Stream stream(device);
  DeviceBuffer s = materialiseSimilarities<T>(req, stream.get());
  const float* sp = static_cast<const float*>(s.data());
  // Row and column statistics: max (float), log-sum (double), gap (double), count (int32).
  DeviceBuffer rowMax(device, n * 4), colMax(device, m * 4), rowLogSum(device, n * 8), colLogSum(device, m * 8);
  DeviceBuffer rowGap(device, n * 8), colGap(device, m * 8), rowCount(device, n * 4), colCount(device, m * 4);
  launchKernel(softmaxRowStatsKernel, unsigned(n), 256, 0, stream.get(), sp, m, t, static_cast<float*>(rowMax.data()),
                                                               static_cast<double*>(rowLogSum.data()));
  SIGLIP_CUDA_CHECK_LAUNCH("softmaxRowStatsKernel");
  launchKernel(softmaxColumnStatsKernel, blocksFor(m, 128), 128, 0, stream.get(), sp, n, m, t, static_cast<float*>(colMax.data()),
                                                                        static_cast<double*>(colLogSum.data()));
  SIGLIP_CUDA_CHECK_LAUNCH("softmaxColumnStatsKernel");
  launchKernel(softmaxPositiveGapKernel, blocksFor(n, 128), 128, 0, stream.get(),
      sp, n, m, t, ids.image, ids.text, false, static_cast<const float*>(rowMax.data()), static_cast<double*>(rowGap.data()),
      static_cast<int32_t*>(rowCount.data()));
  SIGLIP_CUDA_CHECK_LAUNCH("softmaxPositiveGapKernel");
  launchKernel(softmaxPositiveGapKernel, blocksFor(m, 128), 128, 0, stream.get(),
      sp, n, m, t, ids.text, ids.image, true, static_cast<const float*>(colMax.data()), static_cast<double*>(colGap.data()),
      static_cast<int32_t*>(colCount.data()));
  SIGLIP_CUDA_CHECK_LAUNCH("softmaxPositiveGapKernel");
  stream.synchronize();

  std::vector<double> rls(n), cls(m), rg(n), cg(m);
  std::vector<int32_t> rc(n), cc(m);
  rowLogSum.download(rls.data(), n * 8), colLogSum.download(cls.data(), m * 8);
  rowGap.download(rg.data(), n * 8), colGap.download(cg.data(), m * 8);
  rowCount.download(rc.data(), n * 4), colCount.download(cc.data(), m * 4);
  double rowTerms = 0, colTerms = 0;
  for (int64_t i = 0; i < n; ++i) rowTerms += rls[i] + rg[i] / rc[i];
  for (int64_t j = 0; j < m; ++j) colTerms += cls[j] + cg[j] / cc[j];
  LossResult result;
  result.loss = 0.5 * (rowTerms / double(n) + colTerms / double(m));
  if (!grads.wanted()) return result;

  DeviceBuffer g(device, size_t(n) * size_t(m) * sizeof(T));
  DeviceBuffer partials(device, size_t(kElementwiseBlocks) * 3 * sizeof(double));
  const SoftmaxGradParams p{n, m, t,
                            static_cast<const float*>(rowMax.data()), static_cast<const float*>(colMax.data()),
                            static_cast<const double*>(rowLogSum.data()), static_cast<const double*>(colLogSum.data()),
                            static_cast<const int32_t*>(rowCount.data()), static_cast<const int32_t*>(colCount.data()),
                            ids.image, ids.text, float(double(n) / double(m)),
                            float(kGradStoreScale<T> / (1.0 + double(n) / double(m)))};
  launchKernel(softmaxGradientKernel<T>, kElementwiseBlocks, kElementwiseThreads, 0, stream.get(),
      sp, p, static_cast<T*>(g.data()), static_cast<double*>(partials.data()));
  SIGLIP_CUDA_CHECK_LAUNCH("softmaxGradientKernel");
  // ∂L/∂S = t·H = t/(2N) · (2N·H): the stored scale comes out of alpha.
  backwardGemms<T>(req, static_cast<const T*>(g.data()), float(double(t) / (2.0 * double(n)) / double(p.storeScale)),
                   grads, stream.get());
  stream.synchronize();
  std::vector<double> parts(size_t(kElementwiseBlocks) * 3);
  partials.download(parts.data(), parts.size() * sizeof(double));
  double dScale = 0;
  for (int b = 0; b < kElementwiseBlocks; ++b) dScale += parts[3 * b + 2];
  result.dLogitScale = dScale / (2.0 * double(n));
  return result;
}

}  // namespace

LossResult naiveSigmoidLossCuda(const CudaLossRequest& request, const DeviceIds& ids, GradientOutputs grads) {
  return dispatchDType(request.image.dtype, [&](auto tag) { return naiveSigmoid<decltype(tag)>(request, ids, grads); });
}

LossResult chunkedSoftmaxLossCuda(const CudaLossRequest& request, const DeviceIds& ids, GradientOutputs grads);

// Method::Chunked runs chunked_softmax.cu, Method::Naive the baseline above.
LossResult softmaxLoss(const CudaLossRequest& request, GradientOutputs grads) {
  validateCudaRequest(LossKind::Softmax, request, grads);
  const DeviceIds ids = uploadIds(request);
  if (request.method == Method::Chunked) return chunkedSoftmaxLossCuda(request, ids, grads);
  return dispatchDType(request.image.dtype, [&](auto tag) { return naiveSoftmax<decltype(tag)>(request, ids, grads); });
}

}  // namespace siglip::cuda
