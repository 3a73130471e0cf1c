#include "cuda_loss.h"

#ifdef SIGLIP_WITH_CUDA
#include <climits>
#include <string>
#include <utility>

#include "convert.h"
#include "js_errors.h"
#include "settling_worker.h"

namespace siglip::addon {
namespace {

std::string readString(Napi::Object options, const char* key, const std::string& expected) {
  const std::string name = std::string("options.") + key;
  Napi::Value value = options.Get(key);
  if (!value.IsString()) throw typeError(options.Env(), name, expected, describeValue(value));
  return value.As<Napi::String>().Utf8Value();
}

// A device matrix handle (which must live on `device`), or a host { data, rows, cols }.
CudaInput readCudaInput(Napi::Value value, const std::string& name, int device, HostInputs& inputs) {
  Napi::Env env = value.Env();
  CudaInput input;
  if (DeviceMatrixHandle* handle = DeviceMatrixHandle::unwrap(value)) {
    input.matrix = handle->live(env, name);
    if (input.matrix.device != device) {
      throw rangeError(env, name, "a matrix on cuda:" + std::to_string(device) + " (options.device)",
                       "one on cuda:" + std::to_string(input.matrix.device));
    }
    inputs.keepAlive(value.As<Napi::Object>());
    return input;
  }
  const MatrixView host = readMatrix(value, name, inputs);
  input.host = host.data;
  input.matrix.rows = host.rows;
  input.matrix.cols = host.cols;
  input.matrix.dtype = cuda::DType::Float32;
  input.matrix.device = device;
  return input;
}

const float* shapeData(const CudaInput& input) {
  // Only checked for null by validateLossRequest (DataScan::Skip reads no data).
  return input.host != nullptr ? input.host : static_cast<const float*>(input.matrix.buffer->data());
}

}  // namespace

CudaLossCall readCudaLossCall(const Napi::CallbackInfo& info, LossKind kind, InputUse use) {
  Napi::Env env = info.Env();
  CudaLossCall call(use);
  CudaLossPlan& plan = call.plan;
  plan.kind = kind;

  if (!info[2].IsObject() || info[2].IsArray() || info[2].IsFunction() || info[2].IsTypedArray()) {
    throw typeError(env, "options", "an object", describeValue(info[2]));
  }
  Napi::Object options = info[2].As<Napi::Object>();
  plan.device = static_cast<int>(readInteger(options.Get("device"), "options.device", 0, INT_MAX));

  plan.image = readCudaInput(info[0], "image", plan.device, call.inputs);
  plan.text = readCudaInput(info[1], "text", plan.device, call.inputs);
  const DeviceMatrixData& x = plan.image.matrix;
  const DeviceMatrixData& y = plan.text.matrix;

  plan.logitScale = readFiniteNumber(options.Get("logitScale"), "options.logitScale");
  Napi::Value bias = options.Get("logitBias");
  if (kind == LossKind::Sigmoid) {
    plan.logitBias = readFiniteNumber(bias, "options.logitBias");
  } else if (!bias.IsUndefined()) {
    throw typeError(env, "options.logitBias", "no logitBias (the softmax loss has no bias)", describeValue(bias));
  }
  plan.imageIds = readIds(options, "imageIds", x.rows, call.inputs);
  plan.textIds = readIds(options, "textIds", y.rows, call.inputs);

  const std::string method = readString(options, "method", methodChoices(kind, MethodBackend::Cuda));
  plan.method = parseMethod(kind, MethodBackend::Cuda, method, describeValue(options.Get("method")));

  const std::string precision = readString(options, "precision", "'tf32' or 'fp32'");
  if (precision != "tf32" && precision != "fp32") {
    throw rangeError(env, "options.precision", "'tf32' or 'fp32'", describeValue(options.Get("precision")));
  }
  plan.precision = precision == "fp32" ? cuda::Precision::FP32 : cuda::Precision::TF32;

  const std::string gradients = readString(options, "gradients", "'host' or 'device'");
  if (gradients != "host" && gradients != "device") {
    throw rangeError(env, "options.gradients", "'host' or 'device'", describeValue(options.Get("gradients")));
  }
  plan.gradientsOnDevice = gradients == "device";

  if (!info[3].IsBoolean()) throw typeError(env, "wantGrad", "a boolean", describeValue(info[3]));
  plan.wantGrad = info[3].As<Napi::Boolean>().Value();
  call.inputs.confirmUnchanged(env);  // the options' getters ran after image and text were read

  // Shapes, ids and scalars by the CPU's rules and messages, before anything is allocated.
  LossRequest shape;
  shape.image = MatrixView{shapeData(plan.image), x.rows, x.cols};
  shape.text = MatrixView{shapeData(plan.text), y.rows, y.cols};
  shape.imageIds = plan.imageIds;
  shape.textIds = plan.textIds;
  shape.logitScale = plan.logitScale;
  shape.logitBias = plan.logitBias;
  shape.method = plan.method;
  shape.threads = 1;
  validateLossRequest(kind, shape, DataScan::Skip);
  if (y.dtype != x.dtype) {
    throw typeError(env, "text", std::string("a matrix of the dtype of image (") + cuda::dtypeName(x.dtype) + ")",
                    std::string("one of dtype ") + cuda::dtypeName(y.dtype));
  }
  if (plan.precision == cuda::Precision::FP32 && x.dtype != cuda::DType::Float32) {
    throw rangeError(env, "options.precision", "'tf32' for 16-bit matrices ('fp32' needs float32 matrices)",
                     std::string("the string 'fp32' with ") + cuda::dtypeName(x.dtype) + " matrices");
  }

  if (plan.wantGrad && !plan.gradientsOnDevice) {
    call.hostGradImage = allocateFloat32Array(env, x.rows * x.cols, "the image gradient");
    call.hostGradText = allocateFloat32Array(env, y.rows * y.cols, "the text gradient");
    plan.hostGradImage = call.hostGradImage.Data();
    plan.hostGradText = call.hostGradText.Data();
  }
  return call;
}

CudaLossOutcome runCudaLoss(const CudaLossPlan& plan) {
  // Host inputs go to temporary float32 device buffers, freed when this returns.
  const auto resident = [&](const CudaInput& input) {
    DeviceMatrixData m = input.matrix;
    if (m.buffer) return m;
    const size_t bytes = static_cast<size_t>(m.rows) * static_cast<size_t>(m.cols) * sizeof(float);
    m.buffer = std::make_shared<cuda::DeviceBuffer>(plan.device, bytes);
    m.buffer->upload(input.host, bytes);
    return m;
  };
  const DeviceMatrixData image = resident(plan.image);
  const DeviceMatrixData text = resident(plan.text);

  cuda::CudaLossRequest request;
  request.image = image.view();
  request.text = text.view();
  request.imageIds = plan.imageIds;
  request.textIds = plan.textIds;
  request.logitScale = plan.logitScale;
  request.logitBias = plan.logitBias;
  request.method = plan.method;
  request.precision = plan.precision;

  CudaLossOutcome outcome;
  cuda::CudaGradientOutputs grads;
  if (plan.wantGrad) {
    const size_t d = static_cast<size_t>(image.cols);
    outcome.gradImage = std::make_shared<cuda::DeviceBuffer>(plan.device, static_cast<size_t>(image.rows) * d * sizeof(float));
    outcome.gradText = std::make_shared<cuda::DeviceBuffer>(plan.device, static_cast<size_t>(text.rows) * d * sizeof(float));
    grads.image = static_cast<float*>(outcome.gradImage->data());
    grads.text = static_cast<float*>(outcome.gradText->data());
  }
  if (plan.kind == LossKind::Sigmoid) {
    outcome.result = cuda::sigmoidLoss(request, grads);
  } else {
    outcome.result = cuda::softmaxLoss(request, grads);
  }
  if (plan.wantGrad && !plan.gradientsOnDevice) {
    outcome.gradImage->download(plan.hostGradImage, outcome.gradImage->bytes());
    outcome.gradText->download(plan.hostGradText, outcome.gradText->bytes());
    outcome.gradImage.reset();
    outcome.gradText.reset();
  }
  return outcome;
}

Napi::Object cudaOutcomeToJs(Napi::Env env, const CudaLossPlan& plan, const CudaLossOutcome& outcome,
                             Napi::Float32Array hostGradImage, Napi::Float32Array hostGradText) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", Napi::Number::New(env, outcome.result.loss));
  if (!plan.wantGrad) return out;
  Napi::Object grad = Napi::Object::New(env);
  if (plan.gradientsOnDevice) {
    const int64_t d = plan.image.matrix.cols;
    grad.Set("image", DeviceMatrixHandle::wrap(env, DeviceMatrixData{outcome.gradImage, plan.image.matrix.rows, d,
                                                                     cuda::DType::Float32, plan.device}));
    grad.Set("text", DeviceMatrixHandle::wrap(env, DeviceMatrixData{outcome.gradText, plan.text.matrix.rows, d,
                                                                    cuda::DType::Float32, plan.device}));
  } else {
    grad.Set("image", hostGradImage);
    grad.Set("text", hostGradText);
  }
  grad.Set("logitScale", Napi::Number::New(env, outcome.result.dLogitScale));
  if (plan.kind == LossKind::Sigmoid) grad.Set("logitBias", Napi::Number::New(env, outcome.result.dLogitBias));
  out.Set("grad", grad);
  return out;
}

namespace {

// The Promise form: runCudaLoss on libuv's thread pool. References to every JavaScript value
// the plan points into (host inputs, device matrix handles, ids, host gradient arrays) keep
// them alive until the Promise settles; the device buffers are also held by shared_ptr, so
// disposing a handle meanwhile frees its memory only after the call.
class CudaLossWorker : public SettlingWorker {
 public:
  CudaLossWorker(Napi::Env env, CudaLossCall&& call)
      : SettlingWorker(env, call.plan.kind == LossKind::Sigmoid ? "siglip:cudaSigmoidLoss" : "siglip:cudaSoftmaxLoss"),
        plan_(call.plan),
        deferred_(Napi::Promise::Deferred::New(env)),
        inputs_(std::move(call.inputs)) {
    inputs_.persist();
    if (!call.hostGradImage.IsEmpty()) {
      gradImage_ = Napi::Persistent(static_cast<Napi::Object>(call.hostGradImage));
      gradText_ = Napi::Persistent(static_cast<Napi::Object>(call.hostGradText));
    }
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      outcome_ = runCudaLoss(plan_);
    } catch (...) {
      error_ = captureCurrentException();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (error_.present) {
      deferred_.Reject(toJsError(env, error_).Value());
      return;
    }
    try {
      Napi::Float32Array image, text;
      if (!gradImage_.IsEmpty()) {
        image = gradImage_.Value().As<Napi::Float32Array>();
        text = gradText_.Value().As<Napi::Float32Array>();
      }
      deferred_.Resolve(cudaOutcomeToJs(env, plan_, outcome_, image, text));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  CudaLossPlan plan_;
  Napi::Promise::Deferred deferred_;
  HostInputs inputs_;  // the memory plan_'s host pointers point into; device handles kept alive
  Napi::ObjectReference gradImage_;
  Napi::ObjectReference gradText_;
  CudaLossOutcome outcome_;
  CapturedError error_;
};

Napi::Value lossSync(const Napi::CallbackInfo& info, LossKind kind) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    const CudaLossCall call = readCudaLossCall(info, kind, InputUse::Borrow);
    const CudaLossOutcome outcome = runCudaLoss(call.plan);
    return cudaOutcomeToJs(env, call.plan, outcome, call.hostGradImage, call.hostGradText);
  });
}

Napi::Value lossAsync(const Napi::CallbackInfo& info, LossKind kind) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    CudaLossCall call = readCudaLossCall(info, kind, InputUse::Copy);
    auto* worker = new CudaLossWorker(env, std::move(call));  // deletes itself when complete
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

}  // namespace

Napi::Value CudaSigmoidLoss(const Napi::CallbackInfo& info) { return lossSync(info, LossKind::Sigmoid); }
Napi::Value CudaSoftmaxLoss(const Napi::CallbackInfo& info) { return lossSync(info, LossKind::Softmax); }
Napi::Value CudaSigmoidLossAsync(const Napi::CallbackInfo& info) { return lossAsync(info, LossKind::Sigmoid); }
Napi::Value CudaSoftmaxLossAsync(const Napi::CallbackInfo& info) { return lossAsync(info, LossKind::Softmax); }

}  // namespace siglip::addon

#endif  // SIGLIP_WITH_CUDA
