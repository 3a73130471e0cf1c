// Devices and device memory: what the CUDA backend exposes besides the losses.
#include <atomic>
#include <string>

#include "cuda_common.cuh"

namespace siglip::cuda {

int deviceCount(std::string* reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    if (reason) *reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(status);
    return 0;
  }
  if (reason) *reason = count > 0 ? "" : "no CUDA device found";
  return count;
}

int runtimeVersion() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

int driverVersion() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) return 0;
  return v;
}

void requireDevice(int ordinal) {
  std::string reason;
  const int count = deviceCount(&reason);
  if (ordinal < 0 || ordinal >= count) {
    throw Error(ErrorKind::Range, "options.device",
                "Expected a CUDA device ordinal below " + std::to_string(count) + " for options.device but received " +
                    std::to_string(ordinal) + (reason.empty() ? "" : " (" + reason + ")"));
  }
}

DeviceInfo deviceInfo(int ordinal) {
  requireDevice(ordinal);
  cudaDeviceProp prop{};
  SIGLIP_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
  DeviceInfo info;
  info.ordinal = ordinal;
  info.name = prop.name;
  info.computeMajor = prop.major;
  info.computeMinor = prop.minor;
  DeviceGuard guard(ordinal);
  SIGLIP_CUDA_CHECK(cudaMemGetInfo(&info.freeMemory, &info.totalMemory));
  return info;
}

namespace {
std::atomic<size_t> liveBytes{0};
std::atomic<size_t> peakBytes{0};

void countAllocation(size_t bytes) {
  const size_t now = liveBytes.fetch_add(bytes) + bytes;
  size_t peak = peakBytes.load();
  while (now > peak && !peakBytes.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace

size_t allocatedBytes() { return liveBytes.load(); }
size_t peakAllocatedBytes() { return peakBytes.load(); }
void resetPeakAllocatedBytes() { peakBytes.store(liveBytes.load()); }

DeviceBuffer::DeviceBuffer(int device, size_t bytes) : device_(device) {
  requireDevice(device);
  DeviceGuard guard(device);
  if (bytes == 0) return;
  SIGLIP_CUDA_CHECK(cudaMalloc(&data_, bytes));
  bytes_ = bytes;
  countAllocation(bytes);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : data_(o.data_), bytes_(o.bytes_), device_(o.device_) {
  o.data_ = nullptr, o.bytes_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = o.data_, bytes_ = o.bytes_, device_ = o.device_;
    o.data_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { release(); }

void DeviceBuffer::release() {
  if (!data_) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device_);
  cudaFree(data_);  // never throws from a destructor; a failure here leaves nothing to undo
  cudaSetDevice(previous);
  liveBytes.fetch_sub(bytes_);
  data_ = nullptr;
  bytes_ = 0;
}

static void checkRange(size_t offset, size_t bytes, size_t size, const char* what) {
  if (offset > size || bytes > size - offset)
    throw Error(ErrorKind::Range, what, std::string(what) + ": " + std::to_string(bytes) + " bytes at offset " +
                                            std::to_string(offset) + " exceed the buffer of " + std::to_string(size));
}

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  checkRange(offset, bytes, bytes_, "upload");
  DeviceGuard guard(device_);
  SIGLIP_CUDA_CHECK(cudaMemcpy(static_cast<char*>(data_) + offset, host, bytes, cudaMemcpyHostToDevice));
  // From pageable memory cudaMemcpy returns once the source is staged, before the copy has
  // landed, and only streams that synchronise with the legacy stream are ordered after it. A
  // non-blocking stream (the NCCL transport's) reading the buffer next could see old bytes:
  // found by the CUDA emulation (siglip_ring_check --nccl, streams newest-first). The upload
  // is complete on return.
  SIGLIP_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  checkRange(offset, bytes, bytes_, "download");
  DeviceGuard guard(device_);
  SIGLIP_CUDA_CHECK(cudaMemcpy(host, static_cast<const char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost));
}

void DeviceBuffer::zero() {
  if (!data_) return;
  DeviceGuard guard(device_);
  SIGLIP_CUDA_CHECK(cudaMemset(data_, 0, bytes_));
}

}  // namespace siglip::cuda
