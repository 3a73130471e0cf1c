// One rank per process: MPI (host shards, CPU) and NCCL (GPU). Reads one rank's call on the
// JS thread (SingleRankCall), runs it in SingleRankWorker (runMpiRank / runNcclRank), and
// connects an NCCL ring (NcclConnectWorker). A failure breaks the ring.
#include "ring_single_rank.h"

#include <exception>
#include <string>
#include <utility>

#include "convert.h"
#include "core/errors.h"
#include "ring/ring_sigmoid.h"
#if defined(SIGLIP_WITH_CUDA)
#include "cuda/cuda_backend.h"
#include "cuda/cuda_ring_backend.h"
#include "cuda_matrix.h"
#include "ring/nccl_transport.h"
#endif

namespace siglip::addon::ring_internal {
namespace {

// One rank's call. For MPI the shard is host memory; for NCCL each input is a device matrix
// or host float32 data uploaded for the call.
struct SingleRankCall {
  ring::RingShard shard;  // host views (MPI; NCCL host inputs)
  int64_t idsImageRows = 0, idsTextRows = 0;
  ring::RingOptions options;
  bool wantGrad = false;
  float* hostGradImage = nullptr;
  float* hostGradText = nullptr;
#if defined(SIGLIP_WITH_CUDA)
  DeviceMatrixData image, text;  // NCCL: buffer set for device inputs
  cuda::Precision precision = cuda::Precision::TF32;
  bool gradientsOnDevice = false;
#endif
};

struct SingleRankOutcome {
  LossResult result;
  ring::RingStats stats;
#if defined(SIGLIP_WITH_CUDA)
  std::shared_ptr<cuda::DeviceBuffer> gradImage, gradText;  // NCCL, gradients on the device
#endif
};

SingleRankOutcome runMpiRank(ring::Transport& tp, const SingleRankCall& call) {
  SingleRankOutcome out;
  try {
    checkFinite(call.shard.image, "image.data");
    checkFinite(call.shard.text, "text.data");
  } catch (const std::exception& e) {
    tp.abort(e.what());
    throw;
  }
  out.result = ring::ringSigmoidLoss(tp, call.shard, call.options,
                                     GradientOutputs{call.hostGradImage, call.hostGradText}, &out.stats);
  return out;
}

#if defined(SIGLIP_WITH_CUDA)
SingleRankOutcome runNcclRank(ring::Transport& tp, int device, const SingleRankCall& call) {
  SingleRankOutcome out;
  const int64_t d = call.image.cols, n = call.image.rows, m = call.text.rows;
  DeviceMatrixData image = call.image, text = call.text;
  std::shared_ptr<cuda::DeviceBuffer> ids;
  try {
    // Host inputs: scanned here (device inputs are not: see lib/ring.ts), uploaded as float32.
    const auto resident = [&](DeviceMatrixData& input, const MatrixView& host, const char* name) {
      if (input.buffer) return;
      checkFinite(host, name);
      const size_t bytes = size_t(host.rows) * size_t(host.cols) * sizeof(float);
      input.buffer = std::make_shared<cuda::DeviceBuffer>(device, bytes);
      input.buffer->upload(host.data, bytes);
    };
    resident(image, call.shard.image, "image.data");
    resident(text, call.shard.text, "text.data");
    if (call.shard.imageIds) {
      ids = std::make_shared<cuda::DeviceBuffer>(device, size_t(n + m) * sizeof(int32_t));
      ids->upload(call.shard.imageIds, size_t(n) * sizeof(int32_t));
      ids->upload(call.shard.textIds, size_t(m) * sizeof(int32_t), size_t(n) * sizeof(int32_t));
    }
    if (call.wantGrad) {
      out.gradImage = std::make_shared<cuda::DeviceBuffer>(device, size_t(n * d) * sizeof(float));
      out.gradText = std::make_shared<cuda::DeviceBuffer>(device, size_t(m * d) * sizeof(float));
    }
  } catch (const std::exception& e) {
    tp.abort(e.what());
    throw;
  }
  ring::RingShard shard;
  shard.image = MatrixView{static_cast<const float*>(image.buffer->data()), n, d};
  shard.text = MatrixView{static_cast<const float*>(text.buffer->data()), m, d};
  if (ids) {
    shard.imageIds = static_cast<const int32_t*>(ids->data());
    shard.textIds = shard.imageIds + n;
  }
  GradientOutputs grads;
  if (call.wantGrad) grads = GradientOutputs{static_cast<float*>(out.gradImage->data()), static_cast<float*>(out.gradText->data())};
  {
    // The backend lives (its stream and scratch) only for the call.
    std::unique_ptr<cuda::CudaRingBackend> backend;
    try {
      backend = std::make_unique<cuda::CudaRingBackend>(device, image.dtype, call.precision);
    } catch (const std::exception& e) {
      tp.abort(e.what());
      throw;
    }
    out.result = ring::ringSigmoidLoss(tp, *backend, shard, call.options, grads, &out.stats);
  }
  if (call.wantGrad && !call.gradientsOnDevice) {
    out.gradImage->download(call.hostGradImage, out.gradImage->bytes());
    out.gradText->download(call.hostGradText, out.gradText->bytes());
    out.gradImage.reset();
    out.gradText.reset();
  }
  return out;
}
#endif

class SingleRankWorker : public RankCallWorker {
 public:
  SingleRankWorker(Napi::Env env, std::shared_ptr<RingState> state, SingleRankCall call,
                   const std::vector<Napi::Object>& borrowed, Napi::Value gradImage, Napi::Value gradText)
      : RankCallWorker(env, "siglip:ringSigmoidLoss", std::move(state)), call_(std::move(call)) {
    for (const Napi::Object& object : borrowed) borrowed_.push_back(Napi::Persistent(object));
    if (gradImage.IsObject()) {
      gradImage_ = Napi::Persistent(gradImage.As<Napi::Object>());
      gradText_ = Napi::Persistent(gradText.As<Napi::Object>());
    }
  }

 protected:
  void run() override {
    ring::Transport& tp = *state_->endpoints[0];
#if defined(SIGLIP_WITH_CUDA)
    if (state_->kind == RingKind::Nccl) {
      outcome_ = runNcclRank(tp, state_->device, call_);
      return;
    }
#endif
    outcome_ = runMpiRank(tp, call_);
  }

  Napi::Value result(Napi::Env env) override {
    Napi::Value image = env.Undefined(), text = env.Undefined();
    if (call_.wantGrad) {
#if defined(SIGLIP_WITH_CUDA)
      if (call_.gradientsOnDevice) {
        const int64_t d = call_.image.cols;
        image = DeviceMatrixHandle::wrap(env, DeviceMatrixData{outcome_.gradImage, call_.image.rows, d,
                                                               cuda::DType::Float32, state_->device});
        text = DeviceMatrixHandle::wrap(env, DeviceMatrixData{outcome_.gradText, call_.text.rows, d,
                                                              cuda::DType::Float32, state_->device});
      }
#endif
      if (image.IsUndefined()) {
        image = gradImage_.Value();
        text = gradText_.Value();
      }
    }
    return rankResultToJs(env, outcome_.result, outcome_.stats, call_.wantGrad, image, text);
  }

 private:
  SingleRankCall call_;
  SingleRankOutcome outcome_;
  std::vector<Napi::ObjectReference> borrowed_;
  Napi::ObjectReference gradImage_;
  Napi::ObjectReference gradText_;
};

// Label ids of a one-rank call (host Int32Arrays), with the shard's row counts.
void readSingleRankIds(Napi::Object options, SingleRankCall& call, int64_t imageRows, int64_t textRows,
                       std::vector<Napi::Object>& borrowed) {
  Napi::Value imageIds = options.Get("imageIds"), textIds = options.Get("textIds");
  checkIdsTogether(options.Env(), !absent(imageIds), !absent(textIds));
  if (absent(imageIds)) return;
  call.shard.imageIds = readIdArray(imageIds, "options.imageIds", imageRows, borrowed);
  call.shard.textIds = readIdArray(textIds, "options.textIds", textRows, borrowed);
}

// Reads wantGrad (info[3]), allocates the host gradient arrays on the JS thread when the
// gradients go to the host, and queues the call: the tail every one-rank loss shares.
Napi::Value queueSingleRankCall(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state,
                                SingleRankCall call, const std::vector<Napi::Object>& borrowed, int64_t imageElements,
                                int64_t textElements, bool hostGradients) {
  Napi::Env env = info.Env();
  if (!info[3].IsBoolean()) throw typeError(env, "wantGrad", "a boolean", describeValue(info[3]));
  call.wantGrad = info[3].As<Napi::Boolean>().Value();
  Napi::Value gradImage = env.Undefined(), gradText = env.Undefined();
  if (call.wantGrad && hostGradients) {
    Napi::Float32Array gi = allocateFloat32Array(env, imageElements, "the image gradient");
    Napi::Float32Array gt = allocateFloat32Array(env, textElements, "the text gradient");
    call.hostGradImage = gi.Data();
    call.hostGradText = gt.Data();
    gradImage = gi;
    gradText = gt;
  }
  return (new SingleRankWorker(env, state, std::move(call), borrowed, gradImage, gradText))->queue();
}

}  // namespace

Napi::Value mpiSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  SingleRankCall call;
  std::vector<Napi::Object> borrowed;
  MatrixArg image = readMatrix(info[0], "image");
  MatrixArg text = readMatrix(info[1], "text");
  if (text.view.cols != image.view.cols) {
    throw rangeError(env, "text.cols", std::to_string(image.view.cols) + " (image.cols: the same width D)",
                     describeValue(Napi::Number::New(env, double(text.view.cols))));
  }
  borrowed.push_back(image.array);
  borrowed.push_back(text.array);
  call.shard.image = image.view;
  call.shard.text = text.view;
  Napi::Object options = readOptions(info[2], "options");
  const Scalars scalars = readScalars(options);
  call.options.logitScale = scalars.logitScale;
  call.options.logitBias = scalars.logitBias;
  call.options.direction = readDirection(options);
  call.options.threads = static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, kMaxThreads));
  readSingleRankIds(options, call, image.view.rows, text.view.rows, borrowed);
  return queueSingleRankCall(info, state, std::move(call), borrowed, image.view.rows * image.view.cols,
                             text.view.rows * text.view.cols, true);
}

#if defined(SIGLIP_WITH_CUDA)
namespace {

// A device matrix handle on `device`, or host { data, rows, cols } (float32, uploaded per call).
DeviceMatrixData readNcclInput(Napi::Value value, const std::string& name, int device, MatrixView& host,
                               std::vector<Napi::Object>& borrowed) {
  Napi::Env env = value.Env();
  if (DeviceMatrixHandle* handle = DeviceMatrixHandle::unwrap(value)) {
    DeviceMatrixData m = handle->live(env, name);
    if (m.device != device) {
      throw rangeError(env, name, "a matrix on cuda:" + std::to_string(device) + " (the ring's device)",
                       "one on cuda:" + std::to_string(m.device));
    }
    borrowed.push_back(value.As<Napi::Object>());
    host = MatrixView{nullptr, m.rows, m.cols};
    return m;
  }
  MatrixArg arg = readMatrix(value, name);
  borrowed.push_back(arg.array);
  host = arg.view;
  DeviceMatrixData m;
  m.rows = arg.view.rows;
  m.cols = arg.view.cols;
  m.dtype = cuda::DType::Float32;
  m.device = device;
  return m;
}

}  // namespace

Napi::Value ncclSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  SingleRankCall call;
  std::vector<Napi::Object> borrowed;
  call.image = readNcclInput(info[0], "image", state->device, call.shard.image, borrowed);
  call.text = readNcclInput(info[1], "text", state->device, call.shard.text, borrowed);
  if (call.text.cols != call.image.cols) {
    throw rangeError(env, "text.cols", std::to_string(call.image.cols) + " (image.cols: the same width D)",
                     describeValue(Napi::Number::New(env, double(call.text.cols))));
  }
  if (call.text.dtype != call.image.dtype) {
    throw typeError(env, "text", std::string("a matrix of the dtype of image (") + cuda::dtypeName(call.image.dtype) + ")",
                    std::string("one of dtype ") + cuda::dtypeName(call.text.dtype));
  }
  Napi::Object options = readOptions(info[2], "options");
  const Scalars scalars = readScalars(options);
  call.options.logitScale = scalars.logitScale;
  call.options.logitBias = scalars.logitBias;
  call.options.direction = readDirection(options);
  readSingleRankIds(options, call, call.image.rows, call.text.rows, borrowed);
  Napi::Value precision = options.Get("precision");
  const std::string precisionName = precision.IsString() ? precision.As<Napi::String>().Utf8Value() : "";
  if (!precision.IsString()) throw typeError(env, "options.precision", "'tf32' or 'fp32'", describeValue(precision));
  if (precisionName != "tf32" && precisionName != "fp32")
    throw rangeError(env, "options.precision", "'tf32' or 'fp32'", describeValue(precision));
  call.precision = precisionName == "fp32" ? cuda::Precision::FP32 : cuda::Precision::TF32;
  if (call.precision == cuda::Precision::FP32 && call.image.dtype != cuda::DType::Float32) {
    throw rangeError(env, "options.precision", "'tf32' for 16-bit matrices ('fp32' needs float32 matrices)",
                     std::string("the string 'fp32' with ") + cuda::dtypeName(call.image.dtype) + " matrices");
  }
  Napi::Value gradients = options.Get("gradients");
  const std::string gradientsName = gradients.IsString() ? gradients.As<Napi::String>().Utf8Value() : "";
  if (!gradients.IsString()) throw typeError(env, "options.gradients", "'host' or 'device'", describeValue(gradients));
  if (gradientsName != "host" && gradientsName != "device")
    throw rangeError(env, "options.gradients", "'host' or 'device'", describeValue(gradients));
  call.gradientsOnDevice = gradientsName == "device";
  const int64_t imageElements = call.image.rows * call.image.cols, textElements = call.text.rows * call.text.cols;
  const bool hostGradients = !call.gradientsOnDevice;
  return queueSingleRankCall(info, state, std::move(call), borrowed, imageElements, textElements, hostGradients);
}

void NcclConnectWorker::run() {
  transport_ = ring::createNcclTransport(state_->rank, state_->size, id_, state_->device, state_->timeout);
}

Napi::Value NcclConnectWorker::result(Napi::Env env) {
  state_->endpoints.clear();
  state_->endpoints.push_back(std::move(transport_));
  return env.Undefined();
}

void requireNccl(Napi::Env env) {
  std::string reason;
  if (!ring::ncclAvailable(&reason)) {
    throw makeJsError(env, ErrorKind::Internal,
                      "NCCL rings need NCCL (libnccl.so.2, e.g. from pip install nvidia-nccl-cu12), which cannot "
                      "be loaded: " + reason,
                      "", kErrNoNccl);
  }
}
#endif  // SIGLIP_WITH_CUDA

}  // namespace siglip::addon::ring_internal
