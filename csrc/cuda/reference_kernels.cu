// The simple CUDA sigmoid loss: the GPU reference of the tiled kernels (as llm.c keeps the
// plain kernel next to the fast one). One thread owns an image row and walks every text
// (computing S_ij by a plain float32 dot product, the pair term, and its ∂X row); a second
// kernel lets one thread own a text row and recomputes the same pairs for ∂Y. No tiles, no
// shared memory, no tensor cores, no atomics: slow, but each line is SPEC.md.
#include <cmath>
#include <vector>

#include "request_prep.cuh"
#include "sigmoid_epilogue.cuh"

namespace siglip::cuda {
namespace {

template <class T>
__device__ float dot(const T* a, const T* b, int64_t d) {
  float s = 0;
  for (int64_t k = 0; k < d; ++k) s = fmaf(DTypeTraits<T>::toFloat(a[k]), DTypeTraits<T>::toFloat(b[k]), s);
  return s;
}

struct SimpleParams {
  int64_t n, m, d;
  float temperature, bias, gradScale;  // gradScale = t / N
  const int32_t* imageIds;
  const int32_t* textIds;
};

template <class T>
__global__ void simpleImageRowKernel(const T* x, const T* y, SimpleParams p, float* dx, double* rowSums) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n) return;
  double softplus = 0, dLogit = 0, dLogitSim = 0;
  for (int64_t j = 0; j < p.m; ++j) {
    const float s = dot(x + i * p.d, y + j * p.d, p.d);
    float dTerm;
    softplus += sigmoidPairTerm<float>(s, isPositivePair(p.imageIds, p.textIds, i, j, 0, 0), p.temperature, p.bias, &dTerm);
    dLogit += dTerm;
    dLogitSim += double(dTerm) * s;
    if (dx)
      for (int64_t k = 0; k < p.d; ++k) dx[i * p.d + k] += p.gradScale * dTerm * DTypeTraits<T>::toFloat(y[j * p.d + k]);
  }
  rowSums[3 * i] = softplus, rowSums[3 * i + 1] = dLogit, rowSums[3 * i + 2] = dLogitSim;
}

template <class T>
__global__ void simpleTextRowKernel(const T* x, const T* y, SimpleParams p, float* dy) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= p.m) return;
  for (int64_t i = 0; i < p.n; ++i) {
    const float s = dot(x + i * p.d, y + j * p.d, p.d);
    float dTerm;
    sigmoidPairTerm<float>(s, isPositivePair(p.imageIds, p.textIds, i, j, 0, 0), p.temperature, p.bias, &dTerm);
    for (int64_t k = 0; k < p.d; ++k) dy[j * p.d + k] += p.gradScale * dTerm * DTypeTraits<T>::toFloat(x[i * p.d + k]);
  }
}

template <class T>
LossResult simpleSigmoid(const CudaLossRequest& req, const DeviceIds& ids, GradientOutputs grads) {
  const int64_t n = req.image.rows, m = req.text.rows, d = req.image.cols;
  const double temperature = std::exp(req.logitScale);
  DeviceGuard guard(req.image.device);
  Stream stream(req.image.device);
  const SimpleParams p{n, m, d, float(temperature), float(req.logitBias), float(temperature / double(n)), ids.image, ids.text};
  DeviceBuffer rowSums(req.image.device, size_t(n) * 3 * sizeof(double));
  if (grads.wanted()) {
    SIGLIP_CUDA_CHECK(cudaMemsetAsync(grads.image, 0, size_t(n) * d * sizeof(float), stream.get()));
    SIGLIP_CUDA_CHECK(cudaMemsetAsync(grads.text, 0, size_t(m) * d * sizeof(float), stream.get()));
  }
  const T* x = static_cast<const T*>(req.image.data);
  const T* y = static_cast<const T*>(req.text.data);
  launchKernel(simpleImageRowKernel<T>, blocksFor(n, 128), 128, 0, stream.get(), x, y, p, grads.image,
                                                                        static_cast<double*>(rowSums.data()));
  SIGLIP_CUDA_CHECK_LAUNCH("simpleImageRowKernel");
  if (grads.wanted()) {
    launchKernel(simpleTextRowKernel<T>, blocksFor(m, 128), 128, 0, stream.get(), x, y, p, grads.text);
    SIGLIP_CUDA_CHECK_LAUNCH("simpleTextRowKernel");
  }
  stream.synchronize();
  std::vector<double> sums(size_t(n) * 3);
  rowSums.download(sums.data(), sums.size() * sizeof(double));
  double softplus = 0, dLogit = 0, dLogitSim = 0;
  for (int64_t i = 0; i < n; ++i) softplus += sums[3 * i], dLogit += sums[3 * i + 1], dLogitSim += sums[3 * i + 2];
  return sigmoidLossFromSums(softplus, dLogit, dLogitSim, temperature, double(n), grads.wanted());
}

}  // namespace

LossResult sigmoidLossSimple(const CudaLossRequest& request, GradientOutputs grads) {
  validateCudaRequest(LossKind::Sigmoid, request, grads);
  const DeviceIds ids = uploadIds(request);
  return dispatchDType(request.image.dtype, [&](auto tag) { return simpleSigmoid<decltype(tag)>(request, ids, grads); });
}

}  // namespace siglip::cuda
