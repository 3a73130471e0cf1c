// Host memory in, a result out (host_loss.h): uploads, scans, the call and the downloads.
// Host code only; the kernels are the backend's own (cuda_backend.h).
#include "host_loss.h"

#include <string>

#include "../core/loss_request.h"
#include "request_prep.cuh"

namespace siglip::cuda {
namespace {

size_t floatBytes(int64_t rows, int64_t cols) { return size_t(rows) * size_t(cols) * sizeof(float); }

// The input as a device matrix: itself, or its host values in a new float32 buffer.
SharedMatrix resident(const HostOrDeviceInput& input) {
  SharedMatrix m = input.matrix;
  if (m.buffer) return m;
  const size_t bytes = floatBytes(m.rows, m.cols);
  m.buffer = std::make_shared<DeviceBuffer>(m.device, bytes);
  m.buffer->upload(input.host, bytes);
  m.dtype = DType::Float32;
  return m;
}

SharedMatrix float32Matrix(int device, int64_t rows, int64_t cols) {
  return SharedMatrix{std::make_shared<DeviceBuffer>(device, floatBytes(rows, cols)), rows, cols, DType::Float32,
                      device};
}

const float* shapeData(const HostOrDeviceInput& input) {
  // Only checked for null by validateLossRequest (DataScan::Skip reads no data).
  return input.host != nullptr ? input.host : static_cast<const float*>(input.matrix.buffer->data());
}

}  // namespace

DeviceMatrixView SharedMatrix::view() const {
  DeviceMatrixView v;
  v.data = buffer ? buffer->data() : nullptr;
  v.rows = rows;
  v.cols = cols;
  v.dtype = dtype;
  v.device = device;
  return v;
}

HostOrDeviceInput HostOrDeviceInput::fromHost(const float* data, int64_t rows, int64_t cols, int device) {
  HostOrDeviceInput input;
  input.host = data;
  input.matrix = SharedMatrix{nullptr, rows, cols, DType::Float32, device};
  return input;
}

void checkHostLoss(const HostLossRequest& r) {
  const SharedMatrix& x = r.image.matrix;
  const SharedMatrix& y = r.text.matrix;
  validateShapes(r.kind, MatrixView{shapeData(r.image), x.rows, x.cols}, MatrixView{shapeData(r.text), y.rows, y.cols},
                 r.imageIds, r.textIds, r.logitScale, r.logitBias, r.method);
  if (y.dtype != x.dtype) {
    throw invalidArgument(ErrorKind::Type, "text", std::string("a matrix of the dtype of image (") + dtypeName(x.dtype) + ")",
                          std::string("one of dtype ") + dtypeName(y.dtype));
  }
  checkPrecision(r.precision, x.dtype);
}

void checkPrecision(Precision precision, DType dtype) {
  if (precision == Precision::FP32 && dtype != DType::Float32) {
    throw invalidArgument(ErrorKind::Range, "options.precision", "'tf32' for 16-bit matrices ('fp32' needs float32 matrices)",
                          std::string("the string 'fp32' with ") + dtypeName(dtype) + " matrices");
  }
}

HostLossResult lossFromHost(const HostLossRequest& r) {
  checkHostLoss(r);
  // Host inputs go to temporary float32 device buffers, freed when this returns.
  const SharedMatrix image = resident(r.image);
  const SharedMatrix text = resident(r.text);
  CudaLossRequest request;
  request.image = image.view();
  request.text = text.view();
  request.imageIds = r.imageIds;
  request.textIds = r.textIds;
  request.logitScale = r.logitScale;
  request.logitBias = r.logitBias;
  request.method = r.method;
  request.precision = r.precision;

  HostLossResult out;
  GradientOutputs grads;
  if (r.wantGrad) {
    out.gradImage = float32Matrix(r.device, image.rows, image.cols);
    out.gradText = float32Matrix(r.device, text.rows, text.cols);
    grads.image = static_cast<float*>(out.gradImage.buffer->data());
    grads.text = static_cast<float*>(out.gradText.buffer->data());
  }
  out.result = r.kind == LossKind::Sigmoid ? sigmoidLoss(request, grads) : softmaxLoss(request, grads);
  if (r.wantGrad && !r.gradientsOnDevice) downloadGradients(out.gradImage, out.gradText, r.hostGradImage, r.hostGradText);
  return out;
}

const int32_t* ResidentShard::imageIds() const { return ids ? static_cast<const int32_t*>(ids->data()) : nullptr; }
const int32_t* ResidentShard::textIds() const { return ids ? imageIds() + image.rows : nullptr; }

ResidentShard makeShardResident(const HostOrDeviceInput& image, const HostOrDeviceInput& text, const int32_t* imageIds,
                                const int32_t* textIds, bool wantGrad, const std::string& imageName,
                                const std::string& textName) {
  // Host inputs are scanned here; device inputs are not (lib/ring/base.ts, Ring.nccl, says why).
  if (!image.matrix.buffer) checkFinite(MatrixView{image.host, image.matrix.rows, image.matrix.cols}, imageName);
  if (!text.matrix.buffer) checkFinite(MatrixView{text.host, text.matrix.rows, text.matrix.cols}, textName);
  ResidentShard s;
  s.image = resident(image);
  s.text = resident(text);
  const int device = s.image.device;
  const size_t n = size_t(s.image.rows), m = size_t(s.text.rows);
  if (imageIds) {
    s.ids = std::make_shared<DeviceBuffer>(device, (n + m) * sizeof(int32_t));
    s.ids->upload(imageIds, n * sizeof(int32_t));
    s.ids->upload(textIds, m * sizeof(int32_t), n * sizeof(int32_t));
  }
  if (wantGrad) {
    s.gradImage = float32Matrix(device, s.image.rows, s.image.cols);
    s.gradText = float32Matrix(device, s.text.rows, s.image.cols);
  }
  return s;
}

void downloadGradients(SharedMatrix& gradImage, SharedMatrix& gradText, float* hostImage, float* hostText) {
  gradImage.buffer->download(hostImage, gradImage.buffer->bytes());
  gradText.buffer->download(hostText, gradText.buffer->bytes());
  gradImage.buffer.reset();
  gradText.buffer.reset();
}

}  // namespace siglip::cuda
