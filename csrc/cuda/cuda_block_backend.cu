// CudaBlockBackend: the ring's memory and block computation on one GPU (see the header).
// Everything runs on the backend's own non-blocking stream and is waited for before the
// call returns, so the ring thread's program order is the GPU's order too.
#include <string>

#include "cuda_common.cuh"
#include "cuda_block_backend.h"

namespace siglip::cuda {
namespace {

__global__ void addKernel(float* dst, const float* src, int64_t count) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

void checkDevice(int device) {
  std::string reason;
  const int count = deviceCount(&reason);
  if (device < 0 || device >= count)
    throw Error(ErrorKind::Range, "options.device",
                "Expected a CUDA device ordinal below " + std::to_string(count) + " for options.device but received " +
                    std::to_string(device) + (reason.empty() ? "" : " (" + reason + ")"));
}

// The device a pointer's memory is on, or -1 for host memory.
int deviceOf(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged ? attributes.device : -1;
}

// A copy that has finished on return, on this thread's default stream (independent of the
// other ranks' threads). cudaMemcpyDefault: unified addressing tells host from device.
void copyNow(void* dst, const void* src, size_t bytes, int device) {
  if (bytes == 0) return;
  DeviceGuard guard(device);
  SIGLIP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cudaStreamPerThread));
  SIGLIP_CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread));
}

class DeviceMessageMemory : public MessageMemory {
 public:
  std::shared_ptr<void> copyOut(const void* data, size_t bytes) override {
    if (bytes == 0) return nullptr;  // an empty message: nothing to keep
    int device = deviceOf(data);
    if (device < 0) SIGLIP_CUDA_CHECK(cudaGetDevice(&device));  // host data: keep it on the current GPU
    auto buffer = std::make_shared<DeviceBuffer>(device, bytes);
    copyNow(buffer->data(), data, bytes, device);
    return std::shared_ptr<void>(buffer, buffer->data());
  }
  void copyIn(void* data, const void* message, size_t bytes) override {
    if (bytes == 0) return;
    int device = deviceOf(data);
    if (device < 0) device = deviceOf(message);
    if (device < 0) SIGLIP_CUDA_CHECK(cudaGetDevice(&device));
    copyNow(data, message, bytes, device);
  }
};

}  // namespace

std::shared_ptr<MessageMemory> deviceMessageMemory() { return std::make_shared<DeviceMessageMemory>(); }

CudaBlockBackend::CudaBlockBackend(int device, DType dtype, Precision precision)
    : device_(device), dtype_(dtype), precision_(precision) {
  checkDevice(device);
  if (precision == Precision::BF16)
    throw invalidArgument(ErrorKind::Range, "options.precision", "'tf32' or 'fp32' on CUDA", "'bf16'");
  if (precision == Precision::FP32 && dtype != DType::Float32)
    throw invalidArgument(ErrorKind::Range, "options.precision", "'fp32' only with float32 matrices",
                          std::string("'fp32' with ") + dtypeName(dtype));
  DeviceGuard guard(device);
  cudaStream_t stream = nullptr;
  // Blocking (not cudaStreamNonBlocking): it must wait for uploads on the legacy stream.
  SIGLIP_CUDA_CHECK(cudaStreamCreate(&stream));
  stream_ = stream;
}

CudaBlockBackend::~CudaBlockBackend() {
  if (!stream_) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);  // never throws from a destructor
  cudaStreamDestroy(stream_);
  cudaSetDevice(previous);
}

void CudaBlockBackend::synchronize() { SIGLIP_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* CudaBlockBackend::allocate(size_t bytes) {
  buffers_.emplace_back(device_, bytes ? bytes : 1);
  allocated_ += bytes;
  return buffers_.back().data();
}

void CudaBlockBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  DeviceGuard guard(device_);
  SIGLIP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
  synchronize();
}

void CudaBlockBackend::zero(void* dst, size_t bytes) {
  if (bytes == 0) return;
  DeviceGuard guard(device_);
  SIGLIP_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
  synchronize();
}

void CudaBlockBackend::add(float* dst, const float* src, int64_t count) {
  if (count <= 0) return;
  DeviceGuard guard(device_);
  const int blocks = int(std::min<int64_t>(4096, (count + 255) / 256));
  launchKernel(addKernel, blocks, 256, 0, stream_, dst, src, count);
  SIGLIP_CUDA_CHECK_LAUNCH("addKernel");
  synchronize();
}

PairSums CudaBlockBackend::computeBlock(const PairBlock& block) {
  PairBlock onThisDevice = block;
  onThisDevice.precision = precision_;
  return sigmoidBlock(onThisDevice, stream_, &workspace_);
}

}  // namespace siglip::cuda
