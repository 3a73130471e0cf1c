// The CUDA backend for callers that hold host memory (the N-API addon, the C++ checks): a loss
// call whose inputs are device matrices or host float32 data, and whose gradients stay on the
// device or come back into host arrays. Here are the uploads, the data scans, the call and
// the downloads, so that everything between "values in memory" and "a result" is backend
// code a C++ check can run without Node. Plain C++ (no CUDA headers).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "cuda_backend.h"

namespace siglip::cuda {

// A matrix on a GPU that shares the ownership of its memory: the addon's DeviceMatrix handle,
// a call in flight that reads it, a gradient left on the device.
struct SharedMatrix {
  std::shared_ptr<DeviceBuffer> buffer;
  int64_t rows = 0;
  int64_t cols = 0;
  DType dtype = DType::Float32;
  int device = 0;
  DeviceMatrixView view() const;
};

// One input: a matrix already on the device (matrix.buffer set), or rows × cols host float32
// values (`host`; matrix gives the shape, dtype Float32 and the device) uploaded for the call.
struct HostOrDeviceInput {
  SharedMatrix matrix;
  const float* host = nullptr;
  static HostOrDeviceInput fromHost(const float* data, int64_t rows, int64_t cols, int device);
};

struct HostLossRequest {
  LossKind kind = LossKind::Sigmoid;
  HostOrDeviceInput image, text;
  const int32_t* imageIds = nullptr;  // host arrays, or null
  const int32_t* textIds = nullptr;
  double logitScale = 0;
  double logitBias = 0;
  Method method = Method::Fused;
  Precision precision = Precision::TF32;
  int device = 0;
  bool wantGrad = false;
  bool gradientsOnDevice = false;
  float* hostGradImage = nullptr;  // N×D and M×D when the gradients go to the host
  float* hostGradText = nullptr;
};

struct HostLossResult {
  LossResult result;
  SharedMatrix gradImage, gradText;  // float32, when the gradients stay on the device
};

// 'fp32' only with float32 matrices (siglip::Error naming options.precision).
void checkPrecision(Precision precision, DType dtype);

// What can be checked without reading the data or allocating: shapes, ids, scalars and method
// (the CPU's rules and messages), text's dtype against image's, 'fp32' only with float32.
// Throws siglip::Error naming the argument. lossFromHost checks it first too.
void checkHostLoss(const HostLossRequest& request);

// Uploads host inputs to temporary float32 device buffers, computes (the backend scans the
// data for NaN/Inf on the GPU: "image.data", "text.data"), and downloads the gradients into
// the host arrays, or returns them as device matrices. Synchronous.
HostLossResult lossFromHost(const HostLossRequest& request);

// One ring rank's shard made resident on its GPU, for a ring backend that takes device
// pointers: host inputs scanned on the host (NaN/Inf, named `imageName` / `textName`, e.g.
// "imageShards[2].data") and uploaded as float32, device inputs used as they are, the ids
// uploaded (image's then text's, in one buffer), and the float32 gradient buffers allocated
// when wanted.
struct ResidentShard {
  SharedMatrix image, text;
  std::shared_ptr<DeviceBuffer> ids;  // null without ids
  SharedMatrix gradImage, gradText;   // buffer null unless gradients are wanted
  const int32_t* imageIds() const;
  const int32_t* textIds() const;
};
ResidentShard makeShardResident(const HostOrDeviceInput& image, const HostOrDeviceInput& text, const int32_t* imageIds,
                                const int32_t* textIds, bool wantGrad, const std::string& imageName,
                                const std::string& textName);

// The gradients into host arrays (N×D and M×D float32), freeing the device ones.
void downloadGradients(SharedMatrix& gradImage, SharedMatrix& gradText, float* hostImage, float* hostText);

}  // namespace siglip::cuda
