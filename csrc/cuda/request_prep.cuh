// What every CUDA loss driver does first: validate the request (shapes and options by the
// core's rules, dtypes and devices here, non-finite values by a scan on the GPU) and copy
// the label ids to the device.
#pragma once
#include "cuda_common.cuh"

namespace siglip::cuda {

void validateCudaRequest(LossKind kind, const CudaLossRequest& request, const GradientOutputs& grads);

// Shapes, ids and options by the CPU's rules and messages (core's validateLossRequest), the data
// not scanned: it is on the GPU, or is scanned there once uploaded (host_loss.cu). The views'
// data only has to be non-null.
void validateShapes(LossKind kind, MatrixView image, MatrixView text, const int32_t* imageIds, const int32_t* textIds,
                    double logitScale, double logitBias, Method method);

struct DeviceIds {
  DeviceBuffer buffer;
  const int32_t* image = nullptr;  // null without ids
  const int32_t* text = nullptr;
};
DeviceIds uploadIds(const CudaLossRequest& request);

// A stream of our own per call (blocking: it waits for work on the legacy default stream).
class Stream {
 public:
  explicit Stream(int device);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize();

 private:
  cudaStream_t stream_ = nullptr;
};

// Calls fn(T{}) with T the request's element type: float, __nv_bfloat16 or __half.
template <class Fn>
auto dispatchDType(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::BFloat16: return fn(__nv_bfloat16{});
    case DType::Float16: return fn(__half{});
    default: return fn(float{});
  }
}

}  // namespace siglip::cuda
