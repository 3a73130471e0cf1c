#include "ring_bindings.h"

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "convert.h"
#include "core/errors.h"
#include "js_errors.h"
#include "ring/local_transport.h"
#include "ring/ring_sigmoid.h"
#if defined(SIGLIP_WITH_MPI)
#include <dlfcn.h>
#include <mpi.h>

#include "ring/mpi_transport.h"
#endif
#if defined(SIGLIP_WITH_CUDA)
#include "cuda/cuda_backend.h"
#include "cuda/cuda_ring_backend.h"
#include "cuda_matrix.h"
#include "ring/nccl_transport.h"
#endif

namespace siglip::addon {
namespace {

// `code`s of the ring's own errors (lib/ring.ts uses the same).
constexpr const char* kErrDisposedCode = "ERR_SIGLIP_DISPOSED";
constexpr const char* kErrRingBusy = "ERR_SIGLIP_RING_BUSY";
constexpr const char* kErrRingFailed = "ERR_SIGLIP_RING_FAILED";
constexpr const char* kErrNoMpi = "ERR_SIGLIP_NO_MPI";
constexpr const char* kErrNoNccl = "ERR_SIGLIP_NO_NCCL";

// The ring's own limits: as validate.cpp's for a single-device call.
constexpr double kMaxAbsLogitScale = 80.0;
constexpr int64_t kMaxRanks = 4096;
constexpr int64_t kMaxTimeoutMs = INT_MAX;

enum class RingKind { Local, Mpi, Nccl };

const char* kindName(RingKind kind) {
  switch (kind) {
    case RingKind::Local:
      return "local";
    case RingKind::Mpi:
      return "mpi";
    case RingKind::Nccl:
      return "nccl";
  }
  return "local";
}

// What a ring is, without JavaScript. Changed only on the JS thread; a call's worker reads
// `endpoints` while `busy` (no other call, connect or re-creation runs meanwhile). Workers
// hold their own shared_ptr, so dispose() during a call frees the transports after it.
struct RingState {
  RingKind kind = RingKind::Local;
  int rank = 0;  // the (first) rank this object drives
  int size = 1;  // P
  int device = -1;  // nccl: the CUDA ordinal
  std::chrono::milliseconds timeout{60000};
  std::vector<std::unique_ptr<ring::Transport>> endpoints;
  bool busy = false;
  std::string broken;  // mpi, nccl: why the ring cannot be used any more ('' while it can)
#if defined(SIGLIP_WITH_CUDA)
  std::vector<uint8_t> ncclId;  // until connect()
#endif
};

bool isOptionsObject(Napi::Value value) {
  return value.IsObject() && !value.IsArray() && !value.IsFunction() && !value.IsTypedArray() &&
         !value.IsArrayBuffer();
}

Napi::Object readOptions(Napi::Value value, const std::string& name) {
  if (!isOptionsObject(value)) throw typeError(value.Env(), name, "an object", describeValue(value));
  return value.As<Napi::Object>();
}

std::string formatFloat(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.9g", static_cast<double>(v));
  return buffer;
}

// The data scan of validate.cpp, for one shard (run on the rank's own thread).
void checkFinite(const MatrixView& m, const std::string& name) {
  const int64_t count = m.rows * m.cols;
  for (int64_t k = 0; k < count; ++k) {
    if (!std::isfinite(m.data[k])) {
      throw invalidArgument(ErrorKind::Range, name, "only finite values",
                            formatFloat(m.data[k]) + " at index " + std::to_string(k) + " (row " +
                                std::to_string(k / m.cols) + ", column " + std::to_string(k % m.cols) + ")");
    }
  }
}

struct Scalars {
  double logitScale = 0;
  double logitBias = 0;
};

Scalars readScalars(Napi::Object options) {
  Napi::Env env = options.Env();
  Scalars s;
  Napi::Value scale = options.Get("logitScale");
  s.logitScale = readFiniteNumber(scale, "options.logitScale");
  if (std::fabs(s.logitScale) > kMaxAbsLogitScale) {
    throw rangeError(env, "options.logitScale",
                     "a finite number in [-80, 80] (the temperature exp(logitScale) must be a finite float32)",
                     describeValue(scale));
  }
  Napi::Value bias = options.Get("logitBias");
  s.logitBias = readFiniteNumber(bias, "options.logitBias");
  if (std::fabs(s.logitBias) > double(FLT_MAX)) {
    throw rangeError(env, "options.logitBias", "a finite number (representable as float32)", describeValue(bias));
  }
  return s;
}

// An Int32Array of exactly `length` ids, named `name`; kept alive through `borrowed`.
const int32_t* readIdArray(Napi::Value value, const std::string& name, int64_t length,
                           std::vector<Napi::Object>& borrowed) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw typeError(value.Env(), name, "an Int32Array", describeValue(value));
  }
  Napi::Int32Array ids = value.As<Napi::Int32Array>();
  if (length > 0 && ids.ArrayBuffer().IsDetached()) {
    throw typeError(value.Env(), name, "an Int32Array that is not detached", describeValue(value));
  }
  if (static_cast<int64_t>(ids.ElementLength()) != length) {
    throw rangeError(value.Env(), name, "an Int32Array of length " + std::to_string(length), describeValue(value));
  }
  borrowed.push_back(ids);
  return ids.Data();
}

bool absent(Napi::Value value) { return value.IsUndefined() || value.IsNull(); }

// imageIds and textIds are given together or not at all.
void checkIdsTogether(Napi::Env env, bool hasImageIds, bool hasTextIds) {
  if (hasImageIds == hasTextIds) return;
  throw typeError(env, hasImageIds ? "options.textIds" : "options.imageIds",
                  "label ids (imageIds and textIds are given together or not at all)",
                  "undefined while " + std::string(hasImageIds ? "imageIds" : "textIds") + " is given");
}

std::chrono::milliseconds readTimeout(Napi::Object options) {
  return std::chrono::milliseconds(readInteger(options.Get("timeoutMs"), "options.timeoutMs", 1, kMaxTimeoutMs));
}

Napi::Object statsToJs(Napi::Env env, const ring::RingStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("steps", Napi::Number::New(env, s.steps));
  out.Set("bytesSent", Napi::Number::New(env, static_cast<double>(s.bytesSent)));
  out.Set("peakRingBytes", Napi::Number::New(env, static_cast<double>(s.peakRingBytes)));
  out.Set("computeSeconds", Napi::Number::New(env, s.computeSeconds));
  out.Set("waitSeconds", Napi::Number::New(env, s.waitSeconds));
  return out;
}

// { loss, grad?: { image, text, logitScale, logitBias }, stats }; image/text given when wanted.
Napi::Object rankResultToJs(Napi::Env env, const LossResult& result, const ring::RingStats& stats, bool wantGrad,
                            Napi::Value image, Napi::Value text) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", Napi::Number::New(env, result.loss));
  if (wantGrad) {
    Napi::Object grad = Napi::Object::New(env);
    grad.Set("image", image);
    grad.Set("text", text);
    grad.Set("logitScale", Napi::Number::New(env, result.dLogitScale));
    grad.Set("logitBias", Napi::Number::New(env, result.dLogitBias));
    out.Set("grad", grad);
  }
  out.Set("stats", statsToJs(env, stats));
  return out;
}

// A ring's failure as a JS error: the transport's own failures (timeouts, a stopped rank)
// get ERR_SIGLIP_RING_FAILED; argument errors keep their TypeError / RangeError.
Napi::Error ringError(Napi::Env env, const CapturedError& error) {
  if (error.kind == ErrorKind::Internal && error.argument == "ring") {
    return makeJsError(env, error.kind, error.message, "", kErrRingFailed);
  }
  return toJsError(env, error);
}

bool isStoppedByAnother(const CapturedError& e) { return e.message.find(" stopped: ") != std::string::npos; }

// ---- the test hook of local rings (internal: lib/ring.ts documents it as such) -----------

enum class FaultMode { None, Abort, Absent };

// Rank `rank` fails after its first ring step: its first send of step 1 (tags above 3: step
// 0 sends the texts with tag 2 and the accumulator with tag 3) throws, and the ring aborts
// the transport as it does on any failure. With P = 1 there is no such send and no failure.
class FaultyTransport : public ring::Transport {
 public:
  explicit FaultyTransport(ring::Transport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  ring::Transfer sendToNext(const void* data, size_t bytes, int tag) override {
    if (tag > 3) {
      throw Error(ErrorKind::Internal, "ring",
                  "ring rank " + std::to_string(rank()) +
                      ": simulated failure after its first step (the failRank test hook)");
    }
    return inner_.sendToNext(data, bytes, tag);
  }
  ring::Transfer receiveFromPrevious(void* data, size_t bytes, int tag) override {
    return inner_.receiveFromPrevious(data, bytes, tag);
  }
  void wait(ring::Transfer& transfer) override { inner_.wait(transfer); }
  void allGather(const void* mine, size_t bytes, void* all) override { inner_.allGather(mine, bytes, all); }
  void abort(const std::string& reason) override { inner_.abort(reason); }
  uint64_t bytesSent() const override { return inner_.bytesSent(); }

 private:
  ring::Transport& inner_;
};

// ---- local rings: P ranks, one std::thread each ----------------------------------------

struct RankWork {
  ring::RingShard shard;
  std::string imageName, textName;  // "imageShards[k].data", for the data scan's message
  GradientOutputs grads;
  LossResult result;
  ring::RingStats stats;
  CapturedError error;
};

// One rank of a local ring, on its own thread: scan the shard, then the ring. A shard that
// fails the scan aborts the group, so the other ranks stop instead of waiting for it.
void runLocalRank(ring::Transport& endpoint, RankWork& work, const ring::RingOptions& options, FaultMode fault,
                  int faultRank) {
  const int r = endpoint.rank();
  try {
    if (fault == FaultMode::Absent && r == faultRank) {
      throw Error(ErrorKind::Internal, "ring",
                  "ring rank " + std::to_string(r) + " did not take part (the failRank test hook, failMode 'absent')");
    }
    try {
      checkFinite(work.shard.image, work.imageName);
      checkFinite(work.shard.text, work.textName);
    } catch (const std::exception& e) {
      endpoint.abort(e.what());
      throw;
    }
    if (fault == FaultMode::Abort && r == faultRank) {
      FaultyTransport faulty(endpoint);
      work.result = ring::ringSigmoidLoss(faulty, work.shard, options, work.grads, &work.stats);
    } else {
      work.result = ring::ringSigmoidLoss(endpoint, work.shard, options, work.grads, &work.stats);
    }
  } catch (...) {
    work.error = captureCurrentException();
  }
}

class LocalRingWorker : public Napi::AsyncWorker {
 public:
  LocalRingWorker(Napi::Env env, std::shared_ptr<RingState> state, std::vector<RankWork> work,
                  const ring::RingOptions& options, FaultMode fault, int faultRank, bool wantGrad,
                  const std::vector<Napi::Object>& borrowed, const std::vector<Napi::Float32Array>& gradImages,
                  const std::vector<Napi::Float32Array>& gradTexts)
      : Napi::AsyncWorker(env, "siglip:ringSigmoidLoss"),
        state_(std::move(state)),
        work_(std::move(work)),
        options_(options),
        fault_(fault),
        faultRank_(faultRank),
        wantGrad_(wantGrad),
        deferred_(Napi::Promise::Deferred::New(env)) {
    for (const Napi::Object& object : borrowed) borrowed_.push_back(Napi::Persistent(object));
    for (const Napi::Float32Array& a : gradImages) gradImages_.push_back(Napi::Persistent(static_cast<Napi::Object>(a)));
    for (const Napi::Float32Array& a : gradTexts) gradTexts_.push_back(Napi::Persistent(static_cast<Napi::Object>(a)));
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    const size_t p = work_.size();
    std::vector<std::thread> threads;
    threads.reserve(p);
    try {
      for (size_t r = 0; r < p; ++r) {
        threads.emplace_back(runLocalRank, std::ref(*state_->endpoints[r]), std::ref(work_[r]), std::cref(options_),
                             fault_, faultRank_);
      }
    } catch (...) {
      // A thread could not start: the ranks already running would wait for it until the
      // timeout; abort the group so they stop at once.
      const CapturedError error = captureCurrentException();
      state_->endpoints[0]->abort(error.message);
      for (size_t r = threads.size(); r < p; ++r) work_[r].error = error;
    }
    for (std::thread& t : threads) t.join();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    state_->busy = false;
    int root = -1;
    for (size_t r = 0; r < work_.size() && root < 0; ++r)
      if (work_[r].error.present && !isStoppedByAnother(work_[r].error)) root = int(r);
    for (size_t r = 0; r < work_.size() && root < 0; ++r)
      if (work_[r].error.present) root = int(r);
    try {
      if (root >= 0) {
        // The group is aborted (and may hold stale messages): the next call gets a new one.
        try {
          state_->endpoints = ring::createLocalGroup(state_->size, state_->timeout);
        } catch (...) {
          state_->broken = captureCurrentException().message;
        }
        Napi::Error error = ringError(env, work_[size_t(root)].error);
        Napi::Array messages = Napi::Array::New(env, work_.size());
        for (size_t r = 0; r < work_.size(); ++r)
          messages.Set(uint32_t(r), Napi::String::New(env, work_[r].error.present ? work_[r].error.message : ""));
        error.Set("rank", Napi::Number::New(env, root));
        error.Set("rankErrors", messages);
        deferred_.Reject(error.Value());
        return;
      }
      Napi::Array out = Napi::Array::New(env, work_.size());
      for (size_t r = 0; r < work_.size(); ++r) {
        Napi::Value image = wantGrad_ ? gradImages_[r].Value() : env.Undefined();
        Napi::Value text = wantGrad_ ? gradTexts_[r].Value() : env.Undefined();
        out.Set(uint32_t(r), rankResultToJs(env, work_[r].result, work_[r].stats, wantGrad_, image, text));
      }
      deferred_.Resolve(out);
    } catch (const Napi::Error& e) {  // building the result failed (out of JS heap)
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& error) override {
    Napi::HandleScope scope(Env());
    state_->busy = false;
    deferred_.Reject(error.Value());
  }

 private:
  std::shared_ptr<RingState> state_;
  std::vector<RankWork> work_;
  ring::RingOptions options_;
  FaultMode fault_;
  int faultRank_;
  bool wantGrad_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> borrowed_;
  std::vector<Napi::ObjectReference> gradImages_;
  std::vector<Napi::ObjectReference> gradTexts_;
};

// An Array of exactly `count` elements named `name`.
Napi::Array readArray(Napi::Value value, const std::string& name, size_t count, const std::string& what) {
  if (!value.IsArray()) {
    throw typeError(value.Env(), name, "an Array of " + std::to_string(count) + " " + what, describeValue(value));
  }
  Napi::Array array = value.As<Napi::Array>();
  if (array.Length() != count) {
    throw rangeError(value.Env(), name, "an Array of " + std::to_string(count) + " " + what, describeValue(value));
  }
  return array;
}

Napi::Value localSigmoidLoss(const Napi::CallbackInfo& info, const std::shared_ptr<RingState>& state) {
  Napi::Env env = info.Env();
  const size_t p = size_t(state->size);
  const std::string shardsWhat = "shards (one per rank)";
  Napi::Array images = readArray(info[0], "imageShards", p, shardsWhat);
  Napi::Array texts = readArray(info[1], "textShards", p, shardsWhat);
  std::vector<Napi::Object> borrowed;
  std::vector<RankWork> work(p);
  int64_t d = 0, imageRows = 0, textRows = 0;
  for (size_t r = 0; r < p; ++r) {
    const std::string k = "[" + std::to_string(r) + "]";
    MatrixArg image = readMatrix(images.Get(uint32_t(r)), "imageShards" + k);
    MatrixArg text = readMatrix(texts.Get(uint32_t(r)), "textShards" + k);
    if (r == 0) d = image.view.cols;
    if (image.view.cols != d) {
      throw rangeError(env, "imageShards" + k + ".cols",
                       std::to_string(d) + " (imageShards[0].cols: every shard has the same width D)",
                       describeValue(Napi::Number::New(env, double(image.view.cols))));
    }
    if (text.view.cols != d) {
      throw rangeError(env, "textShards" + k + ".cols",
                       std::to_string(d) + " (imageShards[0].cols: every shard has the same width D)",
                       describeValue(Napi::Number::New(env, double(text.view.cols))));
    }
    imageRows += image.view.rows;
    textRows += text.view.rows;
    work[r].shard.image = image.view;
    work[r].shard.text = text.view;
    work[r].imageName = "imageShards" + k + ".data";
    work[r].textName = "textShards" + k + ".data";
    borrowed.push_back(image.array);
    borrowed.push_back(text.array);
  }

  Napi::Object options = readOptions(info[2], "options");
  const Scalars scalars = readScalars(options);
  Napi::Value imageIds = options.Get("imageIds"), textIds = options.Get("textIds");
  checkIdsTogether(env, !absent(imageIds), !absent(textIds));
  if (!absent(imageIds)) {
    Napi::Array imageIdArrays = readArray(imageIds, "options.imageIds", p, "Int32Arrays (one per rank)");
    Napi::Array textIdArrays = readArray(textIds, "options.textIds", p, "Int32Arrays (one per rank)");
    for (size_t r = 0; r < p; ++r) {
      const std::string k = "[" + std::to_string(r) + "]";
      work[r].shard.imageIds =
          readIdArray(imageIdArrays.Get(uint32_t(r)), "options.imageIds" + k, work[r].shard.image.rows, borrowed);
      work[r].shard.textIds =
          readIdArray(textIdArrays.Get(uint32_t(r)), "options.textIds" + k, work[r].shard.text.rows, borrowed);
    }
  } else if (imageRows != textRows) {
    throw rangeError(env, "textShards",
                     std::to_string(imageRows) +
                         " text rows in all (as many as image rows over all shards: without label ids row i of the "
                         "global image batch pairs with row i of the global text batch)",
                     std::to_string(textRows) + " rows");
  }
  ring::RingOptions ringOptions;
  ringOptions.logitScale = scalars.logitScale;
  ringOptions.logitBias = scalars.logitBias;
  ringOptions.threads = static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, kMaxThreads));

  FaultMode fault = FaultMode::None;
  int faultRank = -1;
  Napi::Value failRank = options.Get("failRank");
  if (!absent(failRank)) {
    faultRank = static_cast<int>(readInteger(failRank, "options.failRank", 0, state->size - 1));
    fault = FaultMode::Abort;
    Napi::Value mode = options.Get("failMode");
    if (!absent(mode)) {
      const std::string name = mode.IsString() ? mode.As<Napi::String>().Utf8Value() : "";
      if (!mode.IsString()) throw typeError(env, "options.failMode", "'abort' or 'absent'", describeValue(mode));
      if (name == "absent") fault = FaultMode::Absent;
      else if (name != "abort") throw rangeError(env, "options.failMode", "'abort' or 'absent'", describeValue(mode));
    }
  }

  if (!info[3].IsBoolean()) throw typeError(env, "wantGrad", "a boolean", describeValue(info[3]));
  const bool wantGrad = info[3].As<Napi::Boolean>().Value();
  std::vector<Napi::Float32Array> gradImages, gradTexts;
  if (wantGrad) {
    for (size_t r = 0; r < p; ++r) {
      const ring::RingShard& s = work[r].shard;
      gradImages.push_back(allocateFloat32Array(env, s.image.rows * d, "the image gradient of rank " + std::to_string(r)));
      gradTexts.push_back(allocateFloat32Array(env, s.text.rows * d, "the text gradient of rank " + std::to_string(r)));
      work[r].grads = GradientOutputs{gradImages.back().Data(), gradTexts.back().Data()};
    }
  }
  auto* worker = new LocalRingWorker(env, state, std::move(work), ringOptions, fault, faultRank, wantGrad, borrowed,
                                     gradImages, gradTexts);  // deletes itself when complete
  Napi::Promise promise = worker->promise();
  state->busy = true;
  worker->Queue();
  return promise;
}

// ---- one rank per process: MPI (host shards, CPU) and NCCL (GPU) ---------------------------

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

class SingleRankWorker : public Napi::AsyncWorker {
 public:
  SingleRankWorker(Napi::Env env, std::shared_ptr<RingState> state, SingleRankCall call,
                   const std::vector<Napi::Object>& borrowed, Napi::Value gradImage, Napi::Value gradText)
      : Napi::AsyncWorker(env, "siglip:ringSigmoidLoss"),
        state_(std::move(state)),
        call_(std::move(call)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    for (const Napi::Object& object : borrowed) borrowed_.push_back(Napi::Persistent(object));
    if (gradImage.IsObject()) {
      gradImage_ = Napi::Persistent(gradImage.As<Napi::Object>());
      gradText_ = Napi::Persistent(gradText.As<Napi::Object>());
    }
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      ring::Transport& tp = *state_->endpoints[0];
#if defined(SIGLIP_WITH_CUDA)
      if (state_->kind == RingKind::Nccl) {
        outcome_ = runNcclRank(tp, state_->device, call_);
        return;
      }
#endif
      outcome_ = runMpiRank(tp, call_);
    } catch (...) {
      error_ = captureCurrentException();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    state_->busy = false;
    if (error_.present) {
      state_->broken = error_.message;
      deferred_.Reject(ringError(env, error_).Value());
      return;
    }
    try {
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
      deferred_.Resolve(rankResultToJs(env, outcome_.result, outcome_.stats, call_.wantGrad, image, text));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& error) override {
    Napi::HandleScope scope(Env());
    state_->busy = false;
    deferred_.Reject(error.Value());
  }

 private:
  std::shared_ptr<RingState> state_;
  SingleRankCall call_;
  SingleRankOutcome outcome_;
  CapturedError error_;
  Napi::Promise::Deferred deferred_;
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
  call.options.threads = static_cast<int>(readInteger(options.Get("threads"), "options.threads", 1, kMaxThreads));
  readSingleRankIds(options, call, image.view.rows, text.view.rows, borrowed);
  if (!info[3].IsBoolean()) throw typeError(env, "wantGrad", "a boolean", describeValue(info[3]));
  call.wantGrad = info[3].As<Napi::Boolean>().Value();
  Napi::Value gradImage = env.Undefined(), gradText = env.Undefined();
  if (call.wantGrad) {
    Napi::Float32Array gi = allocateFloat32Array(env, image.view.rows * image.view.cols, "the image gradient");
    Napi::Float32Array gt = allocateFloat32Array(env, text.view.rows * text.view.cols, "the text gradient");
    call.hostGradImage = gi.Data();
    call.hostGradText = gt.Data();
    gradImage = gi;
    gradText = gt;
  }
  auto* worker = new SingleRankWorker(env, state, std::move(call), borrowed, gradImage, gradText);
  Napi::Promise promise = worker->promise();
  state->busy = true;
  worker->Queue();
  return promise;
}

#if defined(SIGLIP_WITH_CUDA)
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
  if (!info[3].IsBoolean()) throw typeError(env, "wantGrad", "a boolean", describeValue(info[3]));
  call.wantGrad = info[3].As<Napi::Boolean>().Value();
  Napi::Value gradImage = env.Undefined(), gradText = env.Undefined();
  if (call.wantGrad && !call.gradientsOnDevice) {
    Napi::Float32Array gi = allocateFloat32Array(env, call.image.rows * call.image.cols, "the image gradient");
    Napi::Float32Array gt = allocateFloat32Array(env, call.text.rows * call.text.cols, "the text gradient");
    call.hostGradImage = gi.Data();
    call.hostGradText = gt.Data();
    gradImage = gi;
    gradText = gt;
  }
  auto* worker = new SingleRankWorker(env, state, std::move(call), borrowed, gradImage, gradText);
  Napi::Promise promise = worker->promise();
  state->busy = true;
  worker->Queue();
  return promise;
}

// ncclCommInitRank blocks until every rank has joined: a worker thread, never the JS thread.
class NcclConnectWorker : public Napi::AsyncWorker {
 public:
  NcclConnectWorker(Napi::Env env, std::shared_ptr<RingState> state)
      : Napi::AsyncWorker(env, "siglip:ncclConnect"),
        state_(std::move(state)),
        id_(state_->ncclId),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      transport_ = ring::createNcclTransport(state_->rank, state_->size, id_, state_->device, state_->timeout);
    } catch (...) {
      error_ = captureCurrentException();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    state_->busy = false;
    if (error_.present) {
      state_->broken = error_.message;
      deferred_.Reject(ringError(env, error_).Value());
      return;
    }
    state_->endpoints.clear();
    state_->endpoints.push_back(std::move(transport_));
    deferred_.Resolve(env.Undefined());
  }

  void OnError(const Napi::Error& error) override {
    Napi::HandleScope scope(Env());
    state_->busy = false;
    deferred_.Reject(error.Value());
  }

 private:
  std::shared_ptr<RingState> state_;
  std::vector<uint8_t> id_;
  std::unique_ptr<ring::Transport> transport_;
  CapturedError error_;
  Napi::Promise::Deferred deferred_;
};

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

// ---- MPI: init on the JS thread, finalize at exit ---------------------------------------

#if defined(SIGLIP_WITH_MPI)
bool mpiCleanupHookAdded = false;

void finalizeMpiAtExit(void*) { ring::finalizeMpi(); }

// Open MPI loads its components with dlopen and expects libmpi's symbols to be global; a
// library pulled in by a Node addon (dlopen'ed RTLD_LOCAL) is not. Promote it (as mpi4py does).
void makeMpiSymbolsGlobal() {
  Dl_info where;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &where) != 0 && where.dli_fname != nullptr) {
    dlopen(where.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  }
}

std::string mpiLibraryVersion() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "";
  std::string version(text, size_t(std::max(0, length)));
  const size_t end = version.find_first_of("\r\n,");
  return version.substr(0, end);
}
#endif

// ---- the handle ---------------------------------------------------------------------------

class RingHandle : public Napi::ObjectWrap<RingHandle> {
 public:
  static Napi::Function defineClass(Napi::Env env) {
    return DefineClass(env, "RingHandle",
                       {
                           InstanceMethod<&RingHandle::SigmoidLoss>("sigmoidLoss"),
                           InstanceMethod<&RingHandle::Connect>("connect"),
                           InstanceMethod<&RingHandle::Dispose>("dispose"),
                           InstanceAccessor<&RingHandle::Kind>("kind"),
                           InstanceAccessor<&RingHandle::Rank>("rank"),
                           InstanceAccessor<&RingHandle::Size>("size"),
                           InstanceAccessor<&RingHandle::Disposed>("disposed"),
                       });
  }

  explicit RingHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingHandle>(info) {
    Napi::Env env = info.Env();
    try {
      construct(info);
    } catch (const Napi::Error&) {
      throw;
    } catch (...) {
      throw ringError(env, captureCurrentException());  // e.g. MPI_Init failed: ERR_SIGLIP_RING_FAILED
    }
  }

 private:
  void construct(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw typeError(env, "kind", "'local', 'mpi' or 'nccl'", describeValue(info[0]));
    const std::string kind = info[0].As<Napi::String>().Utf8Value();
    if (kind != "local" && kind != "mpi" && kind != "nccl")
      throw rangeError(env, "kind", "'local', 'mpi' or 'nccl'", describeValue(info[0]));
    Napi::Object options = readOptions(info[1], "options");
    auto state = std::make_shared<RingState>();
    state->timeout = readTimeout(options);
    if (kind == "local") {
      state->kind = RingKind::Local;
      state->size = static_cast<int>(readInteger(options.Get("ranks"), "options.ranks", 1, kMaxRanks));
      state->endpoints = ring::createLocalGroup(state->size, state->timeout);
    } else if (kind == "mpi") {
      state->kind = RingKind::Mpi;
#if defined(SIGLIP_WITH_MPI)
      makeMpiSymbolsGlobal();
      state->endpoints.push_back(ring::createMpiTransport(state->timeout));
      state->rank = state->endpoints[0]->rank();
      state->size = state->endpoints[0]->size();
      if (!mpiCleanupHookAdded) {
        // MPI_Finalize when this environment is torn down (process exit), on the JS thread,
        // which is the thread that initialised MPI.
        napi_add_env_cleanup_hook(env, finalizeMpiAtExit, nullptr);
        mpiCleanupHookAdded = true;
      }
#else
      throw makeJsError(env, ErrorKind::Internal,
                        "This build of siglip-kernels has no MPI transport: no MPI was found when the addon was "
                        "compiled. Install Open MPI (e.g. apt-get install openmpi-bin libopenmpi-dev) and rebuild "
                        "(npm rebuild siglip-kernels)",
                        "", kErrNoMpi);
#endif
    } else if (kind == "nccl") {
      state->kind = RingKind::Nccl;
#if defined(SIGLIP_WITH_CUDA)
      state->size = static_cast<int>(readInteger(options.Get("size"), "options.size", 1, kMaxRanks));
      state->rank = static_cast<int>(readInteger(options.Get("rank"), "options.rank", 0, state->size - 1));
      state->device = static_cast<int>(readInteger(options.Get("device"), "options.device", 0, INT_MAX));
      Napi::Value id = options.Get("id");
      const std::string expected = "a Uint8Array of " + std::to_string(ring::kNcclUniqueIdBytes) +
                                   " bytes (from Ring.ncclUniqueId() on one rank)";
      if (!id.IsTypedArray() || id.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        throw typeError(env, "options.id", expected, describeValue(id));
      Napi::Uint8Array bytes = id.As<Napi::Uint8Array>();
      if (bytes.ElementLength() != ring::kNcclUniqueIdBytes || bytes.ArrayBuffer().IsDetached())
        throw rangeError(env, "options.id", expected, describeValue(id));
      state->ncclId.assign(bytes.Data(), bytes.Data() + bytes.ElementLength());
      cuda::requireDevice(state->device);
      requireNccl(env);
#else
      throw makeJsError(env, ErrorKind::Internal,
                        "NCCL rings need the CUDA build of siglip-kernels (this is the CPU build)", "",
                        "ERR_SIGLIP_NO_CUDA");
#endif
    } else {
      throw rangeError(env, "kind", "'local', 'mpi' or 'nccl'", describeValue(info[0]));
    }
    kind_ = state->kind;
    state_ = std::move(state);
  }

  // The live state; throws for a disposed ring, one busy with another call, or a broken one.
  std::shared_ptr<RingState> usable(Napi::Env env) {
    if (!state_) {
      throw makeJsError(env, ErrorKind::Internal,
                        "This ring was disposed (dispose() frees its transports; create a new Ring to go on)", "",
                        kErrDisposedCode);
    }
    if (state_->busy) {
      throw makeJsError(env, ErrorKind::Internal,
                        "This ring is busy with another call (a ring runs one call at a time; wait for it to settle)",
                        "", kErrRingBusy);
    }
    if (!state_->broken.empty()) {
      throw makeJsError(env, ErrorKind::Internal,
                        "This ring failed earlier and cannot be used any more (dispose it and create a new one): " +
                            state_->broken,
                        "", kErrRingFailed);
    }
    return state_;
  }

  Napi::Value SigmoidLoss(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = usable(env);
      if (state->endpoints.empty()) {
        throw makeJsError(env, ErrorKind::Internal, "This ring is not connected yet (await connect() first)", "",
                          kErrRingFailed);
      }
      switch (state->kind) {
        case RingKind::Local:
          return localSigmoidLoss(info, state);
        case RingKind::Mpi:
          return mpiSigmoidLoss(info, state);
        case RingKind::Nccl:
#if defined(SIGLIP_WITH_CUDA)
          return ncclSigmoidLoss(info, state);
#else
          break;
#endif
      }
      throw makeJsError(env, ErrorKind::Internal, "unknown ring kind", "");
    });
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return withJsErrors(env, [&]() -> Napi::Value {
      std::shared_ptr<RingState> state = usable(env);
#if defined(SIGLIP_WITH_CUDA)
      if (state->kind == RingKind::Nccl && state->endpoints.empty()) {
        auto* worker = new NcclConnectWorker(env, state);  // deletes itself when complete
        Napi::Promise promise = worker->promise();
        state->busy = true;
        worker->Queue();
        return promise;
      }
#endif
      Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
      done.Resolve(env.Undefined());  // local and MPI rings are connected when made
      return done.Promise();
    });
  }

  void Dispose(const Napi::CallbackInfo&) { state_.reset(); }

  Napi::Value Kind(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), kindName(state_ ? state_->kind : kind_));
  }
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? state_->rank : 0); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? state_->size : 0); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

  std::shared_ptr<RingState> state_;
  RingKind kind_ = RingKind::Local;
};

Napi::Value RingBuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#if defined(SIGLIP_WITH_MPI)
  out.Set("mpi", Napi::Boolean::New(env, true));
  out.Set("mpiLibrary", Napi::String::New(env, mpiLibraryVersion()));
  out.Set("mpiLaunched", Napi::Boolean::New(env, ring::launchedByMpi()));
#else
  out.Set("mpi", Napi::Boolean::New(env, false));
  out.Set("mpiLibrary", Napi::String::New(env, ""));
  out.Set("mpiLaunched", Napi::Boolean::New(env, false));
#endif
#if defined(SIGLIP_WITH_CUDA)
  out.Set("nccl", Napi::Boolean::New(env, true));
#else
  out.Set("nccl", Napi::Boolean::New(env, false));
#endif
  return out;
}

void MpiFinalize(const Napi::CallbackInfo&) {
#if defined(SIGLIP_WITH_MPI)
  ring::finalizeMpi();
#endif
}

#if defined(SIGLIP_WITH_CUDA)
Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return withJsErrors(env, [&]() -> Napi::Value {
    requireNccl(env);
    const std::vector<uint8_t> id = ring::ncclUniqueIdBytes();
    Napi::Uint8Array out = Napi::Uint8Array::New(env, id.size());
    std::copy(id.begin(), id.end(), out.Data());
    return out;
  });
}

Napi::Value NcclInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  std::string reason;
  const bool available = ring::ncclAvailable(&reason);
  out.Set("available", Napi::Boolean::New(env, available));
  out.Set("reason", Napi::String::New(env, reason));
  std::string library, version;
  if (available) {
    try {
      library = ring::ncclLibraryPath();
      version = ring::ncclVersionString();
    } catch (const std::exception&) {
    }
  }
  out.Set("library", Napi::String::New(env, library));
  out.Set("version", Napi::String::New(env, version));
  return out;
}
#endif

}  // namespace

void registerRingBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("RingHandle", RingHandle::defineClass(env));
  exports.Set("ringBuildInfo", Napi::Function::New(env, RingBuildInfo, "ringBuildInfo"));
  exports.Set("mpiFinalize", Napi::Function::New(env, MpiFinalize, "mpiFinalize"));
#if defined(SIGLIP_WITH_CUDA)
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId, "ncclUniqueId"));
  exports.Set("ncclInfo", Napi::Function::New(env, NcclInfo, "ncclInfo"));
#endif
}

}  // namespace siglip::addon
