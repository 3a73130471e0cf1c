#include <string>

#include "request_prep.cuh"

namespace siglip::cuda {
namespace {

// Lowest index of a NaN or Inf, or `count` when there is none (atomicMin keeps the
// answer independent of scheduling).
template <class T>
__global__ void firstNonFiniteKernel(const T* data, int64_t count, unsigned long long* first) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    if (!isfinite(DTypeTraits<T>::toFloat(data[i]))) atomicMin(first, (unsigned long long)i);
  }
}

void checkFiniteOnDevice(const DeviceMatrixView& m, const char* name, cudaStream_t stream) {
  const int64_t count = m.rows * m.cols;
  DeviceBuffer flag(m.device, sizeof(unsigned long long));
  const unsigned long long none = (unsigned long long)count;
  flag.upload(&none, sizeof none);
  const int blocks = int(std::min<int64_t>(4096, (count + 255) / 256));
  dispatchDType(m.dtype, [&](auto tag) {
    using T = decltype(tag);
    launchKernel(firstNonFiniteKernel<T>, blocks, 256, 0, stream, static_cast<const T*>(m.data), count,
                                                        static_cast<unsigned long long*>(flag.data()));
    SIGLIP_CUDA_CHECK_LAUNCH("firstNonFiniteKernel");
    return 0;
  });
  SIGLIP_CUDA_CHECK(cudaStreamSynchronize(stream));
  unsigned long long first = 0;
  flag.download(&first, sizeof first);
  if (first < (unsigned long long)count) {
    const int64_t index = int64_t(first);
    throw invalidArgument(ErrorKind::Range, name, "only finite values",
                          "a NaN or Infinity at index " + std::to_string(index) + " (row " +
                              std::to_string(index / m.cols) + ", column " + std::to_string(index % m.cols) + ")");
  }
}

}  // namespace

// A blocking stream (not cudaStreamNonBlocking) on purpose: a cudaMemcpy from pageable host
// memory may return before its DMA lands, and cudaMemset is asynchronous; both run on the
// legacy default stream, which a blocking stream waits for. Uploads followed by a loss call
// are therefore ordered without extra synchronisation.
Stream::Stream(int device) {
  DeviceGuard guard(device);
  SIGLIP_CUDA_CHECK(cudaStreamCreate(&stream_));
}
Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);
}
void Stream::synchronize() { SIGLIP_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void validateShapes(LossKind kind, MatrixView image, MatrixView text, const int32_t* imageIds, const int32_t* textIds,
                    double logitScale, double logitBias, Method method) {
  LossRequest shape;
  shape.image = image;
  shape.text = text;
  shape.imageIds = imageIds;
  shape.textIds = textIds;
  shape.logitScale = logitScale;
  shape.logitBias = logitBias;
  shape.method = method;
  shape.threads = 1;
  validateLossRequest(kind, shape, DataScan::Skip);
}

void validateCudaRequest(LossKind kind, const CudaLossRequest& req, const GradientOutputs& grads) {
  requireDevice(req.image.device);
  // Shapes, ids and options by the same rules (and messages) as the CPU; data lives on the
  // GPU, so the finite-value scan is done there instead.
  validateShapes(kind, MatrixView{static_cast<const float*>(req.image.data), req.image.rows, req.image.cols},
                 MatrixView{static_cast<const float*>(req.text.data), req.text.rows, req.text.cols}, req.imageIds,
                 req.textIds, req.logitScale, req.logitBias, req.method);

  if (req.text.dtype != req.image.dtype)
    throw invalidArgument(ErrorKind::Type, "text", std::string("the dtype of image (") + dtypeName(req.image.dtype) + ")",
                          dtypeName(req.text.dtype));
  if (req.text.device != req.image.device)
    throw invalidArgument(ErrorKind::Range, "text", "a matrix on cuda:" + std::to_string(req.image.device) + " (as image)",
                          "one on cuda:" + std::to_string(req.text.device));
  if ((grads.image == nullptr) != (grads.text == nullptr))
    throw Error(ErrorKind::Internal, "grads", "both gradient outputs or neither must be given");
  if (req.precision == Precision::BF16)
    throw invalidArgument(ErrorKind::Range, "options.precision", "'tf32' or 'fp32' on CUDA", "'bf16'");
  if (req.precision == Precision::FP32 && req.image.dtype != DType::Float32)
    throw invalidArgument(ErrorKind::Range, "options.precision", "'fp32' only with float32 matrices",
                          std::string("'fp32' with ") + dtypeName(req.image.dtype));
  if (req.image.rows >= (int64_t(1) << 31) || req.text.rows >= (int64_t(1) << 31))
    throw invalidArgument(ErrorKind::Range, "image", "fewer than 2^31 rows on the GPU", "more");

  DeviceGuard guard(req.image.device);
  Stream stream(req.image.device);
  checkFiniteOnDevice(req.image, "image.data", stream.get());
  checkFiniteOnDevice(req.text, "text.data", stream.get());
}

DeviceIds uploadIds(const CudaLossRequest& req) {
  DeviceIds ids;
  if (!req.imageIds) return ids;
  const size_t n = size_t(req.image.rows), m = size_t(req.text.rows);
  ids.buffer = DeviceBuffer(req.image.device, (n + m) * sizeof(int32_t));
  ids.buffer.upload(req.imageIds, n * sizeof(int32_t));
  ids.buffer.upload(req.textIds, m * sizeof(int32_t), n * sizeof(int32_t));
  ids.image = static_cast<const int32_t*>(ids.buffer.data());
  ids.text = ids.image + n;
  return ids;
}

}  // namespace siglip::cuda
